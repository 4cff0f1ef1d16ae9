/**
 * A guest that boots configured: the tiny guest (Debian cloud kernel + busybox initramfs from
 * scripts/build-tiny-guest.sh, cached under /var/cache/virtform/tiny-guest) is started by direct
 * kernel boot with a NoCloud seed built by src/cloudinit/seed.ts on a CD-ROM and a virtio NIC on an
 * isolated network (no <forward>). Two placements of the CD-ROM: IDE on machine `pc`, and
 * virtio-scsi on `q35` (q35's own CD-ROM bus is SATA/AHCI; the cloud kernel has no AHCI driver).
 *
 * Asserted from the outside: the serial console (a file) shows the hostname from meta-data and
 * the marker from user-data that this run put in the seed, and libvirt's DHCP leases show the
 * guest's MAC with that hostname and an address in the range, the same address the guest reports.
 *
 * The seed is written with `virsh vol-upload` (libvirt's storage volume upload stream) into a dir
 * pool, and read back from the pool. Everything is named `vftest-guest-*` and removed before and
 * after, also on failure. Domain type: TCG (`qemu`) unless VFTEST_GUEST_VIRT=kvm. KVM fails on
 * this nested host: with the default CPU model the guest prints nothing, with host-passthrough
 * QEMU aborts ("failed to set MSR 0x10a").
 */
import { execFileSync } from 'node:child_process';
import { randomUUID, createHash } from 'node:crypto';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildNoCloudSeed } from '../../../src/cloudinit/seed.js';

const URI = 'qemu:///system';
const root = resolve(dirname(fileURLToPath(import.meta.url)), '../../..');
const PREFIX = 'vftest-guest';
const NET = `${PREFIX}-net`;
const BRIDGE = 'vftguest0';
const POOL = `${PREFIX}-pool`;
const POOL_DIR = `/var/lib/virtform-test/${POOL}`;
// An unusual private /24 that no other test or libvirt default uses (checked against the host's
// routes before the network is defined).
const SUBNET = '192.168.251';
const RANGE = { start: 100, end: 199 };
const VIRT = process.env.VFTEST_GUEST_VIRT === 'kvm' ? 'kvm' : 'qemu';
const BOOT_TIMEOUT_MS = 240_000;

function virsh(...args: string[]): string {
  try {
    return execFileSync('virsh', ['-q', '-c', URI, ...args], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  } catch (err) {
    const e = err as { stderr?: string; message: string };
    throw new Error(`virsh ${args.join(' ')} failed: ${e.stderr?.trim() || e.message}`);
  }
}

function cleanup(): void {
  execFileSync('bash', [resolve(root, 'scripts/cleanup-test-objects.sh'), PREFIX], { stdio: 'inherit' });
}

interface Lease {
  mac: string;
  ip: string;
  prefix: number;
  hostname: string;
}

function leases(): Lease[] {
  // "2026-12-01 19:31:56   52:54:00:34:8e:aa   ipv4   192.168.247.141/24   host   01:52:..."
  return virsh('net-dhcp-leases', NET)
    .split('\n')
    .map((l) => l.trim().split(/\s+/))
    .filter((f) => f.length >= 6 && f[3] === 'ipv4')
    .map((f) => {
      const [ip, prefix] = f[4]!.split('/');
      return { mac: f[2]!, ip: ip!, prefix: Number(prefix), hostname: f[5]! };
    });
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

let guestDir: string;
let tmp: string;
let buildMs: number;

beforeAll(() => {
  cleanup();
  tmp = mkdtempSync(join(tmpdir(), `${PREFIX}-`));
  const t0 = Date.now();
  // Cached: downloads and builds only when the Debian package versions (or the script) changed.
  guestDir = execFileSync('bash', [resolve(root, 'scripts/build-tiny-guest.sh')], {
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'inherit'],
    timeout: 280_000,
  }).trim();
  buildMs = Date.now() - t0;
  for (const f of ['vmlinuz', 'initrd.img']) {
    if (!existsSync(join(guestDir, f))) throw new Error(`build-tiny-guest.sh printed ${guestDir}, which has no ${f}`);
  }
  const routes = execFileSync('ip', ['-4', 'route'], { encoding: 'utf8' });
  if (routes.includes(`${SUBNET}.`)) throw new Error(`${SUBNET}.0/24 is already routed on this host; pick another SUBNET for this test:\n${routes}`);
}, 300_000);

afterAll(() => {
  cleanup();
  if (tmp) rmSync(tmp, { recursive: true, force: true });
});

interface Variant {
  dom: string;
  mac: string;
  machine: 'pc' | 'q35';
  /** Where the seed CD-ROM sits: IDE (PIIX, `pc` only) or virtio-scsi. */
  bus: 'ide' | 'scsi';
}

let kernel: string;
let initrd: string;

async function bootAndCheck(v: Variant): Promise<void> {
  const marker = `vftest-marker-${randomUUID()}`;
  const instanceId = `iid-${randomUUID()}`;
  const consoleLog = join(POOL_DIR, `${v.dom}-console.log`);
  const seedVol = `${v.dom}-seed.iso`;

  const seed = buildNoCloudSeed({
    vmName: v.dom,
    userData: `#cloud-config\n#vf-marker: ${marker}\n`,
    metaData: { 'instance-id': instanceId },
    networkConfig: { version: 2, ethernets: { eth0: { dhcp4: true } } },
  });
  // Upload through libvirt's storage volume upload stream, then read the volume back.
  const seedFile = join(tmp, seedVol);
  writeFileSync(seedFile, seed.iso);
  virsh('vol-create-as', POOL, seedVol, `${seed.iso.length}b`, '--format', 'raw');
  virsh('vol-upload', '--pool', POOL, seedVol, seedFile);
  const seedPath = virsh('vol-path', '--pool', POOL, seedVol).trim();
  expect(createHash('sha256').update(readFileSync(seedPath)).digest('hex')).toBe(seed.sha256);

  const cdrom =
    v.bus === 'ide'
      ? `<target dev='hdc' bus='ide'/>`
      : `<target dev='sda' bus='scsi'/>
      <address type='drive' controller='0' bus='0' target='0' unit='0'/>`;
  const domXml = join(tmp, `${v.dom}.xml`);
  writeFileSync(
    domXml,
    `<domain type='${VIRT}'>
  <name>${v.dom}</name>
  <memory unit='MiB'>256</memory>
  <vcpu>1</vcpu>
  <os>
    <type arch='x86_64' machine='${v.machine}'>hvm</type>
    <kernel>${kernel}</kernel>
    <initrd>${initrd}</initrd>
    <cmdline>console=ttyS0 loglevel=4 panic=-1</cmdline>
  </os>
  <on_poweroff>destroy</on_poweroff>
  <on_reboot>destroy</on_reboot>
  <on_crash>destroy</on_crash>
  <devices>${v.bus === 'scsi' ? `\n    <controller type='scsi' index='0' model='virtio-scsi'/>` : ''}
    <disk type='file' device='cdrom'>
      <driver name='qemu' type='raw'/>
      <source file='${seedPath}'/>
      ${cdrom}
      <readonly/>
    </disk>
    <interface type='network'>
      <mac address='${v.mac}'/>
      <source network='${NET}'/>
      <model type='virtio'/>
    </interface>
    <serial type='file'>
      <source path='${consoleLog}'/>
      <target port='0'/>
    </serial>
    <memballoon model='none'/>
  </devices>
</domain>
`,
  );
  virsh('define', domXml);
  const t0 = Date.now();
  virsh('start', v.dom);

  // Wait for the lease (seen by libvirt) and the guest's "ready" line (seen on the console).
  let lease: Lease | undefined;
  let leaseMs = 0;
  let log = '';
  try {
    while (Date.now() - t0 < BOOT_TIMEOUT_MS) {
      log = existsSync(consoleLog) ? readFileSync(consoleLog, 'utf8') : '';
      if (!lease) {
        lease = leases().find((l) => l.mac === v.mac);
        if (lease) leaseMs = Date.now() - t0;
      }
      if (lease && /^vf-guest: (ready|error)/m.test(log)) break;
      if (!virsh('domstate', v.dom).includes('running')) break; // panic=-1 + on_reboot=destroy
      await sleep(500);
    }
  } finally {
    // Stop the guest as soon as it has been seen: TCG guests cost CPU on this shared host.
    if (virsh('domstate', v.dom).includes('running')) virsh('destroy', v.dom);
  }
  const readyMs = Date.now() - t0;
  const uptime = /^vf-guest: uptime (.*)$/m.exec(log)?.[1] ?? '?';
  const dhcpLog = log.split('\n').filter((l) => l.startsWith('vf-guest: log: '));
  const context = `console log:\n${log}\nleases:\n${JSON.stringify(leases())}`;
  // eslint-disable-next-line no-console
  console.log(
    `[tiny-guest] ${VIRT} ${v.machine}/${v.bus}: build script ${buildMs} ms, start->lease ${leaseMs} ms, start->ready ${readyMs} ms, guest uptime ${uptime}, kernel ${readFileSync(join(guestDir, 'kernel-version'), 'utf8').trim()}\n${dhcpLog.join('\n')}`,
  );

  expect(log, context).toMatch(/^vf-guest: seed \/dev\/sr0$/m);
  expect(log, context).toMatch(new RegExp(`^vf-guest: hostname ${v.dom}$`, 'm'));
  expect(log, context).toMatch(new RegExp(`^vf-guest: instance-id ${instanceId}$`, 'm'));
  expect(log, context).toMatch(new RegExp(`^vf-marker: ${marker}$`, 'm'));
  expect(log, context).not.toMatch(/^vf-guest: error/m);
  expect(lease, context).toBeDefined();
  expect(lease!.hostname).toBe(v.dom);
  expect(lease!.prefix).toBe(24);
  const [a, b, c, d] = lease!.ip.split('.').map(Number);
  expect(`${a}.${b}.${c}`).toBe(SUBNET);
  expect(d).toBeGreaterThanOrEqual(RANGE.start);
  expect(d).toBeLessThanOrEqual(RANGE.end);
  expect(log, context).toMatch(new RegExp(`^vf-guest: ip ${lease!.ip.replace(/\./g, '\\.')}$`, 'm'));
  expect(log).toMatch(/^vf-guest: ready$/m);
}

describe.sequential('tiny guest: direct kernel boot + NoCloud seed on an isolated network', () => {
  beforeAll(() => {
    // Isolated network: no <forward>, no STP, DHCP in .100-.199.
    const netXml = join(tmp, 'net.xml');
    writeFileSync(
      netXml,
      `<network>
  <name>${NET}</name>
  <bridge name='${BRIDGE}' stp='off' delay='0'/>
  <ip address='${SUBNET}.1' netmask='255.255.255.0'>
    <dhcp><range start='${SUBNET}.${RANGE.start}' end='${SUBNET}.${RANGE.end}'/></dhcp>
  </ip>
</network>
`,
    );
    virsh('net-define', netXml);
    virsh('net-start', NET);
    expect(virsh('net-dumpxml', NET)).not.toContain('<forward');

    // Dir pool holding the seeds, the kernel and the initrd.
    const poolXml = join(tmp, 'pool.xml');
    writeFileSync(poolXml, `<pool type='dir'><name>${POOL}</name><target><path>${POOL_DIR}</path></target></pool>\n`);
    virsh('pool-define', poolXml);
    virsh('pool-build', POOL);
    virsh('pool-start', POOL);
    // Copies, so libvirt's DAC relabelling at start touches these and not the shared cache.
    mkdirSync(POOL_DIR, { recursive: true });
    kernel = join(POOL_DIR, `${PREFIX}-vmlinuz`);
    initrd = join(POOL_DIR, `${PREFIX}-initrd.img`);
    copyFileSync(join(guestDir, 'vmlinuz'), kernel);
    copyFileSync(join(guestDir, 'initrd.img'), initrd);
  });

  it(
    `pc + IDE CD-ROM (${VIRT}): reads the seed, reports the marker, takes a DHCP lease under its cloud-init hostname`,
    () => bootAndCheck({ dom: `${PREFIX}-pc`, mac: '52:54:00:7f:fa:01', machine: 'pc', bus: 'ide' }),
    BOOT_TIMEOUT_MS + 60_000,
  );

  it(
    `q35 + virtio-scsi CD-ROM (${VIRT}): the same (q35's own CD-ROM bus is SATA/AHCI, which the cloud kernel lacks)`,
    () => bootAndCheck({ dom: `${PREFIX}-q35`, mac: '52:54:00:7f:fa:02', machine: 'q35', bus: 'scsi' }),
    BOOT_TIMEOUT_MS + 60_000,
  );
});
