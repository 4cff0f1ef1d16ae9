/**
 * The host in every key: two fake hosts with the same names on both (a pool, its volume, a
 * network), reconciled by one run. Keys, plan steps, journal entries, records, events, status
 * rows and metrics keep them apart; a host's lost connection stops that host only.
 * (No Host manifest kind yet: the desired state names its hosts explicitly.)
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { join } from 'node:path';
import { rmSync } from 'node:fs';
import { FakeHost } from '../../support/fake-host.js';
import { tempDir, writeManifests } from '../../support/manifests.js';
import { loadManifests } from '../../../src/manifest/index.js';
import { openStateStore, type StateStore } from '../../../src/state/index.js';
import { planOnly, reconcile } from '../../../src/reconcile/engine.js';
import { buildDesired, mergeDesired, type Desired } from '../../../src/reconcile/desired.js';
import { LOCAL_HOST, resourceKey } from '../../../src/model/kinds.js';
import { buildStatus } from '../../../src/status/index.js';
import { renderTable } from '../../../src/cli/commands/status.js';
import { WatchMetrics } from '../../../src/watch/metrics.js';

const P = 'vftest-2h';
const B = 'b';
const FAST_RETRY = { maxAttempts: 2, baseDelayMs: 1, maxDelayMs: 2 };

const MANIFESTS = {
  'all.yaml': `apiVersion: virtform.dev/v1
kind: StoragePool
metadata: {name: ${P}-pool}
spec: {path: /srv/pools/${P}}
---
apiVersion: virtform.dev/v1
kind: Volume
metadata: {name: ${P}-disk}
spec: {pool: ${P}-pool, capacity: 64MiB}
---
apiVersion: virtform.dev/v1
kind: Network
metadata: {name: ${P}-net}
spec: {mode: isolated, cidr: 10.250.7.0/24}
`,
};

let work: string;
let local: FakeHost;
let other: FakeHost;
let store: StateStore;
let one: Awaited<ReturnType<typeof loadOnce>>;

async function loadOnce() {
  const dir = writeManifests(join(work, 'm'), MANIFESTS);
  const r = await loadManifests(dir);
  if (!r.ok) throw new Error('manifests invalid');
  return r.desired;
}

/** The same manifests on the hosts given. */
function on(...hosts: string[]): Desired {
  return mergeDesired(hosts.map((h) => buildDesired(one, h)));
}

const hostsMap = (): Map<string, FakeHost> => new Map([[LOCAL_HOST, local], [B, other]]);

beforeEach(async () => {
  work = tempDir(`${P}-`);
  local = new FakeHost();
  other = new FakeHost();
  store = await openStateStore(join(work, 'state.db'));
  one = await loadOnce();
});
afterEach(async () => {
  await store.close();
  rmSync(work, { recursive: true, force: true });
});

describe('two hosts with the same names', () => {
  it('plans each resource once per host, under keys that name the host (the local host keeps Kind/name)', async () => {
    const { plan, observedHosts } = await planOnly(hostsMap(), store, on(LOCAL_HOST, B));
    expect([...observedHosts.keys()]).toEqual([LOCAL_HOST, B]);
    expect(plan.changes.map((c) => c.key)).toEqual([
      `StoragePool/${P}-pool`, `b/StoragePool/${P}-pool`,
      `Volume/${P}-disk`, `b/Volume/${P}-disk`,
      `Network/${P}-net`, `b/Network/${P}-net`,
    ]);
    expect(plan.changes.every((c) => c.action === 'create')).toBe(true);
    // Every step names its host; dependencies stay within a host.
    for (const s of plan.steps) {
      expect(s.host).toBe(s.key.startsWith('b/') ? B : LOCAL_HOST);
      for (const d of s.deps) expect(plan.steps[d]!.host).toBe(s.host);
    }
    const volOnB = plan.steps.find((s) => s.key === `b/Volume/${P}-disk`)!;
    expect(volOnB.deps.map((d) => plan.steps[d]!.key)).toEqual([`b/StoragePool/${P}-pool`]);
  });

  it('applies each step on its own host, records and journals both apart, and then plans nothing', async () => {
    const d = on(LOCAL_HOST, B);
    const first = await reconcile({ hosts: hostsMap(), store, desired: d, retry: FAST_RETRY, gracefulStop: false });
    expect(first.outcome).toBe('succeeded');
    for (const h of [local, other]) {
      expect([...h.pools.keys()]).toEqual([`${P}-pool`]);
      expect([...h.volumes.get(`${P}-pool`)!.keys()]).toEqual([`${P}-disk.qcow2`]);
      expect(h.networks.get(`${P}-net`)!.active).toBe(true);
    }
    // Two records per name, one per host, each with its own host's UUID.
    const records = await store.resources.list();
    expect(records.map((r) => resourceKey(r.kind, r.name, r.host)).sort()).toEqual([
      `Network/${P}-net`, `StoragePool/${P}-pool`, `Volume/${P}-disk`,
      `b/Network/${P}-net`, `b/StoragePool/${P}-pool`, `b/Volume/${P}-disk`,
    ]);
    const poolLocal = await store.resources.get({ kind: 'StoragePool', name: `${P}-pool`, host: LOCAL_HOST });
    const poolB = await store.resources.get({ kind: 'StoragePool', name: `${P}-pool`, host: B });
    expect(poolLocal!.uuid).toBe(local.pools.get(`${P}-pool`)!.uuid);
    expect(poolB!.uuid).toBe(other.pools.get(`${P}-pool`)!.uuid);
    expect(poolLocal!.uuid).not.toBe(poolB!.uuid);
    // The journal names the host of each step.
    const journal = await store.journal.recent(100);
    expect(journal.filter((e) => e.host === B).map((e) => `${e.kind}/${e.name}`).sort())
      .toEqual([`Network/${P}-net`, `StoragePool/${P}-pool`, `Volume/${P}-disk`]);
    expect(journal.filter((e) => e.host === LOCAL_HOST)).toHaveLength(3);

    const second = await reconcile({ hosts: hostsMap(), store, desired: d, retry: FAST_RETRY, gracefulStop: false });
    expect(second.plan.noop).toBe(true);
    expect(second.mutations).toBe(0);
  });

  it('removing one host\'s resources deletes them on that host only', async () => {
    await reconcile({ hosts: hostsMap(), store, desired: on(LOCAL_HOST, B), retry: FAST_RETRY, gracefulStop: false });
    const r = await reconcile({ hosts: hostsMap(), store, desired: on(LOCAL_HOST), retry: FAST_RETRY, gracefulStop: false, allowDataLoss: true });
    expect(r.outcome).toBe('succeeded');
    expect(r.plan.changes.map((c) => `${c.action} ${c.key}`)).toEqual([
      `delete b/StoragePool/${P}-pool`, `delete b/Volume/${P}-disk`, `delete b/Network/${P}-net`,
    ]);
    expect(r.plan.steps.every((s) => s.host === B)).toBe(true);
    expect(other.pools.size + other.networks.size).toBe(0);
    expect([...local.pools.keys()]).toEqual([`${P}-pool`]);
    expect(local.networks.has(`${P}-net`)).toBe(true);
    expect((await store.resources.list()).map((x) => x.host)).toEqual([LOCAL_HOST, LOCAL_HOST, LOCAL_HOST]);
  });

  it('a lost connection stops new steps on that host only; the other host converges', async () => {
    // Host b's pool is defined, but the reply is lost: its outcome is unknown.
    other.failNext('definePool', `${P}-pool`, 1, 'connection');
    const r = await reconcile({ hosts: hostsMap(), store, desired: on(LOCAL_HOST, B), retry: FAST_RETRY, gracefulStop: false, concurrency: 1 });
    expect(r.outcome).toBe('failed');
    expect([...r.applied!.failed.keys()]).toEqual([`b/StoragePool/${P}-pool`]);
    // Everything on the local host ran (also what was queued after the loss); on host b nothing started after it.
    const onLocal = r.applied!.outcomes.filter((o) => o.step.host === LOCAL_HOST);
    expect(onLocal.map((o) => `${o.step.key}:${o.status}`)).toEqual([
      `StoragePool/${P}-pool:succeeded`, `Volume/${P}-disk:succeeded`, `Network/${P}-net:succeeded`,
    ]);
    const net = r.applied!.outcomes.find((o) => o.step.key === `b/Network/${P}-net`)!;
    expect(net.status).toBe('skipped');
    expect(net.error).toMatch(/connection to libvirt lost/);
    expect(other.networks.size).toBe(0);
    // The open journal entry is host b's: the next run finishes that host's work.
    const open = await store.journal.listOpen();
    expect(open.map((e) => `${e.host}:${e.kind}/${e.name}`)).toEqual([`${B}:StoragePool/${P}-pool`]);
    const again = await reconcile({ hosts: hostsMap(), store, desired: on(LOCAL_HOST, B), retry: FAST_RETRY, gracefulStop: false });
    expect(again.outcome).toBe('succeeded');
    expect(again.plan.changes.map((c) => c.host)).toEqual([B, B, B]);
    expect(again.plan.changes.map((c) => `${c.action} ${c.key}`)).toEqual([
      `create b/StoragePool/${P}-pool`, `create b/Volume/${P}-disk`, `create b/Network/${P}-net`,
    ]);
    expect((await planOnly(hostsMap(), store, on(LOCAL_HOST, B))).plan.noop).toBe(true);
  });

  it('a run over one host leaves the records of another host alone (nothing of it is pruned)', async () => {
    await reconcile({ hosts: hostsMap(), store, desired: on(LOCAL_HOST, B), retry: FAST_RETRY, gracefulStop: false });
    const r = await reconcile({ host: local, store, desired: on(LOCAL_HOST), retry: FAST_RETRY, gracefulStop: false });
    expect(r.outcome).toBe('noop');
    expect(r.plan.changes).toEqual([]);
    expect(other.pools.has(`${P}-pool`)).toBe(true);
    expect((await store.resources.list()).filter((x) => x.host === B)).toHaveLength(3);
  });

  it('a declared resource on a host the run has no connection to is an error before anything is asked', async () => {
    local.calls = [];
    await expect(planOnly(local, store, on(LOCAL_HOST, B))).rejects.toThrow(/b\/StoragePool\/vftest-2h-pool.*host b is not one of this run's hosts/);
    expect(local.calls).toEqual([]);
  });

  it('events of a failed step name its host', async () => {
    other.failNext('defineNetwork', `${P}-net`, Infinity);
    const r = await reconcile({ hosts: hostsMap(), store, desired: on(LOCAL_HOST, B), retry: FAST_RETRY, gracefulStop: false });
    expect(r.outcome).toBe('failed');
    const events = await store.events.recent(20);
    const failed = events.filter((e) => e.level === 'error');
    expect(failed.map((e) => `${e.host}:${e.kind}/${e.name}`)).toEqual([`${B}:Network/${P}-net`]);
  });
});

describe('status and metrics with two hosts', () => {
  it('rows carry the host; the table has a HOST column only when there are two hosts', async () => {
    await reconcile({ hosts: hostsMap(), store, desired: on(LOCAL_HOST, B), retry: FAST_RETRY, gracefulStop: false });
    const records = await store.resources.list();
    const both = buildStatus({ records, declared: on(LOCAL_HOST, B).resources, revisions: new Map() }).resources;
    expect(both.map((r) => `${r.host}:${r.kind}/${r.name}`)).toEqual([
      `${LOCAL_HOST}:StoragePool/${P}-pool`, `${B}:StoragePool/${P}-pool`,
      `${LOCAL_HOST}:Volume/${P}-disk`, `${B}:Volume/${P}-disk`,
      `${LOCAL_HOST}:Network/${P}-net`, `${B}:Network/${P}-net`,
    ]);
    const table = renderTable(both);
    expect(table.split('\n')[0]).toMatch(/^HOST\s+RESOURCE\s+DESIRED/);
    expect(table).toMatch(new RegExp(`^b\\s+StoragePool/${P}-pool`, 'm'));
    const localOnly = buildStatus({ records: records.filter((r) => r.host === LOCAL_HOST), revisions: new Map() }).resources;
    expect(renderTable(localOnly).split('\n')[0]).toMatch(/^RESOURCE\s+DESIRED/);
    expect(JSON.parse(JSON.stringify(localOnly))[0].host).toBe(LOCAL_HOST);
  });

  it('metrics: a host label for resources of a host other than the local one', async () => {
    const m = new WatchMetrics({ defaultMetrics: false });
    m.setConditions([
      { kind: 'StoragePool', name: 'p', host: LOCAL_HOST, conditions: [{ type: 'Ready', status: 'True' }] },
      { kind: 'StoragePool', name: 'p', host: B, conditions: [{ type: 'Ready', status: 'False' }] },
    ]);
    const text = await m.render();
    expect(text).toContain('virtform_resource_condition{kind="StoragePool",name="p",type="Ready",status="True"} 1');
    expect(text).toContain('virtform_resource_condition{kind="StoragePool",name="p",type="Ready",status="True",host="b"} 0');
    expect(text).toContain('virtform_resource_condition{kind="StoragePool",name="p",type="Ready",status="False",host="b"} 1');
  });
});
