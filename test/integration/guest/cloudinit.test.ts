/**
 * spec.cloudInit against the real libvirtd: the tiny guest (scripts/build-tiny-guest.sh) booted by
 * a virtform manifest set (an isolated Network with DHCP and no <forward>, a pool under
 * /var/lib/virtform-test, a VM with spec.boot kernel/initrd and spec.cloudInit) through the
 * `reconcile` CLI. The test starts the domain paused through the client, attaches the console
 * stream and resumes it, so no output is missed. Asserted from the outside:
 *   - the seed volume `<vm>-cidata.iso` is in the pool, mode 0600, holding exactly the ISO;
 *     the domain has it as a read-only IDE CD-ROM;
 *   - the console shows the user-data marker, the meta-data hostname and instance-id;
 *   - libvirt's DHCP leases show the guest's MAC under the cloud-init hostname;
 *   - changing user-data rebuilds the seed (new bytes on the volume, one seed volume in the
 *     pool), the plan, the log and `status` show only digests, and after a restart the guest
 *     reads the new seed under a new instance-id;
 *   - an empty manifest set deletes the VM and its seed (no --allow-data-loss: derived data).
 * Everything is named `vftest-cloudinit-*`. TCG.
 */
import { readFileSync, statSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseDomainXml } from '../../../src/libvirt/xml/index.js';
import { writeManifests } from '../../support/manifests.js';
import { inventory } from '../../support/real-host.js';
import { runCli, sleep } from '../../support/cli.js';
import { useSuite } from '../../support/suite.js';
import { dhcpLeases, virsh } from '../../support/virsh.js';
import { assertSubnetFree, bootWithConsole, TINY_CMDLINE, tinyGuestFiles, type Lease, type TinyGuestFiles } from '../../support/guest.js';

const N = useSuite('cloudinit', {
  setup: () => {
    assertSubnetFree(SUBNET);
    files = tinyGuestFiles(P);
  },
  setupTimeoutMs: 300_000,
});
const P = N.base;
const VM = `${P}-vm`;
const NET = `${P}-net`;
const POOL = `${P}-pool`;
const POOL_DIR = N.poolPath();
const MAC = N.mac(1);
const HOSTNAME = `${P}-host`;
const SUBNET = N.subnet();
const SEED = `${VM}-cidata.iso`;
const SEED_PATH = join(POOL_DIR, SEED);
let files: TinyGuestFiles;

function manifests(o: { marker: string; state?: string }): Record<string, string> {
  return {
    'net.yaml': `apiVersion: virtform.dev/v1
kind: Network
metadata: {name: ${NET}}
spec:
  mode: isolated
  cidr: ${SUBNET}.0/24
  dhcp: {start: ${SUBNET}.100, end: ${SUBNET}.199}
  autostart: false
---
apiVersion: virtform.dev/v1
kind: StoragePool
metadata: {name: ${POOL}}
spec: {path: ${POOL_DIR}, autostart: false}
`,
    'vm.yaml': `apiVersion: virtform.dev/v1
kind: VirtualMachine
metadata: {name: ${VM}}
spec:
  vcpus: 1
  memory: 192MiB
  state: ${o.state ?? 'stopped'}
  boot:
    kernel: ${files.kernel}
    initrd: ${files.initrd}
    cmdline: ${TINY_CMDLINE}
  nics: [{network: ${NET}, mac: "${MAC}"}]
  cloudInit:
    pool: ${POOL}
    userDataFile: user-data.txt
    metaData: {local-hostname: ${HOSTNAME}}
    networkConfig: {version: 2, ethernets: {eth0: {dhcp4: true}}}
`,
    'user-data.txt': `#cloud-config\n#vf-marker: ${o.marker}\n`,
  };
}

const cli = (args: string[]) => runCli([...args, '--db', N.db]);
function write(o: Parameters<typeof manifests>[0]): void {
  writeManifests(N.mdir, manifests(o));
}
async function reconcileOk(o: Parameters<typeof manifests>[0], extra: string[] = []): Promise<string> {
  write(o);
  const r = await cli(['reconcile', N.mdir, '--domain-type', 'qemu', '--shutdown-timeout', '0', ...extra]);
  expect(r.code, `${r.stdout}\n${r.stderr}`).toBe(0);
  return r.stdout + r.stderr;
}
const sha = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex');

/** Start the defined domain paused, attach the console, resume; wait for `until` on the console and for the lease. */
async function bootWatched(until: RegExp, timeoutMs = 200_000): Promise<{ text: string; lease?: Lease; leaseMs: number; readyMs: number }> {
  const con = await bootWithConsole(VM);
  try {
    let lease: Lease | undefined;
    let leaseMs = 0;
    let readyMs = 0;
    while (con.elapsed() < timeoutMs) {
      if (!lease) {
        lease = dhcpLeases(NET).find((l) => l.mac === MAC && l.hostname === HOSTNAME);
        if (lease) leaseMs = con.elapsed();
      }
      if (!readyMs && until.test(con.text)) readyMs = con.elapsed();
      if (lease && readyMs) break;
      await sleep(250);
    }
    return { text: con.text, lease, leaseMs, readyMs };
  } finally {
    await con.close();
  }
}

describe.sequential('spec.cloudInit on qemu:///system: the tiny guest configured by its seed', () => {
  let firstSeed = '';
  let firstIid = '';

  it('reconcile builds the seed volume (0600, the ISO bytes) and attaches it read-only on IDE', async () => {
    const out = await reconcileOk({ marker: 'first-boot' });
    expect(out).toContain('build and upload cloud-init seed');
    expect(out).not.toContain('first-boot');
    const st = statSync(SEED_PATH);
    expect((st.mode & 0o777).toString(8)).toBe('600');
    expect(st.uid).toBe(0);
    const bytes = readFileSync(SEED_PATH);
    expect(bytes.subarray(0x8001, 0x8006).toString('latin1')).toBe('CD001');
    expect(bytes.toString('latin1')).toContain('#vf-marker: first-boot');
    firstSeed = sha(bytes);
    expect(virsh('vol-dumpxml', '--pool', POOL, SEED)).toMatch(/<mode>0600<\/mode>/);
    const xml = virsh('dumpxml', '--inactive', VM);
    expect(xml).toMatch(new RegExp(`<disk type='file' device='cdrom'>\\s*<driver name='qemu' type='raw'/>\\s*<source file='${SEED_PATH}'/>\\s*<target dev='hda' bus='ide'/>\\s*<readonly/>`));
    expect(parseDomainXml(xml).cdroms).toEqual([{ path: SEED_PATH, target: 'hda', bus: 'ide', format: 'raw' }]);
    expect(virsh('net-dumpxml', NET)).not.toContain('<forward');
  });

  it('the guest reads the seed: marker on the console, lease under the cloud-init hostname', async () => {
    const r = await bootWatched(/^vf-guest: ready/m);
    // eslint-disable-next-line no-console
    console.log(`[cloudinit] resume -> lease ${r.leaseMs} ms, resume -> ready ${r.readyMs} ms; guest: ${/^vf-guest: uptime (.*)$/m.exec(r.text)?.[1]}`);
    expect(r.text).toMatch(/^vf-guest: seed \/dev\/sr0/m);
    expect(r.text).toMatch(new RegExp(`^vf-guest: hostname ${HOSTNAME}\\s*$`, 'm'));
    expect(r.text).toMatch(/^vf-marker: first-boot\s*$/m);
    firstIid = /^vf-guest: instance-id (iid-[0-9a-f]{16})\s*$/m.exec(r.text)?.[1] ?? '';
    expect(firstIid).not.toBe('');
    expect(r.text).not.toMatch(/^vf-guest: error/m);
    expect(r.lease, r.text).toBeDefined();
    expect(r.lease!.ip.startsWith(`${SUBNET}.`)).toBe(true);
    expect(r.text).toContain(`vf-guest: ip ${r.lease!.ip}`);
    // Declared running now: nothing left to do but record it; the seed the domain booted with is the one uploaded.
    await reconcileOk({ marker: 'first-boot', state: 'running' });
    write({ marker: 'first-boot', state: 'running' });
    expect((await cli(['reconcile', N.mdir, '--dry-run', '--detailed-exitcode'])).code).toBe(0);
  }, 260_000);

  it('changed user-data: a new seed (digests only in plan, log and status), one seed volume, restart required', async () => {
    write({ marker: 'second-boot', state: 'running' });
    const dry = await cli(['reconcile', N.mdir, '--dry-run']);
    const all = dry.stdout + dry.stderr;
    expect(all).toMatch(/~ spec\.cloudInit\.seed: "sha256:[0-9a-f]{12}…" → "sha256:[0-9a-f]{12}…"/);
    expect(all).toMatch(/~ spec\.cloudInit\.userData: "sha256:[0-9a-f]{12}…" → "sha256:[0-9a-f]{12}…"/);
    expect(all).toContain('cloud-init will run again at next boot (instance-id changed)');
    const json = await cli(['reconcile', N.mdir, '--dry-run', '--json']);
    const out = await reconcileOk({ marker: 'second-boot', state: 'running' });
    const status = await cli(['status', '--uri', 'qemu:///system', '--json']);
    const statusText = await cli(['status', '--uri', 'qemu:///system']);
    for (const text of [all, json.stdout, out, status.stdout, statusText.stdout]) {
      expect(text).not.toContain('second-boot');
      expect(text).not.toContain('first-boot');
      expect(text).not.toContain('vf-marker');
    }
    expect(statusText.stdout).toMatch(/restart required/);
    const bytes = readFileSync(SEED_PATH);
    expect(sha(bytes)).not.toBe(firstSeed);
    expect(bytes.toString('latin1')).toContain('#vf-marker: second-boot');
    expect((statSync(SEED_PATH).mode & 0o777).toString(8)).toBe('600');
    expect(inventory(N.prefix).volumes).toEqual([`${POOL}/${SEED}`]);
    expect(inventory(N.prefix).files.filter((f) => f.startsWith(POOL_DIR))).toEqual([SEED_PATH]);
    // The state DB keeps digests only.
    expect(readFileSync(N.db).includes('second-boot')).toBe(false);
  }, 120_000);

  it('after a restart the guest reads the new seed under a new instance-id', async () => {
    virsh('destroy', VM);
    const r = await bootWatched(/^vf-guest: ready/m);
    expect(r.text).toMatch(/^vf-marker: second-boot\s*$/m);
    const iid = /^vf-guest: instance-id (iid-[0-9a-f]{16})\s*$/m.exec(r.text)?.[1];
    expect(iid).toBeDefined();
    expect(iid).not.toBe(firstIid);
    expect(r.lease).toBeDefined();
    write({ marker: 'second-boot', state: 'running' });
    const dry = await cli(['reconcile', N.mdir, '--dry-run', '--detailed-exitcode']);
    expect(dry.code, dry.stdout).toBe(0);
    const st = await cli(['status', '--uri', 'qemu:///system']);
    expect(st.stdout).not.toMatch(/restart required/);
  }, 260_000);

  it('an empty manifest set deletes the VM and its seed without --allow-data-loss', async () => {
    writeManifests(N.mdir, {});
    const r = await cli(['reconcile', N.mdir, '--allow-empty', '--shutdown-timeout', '0']);
    expect(r.code, r.stdout + r.stderr).toBe(0);
    const inv = inventory(N.prefix);
    expect(inv.domains).toEqual([]);
    expect(inv.volumes).toEqual([]);
    expect(inv.files.filter((f) => f.startsWith(POOL_DIR))).toEqual([]);
  }, 120_000);
});
