/**
 * Opening a state DB whose migrations are all applied (every open after the first: each CLI run)
 * reads the applied list and runs no migrator (issue 22, whole-process speed): it takes no write
 * lock, so it neither waits for nor fails on another connection's write. A DB with a migration
 * pending still goes through the migrator, under the write lock, as before.
 */
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, describe, expect, it } from 'vitest';
import { openStateStore, StateDbOpenError } from '../../../src/state/index.js';
import { tempDir } from '../../support/manifests.js';

const work = tempDir('vftest-dbmigrated-');
afterAll(() => rmSync(work, { recursive: true, force: true }));

describe('opening a migrated state DB', () => {
  it('does not wait for another connection holding the write lock', async () => {
    const path = join(work, 'held.db');
    await (await openStateStore(path)).close();
    const other = new Database(path);
    other.exec('BEGIN IMMEDIATE');
    try {
      const s = await openStateStore(path, { busyTimeoutMs: 50 });
      expect(await s.resources.list()).toEqual([]);
      await s.close();
    } finally {
      other.exec('ROLLBACK');
      other.close();
    }
  });

  it('a pending migration still takes the write lock (and waits for it)', async () => {
    const path = join(work, 'pending.db');
    await (await openStateStore(path)).close();
    const raw = new Database(path);
    const last = raw.prepare('select name from kysely_migration order by name desc limit 1').pluck().get() as string;
    raw.prepare('delete from kysely_migration where name = ?').run(last);
    raw.close();
    const other = new Database(path);
    other.exec('BEGIN IMMEDIATE');
    try {
      const e = await openStateStore(path, { busyTimeoutMs: 50 }).then(async (s) => s.close(), (err: unknown) => err);
      expect(e).toBeInstanceOf(StateDbOpenError);
      expect(String((e as Error).message)).toMatch(/locked|busy/i);
    } finally {
      other.exec('ROLLBACK');
      other.close();
    }
  });
});
