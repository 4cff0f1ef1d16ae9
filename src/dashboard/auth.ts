/**
 * The listener's authentication (issue 23). Off on loopback unless `--http-token-file` is given;
 * required (with TLS) on any other address. Two credentials:
 *   - a bearer token (`Authorization: Bearer <token>`), compared in constant time: both sides are
 *     hashed with SHA-256 and the equal-length digests compared with crypto.timingSafeEqual, so
 *     neither the length nor a prefix of the token leaks through timing;
 *   - a session cookie `vf_session` (a browser cannot put a header on an EventSource), obtained
 *     once with the token from `POST /api/v1/session`: 32 random bytes, HttpOnly, SameSite=Strict,
 *     Secure under TLS, expiring (default 12 h), kept in memory only (a restart logs everyone out).
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { readFileSync, statSync } from 'node:fs';
import type { IncomingMessage, ServerResponse } from 'node:http';

export const SESSION_COOKIE = 'vf_session';
export const DEFAULT_SESSION_TTL_MS = 12 * 3600 * 1000;
/** Sessions kept at most (the oldest is dropped beyond). */
const MAX_SESSIONS = 1000;
/** Failed token attempts allowed per minute before answering 429. */
const MAX_FAILURES_PER_MINUTE = 30;
export const MIN_TOKEN_LENGTH = 16;

const digest = (s: string | Buffer): Buffer => createHash('sha256').update(s).digest();

/** Constant-time comparison of a presented token with the expected one (SHA-256 of both, timingSafeEqual). */
export function tokenMatches(presented: string, expectedDigest: Buffer): boolean {
  return timingSafeEqual(digest(presented), expectedDigest);
}

/** Read `--http-token-file`: the first line, trimmed; at least 16 characters. Throws a clear error. */
export function readTokenFile(path: string): string {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    throw new Error(`--http-token-file ${path}: cannot read it (${(e as NodeJS.ErrnoException).code ?? String(e)})`);
  }
  const token = (text.split(/\r?\n/)[0] ?? '').trim();
  if (token.length < MIN_TOKEN_LENGTH) throw new Error(`--http-token-file ${path}: the token must be at least ${MIN_TOKEN_LENGTH} characters (e.g. openssl rand -hex 32 > ${path})`);
  if (/\s/.test(token)) throw new Error(`--http-token-file ${path}: the token must not contain spaces`);
  const mode = statSync(path).mode & 0o077;
  if (mode & 0o007) throw new Error(`--http-token-file ${path}: readable or writable by everyone (chmod 600 ${path})`);
  return token;
}

export interface AuthOptions {
  /** The token; undefined: authentication off (loopback without --http-token-file). */
  token?: string;
  /** Cookies get `Secure` (the listener speaks TLS). */
  secure: boolean;
  sessionTtlMs?: number;
  now?: () => number;
}

/** Parse a Cookie header into name → value (the first of duplicates wins). */
export function parseCookies(header: string | undefined): Map<string, string> {
  const out = new Map<string, string>();
  for (const part of (header ?? '').split(';')) {
    const i = part.indexOf('=');
    if (i <= 0) continue;
    const name = part.slice(0, i).trim();
    if (!out.has(name)) out.set(name, part.slice(i + 1).trim());
  }
  return out;
}

export type AuthResult = 'open' | 'token' | 'session' | 'denied';

export class Auth {
  readonly enabled: boolean;
  readonly secure: boolean;
  readonly #digest: Buffer | undefined;
  readonly #ttl: number;
  readonly #now: () => number;
  /** sha256(session id) hex → expiry (ms). The id itself is not kept. */
  readonly #sessions = new Map<string, number>();
  #failures: number[] = [];

  constructor(o: AuthOptions) {
    this.enabled = o.token !== undefined;
    this.secure = o.secure;
    this.#digest = o.token !== undefined ? digest(o.token) : undefined;
    this.#ttl = o.sessionTtlMs ?? DEFAULT_SESSION_TTL_MS;
    this.#now = o.now ?? Date.now;
  }

  get sessionCount(): number {
    return this.#sessions.size;
  }

  /** Whether `token` is the token (constant time). False when authentication is off. */
  checkToken(token: string): boolean {
    if (!this.#digest) return false;
    const ok = tokenMatches(token, this.#digest);
    if (!ok) this.#failures.push(this.#now());
    return ok;
  }

  /** Too many failed attempts in the last minute (the session endpoint answers 429). */
  get throttled(): boolean {
    const since = this.#now() - 60_000;
    this.#failures = this.#failures.filter((t) => t > since);
    return this.#failures.length >= MAX_FAILURES_PER_MINUTE;
  }

  /** A new session: its id (32 random bytes, base64url) and the Set-Cookie header value. */
  newSession(): { id: string; cookie: string; expiresAt: number } {
    const id = randomBytes(32).toString('base64url');
    const expiresAt = this.#now() + this.#ttl;
    this.#sessions.set(digest(id).toString('hex'), expiresAt);
    if (this.#sessions.size > MAX_SESSIONS) this.#sessions.delete(this.#sessions.keys().next().value!);
    return { id, cookie: this.cookie(id, Math.floor(this.#ttl / 1000)), expiresAt };
  }

  /** `vf_session=…; HttpOnly; SameSite=Strict; Path=/; Max-Age=…` (+ `Secure` under TLS). */
  cookie(value: string, maxAgeS: number): string {
    return `${SESSION_COOKIE}=${value}; HttpOnly;${this.secure ? ' Secure;' : ''} SameSite=Strict; Path=/; Max-Age=${maxAgeS}`;
  }

  /** Whether a session id is live (expired ones are dropped). */
  checkSession(id: string): boolean {
    if (!/^[A-Za-z0-9_-]{43}$/.test(id)) return false;
    const key = digest(id).toString('hex');
    const exp = this.#sessions.get(key);
    if (exp === undefined) return false;
    if (exp <= this.#now()) {
      this.#sessions.delete(key);
      return false;
    }
    return true;
  }

  endSession(id: string): void {
    this.#sessions.delete(digest(id).toString('hex'));
  }

  /** The bearer token of a request, if any. */
  static bearer(req: IncomingMessage): string | undefined {
    const h = req.headers.authorization;
    const m = h ? /^Bearer\s+(\S+)\s*$/i.exec(h) : null;
    return m?.[1];
  }

  /** How a request is authorized: `open` (auth off), `token`, `session`, or `denied`. */
  authorize(req: IncomingMessage): AuthResult {
    if (!this.enabled) return 'open';
    const b = Auth.bearer(req);
    if (b !== undefined && this.checkToken(b)) return 'token';
    const s = parseCookies(req.headers.cookie).get(SESSION_COOKIE);
    if (s !== undefined && this.checkSession(s)) return 'session';
    return 'denied';
  }
}

const MAX_BODY = 4096;

function readBody(req: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    let size = 0;
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size > MAX_BODY) {
        reject(new Error('body too large'));
        req.destroy();
        return;
      }
      chunks.push(c);
    });
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}

/**
 * `POST /api/v1/session`: the token (Authorization: Bearer, a JSON body `{"token": …}`, or a form
 * `token=…`) for a session cookie. JSON/bearer: 200 `{expiresAt}` with Set-Cookie; a form: 303 to
 * `/` with Set-Cookie (a wrong token: 303 to `/login?error=1`). Wrong token: 401; too many
 * failures in a minute: 429; authentication off: 404 (no session needed).
 * `DELETE /api/v1/session`: ends the cookie's session (204) and clears the cookie.
 */
export async function handleSession(auth: Auth, req: IncomingMessage, res: ServerResponse, send: (code: number, type: string, body: string, headers?: Record<string, string>) => void): Promise<void> {
  const json = (code: number, body: unknown, headers?: Record<string, string>): void => send(code, 'application/json; charset=utf-8', `${JSON.stringify(body)}\n`, headers);
  if (!auth.enabled) return json(404, { error: 'authentication is off on this listener (loopback without --http-token-file): no session needed' });
  if (req.method === 'DELETE') {
    const s = parseCookies(req.headers.cookie).get(SESSION_COOKIE);
    if (s !== undefined) auth.endSession(s);
    res.writeHead(204, { 'set-cookie': auth.cookie('', 0) });
    res.end();
    return;
  }
  if (req.method !== 'POST') return json(405, { error: 'method not allowed: POST the token, DELETE to log out' }, { allow: 'POST, DELETE' });
  if (auth.throttled) return json(429, { error: 'too many failed attempts: wait a minute' }, { 'retry-after': '60' });
  const type = (req.headers['content-type'] ?? '').split(';')[0]!.trim().toLowerCase();
  const form = type === 'application/x-www-form-urlencoded';
  let token = Auth.bearer(req);
  if (token === undefined) {
    let body: string;
    try {
      body = await readBody(req);
    } catch (e) {
      return json(413, { error: `request body: ${(e as Error).message}` });
    }
    if (form) token = new URLSearchParams(body).get('token') ?? undefined;
    else if (type === 'application/json') {
      try {
        const v = JSON.parse(body) as unknown;
        token = v && typeof v === 'object' && typeof (v as { token?: unknown }).token === 'string' ? (v as { token: string }).token : undefined;
      } catch { // safe-catch: answered 400 below (no token found)
        token = undefined;
      }
    }
  }
  if (token === undefined || token === '') {
    if (form) return send(303, 'text/plain; charset=utf-8', 'see /login\n', { location: '/login?error=1' });
    return json(400, { error: 'no token: send Authorization: Bearer <token>, a JSON body {"token": …} or a form token=…' });
  }
  if (!auth.checkToken(token)) {
    if (form) return send(303, 'text/plain; charset=utf-8', 'see /login\n', { location: '/login?error=1' });
    return json(401, { error: 'wrong token' }, { 'www-authenticate': 'Bearer realm="virtform"' });
  }
  const s = auth.newSession();
  if (form) return send(303, 'text/plain; charset=utf-8', 'see /\n', { location: '/', 'set-cookie': s.cookie });
  return json(200, { expiresAt: new Date(s.expiresAt).toISOString() }, { 'set-cookie': s.cookie });
}
