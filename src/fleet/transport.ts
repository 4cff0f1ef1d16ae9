/**
 * Plain `qemu+tcp` to a non-loopback address needs consent (`--insecure` for every host of the
 * run, or `spec.insecure: true` on the Host): the transport helper's rule (src/libvirt/security.ts).
 */
import { checkTransportSecurity, TransportSecurityError } from '../libvirt/security.js';

/** Why `uri` is refused without consent (undefined: allowed); a bad URI's error is thrown. */
export function transportRefusal(uri: string, opts: { insecure: boolean }): string | undefined {
  try {
    checkTransportSecurity(uri, opts);
    return undefined;
  } catch (e) {
    if (e instanceof TransportSecurityError) return e.message;
    throw e;
  }
}
