/**
 * The writer lease (src/state/lease.ts): acquire, renew, expiry, takeover, epoch, fencing
 * (src/state/fence.ts) and the holder's step-down on its monotonic clock; in process and with real
 * processes. On SQLite always; on PostgreSQL too when a private cluster is given in
 * VIRTFORM_TEST_PG_URL (`make test-postgres`; test/support/postgres.ts).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { hostname } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  DEFAULT_LEASE_TIMING, LeaseHeldError, LeaseLostError, isPidAlive, leaseTimingProblem, openStateStore, readLease, tryAcquireLease,
  type LeaseTiming, type StateStore,
} from '../../../src/state/index.js';
import { stateBackends } from '../../support/backends.js';

const here = dirname(fileURLToPath(import.meta.url));
const repoRoot = resolve(here, '../../..');
const childScript = join(here, 'support', 'lease-child.ts');
/** Short durations for the tests that wait for an expiry. */
const FAST: LeaseTiming = { leaseMs: 1000, renewDeadlineMs: 700, retryMs: 100 };

const backends = stateBackends('lease');

describe.each(backends)('writer lease on $name', (backend) => {
  let dbPath: string;
  let store: StateStore;
  const children: ChildProcess[] = [];
  const others: StateStore[] = [];
  /** Another store (another connection) on the same DB. */
  const open = async (): Promise<StateStore> => {
    const s = await openStateStore(dbPath);
    others.push(s);
    return s;
  };

  beforeEach(async () => {
    dbPath = await backend.fresh();
    store = await openStateStore(dbPath);
  });
  afterEach(async () => {
    for (const c of children.splice(0)) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
    for (const s of others.splice(0)) await s.close();
    await store.close();
  });

  interface Child {
    proc: ChildProcess;
    /** Resolves with the first stdout line. */
    firstLine: Promise<string>;
    exit: Promise<{ code: number | null; signal: NodeJS.Signals | null; stdout: string; stderr: string }>;
  }

  function runChild(mode: 'try' | 'hold', db?: string): Child {
    const proc = spawn(process.execPath, ['--import', 'tsx', childScript, db ?? dbPath, mode], { cwd: repoRoot, stdio: ['pipe', 'pipe', 'pipe'] });
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

  const row = () => readLease(store.leaseDeps());
  const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
  /** Make the lease row expire now (as if its holder stopped renewing long ago). */
  const expireNow = () => store.db.updateTable('leases').set({ expires_at: 0 }).execute();

  describe('in process', () => {
    it('records holder, pid, host, command and epoch 1; expires_at is the database clock + the lease duration', async () => {
      const lease = await store.acquireLease({ command: 'virtform reconcile site' });
      expect(lease.pid).toBe(process.pid);
      expect(lease.epoch).toBe(1);
      const r = (await row())!;
      expect(r).toMatchObject({ name: 'writer', holder: lease.holder, pid: process.pid, hostname: hostname(), command: 'virtform reconcile site', epoch: 1 });
      expect(r.expiresAt - r.acquiredAt).toBe(DEFAULT_LEASE_TIMING.leaseMs);
      expect(Math.abs(r.now - Date.now())).toBeLessThan(5000);
      expect(lease.held).toBe(true);
      await lease.release();
      expect(lease.held).toBe(false);
      // Released: the row stays (its epoch with it), expired.
      const after = (await row())!;
      expect(after.epoch).toBe(1);
      expect(after.expiresAt).toBeLessThanOrEqual(after.now);
    });

    it('every new acquisition adds 1 to the epoch (also after a release)', async () => {
      const epochs: number[] = [];
      for (let i = 0; i < 3; i++) {
        const l = await store.acquireLease({ command: `run ${i}` });
        epochs.push(l.epoch);
        await l.release();
      }
      expect(epochs).toEqual([1, 2, 3]);
    });

    it('a second acquirer (another live pid) gets LeaseHeldError naming the holder; the row is untouched', async () => {
      const lease = await store.acquireLease({ command: 'virtform reconcile site' });
      const err = await store.acquireLease({ command: 'virtform watch', pid: process.ppid }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(LeaseHeldError);
      const held = err as LeaseHeldError;
      expect(held).toMatchObject({ holderPid: process.pid, holderHost: hostname(), holderCommand: 'virtform reconcile site', epoch: 1, acquiredAt: lease.acquiredAt });
      expect(held.message).toContain(`is locked by pid ${process.pid} on host ${hostname()}`);
      expect(held.message).toContain('virtform reconcile site');
      expect(held.expiresInMs).toBeGreaterThan(10_000);
      expect((await row())!).toMatchObject({ holder: lease.holder, epoch: 1 });
      await lease.release();
    });

    it('is not re-entrant: the same pid acquiring twice is refused', async () => {
      const lease = await store.acquireLease({ command: 'a' });
      await expect(store.acquireLease({ command: 'b' })).rejects.toBeInstanceOf(LeaseHeldError);
      await lease.release();
    });

    it('takes over at once a lease whose holder is a dead pid on this machine (epoch + 1)', async () => {
      const dead = await deadPid();
      const stale = await store.acquireLease({ command: 'crashed', pid: dead });
      const lease = await store.acquireLease({ command: 'recover' });
      expect(lease.epoch).toBe(stale.epoch + 1);
      expect((await row())!).toMatchObject({ pid: process.pid, command: 'recover', epoch: 2 });
      // The old holder's release and renewal touch nothing: the row is no longer theirs.
      expect(await stale.renew()).toBe(false);
      expect(stale.lostReason).toContain(`taken over by pid ${process.pid}`);
      await stale.release();
      expect((await row())!).toMatchObject({ holder: lease.holder });
      expect(lease.held).toBe(true);
      await lease.release();
    });

    it('a holder on another machine is taken over only after expiry, even when that pid is dead here', async () => {
      const dead = await deadPid();
      const remote = await store.acquireLease({ command: 'remote', pid: dead, hostname: 'other-host' }, FAST);
      const err = await store.acquireLease({ command: 'local' }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(LeaseHeldError);
      expect(err).toMatchObject({ holderHost: 'other-host', holderPid: dead });
      await sleep(FAST.leaseMs + 100); // no renewal: expired by the database's clock
      const lease = await store.acquireLease({ command: 'local' });
      expect(lease.epoch).toBe(remote.epoch + 1);
      await lease.release();
    });

    it('a live holder on this machine that stopped renewing is taken over after expiry', async () => {
      const holder = await store.acquireLease({ command: 'stuck', pid: process.ppid }, FAST);
      await expect(store.acquireLease({ command: 'next' })).rejects.toBeInstanceOf(LeaseHeldError);
      await expireNow();
      const lease = await store.acquireLease({ command: 'next' });
      expect(lease.epoch).toBe(2);
      expect(await holder.renew()).toBe(false);
      await lease.release();
    });

    it('renew moves expires_at by the database clock; a renewed lease is not taken over', async () => {
      const lease = await store.acquireLease({ command: 'r', pid: process.ppid, hostname: 'other-host' }, FAST);
      const before = (await row())!.expiresAt;
      for (let i = 0; i < 6; i++) {
        await sleep(FAST.retryMs);
        expect(await lease.renew()).toBe(true);
      }
      const after = (await row())!;
      expect(after.expiresAt).toBeGreaterThan(before + 5 * FAST.retryMs - 50);
      expect(after.expiresAt - after.renewedAt).toBe(FAST.leaseMs);
      await sleep(100);
      await expect(store.acquireLease({ command: 'other' })).rejects.toBeInstanceOf(LeaseHeldError);
      expect(lease.held).toBe(true);
      await lease.release();
    });

    it('keepAlive renews in the background: held well past the lease duration', async () => {
      const lease = await store.acquireLease({ command: 'k', pid: process.ppid, hostname: 'other-host' }, FAST);
      lease.keepAlive();
      await sleep(FAST.leaseMs * 3);
      expect(lease.held).toBe(true);
      await expect(store.acquireLease({ command: 'other' })).rejects.toBeInstanceOf(LeaseHeldError);
      await lease.release();
    });

    it('steps down once its last renewal is older than the renew deadline on the monotonic clock', async () => {
      let now = 1000;
      const deps = { ...store.leaseDeps(), monotonic: () => now };
      const lease = await tryAcquireLease(deps, { command: 'm' });
      const lost: string[] = [];
      lease.onLost((r) => lost.push(r));
      now += DEFAULT_LEASE_TIMING.renewDeadlineMs - 1;
      expect(lease.refusal()).toBeUndefined();
      expect(await lease.renew()).toBe(true); // renewed at t=10999
      now += DEFAULT_LEASE_TIMING.renewDeadlineMs - 1;
      expect(lease.refusal()).toBeUndefined();
      now += 1;
      const why = lease.refusal();
      expect(why).toMatch(/not renewed for 10\.0 s, longer than the renew deadline \(10\.0 s\); stepped down/);
      expect(() => lease.check()).toThrow(LeaseLostError);
      expect(lost).toEqual([why]);
      // For good: a later renewal does not bring it back.
      expect(await lease.renew()).toBe(false);
      expect(lease.held).toBe(false);
      await lease.release();
    });

    it('the renewal is timed from when it was sent, not when it returned', async () => {
      let now = 0;
      const deps = { ...store.leaseDeps(), monotonic: () => now };
      const lease = await tryAcquireLease(deps, { command: 'slow' });
      now = 5000;
      const renewing = lease.renew();
      now = 9000; // the answer comes 4 s later
      expect(await renewing).toBe(true);
      now = 5000 + DEFAULT_LEASE_TIMING.renewDeadlineMs;
      expect(lease.refusal()).toMatch(/stepped down/);
      await lease.release();
    });

    it('fencing: a write by a holder whose epoch is stale fails and changes nothing (in a transaction or not)', async () => {
      const old = await store.acquireLease({ command: 'old', pid: process.ppid }, FAST);
      await store.events.append({ level: 'info', message: 'by the holder' });
      await expireNow();
      const other = await open();
      const next = await other.acquireLease({ command: 'next' });
      expect(next.epoch).toBe(2);
      // A single statement (wrapped in a transaction by the fence), and a read-modify-write transaction.
      const err = await store.events.append({ level: 'info', message: 'stale' }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(LeaseLostError);
      expect((err as Error).message).toMatch(new RegExp(`taken over by pid ${process.pid} on host .* \\(epoch 2, ours 1\\); write refused`));
      await expect(store.gitSources.update({ id: 'g', url: 'https://example.invalid/r.git', ref: 'main', path: '' })).rejects.toBeInstanceOf(LeaseLostError);
      expect(old.held).toBe(false);
      expect((await other.events.recent()).map((e) => e.message)).toEqual(['by the holder']);
      expect(await other.gitSources.list()).toEqual([]);
      // The new holder writes; releasing its lease ends its fencing.
      await other.events.append({ level: 'info', message: 'by the new holder' });
      await next.release();
      await old.release();
      expect((await other.events.recent()).map((e) => e.message)).toEqual(['by the new holder', 'by the holder']);
    });

    it.runIf(backend.name === 'postgres')('a takeover waits for the write transaction in flight (the row read FOR SHARE), which commits', async () => {
      await store.acquireLease({ command: 'old', pid: process.ppid }, FAST);
      await expireNow();
      const other = await open();
      let takenAt = 0;
      let committedAt = 0;
      const writing = store.db.transaction().execute(async (trx) => {
        await trx.insertInto('events').values({ at: new Date().toISOString(), level: 'info', kind: null, name: null, message: 'in flight' }).execute();
        // The fence ran before that insert: the row is locked FOR SHARE until this transaction ends.
        const taking = other.acquireLease({ command: 'next' }).then((l) => {
          takenAt = Date.now();
          return l;
        });
        await sleep(600);
        committedAt = Date.now();
        return { taking }; // not awaited here: the takeover waits for this transaction to end
      });
      const next = await (await writing).taking;
      expect(takenAt).toBeGreaterThanOrEqual(committedAt);
      expect(next.epoch).toBe(2);
      expect((await other.events.recent()).map((e) => e.message)).toEqual(['in flight']);
      await expect(store.events.append({ level: 'info', message: 'after' })).rejects.toBeInstanceOf(LeaseLostError);
      await next.release();
    });

    it('waits for a held lease up to the timeout (--lock-timeout), then names the holder and how long it waited', async () => {
      const holder = await store.acquireLease({ command: 'holder', pid: process.ppid }, FAST);
      const seen: number[] = [];
      const t0 = Date.now();
      const err = await store.acquireLease({ command: 'waiter' }, FAST, { timeoutMs: 300, onHeld: (e) => seen.push(e.holderPid) }).catch((e: unknown) => e);
      expect(Date.now() - t0).toBeGreaterThanOrEqual(290);
      expect(err).toBeInstanceOf(LeaseHeldError);
      expect((err as Error).message).toMatch(/is locked by pid \d+ .*; waited \d+\.\d s \(--lock-timeout\)/);
      expect(seen).toEqual([process.ppid]);
      // Released while another waits: the waiter gets it at its next retry.
      const waiting = store.acquireLease({ command: 'waiter' }, FAST, { timeoutMs: 5000 });
      await sleep(150);
      await holder.release();
      const lease = await waiting;
      expect(lease.epoch).toBe(2);
      await lease.release();
    });

    it('a wait is aborted by its signal', async () => {
      const holder = await store.acquireLease({ command: 'holder', pid: process.ppid });
      const ac = new AbortController();
      const waiting = store.acquireLease({ command: 'waiter' }, FAST, { timeoutMs: Number.POSITIVE_INFINITY, signal: ac.signal });
      await sleep(100);
      ac.abort(new Error('stopped'));
      await expect(waiting).rejects.toThrow('stopped');
      await holder.release();
    });

    it('durations must leave room: retry < renew deadline < lease', () => {
      expect(leaseTimingProblem(DEFAULT_LEASE_TIMING)).toBeUndefined();
      expect(DEFAULT_LEASE_TIMING).toEqual({ leaseMs: 15_000, renewDeadlineMs: 10_000, retryMs: 2_000 });
      expect(leaseTimingProblem({ leaseMs: 10_000, renewDeadlineMs: 10_000, retryMs: 2_000 })).toMatch(/renew deadline \(10 s\) must be shorter than the lease duration \(10 s\)/);
      expect(leaseTimingProblem({ leaseMs: 15_000, renewDeadlineMs: 2_000, retryMs: 2_000 })).toMatch(/retry period \(2 s\) must be shorter than the renew deadline/);
      expect(leaseTimingProblem({ leaseMs: 15_000, renewDeadlineMs: 10_000, retryMs: 0 })).toMatch(/positive/);
    });
  });

  describe('real processes', () => {
    it('a second process is refused while this one holds the lease, and exits non-zero naming this pid', async () => {
      const lease = await store.acquireLease({ command: 'virtform reconcile (parent)' });
      const res = await runChild('try').exit;
      expect(res.code).toBe(3);
      expect(res.stdout).toMatch(new RegExp(`^HELD ${process.pid} `));
      expect(res.stderr).toContain(`pid ${process.pid}`);
      expect(res.stderr).toContain('virtform reconcile (parent)');
      await lease.release();
    });

    it('this process is refused while another live process holds the lease; its release frees it', async () => {
      const child = runChild('hold');
      expect(await child.firstLine).toBe(`ACQUIRED ${child.proc.pid} 1`);
      const err = await store.acquireLease({ command: 'parent' }).catch((e: unknown) => e);
      expect(err).toMatchObject({ holderPid: child.proc.pid, holderCommand: 'lease-child hold' });
      child.proc.stdin!.end();
      expect((await child.exit).code).toBe(0);
      const lease = await store.acquireLease({ command: 'parent' });
      expect(lease.epoch).toBe(2);
      await lease.release();
    });

    it('takes over at once the lease of a holder SIGKILLed on this machine', async () => {
      const child = runChild('hold');
      expect(await child.firstLine).toBe(`ACQUIRED ${child.proc.pid} 1`);
      child.proc.kill('SIGKILL');
      expect((await child.exit).signal).toBe('SIGKILL');
      const r = (await row())!;
      expect(r).toMatchObject({ pid: child.proc.pid, epoch: 1 });
      expect(r.expiresAt).toBeGreaterThan(r.now); // not expired: taken over because the pid is dead
      const lease = await store.acquireLease({ command: 'recover' });
      expect(lease.epoch).toBe(2);
      await lease.release();
    });

    it('racing processes on a fresh DB file: migrations serialize, exactly one wins the lease', async () => {
      const fresh = backend.name === 'sqlite' ? join(dirname(await backend.fresh()), 'fresh', 'state.db') : await backend.fresh();
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
});
