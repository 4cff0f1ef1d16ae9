/**
 * The `snapshot-revert` request: `virtform snapshot revert NAME --allow-data-loss` while this
 * watcher holds the writer lease. The watcher reverts on its own connection, under its lease's
 * guard, journaled as the command would (src/reconcile/snapshot-revert.ts). Consent comes from the
 * request (the command refuses to submit without it), never from the watcher. Its next run sees
 * what the revert left as drift (definition, state) and corrects it as usual.
 *
 * Arguments: `name` (the Snapshot resource), `allowDataLoss` (true).
 */
import type { RequestOutcome } from '../state/index.js';
import { revertSnapshot, revertSummary, revertedLines } from '../reconcile/snapshot-revert.js';
import type { RequestHandler } from './requests.js';

export function snapshotRevertRequestHandler(): RequestHandler {
  return async (args, ctx): Promise<RequestOutcome> => {
    const name = typeof args.name === 'string' ? args.name : '';
    const r = await revertSnapshot(ctx.host, ctx.store, name, { allowDataLoss: args.allowDataLoss === true, ...(ctx.guard ? { guard: ctx.guard } : {}) });
    if (r.outcome === 'held') {
      return { ok: false, exitCode: 1, message: r.message, output: r.preview.lines.join('\n'), result: { outcome: 'held', held: r.message, ...revertSummary(r.preview) } };
    }
    const lines = revertedLines(r);
    return {
      ok: true, exitCode: 0, message: lines[0]!, output: [...r.preview.lines, '', ...lines].join('\n'),
      result: { outcome: 'reverted', ms: r.ms, state: r.state, ...revertSummary(r.preview) },
    };
  };
}
