import type { Kysely } from 'kysely';
import { withColumns } from './columns.js';

/**
 * `created_paths` (issue 19, finding 12): the paths on the host virtform itself created for a
 * resource — a pool's directory and the parent directories it had to create — so that deleting
 * the resource removes only those (when empty), never a directory that existed before. Written
 * right after the host created them, before the resource is recorded, so a run killed in between
 * still knows. Schema-builder only (dialect-neutral), like 0001-0004.
 */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export async function up(db: Kysely<any>): Promise<void> {
  const createdPaths = db.schema.createTable('created_paths').ifNotExists();
  await withColumns(createdPaths, 'host varchar(64) ! =local, kind varchar(64) !, name varchar(255) !, path text !, created_at varchar(32) !')
    .addPrimaryKeyConstraint('created_paths_pk', ['host', 'kind', 'name', 'path'])
    .execute();
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any
export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.dropTable('created_paths').ifExists().execute();
}
