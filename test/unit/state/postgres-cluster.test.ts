/**
 * test/support/postgres.ts: a cluster left by a run that died (its owner pid gone) is found by its
 * pid files, its postmaster stopped and its folder removed by the next run's sweep; a live run's
 * cluster is left alone. Runs under `make test-postgres` (needs Debian's postgresql).
 */
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { startPostgres, sweepStalePostgres } from '../../support/postgres.js';

const alive = (pid: number): boolean => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

describe.runIf(process.env.VIRTFORM_TEST_PG_URL)('private PostgreSQL clusters', () => {
  it('the sweep stops and removes the cluster of a dead run, not that of a live one', async () => {
    const c = await startPostgres();
    const postmaster = Number(readFileSync(join(c.dir, 'data', 'postmaster.pid'), 'utf8').split('\n')[0]);
    expect(alive(postmaster)).toBe(true);
    sweepStalePostgres(); // owner alive (this process): kept
    expect(existsSync(c.dir)).toBe(true);
    const dead = spawnSync('true').pid!;
    writeFileSync(join(c.dir, 'owner.pid'), String(dead));
    sweepStalePostgres();
    expect(existsSync(c.dir)).toBe(false);
    for (let i = 0; i < 50 && alive(postmaster); i++) await new Promise((r) => setTimeout(r, 100));
    expect(alive(postmaster)).toBe(false);
    // The run's own cluster (started by the global setup) is still there.
    expect(existsSync(process.env.VIRTFORM_TEST_PG_DIR!)).toBe(true);
  });
});
