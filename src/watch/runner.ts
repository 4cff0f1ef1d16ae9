/**
 * The runner: takes the world from the queue and reconciles it, one run at a time.
 *
 * Runs never overlap: the loop takes the queue's item (every source that asked since the last
 * take), runs one full reconcile, and loops while the queue is dirty again, so triggers during a
 * run make exactly one follow-up run. Manifests are loaded at the start of every run.
 *
 * After a run:
 * - succeeded / noop: the requeue backoff is reset and nothing is stalled;
 * - failed with a failure that retrying can fix, `error` (the run threw, e.g. the connection
 *   dropped) or `interrupted` (not stopping): the run is REQUEUED after a jittered exponential
 *   backoff (default 1 s doubling to 60 s);
 * - failed only on what retrying cannot fix (a definition libvirt refuses as invalid, HostError
 *   code `invalid`; a conflict with an object virtform does not own): those resources are STALLED
 *   and the runner waits for an input change (a manifest edit, a lifecycle event, the resync)
 *   instead of requeueing;
 * - invalid manifests: nothing changed and nothing is requeued; the next file change reloads.
 */
import { reconcile, type ReconcileResult, type RunStages } from '../reconcile/engine.js';
import type { DefinitionStats } from '../reconcile/core/observed.js';
import type { RetryPolicy } from '../reconcile/apply.js';
import type { FailureCause } from '../reconcile/ports.js';
import type { SkipReason } from '../reconcile/apply.js';
import { stallText, type Stall } from '../status/index.js';
import type { MutationGuard } from '../reconcile/ports.js';
import type { StateStore, Suspension } from '../state/index.js';
import type { MaxDeletions } from '../reconcile/safety.js';
import { Backoff, type BackoffPolicy } from '../util/backoff.js';
import { silentLogger, type Logger } from './logger.js';
import type { ManifestState } from './manifests.js';
import type { WatchMetrics } from './metrics.js';
import type { CoalescingQueue, TriggerSource } from './queue.js';
import type { HostConnection } from './sources/connection.js';
import { planKeys, type PlanRecord, type RunFeedEvent } from './feed.js';
import { randomUUID } from 'node:crypto';
import type { RunRecord } from '../state/index.js';
import { serveRequests, type RequestHandlers } from './requests.js';
import type { CallClock } from './call-clock.js';
import type { DefinitionCache } from './definition-cache.js';

export type RunOutcome = ReconcileResult['outcome'] | 'invalid' | 'error';

export interface RunInfo {
  seq: number;
  sources: TriggerSource[];
  startedAt: string;
  finishedAt: string;
  durationMs: number;
  outcome: RunOutcome;
  runId?: string;
  revisionId?: number;
  manifestDigest?: string;
  /** The git commit the run's manifests came from (git source). */
  gitCommit?: string;
  plan?: { create: number; change: number; replace: number; delete: number; conflict: number; steps: number; noop: boolean };
  mutations?: number;
  failures: { resource: string; error: string; code?: string }[];
  blocked: { resource: string; reason: string }[];
  /** Changes held because they would destroy data (watch never consents). */
  held?: { resource: string; reason: string }[];
  /** The mass-deletion brake refused this run: what it would have deleted, and the limit. */
  braked?: { deletions: string[]; max: number | null; wipe?: { kind: string; owned: number } };
  /** The DB was suspended (`virtform suspend`): the run observed and planned, and applied nothing. */
  suspension?: Suspension;
  /** Resources this run left stalled (not retried until an input changes). */
  stalled?: { resource: string; reason: string }[];
  /** Set when this run was requeued. */
  requeue?: { attempt: number; delayMs: number; reason: string };
  error?: string;
  /**
   * Where the run's time went: `libvirtMs` waiting on libvirt calls (the union of the calls'
   * intervals), `ownMs` the rest (loading manifests, observe's parsing, diff, plan, the state DB);
   * `read`: `full` (every file and definition read again) or `incremental` (only what changed);
   * `loadMs`: of it, loading the manifests; `files`: manifest files listed, read again and parsed
   * again; `definitions`: host definitions taken from the cache and read, and of all of them those
   * parsed and compared (`compared`) and those the no-op fast path left unparsed (`unchanged`:
   * their bytes and comparison inputs are the ones an earlier run found no difference with).
   */
  timing?: RunTiming;
}

export interface RunTiming {
  read: 'full' | 'incremental';
  ms: number;
  libvirtMs: number;
  ownMs: number;
  calls: number;
  /** Of `ms`: loading the manifests (files, checks, the desired state; no libvirt call). */
  loadMs?: number;
  files?: { listed: number; read: number; parsed: number };
  definitions?: { cached: number; cachedBy?: Partial<Record<string, number>>; read: number; readBy?: Partial<Record<string, number>>; compared?: number; unchanged?: number };
  /** Of `ms`: the engine's stages (wall time, libvirt calls included; `ReconcileResult.stages`). */
  stages?: RunStages;
}

/** Triggers whose run reads everything again (the caches are cleared first): the guard against missed events. */
export const FULL_READ_SOURCES: ReadonlySet<string> = new Set(['initial', 'reconnect', 'resync', 'lease', 'requeue']);

export interface StalledResource {
  resource: string;
  /** The stall's text (`stallText`). */
  reason: string;
  since: string;
}

export interface RequeueInfo {
  /** Requeues since the last successful run. */
  attempt: number;
  /** The delayed run waiting, if any. */
  pending?: { delayMs: number; dueAt: string; reason: string };
}

export interface RunnerOptions {
  queue: CoalescingQueue;
  connection: HostConnection;
  manifests: ManifestState;
  store: StateStore;
  metrics: WatchMetrics;
  logger?: Logger;
  /** Aborted on stop: the run in flight finishes its current steps and starts no new ones. */
  signal: AbortSignal;
  concurrency?: number;
  retry?: RetryPolicy;
  gracefulStop?: boolean;
  shutdownTimeoutMs?: number;
  /** After `signal`, how long the run's steps in flight may still run (ms; see ApplyOptions.stopTimeoutMs). */
  stopTimeoutMs?: number;
  /** The mass-deletion brake (`--max-deletions`); undefined: the default. */
  maxDeletions?: MaxDeletions;
  /** Requeue backoff after a failed run (default 1 s doubling to 60 s, half jittered). */
  requeue?: { initialDelayMs?: number; maxDelayMs?: number; factor?: number; jitter?: number };
  /** Called after every run that reached the engine or failed loading (refresh owned set, gauges). */
  afterRun?: () => Promise<void>;
  /** Whether this watcher holds the writer lease: runs start only then (a standby keeps the queue dirty). */
  leader?: () => boolean;
  /** The writer lease's check before each step and mutating call (see ApplyOptions.guard). */
  guard?: MutationGuard;
  /** Runs kept in the state DB's history (`--history-runs`, default 500; 0: none recorded). */
  historyRuns?: number;
  /** Run start and end for listeners (the dashboard): a run's planned keys, its end. */
  feed?: { emit(e: RunFeedEvent<RunInfo>): void };
  /**
   * The request queue (src/watch/requests.ts): served before each run, while leading. `claimedBy`:
   * this holder's id (`holder@epoch`), undefined while not holding the lease.
   */
  requests?: { handlers: RequestHandlers; claimedBy: () => string | undefined };
  /**
   * The observed definitions kept between runs (incremental runs read only what may have
   * changed); absent: every run reads every definition.
   */
  definitions?: DefinitionCache;
  /** Times the libvirt calls of each run (RunInfo.timing). */
  clock?: CallClock;
  /**
   * false: every run is a full read (manifest files and definitions read again, as before the
   * caches); default true: runs triggered by a file change, an event or a lifted suspension read
   * only what changed, runs of {@link FULL_READ_SOURCES} read everything.
   */
  incremental?: boolean;
}

/** The default of `--history-runs`. */
export const DEFAULT_HISTORY_RUNS = 500;

/** A run as the history (`runs`, migration 0014) keeps it; a run without an engine run id gets a random one. */
export function runRecord(run: RunInfo, steps: RunRecord['steps']): RunRecord {
  const p = run.plan;
  return {
    id: run.runId ?? randomUUID(),
    startedAt: run.startedAt, finishedAt: run.finishedAt, trigger: run.sources.join(','), outcome: run.outcome, durationMs: run.durationMs,
    revisionId: run.revisionId ?? null, gitCommit: run.gitCommit ?? null,
    counts: {
      create: p?.create ?? 0, change: p?.change ?? 0, replace: p?.replace ?? 0, delete: p?.delete ?? 0, conflict: p?.conflict ?? 0,
      steps: p?.steps ?? 0, held: run.held?.length ?? 0, failed: run.failures.length,
    },
    failures: [...run.failures, ...(run.error ? [{ resource: '', error: run.error }] : []), ...run.blocked.map((b) => ({ resource: b.resource, error: b.reason, code: 'blocked' }))],
    steps,
  };
}

const round = (x: number): number => Math.round(x * 10) / 10;

function errText(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

/** A failure no retry can fix: HostError code `invalid` (libvirt refused the definition). */
const stalls = (cause: FailureCause | undefined): boolean => cause?.code === 'invalid';

export class Runner {
  readonly #o: RunnerOptions;
  readonly #log: Logger;
  readonly #backoff: Backoff;
  #loop: Promise<void> | undefined;
  #inFlight = false;
  #seq = 0;
  #firstReconcileDone = false;
  #lastRun: RunInfo | undefined;
  #lastReconcile: RunInfo | undefined;
  #stalled = new Map<string, { stall: Stall; since: string }>();
  #suspension: Suspension | undefined;
  #drift = new Map<string, string>();
  #pending = new Map<string, string>();
  #lastObserved: { observed: ReconcileResult['observed']; mutations: number } | undefined;
  #lastPlan: PlanRecord | undefined;
  #active = 0;
  /** The next run reads everything (after a run that failed or threw). */
  #fullNext = true;
  /** Largest number of runs ever in flight at once (1 by construction; exposed for tests). */
  maxConcurrentRuns = 0;

  constructor(o: RunnerOptions) {
    this.#o = o;
    this.#log = o.logger ?? silentLogger;
    const r = o.requeue ?? {};
    const policy: BackoffPolicy = { baseMs: r.initialDelayMs ?? 1000, maxMs: r.maxDelayMs ?? 60_000, factor: r.factor ?? 2, jitter: r.jitter ?? 0.5 };
    this.#backoff = new Backoff(policy);
  }

  get inFlight(): boolean {
    return this.#inFlight;
  }

  get firstReconcileDone(): boolean {
    return this.#firstReconcileDone;
  }

  /** Completed runs (of any outcome). */
  get runCount(): number {
    return this.#seq - (this.#inFlight ? 1 : 0);
  }

  get lastRun(): RunInfo | undefined {
    return this.#lastRun;
  }

  get lastReconcile(): RunInfo | undefined {
    return this.#lastReconcile;
  }

  /** The suspension the last run saw (`virtform suspend`), if any. */
  get suspension(): Suspension | undefined {
    return this.#suspension;
  }

  /** What the last reconcile observed, and how many mutating calls it made after (0: still the host's state). */
  get lastObserved(): { observed: ReconcileResult['observed']; mutations: number } | undefined {
    return this.#lastObserved;
  }

  /** The last run's plan (the dashboard's plan view). */
  get lastPlan(): PlanRecord | undefined {
    return this.#lastPlan;
  }

  /** Drift the last run's plan found and did not correct, by key. */
  get drift(): ReadonlyMap<string, string> {
    return this.#drift;
  }

  /** Other changes the last plan had that its run did not carry out, by key (status: pending). */
  get pending(): ReadonlyMap<string, string> {
    return this.#pending;
  }

  get stalled(): StalledResource[] {
    return [...this.#stalled].map(([resource, s]) => ({ resource, reason: stallText(s.stall), since: s.since }));
  }

  /** The stalled resources by key, typed (status derives its conditions from them). */
  get stalls(): ReadonlyMap<string, Stall> {
    return new Map([...this.#stalled].map(([k, s]) => [k, s.stall]));
  }

  get requeue(): RequeueInfo {
    const d = this.#o.queue.delayed;
    return {
      attempt: this.#backoff.attempt,
      ...(d ? { pending: { delayMs: d.delayMs, dueAt: d.dueAt, reason: this.#requeueReason ?? 'failed' } } : {}),
    };
  }

  #requeueReason: string | undefined;

  /** Start the loop if it is not running (the queue calls this on every add). */
  kick(): void {
    this.#loop ??= this.#runLoop();
  }

  /** Resolves when no run is in flight or pending (a delayed requeue does not count). */
  async idle(): Promise<void> {
    while (this.#loop) await this.#loop;
  }

  async #runLoop(): Promise<void> {
    try {
      await new Promise<void>((r) => setImmediate(r)); // let a synchronous burst of adds coalesce
      while (this.#o.queue.dirty && !this.#o.signal.aborted && (this.#o.leader?.() ?? true)) {
        const sources = this.#o.queue.take();
        this.#active += 1;
        this.maxConcurrentRuns = Math.max(this.maxConcurrentRuns, this.#active);
        try {
          await this.#serveRequests();
          await this.#runOnce(sources);
        } finally {
          this.#active -= 1;
        }
      }
    } finally {
      // Cleared synchronously after the last check of the queue: an add after this starts a new loop.
      this.#loop = undefined;
    }
  }

  /** Requests queued for the lease holder, served one at a time before the run (never during one). */
  async #serveRequests(): Promise<void> {
    const o = this.#o;
    const r = o.requests;
    const host = o.connection.host;
    const claimedBy = r?.claimedBy();
    if (!r || !host || !claimedBy) return;
    this.#inFlight = true;
    try {
      const served = await serveRequests(r.handlers, {
        store: o.store, host, signal: o.signal, logger: this.#log, ...(o.guard ? { guard: o.guard } : {}),
        run: { concurrency: o.concurrency, retry: o.retry, gracefulStop: o.gracefulStop, shutdownTimeoutMs: o.shutdownTimeoutMs, stopTimeoutMs: o.stopTimeoutMs, maxDeletions: o.maxDeletions },
        ...(o.manifests.lastGood ? { desired: o.manifests.lastGood } : {}),
      }, { claimedBy, leading: () => o.leader?.() ?? true });
      if (served > 0) this.#lastObserved = undefined; // the host changed: /status asks again
    } catch (e) {
      this.#log.error('serving requests failed', { error: errText(e) });
    } finally {
      this.#inFlight = false;
    }
  }

  async #runOnce(sources: TriggerSource[]): Promise<void> {
    const o = this.#o;
    const m = o.metrics;
    const connected = o.connection.host;
    if (!connected) {
      this.#log.debug('not connected; run deferred until reconnect', { sources });
      return;
    }
    this.#inFlight = true;
    const seq = ++this.#seq;
    const started = Date.now();
    const t0 = performance.now();
    const full = o.incremental === false || this.#fullNext || sources.some((s) => FULL_READ_SOURCES.has(s));
    if (full) {
      o.manifests.clear();
      o.definitions?.clear();
    }
    this.#fullNext = false;
    o.definitions?.takeStats();
    o.clock?.begin(t0);
    let loadMs: number | undefined;
    let stages: RunStages | undefined;
    let compared: DefinitionStats | undefined;
    const base = { seq, sources, startedAt: new Date(started).toISOString() };
    const steps: RunRecord['steps'] = [];
    const finish = (info: Omit<RunInfo, keyof typeof base | 'finishedAt' | 'durationMs'>): RunInfo => {
      const timing = this.#timing(full, t0, loadMs, stages, compared);
      const run: RunInfo = { ...base, finishedAt: new Date().toISOString(), durationMs: Date.now() - started, ...info, timing };
      this.#lastRun = run;
      m.runs.inc({ outcome: run.outcome });
      if (run.outcome === 'failed' || run.outcome === 'error' || run.outcome === 'interrupted') this.#fullNext = true;
      return run;
    };
    try {
      const tl = performance.now();
      const loaded = await o.manifests.load();
      loadMs = performance.now() - tl;
      if (!loaded.ok) {
        finish({ outcome: 'invalid', failures: [], blocked: [], error: 'manifests invalid; last good state kept, nothing changed' });
        this.#log.warn('manifests invalid: nothing changed; keeping the last good desired state', {
          errors: o.manifests.errorCount, sources, lastGoodDigest: o.manifests.lastGood?.digest,
        });
        return;
      }
      const desired = loaded.desired;
      this.#log.info('reconcile started', { seq, sources, digest: desired.digest, resources: desired.resources.length, ...(desired.gitCommit ? { commit: desired.gitCommit.slice(0, 7) } : {}) });
      const result = await reconcile({
        host: o.definitions ? o.definitions.port(connected) : connected,
        store: o.store,
        desired,
        concurrency: o.concurrency,
        retry: o.retry,
        gracefulStop: o.gracefulStop,
        allowDataLoss: false, // never destroys data unattended: such changes are held (result.held)
        maxDeletions: o.maxDeletions,
        shutdownTimeoutMs: o.shutdownTimeoutMs,
        stopTimeoutMs: o.stopTimeoutMs,
        signal: o.signal,
        ...(o.guard ? { guard: o.guard } : {}),
        onPlan: (plan) => {
          this.#lastPlan = { runId: null, time: new Date().toISOString(), plan };
          o.feed?.emit({ type: 'runStart', runId: null, keys: planKeys(plan) });
        },
        onEvent: (e) => {
          if (e.type === 'note') {
            this.#log.warn('step note', { resource: e.step.key, op: e.step.op.op, note: e.text });
          } else if (e.type === 'retry') {
            this.#log.warn('step retry', { resource: e.step.key, op: e.step.op.op, attempt: e.attempt, delayMs: e.delayMs, error: e.error });
          } else if (e.type === 'done') {
            const s = e.outcome;
            m.steps.inc({ op: s.step.op.op, outcome: s.status });
            steps.push({ kind: s.step.kind, name: s.step.name, host: s.step.host, op: s.step.op.op, ms: s.ms, outcome: s.status });
            if (s.status === 'succeeded' && s.step.change.drift) m.driftCorrections.inc();
            const fields = { resource: s.step.key, op: s.step.op.op, status: s.status, attempts: s.attempts, ms: s.ms, reason: s.step.change.reason, error: s.error };
            if (s.status === 'succeeded') this.#log.info('step done', fields);
            else this.#log.error('step not done', fields);
          }
        },
      });
      stages = result.stages;
      compared = result.definitions;
      this.#firstReconcileDone = true;
      if (this.#lastPlan?.plan === result.plan) this.#lastPlan = { ...this.#lastPlan, runId: result.runId };
      m.runDuration.observe(result.durationMs / 1000);
      const sum = result.plan.summary;
      const causes = result.applied?.failures;
      const failures = [...(result.applied?.failed ?? new Map<string, string>())].map(([resource, error]) => {
        const cause = causes?.get(resource);
        return { resource, error, code: cause?.code };
      });
      const blocked = [...result.plan.blocked].map(([resource, reason]) => ({ resource, reason }));
      const run = finish({
        outcome: result.outcome,
        runId: result.runId,
        revisionId: result.revisionId,
        manifestDigest: desired.digest,
        ...(desired.gitCommit ? { gitCommit: desired.gitCommit } : {}),
        plan: { ...sum, steps: result.plan.steps.length, noop: result.plan.noop },
        mutations: result.mutations,
        failures,
        blocked,
        held: [...result.held].map(([resource, reason]) => ({ resource, reason })),
        ...(result.plan.brake?.braked ? { braked: { deletions: result.plan.brake.deletions, max: result.plan.brake.max, ...(result.plan.brake.wipe ? { wipe: result.plan.brake.wipe } : {}) } } : {}),
        ...(result.suspension ? { suspension: result.suspension } : {}),
      });
      this.#suspension = result.suspension;
      this.#lastObserved = { observed: result.observed, mutations: result.mutations };
      // Drift the plan found that this run did not correct (nothing applied, or its change did not run).
      const applied = result.outcome !== 'suspended' && result.outcome !== 'braked';
      const notRun = (k: string): boolean => !applied || result.plan.held.has(k) || result.plan.blocked.has(k)
        || (result.applied?.failed.has(k) ?? false) || (result.applied?.skipped.has(k) ?? false);
      this.#drift = new Map(result.plan.changes.filter((c) => c.drift && notRun(c.key)).map((c) => [c.key, c.reason]));
      this.#pending = new Map(result.plan.changes.filter((c) => !c.drift && notRun(c.key)).map((c) => [c.key, c.reason]));
      this.#lastReconcile = run;
      this.#settle(run, [...(result.applied?.skips ?? new Map<string, SkipReason>()).values()], causes);
      const fields = {
        seq, sources, outcome: run.outcome, durationMs: run.durationMs, plan: run.plan, mutations: run.mutations,
        failures: run.failures.length, blocked: run.blocked.length, timing: run.timing,
      };
      if (run.outcome === 'failed') this.#log.error('reconcile finished with failures', { ...fields, failed: run.failures.slice(0, 10) });
      else this.#log.info('reconcile finished', fields);
    } catch (e) {
      m.runDuration.observe((Date.now() - started) / 1000);
      const run = finish({ outcome: 'error', failures: [], blocked: [], error: errText(e) });
      this.#log.error('reconcile aborted', { seq, sources, error: errText(e) });
      this.#settle(run, []);
    } finally {
      this.#inFlight = false;
      const run = this.#lastRun;
      if (run && run.seq === seq) {
        await this.#record(run, steps);
        o.feed?.emit({ type: 'runEnd', run });
      }
      // safe-catch: afterRun hooks log their own errors (git: recording the applied commit)
      await o.afterRun?.().catch(() => undefined);
    }
  }

  /** The run into the history (`runs`, pruned to `--history-runs`); a failure is logged, never fails the run. */
  async #record(run: RunInfo, steps: RunRecord['steps']): Promise<void> {
    const keep = this.#o.historyRuns ?? DEFAULT_HISTORY_RUNS;
    if (keep <= 0 || !this.#o.store.runs) return;
    // A run without a lease (a standby's leftover) writes nothing: the store is fenced anyway.
    if (this.#o.leader && !this.#o.leader()) return;
    const record = runRecord(run, steps);
    if (!run.runId) run.runId = record.id;
    try {
      await this.#o.store.runs.record(record, keep);
    } catch (e) {
      this.#log.warn('recording the run in the history failed', { seq: run.seq, error: errText(e) });
    }
  }

  /** The run's time split (RunInfo.timing), also into the metrics. */
  #timing(full: boolean, t0: number, loadMs: number | undefined, stages?: RunStages, compared?: DefinitionStats): RunTiming {
    const o = this.#o;
    const end = performance.now();
    const { busyMs, calls } = o.clock?.end(end) ?? { busyMs: 0, calls: 0 };
    const ms = end - t0;
    const read = full ? 'full' : 'incremental';
    const files = o.manifests.lastStats;
    const defs = o.definitions?.takeStats();
    const timing: RunTiming = {
      read, ms: round(ms), libvirtMs: round(busyMs), ownMs: round(ms - busyMs), calls,
      ...(loadMs !== undefined ? { loadMs: round(loadMs) } : {}),
      ...(files ? { files: { listed: files.files, read: files.read, parsed: files.parsed } } : {}),
      ...(defs ? {
        definitions: {
          cached: defs.hits, ...(defs.hits > 0 ? { cachedBy: defs.hitBy } : {}), read: defs.reads, ...(defs.reads > 0 ? { readBy: defs.readBy } : {}),
          ...(compared ? { compared: compared.parsed, unchanged: compared.unchanged } : {}),
        },
      } : {}),
      ...(stages ? { stages } : {}),
    };
    o.metrics.runLibvirt.observe({ read }, busyMs / 1000);
    o.metrics.runOwn.observe({ read }, (ms - busyMs) / 1000);
    if (files) {
      o.metrics.cacheReuse.inc({ what: 'file', outcome: 'hit' }, files.files - files.read);
      o.metrics.cacheReuse.inc({ what: 'file', outcome: 'read' }, files.read);
    }
    if (defs) {
      o.metrics.cacheReuse.inc({ what: 'definition', outcome: 'hit' }, defs.hits);
      o.metrics.cacheReuse.inc({ what: 'definition', outcome: 'read' }, defs.reads);
    }
    return timing;
  }

  /** Decide what follows a run: reset, requeue with backoff, or stall. */
  #settle(run: RunInfo, skipReasons: SkipReason[], causes?: ReadonlyMap<string, FailureCause>): void {
    const o = this.#o;
    const m = o.metrics;
    if (run.outcome === 'noop' || run.outcome === 'succeeded') {
      if (this.#backoff.attempt > 0) this.#log.info('converged after requeue', { seq: run.seq, requeues: this.#backoff.attempt });
      this.#stopRequeueing();
      this.#stall([]);
      return;
    }
    if (o.signal.aborted) return; // stopping: the next start does the rest
    if (o.leader && !o.leader()) {
      // Stepped down: neither requeued nor stalled; the next holder (or this one, back) does the rest.
      this.#log.warn('run ended without the writer lease: what is left is for the next holder', { seq: run.seq, outcome: run.outcome });
      return;
    }
    if (run.outcome === 'suspended') {
      // Not a failure: nothing to retry. The suspend source enqueues a run when it is lifted.
      this.#stopRequeueing();
      this.#log.warn('suspended: observed and planned, applied nothing', {
        seq: run.seq, since: run.suspension?.since, by: run.suspension?.by, plan: run.plan,
      });
      return;
    }
    if (run.outcome === 'braked') {
      // Retrying gives the same plan: wait for an input change (a manifest edit, an event, the resync).
      const b = run.braked!;
      const detail = b.wipe
        ? `the plan deletes every ${b.wipe.kind} virtform owns (${b.wipe.owned}), refused by default (--max-deletions)`
        : `the plan deletes ${b.deletions.length} resources, more than the ${b.max} allowed (--max-deletions)`;
      this.#stall(b.deletions.map((resource) => [resource, { reason: 'braked', detail }]), run);
      this.#stopRequeueing();
      this.#log.error('braked: the plan deletes more resources than --max-deletions allows; nothing applied', {
        seq: run.seq, deletions: b.deletions.length, max: b.max, resources: b.deletions.slice(0, 50),
      });
      return;
    }
    if (run.outcome === 'held') {
      // Retrying cannot give consent: wait for an input change (or `reconcile --allow-data-loss`).
      const stalled = this.#stall((run.held ?? []).map((h) => [h.resource, { reason: 'held', detail: h.reason }]), run);
      this.#stopRequeueing();
      this.#log.warn('changes held: they would destroy data; watch never consents (run reconcile --allow-data-loss)', {
        seq: run.seq, held: stalled.slice(0, 10),
      });
      return;
    }
    let reason: string;
    if (run.outcome === 'failed') {
      const stalled = this.#stall([
        ...run.failures.flatMap((f): [string, Stall][] => {
          const cause = causes?.get(f.resource);
          return stalls(cause) ? [[f.resource, { reason: 'invalid', detail: f.error, ...(cause?.libvirt ? { libvirt: cause.libvirt } : {}) }]] : [];
        }),
        ...run.blocked.map((b): [string, Stall] => [b.resource, { reason: 'conflict', detail: b.reason }]),
      ], run);
      const retryable = run.failures.some((f) => !stalls(causes?.get(f.resource)))
        // a step not started for any reason other than a failed or skipped prerequisite (connection lost)
        || skipReasons.some((r) => r.reason !== 'prerequisite');
      if (!retryable) {
        this.#stopRequeueing();
        this.#log.warn('stalled: not retrying until a manifest change or a lifecycle event', {
          seq: run.seq, resources: stalled.map((s) => s.resource), stalled: stalled.slice(0, 10),
        });
        return;
      }
      reason = 'failed';
    } else if (run.outcome === 'error' || run.outcome === 'interrupted') {
      reason = run.outcome;
    } else {
      return; // invalid manifests: wait for the next change
    }
    const delayMs = this.#backoff.next();
    const attempt = this.#backoff.attempt;
    run.requeue = { attempt, delayMs, reason };
    this.#requeueReason = reason;
    m.requeues.inc({ reason });
    m.backoff.set(delayMs / 1000);
    this.#log.warn('requeue', { seq: run.seq, reason, attempt, delayMs, failures: run.failures.length, error: run.error });
    o.queue.addAfter('requeue', delayMs);
  }

  /** No requeue: the backoff starts over and a delayed run is dropped; an input change starts the next run. */
  #stopRequeueing(): void {
    this.#backoff.reset();
    this.#o.queue.cancelDelayed();
    this.#requeueReason = undefined;
    this.#o.metrics.backoff.set(0);
  }

  /** The stalled resources now (replacing the last run's), also on `run`; returns them as text. */
  #stall(list: [string, Stall][], run?: RunInfo): { resource: string; reason: string }[] {
    const now = new Date().toISOString();
    const next = new Map<string, { stall: Stall; since: string }>();
    for (const [resource, stall] of list) next.set(resource, { stall, since: this.#stalled.get(resource)?.since ?? now });
    this.#stalled = next;
    this.#o.metrics.stalled.set(next.size);
    const shown = list.map(([resource, stall]) => ({ resource, reason: stallText(stall) }));
    if (run) run.stalled = shown;
    return shown;
  }
}
