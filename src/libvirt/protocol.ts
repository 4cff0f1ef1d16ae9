/**
 * libvirt RPC protocol constants and the wire codecs of its common structs.
 *
 * Numbers come from libvirt's `src/rpc/virnetprotocol.x`, `src/rpc/virkeepaliveprotocol.x`,
 * `src/remote/remote_protocol.x` and the public headers (`virterror.h`, `libvirt-*.h`). They are
 * part of libvirt's stable wire ABI.
 */
import { XdrError } from './errors.js';
import { type XdrReader, type XdrWriter, UUID_BYTES, uuidToBytes } from './xdr.js';

// ---------------------------------------------------------------------------------------------
// Packet header (virnetprotocol.x)
// ---------------------------------------------------------------------------------------------

/** Bytes of the length word that starts every packet (the length counts itself). */
export const LEN_BYTES = 4;
/** Bytes of `virNetMessageHeader`. */
export const HEADER_BYTES = 24;
/**
 * Largest packet this client accepts. libvirt's own limit (VIR_NET_MESSAGE_MAX) is 16 MiB in older
 * releases and 32 MiB in newer ones; anything bigger is treated as a framing error.
 */
export const MAX_PACKET_BYTES = 64 * 1024 * 1024;

export const MessageType = {
  CALL: 0,
  REPLY: 1,
  MESSAGE: 2,
  STREAM: 3,
  CALL_WITH_FDS: 4,
  REPLY_WITH_FDS: 5,
  STREAM_HOLE: 6,
} as const;

export const MessageStatus = {
  OK: 0,
  ERROR: 1,
  CONTINUE: 2,
} as const;

export interface PacketHeader {
  prog: number;
  vers: number;
  proc: number;
  type: number;
  serial: number;
  status: number;
}

// ---------------------------------------------------------------------------------------------
// Programs
// ---------------------------------------------------------------------------------------------

export const REMOTE_PROGRAM = 0x20008086;
export const REMOTE_PROTOCOL_VERSION = 1;

export const KEEPALIVE_PROGRAM = 0x6b656570;
export const KEEPALIVE_PROTOCOL_VERSION = 1;
export const KEEPALIVE_PROC_PING = 1;
export const KEEPALIVE_PROC_PONG = 2;

/** Default TCP port of libvirtd (`listen_tcp`). */
export const LIBVIRTD_TCP_PORT = 16509;

/** Limit of `remote_nonnull_string` (REMOTE_STRING_MAX in current libvirt). */
export const REMOTE_STRING_MAX = 4194304;
export const REMOTE_AUTH_TYPE_LIST_MAX = 20;
export const REMOTE_DOMAIN_LIST_MAX = 16384;
export const REMOTE_NETWORK_LIST_MAX = 16384;
export const REMOTE_STORAGE_POOL_LIST_MAX = 16384;
export const REMOTE_STORAGE_VOL_LIST_MAX = 16384;

// ---------------------------------------------------------------------------------------------
// Authentication (remote_auth_type)
// ---------------------------------------------------------------------------------------------

export const REMOTE_AUTH_NONE = 0;
export const REMOTE_AUTH_SASL = 1;
export const REMOTE_AUTH_POLKIT = 2;

// ---------------------------------------------------------------------------------------------
// Procedures of REMOTE_PROGRAM used by this client: wire number, and whether the call changes
// host state ("mutating": define/undefine/create/destroy/set-autostart/build/delete/update...).
// ---------------------------------------------------------------------------------------------

export interface ProcedureInfo {
  readonly proc: number;
  readonly mutating: boolean;
}

function p(proc: number, mutating = false): ProcedureInfo {
  return { proc, mutating };
}

export const PROCEDURES = {
  connectOpen: p(1),
  connectClose: p(2),
  connectGetType: p(3),
  connectGetVersion: p(4),
  connectGetCapabilities: p(7),
  domainCreate: p(9, true),
  domainDefineXml: p(11, true),
  domainDestroy: p(12, true),
  domainGetXmlDesc: p(14),
  domainGetAutostart: p(15),
  domainGetInfo: p(16),
  domainLookupById: p(22),
  domainLookupByName: p(23),
  domainLookupByUuid: p(24),
  domainSetAutostart: p(29, true),
  domainShutdown: p(33, true),
  domainUndefine: p(35, true),
  networkCreate: p(39, true),
  networkDefineXml: p(41, true),
  networkDestroy: p(42, true),
  networkGetXmlDesc: p(43),
  networkGetAutostart: p(44),
  networkLookupByName: p(46),
  networkLookupByUuid: p(47),
  networkSetAutostart: p(48, true),
  networkUndefine: p(49, true),
  connectGetHostname: p(59),
  connectSupportsFeature: p(60),
  authList: p(66),
  authPolkit: p(70),
  storagePoolDefineXml: p(77, true),
  storagePoolCreate: p(78, true),
  storagePoolBuild: p(79, true),
  storagePoolDestroy: p(80, true),
  storagePoolDelete: p(81, true),
  storagePoolUndefine: p(82, true),
  // Re-reads the pool directory: changes no definition or object, so not counted as mutating.
  storagePoolRefresh: p(83),
  storagePoolLookupByName: p(84),
  storagePoolLookupByUuid: p(85),
  storagePoolGetInfo: p(87),
  storagePoolGetXmlDesc: p(88),
  storagePoolGetAutostart: p(89),
  storagePoolSetAutostart: p(90, true),
  storageVolCreateXml: p(93, true),
  storageVolDelete: p(94, true),
  storageVolLookupByName: p(95),
  storageVolLookupByKey: p(96),
  storageVolLookupByPath: p(97),
  storageVolGetInfo: p(98),
  storageVolGetXmlDesc: p(99),
  storageVolGetPath: p(100),
  connectGetUri: p(110),
  storageVolCreateXmlFrom: p(125, true),
  domainIsActive: p(150),
  domainIsPersistent: p(151),
  networkIsActive: p(152),
  networkIsPersistent: p(153),
  storagePoolIsActive: p(154),
  storagePoolIsPersistent: p(155),
  connectGetLibVersion: p(157),
  domainCreateWithFlags: p(196, true),
  domainGetState: p(212),
  domainUndefineFlags: p(231, true),
  domainDestroyFlags: p(234, true),
  domainShutdownFlags: p(258, true),
  storageVolResize: p(260, true),
  connectListAllDomains: p(273),
  connectListAllStoragePools: p(281),
  storagePoolListAllVolumes: p(282),
  connectListAllNetworks: p(283),
  networkUpdate: p(291, true),
  connectDomainEventCallbackRegisterAny: p(316),
  connectDomainEventCallbackDeregisterAny: p(317),
  domainDefineXmlFlags: p(350, true),
  // Hand stubs (to be replaced by generated ones): live vCPU/memory/description changes, live disk growth.
  domainSetVcpusFlags: p(199, true),
  domainSetMemoryFlags: p(204, true),
  domainBlockResize: p(251, true),
  domainSetMetadata: p(264, true),
} as const satisfies Record<string, ProcedureInfo>;

export type ProcedureName = keyof typeof PROCEDURES;

/** Event (MESSAGE) procedures of REMOTE_PROGRAM this client decodes. */
export const REMOTE_PROC_DOMAIN_EVENT_CALLBACK_LIFECYCLE = 318;

const PROC_NAMES = new Map<number, ProcedureName>(
  (Object.entries(PROCEDURES) as [ProcedureName, ProcedureInfo][]).map(([n, i]) => [i.proc, n]),
);

export function procedureName(proc: number): string {
  return PROC_NAMES.get(proc) ?? `proc${proc}`;
}

// ---------------------------------------------------------------------------------------------
// virConnectSupportsFeature features (libvirt_internal.h)
// ---------------------------------------------------------------------------------------------

export const VIR_DRV_FEATURE_PROGRAM_KEEPALIVE = 10;
export const VIR_DRV_FEATURE_REMOTE_EVENT_CALLBACK = 14;
export const VIR_DRV_FEATURE_NETWORK_UPDATE_HAS_CORRECT_ORDER = 16;

// ---------------------------------------------------------------------------------------------
// Flags (libvirt-*.h)
// ---------------------------------------------------------------------------------------------

export const VIR_CONNECT_RO = 1 << 0;

export const VIR_CONNECT_LIST_DOMAINS_ACTIVE = 1 << 0;
export const VIR_CONNECT_LIST_DOMAINS_INACTIVE = 1 << 1;
export const VIR_CONNECT_LIST_DOMAINS_PERSISTENT = 1 << 2;
export const VIR_CONNECT_LIST_DOMAINS_TRANSIENT = 1 << 3;
export const VIR_CONNECT_LIST_DOMAINS_RUNNING = 1 << 4;
export const VIR_CONNECT_LIST_DOMAINS_PAUSED = 1 << 5;
export const VIR_CONNECT_LIST_DOMAINS_SHUTOFF = 1 << 6;
export const VIR_CONNECT_LIST_DOMAINS_OTHER = 1 << 7;
export const VIR_CONNECT_LIST_DOMAINS_MANAGEDSAVE = 1 << 8;
export const VIR_CONNECT_LIST_DOMAINS_NO_MANAGEDSAVE = 1 << 9;
export const VIR_CONNECT_LIST_DOMAINS_AUTOSTART = 1 << 10;
export const VIR_CONNECT_LIST_DOMAINS_NO_AUTOSTART = 1 << 11;
export const VIR_CONNECT_LIST_DOMAINS_HAS_SNAPSHOT = 1 << 12;
export const VIR_CONNECT_LIST_DOMAINS_NO_SNAPSHOT = 1 << 13;

export const VIR_CONNECT_LIST_NETWORKS_INACTIVE = 1 << 0;
export const VIR_CONNECT_LIST_NETWORKS_ACTIVE = 1 << 1;
export const VIR_CONNECT_LIST_NETWORKS_PERSISTENT = 1 << 2;
export const VIR_CONNECT_LIST_NETWORKS_TRANSIENT = 1 << 3;
export const VIR_CONNECT_LIST_NETWORKS_AUTOSTART = 1 << 4;
export const VIR_CONNECT_LIST_NETWORKS_NO_AUTOSTART = 1 << 5;

export const VIR_CONNECT_LIST_STORAGE_POOLS_INACTIVE = 1 << 0;
export const VIR_CONNECT_LIST_STORAGE_POOLS_ACTIVE = 1 << 1;
export const VIR_CONNECT_LIST_STORAGE_POOLS_PERSISTENT = 1 << 2;
export const VIR_CONNECT_LIST_STORAGE_POOLS_TRANSIENT = 1 << 3;
export const VIR_CONNECT_LIST_STORAGE_POOLS_AUTOSTART = 1 << 4;
export const VIR_CONNECT_LIST_STORAGE_POOLS_NO_AUTOSTART = 1 << 5;
export const VIR_CONNECT_LIST_STORAGE_POOLS_DIR = 1 << 6;

export const VIR_DOMAIN_XML_SECURE = 1 << 0;
export const VIR_DOMAIN_XML_INACTIVE = 1 << 1;
export const VIR_DOMAIN_XML_UPDATE_CPU = 1 << 2;
export const VIR_DOMAIN_XML_MIGRATABLE = 1 << 3;

export const VIR_DOMAIN_DEFINE_VALIDATE = 1 << 0;

export const VIR_DOMAIN_START_PAUSED = 1 << 0;
export const VIR_DOMAIN_START_AUTODESTROY = 1 << 1;
export const VIR_DOMAIN_START_BYPASS_CACHE = 1 << 2;
export const VIR_DOMAIN_START_FORCE_BOOT = 1 << 3;
export const VIR_DOMAIN_START_VALIDATE = 1 << 4;

export const VIR_DOMAIN_UNDEFINE_MANAGED_SAVE = 1 << 0;
export const VIR_DOMAIN_UNDEFINE_SNAPSHOTS_METADATA = 1 << 1;
export const VIR_DOMAIN_UNDEFINE_NVRAM = 1 << 2;
export const VIR_DOMAIN_UNDEFINE_KEEP_NVRAM = 1 << 3;
export const VIR_DOMAIN_UNDEFINE_CHECKPOINTS_METADATA = 1 << 4;

export const VIR_DOMAIN_DESTROY_DEFAULT = 0;
export const VIR_DOMAIN_DESTROY_GRACEFUL = 1 << 0;

// virDomainModificationImpact, virDomainBlockResizeFlags, virDomainMetadataType (hand stubs).
export const VIR_DOMAIN_AFFECT_CURRENT = 0;
export const VIR_DOMAIN_AFFECT_LIVE = 1 << 0;
export const VIR_DOMAIN_AFFECT_CONFIG = 1 << 1;
export const VIR_DOMAIN_BLOCK_RESIZE_BYTES = 1 << 0;
export const VIR_DOMAIN_METADATA_DESCRIPTION = 0;

export const VIR_NETWORK_XML_INACTIVE = 1 << 0;
export const VIR_STORAGE_XML_INACTIVE = 1 << 0;

export const VIR_NETWORK_UPDATE_COMMAND_NONE = 0;
export const VIR_NETWORK_UPDATE_COMMAND_MODIFY = 1;
export const VIR_NETWORK_UPDATE_COMMAND_DELETE = 2;
export const VIR_NETWORK_UPDATE_COMMAND_ADD_LAST = 3;
export const VIR_NETWORK_UPDATE_COMMAND_ADD_FIRST = 4;

export const VIR_NETWORK_SECTION_NONE = 0;
export const VIR_NETWORK_SECTION_BRIDGE = 1;
export const VIR_NETWORK_SECTION_DOMAIN = 2;
export const VIR_NETWORK_SECTION_IP = 3;
export const VIR_NETWORK_SECTION_IP_DHCP_HOST = 4;
export const VIR_NETWORK_SECTION_IP_DHCP_RANGE = 5;
export const VIR_NETWORK_SECTION_FORWARD = 6;
export const VIR_NETWORK_SECTION_FORWARD_INTERFACE = 7;
export const VIR_NETWORK_SECTION_FORWARD_PF = 8;
export const VIR_NETWORK_SECTION_PORTGROUP = 9;
export const VIR_NETWORK_SECTION_DNS_HOST = 10;
export const VIR_NETWORK_SECTION_DNS_TXT = 11;
export const VIR_NETWORK_SECTION_DNS_SRV = 12;

export const VIR_NETWORK_UPDATE_AFFECT_CURRENT = 0;
export const VIR_NETWORK_UPDATE_AFFECT_LIVE = 1 << 0;
export const VIR_NETWORK_UPDATE_AFFECT_CONFIG = 1 << 1;

export const VIR_STORAGE_POOL_BUILD_NEW = 0;
export const VIR_STORAGE_POOL_BUILD_REPAIR = 1 << 0;
export const VIR_STORAGE_POOL_BUILD_RESIZE = 1 << 1;
export const VIR_STORAGE_POOL_BUILD_NO_OVERWRITE = 1 << 2;
export const VIR_STORAGE_POOL_BUILD_OVERWRITE = 1 << 3;

export const VIR_STORAGE_POOL_CREATE_NORMAL = 0;
export const VIR_STORAGE_POOL_CREATE_WITH_BUILD = 1 << 0;
export const VIR_STORAGE_POOL_CREATE_WITH_BUILD_OVERWRITE = 1 << 1;
export const VIR_STORAGE_POOL_CREATE_WITH_BUILD_NO_OVERWRITE = 1 << 2;

export const VIR_STORAGE_POOL_DELETE_NORMAL = 0;
export const VIR_STORAGE_POOL_DELETE_ZEROED = 1 << 0;

export const VIR_STORAGE_VOL_CREATE_PREALLOC_METADATA = 1 << 0;
export const VIR_STORAGE_VOL_CREATE_REFLINK = 1 << 1;
export const VIR_STORAGE_VOL_CREATE_VALIDATE = 1 << 2;

export const VIR_STORAGE_VOL_DELETE_NORMAL = 0;
export const VIR_STORAGE_VOL_DELETE_ZEROED = 1 << 0;
export const VIR_STORAGE_VOL_DELETE_WITH_SNAPSHOTS = 1 << 1;

export const VIR_STORAGE_VOL_RESIZE_ALLOCATE = 1 << 0;
export const VIR_STORAGE_VOL_RESIZE_DELTA = 1 << 1;
export const VIR_STORAGE_VOL_RESIZE_SHRINK = 1 << 2;

// ---------------------------------------------------------------------------------------------
// States
// ---------------------------------------------------------------------------------------------

/** virDomainState */
export const VIR_DOMAIN_NOSTATE = 0;
export const VIR_DOMAIN_RUNNING = 1;
export const VIR_DOMAIN_BLOCKED = 2;
export const VIR_DOMAIN_PAUSED = 3;
export const VIR_DOMAIN_SHUTDOWN = 4;
export const VIR_DOMAIN_SHUTOFF = 5;
export const VIR_DOMAIN_CRASHED = 6;
export const VIR_DOMAIN_PMSUSPENDED = 7;

/** Names as `virsh domstate` prints them, indexed by virDomainState. */
export const DOMAIN_STATE_NAMES = [
  'no state',
  'running',
  'idle',
  'paused',
  'in shutdown',
  'shut off',
  'crashed',
  'pmsuspended',
] as const;

export function domainStateName(state: number): string {
  return DOMAIN_STATE_NAMES[state] ?? `unknown (${state})`;
}

/** virStoragePoolState */
export const VIR_STORAGE_POOL_INACTIVE = 0;
export const VIR_STORAGE_POOL_BUILDING = 1;
export const VIR_STORAGE_POOL_RUNNING = 2;
export const VIR_STORAGE_POOL_DEGRADED = 3;
export const VIR_STORAGE_POOL_INACCESSIBLE = 4;

/** virStorageVolType */
export const VIR_STORAGE_VOL_FILE = 0;
export const VIR_STORAGE_VOL_BLOCK = 1;
export const VIR_STORAGE_VOL_DIR = 2;
export const VIR_STORAGE_VOL_NETWORK = 3;
export const VIR_STORAGE_VOL_NETDIR = 4;
export const VIR_STORAGE_VOL_PLOOP = 5;

// ---------------------------------------------------------------------------------------------
// Events
// ---------------------------------------------------------------------------------------------

export const VIR_DOMAIN_EVENT_ID_LIFECYCLE = 0;

/** virDomainEventType */
export const VIR_DOMAIN_EVENT_DEFINED = 0;
export const VIR_DOMAIN_EVENT_UNDEFINED = 1;
export const VIR_DOMAIN_EVENT_STARTED = 2;
export const VIR_DOMAIN_EVENT_SUSPENDED = 3;
export const VIR_DOMAIN_EVENT_RESUMED = 4;
export const VIR_DOMAIN_EVENT_STOPPED = 5;
export const VIR_DOMAIN_EVENT_SHUTDOWN = 6;
export const VIR_DOMAIN_EVENT_PMSUSPENDED = 7;
export const VIR_DOMAIN_EVENT_CRASHED = 8;

export const DOMAIN_EVENT_NAMES = [
  'defined',
  'undefined',
  'started',
  'suspended',
  'resumed',
  'stopped',
  'shutdown',
  'pmsuspended',
  'crashed',
] as const;

export type DomainEventName = (typeof DOMAIN_EVENT_NAMES)[number];

/** Detail names per event type (virDomainEvent*DetailType), lower-case. */
export const DOMAIN_EVENT_DETAIL_NAMES: readonly (readonly string[])[] = [
  ['added', 'updated', 'renamed', 'from-snapshot'],
  ['removed', 'renamed'],
  ['booted', 'migrated', 'restored', 'from-snapshot', 'wakeup'],
  ['paused', 'migrated', 'ioerror', 'watchdog', 'restored', 'from-snapshot', 'api-error', 'postcopy', 'postcopy-failed'],
  ['unpaused', 'migrated', 'from-snapshot', 'postcopy', 'postcopy-failed'],
  ['shutdown', 'destroyed', 'crashed', 'migrated', 'saved', 'failed', 'from-snapshot'],
  ['finished', 'guest', 'host'],
  ['memory', 'disk'],
  ['panicked', 'crashloaded'],
];

export function domainEventName(event: number): string {
  return DOMAIN_EVENT_NAMES[event] ?? `unknown-${event}`;
}

export function domainEventDetailName(event: number, detail: number): string {
  return DOMAIN_EVENT_DETAIL_NAMES[event]?.[detail] ?? `unknown-${detail}`;
}

// ---------------------------------------------------------------------------------------------
// Error codes (virterror.h: virErrorNumber) and error domains (virErrorDomain)
// ---------------------------------------------------------------------------------------------

export const VIR_ERR_OK = 0;
export const VIR_ERR_INTERNAL_ERROR = 1;
export const VIR_ERR_NO_MEMORY = 2;
export const VIR_ERR_NO_SUPPORT = 3;
export const VIR_ERR_NO_CONNECT = 5;
export const VIR_ERR_INVALID_CONN = 6;
export const VIR_ERR_INVALID_DOMAIN = 7;
export const VIR_ERR_INVALID_ARG = 8;
export const VIR_ERR_OPERATION_FAILED = 9;
export const VIR_ERR_XML_ERROR = 27;
export const VIR_ERR_DOM_EXIST = 28;
export const VIR_ERR_OPERATION_DENIED = 29;
export const VIR_ERR_OPEN_FAILED = 30;
export const VIR_ERR_INVALID_NETWORK = 36;
export const VIR_ERR_NETWORK_EXIST = 37;
export const VIR_ERR_SYSTEM_ERROR = 38;
export const VIR_ERR_RPC = 39;
export const VIR_ERR_NO_DOMAIN = 42;
export const VIR_ERR_NO_NETWORK = 43;
export const VIR_ERR_INVALID_MAC = 44;
export const VIR_ERR_AUTH_FAILED = 45;
export const VIR_ERR_INVALID_STORAGE_POOL = 46;
export const VIR_ERR_INVALID_STORAGE_VOL = 47;
export const VIR_ERR_NO_STORAGE_POOL = 49;
export const VIR_ERR_NO_STORAGE_VOL = 50;
export const VIR_ERR_OPERATION_INVALID = 55;
export const VIR_ERR_CONFIG_UNSUPPORTED = 67;
export const VIR_ERR_OPERATION_TIMEOUT = 68;
export const VIR_ERR_ARGUMENT_UNSUPPORTED = 74;
export const VIR_ERR_STORAGE_POOL_BUILT = 76;
export const VIR_ERR_OPERATION_ABORTED = 78;
export const VIR_ERR_OPERATION_UNSUPPORTED = 84;
export const VIR_ERR_RESOURCE_BUSY = 87;
export const VIR_ERR_ACCESS_DENIED = 88;
export const VIR_ERR_STORAGE_VOL_EXIST = 90;
export const VIR_ERR_XML_INVALID_SCHEMA = 92;
export const VIR_ERR_AUTH_UNAVAILABLE = 94;

export const VIR_FROM_NONE = 0;
export const VIR_FROM_RPC = 7;
export const VIR_FROM_QEMU = 10;
export const VIR_FROM_TEST = 12;
export const VIR_FROM_REMOTE = 13;
export const VIR_FROM_STORAGE = 18;
export const VIR_FROM_NETWORK = 19;
export const VIR_FROM_DOMAIN = 20;

// ---------------------------------------------------------------------------------------------
// Object references as they travel on the wire
// ---------------------------------------------------------------------------------------------

/** `remote_nonnull_domain`. `id` is -1 for an inactive domain. */
export interface Domain {
  name: string;
  uuid: string;
  id: number;
}

/** `remote_nonnull_network`. */
export interface Network {
  name: string;
  uuid: string;
}

/** `remote_nonnull_storage_pool`. */
export interface StoragePool {
  name: string;
  uuid: string;
}

/** `remote_nonnull_storage_vol`. For directory pools `key` is the file path. */
export interface StorageVol {
  pool: string;
  name: string;
  key: string;
}

export function writeUuid(w: XdrWriter, uuid: string): void {
  w.opaqueFixed(uuidToBytes(uuid), UUID_BYTES);
}

export function readUuid(r: XdrReader): string {
  return r.uuid();
}

export function writeNonnullString(w: XdrWriter, s: string): void {
  if (typeof s !== 'string') throw new XdrError(`expected a string, got ${typeof s}`);
  w.string(s, REMOTE_STRING_MAX);
}

export function readNonnullString(r: XdrReader): string {
  return r.string(REMOTE_STRING_MAX);
}

export function writeOptString(w: XdrWriter, s: string | null | undefined): void {
  w.optional(s, writeNonnullString);
}

export function readOptString(r: XdrReader): string | null {
  return r.optional(readNonnullString);
}

export function writeDomain(w: XdrWriter, d: Domain): void {
  writeNonnullString(w, d.name);
  writeUuid(w, d.uuid);
  w.int(d.id);
}

export function readDomain(r: XdrReader): Domain {
  return { name: readNonnullString(r), uuid: readUuid(r), id: r.int() };
}

export function writeNetwork(w: XdrWriter, n: Network): void {
  writeNonnullString(w, n.name);
  writeUuid(w, n.uuid);
}

export function readNetwork(r: XdrReader): Network {
  return { name: readNonnullString(r), uuid: readUuid(r) };
}

export function writeStoragePool(w: XdrWriter, p: StoragePool): void {
  writeNonnullString(w, p.name);
  writeUuid(w, p.uuid);
}

export function readStoragePool(r: XdrReader): StoragePool {
  return { name: readNonnullString(r), uuid: readUuid(r) };
}

export function writeStorageVol(w: XdrWriter, v: StorageVol): void {
  writeNonnullString(w, v.pool);
  writeNonnullString(w, v.name);
  writeNonnullString(w, v.key);
}

export function readStorageVol(r: XdrReader): StorageVol {
  return { pool: readNonnullString(r), name: readNonnullString(r), key: readNonnullString(r) };
}

// ---------------------------------------------------------------------------------------------
// Packet header and remote_error codecs
// ---------------------------------------------------------------------------------------------

export function writeHeader(w: XdrWriter, h: PacketHeader): void {
  w.uint(h.prog).uint(h.vers).int(h.proc).int(h.type).uint(h.serial).int(h.status);
}

export function readHeader(r: XdrReader): PacketHeader {
  return { prog: r.uint(), vers: r.uint(), proc: r.int(), type: r.int(), serial: r.uint(), status: r.int() };
}

/** Decoded `remote_error` (virNetMessageError). */
export interface RemoteError {
  code: number;
  domain: number;
  message: string | null;
  level: number;
  dom: Domain | null;
  str1: string | null;
  str2: string | null;
  str3: string | null;
  int1: number;
  int2: number;
  net: Network | null;
}

export function readRemoteError(r: XdrReader): RemoteError {
  return {
    code: r.int(),
    domain: r.int(),
    message: readOptString(r),
    level: r.int(),
    dom: r.optional(readDomain),
    str1: readOptString(r),
    str2: readOptString(r),
    str3: readOptString(r),
    int1: r.int(),
    int2: r.int(),
    net: r.optional(readNetwork),
  };
}

export function writeRemoteError(w: XdrWriter, e: RemoteError): void {
  w.int(e.code).int(e.domain);
  writeOptString(w, e.message);
  w.int(e.level);
  w.optional(e.dom, writeDomain);
  writeOptString(w, e.str1);
  writeOptString(w, e.str2);
  writeOptString(w, e.str3);
  w.int(e.int1).int(e.int2);
  w.optional(e.net, writeNetwork);
}
