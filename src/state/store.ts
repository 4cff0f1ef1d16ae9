import { accessSync, constants as fsConstants, existsSync, mkdirSync, statSync } from 'node:fs';
import { dirname } from 'node:path';
import Database from 'better-sqlite3';
import { Kysely, Migrator, SqliteDialect, sql, type Selectable } from 'kysely';
import { backoffDelay, sleep } from '../util/backoff.js';
import { acquireWriterLock, type LockOwner, type WriterLock } from './lock.js';
import { migrationProvider } from './migrations/index.js';
import { DEFAULT_HOST_ID, HostMismatchError, sameHost, type HostBinding, type HostIdentity, type HostRecord } from './hosts.js';
import type { GitSourcesTable, HostsTable, JournalTable, ResourcesTable, RevisionsTable, StateDatabase } from './schema.js';
import { isConditionType, type Condition, type ConditionDraft } from '../model/conditions.js';
import { resourceKey } from '../model/kinds.js';

/** `virtform suspend`: applies paused for this DB (read by every run before it applies). */
/** A use of a file the state DB remembers (`volume_references`): who used it, how, where it was seen. */
export interface StoredReference {
  path: string;
  /** `VirtualMachine/x`, `Volume/x` (managed), `domain x`, `volume pool/file` (not managed). */
  by: string;
  role: string;
  source: string;
  managed: boolean;
  firstSeen?: string;
}

export interface Suspension {
  /** ISO time it was set. */
  since: string;
  /** Who set it: `user@hostname (pid N)`. */
  by: string;
  reason: string | null;
}

/** What {@link StateStore.resources.indexPages} returns for each resource. */
export type ResourceIndexEntry = Pick<ResourceRecord, 'kind' | 'name' | 'uuid' | 'specHash' | 'desiredState' | 'lastError'> & {
  /** The row's id: the pages' keyset. */
  id: number;
  /**
   * `details.facts`, when the record has any: the little a kind keeps about its object beyond the
   * applied config and needs on every run (a VM's resolved MACs and pending restart).
   */
  facts?: Record<string, unknown>;
};

export interface ResourceRecord {
  kind: string;
  name: string;
  uuid: string | null;
  specHash: string | null;
  /** 0 until a spec hash is first recorded; +1 each time a different spec hash is recorded. */
  generation: number;
  desiredState: string | null;
  observedStatus: string | null;
  lastError: string | null;
  attempts: number;
  details: Record<string, unknown>;
  createdAt: string;
  updatedAt: string;
  lastAppliedRevision: number | null;
}

export type JournalStatus = 'open' | 'succeeded' | 'failed' | 'abandoned';

export interface JournalEntry {
  id: number;
  runId: string;
  kind: string;
  name: string;
  action: string;
  intent: Record<string, unknown>;
  status: JournalStatus;
  error: string | null;
  attempt: number;
  startedAt: string;
  finishedAt: string | null;
}

export interface RevisionRecord {
  id: number;
  runId: string;
  manifestDigest: string;
  gitCommit: string | null;
  gitDirty: boolean;
  startedAt: string;
  finishedAt: string | null;
  outcome: string;
  summary: Record<string, unknown>;
}

/** What the state DB records of one git manifest source (see migration 0003). */
export interface GitSourceRecord {
  id: string;
  url: string;
  ref: string;
  path: string;
  fetchedCommit: string | null;
  fetchedAt: string | null;
  appliedCommit: string | null;
  appliedAt: string | null;
  appliedOutcome: string | null;
  appliedRevision: number | null;
  rejectedCommit: string | null;
  error: string | null;
  errorKind: string | null;
  errorAt: string | null;
  fetchError: string | null;
  fetchErrorAt: string | null;
  updatedAt: string;
}

export type GitSourceUpdate = { id: string; url: string; ref: string; path: string } & Partial<Omit<GitSourceRecord, 'id' | 'url' | 'ref' | 'path' | 'updatedAt'>>;

function toGitSource(r: Selectable<GitSourcesTable>): GitSourceRecord {
  return {
    id: r.id, url: r.url, ref: r.ref, path: r.path,
    fetchedCommit: r.fetched_commit, fetchedAt: r.fetched_at,
    appliedCommit: r.applied_commit, appliedAt: r.applied_at, appliedOutcome: r.applied_outcome,
    appliedRevision: r.applied_revision === null ? null : Number(r.applied_revision),
    rejectedCommit: r.rejected_commit, error: r.error, errorKind: r.error_kind, errorAt: r.error_at,
    fetchError: r.fetch_error, fetchErrorAt: r.fetch_error_at, updatedAt: r.updated_at,
  };
}

/** What a run reads of every baseline: its hash and the versions it was recorded under. */
export interface BaselineEntry {
  sha256: string;
  version: string;
}

export interface EventRecord {
  at: string;
  level: string;
  kind: string | null;
  name: string | null;
  message: string;
}

export type ResourceUpsert = { kind: string; name: string } & Partial<
  Omit<ResourceRecord, 'kind' | 'name' | 'createdAt' | 'updatedAt' | 'generation'>
>;

export interface OpenOptions {
  /** Clock, for tests. Default: `() => new Date()`. */
  now?: () => Date;
  /** SQLite busy timeout in ms (default 5000). */
  busyTimeoutMs?: number;
  /** Open an existing DB only: a missing file is a {@link StateDbMissingError}, nothing is created. */
  mustExist?: boolean;
}

/** `openStateStore(path, { mustExist: true })` on a path where no state DB exists. */
export class StateDbMissingError extends Error {
  override readonly name = 'StateDbMissingError';
  constructor(readonly path: string) {
    super(`state DB ${path} does not exist (nothing has been applied with this --db yet)`);
  }
}

const DEFAULT_LIMIT = 50;

/** SQLITE_BUSY retries: 10 ms doubling to 250 ms, half of it random. */
const BUSY_BACKOFF = { baseMs: 10, maxMs: 250 } as const;

/**
 * Retry a read-then-write transaction that SQLite refused with SQLITE_BUSY. In WAL mode a deferred
 * transaction that read before another connection wrote cannot upgrade to a writer, and SQLite
 * fails it at once instead of waiting `busy_timeout`; running it again from the start succeeds.
 */
async function withBusyRetry<T>(fn: () => Promise<T>, attempts = 20): Promise<T> {
  for (let i = 1; ; i += 1) {
    try {
      return await fn();
    } catch (e) {
      const code = (e as { code?: string }).code ?? '';
      if (!code.startsWith('SQLITE_BUSY') || i >= attempts) throw e;
      await sleep(backoffDelay(BUSY_BACKOFF, i));
    }
  }
}

function parseJson(text: string | null | undefined): Record<string, unknown> {
  if (!text) return {};
  try {
    const v: unknown = JSON.parse(text);
    return v && typeof v === 'object' && !Array.isArray(v) ? (v as Record<string, unknown>) : {};
  } catch { // safe-catch: this folder does not exist: look at its parent
    return {};
  }
}

type IndexTuple = [number, string, string, string | null, string | null, string | null, string | null, Record<string, unknown> | null];

/**
 * See {@link StateStore.resources.indexPages}. Each page comes back as ONE JSON array of row tuples
 * built by SQLite (`json_group_array`), parsed with JSON.parse: about half the cost of letting the
 * driver build a JS object per row (1.8 vs 3.8 ms for 2,000 rows measured here), a good part of
 * what a no-op plan spends besides waiting for libvirt. PostgreSQL's equivalent is
 * `json_agg(json_build_array(...))` (returned already parsed).
 */
async function* indexPages(db: Kysely<StateDatabase>, pageSize: number): AsyncGenerator<ResourceIndexEntry[]> {
  for (let after = 0; ;) {
    const page = db
      .selectFrom('resources')
      .select(['id', 'kind', 'name', 'uuid', 'spec_hash', 'desired_state', 'last_error', 'details'])
      .where('id', '>', after)
      .orderBy('id')
      .limit(pageSize)
      .as('page');
    const { rows } = await db
      .selectFrom(page)
      .select(sql<string>`json_group_array(json_array(id, kind, name, uuid, spec_hash, desired_state, last_error, json_extract(details, '$.facts')))`.as('rows'))
      .executeTakeFirstOrThrow();
    const tuples = (typeof rows === 'string' ? JSON.parse(rows) : rows) as IndexTuple[];
    if (tuples.length === 0) return;
    const entries: ResourceIndexEntry[] = new Array(tuples.length);
    let last = after;
    for (let i = 0; i < tuples.length; i++) {
      const [id, kind, name, uuid, specHash, desiredState, lastError, facts] = tuples[i]!;
      entries[i] = { id, kind, name, uuid, specHash, desiredState, lastError };
      if (facts && typeof facts === 'object') entries[i]!.facts = facts;
      if (id > last) last = id;
    }
    yield entries;
    if (tuples.length < pageSize) return;
    after = last;
  }
}

function toResource(r: Selectable<ResourcesTable>): ResourceRecord {
  return {
    kind: r.kind,
    name: r.name,
    uuid: r.uuid,
    specHash: r.spec_hash,
    generation: Number(r.generation),
    desiredState: r.desired_state,
    observedStatus: r.observed_status,
    lastError: r.last_error,
    attempts: Number(r.attempts),
    details: parseJson(r.details),
    createdAt: r.created_at,
    updatedAt: r.updated_at,
    lastAppliedRevision: r.last_applied_revision === null ? null : Number(r.last_applied_revision),
  };
}

function toJournal(r: Selectable<JournalTable>): JournalEntry {
  return {
    id: Number(r.id),
    runId: r.run_id,
    kind: r.kind,
    name: r.name,
    action: r.action,
    intent: parseJson(r.intent),
    status: r.status,
    error: r.error,
    attempt: Number(r.attempt),
    startedAt: r.started_at,
    finishedAt: r.finished_at,
  };
}

function toHost(r: Selectable<HostsTable>): HostRecord {
  return {
    id: r.id, uri: r.uri, hostname: r.hostname, uuid: r.host_uuid, driver: r.driver, firstSeen: r.first_seen, lastSeen: r.last_seen,
  };
}

function toRevision(r: Selectable<RevisionsTable>): RevisionRecord {
  return {
    id: Number(r.id),
    runId: r.run_id,
    manifestDigest: r.manifest_digest,
    gitCommit: r.git_commit,
    gitDirty: Number(r.git_dirty) !== 0,
    startedAt: r.started_at,
    finishedAt: r.finished_at,
    outcome: r.outcome,
    summary: parseJson(r.summary),
  };
}

/**
 * virtform's persistent state: resources, operation journal, applied revisions, events and the
 * single-writer lock. All queries go through kysely's query builder (dialect-neutral); only
 * {@link openStateStore} knows it is SQLite.
 *
 * Open one StateStore per DB file per process: better-sqlite3 is synchronous, so two connections
 * to the same file in one thread can stall each other for `busy_timeout` on overlapping writes.
 */
export class StateStore {
  readonly path: string;
  /** The kysely instance, for advanced queries and tests. Prefer the repositories below. */
  readonly db: Kysely<StateDatabase>;
  readonly #sqlite: Database.Database;
  readonly #clock: () => Date;
  #closed = false;

  /** Use {@link openStateStore}. */
  constructor(path: string, sqlite: Database.Database, clock: () => Date = () => new Date()) {
    this.path = path;
    this.#sqlite = sqlite;
    this.#clock = clock;
    this.db = new Kysely<StateDatabase>({ dialect: new SqliteDialect({ database: sqlite }) });
  }

  #now(): string {
    return this.#clock().toISOString();
  }

  readonly resources = {
    get: async (kind: string, name: string): Promise<ResourceRecord | undefined> => {
      const row = await this.db
        .selectFrom('resources')
        .selectAll()
        .where('kind', '=', kind)
        .where('name', '=', name)
        .executeTakeFirst();
      return row ? toResource(row) : undefined;
    },

    /** All resources (optionally of one kind), ordered by kind then name. */
    list: async (kind?: string): Promise<ResourceRecord[]> => {
      let q = this.db.selectFrom('resources').selectAll();
      if (kind !== undefined) q = q.where('kind', '=', kind);
      const rows = await q.orderBy('kind').orderBy('name').execute();
      return rows.map(toResource);
    },

    /**
     * The narrow view of every resource that observing a large inventory needs (identity, applied
     * spec hash, desired state, last error), in pages of `pageSize` rows by id (keyset pagination).
     * better-sqlite3 reads synchronously: a caller that yields to I/O between pages keeps its
     * network replies flowing while it reads. Pages are separate statements, like any two reads.
     */
    indexPages: (pageSize: number): AsyncGenerator<ResourceIndexEntry[]> => indexPages(this.db, pageSize),

    /** Full records (with details) for the given kind/name pairs; missing ones are left out. */
    getMany: async (keys: { kind: string; name: string }[]): Promise<ResourceRecord[]> => {
      const out: ResourceRecord[] = [];
      for (let i = 0; i < keys.length; i += 200) {
        const chunk = keys.slice(i, i + 200);
        const rows = await this.db
          .selectFrom('resources')
          .selectAll()
          .where((eb) => eb.or(chunk.map((k) => eb.and([eb('kind', '=', k.kind), eb('name', '=', k.name)]))))
          .execute();
        out.push(...rows.map(toResource));
      }
      return out;
    },

    /** Insert or update; fields not given (undefined) keep their value; generation increments when specHash changes. */
    upsert: async (r: ResourceUpsert): Promise<ResourceRecord> => {
      return withBusyRetry(() => this.db.transaction().execute(async (trx) => {
        const now = this.#now();
        const existing = await trx
          .selectFrom('resources')
          .selectAll()
          .where('kind', '=', r.kind)
          .where('name', '=', r.name)
          .executeTakeFirst();
        if (!existing) {
          await trx
            .insertInto('resources')
            .values({
              kind: r.kind,
              name: r.name,
              uuid: r.uuid ?? null,
              spec_hash: r.specHash ?? null,
              generation: r.specHash ? 1 : 0,
              desired_state: r.desiredState ?? null,
              observed_status: r.observedStatus ?? null,
              last_error: r.lastError ?? null,
              attempts: r.attempts ?? 0,
              details: JSON.stringify(r.details ?? {}),
              created_at: now,
              updated_at: now,
              last_applied_revision: r.lastAppliedRevision ?? null,
            })
            .execute();
        } else {
          const specChanged = r.specHash !== undefined && r.specHash !== null && r.specHash !== existing.spec_hash;
          await trx
            .updateTable('resources')
            .set({
              ...(r.uuid !== undefined && { uuid: r.uuid }),
              ...(r.specHash !== undefined && { spec_hash: r.specHash }),
              ...(specChanged && { generation: Number(existing.generation) + 1 }),
              ...(r.desiredState !== undefined && { desired_state: r.desiredState }),
              ...(r.observedStatus !== undefined && { observed_status: r.observedStatus }),
              ...(r.lastError !== undefined && { last_error: r.lastError }),
              ...(r.attempts !== undefined && { attempts: r.attempts }),
              ...(r.details !== undefined && { details: JSON.stringify(r.details ?? {}) }),
              ...(r.lastAppliedRevision !== undefined && { last_applied_revision: r.lastAppliedRevision }),
              updated_at: now,
            })
            .where('id', '=', existing.id)
            .execute();
        }
        const row = await trx
          .selectFrom('resources')
          .selectAll()
          .where('kind', '=', r.kind)
          .where('name', '=', r.name)
          .executeTakeFirstOrThrow();
        return toResource(row);
      }));
    },

    /**
     * Update observed status / last error / attempts. Fields not given keep their value.
     * If the resource has no row yet, one is created (generation 0, no spec hash).
     */
    setStatus: async (
      kind: string,
      name: string,
      s: { observedStatus?: string | null; lastError?: string | null; attempts?: number },
    ): Promise<void> => {
      await this.resources.upsert({
        kind,
        name,
        ...(s.observedStatus !== undefined && { observedStatus: s.observedStatus }),
        ...(s.lastError !== undefined && { lastError: s.lastError }),
        ...(s.attempts !== undefined && { attempts: s.attempts }),
      });
    },

    delete: async (kind: string, name: string): Promise<void> => {
      await this.db.deleteFrom('resources').where('kind', '=', kind).where('name', '=', name).execute();
    },
  };

  /**
   * Paths on the host virtform created for a resource (a pool's directory and the parents it had
   * to create): deleting the resource removes only these. Kept when the resource's record goes.
   */
  readonly createdPaths = {
    list: async (kind: string, name: string): Promise<string[]> => {
      const rows = await this.db.selectFrom('created_paths').select('path').where('kind', '=', kind).where('name', '=', name).orderBy('path').execute();
      return rows.map((r) => r.path);
    },
    add: async (kind: string, name: string, paths: string[]): Promise<void> => {
      const now = this.#now();
      for (const path of paths) {
        await this.db.insertInto('created_paths').values({ kind, name, path, created_at: now })
          .onConflict((oc) => oc.columns(['host', 'kind', 'name', 'path']).doNothing()).execute();
      }
    },
    remove: async (kind: string, name: string, paths: string[]): Promise<void> => {
      if (paths.length === 0) return;
      await this.db.deleteFrom('created_paths').where('kind', '=', kind).where('name', '=', name).where('path', 'in', paths).execute();
    },
  };

  readonly journal = {
    /** Record that a step is about to run; returns the entry id (status `open`). */
    begin: async (e: {
      runId: string;
      kind: string;
      name: string;
      action: string;
      intent: Record<string, unknown>;
      attempt?: number;
    }): Promise<number> => {
      const row = await this.db
        .insertInto('journal')
        .values({
          run_id: e.runId,
          kind: e.kind,
          name: e.name,
          action: e.action,
          intent: JSON.stringify(e.intent ?? {}),
          status: 'open',
          error: null,
          attempt: e.attempt ?? 1,
          started_at: this.#now(),
          finished_at: null,
        })
        .returning('id')
        .executeTakeFirstOrThrow();
      return Number(row.id);
    },

    /**
     * Close an open entry. Finishing an already closed entry is a no-op (the first outcome stays);
     * an unknown id throws.
     */
    finish: async (id: number, outcome: 'succeeded' | 'failed' | 'abandoned', error?: string): Promise<void> => {
      const res = await this.db
        .updateTable('journal')
        .set({ status: outcome, error: error ?? null, finished_at: this.#now() })
        .where('id', '=', id)
        .where('status', '=', 'open')
        .executeTakeFirst();
      if (Number(res.numUpdatedRows) === 0) {
        const exists = await this.db.selectFrom('journal').select('id').where('id', '=', id).executeTakeFirst();
        if (!exists) throw new Error(`journal entry ${id} does not exist`);
      }
    },

    /** Entries still `open` (interrupted steps), oldest first. */
    listOpen: async (): Promise<JournalEntry[]> => {
      const rows = await this.db.selectFrom('journal').selectAll().where('status', '=', 'open').orderBy('id', 'asc').execute();
      return rows.map(toJournal);
    },

    /**
     * Entries whose work may have left something on the host that no record accounts for: `open`
     * ones (interrupted) and `failed` ones not followed by a success or a resolution for the same
     * resource. Oldest first.
     */
    listUnresolved: async (): Promise<JournalEntry[]> => {
      const rows = await this.db
        .selectFrom('journal as j')
        .selectAll('j')
        .where('j.status', 'in', ['open', 'failed'])
        .where(({ not, exists, selectFrom }) => not(exists(
          selectFrom('journal as k')
            .select('k.id')
            .whereRef('k.kind', '=', 'j.kind')
            .whereRef('k.name', '=', 'j.name')
            .whereRef('k.id', '>', 'j.id')
            .where('k.status', 'in', ['succeeded', 'abandoned']),
        )))
        .orderBy('j.id', 'asc')
        .execute();
      return rows.map(toJournal);
    },

    /** Mark open or failed entries resolved (`abandoned`), keeping their error text. */
    resolve: async (ids: number[]): Promise<void> => {
      for (let i = 0; i < ids.length; i += 500) {
        await this.db
          .updateTable('journal')
          .set((eb) => ({
            status: 'abandoned',
            error: eb.fn.coalesce('error', eb.val('')),
            finished_at: this.#now(),
          }))
          .where('id', 'in', ids.slice(i, i + 500))
          .where('status', 'in', ['open', 'failed'])
          .execute();
      }
    },

    /** Most recent entries, newest first. */
    recent: async (limit: number = DEFAULT_LIMIT): Promise<JournalEntry[]> => {
      const rows = await this.db.selectFrom('journal').selectAll().orderBy('id', 'desc').limit(limit).execute();
      return rows.map(toJournal);
    },

    /** Most recent entries for one resource, newest first. */
    forResource: async (kind: string, name: string, limit: number = DEFAULT_LIMIT): Promise<JournalEntry[]> => {
      const rows = await this.db
        .selectFrom('journal')
        .selectAll()
        .where('kind', '=', kind)
        .where('name', '=', name)
        .orderBy('id', 'desc')
        .limit(limit)
        .execute();
      return rows.map(toJournal);
    },
  };

  readonly hosts = {
    get: async (id: string = DEFAULT_HOST_ID): Promise<HostRecord | undefined> => {
      const row = await this.db.selectFrom('hosts').selectAll().where('id', '=', id).executeTakeFirst();
      return row ? toHost(row) : undefined;
    },

    list: async (): Promise<HostRecord[]> => {
      const rows = await this.db.selectFrom('hosts').selectAll().orderBy('id').execute();
      return rows.map(toHost);
    },

    /**
     * Check that the host behind a connection is the one this DB's records of host `id` describe,
     * and (with `record`) record its identity: on first use, and `last_seen`/URI/hostname after.
     * Throws {@link HostMismatchError} when another host (driver + libvirt host UUID) is recorded
     * and the DB still holds its records (resources, or journal entries open or failed). A recorded
     * host with no records left is replaced by this one (`rebound`). Without `record` (dry-runs)
     * nothing is written.
     */
    bind: async (identity: HostIdentity, opts: { id?: string; record: boolean }): Promise<HostBinding> => {
      const id = opts.id ?? DEFAULT_HOST_ID;
      return withBusyRetry(() => this.db.transaction().execute(async (trx) => {
        const now = this.#now();
        const row = await trx.selectFrom('hosts').selectAll().where('id', '=', id).executeTakeFirst();
        const fields = { uri: identity.uri, hostname: identity.hostname, host_uuid: identity.uuid, driver: identity.driver };
        if (!row) {
          if (opts.record) await trx.insertInto('hosts').values({ id, ...fields, first_seen: now, last_seen: now }).execute();
          return { status: 'first-use', recorded: opts.record };
        }
        const previous = toHost(row);
        if (sameHost(previous, identity)) {
          if (opts.record) await trx.updateTable('hosts').set({ ...fields, last_seen: now }).where('id', '=', id).execute();
          return { status: 'same', host: opts.record ? { ...previous, ...identity, lastSeen: now } : previous };
        }
        const count = async (table: 'resources' | 'journal', open: boolean): Promise<number> => {
          let q = trx.selectFrom(table).select((eb) => eb.fn.countAll<number>().as('n')).where('host', '=', id);
          if (open) q = q.where('status', 'in', ['open', 'failed']);
          return Number((await q.executeTakeFirstOrThrow()).n);
        };
        const held = { resources: await count('resources', false), openJournal: await count('journal', true) };
        if (held.resources > 0 || held.openJournal > 0) throw new HostMismatchError(this.path, previous, identity, held);
        if (opts.record) {
          await trx.updateTable('hosts').set({ ...fields, first_seen: now, last_seen: now }).where('id', '=', id).execute();
        }
        return { status: 'rebound', previous, recorded: opts.record };
      }));
    },
  };

  readonly revisions = {
    /** Record the start of an apply run; outcome is `running` until {@link finish}. */
    start: async (r: { runId: string; manifestDigest: string; gitCommit?: string | null; gitDirty?: boolean }): Promise<number> => {
      const row = await this.db
        .insertInto('revisions')
        .values({
          run_id: r.runId,
          manifest_digest: r.manifestDigest,
          git_commit: r.gitCommit ?? null,
          git_dirty: r.gitDirty ? 1 : 0,
          started_at: this.#now(),
          finished_at: null,
          outcome: 'running',
          summary: '{}',
        })
        .returning('id')
        .executeTakeFirstOrThrow();
      return Number(row.id);
    },

    finish: async (id: number, outcome: string, summary: Record<string, unknown>): Promise<void> => {
      const res = await this.db
        .updateTable('revisions')
        .set({ outcome, summary: JSON.stringify(summary ?? {}), finished_at: this.#now() })
        .where('id', '=', id)
        .executeTakeFirst();
      if (Number(res.numUpdatedRows) === 0) throw new Error(`revision ${id} does not exist`);
    },

    /** Newest revision (by id), optionally only with the given outcome. */
    latest: async (opts?: { outcome?: string }): Promise<RevisionRecord | undefined> => {
      let q = this.db.selectFrom('revisions').selectAll();
      if (opts?.outcome !== undefined) q = q.where('outcome', '=', opts.outcome);
      const row = await q.orderBy('id', 'desc').limit(1).executeTakeFirst();
      return row ? toRevision(row) : undefined;
    },

    get: async (id: number): Promise<RevisionRecord | undefined> => {
      const row = await this.db.selectFrom('revisions').selectAll().where('id', '=', id).executeTakeFirst();
      return row ? toRevision(row) : undefined;
    },
  };

  readonly gitSources = {
    get: async (id: string): Promise<GitSourceRecord | undefined> => {
      const row = await this.db.selectFrom('git_sources').selectAll().where('id', '=', id).executeTakeFirst();
      return row ? toGitSource(row) : undefined;
    },

    /** All git sources, the most recently updated first. */
    list: async (): Promise<GitSourceRecord[]> => {
      const rows = await this.db.selectFrom('git_sources').selectAll().orderBy('updated_at', 'desc').orderBy('id').execute();
      return rows.map(toGitSource);
    },

    /** Insert or update; fields not given keep their value (null clears one). */
    update: async (u: GitSourceUpdate): Promise<GitSourceRecord> => {
      return withBusyRetry(() => this.db.transaction().execute(async (trx) => {
        const now = this.#now();
        const cols = {
          url: u.url, ref: u.ref, path: u.path,
          ...(u.fetchedCommit !== undefined && { fetched_commit: u.fetchedCommit }),
          ...(u.fetchedAt !== undefined && { fetched_at: u.fetchedAt }),
          ...(u.appliedCommit !== undefined && { applied_commit: u.appliedCommit }),
          ...(u.appliedAt !== undefined && { applied_at: u.appliedAt }),
          ...(u.appliedOutcome !== undefined && { applied_outcome: u.appliedOutcome }),
          ...(u.appliedRevision !== undefined && { applied_revision: u.appliedRevision }),
          ...(u.rejectedCommit !== undefined && { rejected_commit: u.rejectedCommit }),
          ...(u.error !== undefined && { error: u.error }),
          ...(u.errorKind !== undefined && { error_kind: u.errorKind }),
          ...(u.errorAt !== undefined && { error_at: u.errorAt }),
          ...(u.fetchError !== undefined && { fetch_error: u.fetchError }),
          ...(u.fetchErrorAt !== undefined && { fetch_error_at: u.fetchErrorAt }),
          updated_at: now,
        };
        const existing = await trx.selectFrom('git_sources').select('id').where('id', '=', u.id).executeTakeFirst();
        if (existing) await trx.updateTable('git_sources').set(cols).where('id', '=', u.id).execute();
        else await trx.insertInto('git_sources').values({ id: u.id, ...cols }).execute();
        const row = await trx.selectFrom('git_sources').selectAll().where('id', '=', u.id).executeTakeFirstOrThrow();
        return toGitSource(row);
      }));
    },
  };

  /**
   * Switches set by `virtform suspend` / `resume`. Plain single-statement writes: they do NOT take
   * the writer lock (a watcher holds it for its whole life, and suspending is how one pauses it).
   */
  readonly controls = {
    suspension: async (): Promise<Suspension | undefined> => {
      const row = await this.db.selectFrom('controls').selectAll().where('name', '=', 'suspend').executeTakeFirst();
      return row ? { since: row.set_at, by: row.set_by, reason: row.reason } : undefined;
    },

    /** Suspend applies; an existing suspension is kept as it is (`already`: true). */
    suspend: async (s: { by: string; reason?: string | null }): Promise<{ suspension: Suspension; already: boolean }> => {
      const now = this.#now();
      const res = await this.db
        .insertInto('controls')
        .values({ name: 'suspend', value: 'true', reason: s.reason ?? null, set_by: s.by, set_at: now })
        .onConflict((oc) => oc.column('name').doNothing())
        .executeTakeFirst();
      const current = (await this.controls.suspension())!;
      return { suspension: current, already: Number(res.numInsertedOrUpdatedRows ?? 0n) === 0 };
    },

    /** Lift the suspension; returns the one lifted (undefined when none was set). */
    resume: async (): Promise<Suspension | undefined> => {
      const current = await this.controls.suspension();
      if (current) await this.db.deleteFrom('controls').where('name', '=', 'suspend').execute();
      return current;
    },
  };

  /**
   * Every use of a file virtform has seen on the host (the data rule, `kinds/volume/data.ts`): a
   * volume once used by any definition stays data after its user is gone.
   */
  readonly references = {
    /** The recorded uses of these paths. */
    list: async (paths: string[]): Promise<StoredReference[]> => {
      const out: StoredReference[] = [];
      for (let i = 0; i < paths.length; i += 200) {
        const rows = await this.db.selectFrom('volume_references').selectAll().where('path', 'in', paths.slice(i, i + 200)).execute();
        out.push(...rows.map((r) => ({ path: r.path, by: r.used_by, role: r.role, source: r.source, managed: r.managed === 1, firstSeen: r.first_seen })));
      }
      return out;
    },
    /** Remember uses; one already recorded keeps its first sighting (no write when nothing is new). */
    record: async (refs: StoredReference[]): Promise<void> => {
      if (refs.length === 0) return;
      const now = this.#now();
      await withBusyRetry(() => this.db.transaction().execute(async (trx) => {
        for (let i = 0; i < refs.length; i += 100) {
          await trx.insertInto('volume_references')
            .values(refs.slice(i, i + 100).map((r) => ({ path: r.path, used_by: r.by, role: r.role, source: r.source, managed: r.managed ? 1 : 0, first_seen: now })))
            .onConflict((oc) => oc.doNothing())
            .execute();
        }
      }));
    },
    /** Forget the uses of files virtform deleted (with consent): a new file there starts pristine. */
    forget: async (paths: string[]): Promise<void> => {
      if (paths.length === 0) return;
      await this.db.deleteFrom('volume_references').where('path', 'in', paths).execute();
    },
  };

  /**
   * Conditions of resources with their last transition times. `sync` takes freshly derived
   * conditions and keeps each one's `lastTransitionTime` while its status is unchanged; a changed
   * (or new) status gets the current time. Resources not given are left alone unless `prune`.
   */
  readonly conditions = {
    list: async (): Promise<Map<string, Condition[]>> => {
      const rows = await this.db.selectFrom('conditions').selectAll().orderBy('kind').orderBy('name').execute();
      const out = new Map<string, Condition[]>();
      for (const r of rows) {
        if (!isConditionType(r.type)) continue;
        const key = resourceKey(r.kind, r.name);
        out.set(key, [...(out.get(key) ?? []), {
          type: r.type, status: r.status === 'True' ? 'True' : 'False', reason: r.reason, message: r.message, lastTransitionTime: r.last_transition_time,
        }]);
      }
      return out;
    },

    sync: async (
      entries: { kind: string; name: string; conditions: ConditionDraft[] }[], opts: { prune?: boolean } = {},
    ): Promise<Map<string, Condition[]>> => withBusyRetry(() => this.db.transaction().execute(async (trx) => {
      const now = this.#now();
      const rows = await trx.selectFrom('conditions').selectAll().execute();
      const stored = new Map(rows.map((r) => [`${r.kind}\u0000${r.name}\u0000${r.type}`, r]));
      const out = new Map<string, Condition[]>();
      const keep = new Set<string>();
      for (const e of entries) {
        const list: Condition[] = [];
        for (const c of e.conditions) {
          const id = `${e.kind}\u0000${e.name}\u0000${c.type}`;
          keep.add(id);
          const prev = stored.get(id);
          const lastTransitionTime = prev && prev.status === c.status ? prev.last_transition_time : now;
          list.push({ ...c, lastTransitionTime });
          if (prev && prev.status === c.status && prev.reason === c.reason && prev.message === c.message) continue;
          const values = { status: c.status, reason: c.reason, message: c.message, last_transition_time: lastTransitionTime };
          if (prev) {
            await trx.updateTable('conditions').set(values)
              .where('host', '=', prev.host).where('kind', '=', e.kind).where('name', '=', e.name).where('type', '=', c.type).execute();
          } else {
            await trx.insertInto('conditions').values({ kind: e.kind, name: e.name, type: c.type, ...values }).execute();
          }
        }
        out.set(resourceKey(e.kind, e.name), list);
      }
      if (opts.prune) {
        for (const [id, r] of stored) {
          if (!keep.has(id)) {
            await trx.deleteFrom('conditions').where('host', '=', r.host).where('kind', '=', r.kind).where('name', '=', r.name).where('type', '=', r.type).execute();
          }
        }
      }
      return out;
    })),
  };

  /**
   * Baselines of definitions (exact drift): libvirt's inactive XML after virtform's last write to
   * a domain, network or pool, its sha256 and the versions it was recorded under. `index` gives
   * hashes and versions of all (read every run); `xml` the documents of the few that differ.
   */
  readonly baselines = {
    index: async (): Promise<Map<string, BaselineEntry>> => {
      const rows = await this.db.selectFrom('baselines').select(['kind', 'name', 'sha256', 'version']).execute();
      return new Map(rows.map((r) => [resourceKey(r.kind, r.name), { sha256: r.sha256, version: r.version }]));
    },
    xml: async (keys: { kind: string; name: string }[]): Promise<Map<string, string>> => {
      const out = new Map<string, string>();
      for (let i = 0; i < keys.length; i += 200) {
        const part = keys.slice(i, i + 200);
        const rows = await this.db.selectFrom('baselines').select(['kind', 'name', 'xml'])
          .where((eb) => eb.or(part.map((k) => eb.and([eb('kind', '=', k.kind), eb('name', '=', k.name)])))).execute();
        for (const r of rows) out.set(resourceKey(r.kind, r.name), r.xml);
      }
      return out;
    },
    put: async (b: { kind: string; name: string; xml: string; sha256: string; version: string }): Promise<void> => {
      const values = { sha256: b.sha256, xml: b.xml, version: b.version, recorded_at: this.#now() };
      await withBusyRetry(() => this.db.insertInto('baselines').values({ kind: b.kind, name: b.name, ...values })
        .onConflict((oc) => oc.columns(['host', 'kind', 'name']).doUpdateSet(values)).execute());
    },
    delete: async (kind: string, name: string): Promise<void> => {
      await this.db.deleteFrom('baselines').where('kind', '=', kind).where('name', '=', name).execute();
    },
  };

  readonly events = {
    append: async (e: { level: 'info' | 'warn' | 'error'; kind?: string; name?: string; message: string }): Promise<void> => {
      await this.db
        .insertInto('events')
        .values({ at: this.#now(), level: e.level, kind: e.kind ?? null, name: e.name ?? null, message: e.message })
        .execute();
    },

    /** Most recent events, newest first. */
    recent: async (limit: number = DEFAULT_LIMIT): Promise<EventRecord[]> => {
      return this.db
        .selectFrom('events')
        .select(['at', 'level', 'kind', 'name', 'message'])
        .orderBy('id', 'desc')
        .limit(limit)
        .execute();
    },
  };

  /**
   * Single-writer lock: throws LockHeldError (message names the holder's pid, host and command)
   * when another live process holds it; takes over a lock whose holder pid is dead on this host.
   * `owner.pid` / `owner.hostname` override the recorded identity (tests only).
   */
  acquireWriterLock(owner: LockOwner): Promise<WriterLock> {
    return acquireWriterLock(
      {
        db: this.db,
        now: () => this.#now(),
        dbPath: this.path,
        deleteSync: (name, pid, acquiredAt) => {
          if (this.#closed || !this.#sqlite.open) return;
          this.#sqlite.prepare('DELETE FROM locks WHERE name = ? AND pid = ? AND acquired_at = ?').run(name, pid, acquiredAt);
        },
      },
      owner,
    );
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await this.db.destroy();
  }
}

/**
 * The state DB could not be opened. The message names the path and the reason, e.g.
 * `cannot open state DB /x/y/state.db: directory /x/y is not writable (EACCES)`.
 */
export class StateDbOpenError extends Error {
  readonly path: string;
  readonly reason: string;
  /** errno or SQLite code of the underlying error, when known (EACCES, SQLITE_NOTADB, ...). */
  readonly code: string | undefined;

  constructor(path: string, reason: string, code: string | undefined, cause: unknown) {
    super(`cannot open state DB ${path}: ${reason}`, { cause });
    this.name = 'StateDbOpenError';
    this.path = path;
    this.reason = reason;
    this.code = code;
  }
}

const codeOf = (e: unknown): string | undefined => {
  const c = (e as { code?: unknown } | null)?.code;
  return typeof c === 'string' ? c : undefined;
};

function accessError(path: string, mode: number): string | undefined {
  try {
    accessSync(path, mode);
    return undefined;
  } catch (e) {
    return codeOf(e) ?? 'error';
  }
}

/** The closest existing ancestor of `dir` (`dir` itself when it exists). */
function existingAncestor(dir: string): string {
  for (let d = dir; ; d = dirname(d)) {
    try {
      statSync(d);
      return d;
    } catch { // safe-catch: this folder does not exist: look at its parent
      if (dirname(d) === d) return d;
    }
  }
}

/** Why creating the DB's folder failed, in words: which existing path is in the way. */
function mkdirReason(dir: string, e: unknown): string {
  const code = codeOf(e);
  const base = existingAncestor(dirname(dir));
  const st = statSync(base, { throwIfNoEntry: false });
  if (st && !st.isDirectory()) return `cannot create directory ${dir}: ${base} is not a directory`;
  if (code === 'EACCES' || code === 'EPERM' || code === 'EROFS') {
    return `cannot create directory ${dir}: ${base} is not writable (${code})`;
  }
  return `cannot create directory ${dir}: ${e instanceof Error ? e.message : String(e)}`;
}

/** Why SQLite could not open or use the file, in words, from what the file system says. */
function sqliteReason(path: string, e: unknown): string {
  const code = codeOf(e);
  const message = e instanceof Error ? e.message : String(e);
  const st = statSync(path, { throwIfNoEntry: false });
  if (st?.isDirectory()) return `${path} is a directory, not a database file`;
  if (code === 'SQLITE_NOTADB') return `${path} is not a SQLite database (${code})`;
  if (code?.startsWith('SQLITE_CORRUPT')) return `the database file is corrupt (${code}: ${message})`;
  if (st && !st.isFile()) return `${path} is not a regular file`;
  const dir = dirname(path);
  if (st) {
    const denied = accessError(path, fsConstants.R_OK | fsConstants.W_OK);
    if (denied) return `file ${path} is not readable and writable (${denied})`;
  }
  // SQLite writes the -wal and -shm files (and a new DB file) next to the DB.
  const dirDenied = accessError(dir, fsConstants.W_OK | fsConstants.X_OK);
  if (dirDenied) return `directory ${dir} is not writable (${dirDenied})`;
  return code ? `${message} (${code})` : message;
}

/**
 * Open (creating if needed) the state DB at `path`: parent directories, WAL mode, busy timeout,
 * foreign keys, then pending migrations. `':memory:'` is accepted (tests, dry-runs without a DB).
 * Throws {@link StateDbOpenError} (path and reason) when the file cannot be created, opened or used.
 */
export async function openStateStore(path: string, opts: OpenOptions = {}): Promise<StateStore> {
  const memory = path === ':memory:' || path === '';
  if (opts.mustExist && !memory && !existsSync(path)) throw new StateDbMissingError(path);
  if (!memory && !opts.mustExist) {
    try {
      mkdirSync(dirname(path), { recursive: true });
    } catch (e) {
      throw new StateDbOpenError(path, mkdirReason(dirname(path), e), codeOf(e), e);
    }
  }
  let sqlite: Database.Database;
  try {
    sqlite = new Database(path, { fileMustExist: opts.mustExist === true && !memory });
  } catch (e) {
    throw new StateDbOpenError(path, sqliteReason(path, e), codeOf(e), e);
  }
  try {
    sqlite.pragma(`busy_timeout = ${Math.max(0, Math.trunc(opts.busyTimeoutMs ?? 5000))}`);
    if (!memory) sqlite.pragma('journal_mode = WAL');
    sqlite.pragma('synchronous = NORMAL');
    sqlite.pragma('foreign_keys = ON');
  } catch (err) {
    sqlite.close();
    throw new StateDbOpenError(path, sqliteReason(path, err), codeOf(err), err);
  }
  const store = new StateStore(path, sqlite, opts.now);
  try {
    await migrate(store.db, sqlite);
  } catch (err) {
    await store.close();
    const cause = err instanceof Error && err.cause !== undefined ? err.cause : err;
    const code = codeOf(cause);
    // A migration that failed on its own terms keeps its message; file problems get the diagnosis.
    const reason = code?.startsWith('SQLITE_') && code !== 'SQLITE_ERROR' && code !== 'SQLITE_CONSTRAINT'
      ? sqliteReason(path, cause)
      : err instanceof Error ? err.message : String(err);
    throw new StateDbOpenError(path, reason, code, err);
  }
  return store;
}

/**
 * Run pending migrations. Kysely's SQLite adapter neither locks nor wraps migrations in a
 * transaction, so we hold `BEGIN IMMEDIATE` on the (single) connection around the migrator:
 * concurrent openers on the same file are serialized (busy_timeout) and a failed migration
 * rolls back completely.
 */
let migrationChain: Promise<unknown> = Promise.resolve();

async function migrate(db: Kysely<StateDatabase>, sqlite: Database.Database): Promise<void> {
  // In one thread, a second connection's BEGIN IMMEDIATE would block the event loop (busy_timeout
  // is a synchronous wait) while the first migration awaits: serialize migrations in-process.
  const run = migrationChain.then(() => migrateLocked(db, sqlite));
  // safe-catch: keeps the chain going; the caller gets `run` and its error
  migrationChain = run.catch(() => undefined);
  return run;
}

async function migrateLocked(db: Kysely<StateDatabase>, sqlite: Database.Database): Promise<void> {
  const migrator = new Migrator({ db, provider: migrationProvider });
  sqlite.exec('BEGIN IMMEDIATE');
  let ok = false;
  try {
    const { error, results } = await migrator.migrateToLatest();
    if (error) {
      const failed = results?.find((r) => r.status === 'Error');
      const msg = error instanceof Error ? error.message : String(error);
      throw new Error(`state DB migration${failed ? ` ${failed.migrationName}` : ''} failed: ${msg}`, { cause: error });
    }
    ok = true;
  } finally {
    if (sqlite.inTransaction) sqlite.exec(ok ? 'COMMIT' : 'ROLLBACK');
  }
}
