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
 * Named vftest-addr-p-*; network 192.168.253.0/24 without <forward>. TCG unless VFTEST_GUEST_VIRT=kvm.
 */
import { execFileSync } from 'node:child_process';
import { chmodSync, copyFileSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildNoCloudSeed } from '../../../src/cloudinit/seed.js';
import { openHost } from '../../../src/reconcile/adapters/libvirt-host.js';
import type { HostPort } from '../../../src/reconcile/ports.js';
import { waitForAddresses } from '../../../src/status/index.js';
import { cleanupPrefix, ROOT, TEST_POOL_ROOT, virsh } from '../../support/real-host.js';

const P = 'vftest-addr-p';
const NET = `${P}-net`;
const DOM = `${P}-tiny`;
const MAC = '52:54:00:a7:0b:01';
const SUBNET = '192.168.253';
const DIR = join(TEST_POOL_ROOT, `${P}-files`);
const VIRT = process.env.VFTEST_GUEST_VIRT === 'kvm' ? 'kvm' : 'qemu';

let host: HostPort;

beforeAll(async () => {
  cleanupPrefix(P);
  const guest = execFileSync('bash', [resolve(ROOT, 'scripts/build-tiny-guest.sh')], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'], timeout: 280_000 }).trim();
  if (execFileSync('ip', ['-4', 'route'], { encoding: 'utf8' }).includes(`${SUBNET}.`)) throw new Error(`${SUBNET}.0/24 is already routed here`);
  mkdirSync(DIR, { recursive: true });
  chmodSync(DIR, 0o755);
  copyFileSync(join(guest, 'vmlinuz'), join(DIR, 'vmlinuz'));
  copyFileSync(join(guest, 'initrd.img'), join(DIR, 'initrd.img'));
  const seed = buildNoCloudSeed({ vmName: DOM, userData: '#cloud-config\n', metaData: { 'instance-id': `iid-${DOM}` } });
  writeFileSync(join(DIR, 'seed.iso'), seed.iso, { mode: 0o644 });
  writeFileSync(join(DIR, 'net.xml'), `<network>
  <name>${NET}</name>
  <bridge name='vftaddrp0' stp='off' delay='0'/>
  <ip address='${SUBNET}.1' netmask='255.255.255.0'>
    <dhcp><range start='${SUBNET}.100' end='${SUBNET}.199'/></dhcp>
  </ip>
</network>
`);
  virsh('net-define', join(DIR, 'net.xml'));
  virsh('net-start', NET);
  writeFileSync(join(DIR, 'dom.xml'), `<domain type='${VIRT}'>
  <name>${DOM}</name>
  <memory unit='MiB'>128</memory>
  <vcpu>1</vcpu>
  <os>
    <type arch='x86_64' machine='pc'>hvm</type>
    <kernel>${join(DIR, 'vmlinuz')}</kernel>
    <initrd>${join(DIR, 'initrd.img')}</initrd>
    <cmdline>console=ttyS0 loglevel=4 panic=-1</cmdline>
  </os>
  <on_poweroff>destroy</on_poweroff>
  <on_reboot>destroy</on_reboot>
  <on_crash>destroy</on_crash>
  <devices>
    <disk type='file' device='cdrom'>
      <driver name='qemu' type='raw'/>
      <source file='${join(DIR, 'seed.iso')}'/>
      <target dev='hdc' bus='ide'/>
      <readonly/>
    </disk>
    <interface type='network'>
      <mac address='${MAC}'/>
      <source network='${NET}'/>
      <model type='virtio'/>
    </interface>
    <serial type='file'><source path='${join(DIR, 'console.log')}'/><target port='0'/></serial>
    <memballoon model='none'/>
  </devices>
</domain>
`);
  virsh('define', join(DIR, 'dom.xml'));
  host = await openHost('qemu:///system');
}, 300_000);

afterAll(async () => {
  await host?.close();
  cleanupPrefix(P);
  rmSync(DIR, { recursive: true, force: true });
});

function leases(): { mac: string; ip: string; hostname: string }[] {
  return virsh('net-dhcp-leases', NET).split('\n').map((l) => l.trim().split(/\s+/))
    .filter((f) => f.length >= 6 && f[3] === 'ipv4')
    .map((f) => ({ mac: f[2]!, ip: f[4]!.split('/')[0]!, hostname: f[5]! }));
}

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
