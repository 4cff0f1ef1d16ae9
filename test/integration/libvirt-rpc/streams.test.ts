/**
 * libvirt's stream protocol on qemu:///system: storage volume upload and download, plain and
 * sparse (STREAM_HOLE), checked against the volume's file on disk (contents, and `du` for the
 * holes); and a domain console stream (a diskless 64 MiB guest whose firmware writes to its
 * serial console).
 *
 * Creates a dir pool `vftest-strm-<pid>` in a temp dir with raw volumes and a domain
 * `vftest-strm-con-<pid>`, and removes all of it after.
 */
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  LibvirtClient,
  LibvirtError,
  type LibvirtStream,
  type StoragePool,
  type StorageVol,
  VIR_DOMAIN_START_PAUSED,
  VIR_STORAGE_VOL_DOWNLOAD_SPARSE_STREAM,
  VIR_STORAGE_VOL_UPLOAD_SPARSE_STREAM,
} from '../../../src/libvirt/index.js';
import { suiteNames } from '../../support/names.js';
import { makeTempDir } from '../../support/temp-dirs.js';

const N = suiteNames('strm');
const P = N.base;

const URI = 'qemu:///system';
const POOL = `${P}-${process.pid}`;
const DOM = `${P}-con-${process.pid}`;
const MiB = 2 ** 20;
const SIZE = 16 * MiB;

let c: LibvirtClient;
let dir: string;
let pool: StoragePool;

/** 16 MiB: 1 MiB random, 12 MiB zeros, 3 MiB random with a short zero run inside (not a hole). */
const data = Buffer.alloc(SIZE);
randomBytes(MiB).copy(data, 0);
randomBytes(3 * MiB).copy(data, 13 * MiB);
data.fill(0, 14 * MiB, 14 * MiB + 4096);

function volXml(name: string): string {
  return `<volume><name>${name}</name><capacity unit='bytes'>${SIZE}</capacity><allocation unit='bytes'>0</allocation><target><format type='raw'/></target></volume>`;
}

/** Bytes the file occupies on disk, as `du` reports them. */
function du(path: string): number {
  return Number(execFileSync('du', ['-B1', '--', path], { encoding: 'utf8' }).split('\t')[0]);
}

function chunks(buf: Buffer, size: number): Buffer[] {
  const out: Buffer[] = [];
  for (let i = 0; i < buf.length; i += size) out.push(buf.subarray(i, i + size));
  return out;
}

async function readAll(s: LibvirtStream): Promise<{ bytes: Buffer; holes: number[] }> {
  const parts: Buffer[] = [];
  const holes: number[] = [];
  await pipeline(
    s,
    new Writable({
      objectMode: true,
      write(chunk: Buffer | { hole: number }, _e, cb) {
        if (Buffer.isBuffer(chunk)) parts.push(chunk);
        else {
          holes.push(chunk.hole);
          parts.push(Buffer.alloc(chunk.hole));
        }
        cb();
      },
    }),
  );
  return { bytes: Buffer.concat(parts), holes };
}

beforeAll(async () => {
  c = await LibvirtClient.connect(URI);
  dir = makeTempDir(`${P}-`);
  pool = await c.storagePoolDefineXml(`<pool type='dir'><name>${POOL}</name><target><path>${dir}</path></target></pool>`);
  await c.storagePoolBuild(pool);
  await c.storagePoolCreate(pool);
});

afterAll(async () => {
  if (c) {
    const quiet = (p: Promise<unknown>) => p.catch(() => undefined);
    const d = await c.domainLookupByName(DOM).catch(() => undefined);
    if (d) {
      await quiet(c.domainDestroy(d));
      await quiet(c.domainUndefine(d));
    }
    const p = await c.storagePoolLookupByName(POOL).catch(() => undefined);
    if (p) {
      for (const v of await c.storagePoolListAllVolumes(p).catch(() => [])) await quiet(c.storageVolDelete(v));
      await quiet(c.storagePoolDestroy(p));
      await quiet(c.storagePoolDelete(p));
      await quiet(c.storagePoolUndefine(p));
    }
    await c.close();
  }
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe('storage volume streams on qemu:///system', { timeout: 60_000 }, () => {
  let sparseVol: StorageVol;
  let sparsePath: string;

  it('sparse upload: zero runs travel as STREAM_HOLE and stay holes in the file', async () => {
    sparseVol = await c.storageVolCreateXml(pool, volXml(`${P}-sparse.raw`));
    sparsePath = await c.storageVolGetPath(sparseVol);
    const up = await c.storageVolUpload(sparseVol, 0, SIZE, VIR_STORAGE_VOL_UPLOAD_SPARSE_STREAM, { detectHoles: 64 * 1024 });
    await pipeline(Readable.from(chunks(data, 1 << 20)), up);
    // Only the 12 MiB run became a hole (the 4 KiB run inside the data did not).
    expect(up.bytesOut).toBe(SIZE);
    const onDisk = readFileSync(sparsePath);
    expect(onDisk.length).toBe(SIZE);
    expect(onDisk.equals(data)).toBe(true);
    const used = du(sparsePath);
    // 4 MiB of data; the 12 MiB zero run is not allocated.
    expect(used).toBeLessThan(6 * MiB);
    expect(used).toBeGreaterThanOrEqual(4 * MiB - 64 * 1024);
  });

  it('plain upload of the same bytes writes the zeros (control: the file is not sparse)', async () => {
    const vol = await c.storageVolCreateXml(pool, volXml(`${P}-plain.raw`));
    const path = await c.storageVolGetPath(vol);
    const up = await c.storageVolUpload(vol, 0, SIZE, 0);
    await pipeline(Readable.from(chunks(data, 300_000)), up);
    expect(readFileSync(path).equals(data)).toBe(true);
    expect(du(path)).toBeGreaterThanOrEqual(SIZE - 64 * 1024);
    // and a plain download gives the same bytes back
    const down = await c.storageVolDownload(vol, 0, 0, 0);
    const { bytes, holes } = await readAll(down);
    expect(holes).toEqual([]);
    expect(bytes.equals(data)).toBe(true);
  });

  it('sparse download: the hole comes back as a hole object, bytes match', async () => {
    const down = await c.storageVolDownload(sparseVol, 0, 0, VIR_STORAGE_VOL_DOWNLOAD_SPARSE_STREAM, { holes: 'objects' });
    const { bytes, holes } = await readAll(down);
    expect(bytes.length).toBe(SIZE);
    expect(bytes.equals(data)).toBe(true);
    expect(holes.reduce((a, b) => a + b, 0)).toBeGreaterThanOrEqual(12 * MiB - 64 * 1024);
    // holes as zero bytes (the default) give the same bytes to a plain byte consumer
    const down2 = await c.storageVolDownload(sparseVol, 0, 0, VIR_STORAGE_VOL_DOWNLOAD_SPARSE_STREAM);
    expect((await readAll(down2)).bytes.equals(data)).toBe(true);
    // the connection still serves ordinary calls after the streams
    expect((await c.storageVolGetInfo(sparseVol)).capacity).toBe(SIZE);
  });

  it('a partial download (offset, length); refusals leave the volume as it was', async () => {
    const down = await c.storageVolDownload(sparseVol, MiB - 10, 20, 0);
    expect((await readAll(down)).bytes.equals(data.subarray(MiB - 10, MiB + 10))).toBe(true);
    // Holes on a stream not opened as sparse: refused before anything is sent.
    const up = await c.storageVolUpload(sparseVol, 0, SIZE, 0);
    await expect(pipeline(Readable.from([{ hole: 4096 }], { objectMode: true }), up)).rejects.toThrow(/sparse stream/);
    // An upload into a volume that does not exist: the daemon refuses the call itself.
    const missing = { ...sparseVol, name: `${P}-missing.raw`, key: join(dir, `${P}-missing.raw`) };
    await expect(c.storageVolUpload(missing, 0, 10, 0)).rejects.toBeInstanceOf(LibvirtError);
    expect((await c.storageVolGetInfo(sparseVol)).capacity).toBe(SIZE);
    expect(readFileSync(sparsePath).equals(data)).toBe(true);
  });
});

describe('domain console stream on qemu:///system', { timeout: 60_000 }, () => {
  it('domainOpenConsole: the firmware output arrives on the duplex stream; end() closes it', async () => {
    const caps = await c.connectGetCapabilities();
    const type = caps.includes("<domain type='kvm'") ? 'kvm' : 'qemu';
    const dom = await c.domainDefineXml(`<domain type='${type}'>
  <name>${DOM}</name>
  <memory unit='MiB'>64</memory>
  <vcpu>1</vcpu>
  <os><type arch='x86_64'>hvm</type><bios useserial='yes'/></os>
  <devices><serial type='pty'/><console type='pty'/></devices>
</domain>`);
    const running = await c.domainCreateWithFlags(dom, VIR_DOMAIN_START_PAUSED);
    const con = await c.domainOpenConsole(running, null, 0);
    let text = '';
    const seen = new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no firmware output on the console within 30 s (got ${JSON.stringify(text)})`)), 30_000);
      con.on('data', (b: Buffer) => {
        text += b.toString('latin1');
        if (/SeaBIOS|Booting|No bootable/.test(text)) {
          clearTimeout(timer);
          resolve();
        }
      });
      con.on('error', reject);
    });
    await c.domainResume(running);
    await seen;
    expect(con.bytesIn).toBeGreaterThan(0);
    con.write('\r');
    con.end();
    await new Promise((resolve, reject) => con.on('finish', resolve).on('error', reject));
    await c.domainDestroy(running);
    await c.domainUndefine(running);
  });
});
