/**
 * A network whose ensure step was interrupted after its host calls (defined with virtform's
 * marker, started) but before it was recorded: the next run finishes it and records it, so it
 * stays virtform's once that run resolves the journal (with deep drift it had no difference to
 * show, planned nothing, and became a foreign network: a conflict in every later run).
 */
import { afterEach, expect, it } from 'vitest';
import { join } from 'node:path';
import { rmSync } from 'node:fs';
import { FakeHost } from '../../support/fake-host.js';
import { desiredFrom, labManifests, tempDir, writeManifests } from '../../support/manifests.js';
import { openStateStore, type StateStore } from '../../../src/state/index.js';
import { reconcile } from '../../../src/reconcile/engine.js';
import { LOCAL_HOST } from '../../../src/model/kinds.js';

const NET = 'vftest-eng-net';
let work: string | undefined;
let store: StateStore | undefined;
afterEach(async () => {
  await store?.close();
  if (work) rmSync(work, { recursive: true, force: true });
});

it('a network interrupted before it was recorded is finished and recorded by the next run, not left foreign', async () => {
  work = tempDir();
  const mdir = writeManifests(join(work, 'manifests'), labManifests({ poolPath: '/srv/pools/eng' }));
  const host = new FakeHost();
  store = await openStateStore(join(work, 'state.db'));
  const desired = await desiredFrom(mdir);
  const retry = { maxAttempts: 1, baseDelayMs: 1, maxDelayMs: 2 };
  const first = await reconcile({
    host, store, desired, retry, gracefulStop: false,
    boundary: (label) => {
      if (label === `Network/${NET}:network.ensure:called`) throw new Error('crash after the host calls');
    },
  });
  expect(first.outcome).toBe('failed');
  expect(host.networks.get(NET)).toMatchObject({ active: true, def: { marker: { kind: 'Network', name: NET } } });
  expect((await store.resources.getMany([{ kind: 'Network', name: NET, host: LOCAL_HOST }]))[0]?.uuid ?? null).toBeNull();

  const second = await reconcile({ host, store, desired, retry, gracefulStop: false });
  expect(second.outcome).toBe('succeeded');
  expect(second.plan.changes.find((c) => c.key === `Network/${NET}`))
    .toMatchObject({ action: 'update', reason: 'finishing an operation interrupted in an earlier run', ownership: 'owned' });
  const [rec] = await store.resources.getMany([{ kind: 'Network', name: NET, host: LOCAL_HOST }]);
  expect(rec).toMatchObject({ uuid: host.networks.get(NET)!.uuid, specHash: desired.byKey.get(`Network/${NET}`)!.specHash });

  const third = await reconcile({ host, store, desired, retry, gracefulStop: false });
  expect(third.plan.blocked).toEqual(new Map());
  expect(third.outcome).toBe('noop');
});
