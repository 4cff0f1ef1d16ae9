import { sql, type Kysely } from 'kysely';
import { RESOURCE_COLUMNS, withColumns } from './columns.js';
import { idConstraints, idType, isPostgres } from './dialect.js';

/**
 * The host in every key (issue 20): names are unique per host, not per DB.
 * - `resources`: the unique key `(kind, name)` of 0001 becomes `(host, kind, name)`. SQLite cannot
 *   change a constraint in place, so there the table is rebuilt: a new table, every row copied with
 *   its id, the old one dropped, the new one renamed, and the AUTOINCREMENT counter carried over
 *   (ids are never reused). PostgreSQL swaps the constraint. The index on `host` alone (0002) goes:
 *   the new unique index starts with `host`.
 * - `journal`: no unique key; its per-resource index becomes `(host, kind, name)`.
 * - `events`: gains a `host` column (null for events about no resource; `local` for the old rows
 *   that name a resource).
 * - `conditions`, `baselines`, `created_paths` and `volume_references` were created with `host` in
 *   their primary keys (0004-0007); `hosts`, `revisions`, `git_sources`, `controls` and `locks`
 *   are not per resource. Nothing to do for them.
 */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export async function up(db: Kysely<any>): Promise<void> {
  if (isPostgres(db)) {
    await db.schema.alterTable('resources').dropConstraint('resources_kind_name_uq').execute();
    await db.schema.alterTable('resources').addUniqueConstraint('resources_host_kind_name_uq', ['host', 'kind', 'name']).execute();
  } else {
    await withColumns(db.schema.createTable('resources_new').addColumn('id', idType(db), idConstraints(db)), RESOURCE_COLUMNS)
      .addColumn('last_applied_revision', 'integer', (c) => c.references('revisions.id').onDelete('set null'))
      .addColumn('host', 'varchar(64)', (c) => c.notNull().defaultTo('local'))
      .addUniqueConstraint('resources_host_kind_name_uq', ['host', 'kind', 'name'])
      .execute();
    const columns = sql.raw(
      'id, kind, name, uuid, spec_hash, generation, desired_state, observed_status, last_error, attempts, details, created_at, updated_at, last_applied_revision, host',
    );
    await sql`insert into resources_new (${columns}) select ${columns} from resources`.execute(db);
    const seq = await sql<{ seq: number }>`select seq from sqlite_sequence where name = 'resources'`.execute(db);
    await db.schema.dropTable('resources').execute();
    await db.schema.alterTable('resources_new').renameTo('resources').execute();
    const last = seq.rows[0]?.seq;
    if (last !== undefined) await sql`update sqlite_sequence set seq = max(seq, ${last}) where name = 'resources'`.execute(db);
  }
  await db.schema.dropIndex('resources_host_idx').ifExists().execute();
  await db.schema.dropIndex('journal_resource_idx').ifExists().execute();
  await db.schema.createIndex('journal_resource_idx').on('journal').columns(['host', 'kind', 'name']).execute();
  await db.schema.alterTable('events').addColumn('host', 'varchar(64)').execute();
  await db.updateTable('events').set({ host: 'local' }).where('kind', 'is not', null).execute();
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any
export async function down(): Promise<void> {
  throw new Error('migration 0008_host_keys cannot be undone: names are no longer unique without their host');
}
