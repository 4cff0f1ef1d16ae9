import type { Kysely } from 'kysely';
import { withColumns } from './columns.js';

/**
 * Records are tied to the host they describe: a `hosts` table (one row per libvirt host this DB
 * has managed: its URI, hostname, libvirt host UUID from the capabilities XML and driver) and a
 * `host` column on `resources` and `journal`. Existing rows, and rows written by callers that do
 * not name a host, belong to the single implicit host `local` (see DEFAULT_HOST_ID); its `hosts` row
 * is recorded on first use. Schema-builder only (dialect-neutral), like 0001.
 */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export async function up(db: Kysely<any>): Promise<void> {
  const hosts = db.schema.createTable('hosts').ifNotExists();
  await withColumns(
    hosts,
    'id varchar(64) pk, uri text !, hostname varchar(255) !, host_uuid varchar(64), driver varchar(32) !, first_seen varchar(32) !, last_seen varchar(32) !',
  ).execute();
  // No REFERENCES hosts(id): SQLite cannot add a foreign-key column with a non-NULL default, and
  // the implicit host's row only exists once it has been seen.
  await db.schema.alterTable('resources').addColumn('host', 'varchar(64)', (c) => c.notNull().defaultTo('local')).execute();
  await db.schema.alterTable('journal').addColumn('host', 'varchar(64)', (c) => c.notNull().defaultTo('local')).execute();
  await db.schema.createIndex('resources_host_idx').ifNotExists().on('resources').column('host').execute();
  await db.schema.createIndex('journal_host_idx').ifNotExists().on('journal').column('host').execute();
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any
export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.dropIndex('journal_host_idx').ifExists().execute();
  await db.schema.dropIndex('resources_host_idx').ifExists().execute();
  await db.schema.alterTable('journal').dropColumn('host').execute();
  await db.schema.alterTable('resources').dropColumn('host').execute();
  await db.schema.dropTable('hosts').ifExists().execute();
}
