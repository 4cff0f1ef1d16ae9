/**
 * One bad object never stops the run (issue 18, finding 3), on the in-memory host: a definition
 * virtform cannot parse makes that resource a conflict (Stalled) and nothing else; a value it does
 * not model (a network forward mode `route`) is drift corrected to the manifest.
 */
import { beforeEach, describe, expect, it } from 'vitest';
import { labManifests } from '../../support/manifests.js';
import { useHarness } from '../../support/harness.js';
import { scenario } from '../../support/scenario.js';

const P = 'vftest-eng';

// the lab applied before each test
const fx = useHarness({ manifests: labManifests({ poolPath: '/srv/pools/eng' }) });
const run = async (dryRun = false) => fx.reconcile(undefined, { dryRun });

beforeEach(async () => {
  expect((await run()).outcome).toBe('succeeded');
});

describe('one bad object never stops the run', () => {
  it('a VM whose definition cannot be parsed is a conflict of its own; a stopped VM elsewhere is started; the run fails', async () => {
    fx.host.unparsable.set(`${P}-vm2`, "domain vcpu: expected an integer, got 'x'");
    await fx.host.stopDomain(`${P}-vm1`);
    const plan = (await run(true)).plan;
    const bad = plan.changes.find((c) => c.key === `VirtualMachine/${P}-vm2`)!;
    expect(bad.action).toBe('conflict');
    expect(bad.reason).toMatch(/its definition cannot be read: domain vcpu: expected an integer/);
    expect(plan.changes.find((c) => c.key === `VirtualMachine/${P}-vm1`)?.steps.map((s) => s.op)).toContain('vm.start');
    const mutations = fx.host.mutationCount();
    const applied = await run();
    // Partly stalled: everything else converged, the run still says so (exit 1 in the CLI).
    expect(applied.outcome).toBe('failed');
    expect(applied.plan.blocked.get(`VirtualMachine/${P}-vm2`)).toMatch(/cannot be read/);
    expect(fx.host.domains.get(`${P}-vm1`)!.active).toBe(true);
    expect(fx.host.mutationCount()).toBeGreaterThan(mutations);
    fx.host.unparsable.clear();
    expect((await run(true)).plan.noop).toBe(true);
  });

  it('a VM whose definition cannot be read may use any volume: deleting a blank volume is held as data loss', async () => {
    fx.host.unparsable.set(`${P}-vm2`, 'bad document');
    const files = labManifests({ poolPath: '/srv/pools/eng' });
    // A blank volume, never attached, that the next manifests no longer declare.
    fx.write({ ...files, ...scenario().in('extra.yaml').volume(`${P}-blank`, { pool: `${P}-pool`, capacity: '1MiB' }).files() });
    fx.host.unparsable.clear();
    expect((await run()).outcome).toBe('succeeded');
    fx.write(files);
    fx.host.unparsable.set(`${P}-vm2`, 'bad document');
    const r = await run(true);
    expect(r.plan.held.get(`Volume/${P}-blank`)).toMatch(/attached to VirtualMachine\/vftest-eng-vm2 \(its definition cannot be read/);
    fx.host.unparsable.clear();
    expect((await run(true)).plan.held.size).toBe(0);
  });

  it('a network forward mode virtform does not model is drift, corrected to the declared mode', async () => {
    const net = fx.host.networks.get(`${P}-net`)!;
    net.def = { ...net.def, mode: 'route' as 'nat' };
    const plan = (await run(true)).plan;
    const c = plan.changes.find((x) => x.key === `Network/${P}-net`)!;
    expect(c.drift).toBe(true);
    expect(c.fields).toContainEqual({ field: 'spec.mode', before: 'route', after: 'isolated', drift: true });
    expect((await run()).outcome).toBe('succeeded');
    expect(fx.host.networks.get(`${P}-net`)!.def.mode).toBe('isolated');
    expect((await run(true)).plan.noop).toBe(true);
  });
});
