/**
 * Two virtform processes applying at once (same DB, same manifests): exactly one gets the writer
 * lease (src/state/lease.ts) and proceeds, the other exits 1 naming the holder's pid, and the
 * lease's epoch moves by one per winner (released, never reused). An injected, retried failure
 * keeps the winner inside its apply for a few seconds so the two runs certainly overlap.
 * Objects: the suite's names (test/support/names.ts).
 */
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ensureBuilt, openJournal, orphans, runCli } from '../support/real-host.js';
import { writeManifests } from '../support/manifests.js';
import { declaredFrom, ensureLibvirtd, spawnCli } from './support.js';
import { suiteNames } from '../support/names.js';
import { lab } from '../support/suite.js';
import { openStateStore, readLease } from '../../src/state/index.js';

/** The writer lease's epoch in the state DB (undefined: never taken). */
async function leaseEpoch(db: string): Promise<number | undefined> {
  const s = await openStateStore(db);
  try {
    return (await readLease(s.leaseDeps()))?.epoch;
  } finally {
    await s.close();
  }
}

const N = suiteNames('faultl');
const P = N.base;
const COMMON = ['--uri', 'qemu:///system', '--shutdown-timeout', '0', '--allow-empty', '--allow-data-loss', '--max-deletions', 'all'];
let work: string;

const manifests = lab(N, { state: 'stopped', rootCapacity: '8MiB' }).files();

beforeAll(async () => {
  await ensureLibvirtd();
  ensureBuilt();
  N.cleanup();
  work = N.tempDir();
});
afterAll(() => N.cleanup());

describe('two applies at once on one state DB', () => {
  it('exactly one gets the lease and proceeds; the other exits 1 naming the holder pid (3 races)', async () => {
    const dir = writeManifests(join(work, 'm'), manifests);
    const empty = writeManifests(join(work, 'empty'), {});
    const db = join(work, 'state.db');
    // defineNetwork fails twice, retried after 1.5 s and 3 s: the winner holds the lock >= 4.5 s.
    const env = { VIRTFORM_TEST_FAIL: `defineNetwork:${P}-net:2` };
    const args = ['reconcile', dir, '--db', db, '--max-attempts', '3', '--retry-delay', '1500', ...COMMON];
    for (let race = 1; race <= 3; race++) {
      const a = spawnCli(args, env);
      const b = spawnCli(args, env);
      const [ra, rb] = await Promise.all([a.done, b.done]);
      const results = [{ pid: a.pid, ...ra }, { pid: b.pid, ...rb }];
      // The loser is refused before it touches anything; the winner is the one that was not refused.
      const refused = (r: { stderr: string }): boolean => /is locked by pid \d+/.test(r.stderr);
      const winners = results.filter((r) => !refused(r));
      const losers = results.filter((r) => refused(r));
      console.log(`[faults] lock race ${race}: exits ${results.map((r) => `pid ${r.pid} -> ${r.code} (${(r.ms / 1000).toFixed(1)} s)`).join(', ')}; ` +
        `loser says: ${losers[0]?.stderr.trim().slice(0, 200)}`);
      expect(winners, JSON.stringify(results.map((r) => [r.code, r.stderr.slice(-500)]))).toHaveLength(1);
      expect(losers).toHaveLength(1);
      expect(losers[0]!.code).toBe(1);
      expect(winners[0]!.code, `winner's run:\n${winners[0]!.stdout.slice(-4000)}\n${winners[0]!.stderr.slice(-2000)}`).toBe(0);
      expect(losers[0]!.stderr).toContain(`locked by pid ${winners[0]!.pid}`);
      expect(losers[0]!.stdout).not.toMatch(/^✓ /m); // it applied nothing
      expect(await leaseEpoch(db)).toBe(2 * race - 1); // the winner's; the teardown's comes next
      const dry = await runCli(['reconcile', dir, '--db', db, '--dry-run', '--detailed-exitcode', ...COMMON]);
      expect(dry.code, dry.stdout).toBe(0);
      expect(orphans(N.prefix, await declaredFrom(dir))).toEqual([]);
      expect(openJournal(db)).toEqual([]);
      const down = await runCli(['reconcile', empty, '--db', db, ...COMMON]);
      expect(down.code, down.stdout + down.stderr).toBe(0);
    }
  });
});
