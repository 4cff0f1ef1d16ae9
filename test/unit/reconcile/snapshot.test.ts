/**
 * The Snapshot kind (issue 24) on the FakeHost: taken once after its VM, "No changes." after, a
 * changed spec is a conflict that touches nothing, a removed manifest is held as data (and deleted
 * with consent), a VM with snapshots is not deleted without consent, the VM's state decides between
 * memory and disk-only, and a snapshot deleted outside virtform is drift.
 */
import { describe, expect, it } from 'vitest';
import { scenario } from '../../support/scenario.js';
import { useHarness } from '../../support/harness.js';
import { loadManifests, formatManifestError } from '../../../src/manifest/index.js';

const base = (state: 'running' | 'stopped' = 'stopped') => scenario().pool('p').volume('root', { capacity: '16MiB', format: 'qcow2' })
  .vm('vm1', { state, disks: [{ volume: 'root', boot: 1 }] });
const snap = (name: string, spec: Record<string, unknown>) => ({ apiVersion: 'virtform.dev/v1', kind: 'Snapshot', metadata: { name }, spec });

describe('Snapshot kind (FakeHost)', () => {
  const h = useHarness();

  it('is taken once after its VM, then "No changes."; a changed spec is a conflict that leaves it as taken', async () => {
    const r1 = await h.reconcile(base().doc(snap('s1', { vm: 'vm1', description: 'before' })));
    expect(r1.outcome).toBe('succeeded');
    const create = r1.plan.steps.find((s) => s.op.op === 'snapshot.create')!;
    const define = r1.plan.steps.find((s) => s.op.op === 'vm.define')!;
    expect(create.deps).toContain(define.id);
    const taken = h.host.snapshotList.get('vm1')!;
    expect(taken.map((s) => [s.name, s.description, s.memory])).toEqual([['s1', 'before', 'no']]);
    const rec = await h.store.resources.get({ kind: 'Snapshot', name: 's1', host: 'local' });
    expect(rec?.details.facts).toMatchObject({ vm: 'vm1', creationTime: taken[0]!.creationTime, state: 'shutoff', memory: 'no' });

    expect((await h.plan()).changes).toEqual([]);
    const m0 = h.host.mutationCount();
    const r2 = await h.reconcile(base().doc(snap('s1', { vm: 'vm1', description: 'after' })));
    const c = r2.plan.changes.find((x) => x.key === 'Snapshot/s1')!;
    expect(c.action).toBe('conflict');
    expect(c.reason).toMatch(/taken once and never changed: spec\.description differs/);
    expect(h.host.mutationCount()).toBe(m0);
    expect(h.host.snapshotList.get('vm1')![0]!.description).toBe('before');
  });

  it('a removed manifest is held as data; --allow-data-loss deletes it', async () => {
    await h.reconcile(base().doc(snap('s1', { vm: 'vm1' })));
    const held = await h.reconcile(base());
    expect(held.outcome).toBe('held');
    expect(held.held.get('Snapshot/s1')).toMatch(/snapshot of VirtualMachine\/vm1 taken .* \(disks\)/);
    expect(h.host.snapshotList.get('vm1')).toHaveLength(1);
    const ok = await h.reconcile(base(), { allowDataLoss: true });
    expect(ok.outcome).toBe('succeeded');
    expect(h.host.snapshotList.get('vm1') ?? []).toHaveLength(0);
    expect(await h.store.resources.get({ kind: 'Snapshot', name: 's1', host: 'local' })).toBeUndefined();
  });

  it('a VM with snapshots is not deleted without consent (its snapshots, managed or not, go with it)', async () => {
    await h.reconcile(base().doc(snap('s1', { vm: 'vm1' })));
    const gone = scenario().pool('p').volume('root', { capacity: '16MiB', format: 'qcow2' });
    const held = await h.reconcile(gone);
    expect(held.held.get('Snapshot/s1')).toBeDefined();
    expect(held.held.get('VirtualMachine/vm1')).toMatch(/Snapshot\/s1/);
    expect(h.host.domains.has('vm1')).toBe(true);
    // A snapshot made outside virtform holds the VM too.
    await h.reconcile(base());
    expect(h.host.domains.has('vm1')).toBe(true);
    const bare = await h.reconcile(scenario().pool('p').volume('root', { capacity: '16MiB', format: 'qcow2' }), { allowDataLoss: true });
    expect(bare.outcome).toBe('succeeded');
    expect(h.host.domains.has('vm1')).toBe(false);

    await h.reconcile(base());
    await h.host.createDomainSnapshot({ domain: 'vm1', name: 'by-virsh', memory: false });
    const held2 = await h.reconcile(scenario().pool('p').volume('root', { capacity: '16MiB', format: 'qcow2' }));
    expect(held2.held.get('VirtualMachine/vm1')).toMatch(/has 1 snapshot \(by-virsh\)|has 1 snapshot/);
    expect(h.host.domains.has('vm1')).toBe(true);
  });

  it('memory: false on a running VM, and memory: true on a VM that stays stopped, are conflicts naming why', async () => {
    const r = await h.reconcile(base('running').doc(snap('s1', { vm: 'vm1', memory: false })));
    expect(r.plan.changes.find((c) => c.key === 'Snapshot/s1')?.reason).toMatch(/is running: libvirt takes an internal snapshot of a running VM only with its memory/);
    expect(h.host.snapshotList.get('vm1') ?? []).toHaveLength(0);
    const r2 = await h.reconcile(base('running').doc(snap('s2', { vm: 'vm1', memory: true })));
    expect(r2.outcome).toBe('succeeded');
    expect(h.host.snapshotList.get('vm1')!.map((s) => [s.name, s.memory, s.state])).toEqual([['s2', 'internal', 'running']]);
  });

  it('a VM declared running but stopped now is started before a snapshot with memory is taken', async () => {
    await h.reconcile(base('stopped'));
    const r = await h.reconcile(base('running').doc(snap('s1', { vm: 'vm1', memory: true })));
    expect(r.outcome).toBe('succeeded');
    const start = r.plan.steps.find((s) => s.op.op === 'vm.start')!;
    expect(r.plan.steps.find((s) => s.op.op === 'snapshot.create')!.deps).toContain(start.id);
  });

  it('a snapshot deleted outside virtform is drift: taken again, and the plan says the old one is gone', async () => {
    await h.reconcile(base().doc(snap('s1', { vm: 'vm1' })));
    await h.host.deleteDomainSnapshot('vm1', 's1');
    const p = await h.plan();
    const c = p.changes.find((x) => x.key === 'Snapshot/s1')!;
    expect(c.action).toBe('create');
    expect(c.drift).toBe(true);
    expect(c.notes.join('\n')).toMatch(/is gone: its contents cannot be brought back/);
  });

  it('validate: unknown VM, raw disk, UEFI and memory of a VM declared stopped, each at file:line:col with the reason', async () => {
    const dir = h.write(scenario().pool('p').volume('raw', { format: 'raw' }).volume('q', { format: 'qcow2' })
      .vm('rawvm', { disks: [{ volume: 'raw' }] }).vm('efi', { boot: { firmware: 'uefi' }, disks: [{ volume: 'q' }], state: 'stopped' })
      .doc(snap('a', { vm: 'nope' })).doc(snap('b', { vm: 'rawvm' })).doc(snap('c', { vm: 'efi' })).doc(snap('d', { vm: 'efi', memory: true })));
    const r = await loadManifests(dir);
    expect(r.ok).toBe(false);
    const lines = r.ok ? [] : r.errors.map(formatManifestError);
    expect(lines.find((l) => l.includes('Snapshot/a'))).toMatch(/:\d+:\d+: Snapshot\/a: spec\.vm: VirtualMachine "nope" is not defined/);
    expect(lines.find((l) => l.includes('Snapshot/b'))).toMatch(/spec\.vm: VirtualMachine "rawvm" has a raw writable disk \(volume "raw"/);
    expect(lines.find((l) => l.includes('Snapshot/c'))).toMatch(/boots UEFI firmware .*pflash/);
    expect(lines.find((l) => l.includes('Snapshot/d') && l.includes('spec.memory'))).toMatch(/declared stopped .* no memory to save/);
  });
});
