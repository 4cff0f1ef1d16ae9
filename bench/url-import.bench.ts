/**
 * URL import throughput on qemu:///system: a 100 MiB raw image (incompressible, no zero runs)
 * served by a loopback HTTP server in this process, imported by `virtform reconcile` into a URL-
 * sourced Volume (download to the cache with sha256, then libvirt's upload stream), against
 * `curl -o` of the same URL to a file on the same host. Also: the same import with the image
 * already cached (upload only), and a local `source` file of the same bytes (streamed through
 * uploadVolume) against `qemu-img convert` of it to a file (what the import did before).
 *
 *   npx tsx bench/url-import.bench.ts --out bench/results/url-import.md [--mib 100] [--runs 3]
 *
 * Objects are named vftest-bench-url-*; everything is removed at the end, also on failure.
 */
import { execFileSync, spawn } from 'node:child_process';
import { createReadStream, existsSync, mkdirSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createHash, randomBytes } from 'node:crypto';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { flags, machineBlock, median, table, writeReport } from './lib.js';

const f = flags();
const MIB = Number(f.mib ?? 100);
const RUNS = Number(f.runs ?? 3);
const P = 'vftest-bench-url';
const POOL_PATH = `${process.env.VIRTFORM_TEST_POOL_ROOT ?? '/var/lib/virtform-test'}/${P}-pool`;
const ROOT = resolve(import.meta.dirname, '..');
const CLI = join(ROOT, 'dist/cli/main.js');

const cleanup = (): void => {
  try {
    execFileSync('bash', [join(ROOT, 'scripts/cleanup-test-objects.sh'), P], { stdio: 'ignore' });
  } catch { /* best effort */ }
};

/** Run a command and time it (asynchronously: the HTTP server lives in this process). */
function timed(cmd: string, args: string[], env: Record<string, string> = {}): Promise<number> {
  const t = performance.now();
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { cwd: ROOT, env: { ...process.env, NO_COLOR: '1', ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (out += d.toString()));
    child.on('error', reject);
    child.on('close', (code) => {
      if (code === 0) resolve(performance.now() - t);
      else reject(new Error(`${cmd} ${args.join(' ')} exited ${code}: ${out}`));
    });
  });
}

async function main(): Promise<void> {
  if (!existsSync(CLI)) execFileSync('npx', ['tsc', '-p', 'tsconfig.json'], { cwd: ROOT, stdio: 'inherit' });
  cleanup();
  const work = mkdtempSync(join(tmpdir(), 'vftest-bench-url-'));
  const image = join(work, 'image.raw');
  writeFileSync(image, randomBytes(MIB * 1024 ** 2));
  const size = statSync(image).size;
  const sha = createHash('sha256');
  for await (const c of createReadStream(image)) sha.update(c as Buffer);
  const digest = sha.digest('hex');
  const server = createServer((_req, res) => {
    res.writeHead(200, { 'content-length': size });
    createReadStream(image, { highWaterMark: 1 << 20 }).pipe(res);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/image.raw`;
  const pool = `apiVersion: virtform.dev/v1\nkind: StoragePool\nmetadata: {name: ${P}-pool}\nspec: {path: ${POOL_PATH}}\n`;
  const urlDir = join(work, 'url');
  const fileDir = join(work, 'file');
  mkdirSync(urlDir);
  mkdirSync(fileDir);
  writeFileSync(join(urlDir, 'm.yaml'), `${pool}---\napiVersion: virtform.dev/v1\nkind: Volume\nmetadata: {name: ${P}-img}\nspec: {pool: ${P}-pool, format: raw, source: {url: "${url}", sha256: "${digest}"}}\n`);
  writeFileSync(join(fileDir, 'm.yaml'), `${pool}---\napiVersion: virtform.dev/v1\nkind: Volume\nmetadata: {name: ${P}-img}\nspec: {pool: ${P}-pool, format: raw, source: "${image}"}\n`);
  const rows: Record<string, number[]> = { curl: [], cold: [], warm: [], file: [], qemuimg: [], virsh: [], poolOnly: [] };
  const mib = (ms: number): string => (size / 1024 ** 2 / (ms / 1000)).toFixed(0);
  try {
    for (let i = 0; i < RUNS; i += 1) {
      const out = join(work, 'curl.out');
      rows.curl!.push(await timed('curl', ['-sS', '-f', '-o', out, url]));
      rmSync(out);
      const conv = join(work, 'conv.raw');
      rows.qemuimg!.push(await timed('qemu-img', ['convert', '-f', 'raw', '-O', 'raw', image, conv]));
      rmSync(conv);

      // Fresh state dir (empty image cache): download + verify + upload.
      const state = join(work, `state-${i}`);
      mkdirSync(state);
      rows.cold!.push(await timed(process.execPath, [CLI, 'reconcile', urlDir, '--db', join(state, 'cold.db')]));
      cleanup();
      // Another DB in the same folder, so the same image cache: the image is cached (upload only).
      rows.warm!.push(await timed(process.execPath, [CLI, 'reconcile', urlDir, '--db', join(state, 'warm.db')]));
      cleanup();
      // The pool alone, to subtract the CLI's fixed cost (start, connect, plan, pool define/start).
      const poolDir = join(work, 'pool-only');
      mkdirSync(poolDir, { recursive: true });
      writeFileSync(join(poolDir, 'm.yaml'), pool);
      rows.poolOnly!.push(await timed(process.execPath, [CLI, 'reconcile', poolDir, '--db', join(state, 'pool.db')]));
      // libvirt's own client uploading the same file into a volume of that pool (the stream's bound).
      execFileSync('virsh', ['-q', 'vol-create-as', `${P}-pool`, `${P}-virsh.img`, String(size), '--format', 'raw'], { stdio: 'ignore' });
      rows.virsh!.push(await timed('virsh', ['-q', 'vol-upload', '--pool', `${P}-pool`, `${P}-virsh.img`, image]));
      cleanup();
      rows.file!.push(await timed(process.execPath, [CLI, 'reconcile', fileDir, '--db', join(state, 'file.db')]));
      cleanup();
    }
  } finally {
    server.close();
    cleanup();
    rmSync(work, { recursive: true, force: true });
  }
  const base = median(rows.poolOnly!);
  const line = (what: string, xs: number[], net = false): (string | number)[] => {
    const m = median(xs);
    return [what, `${(m / 1000).toFixed(2)} s`, `${mib(m)} MiB/s`, net ? `${(Math.max(1, m - base) / 1000).toFixed(2)} s / ${mib(Math.max(1, m - base))} MiB/s` : '—'];
  };
  writeReport(f.out, `# URL import benchmark

A ${MIB} MiB raw image of random bytes (no zero runs: every byte is sent) served over HTTP by a
loopback server (node:http, 127.0.0.1), median of ${RUNS} runs. virtform runs are whole CLI runs
(\`reconcile\` of a pool and the volume, from nothing); "net" subtracts the median of the same run
with the pool only (${(base / 1000).toFixed(2)} s: process start, connection, plan, pool steps).

${machineBlock()}

${table(['what', 'wall time', 'throughput', 'net of the fixed cost'], [
    line('`curl -sS -o file URL` (to a file on the same host)', rows.curl!),
    line('virtform: URL volume, empty cache (download + sha256 to the cache file, then upload stream into the volume)', rows.cold!, true),
    line('virtform: URL volume, image cached (upload stream only)', rows.warm!, true),
    line('virtform: local `source` file (sha256 at load, streamed through the upload stream)', rows.file!, true),
    line('`qemu-img convert -O raw` of the file to a file (the old local import path, without libvirt)', rows.qemuimg!),
    line('`virsh vol-upload` of the file into a volume (libvirt\'s own upload stream, no sparse)', rows.virsh!),
  ])}

Raw timings (ms): ${Object.entries(rows).map(([k, v]) => `${k} ${v.map((x) => x.toFixed(0)).join('/')}`).join('; ')}.
`);
}

main().catch((e) => {
  cleanup();
  console.error(e);
  process.exit(1);
});
