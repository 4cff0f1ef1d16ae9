/**
 * GitOps on qemu:///system (issue #14): `virtform watch --git git://127.0.0.1:PORT/...` (git daemon
 * on loopback) as a real process. A pushed commit converges within one --git-interval; a bad
 * commit changes nothing and `status --json` shows the applied and fetched commits and the error;
 * a VM destroyed outside virtform comes back from the git source as from a folder; the record
 * survives the watcher's exit. `reconcile --git` follows --branch, --tag, --commit and --path;
 * `--git` with DIR is exit 2. The read-back oracle checks libvirt against the committed manifests.
 * Objects are vftest-git-*; the network is isolated and the VM boots no OS.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { runCli, startWatch, waitFor, type Watcher } from '../../support/cli.js';
import { suiteNames } from '../../support/names.js';
import { lab } from '../../support/suite.js';
import { dhcpHosts as netHosts, domState, tryVirsh, URI, virsh } from '../../support/virsh.js';
import { TestRepo, startGitDaemon, type Daemon } from '../../support/git.js';
import { mergeSnapshots, waitForReadbackMatch, expectReadbackMatches, type Snapshot } from '../../support/readback.js';

const N = suiteNames('git');
const P = N.base;
const VM = `${P}-vm`;
const NET = `${P}-net`;
const INTERVAL_S = 1;
/** The MAC of DHCP host `h` (a decimal string, as the IP's last octet). */
const mac = (h: string): string => N.mac(Number(h));

function files(o: { memory?: string; hosts?: string[]; broken?: boolean; vmState?: string } = {}): Record<string, string> {
  return lab(N, {
    dhcpHosts: (o.hosts ?? ['11']).map(Number), mac: 11, memory: o.broken ? 'a lot' : o.memory, state: o.vmState, vmFile: 'vms.yaml',
  }).files();
}

const dhcpHosts = (): string[] => netHosts(NET);
const maxMemKiB = (): number => Number(/<memory unit='KiB'>(\d+)</.exec(tryVirsh('dumpxml', '--inactive', VM))?.[1] ?? 0);

let work: string;
let repo: TestRepo;
let daemon: Daemon;
let db: string;
let w: Watcher;
let snap: Snapshot | undefined;
/** The committed manifests are in the work tree (repo.work/env): the oracle reads them there. */
async function converged(label: string): Promise<void> {
  snap = mergeSnapshots(snap, await waitForReadbackMatch(join(repo.work, 'env'), URI, snap, label), 'last');
}

const http = (path: string): Promise<{ status: number; body: string }> => w.http(path);

interface GitJson { fetchedCommit: string | null; appliedCommit: string | null; differ: boolean; error: string | null; summary: string; fetchError: string | null }
async function statusJson(extra: string[] = []): Promise<{ code: number | null; git: GitJson; resources: { name: string; status: string }[] }> {
  const r = await runCli(['status', '--db', db, '--uri', URI, '--json', ...extra]);
  return { code: r.code, ...(JSON.parse(r.stdout) as { git: GitJson; resources: { name: string; status: string }[] }) };
}

beforeAll(async () => {
  N.cleanup();
  work = N.tempDir();
  repo = new TestRepo(join(work, 'repos', 'lab'));
  db = join(work, 'state.db');
  repo.commit(files(), { folder: 'env' });
  daemon = await startGitDaemon(join(work, 'repos'));
  w = await startWatch(['--git', daemon.url('lab/origin.git'), '--branch', 'main', '--path', 'env',
    '--git-interval', String(INTERVAL_S), '--uri', URI, '--db', db, '--retry-delay', '200', '--max-attempts', '4', '--resync', '300'], 90_000);
}, 150_000);

afterEach((ctx) => {
  if (ctx.task.result?.state === 'fail') process.stderr.write(`--- last watcher log lines ---\n${w?.tail()}\n`);
});

afterAll(async () => {
  if (w && w.exitCode === undefined) w.child.kill('SIGKILL');
  await daemon?.stop();
  N.cleanup();
  rmSync(work, { recursive: true, force: true });
}, 60_000);

describe('virtform watch --git on qemu:///system', () => {
  it('converged the first commit; /status shows it applied and up to date', async () => {
    expect(domState(VM)).toBe('running');
    await converged('first commit');
    const st = JSON.parse((await http('/status')).body) as { git: GitJson; manifests: { valid: boolean } };
    const head = spawnSync('git', ['-C', repo.work, 'rev-parse', 'HEAD'], { encoding: 'utf8' }).stdout.trim();
    expect(st.git.appliedCommit).toBe(head);
    expect(st.git.fetchedCommit).toBe(head);
    expect(st.git.differ).toBe(false);
  });

  it('a pushed commit converges within one interval', async () => {
    const c = repo.commit(files({ hosts: ['11', '12'] }), { folder: 'env' });
    const t0 = Date.now();
    await waitFor(() => dhcpHosts().includes(mac('12')), 'the new DHCP host', 20_000);
    const ms = Date.now() - t0;
    // One interval to notice it, plus one reconcile of five resources (well under 10 s here).
    expect(ms).toBeLessThan(INTERVAL_S * 1000 + 10_000);
    await converged('pushed commit');
    await waitFor(async () => JSON.parse((await http('/status')).body).git.appliedCommit === c, 'applied recorded');
    expect(w.logs.some((l) => l.msg === 'reconcile started' && (l.sources as string[]).includes('git'))).toBe(true);
    process.stderr.write(`[git] commit-to-converged on qemu:///system: ${ms} ms (interval ${INTERVAL_S} s)\n`);
  });

  it('a bad commit changes nothing; status --json shows applied and fetched commits and the error', async () => {
    const good = spawnSync('git', ['-C', repo.work, 'rev-parse', 'HEAD'], { encoding: 'utf8' }).stdout.trim();
    const before = maxMemKiB();
    const bad = repo.commit(files({ hosts: ['11', '12', '13'], broken: true }), { folder: 'env' });
    await waitFor(async () => JSON.parse((await http('/status')).body).git.error !== null, 'the refusal', 20_000);
    await new Promise((r) => setTimeout(r, INTERVAL_S * 2000));
    expect(dhcpHosts()).not.toContain(mac('13'));
    expect(maxMemKiB()).toBe(before);
    const s = await statusJson();
    expect(s.code).toBe(0);
    expect(s.git.appliedCommit).toBe(good);
    expect(s.git.fetchedCommit).toBe(bad);
    expect(s.git.differ).toBe(true);
    expect(s.git.error).toMatch(/^validation failed at env\/vms\.yaml:7:\d+: VirtualMachine\/vftest-git-vm: spec\.memory/);
    expect(s.git.summary).toContain(`fetched ${bad.slice(0, 7)}, applied ${good.slice(0, 7)}: validation failed at env/vms.yaml:7:`);
    const text = await runCli(['status', '--db', db, '--uri', URI]);
    expect(text.stdout).toContain(`fetched ${bad.slice(0, 7)}, applied ${good.slice(0, 7)}: validation failed at env/vms.yaml:7:`);
    expect(w.logs.some((l) => l.msg === 'git: fetched commit refused; nothing changed, the applied commit stays')).toBe(true);
  });

  it('drift is corrected from the git source (the last good commit) as from a folder', async () => {
    virsh('destroy', VM);
    await waitFor(() => domState(VM) === 'running', 'the VM to run again', 20_000);
    // The working tree still holds the broken commit: compare with the last good one.
    spawnSync('git', ['-C', repo.work, 'stash', '--quiet'], { encoding: 'utf8' });
    spawnSync('git', ['-C', repo.work, 'checkout', '--quiet', 'HEAD~1', '--', 'env'], { encoding: 'utf8' });
    await converged('drift corrected');
  });

  it('a fix after the bad commit converges; the record survives the watcher', async () => {
    const fixed = repo.commit(files({ hosts: ['11', '12', '13'], memory: '96MiB' }), { folder: 'env' });
    await waitFor(() => dhcpHosts().includes(mac('13')), 'the fix', 20_000);
    await converged('fixed commit');
    await waitFor(async () => JSON.parse((await http('/status')).body).git.appliedCommit === fixed, 'applied recorded');
    expect(await w.stop('SIGTERM')).toBe(0);
    const s = await statusJson(['--offline']);
    expect(s.git.appliedCommit).toBe(fixed);
    expect(s.git.fetchedCommit).toBe(fixed);
    expect(s.git.error).toBeNull();
  });
});

describe('reconcile --git on qemu:///system', () => {
  it('--branch, --tag, --commit and --path select what is applied; --git with DIR is exit 2', async () => {
    const r = new TestRepo(join(work, 'repos', 'refs'));
    const rdb = db; // the watcher's DB (it has exited): the same objects, now from another repository
    const v1 = r.commit(files({ hosts: ['11'] }), { folder: 'a', tag: 'v1' });
    const c2 = r.commit(files({ hosts: ['11', '21'] }), { folder: 'a' });
    const c3 = r.commit(files({ hosts: ['11', '31'] }), { folder: 'b', branch: 'other' });
    const run = (...args: string[]) => runCli(['reconcile', '--git', r.url, '--uri', URI, '--db', rdb, '--shutdown-timeout', '0', ...args]);

    let x = await run('--tag', 'v1', '--path', 'a');
    expect(x.code, x.stderr).toBe(0);
    expect(dhcpHosts()).toEqual([mac('11')]);
    expect(x.stdout).toContain(`Git: fetched ${v1.slice(0, 7)}, applied ${v1.slice(0, 7)} (up to date)`);
    x = await run('--branch', 'main', '--path', 'a');
    expect(x.code, x.stderr).toBe(0);
    expect(dhcpHosts()).toContain(mac('21'));
    x = await run('--commit', v1, '--path', 'a');
    expect(x.code, x.stderr).toBe(0);
    expect(dhcpHosts()).toEqual([mac('11')]);
    x = await run('--branch', 'other', '--path', 'b');
    expect(x.code, x.stderr).toBe(0);
    expect(dhcpHosts()).toContain(mac('31'));
    const dry = await run('--commit', c2, '--path', 'a', '--dry-run', '--detailed-exitcode');
    expect(dry.code).toBe(3);
    expect(dry.stdout).toMatch(/spec\.dhcp\.hosts/);
    const s = await runCli(['status', '--db', rdb, '--uri', URI, '--json', '--offline']);
    expect((JSON.parse(s.stdout) as { latestRevision: { gitCommit: string } }).latestRevision.gitCommit).toBe(c3);

    const both = await runCli(['reconcile', join(r.work, 'a'), '--git', r.url, '--uri', URI, '--db', rdb]);
    expect(both.code).toBe(2);
    expect(both.stderr).toContain('not both');
    const both2 = await runCli(['watch', join(r.work, 'a'), '--git', r.url, '--uri', URI, '--db', rdb, '--no-listen']);
    expect(both2.code).toBe(2);
    const badPath = await run('--path', 'nope');
    expect(badPath.code).toBe(2);
    expect(badPath.stderr).toContain('--path nope does not exist at commit');
    await expectReadbackMatches(join(r.work, 'b'), URI, undefined, 'refs');
  });
});
