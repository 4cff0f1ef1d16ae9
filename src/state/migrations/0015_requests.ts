import type { Kysely } from 'kysely';
import { withColumns } from './columns.js';
import { idConstraints, idType } from './dialect.js';

/**
 * Requests to the writer lease's holder (issue 24): an imperative command (`reconcile --plan`,
 * `restart`, `snapshot revert`) that needs the lease while a watcher holds it is queued here and
 * carried out by that watcher between its runs (src/state/requests.ts, src/watch/requests.ts).
 *
 * A table of its own, not rows of `controls` (0004): a control is one named switch (`suspend`)
 * whose row is overwritten; a request has an identity (many may wait), a lifecycle
 * (queued → running → succeeded/failed, or cancelled/abandoned) and an outcome the requester waits
 * for. Like `controls`, a request is written WITHOUT the writer lease (the requester does not hold
 * it); its claim and outcome are written by the lease holder (fenced like every write of its).
 * Schema-builder only (dialect-neutral).
 */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export async function up(db: Kysely<any>): Promise<void> {
  const requests = db.schema.createTable('requests').ifNotExists().addColumn('id', idType(db), idConstraints(db));
  await withColumns(
    requests,
    'type varchar(64) !, args text !, status varchar(16) !, requested_by text !, requested_at varchar(32) !, ' +
      'claimed_by varchar(255), started_at varchar(32), finished_at varchar(32), outcome text',
  ).execute();
  await db.schema.createIndex('requests_status').ifNotExists().on('requests').columns(['status', 'id']).execute();
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any
export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.dropIndex('requests_status').ifExists().execute();
  await db.schema.dropTable('requests').ifExists().execute();
}
