import type { Kysely } from 'kysely';
import { createLocks, withColumns } from './columns.js';

/**
 * The writer lease (issue 20) replaces the writer lock of 0001: one row per lease name with its
 * holder, the fencing `epoch` and `expires_at` by the database's clock (see src/state/lease.ts).
 * Times are integers, ms since 1970, so both dialects compare them the same way. The `locks`
 * table goes: nothing reads it any more (a lock row left by a process of an older virtform is
 * not carried over). Schema-builder only (dialect-neutral).
 */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export async function up(db: Kysely<any>): Promise<void> {
  const leases = db.schema.createTable('leases').ifNotExists();
  await withColumns(
    leases,
    'name varchar(64) pk, holder varchar(255) !, pid integer !, hostname varchar(255) !, command text !, epoch bigint !, ' +
      'acquired_at bigint !, renewed_at bigint !, expires_at bigint !',
  ).execute();
  await db.schema.dropTable('locks').ifExists().execute();
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any
export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.dropTable('leases').ifExists().execute();
  await createLocks(db);
}
