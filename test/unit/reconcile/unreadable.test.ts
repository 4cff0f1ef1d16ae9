/**
 * One bad object never stops the run (issue 18, finding 3), on the in-memory host: a definition
 * virtform cannot parse makes that resource a conflict (Stalled) and nothing else; a value it does
 * not model (a network forward mode `route`) is drift corrected to the manifest.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { join } from 'node:path';
import { rmSync } from 'node:fs';
import { FakeHost } from '../../support/fake-host.js';
import { desiredFrom, labManifests, tempDir, writeManifests } from '../../support/manifests.js';
import { openStateStore, type StateStore } from '../../../src/state/index.js';
import { reconcile } from '../../../src/reconcile/engine.js';

const P = 'vftest-eng';
const FAST_RETRY = { maxAttempts: 2, baseDelayMs: 1, maxDelayMs: 2 };

let work: string;
let mdir: string;
let host: FakeHost;
let store: StateStore;

const run = async (dryRun = false) =>
  reconcile({ host, store, desired: await desiredFrom(mdir), retry: FAST_RETRY, gracefulStop: false, dryRun });

beforeEach(async () => {
  work = tempDir();
  mdir = join(work, 'manifests');
  writeManifests(mdir, labManifests({ poolPath: '/srv/pools/eng' }));
  host = new FakeHost();
  store = await openStateStore(join(work, 'state.db'));
  expect((await run()).outcome).toBe('succeeded');
});
afterEach(async () => {
  await store.close();
  rmSync(work, { recursive: true, force: true });
});

describe('one bad object never stops the run', () => {
  it('a VM whose definition cannot be parsed is a conflict of its own; a stopped VM elsewhere is started; the run fails', async () => {
    host.unparsable.set(`${P}-vm2`, "domain vcpu: expected an integer, got 'x'");
    await host.stopDomain(`${P}-vm1`);
    const plan = (await run(true)).plan;
    const bad = plan.changes.find((c) => c.key === `VirtualMachine/${P}-vm2`)!;
    expect(bad.action).toBe('conflict');
    expect(bad.reason).toMatch(/its definition cannot be read: domain vcpu: expected an integer/);
    expect(plan.changes.find((c) => c.key === `VirtualMachine/${P}-vm1`)?.steps.map((s) => s.op)).toContain('vm.start');
    const mutations = host.mutationCount();
    const applied = await run();
    // Partly stalled: everything else converged, the run still says so (exit 1 in the CLI).
    expect(applied.outcome).toBe('failed');
    expect(applied.plan.blocked.get(`VirtualMachine/${P}-vm2`)).toMatch(/cannot be read/);
    expect(host.domains.get(`${P}-vm1`)!.active).toBe(true);
    expect(host.mutationCount()).toBeGreaterThan(mutations);
    host.unparsable.clear();
    expect((await run(true)).plan.noop).toBe(true);
  });

  it('a VM whose definition cannot be read may use any volume: deleting a blank volume is held as data loss', async () => {
    host.unparsable.set(`${P}-vm2`, 'bad document');
    const files = labManifests({ poolPath: '/srv/pools/eng' });
    // A blank volume, never attached, that the next manifests no longer declare.
    writeManifests(mdir, { ...files, 'extra.yaml': `apiVersion: virtform.dev/v1\nkind: Volume\nmetadata: {name: ${P}-blank}\nspec: {pool: ${P}-pool, capacity: 1MiB}\n` });
    host.unparsable.clear();
    expect((await run()).outcome).toBe('succeeded');
    writeManifests(mdir, files);
    host.unparsable.set(`${P}-vm2`, 'bad document');
    const r = await run(true);
    expect(r.plan.held.get(`Volume/${P}-blank`)).toMatch(/attached to VirtualMachine\/vftest-eng-vm2 \(its definition cannot be read/);
    host.unparsable.clear();
    expect((await run(true)).plan.held.size).toBe(0);
  });

  it('a network forward mode virtform does not model is drift, corrected to the declared mode', async () => {
    const net = host.networks.get(`${P}-net`)!;
    net.def = { ...net.def, mode: 'route' as 'nat' };
    const plan = (await run(true)).plan;
    const c = plan.changes.find((x) => x.key === `Network/${P}-net`)!;
    expect(c.drift).toBe(true);
    expect(c.fields).toContainEqual({ field: 'spec.mode', before: 'route', after: 'isolated', drift: true });
    expect((await run()).outcome).toBe('succeeded');
    expect(host.networks.get(`${P}-net`)!.def.mode).toBe('isolated');
    expect((await run(true)).plan.noop).toBe(true);
  });
});
