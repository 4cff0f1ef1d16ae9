/**
 * A network whose ensure step was interrupted after its host calls (defined with virtform's
 * marker, started) but before it was recorded: the next run finishes it and records it, so it
 * stays virtform's once that run resolves the journal (with deep drift it had no difference to
 * show, planned nothing, and became a foreign network: a conflict in every later run).
 */
import { expect, it } from 'vitest';
import { labManifests } from '../../support/manifests.js';
import { FAST_RETRY, useHarness } from '../../support/harness.js';

const NET = 'vftest-eng-net';
// one attempt: the crash must not be retried within the run
const fx = useHarness({ retry: { ...FAST_RETRY, maxAttempts: 1 } });

it('a network interrupted before it was recorded is finished and recorded by the next run, not left foreign', async () => {
  const desired = await fx.desired(labManifests({ poolPath: '/srv/pools/eng' }));
  const { host, store } = fx;
  const first = await fx.reconcile(desired, {
    boundary: (label) => {
      if (label === `Network/${NET}:network.ensure:called`) throw new Error('crash after the host calls');
    },
  });
  expect(first.outcome).toBe('failed');
  expect(host.networks.get(NET)).toMatchObject({ active: true, def: { marker: { kind: 'Network', name: NET } } });
  expect((await store.resources.getMany([{ kind: 'Network', name: NET }]))[0]?.uuid ?? null).toBeNull();

  const second = await fx.reconcile(desired);
  expect(second.outcome).toBe('succeeded');
  expect(second.plan.changes.find((c) => c.key === `Network/${NET}`))
    .toMatchObject({ action: 'update', reason: 'finishing an operation interrupted in an earlier run', ownership: 'owned' });
  const [rec] = await store.resources.getMany([{ kind: 'Network', name: NET }]);
  expect(rec).toMatchObject({ uuid: host.networks.get(NET)!.uuid, specHash: desired.byKey.get(`Network/${NET}`)!.specHash });

  const third = await fx.reconcile(desired);
  expect(third.plan.blocked).toEqual(new Map());
  expect(third.outcome).toBe('noop');
});
