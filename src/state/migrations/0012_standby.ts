import type { Kysely } from 'kysely';

/**
 * The standby controller (issue 21): the lease row records its holder's machine identity (kernel
 * boot id and pid namespace, src/state/lease.ts `machineIdentity`), so a holder's pid is tested
 * for life only by a process that can see it. Before, "this machine" meant "this host name": a
 * container or a cloned VM with the same name would find a live holder's pid "dead" and take the
 * lease over at once. Null for rows written before (never taken over early). Schema-builder only.
 */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export async function up(db: Kysely<any>): Promise<void> {
  await db.schema.alterTable('leases').addColumn('machine', 'varchar(255)').execute();
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any
export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.alterTable('leases').dropColumn('machine').execute();
}
