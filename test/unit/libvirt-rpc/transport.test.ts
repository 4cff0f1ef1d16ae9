import { EventEmitter } from 'node:events';
import { afterEach, describe, expect, it, vi } from 'vitest';
import {
  buildPacket,
  ConnectionError,
  HEADER_BYTES,
  KEEPALIVE_PROC_PING,
  KEEPALIVE_PROC_PONG,
  KEEPALIVE_PROGRAM,
  LEN_BYTES,
  LibvirtError,
  MessageStatus,
  MessageType,
  type PacketHeader,
  type PacketSocket,
  readHeader,
  REMOTE_PROGRAM,
  Transport,
  writeRemoteError,
  XdrReader,
  type XdrWriter,
} from '../../../src/libvirt/index.js';

/** An in-memory socket: records what the transport writes; tests push bytes in with `feed`. */
class MemSocket extends EventEmitter implements PacketSocket {
  written: Buffer[] = [];
  destroyed = false;
  ended = false;
  write(data: Uint8Array): boolean {
    this.written.push(Buffer.from(data));
    return true;
  }
  destroy(): void {
    if (this.destroyed) return;
    this.destroyed = true;
    queueMicrotask(() => this.emit('close'));
  }
  end(): void {
    this.ended = true;
  }
  feed(data: Buffer): void {
    this.emit('data', data);
  }
  /** Packets written so far, parsed. */
  packets(): { header: PacketHeader; body: Buffer }[] {
    const all = Buffer.concat(this.written);
    const out: { header: PacketHeader; body: Buffer }[] = [];
    let off = 0;
    while (off < all.length) {
      const len = all.readUInt32BE(off);
      const header = readHeader(new XdrReader(all, off + LEN_BYTES, off + LEN_BYTES + HEADER_BYTES));
      out.push({ header, body: all.subarray(off + LEN_BYTES + HEADER_BYTES, off + len) });
      off += len;
    }
    return out;
  }
}

function reply(serial: number, encode?: (w: XdrWriter) => void, proc = 4): Buffer {
  return buildPacket({ prog: REMOTE_PROGRAM, vers: 1, proc, type: MessageType.REPLY, serial, status: MessageStatus.OK }, encode);
}

function errorReply(serial: number, code: number, message: string): Buffer {
  return buildPacket(
    { prog: REMOTE_PROGRAM, vers: 1, proc: 23, type: MessageType.REPLY, serial, status: MessageStatus.ERROR },
    (w) =>
      writeRemoteError(w, {
        code,
        domain: 10,
        message,
        level: 2,
        dom: null,
        str1: 'detail',
        str2: null,
        str3: null,
        int1: 0,
        int2: 0,
        net: null,
      }),
  );
}

const u32 = (n: number) => (w: XdrWriter) => void w.uint(n);

let transports: Transport[] = [];
function make(opts?: { callTimeoutMs?: number }) {
  const sock = new MemSocket();
  const t = new Transport(sock, { label: 'mem', ...opts });
  transports.push(t);
  return { sock, t };
}
afterEach(() => {
  for (const t of transports) t.close();
  transports = [];
  vi.useRealTimers();
});

describe('framing', () => {
  it('writes length-prefixed packets with a 24-byte header and increasing serials', async () => {
    const { sock, t } = make();
    t.call(4, undefined, { name: 'connectGetVersion' }).catch(() => undefined);
    t.call(23, (w) => w.string('vm'), { name: 'domainLookupByName' }).catch(() => undefined);
    const ps = sock.packets();
    expect(ps.map((p) => p.header)).toEqual([
      { prog: REMOTE_PROGRAM, vers: 1, proc: 4, type: 0, serial: 1, status: 0 },
      { prog: REMOTE_PROGRAM, vers: 1, proc: 23, type: 0, serial: 2, status: 0 },
    ]);
    expect(Buffer.concat(sock.written).readUInt32BE(0)).toBe(28);
    expect(ps[1]!.body.toString('hex')).toBe('00000002' + '766d0000');
  });

  it('reassembles a reply split into 1-byte chunks', async () => {
    const { sock, t } = make();
    const p = t.call(4);
    const r = reply(1, (w) => w.uhyper(9000000n).string('tail'));
    for (const b of r) sock.feed(Buffer.from([b]));
    const body = await p;
    const rd = new XdrReader(body);
    expect(rd.uhyper()).toBe(9000000n);
    expect(rd.string()).toBe('tail');
  });

  it('handles a split length word and chunks that straddle packet boundaries', async () => {
    const { sock, t } = make();
    const calls = [t.call(4), t.call(4), t.call(4)];
    const all = Buffer.concat([reply(1, u32(11)), reply(2, u32(22)), reply(3, u32(33))]);
    // Cut points: inside the first length word, across packet 1/2, inside header of 3.
    const cuts = [2, 5, 30, 33, 61, all.length];
    let prev = 0;
    for (const c of cuts) {
      sock.feed(all.subarray(prev, c));
      prev = c;
    }
    const vals = await Promise.all(calls);
    expect(vals.map((b) => b.readUInt32BE(0))).toEqual([11, 22, 33]);
  });

  it('handles several packets merged in one chunk', async () => {
    const { sock, t } = make();
    const calls = Array.from({ length: 10 }, () => t.call(4));
    sock.feed(Buffer.concat(Array.from({ length: 10 }, (_, i) => reply(i + 1, u32(i * 100)))));
    const vals = await Promise.all(calls);
    expect(vals.map((b) => b.readUInt32BE(0))).toEqual(Array.from({ length: 10 }, (_, i) => i * 100));
  });

  it('reassembles a large packet delivered in many chunks', async () => {
    const { sock, t } = make();
    const big = 'x'.repeat(3_000_000);
    const p = t.call(14);
    const r = reply(1, (w) => w.string(big));
    for (let off = 0; off < r.length; off += 65536) sock.feed(r.subarray(off, off + 65536));
    expect(new XdrReader(await p).string()).toBe(big);
  });

  it('fails everything on an impossible packet length', async () => {
    const { sock, t } = make();
    const p = t.call(4);
    sock.feed(Buffer.from('0000000500000000', 'hex'));
    await expect(p).rejects.toMatchObject({ name: 'ConnectionError', reason: 'protocol' });
    expect(t.isOpen).toBe(false);
    expect((await t.closed).message).toMatch(/bad packet length 5/);
  });
});

describe('serial matching', () => {
  it('resolves out-of-order replies to the right calls', async () => {
    const { sock, t } = make();
    const n = 32;
    const calls = Array.from({ length: n }, () => t.call(4));
    const order = Array.from({ length: n }, (_, i) => i + 1).sort(() => Math.random() - 0.5);
    for (const serial of order) sock.feed(reply(serial, u32(serial * 7)));
    const vals = await Promise.all(calls);
    vals.forEach((b, i) => expect(b.readUInt32BE(0)).toBe((i + 1) * 7));
  });

  it('ignores replies with unknown serials and keeps working', async () => {
    const { sock, t } = make();
    const ignored: string[] = [];
    t.onIgnored = (_h, why) => ignored.push(why);
    const p = t.call(4);
    sock.feed(reply(999, u32(1)));
    sock.feed(reply(1, u32(2)));
    expect((await p).readUInt32BE(0)).toBe(2);
    expect(ignored[0]).toMatch(/serial 999/);
  });
});

describe('errors', () => {
  it('decodes an error reply into LibvirtError and the connection stays usable', async () => {
    const { sock, t } = make();
    const p1 = t.call(23, undefined, { name: 'domainLookupByName' });
    const p2 = t.call(4);
    sock.feed(errorReply(1, 42, "Domain not found: no domain with matching name 'x'"));
    const err = await p1.catch((e: unknown) => e);
    expect(err).toBeInstanceOf(LibvirtError);
    expect(err).toMatchObject({ code: 42, domain: 10, level: 2, str1: 'detail', procedure: 'domainLookupByName' });
    expect((err as Error).message).toBe("Domain not found: no domain with matching name 'x'");
    sock.feed(reply(2, u32(5)));
    expect((await p2).readUInt32BE(0)).toBe(5);
    expect(t.isOpen).toBe(true);
  });

  it('turns an undecodable error body into a LibvirtError instead of hanging', async () => {
    const { sock, t } = make();
    const p = t.call(23);
    sock.feed(buildPacket({ prog: REMOTE_PROGRAM, vers: 1, proc: 23, type: 1, serial: 1, status: 1 }, (w) => w.int(1)));
    await expect(p).rejects.toThrow(/undecodable error reply/);
  });

  it('fails ALL pending calls at once when the socket dies', async () => {
    const { sock, t } = make();
    const closes: ConnectionError[] = [];
    t.onClose = (e) => closes.push(e);
    const calls = Array.from({ length: 5 }, (_, i) => t.call(4, undefined, { name: `c${i}` }));
    sock.emit('close');
    const results = await Promise.allSettled(calls);
    for (const [i, r] of results.entries()) {
      expect(r.status).toBe('rejected');
      const e = (r as PromiseRejectedResult).reason as ConnectionError;
      expect(e).toBeInstanceOf(ConnectionError);
      expect(e.reason).toBe('lost');
      expect(e.message).toMatch(new RegExp(`^c${i}: connection to mem closed`));
    }
    expect(closes).toHaveLength(1);
    // Calls after the loss fail immediately.
    await expect(t.call(4)).rejects.toMatchObject({ reason: 'lost' });
  });

  it('a socket error also fails pending calls', async () => {
    const { sock, t } = make();
    const p = t.call(4);
    sock.emit('error', new Error('ECONNRESET'));
    await expect(p).rejects.toThrow(/ECONNRESET/);
  });

  it('close() rejects pending calls with reason closed', async () => {
    const { sock, t } = make();
    const p = t.call(4);
    t.close();
    await expect(p).rejects.toMatchObject({ reason: 'closed' });
    expect(sock.ended).toBe(true);
  });

  it('times out a call without killing the connection; a late reply is ignored', async () => {
    const { sock, t } = make({ callTimeoutMs: 30 });
    const p = t.call(4, undefined, { name: 'slow' });
    await expect(p).rejects.toMatchObject({ reason: 'timeout', procedure: 'slow' });
    sock.feed(reply(1, u32(1)));
    const p2 = t.call(4);
    sock.feed(reply(2, u32(2)));
    expect((await p2).readUInt32BE(0)).toBe(2);
  });
});

describe('packets the client does not handle', () => {
  it('fails a call that gets stream data instead of hanging', async () => {
    const { sock, t } = make();
    const p = t.call(209);
    sock.feed(buildPacket({ prog: REMOTE_PROGRAM, vers: 1, proc: 209, type: MessageType.STREAM, serial: 1, status: 2 }, (w) => w.opaqueFixed(Buffer.from('data'), 4)));
    await expect(p).rejects.toThrow(/stream data/);
    expect(t.isOpen).toBe(true);
  });

  it('fails a call whose reply carries file descriptors', async () => {
    const { sock, t } = make();
    const p = t.call(310);
    sock.feed(buildPacket({ prog: REMOTE_PROGRAM, vers: 1, proc: 310, type: MessageType.REPLY_WITH_FDS, serial: 1, status: 0 }));
    await expect(p).rejects.toThrow(/file descriptors/);
  });

  it('ignores stray stream packets, unknown types and unknown programs', async () => {
    const { sock, t } = make();
    const ignored: string[] = [];
    t.onIgnored = (_h, why) => ignored.push(why);
    const p = t.call(4);
    sock.feed(buildPacket({ prog: REMOTE_PROGRAM, vers: 1, proc: 1, type: MessageType.STREAM, serial: 77, status: 2 }));
    sock.feed(buildPacket({ prog: REMOTE_PROGRAM, vers: 1, proc: 1, type: 9, serial: 0, status: 0 }));
    sock.feed(buildPacket({ prog: 0x12345678, vers: 1, proc: 1, type: MessageType.MESSAGE, serial: 0, status: 0 }));
    sock.feed(reply(1, u32(3)));
    expect((await p).readUInt32BE(0)).toBe(3);
    expect(ignored).toHaveLength(3);
  });

  it('hands MESSAGE packets to onMessage', () => {
    const { sock, t } = make();
    const got: number[] = [];
    t.onMessage = (m) => got.push(m.header.proc, m.body.readInt32BE(0));
    sock.feed(buildPacket({ prog: REMOTE_PROGRAM, vers: 1, proc: 318, type: MessageType.MESSAGE, serial: 0, status: 0 }, (w) => w.int(5)));
    expect(got).toEqual([318, 5]);
  });
});

describe('keepalive', () => {
  const ping = () =>
    buildPacket({ prog: KEEPALIVE_PROGRAM, vers: 1, proc: KEEPALIVE_PROC_PING, type: MessageType.MESSAGE, serial: 0, status: 0 });

  it('answers a PING with a PONG', () => {
    const { sock } = make();
    sock.feed(ping());
    const ps = sock.packets();
    expect(ps).toHaveLength(1);
    expect(ps[0]!.header).toEqual({ prog: KEEPALIVE_PROGRAM, vers: 1, proc: KEEPALIVE_PROC_PONG, type: MessageType.MESSAGE, serial: 0, status: 0 });
    expect(ps[0]!.body.length).toBe(0);
  });

  it('a PING between a split reply does not disturb framing', async () => {
    const { sock, t } = make();
    const p = t.call(4);
    const r = reply(1, u32(9));
    sock.feed(Buffer.concat([ping(), r.subarray(0, 10)]));
    sock.feed(r.subarray(10));
    expect((await p).readUInt32BE(0)).toBe(9);
  });

  it('pings when idle and drops the connection when the peer stays silent', async () => {
    vi.useFakeTimers();
    const { sock, t } = make();
    const p = t.call(4, undefined, { name: 'hung' });
    const settled = p.catch((e: unknown) => e);
    t.startKeepalive(100, 3);
    await vi.advanceTimersByTimeAsync(150);
    const pings = sock.packets().filter((x) => x.header.prog === KEEPALIVE_PROGRAM);
    expect(pings.length).toBeGreaterThan(0);
    expect(pings[0]!.header.proc).toBe(KEEPALIVE_PROC_PING);
    await vi.advanceTimersByTimeAsync(300);
    expect(await settled).toMatchObject({ reason: 'keepalive', procedure: 'hung' });
    expect((await t.closed).reason).toBe('keepalive');
  });

  it('stays up while the peer answers', async () => {
    vi.useFakeTimers();
    const { sock, t } = make();
    t.startKeepalive(100, 3);
    for (let i = 0; i < 10; i++) {
      await vi.advanceTimersByTimeAsync(100);
      sock.feed(buildPacket({ prog: KEEPALIVE_PROGRAM, vers: 1, proc: KEEPALIVE_PROC_PONG, type: 2, serial: 0, status: 0 }));
    }
    expect(t.isOpen).toBe(true);
  });
});
