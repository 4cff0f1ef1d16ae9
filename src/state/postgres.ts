/**
 * The PostgreSQL backend (`--db postgres://user@host:port/db` or `VIRTFORM_DB`): kysely's
 * PostgresDialect over a `pg` pool. Several virtform processes on several machines may share the
 * database. Migrations are serialized by kysely's migrator (a PostgreSQL advisory lock, each
 * migration in a transaction). A password is never part of the URL: `pg` reads it from
 * `PGPASSWORD` or the file `PGPASSFILE` (default `~/.pgpass`) names.
 */
import { hostname, userInfo } from 'node:os';
import { Kysely, Migrator, PostgresDialect, sql } from 'kysely';
import pg from 'pg';
import pgpass from 'pgpass';
import { sleep } from '../util/backoff.js';
import { migrationProvider } from './migrations/index.js';
import { INDEX_COLUMNS, KyselyStateStore, type IndexTuple } from './queries.js';
import type { StateDatabase } from './schema.js';
import { checkPostgresUrl, redactPostgresUrl } from './location.js';
import { StateDbOpenError, type OpenOptions } from './types.js';

/**
 * The password of a connection, asked only when the server wants one: `PGPASSWORD`, else the
 * matching line of the file `PGPASSFILE` names (default `~/.pgpass`; ignored unless mode 0600),
 * read with `pgpass`, the module pg itself uses (pg's own fallback to it is deprecated).
 */
function passwordFor(conn: { host: string; port: number; database: string; user: string }): Promise<string> {
  if (process.env.PGPASSWORD !== undefined) return Promise.resolve(process.env.PGPASSWORD);
  return new Promise((resolve, reject) => pgpass({ ...conn, port: String(conn.port) }, (pass) => {
    if (pass !== undefined) resolve(pass);
    else reject(new Error(`the server asks a password of user ${conn.user} on ${conn.host}:${conn.port}/${conn.database}: set PGPASSWORD, or a line for it in the file PGPASSFILE names (default ~/.pgpass, mode 0600)`));
  }));
}

/**
 * pg's connection settings from the URL (host, port, database, user; `?host=` for a socket folder,
 * `?sslmode=`), with the password asked through {@link passwordFor}. Not pg's `connectionString`:
 * its parse would replace the password function with the URL's (absent) password.
 */
function connectionConfig(url: string): pg.PoolConfig {
  const u = new URL(url);
  const conn = {
    host: u.searchParams.get('host') ?? (u.hostname.replace(/^\[|\]$/g, '') || 'localhost'),
    port: Number(u.searchParams.get('port') ?? (u.port || 5432)),
    database: decodeURIComponent(u.pathname.slice(1)),
    user: decodeURIComponent(u.username) || process.env.PGUSER || userName(),
  };
  const sslmode = u.searchParams.get('sslmode');
  const ssl = sslmode === 'require' ? { rejectUnauthorized: false } : sslmode === 'verify-ca' || sslmode === 'verify-full' ? { rejectUnauthorized: true } : undefined;
  return { ...conn, ...(ssl ? { ssl } : {}), password: () => passwordFor(conn) };
}

function userName(): string {
  try {
    return userInfo().username;
  } catch { // safe-catch: no passwd entry for this uid: no user name to look up a password for
    return '';
  }
}

/** `PGAPPNAME` when set, else `virtform HOST/PID` (at most 63 bytes, PostgreSQL's limit). */
export function applicationName(env: NodeJS.ProcessEnv = process.env): string {
  return (env.PGAPPNAME ?? `virtform ${hostname()}/${process.pid}`).slice(0, 63);
}

/** PostgreSQL errors a transaction is run again for: serialization failure, deadlock. */
const RETRY_CODES = new Set(['40001', '40P01']);

export class PostgresStateStore extends KyselyStateStore {
  readonly backend = 'postgres' as const;

  /** The lease's statements: a pool of their own (see {@link leaseDb}), made on first use. */
  #leaseDb: Kysely<StateDatabase> | undefined;
  readonly #leasePool: () => pg.Pool;

  /** Use {@link openPostgresStore}. `leasePool` makes the lease's own pool. */
  constructor(url: string, pool: pg.Pool, clock?: () => Date, dataDir?: string, leasePool: () => pg.Pool = () => pool) {
    super(redactPostgresUrl(url), new PostgresDialect({ pool }), clock, dataDir);
    this.#leasePool = leasePool;
  }

  /**
   * Two connections of their own for the lease (acquire, renew, release, read): a renewal must not
   * wait behind a run whose steps hold every connection of the main pool (10), or the holder would
   * step down for want of a connection. Its writes are to `leases` only, which is never fenced.
   */
  protected override leaseDb(): Kysely<StateDatabase> {
    if (this.closed) return this.db;
    this.#leaseDb ??= new Kysely<StateDatabase>({ dialect: new PostgresDialect({ pool: this.#leasePool() }) });
    return this.#leaseDb;
  }

  protected async indexPage(after: number, pageSize: number): Promise<IndexTuple[]> {
    const page = this.db.selectFrom('resources').select([...INDEX_COLUMNS, 'details']).where('id', '>', after).orderBy('id').limit(pageSize).as('page');
    const { rows } = await this.db
      .selectFrom(page)
      .select(sql<IndexTuple[] | string>`coalesce(json_agg(json_build_array(id, host, kind, name, uuid, spec_hash, desired_state, last_error, (details::json) -> 'facts') order by id), '[]'::json)`.as('rows'))
      .executeTakeFirstOrThrow();
    return (typeof rows === 'string' ? JSON.parse(rows) : rows) as IndexTuple[];
  }

  protected async retrying<T>(fn: () => Promise<T>): Promise<T> {
    for (let i = 1; ; i += 1) {
      try {
        return await fn();
      } catch (e) {
        if (!RETRY_CODES.has((e as { code?: string }).code ?? '') || i >= 5) throw e;
        await sleep(10 * i);
      }
    }
  }

  /** No synchronous client: the lease of a process that died expires (or is taken over at once by a run on the same machine: dead pid). */
  protected releaseLeaseSync(): void {}

  protected async closeBackend(): Promise<void> {
    await this.#leaseDb?.destroy();
    await this.db.destroy();
  }
}

/**
 * Open the PostgreSQL state DB at `url` and run pending migrations. Throws StateDbUrlError for a
 * URL with a password, StateDbOpenError (URL without secrets, and the reason) when the database
 * cannot be reached or migrated.
 */
export async function openPostgresStore(url: string, opts: OpenOptions = {}): Promise<PostgresStateStore> {
  checkPostgresUrl(url);
  const shown = redactPostgresUrl(url);
  const newPool = (max: number): pg.Pool => {
    const pool = new pg.Pool({
      ...connectionConfig(url), max, connectionTimeoutMillis: opts.busyTimeoutMs ?? 10_000,
      // pg_stat_activity (and the server's log) tell which process a session is: `virtform HOST/PID`.
      application_name: applicationName(),
      // A peer that vanished (a machine powered off, a partition) is noticed by TCP keepalives.
      keepAlive: true, keepAliveInitialDelayMillis: 10_000,
    });
    // An idle client's error (the server restarted) must not crash the process; the next query reconnects.
    pool.on('error', () => undefined);
    // Nor may the error of a client checked out between two queries (in a transaction): the server
    // restarted, or ended a transaction left idle (the lease's fence bounds that, src/state/lease.ts).
    // pg emits it on the client, where nobody listens: an uncaught exception. The next query on that
    // client fails with it instead, and the pool drops the client when it is released.
    pool.on('connect', (client) => client.on('error', () => undefined));
    return pool;
  };
  const store = new PostgresStateStore(url, newPool(10), opts.now, opts.dataDir, () => newPool(2));
  try {
    const migrator = new Migrator({ db: store.db, provider: migrationProvider });
    const { error, results } = await migrator.migrateToLatest();
    if (error) {
      const failed = results?.find((r) => r.status === 'Error');
      const msg = error instanceof Error ? error.message : String(error);
      throw new Error(`state DB migration${failed ? ` ${failed.migrationName}` : ''} failed: ${msg}`, { cause: error });
    }
  } catch (e) {
    await store.close();
    const code = (e as { code?: unknown }).code;
    throw new StateDbOpenError(shown, e instanceof Error ? e.message : String(e), typeof code === 'string' ? code : undefined, e);
  }
  return store;
}
