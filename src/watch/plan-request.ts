/**
 * The `plan` request: `virtform reconcile --plan PLAN` while this watcher holds the writer lease.
 * The watcher applies the saved plan's steps on its own connection, under its lease, with the
 * same checks as the command (src/reconcile/saved-plan.ts): the plan file's digest, the manifests
 * of the folder the command named, the objects on the host, the touched objects' definitions and
 * the steps; any difference refuses it (nothing applied). Consent comes from the plan, never from
 * the watcher (which itself never consents to data loss).
 *
 * Arguments: `plan` (the document), `dir` (absolute path of the manifests), `file` (for messages).
 */
import { loadManifests, type Policy } from '../manifest/index.js';
import { buildDesired } from '../reconcile/desired.js';
import { StalePlanError, applySavedPlan, parseSavedPlan } from '../reconcile/saved-plan.js';
import type { RequestOutcome } from '../state/index.js';
import type { RequestHandler } from './requests.js';

const fail = (message: string, result?: Record<string, unknown>): RequestOutcome => ({ ok: false, exitCode: 1, message, ...(result ? { result } : {}) });

export function planRequestHandler(o: { policy?: Policy } = {}): RequestHandler {
  return async (args, ctx) => {
    const file = typeof args.file === 'string' ? args.file : 'the plan';
    const dir = typeof args.dir === 'string' ? args.dir : undefined;
    const parsed = parseSavedPlan(JSON.stringify(args.plan ?? null), file);
    if (!parsed.ok) return fail(parsed.message, { outcome: 'refused', plan: file, reasons: [parsed.message] });
    if (!dir) return fail('the request names no manifest folder; nothing was done');
    const saved = parsed.plan;
    const loaded = await loadManifests(dir, { ...(o.policy ? { policy: o.policy } : {}) });
    if (!loaded.ok) {
      return fail(`the manifests in ${dir} are invalid (${loaded.errors.length} error(s)); nothing was done`, {
        outcome: 'refused', plan: file, reasons: loaded.errors.slice(0, 20).map((e) => `${e.file}:${e.line}:${e.col}: ${e.message}`),
      });
    }
    if (loaded.desired.hosts.length > 0) return fail('saved plans are not supported with Host manifests (a fleet) yet; nothing was done');
    const desired = buildDesired(loaded.desired);
    try {
      const result = await applySavedPlan(saved, desired, {
        host: ctx.host, store: ctx.store, signal: ctx.signal, ...(ctx.guard ? { guard: ctx.guard } : {}),
        concurrency: ctx.run.concurrency, retry: ctx.run.retry, gracefulStop: ctx.run.gracefulStop,
        shutdownTimeoutMs: ctx.run.shutdownTimeoutMs, stopTimeoutMs: ctx.run.stopTimeoutMs,
      });
      const steps = result.applied?.outcomes.map((s) => ({
        resource: s.step.key, host: s.step.host, op: s.step.op.op, status: s.status, attempts: s.attempts, ms: s.ms, error: s.error ?? null,
      })) ?? [];
      const ok = result.outcome === 'succeeded' || result.outcome === 'noop';
      const done = steps.filter((s) => s.status === 'succeeded').length;
      const output = steps.map((s) => `${s.status === 'succeeded' ? '✓' : s.status === 'skipped' ? '↷' : '✗'} ${s.op} ${s.resource}` +
        `${s.status === 'succeeded' ? ` (${(s.ms / 1000).toFixed(2)}s)` : `: ${s.error ?? s.status}`}`).join('\n');
      const message = result.outcome === 'suspended' ? 'the state DB is suspended (virtform suspend) and the plan was not made with --ignore-suspend: nothing was applied'
        : result.outcome === 'braked' ? `refused by the mass-deletion brake (${result.plan.brake?.deletions.length ?? 0} deletions): nothing was applied`
          : `${result.outcome}: ${done} of ${saved.steps.length} step(s) succeeded` +
            `${result.held.size ? `, ${result.held.size} held` : ''}${result.applied?.failed.size ? `, ${result.applied.failed.size} resource(s) failed` : ''}`;
      return {
        ok, exitCode: ok ? 0 : 1, message, ...(output ? { output } : {}),
        result: {
          runId: result.runId, outcome: result.outcome, plan: file, revisionId: result.revisionId ?? null,
          held: Object.fromEntries(result.held), suspension: result.suspension ?? null, mutations: result.mutations, durationMs: result.durationMs, steps,
        },
      };
    } catch (e) {
      if (e instanceof StalePlanError) {
        return fail(`refused: the plan ${file} no longer matches; nothing was changed: ${e.reasons.join('; ')}`, { outcome: 'refused', plan: file, reasons: e.reasons });
      }
      throw e;
    }
  };
}
