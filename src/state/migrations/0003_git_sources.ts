import type { Kysely } from 'kysely';
import { withColumns } from './columns.js';

/**
 * `git_sources`: one row per git manifest source (`--git URL` with its ref and path) this DB has
 * been reconciled from: the commit last fetched, the commit last applied (and the run's outcome),
 * and why they differ when they do (validation failed, signature refused, fetch failed). The
 * revisions table keeps the commit of every run; this table is what `status` shows across
 * restarts. The URL is stored redacted (no credentials). Schema-builder only, like 0001.
 */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export async function up(db: Kysely<any>): Promise<void> {
  const gitSources = db.schema.createTable('git_sources').ifNotExists();
  await withColumns(
    gitSources,
    'id varchar(64) pk, url text !, ref varchar(300) !, path text ! =, fetched_commit varchar(64), fetched_at varchar(32), ' +
      'applied_commit varchar(64), applied_at varchar(32), applied_outcome varchar(32), applied_revision integer, rejected_commit varchar(64), ' +
      'error text, error_kind varchar(32), error_at varchar(32), fetch_error text, fetch_error_at varchar(32), updated_at varchar(32) !',
  ).execute();
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any
export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.dropTable('git_sources').ifExists().execute();
}
