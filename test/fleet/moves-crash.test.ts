/**
 * The SIGKILL crash matrix of a cold move: a running VM (tiny guest under TCG) and its qcow2 volume
 * holding data move between two hosts, and the run (a child process, moves-run.ts) is killed with
 * SIGKILL at every journal boundary of the move in turn (src/reconcile/faults.ts: after each step
 * is journaled and after each host call inside it: stop on the source, create/copy/record of the
 * target volume, verify, define and start on the target, undefine and delete on the source). After
 * each kill one complete copy of the data exists (the source's, or the target's); a rerun converges:
 * the VM runs on the target only, the target file has the original bytes (sha256 read in the
 * host's mount namespace), the source has no file and no domain left, no journal entry stays open.
 * Each round moves back the other way.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import { chmodSync, copyFileSync, mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { execFileSync } from 'node:child_process';
import { writeManifests } from '../support/manifests.js';
import { ROOT } from '../support/cli.js';
import { suiteNames } from '../support/names.js';
import { TINY_CMDLINE } from '../support/guest.js';
import { openJournal } from '../support/real-host.js';
import type { MoveRun, MoveRunResult } from './moves-support.js';
import { useMoveHosts } from './moves-hosts.js';
import { makeTempDir } from '../support/temp-dirs.js';

const N = suiteNames('movescrash');
const P = N.base;
const POOL = N.poolPath();
const H = useMoveHosts('n', N.prefix);
const FILE = `${POOL}/${P}-disk.qcow2`;
const VM = `${P}-vm`;
let work = '';
let guest = '';

beforeAll(() => {
  work = makeTempDir(N.prefix);
  chmodSync(work, 0o755);
  const built = execFileSync('bash', [join(ROOT, 'scripts/build-tiny-guest.sh')], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'], timeout: 280_000 }).trim();
  guest = join(work, 'guest');
  mkdirSync(guest, { recursive: true });
  for (const f of ['vmlinuz', 'initrd.img']) copyFileSync(join(built, f), join(guest, f));
}, 300_000);
afterAll(() => {
  if (work) rmSync(work, { recursive: true, force: true });
});

function manifests(running: boolean): Record<string, string> {
  return {
    'all.yaml': `apiVersion: virtform.dev/v1
kind: StoragePool
metadata: {name: ${P}-pool}
spec: {path: ${POOL}}
---
apiVersion: virtform.dev/v1
kind: Volume
metadata: {name: ${P}-disk}
spec: {pool: ${P}-pool, capacity: 256MiB, format: qcow2}
---
apiVersion: virtform.dev/v1
kind: VirtualMachine
metadata: {name: ${VM}}
spec:
  vcpus: 1
  memory: 96MiB
  domainType: qemu
  state: ${running ? 'running' : 'stopped'}
  disks: [{volume: ${P}-disk}]
  boot:
    kernel: ${guest}/vmlinuz
    initrd: ${guest}/initrd.img
    cmdline: "${TINY_CMDLINE}"
`,
  };
}

/** One run in a child process; `killed` when SIGKILL ended it at boundary `crashAt`. */
function child(dir: string, vmHost: string, crashAt?: number): { killed: boolean; result?: MoveRunResult & { boundaries: number }; stderr: string } {
  const o: MoveRun = { dir, db: join(work, 'state.db'), hosts: H.uris, vmHost, ...(crashAt ? { crashAt } : {}) };
  const r = spawnSync(join(ROOT, 'node_modules/.bin/tsx'), [join(ROOT, 'test/fleet/moves-run.ts'), JSON.stringify(o)], { encoding: 'utf8', timeout: 300_000 });
  // tsx runs the script in a node child of its own: its SIGKILL is tsx's exit status 137.
  if (r.signal === 'SIGKILL' || (r.status === 137 && r.stderr.includes('crashing at boundary'))) return { killed: true, stderr: r.stderr };
  if (r.status !== 0) throw new Error(`moves-run.ts failed (${r.status ?? r.signal}): ${r.stderr}`);
  return { killed: false, result: JSON.parse(r.stdout.trim().split('\n').at(-1)!) as MoveRunResult & { boundaries: number }, stderr: r.stderr };
}

describe('cold move crash matrix', () => {
  it('SIGKILL at every boundary of a move: one complete copy remains, the rerun finishes it', async () => {
    const dir = writeManifests(join(work, 'm'), manifests(false));
    let r = child(dir, 'a');
    expect(r.result?.outcome, r.stderr).toBe('succeeded');
    H.sh('a', `set -e; f=$(mktemp); dd if=/dev/urandom of=$f bs=1M count=6 status=none
      qemu-io -f qcow2 -c "write -s $f 8M 6M" -c "write -P 0x33 200M 2M" '${FILE}' >/dev/null; rm -f $f`);
    const original = H.sha256('a', FILE)!;
    writeManifests(dir, manifests(true));
    r = child(dir, 'a');
    expect(r.result?.outcome, r.stderr).toBe('succeeded');
    expect(H.virsh('a', 'domstate', VM).trim()).toBe('running');

    let from = 'a';
    let to = 'b';
    const labels: string[] = [];
    let total = 0;
    for (let n = 1; n < 60; n += 1) {
      const crashed = child(dir, to, n);
      if (!crashed.killed) {
        // n is past the last boundary: this run completed the move itself.
        expect(crashed.result?.outcome, crashed.stderr).toBe('succeeded');
        total = crashed.result!.boundaries;
        expect(n).toBe(total + 1);
        [from, to] = [to, from];
        break;
      }
      labels.push(/crashing at boundary \d+: (.*)/.exec(crashed.stderr)?.[1] ?? '?');
      // Right after the kill: one complete copy, on the source or (verified) on the target.
      const onSource = H.sha256(from, FILE);
      const onTarget = H.sha256(to, FILE);
      expect(onSource === original || onTarget === original, `after boundary ${n} (${labels.at(-1)}): source ${onSource}, target ${onTarget}`).toBe(true);
      const rerun = child(dir, to);
      expect(rerun.result?.outcome, `${labels.at(-1)}: ${JSON.stringify(rerun.result)}\n${rerun.stderr}`).toBe('succeeded');
      expect(H.sha256(to, FILE), labels.at(-1)).toBe(original);
      expect(H.files(from, POOL), labels.at(-1)).toEqual([]);
      expect(H.files(to, POOL), labels.at(-1)).toEqual([`${P}-disk.qcow2`]);
      expect(H.domains(from, P), labels.at(-1)).toEqual([]);
      expect(H.domains(to, P), labels.at(-1)).toEqual([VM]);
      expect(H.virsh(to, 'domstate', VM).trim(), labels.at(-1)).toBe('running');
      expect(openJournal(join(work, 'state.db')), labels.at(-1)).toEqual([]);
      // The next round moves it back.
      [from, to] = [to, from];
    }
    // Every step of the move was in the matrix.
    for (const step of ['vm.stop', 'volume.moveCopy', 'volume.moveVerify', 'vm.define', 'vm.start', 'vm.delete', 'volume.delete']) {
      expect(labels.some((l) => l.includes(`:${step}:`)), `${step} in ${labels.join(', ')}`).toBe(true);
    }
    expect(labels.length).toBe(total);
    console.log(`[moves-crash] killed at each of ${total} boundaries: ${labels.join(', ')}`);
    expect(H.sha256(from, FILE)).toBe(original);
    // Converged: a last run has nothing to do.
    const last = child(dir, from).result!;
    expect(last.outcome).toBe('noop');
  });
});
