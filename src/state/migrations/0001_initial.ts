import type { Kysely } from 'kysely';
import { idConstraints, idType } from './dialect.js';

/**
 * Initial schema. Uses only kysely's schema builder (no SQLite-only SQL) so the same migration
 * runs on PostgreSQL; the auto-increment keys come from `dialect.ts` (on SQLite the DDL is byte
 * for byte what this migration always made: test/unit/state/schema-compat.test.ts). `ifNotExists`
 * everywhere keeps it harmless if re-run.
 */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export async function up(db: Kysely<any>): Promise<void> {
  await db.schema
    .createTable('revisions')
    .ifNotExists()
    .addColumn('id', idType(db), idConstraints(db))
    .addColumn('run_id', 'varchar(64)', (c) => c.notNull())
    .addColumn('manifest_digest', 'varchar(128)', (c) => c.notNull())
    .addColumn('git_commit', 'varchar(64)')
    .addColumn('git_dirty', 'integer', (c) => c.notNull().defaultTo(0))
    .addColumn('started_at', 'varchar(32)', (c) => c.notNull())
    .addColumn('finished_at', 'varchar(32)')
    .addColumn('outcome', 'varchar(32)', (c) => c.notNull())
    .addColumn('summary', 'text', (c) => c.notNull().defaultTo('{}'))
    .execute();
  await db.schema.createIndex('revisions_outcome_idx').ifNotExists().on('revisions').column('outcome').execute();
  await db.schema.createIndex('revisions_run_id_idx').ifNotExists().on('revisions').column('run_id').execute();

  await db.schema
    .createTable('resources')
    .ifNotExists()
    .addColumn('id', idType(db), idConstraints(db))
    .addColumn('kind', 'varchar(64)', (c) => c.notNull())
    .addColumn('name', 'varchar(255)', (c) => c.notNull())
    .addColumn('uuid', 'varchar(64)')
    .addColumn('spec_hash', 'varchar(128)')
    .addColumn('generation', 'integer', (c) => c.notNull().defaultTo(0))
    .addColumn('desired_state', 'varchar(32)')
    .addColumn('observed_status', 'varchar(64)')
    .addColumn('last_error', 'text')
    .addColumn('attempts', 'integer', (c) => c.notNull().defaultTo(0))
    .addColumn('details', 'text', (c) => c.notNull().defaultTo('{}'))
    .addColumn('created_at', 'varchar(32)', (c) => c.notNull())
    .addColumn('updated_at', 'varchar(32)', (c) => c.notNull())
    .addColumn('last_applied_revision', 'integer', (c) => c.references('revisions.id').onDelete('set null'))
    .addUniqueConstraint('resources_kind_name_uq', ['kind', 'name'])
    .execute();

  await db.schema
    .createTable('journal')
    .ifNotExists()
    .addColumn('id', idType(db), idConstraints(db))
    .addColumn('run_id', 'varchar(64)', (c) => c.notNull())
    .addColumn('kind', 'varchar(64)', (c) => c.notNull())
    .addColumn('name', 'varchar(255)', (c) => c.notNull())
    .addColumn('action', 'varchar(32)', (c) => c.notNull())
    .addColumn('intent', 'text', (c) => c.notNull().defaultTo('{}'))
    .addColumn('status', 'varchar(16)', (c) => c.notNull())
    .addColumn('error', 'text')
    .addColumn('attempt', 'integer', (c) => c.notNull().defaultTo(1))
    .addColumn('started_at', 'varchar(32)', (c) => c.notNull())
    .addColumn('finished_at', 'varchar(32)')
    .execute();
  await db.schema.createIndex('journal_status_idx').ifNotExists().on('journal').column('status').execute();
  await db.schema.createIndex('journal_resource_idx').ifNotExists().on('journal').columns(['kind', 'name']).execute();
  await db.schema.createIndex('journal_run_id_idx').ifNotExists().on('journal').column('run_id').execute();

  await db.schema
    .createTable('events')
    .ifNotExists()
    .addColumn('id', idType(db), idConstraints(db))
    .addColumn('at', 'varchar(32)', (c) => c.notNull())
    .addColumn('level', 'varchar(8)', (c) => c.notNull())
    .addColumn('kind', 'varchar(64)')
    .addColumn('name', 'varchar(255)')
    .addColumn('message', 'text', (c) => c.notNull())
    .execute();

  await db.schema
    .createTable('locks')
    .ifNotExists()
    .addColumn('name', 'varchar(64)', (c) => c.primaryKey())
    .addColumn('pid', 'integer', (c) => c.notNull())
    .addColumn('hostname', 'varchar(255)', (c) => c.notNull())
    .addColumn('command', 'text', (c) => c.notNull())
    .addColumn('acquired_at', 'varchar(32)', (c) => c.notNull())
    .addColumn('heartbeat_at', 'varchar(32)', (c) => c.notNull())
    .execute();
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any
export async function down(db: Kysely<any>): Promise<void> {
  for (const t of ['locks', 'events', 'journal', 'resources', 'revisions']) {
    await db.schema.dropTable(t).ifExists().execute();
  }
}
