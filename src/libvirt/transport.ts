/**
 * The packet layer of libvirt's RPC protocol over a stream socket (unix or TCP).
 *
 * - Framing: every packet is a 4-byte big-endian length (counting itself), a 24-byte header and a
 *   payload. The reader copes with packets split over many chunks and many packets in one chunk.
 * - Calls carry a serial number; any number of calls can be in flight, and replies (which the
 *   daemon may send in any order) are matched to their call by serial.
 * - Keepalive (program 0x6b656570): PINGs from the peer are answered with PONG at once; optionally
 *   this side pings the peer when the connection is idle and drops it when nothing has been heard
 *   for `intervalMs * count`.
 * - Async MESSAGE packets of other programs (events) are handed to `onMessage`.
 * - Streams (libvirt's stream protocol): a call made with `callStream` registers a
 *   {@link StreamSink} under its serial; after the call's reply, the STREAM / STREAM_HOLE packets
 *   (and error replies) with that serial go to the sink, and `sendStream` sends this side's.
 *   STREAM packets for a call made without one fail that call with a clear error.
 * - Replies with file descriptors fail the call they belong to with a clear error; unknown
 *   packets are ignored; nothing leaves a call hanging.
 * - When the socket dies, every pending call is rejected at once with a {@link ConnectionError};
 *   `closed` resolves and `onClose` fires.
 */
import { createConnection, type Socket } from 'node:net';
import { ConnectionError, type ConnectionErrorReason, LibvirtError } from './errors.js';
import {
  HEADER_BYTES,
  KEEPALIVE_PROC_PING,
  KEEPALIVE_PROC_PONG,
  KEEPALIVE_PROGRAM,
  KEEPALIVE_PROTOCOL_VERSION,
  LEN_BYTES,
  MAX_PACKET_BYTES,
  MessageStatus,
  MessageType,
  type PacketHeader,
  readHeader,
  readRemoteError,
  REMOTE_PROGRAM,
  REMOTE_PROTOCOL_VERSION,
  writeHeader,
} from './protocol.js';
import { XdrReader, XdrWriter } from './xdr.js';

/** The minimal socket surface the transport needs (a net.Socket, or a fake in tests). */
export interface PacketSocket {
  write(data: Uint8Array): boolean;
  destroy(err?: Error): void;
  end(): void;
  cork?(): void;
  uncork?(): void;
  on(event: 'data', fn: (chunk: Buffer) => void): unknown;
  on(event: 'close', fn: () => void): unknown;
  on(event: 'end', fn: () => void): unknown;
  on(event: 'error', fn: (err: Error) => void): unknown;
}

export interface TransportOptions {
  /** Default timeout of each call, ms; 0 = none. */
  callTimeoutMs?: number;
  /** Label used in error messages, e.g. the socket path or host:port. */
  label?: string;
}

export interface CallOptions {
  prog?: number;
  vers?: number;
  /** Procedure name used in error messages. */
  name?: string;
  /** Overrides the default call timeout; 0 = none. */
  timeoutMs?: number;
}

export interface IncomingMessage {
  header: PacketHeader;
  /** Payload (after the header). */
  body: Buffer;
}

/** Receives the stream packets of one stream call (see {@link Transport.callStream}). */
export interface StreamSink {
  /** A STREAM, STREAM_HOLE, or (error) REPLY packet with the stream's serial, after the call's reply. */
  onPacket(header: PacketHeader, body: Buffer): void;
  /** The connection ended. */
  onClose(err: ConnectionError): void;
  /** Told the stream's serial before the call is sent. */
  attach?(serial: number): void;
}

interface Pending {
  resolve: (body: Buffer) => void;
  reject: (err: Error) => void;
  name: string;
  timer: NodeJS.Timeout | undefined;
}

const PACKET_PREFIX = LEN_BYTES + HEADER_BYTES;

export class Transport {
  private readonly socket: PacketSocket;
  private readonly label: string;
  private readonly callTimeoutMs: number;
  private serial = 0;
  private readonly pending = new Map<number, Pending>();
  private readonly streams = new Map<number, StreamSink>();
  private drainWaiters: (() => void)[] = [];

  // Receive buffer: a list of chunks, so a big packet arriving in many chunks is copied once.
  private chunks: Buffer[] = [];
  private buffered = 0;

  private corked = false;
  private closedFlag = false;
  private closeError: ConnectionError | undefined;
  private resolveClosed!: (err: ConnectionError) => void;
  /** Resolves (never rejects) with the error that ended the connection. */
  readonly closed: Promise<ConnectionError>;

  private lastRx = Date.now();
  private keepaliveTimer: NodeJS.Timeout | undefined;

  /** Async messages (type MESSAGE) of programs other than keepalive, e.g. domain events. */
  onMessage: ((msg: IncomingMessage) => void) | undefined;
  /** Called once when the connection ends, with the reason. */
  onClose: ((err: ConnectionError) => void) | undefined;
  /** Called for packets that were ignored (unknown type, stray serial...), for diagnostics. */
  onIgnored: ((header: PacketHeader, why: string) => void) | undefined;

  constructor(socket: PacketSocket, opts: TransportOptions = {}) {
    this.socket = socket;
    this.label = opts.label ?? 'libvirt';
    this.callTimeoutMs = opts.callTimeoutMs ?? 0;
    this.closed = new Promise((resolve) => (this.resolveClosed = resolve));
    socket.on('data', (chunk) => this.onData(chunk));
    socket.on('error', (err) => this.fail('lost', `connection to ${this.label} failed: ${err.message}`, err));
    socket.on('end', () => this.fail('lost', `connection to ${this.label} closed by the peer`));
    socket.on('close', () => this.fail('lost', `connection to ${this.label} closed`));
    (socket as Partial<Socket>).on?.('drain', () => {
      this.needDrain = false;
      for (const w of this.drainWaiters.splice(0)) w();
    });
  }

  /** Opens a unix socket (`path`) or TCP connection (`host`, `port`). */
  static async connect(
    target: { path: string } | { host: string; port: number },
    opts: TransportOptions & { connectTimeoutMs?: number } = {},
  ): Promise<Transport> {
    const label = 'path' in target ? target.path : `${target.host}:${target.port}`;
    const timeoutMs = opts.connectTimeoutMs ?? 10_000;
    const socket: Socket = 'path' in target ? createConnection({ path: target.path }) : createConnection(target);
    await new Promise<void>((resolve, reject) => {
      const timer =
        timeoutMs > 0
          ? setTimeout(() => {
              socket.destroy();
              reject(new ConnectionError('connect', `connecting to ${label} timed out after ${timeoutMs} ms`));
            }, timeoutMs)
          : undefined;
      socket.once('connect', () => {
        clearTimeout(timer);
        socket.removeAllListeners('error');
        resolve();
      });
      socket.once('error', (err: NodeJS.ErrnoException) => {
        clearTimeout(timer);
        socket.destroy();
        const hint =
          err.code === 'ENOENT' || err.code === 'ECONNREFUSED'
            ? ' (is libvirtd running?)'
            : err.code === 'EACCES'
              ? ' (permission denied: try the read-only socket or run as a user allowed to manage libvirt)'
              : '';
        reject(new ConnectionError('connect', `cannot connect to libvirt at ${label}: ${err.message}${hint}`, { cause: err }));
      });
    });
    if (!('path' in target)) socket.setNoDelay(true);
    return new Transport(socket, { ...opts, label: opts.label ?? label });
  }

  get isOpen(): boolean {
    return !this.closedFlag;
  }

  get pendingCount(): number {
    return this.pending.size;
  }

  /** The error that ended the connection, once it has ended. */
  get error(): ConnectionError | undefined {
    return this.closeError;
  }

  /**
   * Sends a call and resolves with the reply payload. `encode` writes the arguments.
   * Rejects with {@link LibvirtError} when the daemon answers with an error, with
   * {@link ConnectionError} when the connection fails or the call times out.
   */
  call(proc: number, encode?: (w: XdrWriter) => void, opts: CallOptions = {}): Promise<Buffer> {
    return this.callInternal(proc, encode, opts).promise;
  }

  /**
   * Sends a call that opens a stream: like {@link call}, and the stream's later packets (same
   * serial) go to `sink`. Resolves with the call's reply body and the serial to send stream
   * packets with; on an error reply the sink is dropped.
   */
  async callStream(
    proc: number,
    encode: ((w: XdrWriter) => void) | undefined,
    sink: StreamSink,
    opts: CallOptions = {},
  ): Promise<{ body: Buffer; serial: number }> {
    const { promise, serial } = this.callInternal(proc, encode, opts, sink);
    try {
      return { body: await promise, serial };
    } catch (err) {
      this.streams.delete(serial);
      throw err;
    }
  }

  /** Sends one packet of a stream; returns false when the socket's buffer is full (see {@link drained}). */
  sendStream(proc: number, serial: number, type: number, status: number, payload?: Uint8Array | ((w: XdrWriter) => void)): boolean {
    if (this.closedFlag) return false;
    const header = { prog: REMOTE_PROGRAM, vers: REMOTE_PROTOCOL_VERSION, proc, type, serial, status };
    const packet =
      typeof payload === 'function' || payload === undefined
        ? buildPacket(header, payload)
        : buildPacket(header, undefined, payload);
    this.send(packet);
    return !this.needDrain;
  }

  private needDrain = false;

  /** Resolves when the socket can take more data (at once if it can), or the connection ended. */
  drained(): Promise<void> {
    if (!this.needDrain || this.closedFlag) return Promise.resolve();
    return new Promise((resolve) => this.drainWaiters.push(resolve));
  }

  /** Stops routing a stream's packets (after it finished or was aborted). */
  endStream(serial: number): void {
    this.streams.delete(serial);
  }

  private callInternal(
    proc: number,
    encode: ((w: XdrWriter) => void) | undefined,
    opts: CallOptions,
    sink?: StreamSink,
  ): { promise: Promise<Buffer>; serial: number } {
    const name = opts.name ?? `proc${proc}`;
    if (this.closedFlag) {
      const e = new ConnectionError(this.closeError?.reason ?? 'closed', `${name}: ${this.closeError?.message ?? 'connection is closed'}`);
      e.procedure = name;
      return { promise: Promise.reject(e), serial: 0 };
    }
    this.serial = (this.serial + 1) >>> 0;
    if (this.serial === 0) this.serial = 1;
    const serial = this.serial;
    let packet: Buffer;
    try {
      packet = buildPacket(
        {
          prog: opts.prog ?? REMOTE_PROGRAM,
          vers: opts.vers ?? REMOTE_PROTOCOL_VERSION,
          proc,
          type: MessageType.CALL,
          serial,
          status: MessageStatus.OK,
        },
        encode,
      );
    } catch (err) {
      return { promise: Promise.reject(err), serial };
    }
    if (sink) {
      this.streams.set(serial, sink);
      sink.attach?.(serial);
    }
    const promise = new Promise<Buffer>((resolve, reject) => {
      const timeoutMs = opts.timeoutMs ?? this.callTimeoutMs;
      const entry: Pending = { resolve, reject, name, timer: undefined };
      if (timeoutMs > 0) {
        entry.timer = setTimeout(() => {
          if (this.pending.get(serial) !== entry) return;
          this.pending.delete(serial);
          const e = new ConnectionError('timeout', `${name}: no reply from ${this.label} within ${timeoutMs} ms`);
          e.procedure = name;
          reject(e);
        }, timeoutMs);
      }
      this.pending.set(serial, entry);
      this.send(packet);
    });
    return { promise, serial };
  }

  /** Sends a packet without expecting a reply (keepalive, or tests). */
  sendMessage(header: Omit<PacketHeader, 'serial'> & { serial?: number }, encode?: (w: XdrWriter) => void): void {
    if (this.closedFlag) return;
    this.send(buildPacket({ serial: 0, ...header }, encode));
  }

  private send(packet: Buffer): void {
    // Batch the packets of calls issued in the same tick into one write.
    if (!this.corked && this.socket.cork && this.socket.uncork) {
      this.corked = true;
      this.socket.cork();
      process.nextTick(() => {
        this.corked = false;
        this.socket.uncork?.();
      });
    }
    if (!this.socket.write(packet)) this.needDrain = true;
  }

  /**
   * Starts client-side keepalive: when nothing has been received for `intervalMs`, send a PING;
   * when nothing has been received for `intervalMs * count`, drop the connection.
   */
  startKeepalive(intervalMs: number, count: number): void {
    this.stopKeepalive();
    if (intervalMs <= 0 || this.closedFlag) return;
    const tick = Math.max(10, Math.min(intervalMs, 1000));
    this.keepaliveTimer = setInterval(() => {
      const idle = Date.now() - this.lastRx;
      if (idle >= intervalMs * Math.max(1, count)) {
        this.fail('keepalive', `no data from ${this.label} for ${idle} ms (keepalive timeout): connection considered dead`);
      } else if (idle >= intervalMs) {
        this.sendMessage({
          prog: KEEPALIVE_PROGRAM,
          vers: KEEPALIVE_PROTOCOL_VERSION,
          proc: KEEPALIVE_PROC_PING,
          type: MessageType.MESSAGE,
          status: MessageStatus.OK,
        });
      }
    }, tick);
    this.keepaliveTimer.unref();
  }

  stopKeepalive(): void {
    if (this.keepaliveTimer) clearInterval(this.keepaliveTimer);
    this.keepaliveTimer = undefined;
  }

  /** Closes the connection; pending calls are rejected with reason 'closed'. */
  close(): void {
    if (this.closedFlag) return;
    this.fail('closed', 'connection closed by the client');
  }

  // -------------------------------------------------------------------------------------------
  // Receiving
  // -------------------------------------------------------------------------------------------

  private onData(chunk: Buffer): void {
    if (this.closedFlag) return;
    this.lastRx = Date.now();
    this.chunks.push(chunk);
    this.buffered += chunk.length;
    while (this.buffered >= LEN_BYTES) {
      const len = this.peekLength();
      if (len < PACKET_PREFIX || len > MAX_PACKET_BYTES) {
        this.fail('protocol', `bad packet length ${len} from ${this.label}: stream is not libvirt RPC or is corrupt`);
        return;
      }
      if (this.buffered < len) break;
      const packet = this.take(len);
      try {
        this.onPacket(packet);
      } catch (err) {
        this.fail('protocol', `cannot process a packet from ${this.label}: ${(err as Error).message}`, err);
        return;
      }
      if (this.closedFlag) return;
    }
  }

  private peekLength(): number {
    const first = this.chunks[0]!;
    if (first.length >= LEN_BYTES) return first.readUInt32BE(0);
    const head = Buffer.alloc(LEN_BYTES);
    let got = 0;
    for (const c of this.chunks) {
      const n = Math.min(c.length, LEN_BYTES - got);
      c.copy(head, got, 0, n);
      got += n;
      if (got === LEN_BYTES) break;
    }
    return head.readUInt32BE(0);
  }

  private take(len: number): Buffer {
    const first = this.chunks[0]!;
    let out: Buffer;
    if (first.length >= len) {
      out = first.subarray(0, len);
      if (first.length === len) this.chunks.shift();
      else this.chunks[0] = first.subarray(len);
    } else {
      out = Buffer.allocUnsafe(len);
      let got = 0;
      while (got < len) {
        const c = this.chunks[0]!;
        const n = Math.min(c.length, len - got);
        c.copy(out, got, 0, n);
        got += n;
        if (n === c.length) this.chunks.shift();
        else this.chunks[0] = c.subarray(n);
      }
    }
    this.buffered -= len;
    return out;
  }

  private onPacket(packet: Buffer): void {
    const header = readHeader(new XdrReader(packet, LEN_BYTES, PACKET_PREFIX));
    const body = packet.subarray(PACKET_PREFIX);

    if (header.prog === KEEPALIVE_PROGRAM) {
      if (header.type === MessageType.MESSAGE && header.proc === KEEPALIVE_PROC_PING) {
        this.sendMessage({
          prog: KEEPALIVE_PROGRAM,
          vers: KEEPALIVE_PROTOCOL_VERSION,
          proc: KEEPALIVE_PROC_PONG,
          type: MessageType.MESSAGE,
          status: MessageStatus.OK,
        });
      }
      // PONG: receiving it already refreshed lastRx.
      return;
    }

    if (header.type === MessageType.REPLY || header.type === MessageType.STREAM || header.type === MessageType.STREAM_HOLE) {
      const sink = this.streams.get(header.serial);
      if (sink && !(header.type === MessageType.REPLY && this.pending.has(header.serial))) {
        sink.onPacket(header, body);
        return;
      }
    }

    switch (header.type) {
      case MessageType.REPLY: {
        const p = this.takePending(header);
        if (!p) return;
        if (header.status === MessageStatus.OK) {
          p.resolve(body);
        } else if (header.status === MessageStatus.ERROR) {
          p.reject(decodeError(body, p.name));
        } else {
          p.reject(this.protocolError(p.name, `reply with unexpected status ${header.status}`));
        }
        return;
      }
      case MessageType.REPLY_WITH_FDS: {
        const p = this.takePending(header);
        if (p) p.reject(this.protocolError(p.name, 'the reply carries file descriptors, which this client cannot receive'));
        return;
      }
      case MessageType.MESSAGE:
        if (this.onMessage) this.onMessage({ header, body });
        else this.onIgnored?.(header, 'no message handler');
        return;
      case MessageType.STREAM:
      case MessageType.STREAM_HOLE: {
        const p = this.takePending(header, false);
        if (p) p.reject(this.protocolError(p.name, 'the daemon sent stream data, which this client does not support'));
        else this.onIgnored?.(header, 'stream packet for no pending call');
        return;
      }
      default:
        this.onIgnored?.(header, `packet type ${header.type} not handled`);
    }
  }

  private takePending(header: PacketHeader, reportMissing = true): Pending | undefined {
    const p = this.pending.get(header.serial);
    if (!p) {
      if (reportMissing) this.onIgnored?.(header, `no pending call with serial ${header.serial}`);
      return undefined;
    }
    this.pending.delete(header.serial);
    clearTimeout(p.timer);
    return p;
  }

  private protocolError(name: string, msg: string): ConnectionError {
    const e = new ConnectionError('protocol', `${name}: ${msg}`);
    e.procedure = name;
    return e;
  }

  // -------------------------------------------------------------------------------------------
  // Failure
  // -------------------------------------------------------------------------------------------

  private fail(reason: ConnectionErrorReason, message: string, cause?: unknown): void {
    if (this.closedFlag) return;
    this.closedFlag = true;
    const err = new ConnectionError(reason, message, cause === undefined ? undefined : { cause });
    this.closeError = err;
    this.stopKeepalive();
    const pending = [...this.pending.values()];
    this.pending.clear();
    for (const p of pending) {
      clearTimeout(p.timer);
      const detail =
        reason === 'closed'
          ? 'connection closed by the client before the reply arrived'
          : `${message} (the call was in flight; its outcome on the host is unknown)`;
      const e = new ConnectionError(reason, `${p.name}: ${detail}`, { cause: err });
      e.procedure = p.name;
      p.reject(e);
    }
    const streams = [...this.streams.values()];
    this.streams.clear();
    for (const s of streams) s.onClose(err);
    for (const w of this.drainWaiters.splice(0)) w();
    this.chunks = [];
    this.buffered = 0;
    if (reason === 'closed') {
      this.socket.end();
      // Give the FIN a moment, then make sure the socket is gone.
      setTimeout(() => this.socket.destroy(), 1000).unref();
    } else {
      this.socket.destroy();
    }
    this.resolveClosed(err);
    this.onClose?.(err);
  }
}

/** Encodes one packet: length, header, payload (XDR written by `encode`, or raw bytes: stream data). */
export function buildPacket(header: PacketHeader, encode?: (w: XdrWriter) => void, raw?: Uint8Array): Buffer {
  const w = new XdrWriter(raw ? PACKET_PREFIX + raw.length : 256, LEN_BYTES);
  writeHeader(w, header);
  if (encode) encode(w);
  if (raw) w.bytes(raw);
  const len = w.length;
  if (len > MAX_PACKET_BYTES) throw new ConnectionError('protocol', `packet of ${len} bytes exceeds the limit ${MAX_PACKET_BYTES}`);
  w.patchUint(0, len);
  return w.finish();
}

/** Decodes a `remote_error` payload into a {@link LibvirtError}. */
export function decodeError(body: Buffer, procedure?: string): LibvirtError {
  try {
    const e = readRemoteError(new XdrReader(body));
    return new LibvirtError(e, procedure);
  } catch (err) {
    return new LibvirtError(
      {
        code: 0,
        domain: 0,
        message: `undecodable error reply (${(err as Error).message})`,
        level: 2,
        str1: null,
        str2: null,
        str3: null,
        int1: 0,
        int2: 0,
      },
      procedure,
    );
  }
}
