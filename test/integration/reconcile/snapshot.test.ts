/**
 * kind Snapshot and `virtform snapshot revert|list` on the real libvirtd (issue 24): a disk-only
 * snapshot of a stopped VM, re-run "No changes.", status and `snapshot list` show it with its time,
 * a marker written into the qcow2 (qemu-io, VM stopped) is gone after a revert, which is refused
 * without --allow-data-loss and leaves the definition's difference as drift the next reconcile
 * corrects; a removed manifest is held, then deleted with consent; a raw disk and UEFI are refused
 * at validate. Prints times and the qcow2 sizes before/after (qemu-img info). A memory snapshot of
 * the running tiny guest: test/integration/guest/snapshot-memory.test.ts (make test-e2e).
 * Everything is named `vftest-snapshot-*`.
 */
import { execFileSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { useSuite } from '../../support/suite.js';
import { runCli, startWatch, waitFor } from '../../support/cli.js';
import { scenario } from '../../support/scenario.js';
import { virsh } from '../../support/virsh.js';

const N = useSuite('snapshot');
const P = N.base;
const VM = `${P}-vm`;
const S1 = `${P}-s1`;
const rootPath = (): string => `${N.poolPath()}/${P}-root.qcow2`;

interface Opts { memory?: string; snapshot?: boolean; description?: string }
function manifests(o: Opts = {}) {
  const s = scenario().pool(`${P}-pool`, { path: N.poolPath() })
    .volume(`${P}-root`, { capacity: '16MiB', format: 'qcow2' })
    .vm(VM, { memory: o.memory ?? '64MiB', state: 'stopped', domainType: 'qemu', disks: [{ volume: `${P}-root`, boot: 1 }] });
  if (o.snapshot !== false) s.manifest('Snapshot', S1, { vm: VM, description: o.description ?? 'before the marker', memory: false });
  return s;
}

const qemuImg = (path: string): { virtualSize: number; actualSize: number; snapshots: { name: string; vmStateSize: number }[] } => {
  const j = JSON.parse(execFileSync('qemu-img', ['info', '-U', '--output=json', path], { encoding: 'utf8' })) as {
    'virtual-size': number; 'actual-size': number; snapshots?: { name: string; 'vm-state-size': number }[];
  };
  return { virtualSize: j['virtual-size'], actualSize: j['actual-size'], snapshots: (j.snapshots ?? []).map((s) => ({ name: s.name, vmStateSize: s['vm-state-size'] })) };
};
const qemuIo = (path: string, cmd: string): { ok: boolean; out: string } => {
  try {
    return { ok: true, out: execFileSync('qemu-io', ['-f', 'qcow2', '-c', cmd, path], { encoding: 'utf8' }) };
  } catch (e) {
    return { ok: false, out: String((e as { stdout?: string }).stdout ?? e) };
  }
};
// eslint-disable-next-line no-console
const report = (line: string): void => console.log(`[snapshot] ${line}`);

describe.sequential('kind Snapshot and snapshot revert on qemu:///system', () => {
  it('takes a disk-only snapshot of a stopped VM once: "No changes." after, listed by status and snapshot list with its time', async () => {
    await N.reconcileOk(manifests({ snapshot: false }));
    const before = qemuImg(rootPath());
    const t0 = Date.now();
    const r = await N.reconcileOk(manifests());
    const ms = Date.now() - t0;
    expect(r.stdout).toMatch(/take snapshot/);
    const after = qemuImg(rootPath());
    expect(after.snapshots.map((s) => s.name)).toEqual([S1]);
    expect(virsh('snapshot-list', VM, '--name').trim()).toBe(S1);
    report(`disk-only create (stopped VM, reconcile run): ${ms} ms; qcow2 ${rootPath()}: actual ${before.actualSize} → ${after.actualSize} bytes, virtual ${after.virtualSize}; snapshots ${JSON.stringify(after.snapshots)}`);

    const again = await N.dryRun();
    expect(again.code, again.stdout + again.stderr).toBe(0);
    expect(again.stdout).toContain('No changes.');

    const status = await N.cli(['status', N.mdir]);
    expect(status.code, status.stdout + status.stderr).toBe(0);
    expect(status.stdout).toMatch(new RegExp(`Snapshot/${S1}\\s+taken\\s+taken\\s+converged \\(taken \\d{4}-\\d\\d-\\d\\dT\\d\\d:\\d\\d:\\d\\dZ\\)`));
    const list = await N.cli(['snapshot', 'list', '--json']);
    expect(list.code, list.stderr).toBe(0);
    const rows = (JSON.parse(list.stdout) as { snapshots: { name: string; vm: string; takenAt: string; holds: string; state: string; onHost: string }[] }).snapshots;
    expect(rows).toEqual([expect.objectContaining({ name: S1, vm: VM, holds: 'disks', state: 'shutoff', onHost: 'present', takenAt: expect.stringMatching(/Z$/) })]);
    const offline = await N.cli(['snapshot', 'list', '--offline', '--json']);
    expect((JSON.parse(offline.stdout) as { snapshots: { name: string; onHost: string }[] }).snapshots).toEqual([expect.objectContaining({ name: S1, onHost: 'unknown' })]);
    const text = await N.cli(['snapshot', 'list']);
    expect(text.stdout).toMatch(new RegExp(`^NAME\\s+VM\\s+TAKEN\\s+HOLDS\\s+VM WAS\\s+ON HOST\\n${S1}\\s+${VM}\\s+\\S+Z\\s+disks\\s+shutoff\\s+present`));
    // A name virtform took no snapshot of: bad input, exit 2, nothing changed.
    const unknown = await N.cli(['snapshot', 'revert', `${P}-nope`, '--allow-data-loss']);
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toMatch(/no Snapshot named .* taken by virtform/);
  }, 120_000);

  it('a changed description is a conflict that leaves the snapshot as taken', async () => {
    N.write(manifests({ description: 'edited' }));
    const r = await N.cli(['reconcile', N.mdir]);
    expect(r.code).not.toBe(0);
    expect(r.stdout + r.stderr).toMatch(/taken once and never changed: spec\.description differs/);
    expect(virsh('snapshot-dumpxml', VM, S1)).toContain('<description>before the marker</description>');
    N.write(manifests());
  }, 60_000);

  it('revert restores the disk (a marker written after is gone): refused without --allow-data-loss, journaled, and the definition the manifest changed since is drift the next reconcile corrects', async () => {
    // The manifest changes the VM after the snapshot: the snapshot's definition (64MiB) is not the manifest's any more.
    await N.reconcileOk(manifests({ memory: '96MiB' }));
    expect(qemuIo(rootPath(), 'write -P 0xab 0 64k').ok).toBe(true);
    expect(qemuIo(rootPath(), 'read -P 0xab 0 64k').ok).toBe(true);

    const refused = await N.cli(['snapshot', 'revert', S1]);
    expect(refused.code).toBe(1);
    expect(refused.stdout).toMatch(/lost: what the VM's disks hold now \(vda /);
    expect(refused.stdout).toMatch(/definition: the snapshot's differs from the current one \(.*(memory|currentMemory).*\): after the revert that is drift/);
    expect(refused.stdout).toMatch(/Nothing was changed \(held: .*--allow-data-loss\)/);
    expect(qemuIo(rootPath(), 'read -P 0xab 0 64k').ok).toBe(true);

    const sizeBefore = qemuImg(rootPath());
    const t0 = Date.now();
    const ok = await N.cli(['snapshot', 'revert', S1, '--allow-data-loss', '--json']);
    const ms = Date.now() - t0;
    expect(ok.code, ok.stdout + ok.stderr).toBe(0);
    const doc = JSON.parse(ok.stdout) as { outcome: string; ms: number; state: string; definitionDrift: string[] };
    expect(doc).toMatchObject({ outcome: 'reverted', state: 'stopped' });
    expect(doc.definitionDrift.length).toBeGreaterThan(0);
    expect(qemuIo(rootPath(), 'read -P 0xab 0 64k').ok).toBe(false);
    expect(qemuIo(rootPath(), 'read -P 0 0 64k').ok).toBe(true);
    report(`disk-only revert (stopped VM): libvirt ${doc.ms} ms, CLI ${ms} ms; qcow2 actual ${sizeBefore.actualSize} → ${qemuImg(rootPath()).actualSize} bytes`);

    // Journaled, as a step is.
    const journal = execFileSync('sqlite3', [N.db, "select action, status from journal where kind = 'Snapshot' order by id"], { encoding: 'utf8' });
    expect(journal).toMatch(/snapshot\.revert\|succeeded/);

    // The manifests rule: the VM's definition is the snapshot's (64MiB) now: drift, corrected by reconcile.
    const drift = await N.dryRun();
    expect(drift.code, drift.stdout + drift.stderr).toBe(3);
    expect(drift.stdout).toMatch(new RegExp(`VirtualMachine/${VM}[\\s\\S]*drift`));
    await N.reconcileOk();
    expect(virsh('dumpxml', '--inactive', VM)).toMatch(/<memory unit='KiB'>98304<\/memory>/);
    const clean = await N.dryRun();
    expect(clean.code, clean.stdout).toBe(0);
  }, 120_000);

  it('while a watcher holds the writer lease the revert is queued and carried out by it (whose next run corrects the drift); --no-queue refuses naming the holder', async () => {
    // A snapshot of the VM as declared now (96MiB), then the manifest grows the VM again: a revert leaves 96MiB, drift from 112MiB.
    await N.reconcileOk(manifests({ memory: '96MiB', snapshot: false }), ['--allow-data-loss']);
    await N.reconcileOk(manifests({ memory: '96MiB' }));
    N.write(manifests({ memory: '112MiB' }));
    await N.reconcileOk();
    expect(qemuIo(rootPath(), 'write -P 0xef 0 64k').ok).toBe(true);
    const w = await startWatch([N.mdir, '--db', N.db, '--resync', '3600', '--debounce', '200']);
    try {
      const refused = await N.cli(['snapshot', 'revert', S1, '--allow-data-loss', '--no-queue']);
      expect(refused.code, refused.stdout + refused.stderr).toBe(1);
      expect(refused.stderr).toMatch(/locked by pid \d+ .*command: virtform watch.*not queued \(--no-queue\): nothing was done/);
      expect(qemuIo(rootPath(), 'read -P 0xef 0 64k').ok).toBe(true);

      const t0 = Date.now();
      const queued = await N.cli(['snapshot', 'revert', S1, '--allow-data-loss', '--queue-timeout', '60']);
      report(`queued revert through the watcher: ${Date.now() - t0} ms (CLI run)`);
      expect(queued.code, queued.stdout + queued.stderr).toBe(0);
      expect(queued.stderr).toMatch(/queued as request \d+/);
      expect(queued.stdout).toMatch(/carried out by the lease holder/);
      expect(queued.stdout).toMatch(/Reverted VirtualMachine\/.* in \d/);
      expect(qemuIo(rootPath(), 'read -P 0xef 0 64k').ok).toBe(false);
      // The revert left the snapshot's definition (96MiB): the watcher's next run defines the manifest's again.
      await waitFor(() => virsh('dumpxml', '--inactive', VM).includes("<memory unit='KiB'>114688</memory>"), 'the watcher corrects the drift', 60_000);
    } finally {
      await w.stop();
    }
    const journal = execFileSync('sqlite3', [N.db, "select count(*) from journal where kind = 'Snapshot' and action = 'snapshot.revert' and status = 'succeeded'"], { encoding: 'utf8' });
    expect(Number(journal.trim())).toBeGreaterThanOrEqual(2);
    N.write(manifests({ memory: '96MiB' }));
    await N.reconcileOk();
  }, 180_000);

  it('a removed manifest is held (HeldForDataLoss), the snapshot kept; --allow-data-loss deletes it', async () => {
    N.write(manifests({ memory: '96MiB', snapshot: false }));
    const held = await N.cli(['reconcile', N.mdir]);
    expect(held.code).toBe(1);
    expect(held.stdout).toMatch(new RegExp(`Snapshot/${S1}[\\s\\S]*snapshot of VirtualMachine/${VM} taken`));
    expect(virsh('snapshot-list', VM, '--name').trim()).toBe(S1);
    const status = await N.cli(['status', N.mdir, '--json']);
    const row = (JSON.parse(status.stdout) as { resources: { kind: string; name: string; conditions: { type: string; status: string }[] }[] })
      .resources.find((x) => x.kind === 'Snapshot')!;
    expect(row.conditions.find((c) => c.type === 'HeldForDataLoss')?.status).toBe('True');

    await N.reconcileOk(undefined, ['--allow-data-loss']);
    expect(virsh('snapshot-list', VM, '--name').trim()).toBe('');
    expect(qemuImg(rootPath()).snapshots).toEqual([]);
  }, 120_000);

  it('validate refuses a snapshot of a VM with a raw writable disk, of a UEFI VM and of an unknown VM, at file:line:col', async () => {
    const s = scenario().pool(`${P}-pool`, { path: N.poolPath() })
      .volume(`${P}-raw`, { capacity: '16MiB', format: 'raw' }).volume(`${P}-q`, { capacity: '16MiB', format: 'qcow2' })
      .vm(`${P}-rawvm`, { disks: [{ volume: `${P}-raw` }] })
      .vm(`${P}-efi`, { boot: { firmware: 'uefi' }, disks: [{ volume: `${P}-q` }] })
      .manifest('Snapshot', `${P}-a`, { vm: `${P}-rawvm` })
      .manifest('Snapshot', `${P}-b`, { vm: `${P}-efi` })
      .manifest('Snapshot', `${P}-c`, { vm: `${P}-none` });
    const dir = `${N.work}/invalid`;
    s.write(dir);
    const r = await runCli(['validate', dir]);
    expect(r.code).toBe(2);
    expect(r.stderr + r.stdout).toMatch(new RegExp(`manifests\\.yaml:\\d+:\\d+: Snapshot/${P}-a: spec\\.vm: VirtualMachine "${P}-rawvm" has a raw writable disk`));
    expect(r.stderr + r.stdout).toMatch(new RegExp(`Snapshot/${P}-b: spec\\.vm: VirtualMachine "${P}-efi" boots UEFI firmware`));
    expect(r.stderr + r.stdout).toMatch(new RegExp(`Snapshot/${P}-c: spec\\.vm: VirtualMachine "${P}-none" is not defined`));
    const rec = await N.cli(['reconcile', dir]);
    expect(rec.code).toBe(2);
  }, 60_000);

});
