import { PostgresAdapter, type ColumnDefinitionBuilder, type Kysely } from 'kysely';

/**
 * What a migration needs to know of the database it runs on. Migrations are written with kysely's
 * schema builder; where SQLite and PostgreSQL need different DDL (an auto-increment key, a changed
 * constraint) they ask here instead of emitting one dialect's SQL.
 */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export function isPostgres(db: Kysely<any>): boolean {
  return db.getExecutor().adapter instanceof PostgresAdapter;
}

/**
 * The type of an auto-increment integer key: `integer` (with AUTOINCREMENT, {@link idConstraints})
 * on SQLite, `serial` on PostgreSQL (kysely compiles `autoIncrement()` for PostgreSQL into
 * `auto_increment`, which PostgreSQL rejects).
 */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export function idType(db: Kysely<any>): 'integer' | 'serial' {
  return isPostgres(db) ? 'serial' : 'integer';
}

/** The constraints of an auto-increment key column (see {@link idType}); SQLite's DDL is byte for byte 0001's. */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export function idConstraints(db: Kysely<any>): (c: ColumnDefinitionBuilder) => ColumnDefinitionBuilder {
  return isPostgres(db) ? (c) => c.primaryKey() : (c) => c.autoIncrement().primaryKey();
}
