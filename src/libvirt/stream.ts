/**
 * libvirt's stream protocol (hand-written: the framing is not in the .x files), as a Node Duplex.
 *
 * After the reply to a stream-opening call (storage-vol-upload/-download, domain-open-console...),
 * both sides exchange packets with the call's procedure and serial:
 * - STREAM, status CONTINUE: raw data bytes (no XDR framing), at most
 *   VIR_NET_MESSAGE_LEGACY_PAYLOAD_MAX per packet;
 * - STREAM_HOLE, status CONTINUE: a `virNetStreamHole` (a run of zeros of `length` bytes), only on
 *   sparse streams (VIR_STORAGE_VOL_UPLOAD_SPARSE_STREAM / ..._DOWNLOAD_SPARSE_STREAM);
 * - STREAM with no payload: end of data. This side finishes with an empty STREAM/OK and the
 *   daemon confirms with an empty STREAM/OK; the daemon ends a download with an empty
 *   STREAM/CONTINUE, which this side answers with its finish, as virStreamFinish does, and waits
 *   for the confirmation (libvirt's client, too, takes any empty STREAM packet as the end);
 * - STREAM (or REPLY), status ERROR: a `remote_error`, the stream failed; this side aborts with an
 *   empty STREAM/ERROR.
 *
 * Writable side (object mode): Buffers / Uint8Arrays are data; `{ hole: n }` objects are holes (or
 * use `writeHole`). With `detectHoles: n` on a sparse stream, runs of at least n zero bytes in the
 * data are sent as holes. `end()` finishes the stream and completes ('finish') once the daemon
 * confirmed it, i.e. the data is on the volume.
 * Readable side: the data, and holes as zero bytes (default) or, with `holes: 'objects'`, as
 * `{ hole: n }` objects (object mode) so a consumer can write a sparse file.
 *
 * A stream always ends: with the daemon's error (which may arrive at any time, also while this
 * side is still sending or waits for the socket to drain: the pending write fails at once), with
 * success, or, with `idleTimeoutMs`, with a timeout when it waits on the daemon (a write the
 * socket does not take, the finish's confirmation, data asked for on a download) and nothing
 * arrives or leaves for that long; it then aborts the stream on the daemon.
 */
import { Duplex } from 'node:stream';
import { type ConnectionError, StreamStalledError } from './errors.js';
import {
  MessageStatus,
  MessageType,
  type PacketHeader,
  readVirNetStreamHole,
  VIR_NET_MESSAGE_LEGACY_PAYLOAD_MAX,
  writeVirNetStreamHole,
} from './protocol.js';
import { decodeError, type StreamSink, type Transport } from './transport.js';
import { XdrReader } from './xdr.js';

export interface StreamHole {
  hole: number;
}

export interface LibvirtStreamOptions {
  /** The stream was opened with the procedure's sparse flag: holes may be sent and received. */
  sparse?: boolean;
  /** How received holes are handed on: as zero bytes (default) or as `{ hole: n }` objects. */
  holes?: 'zeros' | 'objects';
  /** On a sparse stream, send runs of at least this many zero bytes in written data as holes (0 = off). */
  detectHoles?: number;
  /**
   * Fail the stream (StreamStalledError) when it has waited on the daemon this long with no
   * progress: no packet of the stream received, no data taken by the socket. 0 or absent = never
   * (a console may be silent for hours). Waiting on the caller (no data written yet) is not counted.
   */
  idleTimeoutMs?: number;
}

const MAX_CHUNK = VIR_NET_MESSAGE_LEGACY_PAYLOAD_MAX;
const ZERO_CHUNK = 1024 * 1024;

/** @internal What the stream needs from the client and transport. */
export interface StreamIo {
  transport: Transport;
  proc: number;
  name: string;
  /** Data flows from the daemon (a download): a read asked for and not answered counts as waiting. */
  download?: boolean;
}

export class LibvirtStream extends Duplex implements StreamSink {
  /** The procedure that opened the stream (camelCase). */
  readonly procedure: string;
  private readonly io: StreamIo;
  private serial = 0;
  private readonly sparse: boolean;
  private readonly holesAsObjects: boolean;
  private readonly detectHoles: number;
  /** Packets that arrived before the serial was known to this object are not possible: the sink is registered first. */
  private finishSent = false;
  private done = false;
  private confirm: { resolve: () => void; reject: (e: Error) => void } | undefined;
  private remoteError: Error | undefined;
  /** The callback of the write that waits for the socket to drain (called exactly once). */
  private pendingWrite: ((err?: Error | null) => void) | undefined;
  /** A read was asked for and nothing was pushed since (downloads). */
  private readWanted = false;
  private readonly idleTimeoutMs: number;
  private lastProgress = Date.now();
  private watchdog: NodeJS.Timeout | undefined;
  /** Bytes received (data and holes) and sent (data and holes). */
  bytesIn = 0;
  bytesOut = 0;

  constructor(io: StreamIo, opts: LibvirtStreamOptions = {}) {
    const holesAsObjects = opts.holes === 'objects';
    super({ writableObjectMode: true, readableObjectMode: holesAsObjects, allowHalfOpen: true });
    this.io = io;
    this.procedure = io.name;
    this.sparse = !!opts.sparse;
    this.holesAsObjects = holesAsObjects;
    this.detectHoles = this.sparse ? Math.max(0, opts.detectHoles ?? 0) : 0;
    this.idleTimeoutMs = Math.max(0, opts.idleTimeoutMs ?? 0);
    // Whoever reads or writes the stream sees its error (pipeline, async iteration, the write
    // callbacks); one left behind unread (its connection closed under it) must not crash the
    // process with an unhandled 'error' event.
    this.on('error', (e: Error) => {
      this.lastError = e;
    });
  }

  /** The last error the stream ended with (kept; also delivered to its readers and writers). */
  lastError: Error | undefined;

  /** @internal Told the serial before the opening call is sent. */
  attach(serial: number): void {
    this.serial = serial;
    this.lastProgress = Date.now();
    if (this.idleTimeoutMs > 0 && !this.watchdog) {
      this.watchdog = setInterval(() => this.checkIdle(), Math.max(10, Math.min(1000, Math.floor(this.idleTimeoutMs / 4))));
      this.watchdog.unref();
    }
  }

  /** Whether this side waits on the daemon (not on its own caller). */
  private get waiting(): boolean {
    return this.pendingWrite !== undefined || this.confirm !== undefined || (this.io.download === true && this.readWanted);
  }

  private checkIdle(): void {
    if (this.done) return this.stopWatchdog();
    if (!this.waiting) {
      this.lastProgress = Date.now();
      return;
    }
    const idle = Date.now() - this.lastProgress;
    if (idle < this.idleTimeoutMs) return;
    const what = this.confirm ? 'the confirmation of its end' : this.pendingWrite ? 'the daemon to take more data' : 'data from the daemon';
    const e = new StreamStalledError(`${this.procedure}: no progress for ${Math.round(idle / 1000)} s waiting for ${what}: stream aborted`);
    e.procedure = this.procedure;
    this.abort(e);
  }

  private stopWatchdog(): void {
    if (this.watchdog) clearInterval(this.watchdog);
    this.watchdog = undefined;
  }

  /** Fails the stream from this side: tells the daemon to drop it, and ends with `err`. */
  private abort(err: Error): void {
    if (this.done) return;
    if (this.serial) this.io.transport.sendStream(this.io.proc, this.serial, MessageType.STREAM, MessageStatus.ERROR);
    this.finishSent = true;
    this.failRemote(err);
  }

  /** Sends a hole of `length` zero bytes (sparse streams), in order with written data. */
  writeHole(length: number, cb?: (err?: Error | null) => void): boolean {
    return this.write({ hole: length } satisfies StreamHole, cb);
  }

  // --- StreamSink ------------------------------------------------------------------------------

  /** @internal */
  onPacket(header: PacketHeader, body: Buffer): void {
    if (this.done) return;
    this.lastProgress = Date.now();
    if (header.status === MessageStatus.ERROR) {
      this.failRemote(decodeError(body, this.procedure));
      return;
    }
    if (header.type === MessageType.STREAM_HOLE) {
      if (!this.sparse) {
        this.failRemote(new Error(`${this.procedure}: the daemon sent a hole on a stream not opened as sparse`));
        return;
      }
      let length: number;
      try {
        length = Number(readVirNetStreamHole(new XdrReader(body)).length);
      } catch (err) {
        this.failRemote(err as Error);
        return;
      }
      this.bytesIn += length;
      this.readWanted = false;
      if (this.holesAsObjects) this.push({ hole: length } satisfies StreamHole);
      else for (let left = length; left > 0; left -= ZERO_CHUNK) this.push(Buffer.alloc(Math.min(left, ZERO_CHUNK)));
      return;
    }
    if (header.type !== MessageType.STREAM) return;
    if (body.length > 0) {
      this.bytesIn += body.length;
      this.readWanted = false;
      this.push(body);
      return;
    }
    // No payload: end of the stream (libvirt's client treats it so whatever the status: the
    // daemon ends a download with an empty CONTINUE packet, and confirms a finish with an empty OK).
    if (this.finishSent) {
      // The daemon confirmed our finish (or abort).
      this.close();
      const c = this.confirm;
      this.confirm = undefined;
      c?.resolve();
      this.push(null);
      return;
    }
    // End of the daemon's data: answer with our finish and wait for its confirmation.
    this.sendFinish().then(
      () => this.push(null),
      (err: Error) => this.destroy(err),
    );
  }

  /** @internal */
  onClose(err: ConnectionError): void {
    if (this.done) return;
    this.failRemote(err);
  }

  // --- Duplex ----------------------------------------------------------------------------------

  override _read(): void {
    // The daemon sends at its own pace; data is buffered until read.
    if (!this.readWanted) this.lastProgress = Date.now();
    this.readWanted = true;
  }

  override _write(chunk: unknown, _enc: BufferEncoding, cb: (err?: Error | null) => void): void {
    if (this.remoteError) return cb(this.remoteError);
    if (this.finishSent || this.done) return cb(new Error(`${this.procedure}: write after the stream finished`));
    let ok = true;
    try {
      if (chunk && typeof chunk === 'object' && 'hole' in chunk) {
        ok = this.sendHole((chunk as StreamHole).hole);
      } else if (chunk instanceof Uint8Array || typeof chunk === 'string') {
        const buf = typeof chunk === 'string' ? Buffer.from(chunk) : chunk;
        ok = this.detectHoles > 0 ? this.sendSparse(buf) : this.sendData(buf);
      } else {
        return cb(new TypeError(`${this.procedure}: stream chunks are Buffers, Uint8Arrays, strings or { hole: n }`));
      }
    } catch (err) {
      return cb(err as Error);
    }
    if (ok) return cb();
    // The socket's buffer is full: wait until it drains, or until the stream fails (the
    // daemon's error, the connection's end, the no-progress timeout), whichever comes first.
    this.pendingWrite = cb;
    this.lastProgress = Date.now();
    void this.io.transport.drained().then(() => {
      this.lastProgress = Date.now();
      this.completeWrite(this.remoteError ?? null);
    });
  }

  private completeWrite(err: Error | null): void {
    const cb = this.pendingWrite;
    this.pendingWrite = undefined;
    cb?.(err);
  }

  override _final(cb: (err?: Error | null) => void): void {
    if (this.remoteError) return cb(this.remoteError);
    if (this.finishSent) return cb();
    this.sendFinish().then(
      () => cb(),
      (err: Error) => cb(err),
    );
  }

  override _destroy(err: Error | null, cb: (err?: Error | null) => void): void {
    if (!this.done && !this.remoteError && this.serial) {
      // Abort: tell the daemon to drop the stream; its confirmation is not waited for.
      this.finishSent = true;
      this.io.transport.sendStream(this.io.proc, this.serial, MessageType.STREAM, MessageStatus.ERROR);
    }
    this.close();
    this.completeWrite(err ?? new Error(`${this.procedure}: stream destroyed`));
    const c = this.confirm;
    this.confirm = undefined;
    c?.reject(err ?? new Error(`${this.procedure}: stream destroyed`));
    cb(err);
  }

  // --- sending ---------------------------------------------------------------------------------

  private sendData(buf: Uint8Array): boolean {
    let ok = true;
    for (let off = 0; off < buf.length; off += MAX_CHUNK) {
      const part = buf.subarray(off, Math.min(off + MAX_CHUNK, buf.length));
      ok = this.io.transport.sendStream(this.io.proc, this.serial, MessageType.STREAM, MessageStatus.CONTINUE, part) && ok;
    }
    this.bytesOut += buf.length;
    return ok;
  }

  private sendHole(length: number): boolean {
    if (!this.sparse) throw new Error(`${this.procedure}: holes need a sparse stream (the procedure's SPARSE_STREAM flag)`);
    if (!Number.isSafeInteger(length) || length < 0) throw new Error(`${this.procedure}: bad hole length ${length}`);
    if (length === 0) return true;
    this.bytesOut += length;
    return this.io.transport.sendStream(this.io.proc, this.serial, MessageType.STREAM_HOLE, MessageStatus.CONTINUE, (w) =>
      writeVirNetStreamHole(w, { length: BigInt(length), flags: 0 }),
    );
  }

  /** Data with runs of >= detectHoles zero bytes sent as holes. */
  private sendSparse(buf: Uint8Array): boolean {
    let ok = true;
    let dataStart = 0;
    let i = 0;
    const n = buf.length;
    while (i < n) {
      if (buf[i] !== 0) {
        i++;
        continue;
      }
      let j = i;
      while (j < n && buf[j] === 0) j++;
      if (j - i >= this.detectHoles) {
        if (i > dataStart) ok = this.sendData(buf.subarray(dataStart, i)) && ok;
        ok = this.sendHole(j - i) && ok;
        dataStart = j;
      }
      i = j;
    }
    if (dataStart < n) ok = this.sendData(buf.subarray(dataStart, n)) && ok;
    return ok;
  }

  private sendFinish(): Promise<void> {
    this.finishSent = true;
    this.lastProgress = Date.now();
    return new Promise<void>((resolve, reject) => {
      this.confirm = { resolve, reject };
      this.io.transport.sendStream(this.io.proc, this.serial, MessageType.STREAM, MessageStatus.OK);
    });
  }

  private failRemote(err: Error): void {
    this.remoteError = err;
    this.close();
    const c = this.confirm;
    this.confirm = undefined;
    // A write waiting for the socket to drain fails now: the daemon may never read it.
    const w = this.pendingWrite;
    this.pendingWrite = undefined;
    w?.(err);
    if (c) c.reject(err);
    else this.destroy(err);
  }

  private close(): void {
    if (this.done) return;
    this.done = true;
    this.stopWatchdog();
    if (this.serial) this.io.transport.endStream(this.serial);
  }
}
