/**
 * `qemu+ssh://[user@]host[:port]/system`: libvirt's RPC over the system `ssh`, as libvirt's own
 * client does it (virNetClientNewSSH, virNetSocketNewConnectSSH): ssh runs a command on the remote
 * host that connects its stdin/stdout to the daemon — `virt-ssh-helper URI` when the remote has
 * it, else `nc -U SOCKET` — and the RPC stream runs over the child's stdin and stdout.
 *
 * The remote command line is the one libvirt 9.0 sends, byte for byte for the usual URIs (an
 * administrator may have pinned it with a `command=` restriction in authorized_keys); only a
 * socket path with shell metacharacters is quoted here, where libvirt pastes it as it is.
 *
 * Differences from libvirt's ssh transport, on purpose:
 * - always `-o BatchMode=yes` (libvirt only with `no_tty=1`): virtform never prompts and never
 *   handles a password or key passphrase; keys come from `keyfile=`, ssh's config or ssh-agent;
 * - always `-o StrictHostKeyChecking=yes` (`no_verify=1` → `no`, allowed with --insecure only;
 *   `known_hosts_verify=auto` → `accept-new`), and `known_hosts=FILE` is honoured (libvirt reads it
 *   only for its libssh transports) as `-o UserKnownHostsFile=FILE`;
 * - ssh's stderr is kept and turned into a clear error (unknown or changed host key, no accepted
 *   key, connection refused, neither virt-ssh-helper nor nc on the remote host);
 * - the environment passed to ssh is a short list (no PGPASSWORD or other secrets of this process).
 */
import { type ChildProcessWithoutNullStreams, spawn } from 'node:child_process';
import { EventEmitter } from 'node:events';
import type { PacketSocket } from './transport.js';
import { type ParsedUri, UriError } from './uri.js';

export interface SshOptions {
  readOnly?: boolean;
  /** ssh's ConnectTimeout, ms (rounded up to seconds). */
  connectTimeoutMs?: number;
  /** The ssh binary (tests). Default `ssh` from PATH. */
  sshBinary?: string;
  env?: NodeJS.ProcessEnv;
}

/** libvirt's virBufferEscapeShell: as it is without shell metacharacters, else single-quoted. */
function escapeShell(s: string): string {
  if (s === '') return "''";
  if (!/[\r\t\n !"#$&'()*;<>?[\\\]^`{|}~]/.test(s)) return s;
  return `'${s.replace(/'/g, "'\\''")}'`;
}

/** Escaped twice: the remote login shell runs `sh -c '…'`, which parses the string again. */
const escapeTwice = (s: string): string => escapeShell(escapeShell(s));

export type SshProxy = 'auto' | 'netcat' | 'native';

/** The remote socket libvirt's client picks for an ssh URI (remote_sockets.c: always the legacy libvirtd socket). */
export function sshRemoteSocket(p: ParsedUri, readOnly = false): string {
  if (p.socket) return p.socket;
  return `/var/run/libvirt/libvirt-${readOnly ? 'sock-ro' : 'sock'}`;
}

/** Which proxy runs on the remote host, from `proxy=`, `netcat=`, `socket=` and the path (as remote_driver.c decides). */
export function sshProxy(p: ParsedUri): SshProxy {
  const mode = p.clientParams.mode;
  if (mode !== undefined && mode !== 'auto' && mode !== 'legacy') {
    throw new UriError(`mode=${mode} cannot be used with the ssh transport (libvirt: direct socket mode is for local connections)`);
  }
  const given = p.clientParams.proxy;
  let proxy: SshProxy;
  if (given !== undefined) {
    if (given !== 'auto' && given !== 'netcat' && given !== 'native') throw new UriError(`unknown proxy=${given} (auto, netcat or native)`);
    proxy = given;
  } else if (p.socket) {
    proxy = 'netcat'; // virt-ssh-helper takes no socket path
  } else if (p.path === '/session') {
    proxy = 'native'; // the remote user's socket path is known only over there
  } else {
    proxy = 'auto';
  }
  if (proxy === 'auto' && p.clientParams.netcat !== undefined) proxy = 'netcat';
  if (proxy === 'native' && p.clientParams.netcat !== undefined) throw new UriError('netcat= cannot be used with proxy=native');
  return proxy;
}

/** The command ssh runs on the remote host (libvirt's virNetClientSSHHelperCommand). */
export function sshRemoteCommand(p: ParsedUri, readOnly = false): string {
  const nc = escapeTwice(p.clientParams.netcat || 'nc');
  // libvirt pastes the socket path bare (a path with a space breaks its command); quoted here only
  // when it needs it, so the usual command stays libvirt's byte for byte.
  const path = sshRemoteSocket(p, readOnly);
  const sock = escapeShell(path) === path ? path : `'${escapeTwice(path)}'`;
  const viaNetcat =
    `if '${nc}' -q 2>&1 | grep "requires an argument" >/dev/null 2>&1; then ARG=-q0;else ARG=;fi;` + `'${nc}' $ARG -U ${sock}`;
  const viaHelper = `virt-ssh-helper${readOnly ? ' -r ' : ' '}'${escapeTwice(p.remoteName)}'`;
  switch (sshProxy(p)) {
    case 'netcat':
      return `sh -c '${viaNetcat}'`;
    case 'native':
      return `sh -c '${viaHelper}'`;
    default:
      return `sh -c 'which virt-ssh-helper 1>/dev/null 2>&1; if test $? = 0; then     ${viaHelper}; else    ${viaNetcat}; fi'`;
  }
}

/** The known_hosts file ssh checks (for messages): `known_hosts=`, else ssh's default. */
export function knownHostsFile(p: ParsedUri): string {
  return p.clientParams.known_hosts || '~/.ssh/known_hosts';
}

/** ssh's argument vector for a parsed `+ssh` URI. No secret is ever part of it. */
export function sshArgv(p: ParsedUri, opts: SshOptions = {}): string[] {
  const args: string[] = [];
  if (p.port !== undefined) args.push('-p', String(p.port));
  if (p.user !== undefined) args.push('-l', p.user);
  if (p.clientParams.keyfile) args.push('-i', p.clientParams.keyfile);
  args.push('-T', '-e', 'none', '-o', 'BatchMode=yes');
  const nv = p.clientParams.no_verify;
  const noVerify = (nv !== undefined && nv !== '' && nv !== '0') || p.clientParams.known_hosts_verify === 'ignore';
  const strict = noVerify ? 'no' : p.clientParams.known_hosts_verify === 'auto' ? 'accept-new' : 'yes';
  args.push('-o', `StrictHostKeyChecking=${strict}`);
  if (p.clientParams.known_hosts) args.push('-o', `UserKnownHostsFile=${p.clientParams.known_hosts}`);
  if (opts.connectTimeoutMs && opts.connectTimeoutMs > 0) args.push('-o', `ConnectTimeout=${Math.ceil(opts.connectTimeoutMs / 1000)}`);
  args.push('--', p.host ?? 'localhost', sshRemoteCommand(p, opts.readOnly));
  return args;
}

/** Environment variables ssh gets (libvirt's list, less the ones for prompting). */
const SSH_ENV = ['PATH', 'HOME', 'USER', 'LOGNAME', 'LANG', 'LC_ALL', 'TMPDIR', 'XDG_RUNTIME_DIR', 'KRB5CCNAME', 'SSH_AUTH_SOCK', 'OPENSSL_CONF'];

/**
 * ssh's stderr (and exit code) as one clear sentence, or undefined when it says nothing useful.
 * `where` names the host as the user wrote it (`user@host:port`).
 */
export function diagnoseSsh(stderr: string, p: ParsedUri, code: number | null): string | undefined {
  const host = p.host ?? 'localhost';
  const where = `${p.user ? `${p.user}@` : ''}${host}${p.port ? `:${p.port}` : ''}`;
  const text = stderr.trim();
  if (/Host key verification failed|REMOTE HOST IDENTIFICATION HAS CHANGED|host key is known for .* you have requested strict checking|Host key for .* has changed/i.test(text)) {
    const changed = /HAS CHANGED|has changed/i.test(text);
    return (
      `host key verification failed for ${host}: check known_hosts ${knownHostsFile(p)} ` +
      (changed
        ? '(the key the server offered differs from the recorded one: the host was reinstalled, or someone is in the middle)'
        : `(no key recorded for ${p.port ? `[${host}]:${p.port}` : host}: add it with ssh-keyscan after checking its fingerprint)`)
    );
  }
  if (/Permission denied \(/.test(text)) {
    const methods = /Permission denied \(([^)]*)\)/.exec(text)?.[1] ?? '';
    return (
      `ssh authentication to ${where} failed (server accepts: ${methods}): virtform never prompts; ` +
      `give a key with keyfile= in the URI, ssh's config or ssh-agent, and add its public key to the remote authorized_keys`
    );
  }
  const refused = /connect to host (\S+) port (\d+): Connection refused/.exec(text);
  if (refused) return `ssh connection to ${refused[1]} port ${refused[2]} refused (is sshd running and listening there?)`;
  const net = /connect to host (\S+) port (\d+): ([^\n]+)/.exec(text) ?? /Could not resolve hostname ([^:]+): ([^\n]+)/.exec(text);
  if (net) return `ssh cannot reach ${host}: ${net[0].replace(/^ssh: /, '')}`;
  const nc = p.clientParams.netcat || 'nc';
  const missing = /: (?:command )?not found\s*$/m.test(text);
  if (missing && (text.includes(`${nc}: `) || /virt-ssh-helper: /.test(text))) {
    return (
      `the remote host ${host} has neither virt-ssh-helper nor ${nc}: install libvirt-clients (virt-ssh-helper) ` +
      `or netcat-openbsd there (ssh said: ${lastLine(text)})`
    );
  }
  if (/unix connect failed|Failed to connect socket|failed to connect to the hypervisor/i.test(text) ||
    /sock[^\n]*: (No such file or directory|Connection refused)\s*$/m.test(text)) {
    return `the remote host ${host} runs no reachable libvirtd (${lastLine(text)})`;
  }
  if (text) return `ssh to ${where} ${code === null ? 'ended' : `exited with code ${code}`}: ${lastLine(text)}`;
  return undefined;
}

function lastLine(text: string): string {
  const lines = text.split('\n').map((l) => l.trim()).filter((l) => l && !/^Warning: Permanently added/.test(l));
  return lines.slice(-2).join(' / ') || text;
}

/**
 * The ssh child as a {@link PacketSocket}: writes go to its stdin, its stdout is the data. The end
 * of the stream is reported when the child has exited (so its whole stderr is known): as an error
 * with {@link diagnoseSsh}'s sentence when ssh said something, else as a plain close.
 */
export class SshChildSocket extends EventEmitter implements PacketSocket {
  private stderr = '';
  private ended = false;
  /** This side ended it (end/destroy): a signal then is ours, not news. */
  private closing = false;
  private killTimer: NodeJS.Timeout | undefined;

  constructor(
    readonly child: ChildProcessWithoutNullStreams,
    private readonly parsed: ParsedUri,
  ) {
    super();
    child.stdout.on('data', (chunk: Buffer) => this.emit('data', chunk));
    child.stderr.on('data', (chunk: Buffer) => {
      if (this.stderr.length < 64 * 1024) this.stderr += chunk.toString('utf8');
    });
    // EPIPE and the like on stdin: the child's exit says why.
    child.stdin.on('error', () => undefined);
    child.stdin.on('drain', () => this.emit('drain'));
    child.on('error', (err) => this.finish(err)); // spawn failed (no ssh binary)
    child.on('close', (code, signal) => this.finish(undefined, code, signal));
  }

  private finish(err: Error | undefined, code: number | null = null, signal: NodeJS.Signals | null = null): void {
    if (this.ended) return;
    this.ended = true;
    clearTimeout(this.killTimer);
    if (err) {
      const hint = (err as NodeJS.ErrnoException).code === 'ENOENT' ? ' (install openssh-client)' : '';
      this.emit('error', new Error(`cannot run ssh: ${err.message}${hint}`));
    } else {
      const msg =
        diagnoseSsh(this.stderr, this.parsed, code) ?? (signal && !this.closing ? `the ssh process (pid ${this.child.pid}) was ended by ${signal}` : undefined);
      if (msg) this.emit('error', new Error(msg));
      else this.emit('end');
    }
    this.emit('close');
  }

  /** What ssh wrote on stderr so far. */
  get stderrText(): string {
    return this.stderr;
  }

  write(data: Uint8Array): boolean {
    if (this.ended || this.child.stdin.destroyed) return true;
    return this.child.stdin.write(data);
  }

  cork(): void {
    this.child.stdin.cork();
  }

  uncork(): void {
    this.child.stdin.uncork();
  }

  /** EOF to the remote proxy (which then closes its side and ssh exits); killed if it lingers. */
  end(): void {
    if (this.ended) return;
    this.closing = true;
    this.child.stdin.end();
    this.killTimer = setTimeout(() => this.kill(), 2000);
    this.killTimer.unref();
  }

  destroy(): void {
    this.closing = true;
    this.kill();
  }

  private kill(): void {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return;
    this.child.kill('SIGTERM');
    const t = setTimeout(() => {
      if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill('SIGKILL');
    }, 2000);
    t.unref();
  }
}

/** Starts ssh for a parsed `+ssh` URI; the RPC runs over the returned socket. */
export function connectSsh(p: ParsedUri, opts: SshOptions = {}): { socket: SshChildSocket; label: string } {
  const src = opts.env ?? process.env;
  const env: NodeJS.ProcessEnv = {};
  for (const k of SSH_ENV) if (src[k] !== undefined) env[k] = src[k];
  const ssh = opts.sshBinary ?? 'ssh';
  const child = spawn(ssh, [...sshArgv(p, opts)], { stdio: ['pipe', 'pipe', 'pipe'], env });
  const label = `ssh ${p.user ? `${p.user}@` : ''}${p.host ?? 'localhost'}${p.port ? `:${p.port}` : ''}`;
  return { socket: new SshChildSocket(child, p), label };
}
