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
  sourcePath?: string;
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
  disks: DomainDiskDef[];
  /** Read-only raw CD-ROMs (the cloud-init seed), after the disks. */
  cdroms?: DomainCdromDef[];
  nics: DomainNicDef[];
  marker: OwnerMarker;
}

export interface DomainDetail {
  name: string;
  uuid: string;
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
  disks: { path: string; target: string; bus: string; bootOrder?: number; format?: string }[];
  /** `device='cdrom'` disks (absent: read by something that does not report them). */
  cdroms?: { path: string; target: string; bus: string }[];
  /** `model` is libvirt's default for x86 QEMU (rtl8139) when the XML names none. */
  nics: { network: string; mac: string; model: string }[];
  marker?: OwnerMarker;
}

export interface NetworkDetail {
  name: string;
  uuid: string;
  active: boolean;
  autostart: boolean;
  mode: NetworkMode;
  bridge?: string;
  ipv4?: { address: string; prefix: number };
  dhcp?: { start: string; end: string; hosts: DhcpHost[] };
  marker?: OwnerMarker;
}

export interface PoolDetail {
  name: string;
  uuid: string;
  active: boolean;
  autostart: boolean;
  path: string;
  marker?: OwnerMarker;
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
