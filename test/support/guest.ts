/**
 * The tiny guest for e2e tests (scripts/build-tiny-guest.sh: Debian cloud kernel + busybox
 * initramfs), and what tests read about a booted guest.
 *
 * tinyGuestFiles copies the kernel and initrd into a test directory right after the build: libvirt
 * changes the owner of the files a domain boots from while it runs, and the cache directory is
 * replaced by a rebuild (another worktree's script version may prune it).
 */
import { copyFileSync, mkdirSync, rmSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { join, resolve } from 'node:path';
import { ROOT, TEST_POOL_ROOT, virsh } from './real-host.js';

export interface TinyGuestFiles { dir: string; kernel: string; initrd: string; remove(): void }

/** Builds (or takes from the cache) the tiny guest and copies it to `TEST_POOL_ROOT/<prefix>-files`. */
export function tinyGuestFiles(prefix: string): TinyGuestFiles {
  const built = execFileSync('bash', [resolve(ROOT, 'scripts/build-tiny-guest.sh')], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'], timeout: 280_000 }).trim();
  const dir = join(TEST_POOL_ROOT, `${prefix}-files`);
  mkdirSync(dir, { recursive: true });
  const kernel = join(dir, 'vmlinuz');
  const initrd = join(dir, 'initrd.img');
  copyFileSync(join(built, 'vmlinuz'), kernel);
  copyFileSync(join(built, 'initrd.img'), initrd);
  return { dir, kernel, initrd, remove: () => rmSync(dir, { recursive: true, force: true }) };
}

/** The guest's domain type: TCG unless VFTEST_GUEST_VIRT=kvm. */
export const GUEST_VIRT: 'kvm' | 'qemu' = process.env.VFTEST_GUEST_VIRT === 'kvm' ? 'kvm' : 'qemu';

export interface Lease { mac: string; ip: string; prefix: number; expiry: string }

/** `virsh net-dhcp-leases NET`, IPv4 rows (expiry as virsh prints it, `YYYY-MM-DD HH:MM:SS`). */
export function dhcpLeases(net: string): Lease[] {
  return virsh('net-dhcp-leases', net).split('\n').map((l) => l.trim().split(/\s+/))
    .filter((f) => f.length >= 5 && f[3] === 'ipv4')
    .map((f) => ({ expiry: `${f[0]} ${f[1]}`, mac: f[2]!, ip: f[4]!.split('/')[0]!, prefix: Number(f[4]!.split('/')[1]) }));
}

/** `virsh dommemstat NAME` as numbers (KiB): actual, rss, … */
export function domMemStat(name: string): Record<string, number> {
  return Object.fromEntries(virsh('dommemstat', name).split('\n').map((l) => l.trim().split(/\s+/)).filter((f) => f.length === 2).map((f) => [f[0]!, Number(f[1])]));
}
