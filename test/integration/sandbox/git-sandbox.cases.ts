/**
 * A git checkout is a sandbox (issue 19, finding 9), through the CLI on qemu:///system: a commit
 * whose `*.yaml` is a symlink to a host file, whose --path folder is a symlink to a host folder of
 * valid manifests, or whose relative `userDataFile` leads out of the checkout, is refused with
 * exit 2 naming the file; nothing is applied, and the host file's content is in no output. A local
 * folder is the operator's own: symlinks are followed there unless the policy sets
 * `manifests.confineSymlinks: true`.
 */
import { describe, expect, it } from 'vitest';
import { mkdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { runCli, virsh } from '../../support/real-host.js';
import { TestRepo, git } from '../../support/git.js';
import { useSuite } from '../../support/suite.js';

const N = useSuite('sbxgit', {
  setup: () => {
    // "Host files" outside any checkout: a root-only file whose values must never be printed, and a
    // folder of valid manifests a commit must not make the applied set.
    hostFile = join(N.work, 'host-secret.yaml');
    writeFileSync(hostFile, `apiVersion: virtform.dev/v1\nkind: Network\nmetadata: {name: ${SECRET}}\nspec: {mode: ${SECRET}}\n`, { mode: 0o600 });
    hostDir = join(N.work, 'host-manifests');
    mkdirSync(hostDir);
    writeFileSync(join(hostDir, 'net.yaml'), NET(`${P}-hostnet`, 2));
  },
});
const P = N.base;
const SECRET = 'rootonly-7f3a9c-secret';
const NET = (name: string, third: number): string =>
  `apiVersion: virtform.dev/v1\nkind: Network\nmetadata: {name: ${name}}\nspec: {mode: isolated, cidr: 10.237.${third}.0/24, autostart: false}\n`;

let hostDir: string;
let hostFile: string;

const networks = (): string[] => virsh('net-list', '--all', '--name').split('\n').map((s) => s.trim()).filter((s) => s.startsWith(P));

/** Commit `files` (in `lab/`) plus symlinks (repository path → target), push. */
function commitWithLinks(repo: TestRepo, files: Record<string, string>, links: Record<string, string>): string {
  repo.commit(files, { folder: 'lab' });
  for (const [path, target] of Object.entries(links)) {
    const at = join(repo.work, path);
    rmSync(at, { recursive: true, force: true });
    mkdirSync(join(at, '..'), { recursive: true });
    symlinkSync(target, at);
  }
  git(repo.work, 'add', '-A');
  git(repo.work, 'commit', '--quiet', '--allow-empty', '-m', 'links');
  git(repo.work, 'push', '--quiet', '--force', 'origin', 'HEAD:refs/heads/main');
  return git(repo.work, 'rev-parse', 'HEAD');
}

describe('a --git checkout is a sandbox', () => {
  it('a symlinked manifest, a symlinked --path and a userDataFile leading outside: exit 2 naming the file, nothing applied, no content printed', async () => {
    const repo = new TestRepo(join(N.work, 'repo'));
    const db = join(N.work, 'state.db');
    const flags = ['--db', db, '--git', repo.url, '--branch', 'main', '--path', 'lab', '--max-attempts', '1'];

    // 1. lab/evil.yaml → the host file, beside a valid manifest.
    commitWithLinks(repo, { 'net.yaml': NET(`${P}-net`, 1) }, { 'lab/evil.yaml': hostFile });
    const r1 = await runCli(['reconcile', ...flags]);
    expect(r1.code, r1.stdout + r1.stderr).toBe(2);
    expect(r1.stderr).toContain('lab/evil.yaml:1:1: manifest file resolves outside the repository checkout (a symlink?): not read');
    expect(r1.stdout + r1.stderr).not.toContain(SECRET);
    expect(networks()).toEqual([]);

    // 2. --path lab is itself a symlink to a host folder of valid manifests.
    commitWithLinks(repo, { 'README': 'x\n' }, { lab: hostDir });
    const r2 = await runCli(['reconcile', ...flags]);
    expect(r2.code, r2.stdout + r2.stderr).toBe(2);
    expect(r2.stderr).toContain('manifest folder resolves outside the repository checkout (a symlink?): not read');
    expect(networks()).toEqual([]);
    const dry = await runCli(['reconcile', ...flags, '--dry-run']);
    expect(dry.code).toBe(2);
    expect(dry.stdout).not.toContain(`${P}-hostnet`);

    // 3. a relative userDataFile that is a symlink out of the checkout.
    const vm = `apiVersion: virtform.dev/v1\nkind: VirtualMachine\nmetadata: {name: ${P}-vm}\n`
      + `spec: {vcpus: 1, memory: 64MiB, state: stopped, cloudInit: {pool: ${P}-pool, userDataFile: ud.txt}}\n---\n`
      + `apiVersion: virtform.dev/v1\nkind: StoragePool\nmetadata: {name: ${P}-pool}\nspec: {path: /var/lib/virtform-test/${P}-pool}\n`;
    commitWithLinks(repo, { 'vm.yaml': vm }, { 'lab/ud.txt': hostFile });
    const r3 = await runCli(['reconcile', ...flags]);
    expect(r3.code, r3.stdout + r3.stderr).toBe(2);
    expect(r3.stderr).toMatch(/lab\/vm\.yaml:\d+:\d+: VirtualMachine\/vftest-sbxgit-vm: spec\.cloudInit\.userDataFile: user-data file "ud\.txt" resolves outside the repository checkout \(a symlink\?\): not read/);
    expect(r3.stdout + r3.stderr).not.toContain(SECRET);
    expect(networks()).toEqual([]);
    expect(virsh('pool-list', '--all', '--name')).not.toContain(P);

    // A symlink that stays inside the checkout is fine.
    commitWithLinks(repo, { 'net.txt': NET(`${P}-net`, 1) }, { 'lab/net.yaml': 'net.txt' });
    const ok = await runCli(['reconcile', ...flags, '--dry-run']);
    expect(ok.code, ok.stdout + ok.stderr).toBe(0);
    expect(ok.stdout).toContain(`Network/${P}-net will be created`);
  }, 120_000);

  it('a local folder follows symlinks, unless the policy sets manifests.confineSymlinks: true', async () => {
    const dir = join(N.work, 'local');
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, 'net.yaml'), NET(`${P}-net`, 1));
    symlinkSync(join(hostDir, 'net.yaml'), join(dir, 'shared.yaml'));
    const db = join(N.work, 'local.db');
    const followed = await runCli(['validate', dir]);
    expect(followed.code, followed.stdout + followed.stderr).toBe(0);
    const policy = join(N.work, 'policy.yaml');
    writeFileSync(policy, 'apiVersion: virtform.dev/v1\nkind: Policy\nmanifests: {confineSymlinks: true}\n');
    const r = await runCli(['reconcile', dir, '--db', db, '--policy', policy]);
    expect(r.code, r.stdout + r.stderr).toBe(2);
    expect(r.stderr).toContain(`${join(dir, 'shared.yaml')}:1:1: manifest file resolves outside the manifest folder (a symlink; manifests.confineSymlinks): not read`);
    expect(networks()).toEqual([]);
  }, 60_000);
});
