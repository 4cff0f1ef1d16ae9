/**
 * Requests to the writer lease's holder (issue 24, migration 0015): the request queue.
 *
 * An imperative command that needs the writer lease (`reconcile --plan`, `restart`,
 * `snapshot revert`) first tries to take it. While a watcher holds it, the command instead
 * {@link submit}s a request — a row written WITHOUT the lease, like `virtform suspend` — and
 * {@link awaitOutcome}s it; `--no-queue` exits 1 naming the holder instead. The watcher
 * (src/watch/requests.ts: `RequestHandlers.handle(type, fn)`) claims queued requests between its
 * runs, while it holds the lease, runs the handler registered for the type, and stores the
 * outcome; its writes are fenced by its lease like every write of the holder.
 *
 * Lifecycle: `queued` → `running` (claimed by the holder, `claimed_by` = holder id and epoch) →
 * `succeeded` | `failed`. A queued request is `cancelled` by its requester (timeout, Ctrl-C, or
 * the holder gone: the requester then takes the lease itself); a `running` one whose holder lost
 * the lease or died is `abandoned` by the next holder (its handler's steps are journaled like any
 * other step: the next run or a rerun of the command finishes them). A request of a type no
 * handler serves fails at once with a message saying so.
 *
 * Arguments and outcomes are stored as JSON: no secrets in them (anyone reading the DB sees them).
 */
import { readLease, type LeaseRow } from './lease.js';
import type { RequestRecord, RequestStatus, RequestType, StateStore } from './types.js';

export type { RequestOutcome, RequestRecord, RequestStatus, RequestType } from './types.js';

export const FINAL_STATUSES: ReadonlySet<RequestStatus> = new Set(['succeeded', 'failed', 'cancelled', 'abandoned']);

/** Submit a request for the lease holder (no lease needed); returns its id. */
export async function submit(store: StateStore, r: { type: RequestType; args: Record<string, unknown>; requestedBy: string }): Promise<number> {
  return store.requests.submit(r);
}

/** The request was not finished within the timeout (it was cancelled when still queued). */
export class RequestTimeoutError extends Error {
  override readonly name = 'RequestTimeoutError';
  constructor(readonly request: RequestRecord, readonly timeoutMs: number) {
    super(request.status === 'cancelled'
      ? `request ${request.id} (${request.type}) was not taken by the lease holder within ${timeoutMs / 1000} s; cancelled, nothing was done`
      : `request ${request.id} (${request.type}) is still ${request.status} after ${timeoutMs / 1000} s` +
        `${request.claimedBy ? ` (taken by ${request.claimedBy})` : ''}; its outcome will be recorded in the state DB (virtform requests ${request.id})`);
  }
}

/** No live process holds the lease any more and the request was still queued: cancelled (the requester may take the lease). */
export class RequestOrphanedError extends Error {
  override readonly name = 'RequestOrphanedError';
  constructor(readonly request: RequestRecord, readonly lastHolder: string | undefined) {
    super(`request ${request.id} (${request.type}) was cancelled before it ran: the lease holder${lastHolder ? ` (${lastHolder})` : ''} went away`);
  }
}

export interface AwaitOptions {
  /** Give up after this long (default: wait forever). A request still queued then is cancelled. */
  timeoutMs?: number;
  /** How often the row is read (default 250 ms). */
  pollMs?: number;
  signal?: AbortSignal;
  /** Called when the status changes (`running`: the holder took it). */
  onStatus?: (r: RequestRecord) => void;
}

/** Whether the lease row shows a live holder now (by the database's clock). */
export function leaseLive(row: LeaseRow | undefined): boolean {
  return !!row && row.expiresAt > row.now;
}

/**
 * Wait for a request's outcome: resolves with the finished record (`succeeded`, `failed`,
 * `abandoned`; `cancelled` by someone else). Throws {@link RequestTimeoutError} after
 * `timeoutMs`, {@link RequestOrphanedError} when the lease has no live holder while the request is
 * still queued (then cancelled: nobody would take it), or the signal's reason (the request is
 * cancelled when still queued).
 */
export async function awaitOutcome(store: StateStore, id: number, opts: AwaitOptions = {}): Promise<RequestRecord> {
  const started = Date.now();
  const pollMs = opts.pollMs ?? 250;
  let last: RequestStatus | undefined;
  let lastHolder: string | undefined;
  for (;;) {
    const r = await store.requests.get(id);
    if (!r) throw new Error(`request ${id} does not exist`);
    if (r.status !== last) {
      last = r.status;
      opts.onStatus?.(r);
    }
    if (FINAL_STATUSES.has(r.status)) return r;
    if (r.status === 'queued') {
      const lease = await readLease(store.leaseDeps());
      if (lease) lastHolder = `pid ${lease.pid} on host ${lease.hostname} (${lease.command})`;
      if (!leaseLive(lease) && (await store.requests.cancel(id))) {
        throw new RequestOrphanedError((await store.requests.get(id))!, lastHolder);
      }
    }
    if (opts.signal?.aborted) {
      await store.requests.cancel(id);
      throw opts.signal.reason;
    }
    if (opts.timeoutMs !== undefined && Date.now() - started >= opts.timeoutMs) {
      await store.requests.cancel(id);
      throw new RequestTimeoutError((await store.requests.get(id))!, opts.timeoutMs);
    }
    await new Promise<void>((resolve) => {
      const t = setTimeout(resolve, pollMs);
      opts.signal?.addEventListener('abort', () => {
        clearTimeout(t);
        resolve();
      }, { once: true });
    });
  }
}
