import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { dirname, join, resolve } from 'node:path';
import { lstatSync, mkdirSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';

// Integration tests talk to the real libvirtd. Every object they create is named with the
// `vftest` prefix; this removes leftovers before the run (e.g. from a killed run) and after it.
// Every run registers its pid in a folder; a run sweeps only when no other registered run is
// alive, at its start and at its end, so two runs never delete each other's objects (a single
// lock file let the first run's end sweep a second run's objects mid-test: the crash matrix,
// run beside make test-fleet, lost its pool that way).
const root = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
// In the folder of the test pools, which each private test host (scripts/test-host.sh) has of its
// own: a run on another host's libvirtd does not stop this one from sweeping its own.
const RUNS_DIR = '/var/lib/virtform-test/.integration-runs';
// Temp folders `/tmp/vftest-*` a killed (or leaky) run left: removed once they are older than any
// run (3 h untouched), since /tmp is shared with the runs of other test hosts, which this run's
// registry does not see.
const STALE_TMP_MS = 3 * 3600_000;
function sweepStaleTmp(): void {
  const dir = tmpdir();
  for (const name of readdirSync(dir)) {
    if (!name.startsWith('vftest-')) continue;
    const path = join(dir, name);
    const st = lstatSync(path, { throwIfNoEntry: false });
    if (st && Date.now() - st.mtimeMs > STALE_TMP_MS) rmSync(path, { recursive: true, force: true });
  }
}
const cleanup = (): void => {
  execFileSync('bash', [resolve(root, 'scripts/cleanup-test-objects.sh'), 'vftest'], { stdio: 'inherit' });
  sweepStaleTmp();
};

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false; // safe-catch: ESRCH, the run is gone
  }
}

/** Other registered runs still alive (the files of dead ones are removed). */
function otherRunsAlive(): boolean {
  let others = false;
  for (const f of readdirSync(RUNS_DIR)) {
    const pid = Number(f);
    if (!pid || pid === process.pid) continue;
    if (alive(pid)) others = true;
    else rmSync(`${RUNS_DIR}/${f}`, { force: true });
  }
  return others;
}

export default function setup(): () => void {
  try {
    execFileSync('virsh', ['-c', 'qemu:///system', 'version'], { stdio: 'ignore' });
  } catch {
    throw new Error('libvirtd is not answering on qemu:///system: run `make setup` (as root) first');
  }
  mkdirSync(RUNS_DIR, { recursive: true });
  writeFileSync(`${RUNS_DIR}/${process.pid}`, '');
  if (!otherRunsAlive()) cleanup();
  return () => {
    rmSync(`${RUNS_DIR}/${process.pid}`, { force: true });
    if (!otherRunsAlive()) cleanup();
  };
}
