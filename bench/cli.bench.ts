/**
 * Whole-process start-up and manifest loading (issue 22): the CLI as users run it
 * (`node dist/cli/main.js`, the bundle `npm run build` makes), against `node -e 0`, all in one run
 * with the commands interleaved round by round (this machine is shared: compare ratios, not times).
 *
 *   npx tsx bench/cli.bench.ts [--out bench/results/cli.md] [--rounds 11] [--baseline OLD/dist/cli/main.js]
 *
 * - `virtform --version` vs `node -e 0` (target: within 1.5x);
 * - `virtform validate DIR` of 2,002 resources (1,000 stopped VMs, 1,000 qcow2 volumes, a pool and
 *   a network, in two files: bench/gen-manifests.ts) vs `node -e 0` (target: within 3x), and at
 *   5,000 and 10,000 VMs (target: t(10,000)/t(1,000) <= 12);
 * - peak RSS and CPU time (user + system) of each, from separate runs with a preload that reads
 *   getrusage at exit (the timed runs carry no preload);
 * - `--baseline`: the same rows for another build (e.g. a checkout of main), in the same rounds;
 * - a CPU profile (`node --cpu-prof`) of one validate of the 2,002 resources: where the time goes.
 *
 * Needs `npm run build` first (bench/run-all.sh does it). Touches no libvirt host.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { flags, machineBlock, median, percentile, ms, table, writeReport, type ProfileNode } from './lib.js';
import { writeManifests } from './gen-manifests.js';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const CLI = join(ROOT, 'dist/cli/main.js');
const f = flags();
const OUT = f.out;
const ROUNDS = Number(f.rounds ?? 11);
const BASELINE = f.baseline ? resolve(f.baseline) : undefined;
const log = (...a: unknown[]): void => console.error('[cli-bench]', ...a);

interface Cmd {
  label: string;
  argv: string[];
  /** What stdout must say (the run did what it is timed for). */
  expect?: RegExp;
  wall: number[];
  rss: number[];
  cpu: number[];
}

const work = mkdtempSync(join(tmpdir(), 'vftest-bench-cli-'));
const loadBefore = loadavg()[0]!;
try {
  const sizes = [1000, 5000, 10_000];
  const dirs = new Map<number, string>();
  for (const n of sizes) {
    const dir = join(work, `vms-${n}`);
    const resources = writeManifests(dir, n, 'vfbench');
    dirs.set(n, dir);
    log(`${dir}: ${resources} resources in ${readdirSync(dir).length} files`);
  }
  const version = (JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string }).version;
  const cmd = (label: string, argv: string[], expect?: RegExp): Cmd => ({ label, argv, ...(expect ? { expect } : {}), wall: [], rss: [], cpu: [] });
  const validate = (cli: string, n: number, label: string): Cmd =>
    cmd(label, [cli, 'validate', dirs.get(n)!], new RegExp(`${2 * n + 2} resource\\(s\\), valid`));
  const cmds: Cmd[] = [
    cmd('node -e 0', ['-e', '0']),
    cmd('virtform --version', [CLI, '--version'], new RegExp(`^${version.replaceAll('.', '\\.')}\\n$`)),
    validate(CLI, 1000, 'virtform validate: 2,002 resources (1,000 VMs)'),
    validate(CLI, 5000, 'virtform validate: 10,002 resources (5,000 VMs)'),
    validate(CLI, 10_000, 'virtform validate: 20,002 resources (10,000 VMs)'),
    ...(BASELINE ? [
      cmd('baseline --version', [BASELINE, '--version']),
      validate(BASELINE, 1000, 'baseline validate: 2,002 resources'),
      validate(BASELINE, 10_000, 'baseline validate: 20,002 resources'),
    ] : []),
  ];
  // No policy file of this machine's /etc takes part.
  const env = { ...process.env, VIRTFORM_POLICY: join(work, 'no-policy.yaml') };
  const run = (c: Cmd, extra: string[] = []): { ms: number; stdout: string } => {
    const t = performance.now();
    const r = spawnSync(process.execPath, [...extra, ...c.argv], { env, encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 });
    const took = performance.now() - t;
    if (r.status !== 0 || (c.expect && !c.expect.test(r.stdout))) {
      throw new Error(`${c.label}: exit ${r.status}\n${r.stdout.slice(0, 500)}\n${r.stderr.slice(0, 2000)}`);
    }
    return { ms: took, stdout: r.stdout };
  };

  // Warm the page cache and check every command once.
  for (const c of cmds) run(c);
  log(`${ROUNDS} rounds of ${cmds.length} commands, interleaved`);
  for (let round = 0; round < ROUNDS; round++) {
    for (const c of cmds) c.wall.push(run(c).ms);
    log(`round ${round + 1}/${ROUNDS}`);
  }
  // Peak RSS and CPU: getrusage at exit, in runs of their own (as many rounds, interleaved): CPU
  // time is what this shared machine's load changes least.
  const preload = join(work, 'rusage.mjs');
  writeFileSync(preload, `import { writeSync } from 'node:fs';
process.on('exit', () => { const u = process.resourceUsage(); writeSync(2, '\\nVFBENCH ' + u.maxRSS + ' ' + (u.userCPUTime + u.systemCPUTime) + '\\n'); });
`);
  for (let round = 0; round < ROUNDS; round++) {
    for (const c of cmds) {
      const r = spawnSync(process.execPath, ['--import', `file://${preload}`, ...c.argv], { env, encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 });
      const m = /VFBENCH (\d+) (\d+)/.exec(r.stderr);
      if (!m) throw new Error(`${c.label}: no rusage line (exit ${r.status}): ${r.stderr.slice(-500)}`);
      c.rss.push(Number(m[1]) * 1024);
      c.cpu.push(Number(m[2]) / 1000);
    }
  }

  // One profiled validate of the 2,002 resources.
  const profDir = join(work, 'prof');
  spawnSync(process.execPath, ['--cpu-prof', '--cpu-prof-dir', profDir, '--cpu-prof-interval', '100', CLI, 'validate', dirs.get(1000)!], { env });
  const profile = summarizeProfile(join(profDir, readdirSync(profDir).find((x) => x.endsWith('.cpuprofile'))!));

  const base = median(cmds[0]!.wall);
  const baseCpu = median(cmds[0]!.cpu);
  const byLabel = new Map(cmds.map((c) => [c.label, c]));
  const med = (label: string): number => median(byLabel.get(label)!.wall);
  const versionRatio = med('virtform --version') / base;
  const validateRatio = med('virtform validate: 2,002 resources (1,000 VMs)') / base;
  const scale = med('virtform validate: 20,002 resources (10,000 VMs)') / med('virtform validate: 2,002 resources (1,000 VMs)');
  const cpu = (label: string): number => median(byLabel.get(label)!.cpu);
  const versionCpu = cpu('virtform --version') / baseCpu;
  const validateCpu = cpu('virtform validate: 2,002 resources (1,000 VMs)') / baseCpu;
  const scaleCpu = cpu('virtform validate: 20,002 resources (10,000 VMs)') / cpu('virtform validate: 2,002 resources (1,000 VMs)');
  const verdict = (ok: boolean): string => (ok ? 'met' : '**not met**');
  const x = (v: number): string => `${v.toFixed(2)}x`;

  const text = `# Whole-process start-up and manifest loading (CLI)

\`bench/cli.bench.ts\`: the CLI as users run it (\`node dist/cli/main.js\`: the esbuild bundle of
\`npm run build\`) against \`node -e 0\`, ${ROUNDS} rounds with every command run once per round
(interleaved: the load of this shared machine falls on all of them alike). Manifest sets:
\`bench/gen-manifests.ts\` (N stopped VMs, N qcow2 volumes, a pool, a network; 1,000 documents a
file: the 2,002 resources are two files). Peak RSS and CPU (user + system, every thread): getrusage
at exit, medians of ${ROUNDS} separate runs with a preload (interleaved too). Compare ratios, not absolute times.

${machineBlock()}

## Targets

| target | measured (wall, medians) | | CPU (user + sys, medians) | |
| --- | --- | --- | --- | --- |
| \`virtform --version\` within 1.5x \`node -e 0\` | ${x(versionRatio)} | ${verdict(versionRatio <= 1.5)} | ${x(versionCpu)} | ${verdict(versionCpu <= 1.5)} |
| \`virtform validate\` of 2,002 resources within 3x \`node -e 0\` | ${x(validateRatio)} | ${verdict(validateRatio <= 3)} | ${x(validateCpu)} | ${verdict(validateCpu <= 3)} |
| validate linear in size: t(10,000 VMs) / t(1,000 VMs) <= 12 | ${x(scale)} | ${verdict(scale <= 12)} | ${x(scaleCpu)} | ${verdict(scaleCpu <= 12)} |

Wall time is the target's measure; on this shared machine it swings with the load (a loaded
machine inflates \`node -e 0\`'s own start and shrinks every ratio), CPU time much less: a target
is met robustly only when both columns say so.

Load average (1 min): ${loadBefore.toFixed(1)} before, ${loadavg()[0]!.toFixed(1)} after.

## All commands (same run)

${table(['command', 'median ms', 'p90 ms', 'vs node -e 0', 'CPU ms', 'CPU vs node -e 0', 'peak RSS'], cmds.map((c) => [
    c.label, ms(median(c.wall)), ms(percentile(c.wall, 90)), x(median(c.wall) / base),
    ms(median(c.cpu)), x(median(c.cpu) / baseCpu), `${(median(c.rss) / 1024 / 1024).toFixed(1)} MiB`,
  ]))}

${BASELINE ? `Baseline: \`${BASELINE}\`.\n\n` : ''}## Where validate's time goes (one \`node --cpu-prof\` run, 2,002 resources)

Self time by area (profiling slows the run; shares matter, not the milliseconds):

${table(['area', 'ms', 'share'], profile.areas)}

Top functions by self time:

${table(['function', 'ms', 'share'], profile.functions)}

Findings and the choices they led to: [bench/FINDINGS.md](../FINDINGS.md), "Start-up and manifest loading".
`;
  writeReport(OUT, text);
} finally {
  rmSync(work, { recursive: true, force: true });
}

/** Self time of a .cpuprofile by area (a package, a folder of src/ through the bundle's chunks, node internals) and by function. */
function summarizeProfile(file: string): { areas: (string | number)[][]; functions: (string | number)[][] } {
  const prof = JSON.parse(readFileSync(file, 'utf8')) as { nodes: ProfileNode[]; samples: number[]; timeDeltas: number[] };
  const self = new Map<number, number>();
  prof.samples.forEach((id, i) => self.set(id, (self.get(id) ?? 0) + (prof.timeDeltas[i] ?? 0) / 1000));
  // The bundle's chunks hold many sources: map a chunk's line back to its source through the
  // "// src/…" and "// node_modules/…" comments esbuild writes before each module.
  const sourceAt = new Map<string, { line: number; source: string }[]>();
  const sourceOf = (url: string, line: number): string => {
    const path = url.replace(/^file:\/\//, '');
    if (!path.startsWith(join(ROOT, 'dist'))) return path ? path.replace(`${ROOT}/`, '') : '';
    let marks = sourceAt.get(path);
    if (!marks) {
      marks = [];
      readFileSync(path, 'utf8').split('\n').forEach((l, i) => {
        const m = /^\/\/ ((?:src|node_modules)\/\S+)$/.exec(l);
        if (m) marks!.push({ line: i, source: m[1]! });
      });
      sourceAt.set(path, marks);
    }
    let src = path.replace(`${ROOT}/`, '');
    for (const mk of marks) if (mk.line <= line) src = mk.source;
    return src;
  };
  const areaOf = (src: string, fn: string): string => {
    if (!src) return fn === '(garbage collector)' ? 'garbage collector' : fn.startsWith('(') ? fn : 'V8/native';
    const pkg = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(src);
    if (pkg) return `package ${pkg[1]}`;
    if (src.startsWith('src/')) return src.split('/').slice(0, 2).join('/') + (src.startsWith('src/manifest/') ? `/${src.split('/')[2]}` : '');
    if (src.startsWith('node:')) return 'node internals (module loading, fs, bootstrap)';
    return src;
  };
  const areas = new Map<string, number>();
  const fns = new Map<string, number>();
  let total = 0;
  for (const n of prof.nodes) {
    const t = self.get(n.id) ?? 0;
    if (n.callFrame.functionName === '(idle)') continue;
    total += t;
    const src = sourceOf(n.callFrame.url, n.callFrame.lineNumber);
    const area = areaOf(src, n.callFrame.functionName);
    areas.set(area, (areas.get(area) ?? 0) + t);
    const key = `${n.callFrame.functionName || '(anonymous)'} (${src || 'native'})`;
    fns.set(key, (fns.get(key) ?? 0) + t);
  }
  const rows = (m: Map<string, number>, top: number): (string | number)[][] =>
    [...m].sort((a, b) => b[1] - a[1]).slice(0, top).map(([k, v]) => [k, ms(v), `${((100 * v) / total).toFixed(1)}%`]);
  return { areas: rows(areas, 12), functions: rows(fns, 15) };
}
