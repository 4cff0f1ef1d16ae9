/**
 * Running Debian's `git` (child_process.execFile: no shell, arguments as an array). virtform uses
 * git itself rather than a JavaScript reimplementation: git's transports (ssh with the host's
 * OpenSSH, smart http with proxies and TLS from the system's CA store, git://, file://), its object
 * checks and `git verify-commit` (gpg and ssh signatures) are what users already trust and
 * configure, and no new npm dependency is needed.
 *
 * Every call gets a clean environment: inherited GIT_* variables (GIT_DIR, GIT_INDEX_FILE, ... a
 * hook or a shell could have set) are dropped, prompts are off (GIT_TERMINAL_PROMPT=0, ssh
 * BatchMode), messages are in the C locale, and credential helpers are disabled so that
 * credentials come only from the flags (see credentials.ts).
 */
import { execFile } from 'node:child_process';
import type { Redactor } from './redact.js';

export interface GitRunOptions {
  cwd?: string;
  /** Added to the clean environment. */
  env?: Record<string, string>;
  /** Default 120 s; the process is killed after it (SIGKILL after SIGTERM is ignored). */
  timeoutMs?: number;
  redactor?: Redactor;
  /** Exit codes that are not an error (default: only 0). */
  okCodes?: number[];
  /** Kills git (SIGKILL) when aborted: a watcher that stops does not wait for a slow fetch. */
  signal?: AbortSignal;
}

export interface GitResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** git failed: the message is git's own (last lines of stderr), with secrets redacted. */
export class GitError extends Error {
  override readonly name = 'GitError';
  constructor(message: string, readonly code: number | null, readonly stderr: string, readonly timedOut = false, readonly aborted = false) {
    super(message);
  }
}

/** The environment every git call starts from. */
export function cleanGitEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) {
    if (k.startsWith('GIT_') || k === 'SSH_ASKPASS') continue;
    env[k] = v;
  }
  return {
    ...env,
    LC_ALL: 'C',
    LANG: 'C',
    GIT_TERMINAL_PROMPT: '0',
    GIT_OPTIONAL_LOCKS: '0',
    // No system gitconfig (hooks, helpers, fsmonitor of the distribution); the user's global config is kept (proxies).
    GIT_CONFIG_NOSYSTEM: '1',
    ...extra,
  };
}

/** `-c` settings on every call: no credential helper (credentials only from the flags), no fsmonitor, no pager. */
const BASE_CONFIG = ['-c', 'credential.helper=', '-c', 'core.fsmonitor=false', '-c', 'core.pager=cat', '-c', 'advice.detachedHead=false'];

function lastLines(s: string, n = 6): string {
  return s.trim().split('\n').filter((l) => l.trim() !== '').slice(-n).join('; ');
}

export function runGit(args: string[], o: GitRunOptions = {}): Promise<GitResult> {
  const timeout = o.timeoutMs ?? 120_000;
  return new Promise((resolve, reject) => {
    execFile('git', [...BASE_CONFIG, ...args], {
      cwd: o.cwd, env: cleanGitEnv(o.env), timeout, killSignal: 'SIGKILL', maxBuffer: 64 * 1024 * 1024, encoding: 'utf8', windowsHide: true,
      ...(o.signal ? { signal: o.signal } : {}),
    }, (err, stdout, stderr) => {
      const red = (s: string): string => (o.redactor ? o.redactor.text(s) : s);
      if (!err) {
        resolve({ code: 0, stdout, stderr: red(stderr) });
        return;
      }
      const e = err as NodeJS.ErrnoException & { code?: number | string; killed?: boolean; signal?: string };
      if (e.code === 'ENOENT') {
        reject(new GitError('git is not installed (Debian: apt-get install git; scripts/setup-host.sh installs it)', null, ''));
        return;
      }
      if (e.name === 'AbortError' || o.signal?.aborted) {
        reject(new GitError('git was stopped (the watcher is shutting down)', null, '', false, true));
        return;
      }
      const code = typeof e.code === 'number' ? e.code : null;
      if (code !== null && o.okCodes?.includes(code)) {
        resolve({ code, stdout, stderr: red(stderr) });
        return;
      }
      const timedOut = e.killed === true && e.signal === 'SIGKILL' && code === null;
      const text = red(lastLines(stderr)) || red(e.message);
      const what = `git ${args.find((a) => !a.startsWith('-') && !a.includes('=')) ?? ''}`.trim();
      reject(new GitError(timedOut ? `${what} timed out after ${Math.round(timeout / 1000)} s` : text, code, red(stderr), timedOut));
    });
  });
}
