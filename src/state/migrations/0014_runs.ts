import type { Kysely } from 'kysely';
import { withColumns } from './columns.js';

/**
 * The dashboard's history (issue 23):
 * - `runs`: one row per run of the watcher (and `reconcile`): when, what triggered it, its outcome
 *   and duration, the revision and git commit it applied, its counts (JSON: create/change/replace/
 *   delete/conflict/steps/held/failed), its failures (JSON: resource, error, code) and the timing of
 *   each step (JSON: kind, name, host, op, ms, outcome). Pruned on insert to the newest N
 *   (`--history-runs`, default 500).
 * - `git_commits`: what a fetch learnt of a commit (author, subject and body, commit time), by
 *   hash: the overview's applied and fetched revision and every run of the history name their
 *   commit with it. Schema-builder only.
 */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export async function up(db: Kysely<any>): Promise<void> {
  await withColumns(
    db.schema.createTable('runs').ifNotExists(),
    'id varchar(64) pk, started_at varchar(32) !, finished_at varchar(32) !, trigger varchar(255) ! =, outcome varchar(32) !, ' +
      'duration_ms integer ! =0, revision_id integer, git_commit varchar(64), counts text ! ={}, failures text ! =[], steps text ! =[]',
  ).execute();
  await db.schema.createIndex('runs_finished_at').ifNotExists().on('runs').column('finished_at').execute();
  await withColumns(
    db.schema.createTable('git_commits').ifNotExists(),
    'sha varchar(64) pk, author text !, message text !, committed_at varchar(32) !, recorded_at varchar(32) !',
  ).execute();
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any
export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.dropTable('git_commits').ifExists().execute();
  await db.schema.dropIndex('runs_finished_at').ifExists().execute();
  await db.schema.dropTable('runs').ifExists().execute();
}
