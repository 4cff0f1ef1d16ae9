/**
 * Desired state: manifests normalized into exactly what the host should look like.
 *
 * Sizes become bytes, references become paths, defaults are filled in, each by its kind's module
 * (`kinds/`). Each resource carries `config` (the part that is its object's definition, hashed
 * into `specHash`) apart from runtime fields (running/stopped, autostart) compared live.
 */
import { posix } from 'node:path';
import type { DesiredState } from '../manifest/index.js';
import { LOCAL_HOST, RESOURCE_KINDS, resourceKey } from '../model/kinds.js';
import type { VolumeFormat } from '../model/definitions.js';
import { KINDS, kindOf, type DesiredResource } from './kinds/index.js';
import { volumeFilePath } from './kinds/volume.js';
import type { BuildContext } from './kinds/types.js';

export { canonicalJson, hashConfig } from './resource.js';
export { resourceKey };
export { volumeFileName } from './kinds/volume.js';
export { cidrHostAddress } from './kinds/network.js';
export { diskTarget } from './kinds/vm/index.js';
export type {
  DesiredResource, DesiredPool, DesiredVolume, DesiredNetwork, DesiredVm, PoolConfig, VolumeConfig, NetworkConfig, VmConfig,
} from './kinds/index.js';

export interface Desired {
  resources: DesiredResource[];
  byKey: Map<string, DesiredResource>;
  digest: string;
  gitCommit?: string;
  gitDirty?: boolean;
  empty: boolean;
}

/** Kinds in build-up order (pools → volumes → networks → VMs). */
export const KIND_ORDER = RESOURCE_KINDS;

/** Cross-kind lookups for the kind modules. Assumes references were validated. */
function buildContext(state: DesiredState, host: string): BuildContext {
  const pools = new Map(state.pools.map((p) => [p.metadata.name, p]));
  const volumes = new Map(state.volumes.map((v) => [v.metadata.name, v]));
  const poolPath = (name: string): string => posix.normalize(pools.get(name)?.spec.path ?? `/nonexistent/${name}`);
  const volumeFormat = (name: string): VolumeFormat => (volumes.get(name)?.spec.format ?? 'qcow2') as VolumeFormat;
  const volumePath = (name: string): string => {
    const v = volumes.get(name);
    return v ? volumeFilePath(poolPath(v.spec.pool), name, volumeFormat(name)) : `/nonexistent/${name}`;
  };
  return { host, poolPath, volumePath, volumeFormat };
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
