/**
 * Git fixtures for the git-source tests: a work repository pushing to a local bare one, signed
 * commits (ssh keys made by ssh-keygen), `git daemon` on 127.0.0.1, `git http-backend` behind a
 * node http server on loopback that demands a Basic-auth token, and a stand-in `ssh` that runs
 * the remote git command locally (records its arguments).
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { chmodSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';

const GIT_ENV = {
  ...Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('GIT_'))),
  GIT_CONFIG_NOSYSTEM: '1', GIT_AUTHOR_NAME: 'vftest', GIT_AUTHOR_EMAIL: 'vftest@example.invalid',
  GIT_COMMITTER_NAME: 'vftest', GIT_COMMITTER_EMAIL: 'vftest@example.invalid', LC_ALL: 'C',
} as NodeJS.ProcessEnv;

export function git(cwd: string, ...args: string[]): string {
  return execFileSync('git', args, { cwd, env: GIT_ENV, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }).trim();
}

export interface GpgKey {
  home: string;
  fingerprint: string;
  /** Armored public key file (what --gpg-keyring takes). */
  publicFile: string;
}

/** A gpg signing key (ed25519, no passphrase) in its own GNUPGHOME. */
export function gpgSigningKey(dir: string): GpgKey {
  const home = join(dir, 'gnupg-signer');
  rmSync(home, { recursive: true, force: true });
  mkdirSync(home, { recursive: true, mode: 0o700 });
  const env = { ...GIT_ENV, GNUPGHOME: home };
  execFileSync('gpg', ['--batch', '--passphrase', '', '--quick-gen-key', 'vftest <vftest@example.invalid>', 'ed25519', 'sign', 'never'], { env, stdio: 'ignore' });
  const fingerprint = /^fpr:+([0-9A-F]+):/m.exec(execFileSync('gpg', ['--batch', '--with-colons', '--list-keys'], { env, encoding: 'utf8' }))![1]!;
  const publicFile = join(dir, 'gpg-public.asc');
  writeFileSync(publicFile, execFileSync('gpg', ['--batch', '--armor', '--export', fingerprint], { env }));
  return { home, fingerprint, publicFile };
}

export interface SigningKey {
  private: string;
  public: string;
  /** A line for an allowed signers file. */
  allowedSigner: string;
}

export function sshSigningKey(dir: string, name: string): SigningKey {
  mkdirSync(dir, { recursive: true });
  const key = join(dir, name);
  rmSync(key, { force: true });
  rmSync(`${key}.pub`, { force: true });
  execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', name, '-f', key]);
  const pub = readFileSync(`${key}.pub`, 'utf8').trim();
  return { private: key, public: `${key}.pub`, allowedSigner: `vftest@example.invalid namespaces="git" ${pub}` };
}

/** A work repository `work/` whose commits are pushed to the bare `origin.git/`. */
export class TestRepo {
  readonly work: string;
  readonly bare: string;
  constructor(readonly root: string, readonly branch = 'main') {
    this.work = join(root, 'work');
    this.bare = join(root, 'origin.git');
    rmSync(root, { recursive: true, force: true });
    mkdirSync(root, { recursive: true });
    git(root, 'init', '--quiet', '--bare', '-b', branch, this.bare);
    git(root, 'init', '--quiet', '-b', branch, this.work);
    git(this.work, 'remote', 'add', 'origin', this.bare);
  }

  head(): string {
    return git(this.work, 'rev-parse', 'HEAD');
  }

  get url(): string {
    return `file://${this.bare}`;
  }

  /**
   * Replace the contents of `folder` (relative to the repo root; '' = everything but .git) with
   * `files`, commit (signed with `sign` when given) and push. Returns the commit id.
   */
  commit(files: Record<string, string>, o: { folder?: string; message?: string; sign?: SigningKey; gpg?: GpgKey; branch?: string; tag?: string } = {}): string {
    const folder = join(this.work, o.folder ?? '');
    if (o.folder) rmSync(folder, { recursive: true, force: true });
    else for (const f of execFileSync('ls', ['-A', this.work], { encoding: 'utf8' }).split('\n').filter((x) => x && x !== '.git')) rmSync(join(this.work, f), { recursive: true, force: true });
    mkdirSync(folder, { recursive: true });
    for (const [name, text] of Object.entries(files)) {
      mkdirSync(join(folder, name, '..'), { recursive: true });
      writeFileSync(join(folder, name), text);
    }
    git(this.work, 'add', '-A');
    const sign = o.sign ? ['-c', 'gpg.format=ssh', '-c', `user.signingkey=${o.sign.public}`, 'commit', '-S']
      : o.gpg ? ['-c', 'gpg.format=openpgp', '-c', `user.signingkey=${o.gpg.fingerprint}`, 'commit', '-S'] : ['commit'];
    execFileSync('git', [...sign, '--quiet', '--allow-empty', '-m', o.message ?? 'change'], {
      cwd: this.work, env: { ...GIT_ENV, ...(o.gpg ? { GNUPGHOME: o.gpg.home } : {}) }, stdio: ['ignore', 'pipe', 'pipe'],
    });
    const sha = git(this.work, 'rev-parse', 'HEAD');
    const branch = o.branch ?? this.branch;
    git(this.work, 'push', '--quiet', '--force', 'origin', `HEAD:refs/heads/${branch}`);
    if (o.tag) git(this.work, 'push', '--quiet', '--force', 'origin', `HEAD:refs/tags/${o.tag}`);
    return sha;
  }
}

async function freePort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', () => r()));
  const port = (s.address() as AddressInfo).port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

export interface Daemon {
  port: number;
  url(repo: string): string;
  stop(): Promise<void>;
}

/** `git daemon` on 127.0.0.1 serving the bare repositories under `base` (read-only). */
export async function startGitDaemon(base: string): Promise<Daemon> {
  for (let attempt = 0; attempt < 5; attempt++) {
    const port = await freePort();
    const child: ChildProcess = spawn('git', ['daemon', '--listen=127.0.0.1', `--port=${port}`, `--base-path=${base}`, '--export-all', '--reuseaddr', '--informative-errors', base], {
      env: GIT_ENV, stdio: ['ignore', 'ignore', 'pipe'],
    });
    let exited = false;
    child.on('exit', () => (exited = true));
    // Ready when it accepts a connection.
    const deadline = Date.now() + 5000;
    let ok = false;
    while (Date.now() < deadline && !exited) {
      try {
        execFileSync('git', ['ls-remote', `git://127.0.0.1:${port}/none`], { env: GIT_ENV, stdio: 'ignore', timeout: 2000 });
        ok = true;
      } catch (e) {
        // "repository not exported" still means the daemon answered.
        const stderr = String((e as { stderr?: unknown }).stderr ?? '');
        if ((e as { status?: number }).status === 128 && !/Connection refused|unable to connect/i.test(stderr)) ok = true;
      }
      if (ok) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    if (ok) {
      return {
        port,
        url: (repo) => `git://127.0.0.1:${port}/${repo}`,
        stop: async () => {
          if (exited) return;
          const done = new Promise<void>((r) => child.once('exit', () => r()));
          child.kill('SIGTERM');
          await done;
        },
      };
    }
    child.kill('SIGKILL');
  }
  throw new Error('git daemon did not start');
}

export interface HttpGit {
  port: number;
  url(repo: string): string;
  /** Authorization headers seen (decoded "user:password"). */
  auths: string[];
  /** Request paths seen (with query). */
  requests: string[];
  stop(): Promise<void>;
}

/**
 * `git http-backend` (CGI) behind a node http server on 127.0.0.1: every request must carry
 * Basic auth with password `token` (else 401 with a WWW-Authenticate challenge, as a forge does).
 */
export async function startHttpGit(projectRoot: string, token: string): Promise<HttpGit> {
  const auths: string[] = [];
  const requests: string[] = [];
  const server: Server = createServer((req, res) => {
    requests.push(req.url ?? '');
    const h = req.headers.authorization;
    const decoded = h?.startsWith('Basic ') ? Buffer.from(h.slice(6), 'base64').toString('utf8') : undefined;
    if (decoded !== undefined) auths.push(decoded);
    if (!decoded || decoded.slice(decoded.indexOf(':') + 1) !== token) {
      res.writeHead(401, { 'WWW-Authenticate': 'Basic realm="vftest"', 'content-type': 'text/plain' });
      res.end('unauthorized\n');
      return;
    }
    const u = new URL(req.url ?? '/', 'http://127.0.0.1');
    const cgi = spawn('git', ['http-backend'], {
      env: {
        ...GIT_ENV, GIT_PROJECT_ROOT: projectRoot, GIT_HTTP_EXPORT_ALL: '1', PATH_INFO: decodeURIComponent(u.pathname),
        QUERY_STRING: u.search.slice(1), REQUEST_METHOD: req.method ?? 'GET', CONTENT_TYPE: req.headers['content-type'] ?? '',
        REMOTE_USER: decoded.split(':')[0] ?? '', REMOTE_ADDR: '127.0.0.1', GIT_PROTOCOL: String(req.headers['git-protocol'] ?? ''),
        HTTP_CONTENT_ENCODING: String(req.headers['content-encoding'] ?? ''),
      },
      stdio: ['pipe', 'pipe', 'ignore'],
    });
    req.pipe(cgi.stdin!);
    let head = Buffer.alloc(0);
    let headerDone = false;
    cgi.stdout!.on('data', (chunk: Buffer) => {
      if (headerDone) {
        res.write(chunk);
        return;
      }
      head = Buffer.concat([head, chunk]);
      const i = head.indexOf('\r\n\r\n');
      if (i < 0) return;
      headerDone = true;
      let status = 200;
      const headers: Record<string, string> = {};
      for (const line of head.subarray(0, i).toString('utf8').split('\r\n')) {
        const c = line.indexOf(':');
        const k = line.slice(0, c).trim();
        const v = line.slice(c + 1).trim();
        if (k.toLowerCase() === 'status') status = Number(v.split(' ')[0]);
        else headers[k] = v;
      }
      res.writeHead(status, headers);
      res.write(head.subarray(i + 4));
    });
    cgi.stdout!.on('end', () => res.end());
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  const port = (server.address() as AddressInfo).port;
  return {
    port, auths, requests,
    url: (repo) => `http://127.0.0.1:${port}/${repo}`,
    stop: () => new Promise<void>((r) => {
      server.close(() => r());
      server.closeAllConnections();
    }),
  };
}

/**
 * A folder with a stand-in `ssh` (put it first in PATH): it records its arguments in `log` and
 * runs the remote command (git-upload-pack '<path>') locally, as sshd would after a successful
 * login. It refuses (exit 255, like ssh) unless StrictHostKeyChecking=yes and the known_hosts file
 * it was given contains `hostKeyLine`.
 */
export function fakeSshBin(dir: string, hostKeyLine: string): { bin: string; log: string } {
  mkdirSync(dir, { recursive: true });
  const log = join(dir, 'ssh-args.log');
  const script = `#!/bin/sh
printf '%s\\n' "$*" >> '${log}'
strict=no; kh=
while [ $# -gt 0 ]; do
  case "$1" in
    -o) case "$2" in StrictHostKeyChecking=yes) strict=yes ;; UserKnownHostsFile=*) kh="\${2#UserKnownHostsFile=}" ;; esac; shift 2 ;;
    -i|-p|-l|-F) shift 2 ;;
    -*) shift ;;
    *) break ;;
  esac
done
[ "$strict" = yes ] || { echo "fake ssh: StrictHostKeyChecking=yes missing" >&2; exit 255; }
[ -n "$kh" ] && grep -qF '${hostKeyLine}' "$kh" || { echo "Host key verification failed." >&2; exit 255; }
shift
exec sh -c "$*"
`;
  writeFileSync(join(dir, 'ssh'), script);
  chmodSync(join(dir, 'ssh'), 0o755);
  return { bin: dir, log };
}
