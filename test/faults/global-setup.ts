/**
 * Fault-suite global setup: the shared one (test/support/global-setup.ts: vftest cleanup before and
 * after), after waiting for libvirtd — other suites (and this one) restart it, so a first
 * `virsh version` failure is retried for up to 30 s instead of failing the run.
 */
import { spawnSync } from 'node:child_process';
import shared from '../support/global-setup.js';

export default async function setup(): Promise<() => void> {
  for (let i = 0; i < 60; i++) {
    if (spawnSync('virsh', ['-c', 'qemu:///system', 'version'], { stdio: 'ignore', timeout: 10_000 }).status === 0) break;
    await new Promise((r) => setTimeout(r, 500));
  }
  return shared();
}
