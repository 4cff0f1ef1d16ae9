/** The mass-deletion brake, metadata.reconcile: disabled and the suspend switch, in the engine (FakeHost, real SQLite). */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { join } from 'node:path';
import { rmSync } from 'node:fs';
import { FakeHost } from '../../support/fake-host.js';
import { desiredFrom, tempDir, writeManifests } from '../../support/manifests.js';
import { openStateStore, type StateStore } from '../../../src/state/index.js';
import { planOnly, reconcile } from '../../../src/reconcile/engine.js';
import { observe } from '../../../src/reconcile/observe.js';
import { defaultMaxDeletions } from '../../../src/reconcile/safety.js';
import { renderPlan } from '../../../src/cli/render.js';
import { resourceRef, LOCAL_HOST } from '../../../src/model/kinds.js';

const P = 'vftest-safety-u';
const FAST_RETRY = { maxAttempts: 2, baseDelayMs: 1, maxDelayMs: 2 };
let work: string;
let mdir: string;
let host: FakeHost;
let store: StateStore;

function manifests(volumes: string[], opts: { disabled?: string[]; vm?: boolean; vmDisabled?: boolean } = {}): Record<string, string> {
  const meta = (name: string): string => `{name: ${name}${opts.disabled?.includes(name) ? ', reconcile: disabled' : ''}}`;
  const docs = [`apiVersion: virtform.dev/v1
kind: StoragePool
metadata: ${meta(`${P}-pool`)}
spec: {path: /srv/pools/${P}}`];
  for (const v of volumes) {
    docs.push(`apiVersion: virtform.dev/v1
kind: Volume
metadata: ${meta(v)}
spec: {pool: ${P}-pool, capacity: 16MiB}`);
  }
  if (opts.vm) {
    docs.push(`apiVersion: virtform.dev/v1
kind: Network
metadata: {name: ${P}-net}
spec: {mode: isolated, cidr: 10.250.9.0/24}
---
apiVersion: virtform.dev/v1
kind: VirtualMachine
metadata: {name: ${P}-vm${opts.vmDisabled ? ', reconcile: disabled' : ''}}
spec: {vcpus: 1, memory: 64MiB, state: running, nics: [{network: ${P}-net}]}`);
  }
  return { 'all.yaml': docs.join('\n---\n') };
}

const vols = (n: number): string[] => Array.from({ length: n }, (_, i) => `${P}-v${i}`);

async function run(files: Record<string, string>, extra: Partial<Parameters<typeof reconcile>[0]> = {}) {
  writeManifests(mdir, files);
  return reconcile({ host, store, desired: await desiredFrom(mdir), retry: FAST_RETRY, gracefulStop: false, ...extra });
}

beforeEach(async () => {
  work = tempDir();
  mdir = join(work, 'm');
  host = new FakeHost();
  store = await openStateStore(join(work, 'state.db'));
});
afterEach(async () => {
  await store.close();
  rmSync(work, { recursive: true, force: true });
});

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
    expect(host.volumes.get(`${P}-pool`)!.size).toBe(8);
    const text = renderPlan(braked.plan, { color: false });
    expect(text).toContain('! braked: this plan deletes 6 resources');
    expect(text).toContain(`    - Volume/${P}-v7`);
    // a limit high enough, or all
    expect((await run(manifests(vols(2)), { maxDeletions: 5, dryRun: true })).plan.brake!.braked).toBe(true);
    expect((await run(manifests(vols(2)), { maxDeletions: 6, dryRun: true })).plan.brake!.braked).toBe(false);
    const through = await run(manifests(vols(2)), { maxDeletions: 'all' });
    expect(through.outcome).toBe('succeeded');
    expect(host.volumes.get(`${P}-pool`)!.size).toBe(2);
  });

  it('counts replaces as deletions; an empty desired state (--allow-empty) is braked too', async () => {
    await run(manifests(vols(7)));
    writeManifests(mdir, {});
    const empty = await desiredFrom(mdir);
    const dry = await reconcile({ host, store, desired: empty, dryRun: true });
    expect(dry.plan.brake).toMatchObject({ braked: true, source: 'default', max: 5 });
    expect(dry.plan.brake!.deletions).toHaveLength(8);
    expect((await reconcile({ host, store, desired: empty, maxDeletions: 3 })).outcome).toBe('braked');
    expect(host.volumes.get(`${P}-pool`)!.size).toBe(7);
    // replace: format change of 6 volumes
    const raw = manifests(vols(7))['all.yaml']!.replace(/capacity: 16MiB}/g, 'capacity: 16MiB, format: raw}');
    const r = await run({ 'all.yaml': raw }, { dryRun: true });
    expect(r.plan.summary.replace).toBe(7);
    expect(r.plan.brake).toMatchObject({ braked: true });
  });
});

describe('the data rule costs a run that destroys nothing no host call', () => {
  it('a no-op plan makes exactly the calls of observe; a plan deleting a volume reads the host-wide references once', async () => {
    await run(manifests(vols(2), { vm: true }));
    const desired = await desiredFrom(mdir);
    let before = host.calls.length;
    await observe(host, store, desired);
    const observeOnly = host.calls.slice(before);
    before = host.calls.length;
    const { plan } = await planOnly(host, store, desired);
    expect(plan.noop).toBe(true);
    expect(host.calls.slice(before)).toEqual(observeOnly);
    // One volume removed: its deletion asks for the running domains' live definitions.
    writeManifests(mdir, manifests(vols(1), { vm: true }));
    before = host.calls.length;
    const del = await planOnly(host, store, await desiredFrom(mdir));
    expect(del.plan.changes.map((c) => `${c.key}:${c.action}`)).toEqual([`Volume/${P}-v1:delete`]);
    expect(host.calls.slice(before).filter((c) => c.startsWith('getRunningDomain'))).toEqual([`getRunningDomain:${P}-vm`]);
  });

  it('a volume a VM used stays data after the VM is gone (recorded reference); deleted with consent, its references go', async () => {
    const files = manifests(vols(2), { vm: true });
    files['all.yaml'] = files['all.yaml']!.replace('nics: [{network:', `disks: [{volume: ${P}-v1}], nics: [{network:`);
    await run(files);
    // The VM goes first (its disk stays declared), then the disk.
    const noVm = manifests(vols(2));
    expect((await run(noVm)).outcome).toBe('succeeded');
    expect(host.domains.has(`${P}-vm`)).toBe(false);
    const held = await run(manifests(vols(1)));
    expect(held.outcome).toBe('held');
    expect(held.plan.held.get(`Volume/${P}-v1`)).toMatch(new RegExp(`attached to VirtualMachine/${P}-vm \\(recorded reference\\)$`));
    expect(host.volumes.get(`${P}-pool`)!.has(`${P}-v1.qcow2`)).toBe(true);
    expect((await store.references.list(LOCAL_HOST, [`/srv/pools/${P}/${P}-v1.qcow2`])).map((r) => `${r.by} ${r.role} ${r.source} ${r.managed}`))
      .toEqual([`VirtualMachine/${P}-vm disk persistent definition true`]);
    expect((await run(manifests(vols(1)), { allowDataLoss: true })).outcome).toBe('succeeded');
    expect(await store.references.list(LOCAL_HOST, [`/srv/pools/${P}/${P}-v1.qcow2`])).toEqual([]);
    // A new volume at the same path starts pristine.
    await run(manifests(vols(2)));
    expect((await run(manifests(vols(1)))).outcome).toBe('succeeded');
  });
});

describe('metadata.reconcile: disabled', () => {
  it('leaves the resource alone, shows it as suspended, and a removed manifest releases it (object kept)', async () => {
    await run(manifests(vols(2), { vm: true }));
    host.domains.get(`${P}-vm`)!.active = false; // destroyed outside virtform
    const disabled = await run(manifests(vols(2), { vm: true, vmDisabled: true }));
    expect(disabled.plan.noop).toBe(true);
    expect([...disabled.plan.suspended.keys()]).toEqual([`VirtualMachine/${P}-vm`]);
    expect(renderPlan(disabled.plan, { color: false })).toContain(`suspended: VirtualMachine/${P}-vm (metadata.reconcile: disabled)`);
    expect(host.domains.get(`${P}-vm`)!.active).toBe(false);
    expect((await store.resources.get(resourceRef('VirtualMachine', `${P}-vm`)))!.details.facts).toMatchObject({ reconcileDisabled: true });

    // Manifest removed while disabled: released, not deleted.
    const files = manifests(vols(2), { vm: true, vmDisabled: true });
    files['all.yaml'] = files['all.yaml']!.split('\n---\n').filter((d) => !d.includes('kind: VirtualMachine')).join('\n---\n');
    const released = await run(files);
    const c = released.plan.changes.find((x) => x.key === `VirtualMachine/${P}-vm`)!;
    expect(c.release?.policy).toBe('Suspended');
    expect(c.steps).toEqual([{ op: 'record.forget' }]);
    expect(renderPlan(released.plan, { color: false })).toContain('will be released (its manifest was removed while metadata.reconcile: disabled)');
    expect(released.outcome).toBe('succeeded');
    expect(host.domains.has(`${P}-vm`)).toBe(true);
    expect(await store.resources.get(resourceRef('VirtualMachine', `${P}-vm`))).toBeUndefined();
  });

  it('enabled again: reconciled as usual and the recorded mark is cleared', async () => {
    await run(manifests(vols(1), { vm: true }));
    await run(manifests(vols(1), { vm: true, vmDisabled: true }));
    host.domains.get(`${P}-vm`)!.active = false;
    const again = await run(manifests(vols(1), { vm: true }));
    expect(again.outcome).toBe('succeeded');
    expect(host.domains.get(`${P}-vm`)!.active).toBe(true);
    expect(((await store.resources.get(resourceRef("VirtualMachine", `${P}-vm`)))!.details.facts as Record<string, unknown> | undefined)?.reconcileDisabled).toBeUndefined();
  });
});

describe('metadata.reconcile: disabled on something that does not exist', () => {
  it('is not created, and what needs it is blocked with the reason (nothing half-built)', async () => {
    const r = await run(manifests(vols(1), { disabled: [`${P}-pool`] }));
    expect(r.plan.suspended.has(`StoragePool/${P}-pool`)).toBe(true);
    expect(r.plan.blocked.get(`Volume/${P}-v0`)).toBe(`depends on StoragePool/${P}-pool, which is suspended (metadata.reconcile: disabled) and does not exist`);
    expect(host.pools.size).toBe(0);
    expect(r.outcome).toBe('failed');
  });
});

describe('virtform suspend (the DB switch)', () => {
  it('plans but applies nothing while suspended; ignoreSuspend applies; resume continues', async () => {
    await run(manifests(vols(1)));
    const { suspension, already } = await store.controls.suspend({ by: 'tester@host (pid 1)', reason: 'maintenance' });
    expect(already).toBe(false);
    expect((await store.controls.suspend({ by: 'other' })).already).toBe(true);
    const paused = await run(manifests(vols(3)));
    expect(paused.outcome).toBe('suspended');
    expect(paused.suspension).toEqual(suspension);
    expect(paused.plan.summary.create).toBe(2);
    expect(host.volumes.get(`${P}-pool`)!.size).toBe(1);
    const dry = await run(manifests(vols(3)), { dryRun: true });
    expect(dry.outcome).toBe('planned');
    expect(dry.suspension?.by).toBe('tester@host (pid 1)');
    expect((await run(manifests(vols(2)), { ignoreSuspend: true })).outcome).toBe('succeeded');
    expect((await store.controls.resume())?.reason).toBe('maintenance');
    expect(await store.controls.resume()).toBeUndefined();
    expect((await run(manifests(vols(3)))).outcome).toBe('succeeded');
    expect(host.volumes.get(`${P}-pool`)!.size).toBe(3);
  });
});
