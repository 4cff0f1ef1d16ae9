/**
 * The server side of the ssh and TLS transports in a test host (test/support/test-host.ts):
 *
 * - `startSshd(host)`: an sshd of the test's own inside the host's network and mount namespace
 *   (its own host key, authorized_keys, port 2222, pid file, all in the host's private
 *   /var/lib/virtform-test), so `virt-ssh-helper` (or nc) there reaches THAT host's libvirtd; a
 *   client key and a known_hosts line for it. `stop()` kills it by its pid (testHostDown also ends
 *   every process in the host's namespace, for a killed run).
 * - `makePki(dir, serverAddr)`: with openssl, a CA, the server's certificate for the host's
 *   address, a client certificate (CN vftest-100-client), an intruder's client certificate of the
 *   same CA with another CN, and a second CA: pkipath folders `good`, `intruder`, `foreign` (the
 *   good CN signed by the second CA), `otherca` (trusting the second CA).
 * - `enableTls(host, pki)`: the host's libvirtd.conf gets listen_tls = 1, its certificate files
 *   and `tls_allowed_dn_list` naming the good client only; its libvirtd is restarted by pid.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { TestHost } from './test-host.js';

const DATA_ROOT = '/var/lib/virtform-test-hosts';
const STATE_ROOT = '/run/virtform-test-hosts';
/** The host's private /var/lib/virtform-test, seen from the root namespace. */
const privateDir = (h: TestHost): string => join(DATA_ROOT, h.name, 'vftest');
/** The host's private /etc/libvirt, seen from the root namespace. */
const privateEtc = (h: TestHost): string => join(DATA_ROOT, h.name, 'etc');

export interface Sshd {
  port: number;
  /** The client's private key (no passphrase) and a known_hosts file that has the server's key. */
  clientKey: string;
  knownHosts: string;
  /** A known_hosts file with ANOTHER key for the same host and port (a "changed" host key). */
  wrongKnownHosts: string;
  /** qemu+ssh URI of the host's libvirtd through this sshd (extra query parameters appended). */
  uri(extra?: string): string;
  pid(): number;
  stop(): void;
}

function waitFor(cond: () => boolean, what: string, timeoutMs = 15_000): void {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    spawnSync('sleep', ['0.1']);
  }
}

const alive = (pid: number): boolean => {
  try {
    process.kill(pid, 0);
    return !/^\S+ \(.*\) Z/.test(readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return false; // safe-catch: no such process
  }
};

/** Starts an sshd inside `host` on `port`; `clientDir` (root namespace) gets the client's files. */
export function startSshd(host: TestHost, clientDir: string, port = 2222): Sshd {
  const dir = join(privateDir(host), 'sshd');
  const inside = '/var/lib/virtform-test/sshd';
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  mkdirSync(clientDir, { recursive: true });
  const keygen = (file: string, comment: string): void => {
    rmSync(file, { force: true });
    rmSync(`${file}.pub`, { force: true });
    execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', comment, '-f', file]);
  };
  keygen(join(dir, 'host_ed25519'), 'vftest-100-host');
  keygen(join(clientDir, 'client'), 'vftest-100-client');
  keygen(join(clientDir, 'impostor_host'), 'vftest-100-impostor');
  copyFileSync(join(clientDir, 'client.pub'), join(dir, 'authorized_keys'));
  writeFileSync(
    join(dir, 'sshd_config'),
    [
      `Port ${port}`,
      `ListenAddress ${host.addr}`,
      `HostKey ${inside}/host_ed25519`,
      `PidFile ${inside}/sshd.pid`,
      `AuthorizedKeysFile ${inside}/authorized_keys`,
      'PermitRootLogin prohibit-password',
      'PasswordAuthentication no',
      'KbdInteractiveAuthentication no',
      'UsePAM no',
      'StrictModes no',
      '',
    ].join('\n'),
  );
  const hostKey = readFileSync(join(dir, 'host_ed25519.pub'), 'utf8').split(' ').slice(0, 2).join(' ');
  const impostor = readFileSync(join(clientDir, 'impostor_host.pub'), 'utf8').split(' ').slice(0, 2).join(' ');
  const knownHosts = join(clientDir, 'known_hosts');
  const wrongKnownHosts = join(clientDir, 'known_hosts.wrong');
  writeFileSync(knownHosts, `[${host.addr}]:${port} ${hostKey}\n`);
  writeFileSync(wrongKnownHosts, `[${host.addr}]:${port} ${impostor}\n`);
  // sshd's privilege separation directory (the package's tmpfiles.d makes it on a booted system).
  mkdirSync('/run/sshd', { recursive: true, mode: 0o755 });
  host.execOk(['/usr/sbin/sshd', '-f', `${inside}/sshd_config`, '-E', `${inside}/sshd.log`]);
  const pidFile = join(dir, 'sshd.pid');
  waitFor(() => existsSync(pidFile) && readFileSync(pidFile, 'utf8').trim() !== '', 'sshd pid file');
  const pid = (): number => Number(readFileSync(pidFile, 'utf8').trim());
  return {
    port,
    clientKey: join(clientDir, 'client'),
    knownHosts,
    wrongKnownHosts,
    uri: (extra = '') =>
      `qemu+ssh://root@${host.addr}:${port}/system?keyfile=${join(clientDir, 'client')}&known_hosts=${knownHosts}${extra ? `&${extra}` : ''}`,
    pid,
    stop: () => {
      const p = existsSync(pidFile) ? pid() : 0;
      if (p > 0 && alive(p)) {
        process.kill(p, 'SIGTERM');
        waitFor(() => !alive(p), `sshd ${p} to exit`);
      }
    },
  };
}

export interface Pki {
  /**
   * pkipath folders: the good client; a client of the same CA with another CN (not in the server's
   * tls_allowed_dn_list); the good client's CN signed by a CA the server does not trust; the good
   * client trusting another CA than the server's.
   */
  good: string;
  intruder: string;
  foreign: string;
  otherca: string;
  /** The server's files (cacert.pem, servercert.pem, serverkey.pem). */
  server: string;
}

const CLIENT_EXT = 'basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=clientAuth\n';

/** Makes the CAs and certificates with openssl (RSA 2048, valid 2 days). */
export function makePki(dir: string, serverAddr: string): Pki {
  const ossl = (...args: string[]): void => {
    execFileSync('openssl', args, { cwd: dir, stdio: 'pipe' });
  };
  mkdirSync(dir, { recursive: true });
  const ca = (sub: string, cn: string): void => {
    mkdirSync(join(dir, sub), { recursive: true });
    ossl('req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', `${sub}/cakey.pem`, '-out', `${sub}/cacert.pem`, '-days', '2',
      '-subj', `/CN=${cn}`, '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign');
  };
  const cert = (sub: string, name: string, cn: string, caDir: string, ext: string): void => {
    mkdirSync(join(dir, sub), { recursive: true });
    writeFileSync(join(dir, sub, `${name}.ext`), ext);
    ossl('req', '-newkey', 'rsa:2048', '-nodes', '-keyout', `${sub}/${name}key.pem`, '-out', `${sub}/${name}.csr`, '-subj', `/CN=${cn}`);
    ossl('x509', '-req', '-in', `${sub}/${name}.csr`, '-CA', `${caDir}/cacert.pem`, '-CAkey', `${caDir}/cakey.pem`, '-CAcreateserial',
      '-days', '2', '-out', `${sub}/${name}cert.pem`, '-extfile', `${sub}/${name}.ext`);
  };
  ca('ca', 'vftest-100-ca');
  ca('ca2', 'vftest-100-otherca');
  cert('server', 'server', serverAddr, 'ca',
    `basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\nsubjectAltName=IP:${serverAddr}\n`);
  cert('good', 'client', 'vftest-100-client', 'ca', CLIENT_EXT);
  cert('intruder', 'client', 'vftest-100-intruder', 'ca', CLIENT_EXT);
  cert('foreign', 'client', 'vftest-100-client', 'ca2', CLIENT_EXT);
  for (const sub of ['server', 'good', 'intruder', 'foreign']) copyFileSync(join(dir, 'ca/cacert.pem'), join(dir, sub, 'cacert.pem'));
  // otherca: the good client's certificate, but trusting a CA that did not sign the server's.
  mkdirSync(join(dir, 'otherca'), { recursive: true });
  for (const f of ['clientcert.pem', 'clientkey.pem']) copyFileSync(join(dir, 'good', f), join(dir, 'otherca', f));
  copyFileSync(join(dir, 'ca2/cacert.pem'), join(dir, 'otherca/cacert.pem'));
  return { good: join(dir, 'good'), intruder: join(dir, 'intruder'), foreign: join(dir, 'foreign'), otherca: join(dir, 'otherca'), server: join(dir, 'server') };
}

/** Restarts the host's libvirtd by its pid file (virtlogd and the namespace stay). */
export function restartLibvirtd(host: TestHost): void {
  const pidFile = join(STATE_ROOT, host.name, 'libvirtd.pid');
  const pid = Number(readFileSync(pidFile, 'utf8').trim());
  if (pid > 0 && alive(pid)) {
    process.kill(pid, 'SIGTERM');
    waitFor(() => !alive(pid), `libvirtd ${pid} of ${host.name} to exit`, 30_000);
  }
  host.execOk(['libvirtd', '-d', '-l', '-p', pidFile]);
  waitFor(() => host.exec(['virsh', '-c', 'qemu:///system', 'version']).code === 0, `libvirtd of ${host.name} to answer`, 60_000);
}

/** listen_tls = 1 with the server's certificate, and only the good client's DN allowed; restarts libvirtd. */
export function enableTls(host: TestHost, pki: Pki): void {
  const etc = privateEtc(host);
  mkdirSync(join(etc, 'pki'), { recursive: true });
  for (const f of ['cacert.pem', 'servercert.pem', 'serverkey.pem']) copyFileSync(join(pki.server, f), join(etc, 'pki', f));
  const conf = join(etc, 'libvirtd.conf');
  const text = readFileSync(conf, 'utf8').replace(/^listen_tls = 0$/m, 'listen_tls = 1').replace(/\n# vftest-100 tls[\s\S]*$/, '');
  writeFileSync(
    conf,
    `${text}\n# vftest-100 tls\nca_file = "/etc/libvirt/pki/cacert.pem"\ncert_file = "/etc/libvirt/pki/servercert.pem"\n` +
      `key_file = "/etc/libvirt/pki/serverkey.pem"\ntls_allowed_dn_list = ["CN=vftest-100-client"]\n`,
  );
  restartLibvirtd(host);
}
