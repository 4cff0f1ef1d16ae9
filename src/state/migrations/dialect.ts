import { PostgresAdapter, type Kysely } from 'kysely';

/**
 * What a migration needs to know of the database it runs on. Migrations are written with kysely's
 * schema builder; where SQLite and PostgreSQL need different DDL (an auto-increment key, a changed
 * constraint) they ask here instead of emitting one dialect's SQL.
 */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export function isPostgres(db: Kysely<any>): boolean {
  return db.getExecutor().adapter instanceof PostgresAdapter;
}
