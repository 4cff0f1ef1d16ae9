/**
 * VM addresses in the status report and `reconcile --wait`'s waiting, on the FakeHost: what is
 * read from where (DHCP leases of virtform's networks, the interface query for other networks),
 * how many calls it takes for N VMs, and when the wait ends (ready, timeout, a VM not running).
 */
import { describe, expect, it } from 'vitest';
import { FAST_RETRY, useHarness } from '../../support/harness.js';
import { scenario } from '../../support/scenario.js';
import type { Desired } from '../../../src/reconcile/desired.js';
import {
  buildStatus, managedNetworks, observeAddresses, observeForStatus, recordedNics, waitForAddresses, type AddressTarget,
} from '../../../src/status/index.js';
import { addressCell, renderTable } from '../../../src/cli/commands/status.js';
import { renderAddresses } from '../../../src/cli/wait.js';

const P = 'vftest-addr';
const fx = useHarness({ dirPrefix: 'vftest-addr-', manifestDir: 'm', retry: { ...FAST_RETRY, maxAttempts: 1 } });

/** A network with DHCP and one without; `vms` VMs on the first (and with `nodhcp` on the second too). */
function manifests(o: { vms: number; state?: 'running' | 'stopped'; secondNic?: 'nodhcp' | 'foreign' }) {
  const s = scenario()
    .network(`${P}-net`, { cidr: '10.232.0.0/24', dhcp: { start: '10.232.0.100', end: '10.232.0.199' } })
    .network(`${P}-plain`, { cidr: '10.232.1.0/24' });
  for (let i = 1; i <= o.vms; i++) {
    const n = i.toString(16).padStart(2, '0');
    s.vm(`${P}-vm${i}`, {
      state: o.state ?? 'running', disks: [],
      nics: [{ network: `${P}-net`, mac: `52:54:00:ad:00:${n}` }, ...(o.secondNic === 'nodhcp' ? [{ network: `${P}-plain`, mac: `52:54:00:ad:01:${n}` }] : [])],
    });
  }
  return s;
}

async function apply(o: Parameters<typeof manifests>[0]): Promise<Desired> {
  const d = await fx.desired(manifests(o));
  const r = await fx.reconcile(d);
  expect(r.outcome).toMatch(/succeeded|noop/);
  return d;
}

async function status(d?: Desired) {
  const records = await fx.store.resources.list();
  const view = await observeForStatus(fx.host, records, d?.resources);
  return { view, ...buildStatus({ records, declared: d?.resources, host: view, revisions: new Map() }) };
}

const calls = (from: number, prefix?: string): string[] => fx.host.calls.slice(from).filter((c) => !prefix || c.startsWith(prefix));

describe('status: addresses of running VMs', () => {
  it('per NIC by MAC from the DHCP leases of virtform networks, source lease; rows, table and JSON fields', async () => {
    const d = await apply({ vms: 2, secondNic: 'nodhcp' });
    const before = await status(d);
    const vm1 = before.resources.find((r) => r.name === `${P}-vm1`)!;
    expect(vm1).toMatchObject({ addressesReady: false, addressesNote: expect.stringContaining('waiting for an address on 52:54:00:ad:00:01') });
    expect(vm1.addresses).toEqual([
      { mac: '52:54:00:ad:00:01', network: `${P}-net`, dhcp: true, addresses: [] },
      { mac: '52:54:00:ad:01:01', network: `${P}-plain`, dhcp: false, addresses: [] },
    ]);
    expect(addressCell(vm1)).toBe('waiting; -');

    const lease = fx.host.giveLease(`${P}-net`, '52:54:00:AD:00:01', { hostname: 'vm1' });
    const after = await status(d);
    const row = after.resources.find((r) => r.name === `${P}-vm1`)!;
    expect(row.addresses![0]).toEqual({
      mac: '52:54:00:ad:00:01', network: `${P}-net`, dhcp: true,
      addresses: [{ ip: lease.ip, prefix: 24, family: 'ipv4', source: 'lease', hostname: 'vm1' }],
    });
    // The NIC on the network without DHCP is not waited for: the VM is ready with one address.
    expect(row.addressesReady).toBe(true);
    expect(row.addressesNote).toBe(`not waited for (network without DHCP): 52:54:00:ad:01:01 (${P}-plain)`);
    expect(addressCell(row)).toBe(`${lease.ip}/24 (lease); -`);
    const table = renderTable(after.resources);
    expect(table.split('\n')[0]).toMatch(/REVISION\s+ADDRESSES\s+CONDITIONS\s+LAST ERROR/);
    expect(table).toContain(`${lease.ip}/24 (lease); -`);
    // Other kinds carry null; a VM's lease of another network is not its own.
    expect(after.resources.find((r) => r.kind === 'Network')).toMatchObject({ addresses: null, addressesReady: null, addressesNote: null });
    expect(after.resources.find((r) => r.name === `${P}-vm2`)).toMatchObject({ addressesReady: false });
    expect(JSON.parse(JSON.stringify(row))).toMatchObject({ addresses: expect.any(Array), addressesReady: true });
  });

  it('a lease from before the VM\'s last start (expiry − lease time) is not its address; one from after it is', async () => {
    const d = await apply({ vms: 1 });
    const stale = fx.host.giveLease(`${P}-net`, '52:54:00:ad:00:01');
    // Handed out 10 minutes ago (expires in 50): before virtform started this domain.
    stale.expiresAt = Math.floor(Date.now() / 1000) + 3000;
    const rec = (await fx.store.resources.list()).find((r) => r.name === `${P}-vm1`)!;
    expect((rec.details.facts as { startedAt?: unknown }).startedAt).toMatchObject({ domainId: expect.any(Number) });
    const before = (await status(d)).resources.find((r) => r.name === `${P}-vm1`)!;
    expect(before.addressesReady).toBe(false);
    expect(before.addresses![0]!.addresses).toEqual([]);
    // Renewed at the guest's boot: a fresh lease counts.
    stale.expiresAt = Math.floor(Date.now() / 1000) + 3600;
    const after = (await status(d)).resources.find((r) => r.name === `${P}-vm1`)!;
    expect(after.addressesReady).toBe(true);
    expect(after.addresses![0]!.addresses.map((x) => x.ip)).toEqual([stale.ip]);
  });

  it('stopped VMs are not asked about (a lease outlives its VM): addresses null, not ready, no interface query', async () => {
    fx.host.guestDhcp = true;
    const d = await apply({ vms: 1 });
    expect((await status(d)).resources.find((r) => r.name === `${P}-vm1`)!.addressesReady).toBe(true);
    await fx.host.stopDomain(`${P}-vm1`);
    const c0 = fx.host.calls.length;
    const s = await status(d);
    expect(s.resources.find((r) => r.name === `${P}-vm1`)).toMatchObject({ addresses: null, addressesReady: false, addressesNote: null });
    expect(calls(c0, 'networkLeases')).toEqual([]);
    expect(calls(c0, 'domainInterfaceAddresses')).toEqual([]);
  });

  it('bounded calls: status of N running VMs on one virtform network = snapshot + one lease read, whatever N', async () => {
    fx.host.guestDhcp = true;
    for (const n of [1, 10, 50]) {
      await fx.fresh();
      fx.host.guestDhcp = true;
      const d = await apply({ vms: n });
      const c0 = fx.host.calls.length;
      const s = await status(d);
      expect(calls(c0)).toEqual(['snapshot:*', `networkLeases:${P}-net`]);
      expect(s.resources.filter((r) => r.kind === 'VirtualMachine' && r.addressesReady)).toHaveLength(n);
    }
  });

  it('NICs on other networks: the interface query, lease then agent then ARP, until each has an address; the agent answer "not configured" is remembered', async () => {
    await apply({ vms: 1 });
    // A network virtform does not manage, with DHCP, and a VM NIC on it (added outside virtform).
    await fx.host.defineNetwork({ name: 'other', mode: 'isolated', ipv4: { address: '10.233.0.1', prefix: 24 }, dhcp: { start: '10.233.0.10', end: '10.233.0.20', hosts: [] }, marker: undefined as never });
    await fx.host.startNetwork('other');
    const snap = await fx.host.snapshot();
    const targets: AddressTarget[] = [{ name: `${P}-vm1`, nics: [{ mac: '52:54:00:ad:00:01', network: `${P}-net` }, { mac: '52:54:00:ee:00:01', network: 'other' }] }];
    const dom = fx.host.domains.get(`${P}-vm1`)!;
    dom.live = { ...dom.live!, nics: [...dom.live!.nics, { network: 'other', mac: '52:54:00:ee:00:01', model: 'virtio' }] };
    const managed = managedNetworks(await fx.store.resources.list());
    expect(managed).toEqual(new Map([[`${P}-net`, true], [`${P}-plain`, false]]));

    const noAgent = new Set<string>();
    let c0 = fx.host.calls.length;
    let r = await observeAddresses(fx.host, snap, targets, managed, { noAgent });
    // lease, agent (not configured), arp: three queries, none answered.
    expect(calls(c0)).toEqual(['describeNetwork:other', `networkLeases:${P}-net`, `domainInterfaceAddresses:${P}-vm1`, `domainInterfaceAddresses:${P}-vm1`, `domainInterfaceAddresses:${P}-vm1`]);
    expect(r.vms.get(`${P}-vm1`)).toMatchObject({ ready: false, nics: [{ dhcp: true, addresses: [] }, { network: 'other', dhcp: true, addresses: [] }] });
    expect(noAgent.size).toBe(1);

    fx.host.arp.set('52:54:00:ee:00:01', '10.233.0.15');
    c0 = fx.host.calls.length;
    r = await observeAddresses(fx.host, snap, targets, managed, { noAgent });
    // The agent is not asked again; ARP answers.
    expect(calls(c0, 'domainInterfaceAddresses')).toHaveLength(2);
    expect(r.vms.get(`${P}-vm1`)!.nics![1]!.addresses).toEqual([{ ip: '10.233.0.15', prefix: 0, family: 'ipv4', source: 'arp' }]);

    fx.host.giveLease('other', '52:54:00:ee:00:01', { ip: '10.233.0.12' });
    c0 = fx.host.calls.length;
    r = await observeAddresses(fx.host, snap, targets, managed, { noAgent });
    expect(calls(c0, 'domainInterfaceAddresses')).toHaveLength(1);
    expect(r.vms.get(`${P}-vm1`)!.nics![1]!.addresses).toEqual([{ ip: '10.233.0.12', prefix: 24, family: 'ipv4', source: 'lease' }]);

    // A guest agent: its addresses, without link-local and loopback ones.
    fx.host.leases.delete('other');
    fx.host.arp.clear();
    fx.host.agentAddresses.set(`${P}-vm1`, [
      { name: 'lo', mac: '00:00:00:00:00:00', addresses: [{ ip: '127.0.0.1', prefix: 8, family: 'ipv4' }] },
      { name: 'eth1', mac: '52:54:00:ee:00:01', addresses: [{ ip: 'fe80::1', prefix: 64, family: 'ipv6' }, { ip: '10.233.0.99', prefix: 24, family: 'ipv4' }, { ip: 'fd00::5', prefix: 64, family: 'ipv6' }] },
    ]);
    r = await observeAddresses(fx.host, snap, targets, managed, {});
    expect(r.vms.get(`${P}-vm1`)!.nics![1]!.addresses).toEqual([
      { ip: '10.233.0.99', prefix: 24, family: 'ipv4', source: 'agent' },
      { ip: 'fd00::5', prefix: 64, family: 'ipv6', source: 'agent' },
    ]);
  });

  it('a driver without DHCP leases: the lease read fails, those NICs go through the interface query and the error is reported', async () => {
    await apply({ vms: 1 });
    fx.host.giveLease(`${P}-net`, '52:54:00:ad:00:01', { ip: '10.232.0.150' });
    fx.host.failNext('networkLeases', `${P}-net`, 1, 'invalid');
    const s = await status();
    const row = s.resources.find((r) => r.name === `${P}-vm1`)!;
    expect(row.addresses![0]!.addresses).toEqual([{ ip: '10.232.0.150', prefix: 24, family: 'ipv4', source: 'lease' }]);
    expect(s.view.addresses!.errors).toEqual([expect.stringMatching(/cannot read the DHCP leases of vftest-addr-net: injected failure/)]);
  });

  it('recordedNics: the MACs virtform resolved (facts), else the config MACs', async () => {
    await apply({ vms: 1 });
    const r = (await fx.store.resources.list()).find((x) => x.kind === 'VirtualMachine')!;
    expect(recordedNics(r)).toEqual([{ mac: '52:54:00:ad:00:01', network: `${P}-net` }]);
    expect(recordedNics({ ...r, details: { config: { nics: [{ network: 'n', mac: '52:54:00:AA:BB:CC' }, { network: 'm' }] } } })).toEqual([{ mac: '52:54:00:aa:bb:cc', network: 'n' }]);
  });
});

describe('waitForAddresses', () => {
  const targetsOf = async (): Promise<AddressTarget[]> =>
    (await fx.store.resources.list()).filter((r) => r.kind === 'VirtualMachine').map((r) => ({ name: r.name, nics: recordedNics(r) }));
  const fast = { pollMinMs: 5, pollMaxMs: 20 };

  it('returns once every VM has a lease on its DHCP NICs; each poll is one snapshot and one lease read; polls back off', async () => {
    await apply({ vms: 3, secondNic: 'nodhcp' });
    const managed = managedNetworks(await fx.store.resources.list());
    setTimeout(() => fx.host.giveLease(`${P}-net`, '52:54:00:ad:00:01'), 20);
    setTimeout(() => fx.host.giveLease(`${P}-net`, '52:54:00:ad:00:02'), 40);
    setTimeout(() => fx.host.giveLease(`${P}-net`, '52:54:00:ad:00:03'), 60);
    const progress: string[][] = [];
    const c0 = fx.host.calls.length;
    const r = await waitForAddresses(fx.host, await targetsOf(), { timeoutMs: 5000, managed, ...fast, onProgress: (p) => progress.push(p.waiting) });
    expect(r.outcome).toBe('ready');
    expect(r.waiting).toEqual([]);
    expect(progress[0]).toEqual([`${P}-vm1`, `${P}-vm2`, `${P}-vm3`]);
    expect(progress.at(-1)).toEqual([]);
    const made = calls(c0).filter((c) => c !== 'subscribeDomainEvents:*');
    // Per poll a snapshot and the lease read; at the end the NICs on the network without DHCP are
    // asked about once (agent, ARP: two queries per VM).
    expect(made.slice(0, 2 * r.polls)).toEqual(Array.from({ length: r.polls }, () => ['snapshot:*', `networkLeases:${P}-net`]).flat());
    expect(made.slice(2 * r.polls).sort()).toEqual([`networkLeases:${P}-net`, ...[1, 1, 2, 2, 3, 3].map((i) => `domainInterfaceAddresses:${P}-vm${i}`)].sort());
    expect(r.polls).toBeGreaterThan(1);
    // The NICs on the network without DHCP were never waited for.
    expect([...r.vms.values()].every((v) => v.nics![1]!.dhcp === false && v.nics![1]!.addresses.length === 0)).toBe(true);
    expect(renderAddresses(await targetsOf(), r)).toMatch(new RegExp(`VirtualMachine/${P}-vm1\\s+52:54:00:ad:00:01\\s+${P}-net\\s+10\\.232\\.0\\.\\d+/24 \\(lease\\)`));
    expect(renderAddresses(await targetsOf(), r)).toContain('- (no DHCP)');
  });

  it('times out naming the VMs still without an address', async () => {
    await apply({ vms: 2 });
    fx.host.giveLease(`${P}-net`, '52:54:00:ad:00:02');
    const t0 = Date.now();
    const r = await waitForAddresses(fx.host, await targetsOf(), { timeoutMs: 150, managed: managedNetworks(await fx.store.resources.list()), ...fast });
    expect(r.outcome).toBe('timeout');
    expect(r.waiting).toEqual([`${P}-vm1`]);
    expect(Date.now() - t0).toBeLessThan(2000);
  });

  it('a VM that stops while waited for ends the wait at once: "VM x is shut off; it will not get an address" (crashed when the event says so)', async () => {
    await apply({ vms: 2 });
    fx.host.lifecycleEvents = true;
    const managed = managedNetworks(await fx.store.resources.list());
    setTimeout(() => void fx.host.stopDomain(`${P}-vm2`), 30);
    const t0 = Date.now();
    const r = await waitForAddresses(fx.host, await targetsOf(), { timeoutMs: 60_000, managed, pollMinMs: 2000, pollMaxMs: 2000 });
    expect(r.outcome).toBe('not-running');
    // Woken by the stopped event, not by the 2 s poll.
    expect(Date.now() - t0).toBeLessThan(1500);
    expect(r.failures).toEqual([{ vm: `${P}-vm2`, reason: `VM ${P}-vm2 is shut off (destroyed); it will not get an address` }]);

    await fx.host.startDomain(`${P}-vm2`);
    setTimeout(() => {
      fx.host.domains.get(`${P}-vm2`)!.active = false;
      fx.host.emitDomainEvent(`${P}-vm2`, 'crashed');
    }, 30);
    const c = await waitForAddresses(fx.host, await targetsOf(), { timeoutMs: 60_000, managed, pollMinMs: 2000, pollMaxMs: 2000 });
    expect(c.failures).toEqual([{ vm: `${P}-vm2`, reason: `VM ${P}-vm2 crashed; it will not get an address` }]);
  });

  it('a VM seen stopped before its lifecycle event arrives still gets the event\'s reason (destroyed), not a bare "shut off"', async () => {
    await apply({ vms: 2 });
    const managed = managedNetworks(await fx.store.resources.list());
    // libvirtd dispatches the event after the state change: a poll can see the VM down first.
    setTimeout(() => { fx.host.domains.get(`${P}-vm2`)!.active = false; }, 30);
    setTimeout(() => fx.host.emitStoppedEvent(`${P}-vm2`, 1), 400);
    const r = await waitForAddresses(fx.host, await targetsOf(), { timeoutMs: 60_000, managed, pollMinMs: 50, pollMaxMs: 50 });
    expect(r.outcome).toBe('not-running');
    expect(r.failures).toEqual([{ vm: `${P}-vm2`, reason: `VM ${P}-vm2 is shut off (destroyed); it will not get an address` }]);
  });

  it('a VM already shut off fails at the first poll, without waiting', async () => {
    await apply({ vms: 1 });
    await fx.host.stopDomain(`${P}-vm1`);
    const r = await waitForAddresses(fx.host, await targetsOf(), { timeoutMs: 60_000, managed: managedNetworks(await fx.store.resources.list()) });
    expect(r).toMatchObject({ outcome: 'not-running', polls: 1, failures: [{ reason: `VM ${P}-vm1 is shut off; it will not get an address` }] });
  });

  it('VMs whose NICs are all on networks without DHCP are ready at once; an abort interrupts the wait', async () => {
    await apply({ vms: 1, secondNic: 'nodhcp' });
    const managed = managedNetworks(await fx.store.resources.list());
    const only = [{ name: `${P}-vm1`, nics: [{ mac: '52:54:00:ad:01:01', network: `${P}-plain` }] }];
    expect((await waitForAddresses(fx.host, only, { timeoutMs: 10, managed })).outcome).toBe('ready');
    const ac = new AbortController();
    setTimeout(() => ac.abort(), 30);
    const r = await waitForAddresses(fx.host, await targetsOf(), { timeoutMs: 60_000, managed, signal: ac.signal, pollMinMs: 1000, pollMaxMs: 1000 });
    expect(r.outcome).toBe('interrupted');
    expect(r.waiting).toEqual([`${P}-vm1`]);
  });
});
