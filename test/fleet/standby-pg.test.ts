/**
 * The writer lease on PostgreSQL where the database itself is in the way (issue 21, the standby):
 *
 * - A holder frozen inside one of its fenced write transactions holds the lease row `FOR SHARE`,
 *   which blocks a takeover's UPDATE. The fence bounds that: the transaction may stay idle for at
 *   most the renew deadline (`idle_in_transaction_session_timeout`), after which PostgreSQL ends it
 *   (and its session), so the successor takes over once the lease expired, not never.
 * - A run keeping every connection of the store's pool busy does not delay the renewal: the lease
 *   has two connections of its own.
 * - The database restarts under a leading watcher (every pooled connection terminated, the server
 *   away for longer than the renew deadline): the watcher steps down, keeps asking as a standby,
 *   takes the lease again once the database answers and converges a change made meanwhile; it never
 *   exits.
 *
 * No libvirt: the watcher runs in this process on the in-memory host (test/support/fake-host.ts).
 */
import { execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { LeaseHeldError, openStateStore, readLease, type LeaseTiming, type StateStore } from '../../src/state/index.js';
import { WatchController, jsonLogger } from '../../src/watch/index.js';
import { FakeHost } from '../support/fake-host.js';
import { tempDir, writeManifests } from '../support/manifests.js';
import { createDatabase, postgresBinDir } from '../support/postgres.js';
import { sleep, waitFor } from '../support/cli.js';

const CLUSTER = process.env.VIRTFORM_TEST_PG_URL;
const PGDIR = process.env.VIRTFORM_TEST_PG_DIR;
let n = 0;
const freshDb = (): Promise<string> => createDatabase(CLUSTER!, `vftest_standbypg_${process.pid}_${++n}`);
const closing: (() => Promise<unknown>)[] = [];

beforeAll(() => {
  expect(CLUSTER, 'the fleet config starts a private PostgreSQL (VIRTFORM_TEST_PG_URL)').toBeTruthy();
});
afterEach(async () => {
  // safe-catch: cleanup; each test asserts what it needs
  for (const c of closing.splice(0).reverse()) await c().catch(() => undefined);
});

async function open(db: string): Promise<StateStore> {
  const s = await openStateStore(db);
  closing.push(() => s.close());
  return s;
}

describe('the writer lease on PostgreSQL', () => {
  it('a holder frozen inside a fenced write transaction blocks its successor only until its lease expired', async () => {
    const db = await freshDb();
    const timing: LeaseTiming = { leaseMs: 2000, renewDeadlineMs: 1500, retryMs: 200 };
    const a = await open(db);
    const b = await open(db);
    const lease = await a.acquireLease({ command: 'frozen' }, timing);
    // A write transaction that never ends by itself: its fence took the lease row FOR SHARE.
    let thaw!: () => void;
    const frozen = new Promise<void>((r) => (thaw = r));
    const tx = a.db.transaction().execute(async (trx) => {
      await trx.insertInto('events').values({ at: new Date().toISOString(), level: 'info', kind: null, name: null, host: null, message: 'frozen writer' }).execute();
      await frozen;
    });
    const txDone = tx.then(() => 'committed', (e: unknown) => `failed: ${(e as Error).message}`);
    await sleep(100);
    const t0 = Date.now();
    const next = await b.acquireLease({ command: 'successor' }, timing, { timeoutMs: 10_000 });
    const waited = Date.now() - t0;
    console.log(`[standby-pg] successor took the lease over after ${waited} ms (lease ${timing.leaseMs} ms, renew deadline ${timing.renewDeadlineMs} ms)`);
    expect(next.epoch).toBe(lease.epoch + 1);
    expect(waited).toBeLessThan(timing.leaseMs + timing.retryMs + 1500);
    thaw();
    // PostgreSQL ended the idle transaction: nothing of it was committed.
    expect(await txDone).toMatch(/^failed: /);
    expect(await b.db.selectFrom('events').select('message').where('message', '=', 'frozen writer').execute()).toEqual([]);
    await next.release();
  });

  it('a run holding every connection of the store pool does not hold up the renewal (the lease has connections of its own)', async () => {
    const db = await freshDb();
    const a = await open(db);
    const lease = await a.acquireLease({ command: 'busy' });
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    let held = 0;
    const txs = Array.from({ length: 10 }, () => a.db.transaction().execute(async (trx) => {
      await trx.selectFrom('resources').select('id').execute();
      held += 1;
      await gate;
    }));
    try {
      await waitFor(() => held === 10, 'the pool busy');
      const t0 = Date.now();
      expect(await lease.renew()).toBe(true);
      const ms = Date.now() - t0;
      console.log(`[standby-pg] renewal with the store's pool exhausted: ${ms} ms`);
      expect(ms).toBeLessThan(2000);
      expect((await readLease(a.leaseDeps()))!.holder).toBe(lease.holder);
    } finally {
      release();
      await Promise.all(txs);
    }
    await lease.release();
  });

  it('the database restarts under a leading watcher: it stands by, takes the lease again and converges a change made meanwhile', async () => {
    expect(PGDIR).toBeTruthy();
    const db = await freshDb();
    const store = await open(db);
    const work = tempDir('vftest-standbypg-');
    const dir = writeManifests(join(work, 'm'), {
      'net.yaml': 'apiVersion: virtform.dev/v1\nkind: Network\nmetadata: {name: vftest-standbypg-a}\nspec: {mode: isolated, cidr: 10.209.105.0/24}\n',
    });
    const host = new FakeHost();
    const logs: Record<string, unknown>[] = [];
    const timing: LeaseTiming = { leaseMs: 3000, renewDeadlineMs: 2000, retryMs: 250 };
    const c = new WatchController({
      dir, store, connect: async () => host, resyncMs: 0, debounceMs: 50, eventDebounceMs: 20, gracefulStop: false,
      retry: { maxAttempts: 2, baseDelayMs: 1, maxDelayMs: 2 }, requeue: { initialDelayMs: 200, maxDelayMs: 1000 }, lease: timing, lockCommand: 'watch pg-restart',
      logger: jsonLogger({ level: 'debug', write: (l) => void logs.push(JSON.parse(l) as Record<string, unknown>) }),
    });
    closing.push(() => c.stop());
    await c.start();
    await waitFor(() => c.ready, 'ready', 20_000);
    expect(await host.getNetwork('vftest-standbypg-a')).not.toBeNull();
    const epoch = (await readLease(store.leaseDeps()))!.epoch;

    // Stop the server for longer than the renew deadline; change the manifests meanwhile.
    const bin = postgresBinDir()!;
    const data = join(PGDIR!, 'data');
    const asPostgres = (args: string[]): string => execFileSync('runuser', ['-u', 'postgres', '--', join(bin, 'pg_ctl'), ...args], { encoding: 'utf8', timeout: 60_000 });
    const port = new URL(CLUSTER!).port;
    asPostgres(['-D', data, '-m', 'fast', '-w', 'stop']);
    let restarted = false;
    try {
      writeFileSync(join(dir, 'net.yaml'), 'apiVersion: virtform.dev/v1\nkind: Network\nmetadata: {name: vftest-standbypg-b}\nspec: {mode: isolated, cidr: 10.208.105.0/24}\n');
      await waitFor(() => !c.ready, 'not ready while the database is away', 10_000);
      await sleep(timing.renewDeadlineMs + 1000);
      expect(c.notReadyReason).toMatch(/^standby: /);
    } finally {
      const o = `-c listen_addresses=127.0.0.1 -p ${port} -c unix_socket_directories=${PGDIR} -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=100`;
      asPostgres(['-D', data, '-l', join(PGDIR!, 'server.log'), '-o', o, '-w', '-t', '60', 'start']);
      restarted = true;
    }
    expect(restarted).toBe(true);
    await waitFor(async () => c.ready && (await host.getNetwork('vftest-standbypg-b')) !== null, 'the watcher leads again and converges', 30_000)
      .catch((e: unknown) => {
        throw new Error(`${(e as Error).message}; not ready: ${c.notReadyReason}\n${logs.slice(-25).map((l) => JSON.stringify(l).slice(0, 300)).join('\n')}`);
      });
    expect(await host.getNetwork('vftest-standbypg-a')).toBeNull();
    const row = (await readLease(store.leaseDeps()))!;
    expect(row.epoch).toBe(epoch + 1);
    const msgs = logs.map((l) => String(l.msg));
    expect(msgs).toContain('writer lease: renewal failed');
    expect(msgs.some((m) => m.startsWith('stepped down: lost the writer lease'))).toBe(true);
    expect(msgs).toContain('standby: asking the state DB for the writer lease failed; retrying');
    console.log(`[standby-pg] restart: ${msgs.filter((m) => /lease|standby|stepped|deposed/.test(m)).join(' | ')}`);
    // The watcher's own lease was expired by then: not "held by another", no LeaseHeldError surfaced.
    expect(logs.some((l) => l.error && String(l.error).includes(LeaseHeldError.name))).toBe(false);
  });
});
