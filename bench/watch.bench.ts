/**
 * Benchmark of `virtform watch`: edit-to-converged latency for one changed VM among 1,000 managed
 * resources, and the watcher's idle CPU and RSS.
 *
 *   npx tsx bench/watch.bench.ts [--out bench/results/watch.md] [--idle-seconds 60] [--edits 5]
 *                                [--resources 1000] [--debounce 500] [--uri test+unix:///default]
 *
 * libvirt's test driver keeps its state only as long as ONE connection, so the controller runs in
 * this process over a single openHost connection: everything is first created by virtform's own
 * reconcile (the controller's initial run), then one VM's manifest is edited N times and each time
 * the clock runs from the write until the step applying that VM's change has finished.
 */
import { cpus, totalmem, tmpdir } from 'node:os';
import { mkdirSync, mkdtempSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { execFileSync } from 'node:child_process';
import { openHost } from '../src/reconcile/adapters/libvirt-host.js';
import { openStateStore } from '../src/state/index.js';
import { WatchController, type Logger } from '../src/watch/index.js';
import type { HostPort } from '../src/reconcile/ports.js';

function arg(name: string, def: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && process.argv[i + 1] ? process.argv[i + 1]! : def;
}
const OUT = arg('out', '');
const IDLE_S = Number(arg('idle-seconds', '60'));
const EDITS = Number(arg('edits', '5'));
const RESOURCES = Number(arg('resources', '1000'));
const DEBOUNCE = Number(arg('debounce', '500'));
const URI = arg('uri', 'test+unix:///default');
const P = 'vfbench-watch';

// 1 pool + 1 network + N × (volume + VM) = RESOURCES
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

function writeAtomic(path: string, text: string): void {
  const tmp = join(dirname(path), `.tmp-${process.pid}`);
  writeFileSync(tmp, text);
  renameSync(tmp, path);
}

const stats = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  const q = (p: number) => s[Math.min(s.length - 1, Math.floor(p * s.length))]!;
  return { min: s[0]!, median: q(0.5), p90: q(0.9), max: s[s.length - 1]! };
};

async function main(): Promise<void> {
  const work = mkdtempSync(join(tmpdir(), 'vfbench-watch-'));
  const mdir = join(work, 'manifests');
  mkdirSync(mdir);
  writeFileSync(join(mdir, 'base.yaml'), `apiVersion: virtform.dev/v1
kind: StoragePool
metadata: {name: ${P}-pool}
spec: {path: /var/lib/virtform-bench/${P}-pool}
---
apiVersion: virtform.dev/v1
kind: Network
metadata: {name: ${P}-net}
spec: {mode: isolated, cidr: 10.238.0.0/16}
`);
  for (let i = 0; i < PAIRS; i++) writeFileSync(join(mdir, `vm-${String(i).padStart(4, '0')}.yaml`), vmFile(i, 64));

  const store = await openStateStore(join(work, 'state.db'));
  let host: HostPort | undefined;
  const connect = async (): Promise<HostPort> => {
    if (host) throw new Error('the test driver keeps its state for one connection only: not reconnecting');
    const raw = await openHost(URI);
    // The adapter picks kvm/qemu from the capabilities; the test driver offers neither but accepts
    // <domain type='qemu'>, so the benchmark pins it.
    host = new Proxy(raw, {
      get(target, prop) {
        if (prop === 'domainType') return async () => 'qemu' as const;
        const v = Reflect.get(target, prop, target) as unknown;
        return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(target) : v;
      },
    }) as HostPort;
    return host;
  };

  // A logger that only listens for the events the benchmark waits on.
  let waiter: { resource: string; resolve: () => void } | undefined;
  let firstOutcome: unknown;
  let currentSources: string[] = [];
  let appliedBy: string[] = [];
  let currentSeq = 0;
  let appliedSeq = 0;
  const durations = new Map<number, number>();
  const logger: Logger = {
    debug() {}, warn() {},
    error(msg, f) {
      if (msg === 'reconcile finished with failures' && f?.seq === 1) firstOutcome = f.outcome;
      if (msg !== 'manifest error') process.stderr.write(`${msg} ${JSON.stringify(f)}\n`);
    },
    info(msg, f) {
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
  const c = new WatchController({ dir: mdir, store, connect, debounceMs: DEBOUNCE, resyncMs: 300_000, logger, concurrency: 4, gracefulStop: false });

  const t0 = performance.now();
  await c.start();
  while (!c.ready) await new Promise((r) => setTimeout(r, 20));
  await c.idle();
  const initialMs = performance.now() - t0;
  if (firstOutcome !== 'succeeded') throw new Error(`initial reconcile: ${firstOutcome}`);
  const managed = (await store.resources.list()).length;
  process.stderr.write(`initial reconcile of ${managed} resources: ${(initialMs / 1000).toFixed(1)} s\n`);

  // Edit one VM N times; the clock runs from the write to the applied step.
  const target = Math.floor(PAIRS / 2);
  const resource = `VirtualMachine/${P}-vm-${String(target).padStart(4, '0')}`;
  const latencies: number[] = [];
  const runDurations: number[] = [];
  for (let e = 0; e < EDITS; e++) {
    // Quiesce: the previous edit's own lifecycle events cause one more (noop) run; let it pass so
    // that the edit below is picked up by a run its file event started.
    await c.idle();
    await new Promise((r) => setTimeout(r, 1500));
    await c.idle();
    const applied = new Promise<void>((resolve) => (waiter = { resource, resolve }));
    const start = performance.now();
    writeAtomic(join(mdir, `vm-${String(target).padStart(4, '0')}.yaml`), vmFile(target, 64 + 8 * (e + 1)));
    await applied;
    latencies.push(performance.now() - start);
    waiter = undefined;
    await c.idle();
    const run = (await c.status()).runs.lastReconcile!;
    runDurations.push(durations.get(appliedSeq)!);
    if (!appliedBy.includes('file')) throw new Error(`the edit was applied by a run started by ${appliedBy.join(',')}, not by the file event`);
    if (run.outcome === 'failed' || run.outcome === 'error') throw new Error(`edit run: ${run.outcome}`);
  }
  process.stderr.write(`edit-to-converged: ${latencies.map((x) => x.toFixed(0)).join(', ')} ms\n`);

  // Idle: nothing changes; measure CPU and RSS (after the last edit's follow-up run has passed).
  await c.idle();
  await new Promise((r) => setTimeout(r, 1500));
  await c.idle();
  if (typeof global.gc === 'function') global.gc();
  const runsBefore = c.runCount;
  const cpu0 = process.cpuUsage();
  const w0 = performance.now();
  let rssMax = 0;
  const rssSamples: number[] = [];
  const sampler = setInterval(() => {
    const r = process.memoryUsage().rss;
    rssSamples.push(r);
    rssMax = Math.max(rssMax, r);
  }, 1000);
  await new Promise((r) => setTimeout(r, IDLE_S * 1000));
  clearInterval(sampler);
  const cpu = process.cpuUsage(cpu0);
  const wallS = (performance.now() - w0) / 1000;
  const cpuS = (cpu.user + cpu.system) / 1e6;
  const rssEnd = process.memoryUsage().rss;
  const idleRuns = c.runCount - runsBefore;

  await c.stop();
  await store.close();
  rmSync(work, { recursive: true, force: true });

  let libvirtVersion = 'unknown';
  try {
    libvirtVersion = execFileSync('virsh', ['-c', URI, 'version'], { encoding: 'utf8' }).split('\n').find((l) => l.startsWith('Using library'))?.replace('Using library: ', '') ?? 'unknown';
  } catch { /* informational */ }
  const lat = stats(latencies);
  const run = stats(runDurations);
  const mib = (b: number) => (b / 1024 / 1024).toFixed(1);
  const md = `# virtform watch benchmark

Run: \`npx tsx bench/watch.bench.ts${process.argv.slice(2).length ? ` ${process.argv.slice(2).join(' ')}` : ''}\` on ${new Date().toISOString()}

| Machine | |
|---|---|
| CPU | ${cpus()[0]?.model ?? 'unknown'} |
| Cores | ${cpus().length} |
| Memory | ${(totalmem() / 2 ** 30).toFixed(1)} GiB |
| Node | ${process.version} |
| libvirt | ${libvirtVersion} (${URI}, in-process watcher, one connection) |

| Setup | |
|---|---|
| Managed resources | ${managed} (1 pool, 1 network, ${PAIRS} volumes, ${PAIRS} VMs; one manifest file per VM) |
| Debounce | ${DEBOUNCE} ms |
| Initial reconcile (create all) | ${(initialMs / 1000).toFixed(1)} s |

| Edit-to-converged (one VM's memory changed, ${EDITS} edits) | ms |
|---|---|
| min | ${lat.min.toFixed(0)} |
| median | ${lat.median.toFixed(0)} |
| p90 | ${lat.p90.toFixed(0)} |
| max | ${lat.max.toFixed(0)} |
| of which debounce | ${DEBOUNCE} |
| reconcile run duration (median, observe+diff+plan+apply of all ${managed}) | ${run.median.toFixed(0)} |

| Idle watcher over ${wallS.toFixed(0)} s | |
|---|---|
| CPU time (user+system) | ${(cpuS * 1000).toFixed(0)} ms (${((cpuS / wallS) * 100).toFixed(2)} % of one core) |
| RSS at end / max | ${mib(rssEnd)} MiB / ${mib(rssMax)} MiB |
| Runs while idle | ${idleRuns} |

Latency = from the atomic write of the VM's manifest file until the watcher logged the applied step
for that VM (includes the debounce, loading and validating all ${PAIRS + 1} manifest files, a full
observe of the host, diff, plan and the step itself). RSS is the whole benchmark process
(watcher, state DB and manifests in memory).
`;
  if (OUT) {
    mkdirSync(dirname(OUT), { recursive: true });
    writeFileSync(OUT, md);
    process.stderr.write(`wrote ${OUT}\n`);
  }
  process.stdout.write(md);
}

await main();
