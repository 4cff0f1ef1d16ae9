/**
 * libvirtd SIGKILLed in the middle of an apply and restarted: the run fails cleanly (exit 1 with a
 * clear libvirt/connection error, no hang) or completes; the rerun converges with no orphans and
 * no open journal entry. Objects: vftest-faultd-*.
 */
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { openJournal, orphans, runCli, TEST_POOL_ROOT } from '../support/real-host.js';
import { writeManifests } from '../support/manifests.js';
import { LIBVIRTD_ARGS, LIBVIRTD_PIDFILE, signalLibvirtd } from '../support/libvirtd.js';
import { declaredFrom, ensureLibvirtd, faultManifests, isConnectionTrouble, spawnCli, whileLibvirtdFlaps } from './support.js';
import { useSuite } from '../support/suite.js';

const N = useSuite('faultd', { before: () => ensureLibvirtd() });
const P = N.base;
const COMMON = ['--uri', 'qemu:///system', '--shutdown-timeout', '0', '--retry-delay', '100', '--allow-empty', '--allow-data-loss', '--max-deletions', 'all'];

afterAll(async () => {
  await ensureLibvirtd(60_000);
});

async function killLibvirtdWhenApplied(stepsDone: number, child: ReturnType<typeof spawnCli>): Promise<number> {
  const deadline = Date.now() + 60_000;
  while (Date.now() < deadline && (child.stdoutSoFar().match(/^✓ /gm)?.length ?? 0) < stepsDone) {
    await new Promise((r) => setTimeout(r, 20));
  }
  const seen = child.stdoutSoFar().match(/^✓ /gm)?.length ?? 0;
  signalLibvirtd('SIGKILL');
  await new Promise((r) => setTimeout(r, 300));
  spawnSync('libvirtd', [...LIBVIRTD_ARGS], { stdio: 'ignore' });
  await ensureLibvirtd(60_000);
  return seen;
}

describe('libvirtd killed mid-apply', () => {
  for (const [i, stepsDone] of [[1, 2], [2, 7]] as const) {
    it(`kill after ${stepsDone} applied step(s): clean failure or completion, then convergence`, async () => {
      const dir = writeManifests(join(N.work, `m${i}`), faultManifests(P, `${TEST_POOL_ROOT}/${P}-pool`,
        { vms: 4, vm1Memory: '64MiB', vm2State: 'running', vm3Vcpus: 1 }, '10.234.0.0/24'));
      const db = join(N.work, `state${i}.db`);
      const child = spawnCli(['reconcile', dir, '--db', db, '--concurrency', '1', '--max-attempts', '2', ...COMMON]);
      const seen = await killLibvirtdWhenApplied(stepsDone, child);
      const r = await child.done;
      console.log(`[faults] libvirtd killed after ${seen} step(s): apply exit ${r.code} signal ${r.signal} in ${(r.ms / 1000).toFixed(1)} s; ` +
        `error: ${(r.stderr.split('\n').find((l) => l.startsWith('virtform:')) ?? r.stdout.split('\n').find((l) => /^✗|failed/.test(l)) ?? '').slice(0, 200)}`);
      expect(r.signal).toBeNull(); // no hang (spawnCli kills at 180 s)
      expect([0, 1]).toContain(r.code);
      if (r.code === 1) {
        // A clear error: the connection (or a step failing because of it) is named.
        expect(isConnectionTrouble(r.stdout + r.stderr) || /libvirt/i.test(r.stdout + r.stderr), r.stdout + r.stderr).toBe(true);
        expect(r.stderr).not.toMatch(/\n\s+at .+\(.*:\d+:\d+\)/); // no stack trace
      }

      const note = { disturbed: 0 };
      const trouble = (x: { code: number | null; stdout: string; stderr: string }): boolean => x.code !== 0 && isConnectionTrouble(x.stderr + x.stdout);
      const rerun = await whileLibvirtdFlaps(() => runCli(['reconcile', dir, '--db', db, ...COMMON]), trouble, note);
      expect(rerun.code, rerun.stdout + rerun.stderr).toBe(0);
      const dry = await whileLibvirtdFlaps(() => runCli(['reconcile', dir, '--db', db, '--dry-run', '--detailed-exitcode', ...COMMON]), trouble, note);
      expect(dry.code, dry.stdout + dry.stderr).toBe(0);
      const declared = await declaredFrom(dir);
      expect(orphans(N.prefix, declared)).toEqual([]);
      expect(openJournal(db)).toEqual([]);

      // tear down for the next case (its DB owns the objects)
      const empty = writeManifests(join(N.work, `empty${i}`), {});
      const down = await whileLibvirtdFlaps(() => runCli(['reconcile', empty, '--db', db, ...COMMON]), trouble, note);
      expect(down.code, down.stdout + down.stderr).toBe(0);
      expect(orphans(N.prefix, { domains: [], networks: [], pools: [], volumes: [], files: [] })).toEqual([]);
    });
  }
});
