import {
  EXIT, errorMessage, loadDesired, manifestErrorsJson, notAManifestFolder, openStore, resolvePolicy, retryPolicy, useColor, verifyHostIdentity,
  type JsonManifestError,
} from '../common.js';
import type { MaxDeletions } from '../../reconcile/safety.js';
import type { Suspension } from '../../state/index.js';
import { openHost, type LibvirtHostOptions } from '../../reconcile/adapters/libvirt-host.js';
import { reconcile } from '../../reconcile/engine.js';
import { crashAtBoundary, faultWrapperFromEnv } from '../../reconcile/faults.js';
import { LockHeldError, defaultDbPath, type StateStore, type WriterLock } from '../../state/index.js';
import { brakeLines, planToJson, renderApplyEvent, renderPlan, summaryLine } from '../render.js';
import type { HostPort } from '../../reconcile/ports.js';

export interface ReconcileFlags {
  uri: string;
  /** auto (default) | kvm | qemu */
  domainType?: LibvirtHostOptions['domainType'];
  db?: string;
  dryRun?: boolean;
  detailedExitcode?: boolean;
  json?: boolean;
  allowEmpty?: boolean;
  /** Consent to steps that destroy data; without it they are held (exit 1). */
  allowDataLoss?: boolean;
  /** The mass-deletion brake: a number, `all`, or undefined (default max(5, 10% of owned)). */
  maxDeletions?: MaxDeletions;
  /** Apply even though the state DB is suspended (`virtform suspend`). */
  ignoreSuspend?: boolean;
  /** Policy file (default /etc/virtform/policy.yaml when it exists). */
  policy?: string;
  concurrency: number;
  maxAttempts: number;
  retryDelay: number;
  shutdownTimeout: number;
  color?: boolean;
}

export async function runReconcile(dir: string, o: ReconcileFlags): Promise<number> {
  const out = (s: string): void => void process.stdout.write(s);
  const err = (s: string): void => void process.stderr.write(s);
  const style = { color: !o.json && useColor(o.color) };

  // Invalid input: the text on stderr; with --json also one document on stdout listing every error.
  const invalid = (errors: JsonManifestError[]): number => {
    if (o.json) out(`${JSON.stringify({ dryRun: o.dryRun === true, outcome: 'invalid', errors }, null, 2)}\n`);
    return EXIT.invalid;
  };
  const wholeInput = (message: string): JsonManifestError[] =>
    [{ file: dir, line: 1, col: 1, kind: null, name: null, field: null, message }];

  const notFolder = await notAManifestFolder(dir, 'reconcile');
  if (notFolder) {
    err(`virtform: ${notFolder}; nothing was changed\n`);
    return invalid(wholeInput(notFolder));
  }
  const policy = await resolvePolicy(o.policy);
  if (!policy.ok) {
    err(`${policy.text}\n`);
    return invalid(manifestErrorsJson(policy.errors));
  }
  const loaded = await loadDesired(dir, policy.policy);
  if (!loaded.ok) {
    err(`${loaded.text}\n${loaded.errors.length} error(s) in ${dir}; nothing was changed\n`);
    return invalid(manifestErrorsJson(loaded.errors));
  }
  if (loaded.desired.empty && !o.allowEmpty) {
    err(`virtform: no manifests found in ${dir}; refusing to continue, since that would delete everything virtform manages.\n` +
      `Check the path, or pass --allow-empty to tear the whole environment down.\n`);
    return invalid(wholeInput('no manifests found; refusing to continue, since that would delete everything virtform manages (--allow-empty tears the whole environment down)'));
  }

  let store: StateStore;
  try {
    store = await openStore(o.db, { create: !o.dryRun });
  } catch (e) {
    // StateDbOpenError: the message names the DB path and the reason.
    err(`virtform: ${errorMessage(e)}\n`);
    return EXIT.failure;
  }
  if (store.path === ':memory:') {
    err(`virtform: state DB ${o.db ?? defaultDbPath()} does not exist: planning against an empty state ` +
      `(a dry-run creates nothing; the first apply creates it)\n`);
  }
  let lock: WriterLock | undefined;
  let host: HostPort | undefined;
  // First SIGINT/SIGTERM: finish the steps in flight and start no new one (exit 1, the next run
  // does the rest). A second one: release the lock and exit at once (the journal keeps the record).
  const abort = new AbortController();
  const releaseOnSignal = (signal: NodeJS.Signals): void => {
    if (!abort.signal.aborted) {
      abort.abort();
      err(`virtform: ${signal}: finishing the steps in flight, starting no new ones (again to stop at once)\n`);
      process.once(signal, releaseOnSignal);
      return;
    }
    lock?.releaseSync();
    err(`virtform: interrupted by ${signal}; the journal records the step in flight and the next run finishes it\n`);
    process.exit(signal === 'SIGINT' ? 130 : 143);
  };
  try {
    if (!o.dryRun) {
      lock = await store.acquireWriterLock({ command: `virtform reconcile ${dir}` });
      process.once('SIGINT', releaseOnSignal);
      process.once('SIGTERM', releaseOnSignal);
    }
    host = await openHost(o.uri, { domainType: o.domainType });
    // Refuses (HostMismatchError, exit 1) a DB that holds the records of another host.
    await verifyHostIdentity(store, host, { record: !o.dryRun });
    const effectiveHost = faultWrapperFromEnv()?.(host) ?? host;
    const crashAt = Number(process.env.VIRTFORM_TEST_CRASH_AT ?? 0);

    const result = await reconcile({
      host: effectiveHost,
      store,
      desired: loaded.desired,
      dryRun: o.dryRun,
      allowDataLoss: o.allowDataLoss === true,
      maxDeletions: o.maxDeletions,
      ignoreSuspend: o.ignoreSuspend === true,
      concurrency: o.concurrency,
      retry: retryPolicy(o),
      shutdownTimeoutMs: o.shutdownTimeout * 1000,
      signal: abort.signal,
      boundary: crashAt > 0 ? crashAtBoundary(crashAt, (l) => err(`[test] crashing at boundary ${crashAt}: ${l}\n`)) : undefined,
      onPlan: (plan) => {
        if (!o.json) out(renderPlan(plan, style));
        if (!o.json && !o.dryRun && !plan.noop) out('\n');
      },
      onEvent: (e) => {
        const line = renderApplyEvent(e, style);
        if (line) (o.json ? err : out)(`${line}\n`);
      },
    });

    if (o.json) {
      out(`${JSON.stringify({
        runId: result.runId, dryRun: o.dryRun === true, outcome: result.outcome, plan: planToJson(result.plan),
        held: Object.fromEntries(result.held),
        suspension: result.suspension ?? null,
        mutations: result.mutations, durationMs: result.durationMs,
        steps: result.applied?.outcomes.map((s) => ({
          resource: s.step.key, op: s.step.op.op, status: s.status, attempts: s.attempts, ms: s.ms, error: s.error ?? null,
        })) ?? [],
      }, null, 2)}\n`);
    }
    if (result.suspension) {
      err(`virtform: ${suspendedText(store.path, result.suspension)}; ${o.dryRun ? 'a reconcile would apply nothing'
        : result.outcome === 'suspended' ? 'nothing was applied' : 'applying anyway (--ignore-suspend)'}` +
        `${result.outcome === 'suspended' || o.dryRun ? ' (`virtform resume` lifts it; --ignore-suspend applies once anyway)' : ''}\n`);
    }
    if (o.dryRun) {
      return o.detailedExitcode && !result.plan.noop ? EXIT.changes : EXIT.ok;
    }
    if (result.outcome === 'suspended') return EXIT.failure;
    if (result.outcome === 'braked') {
      // The plan (text) already shows the refusal; stderr gets it too, so scripts' logs have it.
      err(`virtform: refused by the mass-deletion brake; nothing was applied\n${brakeLines(result.plan, { color: false }).join('\n')}\n`);
      return EXIT.failure;
    }
    if (!o.json && !result.plan.noop) {
      const ok = result.applied!.outcomes.filter((s) => s.status === 'succeeded').length;
      const verdict = result.outcome === 'interrupted' ? 'interrupted' : result.outcome === 'failed' ? 'finished with errors'
        : result.outcome === 'held' ? 'incomplete' : 'complete';
      const held = result.held.size > 0 ? `, ${result.held.size} held` : '';
      out(`\nApply ${verdict}: ${ok} step(s) succeeded, ` +
        `${result.applied!.failed.size} resource(s) failed, ${result.applied!.skipped.size} skipped, ` +
        `${result.plan.blocked.size} blocked${held} (${(result.durationMs / 1000).toFixed(1)}s).\n`);
      if (result.plan.blocked.size > 0 || result.held.size > 0) out(`${summaryLine(result.plan)}\n`);
      if (result.held.size > 0) out('Held changes were not made: they would destroy data. To consent, run again with --allow-data-loss.\n');
    }
    return result.outcome === 'failed' || result.outcome === 'interrupted' || result.outcome === 'held' ? EXIT.failure : EXIT.ok;
  } catch (e) {
    if (e instanceof LockHeldError) {
      err(`virtform: ${e.message}\n`);
      return EXIT.failure;
    }
    err(`virtform: ${errorMessage(e)}\n`);
    return EXIT.failure;
  } finally {
    process.off('SIGINT', releaseOnSignal);
    process.off('SIGTERM', releaseOnSignal);
    await host?.close().catch(() => undefined);
    await lock?.release().catch(() => undefined);
    await store.close().catch(() => undefined);
  }
}

export function suspendedText(db: string, s: Suspension): string {
  return `state DB ${db} is suspended since ${s.since}, by ${s.by}${s.reason ? ` (${s.reason})` : ''}`;
}
