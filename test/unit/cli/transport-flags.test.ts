/**
 * `--uri` and `--insecure`: every command that connects refuses, before anything runs (exit 2,
 * nothing contacted), plain qemu+tcp to a non-loopback address and `no_verify` without
 * `--insecure`, and a URI with a password (not printed). Against the real hosts:
 * test/fleet/transport.test.ts.
 */
import { afterEach, describe, expect, it, vi } from 'vitest';
import { CommanderError } from 'commander';
import { buildProgram } from '../../../src/cli/program.js';
import { capture } from '../../support/cli.js';

afterEach(() => {
  vi.unstubAllEnvs();
  vi.restoreAllMocks();
});

async function run(args: string[]): Promise<number> {
  try {
    await buildProgram().parseAsync(['node', 'virtform', ...args]);
    return Number(process.exitCode ?? 0);
  } catch (e) {
    if (e instanceof CommanderError) return e.exitCode;
    throw e;
  } finally {
    process.exitCode = undefined;
  }
}

// 192.0.2.0/24 (TEST-NET-1) is never routed: were it contacted, the test would hang, not pass.
const TCP = 'qemu+tcp://192.0.2.7/system';

describe('--uri refused without --insecure (exit 2)', () => {
  it.each([
    ['reconcile', ['reconcile', '/nonexistent', '--dry-run', '--uri', TCP]],
    ['status', ['status', '--uri', TCP]],
    ['watch', ['watch', '/nonexistent', '--uri', TCP]],
    ['console', ['console', 'vm1', '--uri', TCP]],
  ])('plain tcp to another machine (%s)', async (_label, args) => {
    const r = await capture(() => run(args));
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/^virtform: refusing plain TCP to 192\.0\.2\.7 .*unencrypted.*qemu\+tls:\/\/192\.0\.2\.7\/system.*--insecure/);
  });

  it('from VIRTFORM_URI too', async () => {
    vi.stubEnv('VIRTFORM_URI', TCP);
    const r = await capture(() => run(['status']));
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('refusing plain TCP');
  });

  it('no_verify on tls', async () => {
    const r = await capture(() => run(['status', '--uri', 'qemu+tls://192.0.2.7/system?no_verify=1']));
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/no_verify=1 turns off the check of the server's certificate/);
  });

  it('a password in the URI, not printed', async () => {
    const r = await capture(() => run(['status', '--uri', 'qemu+ssh://root:s3cr3t@192.0.2.7/system']));
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/carries a password/);
    expect(r.stderr + r.stdout).not.toContain('s3cr3t');
  });

  it('not a libvirt URI', async () => {
    const r = await capture(() => run(['status', '--uri', 'nonsense']));
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/not a libvirt URI/);
  });

  it('status --offline contacts nothing, so it checks nothing', async () => {
    const r = await capture(() => run(['status', '--offline', '--uri', TCP, '--db', '/nonexistent/vftest.db']));
    expect(r.stderr).not.toContain('refusing plain TCP');
  });

  it('--insecure lets it through (the missing folder is what stops this run), and loopback needs nothing', async () => {
    const r = await capture(() => run(['reconcile', '/nonexistent', '--dry-run', '--uri', TCP, '--insecure']));
    expect(r.stderr).not.toContain('refusing');
    expect(r.stderr).toMatch(/nonexistent/);
    const l = await capture(() => run(['reconcile', '/nonexistent', '--dry-run', '--uri', 'qemu+tcp://127.0.0.1:1/system']));
    expect(l.stderr).not.toContain('refusing');
    const h = await capture(() => run(['reconcile', '--help']));
    expect(h.stdout).toContain('--insecure');
  });
});
