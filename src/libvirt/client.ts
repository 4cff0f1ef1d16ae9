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
 *
 * What is generated and what is hand-written here:
 * - GENERATED (src/libvirt/generated/calls.ts, by scripts/gen-protocol.ts from libvirt's
 *   remote_protocol.x): one call method per procedure, ~430 of them, with the `_args` fields as
 *   parameters and the `_ret` struct (or its only field) as result. They are installed on
 *   LibvirtClient's prototype (see the end of this file) unless this class defines a method of
 *   the same name; `client.remote` has all of them with their raw generated signatures.
 * - HAND-WRITTEN below, only where the generated shape is not the one virtform's API has had or
 *   the protocol needs more than a codec (the `HandWritten` list):
 *   - result shapes kept from the hand-written client: `int` flags as booleans (autostart,
 *     is-active, is-persistent, supports-feature), `unsigned hyper` sizes and versions as numbers
 *     (throwing when unsafe), the list-all calls returning the list alone, state names added to
 *     get-state / get-info. Each delegates to the generated stub;
 *   - `networkUpdate`: older daemons swap `command` and `section` on the wire (checked once per
 *     connection with VIR_DRV_FEATURE_NETWORK_UPDATE_HAS_CORRECT_ORDER, as libvirt's client does);
 *   - streams (`storageVolUpload`, `storageVolDownload`, `domainOpenConsole`): stream framing,
 *     STREAM_HOLE for sparse streams, finish/abort (src/libvirt/stream.ts, transport.ts);
 *   - event callback registration shared by subscriptions with the same filter, and event dispatch;
 *   - authentication (auth-list, polkit) and connect-open in `connect`.
 */
import { EventEmitter } from 'node:events';
import { ConnectionError, LibvirtError } from './errors.js';
import { DomainEventSubscription, type DomainLifecycleEvent, lifecycleEvent } from './events.js';
import { RemoteCalls } from './generated/calls.js';
import {
  type Domain,
  domainStateName,
  type Network,
  PROCEDURES,
  type ProcedureName,
  readRemoteDomainEventCallbackLifecycleMsg,
  type RemoteStorageVolUploadArgs,
  writeRemoteStorageVolDownloadArgs,
  writeRemoteStorageVolUploadArgs,
  REMOTE_AUTH_NONE,
  REMOTE_AUTH_POLKIT,
  REMOTE_AUTH_SASL,
  REMOTE_PROC_DOMAIN_EVENT_CALLBACK_LIFECYCLE,
  REMOTE_PROGRAM,
  type StoragePool,
  type StorageVol,
  VIR_CONNECT_RO,
  VIR_DOMAIN_EVENT_ID_LIFECYCLE,
  VIR_DRV_FEATURE_NETWORK_UPDATE_HAS_CORRECT_ORDER,
  VIR_DRV_FEATURE_PROGRAM_KEEPALIVE,
  VIR_STORAGE_VOL_DOWNLOAD_SPARSE_STREAM,
  VIR_STORAGE_VOL_UPLOAD_SPARSE_STREAM,
} from './protocol.js';
import { LibvirtStream, type LibvirtStreamOptions } from './stream.js';
import { type IncomingMessage, type StreamSink, Transport } from './transport.js';
import { connectSsh } from './ssh.js';
import { connectTls } from './tls.js';
import { parseUri, type ParsedUri, redactUri, socketPathFor } from './uri.js';
import { safeNumber, XdrReader, type XdrWriter } from './xdr.js';

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
  /**
   * Volume upload/download streams fail (StreamStalledError) when they wait on the daemon this long with no progress
   * (see {@link LibvirtStreamOptions.idleTimeoutMs}; a stream's own option overrides it). 0 = never.
   * Default 60000. Console streams have none.
   */
  streamIdleTimeoutMs?: number;
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

/**
 * Procedures whose method below replaces the generated one (a different result shape, a quirk,
 * or a stream). The compiler checks the list: a generated method left in with another signature
 * than this class's would not merge.
 */
/** Procedures whose `int` result is a boolean (autostart, is-active, is-persistent). */
const BOOLEAN_RESULT = [
  'domainGetAutostart',
  'domainIsActive',
  'domainIsPersistent',
  'networkGetAutostart',
  'networkIsActive',
  'networkIsPersistent',
  'storagePoolGetAutostart',
  'storagePoolIsActive',
  'storagePoolIsPersistent',
] as const;
/** Procedures whose `int autostart` argument is a boolean. */
const BOOLEAN_AUTOSTART = ['domainSetAutostart', 'networkSetAutostart', 'storagePoolSetAutostart'] as const;
type BooleanResult = (typeof BOOLEAN_RESULT)[number];
type BooleanAutostart = (typeof BOOLEAN_AUTOSTART)[number];
type BooleanAdapters = { [K in BooleanResult]: (...args: Parameters<RemoteCalls[K]>) => Promise<boolean> } & {
  [K in BooleanAutostart]: (obj: Parameters<RemoteCalls[K]>[0], autostart: boolean) => Promise<void>;
};

type HandWritten =
  | BooleanResult
  | BooleanAutostart
  | 'connectGetVersion'
  | 'connectGetLibVersion'
  | 'connectSupportsFeature'
  | 'connectListAllDomains'
  | 'connectListAllNetworks'
  | 'connectListAllStoragePools'
  | 'domainGetState'
  | 'domainGetInfo'
  | 'networkUpdate'
  | 'storagePoolGetInfo'
  | 'storagePoolListAllVolumes'
  | 'storageVolGetInfo'
  | 'storageVolUpload'
  | 'storageVolDownload'
  | 'domainOpenConsole';

/** The generated call stubs on a connection, with their raw generated signatures. */
class BoundRemoteCalls extends RemoteCalls<LibvirtStream> {
  constructor(private readonly client: LibvirtClient) {
    super();
  }
  rpc<T>(name: ProcedureName, encode: Enc, decode: (r: XdrReader) => T): Promise<T> {
    return this.client.rpc(name, encode, decode);
  }
  rpcStream<T>(name: ProcedureName, encode: Enc, decode: (r: XdrReader) => T, direction: 'read' | 'write') {
    return this.client.rpcStream(name, encode, decode, direction);
  }
}

const num = (v: bigint, what: string): number => safeNumber(v, what);

/**
 * Procedures whose ACL in remote_protocol.x asks a write permission although they change no
 * object: connect-get-domain-capabilities (`connect:write`, because it may probe the QEMU
 * binary) only reads what the hypervisor offers. Counted as not mutating.
 */
const READS_ONLY = new Set<string>(['connectGetDomainCapabilities']);

/** Stream options of the upload/download methods. */
export interface VolStreamOptions extends Omit<LibvirtStreamOptions, 'sparse'> {}

// The generated call stubs (all but HandWritten) are LibvirtClient methods: installed on its
// prototype at the end of this file.
// eslint-disable-next-line @typescript-eslint/no-unsafe-declaration-merging
export interface LibvirtClient extends Omit<RemoteCalls<LibvirtStream>, HandWritten | 'rpc' | 'rpcStream'>, BooleanAdapters {}

// eslint-disable-next-line @typescript-eslint/no-unsafe-declaration-merging
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
  /**
   * Called before every mutating procedure is sent; what it throws fails the call with nothing sent
   * (the writer lease's step-down, src/state/lease.ts). Not counted as a call.
   */
  beforeMutation: ((procedure: string) => void) | undefined;
  /** Every generated call stub, with its raw generated signature (e.g. hypers as bigint). */
  readonly remote: RemoteCalls<LibvirtStream>;

  private readonly transport: Transport;
  private readonly callTimeoutMs: number;
  private readonly streamIdleTimeoutMs: number;
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
    this.streamIdleTimeoutMs = opts.streamIdleTimeoutMs ?? 60_000;
    this.closed = transport.closed;
    this.remote = new BoundRemoteCalls(this);
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
    const connectTimeoutMs = opts.connectTimeoutMs ?? 10_000;
    let transport: Transport;
    if (parsed.transport === 'ssh') {
      const { socket, label } = connectSsh(parsed, { readOnly: !!opts.readOnly, connectTimeoutMs });
      transport = new Transport(socket, { callTimeoutMs, label });
    } else if (parsed.transport === 'tls') {
      const { socket, label } = await connectTls(parsed, { connectTimeoutMs });
      transport = new Transport(socket, { callTimeoutMs, label });
      socket.resume();
    } else {
      const target =
        parsed.transport === 'tcp'
          ? { host: parsed.host!, port: parsed.port! }
          : { path: opts.socketPath ?? socketPathFor(parsed, { readOnly: !!opts.readOnly }) };
      transport = await Transport.connect(target, { connectTimeoutMs, callTimeoutMs });
    }
    const client = new LibvirtClient(transport, parsed, opts);
    try {
      await client.authenticate();
      await client.remote.connectOpen(parsed.remoteName, opts.readOnly ? VIR_CONNECT_RO : 0);
      const interval = opts.keepaliveIntervalMs ?? 5000;
      if (interval > 0) {
        // Asking for this feature also turns the daemon's own keepalive on for this client.
        // safe-catch: a daemon without keepalive: the connection works without it
        const ka = await client.connectSupportsFeature(VIR_DRV_FEATURE_PROGRAM_KEEPALIVE).catch(() => false);
        if (ka) transport.startKeepalive(interval, opts.keepaliveCount ?? 5);
      }
    } catch (err) {
      transport.close();
      if (err instanceof LibvirtError) throw err;
      if (err instanceof ConnectionError && err.reason !== 'connect') {
        // The connection itself failed (ssh's diagnosis, the TLS check byte…): say that, not which call was in flight.
        const lost = transport.error && transport.error.reason !== 'closed' ? transport.error : err;
        throw new ConnectionError('connect', `cannot open ${redactUri(uri)}: ${lost.message}`, { cause: err });
      }
      throw err;
    }
    return client;
  }

  private async authenticate(): Promise<void> {
    const types = await this.remote.authList();
    // As libvirt's remote driver: no list, or NONE offered → nothing to do; else use the first.
    if (types.length === 0 || types.includes(REMOTE_AUTH_NONE)) return;
    const first = types[0];
    if (first === REMOTE_AUTH_POLKIT || types.includes(REMOTE_AUTH_POLKIT)) {
      const complete = await this.remote.authPolkit();
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

  /** Whether a procedure changes host state (from its ACL annotations; see procedures.ts). */
  static isMutating(procedure: string): boolean {
    if (READS_ONLY.has(procedure)) return false;
    return (PROCEDURES as Record<string, { mutating: boolean }>)[procedure]?.mutating ?? false;
  }

  /** Sends connect-close and closes the socket. Pending calls are rejected. Idempotent. */
  close(): Promise<void> {
    if (this.closing) return this.closing;
    this.closing = (async () => {
      if (this.transport.isOpen) {
        // safe-catch: closing: the transport is closed right after whatever the daemon answers
        await this.rpc('connectClose', undefined, () => undefined, { timeoutMs: 2000 }).catch(() => undefined);
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
    stream?: StreamSink,
  ): Promise<T> {
    const info = { ...PROCEDURES[name], mutating: LibvirtClient.isMutating(name) };
    if (info.mutating) this.beforeMutation?.(name);
    const start = performance.now();
    let error: Error | undefined;
    try {
      const callOpts = { name, timeoutMs: opts.timeoutMs ?? this.callTimeoutMs };
      const body = stream
        ? (await this.transport.callStream(info.proc, encode, stream, callOpts)).body
        : await this.transport.call(info.proc, encode, callOpts);
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
        } catch { // safe-catch: a metrics hook must not break calls
          /* a metrics hook must not break calls */
        }
      }
    }
  }

    /**
   * Calls a procedure that opens a stream (`@readstream` / `@writestream` in remote_protocol.x):
   * resolves, once the daemon accepted the call, with its reply and the stream.
   */
  async rpcStream<T>(
    name: ProcedureName,
    encode: Enc,
    decode: (r: XdrReader) => T,
      _direction: 'read' | 'write',
    opts: LibvirtStreamOptions = {},
  ): Promise<{ ret: T; stream: LibvirtStream }> {
    const info = PROCEDURES[name];
    const stream = new LibvirtStream({ transport: this.transport, proc: info.proc, name }, opts);
    const ret = await this.rpc(name, encode, decode, {}, stream);
    return { ret, stream };
  }

  // -------------------------------------------------------------------------------------------
  // Hand-written result shapes (delegating to the generated stubs in `remote`)
  // -------------------------------------------------------------------------------------------

  /** Hypervisor version as libvirt encodes it: major * 1000000 + minor * 1000 + release. */
  async connectGetVersion(): Promise<number> {
    return num(await this.remote.connectGetVersion(), 'hypervisor version');
  }

  /** libvirt (daemon) version: major * 1000000 + minor * 1000 + release. */
  async connectGetLibVersion(): Promise<number> {
    return num(await this.remote.connectGetLibVersion(), 'libvirt version');
  }

  async connectSupportsFeature(feature: number): Promise<boolean> {
    return (await this.remote.connectSupportsFeature(feature)) !== 0;
  }

  /** All domains matching `flags` (VIR_CONNECT_LIST_DOMAINS_*; 0 = all). `id` is -1 when inactive. */
  async connectListAllDomains(flags = 0): Promise<Domain[]> {
    return (await this.remote.connectListAllDomains(1, flags)).domains;
  }

  async connectListAllNetworks(flags = 0): Promise<Network[]> {
    return (await this.remote.connectListAllNetworks(1, flags)).nets;
  }

  async connectListAllStoragePools(flags = 0): Promise<StoragePool[]> {
    return (await this.remote.connectListAllStoragePools(1, flags)).pools;
  }

  async domainGetState(dom: Domain, flags = 0): Promise<DomainState> {
    const { state, reason } = await this.remote.domainGetState(dom, flags);
    return { state, stateName: domainStateName(state), reason };
  }

  async domainGetInfo(dom: Domain): Promise<DomainInfo> {
    const i = await this.remote.domainGetInfo(dom);
    return {
      state: i.state,
      stateName: domainStateName(i.state),
      maxMem: num(i.maxMem, 'maxMem'),
      memory: num(i.memory, 'memory'),
      nrVirtCpu: i.nrVirtCpu,
      cpuTime: i.cpuTime,
    };
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
      // safe-catch: an older daemon without the feature: the historical argument order
      ).catch(() => false);
    }
    const [first, second] = this.networkUpdateCorrectOrder ? [command, section] : [section, command];
    return this.remote.networkUpdate(net, first, second, parentIndex, xml, flags);
  }

  async storagePoolGetInfo(pool: StoragePool): Promise<StoragePoolInfo> {
    const i = await this.remote.storagePoolGetInfo(pool);
    return {
      state: i.state,
      capacity: num(i.capacity, 'capacity'),
      allocation: num(i.allocation, 'allocation'),
      available: num(i.available, 'available'),
    };
  }

  /** Volumes of an active pool. */
  async storagePoolListAllVolumes(pool: StoragePool, flags = 0): Promise<StorageVol[]> {
    return (await this.remote.storagePoolListAllVolumes(pool, 1, flags)).vols;
  }

  async storageVolGetInfo(vol: StorageVol): Promise<StorageVolInfo> {
    const i = await this.remote.storageVolGetInfo(vol);
    return { type: i.type, capacity: num(i.capacity, 'capacity'), allocation: num(i.allocation, 'allocation') };
  }

  // -------------------------------------------------------------------------------------------
  // Streams
  // -------------------------------------------------------------------------------------------

  /**
   * Opens an upload into `vol` at `offset` (`length` bytes; 0 = to the end). Write the data to the
   * returned stream and `end()` it: it emits 'finish' once the daemon confirmed the upload.
   * With VIR_STORAGE_VOL_UPLOAD_SPARSE_STREAM in `flags`, `writeHole(n)` / `{ hole: n }` chunks
   * (or `opts.detectHoles`) leave holes in the volume instead of writing zeros.
   */
  async storageVolUpload(
    vol: StorageVol,
    offset: number | bigint = 0,
    length: number | bigint = 0,
    flags = 0,
    opts: VolStreamOptions = {},
  ): Promise<LibvirtStream> {
    return this.volStream('storageVolUpload', writeRemoteStorageVolUploadArgs, VIR_STORAGE_VOL_UPLOAD_SPARSE_STREAM, { vol, offset, length, flags }, opts);
  }

  /**
   * Opens a download of `vol` from `offset` (`length` bytes; 0 = to the end): read the returned
   * stream. With VIR_STORAGE_VOL_DOWNLOAD_SPARSE_STREAM the daemon sends holes: as zero bytes,
   * or with `opts.holes = 'objects'` as `{ hole: n }` objects.
   */
  async storageVolDownload(
    vol: StorageVol,
    offset: number | bigint = 0,
    length: number | bigint = 0,
    flags = 0,
    opts: VolStreamOptions = {},
  ): Promise<LibvirtStream> {
    return this.volStream('storageVolDownload', writeRemoteStorageVolDownloadArgs, VIR_STORAGE_VOL_DOWNLOAD_SPARSE_STREAM, { vol, offset, length, flags }, opts);
  }

  /** Upload and download: the same arguments; the stream is sparse when `sparseFlag` is in the flags. */
  private async volStream(
    name: 'storageVolUpload' | 'storageVolDownload',
    write: (w: XdrWriter, a: RemoteStorageVolUploadArgs) => void,
    sparseFlag: number,
    a: { vol: StorageVol; offset: number | bigint; length: number | bigint; flags: number },
    opts: VolStreamOptions,
  ): Promise<LibvirtStream> {
    const sparse = (a.flags & sparseFlag) !== 0;
    const stream = new LibvirtStream(
      { transport: this.transport, proc: PROCEDURES[name].proc, name, download: name === 'storageVolDownload' },
      { idleTimeoutMs: this.streamIdleTimeoutMs, ...opts, sparse },
    );
    const args = { vol: a.vol, offset: BigInt(a.offset), length: BigInt(a.length), flags: a.flags };
    await this.rpc(name, (w) => write(w, args), () => undefined, {}, stream);
    return stream;
  }

  /**
   * Connects to a domain's console (`devName` null = the first console/serial): a duplex stream of
   * the console's bytes. `end()` closes it; `destroy()` aborts it.
   */
  async domainOpenConsole(dom: Domain, devName: string | null = null, flags = 0): Promise<LibvirtStream> {
    const { stream } = await this.remote.domainOpenConsole(dom, devName, flags);
    return stream;
  }

  // -------------------------------------------------------------------------------------------
  // Events
  // -------------------------------------------------------------------------------------------

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
      // safe-catch: forgets a failed registration; the subscriber awaiting callbackId gets the error
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
      // safe-catch: unsubscribing on the way out; the daemon drops callbacks with the connection anyway
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
        ev = lifecycleEvent(readRemoteDomainEventCallbackLifecycleMsg(new XdrReader(body)));
      } catch { // safe-catch: a malformed event is dropped, not fatal to the connection
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

// The boolean adapters: the generated call, with its int result or argument as a boolean.
type Remote = Record<string, (...a: unknown[]) => Promise<unknown>>;
for (const name of BOOLEAN_RESULT) {
  Object.defineProperty(LibvirtClient.prototype, name, {
    value: async function (this: LibvirtClient, ...args: unknown[]) {
      return (await (this.remote as unknown as Remote)[name]!(...args)) !== 0;
    },
    writable: true,
    configurable: true,
  });
}
for (const name of BOOLEAN_AUTOSTART) {
  Object.defineProperty(LibvirtClient.prototype, name, {
    value: function (this: LibvirtClient, obj: unknown, autostart: boolean) {
      return (this.remote as unknown as Remote)[name]!(obj, autostart ? 1 : 0);
    },
    writable: true,
    configurable: true,
  });
}

// Install the generated call stubs as LibvirtClient methods, except those written above.
for (const name of Object.getOwnPropertyNames(RemoteCalls.prototype)) {
  if (name === 'constructor' || Object.prototype.hasOwnProperty.call(LibvirtClient.prototype, name)) continue;
  Object.defineProperty(LibvirtClient.prototype, name, Object.getOwnPropertyDescriptor(RemoteCalls.prototype, name)!);
}
