/**
 * Volume `source: {url, sha256}` on the real libvirtd, through the CLI, with images served by a
 * loopback HTTP(S) server in this test (127.0.0.1 only). The bytes reach the volume through
 * libvirt's upload stream; what lands on the volume is read back from the pool's file.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { createHash } from 'node:crypto';
import { cpSync, mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createTlsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { writeManifests } from '../../support/manifests.js';
import { openJournal, runCli, virsh } from '../../support/real-host.js';
import { expectReadbackMatches } from '../../support/readback.js';
import { useSuite } from '../../support/suite.js';
import { cacheFiles, suiteVolumes } from '../../support/url-import.js';

const N = useSuite('url', {
  setup: async () => {
    // A raw image with data, a long zero run (sent as a hole) and more data.
    RAW = Buffer.concat([Buffer.from('virtform url image\n'), Buffer.alloc(3 * 1024 ** 2), Buffer.alloc(1024 ** 2, 0x5a), Buffer.alloc(4 * 1024 ** 2 - 19)]);
    writeFileSync(join(N.work, 'raw.img'), RAW);
    execFileSync('qemu-img', ['convert', '-f', 'raw', '-O', 'qcow2', join(N.work, 'raw.img'), join(N.work, 'img.qcow2')]);
    QCOW = readFileSync(join(N.work, 'img.qcow2'));
    QCOW_RAW = RAW;
    execFileSync('qemu-img', ['create', '-q', '-f', 'qcow2', join(N.work, 'big.qcow2'), '64M']);
    BIG_QCOW = readFileSync(join(N.work, 'big.qcow2'));
    execFileSync('qemu-img', ['create', '-q', '-f', 'qcow2', '-F', 'raw', '-b', '/etc/hostname', join(N.work, 'backed.qcow2')]);
    BACKED = readFileSync(join(N.work, 'backed.qcow2'));
    Object.assign(images, { '/raw.img': RAW, '/raw-mirror.img': RAW, '/img.qcow2': QCOW, '/big.qcow2': BIG_QCOW, '/backed.qcow2': BACKED });
    server = createServer(serve);
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  },
});
const P = N.base;
// VIRTFORM_TEST_POOL_ROOT: another root for the pool (where parallel suites share /var/lib/virtform-test).
const POOL_DIR = `${process.env.VIRTFORM_TEST_POOL_ROOT ?? '/var/lib/virtform-test'}/${P}-pool`;
const EXAMPLES = fileURLToPath(new URL('../../../manifests/examples', import.meta.url));
const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

let server: Server;
let base: string;
let hits: Record<string, number> = {};
const images: Record<string, Buffer> = {};
let RAW: Buffer;
let QCOW: Buffer;
let QCOW_RAW: Buffer; // the guest-visible bytes of QCOW
let BIG_QCOW: Buffer; // 64 MiB virtual size
let BACKED: Buffer; // qcow2 naming a backing file

function serve(req: IncomingMessage, res: ServerResponse): void {
  const path = (req.url ?? '/').split('?')[0]!;
  hits[path] = (hits[path] ?? 0) + 1;
  if (path === '/redirect') { res.writeHead(301, { location: '/hop2' }).end(); return; }
  if (path === '/hop2') { res.writeHead(307, { location: `${base}/raw.img` }).end(); return; }
  if (path === '/stall') { res.writeHead(200, { 'content-length': RAW.length }); res.write(RAW.subarray(0, 1000)); return; }
  if (path === '/cut') {
    // Half the image, then the connection closes.
    res.writeHead(200, { 'content-length': RAW.length });
    res.write(RAW.subarray(0, RAW.length / 2), () => res.socket?.destroy());
    return;
  }
  const body = images[path];
  if (!body) { res.writeHead(404, 'Not Found').end(); return; }
  res.writeHead(200, { 'content-length': body.length }).end(body);
}

afterAll(async () => {
  server.closeAllConnections();
  await new Promise<void>((r) => server.close(() => r()));
});

const POOL = `apiVersion: virtform.dev/v1\nkind: StoragePool\nmetadata: {name: ${P}-pool}\nspec: {path: ${POOL_DIR}}\n`;
function vol(name: string, spec: string): string {
  return `---\napiVersion: virtform.dev/v1\nkind: Volume\nmetadata: {name: ${P}-${name}}\nspec: {pool: ${P}-pool, ${spec}}\n`;
}
const src = (path: string, digest: string, host = base): string => `source: {url: "${host}${path}", sha256: "${digest}"}`;

let n = 0;
function folder(docs: string): { dir: string; db: string } {
  n += 1;
  const dir = writeManifests(join(N.work, `m${n}`), { 'm.yaml': POOL + docs });
  // Each with its own state DB folder, so its own image cache (images/ beside the DB).
  mkdirSync(join(N.work, `state${n}`), { recursive: true });
  return { dir, db: join(N.work, `state${n}`, 'state.db') };
}
const volumes = (): string[] => suiteVolumes(P);
/** Guest-visible bytes of a volume file (qemu-img convert to raw), or the raw file itself. */
function guestBytes(file: string, format: 'raw' | 'qcow2'): Buffer {
  if (format === 'raw') return readFileSync(file);
  const out = join(N.work, `read-${Date.now()}.raw`);
  execFileSync('qemu-img', ['convert', '-f', 'qcow2', '-O', 'raw', file, out]);
  const b = readFileSync(out);
  rmSync(out);
  return b;
}
async function reconcile(m: { dir: string; db: string }, extra: string[] = [], env: Record<string, string> = {}) {
  return runCli(['reconcile', m.dir, '--db', m.db, ...extra], env);
}
async function reset(): Promise<void> {
  N.cleanup();
  hits = {};
}

describe('Volume source from a URL, on qemu:///system', () => {
  it('raw and qcow2 images: downloaded once, verified, uploaded; bytes equal; capacity from the image; rerun "No changes."', async () => {
    await reset();
    const m = folder(vol('raw', `format: raw, ${src('/raw.img', sha(RAW))}`) + vol('qc', `format: qcow2, capacity: 32MiB, ${src('/img.qcow2', sha(QCOW))}`));
    const r = await reconcile(m);
    expect(r.code, r.stdout + r.stderr).toBe(0);
    expect(volumes()).toEqual([`${P}-qc.qcow2`, `${P}-raw.img`]);
    expect(sha(readFileSync(`${POOL_DIR}/${P}-raw.img`))).toBe(sha(RAW));
    const qc = guestBytes(`${POOL_DIR}/${P}-qc.qcow2`, 'qcow2');
    expect(qc.length).toBe(32 * 1024 ** 2); // grown from the image's 8 MiB to the declared capacity
    expect(sha(qc.subarray(0, QCOW_RAW.length))).toBe(sha(QCOW_RAW));
    expect(virsh('vol-info', '--pool', `${P}-pool`, `${P}-raw.img`, '--bytes')).toContain(`Capacity:       ${RAW.length} bytes`);
    expect(hits).toEqual({ '/raw.img': 1, '/img.qcow2': 1 });
    expect(cacheFiles(m.db).sort()).toEqual([sha(RAW), sha(QCOW)].sort());
    const again = await reconcile(m, ['--dry-run', '--detailed-exitcode']);
    expect(again.code, again.stdout).toBe(0);
    expect(again.stdout).toContain('No changes.');
    expect(openJournal(m.db)).toEqual([]);
    await expectReadbackMatches(m.dir, 'qemu:///system');
    // The same image at another URL is no change; JSON progress lines go to stderr with --json.
    const moved = folder(vol('raw', `format: raw, ${src('/raw-mirror.img', sha(RAW))}`) + vol('qc', `format: qcow2, capacity: 32MiB, ${src('/img.qcow2', sha(QCOW))}`));
    const dry = await runCli(['reconcile', moved.dir, '--db', m.db, '--dry-run', '--detailed-exitcode']);
    expect(dry.code, dry.stdout).toBe(0);
  }, 120_000);

  it('--json: progress as JSON lines on stderr', async () => {
    await reset();
    const m = folder(vol('raw', `format: raw, ${src('/raw.img', sha(RAW))}`));
    const r = await reconcile(m, ['--json']);
    expect(r.code, r.stderr).toBe(0);
    const lines = r.stderr.split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as { event: string; phase: string; bytes: number });
    expect(lines.some((l) => l.event === 'progress' && l.phase === 'download' && l.bytes === RAW.length)).toBe(true);
    expect(lines.some((l) => l.event === 'progress' && l.phase === 'upload' && l.bytes === RAW.length)).toBe(true);
    expect(JSON.parse(r.stdout).outcome).toBe('succeeded');
  }, 60_000);

  it('a wrong checksum: exit 1, no volume, no file; the rerun with the right one converges', async () => {
    await reset();
    const bad = folder(vol('raw', `format: raw, ${src('/raw.img', 'c'.repeat(64))}`));
    const r = await reconcile(bad);
    expect(r.code).toBe(1);
    expect(r.stdout).toMatch(/checksum mismatch: sha256 of the \d+ bytes received is [0-9a-f]{64}, the manifest says c{64}/);
    expect(volumes()).toEqual([]);
    expect(cacheFiles(bad.db)).toEqual([]);
    writeManifests(bad.dir, { 'm.yaml': POOL + vol('raw', `format: raw, ${src('/raw.img', sha(RAW))}`) });
    const good = await reconcile(bad);
    expect(good.code, good.stdout + good.stderr).toBe(0);
    expect(sha(readFileSync(`${POOL_DIR}/${P}-raw.img`))).toBe(sha(RAW));
  }, 60_000);

  it('the server closing mid-transfer leaves no partial volume or file; the rerun converges', async () => {
    await reset();
    const m = folder(vol('raw', `format: raw, ${src('/cut', sha(RAW))}`));
    const r = await reconcile(m, ['--max-attempts', '2', '--retry-delay', '1']);
    expect(r.code).toBe(1);
    expect(r.stdout).toMatch(/downloading .*\/cut: (aborted|the connection closed after \d+ of \d+ bytes|.*ECONNRESET)/);
    expect(hits['/cut']).toBe(2); // a cut connection is retried
    expect(volumes()).toEqual([]);
    expect(cacheFiles(m.db)).toEqual([]);
    writeManifests(m.dir, { 'm.yaml': POOL + vol('raw', `format: raw, ${src('/raw.img', sha(RAW))}`) });
    const again = await reconcile(m);
    expect(again.code, again.stdout).toBe(0);
    expect(sha(readFileSync(`${POOL_DIR}/${P}-raw.img`))).toBe(sha(RAW));
  }, 60_000);

  it('404, a redirect chain, a timeout', async () => {
    await reset();
    const missing = folder(vol('raw', `format: raw, ${src('/nothing.img', sha(RAW))}`));
    const r404 = await reconcile(missing);
    expect(r404.code).toBe(1);
    expect(r404.stdout).toContain(`downloading ${base}/nothing.img: HTTP 404 Not Found`);
    expect(volumes()).toEqual([]);
    await reset();

    const redirected = folder(vol('raw', `format: raw, ${src('/redirect', sha(RAW))}`));
    const rr = await reconcile(redirected);
    expect(rr.code, rr.stdout).toBe(0);
    expect(hits).toMatchObject({ '/redirect': 1, '/hop2': 1, '/raw.img': 1 });
    await reset();

    const stalled = folder(vol('raw', `format: raw, ${src('/stall', sha(RAW))}`));
    const t0 = Date.now();
    const rt = await reconcile(stalled, ['--download-timeout', '1', '--max-attempts', '1']);
    expect(rt.code).toBe(1);
    expect(rt.stdout).toContain('timed out: no answer or data for 1s');
    expect(Date.now() - t0).toBeLessThan(20_000);
    expect(volumes()).toEqual([]);
    expect(cacheFiles(stalled.db)).toEqual([]);
  }, 90_000);

  it('refused before any volume exists: virtual size over capacity, a backing file, another format', async () => {
    await reset();
    const over = folder(vol('big', `format: qcow2, capacity: 16MiB, ${src('/big.qcow2', sha(BIG_QCOW))}`));
    const ro = await reconcile(over);
    expect(ro.code).toBe(1);
    expect(ro.stdout).toContain(`(qcow2, virtual size ${64 * 1024 ** 2} bytes) is larger than the volume's capacity (${16 * 1024 ** 2} bytes)`);
    await reset();
    const backed = folder(vol('backed', `format: qcow2, capacity: 16MiB, ${src('/backed.qcow2', sha(BACKED))}`));
    const rb = await reconcile(backed);
    expect(rb.code).toBe(1);
    expect(rb.stdout).toContain('is a qcow2 image with a backing file: refused');
    await reset();
    const other = folder(vol('fmt', `format: raw, ${src('/img.qcow2', sha(QCOW))}`));
    const rf = await reconcile(other);
    expect(rf.code).toBe(1);
    expect(rf.stdout).toContain("is qcow2, but the volume's format is raw");
    expect(volumes()).toEqual([]);
  }, 60_000);

  it('two clones of one URL base: the image is downloaded once', async () => {
    await reset();
    const m = folder(vol('base', `format: qcow2, ${src('/img.qcow2', sha(QCOW))}`)
      + vol('c1', `format: qcow2, capacity: 16MiB, backingVolume: ${P}-base`)
      + vol('c2', `format: qcow2, capacity: 16MiB, backingVolume: ${P}-base`));
    const r = await reconcile(m);
    expect(r.code, r.stdout).toBe(0);
    expect(hits['/img.qcow2']).toBe(1);
    expect(volumes()).toEqual([`${P}-base.qcow2`, `${P}-c1.qcow2`, `${P}-c2.qcow2`]);
    const c1 = guestBytes(`${POOL_DIR}/${P}-c1.qcow2`, 'qcow2');
    expect(sha(c1.subarray(0, RAW.length))).toBe(sha(RAW));
    expect((await reconcile(m, ['--dry-run', '--detailed-exitcode'])).code).toBe(0);
  }, 60_000);

  it('https: a self-signed certificate fails with a clear TLS error; trusted through NODE_EXTRA_CA_CERTS it works', async () => {
    await reset();
    const key = join(N.work, 'tls.key');
    const cert = join(N.work, 'tls.crt');
    execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', key, '-out', cert, '-days', '1',
      '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1'], { stdio: 'ignore' });
    const tls = createTlsServer({ key: readFileSync(key), cert: readFileSync(cert) }, serve);
    await new Promise<void>((r) => tls.listen(0, '127.0.0.1', r));
    const https = `https://127.0.0.1:${(tls.address() as AddressInfo).port}`;
    try {
      const m = folder(vol('raw', `format: raw, ${src('/raw.img', sha(RAW), https)}`));
      const r = await reconcile(m);
      expect(r.code).toBe(1);
      expect(r.stdout).toContain(`downloading ${https}/raw.img: TLS error: self-signed certificate`);
      expect(r.stdout).toContain('NODE_EXTRA_CA_CERTS');
      expect(volumes()).toEqual([]);
      const ok = await reconcile(m, [], { NODE_EXTRA_CA_CERTS: cert });
      expect(ok.code, ok.stdout + ok.stderr).toBe(0);
      expect(sha(readFileSync(`${POOL_DIR}/${P}-raw.img`))).toBe(sha(RAW));
    } finally {
      tls.closeAllConnections();
      await new Promise<void>((r) => tls.close(() => r()));
    }
  }, 60_000);

  it('URL credentials are sent but never printed', async () => {
    await reset();
    const m = folder(vol('raw', `format: raw, ${src('/nothing.img', sha(RAW), base.replace('://', '://alice:s3cret@'))}`));
    const r = await reconcile(m);
    expect(r.code).toBe(1);
    expect(r.stdout + r.stderr).not.toContain('s3cret');
    expect(r.stdout).toContain('http://***@127.0.0.1');
    const dry = await reconcile(m, ['--dry-run', '--json']);
    expect(dry.stdout + dry.stderr).not.toContain('s3cret');
  }, 60_000);
});

describe('local sources are identified by content', () => {
  it('the examples\' storage copied to another folder plans "No changes."', async () => {
    await reset();
    // The examples' storage manifests (with the seed image), renamed into this test's namespace.
    const a = join(N.work, 'checkout-a');
    cpSync(EXAMPLES, a, { recursive: true });
    for (const f of readdirSync(a)) if (f.endsWith('.yaml') && f !== '10-storage.yaml') rmSync(join(a, f));
    const text = readFileSync(join(a, '10-storage.yaml'), 'utf8')
      .replaceAll('/var/lib/virtform/pools/lab', POOL_DIR)
      .replace(/\b(lab-pool|base-image|web-1-root|db-1-data|db-1-seed)\b/g, `${P}-$1`);
    writeFileSync(join(a, '10-storage.yaml'), text);
    mkdirSync(join(N.work, 'examples-state'));
    const db = join(N.work, 'examples-state', 'state.db');
    const r = await runCli(['reconcile', a, '--db', db]);
    expect(r.code, r.stdout + r.stderr).toBe(0);
    const seed = readFileSync(join(a, 'images', 'seed.img'));
    expect(sha(readFileSync(`${POOL_DIR}/${P}-db-1-seed.img`).subarray(0, seed.length))).toBe(sha(seed));
    const b = join(N.work, 'elsewhere', 'checkout-b');
    mkdirSync(join(N.work, 'elsewhere'), { recursive: true });
    cpSync(a, b, { recursive: true });
    rmSync(a, { recursive: true });
    const dry = await runCli(['reconcile', b, '--db', db, '--dry-run', '--detailed-exitcode']);
    expect(dry.code, dry.stdout).toBe(0);
    expect(dry.stdout).toContain('No changes.');
  }, 60_000);
});
