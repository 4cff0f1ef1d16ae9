/**
 * libvirt RPC protocol: everything generated from libvirt's sources (src/libvirt/generated/, by
 * scripts/gen-protocol.ts: the procedure table, every struct's codec, the `VIR_*` and `REMOTE_*`
 * constants), re-exported, plus the few things libvirt's public protocol files do not define:
 *
 * - the names of the packet layer this client uses (LEN_BYTES, MessageType, ...), spelled as the
 *   generated virnetprotocol.x constants;
 * - VIR_DRV_FEATURE_* (libvirt_internal.h, not a public header);
 * - the state and event names `virsh` prints (virsh's own tables, not the headers);
 * - short aliases of the generated codecs the rest of virtform and its tests use
 *   (`Domain` = `RemoteNonnullDomain`, `readDomain` = `readRemoteNonnullDomain`, ...).
 */
import {
  readRemoteNonnullDomain,
  readRemoteNonnullNetwork,
  readRemoteNonnullStoragePool,
  readRemoteNonnullStorageVol,
  readRemoteNonnullString,
  readRemoteString,
  readRemoteUuid,
  readVirNetMessageError,
  readVirNetMessageHeader,
  type RemoteNonnullDomain,
  type RemoteNonnullNetwork,
  type RemoteNonnullStoragePool,
  type RemoteNonnullStorageVol,
  PROCEDURE_NAMES,
  VIR_NET_CALL,
  VIR_NET_CALL_WITH_FDS,
  VIR_NET_CONTINUE,
  VIR_NET_ERROR,
  VIR_NET_MESSAGE,
  VIR_NET_MESSAGE_HEADER_MAX,
  VIR_NET_MESSAGE_LEN_MAX,
  VIR_NET_OK,
  VIR_NET_REPLY,
  VIR_NET_REPLY_WITH_FDS,
  VIR_NET_STREAM,
  VIR_NET_STREAM_HOLE,
  type VirNetMessageError,
  type VirNetMessageHeader,
  writeRemoteNonnullDomain,
  writeRemoteNonnullNetwork,
  writeRemoteNonnullStoragePool,
  writeRemoteNonnullStorageVol,
  writeRemoteNonnullString,
  writeRemoteString,
  writeRemoteUuid,
  writeVirNetMessageError,
  writeVirNetMessageHeader,
} from './generated/index.js';

export * from './generated/index.js';

// ---------------------------------------------------------------------------------------------
// Packet layer (virnetprotocol.x)
// ---------------------------------------------------------------------------------------------

/** Bytes of the length word that starts every packet (the length counts itself). */
export const LEN_BYTES = VIR_NET_MESSAGE_LEN_MAX;
/** Bytes of `virNetMessageHeader`. */
export const HEADER_BYTES = VIR_NET_MESSAGE_HEADER_MAX;
/**
 * Largest packet this client accepts. libvirt's own limit (VIR_NET_MESSAGE_MAX) is 16 MiB in older
 * releases and 32 MiB in newer ones; anything bigger is treated as a framing error.
 */
export const MAX_PACKET_BYTES = 64 * 1024 * 1024;

export const MessageType = {
  CALL: VIR_NET_CALL,
  REPLY: VIR_NET_REPLY,
  MESSAGE: VIR_NET_MESSAGE,
  STREAM: VIR_NET_STREAM,
  CALL_WITH_FDS: VIR_NET_CALL_WITH_FDS,
  REPLY_WITH_FDS: VIR_NET_REPLY_WITH_FDS,
  STREAM_HOLE: VIR_NET_STREAM_HOLE,
} as const;

export const MessageStatus = {
  OK: VIR_NET_OK,
  ERROR: VIR_NET_ERROR,
  CONTINUE: VIR_NET_CONTINUE,
} as const;

export type PacketHeader = VirNetMessageHeader;
export const writeHeader = writeVirNetMessageHeader;
export const readHeader = readVirNetMessageHeader;

/** Decoded `remote_error` (virNetMessageError). */
export type RemoteError = VirNetMessageError;
export const readRemoteError = readVirNetMessageError;
export const writeRemoteError = writeVirNetMessageError;

/** Default TCP port of libvirtd (`listen_tcp`). */
export const LIBVIRTD_TCP_PORT = 16509;
/** libvirtd's TLS port (`listen_tls`). */
export const LIBVIRTD_TLS_PORT = 16514;

export function procedureName(proc: number): string {
  return PROCEDURE_NAMES.get(proc) ?? `proc${proc}`;
}

// ---------------------------------------------------------------------------------------------
// virConnectSupportsFeature features (libvirt_internal.h: not a public header)
// ---------------------------------------------------------------------------------------------

export const VIR_DRV_FEATURE_PROGRAM_KEEPALIVE = 10;
export const VIR_DRV_FEATURE_REMOTE_EVENT_CALLBACK = 14;
export const VIR_DRV_FEATURE_NETWORK_UPDATE_HAS_CORRECT_ORDER = 16;

// ---------------------------------------------------------------------------------------------
// Names as virsh prints them
// ---------------------------------------------------------------------------------------------

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
// Object references as they travel on the wire, and their codecs (generated; short names)
// ---------------------------------------------------------------------------------------------

/** `remote_nonnull_domain`. `id` is -1 for an inactive domain. */
export type Domain = RemoteNonnullDomain;
/** `remote_nonnull_network`. */
export type Network = RemoteNonnullNetwork;
/** `remote_nonnull_storage_pool`. */
export type StoragePool = RemoteNonnullStoragePool;
/** `remote_nonnull_storage_vol`. For directory pools `key` is the file path. */
export type StorageVol = RemoteNonnullStorageVol;

export const writeUuid = writeRemoteUuid;
export const readUuid = readRemoteUuid;
export const writeNonnullString = writeRemoteNonnullString;
export const readNonnullString = readRemoteNonnullString;
export const writeOptString = writeRemoteString;
export const readOptString = readRemoteString;
export const writeDomain = writeRemoteNonnullDomain;
export const readDomain = readRemoteNonnullDomain;
export const writeNetwork = writeRemoteNonnullNetwork;
export const readNetwork = readRemoteNonnullNetwork;
export const writeStoragePool = writeRemoteNonnullStoragePool;
export const readStoragePool = readRemoteNonnullStoragePool;
export const writeStorageVol = writeRemoteNonnullStorageVol;
export const readStorageVol = readRemoteNonnullStorageVol;
