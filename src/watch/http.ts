/**
 * The watcher's HTTP listener (node:http on loopback; node:https with a bearer token anywhere
 * else, see `checkListenSecurity`):
 *   /healthz  200 while the process runs (always open)
 *   /readyz   200 once it holds the writer lease, is connected and the first reconcile finished;
 *             else 503 saying why (a standby: who holds the lease, or why it was lost)
 *   /status   JSON: last run, requeue, stalled resources, connection, manifest errors, and the
 *             per-resource report `virtform status --json` prints (src/status/)
 *   /metrics  Prometheus text exposition (prom-client)
 *   /api/v1/* the dashboard's JSON API and event stream (src/dashboard/api.ts), `/`, `/resources…`,
 *             `/plan`, `/history…`, `/attention`, `/login`, `/assets/*`: its pages (src/dashboard/pages/)
 * With a token (`--http-token-file`), everything but /healthz, /login and /assets/* needs it
 * (`Authorization: Bearer`) or the session cookie `POST /api/v1/session` hands out; 401 without.
 * Every answer carries the security headers (CSP without inline script, nosniff, no referrer,
 * frame-ancestors 'none').
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import type { Logger } from './logger.js';
import type { WatchMetrics } from './metrics.js';
import { Auth, handleSession } from '../dashboard/auth.js';
import { handleApi } from '../dashboard/api.js';
import type { Dashboard } from '../dashboard/data.js';
import { handlePage, isPagePath, isPublicPage } from '../dashboard/pages/index.js';
import { API_PREFIX } from '../dashboard/types.js';

export interface ListenAddress {
  host: string;
  port: number;
}

const LOOPBACK_NAMES = new Set(['127.0.0.1', 'localhost', '::1']);

/** True for 127.0.0.0/8, ::1 and `localhost`. */
export function isLoopbackHost(host: string): boolean {
  if (LOOPBACK_NAMES.has(host)) return true;
  const m = /^127\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(host);
  return m !== null && m.slice(1).every((x) => Number(x) <= 255);
}

/**
 * Parse `host:port`, `[v6]:port` or a bare `port` (host 127.0.0.1). A non-loopback host is
 * accepted here; {@link checkListenSecurity} then requires a token and TLS for it.
 */
export function parseListen(spec: string): ListenAddress {
  let host = '127.0.0.1';
  let portText = spec.trim();
  const v6 = /^\[([^\]]+)\]:(\d+)$/.exec(portText);
  if (v6) {
    host = v6[1]!;
    portText = v6[2]!;
  } else if (portText.includes(':')) {
    const i = portText.lastIndexOf(':');
    host = portText.slice(0, i);
    portText = portText.slice(i + 1);
  }
  if (!/^\d+$/.test(portText) || Number(portText) > 65535) throw new Error(`--listen: invalid port in ${JSON.stringify(spec)}`);
  if (host === '' || !/^[A-Za-z0-9.:%-]+$/.test(host)) throw new Error(`--listen: invalid host in ${JSON.stringify(spec)}`);
  return { host: host === 'localhost' ? '127.0.0.1' : host, port: Number(portText) };
}

/** TLS material of the listener (`--http-tls-cert`, `--http-tls-key`: PEM). */
export interface ListenTls {
  cert: string | Buffer;
  key: string | Buffer;
}

/**
 * Loopback is open by default; any other address needs `--http-token-file` AND TLS
 * (`--http-tls-cert`, `--http-tls-key`). Returns the refusal (exit 2), or undefined when allowed.
 */
export function checkListenSecurity(addr: ListenAddress, o: { token: boolean; tls: boolean }): string | undefined {
  if (isLoopbackHost(addr.host)) return undefined;
  const missing = [...(o.token ? [] : ['--http-token-file']), ...(o.tls ? [] : ['--http-tls-cert and --http-tls-key'])];
  if (missing.length === 0) return undefined;
  return `--listen: refusing to listen on ${addr.host}: a non-loopback address needs ${missing.join(' and ')} ` +
    `(the dashboard and /status would be readable by anyone who can reach it); loopback (127.0.0.1, ::1) needs neither`;
}

/** The security headers every answer carries. */
export const SECURITY_HEADERS: Readonly<Record<string, string>> = {
  'content-security-policy': "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'",
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
  'x-frame-options': 'DENY',
  'cross-origin-resource-policy': 'same-origin',
};

/**
 * The `Host` header values the listener answers (DNS rebinding: a web page whose name resolves to
 * 127.0.0.1 must not read /status from a browser on the operator's machine): the listen address,
 * `localhost`, `127.0.0.1` and `[::1]`, plus `--allowed-host` names, each with the port (bare when
 * the port is 80). Compared case-insensitively.
 */
export function allowedHostHeaders(addr: ListenAddress, port: number, extra: readonly string[] = []): Set<string> {
  const names = new Set([addr.host, 'localhost', '127.0.0.1', '::1', ...extra].map((h) => h.toLowerCase().replace(/^\[|\]$/g, '')));
  const out = new Set<string>();
  for (const n of names) {
    const h = n.includes(':') ? `[${n}]` : n;
    out.add(`${h}:${port}`);
    if (port === 80) out.add(h);
  }
  return out;
}

/** `--allowed-host NAME`: a host name or address (no port, no scheme). */
export function parseAllowedHost(name: string): string {
  const n = name.trim().toLowerCase().replace(/^\[|\]$/g, '');
  if (!/^[a-z0-9.:-]+$/.test(n) || n.length > 253) throw new Error(`--allowed-host: ${JSON.stringify(name)} is not a host name or address (give it without a port)`);
  return n;
}

/**
 * What the listener serves: the single-host controller (src/watch/controller.ts) and the fleet
 * watch's state (src/fleet/watch-status.ts) both are one.
 */
export interface StatusSource {
  /** Why /readyz answers 503, or undefined when ready. */
  readonly notReadyReason: string | undefined;
  readonly metrics: WatchMetrics;
  /** The /status JSON. */
  status(): Promise<unknown>;
}

export interface StatusServer {
  readonly port: number;
  readonly host: string;
  readonly server: Server;
  close(): Promise<void>;
}

export interface StatusServerOptions {
  allowedHosts?: readonly string[];
  /** The bearer token (`--http-token-file`); required with a non-loopback address. */
  token?: string;
  /** TLS (node:https); required with a non-loopback address. */
  tls?: ListenTls;
  /** The dashboard (pages and `/api/v1`); without it those paths answer 404. */
  dashboard?: Dashboard;
  /** Session lifetime (ms; default 12 h). */
  sessionTtlMs?: number;
}

export async function startStatusServer(controller: StatusSource, addr: ListenAddress, log?: Logger, o: StatusServerOptions = {}): Promise<StatusServer> {
  const refused = checkListenSecurity(addr, { token: o.token !== undefined, tls: o.tls !== undefined });
  if (refused) throw new Error(refused);
  const auth = new Auth({ token: o.token, secure: o.tls !== undefined, sessionTtlMs: o.sessionTtlMs });
  let hosts = new Set<string>();
  const handler = (req: IncomingMessage, res: ServerResponse): void => {
    let url: URL;
    try {
      url = new URL(req.url ?? '/', 'http://listener');
    } catch { // safe-catch: answered 400
      url = new URL('http://listener/%bad');
    }
    const path = url.pathname;
    const send = (code: number, type: string, body: string, headers: Record<string, string> = {}): void => {
      if (res.headersSent) return;
      res.writeHead(code, { ...SECURITY_HEADERS, 'content-type': type, 'cache-control': 'no-store', ...headers });
      res.end(req.method === 'HEAD' ? undefined : body);
    };
    const host = (req.headers.host ?? '').toLowerCase();
    if (!hosts.has(host)) {
      send(421, 'text/plain; charset=utf-8', 'misdirected request: this listener answers only Host: 127.0.0.1, localhost or [::1] (and --allowed-host names) with its port\n');
      return;
    }
    if (path === `${API_PREFIX}/session`) {
      void handleSession(auth, req, res, send).catch((e: unknown) => send(500, 'text/plain; charset=utf-8', `session failed: ${String(e)}\n`));
      return;
    }
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      send(405, 'text/plain; charset=utf-8', 'method not allowed\n', { allow: 'GET, HEAD' });
      return;
    }
    // Authentication: everything but /healthz and the login page and assets.
    if (path !== '/healthz' && !(o.dashboard && isPublicPage(path)) && auth.authorize(req) === 'denied') {
      const page = o.dashboard && isPagePath(path);
      if (page) send(401, 'text/html; charset=utf-8', '<!doctype html><html lang="en"><head><meta charset="utf-8"><title>virtform: log in</title></head><body><p>This dashboard needs a token: <a href="/login">log in</a>.</p></body></html>\n', { 'www-authenticate': 'Bearer realm="virtform"' });
      else send(401, 'text/plain; charset=utf-8', 'unauthorized: send Authorization: Bearer <token> (--http-token-file) or the session cookie of POST /api/v1/session\n', { 'www-authenticate': 'Bearer realm="virtform"' });
      return;
    }
    if (o.dashboard && path.startsWith(`${API_PREFIX}/`)) {
      void handleApi(o.dashboard, req, res, url, send, { ...SECURITY_HEADERS }).catch((e: unknown) => send(500, 'application/json; charset=utf-8', `${JSON.stringify({ error: String(e) })}\n`));
      return;
    }
    if (o.dashboard && isPagePath(path)) {
      if (handlePage(req, res, url, { dashboard: o.dashboard, headers: { ...SECURITY_HEADERS }, authEnabled: auth.enabled, send })) return;
    }
    switch (path) {
      case '/healthz':
        send(200, 'text/plain; charset=utf-8', 'ok\n');
        return;
      case '/readyz': {
        const why = controller.notReadyReason;
        send(why === undefined ? 200 : 503, 'text/plain; charset=utf-8', why === undefined ? 'ready\n' : `not ready (${why})\n`);
        return;
      }
      case '/metrics':
        controller.metrics.render().then(
          (text) => send(200, controller.metrics.contentType, text),
          (e: unknown) => send(500, 'text/plain; charset=utf-8', `metrics failed: ${String(e)}\n`),
        );
        return;
      case '/status':
        controller.status().then(
          (s) => send(200, 'application/json; charset=utf-8', `${JSON.stringify(s, null, 2)}\n`),
          (e: unknown) => send(500, 'application/json; charset=utf-8', `${JSON.stringify({ error: String(e) })}\n`),
        );
        return;
      default:
        send(404, 'text/plain; charset=utf-8', `not found: try /healthz /readyz /status /metrics${o.dashboard ? ' / /api/v1/overview' : ''}\n`);
    }
  };
  const server: Server = o.tls ? createHttpsServer({ cert: o.tls.cert, key: o.tls.key }, handler) : createServer(handler);
  server.keepAliveTimeout = 1000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(addr.port, addr.host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  server.on('error', (e) => log?.error('http listener error', { error: e.message }));
  const bound = server.address() as AddressInfo;
  hosts = allowedHostHeaders(addr, bound.port, o.allowedHosts);
  return {
    port: bound.port,
    host: bound.address,
    server,
    close: () =>
      new Promise<void>((resolve) => {
        o.dashboard?.events.close();
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
