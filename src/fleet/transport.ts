/**
 * Plain `qemu+tcp` to a non-loopback address needs consent (`--insecure`, or `spec.insecure: true`
 * on the Host): libvirt's TCP transport is neither encrypted nor authenticated. A stand-in for the
 * transport branch's `checkTransportSecurity` (src/libvirt), same rule, replaced when it lands.
 */
import { isIP } from 'node:net';
import { parseUri } from '../libvirt/uri.js';

const LOOPBACK = /^(localhost|127\.\d+\.\d+\.\d+|::1|\[::1\])$/i;

/** Why `uri` is refused without consent (undefined: allowed). */
export function transportRefusal(uri: string, opts: { insecure: boolean }): string | undefined {
  if (opts.insecure) return undefined;
  const u = parseUri(uri);
  if (u.transport !== 'tcp') return undefined;
  const host = u.host ?? 'localhost';
  if (LOOPBACK.test(host) || (isIP(host) === 4 && host.startsWith('127.'))) return undefined;
  return `${uri} is plain qemu+tcp to ${host}, which is neither encrypted nor authenticated: ` +
    `use qemu+ssh:// or qemu+tls://, or allow it with spec.insecure: true on the Host (or --insecure for every host of the run)`;
}
