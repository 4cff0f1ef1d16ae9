import type { Kysely } from 'kysely';
import { withColumns } from './columns.js';

/**
 * The no-op fast path (issue 22): for each resource, the sha256 of its definition's raw bytes and
 * a digest of everything else the kind's comparison of that definition depends on (the spec hash,
 * the record, its facts, the baseline, the libvirt version, the comparison's revision), recorded
 * after a run whose full comparison found no difference. A later run whose bytes and inputs hash
 * to the same values parses and compares nothing (`src/reconcile/core/checks.ts`). A table of its
 * own, read whole once per run like the baselines' index. Schema-builder only (dialect-neutral).
 */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export async function up(db: Kysely<any>): Promise<void> {
  const t = db.schema.createTable('definition_checks').ifNotExists();
  await withColumns(t, 'host varchar(64) ! =local, kind varchar(64) !, name varchar(255) !, sha256 varchar(64) !, inputs varchar(64) !')
    .addPrimaryKeyConstraint('definition_checks_pk', ['host', 'kind', 'name'])
    .execute();
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any
export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.dropTable('definition_checks').ifExists().execute();
}
