/**
 * Migrations 0001-0007 may be rewritten (dialect-aware keys for PostgreSQL) only where the SQLite
 * result stays byte for byte the same: `fixtures/sqlite-schema-0001-0007.json` is the
 * `sqlite_master` of a DB migrated by the code of main at eea9481 (its migration files compiled
 * and run up to 0007_created_paths); the migrations of today must produce exactly it.
 */
import { readFileSync } from 'node:fs';
import Database from 'better-sqlite3';
import { Kysely, Migrator, SqliteDialect, type Migration } from 'kysely';
import { describe, expect, it } from 'vitest';
import { migrations } from '../../../src/state/migrations/index.js';

describe('SQLite schema of migrations 0001-0007', () => {
  it('is byte for byte the one the code before the PostgreSQL backend made', async () => {
    const sqlite = new Database(':memory:');
    const db = new Kysely<unknown>({ dialect: new SqliteDialect({ database: sqlite }) });
    const upTo7: Record<string, Migration> = Object.fromEntries(Object.entries(migrations).filter(([n]) => n <= '0007_created_paths'));
    const { error } = await new Migrator({ db, provider: { getMigrations: async () => upTo7 } }).migrateToLatest();
    expect(error).toBeUndefined();
    const rows = sqlite.prepare(`SELECT type, name, tbl_name, sql FROM sqlite_master WHERE name NOT LIKE 'kysely_%' ORDER BY type, name`).all();
    const expected: unknown = JSON.parse(readFileSync(new URL('./fixtures/sqlite-schema-0001-0007.json', import.meta.url), 'utf8'));
    expect(rows).toEqual(expected);
    await db.destroy();
  });
});
