/**
 * The `--git` flags shared by `reconcile`, `status` and `watch`: `--git URL` takes the place of
 * DIR; the rest choose the revision, the folder in the repository, credentials and signature
 * checks. Flag problems are exit 2 (invalid input).
 */
import { accessSync, constants as fsConstants, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import {
  GitRepository, GitSync, checkGitSpec, describeRef, normalizeGitPath, parseRemote, rebaseState, short, type GitRef, type GitSourceSpec,
} from '../git/index.js';
import { type DesiredState, type ManifestError } from '../manifest/index.js';
import type { StateStore } from '../state/index.js';
import type { GitFlags } from './git-options.js';
import { dataDirOf } from './common.js';

export type { GitFlags } from './git-options.js';

function readable(flag: string, file: string | undefined, errors: string[]): string | undefined {
  if (file === undefined) return undefined;
  const abs = resolve(file);
  try {
    const st = statSync(abs);
    if (!st.isFile()) {
      errors.push(`${flag} ${file}: not a regular file`);
      return abs;
    }
    accessSync(abs, fsConstants.R_OK);
  } catch (e) {
    const code = (e as { code?: string }).code;
    errors.push(`${flag} ${file}: ${code === 'ENOENT' ? 'does not exist' : `cannot be read (${code ?? String(e)})`}`);
  }
  return abs;
}

export type GitInput = { spec: GitSourceSpec } | { errors: string[] } | { none: true };

/**
 * Decide between DIR and --git. `{none}`: no --git (use DIR). Errors (exit 2): both, neither
 * (when `dirRequired`), git-only flags without --git, conflicting or unreadable ones.
 */
export function gitInput(dir: string | undefined, f: GitFlags, o: { dirRequired: boolean; allowEmpty?: boolean }): GitInput {
  const errors: string[] = [];
  const gitOnly: [string, unknown][] = [
    ['--branch', f.branch], ['--tag', f.tag], ['--commit', f.commit], ['--path', f.path], ['--verify-commits', f.verifyCommits],
    ['--gpg-keyring', f.gpgKeyring], ['--ssh-allowed-signers', f.sshAllowedSigners], ['--git-ssh-key', f.gitSshKey],
    ['--git-known-hosts', f.gitKnownHosts], ['--git-token-file', f.gitTokenFile],
  ];
  if (f.git === undefined) {
    const given = gitOnly.filter(([, v]) => v !== undefined).map(([k]) => k);
    if (given.length > 0) errors.push(`${given.join(', ')} ${given.length > 1 ? 'need' : 'needs'} --git URL`);
    if (dir === undefined && o.dirRequired) errors.push('give the manifest folder DIR, or --git URL');
    return errors.length ? { errors } : { none: true };
  }
  if (dir !== undefined) {
    errors.push(`give either DIR (${dir}) or --git URL, not both: --git takes the place of DIR`);
  }
  const refs = [['--branch', f.branch], ['--tag', f.tag], ['--commit', f.commit]].filter(([, v]) => v !== undefined);
  if (refs.length > 1) errors.push(`${refs.map(([k]) => k).join(' and ')} exclude each other: give one revision`);
  const ref: GitRef = f.commit !== undefined ? { kind: 'commit', sha: f.commit.toLowerCase() }
    : f.tag !== undefined ? { kind: 'tag', name: f.tag }
      : f.branch !== undefined ? { kind: 'branch', name: f.branch } : { kind: 'default' };
  const path = normalizeGitPath(f.path);
  errors.push(...checkGitSpec({ url: f.git, ref, path: f.path ?? '' }));
  const gpgKeyring = readable('--gpg-keyring', f.gpgKeyring, errors);
  const sshAllowedSigners = readable('--ssh-allowed-signers', f.sshAllowedSigners, errors);
  if (f.verifyCommits && !gpgKeyring && !sshAllowedSigners) errors.push('--verify-commits needs --gpg-keyring FILE or --ssh-allowed-signers FILE (the keys it accepts)');
  if (!f.verifyCommits && (gpgKeyring || sshAllowedSigners)) errors.push('--gpg-keyring and --ssh-allowed-signers take effect with --verify-commits: add it');
  const sshKey = readable('--git-ssh-key', f.gitSshKey, errors);
  const knownHosts = readable('--git-known-hosts', f.gitKnownHosts, errors);
  const tokenFile = readable('--git-token-file', f.gitTokenFile, errors);
  let transport: string | undefined;
  try {
    transport = parseRemote(f.git).transport;
  } catch { // safe-catch: a bad URL is reported by checkGitSpec
    /* reported by checkGitSpec */
  }
  if (transport && transport !== 'ssh' && (sshKey || knownHosts)) errors.push(`--git-ssh-key and --git-known-hosts are for ssh URLs; ${f.git.startsWith('http') ? 'this one is http(s)' : `this one is ${transport}`}`);
  if (transport && transport !== 'https' && transport !== 'http' && tokenFile) errors.push(`--git-token-file is for https URLs; this one is ${transport}`);
  if (transport === 'http' && tokenFile) {
    let loopback = false;
    try {
      const h = new URL(f.git).hostname;
      loopback = h === 'localhost' || h === '[::1]' || /^127\./.test(h);
    // safe-catch: a bad URL is reported by checkGitSpec
    } catch { /* see safe-catch */ }
    if (!loopback) errors.push('--git-token-file over plain http would send the token unencrypted: use an https URL');
  }
  if (errors.length) return { errors };
  return {
    spec: {
      url: f.git, ref, path,
      credentials: { sshKey, knownHosts, tokenFile },
      ...(f.verifyCommits ? { verify: { gpgKeyring, sshAllowedSigners } } : {}),
      allowEmpty: o.allowEmpty,
    },
  };
}

/** Parent of the git caches: `git/` in the data dir (`--data-dir`, by default the SQLite DB's folder). */
export function gitCacheRoot(dbPath: string | undefined, dataDir?: string): string {
  return join(dataDirOf(dbPath, dataDir), 'git');
}

/** What `reconcile --git` and `status --git` got from the repository. */
export type GitDesired =
  | { ok: true; dir: string; state: DesiredState; commit: string; sync: GitSync; repo: GitRepository }
  | { ok: false; code: 1 | 2; message: string; errors: ManifestError[]; sync: GitSync; repo: GitRepository };

/**
 * Fetch, verify, check out and validate the commit `spec` names.
 * - `mode: 'apply'` (the caller holds the writer lock): in the persistent cache; a valid commit is
 *   moved into the applied checkout (its manifests are loaded from there) and everything is
 *   recorded in the state DB; a refused one is recorded and nothing else changes.
 * - `mode: 'read'` (dry-runs, status): in a throw-away repository that borrows the cache's objects;
 *   nothing is recorded and the cache is not touched; paths are as the applied checkout will have them.
 * Failures: exit 1 when the fetch failed, 2 when the commit was refused (validation, signature).
 */
export async function gitDesired(
  spec: GitSourceSpec, o: { store?: StateStore; dbPath: string | undefined; dataDir?: string | undefined; mode: 'apply' | 'read' },
): Promise<GitDesired> {
  const cacheRoot = gitCacheRoot(o.dbPath, o.dataDir);
  const repo = new GitRepository(spec, { cacheRoot, ephemeral: o.mode === 'read' });
  const sync = new GitSync(repo, o.mode === 'apply' ? o.store : undefined);
  const fail = (code: 1 | 2, message: string, errors: ManifestError[] = []): GitDesired => ({ ok: false, code, message, errors, sync, repo });
  try {
    await sync.restore();
    let sha: string;
    try {
      sha = await sync.fetch();
    } catch (e) {
      return fail(1, `git fetch of ${describeRef(spec.ref)} from ${repo.displayUrl} failed: ${(e as Error).message}`);
    }
    if (o.mode === 'apply') {
      const c = await sync.consider(sha);
      if (c.result === 'rejected') return fail(2, `${sync.status().summary}; nothing was changed`, c.validation?.errors ?? []);
      const p = await sync.promote();
      if (!p) return fail(1, `no checkout of ${short(sha)} in ${repo.cacheDir}`);
      const loaded = await repo.load('applied');
      if (!loaded.ok) return fail(2, `the applied checkout ${p.dir} does not validate`, loaded.errors);
      return { ok: true, dir: p.dir, state: { ...loaded.desired, gitCommit: p.commit, gitDirty: false }, commit: p.commit, sync, repo };
    }
    const v = await repo.validate(sha);
    if (!v.ok) {
      // safe-catch: only names the applied commit in an error message that is reported anyway
      const applied = o.store ? (await o.store.gitSources.get(repo.id).catch(() => undefined))?.appliedCommit ?? null : null;
      return fail(2, `fetched ${short(sha)}, applied ${short(applied)}: ${v.reason}; nothing was changed`, v.errors);
    }
    const appliedRoot = join(repo.cacheDir, 'applied');
    const state = rebaseState(v.state, repo.checkoutRoot('candidate'), appliedRoot);
    return { ok: true, dir: repo.manifestDir('candidate'), state: { ...state, gitCommit: sha, gitDirty: false }, commit: sha, sync, repo };
  } catch (e) {
    return fail(1, `git: ${repo.redactor.text((e as Error).message)}`);
  }
}
