/**
 * One reconcile run: observe → diff → plan → (apply) → record.
 *
 * The caller owns the writer lock and the connections; the engine only needs the ports.
 */
import { randomUUID } from 'node:crypto';
import { parseResourceKey } from '../model/kinds.js';
import type { HostPort } from './ports.js';
import type { Desired } from './desired.js';
import { observe, type Observed, type StateReader } from './observe.js';
import { diff, notices } from './diff.js';
import { buildPlan, type Plan } from './plan.js';
import { holdDataLoss } from './safety.js';
import { imageCacheFor, type ImageCache } from './images.js';
import { apply, type ApplyEvent, type ApplyResult, type ApplyStore, type RetryPolicy } from './apply.js';

export interface EngineStore extends StateReader, ApplyStore {
  journal: StateReader['journal'] & ApplyStore['journal'] & { resolve(ids: number[]): Promise<void> };
  resources: StateReader['resources'] & ApplyStore['resources'];
  revisions: {
    start(r: { runId: string; manifestDigest: string; gitCommit?: string | null; gitDirty?: boolean }): Promise<number>;
    finish(id: number, outcome: string, summary: Record<string, unknown>): Promise<void>;
  };
  events: { append(e: { level: 'info' | 'warn' | 'error'; kind?: string; name?: string; message: string }): Promise<void> };
  /** The DB file (its folder holds the image cache, `images/`). */
  readonly path?: string;
}

export interface ReconcileOptions {
  host: HostPort;
  store: EngineStore;
  desired: Desired;
  dryRun?: boolean;
  concurrency?: number;
  retry?: RetryPolicy;
  gracefulStop?: boolean;
  /**
   * Consent to steps that destroy data (`--allow-data-loss`). Default false: such changes, and
   * what depends on them, are held (`plan.held`), and the run ends `held`.
   */
  allowDataLoss?: boolean;
  shutdownTimeoutMs?: number;
  boundary?: (label: string) => void;
  onPlan?: (plan: Plan) => void;
  onEvent?: (e: ApplyEvent) => void;
  /** Stop starting new steps (graceful shutdown); steps in flight finish. */
  signal?: AbortSignal;
  /** Cache of downloaded images (`spec.source.url`); a temp-dir cache when absent. */
  images?: ImageCache;
}

export interface ReconcileResult {
  runId: string;
  plan: Plan;
  observed: Observed;
  applied?: ApplyResult;
  revisionId?: number;
  /**
   * `interrupted`: a graceful shutdown stopped the run before all steps had started. `held`:
   * everything else was done, but changes that would destroy data were held for consent
   * (`plan.held`, also in `held`).
   */
  outcome: 'noop' | 'planned' | 'succeeded' | 'failed' | 'interrupted' | 'held';
  /** Resources whose changes were held for consent to data loss, with the reason of each. */
  held: Map<string, string>;
  /** Mutating host calls made by this run. */
  mutations: number;
  durationMs: number;
}

export interface PlanOptions {
  /** Consent to data loss; without it, destructive changes are held (see `safety.ts`). */
  allowDataLoss?: boolean;
}

export async function planOnly(
  host: HostPort, store: StateReader, desired: Desired, gracefulStop = true, opts: PlanOptions = {},
): Promise<{ plan: Plan; observed: Observed }> {
  const observed = await observe(host, store, desired);
  const allowDataLoss = opts.allowDataLoss ?? false;
  const changes = diff(desired, observed, { gracefulStop, allowDataLoss });
  const held = holdDataLoss(desired, observed, changes, { allowDataLoss });
  const plan = buildPlan(desired, changes, held);
  plan.notices = notices(desired, observed, changes, { gracefulStop });
  return { plan, observed };
}

export async function reconcile(opts: ReconcileOptions): Promise<ReconcileResult> {
  const started = Date.now();
  const runId = randomUUID();
  const mutationsBefore = opts.host.mutationCount();
  const { plan, observed } = await planOnly(opts.host, opts.store, opts.desired, opts.gracefulStop ?? true, {
    allowDataLoss: opts.allowDataLoss ?? false,
  });
  opts.onPlan?.(plan);
  const base = { runId, plan, observed, held: plan.held };
  if (opts.dryRun) {
    return { ...base, outcome: plan.noop ? 'noop' : 'planned', mutations: 0, durationMs: Date.now() - started };
  }

  const revisionId = await opts.store.revisions.start({
    runId, manifestDigest: opts.desired.digest, gitCommit: opts.desired.gitCommit ?? null, gitDirty: opts.desired.gitDirty ?? false,
  });
  const images = opts.images ?? imageCacheFor(opts.store.path);
  const applied = await apply(plan, {
    host: opts.host, store: opts.store, desired: opts.desired, observed, runId, revisionId,
    concurrency: opts.concurrency, retry: opts.retry, boundary: opts.boundary, onEvent: opts.onEvent,
    shutdownTimeoutMs: opts.shutdownTimeoutMs, signal: opts.signal, images,
  });
  // Downloaded images no declared volume names any more, partial downloads and converted copies
  // left by killed runs, are removed.
  const keep = new Set(opts.desired.resources.flatMap((r) => (r.kind === 'Volume' && r.image?.kind === 'url' ? [r.image.sha256] : [])));
  await images.prune(keep).catch(() => undefined);

  // Unresolved operations of earlier runs are resolved by this run unless it failed on them.
  const resolved = [...observed.openJournal]
    .filter(([key]) => !applied.failed.has(key) && !applied.skipped.has(key) && !plan.blocked.has(key) && !plan.held.has(key))
    .flatMap(([, entries]) => entries.map((e) => e.id));
  if (resolved.length > 0) await opts.store.journal.resolve(resolved);
  for (const [key, reason] of plan.blocked) {
    const { kind, name } = parseResourceKey(key);
    await opts.store.events.append({ level: 'warn', kind, name, message: `blocked: ${reason}` });
  }
  for (const [key, reason] of plan.held) {
    const { kind, name } = parseResourceKey(key);
    await opts.store.events.append({ level: 'warn', kind, name, message: `held (data loss; needs --allow-data-loss): ${reason}` });
  }
  for (const [key, error] of applied.failed) {
    const { kind, name } = parseResourceKey(key);
    await opts.store.events.append({ level: 'error', kind, name, message: error });
  }

  const ok = applied.failed.size === 0 && applied.skipped.size === 0 && plan.blocked.size === 0;
  const onlyHeld = ok && plan.held.size > 0;
  const summary = {
    ...plan.summary,
    steps: plan.steps.length,
    failed: applied.failed.size,
    skipped: applied.skipped.size,
    blocked: plan.blocked.size,
    held: plan.held.size,
  };
  const interrupted = !ok && opts.signal?.aborted === true && applied.failed.size === 0;
  const outcome = onlyHeld ? 'held' : ok ? (plan.noop ? 'noop' : 'succeeded') : interrupted ? 'interrupted' : 'failed';
  await opts.store.revisions.finish(revisionId, outcome === 'noop' ? 'succeeded' : outcome, summary);
  return {
    ...base, applied, revisionId,
    outcome,
    mutations: opts.host.mutationCount() - mutationsBefore,
    durationMs: Date.now() - started,
  };
}
