/**
 * A git repository as a manifest source (`--git URL [--branch|--tag|--commit] [--path]`).
 *
 * Layout of its cache folder (`<data dir>/git/<slug>-<hash>/`, the data dir being the state DB's
 * folder):
 *
 *   repo.git/        bare repository: every fetch lands here (refs/virtform/fetched; the applied
 *                    commit is kept reachable as refs/virtform/applied across force-pushes and gc)
 *   candidate/       a fetched commit checked out for validation (and signature checks) only
 *   staged/          a validated commit waiting for the next run
 *   applied/         the commit the runs reconcile: always at this path, so a Volume `source`
 *                    relative to a manifest keeps its path from one commit to the next
 *   *.commit         which commit each of those folders holds
 *   askpass.sh       the credentials prompt script (GIT_ASKPASS)
 *
 * Checkouts are made with `read-tree` + `checkout-index` into a plain folder (no work tree, no
 * .git inside), from the bare repository. The remote URL is never stored in the repository
 * (every fetch names it), and never with its credentials.
 */
import { createHash, randomBytes } from 'node:crypto';
import { execFile } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { isAbsolute, join, posix, relative, sep } from 'node:path';
import { promisify } from 'node:util';
import { digestState, loadManifests, manifestsByKind, formatManifestError, type DesiredState, type ManifestError, type Policy } from '../manifest/index.js';
import type { CachedImageSize, LoadResult } from '../manifest/index.js';
import { credentialEnv, type GitCredentialOptions } from './credentials.js';
import { GitError, cleanGitEnv, runGit } from './exec.js';
import { parseRemote, Redactor, type ParsedRemote } from './redact.js';

const execFileAsync = promisify(execFile);

export type GitRef =
  | { kind: 'default' }
  | { kind: 'branch'; name: string }
  | { kind: 'tag'; name: string }
  | { kind: 'commit'; sha: string };

export interface GitVerifyOptions {
  /** Public keys (armored or binary) imported into a private GNUPGHOME. */
  gpgKeyring?: string;
  /** gpg.ssh.allowedSignersFile. */
  sshAllowedSigners?: string;
}

export interface GitSourceSpec {
  /** As the user gave it (may hold credentials: they are taken out, see redact.ts). */
  url: string;
  ref: GitRef;
  /** Folder of the manifests, relative to the repository root ('' = the root). */
  path: string;
  credentials?: GitCredentialOptions;
  /** Set: the commit to apply must carry a good signature of one of these keys. */
  verify?: GitVerifyOptions;
  /** Accept a commit with no manifests (tears everything down), as --allow-empty. */
  allowEmpty?: boolean;
  /** Timeout of one fetch (default 120 s). */
  fetchTimeoutMs?: number;
  /** The policy every commit's manifests are validated against (--policy). */
  policy?: Policy;
  /** Plan-time limits: the virtual size of a URL image already in the image cache. */
  cachedImageSize?: CachedImageSize;
}

export function describeRef(ref: GitRef): string {
  switch (ref.kind) {
    case 'branch': return `branch ${ref.name}`;
    case 'tag': return `tag ${ref.name}`;
    case 'commit': return `commit ${ref.sha}`;
    default: return 'the default branch (HEAD)';
  }
}

/** The ref as one short string for the DB and JSON: `branch:main`, `tag:v1`, `commit:abc…`, `HEAD`. */
export function refString(ref: GitRef): string {
  return ref.kind === 'default' ? 'HEAD' : ref.kind === 'commit' ? `commit:${ref.sha}` : `${ref.kind}:${ref.name}`;
}

export const short = (sha: string | null | undefined): string => (sha ? sha.slice(0, 7) : 'none');

const BAD_REF = /(^[-/.])|(\.\.)|([\s~^:?*[\\\x00-\x1f\x7f])|(@\{)|(\/$)|(\.lock$)|(\/\/)|(\.$)/;

/** Flag-level checks of a git source (exit 2 when any fails). */
export function checkGitSpec(spec: { url: string; ref: GitRef; path: string }): string[] {
  const errors: string[] = [];
  try {
    parseRemote(spec.url);
  } catch (e) {
    errors.push(`--git: ${(e as Error).message}`);
  }
  if ((spec.ref.kind === 'branch' || spec.ref.kind === 'tag') && (spec.ref.name === '' || BAD_REF.test(spec.ref.name))) {
    errors.push(`--${spec.ref.kind}: ${JSON.stringify(spec.ref.name)} is not a valid git ${spec.ref.kind} name`);
  }
  if (spec.ref.kind === 'commit' && !/^[0-9a-f]{4,64}$/i.test(spec.ref.sha)) {
    errors.push(`--commit: ${JSON.stringify(spec.ref.sha)} is not a commit id (4 to 40 hex digits; the full id also fetches commits no branch or tag names)`);
  }
  const p = spec.path;
  if (p !== '') {
    if (isAbsolute(p) || p.startsWith('/')) errors.push(`--path: ${JSON.stringify(p)} must be relative to the repository root`);
    else if (p.split(/[\\/]/).includes('..')) errors.push(`--path: ${JSON.stringify(p)} must not contain ".." segments`);
    else if (p.split(/[\\/]/).some((s) => s === '.git')) errors.push(`--path: ${JSON.stringify(p)} must not name .git`);
  }
  return errors;
}

/** Normalize --path: '' for the root, else a clean relative posix path. */
export function normalizeGitPath(p: string | undefined): string {
  if (!p) return '';
  const n = posix.normalize(p.replace(/\\/g, '/')).replace(/^\.\/?/, '').replace(/\/+$/, '');
  return n === '.' ? '' : n;
}

/** The commit was refused by --verify-commits. */
export class SignatureError extends Error {
  override readonly name = 'SignatureError';
  constructor(message: string, readonly commit: string) {
    super(message);
  }
}

export type Validation =
  | { ok: true; commit: string; state: DesiredState; manifests: number }
  | { ok: false; commit: string; errors: ManifestError[]; /** One line: "validation failed at vms.yaml:12:3: ..." or the signature error. */ reason: string; text: string };

export interface GitRepositoryOptions {
  /** Parent of the per-source cache folders (default: `<dir of the state DB>/git`). */
  cacheRoot: string;
  /**
   * A private throw-away repository in the system temp folder (dry-runs, status): it borrows the
   * objects of the persistent cache (git alternates) when that exists and writes nothing there.
   * Call {@link GitRepository.dispose} after use.
   */
  ephemeral?: boolean;
}

export class GitRepository {
  readonly spec: GitSourceSpec;
  readonly remote: ParsedRemote;
  readonly redactor = new Redactor();
  /** Stable id of this source (redacted URL, ref and path): the state DB's key for it. */
  readonly id: string;
  /** The persistent cache folder of this source. */
  readonly cacheDir: string;
  /** Where this instance works: the cache folder, or a temp folder when ephemeral. */
  readonly dir: string;
  readonly ephemeral: boolean;
  #chain: Promise<unknown> = Promise.resolve();
  #initialized = false;
  readonly #abort = new AbortController();

  constructor(spec: GitSourceSpec, o: GitRepositoryOptions) {
    this.spec = { ...spec, path: normalizeGitPath(spec.path) };
    this.remote = parseRemote(spec.url);
    this.redactor.add(this.remote.password);
    if (this.remote.transport === 'https' || this.remote.transport === 'http') this.redactor.add(this.remote.username);
    this.id = createHash('sha256').update(`${this.remote.display}\n${refString(spec.ref)}\n${this.spec.path}`).digest('hex').slice(0, 16);
    const slug = this.remote.display.replace(/^[a-z+]+:\/\/(\*\*\*@)?/i, '').replace(/[^A-Za-z0-9._-]+/g, '_').replace(/^_+|_+$/g, '').slice(-48) || 'repo';
    this.cacheDir = join(o.cacheRoot, `${slug}-${this.id}`);
    this.ephemeral = o.ephemeral === true;
    this.dir = this.ephemeral ? mkdtempSync(join(tmpdir(), 'virtform-git-')) : this.cacheDir;
  }

  /** The URL as shown everywhere (credentials redacted). */
  get displayUrl(): string {
    return this.remote.display;
  }

  get gitDir(): string {
    return join(this.dir, 'repo.git');
  }

  /** Folder of the manifests inside a checkout. */
  manifestDir(name: 'candidate' | 'staged' | 'applied'): string {
    return this.spec.path ? join(this.dir, name, ...this.spec.path.split('/')) : join(this.dir, name);
  }

  checkoutRoot(name: 'candidate' | 'staged' | 'applied'): string {
    return join(this.dir, name);
  }

  /** Which commit a checkout folder holds (undefined when none). */
  checkedOut(name: 'candidate' | 'staged' | 'applied'): string | undefined {
    if (!existsSync(this.checkoutRoot(name))) return undefined;
    try {
      const c = readFileSync(join(this.dir, `${name}.commit`), 'utf8').trim();
      return /^[0-9a-f]{40,64}$/.test(c) ? c : undefined;
    } catch { // safe-catch: no commit file: nothing recorded
      return undefined;
    }
  }

  /** Run `fn` with no other checkout/stage/promote of this repository in between. */
  exclusive<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.#chain.then(fn, fn);
    // safe-catch: keeps the chain going; the caller gets `run` and its error
    this.#chain = run.catch(() => undefined);
    return run;
  }

  #git(args: string[], o: { env?: Record<string, string>; timeoutMs?: number; okCodes?: number[]; signal?: AbortSignal } = {}) {
    return runGit([`--git-dir=${this.gitDir}`, ...args], { ...o, redactor: this.redactor });
  }

  /** Create the bare repository (idempotent). */
  async init(): Promise<void> {
    if (this.#initialized) return;
    mkdirSync(this.dir, { recursive: true, mode: 0o700 });
    if (!existsSync(join(this.gitDir, 'HEAD'))) {
      await runGit(['init', '--bare', '--quiet', this.gitDir], { redactor: this.redactor });
    }
    // An ephemeral repository reads the persistent cache's objects (fetches only what is new).
    const cacheObjects = join(this.cacheDir, 'repo.git', 'objects');
    if (this.ephemeral && existsSync(cacheObjects)) {
      mkdirSync(join(this.gitDir, 'objects', 'info'), { recursive: true });
      writeFileSync(join(this.gitDir, 'objects', 'info', 'alternates'), `${cacheObjects}\n`);
    }
    this.#initialized = true;
  }

  /** Kill the network calls in flight and refuse new ones (a watcher stopping). */
  abort(): void {
    this.#abort.abort();
  }

  /** Remove an ephemeral repository's folder. */
  dispose(): void {
    if (this.ephemeral) rmSync(this.dir, { recursive: true, force: true });
  }

  #netEnv(): Record<string, string> {
    const env = credentialEnv(this.remote, this.spec.credentials ?? {}, this.dir);
    if (this.spec.credentials?.tokenFile) {
      try {
        this.redactor.add(readFileSync(this.spec.credentials.tokenFile, 'utf8').split('\n')[0]?.replace(/\r$/, ''));
      } catch { // safe-catch: the askpass script reports an unreadable token file; nothing to redact
        /* the askpass script reports an unreadable file; nothing to redact */
      }
    }
    return env;
  }

  async #fetch(refspecs: string[]): Promise<void> {
    await this.#git(['fetch', '--quiet', '--no-tags', '--no-write-fetch-head', '--no-recurse-submodules', '--force', '--', this.remote.url, ...refspecs], {
      env: this.#netEnv(), timeoutMs: this.spec.fetchTimeoutMs ?? 120_000, signal: this.#abort.signal,
    });
  }

  async #resolve(rev: string): Promise<string | undefined> {
    const r = await this.#git(['rev-parse', '--verify', '--quiet', `${rev}^{commit}`], { okCodes: [1, 128] });
    const sha = r.stdout.trim();
    return r.code === 0 && /^[0-9a-f]{40,64}$/.test(sha) ? sha : undefined;
  }

  /**
   * What the commit says of itself: author (`Name <email>`), message (subject and body, at most
   * 4 KiB), commit time (ISO-8601). Read with `git log -1` from the local repository (no network).
   */
  async commitInfo(sha: string): Promise<{ sha: string; author: string; message: string; committedAt: string }> {
    const r = await this.#git(['log', '-1', '--no-show-signature', '--format=%an <%ae>%x00%cI%x00%B', sha, '--']);
    const [author = '', time = '', ...rest] = r.stdout.split('\0');
    const message = rest.join('\0').replace(/\s+$/, '');
    const when = Date.parse(time);
    return { sha, author: author.slice(0, 500), message: message.length > 4096 ? `${message.slice(0, 4096)}…` : message, committedAt: Number.isNaN(when) ? time : new Date(when).toISOString() };
  }

  /** Whether the commit's objects are in the repository. */
  async has(sha: string): Promise<boolean> {
    return (await this.#resolve(sha)) === sha;
  }

  /**
   * Fetch the ref from the remote and return the commit it names now. Throws GitError (message
   * redacted) when the remote cannot be reached or the ref does not exist there.
   */
  async fetch(): Promise<string> {
    await this.init();
    const ref = this.spec.ref;
    try {
      if (ref.kind === 'commit') {
        const have = await this.#resolve(ref.sha);
        if (have) return have;
        await this.#fetch(['+refs/heads/*:refs/virtform/heads/*', '+refs/tags/*:refs/virtform/tags/*']);
        const found = await this.#resolve(ref.sha);
        if (found) return found;
        if (/^[0-9a-f]{40}$/i.test(ref.sha)) {
          // safe-catch: a server that refuses fetching by sha: the resolve just below reports the missing commit
          await this.#fetch([`+${ref.sha}:refs/virtform/fetched`]).catch(() => undefined);
          const direct = await this.#resolve(ref.sha);
          if (direct) return direct;
        }
        throw new GitError(`commit ${ref.sha} is not in ${this.displayUrl} (no branch or tag reaches it${/^[0-9a-f]{40}$/i.test(ref.sha) ? ', and the server does not serve it by id' : '; give the full 40-digit id to fetch it by id'})`, null, '');
      }
      const src = ref.kind === 'branch' ? `refs/heads/${ref.name}` : ref.kind === 'tag' ? `refs/tags/${ref.name}` : 'HEAD';
      await this.#fetch([`+${src}:refs/virtform/fetched`]);
    } catch (e) {
      if (e instanceof GitError && /couldn't find remote ref/i.test(e.message)) {
        throw new GitError(`${describeRef(ref)} does not exist in ${this.displayUrl}`, e.code, e.stderr);
      }
      throw e;
    }
    const sha = await this.#resolve('refs/virtform/fetched');
    if (!sha) throw new GitError(`${describeRef(ref)} of ${this.displayUrl} does not name a commit`, null, '');
    return sha;
  }

  /** Throws SignatureError unless `sha` carries a good signature of a key --verify-commits accepts. */
  async verify(sha: string): Promise<void> {
    const v = this.spec.verify;
    if (!v) return;
    const raw = (await this.#git(['cat-file', 'commit', sha])).stdout;
    const header = raw.slice(0, raw.indexOf('\n\n') >= 0 ? raw.indexOf('\n\n') : raw.length);
    if (!/^gpgsig(-sha256)? /m.test(header)) {
      throw new SignatureError(`commit ${short(sha)} is not signed: refused (--verify-commits)`, sha);
    }
    // A private GNUPGHOME made for this check (the user's keyring is never consulted): short, in
    // the temp folder, since gpg's agent socket path must fit in 108 bytes.
    const gnupg = mkdtempSync(join(tmpdir(), 'vfgpg-'));
    try {
      await this.#verifyWith(sha, v, gnupg);
    } finally {
      rmSync(gnupg, { recursive: true, force: true });
    }
  }

  async #verifyWith(sha: string, v: GitVerifyOptions, gnupg: string): Promise<void> {
    if (v.gpgKeyring) {
      try {
        await execFileAsync('gpg', ['--batch', '--quiet', '--no-autostart', '--import', v.gpgKeyring], {
          env: { ...cleanGitEnv(), GNUPGHOME: gnupg }, timeout: 30_000,
        });
      } catch (e) {
        const err = e as { code?: string; stderr?: string };
        if (err.code === 'ENOENT') throw new SignatureError('--gpg-keyring needs gpg (Debian: apt-get install gnupg)', sha);
        throw new SignatureError(`--gpg-keyring ${v.gpgKeyring}: gpg could not import it: ${String(err.stderr ?? e).trim().split('\n').slice(-2).join('; ')}`, sha);
      }
    }
    const r = await this.#git(['-c', `gpg.ssh.allowedSignersFile=${v.sshAllowedSigners ?? '/dev/null'}`, 'verify-commit', '--verbose', sha], {
      env: { GNUPGHOME: gnupg }, okCodes: [1, 128],
    }).catch((e: unknown) => ({ code: 1, stdout: '', stderr: String((e as Error).message) }));
    if (r.code === 0) return;
    const said = r.stderr.split('\n').map((l) => l.trim()).filter((l) => l && !/^(tree|parent|author|committer|gpgsig) /.test(l) && !l.startsWith('-----') && !/^[A-Za-z0-9+/=]{40,}$/.test(l));
    const detail = said.filter((l) => /signature|principal|key|Can't|BAD|No public key|allowedSigners|error|fatal/i.test(l)).slice(-3).join('; ') || said.slice(-2).join('; ');
    throw new SignatureError(`commit ${short(sha)}: signature not accepted (--verify-commits): ${detail || `git verify-commit exited ${r.code}`}`, sha);
  }

  /** Check `sha` out into the folder `name` (replacing what it held). */
  async checkout(sha: string, name: 'candidate' | 'staged' | 'applied'): Promise<void> {
    const root = this.checkoutRoot(name);
    rmSync(join(this.dir, `${name}.commit`), { force: true });
    rmSync(root, { recursive: true, force: true });
    mkdirSync(root, { recursive: true });
    const index = join(this.dir, `${name}.index`);
    rmSync(index, { force: true });
    try {
      await this.#git(['read-tree', sha], { env: { GIT_INDEX_FILE: index } });
      await this.#git([`--work-tree=${root}`, 'checkout-index', '--all', '--force'], { env: { GIT_INDEX_FILE: index } });
    } finally {
      rmSync(index, { force: true });
    }
    writeFileSync(join(this.dir, `${name}.commit`), `${sha}\n`);
  }

  /** Move the checkout `from` to `to` (what `to` held is removed). */
  move(from: 'candidate' | 'staged', to: 'staged' | 'applied'): void {
    const src = this.checkoutRoot(from);
    const dst = this.checkoutRoot(to);
    const commit = this.checkedOut(from);
    if (!commit) throw new Error(`no checkout in ${src}`);
    rmSync(join(this.dir, `${to}.commit`), { force: true });
    const trash = join(this.dir, `.trash-${randomBytes(4).toString('hex')}`);
    if (existsSync(dst)) renameSync(dst, trash);
    renameSync(src, dst);
    rmSync(join(this.dir, `${from}.commit`), { force: true });
    writeFileSync(join(this.dir, `${to}.commit`), `${commit}\n`);
    rmSync(trash, { recursive: true, force: true });
  }

  /**
   * Load and validate the manifests of a checkout: the one loading path of every git use. The
   * checkout is a sandbox: the --path folder, every manifest file and every relative path in a
   * manifest must resolve inside it (real paths, before anything is opened).
   */
  load(name: 'candidate' | 'staged' | 'applied'): Promise<LoadResult> {
    return loadManifests(this.manifestDir(name), {
      confineTo: this.checkoutRoot(name),
      ...(this.spec.policy ? { policy: this.spec.policy } : {}),
      ...(this.spec.cachedImageSize ? { cachedImageSize: this.spec.cachedImageSize } : {}),
    });
  }

  /** Keep `sha` reachable (refs/virtform/applied) whatever the remote does with its branch. */
  async pin(sha: string): Promise<void> {
    await this.#git(['update-ref', 'refs/virtform/applied', sha]);
  }

  /**
   * Verify (when enabled), check out into `candidate/` and validate the manifests of `sha`. Error
   * file names are relative to the repository root.
   */
  async validate(sha: string): Promise<Validation> {
    await this.init();
    try {
      await this.verify(sha);
    } catch (e) {
      if (e instanceof SignatureError) {
        return { ok: false, commit: sha, errors: [], reason: e.message, text: e.message };
      }
      throw e;
    }
    await this.checkout(sha, 'candidate');
    const root = this.checkoutRoot('candidate');
    const dir = this.manifestDir('candidate');
    const relFile = (f: string): string => {
      const r = relative(root, f);
      return r.startsWith('..') || isAbsolute(r) ? f : (r.split(sep).join('/') || '.');
    };
    if (!existsSync(dir)) {
      const reason = `validation failed: --path ${this.spec.path} does not exist at commit ${short(sha)}`;
      return { ok: false, commit: sha, errors: [{ file: this.spec.path, line: 1, col: 1, message: `--path ${this.spec.path} does not exist at commit ${short(sha)}` }], reason, text: reason };
    }
    const result = await this.load('candidate');
    if (!result.ok) {
      const errors = result.errors.map((e) => ({ ...e, file: relFile(e.file), message: e.message.split(root + sep).join('') }));
      const first = errors[0]!;
      const reason = `validation failed at ${formatManifestError(first)}${errors.length > 1 ? ` (and ${errors.length - 1} more)` : ''}`;
      return { ok: false, commit: sha, errors, reason, text: errors.map(formatManifestError).join('\n') };
    }
    if (result.desired.manifests.length === 0 && !this.spec.allowEmpty) {
      const where = this.spec.path || 'the repository root';
      const reason = `validation failed: no manifests in ${where} at commit ${short(sha)}; refusing, since that would delete everything virtform manages (--allow-empty tears the whole environment down)`;
      return { ok: false, commit: sha, errors: [{ file: this.spec.path || '.', line: 1, col: 1, message: reason }], reason, text: reason };
    }
    return { ok: true, commit: sha, state: result.desired, manifests: result.desired.manifests.length };
  }
}

/**
 * A desired state loaded from one checkout, as if it had been loaded from another folder: paths
 * the loader made absolute inside `from` (a Volume's relative `source`) are moved under `to`.
 * Dry-runs plan from the candidate checkout with the paths the applied checkout will have.
 */
export function rebaseState(state: DesiredState, from: string, to: string): DesiredState {
  const prefix = from.endsWith(sep) ? from : from + sep;
  const walk = (v: unknown): unknown => {
    if (typeof v === 'string') return v.startsWith(prefix) ? join(to, v.slice(prefix.length)) : v;
    if (Array.isArray(v)) return v.map(walk);
    if (v && typeof v === 'object') return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, walk(x)]));
    return v;
  };
  const manifests = state.manifests.map((m) => ({ ...m, spec: walk(m.spec), source: { ...m.source, file: walk(m.source.file) as string } })) as DesiredState['manifests'];
  return {
    ...state,
    dir: walk(state.dir) as string,
    files: state.files.map((f) => walk(f) as string),
    manifests,
    hosts: (state.hosts ?? []).map((h) => (h.source ? { ...h, source: { ...h.source, file: walk(h.source.file) as string } } : h)),
    digest: digestState(manifests, state.hosts ?? []),
    ...manifestsByKind(manifests),
  };
}
