/**
 * A PostgreSQL password reaches the server only through PGPASSWORD or the file PGPASSFILE names,
 * never through the URL. Runs under `make test-postgres` (VIRTFORM_TEST_PG_URL/_DIR name the run's
 * private cluster): a role that must give a password (scram-sha-256 in pg_hba.conf, ahead of the
 * cluster's `trust` lines), a database it owns.
 */
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import pg from 'pg';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { openStateStore, StateDbOpenError } from '../../../src/state/index.js';
import { resourceRef } from '../../../src/model/kinds.js';
import { makeTempDir } from '../../support/temp-dirs.js';

const PG = process.env.VIRTFORM_TEST_PG_URL;
const DIR = process.env.VIRTFORM_TEST_PG_DIR;
const ROLE = 'vftest_pw';
const SECRET = 'pw-Secret-9';
let url = '';
let work = '';

describe.runIf(PG && DIR)('PostgreSQL password from PGPASSWORD / PGPASSFILE', () => {
  beforeAll(async () => {
    const admin = new pg.Client({ connectionString: PG });
    await admin.connect();
    try {
      await admin.query(`DROP DATABASE IF EXISTS ${ROLE}_db WITH (FORCE)`);
      await admin.query(`DROP ROLE IF EXISTS ${ROLE}`);
      await admin.query(`CREATE ROLE ${ROLE} LOGIN PASSWORD '${SECRET}'`);
      await admin.query(`CREATE DATABASE ${ROLE}_db OWNER ${ROLE}`);
      const hba = join(DIR!, 'data', 'pg_hba.conf');
      writeFileSync(hba, `host all ${ROLE} 127.0.0.1/32 scram-sha-256\n${readFileSync(hba, 'utf8')}`);
      await admin.query('SELECT pg_reload_conf()');
    } finally {
      await admin.end();
    }
    const u = new URL(PG!);
    u.username = ROLE;
    u.pathname = `/${ROLE}_db`;
    url = u.toString();
    work = makeTempDir('vftest-pgpass-');
  });
  afterEach(() => vi.unstubAllEnvs());
  afterAll(() => rmSync(work, { recursive: true, force: true }));

  it('without a password the server refuses, and the error names the URL', async () => {
    vi.stubEnv('PGPASSWORD', undefined);
    vi.stubEnv('PGPASSFILE', join(work, 'none'));
    const e = await openStateStore(url).then(() => undefined, (err: unknown) => err);
    expect(e).toBeInstanceOf(StateDbOpenError);
    expect(String((e as Error).message)).toMatch(new RegExp(`cannot open state DB postgres://${ROLE}@127\\.0\\.0\\.1:\\d+/${ROLE}_db: .*the server asks a password of user ${ROLE}.*PGPASSWORD.*PGPASSFILE`));
  });

  it('PGPASSWORD gives it', async () => {
    vi.stubEnv('PGPASSWORD', SECRET);
    const s = await openStateStore(url);
    try {
      await s.resources.upsert({ ...resourceRef('Network', 'n'), specHash: 'h' });
      expect(s.path).not.toContain(SECRET);
    } finally {
      await s.close();
    }
  });

  it('PGPASSFILE gives it (a 0600 file in the pgpass format)', async () => {
    vi.stubEnv('PGPASSWORD', undefined);
    const file = join(work, 'pgpass');
    writeFileSync(file, `127.0.0.1:${new URL(PG!).port}:${ROLE}_db:${ROLE}:${SECRET}\n`, { mode: 0o600 });
    vi.stubEnv('PGPASSFILE', file);
    const s = await openStateStore(url);
    try {
      expect((await s.resources.get(resourceRef('Network', 'n')))?.specHash).toBe('h');
    } finally {
      await s.close();
    }
  });
});
