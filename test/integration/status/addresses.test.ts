/**
 * Addresses on qemu:///system (issue #13), with VMs that boot nothing (no guest ever asks for an
 * address): `status --json` shows each NIC with no address and `addressesReady: false` (true for a
 * VM whose only NIC is on a network without DHCP, which is not waited for); `reconcile --wait
 * --wait-timeout 5` times out with exit 1 naming the VMs; a VM destroyed during the wait ends it at
 * once ("is shut off"); and the host calls of `status` for N running VMs (one snapshot plus one
 * lease read per virtform DHCP network, independent of N), with its time.
 *
 * Objects are vftest-addr-*; networks are isolated (no <forward>) in 10.246.7.0/24 and 10.246.8.0/24.
 */
import { describe, expect, it } from 'vitest';
import { rmSync } from 'node:fs';
import { writeManifests } from '../../support/manifests.js';
import { runCli, spawnCli, virsh } from '../../support/real-host.js';
import { openHost } from '../../../src/reconcile/adapters/libvirt-host.js';
import { openStateStore } from '../../../src/state/index.js';
import { observeForStatus } from '../../../src/status/index.js';
import type { HostCallInfo } from '../../../src/reconcile/ports.js';
import { useSuite } from '../../support/suite.js';

const N = useSuite('addr', {
  manifestDir: 'm', 
  setup: async () => {
    await converge(2);
  },
  setupTimeoutMs: 180_000,
});
const P = N.base;

function files(n: number): Record<string, string> {
  const vm = (i: number): string => `apiVersion: virtform.dev/v1
kind: VirtualMachine
metadata: {name: ${P}-blank${i}}
spec:
  vcpus: 1
  memory: 32MiB
  state: running
  disks: []
  nics: [{network: ${P}-net, mac: "52:54:00:a7:00:${i.toString(16).padStart(2, '0')}"}]
`;
  return {
    'net.yaml': `apiVersion: virtform.dev/v1
kind: Network
metadata: {name: ${P}-net}
spec: {mode: isolated, cidr: 10.246.7.0/24, dhcp: {start: 10.246.7.100, end: 10.246.7.199}, autostart: false}
---
apiVersion: virtform.dev/v1
kind: Network
metadata: {name: ${P}-plain}
spec: {mode: isolated, cidr: 10.246.8.0/24, autostart: false}
---
apiVersion: virtform.dev/v1
kind: VirtualMachine
metadata: {name: ${P}-plainvm}
spec:
  vcpus: 1
  memory: 32MiB
  state: running
  disks: []
  nics: [{network: ${P}-plain, mac: "52:54:00:a7:01:01"}]
`,
    'vms.yaml': Array.from({ length: n }, (_, i) => vm(i + 1)).join('---\n'),
  };
}

interface Row { kind: string; name: string; addresses: { mac: string; network: string; dhcp: boolean; addresses: unknown[] }[] | null; addressesReady: boolean | null; addressesNote: string | null }

async function converge(n: number): Promise<void> {
  rmSync(N.mdir, { recursive: true, force: true });
  writeManifests(N.mdir, files(n));
  const r = await runCli(['reconcile', N.mdir, '--db', N.db, '--shutdown-timeout', '0', '--allow-data-loss', '--max-deletions', 'all']);
  expect(r.code, r.stderr + r.stdout).toBe(0);
}

describe('addresses on qemu:///system (VMs that boot nothing)', () => {
  it('status --json: every NIC by MAC with no address; addressesReady false on the DHCP network, true for the VM whose only NIC is on a network without DHCP', async () => {
    const r = await runCli(['status', N.mdir, '--db', N.db, '--json']);
    expect(r.code, r.stderr).toBe(0);
    const doc = JSON.parse(r.stdout) as { resources: Row[]; addressErrors: string[] };
    expect(doc.addressErrors).toEqual([]);
    const by = (name: string): Row => doc.resources.find((x) => x.name === name)!;
    expect(by(`${P}-blank1`)).toMatchObject({
      addresses: [{ mac: '52:54:00:a7:00:01', network: `${P}-net`, dhcp: true, addresses: [] }],
      addressesReady: false, addressesNote: `waiting for an address on 52:54:00:a7:00:01 (${P}-net)`,
    });
    expect(by(`${P}-plainvm`)).toMatchObject({
      addresses: [{ mac: '52:54:00:a7:01:01', network: `${P}-plain`, dhcp: false, addresses: [] }],
      addressesReady: true, addressesNote: `not waited for (network without DHCP): 52:54:00:a7:01:01 (${P}-plain)`,
    });
    expect(by(`${P}-net`)).toMatchObject({ addresses: null, addressesReady: null });
    const table = await runCli(['status', N.mdir, '--db', N.db]);
    expect(table.stdout).toMatch(new RegExp(`VirtualMachine/${P}-blank1 .* waiting `));
    expect(table.stdout).toContain(`VirtualMachine/${P}-blank1: waiting for an address on 52:54:00:a7:00:01 (${P}-net)`);
  });

  it('reconcile --wait --wait-timeout 5: exit 1 after ~5 s naming the VMs without an address; the NIC without DHCP is not waited for; --json has the wait report', async () => {
    const t0 = Date.now();
    const r = await runCli(['reconcile', N.mdir, '--db', N.db, '--wait', '--wait-timeout', '5']);
    const ms = Date.now() - t0;
    expect(r.code, r.stderr + r.stdout).toBe(1);
    expect(r.stdout).toContain('No changes.');
    expect(r.stdout).toMatch(/Waiting up to 5s for the addresses of 3 VM\(s\)/);
    expect(r.stdout).toContain(`VirtualMachine/${P}-plainvm: NIC 52:54:00:a7:01:01 on ${P}-plain is not waited for: the network has no DHCP`);
    expect(r.stderr).toContain(`timed out after 5s waiting for an address: ${P}-blank1 (52:54:00:a7:00:01 on ${P}-net); ${P}-blank2 (52:54:00:a7:00:02 on ${P}-net)`);
    expect(ms).toBeGreaterThanOrEqual(5000);
    expect(ms).toBeLessThan(20_000);

    const j = await runCli(['reconcile', N.mdir, '--db', N.db, '--wait', '--wait-timeout', '2', '--json']);
    expect(j.code).toBe(1);
    const doc = JSON.parse(j.stdout) as { outcome: string; wait: { outcome: string; waiting: string[]; notWaited: unknown[]; addresses: Record<string, unknown> } };
    expect(doc.outcome).toBe('noop');
    expect(doc.wait).toMatchObject({ outcome: 'timeout', waiting: [`${P}-blank1`, `${P}-blank2`], notWaited: [{ vm: `${P}-plainvm`, mac: '52:54:00:a7:01:01', network: `${P}-plain` }] });
    expect(Object.keys(doc.wait.addresses).sort()).toEqual([`${P}-blank1`, `${P}-blank2`, `${P}-plainvm`]);

    const bad = await runCli(['reconcile', N.mdir, '--db', N.db, '--wait', '--dry-run']);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain('--wait cannot be combined with --dry-run');
  }, 60_000);

  it('a VM destroyed while waited for ends the wait at once: "VM x is shut off (destroyed); it will not get an address", exit 1', async () => {
    const c = spawnCli(['reconcile', N.mdir, '--db', N.db, '--wait', '--wait-timeout', '120']);
    const deadline = Date.now() + 30_000;
    while (!c.stdoutSoFar().includes('Waiting up to') && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
    await new Promise((r) => setTimeout(r, 700));
    const t0 = Date.now();
    virsh('destroy', `${P}-blank2`);
    const r = await c.done;
    expect(r.code, r.stderr + r.stdout).toBe(1);
    expect(Date.now() - t0).toBeLessThan(5000);
    expect(r.stderr).toContain(`VM ${P}-blank2 is shut off (destroyed); it will not get an address`);
    await converge(2); // started again
  }, 90_000);

  it('status host calls for N running VMs: one snapshot (11 list calls: 8, and 3 of transient objects since exact drift) + one lease read per DHCP network, the same for N = 2 and N = 12 (measured)', async () => {
    const measure = async (): Promise<{ calls: Record<string, number>; total: number; ms: number; ready: number }> => {
      const store = await openStateStore(N.db);
      const host = await openHost('qemu:///system');
      try {
        const records = await store.resources.list();
        const seen: HostCallInfo[] = [];
        host.setCallObserver((i) => seen.push(i));
        const t0 = performance.now();
        const view = await observeForStatus(host, records);
        const ms = performance.now() - t0;
        host.setCallObserver(undefined);
        const calls: Record<string, number> = {};
        for (const s of seen) calls[s.procedure] = (calls[s.procedure] ?? 0) + 1;
        // Read-only; libvirt's ACL table marks virDomainInterfaceAddresses as a domain write (for the agent source).
        expect(seen.filter((s) => s.mutating && s.procedure !== 'domainInterfaceAddresses')).toEqual([]);
        const vms = [...view.addresses!.vms.values()];
        return { calls, total: seen.length, ms, ready: vms.filter((v) => v.ready).length };
      } finally {
        await host.close();
        await store.close();
      }
    };
    const small = await measure();
    await converge(12);
    const big = await measure();
    // eslint-disable-next-line no-console
    console.log(`[addresses] status host calls: N=2+1 VMs ${small.total} calls ${small.ms.toFixed(1)} ms, N=12+1 VMs ${big.total} calls ${big.ms.toFixed(1)} ms; ${JSON.stringify(big.calls)}`);
    expect(big.calls).toEqual(small.calls);
    expect(big.calls.networkGetDhcpLeases).toBe(1);
    expect(big.calls.connectListAllDomains).toBe(3); // all, autostart, transient
    // plainvm: its NIC on the network without DHCP is asked about (agent: not configured, ARP).
    expect(big.calls.domainInterfaceAddresses).toBe(2);
    expect(big.ready).toBe(1);
    await converge(2);
  }, 240_000);
});
