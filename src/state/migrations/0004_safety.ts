import type { Kysely } from 'kysely';

/**
 * Safety controls (issue #14):
 * - `controls`: named switches set by `virtform suspend` / `resume` WITHOUT the writer lock (a
 *   watcher holds that for its whole life); a watcher reads them before each run. One row per
 *   switch: `suspend` (value, who set it and when).
 * - `conditions`: the last known status of each condition of each resource, so that
 *   `lastTransitionTime` survives restarts and only moves when the status does.
 * Schema-builder only (dialect-neutral), like 0001 and 0002.
 */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export async function up(db: Kysely<any>): Promise<void> {
  await db.schema
    .createTable('controls')
    .ifNotExists()
    .addColumn('name', 'varchar(64)', (c) => c.primaryKey())
    .addColumn('value', 'text', (c) => c.notNull())
    .addColumn('reason', 'text')
    .addColumn('set_by', 'text', (c) => c.notNull())
    .addColumn('set_at', 'varchar(32)', (c) => c.notNull())
    .execute();
  await db.schema
    .createTable('conditions')
    .ifNotExists()
    .addColumn('host', 'varchar(64)', (c) => c.notNull().defaultTo('local'))
    .addColumn('kind', 'varchar(64)', (c) => c.notNull())
    .addColumn('name', 'varchar(255)', (c) => c.notNull())
    .addColumn('type', 'varchar(32)', (c) => c.notNull())
    .addColumn('status', 'varchar(8)', (c) => c.notNull())
    .addColumn('reason', 'varchar(64)', (c) => c.notNull())
    .addColumn('message', 'text', (c) => c.notNull())
    .addColumn('last_transition_time', 'varchar(32)', (c) => c.notNull())
    .addPrimaryKeyConstraint('conditions_pk', ['host', 'kind', 'name', 'type'])
    .execute();
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any
export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.dropTable('conditions').ifExists().execute();
  await db.schema.dropTable('controls').ifExists().execute();
}
