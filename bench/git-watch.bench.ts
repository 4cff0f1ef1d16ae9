/**
 * Benchmark of `virtform watch --git`: commit-to-converged latency for one changed VM among 1,000
 * managed resources, the manifests coming from a git repository (a local bare repository,
 * file://; one manifest file per VM).
 *
 *   npx tsx bench/git-watch.bench.ts [--out bench/results/git-watch.md] [--edits 5] [--resources 1000]
 *                                    [--interval 1] [--uri test+unix:///default]
 *
 * Like bench/watch.bench.ts, the controller runs in this process over ONE connection to libvirt's
 * test driver (it keeps its state only as long as one connection): 1,000 real libvirt objects
 * under QEMU would measure QEMU, not virtform. Everything is first created by the controller's
 * initial run from the first commit; then one VM's memory is changed, committed and pushed N times,
 * and each time the clock runs from the end of the push until the step applying that VM's change
 * has finished. The latency includes the wait for the next fetch (uniform in [0, interval]), the
 * fetch, the checkout and validation of all 500 files, moving the checkout in place, the run's
 * load + observe + diff + plan of all 1,000 resources, and the step.
 */
import { cpus, totalmem, tmpdir } from 'node:os';
import { mkdtempSync, rmSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { mkdirSync, writeFileSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { openHost } from '../src/reconcile/adapters/libvirt-host.js';
import { openStateStore } from '../src/state/index.js';
import { GitRepository, GitSync } from '../src/git/index.js';
import { GitRepositorySource, WatchController, type Logger } from '../src/watch/index.js';
import type { HostPort } from '../src/reconcile/ports.js';
import { TestRepo } from '../test/support/git.js';

function arg(name: string, def: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && process.argv[i + 1] ? process.argv[i + 1]! : def;
}
const OUT = arg('out', '');
const EDITS = Number(arg('edits', '5'));
const RESOURCES = Number(arg('resources', '1000'));
const INTERVAL_S = Number(arg('interval', '1'));
const URI = arg('uri', 'test+unix:///default');
const P = 'vfbench-git';
const PAIRS = Math.floor((RESOURCES - 2) / 2);

function vmFile(i: number, memoryMiB: number): string {
  const n = String(i).padStart(4, '0');
  return `apiVersion: virtform.dev/v1
kind: Volume
metadata: {name: ${P}-disk-${n}}
spec: {pool: ${P}-pool, capacity: 1MiB, format: qcow2}
---
apiVersion: virtform.dev/v1
kind: VirtualMachine
metadata: {name: ${P}-vm-${n}}
spec:
  vcpus: 1
  memory: ${memoryMiB}MiB
  state: stopped
  disks: [{volume: ${P}-disk-${n}, bus: virtio, boot: 1}]
  nics: [{network: ${P}-net}]
`;
}

const stats = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  const q = (p: number) => s[Math.min(s.length - 1, Math.floor(p * s.length))]!;
  return { min: s[0]!, median: q(0.5), p90: q(0.9), max: s[s.length - 1]! };
};

async function main(): Promise<void> {
  const work = mkdtempSync(join(tmpdir(), 'vfbench-git-'));
  const repo = new TestRepo(join(work, 'repo'));
  const files: Record<string, string> = {
    'base.yaml': `apiVersion: virtform.dev/v1
kind: StoragePool
metadata: {name: ${P}-pool}
spec: {path: /var/lib/virtform-bench/${P}-pool}
---
apiVersion: virtform.dev/v1
kind: Network
metadata: {name: ${P}-net}
spec: {mode: isolated, cidr: 10.237.0.0/16}
`,
  };
  for (let i = 0; i < PAIRS; i++) files[`vm-${String(i).padStart(4, '0')}.yaml`] = vmFile(i, 64);
  repo.commit(files, { folder: 'env' });

  const store = await openStateStore(join(work, 'state.db'));
  let host: HostPort | undefined;
  const connect = async (): Promise<HostPort> => {
    if (host) throw new Error('the test driver keeps its state for one connection only: not reconnecting');
    const raw = await openHost(URI);
    host = new Proxy(raw, {
      get(target, prop) {
        if (prop === 'domainType') return async () => 'qemu' as const;
        const v = Reflect.get(target, prop, target) as unknown;
        return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(target) : v;
      },
    }) as HostPort;
    return host;
  };

  let waiter: { resource: string; resolve: () => void } | undefined;
  let firstOutcome: unknown;
  let currentSources: string[] = [];
  let appliedBy: string[] = [];
  let currentSeq = 0;
  let appliedSeq = 0;
  let lastFetch: { fetchMs: number; validateMs: number; at: number } | undefined;
  const durations = new Map<number, number>();
  const logger: Logger = {
    debug() {},
    warn(msg, f) {
      process.stderr.write(`${msg} ${JSON.stringify(f)}\n`);
    },
    error(msg, f) {
      if (msg === 'reconcile finished with failures' && f?.seq === 1) firstOutcome = f.outcome;
      process.stderr.write(`${msg} ${JSON.stringify(f)}\n`);
    },
    info(msg, f) {
      if (msg === 'git: new commit fetched and validated') lastFetch = { fetchMs: Number(f?.fetchMs), validateMs: Number(f?.validateMs), at: performance.now() };
      if (msg === 'reconcile started') {
        currentSources = (f?.sources as string[]) ?? [];
        currentSeq = Number(f?.seq);
      }
      if (msg === 'reconcile finished') durations.set(Number(f?.seq), Number(f?.durationMs));
      if (msg === 'step done' && waiter && f?.resource === waiter.resource) {
        appliedBy = currentSources;
        appliedSeq = currentSeq;
        waiter.resolve();
      }
      if (msg === 'reconcile finished' && f?.seq === 1) firstOutcome = f.outcome;
    },
  };
  const sync = new GitSync(new GitRepository({ url: repo.url, ref: { kind: 'branch', name: 'main' }, path: 'env' }, { cacheRoot: join(work, 'git') }), store);
  const git = new GitRepositorySource({ sync, intervalMs: INTERVAL_S * 1000, logger });
  const c = new WatchController({ dir: '', git, store, connect, resyncMs: 300_000, logger, concurrency: 4, gracefulStop: false });

  const t0 = performance.now();
  await c.start();
  while (!c.ready) await new Promise((r) => setTimeout(r, 20));
  await c.idle();
  const initialMs = performance.now() - t0;
  if (firstOutcome !== 'succeeded') throw new Error(`initial reconcile: ${String(firstOutcome)}`);
  const managed = (await store.resources.list()).length;
  process.stderr.write(`initial reconcile of ${managed} resources from git: ${(initialMs / 1000).toFixed(1)} s\n`);

  const target = Math.floor(PAIRS / 2);
  const resource = `VirtualMachine/${P}-vm-${String(target).padStart(4, '0')}`;
  const latencies: number[] = [];
  const fromFetch: number[] = [];
  const fetchMs: number[] = [];
  const validateMs: number[] = [];
  const runDurations: number[] = [];
  const pushMs: number[] = [];
  for (let e = 0; e < EDITS; e++) {
    await c.idle();
    await new Promise((r) => setTimeout(r, 1500));
    await c.idle();
    const applied = new Promise<void>((resolve) => (waiter = { resource, resolve }));
    const next = { ...files, [`vm-${String(target).padStart(4, '0')}.yaml`]: vmFile(target, 64 + 8 * (e + 1)) };
    const p0 = performance.now();
    repo.commit(next, { folder: 'env', message: `edit ${e}` });
    const start = performance.now();
    pushMs.push(start - p0);
    lastFetch = undefined;
    await applied;
    const end = performance.now();
    latencies.push(end - start);
    waiter = undefined;
    if (lastFetch) {
      const lf: { fetchMs: number; validateMs: number; at: number } = lastFetch;
      fetchMs.push(lf.fetchMs);
      validateMs.push(lf.validateMs);
      fromFetch.push(end - lf.at + lf.fetchMs + lf.validateMs);
    }
    await c.idle();
    runDurations.push(durations.get(appliedSeq)!);
    if (!appliedBy.includes('git')) throw new Error(`the edit was applied by a run started by ${appliedBy.join(',')}, not by the git source`);
    const st = await c.status();
    if (st.runs.lastReconcile?.outcome === 'failed' || st.runs.lastReconcile?.outcome === 'error') throw new Error(`edit run: ${st.runs.lastReconcile.outcome}`);
    if (st.git?.differ) throw new Error(`not up to date after the edit: ${st.git.summary}`);
  }
  process.stderr.write(`commit-to-converged: ${latencies.map((x) => x.toFixed(0)).join(', ')} ms\n`);
  await c.stop();
  await store.close();
  rmSync(work, { recursive: true, force: true });

  let libvirtVersion = 'unknown';
  try {
    libvirtVersion = execFileSync('virsh', ['-c', URI, 'version'], { encoding: 'utf8' }).split('\n').find((l) => l.startsWith('Using library'))?.replace('Using library: ', '') ?? 'unknown';
  } catch { /* informational */ }
  const gitVersion = execFileSync('git', ['--version'], { encoding: 'utf8' }).trim();
  const lat = stats(latencies);
  const ff = stats(fromFetch.length ? fromFetch : [0]);
  const md = `# virtform watch --git benchmark

Run: \`npx tsx bench/git-watch.bench.ts${process.argv.slice(2).length ? ` ${process.argv.slice(2).join(' ')}` : ''}\` on ${new Date().toISOString()}

| Machine | |
|---|---|
| CPU | ${cpus()[0]?.model ?? 'unknown'} |
| Cores | ${cpus().length} |
| Memory | ${(totalmem() / 2 ** 30).toFixed(1)} GiB |
| Node | ${process.version} |
| git | ${gitVersion} |
| libvirt | ${libvirtVersion} (${URI}, in-process watcher, one connection) |

| Setup | |
|---|---|
| Managed resources | ${managed} (1 pool, 1 network, ${PAIRS} volumes, ${PAIRS} VMs; one manifest file per VM, ${PAIRS + 1} files in the commit) |
| Git source | local bare repository (file://), --branch main --path env |
| --git-interval | ${INTERVAL_S} s |
| Initial reconcile (fetch, validate, create all) | ${(initialMs / 1000).toFixed(1)} s |

| Commit-to-converged (one VM's memory changed, ${EDITS} commits) | ms |
|---|---|
| min | ${lat.min.toFixed(0)} |
| median | ${lat.median.toFixed(0)} |
| p90 | ${lat.p90.toFixed(0)} |
| max | ${lat.max.toFixed(0)} |
| of which waiting for the next fetch | 0 to ${INTERVAL_S * 1000} (uniform) |
| from the start of the fetch that saw the commit to the applied step (median) | ${ff.median.toFixed(0)} |
| fetch (median) | ${stats(fetchMs.length ? fetchMs : [0]).median.toFixed(0)} |
| verify + checkout + validate ${PAIRS + 1} files (median) | ${stats(validateMs.length ? validateMs : [0]).median.toFixed(0)} |
| reconcile run (median: move the checkout in place, load, observe + diff + plan of all ${managed}, the step) | ${stats(runDurations).median.toFixed(0)} |
| git commit + push in the bench (not counted) | ${stats(pushMs).median.toFixed(0)} |

Latency = from the end of \`git push\` to the bare repository until the watcher logged the applied
step for that VM. With the default --git-interval of 60 s the wait for the next fetch dominates
(30 s on average); the work after the fetch is the "from the start of the fetch" row.
`;
  if (OUT) {
    mkdirSync(dirname(OUT), { recursive: true });
    writeFileSync(OUT, md);
    process.stderr.write(`wrote ${OUT}\n`);
  }
  process.stdout.write(md);
}

await main();
