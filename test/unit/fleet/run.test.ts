/**
 * The fleet run over fake hosts (test/support/fake-host.ts) and an in-memory state DB: connecting
 * every Host in parallel with per-host failures kept, effective capacity, sticky placement from the
 * records, HostUnreachable and Unschedulable conditions, the transport rule, removed Hosts.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { rmSync } from 'node:fs';
import { loadManifests, type DesiredState } from '../../../src/manifest/index.js';
import { openStateStore, type StateStore } from '../../../src/state/index.js';
import { connectFleet, refusedTransports } from '../../../src/fleet/connect.js';
import { placementHost } from '../../../src/fleet/capacity.js';
import { fleetParts } from '../../../src/fleet/parts.js';
import { runFleet, type FleetOptions } from '../../../src/fleet/run.js';
import type { HostDefinition } from '../../../src/fleet/contract.js';
import { FakeHost } from '../../support/fake-host.js';
import { tempDir, writeManifests } from '../../support/manifests.js';
import { scenario } from '../../support/scenario.js';

const GiB = 2 ** 30;
const dirs: string[] = [];
const stores: StateStore[] = [];
afterEach(async () => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
  for (const s of stores.splice(0)) await s.close();
});

function hostDoc(id: string, zone: string, spec: Record<string, unknown> = {}): string {
  return [
    'apiVersion: virtform.dev/v1', 'kind: Host', `metadata: {name: ${id}, labels: {zone: ${zone}}}`, 'spec:',
    `  uri: ${JSON.stringify(`test:///${id}`)}`,
    ...Object.entries({ capacity: { memory: '1GiB', vcpus: 8 }, ...spec }).map(([k, v]) => `  ${k}: ${JSON.stringify(v)}`), '',
  ].join('\n');
}

/** Three Hosts h1-h3 (zones a-c), a pool on every host, `n` VMs spread by zone with a volume each. */
async function fleetState(n: number, extra: (s: ReturnType<typeof scenario>) => void = () => undefined, hosts = ['h1', 'h2', 'h3']): Promise<DesiredState> {
  const s = scenario();
  if (hosts.length > 0) s.in('hosts.yaml').doc(hosts.map((h, i) => hostDoc(h, 'abc'[i]!)).join('---\n'));
  s.in('storage.yaml').pool('fl-pool', { path: '/srv/pools/fl-pool', autostart: false });
  for (let i = 1; i <= n; i++) s.volume(`fl-web-${i}-disk`, { capacity: '1MiB', format: 'raw' });
  s.in('vms.yaml');
  for (let i = 1; i <= n; i++) {
    s.vm(`fl-web-${i}`, { state: 'stopped', domainType: 'qemu', disks: [{ volume: `fl-web-${i}-disk`, bus: 'virtio' }], ...(hosts.length > 0 ? { placement: { spreadBy: { hostLabel: 'zone' } } } : {}) }, { labels: { app: 'web' } });
  }
  extra(s);
  const dir = tempDir('vftest-fleetrun-');
  dirs.push(dir);
  writeManifests(dir, s.files());
  const r = await loadManifests(dir);
  if (!r.ok) throw new Error(r.errors.map((e) => `${e.file}:${e.line}:${e.col} ${e.message}`).join('\n'));
  return r.desired;
}

function fakeFleet(ids: string[]): Map<string, FakeHost> {
  return new Map(ids.map((id, i) => {
    const h = new FakeHost();
    h.identity = { uri: `test:///${id}`, hostname: `fake-${id}`, uuid: `00000000-0000-4000-8000-00000000000${i + 1}`, driver: 'test' };
    return [id, h];
  }));
}

async function store(): Promise<StateStore> {
  const s = await openStateStore(':memory:');
  stores.push(s);
  return s;
}

function run(state: DesiredState, st: StateStore, hosts: Map<string, FakeHost>, o: Partial<FleetOptions> & { down?: Set<string> } = {}) {
  return runFleet({
    state, store: st, parts: fleetParts(),
    open: async (uri) => {
      const id = uri.replace('test:///', '');
      if (o.down?.has(id)) throw new Error(`cannot connect to libvirt at ${uri}: connection refused`);
      return hosts.get(id)!;
    },
    engine: { retry: { maxAttempts: 1, baseDelayMs: 0, maxDelayMs: 0 } },
    ...o,
  });
}

const domainsOn = (h: FakeHost): string[] => [...h.domains.keys()].sort();

describe('connectFleet', () => {
  it('connects every host at once; one host failing is kept for that host, the others are connected', async () => {
    const hosts = fakeFleet(['h1', 'h2', 'h3']);
    const defs = ['h1', 'h2', 'h3'].map((id) => ({ id, uri: `test:///${id}`, labels: {}, schedulable: true, drain: false, reserved: { memory: 0, vcpus: 0 }, overcommit: { cpu: 1, memory: 1 }, insecure: false }));
    let inFlight = 0;
    let most = 0;
    const c = await connectFleet(defs, async (uri) => {
      inFlight += 1;
      most = Math.max(most, inFlight);
      await new Promise((r) => setTimeout(r, 20));
      inFlight -= 1;
      if (uri.endsWith('h2')) throw new Error('connection refused');
      return hosts.get(uri.replace('test:///', ''))!;
    });
    expect(most).toBe(3);
    expect([...c.connected.keys()]).toEqual(['h1', 'h3']);
    expect(c.unreachable.get('h2')).toMatch(/connection refused/);
    expect(c.connected.get('h1')!.node.memory).toBe(8 * GiB);
  });

  it('plain qemu+tcp to another machine needs --insecure or the Host\'s spec.insecure', () => {
    const def = (id: string, uri: string, insecure = false): HostDefinition => ({ id, uri, labels: {}, schedulable: true, drain: false, reserved: { memory: 0, vcpus: 0 }, overcommit: { cpu: 1, memory: 1 }, insecure });
    const hosts = [def('a', 'qemu+tcp://10.0.0.5/system'), def('b', 'qemu+tcp://10.0.0.6/system', true), def('c', 'qemu+tcp://127.0.0.1/system')];
    expect(refusedTransports(hosts, false).map((r) => r.host)).toEqual(['a']);
    expect(refusedTransports(hosts, false)[0]!.message).toMatch(/Host a: .*plain TCP/);
    expect(refusedTransports(hosts, true)).toEqual([]);
  });
});

describe('placementHost', () => {
  it('takes spec.capacity field by field over the node info (disk pool by pool); an unreachable host offers what its manifest says', () => {
    const def: HostDefinition = { id: 'h1', uri: 'x', labels: { zone: 'a' }, schedulable: true, drain: false, capacity: { memory: GiB, disk: { big: 5 } }, reserved: { memory: 1, vcpus: 0 }, overcommit: { cpu: 2, memory: 1 }, insecure: false };
    const p = placementHost(def, { memory: 8 * GiB, cpus: 4, disk: { big: 100, other: 7 } });
    expect(p).toMatchObject({ id: 'h1', reachable: true, capacity: { memory: GiB, vcpus: 4, disk: { big: 5, other: 7 } }, overcommit: { cpu: 2, memory: 1 } });
    expect(placementHost(def, undefined)).toMatchObject({ reachable: false, capacity: { memory: GiB, vcpus: 0, disk: { big: 5 } } });
  });
});

describe('runFleet', () => {
  it('6 VMs spread by zone land 2/2/2 with their volumes, every Host is recorded with its URI, and a rerun changes nothing', async () => {
    const state = await fleetState(6);
    const hosts = fakeFleet(['h1', 'h2', 'h3']);
    const st = await store();
    const r = await run(state, st, hosts);
    expect(r.run?.outcome).toBe('succeeded');
    for (const h of hosts.values()) expect(domainsOn(h)).toHaveLength(2);
    // each volume is on its VM's host only
    for (const [, h] of hosts) {
      const vols = [...(h.volumes.get('fl-pool')?.keys() ?? [])].sort();
      expect(vols).toEqual(domainsOn(h).map((d) => `${d}-disk.img`));
    }
    expect([...r.annotations.values()].map((p) => p.host).sort()).toEqual(['h1', 'h1', 'h2', 'h2', 'h3', 'h3']);
    expect((await st.hosts.list()).map((h) => [h.id, h.uri])).toEqual([['h1', 'test:///h1'], ['h2', 'test:///h2'], ['h3', 'test:///h3']]);
    const placed = new Map([...hosts].map(([id, h]) => [id, domainsOn(h)]));

    const again = await run(state, st, hosts);
    expect(again.run?.outcome).toBe('noop');
    expect(again.annotations.size).toBe(0);
    expect(new Map([...hosts].map(([id, h]) => [id, domainsOn(h)]))).toEqual(placed);
  });

  it('placement is sticky: a VM stays on its recorded host even when the scheduler would now pick another', async () => {
    const hosts = fakeFleet(['h1', 'h2', 'h3']);
    const st = await store();
    await run(await fleetState(1), st, hosts);
    const first = [...hosts].find(([, h]) => h.domains.size === 1)![0];
    // fill the first host's zone with pinned VMs: spreading would now put fl-web-1 elsewhere
    const state = await fleetState(1, (s) => {
      s.vm('fl-pin-1', { state: 'stopped', domainType: 'qemu', host: first });
      s.vm('fl-pin-2', { state: 'stopped', domainType: 'qemu', host: first });
    });
    const r = await run(state, st, hosts);
    expect(r.run?.outcome).toBe('succeeded');
    expect(domainsOn(hosts.get(first)!)).toEqual(['fl-pin-1', 'fl-pin-2', 'fl-web-1']);
    expect(r.schedule.placements.get('fl-web-1')?.why).toBe('sticky');
  });

  it('one host down: its VMs stay there (HostUnreachable), new VMs go to the others, everything else converges; back up, the rerun converges with no orphan', async () => {
    const hosts = fakeFleet(['h1', 'h2', 'h3']);
    const st = await store();
    await run(await fleetState(3), st, hosts);
    const onH2 = domainsOn(hosts.get('h2')!);
    expect(onH2).toHaveLength(1);

    const state = await fleetState(6);
    const r = await run(state, st, hosts, { down: new Set(['h2']) });
    expect(r.unreachable.get('h2')).toMatch(/connection refused/);
    expect(r.run?.outcome).toBe('succeeded');
    // nothing of h2 is planned; its VM is not re-created elsewhere
    expect(r.run!.plan.changes.every((c) => c.host !== 'h2')).toBe(true);
    for (const id of ['h1', 'h3']) expect(domainsOn(hosts.get(id)!)).not.toContain(onH2[0]);
    expect(domainsOn(hosts.get('h1')!).length + domainsOn(hosts.get('h3')!).length).toBe(5);
    const conds = await st.conditions.list();
    const key = `h2/VirtualMachine/${onH2[0]}`;
    expect(conds.get(key)?.find((c) => c.type === 'HostUnreachable')).toMatchObject({ status: 'True', message: expect.stringMatching(/host h2: .*connection refused/) });
    expect(conds.get(`h2/Volume/${onH2[0]}-disk`)?.find((c) => c.type === 'HostUnreachable')?.status).toBe('True');
    expect((await st.events.recent(50)).some((e) => /host h2 unreachable/.test(e.message))).toBe(true);

    // h2 back: the rerun converges, h2 keeps its VM, no object is anywhere twice
    const back = await run(state, st, hosts);
    expect(back.unreachable.size).toBe(0);
    expect(['succeeded', 'noop']).toContain(back.run?.outcome);
    expect(domainsOn(hosts.get('h2')!)).toEqual(onH2);
    const all = [...hosts.values()].flatMap(domainsOn).sort();
    expect(all).toEqual(['fl-web-1', 'fl-web-2', 'fl-web-3', 'fl-web-4', 'fl-web-5', 'fl-web-6']);
    expect((await st.conditions.list()).get(key)?.find((c) => c.type === 'HostUnreachable')?.status).toBe('False');
    expect((await run(state, st, hosts)).run?.outcome).toBe('noop');
  });

  it('a VM that fits nowhere is Unschedulable with the reason per host; the rest converge', async () => {
    const hosts = fakeFleet(['h1', 'h2', 'h3']);
    const st = await store();
    const state = await fleetState(3, (s) => s.vm('fl-big', { state: 'stopped', domainType: 'qemu', memory: '2GiB' }));
    const r = await run(state, st, hosts);
    expect(r.run?.outcome).toBe('succeeded');
    expect([...hosts.values()].flatMap(domainsOn).sort()).toEqual(['fl-web-1', 'fl-web-2', 'fl-web-3']);
    const u = r.unschedulable.get('fl-big')!;
    expect(u.reasons.map((x) => [x.host, x.filter])).toEqual([['h1', 'memory'], ['h2', 'memory'], ['h3', 'memory']]);
    const c = (await st.conditions.list()).get('-/VirtualMachine/fl-big')?.find((x) => x.type === 'Unschedulable');
    expect(c).toMatchObject({ status: 'True', reason: 'NoHostFits', message: expect.stringMatching(/h1: memory/) });
    expect((await st.conditions.list()).get(`${[...hosts].find(([, h]) => h.domains.has('fl-web-1'))![0]}/VirtualMachine/fl-web-1`)?.find((x) => x.type === 'Unschedulable')?.status).toBe('False');
  });

  it('a dry-run connects and plans but records nothing (no hosts rows, no conditions)', async () => {
    const hosts = fakeFleet(['h1', 'h2', 'h3']);
    const st = await store();
    const r = await run(await fleetState(2), st, hosts, { engine: { dryRun: true } });
    expect(r.run?.outcome).toBe('planned');
    expect(r.annotations.size).toBe(2);
    expect(await st.hosts.list()).toEqual([]);
    expect((await st.conditions.list()).size).toBe(0);
    expect([...hosts.values()].flatMap(domainsOn)).toEqual([]);
  });

  it('removing a Host manifest while virtform owns objects on it is a conflict naming them; its VM is not re-created elsewhere', async () => {
    const hosts = fakeFleet(['h1', 'h2', 'h3']);
    const st = await store();
    await run(await fleetState(3), st, hosts);
    const onH3 = domainsOn(hosts.get('h3')!);
    const r = await run(await fleetState(3, () => undefined, ['h1', 'h2']), st, hosts);
    expect(r.orphanHosts.map((o) => o.host)).toEqual(['h3']);
    expect(r.orphanHosts[0]!.message).toContain(`VirtualMachine/${onH3[0]}`);
    expect(domainsOn(hosts.get('h1')!).length + domainsOn(hosts.get('h2')!).length).toBe(2);
    expect(domainsOn(hosts.get('h3')!)).toEqual(onH3);
  });

  it('from one host to a fleet: the implicit host\'s records are bound to the Host with its identity, nothing is recreated', async () => {
    const hosts = fakeFleet(['h1']);
    const h1 = hosts.get('h1')!;
    const st = await store();
    // a single-host run first (no Host manifest: the implicit local host)
    const single = await fleetState(2, () => undefined, []);
    const { reconcile } = await import('../../../src/reconcile/engine.js');
    const { buildDesired } = await import('../../../src/reconcile/desired.js');
    await st.hosts.bind(await h1.hostIdentity(), { record: true });
    expect((await reconcile({ host: h1, store: st, desired: buildDesired(single) })).outcome).toBe('succeeded');
    const uuids = [...h1.domains.values()].map((d) => d.uuid).sort();
    const mutations = h1.mutationCount();

    // The dry-run before that first fleet apply plans what the apply will do (records bound on a
    // scratch copy of the DB: no conflict, nothing to create), and changes nothing in the DB.
    const fleet = await fleetState(2, () => undefined, ['h1']);
    const dry = await run(fleet, st, hosts, { engine: { dryRun: true } });
    expect(dry.run?.plan.changes.map((c) => `${c.action} ${c.key}`)).toEqual([]);
    expect(dry.bound).toEqual([{ host: 'h1', resources: 5, shown: true }]);
    expect((await st.resources.list()).every((x) => x.host === 'local')).toBe(true);
    expect((await st.hosts.get('local'))?.uri).toBe(h1.identity.uri);
    // Without a scratch copy (PostgreSQL) the dry-run cannot show it and says so (shown: false).
    const noCopy = new Proxy(st, { get: (t, k) => (k === 'scratchCopy' ? undefined : Reflect.get(t, k, t) as unknown) });
    const blind = await run(fleet, noCopy, hosts, { engine: { dryRun: true } });
    expect(blind.bound).toEqual([{ host: 'h1', resources: 5, shown: false }]);
    expect((await st.resources.list()).every((x) => x.host === 'local')).toBe(true);

    const r = await run(fleet, st, hosts);
    expect(r.bound).toEqual([{ host: 'h1', resources: 5, shown: true }]);
    expect(r.orphanHosts).toEqual([]);
    expect(r.run?.outcome).toBe('noop');
    expect(h1.mutationCount()).toBe(mutations);
    expect([...h1.domains.values()].map((d) => d.uuid).sort()).toEqual(uuids);
    expect((await st.resources.list()).every((x) => x.host === 'h1')).toBe(true);
  });
});

describe('runFleet: moves', () => {
  it('a drained host\'s VMs are placed on another host, which the engine plans as a move (not a delete and a create)', async () => {
    const hosts = fakeFleet(['h1', 'h2', 'h3']);
    const st = await store();
    await run(await fleetState(3), st, hosts);
    const onH1 = domainsOn(hosts.get('h1')!);
    expect(onH1).toHaveLength(1);
    const drained = await fleetState(3);
    drained.hosts = drained.hosts.map((h) => (h.id === 'h1' ? { ...h, drain: true } : h));
    const r = await run(drained, st, hosts, { engine: { dryRun: true } });
    expect(r.moves.map((m) => [m.vm, m.from, m.cause])).toEqual([[onH1[0], 'h1', 'drain']]);
    const to = r.moves[0]!.to;
    expect(r.annotations.get(`${to}/VirtualMachine/${onH1[0]}`)?.host).toBe(to);
    // the engine turns "recorded on h1, desired on h2" into a move (the fake host has no streams: the
    // copy itself runs in test/fleet/moves*.test.ts against real hosts)
    const reasons = new Map(r.run!.plan.changes.map((c) => [c.key, c.reason]));
    expect(reasons.get(`${to}/VirtualMachine/${onH1[0]}`)).toMatch(/moves from host h1/);
    expect(reasons.get(`${to}/Volume/${onH1[0]}-disk`)).toMatch(/moves from host h1/);
    expect(reasons.get(`h1/VirtualMachine/${onH1[0]}`)).toMatch(new RegExp(`moves to host ${to}`));
  });

  it('without --rebalance nothing is proposed after a host is added; with it, at most --max-moves, and a dry-run moves nothing', async () => {
    const hosts = fakeFleet(['h1', 'h2', 'h3']);
    const st = await store();
    await run(await fleetState(6, () => undefined, ['h1', 'h2']), st, hosts);
    const before = new Map([...hosts].map(([id, h]) => [id, domainsOn(h)]));
    const three = await fleetState(6);
    const plain = await run(three, st, hosts, { engine: { dryRun: true } });
    expect(plain.moves).toEqual([]);
    const proposed = await run(three, st, hosts, { engine: { dryRun: true }, rebalance: true, maxMoves: 1 });
    expect(proposed.moves.length).toBe(1);
    expect(proposed.moves[0]).toMatchObject({ cause: 'rebalance', to: 'h3' });
    expect(new Map([...hosts].map(([id, h]) => [id, domainsOn(h)]))).toEqual(before);
  });
});

describe('watchFleet', () => {
  it('runs the fleet each cycle, retries an unreachable host with backoff (logged), and converges it once it answers', async () => {
    const { watchFleet } = await import('../../../src/fleet/watch.js');
    const hosts = fakeFleet(['h1', 'h2', 'h3']);
    const st = await store();
    const state = await fleetState(3);
    let h2Failures = 2;
    const logs: { level: string; msg: string; f?: Record<string, unknown> }[] = [];
    const log = (level: string) => (msg: string, f?: Record<string, unknown>): void => void logs.push({ level, msg, f });
    const abort = new AbortController();
    let cycles = 0;
    await watchFleet({
      load: async () => ({ ok: true, state }), store: st, parts: fleetParts(), signal: abort.signal,
      logger: { info: log('info'), warn: log('warn'), error: log('error') },
      open: async (uri) => {
        const id = uri.replace('test:///', '');
        if (id === 'h2' && h2Failures-- > 0) throw new Error('connection refused');
        return hosts.get(id)!;
      },
      resyncMs: 60_000, retry: { baseMs: 5, maxMs: 20 },
      engine: { retry: { maxAttempts: 1, baseDelayMs: 0, maxDelayMs: 0 } },
      onCycle: (r) => {
        cycles += 1;
        if (r.unreachable.size === 0) abort.abort();
      },
    });
    expect(cycles).toBe(3);
    const retries = logs.filter((l) => l.msg.startsWith('host unreachable'));
    expect(retries.map((l) => [l.f?.host, l.f?.attempt])).toEqual([['h2', 1], ['h2', 2]]);
    expect(retries[1]!.f?.retryInMs).toBeLessThanOrEqual(10);
    expect(logs.some((l) => l.msg === 'host reachable again' && l.f?.host === 'h2')).toBe(true);
    // placed on the hosts that answered meanwhile (sticky since), each VM once
    expect([...hosts.values()].flatMap(domainsOn).sort()).toEqual(['fl-web-1', 'fl-web-2', 'fl-web-3']);
    // the pool reached h2 once it answered
    expect(hosts.get('h2')!.pools.has('fl-pool')).toBe(true);
  });
});
