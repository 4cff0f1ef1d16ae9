/**
 * README's "On a remote host", run as written over qemu+ssh: a namespace test host (its own
 * libvirtd) with an sshd inside it (test/support/transport-host.ts), the manifests of "Your first
 * manifests" (names moved to this suite's `vftest-sshwalk-…`, the pool path and subnet too), and
 * the section's two commands with the README's URI moved to that sshd (its key and known_hosts
 * given in the URI, as a user without ssh-agent would) and `--db` added. Asserts what the section
 * says: the plan and the apply go through ssh, the pool's directory is made on the libvirt host
 * (not here), the state DB is the local file, and a rerun prints "No changes.".
 */
import { existsSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ensureBuilt, runCli } from '../support/cli.js';
import { suiteNames } from '../support/names.js';
import { codeBlocks, readme, section, shellCommands } from '../support/readme.js';
import { type TestHost, testHostDown, testHostsCleanup, testHostUp } from '../support/test-host.js';
import { type Sshd, startSshd } from '../support/transport-host.js';

const N = suiteNames('sshwalk');
const HOST = 'vfcirg';
const README_URI = 'qemu+ssh://root@hv1.example.com/system';

const md = readme();
const guide = section(md, 'Your first manifests');
const guideYaml = codeBlocks(guide.text, guide.line).find((b) => b.lang === 'yaml')!;
const remote = section(md, 'On a remote host');
const remoteSh = codeBlocks(remote.text, remote.line).filter((b) => b.lang === 'sh');

let host: TestHost;
let sshd: Sshd;
let work: string;
let dir: string;
let db: string;

const mapped = (text: string): string => text
  .replaceAll('/var/lib/virtform/guide-pool', N.poolPath('pool'))
  .replaceAll('10.213.0.', `${N.subnet()}.`)
  .replaceAll('guide-', N.prefix);

/** One README command: `virtform …` with `guide/` as the suite's folder and the URI moved to the host's sshd. */
async function run(argv: string[]): Promise<{ code: number | null; out: string }> {
  expect(argv[0]).toBe('virtform');
  const args = argv.slice(1).map((a) => (a === 'guide/' ? dir : a === README_URI ? sshd.uri() : a));
  const r = await runCli([...args, '--db', db], {}, 240_000);
  return { code: r.code, out: `${r.stdout}\n${r.stderr}` };
}

beforeAll(() => {
  ensureBuilt();
  testHostsCleanup(HOST); // left by a killed run
  host = testHostUp(HOST);
  work = N.tempDir();
  sshd = startSshd(host, join(work, 'ssh'));
  dir = join(work, 'guide');
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'lab.yaml'), mapped(guideYaml.text));
  db = join(work, 'state.db');
}, 240_000);

afterAll(async () => {
  if (sshd && db) {
    const empty = join(work, 'empty');
    mkdirSync(empty, { recursive: true });
    await runCli(['reconcile', empty, '--allow-empty', '--allow-data-loss', '--shutdown-timeout', '0', '--uri', sshd.uri(), '--db', db], {}, 120_000);
  }
  sshd?.stop();
  testHostDown(HOST);
  if (work) rmSync(work, { recursive: true, force: true });
}, 180_000);

describe('README: On a remote host (run as written over qemu+ssh)', () => {
  it('the section has one sh block: a dry-run and an apply of guide/ on a qemu+ssh URI', () => {
    expect(remoteSh).toHaveLength(1);
    const cmds = shellCommands(remoteSh[0]!).map((c) => c.argv);
    expect(cmds).toHaveLength(2);
    for (const argv of cmds) expect(argv).toContain(README_URI);
    expect(cmds[0]).toContain('--dry-run');
  });

  it('plan, apply on the remote host, the pool made there, the DB here; then "No changes."', async () => {
    const [dry, apply] = shellCommands(remoteSh[0]!).map((c) => c.argv);
    const plan = await run(dry!);
    expect(plan.code, plan.out).toBe(0);
    expect(plan.out).toContain('Plan: 4 to create, 0 to change, 0 to replace, 0 to delete.');
    const applied = await run(apply!);
    expect(applied.code, applied.out).toBe(0);
    // Defined and running in THAT host's libvirtd (its private /etc/libvirt), not this machine's.
    expect(host.virsh('list', '--name')).toContain(N.name('vm'));
    expect(host.virsh('vol-list', N.name('pool'))).toContain(N.name('vm-root'));
    // "Paths in manifests are paths on the libvirt host": the pool's directory was made there.
    expect(host.execOk(['stat', '-c', '%F', N.poolPath('pool')]).trim()).toBe('directory');
    expect(existsSync(N.poolPath('pool'))).toBe(false);
    // "The state DB stays on your machine".
    expect(existsSync(db)).toBe(true);
    const again = await run(dry!);
    expect(again.code, again.out).toBe(0);
    expect(again.out).toContain('No changes.');
  }, 600_000);
});
