/**
 * The CLI under test, one way for every suite: `capture` runs a command function in this process,
 * `runCli`/`spawnCli` run the built CLI (dist/, built on demand by ensureBuilt) and capture stdout,
 * stderr and the exit code, and `startWatch` spawns `virtform watch` with a reader of its JSON log
 * lines and its HTTP endpoints.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { cpSync, existsSync, readdirSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
export const CLI = join(ROOT, 'dist/cli/main.js');

let built = false;
const BUILD_STAMP = join(ROOT, 'dist/.build-stamp');

/** Newest modification time (ms) of what `dist/` is built from: `src/`, `schemas/`, tsconfig.json, the bundler. */
function newestSourceMtime(): number {
  let newest = Math.max(statSync(join(ROOT, 'tsconfig.json')).mtimeMs, statSync(join(ROOT, 'scripts/build-cli.mjs')).mtimeMs);
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
    // `npm run build`'s second step: the bundled CLI (dist/cli/main.js, dist/chunks/) that users run.
    execFileSync(process.execPath, [join(ROOT, 'scripts/build-cli.mjs')], { cwd: ROOT, stdio: 'pipe' });
    // The dashboard's script and stylesheet, as `npm run build` copies them.
    if (existsSync(join(ROOT, 'src/dashboard/assets'))) cpSync(join(ROOT, 'src/dashboard/assets'), join(ROOT, 'dist/dashboard/assets'), { recursive: true });
    writeFileSync(BUILD_STAMP, '');
    utimesSync(BUILD_STAMP, started, started); // an edit made during the build makes the next call build again
  }
  built = true;
}

/** Run a CLI command function in this process, capturing what it writes to stdout and stderr. */
export async function capture(fn: () => Promise<number>): Promise<{ code: number; stdout: string; stderr: string }> {
  const { vi } = await import('vitest'); // here, not at the top: the global setups import this file outside a test
  let stdout = '';
  let stderr = '';
  const out = vi.spyOn(process.stdout, 'write').mockImplementation((chunk: string | Uint8Array) => {
    stdout += String(chunk);
    return true;
  });
  const err = vi.spyOn(process.stderr, 'write').mockImplementation((chunk: string | Uint8Array) => {
    stderr += String(chunk);
    return true;
  });
  try {
    const code = await fn();
    return { code, stdout, stderr };
  } finally {
    out.mockRestore();
    err.mockRestore();
  }
}

export interface CliResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

export interface Spawned {
  pid: number;
  done: Promise<CliResult & { ms: number }>;
  stdoutSoFar: () => string;
}

/** Test VMs boot no OS and never answer an ACPI shutdown: stop them at once unless a test says otherwise. */
function withShutdownTimeout(args: string[]): string[] {
  return (args[0] === 'reconcile' || args[0] === 'watch') && !args.includes('--shutdown-timeout') ? [...args, '--shutdown-timeout', '0'] : args;
}

/** Spawn the built CLI and expose its pid (runCli hides it). */
export function spawnCli(args: string[], env: Record<string, string> = {}, timeoutMs = 180_000): Spawned {
  ensureBuilt();
  const t = performance.now();
  const child = spawn(process.execPath, [CLI, ...withShutdownTimeout(args)], {
    cwd: ROOT, env: { ...process.env, NO_COLOR: '1', ...env }, stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
  const done = new Promise<CliResult & { ms: number }>((res, rej) => {
    child.on('error', rej);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      res({ code, signal, stdout, stderr, ms: performance.now() - t });
    });
  });
  return { pid: child.pid!, done, stdoutSoFar: () => stdout };
}

/** Run the built CLI to its end. */
export async function runCli(args: string[], env: Record<string, string> = {}, timeoutMs = 120_000): Promise<CliResult> {
  return spawnCli(args, env, timeoutMs).done;
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Waits until `cond` holds (polled every 100 ms); throws naming `what` after `timeoutMs`. */
export async function waitFor(cond: () => boolean | Promise<boolean>, what: string, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

export type LogLine = Record<string, unknown>;

/** A running `virtform watch`: its JSON log lines (stderr), its exit, its HTTP listener. */
export interface Watcher {
  readonly child: ChildProcess;
  /** Every log line so far; a line that is not JSON is `{msg: 'non-json', line}`. */
  readonly logs: LogLine[];
  /** The exit code, `undefined` while it runs. */
  readonly exitCode: number | null | undefined;
  /** The port of `--listen 127.0.0.1:0` (0 until it listens). */
  readonly port: number;
  /** How many lines have this `msg` (and match `pred`). */
  count(msg: string, pred?: (l: LogLine) => boolean): number;
  /** Waits for a line with this `msg` (and matching `pred`) and returns the first one. */
  waitForLog(msg: string, pred?: (l: LogLine) => boolean, timeoutMs?: number): Promise<LogLine>;
  /** GET a path of the listener: status 0 when it does not answer. */
  http(path: string): Promise<{ status: number; body: string }>;
  /** Sends a signal and waits (30 s at most) for the exit. */
  stop(signal?: NodeJS.Signals): Promise<number | null>;
  /** The last `n` log lines, for a failure message. */
  tail(n?: number): string;
}

/** How to spawn a watcher: more environment, and a command to run it under (e.g. `unshare --pid --fork`). */
export interface SpawnOptions {
  env?: Record<string, string>;
  wrap?: string[];
}

/** Spawns `virtform watch ...args` (with `--shutdown-timeout 0` unless given) and reads its log lines. */
export function spawnWatch(args: string[], o: SpawnOptions = {}): Watcher {
  ensureBuilt();
  const argv = [process.execPath, CLI, ...withShutdownTimeout(['watch', ...args])];
  const [cmd, ...rest] = [...(o.wrap ?? []), ...argv];
  const child = spawn(cmd!, rest, {
    cwd: ROOT, stdio: ['ignore', 'ignore', 'pipe'], ...(o.env ? { env: { ...process.env, ...o.env } } : {}),
  });
  const logs: LogLine[] = [];
  let exitCode: number | null | undefined;
  let port = 0;
  child.on('exit', (code) => (exitCode = code));
  let buf = '';
  child.stderr!.setEncoding('utf8').on('data', (d: string) => {
    buf += d;
    let i;
    while ((i = buf.indexOf('\n')) >= 0) {
      const line = buf.slice(0, i);
      buf = buf.slice(i + 1);
      try {
        const l = JSON.parse(line) as LogLine;
        if (l.msg === 'listening' && !port) port = Number(l.port);
        logs.push(l);
      } catch {
        logs.push({ msg: 'non-json', line });
      }
    }
  });
  const count = (msg: string, pred: (l: LogLine) => boolean = () => true): number => logs.filter((l) => l.msg === msg && pred(l)).length;
  const tail = (n = 40): string => logs.slice(-n).map((l) => JSON.stringify(l).slice(0, 400)).join('\n');
  return {
    child, logs, count, tail,
    get exitCode() { return exitCode; },
    get port() { return port; },
    async http(path) {
      try {
        const r = await fetch(`http://127.0.0.1:${port}${path}`, { signal: AbortSignal.timeout(5000) });
        return { status: r.status, body: await r.text() };
      } catch {
        return { status: 0, body: '' };
      }
    },
    async waitForLog(msg, pred = () => true, timeoutMs = 30_000) {
      await waitFor(() => count(msg, pred) > 0 || exitCode !== undefined, `the log line "${msg}"`, timeoutMs);
      const line = logs.find((l) => l.msg === msg && pred(l));
      if (!line) throw new Error(`watch exited (${exitCode}) before logging "${msg}":\n${tail()}`);
      return line;
    },
    async stop(signal = 'SIGTERM') {
      if (exitCode === undefined) child.kill(signal);
      await waitFor(() => exitCode !== undefined, `the watcher to exit on ${signal}`, 30_000).catch((e: unknown) => {
        throw new Error(`${(e as Error).message}; its last log lines:\n${tail()}`);
      });
      return exitCode!;
    },
  };
}

/**
 * Spawns `virtform watch ...args --listen 127.0.0.1:0` and waits until it listens and /readyz
 * answers 200 (`readyTimeoutMs`); throws, with its last log lines, when it exits first.
 */
export async function startWatch(args: string[], readyTimeoutMs = 60_000, o: SpawnOptions = {}): Promise<Watcher> {
  const w = spawnWatch([...args, '--listen', '127.0.0.1:0'], o);
  await w.waitForLog('listening');
  if (!(w.port > 0)) throw new Error(`watch logged no port:\n${w.tail()}`);
  await waitFor(async () => (await w.http('/readyz')).status === 200 || w.exitCode !== undefined, 'ready', readyTimeoutMs);
  if (w.exitCode !== undefined) throw new Error(`watch exited (${w.exitCode}) before it was ready:\n${w.tail()}`);
  return w;
}
