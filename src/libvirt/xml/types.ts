/**
 * Types of the libvirt XML layer.
 *
 * The definition and detail types (`*Def`, `*Detail`) are virtform's single model of host objects
 * in `src/model/` (re-exported here), so the reconciler's `DomainDef` goes straight into
 * `buildDomainXml`, and a parsed document spreads into a `DomainDetail`:
 *
 * ```ts
 * const detail: DomainDetail = { ...parseDomainXml(xml), active, autostart };
 * ```
 *
 * Parsers return `Parsed*` types: the `*Detail` type without the fields that XML does not carry
 * (`active`/`autostart` come from list calls; a volume's pool is the pool it was looked up in).
 * Some parsed types carry a few extra read-only fields (e.g. the domain `type`, a disk's
 * `format`). The XML layer imports only `src/model/` from the rest of virtform.
 */

export type { ResourceKind } from '../../model/kinds.js';
export { RESOURCE_KINDS } from '../../model/kinds.js';
export type {
  OwnerMarker, VolumeFormat, PoolDef, VolumeDef, DhcpHost, NetworkMode, NetworkDef, DomainDiskDef, DomainNicDef,
  DomainBoot, DomainDef, DomainDetail, NetworkDetail, PoolDetail, VolumeDetail, CpuMode, DomainCpuDef, GraphicsType, DomainGraphicsDef, DomainCapabilities,
  SnapshotDef, SnapshotDetail,
} from '../../model/definitions.js';
import type { DomainBoot, NetworkDetail, PoolDetail, OwnerMarker, VolumeDetail } from '../../model/definitions.js';

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
  /** `model@type`; libvirt's x86 QEMU default `rtl8139` when absent. */
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
  maxVcpus: number;
  memoryKiB: number;
  maxMemoryKiB: number;
  balloon: string;
  description?: string;
  boot?: DomainBoot;
  cpu?: { mode: string; model?: string };
  graphics: { type: string; listen?: string; port?: number }[];
  guestAgent: boolean;
  disks: ParsedDomainDisk[];
  /** `device='cdrom'` entries: source file ('' when empty), target, bus. */
  cdroms: { path: string; target: string; bus: string; bootOrder?: number; format?: string }[];
  nics: ParsedDomainNic[];
  /** Devices virtform does not model otherwise (extra-devices.ts), canonical, in libvirt's order. */
  extraDevices: string[];
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
export type ParsedVolume = Omit<VolumeDetail, 'pool'>;

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
