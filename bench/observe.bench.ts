/**
 * Observe + plan cost as the inventory grows, on libvirt's test driver (`test+unix:///default`).
 *
 *   npx tsx bench/observe.bench.ts --out bench/results/observe.md [--sizes 100,1000,5000] [--reps 7]
 *
 * The test driver keeps its objects only as long as one connection, so everything happens on ONE
 * connection in this process: virtform's engine reconciles N domains + N volumes + 20 networks into
 * existence (growing 100 → 1,000 → 5,000), then, converged, we time side by side:
 *   - virtform `planOnly` (observe + diff + plan; what `reconcile --dry-run` does after loading),
 *   - the bare bulk list calls alone (the adapter's 8 list calls + the pool's volume listing),
 *   - a per-resource controller: lookup-by-name + get-state + get-xml-desc per domain,
 *     pipelined (bounded concurrency) and sequential.
 * Plus the peak RSS of a real CLI dry-run at the largest size (child process, /usr/bin/time -v).
 *
 * The test driver knows only `<domain type='test'>` on i686, so the bench wraps the host port:
 * `domainType()` and `defineDomain()` rewrite the type/arch of the XML virtform builds. Nothing
 * else is changed; observation and planning run unmodified.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { openHost } from '../src/reconcile/adapters/libvirt-host.js';
import { planOnly, reconcile } from '../src/reconcile/engine.js';
import { observe } from '../src/reconcile/observe.js';
import { diff } from '../src/reconcile/diff.js';
import { buildPlan } from '../src/reconcile/plan.js';
import { buildDesired, type Desired } from '../src/reconcile/desired.js';
import { loadManifests } from '../src/manifest/index.js';
import { buildDomainXml } from '../src/libvirt/xml/index.js';
import { openStateStore } from '../src/state/index.js';
import {
  VIR_CONNECT_LIST_DOMAINS_AUTOSTART, VIR_CONNECT_LIST_NETWORKS_ACTIVE, VIR_CONNECT_LIST_NETWORKS_AUTOSTART,
  VIR_CONNECT_LIST_STORAGE_POOLS_ACTIVE, VIR_CONNECT_LIST_STORAGE_POOLS_AUTOSTART, type LibvirtClient,
} from '../src/libvirt/index.js';
import type { DomainDef } from '../src/reconcile/ports.js';
import { cpuProfile, flags, machineBlock, median, mib, ms, pool, ratio, table, timed, writeReport } from './lib.js';

const f = flags();
const URI = f.uri ?? 'test+unix:///default';
const SIZES = (f.sizes ?? '100,1000,5000').split(',').map(Number);
const REPS = Number(f.reps ?? 11);
const NETS = 20;
const PIPELINE = Number(f.concurrency ?? 16);
const SEQ_MAX = Number(f['seq-max'] ?? 1000);
const PROFILE = f.profile !== 'false'; // CPU profile of planOnly at the largest size (default on)
const PROFILE_REPS = Number(f['profile-reps'] ?? 5);
const P = 'vftest-bench';
const ROOT = resolve(import.meta.dirname, '..');

const pad = (i: number): string => String(i).padStart(5, '0');

const doc = (body: string): string => `apiVersion: virtform.dev/v1\n${body}\n`;

/**
 * Manifests for N domains, N volumes (one per domain), 20 isolated networks, 1 pool, as files of
 * 250 domains each (the loader refuses files over 1 MiB).
 */
export function manifestFiles(n: number): Record<string, string> {
  const base: string[] = [`kind: StoragePool\nmetadata: {name: ${P}-pool}\nspec: {path: /var/lib/virtform-test/${P}-obs-pool}`];
  for (let k = 0; k < NETS; k++) base.push(`kind: Network\nmetadata: {name: ${P}-net${k}}\nspec: {mode: isolated, cidr: 10.200.${k}.0/24}`);
  const files: Record<string, string> = { 'base.yaml': base.map(doc).join('---\n') };
  for (let start = 0; start < n; start += 250) {
    const docs: string[] = [];
    for (let i = start; i < Math.min(n, start + 250); i++) {
      docs.push(`kind: Volume\nmetadata: {name: ${P}-v${pad(i)}}\nspec: {pool: ${P}-pool, capacity: 1MiB, format: raw}`);
      docs.push(`kind: VirtualMachine\nmetadata: {name: ${P}-d${pad(i)}}\nspec: {vcpus: 1, memory: 64MiB, state: stopped, ` +
        `disks: [{volume: ${P}-v${pad(i)}}], nics: [{network: ${P}-net${i % NETS}}]}`);
    }
    files[`vms-${pad(start)}.yaml`] = docs.map(doc).join('---\n');
  }
  return files;
}

async function desiredFor(dir: string, n: number): Promise<{ desired: Desired; loadMs: number }> {
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  for (const [name, text] of Object.entries(manifestFiles(n))) writeFileSync(join(dir, name), text);
  const t = performance.now();
  const r = await loadManifests(dir);
  if (!r.ok) throw new Error(`generated manifests invalid: ${r.errors.slice(0, 3).map((e) => e.message).join('; ')}`);
  const desired = buildDesired(r.desired);
  return { desired, loadMs: performance.now() - t };
}

/** User + system CPU time of this process (all its threads, GC helpers included), ms. */
const cpuMs = (u: NodeJS.CpuUsage): number => (u.user + u.system) / 1000;

/** What the adapter's snapshot() + listVolumes() send, and nothing else. */
async function bareBulk(c: LibvirtClient, poolName: string): Promise<void> {
  await Promise.all([
    c.connectListAllDomains(0),
    c.connectListAllDomains(VIR_CONNECT_LIST_DOMAINS_AUTOSTART),
    c.connectListAllNetworks(0),
    c.connectListAllNetworks(VIR_CONNECT_LIST_NETWORKS_ACTIVE),
    c.connectListAllNetworks(VIR_CONNECT_LIST_NETWORKS_AUTOSTART),
    c.connectListAllStoragePools(0),
    c.connectListAllStoragePools(VIR_CONNECT_LIST_STORAGE_POOLS_ACTIVE),
    c.connectListAllStoragePools(VIR_CONNECT_LIST_STORAGE_POOLS_AUTOSTART),
    (async () => {
      const p = await c.storagePoolLookupByName(poolName);
      await c.storagePoolRefresh(p).catch(() => undefined);
      await c.storagePoolListAllVolumes(p, 0);
    })(),
  ]);
}

/** A naive controller: for every declared domain, lookup + state + XML (what a `virsh dominfo` loop does). */
async function perResource(c: LibvirtClient, names: string[], concurrency: number): Promise<void> {
  await pool(names, concurrency, async (name) => {
    const d = await c.domainLookupByName(name);
    await c.domainGetState(d);
    await c.domainGetXmlDesc(d, 0);
  });
}

/** CPU-profile `fn`: the top functions by self time (bench/lib.ts). */
const profile = (fn: () => Promise<void>): Promise<(string | number)[][]> => cpuProfile(fn, { top: Number(f['profile-top'] ?? 15), root: ROOT });

/** Peak RSS of `virtform reconcile --dry-run` in a fresh process (everything to create: the test driver starts empty). */
function cliDryRunRss(dir: string, n: number): { maxRssKiB: number; wallS: number; code: number | null; note: string } {
  const cli = join(ROOT, 'dist/cli/main.js');
  if (!existsSync(cli)) spawnSync('npx', ['tsc', '-p', 'tsconfig.json'], { cwd: ROOT, stdio: 'ignore' });
  const db = join(dir, 'rss.db');
  const t = performance.now();
  const r = spawnSync('/usr/bin/time', ['-v', process.execPath, cli, 'reconcile', dir, '--uri', URI, '--db', db, '--dry-run', '--json'], {
    encoding: 'utf8', maxBuffer: 512 * 1024 * 1024, env: { ...process.env, NO_COLOR: '1' },
  });
  const wallS = (performance.now() - t) / 1000;
  const m = /Maximum resident set size \(kbytes\): (\d+)/.exec(r.stderr ?? '');
  let note = '';
  try {
    const j = JSON.parse(r.stdout) as { plan: { steps?: unknown[] } & Record<string, unknown> };
    note = `plan steps: ${Array.isArray(j.plan.steps) ? j.plan.steps.length : 'n/a'} (n=${n})`;
  } catch {
    note = `could not parse --json output (exit ${r.status})`;
  }
  return { maxRssKiB: m ? Number(m[1]) : NaN, wallS, code: r.status, note };
}

async function main(): Promise<void> {
  const work = mkdtempSync(join(tmpdir(), `${P}-observe-`));
  const host = await openHost(URI);
  const c = host.client;
  // Test-driver shim (see header): type 'test', arch i686. Everything else is virtform's own code.
  const h = host as unknown as { domainType: () => Promise<'kvm' | 'qemu'>; defineDomain: (d: DomainDef) => Promise<{ uuid: string }> };
  h.domainType = () => Promise.resolve('kvm');
  h.defineDomain = async (def) => {
    const xml = buildDomainXml(def).replace("type='kvm'", "type='test'").replace("arch='x86_64' machine='pc'", "arch='i686'");
    return { uuid: (await c.domainDefineXml(xml)).uuid };
  };
  const store = await openStateStore(join(work, 'state.db'));
  const rows: (string | number)[][] = [];
  const breakdown: (string | number)[][] = [];
  const exactRows: (string | number)[][] = [];
  const notes: string[] = [];
  let rss: (string | number)[] | undefined;
  let hot: (string | number)[][] = [];
  let lastDir = '';

  try {
    for (const n of SIZES) {
      const dir = join(work, `m${n}`);
      lastDir = dir;
      const { desired, loadMs } = await desiredFor(dir, n);
      const conv = await timed(() => reconcile({
        host, store, desired, concurrency: 8, retry: { maxAttempts: 2, baseDelayMs: 10, maxDelayMs: 50 },
      }));
      if (conv.value.outcome === 'failed') throw new Error(`converging ${n} failed: ${[...conv.value.applied!.failed].slice(0, 3).join('; ')}`);
      process.stderr.write(`n=${n}: converged in ${ms(conv.ms)} ms (${conv.value.plan.steps.length} steps); load+validate ${ms(loadMs)} ms\n`);

      const planT: number[] = [];
      const planCpu: number[] = [];
      const bulkCpu: number[] = [];
      const planCalls: number[] = [];
      const bulkT: number[] = [];
      const bulkCalls: number[] = [];
      const obsT: number[] = [];
      const dpT: number[] = [];
      const snapT: number[] = [];
      const volT: number[] = [];
      const dbT: number[] = [];
      let noop = true;
      let rssPeak = 0;
      for (let r = 0; r < REPS; r++) {
        // planOnly and the bulk calls alternate, so drift on the shared machine hits both alike
        let c0 = c.callCount;
        let cpu0 = process.cpuUsage();
        const p = await timed(() => planOnly(host, store, desired));
        planCpu.push(cpuMs(process.cpuUsage(cpu0)));
        planT.push(p.ms);
        planCalls.push(c.callCount - c0);
        noop &&= p.value.plan.noop;
        c0 = c.callCount;
        cpu0 = process.cpuUsage();
        bulkT.push((await timed(() => bareBulk(c, `${P}-pool`))).ms);
        bulkCpu.push(cpuMs(process.cpuUsage(cpu0)));
        bulkCalls.push(c.callCount - c0);
      }
      // Breakdown: the parts planOnly is made of, timed one by one, in a loop of their own so the
      // comparison above is not charged for collecting their garbage.
      for (let r = 0; r < REPS; r++) {
        const o = await timed(() => observe(host, store, desired));
        obsT.push(o.ms);
        const t = performance.now();
        buildPlan(desired, diff(desired, o.value, { gracefulStop: true }));
        dpT.push(performance.now() - t);
        snapT.push((await timed(() => host.snapshot())).ms);
        volT.push((await timed(() => host.listVolumes(`${P}-pool`))).ms);
        // the reads observe makes: unresolved journal entries + the resource index (paged)
        dbT.push((await timed(async () => {
          await store.journal.listUnresolved();
          for await (const page of store.resources.indexPages(500)) void page;
        })).ms);
      }
      if (!noop) notes.push(`n=${n}: planOnly was NOT a no-op after converging (see FINDINGS)`);
      if (n === Math.max(...SIZES)) {
        // RSS sampled on separate, untimed runs: the sampler's own work would be charged to planOnly
        const sampler = setInterval(() => (rssPeak = Math.max(rssPeak, process.memoryUsage.rss())), 2);
        for (let i = 0; i < 3; i++) await planOnly(host, store, desired);
        clearInterval(sampler);
      }
      if (rssPeak > 0) rss = [`in-process planOnly, converged, n=${n} (sampled every 2 ms over 3 untimed runs)`, mib(rssPeak), `heapUsed now ${mib(process.memoryUsage().heapUsed)}`];

      if (PROFILE && n === Math.max(...SIZES)) {
        hot = await profile(async () => {
          for (let i = 0; i < PROFILE_REPS; i++) await planOnly(host, store, desired);
        });
      }
      const names = desired.resources.filter((r) => r.kind === 'VirtualMachine').map((r) => r.name);
      const piped: number[] = [];
      let pipedCalls = 0;
      for (let r = 0; r < (n >= 5000 ? 1 : 3); r++) {
        const c0 = c.callCount;
        piped.push((await timed(() => perResource(c, names, PIPELINE))).ms);
        pipedCalls = c.callCount - c0;
      }
      let seq = NaN;
      if (n <= SEQ_MAX) seq = (await timed(() => perResource(c, names, 1))).ms;

      const pm = median(planT);
      const bm = median(bulkT);
      // each repetition's planOnly / bulk, measured back to back: less exposed to drift than a ratio of medians
      const paired = median(planT.map((t, i) => t / bulkT[i]!));
      rows.push([
        n, `${n} + ${n} vols + ${NETS} nets`, ms(pm), `${Math.min(...planCalls)}–${Math.max(...planCalls)}`, ms(bm),
        `${Math.min(...bulkCalls)}–${Math.max(...bulkCalls)}`, ratio(pm, bm), `${paired.toFixed(2)}x`, ms(median(piped)), pipedCalls, ms(seq),
        noop ? 'yes' : '**NO**',
      ]);
      breakdown.push([n, ms(median(planCpu)), ms(median(bulkCpu)), ms(median(obsT)), ms(median(snapT)), ms(median(volT)), ms(median(dbT)), ms(median(dpT)), ms(loadMs), ms(conv.ms)]);

      // Exact drift (issue 18): planOnly with the baseline comparison (equal hashes: the fast path),
      // without it (a store without baselines), and with every hash made to differ (each definition
      // parsed and compared with its baseline XML), interleaved in one run.
      const noBaselines = { resources: store.resources, journal: store.journal };
      const withT: number[] = [];
      const withoutT: number[] = [];
      const slowT: number[] = [];
      for (let r = 0; r < REPS; r++) {
        withT.push((await timed(() => planOnly(host, store, desired))).ms);
        withoutT.push((await timed(() => planOnly(host, noBaselines, desired))).ms);
      }
      const saved = await store.db.selectFrom('baselines').select(['kind', 'name', 'sha256']).execute();
      await store.db.updateTable('baselines').set({ sha256: 'differs' }).execute();
      let slowNoop = true;
      for (let r = 0; r < REPS; r++) {
        const p = await timed(() => planOnly(host, store, desired));
        slowT.push(p.ms);
        slowNoop &&= p.value.plan.noop;
      }
      for (const b of saved) await store.db.updateTable('baselines').set({ sha256: b.sha256 }).where('kind', '=', b.kind).where('name', '=', b.name).execute();
      exactRows.push([
        n, saved.length, ms(median(withoutT)), ms(median(withT)), ratio(median(withT), median(withoutT)), ms(median(slowT)),
        ratio(median(slowT), median(withoutT)), slowNoop ? 'yes' : '**NO**',
      ]);
    }
  } finally {
    await host.close().catch(() => undefined);
    await store.close().catch(() => undefined);
    if (rows.length < SIZES.length) rmSync(work, { recursive: true, force: true });
  }

  const nMax = Math.max(...SIZES);
  const cli = cliDryRunRss(lastDir, nMax);
  rmSync(work, { recursive: true, force: true });

  const at = (n: number): (string | number)[] | undefined => rows.find((r) => r[0] === n);
  const r1k = at(1000);
  const targets: string[] = [];
  if (r1k) {
    const planMs = Number(r1k[2]);
    const bulkMs = Number(r1k[4]);
    targets.push(`- no-op plan at 1,000 domains under 1 s: **${planMs < 1000 ? 'met' : 'MISSED'}** (${r1k[2]} ms median)`);
    const pipedMs = Number(r1k[8]);
    targets.push(`- deep comparison (every managed object's persistent definition read, one call each) cheaper than a per-resource controller's lookup + state + XML: **${planMs < pipedMs ? 'met' : 'MISSED'}** (${r1k[2]} ms vs ${r1k[8]} ms pipelined: ${ratio(planMs, pipedMs)})`);
    targets.push(`- for reference, the bulk listings alone (what observe cost before deep drift): ${r1k[4]} ms; planOnly is ${r1k[6]} of that (${r1k[7]} median of paired repetitions)`);
  }
  // 11 bulk calls + one definition read per managed object (N domains, N volumes, the networks,
  // the pool) + one per other network and pool on the host; never a lookup.
  // 14 list calls (the 3 of transient objects included) + 2 version calls (exact drift's baselines).
  const callsOk = rows.every((r) => String(r[3]).split('–').every((x) => Number(x) >= 16 + 2 * Number(r[0]) + NETS + 1 && Number(x) <= 16 + 2 * Number(r[0]) + NETS + 1 + 50));
  targets.push(`- libvirt calls = 16 bulk calls + one definition read per managed object (+ each other network and pool on the host), no lookups: **${callsOk ? 'met' : 'MISSED'}** (planOnly calls per size: ${rows.map((r) => `${r[0]}→${r[3]}`).join(', ')})`);

  writeReport(f.out, `# Observe + plan benchmark

Converged inventory on \`${URI}\`, one connection, virtform engine in-process (\`planOnly\` = observe + diff + plan,
what \`reconcile --dry-run\` does after loading manifests). Median of ${REPS} interleaved repetitions.
"per-resource" = lookup-by-name + get-state + get-xml-desc for every domain, ${PIPELINE} in flight ("pipelined") or one at a time ("sequential").

${machineBlock()}

## Results

${table(['domains', 'inventory', 'virtform planOnly ms', 'libvirt calls', 'bare bulk lists ms', 'bulk calls', 'planOnly / bulk (medians)', 'planOnly / bulk (median of paired reps)', `per-resource pipelined(${PIPELINE}) ms`, 'per-resource calls', 'per-resource sequential ms', 'no-op'], rows)}

## Targets

${targets.join('\n')}

## Exact drift: the cost of the baseline comparison (medians, ms, one run)

${table(['domains', 'baselines', 'planOnly without baselines', 'planOnly with baselines (equal hashes)', 'with / without', 'planOnly, every hash differs (all parsed and compared)', 'that / without', 'no-op'], exactRows)}

## Where planOnly's time goes (medians, ms; each part timed separately)

${table(['domains', 'planOnly CPU (this process)', 'bulk lists CPU (this process)', 'observe() total', 'host.snapshot() (8 lists)', 'listVolumes (lookup+refresh+list)', 'state DB reads (journal + index pages)', 'diff + buildPlan (CPU)', 'load+validate manifests (once)', 'converge from previous size (once)'], breakdown)}

${hot.length ? `## CPU profile: ${PROFILE_REPS} x planOnly at ${Math.max(...SIZES)} domains, top functions by self time

${table(['function (file); native frames ← their JavaScript caller', 'self ms', 'share'], hot)}

` : ''}## Memory

${table(['what', 'peak RSS', 'detail'], [
  ...(rss ? [rss] : []),
  [`CLI \`reconcile --dry-run --json\` in a fresh process, ${nMax} VMs + ${nMax} volumes + ${NETS} networks declared, test driver empty (everything to create)`,
    mib(cli.maxRssKiB * 1024), `exit ${cli.code}, wall ${cli.wallS.toFixed(1)} s, ${cli.note}`],
])}

${notes.length ? `## Notes\n\n${notes.join('\n')}\n` : ''}`);
}

// Another engineer's tests may restart libvirtd, which drops the test driver's state with the
// connection: start over (a few times) when that happens.
for (let attempt = 1; ; attempt++) {
  try {
    await main();
    break;
  } catch (e) {
    const msg = e instanceof Error ? e.message : String(e);
    if (attempt >= 3 || !/ECONNRESET|EPIPE|connection|ENOENT|ECONNREFUSED/i.test(msg)) throw e;
    process.stderr.write(`attempt ${attempt} lost the libvirt connection (${msg.slice(0, 200)}); starting over\n`);
    for (let i = 0; i < 30 && spawnSync('virsh', ['-c', 'qemu:///system', 'version'], { stdio: 'ignore' }).status !== 0; i++) {
      await new Promise((r) => setTimeout(r, 1000));
    }
  }
}
