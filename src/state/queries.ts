/**
 * The query code both backends share: every repository of {@link StateStore} written once with
 * kysely's query builder (dialect-neutral SQL: `ON CONFLICT` upserts, `RETURNING`, transactions for
 * read-modify-writes). A backend (`sqlite.ts`, `postgres.ts`) extends {@link KyselyStateStore} and
 * supplies only what differs: how a page of the resource index is aggregated into one JSON value,
 * whether a transaction is retried (SQLITE_BUSY), the synchronous lease release at exit, and close.
 * Every write is fenced by the writer lease while this process holds it (src/state/fence.ts).
 */
import { Kysely, sql, type Dialect, type Selectable } from 'kysely';
import { FencingDialect } from './fence.js';
import { acquireLease, type Lease, type LeaseDeps, type LeaseOwner, type LeaseTiming, type WaitOptions } from './lease.js';
import { DEFAULT_HOST_ID, HOST_KEYED_TABLES, HostMismatchError, sameHost, type HostBinding, type HostIdentity, type HostKeyedTable, type HostRecord, type HostRekey } from './hosts.js';
import type { GitSourcesTable, HostsTable, JournalTable, RequestsTable, ResourcesTable, RevisionsTable, RunsTable, StateDatabase } from './schema.js';
import { isConditionType, type Condition, type ConditionDraft } from '../model/conditions.js';
import { resourceKey, type ResourceKind, type ResourceRef } from '../model/kinds.js';
import type {
  BaselineEntry, DefinitionCheck, EventRecord, GitCommitRecord, GitSourceRecord, RunRecord, GitSourceUpdate, JournalEntry, ResourceIndexEntry, ResourceRecord, ResourceUpsert,
  ConditionSyncOptions, RequestOutcome, RequestRecord, RequestStatus, RevisionRecord, StateStore, StoredReference, Suspension,
} from './types.js';

/** The key columns of a resource's rows: `host`, `kind`, `name` (migration 0008 makes them unique). */
export const refWhere = (ref: ResourceRef) => ({ host: ref.host, kind: ref.kind, name: ref.name });

function toRequest(r: Selectable<RequestsTable>): RequestRecord {
  return {
    id: Number(r.id), type: r.type, args: JSON.parse(r.args) as Record<string, unknown>, status: r.status as RequestStatus,
    requestedBy: r.requested_by, requestedAt: r.requested_at, claimedBy: r.claimed_by, startedAt: r.started_at, finishedAt: r.finished_at,
    outcome: r.outcome ? (JSON.parse(r.outcome) as RequestOutcome) : null,
  };
}

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

const DEFAULT_LIMIT = 50;

function jsonArray<T>(text: string): T[] {
  try {
    const v: unknown = JSON.parse(text);
    return Array.isArray(v) ? (v as T[]) : [];
  } catch { // safe-catch: a damaged JSON column reads as empty (the row is still listed)
    return [];
  }
}

function runFromRow(r: Selectable<RunsTable>): RunRecord {
  return {
    id: r.id, startedAt: r.started_at, finishedAt: r.finished_at, trigger: r.trigger, outcome: r.outcome, durationMs: Number(r.duration_ms),
    revisionId: r.revision_id === null ? null : Number(r.revision_id), gitCommit: r.git_commit,
    counts: parseJson(r.counts) as Record<string, number>, failures: jsonArray(r.failures), steps: jsonArray(r.steps),
  };
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

/** The tables whose whole-table reads a store may keep in memory ({@link KyselyStateStore.keptRows}). */
export const KEPT_TABLES = ['resources', 'baselines', 'definition_checks'] as const;
export type KeptTable = (typeof KEPT_TABLES)[number];

/** What a backend tells of a kept table (see {@link KyselyStateStore.keptRows}). */
export interface TableChanges {
  /** Moves when another connection commits (SQLite `PRAGMA data_version`): everything is read again. */
  version: string;
  /** Keys (`resourceKey`) of the rows this connection wrote since the last call, committed or rolled back, or `all`. */
  written: ReadonlyMap<string, ResourceRef> | 'all';
}

/** `refs` in chunks of 200 (one OR of refs per query); a single undefined chunk: every row. */
function keyChunks(refs: ResourceRef[] | undefined): (ResourceRef[] | undefined)[] {
  if (!refs) return [undefined];
  const out: ResourceRef[][] = [];
  for (let i = 0; i < refs.length; i += 200) out.push(refs.slice(i, i + 200));
  return out;
}

/** Freeze a kept value and everything in it (arrays, plain objects, Maps' values); returns it. */
function deepFreeze<T>(v: T): T {
  if (v instanceof Map) {
    for (const x of v.values()) deepFreeze(x);
  } else if (v && typeof v === 'object' && !Object.isFrozen(v)) {
    Object.freeze(v);
    for (const x of Object.values(v)) deepFreeze(x);
  }
  return v;
}

/** One row of the resource index as a backend's JSON aggregation returns it (see {@link KyselyStateStore.indexPage}). */
export type IndexTuple = [number, string, string, string, string | null, string | null, string | null, string | null, Record<string, unknown> | null];

/** The columns of an index tuple, in order (`facts` last: a backend extracts it from `details`). */
export const INDEX_COLUMNS = ['id', 'host', 'kind', 'name', 'uuid', 'spec_hash', 'desired_state', 'last_error'] as const;

function toIndexEntries(tuples: IndexTuple[]): ResourceIndexEntry[] {
  const entries: ResourceIndexEntry[] = new Array(tuples.length);
  for (let i = 0; i < tuples.length; i++) {
    const [id, host, kind, name, uuid, specHash, desiredState, lastError, facts] = tuples[i]!;
    entries[i] = { id, host, kind: kind as ResourceKind, name, uuid, specHash, desiredState, lastError };
    if (facts && typeof facts === 'object') entries[i]!.facts = facts;
  }
  return entries;
}

function toResource(r: Selectable<ResourcesTable>): ResourceRecord {
  return {
    kind: r.kind as ResourceKind,
    name: r.name,
    host: r.host,
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
    kind: r.kind as ResourceKind,
    name: r.name,
    host: r.host,
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
 * The shared implementation of {@link StateStore} over a kysely instance. All queries go through
 * kysely's query builder; the few dialect differences are the abstract members below.
 */
export abstract class KyselyStateStore implements StateStore {
  abstract readonly backend: 'sqlite' | 'postgres';
  readonly path: string;
  readonly dataDir: string | undefined;
  /** The kysely instance, for advanced queries and tests. Prefer the repositories below. */
  readonly db: Kysely<StateDatabase>;
  readonly #clock: () => Date;
  readonly #fencing: FencingDialect;
  #closed = false;

  /** `beginSql`: how a write outside a transaction is wrapped when it is fenced (see FencingDialect). */
  protected constructor(path: string, dialect: Dialect, clock: () => Date = () => new Date(), dataDir?: string, beginSql?: string) {
    this.path = path;
    this.#fencing = new FencingDialect(dialect, beginSql);
    this.db = new Kysely<StateDatabase>({ dialect: this.#fencing });
    this.#clock = clock;
    this.dataDir = dataDir;
  }

  /** True once {@link close} was called. */
  protected get closed(): boolean {
    return this.#closed;
  }

  /**
   * One page of the resource index (rows with `id > after`, by id, at most `pageSize`) as ONE
   * JSON array of {@link IndexTuple}s built by the database (SQLite `json_group_array`, PostgreSQL
   * `json_agg`): about half the cost of letting the driver build a JS object per row.
   */
  protected abstract indexPage(after: number, pageSize: number): Promise<IndexTuple[]>;

  /** Run a read-modify-write transaction, again from the start when the backend asks for it (SQLITE_BUSY). */
  protected abstract retrying<T>(fn: () => Promise<T>): Promise<T>;

  /** Release this process's lease row synchronously (at process exit), where the backend can. */
  protected abstract releaseLeaseSync(row: { name: string; holder: string; epoch: number }): void;

  /** Close the backend's connections (after {@link close} marked the store closed). */
  protected abstract closeBackend(): Promise<void>;

  /**
   * What changed in `table` since the last call (and forgets it), or undefined when the backend
   * keeps nothing (PostgreSQL) or cannot tell now (inside a transaction: what it reads may yet be
   * rolled back). See {@link keptRows}.
   */
  protected tableChanges(_table: KeptTable): TableChanges | undefined {
    return undefined;
  }

  readonly #kept = new Map<KeptTable, { version: string; rows: Map<string, unknown>; list?: unknown[] }>();
  readonly #keeping = new Map<KeptTable, Promise<unknown>>();

  /**
   * The whole-table reads every run makes (the resource index, the baselines' and the checks'
   * indexes, 2,002 rows each at 1,000 VMs), kept in memory by key: while no other connection
   * commits ({@link TableChanges.version}), only the rows this connection wrote since (any
   * statement, committed or rolled back) are read again, by key. What is kept is frozen and
   * shared by every caller. Calls for one table are serialized (a patch in flight is never skipped).
   */
  protected async keptRows<R>(
    table: KeptTable, readAll: () => Promise<Map<string, R>>, readKeys: (refs: ResourceRef[]) => Promise<Map<string, R>>,
  ): Promise<{ rows: ReadonlyMap<string, R>; sorted: (by: (a: R, b: R) => number) => R[] }> {
    const prev = this.#keeping.get(table);
    const run = (async () => {
      // safe-catch: the previous call's error was its caller's; this one starts afresh
      if (prev) await prev.catch(() => undefined);
      return this.#keptRows(table, readAll, readKeys);
    })();
    this.#keeping.set(table, run);
    try {
      return await run;
    } finally {
      if (this.#keeping.get(table) === run) this.#keeping.delete(table);
    }
  }

  async #keptRows<R>(
    table: KeptTable, readAll: () => Promise<Map<string, R>>, readKeys: (refs: ResourceRef[]) => Promise<Map<string, R>>,
  ): Promise<{ rows: ReadonlyMap<string, R>; sorted: (by: (a: R, b: R) => number) => R[] }> {
    const ch = this.tableChanges(table);
    if (!ch) {
      const rows = await readAll();
      return { rows, sorted: (by) => [...rows.values()].sort(by) };
    }
    let kept = this.#kept.get(table) as { version: string; rows: Map<string, R>; list?: R[] } | undefined;
    if (!kept || kept.version !== ch.version || ch.written === 'all') {
      this.#kept.delete(table);
      kept = { version: ch.version, rows: deepFreeze(await readAll()) };
      this.#kept.set(table, kept);
    } else if (ch.written.size > 0) {
      const fresh = await readKeys([...ch.written.values()]);
      for (const k of ch.written.keys()) {
        const r = fresh.get(k);
        if (r === undefined) kept.rows.delete(k);
        else kept.rows.set(k, deepFreeze(r));
      }
      delete kept.list;
    }
    const k = kept;
    return { rows: k.rows, sorted: (by) => (k.list ??= [...k.rows.values()].sort(by)) };
  }

  async *#indexPages(pageSize: number): AsyncGenerator<ResourceIndexEntry[]> {
    if (!this.keepsTables) {
      yield* this.#readIndexPages(pageSize);
      return;
    }
    // Kept in memory: the rows written since the last read are read again by key (keptRows).
    const kept = await this.keptRows<ResourceIndexEntry>('resources', async () => {
      const all = new Map<string, ResourceIndexEntry>();
      for await (const page of this.#readIndexPages(pageSize)) {
        for (const e of page) all.set(resourceKey(e.kind, e.name, e.host), e);
        await new Promise((r) => setImmediate(r)); // as a caller does between pages: I/O flows meanwhile
      }
      return all;
    }, async (written) => {
      const out = new Map<string, ResourceIndexEntry>();
      for (const refs of keyChunks(written)) {
        const rows = await this.db.selectFrom('resources').select([...INDEX_COLUMNS, 'details'])
          .where((eb) => eb.or(refs!.map((r) => eb.and(refWhere(r))))).execute();
        for (const r of rows) {
          const facts = (typeof r.details === 'string' ? parseJson(r.details) : (r.details as Record<string, unknown> | null) ?? {}).facts;
          const [e] = toIndexEntries([[Number(r.id), r.host, r.kind, r.name, r.uuid, r.spec_hash, r.desired_state, r.last_error,
            facts && typeof facts === 'object' ? facts as Record<string, unknown> : null]]);
          out.set(resourceKey(e!.kind, e!.name, e!.host), e!);
        }
      }
      return out;
    });
    const all = kept.sorted((a, b) => a.id - b.id);
    for (let i = 0; i < all.length; i += pageSize) yield all.slice(i, i + pageSize);
  }

  /** Whether this backend keeps the whole-table reads (see {@link keptRows}). */
  protected get keepsTables(): boolean {
    return false;
  }

  async *#readIndexPages(pageSize: number): AsyncGenerator<ResourceIndexEntry[]> {
    for (let after = 0; ;) {
      const tuples = await this.indexPage(after, pageSize);
      if (tuples.length === 0) return;
      const entries = toIndexEntries(tuples);
      yield entries;
      if (tuples.length < pageSize) return;
      after = Math.max(after, ...entries.map((e) => e.id));
    }
  }

  #now(): string {
    return this.#clock().toISOString();
  }

  readonly resources = {
    get: async (ref: ResourceRef): Promise<ResourceRecord | undefined> => {
      const row = await this.db
        .selectFrom('resources')
        .selectAll()
        .where('host', '=', ref.host)
        .where('kind', '=', ref.kind)
        .where('name', '=', ref.name)
        .executeTakeFirst();
      return row ? toResource(row) : undefined;
    },

    /** All resources (optionally of one kind, or of one host), ordered by host, kind then name. */
    list: async (filter: { kind?: string; host?: string } = {}): Promise<ResourceRecord[]> => {
      let q = this.db.selectFrom('resources').selectAll();
      if (filter.kind !== undefined) q = q.where('kind', '=', filter.kind);
      if (filter.host !== undefined) q = q.where('host', '=', filter.host);
      const rows = await q.orderBy('host').orderBy('kind').orderBy('name').execute();
      return rows.map(toResource);
    },

    /**
     * The narrow view of every resource that observing a large inventory needs (identity, applied
     * spec hash, desired state, last error), in pages of `pageSize` rows by id (keyset pagination).
     * better-sqlite3 reads synchronously: a caller that yields to I/O between pages keeps its
     * network replies flowing while it reads. Pages are separate statements, like any two reads.
     */
    indexPages: (pageSize: number): AsyncGenerator<ResourceIndexEntry[]> => this.#indexPages(pageSize),

    /** Full records (with details) of the given resources; missing ones are left out. */
    getMany: async (keys: ResourceRef[]): Promise<ResourceRecord[]> => {
      const out: ResourceRecord[] = [];
      for (let i = 0; i < keys.length; i += 200) {
        const chunk = keys.slice(i, i + 200);
        const rows = await this.db
          .selectFrom('resources')
          .selectAll()
          .where((eb) => eb.or(chunk.map((k) => eb.and(refWhere(k)))))
          .execute();
        out.push(...rows.map(toResource));
      }
      return out;
    },

    /**
     * Insert or update in one statement (`INSERT … ON CONFLICT (host, kind, name) DO UPDATE`): fields
     * not given (undefined) keep their value; generation increments when specHash changes.
     */
    upsert: async (r: ResourceUpsert): Promise<ResourceRecord> => {
      const now = this.#now();
      const set = {
        ...(r.uuid !== undefined && { uuid: r.uuid }),
        ...(r.specHash !== undefined && { spec_hash: r.specHash }),
        ...(r.desiredState !== undefined && { desired_state: r.desiredState }),
        ...(r.observedStatus !== undefined && { observed_status: r.observedStatus }),
        ...(r.lastError !== undefined && { last_error: r.lastError }),
        ...(r.attempts !== undefined && { attempts: r.attempts }),
        ...(r.details !== undefined && { details: JSON.stringify(r.details ?? {}) }),
        ...(r.lastAppliedRevision !== undefined && { last_applied_revision: r.lastAppliedRevision }),
        updated_at: now,
      };
      const specHash = r.specHash ?? null;
      const row = await this.db
        .insertInto('resources')
        .values({
          host: r.host,
          kind: r.kind,
          name: r.name,
          uuid: r.uuid ?? null,
          spec_hash: specHash,
          generation: specHash ? 1 : 0,
          desired_state: r.desiredState ?? null,
          observed_status: r.observedStatus ?? null,
          last_error: r.lastError ?? null,
          attempts: r.attempts ?? 0,
          details: JSON.stringify(r.details ?? {}),
          created_at: now,
          updated_at: now,
          last_applied_revision: r.lastAppliedRevision ?? null,
        })
        .onConflict((oc) => oc.columns(['host', 'kind', 'name']).doUpdateSet({
          ...set,
          // A different (non-null) spec hash is a new generation; the comparison reads the row's old value.
          ...(specHash !== null && {
            generation: sql<number>`case when resources.spec_hash is distinct from ${specHash} then resources.generation + 1 else resources.generation end`,
          }),
        }))
        .returningAll()
        .executeTakeFirstOrThrow();
      return toResource(row);
    },

    /**
     * Update observed status / last error / attempts. Fields not given keep their value.
     * If the resource has no row yet, one is created (generation 0, no spec hash).
     */
    setStatus: async (
      ref: ResourceRef,
      s: { observedStatus?: string | null; lastError?: string | null; attempts?: number },
    ): Promise<void> => {
      await this.resources.upsert({
        kind: ref.kind,
        name: ref.name,
        host: ref.host,
        ...(s.observedStatus !== undefined && { observedStatus: s.observedStatus }),
        ...(s.lastError !== undefined && { lastError: s.lastError }),
        ...(s.attempts !== undefined && { attempts: s.attempts }),
      });
    },

    delete: async (ref: ResourceRef): Promise<void> => {
      await this.db.deleteFrom('resources').where('host', '=', ref.host).where('kind', '=', ref.kind).where('name', '=', ref.name).execute();
    },
  };

  /**
   * Paths on the host virtform created for a resource (a pool's directory and the parents it had
   * to create): deleting the resource removes only these. Kept when the resource's record goes.
   */
  readonly createdPaths = {
    list: async (ref: ResourceRef): Promise<string[]> => {
      const rows = await this.db.selectFrom('created_paths').select('path')
        .where('host', '=', ref.host).where('kind', '=', ref.kind).where('name', '=', ref.name).orderBy('path').execute();
      return rows.map((r) => r.path);
    },
    add: async (ref: ResourceRef, paths: string[]): Promise<void> => {
      const now = this.#now();
      for (const path of paths) {
        await this.db.insertInto('created_paths').values({ host: ref.host, kind: ref.kind, name: ref.name, path, created_at: now })
          .onConflict((oc) => oc.columns(['host', 'kind', 'name', 'path']).doNothing()).execute();
      }
    },
    remove: async (ref: ResourceRef, paths: string[]): Promise<void> => {
      if (paths.length === 0) return;
      await this.db.deleteFrom('created_paths')
        .where('host', '=', ref.host).where('kind', '=', ref.kind).where('name', '=', ref.name).where('path', 'in', paths).execute();
    },
  };
  readonly journal = {
    /** Record that a step is about to run; returns the entry id (status `open`). */
    begin: async (e: ResourceRef & {
      runId: string;
      action: string;
      intent: Record<string, unknown>;
      attempt?: number;
    }): Promise<number> => {
      const row = await this.db
        .insertInto('journal')
        .values({
          run_id: e.runId,
          host: e.host,
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
            .whereRef('k.host', '=', 'j.host')
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
    forResource: async (ref: ResourceRef, limit: number = DEFAULT_LIMIT): Promise<JournalEntry[]> => {
      const rows = await this.db
        .selectFrom('journal')
        .selectAll()
        .where('host', '=', ref.host)
        .where('kind', '=', ref.kind)
        .where('name', '=', ref.name)
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
      return this.retrying(() => this.db.transaction().execute(async (trx) => {
        const now = this.#now();
        const row = await trx.selectFrom('hosts').selectAll().where('id', '=', id).executeTakeFirst();
        const fields = { uri: identity.uri, hostname: identity.hostname, host_uuid: identity.uuid, driver: identity.driver };
        if (!row) {
          if (opts.record) {
            await trx.insertInto('hosts').values({ id, ...fields, first_seen: now, last_seen: now }).onConflict((oc) => oc.column('id').doNothing()).execute();
          }
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

    rekey: async (identity: HostIdentity, opts: { from?: string; to: string }): Promise<HostRekey> => {
      const from = opts.from ?? DEFAULT_HOST_ID;
      const to = opts.to;
      if (from === to) throw new Error(`internal error: rekey of host ${from} to itself`);
      return this.retrying(() => this.db.transaction().execute(async (trx) => {
        const count = async (table: HostKeyedTable, host: string): Promise<number> =>
          Number((await trx.selectFrom(table).select((eb) => eb.fn.countAll<number>().as('n')).where('host', '=', host).executeTakeFirstOrThrow()).n);
        const row = await trx.selectFrom('hosts').selectAll().where('id', '=', from).executeTakeFirst();
        if (!row) return { status: 'nothing' };
        const previous = toHost(row);
        if (!sameHost(previous, identity)) return { status: 'other-host', recorded: previous };
        let held = 0;
        for (const t of HOST_KEYED_TABLES) held += await count(t, to);
        const target = await trx.selectFrom('hosts').selectAll().where('id', '=', to).executeTakeFirst();
        if (held > 0) return { status: 'target-in-use', recorded: target ? toHost(target) : previous, held };
        const moved = {} as Record<HostKeyedTable, number>;
        for (const t of HOST_KEYED_TABLES) moved[t] = await count(t, from);
        // A file reference names its user by key: `Kind/name` on the implicit host, `host/Kind/name` elsewhere.
        const refs = await trx.selectFrom('volume_references').select(['path', 'used_by', 'role', 'source']).where('host', '=', from).where('managed', '=', 1).execute();
        for (const t of HOST_KEYED_TABLES) await trx.updateTable(t).set({ host: to }).where('host', '=', from).execute();
        const rename = (key: string): string => (from === DEFAULT_HOST_ID ? `${to}/${key}` : key.startsWith(`${from}/`) ? `${to}/${key.slice(from.length + 1)}` : key);
        for (const r of refs) {
          const by = rename(r.used_by);
          if (by === r.used_by) continue;
          await trx.updateTable('volume_references').set({ used_by: by })
            .where('host', '=', to).where('path', '=', r.path).where('used_by', '=', r.used_by).where('role', '=', r.role).where('source', '=', r.source).execute();
        }
        // The identity row: `from`'s history (first seen) goes with its records.
        if (target) await trx.deleteFrom('hosts').where('id', '=', to).execute();
        await trx.updateTable('hosts').set({ id: to, uri: identity.uri, hostname: identity.hostname, host_uuid: identity.uuid, driver: identity.driver, last_seen: this.#now() })
          .where('id', '=', from).execute();
        return { status: 'rekeyed', previous, moved };
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
      return this.retrying(() => this.db.transaction().execute(async (trx) => {
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
        const row = await trx.insertInto('git_sources').values({ id: u.id, ...cols })
          .onConflict((oc) => oc.column('id').doUpdateSet(cols)).returningAll().executeTakeFirstOrThrow();
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

  /** Requests to the writer lease's holder (migration 0015, src/state/requests.ts). */
  readonly requests = {
    submit: async (r: { type: string; args: Record<string, unknown>; requestedBy: string }): Promise<number> => {
      const row = await this.db.insertInto('requests')
        .values({ type: r.type, args: JSON.stringify(r.args), status: 'queued', requested_by: r.requestedBy, requested_at: this.#now() })
        .returning('id').executeTakeFirstOrThrow();
      return Number(row.id);
    },
    get: async (id: number): Promise<RequestRecord | undefined> => {
      const row = await this.db.selectFrom('requests').selectAll().where('id', '=', id).executeTakeFirst();
      return row ? toRequest(row) : undefined;
    },
    list: async (opts: { status?: RequestStatus[]; limit?: number } = {}): Promise<RequestRecord[]> => {
      let q = this.db.selectFrom('requests').selectAll();
      if (opts.status) q = q.where('status', 'in', opts.status.length ? opts.status : ['']);
      const rows = await q.orderBy('id', 'desc').limit(opts.limit ?? 100).execute();
      return rows.map(toRequest);
    },
    claim: async (claimedBy: string): Promise<RequestRecord | undefined> => {
      return this.retrying(() => this.db.transaction().execute(async (trx) => {
        const next = await trx.selectFrom('requests').select('id').where('status', '=', 'queued').orderBy('id').limit(1).executeTakeFirst();
        if (!next) return undefined;
        const res = await trx.updateTable('requests').set({ status: 'running', claimed_by: claimedBy, started_at: this.#now() })
          .where('id', '=', next.id).where('status', '=', 'queued').executeTakeFirst();
        if (Number(res.numUpdatedRows) !== 1) return undefined;
        return toRequest(await trx.selectFrom('requests').selectAll().where('id', '=', next.id).executeTakeFirstOrThrow());
      }));
    },
    finish: async (id: number, outcome: RequestOutcome): Promise<void> => {
      await this.db.updateTable('requests')
        .set({ status: outcome.ok ? 'succeeded' : 'failed', outcome: JSON.stringify(outcome), finished_at: this.#now() })
        .where('id', '=', id).where('status', '=', 'running').execute();
    },
    cancel: async (id: number): Promise<boolean> => {
      const res = await this.db.updateTable('requests').set({ status: 'cancelled', finished_at: this.#now() })
        .where('id', '=', id).where('status', '=', 'queued').executeTakeFirst();
      return Number(res.numUpdatedRows) === 1;
    },
    abandon: async (claimedBy: string, why: string): Promise<RequestRecord[]> => {
      const rows = await this.db.selectFrom('requests').selectAll().where('status', '=', 'running').where('claimed_by', '!=', claimedBy).execute();
      const out: RequestRecord[] = [];
      for (const row of rows) {
        const outcome: RequestOutcome = { ok: false, exitCode: 1, message: `abandoned: ${why} (it was taken by ${row.claimed_by ?? 'an earlier holder'})` };
        const res = await this.db.updateTable('requests').set({ status: 'abandoned', outcome: JSON.stringify(outcome), finished_at: this.#now() })
          .where('id', '=', row.id).where('status', '=', 'running').executeTakeFirst();
        if (Number(res.numUpdatedRows) === 1) out.push(toRequest({ ...row, status: 'abandoned', outcome: JSON.stringify(outcome) }));
      }
      return out;
    },
  };

  /**
   * Every use of a file virtform has seen on the host (the data rule, `kinds/volume/data.ts`): a
   * volume once used by any definition stays data after its user is gone.
   */
  readonly references = {
    /** The recorded uses of these paths. */
    list: async (host: string, paths: string[]): Promise<StoredReference[]> => {
      const out: StoredReference[] = [];
      for (let i = 0; i < paths.length; i += 200) {
        const rows = await this.db.selectFrom('volume_references').selectAll()
          .where('host', '=', host).where('path', 'in', paths.slice(i, i + 200)).execute();
        out.push(...rows.map((r) => ({ path: r.path, by: r.used_by, role: r.role, source: r.source, managed: r.managed === 1, firstSeen: r.first_seen })));
      }
      return out;
    },
    /** Remember uses; one already recorded keeps its first sighting (no write when nothing is new). */
    record: async (host: string, refs: StoredReference[]): Promise<void> => {
      if (refs.length === 0) return;
      const now = this.#now();
      await this.retrying(() => this.db.transaction().execute(async (trx) => {
        for (let i = 0; i < refs.length; i += 100) {
          await trx.insertInto('volume_references')
            .values(refs.slice(i, i + 100).map((r) => ({ host, path: r.path, used_by: r.by, role: r.role, source: r.source, managed: r.managed ? 1 : 0, first_seen: now })))
            .onConflict((oc) => oc.doNothing())
            .execute();
        }
      }));
    },
    /** Forget the uses of files virtform deleted (with consent): a new file there starts pristine. */
    forget: async (host: string, paths: string[]): Promise<void> => {
      if (paths.length === 0) return;
      await this.db.deleteFrom('volume_references').where('host', '=', host).where('path', 'in', paths).execute();
    },
  };

  /**
   * Conditions of resources with their last transition times. `sync` takes freshly derived
   * conditions and keeps each one's `lastTransitionTime` while its status is unchanged; a changed
   * (or new) status gets the current time. Resources not given are left alone unless `prune`.
   */
  readonly conditions = {
    list: async (): Promise<Map<string, Condition[]>> => {
      const rows = await this.db.selectFrom('conditions').selectAll().orderBy('host').orderBy('kind').orderBy('name').execute();
      const out = new Map<string, Condition[]>();
      for (const r of rows) {
        if (!isConditionType(r.type)) continue;
        const key = resourceKey(r.kind, r.name, r.host);
        out.set(key, [...(out.get(key) ?? []), {
          type: r.type, status: r.status === 'True' ? 'True' : 'False', reason: r.reason, message: r.message, lastTransitionTime: r.last_transition_time,
        }]);
      }
      return out;
    },

    sync: async (
      entries: (ResourceRef & { conditions: ConditionDraft[] })[], opts: ConditionSyncOptions = {},
    ): Promise<Map<string, Condition[]>> => this.retrying(() => this.db.transaction().execute(async (trx) => {
      const now = this.#now();
      const rows = await trx.selectFrom('conditions').selectAll().execute();
      const stored = new Map(rows.map((r) => [`${r.host}\u0000${r.kind}\u0000${r.name}\u0000${r.type}`, r]));
      const out = new Map<string, Condition[]>();
      const keep = new Set<string>();
      for (const e of entries) {
        const list: Condition[] = [];
        for (const c of e.conditions) {
          const id = `${e.host}\u0000${e.kind}\u0000${e.name}\u0000${c.type}`;
          keep.add(id);
          const prev = stored.get(id);
          const lastTransitionTime = prev && prev.status === c.status ? prev.last_transition_time : now;
          list.push({ ...c, lastTransitionTime });
          if (prev && prev.status === c.status && prev.reason === c.reason && prev.message === c.message) continue;
          const values = { status: c.status, reason: c.reason, message: c.message, last_transition_time: lastTransitionTime };
          // An upsert: another writer may have inserted the row since this transaction read.
          await trx.insertInto('conditions').values({ host: e.host, kind: e.kind, name: e.name, type: c.type, ...values })
            .onConflict((oc) => oc.columns(['host', 'kind', 'name', 'type']).doUpdateSet(values)).execute();
        }
        out.set(resourceKey(e.kind, e.name, e.host), list);
      }
      if (opts.prune) {
        for (const [id, r] of stored) {
          if (!keep.has(id) && prunable(r.type, opts)) {
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
      const read = async (keys?: ResourceRef[]): Promise<Map<string, BaselineEntry>> => {
        const out = new Map<string, BaselineEntry>();
        for (const part of keyChunks(keys)) {
          let q = this.db.selectFrom('baselines').select(['host', 'kind', 'name', 'sha256', 'version']);
          if (part) q = q.where((eb) => eb.or(part.map((k) => eb.and(refWhere(k)))));
          for (const r of await q.execute()) out.set(resourceKey(r.kind, r.name, r.host), { sha256: r.sha256, version: r.version });
        }
        return out;
      };
      return new Map((await this.keptRows('baselines', () => read(), read)).rows);
    },
    xml: async (keys: ResourceRef[]): Promise<Map<string, string>> => {
      const out = new Map<string, string>();
      for (let i = 0; i < keys.length; i += 200) {
        const part = keys.slice(i, i + 200);
        const rows = await this.db.selectFrom('baselines').select(['host', 'kind', 'name', 'xml'])
          .where((eb) => eb.or(part.map((k) => eb.and(refWhere(k))))).execute();
        for (const r of rows) out.set(resourceKey(r.kind, r.name, r.host), r.xml);
      }
      return out;
    },
    put: async (b: ResourceRef & { xml: string; sha256: string; version: string }): Promise<void> => {
      const values = { sha256: b.sha256, xml: b.xml, version: b.version, recorded_at: this.#now() };
      await this.retrying(() => this.db.insertInto('baselines').values({ ...refWhere(b), ...values })
        .onConflict((oc) => oc.columns(['host', 'kind', 'name']).doUpdateSet(values)).execute());
    },
    delete: async (ref: ResourceRef): Promise<void> => {
      await this.db.deleteFrom('baselines').where('host', '=', ref.host).where('kind', '=', ref.kind).where('name', '=', ref.name).execute();
    },
  };

  /**
   * The no-op fast path (migration 0013): definitions a run compared without a difference, the
   * sha256 of their bytes and a digest of the comparison's other inputs. `index` is read every
   * run; `sync` writes after a run (only rows that changed) and drops rows of forgotten resources.
   */
  readonly definitionChecks = {
    index: async (): Promise<Map<string, DefinitionCheck>> => {
      const read = async (keys?: ResourceRef[]): Promise<Map<string, DefinitionCheck>> => {
        const out = new Map<string, DefinitionCheck>();
        for (const part of keyChunks(keys)) {
          let q = this.db.selectFrom('definition_checks').select(['host', 'kind', 'name', 'sha256', 'inputs']);
          if (part) q = q.where((eb) => eb.or(part.map((k) => eb.and(refWhere(k)))));
          for (const r of await q.execute()) out.set(resourceKey(r.kind, r.name, r.host), { sha256: r.sha256, inputs: r.inputs });
        }
        return out;
      };
      return new Map((await this.keptRows('definition_checks', () => read(), read)).rows);
    },
    sync: async (host: string, put: (ResourceRef & DefinitionCheck)[], keep: ReadonlySet<string>): Promise<void> => {
      await this.retrying(() => this.db.transaction().execute(async (trx) => {
        const rows = await trx.selectFrom('definition_checks').select(['kind', 'name']).where('host', '=', host).execute();
        for (const r of rows) {
          if (keep.has(resourceKey(r.kind, r.name, host))) continue;
          await trx.deleteFrom('definition_checks').where('host', '=', host).where('kind', '=', r.kind).where('name', '=', r.name).execute();
        }
        for (const c of put) {
          const values = { sha256: c.sha256, inputs: c.inputs };
          await trx.insertInto('definition_checks').values({ ...refWhere(c), ...values })
            .onConflict((oc) => oc.columns(['host', 'kind', 'name']).doUpdateSet(values)).execute();
        }
      }));
    },
  };

  readonly events = {
    /** `ref`: the resource the event is about, if any. */
    append: async (e: { level: 'info' | 'warn' | 'error'; ref?: ResourceRef; message: string }): Promise<void> => {
      await this.db
        .insertInto('events')
        .values({ at: this.#now(), level: e.level, host: e.ref?.host ?? null, kind: e.ref?.kind ?? null, name: e.ref?.name ?? null, message: e.message })
        .execute();
    },

    /** Most recent events, newest first. */
    recent: async (limit: number = DEFAULT_LIMIT): Promise<EventRecord[]> => {
      return this.db
        .selectFrom('events')
        .select(['at', 'level', 'kind', 'name', 'host', 'message'])
        .orderBy('id', 'desc')
        .limit(limit)
        .execute();
    },

    forResource: async (ref: ResourceRef, limit: number = DEFAULT_LIMIT): Promise<EventRecord[]> => {
      return this.db
        .selectFrom('events')
        .select(['at', 'level', 'kind', 'name', 'host', 'message'])
        .where('host', '=', ref.host).where('kind', '=', ref.kind).where('name', '=', ref.name)
        .orderBy('id', 'desc')
        .limit(limit)
        .execute();
    },
  };

  readonly runs = {
    record: async (r: RunRecord, keep: number): Promise<void> => {
      const values = {
        started_at: r.startedAt, finished_at: r.finishedAt, trigger: r.trigger.slice(0, 255), outcome: r.outcome, duration_ms: Math.round(r.durationMs),
        revision_id: r.revisionId, git_commit: r.gitCommit, counts: JSON.stringify(r.counts), failures: JSON.stringify(r.failures), steps: JSON.stringify(r.steps),
      };
      await this.retrying(() => this.db.transaction().execute(async (trx) => {
        await trx.insertInto('runs').values({ id: r.id, ...values }).onConflict((oc) => oc.column('id').doUpdateSet(values)).execute();
        // Retention: the newest `keep` by finish time (ties by id), pruned on every insert.
        const cut = await trx.selectFrom('runs').select(['finished_at', 'id']).orderBy('finished_at', 'desc').orderBy('id', 'desc')
          .offset(Math.max(0, keep)).limit(1).executeTakeFirst();
        if (cut) {
          await trx.deleteFrom('runs').where((eb) => eb.or([
            eb('finished_at', '<', cut.finished_at),
            eb.and([eb('finished_at', '=', cut.finished_at), eb('id', '<=', cut.id)]),
          ])).execute();
        }
      }));
    },
    page: async (offset: number, limit: number): Promise<{ total: number; items: RunRecord[] }> => {
      const total = await this.db.selectFrom('runs').select((eb) => eb.fn.countAll<number | string | bigint>().as('n')).executeTakeFirst();
      const rows = await this.db.selectFrom('runs').selectAll().orderBy('finished_at', 'desc').orderBy('id', 'desc').offset(offset).limit(limit).execute();
      return { total: Number(total?.n ?? 0), items: rows.map(runFromRow) };
    },
    get: async (id: string): Promise<RunRecord | undefined> => {
      const row = await this.db.selectFrom('runs').selectAll().where('id', '=', id).executeTakeFirst();
      return row ? runFromRow(row) : undefined;
    },
  };

  readonly gitCommits = {
    put: async (c: GitCommitRecord): Promise<void> => {
      const values = { author: c.author, message: c.message, committed_at: c.committedAt, recorded_at: this.#now() };
      await this.retrying(() => this.db.insertInto('git_commits').values({ sha: c.sha, ...values })
        .onConflict((oc) => oc.column('sha').doUpdateSet(values)).execute());
    },
    getMany: async (shas: readonly string[]): Promise<GitCommitRecord[]> => {
      const want = [...new Set(shas)].filter((x) => x.length > 0);
      if (want.length === 0) return [];
      const rows = await this.db.selectFrom('git_commits').selectAll().where('sha', 'in', want).execute();
      return rows.map((r) => ({ sha: r.sha, author: r.author, message: r.message, committedAt: r.committed_at }));
    },
  };

  /**
   * The writer lease (src/state/lease.ts): throws LeaseHeldError (naming the holder's pid, host and
   * command) while another live process holds it, after waiting up to `wait.timeoutMs`. From then
   * on every write of this store is fenced by it (src/state/fence.ts), until it is released.
   * `owner.pid` / `owner.hostname` override the recorded identity (tests only).
   */
  async acquireLease(owner: LeaseOwner, timing?: LeaseTiming, wait?: WaitOptions): Promise<Lease> {
    const lease = await acquireLease(this.leaseDeps(), owner, timing, wait);
    this.#fencing.fence = lease;
    lease.onReleased(() => {
      if (this.#fencing.fence === lease) this.#fencing.fence = undefined;
    });
    return lease;
  }

  /**
   * Where the lease's own statements run (acquire, renew, release, read): this store's kysely by
   * default; PostgreSQL gives them connections of their own, so a renewal never waits for a pool
   * the run keeps busy. (The fence runs on the writing connection, whatever this says.)
   */
  protected leaseDb(): Kysely<StateDatabase> {
    return this.db;
  }

  /** What a lease on this store needs: its kysely, dialect, label and synchronous release. */
  leaseDeps(): LeaseDeps {
    return {
      db: this.leaseDb(),
      dialect: this.backend,
      label: this.path,
      releaseSync: (row) => {
        if (!this.#closed) this.releaseLeaseSync(row);
      },
    };
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await this.closeBackend();
  }
}

/** Whether a sync with `opts.prune` may delete a stored condition of this type. */
function prunable(type: string, opts: ConditionSyncOptions): boolean {
  if (opts.keepTypes?.some((t) => t === type)) return false;
  return opts.pruneTypes === undefined || opts.pruneTypes.some((t) => t === type);
}
