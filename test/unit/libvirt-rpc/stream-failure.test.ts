/**
 * Streams fail, never hang (issue 19, finding 6), against the fake daemon: the daemon's error
 * arriving while this side still sends (between two chunks of a slow source, or while a write
 * waits for the socket to drain), and the no-progress timeout when the daemon stops reading or
 * never confirms the finish. Every case must end within a bounded time.
 */
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  LibvirtClient,
  LibvirtError,
  MessageStatus,
  MessageType,
  type PacketHeader,
  type StorageVol,
  StreamStalledError,
  writeRemoteError,
  writeRemoteStoragePoolLookupByNameRet,
  writeRemoteStorageVolLookupByNameRet,
} from '../../../src/libvirt/index.js';
import { LibvirtHost } from '../../../src/reconcile/adapters/libvirt-host.js';
import { HostError } from '../../../src/reconcile/ports.js';
import { type FakeConn, FakeLibvirtd, remoteError } from './support/fake-libvirtd.js';

const VOL: StorageVol = { pool: 'p', name: 'v', key: '/p/v' };
const KiB = 1024;
let fake: FakeLibvirtd;
let c: LibvirtClient;

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

async function connect(opts: { streamIdleTimeoutMs?: number } = {}): Promise<void> {
  c = await LibvirtClient.connect('test+unix:///default', { socketPath: fake.path, keepaliveIntervalMs: 0, ...opts });
}

beforeEach(async () => {
  fake = await FakeLibvirtd.start();
  fake.on('storageVolUpload', () => ({}));
  fake.on('storageVolDownload', () => ({}));
});
afterEach(async () => {
  for (const conn of fake.conns) conn.socket.resume();
  await c?.close();
  await fake.stop();
});

function enospc(conn: FakeConn, h: PacketHeader): void {
  conn.sendPacket({ proc: h.proc, type: MessageType.STREAM, serial: h.serial, status: MessageStatus.ERROR }, (w) =>
    writeRemoteError(w, remoteError({ code: 38, domain: 18, message: 'Unable to write /pool/v: No space left on device', int1: 28 })),
  );
}

/** Counts the client's stream packets by status; the daemon answers the first data packet with `onData`. */
function watchStream(onData?: (conn: FakeConn, h: PacketHeader) => void): { data: number; finish: number; abort: number } {
  const n = { data: 0, finish: 0, abort: 0 };
  fake.onStreamPacket = (conn, h) => {
    if (h.status === MessageStatus.CONTINUE) {
      if (n.data++ === 0) onData?.(conn, h);
    } else if (h.status === MessageStatus.OK) n.finish++;
    else n.abort++;
  };
  return n;
}

describe("the daemon's error while this side still sends", () => {
  it('LibvirtHost.uploadVolume ends with it when it arrives between two chunks of a slow source (the old write/drain loop hung)', async () => {
    await connect();
    fake.on('storagePoolLookupByName', () => ({ ok: (w) => writeRemoteStoragePoolLookupByNameRet(w, { pool: { name: 'p', uuid: '00000000-0000-4000-8000-000000000001' } }) }));
    fake.on('storageVolLookupByName', () => ({ ok: (w) => writeRemoteStorageVolLookupByNameRet(w, { vol: VOL }) }));
    const n = watchStream(enospc);
    let produced = 0;
    let closed = false;
    async function* source(): AsyncGenerator<Uint8Array> {
      try {
        for (let i = 0; i < 40; i++) {
          produced++;
          yield Buffer.alloc(256 * KiB, 1);
          await sleep(20);
        }
      } finally {
        closed = true;
      }
    }
    const host = new LibvirtHost(c);
    const t0 = Date.now();
    const err = await host.uploadVolume('p', 'v', source(), { sparse: false }).then(
      () => undefined,
      (e: Error) => e,
    );
    expect(err?.message).toMatch(/upload volume p\/v: .*No space left on device/);
    expect(Date.now() - t0).toBeLessThan(2000);
    // The source was stopped (its file closed) soon after the error: not read to its end.
    await sleep(60);
    expect(closed).toBe(true);
    expect(produced).toBeLessThan(10);
    expect(n.finish).toBe(0);
    // The connection is still usable.
    expect(await c.connectSupportsFeature(1)).toBe(true);
  }, 8000);

  it('a write waiting for the socket to drain fails at once (the daemon stopped reading, then reports its error)', async () => {
    await connect({ streamIdleTimeoutMs: 0 });
    const n = watchStream((conn) => conn.socket.pause());
    const s = await c.storageVolUpload(VOL, 0, 0, 0);
    const big = Buffer.alloc(1024 * KiB, 2);
    const done = pipeline(
      Readable.from((function* () {
        for (let i = 0; i < 64; i++) yield big;
      })()),
      s,
    ).then(
      () => undefined,
      (e: Error) => e,
    );
    // Wait until the client is blocked on the full socket, then the daemon reports its error.
    for (let i = 0; i < 100 && !(s as unknown as { pendingWrite?: unknown }).pendingWrite; i++) await sleep(10);
    expect((s as unknown as { pendingWrite?: unknown }).pendingWrite).toBeDefined();
    const t0 = Date.now();
    enospc(fake.lastConn, { proc: 208, serial: fake.lastConn.received.at(-1)!.serial } as PacketHeader);
    const err = await done;
    expect(err).toBeInstanceOf(LibvirtError);
    expect(err?.message).toMatch(/No space left on device/);
    expect(Date.now() - t0).toBeLessThan(1000);
    expect(n.finish).toBe(0);
  }, 8000);
});

describe('no progress: the stream times out and is aborted', () => {
  it('the finish is never confirmed', async () => {
    await connect({ streamIdleTimeoutMs: 300 });
    const n = watchStream();
    const s = await c.storageVolUpload(VOL, 0, 0, 0);
    const t0 = Date.now();
    const err = await pipeline(Readable.from([Buffer.from('data')]), s).then(
      () => undefined,
      (e: Error) => e,
    );
    expect(err).toBeInstanceOf(StreamStalledError);
    expect(err?.message).toMatch(/storageVolUpload: no progress for \d+ s waiting for the confirmation of its end/);
    expect(Date.now() - t0).toBeGreaterThanOrEqual(290);
    expect(Date.now() - t0).toBeLessThan(2000);
    await sleep(20);
    expect([n.data, n.finish, n.abort]).toEqual([1, 1, 1]); // data, finish, then the abort
  }, 8000);

  it('the daemon stops reading: a write the socket does not take', async () => {
    await connect({ streamIdleTimeoutMs: 300 });
    const n = watchStream((conn) => conn.socket.pause());
    const s = await c.storageVolUpload(VOL, 0, 0, 0);
    const big = Buffer.alloc(1024 * KiB, 3);
    const err = await pipeline(
      Readable.from((function* () {
        for (let i = 0; i < 64; i++) yield big;
      })()),
      s,
    ).then(
      () => undefined,
      (e: Error) => e,
    );
    expect(err).toBeInstanceOf(StreamStalledError);
    expect(err?.message).toMatch(/waiting for the daemon to take more data/);
    expect(n.finish).toBe(0);
  }, 8000);

  it('through LibvirtHost.uploadVolume: a failed operation, not a lost connection (the step fails and its journal entry is closed)', async () => {
    await connect({ streamIdleTimeoutMs: 300 });
    fake.on('storagePoolLookupByName', () => ({ ok: (w) => writeRemoteStoragePoolLookupByNameRet(w, { pool: { name: 'p', uuid: '00000000-0000-4000-8000-000000000001' } }) }));
    fake.on('storageVolLookupByName', () => ({ ok: (w) => writeRemoteStorageVolLookupByNameRet(w, { vol: VOL }) }));
    watchStream();
    const err = await new LibvirtHost(c).uploadVolume('p', 'v', (async function* () { yield Buffer.from('x'); })(), { sparse: false }).then(
      () => undefined,
      (e: HostError) => e,
    );
    expect(err).toBeInstanceOf(HostError);
    expect(err?.code).not.toBe('connection');
    expect(err?.message).toMatch(/upload volume p\/v: storageVolUpload: no progress/);
    expect(await c.connectSupportsFeature(1)).toBe(true);
  }, 8000);

  it('a download whose data stops coming', async () => {
    await connect({ streamIdleTimeoutMs: 300 });
    watchStream();
    const s = await c.storageVolDownload(VOL, 0, 0, 0);
    const err = await (async () => {
      for await (const _ of s) void _;
    })().then(
      () => undefined,
      (e: Error) => e,
    );
    expect(err).toBeInstanceOf(StreamStalledError);
    expect(err?.message).toMatch(/storageVolDownload: no progress .* waiting for data from the daemon/);
  }, 8000);

  it('time spent waiting on the caller (a slow source) does not count', async () => {
    await connect({ streamIdleTimeoutMs: 150 });
    fake.onStreamPacket = (conn, h) => {
      if (h.status === MessageStatus.OK) conn.sendPacket({ proc: h.proc, type: MessageType.STREAM, serial: h.serial, status: MessageStatus.OK });
    };
    const s = await c.storageVolUpload(VOL, 0, 0, 0);
    async function* slow(): AsyncGenerator<Buffer> {
      for (let i = 0; i < 3; i++) {
        await sleep(250);
        yield Buffer.from('x');
      }
    }
    await expect(pipeline(slow(), s)).resolves.toBeUndefined();
  }, 8000);
});
