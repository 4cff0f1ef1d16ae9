/**
 * The SQLite backend (the embedded default): one better-sqlite3 connection per store, WAL mode, a
 * busy timeout, foreign keys; read-modify-write transactions retried on SQLITE_BUSY; migrations
 * under `BEGIN IMMEDIATE`. SQLite is one machine only: the file must not be shared over a network.
 */
import { accessSync, constants as fsConstants, existsSync, mkdirSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import Database from 'better-sqlite3';
import { Kysely, Migrator, SqliteDialect, sql } from 'kysely';
import { backoffDelay, sleep } from '../util/backoff.js';
import { migrationProvider, migrations } from './migrations/index.js';
import { INDEX_COLUMNS, KEPT_TABLES, KyselyStateStore, type IndexTuple, type KeptTable, type TableChanges } from './queries.js';
import { resourceKey, type ResourceKind, type ResourceRef } from '../model/kinds.js';
import type { StateDatabase } from './schema.js';
import { StateDbMissingError, StateDbOpenError, type OpenOptions, type StateStore } from './types.js';

/** Rows of a kept table written between two reads beyond which the whole table is read again. */
const KEPT_WRITTEN_MAX = 10_000;

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

/**
 * {@link StateStore} on a SQLite file. Open one per DB file per process: better-sqlite3 is
 * synchronous, so two connections to the same file in one thread can stall each other for
 * `busy_timeout` on overlapping writes.
 */
export class SqliteStateStore extends KyselyStateStore {
  readonly backend = 'sqlite' as const;
  readonly #sqlite: Database.Database;

  /** Use {@link openSqliteStore}. */
  constructor(path: string, sqlite: Database.Database, clock?: () => Date, dataDir?: string) {
    super(path, new SqliteDialect({ database: sqlite }), clock, dataDir, 'begin immediate');
    this.#sqlite = sqlite;
  }

  /** Keys of the rows of each kept table this connection wrote since the last {@link tableChanges}. */
  readonly #written = new Map<KeptTable, Map<string, ResourceRef> | 'all'>(KEPT_TABLES.map((t) => [t, new Map()]));
  #dataVersion: Database.Statement | undefined;

  /**
   * For {@link openSqliteStore}, after the migrations: note the key of every row this connection
   * writes in the kept tables (temporary triggers, this connection's own, calling a function of
   * this process: a row written in a transaction rolled back later is noted too, and read again).
   * Another connection's commits (another process) move `PRAGMA data_version`.
   */
  installChangeTokens(): void {
    this.#sqlite.function('virtform_row_written', { deterministic: false }, (table: unknown, host: unknown, kind: unknown, name: unknown) => {
      const t = table as KeptTable;
      const w = this.#written.get(t);
      if (w === 'all') return null;
      const ref = { kind: String(kind) as ResourceKind, name: String(name), host: String(host) };
      w!.set(resourceKey(ref.kind, ref.name, ref.host), ref);
      if (w!.size > KEPT_WRITTEN_MAX) this.#written.set(t, 'all');
      return null;
    });
    for (const t of KEPT_TABLES) {
      const rows = { insert: ['NEW'], update: ['OLD', 'NEW'], delete: ['OLD'] };
      for (const [op, refs] of Object.entries(rows)) {
        const calls = refs.map((r) => `SELECT virtform_row_written('${t}', ${r}.host, ${r}.kind, ${r}.name);`).join(' ');
        this.#sqlite.exec(`CREATE TEMP TRIGGER IF NOT EXISTS virtform_written_${t}_${op} AFTER ${op.toUpperCase()} ON main.${t} BEGIN ${calls} END`);
      }
    }
    this.#dataVersion = this.#sqlite.prepare('PRAGMA data_version').pluck();
  }

  protected override get keepsTables(): boolean {
    return this.#dataVersion !== undefined;
  }

  protected override tableChanges(table: KeptTable): TableChanges | undefined {
    if (!this.#dataVersion || !this.#sqlite.open || this.#sqlite.inTransaction) return undefined;
    const written = this.#written.get(table)!;
    this.#written.set(table, new Map());
    return { version: String(this.#dataVersion.get()), written };
  }

  protected async indexPage(after: number, pageSize: number): Promise<IndexTuple[]> {
    const page = this.db.selectFrom('resources').select([...INDEX_COLUMNS, 'details']).where('id', '>', after).orderBy('id').limit(pageSize).as('page');
    const { rows } = await this.db
      .selectFrom(page)
      .select(sql<string>`json_group_array(json_array(id, host, kind, name, uuid, spec_hash, desired_state, last_error, json_extract(details, '$.facts')))`.as('rows'))
      .executeTakeFirstOrThrow();
    return (typeof rows === 'string' ? JSON.parse(rows) : rows) as IndexTuple[];
  }

  protected retrying<T>(fn: () => Promise<T>): Promise<T> {
    return withBusyRetry(fn);
  }

  protected releaseLeaseSync({ name, holder, epoch }: { name: string; holder: string; epoch: number }): void {
    if (!this.#sqlite.open) return;
    this.#sqlite
      .prepare(`UPDATE leases SET expires_at = cast(round((julianday('now') - 2440587.5) * 86400000.0) as integer) WHERE name = ? AND holder = ? AND epoch = ?`)
      .run(name, holder, epoch);
  }

  protected async closeBackend(): Promise<void> {
    await this.db.destroy();
  }

  /**
   * A throwaway copy of this DB (`VACUUM INTO` a temp file), opened as a store; closing it removes
   * the copy. What a dry-run plans against when the apply would first change records: the fleet's
   * binding of the implicit host's records to a Host (src/fleet/run.ts), so the plan shows what the
   * apply will do. The images cache (`dataDir`) is the original's, read only by a dry-run.
   */
  async scratchCopy(): Promise<StateStore> {
    const dir = mkdtempSync(join(tmpdir(), 'virtform-scratch-'));
    try {
      const file = join(dir, 'state.db');
      this.#sqlite.prepare('VACUUM INTO ?').run(file);
      const copy = await openSqliteStore(file, { ...(this.dataDir !== undefined ? { dataDir: this.dataDir } : {}) });
      const close = copy.close.bind(copy);
      copy.close = async () => {
        try {
          await close();
        } finally {
          rmSync(dir, { recursive: true, force: true });
        }
      };
      return copy;
    } catch (e) {
      rmSync(dir, { recursive: true, force: true });
      throw e;
    }
  }

  /** For {@link openSqliteStore}: run pending migrations on this store's connection. */
  migrate(): Promise<void> {
    return migrate(this.db, this.#sqlite);
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
export async function openSqliteStore(path: string, opts: OpenOptions = {}): Promise<SqliteStateStore> {
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
  const store = new SqliteStateStore(path, sqlite, opts.now, opts.dataDir ?? (memory ? undefined : dirname(path)));
  try {
    await store.migrate();
    store.installChangeTokens();
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
  // Nothing pending (every open after the first): one read, no write lock, no migrator (~10 ms of a CLI start).
  if (allMigrationsApplied(sqlite)) return;
  // In one thread, a second connection's BEGIN IMMEDIATE would block the event loop (busy_timeout
  // is a synchronous wait) while the first migration awaits: serialize migrations in-process.
  const run = migrationChain.then(() => migrateLocked(db, sqlite));
  // safe-catch: keeps the chain going; the caller gets `run` and its error
  migrationChain = run.catch(() => undefined);
  return run;
}

/**
 * Whether the DB has applied exactly this build's migrations (no more, no fewer): then opening it
 * migrates nothing. Anything else (a new DB, a pending migration, one this build does not know)
 * goes through the migrator, which applies or refuses as before.
 */
function allMigrationsApplied(sqlite: Database.Database): boolean {
  const table = sqlite.prepare("select 1 from sqlite_master where type = 'table' and name = 'kysely_migration'").get();
  if (table === undefined) return false;
  const applied = sqlite.prepare('select name from kysely_migration').pluck().all() as string[];
  const known = Object.keys(migrations);
  if (applied.length !== known.length) return false;
  const set = new Set(applied);
  return known.every((n) => set.has(n));
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