/**
 * The `restart` request (issue 24; helper restart): `virtform restart VM…` while this watcher
 * holds the writer lease. The watcher restarts the VMs on its own connection, under its lease,
 * through the same stage as the command (`src/reconcile/restart.ts`: the checks, journaled stop and
 * start steps); the command prints the outcome.
 *
 * Arguments: `vms` (names), `allPending`, `graceful` (false: --force), `shutdownTimeoutMs`, `by`.
 */
import { restartGuests, restartReport } from '../reconcile/restart.js';
import type { RequestHandler } from './requests.js';

export function restartRequestHandler(): RequestHandler {
  return async (args, ctx) => {
    const vms = Array.isArray(args.vms) ? args.vms.filter((v): v is string => typeof v === 'string') : [];
    const result = await restartGuests({
      host: ctx.host, store: ctx.store, names: vms, allPending: args.allPending === true, graceful: args.graceful !== false,
      shutdownTimeoutMs: typeof args.shutdownTimeoutMs === 'number' ? args.shutdownTimeoutMs : ctx.run.shutdownTimeoutMs,
      retry: ctx.run.retry, signal: ctx.signal, ...(ctx.guard ? { guard: ctx.guard } : {}), ...(typeof args.by === 'string' ? { by: args.by } : {}),
    });
    const r = restartReport(result, (s) => `the state DB is suspended since ${s.since}, by ${s.by}${s.reason ? ` (${s.reason})` : ''}`);
    // Refused by the watcher (the records changed since the command checked them): exit 1, never 2.
    return { ok: r.exitCode === 0, exitCode: r.exitCode === 0 ? 0 : 1, message: r.message, output: [...r.out, ...r.err].join('\n'), result: r.json };
  };
}
