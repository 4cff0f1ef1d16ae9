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
import { execFileSync, spawnSync } from 'node:child_process';
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
const POOL_PATH = `/var/lib/virtform-test/${P}-pool`;
const ROOT = resolve(import.meta.dirname, '..');
const CLI = join(ROOT, 'dist/cli/main.js');

const cleanup = (): void => {
  try {
    execFileSync('bash', [join(ROOT, 'scripts/cleanup-test-objects.sh'), P], { stdio: 'ignore' });
  } catch { /* best effort */ }
};

function timed(cmd: string, args: string[], env: Record<string, string> = {}): number {
  const t = performance.now();
  const r = spawnSync(cmd, args, { cwd: ROOT, env: { ...process.env, NO_COLOR: '1', ...env }, encoding: 'utf8', maxBuffer: 64 << 20 });
  const ms = performance.now() - t;
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} exited ${r.status}: ${r.stdout}\n${r.stderr}`);
  return ms;
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
  const rows: Record<string, number[]> = { curl: [], cold: [], warm: [], file: [], qemuimg: [], poolOnly: [] };
  const mib = (ms: number): string => (size / 1024 ** 2 / (ms / 1000)).toFixed(0);
  try {
    for (let i = 0; i < RUNS; i += 1) {
      const out = join(work, 'curl.out');
      rows.curl!.push(timed('curl', ['-sS', '-f', '-o', out, url]));
      rmSync(out);
      const conv = join(work, 'conv.raw');
      rows.qemuimg!.push(timed('qemu-img', ['convert', '-f', 'raw', '-O', 'raw', image, conv]));
      rmSync(conv);

      // Fresh state dir (empty image cache): download + verify + upload.
      const state = join(work, `state-${i}`);
      mkdirSync(state);
      const db = join(state, 'state.db');
      rows.cold!.push(timed(process.execPath, [CLI, 'reconcile', urlDir, '--db', db]));
      // Image cached: delete the volume's DB and objects, reimport (upload only).
      const teardown = (d: string): void => {
        timed(process.execPath, [CLI, 'reconcile', join(work, 'empty'), '--db', d, '--allow-empty', '--allow-data-loss']);
      };
      mkdirSync(join(work, 'empty'), { recursive: true });
      teardown(db);
      rows.warm!.push(timed(process.execPath, [CLI, 'reconcile', urlDir, '--db', db]));
      teardown(db);
      // The pool alone, to subtract the CLI's fixed cost (start, connect, plan, pool define/start).
      writeFileSync(join(work, 'pool-only.yaml'), pool);
      const poolDir = join(work, 'pool-only');
      mkdirSync(poolDir, { recursive: true });
      writeFileSync(join(poolDir, 'm.yaml'), pool);
      rows.poolOnly!.push(timed(process.execPath, [CLI, 'reconcile', poolDir, '--db', db]));
      teardown(db);
      const db2 = join(state, 'file.db');
      rows.file!.push(timed(process.execPath, [CLI, 'reconcile', fileDir, '--db', db2]));
      teardown(db2);
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
  ])}

Raw timings (ms): ${Object.entries(rows).map(([k, v]) => `${k} ${v.map((x) => x.toFixed(0)).join('/')}`).join('; ')}.
`);
}

main().catch((e) => {
  cleanup();
  console.error(e);
  process.exit(1);
});
