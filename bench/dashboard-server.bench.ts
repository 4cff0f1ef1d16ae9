/**
 * The dashboard's server cost per refresh at 1,000 resources, and how it grows with viewers.
 *
 *   npx tsx bench/dashboard-server.bench.ts --out bench/results/dashboard-server.md [--rounds 8] [--resources 1000]
 *
 * The server runs in a child process (its CPU is measured there with process.cpuUsage, apart from
 * the viewers'): `virtform watch`'s controller over the in-memory FakeHost (test/support/fake-host.ts:
 * 1,000 resources without a libvirtd; the real daemon's cost of observing is not what is measured
 * here) and the listener with the dashboard. One refresh = one resource's record changed, a fresh
 * status (the host view of the status), ONE snapshot, one `snapshot` event to every open stream, and
 * what each viewer then asks, as the page does: the overview and the first page of 50 resources.
 * Rounds alternate 1 and 20 viewers (interleaved, same process, same load) and the report gives the
 * median server CPU per refresh of each and their ratio: with one snapshot per refresh, 20 viewers
 * should cost about one snapshot plus 20 small answers, not 20 statuses.
 */
import { fork, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { flags, machineBlock, median, ms, ratio, table, writeReport } from './lib.js';

const f = flags();
const ROUNDS = Number(f.rounds ?? 8);
const RESOURCES = Number(f.resources ?? 1000);
const SELF = fileURLToPath(import.meta.url);

type Msg = { type: 'ready'; port: number; setupMs: number; resources: number }
  | { type: 'flipped' } | { type: 'cpu'; cpuMs: number; snapshotCpuMs: number; builds: number; statusMs: number; frames: number };

function manifests(n: number): Record<string, string> {
  const pairs = Math.floor((n - 2) / 2);
  const vols: string[] = [];
  const vms: string[] = [];
  for (let i = 0; i < pairs; i++) {
    const name = `bench-${String(i).padStart(4, '0')}`;
    vols.push(`apiVersion: virtform.dev/v1\nkind: Volume\nmetadata: {name: ${name}-disk}\nspec: {pool: bench-pool, capacity: 1MiB, format: raw}\n`);
    vms.push(`apiVersion: virtform.dev/v1\nkind: VirtualMachine\nmetadata: {name: ${name}, labels: {app: a${i % 10}, tier: t${i % 3}}}\nspec:\n  vcpus: 1\n  memory: 64MiB\n  state: ${i % 2 ? 'running' : 'stopped'}\n  disks: [{volume: ${name}-disk}]\n  nics: [{network: bench-net}]\n`);
  }
  return {
    'base.yaml': `apiVersion: virtform.dev/v1\nkind: StoragePool\nmetadata: {name: bench-pool}\nspec: {path: /srv/pools/bench}\n---\napiVersion: virtform.dev/v1\nkind: Network\nmetadata: {name: bench-net}\nspec: {mode: isolated, cidr: 10.249.0.0/16}\n`,
    'volumes.yaml': vols.join('---\n'),
    'vms.yaml': vms.join('---\n'),
  };
}

/** The server side (child process). */
async function serve(): Promise<void> {
  const { FakeHost } = await import('../test/support/fake-host.js');
  const { writeManifests } = await import('../test/support/manifests.js');
  const { openStateStore } = await import('../src/state/index.js');
  const { WatchController, startStatusServer } = await import('../src/watch/index.js');
  const { dashboardFor } = await import('../src/cli/http-options.js');
  const work = mkdtempSync(join(tmpdir(), 'vftest-bench-dash-'));
  const t0 = performance.now();
  writeManifests(join(work, 'm'), manifests(RESOURCES));
  const store = await openStateStore(join(work, 'state.db'));
  const host = new FakeHost();
  const controller = new WatchController({ dir: join(work, 'm'), store, connect: async () => host, resyncMs: 0, watchFiles: false, gracefulStop: false, concurrency: 16 });
  const dashboard = dashboardFor(controller, store, 500);
  const server = await startStatusServer(controller, { host: '127.0.0.1', port: 0 }, undefined, { dashboard });
  await controller.start();
  while (!controller.ready) await new Promise((r) => setTimeout(r, 100));
  await controller.idle();
  await dashboard.settled();
  const total = dashboard.current!.overview.total;
  if (process.env.BENCH_DEBUG) {
    const pub = dashboard.events.publish.bind(dashboard.events);
    dashboard.events.publish = (e) => {
      process.stderr.write(`  publish seq ${e.seq} ${e.phase} changed ${e.changedKeys.length} at ${Date.now() % 100000}\n`);
      pub(e);
    };
  }
  const vms = [...host.domains.keys()];
  let flip = 0;
  // One resource's record changes (its update time): a change the status shows, without drift (a
  // host change would make the watcher reconcile, which is not what is measured).
  const touch = async (): Promise<void> => {
    const name = vms[flip++ % vms.length]!;
    const rec = (await store.resources.list()).find((r) => r.name === name)!;
    await new Promise((r) => setTimeout(r, 5));
    await store.resources.setStatus({ kind: rec.kind, name: rec.name, host: rec.host }, { attempts: flip });
  };
  let c0 = process.cpuUsage();
  let b0 = { builds: 0, cpu: 0 };
  let f0 = 0;
  let statusMs = 0;
  process.on('message', (m: { type: string }) => {
    void (async () => {
      if (m.type === 'refresh') {
        // Past the status's 1 s host-view cache, so that this refresh observes the host again.
        await new Promise((r) => setTimeout(r, 1100));
        await touch();
        c0 = process.cpuUsage();
        b0 = { builds: dashboard.builds, cpu: dashboard.buildCpuMicros };
        f0 = dashboard.events.framesBuilt;
        const t = performance.now();
        await dashboard.refresh();
        statusMs = performance.now() - t;
        process.send!({ type: 'flipped' });
      } else if (m.type === 'flip') {
        await new Promise((r) => setTimeout(r, 1100));
        await touch();
        c0 = process.cpuUsage();
        b0 = { builds: dashboard.builds, cpu: dashboard.buildCpuMicros };
        f0 = dashboard.events.framesBuilt;
        statusMs = 0;
        process.send!({ type: 'flipped' });
      } else if (m.type === 'measure') {
        const d = process.cpuUsage(c0);
        process.send!({ type: 'cpu', cpuMs: (d.user + d.system) / 1000, snapshotCpuMs: (dashboard.buildCpuMicros - b0.cpu) / 1000, builds: dashboard.builds - b0.builds, statusMs, frames: dashboard.events.framesBuilt - f0 });
      } else if (m.type === 'stop') {
        await server.close();
        dashboard.close();
        await controller.stop();
        await store.close();
        rmSync(work, { recursive: true, force: true });
        process.exit(0);
      }
    })();
  });
  process.send!({ type: 'ready', port: server.port, setupMs: performance.now() - t0, resources: total });
}

function ask<T extends Msg['type']>(child: ChildProcess, send: { type: string } | undefined, want: T): Promise<Extract<Msg, { type: T }>> {
  return new Promise((resolve) => {
    const on = (m: Msg): void => {
      if (m.type !== want) return;
      child.off('message', on);
      resolve(m as Extract<Msg, { type: T }>);
    };
    child.on('message', on);
    if (send) child.send(send);
  });
}

/** A viewer: an event stream; on each snapshot event, the overview and the first page (as the page does). */
async function viewer(port: number, armed: () => boolean, onDone: () => void, signal: AbortSignal): Promise<void> {
  const r = await fetch(`http://127.0.0.1:${port}/api/v1/events`, { signal });
  const reader = r.body!.getReader();
  const dec = new TextDecoder();
  let buf = '';
  let first = true;
  for (;;) {
    const { value, done } = await reader.read().catch(() => ({ value: undefined, done: true }));
    if (done) return;
    buf += dec.decode(value);
    let i: number;
    while ((i = buf.indexOf('\n\n')) >= 0) {
      const frame = buf.slice(0, i);
      buf = buf.slice(i + 2);
      if (!frame.includes('event: snapshot')) continue;
      if (first || !armed()) {
        first = false; // the current snapshot, sent on connect, or one from before this refresh
        continue;
      }
      await Promise.all([
        fetch(`http://127.0.0.1:${port}/api/v1/overview`).then((x) => x.text()),
        fetch(`http://127.0.0.1:${port}/api/v1/resources?page=1&pageSize=50&sort=status`).then((x) => x.text()),
      ]);
      onDone();
    }
  }
}

async function main(): Promise<void> {
  const loadBefore = loadavg()[0]!;
  const child = fork(SELF, ['--serve', '--resources', String(RESOURCES)], { execArgv: ['--import', 'tsx'], stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  const ready = await ask(child, undefined, 'ready');
  const rows: Record<number, { cpu: number[]; snap: number[]; status: number[]; frames: number[] }> = { 1: { cpu: [], snap: [], status: [], frames: [] }, 20: { cpu: [], snap: [], status: [], frames: [] } };
  const polling: number[] = [];
  for (let round = 0; round < ROUNDS * 3; round++) {
    if (round % 3 === 2) {
      // Without the snapshot: 20 viewers each polling /status once per refresh (the old way).
      await ask(child, { type: 'flip' }, 'flipped');
      await Promise.all(Array.from({ length: 20 }, () => fetch(`http://127.0.0.1:${ready.port}/status`).then((x) => x.text())));
      const m = await ask(child, { type: 'measure' }, 'cpu');
      if (round >= 3) polling.push(m.cpuMs);
      process.stderr.write(`round ${round}: 20 clients polling /status, server CPU ${ms(m.cpuMs)} ms\n`);
      continue;
    }
    const viewers = round % 3 === 0 ? 1 : 20;
    const abort = new AbortController();
    let served = 0;
    let allServed!: () => void;
    const done = new Promise<void>((r) => (allServed = r));
    let arm = false;
    const streams = Array.from({ length: viewers }, () => viewer(ready.port, () => arm, () => {
      if (++served === viewers) allServed();
    }, abort.signal).catch(() => undefined));
    await new Promise((r) => setTimeout(r, 1500)); // streams open; a trailing refresh of the round before is done
    arm = true;
    await ask(child, { type: 'refresh' }, 'flipped');
    await done;
    const m = await ask(child, { type: 'measure' }, 'cpu');
    abort.abort();
    await Promise.all(streams);
    if (round >= 3) { // the first three rounds warm up
      rows[viewers]!.cpu.push(m.cpuMs);
      rows[viewers]!.snap.push(m.snapshotCpuMs);
      rows[viewers]!.status.push(m.statusMs);
      rows[viewers]!.frames.push(m.frames);
    }
    process.stderr.write(`round ${round}: ${viewers} viewers, server CPU ${ms(m.cpuMs)} ms (snapshot ${ms(m.snapshotCpuMs)} ms, ${m.builds} build(s), ${m.frames} frame(s))\n`);
  }
  child.send({ type: 'stop' });
  const one = rows[1]!;
  const twenty = rows[20]!;
  const report = `# Dashboard server: CPU per refresh at ${ready.resources} resources

Generated by \`npx tsx bench/dashboard-server.bench.ts\` (${ROUNDS} rounds of each, interleaved; the first round of each is a warm-up).
The host is the in-memory **FakeHost** (test/support/fake-host.ts), not libvirtd: the watcher's
status observes it in-process, so the figures are the server's own work (status rows, the snapshot,
the event fan-out, the viewers' answers), without the daemon's. Server CPU is \`process.cpuUsage()\`
of the server's process from the refresh to the last viewer's answers; the viewers run in another process.

One refresh: one resource's record changed (its update time: a change without drift, so the watcher
does not reconcile), a fresh status after the status's 1 s host-view cache (the host observed again), one snapshot, one \`snapshot\` event to every
stream, then each viewer GETs \`/api/v1/overview\` and \`/api/v1/resources?page=1&pageSize=50&sort=status\`.

${table(['viewers', 'server CPU per refresh (median ms)', 'of which the snapshot build', 'refresh wall (status + snapshot, ms)', 'snapshots serialized per refresh'], [
    [1, ms(median(one.cpu)), ms(median(one.snap)), ms(median(one.status)), median(one.frames)],
    [20, ms(median(twenty.cpu)), ms(median(twenty.snap)), ms(median(twenty.status)), median(twenty.frames)],
    ['20 polling `/status` (no dashboard)', ms(median(polling)), '-', '-', '-'],
  ])}

- 20 viewers / 1 viewer, server CPU per refresh: **${ratio(median(twenty.cpu), median(one.cpu))}** (measured side by side in this run).
- 20 viewers of the dashboard / 20 clients polling \`/status\` once per refresh: **${ratio(median(twenty.cpu), median(polling))}**
  (each \`/status\` builds the whole report of ${ready.resources} rows; the dashboard's viewers share one snapshot).
- The snapshot is built once per refresh whatever the number of viewers (${median(one.frames)} event frame per refresh in both);
  the rest of the growth is 20 × (an overview and a 50-row page from the snapshot's query cache, and their HTTP exchange).
- Load average (1 min) of the machine: ${loadBefore.toFixed(1)} at the start, ${loadavg()[0]!.toFixed(1)} at the end (2 cores shared with other work):
  absolute times are inflated by it; the ratios come from rounds interleaved under the same load.
- Set-up (writing ${ready.resources} manifests, the first reconcile on the FakeHost): ${ms(ready.setupMs)} ms.

## Machine

${machineBlock()}
`;
  writeReport(f.out, report);
}

if (process.argv.includes('--serve')) void serve();
else void main();
