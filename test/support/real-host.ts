/**
 * Helpers for integration tests against the real libvirtd: run the CLI, ask virsh, take an
 * inventory of test objects by name prefix, and check the no-orphan invariant.
 */
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { existsSync, readdirSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import Database from 'better-sqlite3';

export const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
export const CLI = join(ROOT, 'dist/cli/main.js');
export const TEST_POOL_ROOT = '/var/lib/virtform-test';

let built = false;
const BUILD_STAMP = join(ROOT, 'dist/.build-stamp');

/** Newest modification time (ms) of what `dist/` is built from: `src/`, `schemas/`, tsconfig.json. */
function newestSourceMtime(): number {
  let newest = statSync(join(ROOT, 'tsconfig.json')).mtimeMs;
  const walk = (dir: string): void => {
    for (const e of readdirSync(dir, { withFileTypes: true })) {
      const p = join(dir, e.name);
      if (e.isDirectory()) walk(p);
      else newest = Math.max(newest, statSync(p).mtimeMs);
    }
  };
  walk(join(ROOT, 'src'));
  walk(join(ROOT, 'schemas'));
  return newest;
}

/**
 * Make sure dist/ is the current source, so the CLI under test is what the tests read. Builds only
 * when a source is newer than the last build's stamp (its start time): every test file calls this,
 * and a full `tsc` in each of them cost minutes of `make test`, which builds once before.
 */
export function ensureBuilt(): void {
  if (built) return;
  let stamp = 0;
  try {
    stamp = statSync(BUILD_STAMP).mtimeMs;
  } catch {
    /* safe-catch: no stamp yet, so build */
  }
  if (!existsSync(CLI) || stamp < newestSourceMtime()) {
    const started = new Date();
    execFileSync('npx', ['tsc', '-p', 'tsconfig.json'], { cwd: ROOT, stdio: 'pipe' });
    writeFileSync(BUILD_STAMP, '');
    utimesSync(BUILD_STAMP, started, started); // an edit made during the build makes the next call build again
  }
  built = true;
}

export interface CliResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

export interface Spawned {
  pid: number;
  done: Promise<{ code: number | null; signal: NodeJS.Signals | null; stdout: string; stderr: string; ms: number }>;
  stdoutSoFar: () => string;
}

/** Spawn the CLI and expose its pid (runCli hides it). */
export function spawnCli(args: string[], env: Record<string, string> = {}, timeoutMs = 180_000): Spawned {
  const t = performance.now();
  // Test VMs boot no OS and never answer an ACPI shutdown: stop them at once unless a test says otherwise.
  if ((args[0] === 'reconcile' || args[0] === 'watch') && !args.includes('--shutdown-timeout')) args = [...args, '--shutdown-timeout', '0'];
  const child = spawn(process.execPath, [CLI, ...args], {
    cwd: ROOT, env: { ...process.env, NO_COLOR: '1', ...env }, stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
  const done = new Promise<{ code: number | null; signal: NodeJS.Signals | null; stdout: string; stderr: string; ms: number }>((res, rej) => {
    child.on('error', rej);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      res({ code, signal, stdout, stderr, ms: performance.now() - t });
    });
  });
  return { pid: child.pid!, done, stdoutSoFar: () => stdout };
}

export async function runCli(args: string[], env: Record<string, string> = {}, timeoutMs = 120_000): Promise<CliResult> {
  return spawnCli(args, env, timeoutMs).done;
}

export function virsh(...args: string[]): string {
  return execFileSync('virsh', ['-q', '-c', 'qemu:///system', ...args], { encoding: 'utf8' });
}

export function virshOk(...args: string[]): boolean {
  return spawnSync('virsh', ['-q', '-c', 'qemu:///system', ...args], { stdio: 'ignore' }).status === 0;
}

const names = (out: string): string[] => out.split('\n').map((s) => s.trim()).filter(Boolean);

export interface Inventory {
  domains: string[];
  runningDomains: string[];
  networks: string[];
  activeNetworks: string[];
  pools: string[];
  /** `pool/volume` for every volume libvirt lists in a prefixed pool. */
  volumes: string[];
  /** Every file under the test pool root whose top directory has the prefix. */
  files: string[];
}

export function inventory(prefix: string): Inventory {
  const withPrefix = (l: string[]): string[] => l.filter((n) => n.startsWith(prefix)).sort();
  const pools = withPrefix(names(virsh('pool-list', '--all', '--name')));
  const volumes: string[] = [];
  for (const p of pools) {
    if (!virshOk('pool-info', p) || !virsh('pool-info', p).includes('running')) continue;
    virshOk('pool-refresh', p);
    for (const line of names(virsh('vol-list', p))) volumes.push(`${p}/${line.split(/\s+/)[0]}`);
  }
  const files: string[] = [];
  if (existsSync(TEST_POOL_ROOT)) {
    for (const top of readdirSync(TEST_POOL_ROOT).filter((d) => d.startsWith(prefix))) {
      const dir = join(TEST_POOL_ROOT, top);
      for (const f of readdirSync(dir)) files.push(join(dir, f));
    }
  }
  return {
    domains: withPrefix(names(virsh('list', '--all', '--name'))),
    runningDomains: withPrefix(names(virsh('list', '--name'))),
    networks: withPrefix(names(virsh('net-list', '--all', '--name'))),
    activeNetworks: withPrefix(names(virsh('net-list', '--name'))),
    pools,
    volumes: volumes.sort(),
    files: files.sort(),
  };
}

/** Open journal entries in a state DB file (operations begun and never finished). */
export function openJournal(dbPath: string): { kind: string; name: string; action: string }[] {
  if (!existsSync(dbPath)) return [];
  const db = new Database(dbPath, { readonly: true, fileMustExist: true });
  try {
    return db.prepare("select kind, name, action from journal where status = 'open'").all() as { kind: string; name: string; action: string }[];
  } finally {
    db.close();
  }
}

export interface Declared {
  domains: string[];
  networks: string[];
  pools: string[];
  /** `pool/volumeFileName` */
  volumes: string[];
  /** absolute paths of declared volume files */
  files: string[];
}

/**
 * The invariant after any completed run: every prefixed libvirt object and every file in the
 * prefixed pool directories is declared. Returns the violations (empty when clean).
 */
export function orphans(prefix: string, declared: Declared): string[] {
  const inv = inventory(prefix);
  const out: string[] = [];
  const check = (what: string, actual: string[], wanted: string[]): void => {
    const ok = new Set(wanted);
    for (const a of actual) if (!ok.has(a)) out.push(`${what} ${a}`);
  };
  check('domain', inv.domains, declared.domains);
  check('network', inv.networks, declared.networks);
  check('pool', inv.pools, declared.pools);
  check('volume', inv.volumes, declared.volumes);
  check('file', inv.files, declared.files);
  return out;
}

export function cleanupPrefix(prefix: string): void {
  execFileSync('bash', [join(ROOT, 'scripts/cleanup-test-objects.sh'), prefix], { stdio: 'ignore' });
}
