/**
 * LibvirtClient: libvirt's remote protocol (REMOTE_PROGRAM 0x20008086) spoken directly over the
 * daemon's socket, in the manner of digitalocean/go-libvirt. No native binding.
 *
 * ```ts
 * const c = await LibvirtClient.connect('qemu:///system');
 * const doms = await c.connectListAllDomains(VIR_CONNECT_LIST_DOMAINS_ACTIVE);
 * const d = await c.domainLookupByName('vm1');
 * await c.domainCreate(d);
 * await c.close();
 * ```
 *
 * Methods are the camelCase names of libvirt's procedures; objects (domains, networks, pools,
 * volumes) are the plain references the wire protocol carries, with UUIDs as 36-char strings.
 * Every call is counted per procedure (`stats()`), and `onCall` sees each one with its duration,
 * error and whether it mutates host state.
 */
import { EventEmitter } from 'node:events';
import { ConnectionError, LibvirtError } from './errors.js';
import { DomainEventSubscription, type DomainLifecycleEvent, readLifecycleMsg } from './events.js';
import {
  type Domain,
  domainStateName,
  type Network,
  PROCEDURES,
  type ProcedureName,
  readDomain,
  readNetwork,
  readNonnullString,
  readStoragePool,
  readStorageVol,
  REMOTE_AUTH_NONE,
  REMOTE_AUTH_POLKIT,
  REMOTE_AUTH_SASL,
  REMOTE_AUTH_TYPE_LIST_MAX,
  REMOTE_DOMAIN_LIST_MAX,
  REMOTE_NETWORK_LIST_MAX,
  REMOTE_PROC_DOMAIN_EVENT_CALLBACK_LIFECYCLE,
  REMOTE_PROGRAM,
  REMOTE_STORAGE_POOL_LIST_MAX,
  REMOTE_STORAGE_VOL_LIST_MAX,
  type StoragePool,
  type StorageVol,
  VIR_CONNECT_RO,
  VIR_DOMAIN_EVENT_ID_LIFECYCLE,
  VIR_DRV_FEATURE_NETWORK_UPDATE_HAS_CORRECT_ORDER,
  VIR_DRV_FEATURE_PROGRAM_KEEPALIVE,
  writeDomain,
  writeNetwork,
  writeNonnullString,
  writeOptString,
  writeStoragePool,
  writeStorageVol,
  writeUuid,
} from './protocol.js';
import { type IncomingMessage, Transport } from './transport.js';
import { parseUri, type ParsedUri, socketPathFor } from './uri.js';
import { XdrReader, type XdrWriter } from './xdr.js';

export interface ConnectOptions {
  /** Timeout of each call in ms (0 = none). Also bounds the connect handshake. Default 120000. */
  timeoutMs?: number;
  /** Timeout of opening the socket, ms. Default 10000. */
  connectTimeoutMs?: number;
  /** Use the read-only socket and open the connection read-only (VIR_CONNECT_RO). */
  readOnly?: boolean;
  /**
   * Client-side keepalive: ping the daemon after this many ms without traffic, and drop the
   * connection after `keepaliveCount` such intervals. 0 disables it (the daemon's own PINGs are
   * still answered). Default 5000, as libvirt's clients.
   */
  keepaliveIntervalMs?: number;
  /** Default 5. */
  keepaliveCount?: number;
  /** Override the unix socket path (same as `?socket=` in the URI). */
  socketPath?: string;
}

/** What `onCall` is told about each completed call. */
export interface CallInfo {
  procedure: string;
  ms: number;
  error?: Error;
  mutating: boolean;
}

export interface ProcedureStats {
  count: number;
  errors: number;
  totalMs: number;
}

export interface DomainState {
  /** virDomainState: 1 running, 3 paused, 5 shut off... */
  state: number;
  /** State name as `virsh domstate` prints it ('running', 'shut off'...). */
  stateName: string;
  reason: number;
}

export interface DomainInfo {
  state: number;
  stateName: string;
  /** KiB. */
  maxMem: number;
  /** KiB. */
  memory: number;
  nrVirtCpu: number;
  /** CPU time used, ns. */
  cpuTime: bigint;
}

export interface StoragePoolInfo {
  /** virStoragePoolState: 0 inactive, 1 building, 2 running, 3 degraded, 4 inaccessible. */
  state: number;
  /** Bytes. */
  capacity: number;
  allocation: number;
  available: number;
}

export interface StorageVolInfo {
  /** virStorageVolType: 0 file, 1 block, 2 dir, 3 network, 4 netdir, 5 ploop. */
  type: number;
  /** Bytes. */
  capacity: number;
  allocation: number;
}

export interface LibvirtClientEvents {
  /** The connection ended: `err.reason` is 'closed' after `close()`, else why it was lost. */
  disconnect: [ConnectionError];
  /** A lifecycle event for any subscription on this connection. */
  domainLifecycle: [DomainLifecycleEvent];
}

type Enc = ((w: XdrWriter) => void) | undefined;

/** One server-side event callback, shared by the local subscriptions with the same filter. */
interface EventRegistration {
  key: string;
  callbackId: Promise<number>;
  subs: Set<DomainEventSubscription>;
}

const decodeVoid = (): void => undefined;
const readInt = (r: XdrReader): number => r.int();
const readBoolInt = (r: XdrReader): boolean => r.int() !== 0;

export class LibvirtClient extends EventEmitter<LibvirtClientEvents> {
  /** The URI given to `connect`. */
  readonly uri: string;
  /** The URI sent to the daemon in connect-open (transport and client-side parameters removed). */
  readonly remoteUri: string;
  readonly readOnly: boolean;
  /** Resolves when the connection ends, with the reason. Never rejects. */
  readonly closed: Promise<ConnectionError>;
  /** Called after every call completes (success or error). For metrics. */
  onCall: ((info: CallInfo) => void) | undefined;

  private readonly transport: Transport;
  private readonly callTimeoutMs: number;
  private readonly perProc = new Map<string, ProcedureStats>();
  private calls = 0;
  private mutatingCalls = 0;
  private readonly eventRegs = new Map<string, EventRegistration>();
  private networkUpdateCorrectOrder: boolean | undefined;
  private closing: Promise<void> | undefined;

  private constructor(transport: Transport, parsed: ParsedUri, opts: ConnectOptions) {
    super();
    this.transport = transport;
    this.uri = parsed.uri;
    this.remoteUri = parsed.remoteName;
    this.readOnly = !!opts.readOnly;
    this.callTimeoutMs = opts.timeoutMs ?? 120_000;
    this.closed = transport.closed;
    transport.onMessage = (msg) => this.onMessage(msg);
    transport.onClose = (err) => {
      for (const reg of this.eventRegs.values()) {
        for (const sub of reg.subs) sub.end(err.reason === 'closed' ? undefined : err);
      }
      this.eventRegs.clear();
      this.emit('disconnect', err);
    };
  }

  /**
   * Connects to a libvirt daemon: opens the socket, authenticates (auth-list, then none or
   * polkit), enables keepalive when the daemon supports it, and opens `uri` on the daemon.
   */
  static async connect(uri = 'qemu:///system', opts: ConnectOptions = {}): Promise<LibvirtClient> {
    const parsed = parseUri(uri);
    const callTimeoutMs = opts.timeoutMs ?? 120_000;
    const target =
      parsed.transport === 'tcp'
        ? { host: parsed.host!, port: parsed.port! }
        : { path: opts.socketPath ?? socketPathFor(parsed, { readOnly: !!opts.readOnly }) };
    const transport = await Transport.connect(target, {
      connectTimeoutMs: opts.connectTimeoutMs ?? 10_000,
      callTimeoutMs,
    });
    const client = new LibvirtClient(transport, parsed, opts);
    try {
      await client.authenticate();
      await client.rpc(
        'connectOpen',
        (w) => {
          writeOptString(w, parsed.remoteName);
          w.uint(opts.readOnly ? VIR_CONNECT_RO : 0);
        },
        decodeVoid,
      );
      const interval = opts.keepaliveIntervalMs ?? 5000;
      if (interval > 0) {
        // Asking for this feature also turns the daemon's own keepalive on for this client.
        const ka = await client.connectSupportsFeature(VIR_DRV_FEATURE_PROGRAM_KEEPALIVE).catch(() => false);
        if (ka) transport.startKeepalive(interval, opts.keepaliveCount ?? 5);
      }
    } catch (err) {
      transport.close();
      if (err instanceof LibvirtError) throw err;
      if (err instanceof ConnectionError && err.reason !== 'connect') {
        throw new ConnectionError('connect', `cannot open ${uri}: ${err.message}`, { cause: err });
      }
      throw err;
    }
    return client;
  }

  private async authenticate(): Promise<void> {
    const types = await this.rpc('authList', undefined, (r) => r.array((x) => x.int(), REMOTE_AUTH_TYPE_LIST_MAX));
    // As libvirt's remote driver: no list, or NONE offered → nothing to do; else use the first.
    if (types.length === 0 || types.includes(REMOTE_AUTH_NONE)) return;
    const first = types[0];
    if (first === REMOTE_AUTH_POLKIT || types.includes(REMOTE_AUTH_POLKIT)) {
      const complete = await this.rpc('authPolkit', undefined, readInt);
      if (complete === 0) throw new ConnectionError('connect', 'polkit authentication did not complete');
      return;
    }
    if (first === REMOTE_AUTH_SASL) {
      throw new ConnectionError('connect', 'the daemon requires SASL authentication, which this client does not support');
    }
    throw new ConnectionError('connect', `unsupported authentication types offered: ${types.join(', ')}`);
  }

  // -------------------------------------------------------------------------------------------
  // Connection state, stats
  // -------------------------------------------------------------------------------------------

  get isConnected(): boolean {
    return this.transport.isOpen;
  }

  /** Total calls made on this connection (including the handshake). */
  get callCount(): number {
    return this.calls;
  }

  /** Calls that change host state (define, undefine, create, destroy, set-autostart...). */
  get mutatingCallCount(): number {
    return this.mutatingCalls;
  }

  /** Calls awaiting their reply. */
  get pendingCalls(): number {
    return this.transport.pendingCount;
  }

  /** Per-procedure counts, errors and total time, keyed by procedure name. */
  stats(): Record<string, ProcedureStats> {
    const out: Record<string, ProcedureStats> = {};
    for (const [k, v] of this.perProc) out[k] = { ...v };
    return out;
  }

  resetStats(): void {
    this.perProc.clear();
    this.calls = 0;
    this.mutatingCalls = 0;
  }

  /** Whether a procedure changes host state. */
  static isMutating(procedure: string): boolean {
    return (PROCEDURES as Record<string, { mutating: boolean }>)[procedure]?.mutating ?? false;
  }

  /** Sends connect-close and closes the socket. Pending calls are rejected. Idempotent. */
  close(): Promise<void> {
    if (this.closing) return this.closing;
    this.closing = (async () => {
      if (this.transport.isOpen) {
        await this.rpc('connectClose', undefined, decodeVoid, { timeoutMs: 2000 }).catch(() => undefined);
      }
      this.transport.close();
    })();
    return this.closing;
  }

  // -------------------------------------------------------------------------------------------
  // Generic call
  // -------------------------------------------------------------------------------------------

  /**
   * Calls a procedure by name. Exposed for procedures this class has no method for:
   * `encode` writes the `_args` struct, `decode` reads the `_ret` struct.
   */
  async rpc<T>(
    name: ProcedureName,
    encode: Enc,
    decode: (r: XdrReader) => T,
    opts: { timeoutMs?: number } = {},
  ): Promise<T> {
    const info = PROCEDURES[name];
    const start = performance.now();
    let error: Error | undefined;
    try {
      const body = await this.transport.call(info.proc, encode, {
        name,
        timeoutMs: opts.timeoutMs ?? this.callTimeoutMs,
      });
      const r = new XdrReader(body);
      const out = decode(r);
      r.done();
      return out;
    } catch (err) {
      error = err as Error;
      if (err instanceof LibvirtError || err instanceof ConnectionError) err.procedure ??= name;
      throw err;
    } finally {
      const ms = performance.now() - start;
      this.calls++;
      if (info.mutating) this.mutatingCalls++;
      let s = this.perProc.get(name);
      if (!s) this.perProc.set(name, (s = { count: 0, errors: 0, totalMs: 0 }));
      s.count++;
      s.totalMs += ms;
      if (error) s.errors++;
      if (this.onCall) {
        const ci: CallInfo = { procedure: name, ms, mutating: info.mutating };
        if (error) ci.error = error;
        try {
          this.onCall(ci);
        } catch {
          /* a metrics hook must not break calls */
        }
      }
    }
  }

  // -------------------------------------------------------------------------------------------
  // Connection-level
  // -------------------------------------------------------------------------------------------

  /** Hypervisor version as libvirt encodes it: major * 1000000 + minor * 1000 + release. */
  connectGetVersion(): Promise<number> {
    return this.rpc('connectGetVersion', undefined, (r) => r.uhyperNumber());
  }

  /** libvirt (daemon) version: major * 1000000 + minor * 1000 + release. */
  connectGetLibVersion(): Promise<number> {
    return this.rpc('connectGetLibVersion', undefined, (r) => r.uhyperNumber());
  }

  connectGetHostname(): Promise<string> {
    return this.rpc('connectGetHostname', undefined, readNonnullString);
  }

  connectGetCapabilities(): Promise<string> {
    return this.rpc('connectGetCapabilities', undefined, readNonnullString);
  }

  connectGetUri(): Promise<string> {
    return this.rpc('connectGetUri', undefined, readNonnullString);
  }

  /** Driver name, e.g. 'QEMU', 'TEST'. */
  connectGetType(): Promise<string> {
    return this.rpc('connectGetType', undefined, readNonnullString);
  }

  connectSupportsFeature(feature: number): Promise<boolean> {
    return this.rpc('connectSupportsFeature', (w) => w.int(feature), readBoolInt);
  }

  /** All domains matching `flags` (VIR_CONNECT_LIST_DOMAINS_*; 0 = all). `id` is -1 when inactive. */
  connectListAllDomains(flags = 0): Promise<Domain[]> {
    return this.rpc(
      'connectListAllDomains',
      (w) => w.int(1).uint(flags),
      (r) => {
        const list = r.array(readDomain, REMOTE_DOMAIN_LIST_MAX);
        r.uint();
        return list;
      },
    );
  }

  connectListAllNetworks(flags = 0): Promise<Network[]> {
    return this.rpc(
      'connectListAllNetworks',
      (w) => w.int(1).uint(flags),
      (r) => {
        const list = r.array(readNetwork, REMOTE_NETWORK_LIST_MAX);
        r.uint();
        return list;
      },
    );
  }

  connectListAllStoragePools(flags = 0): Promise<StoragePool[]> {
    return this.rpc(
      'connectListAllStoragePools',
      (w) => w.int(1).uint(flags),
      (r) => {
        const list = r.array(readStoragePool, REMOTE_STORAGE_POOL_LIST_MAX);
        r.uint();
        return list;
      },
    );
  }

  // -------------------------------------------------------------------------------------------
  // Domains
  // -------------------------------------------------------------------------------------------

  domainLookupByName(name: string): Promise<Domain> {
    return this.rpc('domainLookupByName', (w) => writeNonnullString(w, name), readDomain);
  }

  domainLookupByUuid(uuid: string): Promise<Domain> {
    return this.rpc('domainLookupByUuid', (w) => writeUuid(w, uuid), readDomain);
  }

  domainLookupById(id: number): Promise<Domain> {
    return this.rpc('domainLookupById', (w) => w.int(id), readDomain);
  }

  domainDefineXml(xml: string): Promise<Domain> {
    return this.rpc('domainDefineXml', (w) => writeNonnullString(w, xml), readDomain);
  }

  /** `flags`: VIR_DOMAIN_DEFINE_VALIDATE. */
  domainDefineXmlFlags(xml: string, flags = 0): Promise<Domain> {
    return this.rpc(
      'domainDefineXmlFlags',
      (w) => {
        writeNonnullString(w, xml);
        w.uint(flags);
      },
      readDomain,
    );
  }

  domainUndefine(dom: Domain): Promise<void> {
    return this.rpc('domainUndefine', (w) => writeDomain(w, dom), decodeVoid);
  }

  /** `flags`: VIR_DOMAIN_UNDEFINE_* (e.g. NVRAM, MANAGED_SAVE, SNAPSHOTS_METADATA). */
  domainUndefineFlags(dom: Domain, flags = 0): Promise<void> {
    return this.rpc(
      'domainUndefineFlags',
      (w) => {
        writeDomain(w, dom);
        w.uint(flags);
      },
      decodeVoid,
    );
  }

  /** Starts a defined domain. */
  domainCreate(dom: Domain): Promise<void> {
    return this.rpc('domainCreate', (w) => writeDomain(w, dom), decodeVoid);
  }

  /** Starts a defined domain; returns it with its new id. `flags`: VIR_DOMAIN_START_*. */
  domainCreateWithFlags(dom: Domain, flags = 0): Promise<Domain> {
    return this.rpc(
      'domainCreateWithFlags',
      (w) => {
        writeDomain(w, dom);
        w.uint(flags);
      },
      readDomain,
    );
  }

  /** Asks the guest to shut down (ACPI); returns before it has. */
  domainShutdown(dom: Domain): Promise<void> {
    return this.rpc('domainShutdown', (w) => writeDomain(w, dom), decodeVoid);
  }

  domainShutdownFlags(dom: Domain, flags = 0): Promise<void> {
    return this.rpc(
      'domainShutdownFlags',
      (w) => {
        writeDomain(w, dom);
        w.uint(flags);
      },
      decodeVoid,
    );
  }

  /** Forces the domain off. */
  domainDestroy(dom: Domain): Promise<void> {
    return this.rpc('domainDestroy', (w) => writeDomain(w, dom), decodeVoid);
  }

  domainDestroyFlags(dom: Domain, flags = 0): Promise<void> {
    return this.rpc(
      'domainDestroyFlags',
      (w) => {
        writeDomain(w, dom);
        w.uint(flags);
      },
      decodeVoid,
    );
  }

  domainGetState(dom: Domain, flags = 0): Promise<DomainState> {
    return this.rpc(
      'domainGetState',
      (w) => {
        writeDomain(w, dom);
        w.uint(flags);
      },
      (r) => {
        const state = r.int();
        const reason = r.int();
        return { state, stateName: domainStateName(state), reason };
      },
    );
  }

  domainGetInfo(dom: Domain): Promise<DomainInfo> {
    return this.rpc(
      'domainGetInfo',
      (w) => writeDomain(w, dom),
      (r) => {
        const state = r.uint(); // unsigned char, one XDR unit
        return {
          state,
          stateName: domainStateName(state),
          maxMem: r.uhyperNumber(),
          memory: r.uhyperNumber(),
          nrVirtCpu: r.uint(), // unsigned short, one XDR unit
          cpuTime: r.uhyper(),
        };
      },
    );
  }

  /** `flags`: VIR_DOMAIN_XML_* (SECURE, INACTIVE, UPDATE_CPU, MIGRATABLE). */
  domainGetXmlDesc(dom: Domain, flags = 0): Promise<string> {
    return this.rpc(
      'domainGetXmlDesc',
      (w) => {
        writeDomain(w, dom);
        w.uint(flags);
      },
      readNonnullString,
    );
  }

  domainSetAutostart(dom: Domain, autostart: boolean): Promise<void> {
    return this.rpc(
      'domainSetAutostart',
      (w) => {
        writeDomain(w, dom);
        w.int(autostart ? 1 : 0);
      },
      decodeVoid,
    );
  }

  domainGetAutostart(dom: Domain): Promise<boolean> {
    return this.rpc('domainGetAutostart', (w) => writeDomain(w, dom), readBoolInt);
  }

  domainIsActive(dom: Domain): Promise<boolean> {
    return this.rpc('domainIsActive', (w) => writeDomain(w, dom), readBoolInt);
  }

  domainIsPersistent(dom: Domain): Promise<boolean> {
    return this.rpc('domainIsPersistent', (w) => writeDomain(w, dom), readBoolInt);
  }

  // -------------------------------------------------------------------------------------------
  // Networks
  // -------------------------------------------------------------------------------------------

  networkLookupByName(name: string): Promise<Network> {
    return this.rpc('networkLookupByName', (w) => writeNonnullString(w, name), readNetwork);
  }

  networkLookupByUuid(uuid: string): Promise<Network> {
    return this.rpc('networkLookupByUuid', (w) => writeUuid(w, uuid), readNetwork);
  }

  networkDefineXml(xml: string): Promise<Network> {
    return this.rpc('networkDefineXml', (w) => writeNonnullString(w, xml), readNetwork);
  }

  networkUndefine(net: Network): Promise<void> {
    return this.rpc('networkUndefine', (w) => writeNetwork(w, net), decodeVoid);
  }

  /** Starts a defined network. */
  networkCreate(net: Network): Promise<void> {
    return this.rpc('networkCreate', (w) => writeNetwork(w, net), decodeVoid);
  }

  networkDestroy(net: Network): Promise<void> {
    return this.rpc('networkDestroy', (w) => writeNetwork(w, net), decodeVoid);
  }

  /** `flags`: VIR_NETWORK_XML_INACTIVE. */
  networkGetXmlDesc(net: Network, flags = 0): Promise<string> {
    return this.rpc(
      'networkGetXmlDesc',
      (w) => {
        writeNetwork(w, net);
        w.uint(flags);
      },
      readNonnullString,
    );
  }

  networkSetAutostart(net: Network, autostart: boolean): Promise<void> {
    return this.rpc(
      'networkSetAutostart',
      (w) => {
        writeNetwork(w, net);
        w.int(autostart ? 1 : 0);
      },
      decodeVoid,
    );
  }

  networkGetAutostart(net: Network): Promise<boolean> {
    return this.rpc('networkGetAutostart', (w) => writeNetwork(w, net), readBoolInt);
  }

  networkIsActive(net: Network): Promise<boolean> {
    return this.rpc('networkIsActive', (w) => writeNetwork(w, net), readBoolInt);
  }

  networkIsPersistent(net: Network): Promise<boolean> {
    return this.rpc('networkIsPersistent', (w) => writeNetwork(w, net), readBoolInt);
  }

  /**
   * virNetworkUpdate. `command`: VIR_NETWORK_UPDATE_COMMAND_*; `section`: VIR_NETWORK_SECTION_*;
   * `parentIndex`: which `<ip>` element (-1 = first/any); `flags`: VIR_NETWORK_UPDATE_AFFECT_*.
   *
   * Older daemons read `command` and `section` from each other's place on the wire; like
   * libvirt's own client this asks the daemon (feature NETWORK_UPDATE_HAS_CORRECT_ORDER, once per
   * connection) and swaps them for daemons that need it.
   */
  async networkUpdate(
    net: Network,
    command: number,
    section: number,
    parentIndex: number,
    xml: string,
    flags = 0,
  ): Promise<void> {
    if (this.networkUpdateCorrectOrder === undefined) {
      this.networkUpdateCorrectOrder = await this.connectSupportsFeature(
        VIR_DRV_FEATURE_NETWORK_UPDATE_HAS_CORRECT_ORDER,
      ).catch(() => false);
    }
    const [first, second] = this.networkUpdateCorrectOrder ? [command, section] : [section, command];
    return this.rpc(
      'networkUpdate',
      (w) => {
        writeNetwork(w, net);
        w.uint(first).uint(second).int(parentIndex);
        writeNonnullString(w, xml);
        w.uint(flags);
      },
      decodeVoid,
    );
  }

  // -------------------------------------------------------------------------------------------
  // Storage pools
  // -------------------------------------------------------------------------------------------

  storagePoolLookupByName(name: string): Promise<StoragePool> {
    return this.rpc('storagePoolLookupByName', (w) => writeNonnullString(w, name), readStoragePool);
  }

  storagePoolLookupByUuid(uuid: string): Promise<StoragePool> {
    return this.rpc('storagePoolLookupByUuid', (w) => writeUuid(w, uuid), readStoragePool);
  }

  storagePoolDefineXml(xml: string, flags = 0): Promise<StoragePool> {
    return this.rpc(
      'storagePoolDefineXml',
      (w) => {
        writeNonnullString(w, xml);
        w.uint(flags);
      },
      readStoragePool,
    );
  }

  /** Builds the pool's storage (for a dir pool: creates the directory). `flags`: VIR_STORAGE_POOL_BUILD_*. */
  storagePoolBuild(pool: StoragePool, flags = 0): Promise<void> {
    return this.poolFlagsCall('storagePoolBuild', pool, flags);
  }

  /** Starts the pool. `flags`: VIR_STORAGE_POOL_CREATE_*. */
  storagePoolCreate(pool: StoragePool, flags = 0): Promise<void> {
    return this.poolFlagsCall('storagePoolCreate', pool, flags);
  }

  storagePoolDestroy(pool: StoragePool): Promise<void> {
    return this.rpc('storagePoolDestroy', (w) => writeStoragePool(w, pool), decodeVoid);
  }

  /** Deletes the pool's storage (for a dir pool: removes the empty directory). */
  storagePoolDelete(pool: StoragePool, flags = 0): Promise<void> {
    return this.poolFlagsCall('storagePoolDelete', pool, flags);
  }

  storagePoolUndefine(pool: StoragePool): Promise<void> {
    return this.rpc('storagePoolUndefine', (w) => writeStoragePool(w, pool), decodeVoid);
  }

  storagePoolRefresh(pool: StoragePool, flags = 0): Promise<void> {
    return this.poolFlagsCall('storagePoolRefresh', pool, flags);
  }

  /** `flags`: VIR_STORAGE_XML_INACTIVE. */
  storagePoolGetXmlDesc(pool: StoragePool, flags = 0): Promise<string> {
    return this.rpc(
      'storagePoolGetXmlDesc',
      (w) => {
        writeStoragePool(w, pool);
        w.uint(flags);
      },
      readNonnullString,
    );
  }

  storagePoolSetAutostart(pool: StoragePool, autostart: boolean): Promise<void> {
    return this.rpc(
      'storagePoolSetAutostart',
      (w) => {
        writeStoragePool(w, pool);
        w.int(autostart ? 1 : 0);
      },
      decodeVoid,
    );
  }

  storagePoolGetAutostart(pool: StoragePool): Promise<boolean> {
    return this.rpc('storagePoolGetAutostart', (w) => writeStoragePool(w, pool), readBoolInt);
  }

  storagePoolIsActive(pool: StoragePool): Promise<boolean> {
    return this.rpc('storagePoolIsActive', (w) => writeStoragePool(w, pool), readBoolInt);
  }

  storagePoolIsPersistent(pool: StoragePool): Promise<boolean> {
    return this.rpc('storagePoolIsPersistent', (w) => writeStoragePool(w, pool), readBoolInt);
  }

  storagePoolGetInfo(pool: StoragePool): Promise<StoragePoolInfo> {
    return this.rpc(
      'storagePoolGetInfo',
      (w) => writeStoragePool(w, pool),
      (r) => ({
        state: r.uint(), // unsigned char
        capacity: r.uhyperNumber(),
        allocation: r.uhyperNumber(),
        available: r.uhyperNumber(),
      }),
    );
  }

  /** Volumes of an active pool. */
  storagePoolListAllVolumes(pool: StoragePool, flags = 0): Promise<StorageVol[]> {
    return this.rpc(
      'storagePoolListAllVolumes',
      (w) => {
        writeStoragePool(w, pool);
        w.int(1).uint(flags);
      },
      (r) => {
        const list = r.array(readStorageVol, REMOTE_STORAGE_VOL_LIST_MAX);
        r.uint();
        return list;
      },
    );
  }

  private poolFlagsCall(name: ProcedureName, pool: StoragePool, flags: number): Promise<void> {
    return this.rpc(
      name,
      (w) => {
        writeStoragePool(w, pool);
        w.uint(flags);
      },
      decodeVoid,
    );
  }

  // -------------------------------------------------------------------------------------------
  // Storage volumes
  // -------------------------------------------------------------------------------------------

  storageVolLookupByName(pool: StoragePool, name: string): Promise<StorageVol> {
    return this.rpc(
      'storageVolLookupByName',
      (w) => {
        writeStoragePool(w, pool);
        writeNonnullString(w, name);
      },
      readStorageVol,
    );
  }

  storageVolLookupByKey(key: string): Promise<StorageVol> {
    return this.rpc('storageVolLookupByKey', (w) => writeNonnullString(w, key), readStorageVol);
  }

  storageVolLookupByPath(path: string): Promise<StorageVol> {
    return this.rpc('storageVolLookupByPath', (w) => writeNonnullString(w, path), readStorageVol);
  }

  /** `flags`: VIR_STORAGE_VOL_CREATE_*. */
  storageVolCreateXml(pool: StoragePool, xml: string, flags = 0): Promise<StorageVol> {
    return this.rpc(
      'storageVolCreateXml',
      (w) => {
        writeStoragePool(w, pool);
        writeNonnullString(w, xml);
        w.uint(flags);
      },
      readStorageVol,
    );
  }

  /** Creates a volume in `pool` described by `xml`, with its contents copied from `cloneVol`. */
  storageVolCreateXmlFrom(pool: StoragePool, xml: string, cloneVol: StorageVol, flags = 0): Promise<StorageVol> {
    return this.rpc(
      'storageVolCreateXmlFrom',
      (w) => {
        writeStoragePool(w, pool);
        writeNonnullString(w, xml);
        writeStorageVol(w, cloneVol);
        w.uint(flags);
      },
      readStorageVol,
    );
  }

  storageVolDelete(vol: StorageVol, flags = 0): Promise<void> {
    return this.rpc(
      'storageVolDelete',
      (w) => {
        writeStorageVol(w, vol);
        w.uint(flags);
      },
      decodeVoid,
    );
  }

  storageVolGetInfo(vol: StorageVol): Promise<StorageVolInfo> {
    return this.rpc(
      'storageVolGetInfo',
      (w) => writeStorageVol(w, vol),
      (r) => ({
        type: r.int(), // char
        capacity: r.uhyperNumber(),
        allocation: r.uhyperNumber(),
      }),
    );
  }

  storageVolGetXmlDesc(vol: StorageVol, flags = 0): Promise<string> {
    return this.rpc(
      'storageVolGetXmlDesc',
      (w) => {
        writeStorageVol(w, vol);
        w.uint(flags);
      },
      readNonnullString,
    );
  }

  storageVolGetPath(vol: StorageVol): Promise<string> {
    return this.rpc('storageVolGetPath', (w) => writeStorageVol(w, vol), readNonnullString);
  }

  // --- hand stubs (to be replaced by generated ones) -----------------------------------------

  /** virDomainSetVcpusFlags; `flags`: VIR_DOMAIN_AFFECT_* (and VIR_DOMAIN_VCPU_MAXIMUM). */
  domainSetVcpusFlags(dom: Domain, nvcpus: number, flags = 0): Promise<void> {
    return this.rpc('domainSetVcpusFlags', (w) => {
      writeDomain(w, dom);
      w.uint(nvcpus);
      w.uint(flags);
    }, decodeVoid);
  }

  /** virDomainSetMemoryFlags: memory in KiB; `flags`: VIR_DOMAIN_AFFECT_* (and VIR_DOMAIN_MEM_MAXIMUM). */
  domainSetMemoryFlags(dom: Domain, memoryKiB: number | bigint, flags = 0): Promise<void> {
    return this.rpc('domainSetMemoryFlags', (w) => {
      writeDomain(w, dom);
      w.uhyper(memoryKiB);
      w.uint(flags);
    }, decodeVoid);
  }

  /** virDomainBlockResize: `disk` is a target (vda) or source path; `flags`: VIR_DOMAIN_BLOCK_RESIZE_BYTES for bytes. */
  domainBlockResize(dom: Domain, disk: string, size: number | bigint, flags = 0): Promise<void> {
    return this.rpc('domainBlockResize', (w) => {
      writeDomain(w, dom);
      writeNonnullString(w, disk);
      w.uhyper(size);
      w.uint(flags);
    }, decodeVoid);
  }

  /** virDomainSetMetadata (`type` VIR_DOMAIN_METADATA_*; `metadata` null removes it). */
  domainSetMetadata(dom: Domain, type: number, metadata: string | null, key: string | null, uri: string | null, flags = 0): Promise<void> {
    return this.rpc('domainSetMetadata', (w) => {
      writeDomain(w, dom);
      w.int(type);
      writeOptString(w, metadata);
      writeOptString(w, key);
      writeOptString(w, uri);
      w.uint(flags);
    }, decodeVoid);
  }

  /** Resizes to `capacity` bytes (or by it, with VIR_STORAGE_VOL_RESIZE_DELTA). */
  storageVolResize(vol: StorageVol, capacity: number | bigint, flags = 0): Promise<void> {
    return this.rpc(
      'storageVolResize',
      (w) => {
        writeStorageVol(w, vol);
        w.uhyper(capacity);
        w.uint(flags);
      },
      decodeVoid,
    );
  }

  // -------------------------------------------------------------------------------------------
  // Events
  // -------------------------------------------------------------------------------------------

  /** Low level: registers a callback for `eventId` (optionally for one domain); returns its id. */
  connectDomainEventCallbackRegisterAny(eventId: number, dom: Domain | null = null): Promise<number> {
    return this.rpc(
      'connectDomainEventCallbackRegisterAny',
      (w) => {
        w.int(eventId);
        w.optional(dom, writeDomain);
      },
      readInt,
    );
  }

  connectDomainEventCallbackDeregisterAny(callbackId: number): Promise<void> {
    return this.rpc('connectDomainEventCallbackDeregisterAny', (w) => w.int(callbackId), decodeVoid);
  }

  /**
   * Subscribes to domain lifecycle events (all domains, or one). The subscription is an
   * EventEmitter ('event') and an async iterator; `close()` deregisters it.
   *
   * The daemon accepts one registration per event type and domain filter on a connection, so,
   * like libvirt's own client, subscriptions with the same filter share one server-side
   * callback, registered with the first and deregistered with the last.
   */
  async domainEventLifecycleRegister(opts: { domain?: Domain } = {}): Promise<DomainEventSubscription> {
    const dom = opts.domain ?? null;
    const key = `${VIR_DOMAIN_EVENT_ID_LIFECYCLE}:${dom ? dom.uuid : '*'}`;
    let reg = this.eventRegs.get(key);
    if (!reg) {
      const entry: EventRegistration = {
        key,
        callbackId: this.connectDomainEventCallbackRegisterAny(VIR_DOMAIN_EVENT_ID_LIFECYCLE, dom),
        subs: new Set(),
      };
      this.eventRegs.set(key, entry);
      entry.callbackId.catch(() => {
        if (this.eventRegs.get(key) === entry) this.eventRegs.delete(key);
      });
      reg = entry;
    }
    const entry = reg;
    const id = await entry.callbackId;
    const sub: DomainEventSubscription = new DomainEventSubscription(id, async () => {
      entry.subs.delete(sub);
      if (entry.subs.size > 0 || this.eventRegs.get(key) !== entry) return;
      this.eventRegs.delete(key);
      if (this.transport.isOpen) await this.connectDomainEventCallbackDeregisterAny(id).catch(() => undefined);
    });
    entry.subs.add(sub);
    return sub;
  }

  private onMessage(msg: IncomingMessage): void {
    const { header, body } = msg;
    if (header.prog !== REMOTE_PROGRAM) return;
    if (header.proc === REMOTE_PROC_DOMAIN_EVENT_CALLBACK_LIFECYCLE) {
      let ev: DomainLifecycleEvent;
      try {
        ev = readLifecycleMsg(new XdrReader(body));
      } catch {
        return; // a malformed event is dropped, not fatal
      }
      for (const reg of this.eventRegs.values()) {
        // Only settled registrations can have subscribers; match by the server's callback id.
        for (const sub of reg.subs) if (sub.callbackId === ev.callbackId) sub.push(ev);
      }
      this.emit('domainLifecycle', ev);
    }
    // Other events are not subscribed to by this client; ignore them.
  }
}
