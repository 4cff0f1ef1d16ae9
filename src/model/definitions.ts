/**
 * Definitions of host objects: what virtform hands to a host (`*Def`, normalized: bytes, resolved
 * paths) and what it reads back (`*Detail`). One declaration, used by the reconciler's port
 * (`src/reconcile/ports.ts`), the libvirt XML builders/parsers (`src/libvirt/xml/`) and the
 * adapter between them.
 */
import type { ResourceKind } from './kinds.js';

/** Ownership marker virtform writes into the objects it creates (where the XML format allows). */
export interface OwnerMarker {
  kind: ResourceKind;
  name: string;
  specHash: string;
}

/** The marker of a pool virtform defines only to reach a directory on the host (not a managed resource). */
export function directoryPoolMarker(name: string): OwnerMarker {
  return { kind: 'StoragePool', name, specHash: '' };
}

/**
 * Scratch pools: the throw-away pools virtform creates only to reach a directory on a host (a
 * transient `virtform-probe-…` to test that a directory exists, an inactive `virtform-rmdir-…` to
 * remove one). Each lives for one call; a process killed in between leaves one behind. They are
 * never observed as pools (they would conflict with the pools whose directories they reach) and
 * are removed after the next apply. The names are reserved: no manifest may declare them.
 */
export type ScratchPoolPurpose = 'probe' | 'rmdir';
export const SCRATCH_POOL_NAME = /^virtform-(probe|rmdir)-[0-9a-f]{12}$/;
export function isScratchPoolName(name: string): boolean {
  return SCRATCH_POOL_NAME.test(name);
}

/**
 * Whether a listed pool is a scratch pool left behind: its name, and the state each purpose leaves
 * (a probe is transient, an rmdir pool defined and never started). Pool XML has no room for a
 * marker (src/libvirt/xml/pool.ts), so the name and that state are all there is to go by.
 */
export function isLeftoverScratchPool(p: { name: string; persistent: boolean; active: boolean }): boolean {
  const m = SCRATCH_POOL_NAME.exec(p.name);
  if (!m) return false;
  return m[1] === 'probe' ? !p.persistent : p.persistent && !p.active;
}

export type VolumeFormat = 'qcow2' | 'raw';

export interface PoolDef {
  name: string;
  /** Keep the UUID of an existing pool when redefining it. */
  uuid?: string;
  path: string;
  marker: OwnerMarker;
}

export interface VolumeDef {
  pool: string;
  name: string;
  capacityBytes: number;
  format: VolumeFormat;
  backing?: { path: string; format: VolumeFormat };
  /** File mode of the volume (`<permissions><mode>`), e.g. 0o600 for a seed holding secrets; libvirt's default when absent. */
  mode?: number;
}

export interface DhcpHost {
  mac: string;
  ip: string;
  name?: string;
}

export type NetworkMode = 'isolated' | 'nat' | 'bridge';

export interface NetworkDef {
  name: string;
  /** Keep the UUID of an existing network when redefining it. */
  uuid?: string;
  mode: NetworkMode;
  bridge?: string;
  ipv4?: { address: string; prefix: number };
  dhcp?: { start: string; end: string; hosts: DhcpHost[] };
  marker: OwnerMarker;
}

export interface DomainDiskDef {
  path: string;
  format: VolumeFormat;
  bus: 'virtio' | 'sata' | 'scsi' | 'ide';
  target: string;
  bootOrder?: number;
  /** `cdrom`: a read-only CD-ROM (`device='cdrom'`, `<readonly/>`; not on virtio); absent: a disk. */
  device?: 'cdrom';
}

export interface DomainCdromDef {
  path: string;
  bus: 'ide' | 'sata' | 'scsi';
  target: string;
}

export interface DomainNicDef {
  network: string;
  mac?: string;
  model: string;
}

/**
 * How a domain boots: `firmware` (absent: BIOS; `efi`: libvirt's firmware autoselection picks
 * OVMF and makes the domain its own NVRAM file), and a kernel booted directly by QEMU with its
 * initrd and command line.
 */
export interface DomainBoot {
  firmware?: 'efi';
  kernel?: string;
  initrd?: string;
  cmdline?: string;
}

/** `<cpu mode>`: what the guest CPU is (libvirt's modes; `custom` names a model). */
export type CpuMode = 'host-passthrough' | 'host-model' | 'maximum' | 'custom';

export interface DomainCpuDef {
  mode: CpuMode;
  /** The CPU model of `custom` (`<model>`), e.g. `Westmere`; only with `custom`. */
  model?: string;
}

export type GraphicsType = 'vnc' | 'spice';

export interface DomainGraphicsDef {
  type: GraphicsType;
  /** Address the VNC/SPICE server listens on (`listen`). */
  listen: string;
}

export interface DomainDef {
  name: string;
  uuid?: string;
  type: 'kvm' | 'qemu';
  /** vCPUs the domain runs with (`<vcpu current>`). */
  vcpus: number;
  /** vCPU maximum (`<vcpu>`), default `vcpus`: vCPUs up to it can be plugged into a running domain. */
  maxVcpus?: number;
  /** Memory the domain runs with (`<currentMemory>`, the balloon target). */
  memoryKiB: number;
  /** Memory maximum (`<memory>`), default `memoryKiB`. */
  maxMemoryKiB?: number;
  description?: string;
  /** Absent: BIOS, boot from the disks. */
  boot?: DomainBoot;
  /** `<cpu mode>`; absent: no `<cpu>` element (libvirt's default, `custom` qemu64 on x86). */
  cpu?: DomainCpuDef;
  /** One `<graphics autoport='yes'>` device (with the video device libvirt adds); absent: none. */
  graphics?: DomainGraphicsDef;
  /** The QEMU guest agent's virtio channel (`org.qemu.guest_agent.0`, a unix socket libvirt places). Default true. */
  guestAgent?: boolean;
  disks: DomainDiskDef[];
  /** Read-only raw CD-ROMs (the cloud-init seed), after the disks (a declared cdrom disk is in `disks`). */
  cdroms?: DomainCdromDef[];
  nics: DomainNicDef[];
  /** spec.extraDevices: one device element each (validated, canonical), appended to `<devices>`. */
  extraDevices?: string[];
  marker: OwnerMarker;
}

export interface DomainDetail {
  name: string;
  uuid: string;
  /** `<domain type>`: kvm or qemu (absent: read by something that does not report it). */
  type?: string;
  active: boolean;
  autostart: boolean;
  /** `<vcpu current>` (the `<vcpu>` count when there is no `current`). */
  vcpus: number;
  /** `<vcpu>`: the vCPU maximum. */
  maxVcpus: number;
  /** `<currentMemory>` in KiB (`<memory>` when absent). */
  memoryKiB: number;
  /** `<memory>` in KiB: the memory maximum. */
  maxMemoryKiB: number;
  /** `<memballoon model>` ('virtio' when absent: libvirt adds one to x86 QEMU domains). */
  balloon: string;
  description?: string;
  /** `<os>`: firmware (`efi` for `<os firmware='efi'>` or a pflash loader), kernel, initrd, cmdline; absent when none is set. */
  boot?: DomainBoot;
  /** `<cpu mode>` and its `<model>` (libvirt writes `custom` qemu64 into x86 definitions without one); absent when the XML has no `<cpu>`. */
  cpu?: { mode: string; model?: string };
  /** `<graphics>` devices: type, listen address, and the port of a running domain (absent: autoport, not running). */
  graphics: { type: string; listen?: string; port?: number }[];
  /** A virtio channel named `org.qemu.guest_agent.0` exists. */
  guestAgent: boolean;
  /** `device='disk'` disks; `device` is set only in a view that adds declared CD-ROMs (`diskView`). */
  disks: { path: string; target: string; bus: string; bootOrder?: number; format?: string; device?: 'cdrom' }[];
  /** `device='cdrom'` disks (absent: read by something that does not report them). */
  cdroms?: { path: string; target: string; bus: string; bootOrder?: number; format?: string }[];
  /** `model` is libvirt's default for x86 QEMU (rtl8139) when the XML names none. */
  nics: { network: string; mac: string; model: string }[];
  /** The devices virtform does not model otherwise (watchdog, rng, …), canonical one-line XML (absent: read by something that does not report them). */
  extraDevices?: string[];
  marker?: OwnerMarker;
  /** The inactive XML as libvirt gave it (read by observe's definitions): what exact drift compares with the baseline. */
  xml?: string;
  /** The running domain's live XML (running domains only, read by observe's definitions): its device list is compared with the persistent one. */
  liveXml?: string;
}

/**
 * What the hypervisor offers for the domains virtform defines (`virConnectGetDomainCapabilities`
 * for x86_64 and the domain type in use / `virsh domcapabilities --virttype kvm|qemu`).
 */
export interface DomainCapabilities {
  /** `<domain>`: kvm or qemu. */
  domainType: string;
  /** `<machine>`, e.g. pc-i440fx-7.2. */
  machine: string;
  /** CPU modes with `supported='yes'` (host-passthrough is absent under TCG). */
  cpuModes: string[];
  /** Models of the `custom` mode; `usable: false` = the host CPU lacks some of the model's features. */
  cpuModels: { name: string; usable: boolean }[];
  /** `<graphics>` types (empty when graphics are not supported). */
  graphicsTypes: string[];
  /** `<channel>` types (empty when the element is missing: older libvirt). */
  channelTypes: string[];
}

export interface NetworkDetail {
  name: string;
  uuid: string;
  active: boolean;
  autostart: boolean;
  /**
   * The forward mode; a mode virtform does not model (`route`, `open`, `passthrough`, …, set
   * outside virtform) is reported as libvirt writes it, so the diff sees it as a difference.
   */
  mode: NetworkMode | UnmodelledValue;
  bridge?: string;
  ipv4?: { address: string; prefix: number };
  dhcp?: { start: string; end: string; hosts: DhcpHost[] };
  marker?: OwnerMarker;
  /** The inactive XML as libvirt gave it (read by observe's definitions): what exact drift compares with the baseline. */
  xml?: string;
}

/** A value read from the host that virtform's model has no name for (kept as libvirt wrote it). */
export type UnmodelledValue = string & { readonly unmodelled?: true };

export interface PoolDetail {
  name: string;
  uuid: string;
  active: boolean;
  autostart: boolean;
  path: string;
  marker?: OwnerMarker;
  /** The inactive XML as libvirt gave it (read by observe's definitions): what exact drift compares with the baseline. */
  xml?: string;
}

export interface VolumeDetail {
  pool: string;
  name: string;
  key: string;
  path: string;
  capacityBytes: number;
  format: string;
  backingPath?: string;
}

// --- snapshots (kind Snapshot, issue 24) ------------------------------------------------------

/** An internal snapshot virtform takes of a domain (virDomainSnapshotCreateXML). */
export interface SnapshotDef {
  /** The domain. */
  domain: string;
  /** The snapshot's name (the Snapshot resource's name). */
  name: string;
  description?: string;
  /** The running domain's memory is saved too (internal, `savevm`); false: disks only (a shut-off domain). */
  memory: boolean;
}

/** A domain snapshot as libvirt describes it (virDomainSnapshotGetXMLDesc). */
export interface SnapshotDetail {
  domain: string;
  name: string;
  description?: string;
  /** `<creationTime>`: seconds since the epoch. */
  creationTime: number;
  /** `<state>`: the domain's state when it was taken (running, shutoff, paused, disk-snapshot). */
  state: string;
  /** `<memory snapshot>`: internal (memory saved), external, or no. */
  memory: string;
  /** `<disks>`: each disk's target and how it was snapshotted (internal, external, no). */
  disks: { target: string; snapshot: string }[];
  /** `<parent><name>`, when it has one. */
  parent?: string;
  /** The domain's persistent definition the snapshot carries (`<inactiveDomain>` when the domain ran, else `<domain>`): what a revert defines. */
  domainXml?: string;
}

/** What observe reads back of each kind's object (`Observed.definitions`, `definitionOf`). */
export interface DetailOfKind {
  StoragePool: PoolDetail;
  Volume: VolumeDetail;
  Network: NetworkDetail;
  VirtualMachine: DomainDetail;
  Snapshot: SnapshotDetail;
}
