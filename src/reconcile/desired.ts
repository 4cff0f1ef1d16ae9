/**
 * Desired state: manifests normalized into exactly what the host should look like.
 *
 * Sizes become bytes, references become paths, defaults are filled in, each by its kind's module
 * (`kinds/`). Each resource carries `config` (the part that is its object's definition, hashed
 * into `specHash`) apart from runtime fields (running/stopped, autostart) compared live.
 */
import type { DesiredState } from '../manifest/index.js';
import { LOCAL_HOST, RESOURCE_KINDS, resourceKey, type HostId } from '../model/kinds.js';
import { hashConfig } from './core/resource.js';
import { KINDS, kindOf, type Desired, type DesiredResource } from './kinds/index.js';
import type { BuildContext } from './core/kind.js';

export { canonicalJson, hashConfig } from './core/resource.js';
export { resourceKey };
export type {
  Desired, DesiredResource, DesiredPool, DesiredVolume, DesiredNetwork, DesiredVm, PoolConfig, VolumeConfig, NetworkConfig, VmConfig,
} from './kinds/index.js';

/** Kinds in build-up order (pools → volumes → networks → VMs). */
export const KIND_ORDER = RESOURCE_KINDS;

/**
 * Cross-kind lookups for the kind modules, each answered by the kind that knows (`lookups`).
 * Assumes references were validated.
 */
export function buildContext(state: DesiredState, host: string, domainType?: 'kvm' | 'qemu'): BuildContext {
  const missing = (what: string) => (name: string): never => {
    throw new Error(`internal error: no kind answers the ${what} of ${name}`);
  };
  const ctx: BuildContext = {
    host, ...(domainType ? { domainType } : {}),
    poolPath: missing('pool path'), volumePath: missing('volume path'), volumeFormat: missing('volume format'),
  };
  for (const k of RESOURCE_KINDS) Object.assign(ctx, KINDS[k].lookups?.(state, ctx));
  return ctx;
}

/**
 * Normalize validated manifests into desired resources. Assumes references were validated.
 * `host`: where resources that name no host are placed. No manifest names a host yet, so today
 * everything lands on it (the implicit local host); with fleets, placement (after observe) decides
 * for the placeable kinds, and the per-host results are joined by {@link mergeDesired}.
 */
export function buildDesired(state: DesiredState, host: HostId = LOCAL_HOST): Desired {
  const ctx = buildContext(state, host);
  const resources: DesiredResource[] = RESOURCE_KINDS.flatMap((k) => KINDS[k].build(state, ctx) as DesiredResource[]);
  return {
    resources,
    byKey: new Map(resources.map((r) => [r.key, r])),
    // Read when first asked (a run's record, not a dry-run): the load computes it lazily too.
    get digest() {
      return state.digest;
    },
    gitCommit: state.gitCommit,
    gitDirty: state.gitDirty,
    empty: resources.length === 0,
  };
}

/**
 * One desired state from the desired states of several hosts (each built with its host): what a
 * run over several hosts plans. Keys name the host, so the same name on two hosts stays two
 * resources; the same key twice is an internal error.
 */
export function mergeDesired(parts: readonly Desired[]): Desired {
  const resources = parts.flatMap((p) => p.resources);
  const byKey = new Map<string, DesiredResource>();
  for (const r of resources) {
    if (byKey.has(r.key)) throw new Error(`internal error: ${r.key} is declared twice`);
    byKey.set(r.key, r);
  }
  const digests = parts.map((p) => p.digest);
  return {
    resources, byKey,
    digest: digests.length === 1 ? digests[0]! : hashConfig(digests),
    gitCommit: parts[0]?.gitCommit, gitDirty: parts.some((p) => p.gitDirty === true),
    empty: resources.length === 0,
  };
}

/** Keys of the resources a resource depends on (for ordering and for skipping dependents). */
export function dependenciesOf(r: DesiredResource): string[] {
  return kindOf(r.kind).dependencies(r);
}
