/**
 * The whole process (issue 22): virtform's CLI as a user runs it, against libvirt's own cost of the
 * same reads, on qemu:///system with N stopped VMs (1 qcow2 volume and 1 NIC each), one pool, one
 * network (2N + 2 resources in two files), converged.
 *
 *   npx tsx bench/process.bench.ts --out bench/results/process.md [--n 1000] [--reps 9] [--big 10000]
 *                                  [--baseline-cli /path/to/other/dist/cli/main.js] [--host NAME | --here]
 *                                  [--work DIR]
 *
 * Where: by default the bench starts its own namespace libvirt host (scripts/test-host.sh, `vfbproc`,
 * INDEX 225), runs itself inside it (its qemu:///system is private: nothing else's objects, nobody
 * else's) and takes it down at the end, also after a failure. `--host NAME` runs inside a host that
 * is up (its objects are pruned at the end); `--here` runs on this namespace's qemu:///system.
 *
 * `--work DIR` (a folder inside the host's mount namespace, e.g. under /tmp): the manifests and state DB live
 * there and are kept (no prune at the end); a later run with the same DIR on the same host reuses the
 * converged inventory (its setup is not timed again). For iterating on a profile; a report for the record
 * is made without it.
 *
 * Setup (timed, reported): apply of the 2N + 2 resources (`--concurrency 8`), then one applying
 * no-op reconcile: it compares every definition and records the no-op fast path's checks
 * (`definition_checks`; an apply records none, a dry-run writes nothing).
 *
 * Then, in ONE interleaved run (each rep runs every row once, the order rotated from rep to rep),
 * each command a fresh process, wall time and peak RSS (`/usr/bin/time`'s maximum resident set):
 *   - `virtform reconcile DIR --dry-run` (no-op: "No changes."; its load cache written by the setup's
 *     applying runs), the same without the load cache (`--data-dir` of an empty folder), and with `--baseline-cli` the
 *     same with another build (e.g. main's) on a copy of the state DB without this build's tables;
 *   - one `virsh` session reading every definition virtform reads (`dumpxml --inactive` of each VM,
 *     `vol-dumpxml` of each volume, the pool's and the network's), commands on its stdin;
 *   - one `virsh` session running `dominfo` for each VM; bare `virsh list --all --name`;
 *   - `virtform status DIR`; `virtform --version`; `virtform validate DIR`; `node -e 0`.
 * Medians and ratios of medians. Then a CPU profile (`node --cpu-prof`) of one dry-run, by package.
 * With `--big M` (default 10000; 0: skip): M VMs and volumes applied (timed), and the dry-run's
 * wall time and peak RSS there (and the baseline build's).
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import Database from 'better-sqlite3';
import { flags, machineBlock, median, ms, table, writeReport } from './lib.js';

const f = flags();
const N = Number(f.n ?? 1000);
const REPS = Number(f.reps ?? 9);
const BIG = Number(f.big ?? 10000);
const URI = 'qemu:///system';
const ROOT = resolve(import.meta.dirname, '..');
const CLI = join(ROOT, 'dist/cli/main.js');
const BASE_CLI = f['baseline-cli'];
const SCRIPT = join(ROOT, 'scripts/test-host.sh');
const OWN_HOST = 'vfbproc';
const OWN_INDEX = 225;
const P = 'vftest-bench-proc';
const POOL = `${P}-pool`;
const NET = `${P}-net`;

const NO_CACHE = 'virtform reconcile --dry-run, no load cache';
const FLOOR = 'node: connect + the same reads alone (bench/process-read-floor.mjs)';

const pad = (i: number): string => String(i).padStart(5, '0');
const doc = (b: string): string => `apiVersion: virtform.dev/v1\n${b}\n`;

/**
 * Two files up to 2,000 VMs (the pool, the network and the volumes; the VMs), the VMs and volumes
 * of each further 2,000 in two more (the loader refuses files over 1 MiB).
 */
function writeManifests(dir: string, n: number): void {
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  const PER = 2000;
  for (let start = 0; start < Math.max(n, 1); start += PER) {
    const a = start > 0 ? [] : [
      `kind: StoragePool\nmetadata: {name: ${POOL}}\nspec: {path: /var/lib/virtform-test/${POOL}}`,
      `kind: Network\nmetadata: {name: ${NET}}\nspec: {mode: isolated, cidr: 10.239.0.0/16}`,
    ];
    const b: string[] = [];
    for (let i = start; i < Math.min(n, start + PER); i++) {
      a.push(`kind: Volume\nmetadata: {name: ${P}-v${pad(i)}}\nspec: {pool: ${POOL}, capacity: 1MiB, format: qcow2}`);
      b.push(`kind: VirtualMachine\nmetadata: {name: ${P}-d${pad(i)}}\nspec: {vcpus: 1, memory: 64MiB, state: stopped, ` +
        `disks: [{volume: ${P}-v${pad(i)}}], nics: [{network: ${NET}}]}`);
    }
    const part = start === 0 ? '' : `-${pad(start)}`;
    writeFileSync(join(dir, `a-volumes${part}.yaml`), a.map(doc).join('---\n'));
    writeFileSync(join(dir, `b-vms${part}.yaml`), b.map(doc).join('---\n'));
  }
}

interface Run { wallMs: number; rssKiB: number; cpuMs: number; libvirtdCpuMs?: number; code: number | null; stdout: string; stderr: string }

/**
 * CPU time (user + system, ms) libvirtd has used so far, from /proc: the namespace host's daemon
 * (scripts/test-host.sh exec sets VIRTFORM_LIBVIRTD_PIDFILE); undefined elsewhere (`--here` on a
 * libvirtd others use: its CPU is not this run's alone).
 */
function libvirtdCpuMs(): number | undefined {
  const pidFile = process.env.VIRTFORM_LIBVIRTD_PIDFILE;
  if (!pidFile || !existsSync(pidFile)) return undefined;
  const stat = readFileSync(`/proc/${readFileSync(pidFile, 'utf8').trim()}/stat`, 'utf8');
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return ((Number(f[11]) + Number(f[12])) * 1000) / 100; // utime + stime, in clock ticks of 1/100 s
}

/** One process under /usr/bin/time: wall time measured here, peak RSS and CPU time (user + system) from time's report. */
function measure(cmd: string, args: string[], input?: string): Run {
  const timeOut = join(tmpdir(), `vfbproc-time-${process.pid}`);
  const l0 = libvirtdCpuMs();
  const t = performance.now();
  const r = spawnSync('/usr/bin/time', ['-o', timeOut, '-f', '%M %U %S', cmd, ...args], {
    encoding: 'utf8', maxBuffer: 256 * 1024 * 1024, env: { ...process.env, NO_COLOR: '1' }, ...(input !== undefined ? { input } : { stdio: ['ignore', 'pipe', 'pipe'] }),
  });
  const wallMs = performance.now() - t;
  const l1 = libvirtdCpuMs();
  const [rss, user, sys] = (readFileSync(timeOut, 'utf8').trim().split('\n').pop() ?? '').split(' ').map(Number);
  return {
    wallMs, rssKiB: rss!, cpuMs: (user! + sys!) * 1000, ...(l0 !== undefined && l1 !== undefined ? { libvirtdCpuMs: l1 - l0 } : {}),
    code: r.status, stdout: r.stdout ?? '', stderr: r.stderr ?? '',
  };
}

function must(r: Run, what: string, codes = [0]): Run {
  if (!codes.includes(r.code ?? -1)) throw new Error(`${what} exited ${r.code}: ${r.stderr.slice(-2000)}${r.stdout.slice(-2000)}`);
  return r;
}

const virsh = (...a: string[]): string => execFileSync('virsh', ['-q', '-c', URI, ...a], { encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 });

/** A copy of the state DB for another build: without the tables of migrations that build lacks. */
function baselineDb(db: string, to: string, cli: string): void {
  copyFileSync(db, to);
  const migrationsDir = join(resolve(cli, '../../state/migrations'));
  const known = new Set(readdirSync(migrationsDir).filter((x) => /^\d{4}_.*\.js$/.test(x)).map((x) => x.replace(/\.js$/, '')));
  const d = new Database(to);
  for (const { name } of d.prepare('select name from kysely_migration').all() as { name: string }[]) {
    if (known.has(name)) continue;
    if (name === '0013_definition_checks') d.exec('drop table if exists definition_checks');
    else throw new Error(`the baseline build lacks migration ${name}: cannot make its DB`);
    d.prepare('delete from kysely_migration where name = ?').run(name);
  }
  d.close();
}

interface Row { name: string; cmd: string; args: string[]; input?: string; check?: (r: Run) => void }

/** Apply `n`, then the recording no-op run; times of both. */
function converge(dir: string, db: string, n: number): { applyS: number; noopS: number } {
  writeManifests(dir, n);
  // A long lease: planning 10,000 creations blocks the event loop for seconds on a loaded machine,
  // longer than the default renew deadline (the run then steps down and applies nothing).
  const lease = ['--lease-duration', '300', '--renew-deadline', '240'];
  const up = must(measure(process.execPath, [CLI, 'reconcile', dir, '--uri', URI, '--db', db, '--concurrency', '8', '--json', ...lease]), `apply of ${n}`);
  const noop = must(measure(process.execPath, [CLI, 'reconcile', dir, '--uri', URI, '--db', db, '--json', ...lease]), `no-op reconcile of ${n}`);
  const j = JSON.parse(noop.stdout) as { outcome: string };
  if (j.outcome !== 'noop') throw new Error(`the reconcile after the apply of ${n} was not a no-op: ${j.outcome}`);
  return { applyS: up.wallMs / 1000, noopS: noop.wallMs / 1000 };
}

interface Profile {
  byPkg: (string | number)[][];
  top: (string | number)[][];
  totalMs: number;
  /** When the engine (`planOnly`: observe, diff, plan) ran, in ms from the profile's start, and its samples by what they were. */
  engine?: { fromMs: number; toMs: number; idleMs: number; gcMs: number; busyMs: number };
}

function profileBy(file: string): Profile {
  interface Node { id: number; callFrame: { functionName: string; url: string; lineNumber: number }; children?: number[] }
  const p = JSON.parse(readFileSync(file, 'utf8')) as { nodes: Node[]; samples: number[]; timeDeltas: number[] };
  const byId = new Map(p.nodes.map((n) => [n.id, n]));
  const parent = new Map<number, number>();
  for (const n of p.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const self = new Map<number, number>();
  let total = 0;
  const inEngine = new Map<number, boolean>();
  const underPlan = (id: number): boolean => {
    let v = inEngine.get(id);
    if (v === undefined) {
      const n = byId.get(id)!;
      v = n.callFrame.functionName === 'planOnly' || (parent.has(id) && underPlan(parent.get(id)!));
      inEngine.set(id, v);
    }
    return v;
  };
  const times: number[] = [];
  p.samples.forEach((id, i) => {
    const d = (p.timeDeltas[i] ?? 0) / 1000;
    self.set(id, (self.get(id) ?? 0) + d);
    total += d;
    times.push(total);
  });
  // The engine's span: from its first sample to its last (idle and GC samples in between count: libvirt's replies awaited).
  const engineAt = p.samples.map((id, i) => (underPlan(id) ? i : -1)).filter((i) => i >= 0);
  let engine: Profile['engine'];
  if (engineAt.length > 0) {
    const first = engineAt[0]!;
    const last = engineAt[engineAt.length - 1]!;
    let idleMs = 0;
    let gcMs = 0;
    for (let i = first; i <= last; i++) {
      const f = byId.get(p.samples[i]!)!.callFrame.functionName;
      const d = (p.timeDeltas[i] ?? 0) / 1000;
      if (f === '(idle)') idleMs += d;
      else if (f === '(garbage collector)') gcMs += d;
    }
    const fromMs = times[first]!;
    const toMs = times[last]!;
    engine = { fromMs, toMs, idleMs, gcMs, busyMs: toMs - fromMs - idleMs - gcMs };
  }
  const pkg = (u: string): string => {
    if (!u) return '(native)';
    if (u.startsWith('node:')) return 'node: (module loading, fs, net)';
    const m = /node_modules\/((@[^/]+\/)?[^/]+)/.exec(u);
    if (m) return m[1]!;
    const d = /dist\/(.*)\/[^/]+$/.exec(u);
    return d ? `src/${d[1]}` : u;
  };
  const byPkg = new Map<string, number>();
  const byFn = new Map<string, number>();
  for (const n of p.nodes) {
    const t = self.get(n.id) ?? 0;
    if (!t) continue;
    let q: Node | undefined = n;
    while (q && !q.callFrame.url && parent.has(q.id)) q = byId.get(parent.get(q.id)!);
    const special = ['(idle)', '(program)', '(garbage collector)'].includes(n.callFrame.functionName);
    const k = special ? n.callFrame.functionName : pkg(q?.callFrame.url ?? '');
    byPkg.set(k, (byPkg.get(k) ?? 0) + t);
    const fn = `${n.callFrame.functionName || '(anonymous)'} (${special ? 'native' : k})`;
    byFn.set(fn, (byFn.get(fn) ?? 0) + t);
  }
  const rows = (m: Map<string, number>, top: number): (string | number)[][] =>
    [...m].sort((a, b) => b[1] - a[1]).slice(0, top).map(([k, v]) => [k, ms(v), `${((100 * v) / total).toFixed(1)}%`]);
  return { byPkg: rows(byPkg, 14), top: rows(byFn, 12), totalMs: total, ...(engine ? { engine } : {}) };
}

async function inside(): Promise<void> {
  if (!existsSync(CLI)) execFileSync('npx', ['tsc', '-p', 'tsconfig.json'], { cwd: ROOT, stdio: 'inherit' });
  const keep = f.work !== undefined;
  const work = keep ? resolve(f.work!) : mkdtempSync(join(tmpdir(), `${P}-`));
  const dir = join(work, 'm');
  const db = join(work, 'state.db');
  const empty = join(work, 'empty');
  const reuse = keep && existsSync(db) && existsSync(join(work, 'converged'));
  rmSync(empty, { recursive: true, force: true });
  mkdirSync(empty, { recursive: true });
  const prune = (): void => {
    spawnSync(process.execPath, [CLI, 'reconcile', empty, '--uri', URI, '--db', db, '--allow-empty', '--allow-data-loss', '--max-deletions', 'all', '--concurrency', '8'], { stdio: 'ignore' });
  };
  const loadBefore = loadavg()[0]!;
  try {
    process.stderr.write(`converging ${N} VMs + ${N} volumes …\n`);
    const small = reuse ? { applyS: Number.NaN, noopS: Number.NaN } : converge(dir, db, N);
    if (keep) writeFileSync(join(work, 'converged'), `${N}\n`);
    const baseDb = join(work, 'baseline.db');
    // The baseline build's own data dir: its load cache, written by its own applying no-op run (a
    // cache is used only by the build that wrote it), so both builds' dry-runs run as a user's do.
    const baseData = join(work, 'baseline-data');
    if (BASE_CLI) {
      baselineDb(db, baseDb, BASE_CLI);
      rmSync(baseData, { recursive: true, force: true });
      mkdirSync(baseData);
      const j = JSON.parse(must(measure(process.execPath, [BASE_CLI, 'reconcile', dir, '--uri', URI, '--db', baseDb, '--data-dir', baseData, '--json']), 'baseline no-op reconcile').stdout) as { outcome: string };
      if (j.outcome !== 'noop') throw new Error(`the baseline build's reconcile was not a no-op: ${j.outcome}`);
    }

    // virsh sessions: what libvirt itself costs for the same reads.
    const doms = virsh('list', '--all', '--name').split('\n').map((s) => s.trim()).filter((s) => s.startsWith(`${P}-d`));
    const vols = virsh('vol-list', '--pool', POOL).split('\n').map((l) => l.trim().split(/\s+/)[0] ?? '').filter((s) => s.startsWith(`${P}-v`));
    if (doms.length !== N || vols.length !== N) throw new Error(`expected ${N} domains and volumes, found ${doms.length} and ${vols.length}`);
    const readCmds = [...doms.map((d) => `dumpxml --inactive ${d}`), ...vols.map((v) => `vol-dumpxml --pool ${POOL} ${v}`),
      `net-dumpxml --inactive ${NET}`, `pool-dumpxml --inactive ${POOL}`].join('\n') + '\n';
    const infoCmds = doms.map((d) => `dominfo ${d}`).join('\n') + '\n';

    const noCacheDir = join(work, 'no-load-cache');
    rmSync(noCacheDir, { recursive: true, force: true });
    mkdirSync(noCacheDir);
    const noChanges = (r: Run): void => {
      if (r.code !== 0 || !r.stdout.includes('No changes.')) throw new Error(`the dry-run is not a no-op: exit ${r.code}\n${r.stdout.slice(-3000)}\n${r.stderr.slice(-2000)}`);
    };
    /** The --json dry-run: outcome noop; its engine time (observe + diff + plan) kept. */
    const engineMs = new Map<string, number[]>();
    const noopJson = (name: string) => (r: Run): void => {
      const j = (() => {
        try {
          return JSON.parse(r.stdout) as { outcome: string; durationMs: number };
        } catch {
          return undefined;
        }
      })();
      if (r.code !== 0 || j?.outcome !== 'noop') throw new Error(`the dry-run is not a no-op: exit ${r.code}\n${r.stdout.slice(-3000)}\n${r.stderr.slice(-2000)}`);
      engineMs.set(name, [...(engineMs.get(name) ?? []), j.durationMs]);
    };
    noChanges(must(measure(process.execPath, [CLI, 'reconcile', dir, '--dry-run', '--uri', URI, '--db', db]), 'dry-run'));
    if (BASE_CLI) noChanges(must(measure(process.execPath, [BASE_CLI, 'reconcile', dir, '--dry-run', '--uri', URI, '--db', baseDb, '--data-dir', baseData]), 'baseline dry-run'));
    const rows: Row[] = [
      { name: 'virtform reconcile --dry-run', cmd: process.execPath, args: [CLI, 'reconcile', dir, '--dry-run', '--json', '--uri', URI, '--db', db], check: noopJson('virtform reconcile --dry-run') },
      // The same build without its load cache (a data dir with none; a dry-run writes none): every manifest file parsed.
      { name: NO_CACHE, cmd: process.execPath, args: [CLI, 'reconcile', dir, '--dry-run', '--json', '--uri', URI, '--db', db, '--data-dir', noCacheDir], check: noopJson(NO_CACHE) },
      ...(BASE_CLI ? [{ name: 'baseline build: reconcile --dry-run', cmd: process.execPath, args: [BASE_CLI, 'reconcile', dir, '--dry-run', '--json', '--uri', URI, '--db', baseDb, '--data-dir', baseData], check: noopJson('baseline build: reconcile --dry-run') }] : []),
      { name: 'virsh session: every definition virtform reads', cmd: 'virsh', args: ['-c', URI], input: readCmds },
      // The floor of the dry-run's reads: node, virtform's RPC client, the same reads pipelined and hashed, nothing else.
      { name: FLOOR, cmd: process.execPath, args: [join(ROOT, 'bench/process-read-floor.mjs'), URI, POOL] },
      { name: 'virsh session: dominfo of each VM', cmd: 'virsh', args: ['-c', URI], input: infoCmds },
      { name: 'virsh list --all --name', cmd: 'virsh', args: ['-c', URI, 'list', '--all', '--name'] },
      { name: 'virtform status', cmd: process.execPath, args: [CLI, 'status', dir, '--uri', URI, '--db', db] },
      { name: 'virtform --version', cmd: process.execPath, args: [CLI, '--version'] },
      { name: 'virtform validate', cmd: process.execPath, args: [CLI, 'validate', dir] },
      { name: 'node -e 0', cmd: process.execPath, args: ['-e', '0'] },
    ];
    const runs = new Map<string, Run[]>(rows.map((r) => [r.name, []]));
    for (let rep = 0; rep < REPS; rep++) {
      for (let i = 0; i < rows.length; i++) {
        const row = rows[(i + rep) % rows.length]!;
        const r = must(measure(row.cmd, row.args, row.input), row.name, row.name.includes('status') ? [0, 1] : [0]);
        row.check?.(r);
        runs.get(row.name)!.push(r);
      }
      process.stderr.write(`rep ${rep + 1}/${REPS}\n`);
    }
    const med = (name: string): number => median(runs.get(name)!.map((r) => r.wallMs));
    const rss = (name: string): number => Math.max(...runs.get(name)!.map((r) => r.rssKiB));
    const dry = med('virtform reconcile --dry-run');
    const read = med('virsh session: every definition virtform reads');
    const info = med('virsh session: dominfo of each VM');
    const list = med('virsh list --all --name');
    const node0 = med('node -e 0');
    const json = must(measure(process.execPath, [CLI, 'reconcile', dir, '--dry-run', '--uri', URI, '--db', db, '--json']), 'dry-run --json');
    const defs = (JSON.parse(json.stdout) as { definitions?: unknown }).definitions;

    const vs = (name: string): string => {
      if (name === 'virtform reconcile --dry-run' || name === NO_CACHE || name === 'baseline build: reconcile --dry-run') {
        return `${(med(name) / read).toFixed(2)}x read session, ${(med(name) / info).toFixed(2)}x dominfo session, ${(med(name) / list).toFixed(1)}x virsh list`;
      }
      if (name.startsWith('virtform')) return `${(med(name) / node0).toFixed(2)}x node -e 0`;
      if (name === FLOOR) return `${(med(name) / read).toFixed(2)}x read session, ${(med(name) / info).toFixed(2)}x dominfo session`;
      return '';
    };
    const cpu = (name: string): number => median(runs.get(name)!.map((r) => r.cpuMs));
    const lcpu = (name: string): string => {
      const xs = runs.get(name)!.map((r) => r.libvirtdCpuMs).filter((x) => x !== undefined);
      return xs.length > 0 ? ms(median(xs)) : '-';
    };
    /** The CPU a row asks of the machine: its own (user + sys) and libvirtd's, medians (undefined without libvirtd's). */
    const demand = (name: string): number | undefined => {
      const xs = runs.get(name)!.map((r) => r.libvirtdCpuMs).filter((x) => x !== undefined);
      return xs.length > 0 ? cpu(name) + median(xs) : undefined;
    };
    const demandLine = (() => {
      const d = demand('virtform reconcile --dry-run');
      const r = demand('virsh session: every definition virtform reads');
      const b = BASE_CLI ? demand('baseline build: reconcile --dry-run') : undefined;
      if (d === undefined || r === undefined) return '';
      return `\n- CPU demand, same reps (the process's own CPU + libvirtd's for its calls; what wall time follows when the 2 cores are busy with other work): ` +
        `dry-run ${ms(d)} ms vs the read session's ${ms(r)} ms: **${(d / r).toFixed(2)}x**${b !== undefined ? ` (baseline build ${(b / r).toFixed(2)}x)` : ''}; ` +
        `0.6x of it leaves the dry-run ${ms(0.6 * r - (d - cpu('virtform reconcile --dry-run')))} ms of its own CPU (it took ${ms(cpu('virtform reconcile --dry-run'))})`;
    })();
    const main = rows.map((r) => [r.name, ms(med(r.name)), ms(Math.min(...runs.get(r.name)!.map((x) => x.wallMs))), ms(cpu(r.name)), lcpu(r.name), (rss(r.name) / 1024).toFixed(1), vs(r.name)]);
    const engineRows = [...engineMs].map(([name, xs]) => [name, ms(median(xs)), `${(median(xs) / read).toFixed(2)}x`, `${(median(xs) / med(name)).toFixed(2)}`]);

    // Where the dry-run's time goes.
    const profDir = join(work, 'prof');
    rmSync(profDir, { recursive: true, force: true });
    must(measure(process.execPath, ['--cpu-prof', '--cpu-prof-dir', profDir, '--cpu-prof-interval', '250', CLI, 'reconcile', dir, '--dry-run', '--uri', URI, '--db', db]), 'profiled dry-run');
    const prof = profileBy(join(profDir, readdirSync(profDir)[0]!));
    const baseProf = BASE_CLI ? (() => {
      const d = join(work, 'prof-base');
      rmSync(d, { recursive: true, force: true });
      must(measure(process.execPath, ['--cpu-prof', '--cpu-prof-dir', d, '--cpu-prof-interval', '250', BASE_CLI, 'reconcile', dir, '--dry-run', '--uri', URI, '--db', baseDb, '--data-dir', baseData]), 'profiled baseline dry-run');
      return profileBy(join(d, readdirSync(d)[0]!));
    })() : undefined;

    const REPORT = (loadAfter: number, target: (ok: boolean) => string, bigDone: boolean): string => `# Whole-process benchmark

\`virtform\` as a user runs it (\`node dist/cli/main.js …\`, a fresh process each time) on \`${URI}\` of a private namespace
libvirt host, with ${N} stopped VMs (64 MiB, 1 vCPU, one 1 MiB qcow2 volume and one NIC each), one dir pool and one isolated
network: ${2 * N + 2} resources in two manifest files, converged. Every row is a fresh process; wall time measured by the
bench, peak RSS by \`/usr/bin/time\` (maximum resident set size). ${REPS} interleaved repetitions (each runs every row once,
order rotated): medians, and ratios of medians. Load average (1 min) ${loadBefore.toFixed(1)} before, ${loadAfter.toFixed(1)} after:
this 2-core machine is shared, so compare ratios within the table, not absolute times across runs.
${BASE_CLI ? `\n"baseline build" is another build run side by side in the same reps (\`--baseline-cli ${BASE_CLI}\`) on a copy of the same state DB,
with its own load cache and no-op checks (written by one applying no-op run of that build before the reps).\n` : ''}
${machineBlock()}

Setup: apply of the ${2 * N + 2} resources (\`--concurrency 8\`): ${small.applyS.toFixed(1)} s; then one applying no-op reconcile
(compares every definition, records the no-op fast path's checks): ${small.noopS.toFixed(1)} s. (An apply records no checks and a
dry-run writes nothing, so the first dry-run right after an apply still parses and compares everything.)

## Whole process, ${N} VMs

${table(['command', 'median ms', 'min ms', 'median CPU ms (user + sys)', 'libvirtd CPU ms', 'peak RSS MiB', 'ratio'], main)}

CPU time is the process's own (for \`virsh\` not libvirtd's): less sensitive to the machine's load than wall time, and the part
of a dry-run that virtform's code can cut. "libvirtd CPU ms" is the namespace host's libvirtd's CPU time while the row ran
(median): libvirt's own cost of the row's calls. "${FLOOR}" is a node process that connects with virtform's RPC
client and makes the dry-run's definition reads (each domain's inactive XML, each volume's XML; 16 in flight per kind,
each hashed) and nothing else: no manifests, no state DB, no pool refresh, no diff.

The dry-runs' own engine time (\`--json\` \`durationMs\`: observe + diff + plan, from the connection on; the rest of the
process is start-up, module loading, opening the DB and loading + validating the manifests):

${table(['dry-run', 'engine median ms', 'engine / read session', 'engine share of the process'], engineRows)}

"${NO_CACHE}" is this build with \`--data-dir\` of an empty folder: no load cache (src/manifest/load-cache.ts), every manifest
file parsed and checked, as before it.

The dry-run's \`--json\` \`definitions\` (read, parsed, left unparsed by the fast path): \`${JSON.stringify(defs)}\`.

## Targets

- no-op dry-run ≤ 0.6x one virsh session reading every definition virtform reads: ${target(dry <= 0.6 * read)} (${(dry / read).toFixed(2)}x)
- no-op dry-run ≤ 0.25x one virsh session running \`dominfo\` for each VM: ${target(dry <= 0.25 * info)} (${(dry / info).toFixed(2)}x)
- what no change to the engine can go below, same reps: the floor row (node, connect, the same definition reads pipelined and hashed, nothing else) ${(med(FLOOR) / read).toFixed(2)}x the read session and ${(med(FLOOR) / info).toFixed(2)}x the \`dominfo\` session; \`node -e 0\` alone ${(node0 / read).toFixed(2)}x / ${(node0 / info).toFixed(2)}x; libvirtd's own CPU for the dry-run's calls ${lcpu('virtform reconcile --dry-run')} ms (for the read session's ${lcpu('virsh session: every definition virtform reads')} ms). A target below the floor's ratio needs fewer calls, not less of virtform's work (libvirt 9.0 has no change counter and no bulk definition read)${demandLine}
- for reference: ${(dry / list).toFixed(1)}x bare \`virsh list --all --name\`; \`--version\` ${(med('virtform --version') / node0).toFixed(2)}x and \`validate\` ${(med('virtform validate') / node0).toFixed(2)}x \`node -e 0\` (start-up and validate are another helper's: their own bench)

## CPU profile of one dry-run (\`node --cpu-prof\`, self time by package or source folder)

Total sampled ${ms(prof.totalMs)} ms (profiling slows it down).${prof.engine ? ` The engine (\`planOnly\`: observe, diff, plan) ran from
${ms(prof.engine.fromMs)} to ${ms(prof.engine.toMs)} ms: before it, ${ms(prof.engine.fromMs)} ms of start-up, module loading, manifest loading,
opening the state DB and connecting; in it, ${ms(prof.engine.busyMs)} ms busy, ${ms(prof.engine.gcMs)} ms GC and ${ms(prof.engine.idleMs)} ms idle (waiting for libvirtd's replies).` : ''}

${table(['where', 'self ms', 'share'], prof.byPkg)}

Top functions:

${table(['function (where)', 'self ms', 'share'], prof.top)}
${baseProf ? `
The baseline build's dry-run, for comparison (total ${ms(baseProf.totalMs)} ms):

${table(['where', 'self ms', 'share'], baseProf.byPkg)}
` : ''}${BIG > 0 && bigDone ? `
## Peak RSS at ${BIG} VMs

${bigSetup}

${table(['command', 'VMs', 'median wall ms (3 runs)', 'peak RSS MiB'], bigRows)}
` : ''}`;
    // The big inventory: peak RSS of a dry-run (the report is written first without it).
    let bigRows: (string | number)[][] = [];
    let bigSetup = '';
    const report = (bigDone: boolean): string => {
      const loadAfter = loadavg()[0]!;
      const target = (ok: boolean): string => (ok ? 'met' : '**MISSED**');
      return REPORT(loadAfter, target, bigDone);
    };
    writeReport(f.out, report(false));
    if (BIG > 0) {
      process.stderr.write(`converging ${BIG} VMs + ${BIG} volumes …\n`);
      const big = converge(dir, db, BIG);
      bigSetup = `apply of ${BIG} VMs + ${BIG} volumes (from the ${N} already there; \`--concurrency 8\`): ${big.applyS.toFixed(1)} s; the recording no-op reconcile: ${big.noopS.toFixed(1)} s.`;
      const bigBaseDb = join(work, 'baseline-big.db');
      if (BASE_CLI) baselineDb(db, bigBaseDb, BASE_CLI);
      const bigRuns: { name: string; r: Run }[] = [];
      for (let rep = 0; rep < 3; rep++) {
        const r = measure(process.execPath, [CLI, 'reconcile', dir, '--dry-run', '--uri', URI, '--db', db]);
        noChanges(r);
        bigRuns.push({ name: 'virtform reconcile --dry-run', r });
        if (BASE_CLI) {
          const b = measure(process.execPath, [BASE_CLI, 'reconcile', dir, '--dry-run', '--uri', URI, '--db', bigBaseDb]);
          noChanges(b);
          bigRuns.push({ name: 'baseline build: reconcile --dry-run', r: b });
        }
      }
      bigRows = [...new Set(bigRuns.map((x) => x.name))].map((name) => {
        const xs = bigRuns.filter((x) => x.name === name).map((x) => x.r);
        return [name, BIG, ms(median(xs.map((x) => x.wallMs))), (Math.max(...xs.map((x) => x.rssKiB)) / 1024).toFixed(1)];
      });
    }

    writeReport(f.out, report(true));
  } finally {
    // The bench's own host goes down with everything in it: nothing to prune there.
    if (keep) {
      process.stderr.write(`kept ${work} (--work)\n`);
    } else {
      if (f['no-prune'] !== 'true') {
        process.stderr.write('pruning …\n');
        prune();
      }
      rmSync(work, { recursive: true, force: true });
    }
  }
}

function testHost(args: string[]): string {
  const r = spawnSync('bash', [SCRIPT, ...args], { encoding: 'utf8', timeout: 600_000 });
  if (r.status !== 0) throw new Error(`test-host.sh ${args.join(' ')} failed: ${r.stderr}`);
  return r.stdout.trim();
}

async function main(): Promise<void> {
  if (f.here === 'true') return inside();
  const own = !f.host;
  const host = f.host ?? OWN_HOST;
  const pass = process.argv.slice(2).filter((a, i, all) => a !== '--host' && all[i - 1] !== '--host');
  try {
    if (own) testHost(['up', host, String(OWN_INDEX)]);
    // Inside, from the repository's folder (nsenter starts in /): tsx and the relative --out resolve there.
    const r = spawnSync('bash', [SCRIPT, 'exec', host, '--', 'bash', '-c', 'cd "$0" && exec "$@"', process.cwd(),
      process.execPath, '--import', 'tsx', join(ROOT, 'bench/process.bench.ts'), ...pass, ...(own ? ['--no-prune'] : []), '--here'], {
      stdio: 'inherit', cwd: ROOT,
    });
    if (r.status !== 0) throw new Error(`the bench inside host ${host} exited ${r.status}`);
  } finally {
    if (own) testHost(['down', host]);
  }
}

await main();
