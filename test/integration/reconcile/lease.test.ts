/**
 * The writer lease between real `virtform reconcile` processes on one state DB: SQLite in
 * `make test`, PostgreSQL in `make test-postgres` (testDbLocation). Two runs serialize (the second
 * exits 1 naming the holder, or waits with --lock-timeout); a SIGKILLed holder's lease is taken
 * over at once from this machine (dead pid), and only after expiry when it was held from another.
 * The holder is kept inside its apply by an injected, retried failure. Objects: the suite's names (test/support/names.ts).
 */
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openStateStore, readLease, type LeaseRow } from '../../../src/state/index.js';
import { tempDir, writeManifests } from '../../support/manifests.js';
import { cleanupPrefix, ensureBuilt, runCli, spawnCli, TEST_POOL_ROOT } from '../../support/real-host.js';
import { testDbLocation } from '../../support/postgres.js';
import { suiteNames } from '../../support/names.js';

const N = suiteNames('lease');
const P = N.base;
const COMMON = ['--uri', 'qemu:///system', '--shutdown-timeout', '0', '--allow-empty', '--max-deletions', 'all'];
/** Short lease durations for the holder whose lease must expire in the test. */
const SHORT = ['--lease-duration', '8', '--renew-deadline', '6', '--retry-period', '1'];
/** defineNetwork fails three times, retried after ~2, 4 and 8 s (half jittered): the holder stays in its apply >= 7 s. */
const HOLD = { VIRTFORM_TEST_FAIL: `defineNetwork:${P}-net:3` };
const HOLD_ARGS = ['--max-attempts', '4', '--retry-delay', '2000'];

const manifests = {
  'env.yaml': `apiVersion: virtform.dev/v1
kind: StoragePool
metadata: {name: ${P}-pool}
spec: {path: ${TEST_POOL_ROOT}/${P}-pool}
---
apiVersion: virtform.dev/v1
kind: Network
metadata: {name: ${P}-net}
spec: {mode: isolated, cidr: 10.237.0.0/24}
`,
};

let work: string;
let dir: string;
let empty: string;
let db: string;

beforeAll(async () => {
  ensureBuilt();
  cleanupPrefix(P);
  work = tempDir(`${P}-`);
  dir = writeManifests(join(work, 'm'), manifests);
  empty = writeManifests(join(work, 'empty'), {});
  db = await testDbLocation(work);
});
afterAll(() => cleanupPrefix(P));

async function lease(): Promise<LeaseRow | undefined> {
  const s = await openStateStore(db);
  try {
    return await readLease(s.leaseDeps());
  } finally {
    await s.close();
  }
}

/** Wait until `pid` holds the lease (it is inside its apply). */
async function heldBy(pid: number): Promise<LeaseRow> {
  for (let i = 0; i < 200; i++) {
    const r = await lease().catch(() => undefined);
    if (r && r.pid === pid && r.expiresAt > r.now) return r;
    await new Promise((res) => setTimeout(res, 100));
  }
  throw new Error(`pid ${pid} never held the lease`);
}

describe('the writer lease between reconcile processes', () => {
  it('a second run exits 1 naming the holder; one with --lock-timeout waits for it and then applies', async () => {
    const holder = spawnCli(['reconcile', dir, '--db', db, ...HOLD_ARGS, ...COMMON], HOLD);
    const held = await heldBy(holder.pid);
    const refused = spawnCli(['reconcile', dir, '--db', db, ...COMMON]);
    const waiter = spawnCli(['reconcile', dir, '--db', db, '--lock-timeout', '60', ...COMMON]);
    const [h, r, w] = await Promise.all([holder.done, refused.done, waiter.done]);
    console.log(`[lease] holder ${(h.ms / 1000).toFixed(1)} s exit ${h.code}; refused ${(r.ms / 1000).toFixed(1)} s exit ${r.code}; waiter ${(w.ms / 1000).toFixed(1)} s exit ${w.code}`);
    expect(h.code, h.stdout + h.stderr).toBe(0);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`is locked by pid ${holder.pid}`);
    expect(r.stderr).toContain('--lock-timeout SECONDS waits for it');
    expect(r.stdout).not.toMatch(/^✓ /m);
    expect(w.code, w.stdout + w.stderr).toBe(0);
    expect(w.stderr).toMatch(new RegExp(`waiting up to 60 s \\(--lock-timeout\\) for the writer lease: .*locked by pid ${holder.pid}`));
    // The waiter got the lease after the holder: a new epoch, and nothing left to do.
    expect(w.stdout).toContain('No changes.');
    expect((await lease())!.epoch).toBe(held.epoch + 1);
  });

  it('a SIGKILLed holder: taken over at once from this machine (dead pid); held from another machine, only after expiry', async () => {
    const teardown = await runCli(['reconcile', empty, '--db', db, ...COMMON]);
    expect(teardown.code, teardown.stdout + teardown.stderr).toBe(0);

    // 1. Killed on this machine: the next run takes over at once, and finishes the open step.
    const a = spawnCli(['reconcile', dir, '--db', db, ...HOLD_ARGS, ...SHORT, ...COMMON], HOLD);
    const aHeld = await heldBy(a.pid);
    process.kill(a.pid, 'SIGKILL');
    await a.done;
    const b = await spawnCli(['reconcile', dir, '--db', db, ...COMMON]).done;
    expect(b.code, b.stdout + b.stderr).toBe(0);
    expect(b.ms).toBeLessThan(15_000);
    expect((await lease())!.epoch).toBe(aHeld.epoch + 1);

    // 2. Killed while its lease names another machine: refused until the lease expires (8 s after its last renewal).
    const teardown2 = await runCli(['reconcile', empty, '--db', db, ...COMMON]);
    expect(teardown2.code).toBe(0);
    const c = spawnCli(['reconcile', dir, '--db', db, ...HOLD_ARGS, ...SHORT, ...COMMON], HOLD);
    await heldBy(c.pid);
    process.kill(c.pid, 'SIGKILL');
    await c.done;
    const s = await openStateStore(db);
    try {
      await s.db.updateTable('leases').set({ hostname: 'elsewhere.example' }).execute();
    } finally {
      await s.close();
    }
    const row = (await lease())!;
    const t0 = Date.now();
    const [refused, d] = await Promise.all([
      runCli(['reconcile', dir, '--db', db, ...COMMON]),
      runCli(['reconcile', dir, '--db', db, '--lock-timeout', '30', ...COMMON]),
    ]);
    const waited = Date.now() - t0;
    expect(refused.code).toBe(1);
    expect(refused.stderr).toContain(`is locked by pid ${c.pid} on host elsewhere.example`);
    console.log(`[lease] expiry takeover: the lease had ${((row.expiresAt - row.now) / 1000).toFixed(1)} s left; the run took ${(waited / 1000).toFixed(1)} s`);
    expect(d.code, d.stdout + d.stderr).toBe(0);
    expect(d.stderr).toMatch(/waiting up to 30 s .*elsewhere\.example/);
    expect(waited).toBeGreaterThanOrEqual(row.expiresAt - row.now - 1000);
    const after = (await lease())!;
    expect(after.epoch).toBe(row.epoch + 1);
    expect(after.hostname).not.toBe('elsewhere.example');
    const down = await runCli(['reconcile', empty, '--db', db, ...COMMON]);
    expect(down.code, down.stdout + down.stderr).toBe(0);
  });
});
