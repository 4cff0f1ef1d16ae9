/**
 * The address port methods and the wait loop against a real lease on qemu:///system: the tiny
 * guest, defined by this test itself (as tiny-guest.test.ts does: direct kernel boot, a NoCloud
 * seed on an IDE CD-ROM, so the guest sends its hostname at once), on an isolated DHCP network.
 *
 *  - waitForAddresses over the libvirt adapter returns once the guest has its lease (start-to-
 *    address time printed), with the address `virsh net-dhcp-leases` shows;
 *  - networkLeases gives that lease with the hostname from the seed; the interface query with
 *    source `lease` gives the same address; `agent` is unavailable (no guest-agent channel);
 *  - after `virsh destroy`, the wait fails at once ("is shut off").
 *
 * Named vftest-addrp-*; network (its own 10.200.x.0/24) without <forward>. TCG unless VFTEST_GUEST_VIRT=kvm.
 */
import { chmodSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildNoCloudSeed } from '../../../src/cloudinit/seed.js';
import { openHost } from '../../../src/reconcile/adapters/libvirt-host.js';
import type { HostPort } from '../../../src/reconcile/ports.js';
import { waitForAddresses } from '../../../src/status/index.js';
import { suiteNames } from '../../support/names.js';
import { dhcpLeases, virsh } from '../../support/virsh.js';
import { assertSubnetFree, GUEST_VIRT as VIRT, startIsolatedNetwork, tinyDomainXml, tinyGuestFiles, type TinyGuestFiles } from '../../support/guest.js';

const N = suiteNames('addrp');
const P = N.base;
const NET = `${P}-net`;
const DOM = `${P}-tiny`;
const MAC = N.mac(1);
const SUBNET = N.subnet();

let host: HostPort;
let files: TinyGuestFiles | undefined;

beforeAll(async () => {
  N.cleanup();
  files = tinyGuestFiles(P);
  assertSubnetFree(SUBNET);
  const DIR = files.dir;
  chmodSync(DIR, 0o755);
  const seed = buildNoCloudSeed({ vmName: DOM, userData: '#cloud-config\n', metaData: { 'instance-id': `iid-${DOM}` } });
  writeFileSync(join(DIR, 'seed.iso'), seed.iso, { mode: 0o644 });
  startIsolatedNetwork(NET, 'vftaddrp0', SUBNET, DIR);
  writeFileSync(join(DIR, 'dom.xml'), tinyDomainXml({
    name: DOM, virt: VIRT, memoryMiB: 128, kernel: files.kernel, initrd: files.initrd,
    seed: join(DIR, 'seed.iso'), mac: MAC, network: NET, consoleLog: join(DIR, 'console.log'),
  }));
  virsh('define', join(DIR, 'dom.xml'));
  host = await openHost('qemu:///system');
}, 300_000);

afterAll(async () => {
  await host?.close();
  N.cleanup();
  files?.remove();
});

const leases = (): { mac: string; ip: string; hostname: string }[] => dhcpLeases(NET);

describe.sequential(`address ports on a real lease (tiny guest, ${VIRT})`, () => {
  it('waitForAddresses returns with the lease virsh shows; networkLeases and the lease query agree; no agent channel: unavailable', async () => {
    const managed = new Map([[NET, true]]);
    const t0 = Date.now();
    virsh('start', DOM);
    const r = await waitForAddresses(host, [{ name: DOM, nics: [{ mac: MAC, network: NET }] }], { timeoutMs: 240_000, managed });
    const ms = Date.now() - t0;
    expect(r.outcome, JSON.stringify(r)).toBe('ready');
    const nic = r.vms.get(DOM)!.nics![0]!;
    const lease = leases().find((l) => l.mac === MAC)!;
    expect(lease).toBeDefined();
    expect(nic.addresses).toEqual([{ ip: lease.ip, prefix: 24, family: 'ipv4', source: 'lease', hostname: DOM }]);
    // eslint-disable-next-line no-console
    console.log(`[addresses-ports] ${VIRT}: virsh start -> address ${ms} ms (${r.polls} polls), ${lease.ip}, hostname ${lease.hostname}`);

    const snap = await host.snapshot();
    const net = snap.networks.find((n) => n.name === NET)!;
    const got = await host.networkLeases([net]);
    expect(got.get(NET)).toEqual([expect.objectContaining({ mac: MAC, ip: lease.ip, prefix: 24, family: 'ipv4', hostname: DOM, iface: 'vftaddrp0' })]);
    expect(got.get(NET)![0]!.expiresAt).toBeGreaterThan(Date.now() / 1000);

    const dom = snap.domains.find((d) => d.name === DOM)!;
    const viaLease = await host.domainInterfaceAddresses(dom, 'lease');
    expect(viaLease).toEqual({ interfaces: [{ name: expect.any(String), mac: MAC, addresses: [{ ip: lease.ip, prefix: 24, family: 'ipv4' }] }] });
    expect(await host.domainInterfaceAddresses(dom, 'agent')).toEqual({ unavailable: expect.stringMatching(/guest agent is not configured/) });
    const arp = await host.domainInterfaceAddresses(dom, 'arp');
    // eslint-disable-next-line no-console
    console.log(`[addresses-ports] arp: ${JSON.stringify(arp)}`);
    if ('interfaces' in arp && arp.interfaces.length > 0) expect(arp.interfaces[0]!.addresses[0]!.ip).toBe(lease.ip);
  }, 300_000);

  it('a guest destroyed: the wait fails at the first poll, though its lease is still listed', async () => {
    virsh('destroy', DOM);
    expect(leases().some((l) => l.mac === MAC)).toBe(true);
    const t0 = Date.now();
    const r = await waitForAddresses(host, [{ name: DOM, nics: [{ mac: MAC, network: NET }] }], { timeoutMs: 60_000, managed: new Map([[NET, true]]) });
    expect(Date.now() - t0).toBeLessThan(3000);
    expect(r).toMatchObject({ outcome: 'not-running', polls: 1, failures: [{ vm: DOM, reason: `VM ${DOM} is shut off; it will not get an address` }] });
  }, 60_000);
});
