/**
 * `--db postgres://…` / VIRTFORM_DB: a password inside the URL is refused before any command runs
 * (exit 2), and the message never contains it; `--data-dir` places the caches.
 */
import { afterEach, describe, expect, it, vi } from 'vitest';
import { CommanderError } from 'commander';
import { join } from 'node:path';
import { buildProgram } from '../../../src/cli/program.js';
import { dataDirOf } from '../../../src/cli/common.js';
import { defaultDbPath } from '../../../src/state/index.js';
import { checkPostgresUrl, isPostgresLocation, redactPostgresUrl } from '../../../src/state/location.js';
import { capture } from './capture.js';

afterEach(() => {
  vi.unstubAllEnvs();
  vi.restoreAllMocks();
});

/** Parse a command line the way main.ts does: a CommanderError is an exit code. */
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

describe('a password in the state DB URL', () => {
  const url = 'postgres://virtform:s3cr3t-pw@127.0.0.1:1/virtform';
  it.each([
    ['status', ['status', '--db', url, '--offline']],
    ['reconcile', ['reconcile', '/nonexistent', '--db', url, '--dry-run']],
    ['suspend', ['suspend', '--db', url]],
    ['resume', ['resume', '--db', url]],
    ['watch', ['watch', '/nonexistent', '--db', url]],
    ['query parameter', ['status', '--db', 'postgresql://virtform@127.0.0.1:1/virtform?password=s3cr3t-pw']],
  ])('is refused with exit 2 and not printed (%s)', async (_label, args) => {
    const r = await capture(() => run(args));
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/state DB URL postgres(ql)?:\/\/virtform@127\.0\.0\.1:1\/virtform.* refused: it contains a password; .*PGPASSFILE .*PGPASSWORD/);
    expect(r.stderr + r.stdout).not.toContain('s3cr3t-pw');
  });

  it('is refused from VIRTFORM_DB too', async () => {
    vi.stubEnv('VIRTFORM_DB', url);
    const r = await capture(() => run(['status', '--offline']));
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('refused: it contains a password');
    expect(r.stderr).not.toContain('s3cr3t-pw');
  });

  it('location helpers: what is a URL, redaction, a URL without a database', () => {
    expect(isPostgresLocation('postgres://h/db')).toBe(true);
    expect(isPostgresLocation('postgresql://h/db')).toBe(true);
    expect(isPostgresLocation('/var/lib/virtform/state.db')).toBe(false);
    expect(redactPostgresUrl(url)).toBe('postgres://virtform@127.0.0.1:1/virtform');
    expect(() => checkPostgresUrl('postgres://virtform@127.0.0.1:1')).toThrow(/names no database/);
    expect(checkPostgresUrl('postgres://virtform@127.0.0.1:1/db').pathname).toBe('/db');
  });
});

describe('--data-dir', () => {
  it('defaults to the SQLite DB folder, with PostgreSQL to the default DB folder; given, it wins', () => {
    expect(dataDirOf('/srv/x/state.db')).toBe('/srv/x');
    expect(dataDirOf(undefined)).toBe(join(defaultDbPath(), '..'));
    expect(dataDirOf('postgres://u@h/db')).toBe(join(defaultDbPath(), '..'));
    expect(dataDirOf('postgres://u@h/db', '/srv/cache')).toBe('/srv/cache');
    expect(dataDirOf('/srv/x/state.db', 'rel')).toBe(join(process.cwd(), 'rel'));
  });
});
