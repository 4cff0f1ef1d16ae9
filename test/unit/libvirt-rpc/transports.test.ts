/**
 * qemu+ssh and qemu+tls without a real remote host: URI parsing, the ssh argument vector and the
 * remote command (compared with libvirt 9.0's string, and run through two shells), ssh's stderr
 * turned into clear errors, the transport security rule, libvirt's PKI paths, and the TLS
 * connection against a local TLS server playing libvirtd (check byte, refused client certificate,
 * wrong CA, wrong name). The real thing, through an sshd and a libvirtd with TLS in a namespace
 * host: test/fleet/transport.test.ts.
 */
import { spawnSync } from 'node:child_process';
import { chmodSync, copyFileSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { type AddressInfo } from 'node:net';
import { join } from 'node:path';
import { createServer, type Server, type TLSSocket } from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Transport } from '../../../src/libvirt/transport.js';
import { checkTransportSecurity, isLoopbackHost, TransportSecurityError } from '../../../src/libvirt/security.js';
import { connectSsh, diagnoseSsh, sshArgv, sshRemoteCommand } from '../../../src/libvirt/ssh.js';
import { connectTls, tlsCredentialPaths } from '../../../src/libvirt/tls.js';
import { parseUri, redactUri, UriError } from '../../../src/libvirt/uri.js';
import { makeTempDir } from '../../support/temp-dirs.js';

const FIX = join(import.meta.dirname, '../../fixtures/tls');

describe('ssh and tls URIs', () => {
  it('qemu+ssh: host, optional port and user, client parameters kept apart from the remote name', () => {
    const p = parseUri('qemu+ssh://admin@h1.example:2222/system?keyfile=/k/id&known_hosts=/k/kh&foo=1');
    expect(p).toMatchObject({ transport: 'ssh', host: 'h1.example', port: 2222, user: 'admin', remoteName: 'qemu:///system?foo=1' });
    expect(p.clientParams).toEqual({ keyfile: '/k/id', known_hosts: '/k/kh' });
    expect(parseUri('qemu+ssh://h/system').port).toBeUndefined(); // ssh's own default (or its config)
  });

  it('qemu+tls: port 16514 by default; a host without a transport means TLS, as in libvirt', () => {
    expect(parseUri('qemu+tls://h/system')).toMatchObject({ transport: 'tls', host: 'h', port: 16514, remoteName: 'qemu:///system' });
    expect(parseUri('qemu://h:1234/system')).toMatchObject({ transport: 'tls', port: 1234 });
    expect(parseUri('qemu+tls://h/system?pkipath=/p').clientParams).toEqual({ pkipath: '/p' });
  });

  it('a password in the URI is refused, and the error does not repeat it', () => {
    let err: unknown;
    try {
      parseUri('qemu+ssh://root:hunter2@h/system');
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(UriError);
    expect((err as Error).message).toMatch(/carries a password/);
    expect((err as Error).message).not.toContain('hunter2');
  });

  it('redactUri hides a password and secret-looking parameters, keeps the rest', () => {
    expect(redactUri('qemu+ssh://root:pw@h/system?keyfile=/k&passphrase=x&foo=1')).toBe('qemu+ssh://root:***@h/system?keyfile=/k&passphrase=***&foo=1');
    expect(redactUri('qemu+tls://h/system?pkipath=/p')).toBe('qemu+tls://h/system?pkipath=/p');
    expect(redactUri('qemu+tls://h/system?pass%zz=1')).toBe('qemu+tls://h/system?pass%zz=***'); // malformed escape: no throw
  });
});

describe('ssh: argv and remote command', () => {
  it('runs ssh with batch mode, strict host key checking, the given known_hosts, key, port and user', () => {
    const argv = sshArgv(parseUri('qemu+ssh://admin@h1:2222/system?keyfile=/k/id&known_hosts=/k/kh'), { connectTimeoutMs: 5000 });
    expect(argv.slice(0, -1)).toEqual([
      '-p', '2222', '-l', 'admin', '-i', '/k/id', '-T', '-e', 'none', '-o', 'BatchMode=yes',
      '-o', 'StrictHostKeyChecking=yes', '-o', 'UserKnownHostsFile=/k/kh', '-o', 'ConnectTimeout=5', '--', 'h1',
    ]);
    expect(sshArgv(parseUri('qemu+ssh://h/system?no_verify=1'))).toContain('StrictHostKeyChecking=no');
    expect(sshArgv(parseUri('qemu+ssh://h/system?known_hosts_verify=auto'))).toContain('StrictHostKeyChecking=accept-new');
    expect(sshArgv(parseUri('qemu+ssh://h/system')).join(' ')).not.toMatch(/UserKnownHostsFile|-p |-l |-i /);
  });

  it("sends libvirt 9.0's remote command byte for byte (virt-ssh-helper when present, else nc -U)", () => {
    // virNetClientSSHHelperCommand for qemu:///system, proxy auto, no netcat= or socket=.
    expect(sshRemoteCommand(parseUri('qemu+ssh://h/system'))).toBe(
      `sh -c 'which virt-ssh-helper 1>/dev/null 2>&1; if test $? = 0; then     virt-ssh-helper 'qemu:///system'; else    ` +
        `if 'nc' -q 2>&1 | grep "requires an argument" >/dev/null 2>&1; then ARG=-q0;else ARG=;fi;'nc' $ARG -U /var/run/libvirt/libvirt-sock; fi'`,
    );
    expect(sshRemoteCommand(parseUri('qemu+ssh://h/system'), true)).toContain(`virt-ssh-helper -r 'qemu:///system'`);
    expect(sshRemoteCommand(parseUri('qemu+ssh://h/system'), true)).toContain('-U /var/run/libvirt/libvirt-sock-ro');
    // netcat= or socket= → nc only; /session → virt-ssh-helper only.
    expect(sshRemoteCommand(parseUri('qemu+ssh://h/system?netcat=/usr/bin/ncat'))).toMatch(/^sh -c 'if '\/usr\/bin\/ncat' -q .*'\/usr\/bin\/ncat' \$ARG -U \/var\/run\/libvirt\/libvirt-sock'$/);
    expect(sshRemoteCommand(parseUri('qemu+ssh://h/system?socket=/run/x.sock'))).toMatch(/-U \/run\/x\.sock'$/);
    expect(sshRemoteCommand(parseUri('qemu+ssh://h/session'))).toBe(`sh -c 'virt-ssh-helper 'qemu:///session''`);
    expect(() => sshRemoteCommand(parseUri('qemu+ssh://h/system?mode=direct'))).toThrow(/direct/);
    expect(() => sshRemoteCommand(parseUri('qemu+ssh://h/system?proxy=native&netcat=nc'))).toThrow(/netcat= cannot/);
  });

  it('the remote command means what it says once the login shell and sh -c have parsed it', () => {
    const dir = makeTempDir('vftest-sshcmd-');
    try {
      const stub = (name: string): void => {
        writeFileSync(join(dir, name), `#!/bin/sh\necho "${name}"; for a in "$@"; do echo "[$a]"; done\n`);
        chmodSync(join(dir, name), 0o755);
      };
      const run = (cmd: string): string =>
        spawnSync('/bin/sh', ['-c', cmd], { encoding: 'utf8', env: { PATH: `${dir}:/usr/bin:/bin` } }).stdout;
      stub('nc');
      // No virt-ssh-helper: nc -U the socket (a path with a space and a quote stays one argument).
      expect(run(sshRemoteCommand(parseUri("qemu+ssh://h/system?socket=/run/it's here.sock")))).toBe("nc\n[-U]\n[/run/it's here.sock]\n");
      stub('virt-ssh-helper');
      // With it: the URI as one argument, metacharacters and all.
      expect(run(sshRemoteCommand(parseUri('qemu+ssh://h/system?x=a%20b')))).toBe('virt-ssh-helper\n[qemu:///system?x=a%20b]\n');
      expect(run(sshRemoteCommand(parseUri('qemu+ssh://h/system'), true))).toBe('virt-ssh-helper\n[-r]\n[qemu:///system]\n');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe("ssh: its stderr as a clear error", () => {
  const p = parseUri('qemu+ssh://root@10.0.0.9:2222/system?known_hosts=/etc/vf/kh');
  it.each([
    ['No ED25519 host key is known for [10.0.0.9]:2222 and you have requested strict checking.\r\nHost key verification failed.\r\n',
      /^host key verification failed for 10\.0\.0\.9: check known_hosts \/etc\/vf\/kh \(no key recorded for \[10\.0\.0\.9\]:2222/],
    ['@@@@@\r\n@    WARNING: REMOTE HOST IDENTIFICATION HAS CHANGED!     @\r\n…\r\nHost key verification failed.\r\n',
      /^host key verification failed for 10\.0\.0\.9: check known_hosts \/etc\/vf\/kh \(the key the server offered differs/],
    ['root@10.0.0.9: Permission denied (publickey).\r\n', /^ssh authentication to root@10\.0\.0\.9:2222 failed \(server accepts: publickey\): virtform never prompts/],
    ['ssh: connect to host 10.0.0.9 port 2222: Connection refused\r\n', /^ssh connection to 10\.0\.0\.9 port 2222 refused/],
    ['ssh: connect to host 10.0.0.9 port 2222: No route to host\r\n', /^ssh cannot reach 10\.0\.0\.9: connect to host 10\.0\.0\.9 port 2222: No route to host/],
    ['sh: 1: nc: not found\n', /^the remote host 10\.0\.0\.9 has neither virt-ssh-helper nor nc: install libvirt-clients/],
    ['nc: unix connect failed: No such file or directory\n', /^the remote host 10\.0\.0\.9 runs no reachable libvirtd/],
    ['nc: /var/run/libvirt/libvirt-sock: No such file or directory\n', /^the remote host 10\.0\.0\.9 runs no reachable libvirtd \(nc: \/var\/run\/libvirt\/libvirt-sock: No such file/],
    ["virt-ssh-helper: cannot connect to 'qemu:///system': Failed to connect socket to '/var/run/libvirt/libvirt-sock': Connection refused\n", /^the remote host 10\.0\.0\.9 runs no reachable libvirtd/],
  ])('%j', (stderr, want) => {
    expect(diagnoseSsh(stderr, p, 255)).toMatch(want);
  });

  it('a clean exit with nothing on stderr is no error', () => {
    expect(diagnoseSsh('', p, 0)).toBeUndefined();
  });

  it('a failing ssh fails the pending call with the diagnosis, and the child is reaped', async () => {
    const dir = makeTempDir('vftest-fakessh-');
    try {
      const fake = join(dir, 'ssh');
      writeFileSync(fake, '#!/bin/sh\necho "Host key verification failed." >&2\nexit 255\n');
      chmodSync(fake, 0o755);
      const { socket, label } = connectSsh(p, { sshBinary: fake });
      const t = new Transport(socket, { label });
      await expect(t.call(66)).rejects.toThrow(/host key verification failed for 10\.0\.0\.9: check known_hosts \/etc\/vf\/kh/);
      expect(socket.child.exitCode).toBe(255);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('close() ends the child: stdin closed, killed if it lingers, never left a zombie', async () => {
    const dir = makeTempDir('vftest-fakessh-');
    try {
      const fake = join(dir, 'ssh');
      writeFileSync(fake, '#!/bin/sh\nexec sleep 60\n'); // ignores stdin's EOF
      chmodSync(fake, 0o755);
      const { socket, label } = connectSsh(p, { sshBinary: fake });
      const t = new Transport(socket, { label });
      const exited = new Promise<void>((r) => socket.child.once('exit', () => r()));
      const pid = socket.child.pid!;
      t.close();
      await exited; // SIGTERM after the 1-2 s grace
      expect(socket.child.signalCode).toBe('SIGTERM');
      expect(() => readFileSync(`/proc/${pid}/stat`)).toThrow(); // reaped: no /proc entry left
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, 10_000);

  it('ssh gets a short environment: no secrets of this process', async () => {
    const dir = makeTempDir('vftest-fakessh-');
    try {
      const fake = join(dir, 'ssh');
      writeFileSync(fake, `#!/bin/sh\nenv > ${dir}/env\nexit 0\n`);
      chmodSync(fake, 0o755);
      const { socket } = connectSsh(p, { sshBinary: fake, env: { PATH: '/usr/bin:/bin', HOME: '/root', PGPASSWORD: 's3cret', SSH_AUTH_SOCK: '/a.sock' } });
      await new Promise<void>((r) => socket.on('close', () => r()));
      const env = readFileSync(join(dir, 'env'), 'utf8');
      expect(env).toContain('SSH_AUTH_SOCK=/a.sock');
      expect(env).not.toContain('s3cret');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('checkTransportSecurity', () => {
  it('plain tcp to another machine needs insecure, and says why', () => {
    expect(() => checkTransportSecurity('qemu+tcp://10.251.3.2/system')).toThrow(TransportSecurityError);
    expect(() => checkTransportSecurity('qemu+tcp://10.251.3.2/system')).toThrow(/unencrypted.*qemu\+tls:\/\/10\.251\.3\.2\/system.*qemu\+ssh:\/\/USER@10\.251\.3\.2\/system.*--insecure.*spec\.insecure/s);
    expect(checkTransportSecurity('qemu+tcp://10.251.3.2/system', { insecure: true }).transport).toBe('tcp');
  });

  it('loopback tcp, unix, tls and ssh need nothing', () => {
    for (const uri of ['qemu+tcp://127.0.0.1:16509/system', 'qemu+tcp://localhost/system', 'qemu+tcp://[::1]/system', 'qemu:///system',
      'test+unix:///default', 'qemu+tls://h/system', 'qemu+ssh://u@h/system']) {
      expect(() => checkTransportSecurity(uri), uri).not.toThrow();
    }
  });

  it('no_verify (and known_hosts_verify=ignore) on tls or ssh need insecure', () => {
    expect(() => checkTransportSecurity('qemu+tls://h/system?no_verify=1')).toThrow(/no_verify=1 turns off the check of the server's certificate/);
    expect(() => checkTransportSecurity('qemu+ssh://h/system?no_verify=1')).toThrow(/host key/);
    expect(() => checkTransportSecurity('qemu+ssh://h/system?known_hosts_verify=ignore')).toThrow(TransportSecurityError);
    expect(() => checkTransportSecurity('qemu+tls://h/system?no_verify=0')).not.toThrow();
    expect(() => checkTransportSecurity('qemu+tls://h/system?no_verify=1', { insecure: true })).not.toThrow();
  });

  it('isLoopbackHost', () => {
    expect(['127.0.0.1', '127.9.9.9', 'localhost', '::1', '0:0:0:0:0:0:0:1', '::ffff:127.0.0.1'].every(isLoopbackHost)).toBe(true);
    expect(['10.0.0.1', '128.0.0.1', 'example.com', '::2', 'localhost.evil.com'].some(isLoopbackHost)).toBe(false);
  });
});

describe('tls: credentials and the check byte', () => {
  it("libvirt's PKI paths: pkipath, the user's ~/.pki/libvirt when not root (each file falling back), else /etc/pki", () => {
    expect(tlsCredentialPaths('/p')).toEqual({ cacert: '/p/cacert.pem', cacrl: '/p/cacrl.pem', cert: '/p/clientcert.pem', key: '/p/clientkey.pem' });
    const system = { cacert: '/etc/pki/CA/cacert.pem', cacrl: '/etc/pki/CA/cacrl.pem', cert: '/etc/pki/libvirt/clientcert.pem', key: '/etc/pki/libvirt/private/clientkey.pem' };
    expect(tlsCredentialPaths(undefined, { uid: 0, home: '/root', exists: () => true })).toEqual(system);
    const u = '/home/u/.pki/libvirt';
    expect(tlsCredentialPaths(undefined, { uid: 1000, home: '/home/u', exists: () => true })).toEqual({
      cacert: `${u}/cacert.pem`, cacrl: `${u}/cacrl.pem`, cert: `${u}/clientcert.pem`, key: `${u}/clientkey.pem`,
    });
    // The client pair only as a pair; the CA on its own.
    expect(tlsCredentialPaths(undefined, { uid: 1000, home: '/home/u', exists: (f) => f.endsWith('cacert.pem') || f.endsWith('clientcert.pem') })).toEqual({
      ...system, cacert: `${u}/cacert.pem`,
    });
  });

  const servers: Server[] = [];
  let port = 0;
  let behaviour: (s: TLSSocket) => void = (s) => s.write(Buffer.from([1]));
  let pki: string;
  beforeAll(async () => {
    pki = makeTempDir('vftest-pki-');
    const dir = (name: string, ca: string): string => {
      mkdirSync(join(pki, name));
      copyFileSync(join(FIX, ca), join(pki, name, 'cacert.pem'));
      copyFileSync(join(FIX, 'clientcert.pem'), join(pki, name, 'clientcert.pem'));
      copyFileSync(join(FIX, 'clientkey.pem'), join(pki, name, 'clientkey.pem'));
      return name;
    };
    dir('good', 'cacert.pem');
    dir('otherca', 'othercacert.pem');
    // The same server on 127.0.0.1 (named in its certificate) and 127.0.0.2 (not named).
    for (const addr of ['127.0.0.1', '127.0.0.2']) {
      const server = createServer({
        key: readFileSync(join(FIX, 'serverkey.pem')), cert: readFileSync(join(FIX, 'servercert.pem')),
        ca: readFileSync(join(FIX, 'cacert.pem')), requestCert: true, rejectUnauthorized: false,
      }, (s) => {
        s.on('error', () => undefined);
        behaviour(s);
      });
      await new Promise<void>((r) => server.listen(port, addr, r));
      port = (server.address() as AddressInfo).port;
      servers.push(server);
    }
  });
  afterAll(async () => {
    for (const server of servers) await new Promise<void>((r) => server.close(() => r()));
    rmSync(pki, { recursive: true, force: true });
  });
  const uri = (host: string, dir: string, extra = ''): ReturnType<typeof parseUri> =>
    parseUri(`qemu+tls://${host}:${port}/system?pkipath=${join(pki, dir)}${extra}`);

  it('connects when the server sends the check byte 1, and nothing of it reaches the RPC stream', async () => {
    let got = Buffer.alloc(0);
    behaviour = (s) => {
      expect(s.authorized).toBe(true); // our client certificate, from pkipath
      s.write(Buffer.from([1]));
      s.on('data', (d: Buffer) => (got = Buffer.concat([got, d])));
    };
    const { socket } = await connectTls(uri('127.0.0.1', 'good'));
    const seen: Buffer[] = [];
    socket.on('data', (d: Buffer) => seen.push(d));
    socket.write('ping');
    await new Promise((r) => setTimeout(r, 100));
    expect(got.toString()).toBe('ping');
    expect(seen).toEqual([]);
    socket.destroy();
  });

  it('the server closing instead of sending the byte: it refused our client certificate', async () => {
    behaviour = (s) => s.end();
    await expect(connectTls(uri('127.0.0.1', 'good'))).rejects.toThrow(
      new RegExp(`the server 127\\.0\\.0\\.1 refused our client certificate ${join(pki, 'good')}/clientcert\\.pem .*tls_allowed_dn_list`),
    );
  });

  it('a server certificate of another CA: names our CA file', async () => {
    behaviour = (s) => s.write(Buffer.from([1]));
    await expect(connectTls(uri('127.0.0.1', 'otherca'))).rejects.toThrow(
      new RegExp(`the certificate of 127\\.0\\.0\\.1 is not signed by the CA in ${join(pki, 'otherca')}/cacert\\.pem`),
    );
    // no_verify=1 (the CLI allows it with --insecure only) skips the check.
    const { socket } = await connectTls(uri('127.0.0.1', 'otherca', '&no_verify=1'));
    socket.destroy();
  });

  it('a server certificate that does not name the host', async () => {
    await expect(connectTls(uri('127.0.0.2', 'good'))).rejects.toThrow(/the certificate of 127\.0\.0\.2 does not name 127\.0\.0\.2/);
  });

  it('another byte than 1 is not libvirtd', async () => {
    behaviour = (s) => s.write('SSH-2.0-OpenSSH\r\n');
    await expect(connectTls(uri('localhost', 'good'))).rejects.toThrow(/instead of the TLS check byte 1/);
  });

  it('missing credentials: names the file and pkipath', async () => {
    await expect(connectTls(uri('127.0.0.1', 'nosuch'))).rejects.toThrow(/cannot read the TLS CA certificate .*nosuch\/cacert\.pem.*pkipath=/);
  });
});
