import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { dirname, resolve } from 'node:path';

// Integration tests talk to the real libvirtd. Every object they create is named with the
// `vftest` prefix; this removes leftovers before the run (e.g. from a killed run) and after it.
const root = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const cleanup = () =>
  execFileSync('bash', [resolve(root, 'scripts/cleanup-test-objects.sh'), 'vftest'], { stdio: 'inherit' });

export default function setup(): () => void {
  try {
    execFileSync('virsh', ['-c', 'qemu:///system', 'version'], { stdio: 'ignore' });
  } catch {
    throw new Error('libvirtd is not answering on qemu:///system: run `make setup` (as root) first');
  }
  cleanup();
  return cleanup;
}
