/**
 * prefetching (src/reconcile/observe.ts, issue 22): observe's first calls started ahead of the
 * engine (a dry-run starts them while its manifests finish loading) are handed to the engine once,
 * and the plan is the one observe makes without them. The CLI's use of it (early connection only
 * when every manifest file came from the load cache) is tested end to end in
 * test/integration/reconcile/early-observe.test.ts.
 */
import { describe, expect, it } from 'vitest';
import { labManifests } from '../../support/manifests.js';
import { useHarness } from '../../support/harness.js';
import { planOnly } from '../../../src/reconcile/engine.js';
import { prefetching } from '../../../src/reconcile/observe.js';
import { HostError } from '../../../src/reconcile/ports.js';

const P = 'vftest-eng';
const fx = useHarness();
const desired = () => fx.desired(labManifests({ poolPath: '/srv/pools/eng' }));

describe('prefetching: observe calls started early', () => {
  it('starts identity, snapshot and the desired pools\' listings at once; the engine then makes each call no second time, and plans the same', async () => {
    const d = await desired();
    await fx.reconcile(d);
    fx.host.calls = [];
    const without = await planOnly(fx.host, fx.store, d);
    const callsWithout = fx.host.calls;

    fx.host.calls = [];
    const pre = prefetching(fx.host);
    expect(fx.host.calls).toEqual(['hostIdentity:*', 'snapshot:*']);
    pre.listPools(d);
    expect(fx.host.calls).toEqual(['hostIdentity:*', 'snapshot:*', `listVolumes:${P}-pool`]);
    expect((await pre.host.hostIdentity()).uuid).toBe(fx.host.identity.uuid);
    const withEarly = await planOnly(pre.host, fx.store, d);
    // The same calls as without, plus the identity: none made twice.
    expect(fx.host.calls).toEqual(['hostIdentity:*', ...callsWithout]);
    expect(withEarly.plan.noop).toBe(true);
    expect(withEarly.plan.summary).toEqual(without.plan.summary);

    // Handed out once: a second observe through the same host asks the host again.
    fx.host.calls = [];
    await planOnly(pre.host, fx.store, d);
    expect(fx.host.calls.filter((c) => c === 'snapshot:*' || c.startsWith('listVolumes:'))).toEqual(['snapshot:*', `listVolumes:${P}-pool`]);
  });

  it('an early answer is from when it was asked: a change after it is seen by the next observe', async () => {
    const d = await desired();
    await fx.reconcile(d);
    const pre = prefetching(fx.host);
    fx.host.domains.delete(`${P}-vm2`);
    const first = await planOnly(pre.host, fx.store, d);
    expect(first.observed.domains.has(`${P}-vm2`)).toBe(true);
    const second = await planOnly(pre.host, fx.store, d);
    expect(second.observed.domains.has(`${P}-vm2`)).toBe(false);
    expect(second.plan.noop).toBe(false);
  });

  it('an early call that failed fails the engine where its own call would (no unhandled rejection before)', async () => {
    const d = await desired();
    await fx.reconcile(d);
    fx.host.failNext('snapshot', '*', 1, 'connection');
    const pre = prefetching(fx.host);
    await new Promise((r) => setImmediate(r));
    const err = await planOnly(pre.host, fx.store, d).then(() => undefined, (e: unknown) => e);
    expect(err).toBeInstanceOf(HostError);
    expect((err as HostError).message).toContain('injected failure: snapshot');
  });

  it('passes every other member through to the host, bound to it', async () => {
    const pre = prefetching(fx.host);
    expect(pre.host.domainType).toBeTypeOf('function');
    expect(await pre.host.domainType()).toBe(await fx.host.domainType());
    expect(pre.host.definitions).toBe(fx.host.definitions);
    expect(pre.host.mutationCount()).toBe(fx.host.mutationCount());
  });
});
