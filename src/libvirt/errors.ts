/**
 * Errors raised by the libvirt RPC client.
 *
 * - {@link LibvirtError}: the daemon answered a call with an error (the decoded `remote_error`).
 *   The connection is still usable.
 * - {@link ConnectionError}: the connection could not be made, was lost, timed out, or the peer
 *   broke the protocol. `reason` says which.
 * - {@link XdrError}: a payload could not be encoded or decoded.
 */

/** `virErrorLevel` (generated from virterror.h). */
export { VIR_ERR_ERROR, VIR_ERR_NONE, VIR_ERR_WARNING } from './generated/constants.js';

/** The `remote_error` struct as sent by the daemon (see `virNetMessageError`). */
export interface RemoteErrorFields {
  code: number;
  domain: number;
  message: string | null;
  level: number;
  str1: string | null;
  str2: string | null;
  str3: string | null;
  int1: number;
  int2: number;
}

/** An error reported by libvirt for one call. */
export class LibvirtError extends Error {
  /** libvirt's `virErrorNumber`, e.g. 42 = VIR_ERR_NO_DOMAIN. */
  readonly code: number;
  /** libvirt's `virErrorDomain` (which subsystem raised it), e.g. 10 = VIR_FROM_QEMU. */
  readonly domain: number;
  readonly level: number;
  readonly str1: string | null;
  readonly str2: string | null;
  readonly str3: string | null;
  readonly int1: number;
  readonly int2: number;
  /** The procedure whose call failed, when known (camelCase, e.g. `domainLookupByName`). */
  procedure?: string;

  constructor(fields: RemoteErrorFields, procedure?: string) {
    super(fields.message ?? `libvirt error code ${fields.code}`);
    this.name = 'LibvirtError';
    this.code = fields.code;
    this.domain = fields.domain;
    this.level = fields.level;
    this.str1 = fields.str1;
    this.str2 = fields.str2;
    this.str3 = fields.str3;
    this.int1 = fields.int1;
    this.int2 = fields.int2;
    if (procedure !== undefined) this.procedure = procedure;
  }
}

export type ConnectionErrorReason =
  /** The socket could not be opened, or the handshake (auth, connect-open) failed. */
  | 'connect'
  /** The connection was closed by the client (`close()`). */
  | 'closed'
  /** The peer closed the connection or the socket failed. */
  | 'lost'
  /** A call did not get its reply in time. The connection itself may still be usable. */
  | 'timeout'
  /** Keepalive: nothing was heard from the peer for too long; the connection was dropped. */
  | 'keepalive'
  /** The peer sent something this client cannot handle (bad framing, unexpected packet). */
  | 'protocol';

/** The connection failed, or a call could not be completed because of the connection. */
export class ConnectionError extends Error {
  readonly reason: ConnectionErrorReason;
  /** The procedure whose call failed, when the error was raised for one call. */
  procedure?: string;

  constructor(reason: ConnectionErrorReason, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'ConnectionError';
    this.reason = reason;
  }
}

/**
 * A stream waited on the daemon longer than its no-progress timeout and was aborted. The
 * connection itself is fine (it is not a {@link ConnectionError}): the operation failed.
 */
export class StreamStalledError extends Error {
  procedure?: string;
  constructor(message: string) {
    super(message);
    this.name = 'StreamStalledError';
  }
}

/** XDR encoding or decoding failed (malformed or truncated data, value out of range). */
export class XdrError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'XdrError';
  }
}

export function isLibvirtError(err: unknown, code?: number): err is LibvirtError {
  return err instanceof LibvirtError && (code === undefined || err.code === code);
}
