import type { Kysely } from 'kysely';
import { withColumns } from './columns.js';

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
  const controls = db.schema.createTable('controls').ifNotExists();
  await withColumns(controls, 'name varchar(64) pk, value text !, reason text, set_by text !, set_at varchar(32) !').execute();
  const conditions = db.schema.createTable('conditions').ifNotExists();
  await withColumns(
    conditions,
    'host varchar(64) ! =local, kind varchar(64) !, name varchar(255) !, type varchar(32) !, status varchar(8) !, reason varchar(64) !, ' +
      'message text !, last_transition_time varchar(32) !',
  )
    .addPrimaryKeyConstraint('conditions_pk', ['host', 'kind', 'name', 'type'])
    .execute();
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any
export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.dropTable('conditions').ifExists().execute();
  await db.schema.dropTable('controls').ifExists().execute();
}
