/**
 * Ports: the only view the reconciler has of the outside world.
 *
 * The reconciler (observe → diff → plan → apply) depends on these interfaces and nothing else:
 * not on XDR, XML or SQL. `src/reconcile/adapters/libvirt-host.ts` implements {@link HostPort}
 * over the libvirt RPC client; `test/support/fake-host.ts` implements it in memory for unit tests.
 */

export type { ResourceKind } from '../model/kinds.js';
export type {
  OwnerMarker, VolumeFormat, PoolDef, VolumeDef, DhcpHost, NetworkMode, NetworkDef, DomainDiskDef, DomainNicDef,
  DomainDef, DomainDetail, NetworkDetail, PoolDetail, VolumeDetail, DomainCapabilities, SnapshotDef, SnapshotDetail,
} from '../model/definitions.js';
import type {
  DhcpHost, DomainCapabilities, DomainDef, DomainDetail, NetworkDef, NetworkDetail, PoolDef, PoolDetail, SnapshotDef, SnapshotDetail, VolumeDef, VolumeDetail,
} from '../model/definitions.js';
// hot-plug (issue 24; helper restart)
import type { DomainDiskDef, DomainNicDef, OwnerMarker } from '../model/definitions.js';

// ---------------------------------------------------------------------------------------------
// Observed objects: what bulk list calls return, cheaply, for every object on the host.
// ---------------------------------------------------------------------------------------------

export interface ObservedPool {
  name: string;
  uuid: string;
  active: boolean;
  autostart: boolean;
  /** false: transient (runs without a persistent definition); absent: persistent (a host that does not say). */
  persistent?: boolean;
}

export interface ObservedVolume {
  pool: string;
  name: string;
  /** Volume key: for directory pools, the file path. */
  key: string;
}

export interface ObservedNetwork {
  name: string;
  uuid: string;
  active: boolean;
  autostart: boolean;
  /** false: transient (runs without a persistent definition); absent: persistent (a host that does not say). */
  persistent?: boolean;
}

export interface ObservedDomain {
  name: string;
  uuid: string;
  /** libvirt's domain id: -1 while inactive, a new number at every start. */
  id: number;
  active: boolean;
  autostart: boolean;
  /** false: transient (runs without a persistent definition); absent: persistent (a host that does not say). */
  persistent?: boolean;
}

/**
 * Persistent definitions read back for listed objects, by name (volumes: by volume key, the file
 * path). `unreadable`: an object whose definition virtform cannot parse is left out of the result
 * and named there (same key) with the reason, so one such object does not fail the read of all;
 * without it, it fails the read. Connection and daemon errors always fail the read.
 */
export interface HostDefinitions {
  domains(list: ObservedDomain[], unreadable?: Map<string, string>, read?: DefinitionRead<DomainDetail>): Promise<Map<string, DomainDetail>>;
  networks(list: ObservedNetwork[], unreadable?: Map<string, string>): Promise<Map<string, NetworkDetail>>;
  pools(list: ObservedPool[], unreadable?: Map<string, string>): Promise<Map<string, PoolDetail>>;
  volumes(list: ObservedVolume[], unreadable?: Map<string, string>, read?: DefinitionRead<VolumeDetail>): Promise<Map<string, VolumeDetail>>;
}

/**
 * The no-op fast path of a definitions read (`src/reconcile/core/checks.ts`): `known` gives, by
 * object (name; volumes: key), the sha256 of bytes an earlier run compared without a difference.
 * An object whose raw definition hashes to it is not parsed: it is left out of the result and put
 * in `unparsed` with its raw XML and a parse for whoever still needs it. `digests` gets the
 * sha256 of every definition read. A host that cannot tell (the fake host) parses everything.
 */
export interface DefinitionRead<D> {
  known: ReadonlyMap<string, string>;
  digests: Map<string, string>;
  unparsed: Map<string, UnparsedDefinition<D>>;
}

/** A definition read but not parsed (its bytes are the ones compared before): `parse` on demand. */
export interface UnparsedDefinition<D> {
  xml: string;
  /** A running domain's live XML, read with it. */
  liveXml?: string;
  parse(): D;
}

/** One bulk snapshot of the host: a constant number of list calls, independent of inventory size. */
export interface HostSnapshot {
  pools: ObservedPool[];
  networks: ObservedNetwork[];
  domains: ObservedDomain[];
  /**
   * virtform's own scratch pools left by a process killed while using one (`isLeftoverScratchPool`):
   * not in `pools` (never observed, planned or reported as pools); removed after the next apply.
   */
  scratchPools?: ObservedPool[];
}

/** IP address family of a lease or an interface address. */
export type AddressFamily = 'ipv4' | 'ipv6';

/** One DHCP lease of a libvirt network (virNetworkGetDHCPLeases), as dnsmasq handed it out. */
export interface DhcpLease {
  /** Lowercase MAC of the client (null for an IPv6 lease libvirt could not match to a MAC). */
  mac: string | null;
  ip: string;
  prefix: number;
  family: AddressFamily;
  hostname: string | null;
  clientId: string | null;
  /** Unix seconds the lease expires at (0: never). libvirt leaves out leases that have expired. */
  expiresAt: number;
  /** The network's bridge. */
  iface: string;
}

/**
 * Where libvirt's interface-address query (virDomainInterfaceAddresses) takes the addresses from:
 * the DHCP leases of the domain's libvirt networks, the QEMU guest agent inside the guest (needs
 * a guest-agent channel and the agent running), or the host's ARP table.
 */
export type InterfaceAddressSource = 'lease' | 'agent' | 'arp';

/** One interface of a running domain with its addresses, as the query reports it. */
export interface InterfaceAddresses {
  /** Guest interface name (agent: `eth0`) or host-side device (`vnet3`). */
  name: string;
  /** Lowercase MAC, or null when the source does not say (the agent's loopback). */
  mac: string | null;
  addresses: { ip: string; prefix: number; family: AddressFamily }[];
}

/**
 * Answer of the interface-address query: the interfaces, or why this source has nothing to say for
 * this domain (no guest-agent channel, agent not connected, domain not running): not an error.
 */
export type DomainAddresses = { interfaces: InterfaceAddresses[] } | { unavailable: string };

/** A run of `hole` zero bytes in a sparse volume stream (sent and received as a hole, not as data). */
export interface VolumeHole {
  hole: number;
}

/** Errors a host raises that the reconciler must tell apart. */
export type HostErrorCode =
  | 'not-found'
  | 'already-exists'
  | 'invalid'
  | 'operation-failed'
  | 'connection'
  | 'unknown';

/** libvirt's own identification of an error, as the daemon sent it in the RPC reply (never parsed from text). */
export interface LibvirtErrorId {
  /** `virErrorNumber`, e.g. 42 = VIR_ERR_NO_DOMAIN. */
  code: number;
  /** `virErrorDomain`: the subsystem that raised it, e.g. 10 = VIR_FROM_QEMU. */
  domain: number;
}

/**
 * What a HostError is about, beyond its code, where a caller acts on it (one value per case;
 * callers test `reason`, never the message text).
 */
export type HostErrorReason =
  /** An image file's sha256 is not the one read before (a cache entry or source file changed under us). */
  | 'image-changed';

export class HostError extends Error {
  /** libvirt's code and domain, when the error came from the daemon. */
  readonly libvirt?: LibvirtErrorId;
  readonly reason?: HostErrorReason;

  constructor(
    public readonly code: HostErrorCode,
    message: string,
    /** libvirt's numeric error code (or code and domain), when the error came from libvirt. */
    libvirt?: number | LibvirtErrorId,
    reason?: HostErrorReason,
  ) {
    super(message);
    this.name = 'HostError';
    if (libvirt !== undefined) this.libvirt = typeof libvirt === 'number' ? { code: libvirt, domain: 0 } : libvirt;
    if (reason !== undefined) this.reason = reason;
  }

  /** libvirt's numeric error code, when the error came from libvirt. */
  get libvirtCode(): number | undefined {
    return this.libvirt?.code;
  }
}

/** The typed part of a failure: what callers decide on (retry, stall), carried beside the text. */
export interface FailureCause {
  /** The HostError code; undefined: not a HostError (a bug, a store error). */
  code?: HostErrorCode;
  libvirt?: LibvirtErrorId;
  reason?: HostErrorReason;
}

/** The typed cause of an error (HostError fields), for callers that keep only its text otherwise. */
export function failureCause(e: unknown): FailureCause {
  if (!(e instanceof HostError)) return {};
  return { code: e.code, ...(e.libvirt ? { libvirt: { ...e.libvirt } } : {}), ...(e.reason ? { reason: e.reason } : {}) };
}

/**
 * Asked before every mutating call to a host: why this process may not change the host now (its
 * writer lease is lost, src/state/lease.ts), or undefined to go ahead.
 */
export type MutationGuard = () => string | undefined;

/**
 * A mutating call refused by the host's {@link MutationGuard} before anything was sent: this
 * process lost its writer lease. Code `invalid` (never retried); apply stops starting steps.
 */
export class MutationRefusedError extends HostError {
  constructor(message: string) {
    super('invalid', message);
    this.name = 'MutationRefusedError';
  }
}

/** A domain lifecycle event (started, stopped, crashed, defined, undefined, …). */
export interface DomainLifecycleEvent {
  name: string;
  uuid: string;
  /** libvirt's event name: defined, undefined, started, suspended, resumed, stopped, shutdown, pmsuspended, crashed. */
  event: string;
  detail: number;
}

/** One host call, for metrics. */
export interface HostCallInfo {
  procedure: string;
  ms: number;
  mutating: boolean;
  error?: Error;
}

/**
 * Every operation is idempotent at the port level where libvirt allows it cheaply:
 * `start*` on an active object and `stop*` on an inactive one succeed without change;
 * `delete*`/`undefine*` of a missing object succeed. `define*` overwrites an existing definition
 * (libvirt's define semantics). `createVolume` fails with `already-exists` if the volume exists.
 */
/** Who a connection talks to (state DB records are tied to it): see src/state/hosts.ts. */
export interface HostIdentity {
  uri: string;
  hostname: string;
  /** `<host><uuid>` of the capabilities XML; null when the driver reports none. */
  uuid: string | null;
  /** Driver part of the URI scheme: qemu, test, ... */
  driver: string;
}

/** What {@link HostPort.nodeInfo} reports. */
export interface NodeInfo {
  /** Bytes of memory. */
  memory: number;
  cpus: number;
  /** Capacity in bytes of each active storage pool, by pool name. */
  disk: Record<string, number>;
}

/** virStoragePoolGetInfo, in bytes. */
export interface PoolInfo {
  capacity: number;
  allocation: number;
  available: number;
}

/** A device hot-plugged into (or out of) a domain: a file-backed disk, or a NIC on a network with its MAC (issue 24). */
export type HotplugDevice = { disk: DomainDiskDef } | { nic: DomainNicDef & { mac: string } };

export interface HostPort {
  /** Domain type to use for VMs: 'kvm' when the host offers it, else 'qemu' (TCG). */
  domainType(): Promise<'kvm' | 'qemu'>;
  /**
   * What the hypervisor offers for domains of {@link domainType} (CPU modes and models, graphics
   * types): libvirt's domain capabilities. null when the driver has none (libvirt's test driver).
   */
  domainCapabilities(): Promise<DomainCapabilities | null>;
  /** URI, hostname, libvirt host UUID and driver of the host behind this connection. */
  hostIdentity(): Promise<HostIdentity>;
  /**
   * What the host offers guests (the fleet's capacity when a Host manifest sets none): its memory in
   * bytes and CPUs (virNodeGetInfo), and the capacity in bytes of each active storage pool.
   */
  nodeInfo(): Promise<NodeInfo>;

  snapshot(): Promise<HostSnapshot>;
  listVolumes(pool: string): Promise<ObservedVolume[]>;

  /**
   * The persistent (inactive) definitions of objects already listed: one call per object, no
   * lookups, pipelined. Objects gone since they were listed are left out of the result.
   */
  readonly definitions: HostDefinitions;

  getPool(name: string): Promise<PoolDetail | null>;
  getNetwork(name: string): Promise<NetworkDetail | null>;
  /** The domain's persistent definition (inactive XML), with its state. */
  getDomain(name: string): Promise<DomainDetail | null>;
  /** The definition a running domain runs with (live XML) and its libvirt domain id; null when not running. */
  getRunningDomain(name: string): Promise<(DomainDetail & { id: number }) | null>;
  getVolume(pool: string, name: string): Promise<VolumeDetail | null>;

  /**
   * The DHCP leases of listed networks (virNetworkGetDHCPLeases), by network name: one call per
   * active network, no lookups, pipelined; an inactive network has none (no call). A network gone
   * since it was listed is left out. A driver without DHCP leases fails (`invalid`).
   */
  networkLeases(list: ObservedNetwork[]): Promise<Map<string, DhcpLease[]>>;
  /**
   * Addresses of a listed domain's interfaces from one source (virDomainInterfaceAddresses), one
   * call, no lookup. `{unavailable}` when that source cannot answer for this domain: the domain is
   * not running, it has no guest-agent channel, or the agent is not connected or does not answer.
   * Read-only for every source (libvirt's ACL counts the agent query as a domain write).
   */
  domainInterfaceAddresses(domain: ObservedDomain, source: InterfaceAddressSource): Promise<DomainAddresses>;

  definePool(def: PoolDef): Promise<void>;
  /**
   * Make the directory of a defined, inactive pool when it does not exist (with the parents it
   * needs) and return the directories that were created (the pool's first, then its parents
   * upwards); [] when it existed (the pool is then started) or the pool is active.
   */
  buildPool(name: string): Promise<string[]>;
  /** Build (mkdir) and start a defined pool; idempotent. */
  startPool(name: string): Promise<void>;
  setPoolAutostart(name: string, autostart: boolean): Promise<void>;
  /** Stop and undefine a pool; the directory is removed only when `deleteDir` and empty. */
  deletePool(name: string, opts?: { deleteDir?: boolean }): Promise<void>;
  /** Remove directories (deepest first) that are empty; the others are kept, with why. */
  removeDirs(paths: string[]): Promise<{ removed: string[]; kept: { path: string; why: string }[] }>;
  /**
   * Stop and forget scratch pools left behind (`HostSnapshot.scratchPools`), each only when its
   * name and state, read again, still make it one (`isLeftoverScratchPool`); never removes a
   * directory. Returns the names removed.
   */
  removeScratchPools?(pools: readonly ObservedPool[]): Promise<string[]>;

  createVolume(def: VolumeDef): Promise<VolumeDetail>;
  resizeVolume(pool: string, name: string, capacityBytes: number): Promise<void>;
  /**
   * Write `data` into an existing volume from offset 0 through libvirt's storage-volume upload
   * stream (works on a remote host too). Runs of at least 64 KiB of zeros are sent as holes
   * (sparse stream) unless `sparse: false`. Resolves once the daemon confirmed the data is on the
   * volume; on failure the stream is aborted and the error thrown (the caller deletes the volume).
   * `onProgress` is called with the bytes handed to the stream so far (data and holes).
   */
  uploadVolume(
    pool: string,
    name: string,
    data: AsyncIterable<Uint8Array | VolumeHole>,
    opts?: { sparse?: boolean; onProgress?: (bytes: number) => void },
  ): Promise<void>;
  /**
   * Read a volume from offset 0 through libvirt's storage-volume download stream, sparse: the
   * data, and holes (runs of zeros the file does not store) as {@link VolumeHole} objects (libvirt's
   * VIR_NET_STREAM_HOLE messages). Works on a remote host too. Optional: a host without it cannot
   * be the source of a move.
   */
  downloadVolume?(pool: string, name: string): Promise<AsyncIterable<Uint8Array | VolumeHole>>;
  /** Number of snapshots of a domain (virDomainSnapshotNum); 0 when it does not exist. Optional: moves check it. */
  domainSnapshotCount?(name: string): Promise<number>;
  deleteVolume(pool: string, name: string): Promise<void>;

  defineNetwork(def: NetworkDef): Promise<void>;
  startNetwork(name: string): Promise<void>;
  stopNetwork(name: string): Promise<void>;
  setNetworkAutostart(name: string, autostart: boolean): Promise<void>;
  /** Add or remove one DHCP static host entry on a network, live and in the persistent config. */
  updateNetworkDhcpHost(name: string, op: 'add' | 'delete', host: DhcpHost): Promise<void>;
  undefineNetwork(name: string): Promise<void>;

  defineDomain(def: DomainDef): Promise<{ uuid: string }>;
  /**
   * Write virtform's owner marker into a domain's metadata (virDomainSetMetadata, the persistent
   * definition and, when running, the live one) and change nothing else: adopting a domain whose
   * definition is already what virtform would define (issue 24). Optional: a host without it is
   * adopted by defining it whole.
   */
  setDomainMarker?(name: string, marker: OwnerMarker): Promise<void>;
  /**
   * Write virtform's owner marker into a network's persistent definition, everything else as it
   * is (its definition written again with the marker: libvirt 9.0 has no virNetworkSetMetadata).
   * Optional: a host without it adopts a network by defining it from the manifest.
   */
  setNetworkMarker?(name: string, marker: OwnerMarker): Promise<void>;
  startDomain(name: string): Promise<void>;
  /** Graceful shutdown with a timeout, then forced off. Blank-disk test VMs go straight to destroy. */
  stopDomain(name: string, opts?: { graceful?: boolean; timeoutMs?: number }): Promise<void>;
  setDomainAutostart(name: string, autostart: boolean): Promise<void>;
  undefineDomain(name: string): Promise<void>;
  /** vCPUs of a running domain, live and in its persistent definition (within its maximum). */
  setDomainVcpus(name: string, vcpus: number): Promise<void>;
  /** Memory (balloon target) of a running domain, live and in its persistent definition (within its maximum). */
  setDomainMemory(name: string, memoryKiB: number): Promise<void>;
  /**
   * The memory the running guest has now by its balloon (virDomainMemoryStats `actual`, KiB); null
   * when the domain is not running or QEMU reports no balloon.
   */
  domainBalloonKiB(name: string): Promise<number | null>;
  /**
   * vCPUs the guest has online, as its QEMU guest agent says (virDomainGetGuestVcpus); null when no
   * agent answers (no channel, not running in the guest, domain not running).
   */
  guestOnlineVcpus(name: string): Promise<number | null>;
  /** Description of a domain, live (when running) and in its persistent definition. */
  setDomainDescription(name: string, description: string | undefined): Promise<void>;
  /** Grow the disk of a running domain whose source is `path` (virDomainBlockResize, in bytes). */
  resizeDomainDisk(name: string, path: string, capacityBytes: number): Promise<void>;

  // --- hot-plug (issue 24; helper restart) ---------------------------------------------------
  /**
   * Attach one disk or NIC (virDomainAttachDeviceFlags): `live` to the running domain, `config` to
   * its persistent definition (either or both; nothing when neither).
   */
  attachDomainDevice(name: string, device: HotplugDevice, where: { live: boolean; config: boolean }): Promise<void>;
  /**
   * Detach one disk or NIC (virDomainDetachDeviceFlags): from the persistent definition at once;
   * from the running domain it is a request the guest completes (ACPI unplug): this returns when
   * QEMU took the request, not when the device is gone (read the live definition for that).
   */
  detachDomainDevice(name: string, device: HotplugDevice, where: { live: boolean; config: boolean }): Promise<void>;

  /**
   * Exact drift (optional: a host without it has no baselines). The inactive XML of a domain,
   * network or pool as libvirt stores it now (null when the object is gone): read after every
   * write virtform makes, and recorded as the object's baseline.
   */
  inactiveXml?(kind: 'domain' | 'network' | 'pool', name: string): Promise<string | null>;
  /** libvirt's and the hypervisor's versions (`libvirt 9.0.0, hypervisor 7.2.0`): a baseline recorded under another is taken again. */
  versionTag?(): Promise<string>;

  /**
   * Capacity, allocation and free space of listed active pools (virStoragePoolGetInfo), by name,
   * in bytes: one call per active pool, no lookups; inactive pools and pools gone since the
   * listing are left out.
   */
  poolInfo(list: ObservedPool[]): Promise<Map<string, PoolInfo>>;
  /**
   * What every defined domain claims, by name: its memory maximum (`<memory>`, bytes) and its vCPUs
   * (current), running or not. One bulk call (virConnectGetAllDomainStats), whatever the number of
   * domains.
   */
  domainAllocations(): Promise<Map<string, { memory: number; vcpus: number }>>;

  /** Number of mutating calls made so far (for "a converged apply makes zero mutating calls"). */
  mutationCount(): number;

  /** Subscribe to domain lifecycle events; resolves once registered; returns an unsubscribe function. */
  subscribeDomainEvents(cb: (e: DomainLifecycleEvent) => void): Promise<() => Promise<void>>;
  /** `cb` runs once if the connection to the host is lost (daemon restart, socket closed). */
  onDisconnect(cb: (err: Error) => void): void;
  /**
   * Ask `guard` before every mutating call (each mutating libvirt procedure, also the second call
   * of an operation that makes two); a refusal throws {@link MutationRefusedError} without sending
   * anything. Optional: a host without it cannot be guarded (apply still checks between steps).
   */
  setMutationGuard?(guard: MutationGuard | undefined): void;
  /** Observe every call made to the host (count, latency, errors). */
  setCallObserver(cb: ((info: HostCallInfo) => void) | undefined): void;

  // --- snapshots (kind Snapshot, issue 24: helper snaps) --------------------------------------
  /**
   * Every snapshot of each listed domain, by domain name (virDomainListAllSnapshots, then one XML
   * read per snapshot, pipelined); a domain gone since it was listed is left out.
   */
  listDomainSnapshots(list: ObservedDomain[]): Promise<Map<string, SnapshotDetail[]>>;
  /** One snapshot of a domain; null when the domain or the snapshot does not exist. */
  getDomainSnapshot(domain: string, name: string): Promise<SnapshotDetail | null>;
  /** Take an internal snapshot (virDomainSnapshotCreateXML); `already-exists` when one of that name exists. */
  createDomainSnapshot(def: SnapshotDef): Promise<SnapshotDetail>;
  /** Delete a snapshot and its data (virDomainSnapshotDelete); a missing domain or snapshot is done already. */
  deleteDomainSnapshot(domain: string, name: string): Promise<void>;
  /**
   * Revert a domain to a snapshot (virDomainRevertToSnapshot): its disks (and memory, when taken),
   * its definition, and its state then (running or shut off).
   */
  revertDomainSnapshot(domain: string, name: string): Promise<void>;
  // --- end snapshots ---------------------------------------------------------------------------

  close(): Promise<void>;
}
