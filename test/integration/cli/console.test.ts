/**
 * `virtform console VM` against the real libvirtd: the tiny guest (scripts/build-tiny-guest.sh,
 * direct kernel boot, `console=ttyS0`) is defined with virsh with the serial devices virtform
 * gives every VM (pty serial + console, the guest agent channel) and started paused, so the
 * console is attached before the guest prints anything; then resumed.
 *
 * Asserted: without a TTY (pipes) the guest's boot lines come out on stdout, bytes written to
 * stdin reach the guest (its tty echoes them), a 0x1d byte (Ctrl-]) leaves with exit 0, and the end
 * of stdin leaves too; a second client is refused while one holds the console and takes it over
 * with --force (the first one then exits 1 saying so); no such VM and a VM that is not running
 * exit 1 with a message. Once under a real pty (`script`): raw mode (a bare 0x1d without a newline
 * leaves, Ctrl-C goes to the guest instead of killing the CLI) and the terminal settings are the
 * same after the session as before. Everything is named `vftest-console*` and removed.
 */
import { execFileSync, spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { copyFileSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CLI, ROOT, TEST_POOL_ROOT, ensureBuilt, runCli, virsh } from '../../support/real-host.js';
import { suiteNames } from '../../support/names.js';
import { makeTempDir } from '../../support/temp-dirs.js';

const N = suiteNames('console');
const P = N.base;
const VM = `${P}-vm`;
const DIR = join(TEST_POOL_ROOT, P);
const BOOT_MS = 120_000;

let tmp: string;

interface Session {
  child: ChildProcessWithoutNullStreams;
  out: () => string;
  err: () => string;
  done: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

function attach(args: string[] = []): Session {
  const child = spawn(process.execPath, [CLI, 'console', VM, ...args], { cwd: ROOT, env: { ...process.env, NO_COLOR: '1' }, stdio: 'pipe' });
  let out = '';
  let err = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString('latin1')));
  child.stderr.on('data', (d: Buffer) => (err += d.toString()));
  const done = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((res) => child.on('close', (code, signal) => res({ code, signal })));
  return { child, out: () => out, err: () => err, done };
}

async function until(what: string, ok: () => boolean, ms: number, context: () => string): Promise<void> {
  const end = Date.now() + ms;
  while (!ok()) {
    if (Date.now() > end) throw new Error(`timed out after ${ms} ms waiting for ${what}\n${context()}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

function defineGuest(): void {
  const xml = join(tmp, 'dom.xml');
  writeFileSync(xml, `<domain type='qemu'>
  <name>${VM}</name>
  <memory unit='MiB'>128</memory>
  <vcpu>1</vcpu>
  <os>
    <type arch='x86_64' machine='pc'>hvm</type>
    <kernel>${DIR}/vmlinuz</kernel>
    <initrd>${DIR}/initrd.img</initrd>
    <cmdline>console=ttyS0 loglevel=4 panic=-1</cmdline>
  </os>
  <features><acpi/><apic/></features>
  <on_poweroff>destroy</on_poweroff>
  <on_reboot>destroy</on_reboot>
  <on_crash>destroy</on_crash>
  <devices>
    <serial type='pty'><target port='0'/></serial>
    <console type='pty'><target type='serial' port='0'/></console>
    <channel type='unix'><target type='virtio' name='org.qemu.guest_agent.0'/></channel>
    <memballoon model='none'/>
  </devices>
</domain>
`);
  virsh('define', xml);
}

const running = (): boolean => virsh('domstate', VM).includes('running');
function stopGuest(): void {
  if (!virsh('domstate', VM).includes('shut off')) virsh('destroy', VM);
}

beforeAll(() => {
  N.cleanup();
  ensureBuilt();
  tmp = makeTempDir(`${P}-`);
  const guest = execFileSync('bash', [join(ROOT, 'scripts/build-tiny-guest.sh')], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'], timeout: 280_000 }).trim();
  // Copies: libvirt relabels the kernel and initrd at start, not the shared cache.
  mkdirSync(DIR, { recursive: true });
  for (const f of ['vmlinuz', 'initrd.img']) copyFileSync(join(guest, f), join(DIR, f));
  defineGuest();
}, 300_000);

afterAll(() => {
  N.cleanup();
  if (tmp) rmSync(tmp, { recursive: true, force: true });
});

describe.sequential('virtform console', () => {
  it('a VM that does not exist: exit 1 naming it', async () => {
    const r = await runCli(['console', `${P}-nope`]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`virtform console: no VM (libvirt domain) named ${P}-nope on qemu:///system`);
    expect(r.stdout).toBe('');
  });

  it('a VM that is not running: exit 1 saying so', async () => {
    const r = await runCli(['console', VM]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`virtform console: VM ${VM} is not running (shut off)`);
  });

  it('without a TTY: the guest output on stdout, stdin to the guest, Ctrl-] (0x1d) leaves with exit 0', async () => {
    virsh('start', '--paused', VM);
    try {
      const s = attach();
      const ctx = (): string => `stdout:\n${s.out()}\nstderr:\n${s.err()}`;
      await until('Connected', () => s.err().includes('Connected to VM'), 20_000, ctx);
      const t0 = Date.now();
      virsh('resume', VM);
      await until('the guest booted', () => /vf-guest: ready/.test(s.out()), BOOT_MS, ctx);
      const bootMs = Date.now() - t0;
      expect(s.out()).toMatch(/vf-guest: boot \d+\.\d+/);
      // The guest's tty echoes what it receives.
      s.child.stdin.write('vf-echo-typed-42\r');
      await until('the echo', () => s.out().includes('vf-echo-typed-42'), 20_000, ctx);
      const t1 = Date.now();
      s.child.stdin.write(Buffer.from([0x1d]));
      const r = await s.done;
      // eslint-disable-next-line no-console
      console.log(`[console] resume -> "vf-guest: ready" ${bootMs} ms; Ctrl-] -> exit ${Date.now() - t1} ms`);
      expect(r.code, ctx()).toBe(0);
      expect(Date.now() - t1).toBeLessThan(5_000);
      expect(running()).toBe(true); // leaving the console leaves the VM alone
    } finally {
      stopGuest();
    }
  }, BOOT_MS + 60_000);

  it('the end of stdin leaves with exit 0', async () => {
    virsh('start', VM);
    try {
      const s = attach();
      await until('Connected', () => s.err().includes('Connected to VM'), 20_000, () => s.err());
      s.child.stdin.end();
      expect((await s.done).code).toBe(0);
    } finally {
      stopGuest();
    }
  });

  it('a console another client holds: refused (exit 1, suggests --force); --force takes it over and the first client exits 1', async () => {
    virsh('start', VM);
    try {
      const a = attach();
      await until('A connected', () => a.err().includes('Connected to VM'), 20_000, () => a.err());
      const b = await runCli(['console', VM]);
      expect(b.code).toBe(1);
      expect(b.stderr).toMatch(new RegExp(`another client holds the console of VM ${VM} .*--force takes it over`));
      const c = attach(['--force']);
      await until('C connected', () => c.err().includes('Connected to VM'), 20_000, () => c.err());
      const ra = await a.done;
      expect(ra.code, a.err()).toBe(1);
      expect(a.err()).toMatch(new RegExp(`virtform console: console of VM ${VM}: `));
      c.child.stdin.write(Buffer.from([0x1d]));
      expect((await c.done).code, c.err()).toBe(0);
    } finally {
      stopGuest();
    }
  });

  it('when the VM stops, the console closes with exit 0', async () => {
    virsh('start', VM);
    const s = attach();
    await until('Connected', () => s.err().includes('Connected to VM'), 20_000, () => s.err());
    stopGuest();
    const r = await s.done;
    expect(r.code, s.err()).toBe(0);
    expect(s.err()).toContain(`the console of VM ${VM} closed (the VM stopped)`);
  });

  it('under a pty: raw mode (a bare 0x1d leaves, Ctrl-C goes to the guest) and the terminal is restored', async () => {
    virsh('start', '--paused', VM);
    try {
      // `script` gives the shell a pty; its stdin (our pipe) is typed into it.
      const inner = `stty -g; echo "before: $(stty -g)"; node ${CLI} console ${VM}; echo "rc=$?"; echo "after: $(stty -g)"`;
      const child = spawn('script', ['-qfec', `sh -c '${inner}'`, '/dev/null'], { cwd: ROOT, env: { ...process.env, NO_COLOR: '1' }, stdio: 'pipe' });
      let out = '';
      child.stdout.on('data', (d: Buffer) => (out += d.toString('latin1')));
      child.stderr.on('data', (d: Buffer) => (out += d.toString('latin1')));
      const done = new Promise<number | null>((res) => child.on('close', (code) => res(code)));
      const ctx = (): string => out;
      await until('Connected', () => out.includes('Connected to VM'), 20_000, ctx);
      expect(out).not.toContain('stdin is not a terminal');
      virsh('resume', VM);
      await until('the guest booted', () => /vf-guest: ready/.test(out), BOOT_MS, ctx);
      // Ctrl-C: in raw mode a byte for the guest, not SIGINT for the CLI.
      child.stdin.write(Buffer.from([0x03]));
      await new Promise((r) => setTimeout(r, 1000));
      expect(out).not.toMatch(/rc=/);
      // A bare 0x1d, no newline: only raw mode delivers it at once.
      child.stdin.write(Buffer.from([0x1d]));
      await until('the CLI exited', () => /rc=\d+/.test(out), 10_000, ctx);
      child.stdin.end();
      expect(await done).toBe(0);
      expect(out).toMatch(/rc=0/);
      const before = /before: (\S+)/.exec(out)?.[1];
      const after = /after: (\S+)/.exec(out)?.[1];
      expect(before, out).toBeDefined();
      expect(after, out).toBe(before);
    } finally {
      stopGuest();
    }
  }, BOOT_MS + 60_000);
});
