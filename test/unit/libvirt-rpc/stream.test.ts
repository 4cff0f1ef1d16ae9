/**
 * libvirt's stream protocol against the fake daemon: the packets the client sends (data, holes,
 * finish, abort) and how it handles the daemon's (data, holes, end of data, errors).
 */
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  LibvirtClient,
  LibvirtError,
  type LibvirtStream,
  MessageStatus,
  MessageType,
  type PacketHeader,
  PROCEDURES,
  readRemoteStorageVolDownloadArgs,
  readRemoteStorageVolUploadArgs,
  readVirNetStreamHole,
  type StorageVol,
  VIR_STORAGE_VOL_DOWNLOAD_SPARSE_STREAM,
  VIR_STORAGE_VOL_UPLOAD_SPARSE_STREAM,
  writeRemoteError,
  writeVirNetStreamHole,
} from '../../../src/libvirt/index.js';
import { type FakeConn, FakeLibvirtd, remoteError } from './support/fake-libvirtd.js';

const VOL: StorageVol = { pool: 'p', name: 'v', key: '/p/v' };
let fake: FakeLibvirtd;
let c: LibvirtClient;

beforeEach(async () => {
  fake = await FakeLibvirtd.start();
  c = await LibvirtClient.connect('test+unix:///default', { socketPath: fake.path, keepaliveIntervalMs: 0 });
});
afterEach(async () => {
  await c.close();
  await fake.stop();
});

type Rx = { type: number; status: number; data?: Buffer; hole?: bigint };

/** Records the client's stream packets; answers its finish (STREAM OK) with a confirmation. */
function recordStream(onFinish: (conn: FakeConn, h: PacketHeader) => void = confirm): Rx[] {
  const got: Rx[] = [];
  fake.onStreamPacket = (conn, h, body) => {
    if (h.type === MessageType.STREAM_HOLE) got.push({ type: h.type, status: h.status, hole: readVirNetStreamHole(body).length });
    else got.push({ type: h.type, status: h.status, data: Buffer.from(body.bytes()) });
    if (h.type === MessageType.STREAM && h.status !== MessageStatus.CONTINUE) onFinish(conn, h);
  };
  return got;
}

function confirm(conn: FakeConn, h: PacketHeader): void {
  conn.sendPacket({ proc: h.proc, type: MessageType.STREAM, serial: h.serial, status: MessageStatus.OK });
}

function send(conn: FakeConn, h: PacketHeader, type: number, status: number, enc?: Parameters<FakeConn['sendPacket']>[1]) {
  conn.sendPacket({ proc: h.proc, type, serial: h.serial, status }, enc);
}

async function readAll(s: LibvirtStream): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const b of s) parts.push(b as Buffer);
  return Buffer.concat(parts);
}

describe('upload', () => {
  it('sends the call, then data in STREAM/CONTINUE packets of at most 256 KiB, then finish; completes on the confirmation', async () => {
    let args: unknown;
    fake.on('storageVolUpload', (r) => {
      args = readRemoteStorageVolUploadArgs(r);
      return {};
    });
    const got = recordStream();
    const s = await c.storageVolUpload(VOL, 10, 600_000, 0);
    expect(args).toEqual({ vol: VOL, offset: 10n, length: 600_000n, flags: 0 });
    const data = Buffer.alloc(600_000, 7);
    await pipeline(Readable.from([data.subarray(0, 100), data.subarray(100)]), s);
    expect(got.map((g) => [g.type, g.status, g.data?.length])).toEqual([
      [MessageType.STREAM, MessageStatus.CONTINUE, 100],
      [MessageType.STREAM, MessageStatus.CONTINUE, 262120],
      [MessageType.STREAM, MessageStatus.CONTINUE, 262120],
      [MessageType.STREAM, MessageStatus.CONTINUE, 600_000 - 100 - 2 * 262120],
      [MessageType.STREAM, MessageStatus.OK, 0],
    ]);
    expect(Buffer.concat(got.map((g) => g.data!)).equals(data)).toBe(true);
  });

  it('sparse: zero runs >= detectHoles go as STREAM_HOLE with a virNetStreamHole, in order', async () => {
    fake.on('storageVolUpload', () => ({}));
    const got = recordStream();
    const s = await c.storageVolUpload(VOL, 0, 0, VIR_STORAGE_VOL_UPLOAD_SPARSE_STREAM, { detectHoles: 8 });
    const data = Buffer.concat([Buffer.from('abc'), Buffer.alloc(20), Buffer.from('de'), Buffer.alloc(4), Buffer.from('f')]);
    s.write(data);
    s.writeHole(1000);
    s.end(Buffer.from('z'));
    await new Promise((res, rej) => s.on('finish', res).on('error', rej));
    expect(got).toEqual([
      { type: MessageType.STREAM, status: MessageStatus.CONTINUE, data: Buffer.from('abc') },
      { type: MessageType.STREAM_HOLE, status: MessageStatus.CONTINUE, hole: 20n },
      { type: MessageType.STREAM, status: MessageStatus.CONTINUE, data: Buffer.from('de\0\0\0\0f') },
      { type: MessageType.STREAM_HOLE, status: MessageStatus.CONTINUE, hole: 1000n },
      { type: MessageType.STREAM, status: MessageStatus.CONTINUE, data: Buffer.from('z') },
      { type: MessageType.STREAM, status: MessageStatus.OK, data: Buffer.alloc(0) },
    ]);
    expect(s.bytesOut).toBe(data.length + 1000 + 1);
  });

  it('an error from the daemon after finish fails the stream with the LibvirtError', async () => {
    fake.on('storageVolUpload', () => ({}));
    recordStream((conn, h) =>
      send(conn, h, MessageType.REPLY, MessageStatus.ERROR, (w) => writeRemoteError(w, remoteError({ code: 38, message: 'No space left on device' }))),
    );
    const s = await c.storageVolUpload(VOL, 0, 0, 0);
    await expect(pipeline(Readable.from([Buffer.from('x')]), s)).rejects.toThrow(LibvirtError);
    // the connection still works
    expect(await c.connectSupportsFeature(1)).toBe(true);
  });

  it('destroying the stream aborts it (STREAM/ERROR); holes without the sparse flag are refused', async () => {
    fake.on('storageVolUpload', () => ({}));
    const got = recordStream();
    const s = await c.storageVolUpload(VOL, 0, 0, 0);
    await expect(pipeline(Readable.from([{ hole: 5 }], { objectMode: true }), s)).rejects.toThrow(/sparse stream/);
    await new Promise((r) => setTimeout(r, 20));
    expect(got).toEqual([{ type: MessageType.STREAM, status: MessageStatus.ERROR, data: Buffer.alloc(0) }]);
  });

  it('a refused call rejects and opens no stream', async () => {
    fake.on('storageVolUpload', () => ({ error: { code: 55, message: 'nope' } }));
    await expect(c.storageVolUpload(VOL, 0, 0, 0)).rejects.toThrow('nope');
  });
});

describe('download', () => {
  it('data (also before the reply), holes as zeros, end of data answered with finish', async () => {
    let args: unknown;
    const got = recordStream();
    fake.on('storageVolDownload', (r, { conn, header }) => {
      args = readRemoteStorageVolDownloadArgs(r);
      send(conn, header, MessageType.STREAM, MessageStatus.CONTINUE, (w) => w.bytes(Buffer.from('early')));
      setTimeout(() => {
        send(conn, header, MessageType.STREAM_HOLE, MessageStatus.CONTINUE, (w) => writeVirNetStreamHole(w, { length: 3n, flags: 0 }));
        send(conn, header, MessageType.STREAM, MessageStatus.CONTINUE, (w) => w.bytes(Buffer.from('late')));
        // libvirtd 9.0.0 ends a download with an empty STREAM/CONTINUE packet
        send(conn, header, MessageType.STREAM, MessageStatus.CONTINUE);
      }, 10);
      return {};
    });
    const s = await c.storageVolDownload(VOL, 0, 0, VIR_STORAGE_VOL_DOWNLOAD_SPARSE_STREAM);
    expect(args).toEqual({ vol: VOL, offset: 0n, length: 0n, flags: VIR_STORAGE_VOL_DOWNLOAD_SPARSE_STREAM });
    expect((await readAll(s)).equals(Buffer.from('early\0\0\0late'))).toBe(true);
    expect(got).toEqual([{ type: MessageType.STREAM, status: MessageStatus.OK, data: Buffer.alloc(0) }]);
    expect(c.stats().storageVolDownload?.count).toBe(1);
    expect(PROCEDURES.storageVolDownload.stream).toBe('read');
  });

  it("holes: 'objects' yields { hole } objects; a hole on a non-sparse stream is an error", async () => {
    recordStream();
    fake.on('storageVolDownload', (_r, { conn, header }) => {
      setTimeout(() => {
        send(conn, header, MessageType.STREAM_HOLE, MessageStatus.CONTINUE, (w) => writeVirNetStreamHole(w, { length: 4096n, flags: 0 }));
        send(conn, header, MessageType.STREAM, MessageStatus.OK);
      }, 5);
      return {};
    });
    const s = await c.storageVolDownload(VOL, 0, 0, VIR_STORAGE_VOL_DOWNLOAD_SPARSE_STREAM, { holes: 'objects' });
    const items: unknown[] = [];
    for await (const x of s) items.push(x);
    expect(items).toEqual([{ hole: 4096 }]);
    const s2 = await c.storageVolDownload(VOL, 0, 0, 0);
    await expect(readAll(s2)).rejects.toThrow(/not opened as sparse/);
  });

  it('a STREAM/ERROR from the daemon fails the stream with its message', async () => {
    fake.on('storageVolDownload', (_r, { conn, header }) => {
      setTimeout(() => send(conn, header, MessageType.STREAM, MessageStatus.ERROR, (w) => writeRemoteError(w, remoteError({ code: 1, message: 'read failed' }))), 5);
      return {};
    });
    const s = await c.storageVolDownload(VOL, 0, 0, 0);
    await expect(readAll(s)).rejects.toThrow('read failed');
  });

  it('the connection dying ends the stream with the ConnectionError', async () => {
    fake.on('storageVolDownload', (_r, { conn }) => {
      setTimeout(() => conn.kill(), 5);
      return {};
    });
    const s = await c.storageVolDownload(VOL, 0, 0, 0);
    await expect(readAll(s)).rejects.toThrow(/closed|lost/);
  });
});

describe('console', () => {
  it('domainOpenConsole is a duplex stream: bytes both ways, end() finishes it', async () => {
    const got = recordStream();
    fake.on('domainOpenConsole', (_r, { conn, header }) => {
      setTimeout(() => send(conn, header, MessageType.STREAM, MessageStatus.CONTINUE, (w) => w.bytes(Buffer.from('login: '))), 5);
      return {};
    });
    const s = await c.domainOpenConsole({ name: 'd', uuid: '11111111-2222-3333-4444-555555555555', id: 1 }, null, 0);
    const first = await new Promise<Buffer>((res) => s.once('data', res));
    expect(first.toString()).toBe('login: ');
    s.write(Buffer.from('root\n'));
    s.end();
    await new Promise((res, rej) => s.on('finish', res).on('error', rej));
    expect(got).toEqual([
      { type: MessageType.STREAM, status: MessageStatus.CONTINUE, data: Buffer.from('root\n') },
      { type: MessageType.STREAM, status: MessageStatus.OK, data: Buffer.alloc(0) },
    ]);
  });
});
