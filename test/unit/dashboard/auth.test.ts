/**
 * The listener's authentication and TLS: the token compared in constant time (SHA-256 digests of
 * equal length into timingSafeEqual: tokens of any length are compared without throwing), session
 * cookies (flags, expiry, logout), which paths need what, the session exchange by header, JSON and
 * form, TLS with the cookie's Secure flag, and the refusals of a non-loopback listener without a
 * token or TLS (exit 2 from the CLI).
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import { chmodSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { request as httpsRequest } from 'node:https';
import { Auth, readTokenFile, tokenMatches, parseCookies, SESSION_COOKIE } from '../../../src/dashboard/auth.js';
import { Dashboard, type DashboardFeed } from '../../../src/dashboard/data.js';
import { startStatusServer, WatchMetrics, type StatusServer, type StatusSource, type WatchStatus } from '../../../src/watch/index.js';
import { httpSetup } from '../../../src/cli/http-options.js';
import { runWatch, type WatchFlags } from '../../../src/cli/commands/watch.js';
import { createHash } from 'node:crypto';
import { openSse } from './sse.js';
import { makeTempDir } from '../../support/temp-dirs.js';

const TOKEN = 'a'.repeat(8) + 'b7c1d2e3f4a5b6c7d8e9f0';
const dir = makeTempDir('vftest-dash-auth-');
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** A minimal status source with an empty status (the listener's behaviour is what is tested). */
function fakeSource(): StatusSource & DashboardFeed {
  const status = {
    ready: true, stopping: false, dir: '/m', connection: { state: 'connected', since: new Date().toISOString(), attempts: 0 },
    runs: { total: 0, inFlight: false, pending: false }, requeue: { attempt: 0 }, stalled: [], suspended: null,
    manifests: { valid: true, errors: [] }, git: null, lease: { role: 'leader' }, resources: [], summary: { total: 0, byStatus: {} }, hostError: null, hosts: [],
  } as unknown as WatchStatus;
  return {
    notReadyReason: undefined, metrics: new WatchMetrics({ defaultMetrics: false }),
    status: async () => status, desiredResources: [], lastPlan: undefined, subscribe: () => () => undefined,
  };
}
const emptyStore = {
  resources: { get: async () => undefined }, journal: { forResource: async () => [] }, events: { forResource: async () => [] },
} as unknown as ConstructorParameters<typeof Dashboard>[0]['store'];

let server: StatusServer | undefined;
let dashboard: Dashboard | undefined;
afterEach(async () => {
  await server?.close();
  dashboard?.close();
  server = dashboard = undefined;
});

async function listen(o: { token?: string; tls?: { cert: string; key: string }; host?: string } = {}): Promise<StatusServer> {
  const src = fakeSource();
  dashboard = new Dashboard({ feed: src, store: emptyStore });
  server = await startStatusServer(src, { host: o.host ?? '127.0.0.1', port: 0 }, undefined, { dashboard, ...(o.token ? { token: o.token } : {}), ...(o.tls ? { tls: o.tls } : {}) });
  return server;
}

describe('token comparison and sessions', () => {
  it('compares tokens of any length in constant time (digests of equal length), true only for the token', () => {
    const d = createHash('sha256').update(TOKEN).digest();
    expect(tokenMatches(TOKEN, d)).toBe(true);
    for (const wrong of ['', 'a', TOKEN.slice(0, -1), `${TOKEN}x`, TOKEN.toUpperCase(), 'z'.repeat(10_000)]) expect(tokenMatches(wrong, d), wrong.slice(0, 20)).toBe(false);
  });

  it('reads the token file: first line, 16+ characters, not world-readable', () => {
    const f = join(dir, 'token');
    writeFileSync(f, `${TOKEN}\nignored\n`, { mode: 0o600 });
    expect(readTokenFile(f)).toBe(TOKEN);
    writeFileSync(f, 'short\n');
    expect(() => readTokenFile(f)).toThrow(/at least 16 characters/);
    writeFileSync(f, `${TOKEN}\n`);
    chmodSync(f, 0o644);
    expect(() => readTokenFile(f)).toThrow(/readable or writable by everyone.*chmod 600/);
    expect(() => readTokenFile(join(dir, 'missing'))).toThrow(/cannot read it \(ENOENT\)/);
  });

  it('session cookies: 32 random bytes, HttpOnly, SameSite=Strict, Path=/, Secure only under TLS; they expire', () => {
    let now = 1_000_000;
    const plain = new Auth({ token: TOKEN, secure: false, sessionTtlMs: 60_000, now: () => now });
    const s = plain.newSession();
    expect(Buffer.from(s.id, 'base64url')).toHaveLength(32);
    expect(s.cookie).toBe(`${SESSION_COOKIE}=${s.id}; HttpOnly; SameSite=Strict; Path=/; Max-Age=60`);
    expect(plain.newSession().id).not.toBe(s.id);
    expect(plain.checkSession(s.id)).toBe(true);
    expect(plain.checkSession(`${s.id.slice(0, -1)}A`)).toBe(s.id.endsWith('A'));
    now += 60_001;
    expect(plain.checkSession(s.id)).toBe(false);
    const tls = new Auth({ token: TOKEN, secure: true });
    expect(tls.newSession().cookie).toMatch(/^vf_session=[A-Za-z0-9_-]{43}; HttpOnly; Secure; SameSite=Strict; Path=\/; Max-Age=43200$/);
    expect(parseCookies('a=1; vf_session=xyz; b=2').get('vf_session')).toBe('xyz');
  });
});

describe('the listener with a token (loopback)', () => {
  it('healthz and the login page are open; everything else needs the bearer token or the session cookie; 401 without', async () => {
    const s = await listen({ token: TOKEN });
    const base = `http://127.0.0.1:${s.port}`;
    const get = (p: string, h: Record<string, string> = {}): Promise<Response> => fetch(`${base}${p}`, { headers: h, redirect: 'manual' });
    expect((await get('/healthz')).status).toBe(200);
    expect((await get('/login')).status).toBe(200);
    for (const p of ['/readyz', '/status', '/metrics', '/api/v1/overview', '/api/v1/resources', '/api/v1/events', '/', '/resources', '/plan', '/history', '/attention']) {
      const r = await get(p);
      expect(r.status, p).toBe(401);
      expect(r.headers.get('www-authenticate'), p).toBe('Bearer realm="virtform"');
      expect(r.headers.get('content-security-policy'), p).toMatch(/frame-ancestors 'none'/);
      expect((await get(p, { authorization: 'Bearer wrong-token-of-some-length' })).status, p).toBe(401);
      expect((await get(p, { authorization: `Bearer ${TOKEN}` })).status, p).not.toBe(401);
    }
    expect((await get('/api/v1/overview', { authorization: `Bearer ${TOKEN}` })).status).toBe(200);

    // token → cookie (header)
    const post = await fetch(`${base}/api/v1/session`, { method: 'POST', headers: { authorization: `Bearer ${TOKEN}` } });
    expect(post.status).toBe(200);
    const cookie = post.headers.get('set-cookie')!;
    expect(cookie).toMatch(/^vf_session=[A-Za-z0-9_-]{43}; HttpOnly; SameSite=Strict; Path=\/; Max-Age=\d+$/);
    expect(cookie).not.toMatch(/Secure/);
    const jar = cookie.split(';')[0]!;
    expect((await get('/api/v1/overview', { cookie: jar })).status).toBe(200);
    expect((await get('/status', { cookie: jar })).status).toBe(200);
    expect((await get('/metrics', { cookie: jar })).status).toBe(200);
    const sse = await openSse(`${base}/api/v1/events`, { cookie: jar });
    expect(sse.status).toBe(200);
    sse.close();
    expect((await get('/api/v1/overview', { cookie: 'vf_session=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA' })).status).toBe(401);

    // token → cookie (form: 303 to /), a wrong one back to the login page
    const form = await fetch(`${base}/api/v1/session`, { method: 'POST', redirect: 'manual', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: `token=${encodeURIComponent(TOKEN)}` });
    expect(form.status).toBe(303);
    expect(form.headers.get('location')).toBe('/');
    expect(form.headers.get('set-cookie')).toMatch(/^vf_session=/);
    const bad = await fetch(`${base}/api/v1/session`, { method: 'POST', redirect: 'manual', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: 'token=nope' });
    expect(bad.status).toBe(303);
    expect(bad.headers.get('location')).toBe('/login?error=1');
    expect(bad.headers.get('set-cookie')).toBeNull();
    // JSON body
    const jsonBad = await fetch(`${base}/api/v1/session`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ token: 'nope' }) });
    expect(jsonBad.status).toBe(401);
    const jsonOk = await fetch(`${base}/api/v1/session`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ token: TOKEN }) });
    expect(jsonOk.status).toBe(200);
    // logout ends the session
    const out = await fetch(`${base}/api/v1/session`, { method: 'DELETE', headers: { cookie: jar } });
    expect(out.status).toBe(204);
    expect(out.headers.get('set-cookie')).toMatch(/^vf_session=; .*Max-Age=0$/);
    expect((await get('/api/v1/overview', { cookie: jar })).status).toBe(401);
    // other methods are refused
    expect((await fetch(`${base}/status`, { method: 'POST', headers: { authorization: `Bearer ${TOKEN}` } })).status).toBe(405);
  });

  it('without a token on loopback: open, and the session endpoint says no session is needed', async () => {
    const s = await listen();
    const base = `http://127.0.0.1:${s.port}`;
    expect((await fetch(`${base}/api/v1/overview`)).status).toBe(200);
    expect((await fetch(`${base}/status`)).status).toBe(200);
    expect((await fetch(`${base}/api/v1/session`, { method: 'POST' })).status).toBe(404);
  });

  it('too many wrong tokens in a minute: 429', async () => {
    const s = await listen({ token: TOKEN });
    let last = 0;
    for (let i = 0; i < 32; i++) last = (await fetch(`http://127.0.0.1:${s.port}/api/v1/session`, { method: 'POST', headers: { authorization: 'Bearer wrong-wrong-wrong-wrong' } })).status;
    expect(last).toBe(429);
  });
});

describe('TLS and the non-loopback rules', () => {
  let cert = '';
  let key = '';
  beforeAll(() => {
    const k = join(dir, 'key.pem');
    const c = join(dir, 'cert.pem');
    execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', k, '-out', c, '-days', '1', '-subj', '/CN=localhost', '-addext', 'subjectAltName=DNS:localhost,IP:127.0.0.1'], { stdio: 'ignore' });
    cert = readFileSync(c, 'utf8');
    key = readFileSync(k, 'utf8');
  });

  it('serves HTTPS with the certificate; the session cookie is Secure', async () => {
    const s = await listen({ token: TOKEN, tls: { cert, key } });
    const res = await new Promise<{ status: number; cookie: string }>((resolve, reject) => {
      const req = httpsRequest({ host: '127.0.0.1', port: s.port, path: '/api/v1/session', method: 'POST', ca: cert, servername: 'localhost', headers: { authorization: `Bearer ${TOKEN}`, host: `127.0.0.1:${s.port}` } }, (r) => {
        r.resume();
        resolve({ status: r.statusCode ?? 0, cookie: String(r.headers['set-cookie'] ?? '') });
      });
      req.on('error', reject);
      req.end();
    });
    expect(res.status).toBe(200);
    expect(res.cookie).toMatch(/; HttpOnly; Secure; SameSite=Strict; Path=\//);
  });

  it('refuses a non-loopback address without a token and TLS (the listener and the CLI, exit 2)', async () => {
    await expect(listen({ host: '0.0.0.0' })).rejects.toThrow(/refusing to listen on 0\.0\.0\.0: a non-loopback address needs --http-token-file and --http-tls-cert/);
    await expect(listen({ host: '0.0.0.0', token: TOKEN })).rejects.toThrow(/needs --http-tls-cert and --http-tls-key/);
    const tokenFile = join(dir, 'tok');
    writeFileSync(tokenFile, `${TOKEN}\n`, { mode: 0o600 });
    writeFileSync(join(dir, 'c.pem'), cert);
    writeFileSync(join(dir, 'k.pem'), key, { mode: 0o600 });
    expect(() => httpSetup({ listen: '10.9.8.7:9465' })).toThrow(/needs --http-token-file and --http-tls-cert/);
    expect(() => httpSetup({ listen: '10.9.8.7:9465', httpTokenFile: tokenFile })).toThrow(/needs --http-tls-cert/);
    expect(() => httpSetup({ listen: '10.9.8.7:9465', httpTokenFile: tokenFile, httpTlsCert: join(dir, 'c.pem') })).toThrow(/go together/);
    expect(() => httpSetup({ listen: '10.9.8.7:9465', httpTokenFile: tokenFile, httpTlsCert: join(dir, 'k.pem'), httpTlsKey: join(dir, 'k.pem') })).toThrow(/not a PEM certificate/);
    expect(httpSetup({ listen: '10.9.8.7:9465', httpTokenFile: tokenFile, httpTlsCert: join(dir, 'c.pem'), httpTlsKey: join(dir, 'k.pem') })).toMatchObject({ listen: { host: '10.9.8.7', port: 9465 }, token: TOKEN });
    expect(httpSetup({ listen: '127.0.0.1:9465', httpTokenFile: tokenFile })).toMatchObject({ token: TOKEN });
    expect(() => httpSetup({ listen: false, httpTokenFile: tokenFile })).toThrow(/need a listener/);

    const errs: string[] = [];
    const write = process.stderr.write.bind(process.stderr);
    process.stderr.write = ((chunk: string | Uint8Array) => (errs.push(String(chunk)), true)) as typeof process.stderr.write;
    let code: number;
    try {
      code = await runWatch(dir, { listen: '10.9.8.7:9465', logLevel: 'error', uri: 'test:///default', resync: 300, debounce: 500, concurrency: 1, maxAttempts: 1, retryDelay: 1, shutdownTimeout: 1 } as WatchFlags);
    } finally {
      process.stderr.write = write;
    }
    expect(code).toBe(2);
    expect(errs.join('')).toMatch(/refusing to listen on 10\.9\.8\.7: a non-loopback address needs --http-token-file and --http-tls-cert and --http-tls-key/);
  });
});

describe('no data yet', () => {
  it('a status that cannot be built: the API answers 503 saying why (it does not hang)', async () => {
    const src = { ...fakeSource(), status: async (): Promise<WatchStatus> => { throw new Error('state DB locked'); } };
    dashboard = new Dashboard({ feed: src, store: emptyStore });
    server = await startStatusServer(src, { host: '127.0.0.1', port: 0 }, undefined, { dashboard });
    const r = await fetch(`http://127.0.0.1:${server.port}/api/v1/overview`, { signal: AbortSignal.timeout(5000) });
    expect(r.status).toBe(503);
    expect(await r.json()).toEqual({ error: 'no dashboard data yet: state DB locked' });
  });
});
