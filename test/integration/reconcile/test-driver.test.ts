/**
 * The libvirt host adapter and the engine on libvirt's test driver (test+unix:///default): fast,
 * no QEMU. Test-driver state lives as long as one connection, so everything runs on one host.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { join } from 'node:path';
import { rmSync } from 'node:fs';
import { openHost, type LibvirtHost } from '../../../src/reconcile/adapters/libvirt-host.js';
import { openStateStore, type StateStore } from '../../../src/state/index.js';
import { reconcile } from '../../../src/reconcile/engine.js';
import { desiredFrom, labManifests, writeManifests } from '../../support/manifests.js';
import { suiteNames } from '../../support/names.js';

const N = suiteNames('td');
const P = N.base;

let host: LibvirtHost;
let store: StateStore;
let work: string;

beforeAll(async () => {
  work = N.tempDir();
  host = await openHost('test+unix:///default');
  store = await openStateStore(join(work, 'state.db'));
});
afterAll(async () => {
  await host?.close();
  await store?.close();
  rmSync(work, { recursive: true, force: true });
});

describe('adapter on the test driver', () => {
  it('uses type qemu there and sees the driver default objects in one bulk snapshot', async () => {
    expect(await host.domainType()).toBe('qemu');
    const snap = await host.snapshot();
    expect(snap.domains).toContainEqual(expect.objectContaining({ name: 'test', active: true }));
    expect(snap.networks.map((n) => n.name)).toContain('default');
    expect(snap.pools.map((p) => p.name)).toContain('default-pool');
  });

  it('converges a lab, then plans nothing and makes zero mutating calls', async () => {
    const dir = writeManifests(join(work, 'm'), labManifests({ prefix: P, poolPath: `/${P}-pool`, cidr: N.cidr() }));
    const desired = await desiredFrom(dir);
    const first = await reconcile({ host, store, desired, gracefulStop: false });
    expect(first.outcome, JSON.stringify(first.applied?.failed ? [...first.applied.failed] : [])).toBe('succeeded');
    const snap = await host.snapshot();
    expect(snap.domains.filter((d) => d.name.startsWith(N.prefix)).map((d) => [d.name, d.active]).sort())
      .toEqual([[`${P}-vm1`, true], [`${P}-vm2`, false]]);
    const before = host.client.mutatingCallCount;
    const second = await reconcile({ host, store, desired, gracefulStop: false });
    expect(second.plan.noop).toBe(true);
    expect(host.client.mutatingCallCount).toBe(before);
  });
});
