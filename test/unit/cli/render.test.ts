import { describe, expect, it } from 'vitest';
import { labManifests } from '../../support/manifests.js';
import { useHarness } from '../../support/harness.js';
import { scenario } from '../../support/scenario.js';
import { planToJson, renderPlan, summaryLine } from '../../../src/cli/render.js';

const fx = useHarness({ manifestDir: 'm' });
const plain = { color: false };

describe('plan rendering', () => {
  it('prints creates with manifest field names, a terraform-like summary, then "No changes."', async () => {
    fx.write(labManifests({ prefix: 'r', poolPath: '/srv/r' }));
    const d = await fx.desired();
    const { plan } = await fx.planResult(d);
    const text = renderPlan(plan, plain);
    expect(text).toContain('  + StoragePool/r-pool');
    expect(text).toContain('      + spec.path: "/srv/r"');
    expect(text).toContain('      + spec.capacity: 64MiB');
    expect(text).toContain('      + spec.memory: 64MiB');
    expect(text).not.toContain('capacityBytes');
    expect(text).not.toContain('volName'); // derived values are not listed on create
    expect(text.trim().split('\n').at(-1)).toBe('Plan: 7 to create, 0 to change, 0 to replace, 0 to delete.');
    expect(text).not.toMatch(/\x1b\[/);

    await fx.reconcile(d);
    const again = await fx.planResult(d);
    expect(renderPlan(again.plan, plain)).toBe('No changes. Infrastructure matches the manifests.\n');
  });

  it('shows updates as before → after, replaces with -/+ and the reason, deletes with -', async () => {
    fx.write(labManifests({ prefix: 'r', poolPath: '/srv/r' }));
    await fx.reconcile(await fx.desired());
    fx.write(labManifests({ prefix: 'r', poolPath: '/srv/r', vm1Memory: '128MiB', rootFormat: 'raw', withVm2: false }));
    const { plan } = await fx.planResult(await fx.desired(), { allowDataLoss: true });
    const text = renderPlan(plan, plain);
    expect(text).toContain('      ~ spec.memory: 64MiB → 128MiB');
    expect(text).toMatch(/# Volume\/r-root must be replaced: format is immutable \(qcow2 → raw\)\n-\/\+ Volume\/r-root/);
    expect(text).toContain('  - VirtualMachine/r-vm2');
    expect(summaryLine(plan)).toBe('Plan: 0 to create, 1 to change, 1 to replace, 1 to delete.');
    const json = planToJson(plan) as { summary: Record<string, number>; changes: { name: string; action: string; steps: { op: string }[] }[] };
    expect(json.summary).toMatchObject({ create: 0, change: 1, replace: 1, delete: 1 });
    expect(json.changes.find((c) => c.name === 'r-root')!.steps.map((s) => s.op)).toEqual(['volume.delete', 'volume.create']);
  });

  it('shows what a held change would destroy, what it takes with it, and how to consent', async () => {
    fx.write(labManifests({ prefix: 'r', poolPath: '/srv/r' }));
    await fx.reconcile(await fx.desired());
    fx.write(labManifests({ prefix: 'r', poolPath: '/srv/r', baseCapacity: '32MiB' }));
    const { plan } = await fx.planResult(await fx.desired());
    const text = renderPlan(plan, plain);
    expect(text).toContain('      ! data loss: Volume/r-base file /srv/r/r-base.qcow2 (64MiB): backs Volume/r-root (persistent definition, declared config)\n      ! held: needs --allow-data-loss');
    expect(text).toContain('      ! data loss: Volume/r-root file /srv/r/r-root.qcow2 (64MiB): attached to VirtualMachine/r-vm1 (live definition, persistent definition, declared config)');
    expect(text).toMatch(/# Volume\/r-root must be replaced: its backing volume Volume\/r-base is replaced: recreated on the new one\n-\/\+ Volume\/r-root/);
    expect(text).toContain('  ~ VirtualMachine/r-vm1\n      ! held: depends on Volume/r-root, which is held');
    expect(text).toContain('3 change(s) held: 2 would destroy data (marked "data loss"), the others depend on them. None of their steps run.\n' +
      'To consent to the data loss, run again with --allow-data-loss.');
    expect(summaryLine(plan)).toBe('Plan: 0 to create, 1 to change, 2 to replace, 0 to delete. 3 held (data loss; needs --allow-data-loss).');
    const json = planToJson(plan) as { held: Record<string, string>; changes: { name: string; held: string | null; dataLoss: { why: string[] }[] }[] };
    expect(Object.keys(json.held).sort()).toEqual(['VirtualMachine/r-vm1', 'Volume/r-base', 'Volume/r-root']);
    expect(json.changes.find((c) => c.name === 'r-base')!.dataLoss[0]!.why).toEqual(['backs Volume/r-root (persistent definition, declared config)']);

    const consented = renderPlan((await fx.planResult(await fx.desired(), { allowDataLoss: true })).plan, plain);
    expect(consented).toContain('      ! data loss [consented: --allow-data-loss]: Volume/r-base file /srv/r/r-base.qcow2 (64MiB): backs Volume/r-root (persistent definition, declared config)');
    expect(consented).not.toMatch(/held/);
  });

  it('shows a release (deletionPolicy: Retain) as such, not as a delete', async () => {
    const files = labManifests({ prefix: 'r', poolPath: '/srv/r' });
    fx.write({
      ...files, ...scenario().in('keep.yaml').volume('r-keep', { pool: 'r-pool', capacity: '1MiB' }, { deletionPolicy: 'Retain' }).files(),
    });
    await fx.reconcile(await fx.desired());
    fx.write(files);
    const { plan } = await fx.planResult(await fx.desired());
    const text = renderPlan(plan, plain);
    expect(text).toContain('  # Volume/r-keep will be released (deletionPolicy: Retain): file /srv/r/r-keep.qcow2 kept\n  - Volume/r-keep\n');
    expect(text).toContain('note: nothing is deleted; virtform forgets it (a manifest with metadata.adopt: true takes it back)');
    expect(summaryLine(plan)).toBe('Plan: 0 to create, 0 to change, 0 to replace, 0 to delete, 1 to release.');
  });
});
