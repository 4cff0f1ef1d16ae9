/**
 * What a state DB location is (a SQLite path or a PostgreSQL URL), without loading either driver:
 * the CLI checks `--db` with these before any command runs.
 */
import { StateDbUrlError } from './types.js';

/** `postgres://` or `postgresql://`: a location {@link openPostgresStore} opens. */
export function isPostgresLocation(location: string): boolean {
  return /^postgres(ql)?:\/\//i.test(location);
}

/**
 * The URL without anything secret, for messages and `store.path`. A URL that carries a password
 * (`user:pw@`, or `?password=`) is refused by {@link checkPostgresUrl}; this only shapes the text.
 */
export function redactPostgresUrl(location: string): string {
  try {
    const u = new URL(location);
    if (u.password) u.password = '';
    if (u.searchParams.has('password')) u.searchParams.set('password', '***');
    return u.toString();
  } catch { // safe-catch: not a URL: shown without what could be a password
    return location.replace(/\/\/[^@/]*@/, '//***@');
  }
}

/** Refuse a URL with a password in it (StateDbUrlError, exit 2); the message never repeats the password. */
export function checkPostgresUrl(location: string): URL {
  let u: URL;
  try {
    u = new URL(location);
  } catch { // safe-catch: the parser's message could quote the URL, password included; ours names it redacted
    throw new StateDbUrlError(redactPostgresUrl(location), 'it is not a valid URL (postgres://user@host:port/database)');
  }
  if (u.password || u.searchParams.has('password')) {
    throw new StateDbUrlError(
      redactPostgresUrl(location),
      'it contains a password; a password is never given in --db or VIRTFORM_DB (it would show in process lists and logs): ' +
        'put it in a file named by PGPASSFILE (default ~/.pgpass) or in PGPASSWORD',
    );
  }
  if (!u.pathname || u.pathname === '/') throw new StateDbUrlError(redactPostgresUrl(location), 'it names no database (postgres://user@host:port/database)');
  return u;
}

