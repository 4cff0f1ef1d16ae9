/**
 * `virtform console VM`: the terminal on the VM's serial console, like `virsh console`.
 *
 * The bytes go through libvirt's console stream (virDomainOpenConsole), so it works over every
 * transport virtform speaks (`--uri qemu:///system`, `qemu+ssh://…`, `qemu+tls://…`), not only on the host that
 * runs QEMU. On a terminal, stdin is put in raw mode (every key, Ctrl-C included, goes to the
 * guest) and restored however the session ends; Ctrl-] (byte 0x1d) leaves. Without a terminal,
 * stdin and stdout are plain pipes: bytes written to stdin go to the guest, the guest's output
 * comes out on stdout, and a 0x1d byte or the end of stdin leaves. Messages go to stderr only.
 *
 * Exit codes: 0 the session was left (Ctrl-], end of stdin) or the console closed (the VM
 * stopped); 1 no such VM, the VM is not running, another client holds the console (without
 * --force), the connection or the stream failed (also when another client took the console over).
 */
import type { Readable, Writable } from 'node:stream';
import { ConsoleError, openDomainConsole, openHost } from '../../reconcile/adapters/libvirt-host.js';
import type { LibvirtHost } from '../../reconcile/adapters/libvirt-host.js';
import { EXIT, errorMessage } from '../common.js';

/** Ctrl-]: the byte that leaves the console (as virsh's default escape). */
export const ESCAPE_BYTE = 0x1d;

export interface ConsoleOptions {
  uri: string;
  force?: boolean;
}

export interface ConsoleIo {
  stdin: Readable & { isTTY?: boolean; setRawMode?: (raw: boolean) => unknown };
  stdout: Writable;
  stderr: Writable;
}

type End = { code: number; message?: string };

export async function runConsole(name: string, o: ConsoleOptions, io: ConsoleIo = process as unknown as ConsoleIo): Promise<number> {
  const say = (m: string): void => {
    io.stderr.write(`${m}\n`);
  };
  let host: LibvirtHost;
  try {
    host = await openHost(o.uri);
  } catch (e) {
    say(`virtform console: ${errorMessage(e)}`);
    return EXIT.failure;
  }
  let stream;
  try {
    stream = await openDomainConsole(host, name, { force: o.force });
  } catch (e) {
    say(`virtform console: ${e instanceof ConsoleError ? e.message : errorMessage(e)}`);
    // safe-catch: closing the connection on the way out; the session outcome is already decided
    await host.close().catch(() => undefined);
    return EXIT.failure;
  }

  const tty = io.stdin.isTTY === true && typeof io.stdin.setRawMode === 'function';
  let raw = false;
  const restore = (): void => {
    if (raw) {
      raw = false;
      try {
        io.stdin.setRawMode!(false);
      } catch { // safe-catch: the terminal is gone; nothing to restore
        /* the terminal is gone */
      }
    }
  };
  // Whatever ends the process, the terminal is given back in cooked mode.
  process.once('exit', restore);

  say(`Connected to VM ${name} (escape character is ^])${tty ? '' : ' [stdin is not a terminal: 0x1d or the end of stdin leaves]'}`);
  if (tty) {
    io.stdin.setRawMode!(true);
    raw = true;
  }

  const end = await new Promise<End>((resolve) => {
    let settled = false;
    const finish = (r: End): void => {
      if (settled) return;
      settled = true;
      resolve(r);
    };
    const onData = (chunk: Buffer | string): void => {
      const buf = typeof chunk === 'string' ? Buffer.from(chunk) : chunk;
      const at = buf.indexOf(ESCAPE_BYTE);
      const part = at >= 0 ? buf.subarray(0, at) : buf;
      if (part.length > 0 && !stream.destroyed) {
        if (!stream.write(part)) {
          io.stdin.pause();
          stream.once('drain', () => io.stdin.resume());
        }
      }
      if (at >= 0) finish({ code: EXIT.ok });
    };
    io.stdin.on('data', onData);
    io.stdin.once('end', () => finish({ code: EXIT.ok }));
    io.stdin.resume();

    stream.on('data', (chunk: Buffer) => {
      io.stdout.write(chunk);
    });
    stream.once('end', () => finish({ code: EXIT.ok, message: `the console of VM ${name} closed (the VM stopped)` }));
    stream.once('error', (e: Error) => finish({ code: EXIT.failure, message: `console of VM ${name}: ${e.message}` }));
    void host.client.closed.then((e) => finish({ code: EXIT.failure, message: `connection to libvirt lost: ${e.message}` }));

    const onSignal = (sig: NodeJS.Signals): void => finish({ code: 128 + (sig === 'SIGINT' ? 2 : sig === 'SIGHUP' ? 1 : 15) });
    for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.once(sig, onSignal);
    cleanupSignals = () => {
      for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.removeListener(sig, onSignal);
      io.stdin.removeListener('data', onData);
    };
  });
  cleanupSignals?.();
  cleanupSignals = undefined;
  restore();
  process.removeListener('exit', restore);
  io.stdin.pause();
  // Leave: abort the stream (the daemon drops it at once, as virsh does), then close the connection.
  if (!stream.destroyed) stream.destroy();
  // safe-catch: closing the connection on the way out; the session outcome is already decided
  await host.close().catch(() => undefined);
  if (tty) io.stderr.write('\r\n');
  if (end.message) say(`virtform console: ${end.message}`);
  // stdin may keep the event loop alive (a pipe nobody closes): let the caller exit.
  if ('unref' in io.stdin && typeof (io.stdin as { unref?: () => void }).unref === 'function') (io.stdin as { unref: () => void }).unref();
  return end.code;
}

let cleanupSignals: (() => void) | undefined;
