/**
 * Opening the state store: a `postgres://` URL opens the PostgreSQL backend, anything else is a
 * SQLite file (or `:memory:`). The contract is `types.ts`; the shared queries `queries.ts`; the
 * backends `sqlite.ts` and `postgres.ts` (a new backend is one more file extending
 * `KyselyStateStore`, and one more branch here).
 */
import { isPostgresLocation } from './location.js';
import type { OpenOptions, StateStore } from './types.js';

export * from './types.js';
// Types only: each backend module (and its driver: better-sqlite3, or pg + pgpass) is loaded when
// a store of that kind is opened, so a SQLite run never loads the PostgreSQL driver.
export type { SqliteStateStore } from './sqlite.js';
export type { PostgresStateStore } from './postgres.js';
export { isPostgresLocation, redactPostgresUrl, checkPostgresUrl } from './location.js';

/**
 * Open (creating if needed) the state store at `location` and run pending migrations: a SQLite
 * file path (`:memory:` for tests and dry-runs) or a `postgres://user@host:port/db` URL. Throws
 * StateDbOpenError naming the location (never a password) and the reason; StateDbUrlError for a
 * URL with a password.
 */
export async function openStateStore(location: string, opts: OpenOptions = {}): Promise<StateStore> {
  return isPostgresLocation(location)
    ? (await import('./postgres.js')).openPostgresStore(location, opts)
    : (await import('./sqlite.js')).openSqliteStore(location, opts);
}
