/**
 * Crash safety on the real libvirtd: the CLI is killed with SIGKILL at every journal boundary
 * (after a step is journaled, and after its libvirt call but before its result is recorded) of an
 * apply of 10 resources and of their teardown; each time a rerun converges, leaves no undeclared
 * owned object or volume file (vm3's cloud-init seed included: its build/upload step is in the
 * matrix), closes every journal entry, and the read-back oracle
 * (test/support/readback.ts, issue #12) finds libvirt's definitions equal to the manifests.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { join } from 'node:path';
import { mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { labManifests, writeManifests } from '../../support/manifests.js';
import { spawn } from 'node:child_process';
import { CLI, ROOT, inventory, openJournal, orphans, runCli, spawnCli, type Declared } from '../../support/real-host.js';
import { expectReadbackMatches, readback, type Snapshot } from '../../support/readback.js';
import { useSuite } from '../../support/suite.js';
import { suiteNames } from '../../support/names.js';

const N = useSuite('crash', {
  setup: () => {
    full = writeManifests(join(N.work, 'full'), {
      ...labManifests({ prefix: P, poolPath: POOL_DIR, cidr: '10.235.0.0/24' }),
      'extra.yaml': extra,
    });
    empty = writeManifests(join(N.work, 'empty'), {});
  },
});
const P = N.base;
const POOL_DIR = `/var/lib/virtform-test/${P}-pool`;

const extra = `apiVersion: virtform.dev/v1
kind: Volume
metadata: {name: ${P}-extra}
spec: {pool: ${P}-pool, capacity: 64MiB, format: qcow2, backingVolume: ${P}-base}
---
apiVersion: virtform.dev/v1
kind: Network
metadata: {name: ${P}-net2}
spec: {mode: isolated, cidr: 10.241.0.0/24}
---
apiVersion: virtform.dev/v1
kind: VirtualMachine
metadata: {name: ${P}-vm3}
spec:
  vcpus: 1
  memory: 32MiB
  state: stopped
  disks: [{volume: ${P}-extra}]
  nics: [{network: ${P}-net2}]
  # its seed (build + upload steps) lands in the pool of its first disk: ${P}-pool/${P}-vm3-cidata.iso
  cloudInit:
    userData: "#cloud-config\\n#vf-marker: crash\\n"
    metaData: {local-hostname: vm3}
`;

const declared: Declared = {
  domains: [`${P}-vm1`, `${P}-vm2`, `${P}-vm3`],
  networks: [`${P}-net`, `${P}-net2`],
  pools: [`${P}-pool`],
  volumes: [`${P}-base.qcow2`, `${P}-data.img`, `${P}-extra.qcow2`, `${P}-root.qcow2`, `${P}-vm3-cidata.iso`].map((v) => `${P}-pool/${v}`),
  files: [`${P}-base.qcow2`, `${P}-data.img`, `${P}-extra.qcow2`, `${P}-root.qcow2`, `${P}-vm3-cidata.iso`].map((v) => `${POOL_DIR}/${v}`),
};
const NOTHING: Declared = { domains: [], networks: [], pools: [], volumes: [], files: [] };

let full: string;
let empty: string;

async function stepCount(dir: string, db: string, extraArgs: string[] = []): Promise<number> {
  const r = await runCli(['reconcile', dir, '--db', db, '--dry-run', '--json', ...extraArgs]);
  expect(r.code, r.stderr).toBe(0);
  return (JSON.parse(r.stdout) as { plan: { steps: unknown[] } }).plan.steps.length;
}

/** What the host looked like right after a crash (not converged: only its snapshot is kept, for MAC/base stability). */
async function afterCrash(dir: string): Promise<Snapshot> {
  return (await readback(dir, 'qemu:///system')).snapshot;
}

/**
 * Rerun to convergence, then check it: exit 0, a dry-run with no changes, no orphans, no open
 * journal entry, and the read-back oracle (issue #12): libvirt's actual definitions equal the
 * manifests, and no generated MAC / clone's base seen right after the crash (`seen`) changed.
 */
async function converge(label: string, dir: string, db: string, want: Declared, extraArgs: string[] = [], seen?: Snapshot): Promise<void> {
  const r = await runCli(['reconcile', dir, '--db', db, '--shutdown-timeout', '0', ...extraArgs]);
  expect(r.code, `${label}: ${r.stdout}\n${r.stderr}`).toBe(0);
  const again = await runCli(['reconcile', dir, '--db', db, '--dry-run', '--detailed-exitcode', ...extraArgs]);
  expect(again.code, `${label}: ${again.stdout}\n${again.stderr}`).toBe(0);
  expect(orphans(N.prefix, want), label).toEqual([]);
  expect(openJournal(db), label).toEqual([]);
  await expectReadbackMatches(dir, 'qemu:///system', seen, label);
}

describe('SIGKILL at every journal boundary', () => {
  it('apply of 10 resources and their teardown: every rerun converges with no orphans', async () => {
    const db0 = join(N.work, 'probe.db');
    const applySteps = await stepCount(full, db0);
    expect(applySteps).toBeGreaterThanOrEqual(11);
    const applyBoundaries = applySteps * 2;
    // One delete step per object; a VM's seed volume goes in its VM's step.
    const teardownBoundaries = declared.domains.length + declared.networks.length + declared.pools.length + declared.volumes.filter((v) => !v.endsWith('-cidata.iso')).length;
    const outcomes: string[] = [];

    // VIRTFORM_CRASH_ROUNDS=a-b reruns only those rounds (debugging); by default every boundary.
    const [from, to] = (process.env.VIRTFORM_CRASH_ROUNDS ?? `1-${applyBoundaries}`).split('-').map(Number);
    for (let k = from!; k <= Math.min(to!, applyBoundaries); k += 1) {
      const db = join(N.work, `round-${k}.db`);
      expect(orphans(N.prefix, NOTHING), `before round ${k} (left by round ${k - 1})`).toEqual([]);
      const crashed = await runCli(['reconcile', full, '--db', db, '--shutdown-timeout', '0'], { VIRTFORM_TEST_CRASH_AT: String(k) });
      expect(crashed.signal, `round ${k}: ${crashed.stdout}\n${crashed.stderr}`).toBe('SIGKILL');
      await converge(`round ${k} apply`, full, db, declared, [], await afterCrash(full));

      // Tear down, crashing at a boundary of the deletes (two per delete step), then finish it.
      const t = ((k - 1) % (teardownBoundaries * 2)) + 1;
      const torn = await runCli(['reconcile', empty, '--db', db, '--allow-empty', '--allow-data-loss', '--max-deletions', 'all'], { VIRTFORM_TEST_CRASH_AT: String(t) });
      expect(torn.signal, `round ${k} teardown ${t}: ${torn.stdout}\n${torn.stderr}`).toBe('SIGKILL');
      await converge(`round ${k} teardown ${t}`, empty, db, NOTHING, ['--allow-empty', '--allow-data-loss', '--max-deletions', 'all']);
      outcomes.push(`${k}/${t}`);
    }
    expect(outcomes).toHaveLength(Math.min(to!, applyBoundaries) - from! + 1);
  }, 1_200_000);
});

describe('SIGTERM', () => {
  it('finishes the step in flight, starts no new one, exits 1; the rerun converges', async () => {
    const db = join(N.work, 'sigterm.db');
    const child = spawn(process.execPath, [CLI, 'reconcile', full, '--db', db, '--concurrency', '1'], {
      cwd: ROOT, env: { ...process.env, NO_COLOR: '1' }, stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const exited = new Promise<number | null>((r) => child.on('close', (code) => r(code)));
    await new Promise<void>((r) => {
      child.stdout.on('data', (d: Buffer) => {
        stdout += d.toString();
        if (stdout.includes('✓ ')) r();
      });
      child.on('close', () => r()); // exited without a first step: the assertions below say why
    });
    child.kill('SIGTERM');
    const code = await exited;
    expect(code, `${stdout}\n${stderr}`).toBe(1);
    expect(stderr).toMatch(/SIGTERM: finishing the steps in flight/);
    expect(stdout).toMatch(/Apply interrupted: /);
    expect(stdout).toMatch(/not started: shutting down/);
    expect(openJournal(db)).toEqual([]);
    await converge('after SIGTERM', full, db, declared, [], await afterCrash(full));
    await converge('teardown', empty, db, NOTHING, ['--allow-empty', '--allow-data-loss', '--max-deletions', 'all']);
  });
});

/**
 * The URL import step (issue #13): a volume whose `source` is a URL served by a loopback server in
 * this test, with a qcow2 base from a URL and a clone of it. The CLI is SIGKILLed at every journal
 * boundary of the apply (the import has three: image downloaded and verified, volume created
 * empty, bytes uploaded), enumerated until a run no longer crashes, and once in the middle of a
 * download. Every rerun converges; no partial volume survives; the cache holds no partial file.
 */
describe('SIGKILL during URL imports', () => {
  const NU = suiteNames('urlcrash');
  const U = NU.base;
  // VIRTFORM_TEST_POOL_ROOT: another root for this scenario's pool (where parallel suites share
  // /var/lib/virtform-test and clean every vftest* folder in it).
  const UPOOL = `${process.env.VIRTFORM_TEST_POOL_ROOT ?? '/var/lib/virtform-test'}/${U}-pool`;
  // A whole number of 512-byte sectors (QEMU rounds a raw file's size up to one).
  const RAW = Buffer.concat([Buffer.from('crash url image\n'), Buffer.alloc(2 * 1024 ** 2 - 16), Buffer.alloc(1024 ** 2, 0x33)]);
  let QCOW: Buffer;
  let srv: Server;
  let base: string;
  let hold: (() => void) | undefined;
  const digest = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

  beforeAll(async () => {
    NU.cleanup();
    const raw = join(N.work, 'url-crash.raw');
    writeFileSync(raw, RAW);
    execFileSync('qemu-img', ['convert', '-f', 'raw', '-O', 'qcow2', raw, join(N.work, 'url-crash.qcow2')]);
    QCOW = readFileSync(join(N.work, 'url-crash.qcow2'));
    srv = createServer((req, res) => {
      const body = req.url?.startsWith('/base.qcow2') ? QCOW : RAW;
      res.writeHead(200, { 'content-length': body.length });
      if (req.url === '/slow.img') {
        // Half now, the rest when released: the test kills the CLI in between.
        res.write(body.subarray(0, body.length / 2));
        hold = () => res.end(body.subarray(body.length / 2));
        return;
      }
      res.end(body);
    });
    await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
    base = `http://127.0.0.1:${(srv.address() as AddressInfo).port}`;
  });
  afterAll(async () => {
    srv.closeAllConnections();
    await new Promise<void>((r) => srv.close(() => r()));
    NU.cleanup();
  });

  const manifests = (rawPath: string): string => `apiVersion: virtform.dev/v1
kind: StoragePool
metadata: {name: ${U}-pool}
spec: {path: ${UPOOL}}
---
apiVersion: virtform.dev/v1
kind: Volume
metadata: {name: ${U}-data}
spec: {pool: ${U}-pool, format: raw, source: {url: "${base}${rawPath}", sha256: "${digest(RAW)}"}}
---
apiVersion: virtform.dev/v1
kind: Volume
metadata: {name: ${U}-base}
spec: {pool: ${U}-pool, format: qcow2, capacity: 8MiB, source: {url: "${base}/base.qcow2", sha256: "${digest(QCOW)}"}}
---
apiVersion: virtform.dev/v1
kind: Volume
metadata: {name: ${U}-clone}
spec: {pool: ${U}-pool, format: qcow2, capacity: 16MiB, backingVolume: ${U}-base}
`;
  const files = [`${U}-base.qcow2`, `${U}-clone.qcow2`, `${U}-data.img`];
  const want: Declared = {
    domains: [], networks: [], pools: [`${U}-pool`],
    volumes: files.map((f) => `${U}-pool/${f}`), files: files.map((f) => `${UPOOL}/${f}`),
  };
  const none: Declared = { domains: [], networks: [], pools: [], volumes: [], files: [] };

  async function convergeUrl(label: string, dir: string, db: string): Promise<void> {
    const r = await runCli(['reconcile', dir, '--db', db]);
    expect(r.code, `${label}: ${r.stdout}\n${r.stderr}`).toBe(0);
    const again = await runCli(['reconcile', dir, '--db', db, '--dry-run', '--detailed-exitcode']);
    expect(again.code, `${label}: ${again.stdout}`).toBe(0);
    expect(orphans(NU.prefix, want), label).toEqual([]);
    expect(readdirSync(UPOOL).sort(), `${label}: files in the pool`).toEqual(files);
    expect(openJournal(db), label).toEqual([]);
    expect(digest(readFileSync(`${UPOOL}/${U}-data.img`)), `${label}: bytes on the volume`).toBe(digest(RAW));
    expect(readdirSync(join(db, '..', 'images')).filter((f) => f.includes('.part.') || f.startsWith('convert.')), label).toEqual([]);
    await expectReadbackMatches(dir, 'qemu:///system', undefined, label);
  }
  async function teardown(label: string, db: string): Promise<void> {
    const r = await runCli(['reconcile', empty, '--db', db, '--allow-empty', '--allow-data-loss']);
    expect(r.code, `${label}: ${r.stdout}\n${r.stderr}`).toBe(0);
    expect(orphans(NU.prefix, none), label).toEqual([]);
  }

  it('every journal boundary of an apply with URL imports: every rerun converges, no partial volume', async () => {
    NU.cleanup();
    const dir = writeManifests(join(N.work, 'url-full'), { 'm.yaml': manifests('/data.img') });
    const rounds: number[] = [];
    for (let k = 1; k <= 40; k += 1) {
      const state = join(N.work, `url-round-${k}`);
      mkdirSync(state, { recursive: true });
      const db = join(state, 'state.db');
      const crashed = await runCli(['reconcile', dir, '--db', db], { VIRTFORM_TEST_CRASH_AT: String(k) });
      if (crashed.signal !== 'SIGKILL') {
        // Past the last boundary: the run finished by itself.
        expect(crashed.code, `round ${k}: ${crashed.stdout}\n${crashed.stderr}`).toBe(0);
        await teardown(`after the last round ${k}`, db);
        break;
      }
      // What a crash may leave: declared objects only (a half-made volume is virtform's by the journal).
      expect(orphans(NU.prefix, want), `round ${k} right after the crash`).toEqual([]);
      await convergeUrl(`round ${k}`, dir, db);
      await teardown(`round ${k} teardown`, db);
      rounds.push(k);
    }
    // pool define/start/autostart + 3 volumes, two boundaries a step plus the imports' three more each.
    console.info(`URL import crash matrix: ${rounds.length} boundaries, every rerun converged`);
    expect(rounds.length).toBeGreaterThanOrEqual(12);
  }, 600_000);

  it('SIGKILL in the middle of a download: no partial volume or cached file survives the rerun', async () => {
    NU.cleanup();
    const dir = writeManifests(join(N.work, 'url-slow'), { 'm.yaml': manifests('/slow.img') });
    const state = join(N.work, 'url-slow-state');
    mkdirSync(state, { recursive: true });
    const db = join(state, 'state.db');
    hold = undefined;
    const child = spawnCli(['reconcile', dir, '--db', db]);
    for (let i = 0; i < 200 && !hold; i += 1) await new Promise((r) => setTimeout(r, 50));
    expect(hold, 'the download started').toBeDefined();
    await new Promise((r) => setTimeout(r, 300));
    process.kill(child.pid, 'SIGKILL');
    const done = await child.done;
    expect(done.signal).toBe('SIGKILL');
    expect(inventory(NU.prefix).volumes.filter((v) => v.endsWith('-data.img'))).toEqual([]);
    (hold as (() => void) | undefined)?.();
    // The rerun downloads again (from a server that now answers at once) and converges.
    writeManifests(dir, { 'm.yaml': manifests('/data.img') });
    await convergeUrl('after a kill mid-download', dir, db);
    await teardown('mid-download teardown', db);
  }, 120_000);
});
