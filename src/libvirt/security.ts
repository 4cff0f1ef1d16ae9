/**
 * Which connections virtform opens without being told `--insecure` (or a Host's `spec.insecure`).
 *
 * - `unix`: a local socket, protected by its file permissions: always allowed.
 * - `tls`, `ssh`: encrypted and authenticated both ways: allowed, unless the URI turns the check
 *   of the server off (`no_verify=1`, `known_hosts_verify=ignore`), which needs `insecure`.
 * - `tcp`: libvirt's RPC in the clear, and libvirtd's `auth_tcp = "none"` hands the whole API
 *   (define a domain with any disk, read any file through a pool…) to whoever reaches the port:
 *   allowed to a loopback address only, else it needs `insecure`.
 *
 * Called by the CLI's and the fleet's connect helpers, not by `LibvirtClient.connect` itself (the
 * low-level tests and callers that made their own decision use it directly).
 */
import { isIP } from 'node:net';
import { type ParsedUri, parseUri, redactUri } from './uri.js';

export class TransportSecurityError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'TransportSecurityError';
  }
}

/** Whether `host` is a loopback address (127.0.0.0/8, ::1, their IPv4-mapped form) or `localhost`. */
export function isLoopbackHost(host: string): boolean {
  const h = host.toLowerCase().replace(/^\[|\]$/g, '');
  if (h === 'localhost' || h === 'localhost.localdomain' || h.endsWith('.localhost')) return true;
  const v4 = h.startsWith('::ffff:') && isIP(h.slice(7)) === 4 ? h.slice(7) : h;
  if (isIP(v4) === 4) return v4.split('.')[0] === '127';
  // The URL parser writes an IPv6 address in its compressed form: 0:0:0:0:0:0:0:1 → [::1].
  if (isIP(h) === 6) return new URL(`http://[${h}]/`).hostname === '[::1]';
  return false;
}

/** The URI parameters that turn the server's verification off (libvirt's `no_verify`, libssh's `known_hosts_verify=ignore`). */
export function disablesVerification(p: ParsedUri): string | undefined {
  const nv = p.clientParams.no_verify;
  if (nv !== undefined && nv !== '' && nv !== '0') return `no_verify=${nv}`;
  if (p.clientParams.known_hosts_verify === 'ignore') return 'known_hosts_verify=ignore';
  return undefined;
}

/**
 * Throws {@link TransportSecurityError} (the CLI exits 2) when `uri` may not be used without
 * `insecure`; a bad URI throws its UriError. Returns the parsed URI.
 */
export function checkTransportSecurity(uri: string, opts: { insecure?: boolean } = {}): ParsedUri {
  const p = parseUri(uri);
  if (opts.insecure) return p;
  const shown = redactUri(uri);
  if (p.transport === 'tcp' && !isLoopbackHost(p.host!)) {
    throw new TransportSecurityError(
      `refusing plain TCP to ${p.host} (${shown}): qemu+tcp sends libvirt's RPC unencrypted, and libvirtd's ` +
        `tcp listener usually runs without authentication (auth_tcp = "none"), so anyone who can reach ` +
        `${p.host}:${p.port} controls that host through the libvirt API. Use ${p.driver}+tls://${p.host}${p.path} ` +
        `or ${p.driver}+ssh://USER@${p.host}${p.path}, or pass --insecure (Host manifests: spec.insecure: true) ` +
        `if the network itself is trusted`,
    );
  }
  const off = disablesVerification(p);
  if (off && (p.transport === 'tls' || p.transport === 'ssh')) {
    throw new TransportSecurityError(
      `refusing ${shown}: ${off} turns off the check of the server's ${p.transport === 'tls' ? 'certificate' : 'host key'}, ` +
        `so anyone on the path could impersonate ${p.host}; fix the ${p.transport === 'tls' ? 'CA (pkipath=)' : 'known_hosts file (known_hosts=)'} ` +
        `instead, or pass --insecure (Host manifests: spec.insecure: true) to accept that`,
    );
  }
  return p;
}
