/**
 * Desired state: manifests normalized into exactly what the host should look like.
 *
 * Sizes become bytes, references become paths, defaults are filled in, each by its kind's module
 * (`kinds/`). Each resource carries `config` (the part that is its object's definition, hashed
 * into `specHash`) apart from runtime fields (running/stopped, autostart) compared live.
 */
import type { DesiredState } from '../manifest/index.js';
import { LOCAL_HOST, RESOURCE_KINDS, resourceKey } from '../model/kinds.js';
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
function buildContext(state: DesiredState, host: string): BuildContext {
  const missing = (what: string) => (name: string): never => {
    throw new Error(`internal error: no kind answers the ${what} of ${name}`);
  };
  const ctx: BuildContext = { host, poolPath: missing('pool path'), volumePath: missing('volume path'), volumeFormat: missing('volume format') };
  for (const k of RESOURCE_KINDS) Object.assign(ctx, KINDS[k].lookups?.(state, ctx));
  return ctx;
}

/** Normalize validated manifests into desired resources. Assumes references were validated. */
export function buildDesired(state: DesiredState, host: string = LOCAL_HOST): Desired {
  const ctx = buildContext(state, host);
  const resources: DesiredResource[] = RESOURCE_KINDS.flatMap((k) => KINDS[k].build(state, ctx) as DesiredResource[]);
  return {
    resources,
    byKey: new Map(resources.map((r) => [r.key, r])),
    digest: state.digest,
    gitCommit: state.gitCommit,
    gitDirty: state.gitDirty,
    empty: resources.length === 0,
  };
}

/** Keys of the resources a resource depends on (for ordering and for skipping dependents). */
export function dependenciesOf(r: DesiredResource): string[] {
  return kindOf(r.kind).dependencies(r);
}
