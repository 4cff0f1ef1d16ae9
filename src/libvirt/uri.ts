/**
 * libvirt connection URIs: `driver[+transport]://[user@][host][:port]/path[?query]`.
 *
 * Supported transports: `unix` (the default without a host), `tcp`, `tls` (the default with a host,
 * as libvirt) and `ssh` (the system `ssh`, see ssh.ts). The URI sent to the daemon
 * in connect-open is the URI without the transport suffix, host, port, user and the client-side
 * query parameters, as libvirt's remote driver does (`qemu+tcp://h:16509/system` → `qemu:///system`).
 * A `name=` query parameter overrides it.
 */
import { homedir } from 'node:os';
import { join } from 'node:path';
import { LIBVIRTD_TCP_PORT, LIBVIRTD_TLS_PORT } from './protocol.js';

export const DEFAULT_SOCKET = '/var/run/libvirt/libvirt-sock';
export const DEFAULT_SOCKET_RO = '/var/run/libvirt/libvirt-sock-ro';

export type Transport = 'unix' | 'tcp' | 'tls' | 'ssh';

export interface ParsedUri {
  /** The URI as given. */
  uri: string;
  /** Driver part of the scheme, e.g. `qemu`, `test`. */
  driver: string;
  transport: Transport;
  /** For tcp, tls and ssh (`localhost` when the URI names none). */
  host?: string;
  /** tcp and tls: the given port or the default; ssh: only when given (else ssh's own default). */
  port?: number;
  user?: string;
  /** Path part, e.g. `/system`, `/session`, `/default`. */
  path: string;
  /** Query parameters that are passed on to the daemon (client-side ones removed). */
  params: Record<string, string>;
  /** Explicit socket path from `?socket=`. */
  socket?: string;
  /** The client-side query parameters (keyfile, known_hosts, no_verify, pkipath, netcat, mode, proxy…). */
  clientParams: Record<string, string>;
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

  if (user !== undefined && user.includes(':')) {
    throw new UriError(
      `URI ${JSON.stringify(redactUri(uri))} carries a password: virtform never takes credentials in a URI ` +
        `(they would show in argv, logs and the state DB); use an ssh key (keyfile=, or ssh-agent) or TLS client certificates`,
    );
  }

  let transport: Transport;
  if (transportStr === undefined) {
    // As libvirt: a URI naming a host without a transport means TLS.
    transport = host ? 'tls' : 'unix';
  } else if (transportStr === 'unix' || transportStr === 'tcp' || transportStr === 'tls' || transportStr === 'ssh') {
    transport = transportStr;
  } else if (transportStr === 'libssh' || transportStr === 'libssh2') {
    throw new UriError(`transport "${transportStr}" is not supported by this client: use ${driver}+ssh://… (the system ssh)`);
  } else {
    throw new UriError(`transport "${transportStr}" is not supported by this client (use unix, tcp, tls or ssh)`);
  }
  if (transport === 'tcp' && !host) throw new UriError(`URI ${JSON.stringify(redactUri(uri))}: tcp transport needs a host`);
  if (transport === 'unix' && host && host !== 'localhost') {
    throw new UriError(`URI ${JSON.stringify(redactUri(uri))}: unix transport cannot reach host ${host}`);
  }
  if (allParams.command !== undefined) {
    throw new UriError(`URI parameter command= is not supported by this client (it runs the system ssh with fixed, checked options)`);
  }

  const params: Record<string, string> = {};
  for (const [k, v] of Object.entries(allParams)) if (!CLIENT_PARAMS.has(k)) params[k] = v;
  const qs = Object.entries(params)
    .map(([k, v]) => `${encodeURIComponent(k)}=${encodeURIComponent(v)}`)
    .join('&');
  const remoteName = allParams.name ?? `${driver}://${path}${qs ? `?${qs}` : ''}`;

  const clientParams: Record<string, string> = {};
  for (const [k, v] of Object.entries(allParams)) if (CLIENT_PARAMS.has(k)) clientParams[k] = v;
  const out: ParsedUri = { uri, driver, transport, path, params, remoteName, clientParams };
  if (transport === 'tcp' || transport === 'tls') {
    out.host = host ?? 'localhost';
    out.port = port ?? (transport === 'tcp' ? LIBVIRTD_TCP_PORT : LIBVIRTD_TLS_PORT);
  } else if (transport === 'ssh') {
    out.host = host ?? 'localhost';
    if (port !== undefined) out.port = port;
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

/** Query parameter names whose values are treated as secrets when a URI is printed. */
const SECRET_PARAM = /pass|secret|token|key(?!file)/i;

/**
 * The URI as virtform prints and stores it: a password in the user part and the values of
 * secret-looking query parameters replaced by `***`. (virtform refuses URIs with a password; this
 * keeps one out of the error that says so, and out of logs.)
 */
export function redactUri(uri: string): string {
  let out = uri.replace(/^([^:/?#]+:\/\/)([^@/?#]*)@/, (_m, scheme: string, userinfo: string) => {
    const colon = userinfo.indexOf(':');
    return `${scheme}${colon >= 0 ? `${userinfo.slice(0, colon)}:***` : userinfo}@`;
  });
  out = out.replace(/([?&])([^=&#]+)=([^&#]*)/g, (m, sep: string, k: string) => (SECRET_PARAM.test(safeDecode(k)) ? `${sep}${k}=***` : m));
  return out;
}

function safeDecode(s: string): string {
  try {
    return decodeURIComponent(s);
  } catch {
    return s; // safe-catch: a malformed %-escape is matched as written
  }
}
