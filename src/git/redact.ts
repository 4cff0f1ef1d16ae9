/**
 * Remote URLs and the secrets that must never reach argv, logs, status or the state DB.
 *
 * A URL the user gives may carry credentials (`https://user:TOKEN@host/repo`, or a token as the
 * user name: `https://TOKEN@host/repo`). virtform takes them OUT of the URL before git sees it:
 * git gets the bare URL and asks for the credentials through GIT_ASKPASS (see credentials.ts), so
 * they are in no process's argv and in no file git writes (FETCH_HEAD, config). Everything shown
 * anywhere uses {@link redactUrl}; text that comes back from git passes {@link Redactor.text}.
 */

export interface ParsedRemote {
  /** The URL as git is given it: for http(s), without any user info. */
  url: string;
  /** The URL as virtform shows it: user info of http(s) replaced by `***`. */
  display: string;
  /** `https` | `http` | `ssh` | `git` | `file` (a local path or `file://`). */
  transport: 'https' | 'http' | 'ssh' | 'git' | 'file';
  /** From the user info of an http(s) URL, percent-decoded. */
  username?: string;
  password?: string;
}

const SCP_LIKE = /^([A-Za-z0-9._~-]+@)?([A-Za-z0-9.-]+|\[[0-9A-Fa-f:.]+\]):(?!\/\/)(.*)$/;

function decode(s: string): string {
  try {
    return decodeURIComponent(s);
  } catch { // safe-catch: not percent-encoded: the raw text is what to redact
    return s;
  }
}

/** Parse a remote as git accepts it: a URL (https, http, ssh, git, file), scp-like `user@host:path`, or a local path. */
export function parseRemote(input: string): ParsedRemote {
  const raw = input.trim();
  if (raw === '') throw new Error('the repository URL is empty');
  if (/[\0\n\r]/.test(raw)) throw new Error('the repository URL contains a control character');
  // git treats "-..." as an option even as a URL: refuse (it could be read as --upload-pack=...).
  if (raw.startsWith('-')) throw new Error(`the repository URL must not start with "-"`);
  const scheme = /^([A-Za-z][A-Za-z0-9+.-]*):\/\//.exec(raw)?.[1]?.toLowerCase();
  if (scheme) {
    let u: URL;
    try {
      u = new URL(raw);
    } catch { // safe-catch: rethrown as a clear message naming the (redacted) URL
      throw new Error(`cannot parse the repository URL ${redactUrl(raw)}`);
    }
    if (scheme === 'https' || scheme === 'http') {
      const username = u.username ? decode(u.username) : undefined;
      const password = u.password ? decode(u.password) : undefined;
      const hadUserInfo = u.username !== '' || u.password !== '';
      u.username = '';
      u.password = '';
      const url = u.toString();
      const display = hadUserInfo ? url.replace(/^(https?:\/\/)/i, '$1***@') : url;
      return { url, display, transport: scheme, username, password };
    }
    if (scheme === 'ssh' || scheme === 'git+ssh' || scheme === 'ssh+git') {
      // The ssh user name is not a secret (git@...); a password in an ssh URL is never used: drop it.
      u.password = '';
      const url = u.toString();
      return { url, display: url, transport: 'ssh' };
    }
    if (scheme === 'git') return { url: raw, display: raw, transport: 'git' };
    if (scheme === 'file') return { url: raw, display: raw, transport: 'file' };
    throw new Error(`unsupported repository URL scheme ${scheme}:// (use https, http, ssh, git or file)`);
  }
  if (raw.startsWith('/') || raw.startsWith('./') || raw.startsWith('../')) return { url: raw, display: raw, transport: 'file' };
  if (SCP_LIKE.test(raw)) return { url: raw, display: raw, transport: 'ssh' };
  return { url: raw, display: raw, transport: 'file' };
}

/** A URL for display: the user info of any `scheme://user:pass@` in it replaced by `***`. */
export function redactUrl(text: string): string {
  return text.replace(/\b(https?|ftp):\/\/[^\s/@]+@/gi, '$1://***@').replace(/\b(ssh|git\+ssh|ssh\+git):\/\/([^\s/:@]+):[^\s/@]+@/gi, '$1://$2:***@');
}

/** Removes known secrets (a token, a URL password) and URL credentials from any text. */
export class Redactor {
  readonly #secrets = new Set<string>();

  add(secret: string | undefined): void {
    const s = secret?.trim();
    // Short strings would redact ordinary words: a secret under 4 characters is not worth hiding by text.
    if (s && s.length >= 4) this.#secrets.add(s);
  }

  text(s: string): string {
    let out = redactUrl(s);
    for (const secret of this.#secrets) out = out.split(secret).join('***');
    return out;
  }
}
