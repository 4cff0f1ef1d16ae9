import type { Kysely } from 'kysely';
import { createLocks, RESOURCE_COLUMNS, withColumns } from './columns.js';
import { idConstraints, idType } from './dialect.js';

/**
 * Initial schema. Uses only kysely's schema builder (no SQLite-only SQL) so the same migration
 * runs on PostgreSQL; the auto-increment keys come from `dialect.ts` (on SQLite the DDL is byte
 * for byte what this migration always made: test/unit/state/schema-compat.test.ts). `ifNotExists`
 * everywhere keeps it harmless if re-run.
 */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export async function up(db: Kysely<any>): Promise<void> {
  const revisions = db.schema.createTable('revisions').ifNotExists().addColumn('id', idType(db), idConstraints(db));
  await withColumns(
    revisions,
    'run_id varchar(64) !, manifest_digest varchar(128) !, git_commit varchar(64), git_dirty integer ! =0, started_at varchar(32) !, ' +
      'finished_at varchar(32), outcome varchar(32) !, summary text ! ={}',
  ).execute();
  await db.schema.createIndex('revisions_outcome_idx').ifNotExists().on('revisions').column('outcome').execute();
  await db.schema.createIndex('revisions_run_id_idx').ifNotExists().on('revisions').column('run_id').execute();

  await withColumns(db.schema.createTable('resources').ifNotExists().addColumn('id', idType(db), idConstraints(db)), RESOURCE_COLUMNS)
    .addColumn('last_applied_revision', 'integer', (c) => c.references('revisions.id').onDelete('set null'))
    .addUniqueConstraint('resources_kind_name_uq', ['kind', 'name'])
    .execute();

  const journal = db.schema.createTable('journal').ifNotExists().addColumn('id', idType(db), idConstraints(db));
  await withColumns(
    journal,
    'run_id varchar(64) !, kind varchar(64) !, name varchar(255) !, action varchar(32) !, intent text ! ={}, status varchar(16) !, ' +
      'error text, attempt integer ! =1, started_at varchar(32) !, finished_at varchar(32)',
  ).execute();
  await db.schema.createIndex('journal_status_idx').ifNotExists().on('journal').column('status').execute();
  await db.schema.createIndex('journal_resource_idx').ifNotExists().on('journal').columns(['kind', 'name']).execute();
  await db.schema.createIndex('journal_run_id_idx').ifNotExists().on('journal').column('run_id').execute();

  const events = db.schema.createTable('events').ifNotExists().addColumn('id', idType(db), idConstraints(db));
  await withColumns(events, 'at varchar(32) !, level varchar(8) !, kind varchar(64), name varchar(255), message text !').execute();

  await createLocks(db);
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any
export async function down(db: Kysely<any>): Promise<void> {
  for (const t of ['locks', 'events', 'journal', 'resources', 'revisions']) {
    await db.schema.dropTable(t).ifExists().execute();
  }
}
