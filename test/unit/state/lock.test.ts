import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { hostname, tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { isPidAlive, LockHeldError, openStateStore, type StateStore } from '../../../src/state/index.js';

const here = dirname(fileURLToPath(import.meta.url));
const repoRoot = resolve(here, '../../..');
const childScript = join(here, 'support', 'lock-child.ts');

let dir: string;
let dbPath: string;
let store: StateStore;
const children: ChildProcess[] = [];

beforeEach(async () => {
  dir = mkdtempSync(join(tmpdir(), 'vf-lock-'));
  dbPath = join(dir, 'state.db');
  store = await openStateStore(dbPath);
});
afterEach(async () => {
  for (const c of children.splice(0)) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  await store.close();
  rmSync(dir, { recursive: true, force: true });
});

interface Child {
  proc: ChildProcess;
  /** Resolves with the first stdout line. */
  firstLine: Promise<string>;
  exit: Promise<{ code: number | null; signal: NodeJS.Signals | null; stdout: string; stderr: string }>;
}

function runChild(mode: 'try' | 'hold', path = dbPath): Child {
  const proc = spawn(process.execPath, ['--import', 'tsx', childScript, path, mode], {
    cwd: repoRoot,
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  children.push(proc);
  let stdout = '';
  let stderr = '';
  let onLine: (l: string) => void = () => {};
  const firstLine = new Promise<string>((res) => (onLine = res));
  proc.stdout!.on('data', (d: Buffer) => {
    stdout += d.toString();
    const nl = stdout.indexOf('\n');
    if (nl >= 0) onLine(stdout.slice(0, nl));
  });
  proc.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
  const exit = new Promise<{ code: number | null; signal: NodeJS.Signals | null; stdout: string; stderr: string }>((res) =>
    proc.on('exit', (code, signal) => res({ code, signal, stdout, stderr })),
  );
  firstLine.catch(() => {});
  return { proc, firstLine, exit };
}

/** Pid of a process that has exited (spawned and reaped). */
async function deadPid(): Promise<number> {
  const p = spawn(process.execPath, ['-e', '0'], { stdio: 'ignore' });
  const pid = p.pid!;
  await new Promise((res) => p.on('exit', res));
  expect(isPidAlive(pid)).toBe(false);
  return pid;
}

async function lockRows() {
  return store.db.selectFrom('locks').selectAll().execute();
}

describe('writer lock (in process)', () => {
  it('records holder pid, host and command', async () => {
    const lock = await store.acquireWriterLock({ command: 'virtform apply' });
    expect(lock.pid).toBe(process.pid);
    expect(await lockRows()).toMatchObject([{ name: 'writer', pid: process.pid, hostname: hostname(), command: 'virtform apply' }]);
    await lock.release();
    expect(await lockRows()).toEqual([]);
  });

  it('a second acquirer (simulated other pid) gets LockHeldError naming the holder', async () => {
    const lock = await store.acquireWriterLock({ command: 'virtform apply -f site.yaml' });
    const err = await store.acquireWriterLock({ command: 'virtform watch', pid: process.pid + 100000 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(LockHeldError);
    const held = err as LockHeldError;
    expect(held.holderPid).toBe(process.pid);
    expect(held.holderHost).toBe(hostname());
    expect(held.holderCommand).toBe('virtform apply -f site.yaml');
    expect(held.acquiredAt).toBe(lock.acquiredAt);
    expect(held.message).toContain(`pid ${process.pid}`);
    expect(held.message).toContain(hostname());
    expect(held.message).toContain('virtform apply -f site.yaml');
    // the holder's row is untouched
    expect(await lockRows()).toMatchObject([{ pid: process.pid, command: 'virtform apply -f site.yaml' }]);
    await lock.release();
  });

  it('is not re-entrant: the same pid acquiring twice is refused', async () => {
    const lock = await store.acquireWriterLock({ command: 'a' });
    await expect(store.acquireWriterLock({ command: 'b' })).rejects.toBeInstanceOf(LockHeldError);
    await lock.release();
  });

  it('release then re-acquire works; release is idempotent', async () => {
    const l1 = await store.acquireWriterLock({ command: 'one' });
    await l1.release();
    await l1.release();
    const l2 = await store.acquireWriterLock({ command: 'two' });
    expect(await lockRows()).toMatchObject([{ command: 'two' }]);
    await l2.release();
    const l3 = await store.acquireWriterLock({ command: 'three' });
    l3.releaseSync();
    expect(await lockRows()).toEqual([]);
  });

  it('release deletes only the row it owns', async () => {
    const dead = await deadPid();
    const stale = await store.acquireWriterLock({ command: 'old', pid: dead });
    // a new process takes the stale lock over
    const fresh = await store.acquireWriterLock({ command: 'new' });
    await stale.release();
    expect(await lockRows()).toMatchObject([{ pid: process.pid, command: 'new' }]);
    await fresh.release();
  });

  it('takes over a stale lock whose holder pid is dead on this host', async () => {
    const dead = await deadPid();
    await store.db
      .insertInto('locks')
      .values({ name: 'writer', pid: dead, hostname: hostname(), command: 'crashed', acquired_at: '2020-01-01T00:00:00.000Z', heartbeat_at: '2020-01-01T00:00:00.000Z' })
      .execute();
    const lock = await store.acquireWriterLock({ command: 'recover' });
    expect(lock.pid).toBe(process.pid);
    expect(await lockRows()).toMatchObject([{ pid: process.pid, command: 'recover' }]);
    await lock.release();
  });

  it('never takes over a lock held from another host, even if that pid is dead here', async () => {
    const dead = await deadPid();
    await store.db
      .insertInto('locks')
      .values({ name: 'writer', pid: dead, hostname: 'other-host', command: 'remote', acquired_at: '2020-01-01T00:00:00.000Z', heartbeat_at: '2020-01-01T00:00:00.000Z' })
      .execute();
    const err = await store.acquireWriterLock({ command: 'local' }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(LockHeldError);
    expect((err as LockHeldError).holderHost).toBe('other-host');
    expect((err as LockHeldError).holderPid).toBe(dead);
    expect(await lockRows()).toMatchObject([{ hostname: 'other-host' }]);
  });

  it('heartbeat refreshes heartbeat_at of the owned row', async () => {
    const lock = await store.acquireWriterLock({ command: 'hb' });
    const before = (await lockRows())[0]!.heartbeat_at;
    await new Promise((r) => setTimeout(r, 5));
    await lock.heartbeat();
    const after = (await lockRows())[0]!.heartbeat_at;
    expect(after > before).toBe(true);
    await lock.release();
  });
});

describe('writer lock (real processes)', () => {
  it('a second process is refused while this one holds the lock, and exits non-zero', async () => {
    const lock = await store.acquireWriterLock({ command: 'virtform apply (parent)' });
    const child = runChild('try');
    const res = await child.exit;
    expect(res.code).toBe(3);
    expect(res.stdout).toMatch(new RegExp(`^HELD ${process.pid} `));
    expect(res.stderr).toContain(`pid ${process.pid}`);
    expect(res.stderr).toContain('virtform apply (parent)');
    await lock.release();
  });

  it('this process is refused while another live process holds the lock', async () => {
    const child = runChild('hold');
    const line = await child.firstLine;
    expect(line).toBe(`ACQUIRED ${child.proc.pid}`);
    const err = await store.acquireWriterLock({ command: 'parent' }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(LockHeldError);
    expect((err as LockHeldError).holderPid).toBe(child.proc.pid);
    expect((err as LockHeldError).holderCommand).toBe('lock-child hold');
    child.proc.stdin!.end();
    expect((await child.exit).code).toBe(0);
    expect(await lockRows()).toEqual([]);
  });

  it('takes over the lock of a holder that was killed without releasing', async () => {
    const child = runChild('hold');
    expect(await child.firstLine).toBe(`ACQUIRED ${child.proc.pid}`);
    child.proc.kill('SIGKILL');
    expect((await child.exit).signal).toBe('SIGKILL');
    expect(await lockRows()).toMatchObject([{ pid: child.proc.pid }]);
    const lock = await store.acquireWriterLock({ command: 'recover' });
    expect(await lockRows()).toMatchObject([{ pid: process.pid, command: 'recover' }]);
    await lock.release();
  });

  it('racing processes on a fresh DB file: migrations serialize, exactly one wins the lock', async () => {
    const fresh = join(dir, 'fresh', 'state.db');
    const racers = [runChild('hold', fresh), runChild('hold', fresh), runChild('hold', fresh)];
    const lines = await Promise.all(racers.map((r) => r.firstLine));
    for (const r of racers) r.proc.stdin!.end();
    const exits = await Promise.all(racers.map((r) => r.exit));
    const winners = lines.filter((l) => l.startsWith('ACQUIRED'));
    expect(winners).toHaveLength(1);
    const winnerPid = Number(winners[0]!.split(' ')[1]);
    for (const l of lines.filter((x) => x.startsWith('HELD'))) expect(l).toMatch(new RegExp(`^HELD ${winnerPid} `));
    expect(exits.map((e) => e.code).sort()).toEqual([0, 3, 3]);
  });
});
