/**
 * libvirt connection URIs: `driver[+transport]://[user@][host][:port]/path[?query]`.
 *
 * Supported transports: `unix` (the default without a host) and `tcp`. The URI sent to the daemon
 * in connect-open is the URI without the transport suffix, host, port, user and the client-side
 * query parameters, as libvirt's remote driver does (`qemu+tcp://h:16509/system` → `qemu:///system`).
 * A `name=` query parameter overrides it.
 */
import { homedir } from 'node:os';
import { join } from 'node:path';
import { LIBVIRTD_TCP_PORT } from './protocol.js';

export const DEFAULT_SOCKET = '/var/run/libvirt/libvirt-sock';
export const DEFAULT_SOCKET_RO = '/var/run/libvirt/libvirt-sock-ro';

export type Transport = 'unix' | 'tcp';

export interface ParsedUri {
  /** The URI as given. */
  uri: string;
  /** Driver part of the scheme, e.g. `qemu`, `test`. */
  driver: string;
  transport: Transport;
  /** For tcp. */
  host?: string;
  port?: number;
  user?: string;
  /** Path part, e.g. `/system`, `/session`, `/default`. */
  path: string;
  /** Query parameters that are passed on to the daemon (client-side ones removed). */
  params: Record<string, string>;
  /** Explicit socket path from `?socket=`. */
  socket?: string;
  /** The name sent in connect-open. */
  remoteName: string;
}

/** Query parameters libvirt's remote driver consumes itself (never sent to the daemon). */
const CLIENT_PARAMS = new Set([
  'name',
  'command',
  'socket',
  'auth',
  'netcat',
  'keyfile',
  'no_verify',
  'no_tty',
  'pkipath',
  'known_hosts',
  'known_hosts_verify',
  'sshauth',
  'mode',
  'proxy',
  'tls_priority',
]);

export class UriError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UriError';
  }
}

const URI_RE = /^([a-zA-Z][a-zA-Z0-9.-]*)(?:\+([a-zA-Z0-9-]+))?:\/\/([^/?#]*)([^?#]*)(?:\?([^#]*))?(?:#.*)?$/;

export function parseUri(uri: string): ParsedUri {
  const m = URI_RE.exec(uri);
  if (!m) throw new UriError(`not a libvirt URI: ${JSON.stringify(uri)} (expected e.g. qemu:///system)`);
  const driver = m[1]!.toLowerCase();
  const transportStr = m[2]?.toLowerCase();
  const authority = m[3] ?? '';
  const path = m[4] ?? '';
  const query = m[5] ?? '';

  let user: string | undefined;
  let hostPort = authority;
  const at = authority.lastIndexOf('@');
  if (at >= 0) {
    user = decodeURIComponent(authority.slice(0, at));
    hostPort = authority.slice(at + 1);
  }
  let host: string | undefined;
  let port: number | undefined;
  if (hostPort) {
    const v6 = /^\[([^\]]+)\](?::(\d+))?$/.exec(hostPort);
    const v4 = /^([^:]+)(?::(\d*))?$/.exec(hostPort);
    const hm = v6 ?? v4;
    if (!hm) throw new UriError(`bad host in URI ${JSON.stringify(uri)}`);
    host = hm[1];
    if (hm[2]) {
      port = Number(hm[2]);
      if (!Number.isInteger(port) || port <= 0 || port > 65535) throw new UriError(`bad port in URI ${JSON.stringify(uri)}`);
    }
  }

  const allParams: Record<string, string> = {};
  if (query) {
    for (const part of query.split('&')) {
      if (!part) continue;
      const eq = part.indexOf('=');
      const k = decodeURIComponent(eq >= 0 ? part.slice(0, eq) : part);
      const v = decodeURIComponent(eq >= 0 ? part.slice(eq + 1).replace(/\+/g, ' ') : '');
      allParams[k] = v;
    }
  }

  let transport: Transport;
  if (transportStr === undefined) {
    if (host) {
      throw new UriError(
        `URI ${JSON.stringify(uri)} names a host without a transport: libvirt would use TLS, which this client ` +
          `does not support; use ${driver}+tcp://${hostPort}${path}`,
      );
    }
    transport = 'unix';
  } else if (transportStr === 'unix') {
    transport = 'unix';
  } else if (transportStr === 'tcp') {
    transport = 'tcp';
  } else {
    throw new UriError(`transport "${transportStr}" is not supported by this client (use unix or tcp)`);
  }
  if (transport === 'tcp' && !host) throw new UriError(`URI ${JSON.stringify(uri)}: tcp transport needs a host`);
  if (transport === 'unix' && host && host !== 'localhost') {
    throw new UriError(`URI ${JSON.stringify(uri)}: unix transport cannot reach host ${host}`);
  }

  const params: Record<string, string> = {};
  for (const [k, v] of Object.entries(allParams)) if (!CLIENT_PARAMS.has(k)) params[k] = v;
  const qs = Object.entries(params)
    .map(([k, v]) => `${encodeURIComponent(k)}=${encodeURIComponent(v)}`)
    .join('&');
  const remoteName = allParams.name ?? `${driver}://${path}${qs ? `?${qs}` : ''}`;

  const out: ParsedUri = { uri, driver, transport, path, params, remoteName };
  if (transport === 'tcp') {
    out.host = host!;
    out.port = port ?? LIBVIRTD_TCP_PORT;
  }
  if (user !== undefined) out.user = user;
  if (allParams.socket) out.socket = allParams.socket;
  return out;
}

/**
 * The unix socket to use for a parsed URI: `?socket=` wins; then the session socket for
 * `/session` URIs (`$XDG_RUNTIME_DIR/libvirt/libvirt-sock`; the session daemon has no read-only
 * socket); else the system daemon's socket, read-only when asked.
 */
export function socketPathFor(
  parsed: ParsedUri,
  opts: { readOnly?: boolean; env?: NodeJS.ProcessEnv } = {},
): string {
  if (parsed.socket) return parsed.socket;
  const env = opts.env ?? process.env;
  if (parsed.path === '/session') {
    const runtime = env.XDG_RUNTIME_DIR || join(env.HOME || homedir(), '.cache');
    return join(runtime, 'libvirt', 'libvirt-sock');
  }
  return opts.readOnly ? DEFAULT_SOCKET_RO : DEFAULT_SOCKET;
}
