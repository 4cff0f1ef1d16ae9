/**
 * The registry of resource kinds. A new kind is a module implementing {@link KindHandler} plus
 * one line here (and its schema in `schemas/`).
 */
import type { ResourceKind } from '../../model/kinds.js';
import { poolKind, type DesiredPool, type PoolOp } from './pool.js';
import { volumeKind, type DesiredVolume, type VolumeOp } from './volume.js';
import { networkKind, type DesiredNetwork, type NetworkOp } from './network.js';
import { vmKind, type DesiredVm, type VmOp } from './vm/index.js';
import type { KindHandler } from './types.js';

export type DesiredResource = DesiredPool | DesiredVolume | DesiredNetwork | DesiredVm;

/** Forgetting a record (the object is gone or not ours) is the same for every kind. */
export type ForgetOp = { op: 'record.forget' };
export type StepOp = PoolOp | VolumeOp | NetworkOp | VmOp | ForgetOp;

/** The handler of a kind, typed loosely for the generic stages that dispatch on it. */
// eslint-disable-next-line @typescript-eslint/no-explicit-any -- each stage passes a kind's own resources and ops back to it
export type AnyKindHandler = KindHandler<any, any>;

/** Handlers keyed by kind. */
export const KINDS: { readonly [K in ResourceKind]: AnyKindHandler } = {
  StoragePool: poolKind,
  Volume: volumeKind,
  Network: networkKind,
  VirtualMachine: vmKind,
};

export function kindOf(kind: ResourceKind): AnyKindHandler {
  return KINDS[kind];
}

const FORGET = { label: 'forget record', teardown: true };

/** Label and teardown flag of any step operation. */
export function opInfo(op: StepOp['op']): { label: string; teardown: boolean; afterUsersStop?: boolean } {
  if (op === 'record.forget') return FORGET;
  for (const h of Object.values(KINDS) as AnyKindHandler[]) {
    const info = (h.ops as Record<string, { label: string; teardown: boolean; afterUsersStop?: boolean }>)[op];
    if (info) return info;
  }
  throw new Error(`internal error: unknown step operation ${op}`);
}

export type { DesiredPool, DesiredVolume, DesiredNetwork, DesiredVm };
export type { PoolConfig } from './pool.js';
export type { VolumeConfig } from './volume.js';
export type { NetworkConfig } from './network.js';
export type { VmConfig } from './vm/index.js';
export type { KindHandler } from './types.js';
