/**
 * `qemu+tls://host[:16514]/system`: libvirt's RPC over TLS with x509 certificates, as libvirt's
 * client does it (virNetTLSContextNewClientPath, virNetClientSetTLSSession):
 *
 * - credentials: `pkipath=DIR` → DIR/{cacert,cacrl,clientcert,clientkey}.pem; else, for a non-root
 *   user, each of ~/.pki/libvirt/{cacert,cacrl}.pem and the pair clientcert/clientkey when present;
 *   else the system paths /etc/pki/CA/cacert.pem, /etc/pki/CA/cacrl.pem,
 *   /etc/pki/libvirt/clientcert.pem, /etc/pki/libvirt/private/clientkey.pem. A missing CRL is fine;
 * - the server's certificate must chain to the CA and name the host of the URI (`no_verify=1`,
 *   allowed with --insecure only, skips both);
 * - after the handshake the server checks OUR certificate (its CA, `tls_allowed_dn_list`) and sends
 *   one byte, 1, when it accepts it, or closes the connection: that byte is read before any RPC.
 */
import { readFileSync, existsSync } from 'node:fs';
import { isIP } from 'node:net';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { connect as tlsConnect, type TLSSocket } from 'node:tls';
import { ConnectionError } from './errors.js';
import type { ParsedUri } from './uri.js';

export interface TlsCredentialPaths {
  cacert: string;
  /** Used only when the file exists. */
  cacrl: string;
  cert: string;
  key: string;
}

/** Where libvirt's client looks for its TLS credentials (virNetTLSContextLocateCredentials). */
export function tlsCredentialPaths(
  pkipath: string | undefined,
  opts: { uid?: number; home?: string; exists?: (path: string) => boolean } = {},
): TlsCredentialPaths {
  if (pkipath) {
    return {
      cacert: join(pkipath, 'cacert.pem'),
      cacrl: join(pkipath, 'cacrl.pem'),
      cert: join(pkipath, 'clientcert.pem'),
      key: join(pkipath, 'clientkey.pem'),
    };
  }
  const out: TlsCredentialPaths = {
    cacert: '/etc/pki/CA/cacert.pem',
    cacrl: '/etc/pki/CA/cacrl.pem',
    cert: '/etc/pki/libvirt/clientcert.pem',
    key: '/etc/pki/libvirt/private/clientkey.pem',
  };
  const uid = opts.uid ?? process.getuid?.() ?? 0;
  if (uid !== 0) {
    const exists = opts.exists ?? existsSync;
    const user = join(opts.home ?? homedir(), '.pki', 'libvirt');
    if (exists(join(user, 'cacert.pem'))) out.cacert = join(user, 'cacert.pem');
    if (exists(join(user, 'cacrl.pem'))) out.cacrl = join(user, 'cacrl.pem');
    if (exists(join(user, 'clientcert.pem')) && exists(join(user, 'clientkey.pem'))) {
      out.cert = join(user, 'clientcert.pem');
      out.key = join(user, 'clientkey.pem');
    }
  }
  return out;
}

function readCredential(path: string, what: string): Buffer {
  try {
    return readFileSync(path);
  } catch (e) {
    throw new ConnectionError(
      'connect',
      `cannot read the TLS ${what} ${path}: ${(e as Error).message} (give pkipath=DIR in the URI, or install it there)`,
    );
  }
}

/** Node's verification error codes that mean "not signed by our CA". */
const UNTRUSTED = new Set([
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'UNABLE_TO_GET_ISSUER_CERT',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'CERT_SIGNATURE_FAILURE',
]);

/**
 * Opens the TLS connection and waits for the server's check byte. Resolves with the socket, ready
 * for RPC; rejects with a {@link ConnectionError} saying which side's certificate was the problem.
 */
export async function connectTls(p: ParsedUri, opts: { connectTimeoutMs?: number } = {}): Promise<{ socket: TLSSocket; label: string }> {
  const host = p.host ?? 'localhost';
  const port = p.port!;
  const label = `${host}:${port} (TLS)`;
  const paths = tlsCredentialPaths(p.clientParams.pkipath);
  const nv = p.clientParams.no_verify;
  const verify = nv === undefined || nv === '' || nv === '0';
  const ca = readCredential(paths.cacert, 'CA certificate');
  const cert = readCredential(paths.cert, 'client certificate');
  const key = readCredential(paths.key, 'client key');
  const crl = existsSync(paths.cacrl) ? readFileSync(paths.cacrl) : undefined;
  const timeoutMs = opts.connectTimeoutMs ?? 10_000;

  const socket = tlsConnect({
    host,
    port,
    ca,
    cert,
    key,
    ...(crl ? { crl } : {}),
    ...(isIP(host) ? {} : { servername: host }),
    rejectUnauthorized: verify,
  });
  const fail = (msg: string, cause?: unknown): ConnectionError => {
    socket.destroy();
    return new ConnectionError('connect', msg, cause === undefined ? undefined : { cause });
  };

  await new Promise<void>((resolve, reject) => {
    let handshaken = false;
    const timer =
      timeoutMs > 0
        ? setTimeout(() => reject(fail(`connecting to ${label} timed out after ${timeoutMs} ms`)), timeoutMs)
        : undefined;
    const done = (err?: ConnectionError): void => {
      clearTimeout(timer);
      socket.removeListener('error', onError);
      socket.removeListener('end', onEnd);
      socket.removeListener('close', onEnd);
      socket.removeListener('readable', onReadable);
      if (err) reject(err);
      else resolve();
    };
    const refused = (detail: string): ConnectionError =>
      fail(
        `the server ${host} refused our client certificate ${paths.cert} (${detail}): check that it is signed by a CA ` +
          `the server trusts (its ca_file) and that its DN matches the server's tls_allowed_dn_list`,
      );
    const onError = (err: NodeJS.ErrnoException): void => {
      const code = err.code ?? '';
      if (handshaken) return done(refused(err.message));
      if (UNTRUSTED.has(code)) {
        return done(fail(`the certificate of ${host} is not signed by the CA in ${paths.cacert} (${code}): use pkipath= with the CA that signed the server's certificate`, err));
      }
      if (code === 'ERR_TLS_CERT_ALTNAME_INVALID') {
        return done(fail(`the certificate of ${host} does not name ${host} (${err.message}): connect by a name or address in its subjectAltName`, err));
      }
      if (code === 'CERT_HAS_EXPIRED' || code === 'CERT_NOT_YET_VALID' || code === 'CERT_REVOKED') {
        return done(fail(`the certificate of ${host} is not valid: ${code} (${err.message})`, err));
      }
      if (/alert|certificate/i.test(err.message) && /SSL|TLS/i.test(code)) return done(refused(err.message));
      const hint = code === 'ECONNREFUSED' ? ' (is libvirtd listening for TLS there: listen_tls = 1, or --listen with a tls socket?)' : '';
      done(fail(`cannot connect to libvirt at ${label}: ${err.message}${hint}`, err));
    };
    const onEnd = (): void => {
      done(handshaken ? refused('it closed the connection instead of accepting it') : fail(`${label} closed the connection during the TLS handshake`));
    };
    const onReadable = (): void => {
      const b = socket.read(1) as Buffer | null;
      if (b === null) return;
      if (b[0] !== 1) return done(fail(`${label} sent ${b[0]} instead of the TLS check byte 1: is this libvirtd?`));
      done();
    };
    socket.on('error', onError);
    socket.on('end', onEnd);
    socket.on('close', onEnd);
    socket.once('secureConnect', () => {
      handshaken = true;
      socket.on('readable', onReadable);
    });
  });
  socket.setNoDelay(true);
  return { socket, label };
}
