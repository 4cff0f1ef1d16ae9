/**
 * The libvirtd of this test host, by pid: signalled, killed and started again by the tests that
 * need it gone (there is no systemd on the test hosts). Never by name: other libvirtd processes on
 * the machine (another host in a namespace, a developer's) are not the tests' to touch.
 */
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';

/** Pid file of this host's libvirtd: the system default, or a private one (`-p`) for a namespaced host. */
export const LIBVIRTD_PIDFILE = process.env.VIRTFORM_LIBVIRTD_PIDFILE ?? '/var/run/libvirtd.pid';
/**
 * How a test (re)starts this host's libvirtd. A namespace test host's libvirtd (scripts/test-host.sh
 * sets VIRTFORM_LIBVIRTD_PIDFILE) also listens on TCP (-l), as test-host.sh started it: a restart
 * without it left later suites that reach this host over qemu+tcp refused.
 */
export const LIBVIRTD_ARGS: readonly string[] = ['-d', '-p', LIBVIRTD_PIDFILE, ...(process.env.VIRTFORM_LIBVIRTD_PIDFILE ? ['-l'] : [])];

/** Pid of this host's libvirtd when one is running (its pid file names a live libvirtd process). */
export function libvirtdPid(): number | undefined {
  let pid: number;
  try {
    pid = Number(readFileSync(LIBVIRTD_PIDFILE, 'utf8').trim());
  } catch {
    return undefined;
  }
  if (!Number.isInteger(pid) || pid <= 0) return undefined;
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // "pid (comm) state ...": a zombie (killed, not yet reaped) does not count
    const m = /^\d+ \((.*)\) (\S)/.exec(stat);
    return m && m[1] === 'libvirtd' && m[2] !== 'Z' ? pid : undefined;
  } catch {
    return undefined;
  }
}

/** Send `signal` to this host's libvirtd (no-op when none runs). */
export function signalLibvirtd(signal: NodeJS.Signals): void {
  const pid = libvirtdPid();
  if (pid !== undefined) {
    try {
      process.kill(pid, signal);
    } catch {
      /* gone meanwhile */
    }
  }
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** A libvirtd process that is alive (zombies, killed but not yet reaped, do not count). */
export function libvirtdAlive(): boolean {
  return libvirtdPid() !== undefined;
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
    if (!libvirtdAlive()) spawnSync('libvirtd', LIBVIRTD_ARGS, { stdio: 'ignore' });
    await sleep(250);
  }
  throw new Error(`libvirtd did not answer within ${timeoutMs} ms`);
}
