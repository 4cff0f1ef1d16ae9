/**
 * What every desired resource has, whatever its kind, and the canonical hashing of configs.
 * Kind-specific configs live in `kinds/<kind>/`.
 */
import { hash } from 'node:crypto';
import { resourceKey, type ResourceKind } from '../../model/kinds.js';

export interface DesiredBase<K extends ResourceKind, C> {
  kind: K;
  name: string;
  /** Host the resource lives on (today always the implicit local host). */
  host: string;
  /** `resourceKey(kind, name, host)`, computed once: observe, diff and plan look resources up by it. */
  key: string;
  adopt: boolean;
  /**
   * `metadata.reconcile: disabled`: virtform leaves this resource alone (no change, no prune);
   * the engine records it in `details.facts.reconcileDisabled` so a removed manifest releases it.
   */
  suspended?: boolean;
  labels: Record<string, string>;
  /** The part of the resource that is its object's definition, hashed into `specHash`. */
  config: C;
  specHash: string;
  source?: { file: string; line: number; col: number };
}

/** A desired resource of any kind, as the core sees it (the registry's `DesiredResource` is the union of the kinds'). */
export type AnyDesired = DesiredBase<ResourceKind, unknown>;

/** The desired state: normalized resources, by key too. */
export interface Desired<R extends AnyDesired = AnyDesired> {
  resources: R[];
  byKey: Map<string, R>;
  digest: string;
  gitCommit?: string;
  gitDirty?: boolean;
  empty: boolean;
}

/** Stable JSON: keys sorted, undefined dropped. */
export function canonicalJson(value: unknown): string {
  return JSON.stringify(value, (_k, v: unknown) => {
    if (v && typeof v === 'object' && !Array.isArray(v)) {
      const out: Record<string, unknown> = {};
      for (const key of Object.keys(v as Record<string, unknown>).sort()) {
        const item = (v as Record<string, unknown>)[key];
        if (item !== undefined) out[key] = item;
      }
      return out;
    }
    return v;
  });
}

export function hashConfig(config: unknown): string {
  // crypto.hash: one call, no Hash object (several times createHash's speed on short input, measured in bench/results/process.md).
  return hash('sha256', canonicalJson(config)).slice(0, 16);
}

/** The part of a manifest every kind normalizes the same way. */
interface ManifestHead {
  metadata: { name: string; labels?: Record<string, string>; adopt?: boolean; reconcile?: 'enabled' | 'disabled' };
  source?: { file: string; line: number; col: number };
}

/** The kind-independent fields of a desired resource, from its manifest and normalized config. */
export function desiredBase<K extends ResourceKind, C>(kind: K, m: ManifestHead, host: string, config: C): DesiredBase<K, C> {
  const name = m.metadata.name;
  return {
    kind, name, host, key: resourceKey(kind, name, host),
    adopt: m.metadata.adopt === true, suspended: m.metadata.reconcile === 'disabled', labels: { ...(m.metadata.labels ?? {}) },
    config, specHash: hashConfig(config), source: m.source,
  };
}
