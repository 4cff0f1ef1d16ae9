/**
 * Types of the libvirt XML layer.
 *
 * This directory is self-contained (it imports nothing from the rest of virtform). The definition
 * and detail types below are declared here but kept STRUCTURALLY IDENTICAL to the ones in
 * `src/reconcile/ports.ts` (same field names and types), so an adapter can hand a `DomainDef`
 * from the reconciler straight to `buildDomainXml`, and spread a parsed document into a
 * `DomainDetail`:
 *
 * ```ts
 * const detail: DomainDetail = { ...parseDomainXml(xml), active, autostart };
 * ```
 *
 * Parsers return `Parsed*` types: the `*Detail` type without the fields that XML does not carry
 * (`active`/`autostart` come from list calls; a volume's pool is the pool it was looked up in).
 * Some parsed types carry a few extra read-only fields (e.g. the domain `type`, a disk's
 * `format`); extra fields do not break assignability to the ports' types.
 */

export type ResourceKind = 'StoragePool' | 'Volume' | 'Network' | 'VirtualMachine';

export const RESOURCE_KINDS: readonly ResourceKind[] = ['StoragePool', 'Volume', 'Network', 'VirtualMachine'];

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

export interface DomainNicDef {
  network: string;
  mac?: string;
  model: string;
}

export interface DomainDef {
  name: string;
  uuid?: string;
  type: 'kvm' | 'qemu';
  vcpus: number;
  memoryKiB: number;
  description?: string;
  disks: DomainDiskDef[];
  nics: DomainNicDef[];
  marker: OwnerMarker;
}

export interface DomainDetail {
  name: string;
  uuid: string;
  active: boolean;
  autostart: boolean;
  vcpus: number;
  memoryKiB: number;
  description?: string;
  disks: { path: string; target: string; bus: string; bootOrder?: number }[];
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

// ---------------------------------------------------------------------------------------------
// Parser results.
// ---------------------------------------------------------------------------------------------

/** A disk read back from domain XML (only `device='disk'` entries; cdroms/floppies are skipped). */
export interface ParsedDomainDisk {
  /** `source@file`, or `source@dev` for block disks, or `pool/volume` for volume disks; '' if none. */
  path: string;
  target: string;
  bus: string;
  bootOrder?: number;
  /** `driver@type` (e.g. qcow2, raw), when present. */
  format?: string;
}

/** A NIC read back from domain XML. */
export interface ParsedDomainNic {
  /** `source@network` for type='network' (or `source@bridge` for type='bridge'); '' if none. */
  network: string;
  /** '' when the XML has no `<mac>` (libvirt always writes one for defined domains). */
  mac: string;
  /** `model@type`, '' when absent. */
  model: string;
  /** The interface type (network, bridge, user, ...). */
  type: string;
}

/** `DomainDetail` without `active`/`autostart` (those come from list calls). */
export interface ParsedDomain {
  name: string;
  uuid: string;
  /** Domain type attribute: kvm or qemu (or another hypervisor type for foreign XML). */
  type: string;
  vcpus: number;
  memoryKiB: number;
  description?: string;
  disks: ParsedDomainDisk[];
  nics: ParsedDomainNic[];
  marker?: OwnerMarker;
}

/**
 * `NetworkDetail` without `active`/`autostart`. `bridge` is reported only for mode 'bridge' (the
 * host bridge the network forwards to); the virbrN bridge libvirt makes for isolated/nat networks
 * is an implementation detail.
 */
export type ParsedNetwork = Omit<NetworkDetail, 'active' | 'autostart'>;

/** `PoolDetail` without `active`/`autostart`, with the pool's type. Pool XML has no place for a marker: always undefined. */
export type ParsedPool = Omit<PoolDetail, 'active' | 'autostart'> & {
  /** Pool type attribute (dir, logical, ...). */
  type: string;
};

/** `VolumeDetail` without `pool`. */
export interface ParsedVolume {
  name: string;
  key: string;
  path: string;
  capacityBytes: number;
  format: string;
  backingPath?: string;
}

/** Errors of the XML layer: invalid input to a builder, or a document a parser cannot read. */
export class LibvirtXmlError extends Error {
  constructor(
    public readonly code: 'invalid-input' | 'malformed-xml' | 'unexpected-document',
    message: string,
  ) {
    super(message);
    this.name = 'LibvirtXmlError';
  }
}
