/**
 * The state store's contract: the records it keeps and the {@link StateStore} interface every
 * backend implements (SQLite: `sqlite.ts`, PostgreSQL: `postgres.ts`; the query code they share is
 * `queries.ts`). Callers depend on this file only.
 */
import type { Kysely } from 'kysely';
import type { Condition, ConditionDraft, ConditionType } from '../model/conditions.js';
import type { ResourceRef } from '../model/kinds.js';
import type { HostBinding, HostIdentity, HostRecord, HostRekey } from './hosts.js';
import type { Lease, LeaseDeps, LeaseOwner, LeaseTiming, WaitOptions } from './lease.js';
import type { StateDatabase } from './schema.js';

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

/* The request queue's records (src/state/requests.ts). */
/** The request types a holder may serve (open-ended: a watcher fails a type it has no handler for). */
export type RequestType = 'plan' | 'restart' | 'snapshot-revert' | (string & { readonly brand?: never });

export type RequestStatus = 'queued' | 'running' | 'succeeded' | 'failed' | 'cancelled' | 'abandoned';

/** What the handler reports; the requester prints `output`/`message` and exits with `exitCode`. */
export interface RequestOutcome {
  ok: boolean;
  /** The exit code the requesting command ends with (0, 1; never 2: input was checked before submitting). */
  exitCode: number;
  /** One line: what happened (`applied 4 steps`, `refused: the manifests changed (…)`). */
  message: string;
  /** The text the command would have printed had it run itself (plan, step lines), if any. */
  output?: string;
  /** The `--json` document the command would have printed, if any. */
  result?: Record<string, unknown>;
}

export interface RequestRecord {
  id: number;
  type: RequestType;
  args: Record<string, unknown>;
  status: RequestStatus;
  requestedBy: string;
  requestedAt: string;
  /** The lease holder that claimed it (`holder@epoch`). */
  claimedBy: string | null;
  startedAt: string | null;
  finishedAt: string | null;
  outcome: RequestOutcome | null;
}

/** What {@link StateStore.resources.indexPages} returns for each resource. */
export type ResourceIndexEntry = Pick<ResourceRecord, 'kind' | 'name' | 'host' | 'uuid' | 'specHash' | 'desiredState' | 'lastError'> & {
  /** The row's id: the pages' keyset. */
  id: number;
  /**
   * `details.facts`, when the record has any: the little a kind keeps about its object beyond the
   * applied config and needs on every run (a VM's resolved MACs and pending restart).
   */
  facts?: Record<string, unknown>;
};

/** What the store keeps of one resource; its {@link ResourceRef} (`kind`, `name`, `host`) is its key. */
export interface ResourceRecord extends ResourceRef {
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

export interface JournalEntry extends ResourceRef {
  id: number;
  runId: string;
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

/** What a run reads of every baseline: its hash and the versions it was recorded under. */
export interface BaselineEntry {
  sha256: string;
  version: string;
}

/** A run as the history keeps it (migration 0014). */
export interface RunRecord {
  id: string;
  startedAt: string;
  finishedAt: string;
  trigger: string;
  outcome: string;
  durationMs: number;
  revisionId: number | null;
  gitCommit: string | null;
  counts: Record<string, number>;
  failures: { resource: string; error: string; code?: string }[];
  steps: { kind: string; name: string; host: string; op: string; ms: number; outcome: string }[];
}

/** What a fetch learnt of a commit (migration 0014). */
export interface GitCommitRecord {
  sha: string;
  author: string;
  message: string;
  committedAt: string;
}

/** A definition compared without a difference (the no-op fast path, `src/reconcile/core/checks.ts`). */
export interface DefinitionCheck {
  /** sha256 of the definition's raw bytes. */
  sha256: string;
  /** Digest of everything else the comparison depended on. */
  inputs: string;
}

export interface EventRecord {
  at: string;
  level: string;
  kind: string | null;
  name: string | null;
  /** The host of the resource the event is about (null for an event about no resource). */
  host: string | null;
  message: string;
}

export type ResourceUpsert = ResourceRef & Partial<
  Omit<ResourceRecord, 'kind' | 'name' | 'host' | 'createdAt' | 'updatedAt' | 'generation'>
>;

/** The key columns of a resource's rows: `host`, `kind`, `name` (migration 0008 makes them unique). */
export interface OpenOptions {
  /** Clock, for tests. Default: `() => new Date()`. */
  now?: () => Date;
  /** SQLite busy timeout in ms (default 5000). */
  busyTimeoutMs?: number;
  /** Open an existing DB only: a missing file is a {@link StateDbMissingError}, nothing is created. */
  mustExist?: boolean;
  /**
   * The folder of the caches (`images/`, `git/`), see {@link StateStore.dataDir}. Default: the
   * SQLite file's folder; none for PostgreSQL (the CLI gives `--data-dir` or its default).
   */
  dataDir?: string;
}

/** `openStateStore(path, { mustExist: true })` on a path where no state DB exists. */
export class StateDbMissingError extends Error {
  override readonly name = 'StateDbMissingError';
  constructor(readonly path: string) {
    super(`state DB ${path} does not exist (nothing has been applied with this --db yet)`);
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

/**
 * virtform's persistent state: resources, operation journal, applied revisions, events,
 * conditions, controls, hosts, git sources, baselines, file references, created paths and the
 * writer lease. Every per-resource method takes a {@link ResourceRef} (`host` is part of
 * the key). Implementations: `SqliteStateStore` (one file, the default) and `PostgresStateStore`
 * (`--db postgres://...`); `openStateStore` picks one by the location.
 */
/** How {@link StateStore.conditions}.sync prunes. */
export interface ConditionSyncOptions {
  prune?: boolean;
  /** Only these types are pruned (default: all). */
  pruneTypes?: readonly ConditionType[];
  /** These types are never pruned (a status keeps what only the fleet run derives). */
  keepTypes?: readonly ConditionType[];
}

export interface StateStore {
  /** Which backend this is. */
  readonly backend: 'sqlite' | 'postgres';
  /** Where the state lives: the SQLite file (or `:memory:`), or the PostgreSQL URL (no password). */
  readonly path: string;
  /** The kysely instance, for tests and advanced queries. Prefer the repositories below. */
  readonly db: Kysely<StateDatabase>;
  /** The folder of the local caches (`images/`, `git/`): `--data-dir`, by default the SQLite file's folder. */
  readonly dataDir: string | undefined;
  /**
   * A throwaway copy of the whole state, opened as a store (closing it discards it), for a dry-run
   * that must plan as if a first write of the apply had happened (the fleet's binding of the
   * implicit host's records). SQLite only (`VACUUM INTO`); absent on PostgreSQL, where such a
   * dry-run says what it cannot show instead.
   */
  scratchCopy?(): Promise<StateStore>;

  readonly resources: {
    get(ref: ResourceRef): Promise<ResourceRecord | undefined>;
    /** All resources (optionally of one kind, or of one host), ordered by host, kind then name. */
    list(filter?: { kind?: string; host?: string }): Promise<ResourceRecord[]>;
    /** The narrow index of every resource, in pages of `pageSize` rows by id (keyset pagination). */
    indexPages(pageSize: number): AsyncGenerator<ResourceIndexEntry[]>;
    /** Full records of the given resources; missing ones are left out. */
    getMany(keys: ResourceRef[]): Promise<ResourceRecord[]>;
    /** Insert or update in one statement; fields not given keep their value; generation +1 when specHash changes. */
    upsert(r: ResourceUpsert): Promise<ResourceRecord>;
    /** Update observed status / last error / attempts (a row is created if there is none). */
    setStatus(ref: ResourceRef, s: { observedStatus?: string | null; lastError?: string | null; attempts?: number }): Promise<void>;
    delete(ref: ResourceRef): Promise<void>;
  };
  /** Paths on the host virtform created for a resource (kept when its record goes). */
  readonly createdPaths: {
    list(ref: ResourceRef): Promise<string[]>;
    add(ref: ResourceRef, paths: string[]): Promise<void>;
    remove(ref: ResourceRef, paths: string[]): Promise<void>;
  };
  readonly journal: {
    /** Record that a step is about to run; returns the entry id (status `open`). */
    begin(e: ResourceRef & { runId: string; action: string; intent: Record<string, unknown>; attempt?: number }): Promise<number>;
    /** Close an open entry (a closed one keeps its first outcome); an unknown id throws. */
    finish(id: number, outcome: 'succeeded' | 'failed' | 'abandoned', error?: string): Promise<void>;
    listOpen(): Promise<JournalEntry[]>;
    /** Open entries, and failed ones not followed by a success or resolution of the same resource. */
    listUnresolved(): Promise<JournalEntry[]>;
    resolve(ids: number[]): Promise<void>;
    recent(limit?: number): Promise<JournalEntry[]>;
    forResource(ref: ResourceRef, limit?: number): Promise<JournalEntry[]>;
  };
  readonly hosts: {
    get(id?: string): Promise<HostRecord | undefined>;
    list(): Promise<HostRecord[]>;
    /** Check (and with `record`, record) the identity of host `id`; throws HostMismatchError. */
    bind(identity: HostIdentity, opts: { id?: string; record: boolean }): Promise<HostBinding>;
    /**
     * From one host to a fleet: when `identity` (what Host `to`'s connection reports) is the host
     * recorded as `from` (default the implicit `local`; {@link sameHost}), every record of `from` —
     * resources, journal, events, conditions, baselines, created paths, file references and the
     * `hosts` row — becomes a record of `to`, in one transaction. Nothing is pruned or recreated.
     * Nothing changes when another host is recorded, or `to` already holds records.
     */
    rekey(identity: HostIdentity, opts: { from?: string; to: string }): Promise<HostRekey>;
  };
  readonly revisions: {
    start(r: { runId: string; manifestDigest: string; gitCommit?: string | null; gitDirty?: boolean }): Promise<number>;
    finish(id: number, outcome: string, summary: Record<string, unknown>): Promise<void>;
    latest(opts?: { outcome?: string }): Promise<RevisionRecord | undefined>;
    get(id: number): Promise<RevisionRecord | undefined>;
  };
  readonly gitSources: {
    get(id: string): Promise<GitSourceRecord | undefined>;
    list(): Promise<GitSourceRecord[]>;
    update(u: GitSourceUpdate): Promise<GitSourceRecord>;
  };
  /** `virtform suspend` / `resume`: single-statement writes that do not take the writer lease. */
  readonly controls: {
    suspension(): Promise<Suspension | undefined>;
    suspend(s: { by: string; reason?: string | null }): Promise<{ suspension: Suspension; already: boolean }>;
    resume(): Promise<Suspension | undefined>;
  };
  /**
   * Requests to the writer lease's holder (the request queue, src/state/requests.ts). `submit` and
   * `cancel` are single statements that do not take the lease (the requester does not hold it);
   * `claim`, `finish` and `abandon` are the holder's (fenced by its lease).
   */
  readonly requests: {
    submit(r: { type: string; args: Record<string, unknown>; requestedBy: string }): Promise<number>;
    get(id: number): Promise<RequestRecord | undefined>;
    /** Most recent first (optionally only these statuses). */
    list(opts?: { status?: RequestStatus[]; limit?: number }): Promise<RequestRecord[]>;
    /** The oldest queued request, marked `running` by `claimedBy` (undefined when none is queued). */
    claim(claimedBy: string): Promise<RequestRecord | undefined>;
    /** Record the outcome of a running request: `succeeded` when `outcome.ok`, else `failed`. */
    finish(id: number, outcome: RequestOutcome): Promise<void>;
    /** Cancel a request still queued; false when it was taken (or finished) already. */
    cancel(id: number): Promise<boolean>;
    /** Mark `abandoned` the running requests not claimed by `claimedBy` (their holder lost the lease or died); returns them. */
    abandon(claimedBy: string, why: string): Promise<RequestRecord[]>;
  };
  /** Uses of files seen on a host (the data rule). */
  readonly references: {
    list(host: string, paths: string[]): Promise<StoredReference[]>;
    record(host: string, refs: StoredReference[]): Promise<void>;
    forget(host: string, paths: string[]): Promise<void>;
  };
  readonly conditions: {
    /** By resource key (`refKey`). */
    list(): Promise<Map<string, Condition[]>>;
    /**
     * Upserts each entry's conditions (transition times kept while a status is). `prune`: deletes
     * the stored conditions not given, within `pruneTypes` and never `keepTypes` (a writer that
     * derives only some types leaves the others' rows alone).
     */
    sync(entries: (ResourceRef & { conditions: ConditionDraft[] })[], opts?: ConditionSyncOptions): Promise<Map<string, Condition[]>>;
  };
  /** Baselines of definitions (exact drift), by resource key. */
  readonly baselines: {
    index(): Promise<Map<string, BaselineEntry>>;
    xml(keys: ResourceRef[]): Promise<Map<string, string>>;
    put(b: ResourceRef & { xml: string; sha256: string; version: string }): Promise<void>;
    delete(ref: ResourceRef): Promise<void>;
  };
  /** Definitions compared without a difference (the no-op fast path), by resource key. */
  readonly definitionChecks: {
    index(): Promise<Map<string, DefinitionCheck>>;
    /** Insert or replace these, and delete `host`'s rows of resources not in `keep` (by key), in one transaction. */
    sync(host: string, put: (ResourceRef & DefinitionCheck)[], keep: ReadonlySet<string>): Promise<void>;
  };
  readonly events: {
    append(e: { level: 'info' | 'warn' | 'error'; ref?: ResourceRef; message: string }): Promise<void>;
    recent(limit?: number): Promise<EventRecord[]>;
    /** The most recent events about one resource, newest first. */
    forResource(ref: ResourceRef, limit?: number): Promise<EventRecord[]>;
  };
  /** The run history (the dashboard's; migration 0014), newest first. */
  readonly runs: {
    /** Insert (or replace, same id) a run, then keep only the newest `keep` runs. */
    record(r: RunRecord, keep: number): Promise<void>;
    /** A page of runs, newest first (by finish time), with the total. */
    page(offset: number, limit: number): Promise<{ total: number; items: RunRecord[] }>;
    get(id: string): Promise<RunRecord | undefined>;
  };
  /** Commit metadata by hash (migration 0014). */
  readonly gitCommits: {
    put(c: GitCommitRecord): Promise<void>;
    getMany(shas: readonly string[]): Promise<GitCommitRecord[]>;
  };
  /**
   * The writer lease (src/state/lease.ts): throws LeaseHeldError naming the holder while another
   * live process holds it (after waiting up to `wait.timeoutMs`); while held, every write of this
   * store is fenced by it (src/state/fence.ts).
   */
  acquireLease(owner: LeaseOwner, timing?: LeaseTiming, wait?: WaitOptions): Promise<Lease>;
  /** What a lease on this store needs (tests, and `status` reading the lease row). */
  leaseDeps(): LeaseDeps;
  close(): Promise<void>;
}

/** `--db`/`VIRTFORM_DB` is a database URL virtform refuses (a password in it, not a URL): exit 2. */
export class StateDbUrlError extends Error {
  override readonly name = 'StateDbUrlError';
  /** The URL without its password. */
  readonly url: string;
  constructor(url: string, reason: string) {
    super(`state DB URL ${url} refused: ${reason}`);
    this.url = url;
  }
}
