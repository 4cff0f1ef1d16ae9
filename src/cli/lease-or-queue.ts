/**
 * The writer lease for an imperative command (`reconcile --plan`, `restart`, `snapshot revert`),
 * or the request queue (src/state/requests.ts) while a watcher holds it.
 *
 * `leaseOrQueue` tries to take the lease (waiting up to `--lock-timeout`). Held by another
 * process: with `--no-queue` the command is refused (exit 1, naming the holder); otherwise the
 * command is submitted as a request, which the holder — a watcher — runs between its runs, and
 * its outcome is awaited (up to `--queue-timeout`; a request still queued then is cancelled).
 * Should the holder go away before taking the request (a `reconcile` that finished, a watcher
 * stopped), the request is cancelled and the lease taken here after all.
 *
 * Usage (a command with its own request type):
 * ```ts
 * const got = await leaseOrQueue(store, { command: 'virtform restart vm1', timing, type: 'restart', args: { vms }, noQueue: o.noQueue, err });
 * if ('refused' in got) { err(`virtform: ${got.refused}\n`); return EXIT.failure; }
 * if ('request' in got) return printOutcome(got.request);   // done by the watcher
 * const lease = got.lease;  // run here, keepAlive, release in finally
 * ```
 * and, on the watcher side, `controller.requests.handle('restart', …)` (src/watch/requests.ts).
 */
import {
  LeaseHeldError, RequestOrphanedError, RequestTimeoutError, awaitOutcome, submit,
  type Lease, type LeaseTiming, type RequestRecord, type RequestType, type StateStore,
} from '../state/index.js';
import { whoAmI } from './common.js';

export interface LeaseOrQueueOptions {
  /** Recorded in the lease row (`virtform reconcile --plan x.json`). */
  command: string;
  timing: LeaseTiming;
  /** `--lock-timeout` in ms (default 0: ask once). */
  lockTimeoutMs?: number;
  /** `--no-queue`: refuse instead of queueing. */
  noQueue?: boolean;
  /** `--queue-timeout` in ms (default: wait for the outcome as long as it takes). */
  queueTimeoutMs?: number;
  type: RequestType;
  /** The request's arguments: JSON, no secrets. */
  args: Record<string, unknown>;
  signal?: AbortSignal;
  /** Progress lines (stderr). */
  err: (s: string) => void;
}

export type LeaseOrQueue =
  | { lease: Lease }
  | { request: RequestRecord }
  | { refused: string };

export async function leaseOrQueue(store: StateStore, o: LeaseOrQueueOptions): Promise<LeaseOrQueue> {
  for (let round = 0; ; round += 1) {
    let held: LeaseHeldError;
    try {
      const lease = await store.acquireLease({ command: o.command }, o.timing, {
        timeoutMs: round === 0 ? (o.lockTimeoutMs ?? 0) : o.timing.leaseMs + o.timing.retryMs,
        ...(o.signal ? { signal: o.signal } : {}),
      });
      return { lease };
    } catch (e) {
      if (!(e instanceof LeaseHeldError)) throw e;
      held = e;
    }
    const holder = `pid ${held.holderPid} on host ${held.holderHost} (command: ${held.holderCommand}, epoch ${held.epoch})`;
    if (o.noQueue) {
      return { refused: `${held.message.replace(/; --lock-timeout.*$/, '')}; not queued (--no-queue): nothing was done` };
    }
    const id = await submit(store, { type: o.type, args: o.args, requestedBy: whoAmI() });
    o.err(`virtform: the writer lease is held by ${holder}: queued as request ${id} for it to run` +
      `${o.queueTimeoutMs !== undefined ? ` (waiting up to ${o.queueTimeoutMs / 1000} s, --queue-timeout)` : ''}; --no-queue refuses instead\n`);
    try {
      const request = await awaitOutcome(store, id, {
        ...(o.queueTimeoutMs !== undefined ? { timeoutMs: o.queueTimeoutMs } : {}),
        ...(o.signal ? { signal: o.signal } : {}),
        onStatus: (r) => {
          if (r.status === 'running') o.err(`virtform: request ${id} taken by the lease holder (${r.claimedBy ?? '?'})\n`);
        },
      });
      return { request };
    } catch (e) {
      if (e instanceof RequestOrphanedError && round === 0) {
        o.err(`virtform: ${e.message}; taking the writer lease here\n`);
        continue;
      }
      if (e instanceof RequestTimeoutError || e instanceof RequestOrphanedError) return { refused: e.message };
      throw e;
    }
  }
}
