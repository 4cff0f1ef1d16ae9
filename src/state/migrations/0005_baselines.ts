import type { Kysely } from 'kysely';
import { withColumns } from './columns.js';

/**
 * Exact drift (issue 18): the baseline of each domain, network and pool definition, what libvirt
 * gave back (its inactive XML) after virtform's last write to it: the XML itself (to name what
 * differs), the sha256 of its raw bytes (equal bytes: no parse), and the libvirt and hypervisor
 * versions it was recorded under (another version re-baselines instead of reporting drift).
 * A table of its own, not a column of `resources`: the state index (read every run) stays small,
 * and the XML is read only for objects whose hash differs. Schema-builder only (dialect-neutral).
 */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export async function up(db: Kysely<any>): Promise<void> {
  const baselines = db.schema.createTable('baselines').ifNotExists();
  await withColumns(
    baselines,
    'host varchar(64) ! =local, kind varchar(64) !, name varchar(255) !, sha256 varchar(64) !, xml text !, version varchar(128) !, recorded_at varchar(32) !',
  )
    .addPrimaryKeyConstraint('baselines_pk', ['host', 'kind', 'name'])
    .execute();
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any
export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.dropTable('baselines').ifExists().execute();
}
