/** The VM kind's types: its normalized config, desired resource, recorded facts and step operations. */
import type { Seed } from '../../../cloudinit/index.js';
import type { CpuMode, GraphicsType, VolumeFormat } from '../../../model/definitions.js';
import type { DesiredBase } from '../../core/resource.js';

export type DiskBus = 'virtio' | 'sata' | 'scsi' | 'ide';

export interface VmConfig {
  vcpus: number;
  /** Only when declared (the effective maximum is then `vcpus`), so older spec hashes stay valid. */
  maxVcpus?: number;
  memoryKiB: number;
  /** Only when declared (default `memoryKiB`). */
  maxMemoryKiB?: number;
  description?: string;
  /** Only when something is declared beyond the defaults (BIOS, no kernel), so older spec hashes stay valid. */
  boot?: VmBoot;
  /** Only when declared: undeclared is libvirt's default (no `<cpu>`; it writes `custom` qemu64). */
  cpu?: { mode: CpuMode; model?: string };
  /** Only when declared with a type other than none. */
  graphics?: { type: GraphicsType; listen: string };
  /** Only when false (the default is true: the channel is there), so older spec hashes stay valid. */
  guestAgent?: false;
  /**
   * `<domain type>`, only when declared (older spec hashes stay valid). Undeclared: an existing
   * domain keeps the type it has; a new one gets the host's choice (`--domain-type`, default auto).
   */
  domainType?: 'kvm' | 'qemu';
  /** Only when declared. Digests only: the seed's text (user-data can hold secrets) never enters a config. */
  cloudInit?: VmCloudInit;
  /** `device` only for a cdrom (absent: a disk), so older spec hashes stay valid. */
  disks: { volume: string; path: string; format: VolumeFormat; bus: DiskBus; target: string; bootOrder?: number; device?: 'cdrom' }[];
  nics: { network: string; mac?: string; model: string }[];
  /** spec.extraDevices, canonical (one line each); only when declared and not empty, so older spec hashes stay valid. */
  extraDevices?: string[];
}
/** spec.boot normalized: kernel/initrd are host paths (a volume's file path when given as a volume). */
export interface VmBoot {
  firmware?: 'uefi';
  kernel?: string;
  kernelVolume?: string;
  initrd?: string;
  initrdVolume?: string;
  cmdline?: string;
}
/**
 * spec.cloudInit normalized: where the seed volume is, the CD-ROM it is attached as, and sha256
 * digests (`sha256:<hex>`) of the ISO and of each file in it; or, for `seedVolume`, `existing`
 * and no digests (virtform never reads that volume).
 */
export type VmCloudInit = BuiltSeedConfig | ExistingSeedConfig;
interface SeedPlace {
  pool: string;
  /** `<vm>-cidata.iso`, or the declared `seedVolume`. */
  volume: string;
  path: string;
  /** IDE target of the CD-ROM (the first after the VM's IDE disks: hda for a VM without any). */
  target: string;
}
/** A seed virtform builds from spec.cloudInit. */
export interface BuiltSeedConfig extends SeedPlace {
  existing?: undefined;
  seed: string;
  userData: string;
  metaData: string;
  networkConfig?: string;
  instanceId: string;
}
/** spec.cloudInit.seedVolume: an existing volume attached as it is (never built, rebuilt nor read). */
export interface ExistingSeedConfig extends SeedPlace {
  /** `existing volume POOL/NAME (not built by virtform)`: what plans, status and the DB show of it. */
  existing: string;
  seed?: undefined;
  userData?: undefined;
  metaData?: undefined;
  networkConfig?: undefined;
  instanceId?: undefined;
}

/** Where a seed volume is and what was uploaded into it (VM facts). */
export interface SeedFact {
  pool: string;
  volume: string;
  sha256: string;
}

export type RestartPolicy = 'Never' | 'OnChange';
export type DesiredVm = DesiredBase<'VirtualMachine', VmConfig> & {
  autostart: boolean; state: 'running' | 'stopped'; restartPolicy: RestartPolicy;
  /**
   * The cloud-init seed image built from `spec.cloudInit` (its text can hold secrets), handed to
   * the `vm.seed` step through the desired resource. Beside `config`, never in it: no spec hash,
   * plan JSON, journal entry or record holds it (none serializes a desired resource).
   */
  seedImage?: Seed;
};

/** A NIC as virtform last defined it: the MAC it resolved (declared or chosen once). */
export interface ResolvedNic {
  network: string;
  model: string;
  mac: string;
  declared: boolean;
}

/** A running domain whose persistent definition has changes it only takes at the next boot. */
export interface RestartRequired {
  /** Plan field names (`spec.vcpus`, `spec.disks[1].bus`, …). */
  fields: string[];
  /** What the running domain has, per field (as first seen). */
  running: Record<string, unknown>;
  /** What the persistent definition has now, per field. */
  defined: Record<string, unknown>;
  /** ISO time the first of these changes was applied. */
  since?: string;
  /** libvirt's id of the running domain then; a restart gives it another one. */
  domainId?: number;
  /** Why, beyond the values (a live change the guest did not take). */
  notes?: string[];
}

/** What a VM's record keeps in `details.facts` (read on every run through the state index). */
export interface VmFacts {
  nics?: ResolvedNic[];
  /** The memory balloon virtio virtform defined the domain with (absent: defined by an older virtform, `none`). */
  balloon?: string;
  /** Whether virtform defined the domain with the guest agent channel (absent: by a virtform from before the channel, without it). */
  guestAgent?: boolean;
  restartRequired?: RestartRequired;
  /** The seed volume and the digest virtform uploaded into it last. */
  seed?: SeedFact;
  /**
   * The existing seed volume (`spec.cloudInit.seedVolume`, not built by virtform) the domain was
   * last defined with; kept until virtform builds a seed (so that a run interrupted while switching
   * to content still knows it was the VM's own seedVolume, written over only with consent).
   */
  seedVolume?: { pool: string; volume: string };
  /** When virtform last started the domain (ms since the epoch) and the libvirt id it got. */
  startedAt?: { atMs: number; domainId: number };
  /** What the last live change could verify in the guest (`memory verified`, `vCPUs not verified (…)`). */
  liveCheck?: string[];
  /** The seed digest the running domain (libvirt domain id) was started with. */
  seedBooted?: { sha256?: string; domainId: number };
  /**
   * Disk targets as virtform assigned them (issue 24: assigned once, like MACs; a disk keeps its
   * target when another is removed). Absent: recorded by an older virtform, the definition's
   * targets are kept.
   */
  disks?: { path: string; target: string }[];
}

/** A disk hot-plugged by `vm.attach` / `vm.detach` (virtio only: sata and ide disks take a restart). */
export interface HotDisk { path: string; format: VolumeFormat; bus: 'virtio'; target: string }
/** A NIC hot-plugged; `mac` absent on attach: chosen by the step (not declared, never recorded yet). */
export interface HotNic { network: string; model: string; mac?: string }

export type VmOp =
  /** `markerOnly`: adopting a definition that is already virtform's: only the owner marker is written into it. */
  | { op: 'vm.define'; define: boolean; autostart?: boolean; markerOnly?: boolean }
  | { op: 'vm.live'; vcpus?: number; memoryKiB?: number; description?: string | null }
  /** Hot-plug (issue 24): devices detached from the running domain and its definition (a teardown: before their volumes go). */
  | { op: 'vm.detach'; disks: HotDisk[]; nics: (HotNic & { mac: string })[] }
  /** Hot-plug: devices attached to the running domain and its definition (after their volumes and networks exist). */
  | { op: 'vm.attach'; disks: HotDisk[]; nics: HotNic[] }
  /** `replace`: the volume is not one virtform built (a seedVolume before) and --allow-data-loss consents to writing over it. */
  | { op: 'vm.seed'; pool: string; volume: string; sha256: string; replace?: boolean }
  | { op: 'vm.unseed'; pool: string; volume: string }
  | { op: 'vm.start' }
  | { op: 'vm.stop'; graceful: boolean; restart?: boolean }
  /** `graceful`: a running domain is shut down (ACPI, up to --shutdown-timeout) before it is forced off. */
  | { op: 'vm.delete'; graceful?: boolean; seed?: { pool: string; volume: string } };
