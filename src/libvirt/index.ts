/**
 * Pure-TypeScript client of libvirt's remote RPC protocol. Self-contained: imports nothing from
 * the rest of virtform (only Node built-ins), so it can be published on its own.
 */
export {
  type CallInfo,
  type ConnectOptions,
  type DomainInfo,
  type DomainState,
  LibvirtClient,
  type LibvirtClientEvents,
  type ProcedureStats,
  type StoragePoolInfo,
  type StorageVolInfo,
  type VolStreamOptions,
} from './client.js';
export {
  ConnectionError,
  type ConnectionErrorReason,
  StreamStalledError,
  isLibvirtError,
  LibvirtError,
  type RemoteErrorFields,
  XdrError,
} from './errors.js';
export { DomainEventSubscription, type DomainLifecycleEvent } from './events.js';
export { LibvirtStream, type LibvirtStreamOptions, type StreamHole } from './stream.js';
export * from './protocol.js';
export { buildPacket, decodeError, type IncomingMessage, type PacketSocket, type StreamSink, Transport } from './transport.js';
export { DEFAULT_SOCKET, DEFAULT_SOCKET_RO, parseUri, type ParsedUri, redactUri, socketPathFor, UriError } from './uri.js';
export { checkTransportSecurity, isLoopbackHost, TransportSecurityError } from './security.js';
export { diagnoseSsh, sshArgv, sshRemoteCommand } from './ssh.js';
export { tlsCredentialPaths } from './tls.js';
export { safeNumber, UUID_BYTES, uuidToBytes, uuidToString, XdrReader, XdrWriter } from './xdr.js';
