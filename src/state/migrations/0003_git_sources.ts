import type { Kysely } from 'kysely';

/**
 * `git_sources`: one row per git manifest source (`--git URL` with its ref and path) this DB has
 * been reconciled from: the commit last fetched, the commit last applied (and the run's outcome),
 * and why they differ when they do (validation failed, signature refused, fetch failed). The
 * revisions table keeps the commit of every run; this table is what `status` shows across
 * restarts. The URL is stored redacted (no credentials). Schema-builder only, like 0001.
 */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export async function up(db: Kysely<any>): Promise<void> {
  await db.schema
    .createTable('git_sources')
    .ifNotExists()
    .addColumn('id', 'varchar(64)', (c) => c.primaryKey())
    .addColumn('url', 'text', (c) => c.notNull())
    .addColumn('ref', 'varchar(300)', (c) => c.notNull())
    .addColumn('path', 'text', (c) => c.notNull().defaultTo(''))
    .addColumn('fetched_commit', 'varchar(64)')
    .addColumn('fetched_at', 'varchar(32)')
    .addColumn('applied_commit', 'varchar(64)')
    .addColumn('applied_at', 'varchar(32)')
    .addColumn('applied_outcome', 'varchar(32)')
    .addColumn('applied_revision', 'integer')
    .addColumn('rejected_commit', 'varchar(64)')
    .addColumn('error', 'text')
    .addColumn('error_kind', 'varchar(32)')
    .addColumn('error_at', 'varchar(32)')
    .addColumn('fetch_error', 'text')
    .addColumn('fetch_error_at', 'varchar(32)')
    .addColumn('updated_at', 'varchar(32)', (c) => c.notNull())
    .execute();
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any
export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.dropTable('git_sources').ifExists().execute();
}
