/**
 * Deep drift on the in-memory host: definitions changed behind virtform's back (what `virsh
 * net-update`, `pool-define`, `vol-resize` or a recreated file do) are compared with the
 * manifests, shown as drift, and corrected; a converged host still plans nothing.
 */
import { beforeEach, describe, expect, it } from 'vitest';
import { labManifests, writeManifests } from '../../support/manifests.js';
import { useHarness } from '../../support/harness.js';
import type { ResourceChange } from '../../../src/reconcile/diff.js';

const P = 'vftest-eng';

// the lab applied and converged before each test
const fx = useHarness({ manifests: labManifests({ poolPath: '/srv/pools/eng' }) });
const run = async (dryRun = false) => fx.reconcile(undefined, { dryRun });
const changeOf = (changes: ResourceChange[], key: string): ResourceChange | undefined => changes.find((c) => c.key === key);

beforeEach(async () => {
  expect((await run()).outcome).toBe('succeeded');
  expect((await run(true)).plan.noop).toBe(true);
});

describe('deep drift: networks', () => {
  it('restores a DHCP host deleted outside virtform, from the host\'s real list', async () => {
    const net = fx.host.networks.get(`${P}-net`)!;
    net.def = { ...net.def, dhcp: { ...net.def.dhcp!, hosts: [] } };
    const plan = (await run(true)).plan;
    const c = changeOf(plan.changes, `Network/${P}-net`)!;
    expect(c.action).toBe('update');
    expect(c.drift).toBe(true);
    expect(c.reason).toMatch(/changed outside virtform \(drift\)/);
    expect(c.fields.every((f) => f.drift)).toBe(true);
    expect(c.steps).toEqual([expect.objectContaining({ op: 'network.ensure', addHosts: [{ mac: '52:54:00:aa:00:01', ip: '10.231.0.11' }], deleteHosts: [] })]);
    expect((await run()).outcome).toBe('succeeded');
    expect(fx.host.networks.get(`${P}-net`)!.def.dhcp!.hosts).toEqual([{ mac: '52:54:00:aa:00:01', ip: '10.231.0.11' }]);
    expect((await run(true)).plan.noop).toBe(true);
  });

  it('removes a DHCP host added outside virtform', async () => {
    await fx.host.updateNetworkDhcpHost(`${P}-net`, 'add', { mac: '52:54:00:aa:00:99', ip: '10.231.0.99' });
    const c = changeOf((await run(true)).plan.changes, `Network/${P}-net`)!;
    expect(c.steps).toEqual([expect.objectContaining({ addHosts: [], deleteHosts: [{ mac: '52:54:00:aa:00:99', ip: '10.231.0.99' }] })]);
    await run();
    expect(fx.host.networks.get(`${P}-net`)!.def.dhcp!.hosts.map((h) => h.mac)).toEqual(['52:54:00:aa:00:01']);
  });

  it('recreates a network whose DHCP range was changed outside virtform, keeping its UUID, and restarts its running VM', async () => {
    const net = fx.host.networks.get(`${P}-net`)!;
    const uuid = net.uuid;
    net.def = { ...net.def, dhcp: { ...net.def.dhcp!, end: '10.231.0.150' } };
    const plan = (await run(true)).plan;
    const c = changeOf(plan.changes, `Network/${P}-net`)!;
    expect(c.action).toBe('replace');
    expect(c.drift).toBe(true);
    expect(c.fields).toContainEqual({ field: 'spec.dhcpRange.end', before: '10.231.0.150', after: '10.231.0.199', drift: true });
    expect(changeOf(plan.changes, `VirtualMachine/${P}-vm1`)!.reason).toMatch(/Network\/vftest-eng-net is replaced/);
    expect((await run()).outcome).toBe('succeeded');
    expect(fx.host.networks.get(`${P}-net`)!.def.dhcp!.end).toBe('10.231.0.199');
    expect(fx.host.networks.get(`${P}-net`)!.uuid).toBe(uuid);
    expect((await run(true)).plan.noop).toBe(true);
  });

  it('restarts a running VM on a network it has to start again', async () => {
    await fx.host.stopNetwork(`${P}-net`);
    const plan = (await run(true)).plan;
    const vm = changeOf(plan.changes, `VirtualMachine/${P}-vm1`)!;
    expect(vm.reason).toMatch(/Network\/vftest-eng-net is started again/);
    expect(vm.steps.map((s) => s.op)).toEqual(['vm.stop', 'vm.start']);
    expect(changeOf(plan.changes, `VirtualMachine/${P}-vm2`)).toBeUndefined(); // declared stopped
    const ids = fx.host.domains.get(`${P}-vm1`)!.id;
    expect((await run()).outcome).toBe('succeeded');
    expect(fx.host.domains.get(`${P}-vm1`)!.active).toBe(true);
    expect(fx.host.domains.get(`${P}-vm1`)!.id).not.toBe(ids);
  });

  it('adopting a network writes the declared definition with virtform\'s marker', async () => {
    const files = labManifests({ poolPath: '/srv/pools/eng' });
    files['network.yaml'] = files['network.yaml']!.replace(`metadata: {name: ${P}-net}`, `metadata: {name: ${P}-net, adopt: true}`);
    writeManifests(fx.mdir, files);
    // The network is taken from virtform's records, as if someone else had created it.
    await fx.store.resources.delete('Network', `${P}-net`);
    const net = fx.host.networks.get(`${P}-net`)!;
    net.def = { ...net.def, marker: undefined as never };
    const c = changeOf((await run(true)).plan.changes, `Network/${P}-net`)!;
    expect(c.adopt).toBe(true);
    await run();
    expect(fx.host.networks.get(`${P}-net`)!.def.marker).toMatchObject({ kind: 'Network', name: `${P}-net` });
  });
});

describe('deep drift: pools and volumes', () => {
  it('puts a pool redefined at another path back at its declared path', async () => {
    const pool = fx.host.pools.get(`${P}-pool`)!;
    pool.def = { ...pool.def, path: '/srv/elsewhere' };
    const c = changeOf((await run(true)).plan.changes, `StoragePool/${P}-pool`)!;
    expect(c.action).toBe('replace');
    expect(c.drift).toBe(true);
    expect(c.fields).toEqual([{ field: 'spec.path', before: '/srv/elsewhere', after: '/srv/pools/eng', drift: true }]);
  });

  it('grows back a volume shrunk outside virtform, and sees its real capacity, not the recorded one', async () => {
    fx.host.volumes.get(`${P}-pool`)!.get(`${P}-data.img`)!.capacityBytes = 16 * 1024 * 1024;
    const c = changeOf((await run(true)).plan.changes, `Volume/${P}-data`)!;
    expect(c.action).toBe('update');
    expect(c.drift).toBe(true);
    expect(c.fields).toEqual([{ field: 'spec.capacityBytes', before: 16 * 1024 * 1024, after: 32 * 1024 * 1024, drift: true }]);
    await run();
    expect(fx.host.volumes.get(`${P}-pool`)!.get(`${P}-data.img`)!.capacityBytes).toBe(32 * 1024 * 1024);
    expect((await run(true)).plan.noop).toBe(true);
  });

  it('plans a replace (not a silent "resize") when the real capacity is above the declared one', async () => {
    fx.host.volumes.get(`${P}-pool`)!.get(`${P}-data.img`)!.capacityBytes = 40 * 1024 * 1024;
    const c = changeOf((await run(true)).plan.changes, `Volume/${P}-data`)!;
    expect(c.action).toBe('replace');
    expect(c.notes).toContain('the volume is recreated empty: its current contents are lost');
  });

  it('replaces a volume whose file has another format or lost its backing store', async () => {
    const vols = fx.host.volumes.get(`${P}-pool`)!;
    vols.get(`${P}-data.img`)!.format = 'qcow2';
    delete vols.get(`${P}-root.qcow2`)!.backingPath;
    const plan = (await run(true)).plan;
    expect(changeOf(plan.changes, `Volume/${P}-data`)).toMatchObject({ action: 'replace', drift: true });
    expect(changeOf(plan.changes, `Volume/${P}-root`)).toMatchObject({ action: 'replace', drift: true, reason: expect.stringMatching(/backing volume/) });
  });

  it('recreates a pool removed with its volumes, and the volumes, in one run', async () => {
    for (const v of ['base.qcow2', 'root.qcow2', 'data.img']) fx.host.volumes.get(`${P}-pool`)!.delete(`${P}-${v}`);
    fx.host.pools.delete(`${P}-pool`);
    await fx.host.stopDomain(`${P}-vm1`);
    const first = await run();
    expect(first.outcome).toBe('succeeded');
    expect([...fx.host.volumes.get(`${P}-pool`)!.keys()].sort()).toEqual([`${P}-base.qcow2`, `${P}-data.img`, `${P}-root.qcow2`]);
    expect(fx.host.domains.get(`${P}-vm1`)!.active).toBe(true);
    expect((await run(true)).plan.noop).toBe(true);
  });

  it('keeps the files of a pool that was only inactive: checked once it is active, not recreated', async () => {
    fx.host.pools.get(`${P}-pool`)!.active = false;
    const before = new Map(fx.host.volumes.get(`${P}-pool`)!);
    const plan = (await run(true)).plan;
    expect(changeOf(plan.changes, `Volume/${P}-data`)!.steps).toEqual([{ op: 'volume.create', ifMissing: true }]);
    fx.host.calls = [];
    expect((await run()).outcome).toBe('succeeded');
    expect(fx.host.calls.filter((c) => c.startsWith('createVolume'))).toEqual([]);
    expect(new Map(fx.host.volumes.get(`${P}-pool`)!)).toEqual(before);
    expect((await run(true)).plan.noop).toBe(true);
  });
});

describe('a kept file of an inactive pool whose manifest grew', () => {
  it('is grown in the same run, not recorded at the new size while still small (and called drift next run)', async () => {
    fx.host.pools.get(`${P}-pool`)!.active = false;
    writeManifests(fx.mdir, labManifests({ poolPath: '/srv/pools/eng', dataCapacity: '64MiB' }));
    const plan = (await run(true)).plan;
    expect(changeOf(plan.changes, `Volume/${P}-data`)!.steps).toEqual([{ op: 'volume.create', ifMissing: true }]);
    fx.host.calls = [];
    expect((await run()).outcome).toBe('succeeded');
    expect(fx.host.calls.filter((c) => c.startsWith('createVolume'))).toEqual([]);
    expect(fx.host.volumes.get(`${P}-pool`)!.get(`${P}-data.img`)!.capacityBytes).toBe(64 * 1024 * 1024);
    expect((await run(true)).plan.noop).toBe(true);
  });
});

describe('host conflicts found while planning, not at apply', () => {
  it('a new network whose CIDR overlaps a network already on the host is a conflict', async () => {
    await fx.host.defineNetwork({ name: 'other-net', mode: 'isolated', ipv4: { address: '10.232.0.1', prefix: 16 }, marker: undefined as never });
    const files = labManifests({ poolPath: '/srv/pools/eng', cidr: '10.232.5.0/24', prefix: 'vftest-two' });
    writeManifests(fx.mdir, {
      ...labManifests({ poolPath: '/srv/pools/eng' }),
      'network2.yaml': files['network.yaml']!.replace(/vftest-two-net/g, 'vftest-eng-net2').replace('52:54:00:aa:00:01', '52:54:00:aa:00:02'),
    });
    const c = changeOf((await run(true)).plan.changes, 'Network/vftest-eng-net2')!;
    expect(c.action).toBe('conflict');
    expect(c.reason).toBe('CIDR 10.232.5.0/24 overlaps network other-net (10.232.0.0/16) on the host; choose another CIDR');
    expect((await run()).outcome).toBe('failed');
    expect(fx.host.networks.has('vftest-eng-net2')).toBe(false);
  });

  it('a new pool inside another pool\'s directory is a conflict', async () => {
    await fx.host.definePool({ name: 'other-pool', path: '/srv/pools', marker: undefined as never });
    writeManifests(fx.mdir, {
      ...labManifests({ poolPath: '/srv/pools/eng' }),
      'pool2.yaml': 'apiVersion: virtform.dev/v1\nkind: StoragePool\nmetadata: {name: vftest-eng-pool2}\nspec: {path: /srv/pools/two}\n',
    });
    const c = changeOf((await run(true)).plan.changes, 'StoragePool/vftest-eng-pool2')!;
    expect(c.action).toBe('conflict');
    expect(c.reason).toBe('path /srv/pools/two lies inside the directory of pool other-pool (/srv/pools) on the host');
  });
});

describe('interrupted runs whose work is complete on the host', () => {
  it('a network an interrupted run created and started, but never recorded, is recorded by the rerun', async () => {
    // As after a SIGKILL between "network defined and started" and "recorded": no record, an open journal entry.
    await fx.store.resources.delete('Network', `${P}-net`);
    await fx.store.journal.begin({ runId: 'killed', kind: 'Network', name: `${P}-net`, action: 'network.ensure', intent: { op: 'network.ensure' } });
    const c = changeOf((await run(true)).plan.changes, `Network/${P}-net`)!;
    expect(c).toMatchObject({ action: 'update', reason: 'finishing an operation interrupted in an earlier run', ownership: 'owned' });
    expect((await run()).outcome).toBe('succeeded');
    expect((await fx.store.resources.get('Network', `${P}-net`))?.uuid).toBe(fx.host.networks.get(`${P}-net`)!.uuid);
    const again = (await run(true)).plan;
    expect(again.noop).toBe(true);
  });
});
