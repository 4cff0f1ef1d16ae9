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
 * pool, and read back from the pool. Everything is named `vftest-tiny-*` and removed before and
 * after, also on failure. Domain type: TCG (`qemu`) unless VFTEST_GUEST_VIRT=kvm. KVM fails on
 * this nested host: with the default CPU model the guest prints nothing, with host-passthrough
 * QEMU aborts ("failed to set MSR 0x10a").
 */
import { randomUUID, createHash } from 'node:crypto';
import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildNoCloudSeed } from '../../../src/cloudinit/seed.js';
import { sleep } from '../../support/cli.js';
import { suiteNames } from '../../support/names.js';
import { dhcpLeases, virsh, type Lease } from '../../support/virsh.js';
import { assertSubnetFree, GUEST_VIRT as VIRT, startDirPool, startIsolatedNetwork, tinyDomainXml, tinyGuestFiles, type TinyGuestFiles } from '../../support/guest.js';

const N = suiteNames('tiny');
const PREFIX = N.base;
const NET = `${PREFIX}-net`;
const BRIDGE = 'vftguest0';
const POOL = `${PREFIX}-pool`;
const POOL_DIR = N.poolPath();
const SUBNET = N.subnet();
const RANGE = { start: 100, end: 199 };
const BOOT_TIMEOUT_MS = 240_000;
const leases = (): Lease[] => dhcpLeases(NET);

let files: TinyGuestFiles | undefined;
let tmp: string;
let buildMs: number;

beforeAll(() => {
  N.cleanup();
  tmp = N.tempDir();
  const t0 = Date.now();
  // Cached: downloads and builds only when the Debian package versions (or the script) changed.
  // Copies, so libvirt's DAC relabelling at start touches these and not the shared cache.
  files = tinyGuestFiles(PREFIX);
  buildMs = Date.now() - t0;
  assertSubnetFree(SUBNET);
}, 300_000);

afterAll(() => {
  N.cleanup();
  if (tmp) rmSync(tmp, { recursive: true, force: true });
});

interface Variant {
  dom: string;
  mac: string;
  machine: 'pc' | 'q35';
  /** Where the seed CD-ROM sits: IDE (PIIX, `pc` only) or virtio-scsi. */
  bus: 'ide' | 'scsi';
}

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

  const domXml = join(tmp, `${v.dom}.xml`);
  writeFileSync(domXml, tinyDomainXml({
    name: v.dom, virt: VIRT, memoryMiB: 256, machine: v.machine, kernel: files!.kernel, initrd: files!.initrd,
    seed: seedPath, seedBus: v.bus, mac: v.mac, network: NET, consoleLog,
  }));
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
    `[tiny-guest] ${VIRT} ${v.machine}/${v.bus}: build script ${buildMs} ms, start->lease ${leaseMs} ms, start->ready ${readyMs} ms, guest uptime ${uptime}, kernel ${readFileSync(join(files!.built, 'kernel-version'), 'utf8').trim()}\n${dhcpLog.join('\n')}`,
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
    startIsolatedNetwork(NET, BRIDGE, SUBNET, tmp, RANGE);
    expect(virsh('net-dumpxml', NET)).not.toContain('<forward');
    // Dir pool holding the seeds.
    startDirPool(POOL, POOL_DIR, tmp);
  });

  it(
    `pc + IDE CD-ROM (${VIRT}): reads the seed, reports the marker, takes a DHCP lease under its cloud-init hostname`,
    () => bootAndCheck({ dom: `${PREFIX}-pc`, mac: N.mac(1), machine: 'pc', bus: 'ide' }),
    BOOT_TIMEOUT_MS + 60_000,
  );

  it(
    `q35 + virtio-scsi CD-ROM (${VIRT}): the same (q35's own CD-ROM bus is SATA/AHCI, which the cloud kernel lacks)`,
    () => bootAndCheck({ dom: `${PREFIX}-q35`, mac: N.mac(2), machine: 'q35', bus: 'scsi' }),
    BOOT_TIMEOUT_MS + 60_000,
  );
});
