/**
 * The watcher's side of the request queue (src/state/requests.ts): which handler serves each
 * request type, and serving the queued requests between runs while the watcher holds the writer
 * lease.
 *
 * A handler gets the request's arguments and a {@link RequestContext} — the watcher's host
 * connection, the store, the lease's mutation guard (pass it to the engine: every step and
 * mutating call checks the lease), the stop signal, the run options the watcher was started with
 * and its last good desired state — and returns the {@link RequestOutcome} the requester prints.
 * Handlers change the host through the engine/apply (journaled steps), never around it. A handler
 * that throws fails its request with the error's text. Register with
 * `controller.requests.handle('restart', async (args, ctx) => …)` (or `WatchOptions.requestHandlers`).
 */
import type { Desired } from '../reconcile/desired.js';
import type { RetryPolicy } from '../reconcile/apply.js';
import type { HostPort, MutationGuard } from '../reconcile/ports.js';
import type { MaxDeletions } from '../reconcile/safety.js';
import type { RequestOutcome, RequestRecord, RequestType, StateStore } from '../state/index.js';
import type { Logger } from './logger.js';

export interface RequestContext {
  request: RequestRecord;
  store: StateStore;
  /** The watcher's host connection (fault wrapper included). */
  host: HostPort;
  /** The writer lease's check (ApplyOptions.guard / ReconcileOptions.guard). */
  guard?: MutationGuard;
  /** Aborted when the watcher stops: start no new step. */
  signal: AbortSignal;
  logger: Logger;
  /** What the watcher's own runs use. */
  run: { concurrency?: number; retry?: RetryPolicy; gracefulStop?: boolean; shutdownTimeoutMs?: number; stopTimeoutMs?: number; maxDeletions?: MaxDeletions };
  /** The watcher's last good desired state (its manifests), if any was loaded. */
  desired?: Desired;
}

export type RequestHandler = (args: Record<string, unknown>, ctx: RequestContext) => Promise<RequestOutcome>;

/** The handlers a watcher serves, by request type. */
export class RequestHandlers {
  readonly #handlers = new Map<string, RequestHandler>();

  handle(type: RequestType, fn: RequestHandler): this {
    this.#handlers.set(type, fn);
    return this;
  }

  get(type: string): RequestHandler | undefined {
    return this.#handlers.get(type);
  }

  get types(): string[] {
    return [...this.#handlers.keys()].sort();
  }
}

function errText(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

/**
 * Serve every queued request, oldest first, while `leading()` and not aborted. Each is claimed
 * (`running`, by `claimedBy`), run, and finished with its outcome; an event records it. Returns
 * how many were served.
 */
export async function serveRequests(
  handlers: RequestHandlers, ctx: Omit<RequestContext, 'request'>, o: { claimedBy: string; leading: () => boolean },
): Promise<number> {
  let served = 0;
  while (o.leading() && !ctx.signal.aborted) {
    const request = await ctx.store.requests.claim(o.claimedBy);
    if (!request) break;
    served += 1;
    const log = ctx.logger;
    log.info('request started', { id: request.id, type: request.type, requestedBy: request.requestedBy });
    const handler = handlers.get(request.type);
    let outcome: RequestOutcome;
    if (!handler) {
      outcome = {
        ok: false, exitCode: 1,
        message: `this watcher serves no request of type '${request.type}' (it serves: ${handlers.types.join(', ') || 'none'}); nothing was done`,
      };
    } else {
      try {
        outcome = await handler(request.args, { ...ctx, request });
      } catch (e) {
        outcome = { ok: false, exitCode: 1, message: `failed: ${errText(e)}` };
      }
    }
    try {
      await ctx.store.requests.finish(request.id, outcome);
      await ctx.store.events.append({
        level: outcome.ok ? 'info' : 'warn',
        message: `request ${request.id} (${request.type}, by ${request.requestedBy}): ${outcome.message}`,
      });
    } catch (e) {
      // The lease was lost while serving: the next holder marks it abandoned.
      log.error('recording a request outcome failed', { id: request.id, error: errText(e) });
      break;
    }
    log[outcome.ok ? 'info' : 'warn']('request finished', { id: request.id, type: request.type, ok: outcome.ok, message: outcome.message });
  }
  return served;
}

/**
 * For a lease holder that serves no requests (the fleet watch, today): every queued request fails
 * at once with `why`, so its requester does not wait for nothing. Returns how many.
 */
export async function refuseRequests(store: StateStore, claimedBy: string, why: string): Promise<number> {
  let n = 0;
  for (let r = await store.requests.claim(claimedBy); r; r = await store.requests.claim(claimedBy)) {
    await store.requests.finish(r.id, { ok: false, exitCode: 1, message: `${why}; nothing was done` });
    n += 1;
  }
  return n;
}
