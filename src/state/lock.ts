import { hostname as osHostname } from 'node:os';
import type { Kysely } from 'kysely';
import type { StateDatabase } from './schema.js';

/** Name of the single-writer lock row in `locks`. */
export const WRITER_LOCK_NAME = 'writer';

export interface WriterLock {
  release(): Promise<void>;
  readonly pid: number;
  /** Hostname recorded in the lock row. */
  readonly hostname: string;
  /** ISO timestamp recorded in the lock row; together with pid it identifies this holder. */
  readonly acquiredAt: string;
  /** Synchronous release, for signal/exit handlers (uses the underlying SQLite handle). */
  releaseSync(): void;
  /** Refresh `heartbeat_at` (informational: staleness is decided by pid liveness, not time). */
  heartbeat(): Promise<void>;
}

/** Thrown by `acquireWriterLock` while another live process holds the writer lock. */
export class LockHeldError extends Error {
  override readonly name = 'LockHeldError';
  constructor(
    public holderPid: number,
    public holderHost: string,
    public holderCommand: string,
    public acquiredAt: string,
    dbPath?: string,
  ) {
    super(
      `state DB${dbPath ? ` ${dbPath}` : ''} is locked by pid ${holderPid} on host ${holderHost} ` +
        `(command: ${holderCommand}) since ${acquiredAt}; another virtform process is writing`,
    );
  }
}

/** True unless the pid certainly does not exist (ESRCH). EPERM means it exists but is not ours. */
export function isPidAlive(pid: number): boolean {
  if (!Number.isInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code !== 'ESRCH';
  }
}

export interface LockOwner {
  command: string;
  /** Overrides for tests; default to this process / this host. */
  pid?: number;
  hostname?: string;
}

export interface LockDeps {
  db: Kysely<StateDatabase>;
  now: () => string;
  dbPath: string;
  /** Synchronous delete of the lock row, for releaseSync. */
  deleteSync: (name: string, pid: number, acquiredAt: string) => void;
}

/**
 * Acquire the writer lock. Atomic: the insert uses the primary key on `locks.name`
 * (`on conflict do nothing`), so of two racing processes exactly one inserts the row.
 * A same-host holder whose pid is gone is stale: its row (matched by pid + acquired_at, so we never
 * delete a row someone else just took over) is deleted and the insert retried.
 */
export async function acquireWriterLock(deps: LockDeps, owner: LockOwner): Promise<WriterLock> {
  const { db } = deps;
  const pid = owner.pid ?? process.pid;
  const host = owner.hostname ?? osHostname();
  for (let attempt = 0; attempt < 5; attempt++) {
    const acquiredAt = deps.now();
    const res = await db
      .insertInto('locks')
      .values({ name: WRITER_LOCK_NAME, pid, hostname: host, command: owner.command, acquired_at: acquiredAt, heartbeat_at: acquiredAt })
      .onConflict((oc) => oc.column('name').doNothing())
      .executeTakeFirst();
    if (Number(res.numInsertedOrUpdatedRows ?? 0n) === 1) {
      return makeLock(deps, pid, host, acquiredAt);
    }
    const holder = await db.selectFrom('locks').selectAll().where('name', '=', WRITER_LOCK_NAME).executeTakeFirst();
    if (!holder) continue; // released between our insert and select: retry
    const stale = holder.hostname === host && holder.pid !== pid && !isPidAlive(holder.pid);
    if (!stale) {
      throw new LockHeldError(holder.pid, holder.hostname, holder.command, holder.acquired_at, deps.dbPath);
    }
    await db
      .deleteFrom('locks')
      .where('name', '=', WRITER_LOCK_NAME)
      .where('pid', '=', holder.pid)
      .where('hostname', '=', holder.hostname)
      .where('acquired_at', '=', holder.acquired_at)
      .execute();
  }
  throw new Error(`could not acquire the writer lock on ${deps.dbPath}: lock row kept changing`);
}

function makeLock(deps: LockDeps, pid: number, host: string, acquiredAt: string): WriterLock {
  let released = false;
  const own = () =>
    deps.db
      .deleteFrom('locks')
      .where('name', '=', WRITER_LOCK_NAME)
      .where('pid', '=', pid)
      .where('acquired_at', '=', acquiredAt);
  return {
    pid,
    hostname: host,
    acquiredAt,
    async release() {
      if (released) return;
      released = true;
      await own().execute();
    },
    releaseSync() {
      if (released) return;
      released = true;
      deps.deleteSync(WRITER_LOCK_NAME, pid, acquiredAt);
    },
    async heartbeat() {
      if (released) return;
      await deps.db
        .updateTable('locks')
        .set({ heartbeat_at: deps.now() })
        .where('name', '=', WRITER_LOCK_NAME)
        .where('pid', '=', pid)
        .where('acquired_at', '=', acquiredAt)
        .execute();
    },
  };
}
