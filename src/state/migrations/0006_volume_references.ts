import type { Kysely } from 'kysely';
import { withColumns } from './columns.js';

/**
 * Every use of a file virtform has seen on the host (issue 19, the data rule): the file's path,
 * who used it (`VirtualMachine/x`, `domain x`, `Volume/x`, `volume pool/file`), how (disk, kernel,
 * initrd, backing) and where it was seen (live or persistent definition), whether virtform manages
 * the user, and when it was first seen. A volume once used stays data after its user is gone; the
 * rows of a file go when virtform deletes that file with consent.
 * Schema-builder only (dialect-neutral), like 0001 to 0004.
 */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export async function up(db: Kysely<any>): Promise<void> {
  const references = db.schema.createTable('volume_references').ifNotExists();
  await withColumns(
    references,
    'host varchar(64) ! =local, path text !, used_by varchar(300) !, role varchar(16) !, source varchar(32) !, managed integer !, first_seen varchar(32) !',
  )
    .addPrimaryKeyConstraint('volume_references_pk', ['host', 'path', 'used_by', 'role', 'source'])
    .execute();
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any
export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.dropTable('volume_references').ifExists().execute();
}
