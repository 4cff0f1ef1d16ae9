/**
 * Shared pieces of the Debian guest tests (make test-e2e): the cached guest from
 * scripts/build-debian-guest.sh, virsh, DHCP leases, the serial console read through libvirt's
 * console stream (virDomainOpenConsole) from a domain started paused, and the checks of what
 * cloud-init printed.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { type LibvirtClient, type LibvirtStream, VIR_DOMAIN_START_PAUSED } from '../../src/libvirt/index.js';
import { suiteNames } from '../support/names.js';
import { dhcpLeases, virsh, type Lease } from '../support/virsh.js';
import { sleep } from '../support/cli.js';

export { virsh, type Lease } from '../support/virsh.js';
export { assertSubnetFree } from '../support/guest.js';
export { sleep } from '../support/cli.js';

export const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
export const URI = 'qemu:///system';
const N = suiteNames('guestdeb');
/** Every libvirt object and directory of these tests starts with this and a dash. */
export const PREFIX = N.base;
/** This suite's subnets (`a.b.c`) and MACs. */
export const subnet = N.subnet;
export const mac = N.mac;
/**
 * Domain type. Default `qemu` (TCG), which every host has; VFTEST_GUEST_VIRT=kvm for KVM (on
 * this project's nested CI machine KVM does not boot a Linux kernel: see bench/results/guest.md).
 */
export const VIRT: 'kvm' | 'qemu' = process.env.VFTEST_GUEST_VIRT === 'kvm' ? 'kvm' : 'qemu';
/** Start to "cloud-init finished": ~90 s under TCG here; generous for a loaded 2-core CI host. */
export const BOOT_TIMEOUT_MS = Number(process.env.VFTEST_GUEST_TIMEOUT_MS ?? 600_000);

export interface GuestPaths {
  dir: string;
  kernel: string;
  initrd: string;
  image: string;
  imageFormat: 'qcow2';
  imageSha256: string;
  imageVirtualSize: number;
  cmdline: string;
  kernelRelease: string;
  key: string;
  packages: Record<string, string>;
}

/** The cached guest (built first when missing or out of date; cached: ~1 s). */
export function debianGuest(): GuestPaths {
  const out = execFileSync('bash', [resolve(ROOT, 'scripts/build-debian-guest.sh'), '--print-paths'], {
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'inherit'],
    timeout: 1_500_000,
  });
  return JSON.parse(out.trim().split('\n').pop()!) as GuestPaths;
}

/** Removes every `vftest-guestdeb-*` libvirt object and directory under /var/lib/virtform-test. */
export const cleanup = (): void => N.cleanup();

export const leases = (network: string): Lease[] => dhcpLeases(network);

/** cloud-init's own last line (cc_final_message), e.g.
 * `Cloud-init v. 22.4.2 finished at Tue, 01 Dec 2026 22:04:52 +0000. Datasource DataSourceNoCloud [seed=/dev/sr0][dsmode=net].  Up 86.85 seconds` */
export const FINISHED = /Cloud-init v\. (\S+) finished at [^\n]*?Datasource (\S+) \[seed=([^\]]*)\][^\n]*?Up ([0-9.]+) seconds/;

/** The console of a domain, recorded from before its first instruction. */
export class Console {
  text = '';
  private readonly t0 = Date.now();
  /** ms after resume at which each pattern was first seen. */
  readonly seenAt = new Map<string, number>();
  constructor(private readonly stream: LibvirtStream) {
    stream.on('data', (b: Buffer) => {
      this.text += b.toString('utf8').replace(/\r/g, '');
    });
    stream.on('error', () => undefined);
  }

  /** Starts the defined domain paused, attaches to its console, then lets it run. */
  static async boot(c: LibvirtClient, name: string): Promise<Console> {
    const dom = await c.domainLookupByName(name);
    const running = await c.domainCreateWithFlags(dom, VIR_DOMAIN_START_PAUSED);
    const con = new Console(await c.domainOpenConsole(running, null, 0));
    await c.domainResume(running);
    return con;
  }

  /** Like boot, for a domain something else started paused (or that is running already). */
  static async attach(c: LibvirtClient, name: string): Promise<Console> {
    const dom = await c.domainLookupByName(name);
    const con = new Console(await c.domainOpenConsole(dom, null, 0));
    return con;
  }

  /** Records when `re` first matches (ms since the console was opened); true once it has. */
  check(label: string, re: RegExp): boolean {
    if (this.seenAt.has(label)) return true;
    if (re.test(this.text)) {
      this.seenAt.set(label, Date.now() - this.t0);
      return true;
    }
    return false;
  }

  close(): void {
    this.stream.destroy();
  }
}

export interface Expected {
  network: string;
  mac: string;
  hostname: string;
  fileContent: string;
  subnet: string;
}

/**
 * Waits until the console shows cloud-init's finished line and the runcmd's lines, and libvirt's
 * DHCP leases show the guest's MAC; stops early when the domain is no longer running.
 */
export async function waitForGuest(con: Console, domain: string, e: Expected): Promise<{ lease?: Lease; leaseMs?: number; ms: number }> {
  const t0 = Date.now();
  let lease: Lease | undefined;
  let leaseMs: number | undefined;
  while (Date.now() - t0 < BOOT_TIMEOUT_MS) {
    if (!lease) {
      lease = leases(e.network).find((l) => l.mac === e.mac);
      if (lease) leaseMs = Date.now() - t0;
    }
    con.check('finished', FINISHED);
    con.check('file', new RegExp(`vf-file: ${e.fileContent}`));
    con.check('login', new RegExp(`${e.hostname} login:`));
    if (lease && con.seenAt.has('finished') && con.seenAt.has('file')) break;
    if (!virsh('domstate', domain).includes('running')) break;
    await sleep(500);
  }
  return { lease, leaseMs, ms: Date.now() - t0 };
}

/** A plain summary of the console for failure messages (the last 6 KiB). */
export function tail(text: string, n = 6144): string {
  return text.length > n ? `...${text.slice(-n)}` : text;
}

export function readJson<T>(path: string): T {
  return JSON.parse(readFileSync(path, 'utf8')) as T;
}
