/**
 * The tiny guest for e2e tests (scripts/build-tiny-guest.sh: Debian cloud kernel + busybox
 * initramfs), and what tests read about a booted guest.
 *
 * tinyGuestFiles copies the kernel and initrd into a test directory right after the build: libvirt
 * changes the owner of the files a domain boots from while it runs, and the cache directory is
 * replaced by a rebuild (another worktree's script version may prune it).
 */
import { copyFileSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { join, resolve } from 'node:path';
import { LibvirtClient, VIR_DOMAIN_START_PAUSED } from '../../src/libvirt/index.js';
import { ROOT } from './cli.js';
import { TEST_POOL_ROOT } from './names.js';
import { virsh } from './virsh.js';

/** `built`: the build script's cache directory (kernel-version, …); `dir`: the copies. */
export interface TinyGuestFiles { built: string; dir: string; kernel: string; initrd: string; remove(): void }

/** Builds (or takes from the cache) the tiny guest and copies it to `TEST_POOL_ROOT/<prefix>-files`. */
export function tinyGuestFiles(prefix: string): TinyGuestFiles {
  const built = execFileSync('bash', [resolve(ROOT, 'scripts/build-tiny-guest.sh')], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'], timeout: 280_000 }).trim();
  const dir = join(TEST_POOL_ROOT, `${prefix}-files`);
  mkdirSync(dir, { recursive: true });
  const kernel = join(dir, 'vmlinuz');
  const initrd = join(dir, 'initrd.img');
  copyFileSync(join(built, 'vmlinuz'), kernel);
  copyFileSync(join(built, 'initrd.img'), initrd);
  return { built, dir, kernel, initrd, remove: () => rmSync(dir, { recursive: true, force: true }) };
}

/** The guest's domain type: TCG unless VFTEST_GUEST_VIRT=kvm. */
export const GUEST_VIRT: 'kvm' | 'qemu' = process.env.VFTEST_GUEST_VIRT === 'kvm' ? 'kvm' : 'qemu';

export { dhcpLeases, domMemStat, type Lease } from './virsh.js';

/** The tiny guest's kernel command line: serial console, panic = power off (on_reboot destroy). */
export const TINY_CMDLINE = 'console=ttyS0 loglevel=4 panic=-1';

/** Refuses a subnet (`a.b.c`) this host already routes: the test networks must not shadow a real one. */
export function assertSubnetFree(subnet: string): void {
  const routes = execFileSync('ip', ['-4', 'route'], { encoding: 'utf8' });
  if (routes.includes(`${subnet}.`)) throw new Error(`${subnet}.0/24 is already routed on this host:\n${routes}`);
}

/** An isolated libvirt network (no <forward>, no STP) with DHCP in `.start`–`.end` of `subnet` (`a.b.c`). */
export function isolatedNetworkXml(name: string, bridge: string, subnet: string, range = { start: 100, end: 199 }): string {
  return `<network>
  <name>${name}</name>
  <bridge name='${bridge}' stp='off' delay='0'/>
  <ip address='${subnet}.1' netmask='255.255.255.0'>
    <dhcp><range start='${subnet}.${range.start}' end='${subnet}.${range.end}'/></dhcp>
  </ip>
</network>
`;
}

/** Defines and starts an isolated network (isolatedNetworkXml) through virsh; its XML file goes to `dir`. */
export function startIsolatedNetwork(name: string, bridge: string, subnet: string, dir: string, range?: { start: number; end: number }): void {
  const file = join(dir, `${name}.xml`);
  writeFileSync(file, isolatedNetworkXml(name, bridge, subnet, range));
  virsh('net-define', file);
  virsh('net-start', name);
}

/** Defines, builds and starts a dir pool at `path` through virsh; its XML file goes to `dir`. */
export function startDirPool(name: string, path: string, dir: string): void {
  const file = join(dir, `${name}.xml`);
  writeFileSync(file, `<pool type='dir'><name>${name}</name><target><path>${path}</path></target></pool>\n`);
  virsh('pool-define', file);
  virsh('pool-build', name);
  virsh('pool-start', name);
}

/**
 * A tiny-guest domain defined by a test itself (not by virtform): direct kernel boot, a seed
 * CD-ROM (IDE, or virtio-scsi), one virtio NIC, the serial console into a file, no balloon.
 */
export function tinyDomainXml(o: {
  name: string; virt: string; memoryMiB: number; machine?: 'pc' | 'q35'; kernel: string; initrd: string;
  seed: string; seedBus?: 'ide' | 'scsi'; mac: string; network: string; consoleLog: string;
}): string {
  const cdrom = o.seedBus === 'scsi'
    ? `<target dev='sda' bus='scsi'/>
      <address type='drive' controller='0' bus='0' target='0' unit='0'/>`
    : `<target dev='hdc' bus='ide'/>`;
  return `<domain type='${o.virt}'>
  <name>${o.name}</name>
  <memory unit='MiB'>${o.memoryMiB}</memory>
  <vcpu>1</vcpu>
  <os>
    <type arch='x86_64' machine='${o.machine ?? 'pc'}'>hvm</type>
    <kernel>${o.kernel}</kernel>
    <initrd>${o.initrd}</initrd>
    <cmdline>${TINY_CMDLINE}</cmdline>
  </os>
  <on_poweroff>destroy</on_poweroff>
  <on_reboot>destroy</on_reboot>
  <on_crash>destroy</on_crash>
  <devices>${o.seedBus === 'scsi' ? `\n    <controller type='scsi' index='0' model='virtio-scsi'/>` : ''}
    <disk type='file' device='cdrom'>
      <driver name='qemu' type='raw'/>
      <source file='${o.seed}'/>
      ${cdrom}
      <readonly/>
    </disk>
    <interface type='network'>
      <mac address='${o.mac}'/>
      <source network='${o.network}'/>
      <model type='virtio'/>
    </interface>
    <serial type='file'>
      <source path='${o.consoleLog}'/>
      <target port='0'/>
    </serial>
    <memballoon model='none'/>
  </devices>
</domain>
`;
}

/** The serial console of a domain started by `bootWithConsole`, read from before its first instruction. */
export interface GuestConsole {
  /** What the console printed so far (latin1, as the tiny guest writes ASCII). */
  readonly text: string;
  /** ms since the resume. */
  elapsed(): number;
  /** Resolves with the text once `re` matches; rejects with the text after `timeoutMs`. */
  waitFor(re: RegExp, timeoutMs: number): Promise<string>;
  /** Ends the console stream and closes the connection. */
  close(): Promise<void>;
}

/** Starts a defined domain paused, attaches its console stream, then resumes it: no output is missed. */
export async function bootWithConsole(name: string): Promise<GuestConsole> {
  const c = await LibvirtClient.connect('qemu:///system');
  try {
    const dom = await c.domainLookupByName(name);
    const running = await c.domainCreateWithFlags(dom, VIR_DOMAIN_START_PAUSED);
    const con = await c.domainOpenConsole(running, null, 0);
    // Closing the connection right after end() can fail the stream's finish: not a test's concern.
    con.on('error', () => undefined);
    let text = '';
    con.on('data', (b: Buffer) => (text += b.toString('latin1')));
    await c.domainResume(running);
    const t0 = Date.now();
    return {
      get text() { return text; },
      elapsed: () => Date.now() - t0,
      async waitFor(re, timeoutMs) {
        const end = Date.now() + timeoutMs;
        while (!re.test(text)) {
          if (Date.now() > end) throw new Error(`console of ${name} did not show ${re} within ${timeoutMs} ms:\n${text}`);
          await new Promise((r) => setTimeout(r, 100));
        }
        return text;
      },
      async close() {
        con.end();
        await new Promise<void>((r) => { con.once('finish', () => r()); con.once('close', () => r()); setTimeout(r, 2_000); });
        await c.close();
      },
    };
  } catch (e) {
    await c.close();
    throw e;
  }
}
