/** Small helpers shared by the bench scripts: flags, statistics, Markdown, machine details. */
import { execFileSync } from 'node:child_process';
import { Session } from 'node:inspector/promises';
import { mkdirSync, writeFileSync } from 'node:fs';
import { cpus, totalmem } from 'node:os';
import { dirname } from 'node:path';

/** `--out file.md --sizes 100,1000` → { out: 'file.md', sizes: '100,1000' }; bare `--flag` → 'true'. */
export function flags(argv = process.argv.slice(2)): Record<string, string> {
  const out: Record<string, string> = {};
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (!a.startsWith('--')) continue;
    const eq = a.indexOf('=');
    if (eq > 0) out[a.slice(2, eq)] = a.slice(eq + 1);
    else if (argv[i + 1] !== undefined && !argv[i + 1]!.startsWith('--')) out[a.slice(2)] = argv[++i]!;
    else out[a.slice(2)] = 'true';
  }
  return out;
}

export function median(xs: number[]): number {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

/** Nearest-rank percentile (p in 0..100). */
export function percentile(xs: number[], p: number): number {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  const rank = Math.min(s.length, Math.max(1, Math.ceil((p / 100) * s.length)));
  return s[rank - 1]!;
}

export const ms = (x: number): string => (Number.isFinite(x) ? (x >= 100 ? x.toFixed(0) : x.toFixed(1)) : 'n/a');
export const ratio = (a: number, b: number): string => (b > 0 ? `${(a / b).toFixed(2)}x` : 'n/a');
export const mib = (bytes: number): string => `${(bytes / 1024 / 1024).toFixed(1)} MiB`;

export function table(head: string[], rows: (string | number)[][]): string {
  const line = (cells: (string | number)[]): string => `| ${cells.map(String).join(' | ')} |`;
  return [line(head), line(head.map(() => '---')), ...rows.map(line)].join('\n');
}

export async function timed<T>(fn: () => Promise<T>): Promise<{ value: T; ms: number }> {
  const t = performance.now();
  const value = await fn();
  return { value, ms: performance.now() - t };
}

/** Run `fn` with at most `limit` in flight over `items`. */
export async function pool<T>(items: T[], limit: number, fn: (item: T) => Promise<unknown>): Promise<void> {
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < items.length) await fn(items[next++]!);
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
}

function sh(cmd: string, args: string[]): string {
  try {
    return execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
  } catch {
    return 'unknown';
  }
}

export function machine(): Record<string, string> {
  const libvirt = sh('virsh', ['-c', 'qemu:///system', 'version']).split('\n').find((l) => l.includes('Running against daemon') || l.includes('Using library'));
  return {
    cpu: cpus()[0]?.model ?? 'unknown',
    cores: String(cpus().length),
    memory: mib(totalmem()),
    node: process.version,
    libvirt: libvirt?.split(':').slice(1).join(':').trim() ?? 'unknown',
    kernel: sh('uname', ['-r']),
    date: new Date().toISOString(),
  };
}

export function machineBlock(): string {
  return Object.entries(machine()).map(([k, v]) => `- ${k}: ${v}`).join('\n');
}

export function writeReport(path: string | undefined, text: string): void {
  process.stdout.write(`${text}\n`);
  if (!path) return;
  mkdirSync(dirname(path), { recursive: true });
  writeFileSync(path, text.endsWith('\n') ? text : `${text}\n`);
}

export interface ProfileNode { id: number; callFrame: { functionName: string; url: string; lineNumber: number }; hitCount?: number; children?: number[] }

/** CPU-profile `fn` and return the top functions by self time (ms) with their file:line. */
let profiles = 0;

export async function cpuProfile(fn: () => Promise<void>, o: { top?: number; root: string }): Promise<(string | number)[][]> {
  const top = o.top ?? 15;
  const session = new Session();
  session.connect();
  await session.post('Profiler.enable');
  await session.post('Profiler.setSamplingInterval', { interval: 200 });
  await session.post('Profiler.start');
  await fn();
  const { profile: prof } = await session.post('Profiler.stop') as unknown as { profile: { nodes: ProfileNode[]; samples: number[]; timeDeltas: number[] } };
  session.disconnect();
  // VF_PROFILE_OUT=FILE keeps the raw profile (a .cpuprofile: Chrome DevTools, or inclusive times by caller).
  // Each profile of the process gets its own file: FILE, FILE.1, FILE.2, …
  if (process.env.VF_PROFILE_OUT) (await import('node:fs')).writeFileSync(`${process.env.VF_PROFILE_OUT}${profiles++ ? `.${profiles - 1}` : ''}`, JSON.stringify(prof));
  const self = new Map<number, number>();
  prof.samples.forEach((id, i) => self.set(id, (self.get(id) ?? 0) + (prof.timeDeltas[i] ?? 0) / 1000));
  const parent = new Map<number, number>();
  for (const n of prof.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const byId = new Map(prof.nodes.map((n) => [n.id, n]));
  // tsx-transformed modules report line 1, so functions are keyed by name and file; native frames
  // (sqlite, GC, socket writes) are attributed to the nearest JavaScript caller.
  const label = (n: ProfileNode): string => {
    const url = n.callFrame.url.replace(/^file:\/\//, '').replace(`${o.root}/`, '');
    return `${n.callFrame.functionName || '(anonymous)'} (${url || 'native'})`;
  };
  const byFn = new Map<string, number>();
  let total = 0;
  for (const n of prof.nodes) {
    const t = self.get(n.id) ?? 0;
    if (['(idle)', '(program)'].includes(n.callFrame.functionName)) continue;
    if (n.callFrame.url === 'node:inspector' || (!n.callFrame.url && n.callFrame.functionName === 'dispatch')) continue; // the profiler itself
    total += t;
    let key = label(n);
    if (!n.callFrame.url) {
      let p = parent.get(n.id);
      while (p !== undefined && !byId.get(p)!.callFrame.url) p = parent.get(p);
      if (p !== undefined) key = `${key} ← ${label(byId.get(p)!)}`;
    }
    byFn.set(key, (byFn.get(key) ?? 0) + t);
  }
  return [...byFn].sort((a, b) => b[1] - a[1]).slice(0, top).map(([k, v]) => [k, ms(v), `${((100 * v) / total).toFixed(1)}%`]);
}
