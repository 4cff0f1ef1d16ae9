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

/**
 * Stable JSON: keys sorted, undefined dropped. Exactly `JSON.stringify` of the value with every
 * object's keys sorted (what a replacer that copies each object in sorted order gives; spec hashes
 * recorded in state DBs depend on it, test/unit/reconcile/canonical-json.test.ts compares the two),
 * written in one pass without copying each object: it runs for every resource of every run.
 */
export function canonicalJson(value: unknown): string {
  return stableJson(value, false) as string;
}

/** An array index ("0" … "4294967294"): a JavaScript object lists such keys first, in numeric order. */
const isIndex = (k: string): boolean => /^(?:0|[1-9]\d{0,9})$/.test(k) && Number(k) <= 4294967294;

/** The keys in the order of an object built by inserting them sorted: indexes numerically first, then the rest sorted. */
function sortedKeys(v: object): string[] {
  const keys = Object.keys(v).sort();
  if (!keys.some(isIndex)) return keys;
  const indexes = keys.filter(isIndex).sort((a, b) => Number(a) - Number(b));
  return [...indexes, ...keys.filter((k) => !isIndex(k))];
}

/** One value's JSON; undefined where `JSON.stringify` leaves the value out (an object's member). */
function stableJson(v: unknown, inArray: boolean): string | undefined {
  switch (typeof v) {
    case 'string':
    case 'number':
    case 'boolean':
    case 'bigint': // JSON.stringify throws, as it should
      return JSON.stringify(v);
    case 'undefined':
    case 'function':
    case 'symbol':
      return inArray ? 'null' : undefined;
  }
  if (v === null) return 'null';
  const o = v as { toJSON?: unknown };
  if (typeof o.toJSON === 'function') return stableJson((o.toJSON as () => unknown)(), inArray);
  if (Array.isArray(v)) {
    let out = '[';
    for (let i = 0; i < v.length; i++) out += `${i > 0 ? ',' : ''}${stableJson(v[i], true) as string}`;
    return `${out}]`;
  }
  let out = '{';
  let first = true;
  for (const key of sortedKeys(v as object)) {
    const item = stableJson((v as Record<string, unknown>)[key], false);
    if (item === undefined) continue;
    out += `${first ? '' : ','}${JSON.stringify(key)}:${item}`;
    first = false;
  }
  return `${out}}`;
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
