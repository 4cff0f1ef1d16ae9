import { beforeEach, describe, expect, it } from 'vitest';
import { labManifests } from '../../support/manifests.js';
import { FAST_RETRY, useHarness, type RunOptions } from '../../support/harness.js';
import type { Desired } from '../../../src/reconcile/desired.js';
import { HostError } from '../../../src/reconcile/ports.js';
import { resourceRef, LOCAL_HOST } from '../../../src/model/kinds.js';

const P = 'vftest-eng';

// three attempts: the retry tests count them
const fx = useHarness({ retry: { ...FAST_RETRY, maxAttempts: 3 } });
const desired = async (opts: Partial<Parameters<typeof labManifests>[0]> = {}): Promise<Desired> =>
  fx.desired(labManifests({ poolPath: '/srv/pools/eng', ...opts }));
const run = async (d: Desired, extra: RunOptions = {}) => fx.reconcile(d, extra);

describe('create and converge', () => {
  it('creates everything, then a second run plans nothing and makes zero mutating calls', async () => {
    const d = await desired();
    const first = await run(d);
    expect(first.outcome).toBe('succeeded');
    expect(first.plan.summary).toMatchObject({ create: 7, change: 0, replace: 0, delete: 0 });
    expect([...fx.host.pools.keys()]).toEqual([`${P}-pool`]);
    expect([...fx.host.volumes.get(`${P}-pool`)!.keys()].sort()).toEqual([`${P}-base.qcow2`, `${P}-data.img`, `${P}-root.qcow2`]);
    expect(fx.host.volumes.get(`${P}-pool`)!.get(`${P}-root.qcow2`)!.backingPath).toBe(`/srv/pools/eng/${P}-base.qcow2`);
    expect(fx.host.networks.get(`${P}-net`)!.active).toBe(true);
    expect(fx.host.domains.get(`${P}-vm1`)!.active).toBe(true);
    expect(fx.host.domains.get(`${P}-vm2`)!.active).toBe(false);

    const second = await run(await desired());
    expect(second.plan.noop).toBe(true);
    expect(second.outcome).toBe('noop');
    expect(second.mutations).toBe(0);
    expect(await fx.store.journal.listOpen()).toEqual([]);
  });

  it('observes with bulk listings plus one definition read per managed object, never a lookup', async () => {
    await run(await desired());
    fx.host.calls = [];
    await fx.planResult(await desired());
    // one snapshot + one volume listing for the one pool, then each object's persistent definition:
    // the volumes' last, once their pool's listing is in (the other reads go out before it is awaited)
    expect(fx.host.calls).toEqual([
      'snapshot:*', `listVolumes:${P}-pool`,
      `describePool:${P}-pool`,
      `describeNetwork:${P}-net`,
      `describeDomain:${P}-vm1`, `describeDomain:${P}-vm2`,
      `describeVolume:${P}-base.qcow2`, `describeVolume:${P}-root.qcow2`, `describeVolume:${P}-data.img`,
    ]);
    expect(fx.host.calls.some((c) => c.startsWith('get'))).toBe(false);
  });

  it('records uuids, spec hashes and the applied revision', async () => {
    const d = await desired();
    const result = await run(d);
    const vm = await fx.store.resources.get(resourceRef('VirtualMachine', `${P}-vm1`));
    expect(vm?.uuid).toBe(fx.host.domains.get(`${P}-vm1`)!.uuid);
    expect(vm?.specHash).toBe(d.byKey.get(`VirtualMachine/${P}-vm1`)!.specHash);
    expect(vm?.lastAppliedRevision).toBe(result.revisionId);
    const rev = await fx.store.revisions.latest();
    expect(rev?.manifestDigest).toBe(d.digest);
    expect(rev?.outcome).toBe('succeeded');
  });
});

describe('plan ordering', () => {
  it('orders pools → volumes → backing before clone → networks → VMs', async () => {
    const { plan } = await fx.planResult(await desired());
    const stepOf = (key: string, op: string) => plan.steps.find((s) => s.key === key && s.op.op === op)!;
    const dependsOn = (a: { id: number; deps: number[] }, b: { id: number }): boolean => {
      const seen = new Set<number>();
      const stack = [...a.deps];
      while (stack.length) {
        const id = stack.pop()!;
        if (id === b.id) return true;
        if (seen.has(id)) continue;
        seen.add(id);
        stack.push(...plan.steps[id]!.deps);
      }
      return false;
    };
    const pool = stepOf(`StoragePool/${P}-pool`, 'pool.ensure');
    const base = stepOf(`Volume/${P}-base`, 'volume.create');
    const root = stepOf(`Volume/${P}-root`, 'volume.create');
    const net = stepOf(`Network/${P}-net`, 'network.ensure');
    const start = stepOf(`VirtualMachine/${P}-vm1`, 'vm.start');
    const define = stepOf(`VirtualMachine/${P}-vm1`, 'vm.define');
    expect(dependsOn(base, pool)).toBe(true);
    expect(dependsOn(root, base)).toBe(true);
    expect(dependsOn(start, root)).toBe(true);
    expect(dependsOn(start, net)).toBe(true);
    expect(dependsOn(start, define)).toBe(true);
    expect(dependsOn(net, pool)).toBe(false); // independent branches run in parallel
  });

  it('deletes in reverse order: VMs, then clones, volumes and networks, then pools', async () => {
    await run(await desired());
    fx.write({});
    const { plan } = await fx.planResult(await fx.desired());
    expect(plan.summary.delete).toBe(7);
    const order: string[] = [];
    const result = await run(await fx.desired(), {
      concurrency: 1, allowDataLoss: true, maxDeletions: 'all', onEvent: (e) => { if (e.type === 'start') order.push(e.step.key); },
    });
    expect(result.outcome).toBe('succeeded');
    const idx = (k: string): number => order.indexOf(k);
    expect(idx(`VirtualMachine/${P}-vm1`)).toBeLessThan(idx(`Volume/${P}-root`));
    expect(idx(`VirtualMachine/${P}-vm1`)).toBeLessThan(idx(`Network/${P}-net`));
    expect(idx(`Volume/${P}-root`)).toBeLessThan(idx(`Volume/${P}-base`));
    expect(idx(`Volume/${P}-base`)).toBeLessThan(idx(`StoragePool/${P}-pool`));
    expect(fx.host.pools.size + fx.host.networks.size + fx.host.domains.size).toBe(0);
    expect(await fx.store.resources.list()).toEqual([]);
  });
});

describe('changes', () => {
  beforeEach(async () => {
    await run(await desired());
  });

  it('updates VM memory by redefining with the same UUID, effective on next boot', async () => {
    const uuid = fx.host.domains.get(`${P}-vm1`)!.uuid;
    const d = await desired({ vm1Memory: '96MiB' });
    const { plan } = await fx.planResult(d);
    const c = plan.changes.find((x) => x.name === `${P}-vm1`)!;
    expect(c.action).toBe('update');
    // no maxMemory declared: the maximum grows too, which needs a restart
    expect(c.fields).toContainEqual({ field: 'spec.memoryKiB', before: 65536, after: 98304, effect: 'restart' });
    expect(c.fields).toContainEqual({ field: 'spec.maxMemoryKiB', before: 65536, after: 98304, effect: 'restart' });
    expect(c.notes.join()).toMatch(/next boot/);
    await run(d);
    expect(fx.host.domains.get(`${P}-vm1`)!.uuid).toBe(uuid);
    expect(fx.host.domains.get(`${P}-vm1`)!.def.memoryKiB).toBe(98304);
    expect((await run(d)).plan.noop).toBe(true);
  });

  it('replaces a volume whose format changes, stopping and restarting the VM using it', async () => {
    const d = await desired({ rootFormat: 'raw' });
    const { plan } = await fx.planResult(d);
    const c = plan.changes.find((x) => x.name === `${P}-root`)!;
    expect(c.action).toBe('replace');
    expect(c.reason).toMatch(/format is immutable/);
    const vm = plan.changes.find((x) => x.name === `${P}-vm1`)!;
    expect(vm.steps.map((s) => s.op)).toEqual(['vm.stop', 'vm.define', 'vm.start']);
    const result = await run(d, { allowDataLoss: true });
    expect(result.outcome).toBe('succeeded');
    const vols = fx.host.volumes.get(`${P}-pool`)!;
    expect(vols.has(`${P}-root.qcow2`)).toBe(false);
    expect(vols.get(`${P}-root.img`)?.format).toBe('raw');
    expect(fx.host.domains.get(`${P}-vm1`)!.active).toBe(true);
    expect(fx.host.domains.get(`${P}-vm1`)!.def.disks[0]!.path).toBe(`/srv/pools/eng/${P}-root.img`);
  });

  it('grows a volume in place and refuses to shrink it silently (replace)', async () => {
    const grow = await desired({ dataCapacity: '48MiB' });
    const g = (await fx.planResult(grow)).plan.changes.find((x) => x.name === `${P}-data`)!;
    expect(g.action).toBe('update');
    expect(g.steps).toEqual([{ op: 'volume.resize', capacityBytes: 48 * 1024 * 1024 }]);
    await run(grow);
    expect(fx.host.volumes.get(`${P}-pool`)!.get(`${P}-data.img`)!.capacityBytes).toBe(48 * 1024 * 1024);
    const shrink = await desired({ dataCapacity: '16MiB' });
    const s = (await fx.planResult(shrink)).plan.changes.find((x) => x.name === `${P}-data`)!;
    expect(s.action).toBe('replace');
    expect(s.reason).toMatch(/cannot shrink/);
  });

  it('updates DHCP host entries live without recreating the network', async () => {
    const uuid = fx.host.networks.get(`${P}-net`)!.uuid;
    const d = await desired({ extraHosts: '\n      - {mac: "52:54:00:aa:00:02", ip: 10.231.0.12}' });
    const c = (await fx.planResult(d)).plan.changes.find((x) => x.name === `${P}-net`)!;
    expect(c.action).toBe('update');
    fx.host.calls = [];
    await run(d);
    // live (and in the config), then the persistent definition is written again for its owner
    // marker's spec hash: never stopped, undefined or recreated
    const net = fx.host.calls.filter((c) => c.endsWith(`:${P}-net`) && !/^(get|describe)/.test(c));
    expect(net).toEqual([`updateNetworkDhcpHost:${P}-net`, `defineNetwork:${P}-net`]);
    expect(fx.host.networks.get(`${P}-net`)!.uuid).toBe(uuid);
    expect(fx.host.networks.get(`${P}-net`)!.def.dhcp!.hosts.map((h) => h.ip).sort()).toEqual(['10.231.0.11', '10.231.0.12']);
  });

  it('replaces a network whose CIDR changes and restarts the running VM on it', async () => {
    const d = await desired({ cidr: '10.232.0.0/24' });
    const { plan } = await fx.planResult(d);
    expect(plan.changes.find((x) => x.name === `${P}-net`)!.action).toBe('replace');
    expect(plan.changes.find((x) => x.name === `${P}-vm1`)!.steps.map((s) => s.op)).toEqual(['vm.stop', 'vm.start']);
    expect((await run(d)).outcome).toBe('succeeded');
    expect(fx.host.networks.get(`${P}-net`)!.def.ipv4).toEqual({ address: '10.232.0.1', prefix: 24 });
    expect(fx.host.domains.get(`${P}-vm1`)!.active).toBe(true);
  });

  it('stops a VM whose desired state becomes stopped', async () => {
    const d = await desired({ vm1State: 'stopped' });
    const c = (await fx.planResult(d)).plan.changes.find((x) => x.name === `${P}-vm1`)!;
    expect(c.fields).toContainEqual({ field: 'spec.state', before: 'running', after: 'stopped' });
    await run(d);
    expect(fx.host.domains.get(`${P}-vm1`)!.active).toBe(false);
  });

  it('prunes a VM removed from the manifests, and nothing else', async () => {
    const d = await desired({ withVm2: false });
    const { plan } = await fx.planResult(d);
    expect(plan.changes.map((c) => [c.name, c.action])).toEqual([[`${P}-vm2`, 'delete']]);
    await run(d);
    expect(fx.host.domains.has(`${P}-vm2`)).toBe(false);
    expect(await fx.store.resources.get(resourceRef('VirtualMachine', `${P}-vm2`))).toBeUndefined();
  });
});

describe('drift', () => {
  it('starts a VM stopped outside virtform, restarts a destroyed network, recreates a deleted volume', async () => {
    await run(await desired());
    fx.host.domains.get(`${P}-vm1`)!.active = false;
    fx.host.networks.get(`${P}-net`)!.active = false;
    fx.host.volumes.get(`${P}-pool`)!.delete(`${P}-data.img`);
    const { plan } = await fx.planResult(await desired());
    const byName = new Map(plan.changes.map((c) => [c.name, c]));
    expect(byName.get(`${P}-vm1`)!.reason).toMatch(/stopped \(drift\)/);
    expect(byName.get(`${P}-net`)!.reason).toMatch(/inactive \(drift\)/);
    expect(byName.get(`${P}-data`)!.action).toBe('create');
    expect(byName.get(`${P}-data`)!.reason).toMatch(/missing on the host/);
    expect((await run(await desired())).outcome).toBe('succeeded');
    expect(fx.host.domains.get(`${P}-vm1`)!.active).toBe(true);
    expect(fx.host.networks.get(`${P}-net`)!.active).toBe(true);
    expect(fx.host.volumes.get(`${P}-pool`)!.has(`${P}-data.img`)).toBe(true);
    expect((await run(await desired())).plan.noop).toBe(true);
  });
});

describe('ownership', () => {
  it('reports a conflict for a foreign object with a manifest name and blocks its dependents', async () => {
    await fx.host.defineNetwork({ name: `${P}-net`, mode: 'isolated', marker: { kind: 'Network', name: 'x', specHash: 'x' } });
    const before = fx.host.mutationCount();
    const result = await run(await desired());
    const net = result.plan.changes.find((c) => c.name === `${P}-net`)!;
    expect(net.action).toBe('conflict');
    expect(net.reason).toMatch(/not managed by virtform.*adopt/);
    expect(result.plan.blocked.get(`VirtualMachine/${P}-vm1`)).toMatch(/Network\/vftest-eng-net/);
    expect(result.outcome).toBe('failed');
    expect(fx.host.calls.filter((c) => c.endsWith(`:${P}-net`) && !/^(get|describe)/.test(c))).toEqual([`defineNetwork:${P}-net`]);
    expect(fx.host.domains.has(`${P}-vm1`)).toBe(false);
    expect(fx.host.pools.has(`${P}-pool`)).toBe(true); // independent work still completes
    expect(fx.host.mutationCount()).toBeGreaterThan(before);
  });

  it('never deletes a foreign object that took the name of a pruned resource', async () => {
    await run(await desired());
    // Someone replaces vm2 with their own domain of the same name.
    fx.host.domains.delete(`${P}-vm2`);
    await fx.host.defineDomain({ name: `${P}-vm2`, type: 'qemu', vcpus: 1, memoryKiB: 1024, disks: [], nics: [], marker: { kind: 'VirtualMachine', name: 'x', specHash: 'x' } });
    const result = await run(await desired({ withVm2: false }));
    const c = result.plan.changes.find((x) => x.name === `${P}-vm2`)!;
    expect(c.steps).toEqual([{ op: 'record.forget' }]);
    expect(fx.host.domains.has(`${P}-vm2`)).toBe(true);
  });

  it('adopts a foreign object when the manifest sets metadata.adopt', async () => {
    await fx.host.defineNetwork({ name: `${P}-net`, mode: 'isolated', marker: { kind: 'Network', name: 'x', specHash: 'x' } });
    const uuid = fx.host.networks.get(`${P}-net`)!.uuid;
    const files = labManifests({ poolPath: '/srv/pools/eng' });
    files['network.yaml'] = files['network.yaml']!.replace(`metadata: {name: ${P}-net}`, `metadata: {name: ${P}-net, adopt: true}`);
    fx.write(files);
    const result = await run(await fx.desired());
    expect(result.outcome).toBe('succeeded');
    expect(fx.host.networks.get(`${P}-net`)!.uuid).toBe(uuid);
    expect(fx.host.networks.get(`${P}-net`)!.def.ipv4?.address).toBe('10.231.0.1');
    expect((await fx.store.resources.get(resourceRef('Network', `${P}-net`)))?.uuid).toBe(uuid);
  });
});

describe('failures', () => {
  it('retries a failing step with backoff, then succeeds', async () => {
    fx.host.failNext('startDomain', `${P}-vm1`, 2);
    const retries: number[] = [];
    const result = await run(await desired(), { onEvent: (e) => { if (e.type === 'retry') retries.push(e.attempt); } });
    expect(result.outcome).toBe('succeeded');
    expect(retries).toEqual([1, 2]);
    expect(fx.host.domains.get(`${P}-vm1`)!.active).toBe(true);
  });

  it('marks a resource failed after its attempts, skips dependents, completes independent work', async () => {
    fx.host.failNext('createVolume', `${P}-base.qcow2`, Infinity);
    const result = await run(await desired());
    expect(result.outcome).toBe('failed');
    expect(result.applied!.failed.get(`Volume/${P}-base`)).toMatch(/injected failure/);
    expect(result.applied!.skipped.get(`Volume/${P}-root`)).toMatch(/Volume\/vftest-eng-base failed/);
    const rec = await fx.store.resources.get(resourceRef('Volume', `${P}-base`));
    expect(rec?.observedStatus).toBe('failed');
    expect(rec?.attempts).toBe(3);
    expect(rec?.lastError).toMatch(/injected failure/);
    expect(fx.host.domains.get(`${P}-vm2`)).toBeDefined(); // vm2 uses no volume
    expect(fx.host.domains.has(`${P}-vm1`)).toBe(false);
    // The next run, with the fault gone, converges; the reason names the earlier failure.
    fx.host.failures.clear();
    const { plan } = await fx.planResult(await desired());
    expect(plan.changes.find((c) => c.name === `${P}-base`)!.reason).toMatch(/retrying after failure/);
    expect((await run(await desired())).outcome).toBe('succeeded');
    expect((await run(await desired())).plan.noop).toBe(true);
  });
});

describe('crash recovery', () => {
  it('finishes work an interrupted run left open in the journal instead of conflicting', async () => {
    const d = await desired();
    // Simulate: the journal says a run began creating the network and the VM, libvirt has them,
    // but the run died before recording the result.
    const runId = 'crashed-run';
    await fx.store.journal.begin({ host: LOCAL_HOST, runId, kind: 'Network', name: `${P}-net`, action: 'network.ensure', intent: {} });
    await fx.host.defineNetwork({ name: `${P}-net`, mode: 'isolated', marker: { kind: 'Network', name: `${P}-net`, specHash: 'x' } });
    await fx.store.journal.begin({ host: LOCAL_HOST, runId, kind: 'Volume', name: `${P}-base`, action: 'volume.create', intent: { pool: `${P}-pool`, volName: `${P}-base.qcow2` } });
    await fx.host.definePool({ name: `${P}-pool`, path: '/srv/pools/eng', marker: { kind: 'StoragePool', name: `${P}-pool`, specHash: 'x' } });
    await fx.host.startPool(`${P}-pool`);
    await fx.host.createVolume({ pool: `${P}-pool`, name: `${P}-base.qcow2`, capacityBytes: 1, format: 'qcow2' });
    await fx.store.journal.begin({ host: LOCAL_HOST, runId, kind: 'StoragePool', name: `${P}-pool`, action: 'pool.ensure', intent: {} });

    const result = await run(d);
    expect(result.plan.changes.every((c) => c.action !== 'conflict')).toBe(true);
    expect(result.plan.changes.find((c) => c.name === `${P}-base`)!.reason).toMatch(/interrupted/);
    expect(result.outcome).toBe('succeeded');
    expect(fx.host.volumes.get(`${P}-pool`)!.get(`${P}-base.qcow2`)!.capacityBytes).toBe(64 * 1024 * 1024);
    expect(await fx.store.journal.listOpen()).toEqual([]);
    expect((await run(d)).plan.noop).toBe(true);
  });

  it('deletes a half-created object that is no longer declared', async () => {
    await fx.store.journal.begin({ host: LOCAL_HOST, runId: 'r', kind: 'VirtualMachine', name: `${P}-gone`, action: 'vm.define', intent: {} });
    await fx.host.defineDomain({ name: `${P}-gone`, type: 'qemu', vcpus: 1, memoryKiB: 1024, disks: [], nics: [], marker: { kind: 'VirtualMachine', name: `${P}-gone`, specHash: 'x' } });
    const result = await run(await desired());
    const c = result.plan.changes.find((x) => x.name === `${P}-gone`)!;
    expect(c.action).toBe('delete');
    expect(c.reason).toMatch(/interrupted/);
    expect(fx.host.domains.has(`${P}-gone`)).toBe(false);
    expect(await fx.store.journal.listOpen()).toEqual([]);
  });
});

describe('graceful shutdown', () => {
  it('an abort lets the step in flight finish, starts nothing new, and the next run completes the plan', async () => {
    const abort = new AbortController();
    const result = await run(await desired(), {
      concurrency: 1,
      signal: abort.signal,
      onEvent: (e) => { if (e.type === 'start' && e.step.kind === 'StoragePool') abort.abort(); },
    });
    const statuses = result.applied!.outcomes.map((o) => `${o.step.key}:${o.status}`);
    expect(statuses[0], statuses.join()).toBe('StoragePool/vftest-eng-pool:succeeded');
    expect(statuses.slice(1).every((s) => s.endsWith(':skipped')), statuses.join()).toBe(true);
    expect(result.applied!.outcomes.filter((o) => o.status === 'skipped').every((o) => /shutting down|skipped:/.test(o.error ?? ''))).toBe(true);
    expect(result.outcome).toBe('interrupted');
    expect(fx.host.pools.size).toBe(1);
    expect(fx.host.domains.size).toBe(0);
    expect(await fx.store.journal.listOpen()).toEqual([]);
    const next = await run(await desired());
    expect(next.outcome).toBe('succeeded');
    expect((await run(await desired())).plan.noop).toBe(true);
  });
});

describe('stop timeout', () => {
  it('a step in flight still running stopTimeoutMs after the abort is abandoned: its journal entry closed as interrupted, queued steps skipped; the rerun finishes it', async () => {
    const abort = new AbortController();
    const define = fx.host.defineNetwork.bind(fx.host);
    let hung = 0;
    fx.host.defineNetwork = (def) => {
      hung += 1;
      abort.abort();
      return new Promise<void>(() => undefined); // never returns (a call stuck on the host)
    };
    const t0 = Date.now();
    const result = await run(await desired(), { concurrency: 2, signal: abort.signal, stopTimeoutMs: 150 });
    expect(Date.now() - t0).toBeLessThan(3000);
    expect(hung).toBe(1);
    expect(result.outcome).toBe('interrupted');
    const net = result.applied!.outcomes.find((o) => o.step.key === `Network/${P}-net`)!;
    expect(net.status).toBe('skipped');
    expect(net.error).toMatch(/^interrupted: still running 0.15 s after the stop was requested \(--stop-timeout\); abandoned, the next run finishes it/);
    expect(result.applied!.outcomes.every((o) => o.status !== 'failed')).toBe(true);
    // The journal is consistent: nothing open; the abandoned entry failed (so the next run takes it up).
    expect(await fx.store.journal.listOpen()).toEqual([]);
    const unresolved = await fx.store.journal.listUnresolved();
    expect(unresolved.map((e) => [`${e.kind}/${e.name}`, e.status, e.error?.slice(0, 12)])).toEqual([[`Network/${P}-net`, 'failed', 'interrupted:']]);
    fx.host.defineNetwork = define;
    const next = await run(await desired());
    expect(next.outcome).toBe('succeeded');
    expect(fx.host.networks.get(`${P}-net`)!.active).toBe(true);
    expect((await run(await desired())).plan.noop).toBe(true);
    expect(await fx.store.journal.listUnresolved()).toEqual([]);
  });

  it('steps that end within the stop timeout are not abandoned', async () => {
    const abort = new AbortController();
    const result = await run(await desired(), {
      concurrency: 1, signal: abort.signal, stopTimeoutMs: 5_000,
      onEvent: (e) => { if (e.type === 'start' && e.step.kind === 'StoragePool') abort.abort(); },
    });
    expect(result.applied!.outcomes[0]!.status).toBe('succeeded');
    expect(result.applied!.outcomes.filter((o) => /interrupted/.test(o.error ?? ''))).toEqual([]);
    expect(await fx.store.journal.listUnresolved()).toEqual([]);
  });
});

describe('lost connection', () => {
  it('keeps the journal entry open when a call\'s outcome is unknown, stops the run, and the next run claims the object', async () => {
    const original = fx.host.createVolume.bind(fx.host);
    let dropped = false;
    fx.host.createVolume = async (def) => {
      const v = await original(def); // libvirtd did the work …
      if (def.name === `${P}-base.qcow2` && !dropped) {
        dropped = true; // … but the connection died before the reply
        throw new HostError('connection', 'connection closed by the peer (the call was in flight; its outcome on the host is unknown)');
      }
      return v;
    };
    const first = await run(await desired(), { concurrency: 1 });
    expect(first.outcome).toBe('failed');
    expect(first.applied!.failed.get(`Volume/${P}-base`)).toMatch(/outcome on the host is unknown/);
    expect(first.applied!.outcomes.find((o) => o.step.key === `Volume/${P}-base`)!.attempts).toBe(1); // no retry
    expect(first.applied!.outcomes.filter((o) => o.status === 'skipped').some((o) => /connection to libvirt lost/.test(o.error ?? ''))).toBe(true);
    const open = await fx.store.journal.listOpen();
    expect(open.map((e) => `${e.kind}/${e.name}:${e.action}`)).toEqual([`Volume/${P}-base:volume.create`]);

    const second = await run(await desired());
    const base = second.plan.changes.find((c) => c.name === `${P}-base`)!;
    expect(base.action).toBe('create');
    expect(base.reason).toMatch(/interrupted/);
    expect(second.outcome).toBe('succeeded');
    expect(await fx.store.journal.listOpen()).toEqual([]);
    expect((await run(await desired())).plan.noop).toBe(true);
  });
});

describe('a step that failed after creating something', () => {
  it('keeps the object virtform made its own: the next run finishes it instead of reporting a conflict', async () => {
    fx.host.failNext('startNetwork', `${P}-net`, Infinity); // defined, then the start fails every time
    const first = await run(await desired());
    expect(first.outcome).toBe('failed');
    expect(fx.host.networks.has(`${P}-net`)).toBe(true);
    expect(await fx.store.resources.get(resourceRef('Network', `${P}-net`)).then((r) => r?.uuid ?? null)).toBeNull();
    fx.host.failures.clear();
    const second = await run(await desired());
    const net = second.plan.changes.find((c) => c.name === `${P}-net`)!;
    expect(net.action).not.toBe('conflict');
    expect(second.outcome).toBe('succeeded');
    expect(fx.host.networks.get(`${P}-net`)!.active).toBe(true);
    expect(await fx.store.journal.listUnresolved()).toEqual([]);
    expect((await run(await desired())).plan.noop).toBe(true);
  });
});

describe('retrying a define', () => {
  it('redefines with the UUID of what the failed attempt created, instead of failing with "already exists"', async () => {
    fx.host.failNext('setPoolAutostart', `${P}-pool`, 1); // attempt 1: defined + started, then fails
    fx.host.failNext('setDomainAutostart', `${P}-vm2`, 1);
    const result = await run(await desired());
    expect(result.outcome, JSON.stringify([...result.applied!.failed])).toBe('succeeded');
    const pool = result.applied!.outcomes.find((o) => o.step.key === `StoragePool/${P}-pool`)!;
    expect(pool.attempts).toBe(2);
    expect((await fx.store.resources.get(resourceRef('StoragePool', `${P}-pool`)))?.uuid).toBe(fx.host.pools.get(`${P}-pool`)!.uuid);
    expect((await fx.store.resources.get(resourceRef('VirtualMachine', `${P}-vm2`)))?.uuid).toBe(fx.host.domains.get(`${P}-vm2`)!.uuid);
    expect((await run(await desired())).plan.noop).toBe(true);
  });
});

describe('no data destroyed without consent', () => {
  beforeEach(async () => {
    await run(await desired());
  });
  const vols = () => fx.host.volumes.get(`${P}-pool`)!;

  it('bug 3: shrinking a base volume replaces its clone with it and restarts the VM, and only with consent', async () => {
    const baseBefore = vols().get(`${P}-base.qcow2`)!;
    const rootBefore = vols().get(`${P}-root.qcow2`)!;
    const d = await desired({ baseCapacity: '32MiB' });
    const held = await run(d);
    expect(held.outcome).toBe('held');
    expect([...held.held.keys()].sort()).toEqual([`VirtualMachine/${P}-vm1`, `Volume/${P}-base`, `Volume/${P}-root`]);
    expect(held.plan.held.get(`Volume/${P}-base`)).toMatch(/would destroy the contents of Volume\/vftest-eng-base .*backs Volume\/vftest-eng-root/);
    expect(held.plan.held.get(`Volume/${P}-root`)).toMatch(/attached to VirtualMachine\/vftest-eng-vm1/);
    const root = held.plan.changes.find((c) => c.key === `Volume/${P}-root`)!;
    expect(root.action).toBe('replace');
    expect(root.reason).toMatch(/backing volume Volume\/vftest-eng-base is replaced/);
    expect(held.plan.steps).toEqual([]);
    expect(held.mutations).toBe(0);
    expect(vols().get(`${P}-base.qcow2`)).toBe(baseBefore);
    expect(vols().get(`${P}-root.qcow2`)).toBe(rootBefore);
    expect(fx.host.domains.get(`${P}-vm1`)!.active).toBe(true);
    expect((await fx.store.revisions.latest())?.outcome).toBe('held');
    expect((await fx.store.events.recent(20)).filter((e) => e.level === 'warn' && /^held \(data loss/.test(e.message)).map((e) => e.name).sort())
      .toEqual([`${P}-base`, `${P}-root`, `${P}-vm1`]);
    // Still pending, not forgotten: the next plan holds the same changes.
    expect((await fx.planResult(d)).plan.held.size).toBe(3);

    fx.host.calls = [];
    const done = await run(d, { allowDataLoss: true });
    expect(done.outcome).toBe('succeeded');
    expect(done.held.size).toBe(0);
    const mutating = fx.host.calls.filter((c) => /^(delete|create|stop|start)/.test(c));
    expect(mutating).toEqual([
      `stopDomain:${P}-vm1`, `deleteVolume:${P}-root.qcow2`, `deleteVolume:${P}-base.qcow2`,
      `createVolume:${P}-base.qcow2`, `createVolume:${P}-root.qcow2`, `startDomain:${P}-vm1`,
    ]);
    expect(vols().get(`${P}-base.qcow2`)!.capacityBytes).toBe(32 * 1024 * 1024);
    expect(vols().get(`${P}-root.qcow2`)).not.toBe(rootBefore);
    expect(fx.host.domains.get(`${P}-vm1`)!.active).toBe(true);
    expect((await run(d)).plan.noop).toBe(true);
  });

  it('--allow-empty alone tears down only what holds no data; the rest is held with what needs it', async () => {
    fx.write({});
    // Seven deletions, held ones included, are more than the default limit (5): refused as a whole.
    const braked = await run(await fx.desired());
    expect(braked.outcome).toBe('braked');
    expect(braked.plan.brake).toMatchObject({ braked: true, max: 5, source: 'default' });
    expect(braked.plan.brake!.deletions).toHaveLength(7);
    expect(fx.host.domains.size).toBe(2);
    const result = await run(await fx.desired(), { maxDeletions: 20 });
    expect(result.outcome).toBe('held');
    expect([...result.held.keys()].sort()).toEqual([
      `Network/${P}-net`, `StoragePool/${P}-pool`, `VirtualMachine/${P}-vm1`, `Volume/${P}-base`, `Volume/${P}-data`, `Volume/${P}-root`,
    ]);
    expect(fx.host.domains.has(`${P}-vm2`)).toBe(false); // no disks: deleted
    expect(fx.host.domains.has(`${P}-vm1`)).toBe(true);
    expect([...vols().keys()].sort()).toEqual([`${P}-base.qcow2`, `${P}-data.img`, `${P}-root.qcow2`]);
    expect(await fx.store.resources.get(resourceRef('Volume', `${P}-data`))).toBeDefined();
    // A second run without consent still holds them: the VM is not gone, so its disks still count as attached.
    const again = await run(await fx.desired(), { maxDeletions: 20 });
    expect(again.outcome).toBe('held');
    expect(again.held.has(`Volume/${P}-data`)).toBe(true);
    expect(vols().size).toBe(3);
    const torn = await run(await fx.desired(), { allowDataLoss: true, maxDeletions: 'all' });
    expect(torn.outcome).toBe('succeeded');
    expect(fx.host.pools.size + fx.host.networks.size + fx.host.domains.size).toBe(0);
    expect(await fx.store.resources.list()).toEqual([]);
  });

  it('deletes a blank, never attached volume without asking', async () => {
    const files = labManifests({ poolPath: '/srv/pools/eng' });
    fx.write({ ...files, 'scratch.yaml': `apiVersion: virtform.dev/v1\nkind: Volume\nmetadata: {name: ${P}-scratch}\nspec: {pool: ${P}-pool, capacity: 1MiB}\n` });
    await run(await fx.desired());
    expect(vols().has(`${P}-scratch.qcow2`)).toBe(true);
    fx.write(files);
    const result = await run(await fx.desired());
    expect(result.outcome).toBe('succeeded');
    expect(result.plan.changes.find((c) => c.name === `${P}-scratch`)!.dataLoss).toBeUndefined();
    expect(vols().has(`${P}-scratch.qcow2`)).toBe(false);
  });

  it('deletionPolicy: Retain releases the file when the manifest goes; a manifest with adopt takes it back', async () => {
    const files = labManifests({ poolPath: '/srv/pools/eng' });
    const keep = (meta: string) => `apiVersion: virtform.dev/v1\nkind: Volume\nmetadata: {name: ${P}-keep${meta}}\nspec: {pool: ${P}-pool, capacity: 1MiB}\n`;
    fx.write({ ...files, 'keep.yaml': keep(', deletionPolicy: Retain') });
    expect((await run(await fx.desired())).outcome).toBe('succeeded');
    expect((await fx.store.resources.get(resourceRef('Volume', `${P}-keep`)))?.details).toMatchObject({ config: { deletionPolicy: 'Retain' } });
    const file = vols().get(`${P}-keep.qcow2`)!;

    fx.write(files);
    const released = await run(await fx.desired());
    const c = released.plan.changes.find((x) => x.name === `${P}-keep`)!;
    expect(c.release).toEqual({ policy: 'Retain', kept: `file /srv/pools/eng/${P}-keep.qcow2 kept` });
    expect(c.steps).toEqual([{ op: 'record.forget' }]);
    expect(released.plan.summary).toMatchObject({ delete: 1, release: 1, held: 0 });
    expect(released.outcome).toBe('succeeded');
    expect(vols().get(`${P}-keep.qcow2`)).toBe(file);
    expect(await fx.store.resources.get(resourceRef('Volume', `${P}-keep`))).toBeUndefined();
    expect((await run(await fx.desired())).plan.noop).toBe(true);

    fx.write({ ...files, 'keep.yaml': keep('') });
    expect((await fx.planResult(await fx.desired())).plan.changes.find((x) => x.name === `${P}-keep`)!.action).toBe('conflict');
    fx.write({ ...files, 'keep.yaml': keep(', adopt: true') });
    const adopted = await run(await fx.desired());
    expect(adopted.outcome).toBe('succeeded');
    expect(adopted.plan.changes.find((x) => x.name === `${P}-keep`)!.reason).toMatch(/adopting existing volume/);
    expect(vols().get(`${P}-keep.qcow2`)).toBe(file);
    expect((await fx.store.resources.get(resourceRef('Volume', `${P}-keep`)))?.uuid).toBe(`/srv/pools/eng/${P}-keep.qcow2`);
  });

  it('switching deletionPolicy is recorded without touching the volume', async () => {
    const files = labManifests({ poolPath: '/srv/pools/eng' });
    const keep = (meta: string) => `apiVersion: virtform.dev/v1\nkind: Volume\nmetadata: {name: ${P}-keep${meta}}\nspec: {pool: ${P}-pool, capacity: 1MiB}\n`;
    fx.write({ ...files, 'keep.yaml': keep('') });
    await run(await fx.desired());
    fx.write({ ...files, 'keep.yaml': keep(', deletionPolicy: Retain') });
    const c = (await fx.planResult(await fx.desired())).plan.changes.find((x) => x.name === `${P}-keep`)!;
    expect(c.action).toBe('update');
    expect(c.reason).toBe('deletion policy changed (recorded only)');
    fx.host.calls = [];
    await run(await fx.desired());
    expect(fx.host.calls.filter((x) => /^(delete|create|resize)/.test(x))).toEqual([]);
    expect((await fx.store.resources.get(resourceRef('Volume', `${P}-keep`)))?.details).toMatchObject({ config: { deletionPolicy: 'Retain' } });
  });
});
