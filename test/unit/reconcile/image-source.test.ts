/**
 * Volume `source` on the fake host: URL images (served by a loopback HTTP server in the test) and
 * local files identified by content. What the plan says, what is uploaded, what is cached.
 */
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { createHash } from 'node:crypto';
import { cpSync, existsSync, mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { desiredFrom } from '../../support/manifests.js';
import { useHarness, type Input, type RunOptions } from '../../support/harness.js';
import { scenario } from '../../support/scenario.js';
import { ImageCache, redactUrl } from '../../../src/reconcile/images.js';
import { ProgressLine } from '../../../src/cli/progress.js';

const EXAMPLES = fileURLToPath(new URL('../../../manifests/examples', import.meta.url));
const P = 'vftest-url';

/** A raw image: some data, a long zero run, more data. */
const RAW = Buffer.concat([Buffer.from('virtform raw image\n'), Buffer.alloc(300_000), Buffer.alloc(4096, 7)]);
const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

let server: Server;
let base: string;
let hits: Record<string, number> = {};
const files: Record<string, Buffer> = { '/raw.img': RAW, '/raw-copy.img': RAW };

beforeAll(async () => {
  server = createServer((req, res) => {
    const path = req.url ?? '/';
    hits[path] = (hits[path] ?? 0) + 1;
    if (path === '/moved') {
      res.writeHead(302, { location: '/raw.img' }).end();
      return;
    }
    const body = files[path];
    if (!body) {
      res.writeHead(404).end('nope');
      return;
    }
    res.writeHead(200, { 'content-length': body.length }).end(body);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
afterAll(() => new Promise<void>((r) => server.close(() => r())));

const fx = useHarness();
let images: ImageCache;
beforeEach(() => {
  images = new ImageCache(join(fx.work, 'images'), { timeoutMs: 2000 });
  hits = {};
});
// No partial download is left behind, whatever the test did.
afterEach(() => {
  const dir = join(fx.work, 'images');
  expect(existsSync(dir) ? readdirSync(dir).filter((n) => n.includes('.part.')) : []).toEqual([]);
});

type Source = string | { url: string; sha256: string };
/** A pool and the raw volume `img` with `source` (and more spec). */
const manifests = (source: Source, spec: Record<string, unknown> = {}) =>
  scenario().pool(`${P}-pool`, { path: '/srv/pools/url' }).volume(`${P}-img`, { capacity: undefined, format: 'raw', source, ...spec });
const urlSource = (path: string, digest = sha(RAW)) => ({ url: `${base}${path}`, sha256: digest });

const run = async (files: Input, extra: RunOptions = {}) => fx.reconcile(files, { images, ...extra });
const plan = async (files: Input) => fx.plan(files);
const volumeBytes = (name: string): Buffer | undefined => fx.host.contents.get(`/srv/pools/url/${name}`);

describe('Volume source from a URL', () => {
  it('downloads, verifies and uploads the image; capacity defaults to its size; a rerun plans nothing', async () => {
    const events: string[] = [];
    const r = await run(manifests(urlSource('/raw.img')), { onEvent: (e) => { if (e.type === 'progress') events.push(e.progress.phase); } });
    expect(r.outcome).toBe('succeeded');
    expect(volumeBytes(`${P}-img.img`)?.equals(RAW)).toBe(true);
    expect(fx.host.volumes.get(`${P}-pool`)!.get(`${P}-img.img`)!.capacityBytes).toBe(RAW.length);
    expect(events).toContain('download');
    expect(events).toContain('upload');
    expect(readdirSync(join(fx.work, 'images'))).toEqual([sha(RAW)]);
    const rec = await fx.store.resources.get('Volume', `${P}-img`);
    expect((rec?.details as { facts?: Record<string, unknown> }).facts?.imageVirtualSize).toBe(RAW.length);
    expect((await plan(manifests(urlSource('/raw.img')))).noop).toBe(true);
  });

  it('another URL with the same sha256 is no change; another sha256 is a replace held as data loss', async () => {
    await run(manifests(urlSource('/raw.img')));
    expect((await plan(manifests(urlSource('/raw-copy.img')))).noop).toBe(true);
    const other = 'a'.repeat(64);
    const p = await plan(manifests(urlSource('/raw.img', other)));
    const c = p.changes.find((x) => x.key === `Volume/${P}-img`)!;
    expect(c.action).toBe('replace');
    expect(c.reason).toContain('source image changed');
    expect(c.fields.map((f) => f.field)).toEqual(['spec.sourceSha256']);
    expect(p.held.has(`Volume/${P}-img`)).toBe(true);
    expect(c.dataLoss?.[0]?.why.join(' ')).toContain('holds imported image');
  });

  it('a wrong checksum fails the step: no volume, no cached file; a rerun with the right one converges', async () => {
    const bad = await run(manifests(urlSource('/raw.img', 'b'.repeat(64))));
    expect(bad.outcome).toBe('failed');
    expect(bad.applied!.failed.get(`Volume/${P}-img`)).toMatch(/checksum mismatch: sha256 of the \d+ bytes received is [0-9a-f]{64}, the manifest says b{64}/);
    expect(fx.host.volumes.get(`${P}-pool`)!.size).toBe(0);
    expect(readdirSync(join(fx.work, 'images'))).toEqual([]);
    expect(hits['/raw.img']).toBe(1); // not retried: a checksum mismatch is not transient
    expect((await run(manifests(urlSource('/raw.img')))).outcome).toBe('succeeded');
    expect(volumeBytes(`${P}-img.img`)?.equals(RAW)).toBe(true);
  });

  it('404 and a redirect', async () => {
    const r = await run(manifests(urlSource('/missing.img')));
    expect(r.applied!.failed.get(`Volume/${P}-img`)).toContain(`downloading ${base}/missing.img: HTTP 404`);
    expect(fx.host.volumes.get(`${P}-pool`)!.size).toBe(0);
    expect((await run(manifests(urlSource('/moved')))).outcome).toBe('succeeded');
    expect(hits['/moved']).toBe(1);
    expect(volumeBytes(`${P}-img.img`)?.equals(RAW)).toBe(true);
  });

  it('a declared capacity below the image is refused; above it the volume is grown after the upload', async () => {
    const small = await run(manifests(urlSource('/raw.img'), { capacity: 4096 }));
    expect(small.applied!.failed.get(`Volume/${P}-img`)).toMatch(/larger than the volume's capacity|more than the volume can hold/);
    expect(fx.host.volumes.get(`${P}-pool`)!.size).toBe(0);
    const big = await run(manifests(urlSource('/raw.img'), { capacity: '1MiB' }));
    expect(big.outcome).toBe('succeeded');
    expect(fx.host.volumes.get(`${P}-pool`)!.get(`${P}-img.img`)!.capacityBytes).toBe(1024 ** 2);
    expect((await plan(manifests(urlSource('/raw.img'), { capacity: '1MiB' }))).noop).toBe(true);
  });

  it('a format other than the declared one is refused', async () => {
    const r = await run(manifests(urlSource('/raw.img'), { format: 'qcow2' }));
    expect(r.applied!.failed.get(`Volume/${P}-img`)).toContain('is raw, but the volume\'s format is qcow2');
    expect(fx.host.volumes.get(`${P}-pool`)!.size).toBe(0);
  });

  it('the cache serves a second volume of the same image and a rerun without downloading again', async () => {
    const f = manifests(urlSource('/raw.img')).volume(`${P}-img2`, { capacity: undefined, format: 'raw', source: urlSource('/raw-copy.img') });
    expect((await run(f)).outcome).toBe('succeeded');
    expect((hits['/raw.img'] ?? 0) + (hits['/raw-copy.img'] ?? 0)).toBe(1);
    expect(volumeBytes(`${P}-img2.img`)?.equals(RAW)).toBe(true);
  });

  it('never shows URL credentials', () => {
    expect(redactUrl('https://alice:s3cret@example.test/a.img')).toBe('https://***@example.test/a.img');
    expect(redactUrl('https://example.test/a.img')).toBe('https://example.test/a.img');
  });
});

describe('local source files are identified by content', () => {
  it('the examples copied to another folder plan "No changes."', async () => {
    const a = join(fx.work, 'a');
    cpSync(EXAMPLES, a, { recursive: true });
    const first = await run(await desiredFrom(a));
    expect(first.outcome).toBe('succeeded');
    const b = join(fx.work, 'elsewhere', 'checkout');
    cpSync(EXAMPLES, b, { recursive: true });
    const again = await fx.planResult(await desiredFrom(b));
    expect(again.plan.changes.map((c) => `${c.action} ${c.key}: ${c.reason}`)).toEqual([]);
    // The seed image was streamed into the volume.
    const seed = [...fx.host.contents.entries()].find(([p]) => p.endsWith('db-1-seed.img'));
    expect(seed).toBeDefined();
  });

  it('a record of an earlier virtform that only has the path is migrated without a replace', async () => {
    const img = join(fx.work, 'img', 'disk.raw');
    mkdirSync(join(fx.work, 'img'), { recursive: true });
    writeFileSync(img, RAW);
    await run(manifests(img));
    // Rewrite the record as the earlier virtform wrote it: sourcePath, no digest.
    const rec = (await fx.store.resources.get('Volume', `${P}-img`))!;
    const cfg = { ...(rec.details as { config: Record<string, unknown> }).config };
    delete cfg.sourceSha256;
    cfg.sourcePath = '/old/checkout/disk.raw';
    await fx.store.resources.upsert({ kind: 'Volume', name: `${P}-img`, specHash: 'old0000000000000', details: { config: cfg }, observedStatus: 'ready' });
    const p = await plan(manifests(img));
    const c = p.changes.find((x) => x.key === `Volume/${P}-img`)!;
    expect(c.action).toBe('update');
    expect(c.reason).toContain('recorded by content');
    expect(c.steps.map((s) => s.op)).toEqual(['volume.resize']);
    expect((await run(manifests(img))).outcome).toBe('succeeded');
    expect((await plan(manifests(img))).noop).toBe(true);
  });

  it('a changed file (another sha256) is a replace held as data loss; the same bytes elsewhere are not', async () => {
    const img = join(fx.work, 'img', 'disk.raw');
    mkdirSync(join(fx.work, 'img'), { recursive: true });
    writeFileSync(img, RAW);
    await run(manifests(img));
    const moved = join(fx.work, 'img2', 'other-name.raw');
    mkdirSync(join(fx.work, 'img2'), { recursive: true });
    writeFileSync(moved, RAW);
    expect((await plan(manifests(moved))).noop).toBe(true);
    writeFileSync(img, Buffer.concat([RAW, Buffer.from('x')]));
    const p = await plan(manifests(img, { capacity: '1MiB' }));
    expect(p.changes.find((x) => x.key === `Volume/${P}-img`)!.action).toBe('replace');
    expect(p.held.has(`Volume/${P}-img`)).toBe(true);
  });
});

describe('progress line', () => {
  it('draws bytes, rate and ETA on a terminal and JSON lines with --json', () => {
    let t = 0;
    const tty: string[] = [];
    const line = new ProgressLine({ write: (s) => tty.push(s), isTTY: true }, false, () => t);
    line.show('Volume/x', { phase: 'download', bytes: 0, total: 100 * 1024 ** 2 });
    t = 1000;
    line.show('Volume/x', { phase: 'download', bytes: 50 * 1024 ** 2, total: 100 * 1024 ** 2 });
    expect(tty.at(-1)).toBe('\r\x1b[K  Volume/x: downloading 50.0 MiB / 100.0 MiB  50.0 MiB/s  ETA 1s');
    const json: string[] = [];
    const j = new ProgressLine({ write: (s) => json.push(s), isTTY: false }, true, () => t);
    j.show('Volume/x', { phase: 'upload', bytes: 100, total: 100 });
    expect(JSON.parse(json[0]!)).toMatchObject({ event: 'progress', resource: 'Volume/x', phase: 'upload', bytes: 100, total: 100 });
    const quiet: string[] = [];
    new ProgressLine({ write: (s) => quiet.push(s), isTTY: false }, false).show('Volume/x', { phase: 'upload', bytes: 1 });
    expect(quiet).toEqual([]);
  });
});
