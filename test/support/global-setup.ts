import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { dirname, resolve } from 'node:path';
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';

// Integration tests talk to the real libvirtd. Every object they create is named with the
// `vftest` prefix; this removes leftovers before the run (e.g. from a killed run) and after it.
// When another test run is alive on this machine (a lock file names its pid), the sweep is left to
// it, so two runs never delete each other's objects.
const root = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
// In the folder of the test pools, which each private test host (scripts/test-host.sh) has of its
// own: a run on another host's libvirtd does not stop this one from sweeping its own.
const LOCK_DIR = '/var/lib/virtform-test';
const LOCK = `${LOCK_DIR}/.integration-tests.pid`;
const cleanup = (): void => {
  execFileSync('bash', [resolve(root, 'scripts/cleanup-test-objects.sh'), 'vftest'], { stdio: 'inherit' });
};

function otherRunAlive(): boolean {
  try {
    const pid = Number(readFileSync(LOCK, 'utf8').trim());
    if (!pid || pid === process.pid) return false;
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

export default function setup(): () => void {
  try {
    execFileSync('virsh', ['-c', 'qemu:///system', 'version'], { stdio: 'ignore' });
  } catch {
    throw new Error('libvirtd is not answering on qemu:///system: run `make setup` (as root) first');
  }
  if (otherRunAlive()) return () => undefined;
  mkdirSync(LOCK_DIR, { recursive: true });
  writeFileSync(LOCK, String(process.pid));
  cleanup();
  return () => {
    cleanup();
    rmSync(LOCK, { force: true });
  };
}
