/**
 * The git manifest source against real git: local bare repositories (file://), `git daemon` on
 * 127.0.0.1, `git http-backend` behind a loopback http server demanding a token, a stand-in ssh;
 * ssh signing keys made by ssh-keygen for --verify-commits.
 */
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { chmodSync, existsSync, mkdirSync, readdirSync, readFileSync, renameSync, statSync, writeFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { tempDir } from '../../support/manifests.js';
import { TestRepo, fakeSshBin, git, gpgSigningKey, sshSigningKey, startGitDaemon, startHttpGit, type SigningKey } from '../../support/git.js';
import { GitRepository, GitSync, checkGitSpec, parseRemote, redactUrl, rebaseState, sshCommand, type GitSourceSpec } from '../../../src/git/index.js';
import { openStateStore } from '../../../src/state/index.js';

const NET = (name: string, cidr = '10.231.9.0/24', extra = ''): string => `apiVersion: virtform.dev/v1
kind: Network
metadata: {name: ${name}}
spec: {mode: isolated, cidr: ${cidr}, autostart: false${extra}}
`;

let work: string;
let repo: TestRepo;
let good: SigningKey;
let other: SigningKey;
let allowed: string;

function make(spec: Partial<GitSourceSpec> = {}, ephemeral = false): GitRepository {
  return new GitRepository({ url: repo.url, ref: { kind: 'default' }, path: '', ...spec }, { cacheRoot: join(work, 'cache'), ephemeral });
}

beforeAll(() => {
  work = tempDir('vftest-git-unit-');
  good = sshSigningKey(join(work, 'keys'), 'good');
  other = sshSigningKey(join(work, 'keys'), 'other');
  allowed = join(work, 'keys', 'allowed_signers');
  writeFileSync(allowed, `${good.allowedSigner}\n`);
});

beforeEach(() => {
  repo = new TestRepo(join(work, `repo-${Math.random().toString(36).slice(2, 8)}`));
});

afterAll(() => {
  rmSync(work, { recursive: true, force: true });
});

describe('remote URLs and redaction', () => {
  it('takes credentials out of http(s) URLs and redacts them for display', () => {
    const r = parseRemote('https://deploy:s3cr3t-token@git.example.com/org/repo.git');
    expect(r.url).toBe('https://git.example.com/org/repo.git');
    expect(r.display).toBe('https://***@git.example.com/org/repo.git');
    expect(r.username).toBe('deploy');
    expect(r.password).toBe('s3cr3t-token');
    const t = parseRemote('https://ghp_abcdef123456@github.com/o/r');
    expect(t.url).toBe('https://github.com/o/r');
    expect(t.display).not.toContain('ghp_');
    expect(redactUrl('fatal: unable to access https://u:p4ss@h.example/x: 403')).toBe('fatal: unable to access https://***@h.example/x: 403');
    expect(parseRemote('git@github.com:o/r.git').transport).toBe('ssh');
    expect(parseRemote('ssh://git@h.example:2222/r.git').transport).toBe('ssh');
    expect(parseRemote('/srv/git/r.git').transport).toBe('file');
    expect(() => parseRemote('--upload-pack=evil')).toThrow(/must not start with "-"/);
    expect(() => parseRemote('ftp://h/x')).toThrow(/unsupported/);
  });

  it('checks refs and --path', () => {
    expect(checkGitSpec({ url: 'file:///x', ref: { kind: 'branch', name: 'main' }, path: 'a/b' })).toEqual([]);
    expect(checkGitSpec({ url: 'file:///x', ref: { kind: 'branch', name: '-x' }, path: '' })[0]).toMatch(/not a valid git branch/);
    expect(checkGitSpec({ url: 'file:///x', ref: { kind: 'tag', name: 'a..b' }, path: '' })[0]).toMatch(/tag/);
    expect(checkGitSpec({ url: 'file:///x', ref: { kind: 'commit', sha: 'xyz' }, path: '' })[0]).toMatch(/not a commit id/);
    expect(checkGitSpec({ url: 'file:///x', ref: { kind: 'default' }, path: '/etc' })[0]).toMatch(/relative/);
    expect(checkGitSpec({ url: 'file:///x', ref: { kind: 'default' }, path: 'a/../../b' })[0]).toMatch(/\.\./);
  });

  it('GIT_SSH_COMMAND: strict host keys against the given known_hosts, only the deploy key', () => {
    const c = sshCommand({ sshKey: "/k/it's key", knownHosts: '/k/known hosts' });
    expect(c).toContain('StrictHostKeyChecking=yes');
    expect(c).toContain('BatchMode=yes');
    expect(c).toContain(`'UserKnownHostsFile=/k/known hosts'`);
    expect(c).toContain(`-i '/k/it'\\''s key'`);
    expect(c).toContain('IdentitiesOnly=yes');
    expect(sshCommand({})).toBe('ssh -o BatchMode=yes -o StrictHostKeyChecking=yes');
  });
});

describe('fetch and check out (file://)', () => {
  it('follows the default branch, a branch, a tag and a commit; --path selects the folder', async () => {
    const c1 = repo.commit({ 'env/net.yaml': NET('vftest-git-a') }, { tag: 'v1' });
    const c2 = repo.commit({ 'env/net.yaml': NET('vftest-git-b') });
    const c3 = repo.commit({ 'env/net.yaml': NET('vftest-git-c') }, { branch: 'staging' });
    expect(await make().fetch()).toBe(c2);
    expect(await make({ ref: { kind: 'branch', name: 'main' } }).fetch()).toBe(c2);
    expect(await make({ ref: { kind: 'branch', name: 'staging' } }).fetch()).toBe(c3);
    expect(await make({ ref: { kind: 'tag', name: 'v1' } }).fetch()).toBe(c1);
    expect(await make({ ref: { kind: 'commit', sha: c1 } }).fetch()).toBe(c1);
    expect(await make({ ref: { kind: 'commit', sha: c1.slice(0, 10) } }).fetch()).toBe(c1);
    const r = make({ ref: { kind: 'tag', name: 'v1' }, path: 'env' });
    const v = await r.validate(await r.fetch());
    expect(v.ok).toBe(true);
    if (v.ok) expect(v.state.networks.map((n) => n.metadata.name)).toEqual(['vftest-git-a']);
    await expect(make({ ref: { kind: 'branch', name: 'nope' } }).fetch()).rejects.toThrow(/branch nope does not exist in file:\/\//);
    await expect(make({ ref: { kind: 'commit', sha: 'deadbeefdeadbeefdeadbeefdeadbeefdeadbeef' } }).fetch()).rejects.toThrow(/is not in/);
  });

  it('an annotated tag is peeled to its commit', async () => {
    const c = repo.commit({ 'n.yaml': NET('vftest-git-t') });
    git(repo.work, 'tag', '-a', '-m', 'release', 'rel-1');
    git(repo.work, 'push', '--quiet', 'origin', 'refs/tags/rel-1');
    expect(await make({ ref: { kind: 'tag', name: 'rel-1' } }).fetch()).toBe(c);
  });

  it('follows a force-push, and keeps the applied commit reachable', async () => {
    const store = await openStateStore(':memory:');
    const a = repo.commit({ 'n.yaml': NET('vftest-git-x') });
    const sync = new GitSync(make(), store);
    await sync.restore();
    expect(await sync.fetch()).toBe(a);
    expect((await sync.consider(a)).result).toBe('staged');
    expect((await sync.promote())?.commit).toBe(a);
    await sync.recordRun(a, 'succeeded');
    git(repo.work, 'commit', '--quiet', '--amend', '-m', 'rewritten');
    git(repo.work, 'push', '--quiet', '--force', 'origin', 'HEAD:refs/heads/main');
    const b = git(repo.work, 'rev-parse', 'HEAD');
    expect(await sync.fetch()).toBe(b);
    git(sync.repo.dir, '--git-dir=repo.git', 'gc', '--quiet', '--prune=now');
    expect(await sync.repo.has(a)).toBe(true);
    await store.close();
  });

  it('validation errors name files relative to the repository root; a missing --path and an empty folder are refused', async () => {
    const bad = repo.commit({ 'clusters/a/vms.yaml': NET('vftest-git-bad', '10.231.9.0/24', ', bogus: 1') });
    const ra = make({ path: 'clusters/a' });
    await ra.fetch();
    const v = await ra.validate(bad);
    expect(v.ok).toBe(false);
    if (!v.ok) {
      expect(v.reason).toMatch(/^validation failed at clusters\/a\/vms\.yaml:4:\d+: Network\/vftest-git-bad: .*bogus/);
      expect(v.errors[0]!.file).toBe('clusters/a/vms.yaml');
    }
    const rb = make({ path: 'clusters/b' });
    await rb.fetch();
    const missing = await rb.validate(bad);
    expect(!missing.ok && missing.reason).toMatch(/--path clusters\/b does not exist at commit/);
    const empty = repo.commit({ 'README.md': 'nothing here\n' });
    const r = make();
    await r.fetch();
    const e = await r.validate(empty);
    expect(!e.ok && e.reason).toMatch(/no manifests .*--allow-empty/);
    const re = make({ allowEmpty: true });
    await re.fetch();
    expect((await re.validate(empty)).ok).toBe(true);
  });

  it('a commit whose VM shares the host\'s / through spec.extraDevices is refused (deny by default, no policy)', async () => {
    const vm = `apiVersion: virtform.dev/v1
kind: VirtualMachine
metadata: {name: vftest-git-xdev}
spec:
  vcpus: 1
  memory: 64MiB
  extraDevices:
    - "<filesystem type='mount'><source dir='/'/><target dir='root'/></filesystem>"
`;
    const c = repo.commit({ 'vm.yaml': vm });
    const r = make();
    await r.fetch();
    const v = await r.validate(c);
    expect(v.ok).toBe(false);
    expect(!v.ok && v.reason).toMatch(/^validation failed at vm\.yaml:8:7: VirtualMachine\/vftest-git-xdev: spec\.extraDevices\[0\]: <filesystem> gives the guest part of the host .*extraDevices\.hostElements/);
  });

  it('a dry-run copy borrows the cache and leaves it alone; paths are rebased onto the applied checkout', async () => {
    const c = repo.commit({ 'env/net.yaml': NET('vftest-git-e') });
    const persistent = make();
    await persistent.fetch();
    const eph = make({}, true);
    expect(eph.dir).not.toBe(persistent.dir);
    expect(await eph.fetch()).toBe(c);
    const v = await eph.validate(c);
    expect(v.ok).toBe(true);
    expect(readFileSync(join(eph.gitDir, 'objects/info/alternates'), 'utf8').trim()).toBe(join(persistent.dir, 'repo.git', 'objects'));
    expect(existsSync(join(persistent.dir, 'candidate'))).toBe(false);
    if (v.ok) {
      const moved = rebaseState({ ...v.state, manifests: [{ ...v.state.manifests[0]!, spec: { source: join(eph.checkoutRoot('candidate'), 'img.raw') } } as never] },
        eph.checkoutRoot('candidate'), join(persistent.cacheDir, 'applied'));
      expect((moved.manifests[0]!.spec as { source: string }).source).toBe(join(persistent.cacheDir, 'applied', 'img.raw'));
    }
    eph.dispose();
    expect(existsSync(eph.dir)).toBe(false);
  });
});

describe('--verify-commits (ssh signatures, gpg.format=ssh)', () => {
  it('accepts a good signature of an allowed key; refuses unsigned and other-key commits with a clear error', async () => {
    const signed = repo.commit({ 'n.yaml': NET('vftest-git-s') }, { sign: good });
    const r = make({ verify: { sshAllowedSigners: allowed } });
    await r.fetch();
    expect((await r.validate(signed)).ok).toBe(true);

    const unsigned = repo.commit({ 'n.yaml': NET('vftest-git-u') });
    await r.fetch();
    const u = await r.validate(unsigned);
    expect(u.ok).toBe(false);
    if (!u.ok) {
      expect(u.reason).toBe(`commit ${unsigned.slice(0, 7)} is not signed: refused (--verify-commits)`);
      expect(u.errors).toEqual([]);
    }
    const foreign = repo.commit({ 'n.yaml': NET('vftest-git-f') }, { sign: other });
    await r.fetch();
    const f = await r.validate(foreign);
    expect(!f.ok && f.reason).toMatch(new RegExp(`^commit ${foreign.slice(0, 7)}: signature not accepted \\(--verify-commits\\): .*No principal matched`));
    // Without --verify-commits both are accepted.
    expect((await make().validate(unsigned)).ok).toBe(true);
  });
});

describe('--verify-commits (gpg signatures, --gpg-keyring)', () => {
  it('accepts a commit signed by a key of the keyring; refuses one signed by another key and an unsigned one', async () => {
    const signer = gpgSigningKey(join(work, `gpg-${Math.random().toString(36).slice(2, 6)}`));
    const stranger = gpgSigningKey(join(work, `gpg-${Math.random().toString(36).slice(2, 6)}`));
    const r = make({ verify: { gpgKeyring: signer.publicFile } });
    const ok = repo.commit({ 'n.yaml': NET('vftest-git-g') }, { gpg: signer });
    await r.fetch();
    const v = await r.validate(ok);
    expect(v.ok, !v.ok ? v.reason : '').toBe(true);
    const bad = repo.commit({ 'n.yaml': NET('vftest-git-g2') }, { gpg: stranger });
    await r.fetch();
    const b = await r.validate(bad);
    expect(!b.ok && b.reason).toMatch(new RegExp(`^commit ${bad.slice(0, 7)}: signature not accepted \\(--verify-commits\\): .*(No public key|Can't check signature)`));
    const none = repo.commit({ 'n.yaml': NET('vftest-git-g3') });
    await r.fetch();
    expect(!(await r.validate(none)).ok).toBe(true);
  });
});

describe('network transports on 127.0.0.1', () => {
  it('git daemon: fetches over git://; a daemon that is gone is a fetch error', async () => {
    const c = repo.commit({ 'n.yaml': NET('vftest-git-d') });
    const d = await startGitDaemon(repo.root);
    try {
      const r = make({ url: d.url('origin.git') });
      expect(await r.fetch()).toBe(c);
      expect((await r.validate(c)).ok).toBe(true);
      await d.stop();
      await expect(r.fetch()).rejects.toThrow(/unable to connect|Connection refused|could not read/i);
    } finally {
      await d.stop();
    }
  });

  it('https token through GIT_ASKPASS: never in argv, the URL, the cache or an error message', async () => {
    const c = repo.commit({ 'n.yaml': NET('vftest-git-h') });
    const token = `vftest-token-${Math.random().toString(36).slice(2)}`;
    const tokenFile = join(work, 'token');
    writeFileSync(tokenFile, `${token}\n`, { mode: 0o600 });
    const srv = await startHttpGit(repo.root, token);
    // A git shim in PATH records every argv git is started with.
    const shim = join(work, 'shim');
    mkdirSync(shim, { recursive: true });
    const argvLog = join(shim, 'argv.log');
    const realGit = git(work, '--exec-path').replace(/\/lib\/git-core$/, '/bin/git');
    writeFileSync(join(shim, 'git'), `#!/bin/sh\nprintf '%s\\n' "$*" >> '${argvLog}'\nexec '${existsSync(realGit) ? realGit : '/usr/bin/git'}' "$@"\n`);
    chmodSync(join(shim, 'git'), 0o755);
    const path = process.env.PATH;
    process.env.PATH = `${shim}:${path}`;
    try {
      const r = make({ url: srv.url('origin.git'), credentials: { tokenFile } });
      expect(await r.fetch()).toBe(c);
      expect(srv.auths.some((a) => a === `x-access-token:${token}`)).toBe(true);
      // A wrong token: the error says so, without the token.
      writeFileSync(tokenFile, 'wrong-token-value\n');
      const err = await r.fetch().catch((e: Error) => e);
      expect(err).toBeInstanceOf(Error);
      expect((err as Error).message).toMatch(/Authentication failed|401|could not read/i);
      expect((err as Error).message).not.toContain('wrong-token-value');
      // Credentials written into the URL are taken out of it, used, and redacted.
      const u = make({ url: `http://deploy:${token}@127.0.0.1:${srv.port}/origin.git` });
      expect(u.displayUrl).toBe(`http://***@127.0.0.1:${srv.port}/origin.git`);
      expect(await u.fetch()).toBe(c);
      expect(srv.auths).toContain(`deploy:${token}`);
      const argv = readFileSync(argvLog, 'utf8');
      expect(argv).toContain('fetch');
      expect(argv).not.toContain(token);
      const files = (dir: string): string[] => readdirSync(dir, { withFileTypes: true }).flatMap((e) => e.isDirectory() ? files(join(dir, e.name)) : [join(dir, e.name)]);
      for (const f of [...files(r.dir), ...files(u.dir)]) {
        if (statSync(f).size < 1_000_000) expect(readFileSync(f, 'utf8').includes(token), f).toBe(false);
      }
    } finally {
      process.env.PATH = path;
      await srv.stop();
    }
  });

  it('ssh: the deploy key and known_hosts are handed to ssh with strict host key checking', async () => {
    const c = repo.commit({ 'n.yaml': NET('vftest-git-ssh') });
    const hostLine = '[127.0.0.1]:2222 ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIvftesthostkey';
    const fake = fakeSshBin(join(work, 'fakessh'), hostLine);
    const known = join(work, 'known_hosts');
    const key = join(work, 'deploy_key');
    writeFileSync(key, 'not a real key\n', { mode: 0o600 });
    const path = process.env.PATH;
    process.env.PATH = `${fake.bin}:${path}`;
    try {
      writeFileSync(known, 'other.example ssh-ed25519 AAAAother\n');
      const r = make({ url: `ssh://git@127.0.0.1:2222${repo.bare}`, credentials: { sshKey: key, knownHosts: known } });
      await expect(r.fetch()).rejects.toThrow(/Host key verification failed/);
      writeFileSync(known, `${hostLine}\n`);
      expect(await r.fetch()).toBe(c);
      const args = readFileSync(fake.log, 'utf8');
      expect(args).toContain('StrictHostKeyChecking=yes');
      expect(args).toContain(`UserKnownHostsFile=${known}`);
      expect(args).toContain(`-i ${key}`);
      expect(args).toContain('IdentitiesOnly=yes');
      expect(args).toContain('BatchMode=yes');
    } finally {
      process.env.PATH = path;
    }
  });
});

describe('GitSync: fetched, applied, refused', () => {
  it('records what was fetched and applied, and why a refused commit is not applied, in the state DB', async () => {
    const dbPath = join(work, `sync-${Math.random().toString(36).slice(2)}.db`);
    let store = await openStateStore(dbPath);
    const a = repo.commit({ 'vms.yaml': NET('vftest-git-sy') });
    let sync = new GitSync(make(), store);
    await sync.restore();
    await sync.fetch();
    await sync.consider(a);
    const p = await sync.promote();
    expect(p?.commit).toBe(a);
    await sync.recordRun(a, 'succeeded', 1);
    expect(sync.status().summary).toBe(`fetched ${a.slice(0, 7)}, applied ${a.slice(0, 7)} (up to date)`);
    const b = repo.commit({ 'vms.yaml': NET('vftest-git-sy', 'nonsense') });
    await sync.fetch();
    const c = await sync.consider(b);
    expect(c.result).toBe('rejected');
    expect((await sync.consider(b)).result === 'rejected' && (await sync.consider(b) as { repeated: boolean }).repeated).toBe(true);
    expect((await sync.promote())?.commit).toBe(a); // the last good commit stays
    const st = sync.status();
    expect(st.differ).toBe(true);
    expect(st.summary).toMatch(new RegExp(`^fetched ${b.slice(0, 7)}, applied ${a.slice(0, 7)}: validation failed at vms\\.yaml:4:\\d+: Network/vftest-git-sy: spec\\.cidr`));
    await store.close();

    // Across a restart: the record, and the applied checkout restored.
    store = await openStateStore(dbPath);
    sync = new GitSync(make(), store);
    expect(await sync.restore()).toBeUndefined();
    expect(sync.desiredCommit).toBe(a);
    expect(sync.status().summary).toBe(st.summary);
    // A lost applied checkout is made again from the cache.
    renameSync(sync.repo.checkoutRoot('applied'), join(work, `moved-${Math.random()}`));
    sync = new GitSync(make(), store);
    expect(await sync.restore()).toBeUndefined();
    expect(sync.repo.checkedOut('applied')).toBe(a);
    // A fetch failure is recorded next to the rest.
    renameSync(repo.bare, `${repo.bare}.gone`);
    await expect(sync.fetch()).rejects.toThrow();
    const rec = await store.gitSources.get(sync.repo.id);
    expect(rec?.fetchError).toMatch(/does not appear to be a git repository|not found|No such file/i);
    expect(sync.status().summary).toMatch(/; last fetch failed: /);
    await store.close();
  });
});
