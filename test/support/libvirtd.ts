/** Starting libvirtd again after a test killed it (there is no systemd on the test hosts). */
import { spawnSync } from 'node:child_process';

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** A libvirtd process that is alive (zombies, killed but not yet reaped, do not count). */
export function libvirtdAlive(): boolean {
  const ps = spawnSync('ps', ['-C', 'libvirtd', '-o', 'stat='], { encoding: 'utf8' });
  return ps.stdout.split('\n').some((s) => s.trim() !== '' && !s.trim().startsWith('Z'));
}

export function libvirtdAnswers(): boolean {
  return spawnSync('virsh', ['-c', 'qemu:///system', 'version'], { stdio: 'ignore', timeout: 10_000 }).status === 0;
}

/**
 * Start libvirtd unless a live one exists, after waiting for a killed one to be gone (its pid file
 * and socket are released only then), and wait until it answers.
 */
export async function startLibvirtd(timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (libvirtdAnswers()) return;
    if (!libvirtdAlive()) spawnSync('libvirtd', ['-d'], { stdio: 'ignore' });
    await sleep(250);
  }
  throw new Error(`libvirtd did not answer within ${timeoutMs} ms`);
}
