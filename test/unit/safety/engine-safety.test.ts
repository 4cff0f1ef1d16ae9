/** The mass-deletion brake, metadata.reconcile: disabled and the suspend switch, in the engine (FakeHost, real SQLite). */
import { describe, expect, it } from 'vitest';
import { useHarness, type RunOptions } from '../../support/harness.js';
import { scenario, type Manifests } from '../../support/scenario.js';
import { planOnly, reconcile } from '../../../src/reconcile/engine.js';
import { observe } from '../../../src/reconcile/observe.js';
import { defaultMaxDeletions } from '../../../src/reconcile/safety.js';
import { renderPlan } from '../../../src/cli/render.js';

const P = 'vftest-safety-u';
const fx = useHarness({ manifestDir: 'm' });

/** A pool with `volumes`; with `vm`, a network and a running VM on it with `disks` (`network`: the network alone). */
function manifests(volumes: string[], opts: { disabled?: string[]; vm?: boolean; vmDisabled?: boolean; disks?: string[]; network?: boolean; format?: string } = {}) {
  const meta = (name: string) => (opts.disabled?.includes(name) ? 'disabled' as const : undefined);
  const s = scenario().pool(`${P}-pool`, { path: `/srv/pools/${P}` }, meta(`${P}-pool`));
  for (const v of volumes) s.volume(v, { format: opts.format }, meta(v));
  if (opts.vm || opts.network) s.network(`${P}-net`, { cidr: '10.250.9.0/24' });
  if (opts.vm) s.vm(`${P}-vm`, { state: 'running', disks: opts.disks?.map((volume) => ({ volume })), nics: [{ network: `${P}-net` }] }, opts.vmDisabled ? 'disabled' : undefined);
  return s;
}

const vols = (n: number): string[] => Array.from({ length: n }, (_, i) => `${P}-v${i}`);
const run = async (files: Manifests, extra: RunOptions = {}) => fx.reconcile(files, extra);

describe('mass-deletion brake', () => {
  it('default limit is max(5, ceil(10% of owned))', () => {
    expect(defaultMaxDeletions(0)).toBe(5);
    expect(defaultMaxDeletions(50)).toBe(5);
    expect(defaultMaxDeletions(51)).toBe(6);
    expect(defaultMaxDeletions(1000)).toBe(100);
  });

  it('refuses a plan deleting more than the default, deleting nothing; --max-deletions all lets it through', async () => {
    expect((await run(manifests(vols(8)))).outcome).toBe('succeeded');
    const braked = await run(manifests(vols(2)));
    expect(braked.outcome).toBe('braked');
    expect(braked.mutations).toBe(0);
    expect(braked.plan.brake).toMatchObject({ braked: true, max: 5, source: 'default', owned: 9 });
    expect(braked.plan.brake!.deletions).toEqual(vols(8).slice(2).map((v) => `Volume/${v}`));
    expect(fx.host.volumes.get(`${P}-pool`)!.size).toBe(8);
    const text = renderPlan(braked.plan, { color: false });
    expect(text).toContain('! braked: this plan deletes 6 resources');
    expect(text).toContain(`    - Volume/${P}-v7`);
    // a limit high enough, or all
    expect((await run(manifests(vols(2)), { maxDeletions: 5, dryRun: true })).plan.brake!.braked).toBe(true);
    expect((await run(manifests(vols(2)), { maxDeletions: 6, dryRun: true })).plan.brake!.braked).toBe(false);
    const through = await run(manifests(vols(2)), { maxDeletions: 'all' });
    expect(through.outcome).toBe('succeeded');
    expect(fx.host.volumes.get(`${P}-pool`)!.size).toBe(2);
  });

  it('counts replaces as deletions; an empty desired state (--allow-empty) is braked too', async () => {
    await run(manifests(vols(7)));
    const empty = await fx.desired({});
    const dry = await reconcile({ host: fx.host, store: fx.store, desired: empty, dryRun: true });
    expect(dry.plan.brake).toMatchObject({ braked: true, source: 'default', max: 5 });
    expect(dry.plan.brake!.deletions).toHaveLength(8);
    expect((await reconcile({ host: fx.host, store: fx.store, desired: empty, maxDeletions: 3 })).outcome).toBe('braked');
    expect(fx.host.volumes.get(`${P}-pool`)!.size).toBe(7);
    // replace: format change of 6 volumes
    const r = await run(manifests(vols(7), { format: 'raw' }), { dryRun: true });
    expect(r.plan.summary.replace).toBe(7);
    expect(r.plan.brake).toMatchObject({ braked: true });
  });
});

describe('the data rule costs a run that destroys nothing no host call', () => {
  it('a no-op plan makes exactly the calls of observe; a plan deleting a volume reads the host-wide references once', async () => {
    await run(manifests(vols(2), { vm: true }));
    const desired = await fx.desired();
    let before = fx.host.calls.length;
    await observe(fx.host, fx.store, desired);
    const observeOnly = fx.host.calls.slice(before);
    before = fx.host.calls.length;
    const { plan } = await planOnly(fx.host, fx.store, desired);
    expect(plan.noop).toBe(true);
    expect(fx.host.calls.slice(before)).toEqual(observeOnly);
    // One volume removed: its deletion asks for the running domains' live definitions.
    fx.write(manifests(vols(1), { vm: true }));
    before = fx.host.calls.length;
    const del = await planOnly(fx.host, fx.store, await fx.desired());
    expect(del.plan.changes.map((c) => `${c.key}:${c.action}`)).toEqual([`Volume/${P}-v1:delete`]);
    expect(fx.host.calls.slice(before).filter((c) => c.startsWith('getRunningDomain'))).toEqual([`getRunningDomain:${P}-vm`]);
  });

  it('a volume a VM used stays data after the VM is gone (recorded reference); deleted with consent, its references go', async () => {
    await run(manifests(vols(2), { vm: true, disks: [`${P}-v1`] }));
    // The VM goes first (its disk stays declared), then the disk.
    const noVm = manifests(vols(2));
    expect((await run(noVm)).outcome).toBe('succeeded');
    expect(fx.host.domains.has(`${P}-vm`)).toBe(false);
    const held = await run(manifests(vols(1)));
    expect(held.outcome).toBe('held');
    expect(held.plan.held.get(`Volume/${P}-v1`)).toMatch(new RegExp(`attached to VirtualMachine/${P}-vm \\(recorded reference\\)$`));
    expect(fx.host.volumes.get(`${P}-pool`)!.has(`${P}-v1.qcow2`)).toBe(true);
    expect((await fx.store.references.list([`/srv/pools/${P}/${P}-v1.qcow2`])).map((r) => `${r.by} ${r.role} ${r.source} ${r.managed}`))
      .toEqual([`VirtualMachine/${P}-vm disk persistent definition true`]);
    expect((await run(manifests(vols(1)), { allowDataLoss: true })).outcome).toBe('succeeded');
    expect(await fx.store.references.list([`/srv/pools/${P}/${P}-v1.qcow2`])).toEqual([]);
    // A new volume at the same path starts pristine.
    await run(manifests(vols(2)));
    expect((await run(manifests(vols(1)))).outcome).toBe('succeeded');
  });
});

describe('metadata.reconcile: disabled', () => {
  it('leaves the resource alone, shows it as suspended, and a removed manifest releases it (object kept)', async () => {
    await run(manifests(vols(2), { vm: true }));
    fx.host.domains.get(`${P}-vm`)!.active = false; // destroyed outside virtform
    const disabled = await run(manifests(vols(2), { vm: true, vmDisabled: true }));
    expect(disabled.plan.noop).toBe(true);
    expect([...disabled.plan.suspended.keys()]).toEqual([`VirtualMachine/${P}-vm`]);
    expect(renderPlan(disabled.plan, { color: false })).toContain(`suspended: VirtualMachine/${P}-vm (metadata.reconcile: disabled)`);
    expect(fx.host.domains.get(`${P}-vm`)!.active).toBe(false);
    expect((await fx.store.resources.get('VirtualMachine', `${P}-vm`))!.details.facts).toMatchObject({ reconcileDisabled: true });

    // Manifest removed while disabled: released, not deleted.
    const released = await run(manifests(vols(2), { network: true }));
    const c = released.plan.changes.find((x) => x.key === `VirtualMachine/${P}-vm`)!;
    expect(c.release?.policy).toBe('Suspended');
    expect(c.steps).toEqual([{ op: 'record.forget' }]);
    expect(renderPlan(released.plan, { color: false })).toContain('will be released (its manifest was removed while metadata.reconcile: disabled)');
    expect(released.outcome).toBe('succeeded');
    expect(fx.host.domains.has(`${P}-vm`)).toBe(true);
    expect(await fx.store.resources.get('VirtualMachine', `${P}-vm`)).toBeUndefined();
  });

  it('enabled again: reconciled as usual and the recorded mark is cleared', async () => {
    await run(manifests(vols(1), { vm: true }));
    await run(manifests(vols(1), { vm: true, vmDisabled: true }));
    fx.host.domains.get(`${P}-vm`)!.active = false;
    const again = await run(manifests(vols(1), { vm: true }));
    expect(again.outcome).toBe('succeeded');
    expect(fx.host.domains.get(`${P}-vm`)!.active).toBe(true);
    expect(((await fx.store.resources.get("VirtualMachine", `${P}-vm`))!.details.facts as Record<string, unknown> | undefined)?.reconcileDisabled).toBeUndefined();
  });
});

describe('metadata.reconcile: disabled on something that does not exist', () => {
  it('is not created, and what needs it is blocked with the reason (nothing half-built)', async () => {
    const r = await run(manifests(vols(1), { disabled: [`${P}-pool`] }));
    expect(r.plan.suspended.has(`StoragePool/${P}-pool`)).toBe(true);
    expect(r.plan.blocked.get(`Volume/${P}-v0`)).toBe(`depends on StoragePool/${P}-pool, which is suspended (metadata.reconcile: disabled) and does not exist`);
    expect(fx.host.pools.size).toBe(0);
    expect(r.outcome).toBe('failed');
  });
});

describe('virtform suspend (the DB switch)', () => {
  it('plans but applies nothing while suspended; ignoreSuspend applies; resume continues', async () => {
    await run(manifests(vols(1)));
    const { suspension, already } = await fx.store.controls.suspend({ by: 'tester@host (pid 1)', reason: 'maintenance' });
    expect(already).toBe(false);
    expect((await fx.store.controls.suspend({ by: 'other' })).already).toBe(true);
    const paused = await run(manifests(vols(3)));
    expect(paused.outcome).toBe('suspended');
    expect(paused.suspension).toEqual(suspension);
    expect(paused.plan.summary.create).toBe(2);
    expect(fx.host.volumes.get(`${P}-pool`)!.size).toBe(1);
    const dry = await run(manifests(vols(3)), { dryRun: true });
    expect(dry.outcome).toBe('planned');
    expect(dry.suspension?.by).toBe('tester@host (pid 1)');
    expect((await run(manifests(vols(2)), { ignoreSuspend: true })).outcome).toBe('succeeded');
    expect((await fx.store.controls.resume())?.reason).toBe('maintenance');
    expect(await fx.store.controls.resume()).toBeUndefined();
    expect((await run(manifests(vols(3)))).outcome).toBe('succeeded');
    expect(fx.host.volumes.get(`${P}-pool`)!.size).toBe(3);
  });
});
