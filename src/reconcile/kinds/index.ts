/**
 * The registry of resource kinds. A new kind is a folder implementing {@link KindHandler} plus
 * one line here (and its schema in `schemas/`). The unions of the kinds' resources and step
 * operations, and the core's generic change, step and desired-state types instantiated with them,
 * are what the stages use. Stages import this module and the core, never a kind.
 */
import { hostOf, isResourceKind, resourceKey, type ResourceKind } from '../../model/kinds.js';
import { poolKind, type DesiredPool, type PoolOp } from './pool/index.js';
import { volumeKind, type DesiredVolume, type VolumeOp } from './volume/index.js';
import { networkKind, type DesiredNetwork, type NetworkOp } from './network/index.js';
import { vmKind, type DesiredVm, type VmOp } from './vm/index.js';
import { snapshotKind, type DesiredSnapshot, type SnapshotOp } from './snapshot/index.js';
import type { KindHandler, KindRegistry, Locator, OpInfo } from '../core/kind.js';
import type { ForgetOp, PlanStep as CorePlanStep, ResourceChange as CoreResourceChange } from '../core/change.js';
import type { Desired as CoreDesired } from '../core/resource.js';
import type { Observed } from '../core/observed.js';
import { ownershipById, type Ownership } from '../core/ownership.js';
import type { HostPort } from '../ports.js';
import type { ExportedObject, ExportHost } from '../core/export.js';
import { exportPools, readPoolsForExport } from './pool/export.js';
import { exportVolumes, readVolumesForExport, volumeNames } from './volume/export.js';
import { exportNetworks, readNetworksForExport } from './network/export.js';
import { exportVms, readDomainsForExport } from './vm/export.js';

export type DesiredResource = DesiredPool | DesiredVolume | DesiredNetwork | DesiredVm | DesiredSnapshot;

export type { ForgetOp };
export type StepOp = PoolOp | VolumeOp | NetworkOp | VmOp | SnapshotOp | ForgetOp;

/** A change of any kind's resource, with the union of their step operations. */
export type ResourceChange = CoreResourceChange<StepOp, DesiredResource>;
/** A plan step of any kind. */
export type PlanStep = CorePlanStep<StepOp, DesiredResource>;
/** The desired state: every kind's resources. */
export type Desired = CoreDesired<DesiredResource>;

/** The handler of a kind, typed loosely for the generic stages that dispatch on it. */
// eslint-disable-next-line @typescript-eslint/no-explicit-any -- each stage passes a kind's own resources and ops back to it
export type AnyKindHandler = KindHandler<any, any>;

/** Handlers keyed by kind. */
export const KINDS: { readonly [K in ResourceKind]: AnyKindHandler } = {
  StoragePool: poolKind,
  Volume: volumeKind,
  Network: networkKind,
  VirtualMachine: vmKind,
  Snapshot: snapshotKind,
};

export function kindOf(kind: ResourceKind): AnyKindHandler {
  return KINDS[kind];
}

const FORGET = { label: 'forget record', teardown: true };

/** Label and teardown flag of any step operation. */
export function opInfo(op: StepOp['op'] | string): OpInfo {
  if (op === 'record.forget') return FORGET;
  for (const h of Object.values(KINDS) as AnyKindHandler[]) {
    const info = (h.ops as Record<string, OpInfo>)[op];
    if (info) return info;
  }
  throw new Error(`internal error: unknown step operation ${op}`);
}

/** Whether a kind (a record's or a row's, any string) is one whose objects are guests (`KindHandler.guest`). */
export function isGuestKind(kind: string): boolean {
  return isResourceKind(kind) && kindOf(kind).guest !== undefined;
}

/** The registry as the core's interface. */
export const registry: KindRegistry = { kindOf, opInfo };

/**
 * Ownership of a resource's object: the kind finds its identity (`identity`), the core decides
 * (`ownershipById`). `key` is `resourceKey(kind, name)`, passed by callers that have it already.
 */
export function ownershipOf(observed: Observed, kind: ResourceKind, name: string, where: Locator = {}, key = resourceKey(kind, name, hostOf(observed))): Ownership {
  return ownershipById(observed, kind, name, kindOf(kind).identity(observed, name, where), key);
}

export type { DesiredPool, DesiredVolume, DesiredNetwork, DesiredVm, DesiredSnapshot };
export type { PoolConfig } from './pool/index.js';
export type { VolumeConfig } from './volume/index.js';
export type { NetworkConfig } from './network/index.js';
export type { VmConfig } from './vm/index.js';
export type { SnapshotConfig } from './snapshot/index.js';
/** `virtform snapshot revert|list` (issue 24): the Snapshot kind's imperative side, for the CLI. */
export { SNAPSHOT_KIND, listSnapshots, previewRevert, revertTo, type RevertPreview, type SnapshotRow } from './snapshot/revert.js';
export type { KindHandler } from '../core/kind.js';
export type { Ownership } from '../core/ownership.js';

/**
 * `virtform export` (issue 24): every pool, volume, network and domain of the host, read from
 * libvirt only, each as a manifest or with why it cannot be one, in kind order. Each kind's
 * `export.ts` holds its mapping.
 */
export async function exportHostObjects(host: HostPort): Promise<ExportedObject[]> {
  const snapshot = await host.snapshot();
  const pools = await readPoolsForExport(host, snapshot);
  const h: ExportHost = {
    pools,
    volumes: await readVolumesForExport(host, pools),
    networks: await readNetworksForExport(host, snapshot),
    domains: await readDomainsForExport(host, snapshot),
  };
  const names = volumeNames(h.volumes, [...h.domains, ...h.networks, ...h.pools].map((o) => o.name));
  const all = [...exportPools(h), ...exportVolumes(h, names), ...exportNetworks(h), ...exportVms(h, names)];
  // A VM's cloud-init seed is part of the VM's manifest (cloudInit.seedVolume), not a Volume.
  const claimed = new Set(all.flatMap((o) => o.claims ?? []));
  return all.filter((o) => !claimed.has(o.object));
}
