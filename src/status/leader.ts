/**
 * Who leads: the writer lease row (src/state/lease.ts) as `virtform status` and the watcher's
 * `/status` show it. Pure: the row carries the database's clock at the time it was read, so the
 * ages are by that one clock, never the reader's.
 */
import type { LeaseRow } from '../state/index.js';

/** The `lease` object of `status --json` and `/status`. */
export interface LeaseStatus {
  /** True while the lease is held: not expired by the database's clock. */
  held: boolean;
  /** The holder's unique id `hostname/pid/random` (the last holder when not held). */
  holder: string;
  pid: number;
  hostname: string;
  command: string;
  /** The fencing token: +1 per acquisition by a new holder. */
  epoch: number;
  /** ISO times by the database's clock. */
  acquiredAt: string;
  renewedAt: string;
  expiresAt: string;
  /** How long ago the holder last renewed (ms, database clock). */
  renewedAgoMs: number;
  /** Until the lease expires unless renewed (ms, database clock; negative: expired that long ago). */
  expiresInMs: number;
}

/** The row as shown; null when the lease was never taken. */
export function leaseStatus(row: LeaseRow | undefined): LeaseStatus | null {
  if (!row) return null;
  const iso = (ms: number): string => new Date(ms).toISOString();
  return {
    held: row.expiresAt > row.now,
    holder: row.holder,
    pid: row.pid,
    hostname: row.hostname,
    command: row.command,
    epoch: row.epoch,
    acquiredAt: iso(row.acquiredAt),
    renewedAt: iso(row.renewedAt),
    expiresAt: iso(row.expiresAt),
    renewedAgoMs: row.now - row.renewedAt,
    expiresInMs: row.expiresAt - row.now,
  };
}

/** `2s`, `1m05s`: whole seconds, rounded down (a lease "expires in 0s" is still held). */
export function shortDuration(ms: number): string {
  const s = Math.max(0, Math.floor(ms / 1000));
  return s < 60 ? `${s}s` : `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s`;
}

/**
 * The status line: `leader: HOLDER (pid N on HOST, epoch E, renewed 2s ago, expires in 13s)`,
 * `leader: none (last: HOLDER, pid N on HOST, epoch E, expired 4s ago)` or `leader: none`.
 */
export function leaderLine(l: LeaseStatus | null): string {
  if (!l) return 'leader: none (the writer lease was never taken)';
  const who = `pid ${l.pid} on ${l.hostname}, epoch ${l.epoch}`;
  if (l.held) return `leader: ${l.holder} (${who}, renewed ${shortDuration(l.renewedAgoMs)} ago, expires in ${shortDuration(l.expiresInMs)})`;
  return `leader: none (last: ${l.holder}, ${who}, expired ${shortDuration(-l.expiresInMs)} ago)`;
}
