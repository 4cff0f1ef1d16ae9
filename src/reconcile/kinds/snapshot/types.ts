/** The Snapshot kind's types: its normalized config, desired resource, recorded facts and step operations. */
import type { DesiredBase } from '../../core/resource.js';

export interface SnapshotConfig {
  /** The VirtualMachine (libvirt domain) it is a snapshot of. */
  vm: string;
  description?: string;
  /** The running VM's memory is saved too. */
  memory: boolean;
}

export type DesiredSnapshot = DesiredBase<'Snapshot', SnapshotConfig>;

/** What a Snapshot's record keeps in `details.facts`: what libvirt reported when it was taken. */
export interface SnapshotFacts {
  vm: string;
  /** `<creationTime>`: seconds since the epoch. */
  creationTime: number;
  /** The domain's state when it was taken: running, shutoff. */
  state: string;
  /** internal (memory saved) or no. */
  memory: string;
  /** Each disk's target and how it was snapshotted (internal, no). */
  disks: { target: string; snapshot: string }[];
  /** How long libvirt took (ms). */
  tookMs?: number;
}

export type SnapshotOp =
  /** Take the snapshot (idempotent: one of that name taken by an interrupted step is recorded). */
  | { op: 'snapshot.create'; vm: string }
  /** Delete the snapshot and its data inside the VM's qcow2 disks. */
  | { op: 'snapshot.delete'; vm: string };
