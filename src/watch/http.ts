/**
 * The watcher's HTTP listener (node:http, loopback only):
 *   /healthz  200 while the process runs
 *   /readyz   200 once it holds the writer lease, is connected and the first reconcile finished;
 *             else 503 saying why (a standby: who holds the lease, or why it was lost)
 *   /status   JSON: last run, requeue, stalled resources, connection, manifest errors, and the
 *             per-resource report `virtform status --json` prints (src/status/)
 *   /metrics  Prometheus text exposition (prom-client)
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Logger } from './logger.js';
import type { WatchMetrics } from './metrics.js';

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

/** Parse `host:port`, `[v6]:port` or a bare `port` (host 127.0.0.1); refuses non-loopback hosts. */
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
  if (!isLoopbackHost(host)) {
    throw new Error(`--listen: refusing to listen on ${host}: the status endpoint binds to loopback only (127.0.0.1 or ::1)`);
  }
  return { host: host === 'localhost' ? '127.0.0.1' : host, port: Number(portText) };
}

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

export async function startStatusServer(controller: StatusSource, addr: ListenAddress, log?: Logger, o: { allowedHosts?: readonly string[] } = {}): Promise<StatusServer> {
  if (!isLoopbackHost(addr.host)) throw new Error(`refusing to listen on non-loopback host ${addr.host}`);
  let hosts = new Set<string>();
  const server = createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    const send = (code: number, type: string, body: string): void => {
      res.writeHead(code, { 'content-type': type, 'cache-control': 'no-store' });
      res.end(req.method === 'HEAD' ? undefined : body);
    };
    const host = (req.headers.host ?? '').toLowerCase();
    if (!hosts.has(host)) {
      send(421, 'text/plain; charset=utf-8', 'misdirected request: this listener answers only Host: 127.0.0.1, localhost or [::1] (and --allowed-host names) with its port\n');
      return;
    }
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      send(405, 'text/plain; charset=utf-8', 'method not allowed\n');
      return;
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
        send(404, 'text/plain; charset=utf-8', 'not found: try /healthz /readyz /status /metrics\n');
    }
  });
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
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
