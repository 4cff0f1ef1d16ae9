/**
 * An in-process fake libvirtd for unit tests: a unix-socket server that speaks the libvirt RPC
 * packet format. Tests register handlers per procedure and can control how replies are written
 * (split into tiny chunks, merged, out of order, dropped), inject keepalive pings, events and
 * unhandled packet kinds, and kill connections.
 */
import { rmSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { join } from 'node:path';
import {
  buildPacket,
  HEADER_BYTES,
  KEEPALIVE_PROGRAM,
  LEN_BYTES,
  MessageStatus,
  MessageType,
  type PacketHeader,
  PROCEDURES,
  readHeader,
  REMOTE_PROGRAM,
  REMOTE_PROTOCOL_VERSION,
  type RemoteError,
  writeRemoteError,
  XdrReader,
  type XdrWriter,
} from '../../../../src/libvirt/index.js';
import { makeTempDir } from '../../../support/temp-dirs.js';

export type Reply =
  | { ok?: (w: XdrWriter) => void; delayMs?: number }
  | { error: Partial<RemoteError> & { code: number; message: string }; delayMs?: number }
  | { none: true };

export type Handler = (args: XdrReader, ctx: { conn: FakeConn; header: PacketHeader }) => Reply | Promise<Reply>;

export function remoteError(e: Partial<RemoteError> & { code: number; message: string }): RemoteError {
  return {
    domain: 0,
    level: 2,
    dom: null,
    str1: null,
    str2: null,
    str3: null,
    int1: 0,
    int2: 0,
    net: null,
    ...e,
  };
}

export class FakeConn {
  readonly received: PacketHeader[] = [];
  /** How replies are written: whole, in small random chunks, or held and flushed together. */
  writeMode: 'whole' | 'split' | 'hold' = 'whole';
  private held: Buffer[] = [];
  private pieces: Buffer[] = [];
  private pumping = false;
  private buf = Buffer.alloc(0);

  constructor(
    readonly socket: Socket,
    private readonly server: FakeLibvirtd,
  ) {
    socket.on('data', (chunk) => this.onData(chunk));
    socket.on('error', () => undefined);
  }

  private onData(chunk: Buffer): void {
    this.buf = Buffer.concat([this.buf, chunk]);
    while (this.buf.length >= LEN_BYTES) {
      const len = this.buf.readUInt32BE(0);
      if (this.buf.length < len) return;
      const packet = this.buf.subarray(0, len);
      this.buf = this.buf.subarray(len);
      const header = readHeader(new XdrReader(packet, LEN_BYTES, LEN_BYTES + HEADER_BYTES));
      this.received.push(header);
      void this.server.dispatch(this, header, new XdrReader(packet, LEN_BYTES + HEADER_BYTES));
    }
  }

  /** Writes raw bytes according to `writeMode`. */
  write(data: Buffer): void {
    if (this.socket.destroyed) return;
    if (this.writeMode === 'hold') {
      this.held.push(data);
    } else if (this.writeMode === 'split') {
      // 1..7-byte pieces, each its own write (and usually its own chunk at the client). One
      // queue per connection, so packets written back to back are not interleaved.
      let off = 0;
      while (off < data.length) {
        const n = 1 + Math.floor(Math.random() * 7);
        this.pieces.push(data.subarray(off, off + n));
        off += n;
      }
      if (!this.pumping) {
        this.pumping = true;
        const next = (): void => {
          const p = this.pieces.shift();
          if (!p || this.socket.destroyed) {
            this.pumping = false;
            return;
          }
          this.socket.write(p);
          setImmediate(next);
        };
        next();
      }
    } else {
      this.socket.write(data);
    }
  }

  /** Writes everything held so far as one single write. */
  flush(): void {
    const all = Buffer.concat(this.held);
    this.held = [];
    if (!this.socket.destroyed) this.socket.write(all);
  }

  sendPacket(header: Partial<PacketHeader> & { proc: number; type: number }, encode?: (w: XdrWriter) => void): void {
    this.write(
      buildPacket(
        { prog: REMOTE_PROGRAM, vers: REMOTE_PROTOCOL_VERSION, serial: 0, status: MessageStatus.OK, ...header },
        encode,
      ),
    );
  }

  reply(req: PacketHeader, r: Reply): void {
    if ('none' in r) return;
    if ('error' in r) {
      this.sendPacket(
        { prog: req.prog, vers: req.vers, proc: req.proc, type: MessageType.REPLY, serial: req.serial, status: MessageStatus.ERROR },
        (w) => writeRemoteError(w, remoteError(r.error)),
      );
    } else {
      this.sendPacket(
        { prog: req.prog, vers: req.vers, proc: req.proc, type: MessageType.REPLY, serial: req.serial, status: MessageStatus.OK },
        r.ok,
      );
    }
  }

  kill(): void {
    this.socket.destroy();
  }
}

export class FakeLibvirtd {
  readonly conns: FakeConn[] = [];
  readonly handlers = new Map<number, Handler>();
  /** Keepalive packets received from clients. */
  readonly keepalive: PacketHeader[] = [];
  /** Called for STREAM / STREAM_HOLE packets from clients (body = the payload). */
  onStreamPacket: ((conn: FakeConn, header: PacketHeader, body: XdrReader) => void) | undefined;
  private constructor(
    readonly server: Server,
    readonly path: string,
    private readonly dir: string,
  ) {}

  /** TCP port when started with `{ tcp: true }` (listening on 127.0.0.1). */
  port = 0;

  static async start(opts: { tcp?: boolean } = {}): Promise<FakeLibvirtd> {
    const dir = makeTempDir('vf-fake-libvirtd-');
    const path = join(dir, 'sock');
    let fake!: FakeLibvirtd;
    const server = createServer((s) => fake.conns.push(new FakeConn(s, fake)));
    fake = new FakeLibvirtd(server, path, dir);
    fake.on('authList', () => ({ ok: (w) => w.uint(1).int(0) }));
    fake.on('connectOpen', () => ({}));
    fake.on('connectClose', () => ({}));
    fake.on('connectSupportsFeature', () => ({ ok: (w) => w.int(1) }));
    if (opts.tcp) {
      await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
      const addr = server.address();
      fake.port = typeof addr === 'object' && addr ? addr.port : 0;
    } else {
      await new Promise<void>((resolve) => server.listen(path, resolve));
    }
    return fake;
  }

  /** Registers a handler by procedure name. */
  on(name: keyof typeof PROCEDURES, h: Handler): this {
    this.handlers.set(PROCEDURES[name].proc, h);
    return this;
  }

  onProc(proc: number, h: Handler): this {
    this.handlers.set(proc, h);
    return this;
  }

  get lastConn(): FakeConn {
    const c = this.conns[this.conns.length - 1];
    if (!c) throw new Error('no connection yet');
    return c;
  }

  async dispatch(conn: FakeConn, header: PacketHeader, args: XdrReader): Promise<void> {
    if (header.prog === KEEPALIVE_PROGRAM) {
      this.keepalive.push(header);
      return;
    }
    if (header.type === MessageType.STREAM || header.type === MessageType.STREAM_HOLE) {
      this.onStreamPacket?.(conn, header, args);
      return;
    }
    if (header.type !== MessageType.CALL) return;
    const h = this.handlers.get(header.proc);
    const r: Reply = h
      ? await h(args, { conn, header })
      : { error: { code: 3, domain: 7, message: `this function is not supported by the fake: proc ${header.proc}` } };
    const delay = 'delayMs' in r ? r.delayMs : undefined;
    if (delay) setTimeout(() => conn.reply(header, r), delay);
    else conn.reply(header, r);
  }

  async stop(): Promise<void> {
    for (const c of this.conns) c.kill();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
    rmSync(this.dir, { recursive: true, force: true });
  }
}
