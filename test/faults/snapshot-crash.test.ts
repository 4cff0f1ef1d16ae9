/**
 * Snapshots in the crash matrix (issue 24): the CLI is SIGKILLed at every journal boundary (after a
 * step is journaled, and after its libvirt call before its result is recorded) of
 *   - an apply from nothing of a pool, a qcow2 volume, a VM and a Snapshot of it (the snapshot's
 *     create among the others),
 *   - an apply of a VM change while it has a snapshot (the snapshot survives),
 *   - the teardown of all of it (the snapshot's delete among the others, with --allow-data-loss),
 *   - `virtform snapshot revert` (its two boundaries: journaled, reverted),
 * and each time a rerun finishes: exit 0, then "No changes.", no open journal entry, no orphan, the
 * snapshot on the host exactly once (or gone after the teardown) and recorded, and after a revert
 * the disk as the snapshot saved it. Everything is named `vftest-snapcrash-*`. Real libvirtd.
 */
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { openJournal, orphans, runCli, TEST_POOL_ROOT, type Declared } from '../support/real-host.js';
import { writeManifests } from '../support/manifests.js';
import { scenario } from '../support/scenario.js';
import { useSuite } from '../support/suite.js';
import { tryVirsh } from '../support/virsh.js';

const N = useSuite('snapcrash');
const P = N.base;
const POOL_PATH = `${TEST_POOL_ROOT}/${P}-pool`;
const VM = `${P}-vm`;
const SNAP = `${P}-snap`;
const ROOT_FILE = `${POOL_PATH}/${P}-root.qcow2`;

function files(o: { snapshot?: boolean; memory?: string } = {}): Record<string, string> {
  const s = scenario().pool(`${P}-pool`, { path: POOL_PATH })
    .volume(`${P}-root`, { capacity: '16MiB', format: 'qcow2' })
    .vm(VM, { memory: o.memory ?? '64MiB', state: 'stopped', domainType: 'qemu', disks: [{ volume: `${P}-root`, boot: 1 }] });
  if (o.snapshot !== false) s.manifest('Snapshot', SNAP, { vm: VM, description: 'crash matrix', memory: false });
  return s.files();
}
const ALL: Declared = { domains: [VM], networks: [], pools: [`${P}-pool`], volumes: [`${P}-pool/${P}-root.qcow2`], files: [ROOT_FILE] };
const NOTHING: Declared = { domains: [], networks: [], pools: [], volumes: [], files: [] };
const TEARDOWN = ['--allow-empty', '--allow-data-loss', '--max-deletions', 'all'];

const snapshotsOnHost = (): string[] => tryVirsh('snapshot-list', VM, '--name').split('\n').map((x) => x.trim()).filter(Boolean);
const qcowSnapshots = (): string[] => {
  const j = JSON.parse(execFileSync('qemu-img', ['info', '-U', '--output=json', ROOT_FILE], { encoding: 'utf8' })) as { snapshots?: { name: string }[] };
  return (j.snapshots ?? []).map((s) => s.name);
};

async function steps(dir: string, db: string, extra: string[] = []): Promise<number> {
  const r = await runCli(['reconcile', dir, '--db', db, '--dry-run', '--json', ...extra]);
  expect(r.code, r.stderr).toBe(0);
  return (JSON.parse(r.stdout) as { plan: { steps: unknown[] } }).plan.steps.length;
}

async function crash(dir: string, db: string, k: number, extra: string[] = []): Promise<void> {
  const r = await runCli(['reconcile', dir, '--db', db, '--shutdown-timeout', '0', ...extra], { VIRTFORM_TEST_CRASH_AT: String(k) });
  expect(r.signal, `crash at ${k}: ${r.stdout}\n${r.stderr}`).toBe('SIGKILL');
}

/** Rerun to convergence, then: "No changes.", no open journal entry, no orphan. */
async function converge(label: string, dir: string, db: string, want: Declared, extra: string[] = []): Promise<void> {
  const r = await runCli(['reconcile', dir, '--db', db, '--shutdown-timeout', '0', ...extra]);
  expect(r.code, `${label}: ${r.stdout}\n${r.stderr}`).toBe(0);
  const again = await runCli(['reconcile', dir, '--db', db, '--dry-run', '--detailed-exitcode', ...extra]);
  expect(again.code, `${label}: ${again.stdout}\n${again.stderr}`).toBe(0);
  expect(openJournal(db), label).toEqual([]);
  expect(orphans(N.prefix, want), label).toEqual([]);
}

/** The snapshot is on the host once (libvirt and the qcow2) and recorded. */
async function snapshotThere(label: string, db: string): Promise<void> {
  expect(snapshotsOnHost(), label).toEqual([SNAP]);
  expect(qcowSnapshots(), label).toEqual([SNAP]);
  const list = await runCli(['snapshot', 'list', '--db', db, '--json']);
  expect((JSON.parse(list.stdout) as { snapshots: { name: string; onHost: string }[] }).snapshots, label).toEqual([expect.objectContaining({ name: SNAP, onHost: 'present' })]);
}

describe('SIGKILL at every journal boundary with a Snapshot', () => {
  it('apply (create among the others), a VM change with a snapshot, teardown (delete among the others): every rerun finishes', async () => {
    const full = writeManifests(join(N.work, 'full'), files());
    const changed = writeManifests(join(N.work, 'changed'), files({ memory: '80MiB' }));
    const empty = writeManifests(join(N.work, 'empty'), {});
    const applyBoundaries = (await steps(full, join(N.work, 'probe.db'))) * 2;
    expect(applyBoundaries).toBe(8); // pool, volume, domain, snapshot
    const teardownBoundaries = 8; // snapshot, domain, volume, pool
    const t0 = Date.now();
    for (let k = 1; k <= applyBoundaries; k += 1) {
      const db = join(N.work, `round-${k}.db`);
      expect(orphans(N.prefix, NOTHING), `before round ${k}`).toEqual([]);
      await crash(full, db, k);
      await converge(`round ${k} apply`, full, db, ALL);
      await snapshotThere(`round ${k} apply`, db);

      // A change of the VM (redefine) crashed at its boundaries: the snapshot stays.
      const c = ((k - 1) % 2) + 1;
      await crash(changed, db, c);
      await converge(`round ${k} change ${c}`, changed, db, ALL);
      await snapshotThere(`round ${k} change ${c}`, db);

      const t = ((k - 1) % teardownBoundaries) + 1;
      await crash(empty, db, t, TEARDOWN);
      await converge(`round ${k} teardown ${t}`, empty, db, NOTHING, TEARDOWN);
      expect(tryVirsh('list', '--all', '--name').split('\n').filter((x) => x.startsWith(P)), `round ${k} teardown ${t}`).toEqual([]);
    }
    // eslint-disable-next-line no-console
    console.log(`[snapshot-crash] ${applyBoundaries} rounds (apply, change, teardown) in ${Math.round((Date.now() - t0) / 1000)} s`);
  }, 1_200_000);

  it('snapshot revert killed after it is journaled, and after the revert: running it again finishes, the disk is as saved', async () => {
    for (const k of [1, 2]) {
      const db = join(N.work, `revert-${k}.db`);
      const full = writeManifests(join(N.work, `revert-${k}`), files());
      await converge(`revert ${k} setup`, full, db, ALL);
      execFileSync('qemu-io', ['-f', 'qcow2', '-c', 'write -P 0xcd 0 64k', ROOT_FILE]);
      const killed = await runCli(['snapshot', 'revert', SNAP, '--allow-data-loss', '--db', db], { VIRTFORM_TEST_CRASH_AT: String(k) });
      expect(killed.signal, `revert crash ${k}: ${killed.stdout}\n${killed.stderr}`).toBe('SIGKILL');
      expect(openJournal(db).map((j) => j.action), `revert crash ${k}`).toEqual(['snapshot.revert']);
      const again = await runCli(['snapshot', 'revert', SNAP, '--allow-data-loss', '--db', db]);
      expect(again.code, `revert ${k} rerun: ${again.stdout}\n${again.stderr}`).toBe(0);
      expect(openJournal(db), `revert ${k} rerun`).toEqual([]);
      const read = (pattern: string): boolean => {
        try {
          execFileSync('qemu-io', ['-f', 'qcow2', '-c', `read -P ${pattern} 0 64k`, ROOT_FILE], { stdio: 'ignore' });
          return true;
        } catch { // safe-catch: qemu-io exits non-zero when the pattern does not match: that is the answer
          return false;
        }
      };
      expect(read('0xcd'), `revert ${k}: the marker is gone`).toBe(false);
      expect(read('0'), `revert ${k}: the disk is as saved`).toBe(true);
      await converge(`revert ${k} after`, full, db, ALL);
      await snapshotThere(`revert ${k} after`, db);
      await converge(`revert ${k} teardown`, writeManifests(join(N.work, 'empty'), {}), db, NOTHING, TEARDOWN);
    }
  }, 600_000);
});
