import type { Kysely } from 'kysely';

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
  await db.schema
    .createTable('volume_references')
    .ifNotExists()
    .addColumn('host', 'varchar(64)', (c) => c.notNull().defaultTo('local'))
    .addColumn('path', 'text', (c) => c.notNull())
    .addColumn('used_by', 'varchar(300)', (c) => c.notNull())
    .addColumn('role', 'varchar(16)', (c) => c.notNull())
    .addColumn('source', 'varchar(32)', (c) => c.notNull())
    .addColumn('managed', 'integer', (c) => c.notNull())
    .addColumn('first_seen', 'varchar(32)', (c) => c.notNull())
    .addPrimaryKeyConstraint('volume_references_pk', ['host', 'path', 'used_by', 'role', 'source'])
    .execute();
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any
export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.dropTable('volume_references').ifExists().execute();
}
