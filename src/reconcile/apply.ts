/**
 * Apply: run the plan's steps on the host, in dependency order, with bounded concurrency.
 *
 * Every step is journaled before it touches the host and after it finishes, and is idempotent:
 * a step re-run after a crash finds half-done work (a volume that exists, a domain defined but not
 * started, a network defined but inactive) and completes it. Failed steps are retried with
 * exponential backoff and jitter; when attempts run out the resource is marked failed with the
 * error, its dependents are skipped with a reason, and independent branches still complete.
 */
import PQueue from 'p-queue';
import { parseResourceKey, type HostId, type ResourceKind, type ResourceRef } from '../model/kinds.js';
import { xmlSha256 } from '../libvirt/xml/compare.js';
import { failureCause, HostError, MutationRefusedError, type FailureCause, type HostPort, type MutationGuard } from './ports.js';
import type { Desired } from './desired.js';
import { localHosts, perHost, type HostPorts, type Observed, type ObservedHosts } from './observe.js';
import type { Plan, PlanStep } from './plan.js';
import { stepOpLabel } from './diff.js';
import { kindOf } from './kinds/index.js';
import type { ExecContext } from './core/kind.js';
import type { ImageCache, ImageProgress } from './images.js';
import type { JournalEntry, ResourceRecord, ResourceUpsert } from '../state/index.js';
import { backoffDelay as jitteredDelay } from '../util/backoff.js';

/** The part of the state store apply writes to. */
export interface ApplyStore {
  resources: {
    get(ref: ResourceRef): Promise<ResourceRecord | undefined>;
    upsert(r: ResourceUpsert): Promise<ResourceRecord>;
    setStatus(ref: ResourceRef, s: { observedStatus?: string | null; lastError?: string | null; attempts?: number }): Promise<void>;
    delete(ref: ResourceRef): Promise<void>;
  };
  createdPaths: {
    list(ref: ResourceRef): Promise<string[]>;
    add(ref: ResourceRef, paths: string[]): Promise<void>;
    remove(ref: ResourceRef, paths: string[]): Promise<void>;
  };
  journal: {
    begin(e: ResourceRef & { runId: string; action: string; intent: Record<string, unknown>; attempt?: number }): Promise<number>;
    finish(id: number, outcome: 'succeeded' | 'failed' | 'abandoned', error?: string): Promise<void>;
  };
  /** Baselines of definitions (exact drift); absent: none are recorded. */
  baselines?: BaselineWriter;
}

/** Where apply records the baseline of a definition after writing it. */
export interface BaselineWriter {
  put(b: ResourceRef & { xml: string; sha256: string; version: string }): Promise<void>;
  delete(ref: ResourceRef): Promise<void>;
}

/**
 * Record libvirt's inactive XML of an object as its baseline (exact drift), for kinds that have
 * one, on hosts and stores that support it. Called after each step's write, before its journal
 * entry closes: a crash in between leaves the entry open, and the next run takes the baseline
 * again without reporting drift.
 */
export async function recordBaseline(host: HostPort, store: { baselines?: BaselineWriter }, ref: ResourceRef): Promise<void> {
  const exact = kindOf(ref.kind).exact;
  if (!exact || !host.inactiveXml || !host.versionTag || !store.baselines) return;
  const xml = await host.inactiveXml(exact.object, ref.name);
  if (xml === null) {
    await store.baselines.delete(ref);
    return;
  }
  await store.baselines.put({ ...ref, xml, sha256: xmlSha256(xml), version: await host.versionTag() });
}

export interface RetryPolicy {
  maxAttempts: number;
  baseDelayMs: number;
  maxDelayMs: number;
}

export const DEFAULT_RETRY: RetryPolicy = { maxAttempts: 3, baseDelayMs: 250, maxDelayMs: 5_000 };

export type StepStatus = 'succeeded' | 'failed' | 'skipped';

/**
 * Why a step did not run; its text (`skipText`) is the step's error and the resource's lastError.
 * Callers decide on `reason`, never on the text.
 */
export type SkipReason =
  /** A prerequisite step failed or was itself skipped. */
  | { reason: 'prerequisite'; key: string; status: 'failed' | 'skipped' }
  /** The connection to libvirt dropped during this apply: no new step starts. */
  | { reason: 'connection-lost'; error: string }
  /** The stop signal came before the step started. */
  | { reason: 'shutting-down' }
  /** This process lost the writer lease (or could not renew it in time): it changes nothing more. */
  | { reason: 'lease-lost'; error: string }
  /** The stop signal came while the step waited to be retried after `error`. */
  | { reason: 'not-retried'; error: string }
  /** Still running `stopTimeoutMs` after the stop signal: abandoned (its journal entry closed as failed). */
  | { reason: 'abandoned'; stopTimeoutMs: number };

export function skipText(s: SkipReason): string {
  switch (s.reason) {
    case 'prerequisite': return `skipped: ${s.key} ${s.status === 'failed' ? 'failed' : 'was skipped'}`;
    case 'connection-lost': return `not started: connection to libvirt lost (${s.error})`;
    case 'shutting-down': return 'not started: shutting down';
    case 'lease-lost': return `not started: ${s.error}`;
    case 'not-retried': return `not retried: shutting down (${s.error})`;
    case 'abandoned': return `interrupted: still running ${s.stopTimeoutMs / 1000} s after the stop was requested (--stop-timeout); abandoned, the next run finishes it`;
  }
}

export interface StepOutcome {
  step: PlanStep;
  status: StepStatus;
  attempts: number;
  ms: number;
  /** The text of the failure or of the skip reason. */
  error?: string;
  /** Failed: the typed cause of the last attempt's error. */
  failure?: FailureCause;
  /** Skipped: why. */
  skip?: SkipReason;
}

export type ApplyEvent =
  | { type: 'start'; step: PlanStep }
  | { type: 'retry'; step: PlanStep; attempt: number; delayMs: number; error: string }
  | { type: 'done'; outcome: StepOutcome }
  /** A long step's progress (an image download or upload). */
  | { type: 'progress'; step: PlanStep; progress: ImageProgress }
  /** A line about what a step did (something kept, and why). */
  | { type: 'note'; step: PlanStep; text: string };

export interface ApplyOptions {
  /** The one host of a single-host run (the local host); `hosts` instead for several. */
  host?: HostPort;
  /** The hosts by host id: each step runs on its own (`PlanStep.host`). */
  hosts?: HostPorts;
  store: ApplyStore;
  desired: Desired;
  /** What observe saw: of the one host, or per host. */
  observed: Observed | ObservedHosts;
  runId: string;
  revisionId?: number;
  concurrency?: number;
  retry?: RetryPolicy;
  /** Test hook: called at every journal boundary (after begin, after the host call). */
  boundary?: (label: string) => void;
  onEvent?: (e: ApplyEvent) => void;
  /** Timeout for a graceful VM shutdown before it is forced off. */
  shutdownTimeoutMs?: number;
  /** Hot-plug (issue 24): how long a guest gets to complete a live detach. */
  detachTimeoutMs?: number;
  /** Once aborted, steps in flight finish and no new step (or retry) starts; the next run does the rest. */
  signal?: AbortSignal;
  /**
   * After `signal` aborted, how long the steps in flight may still run (ms; absent = as long as
   * they take). Then they are abandoned: their journal entries are closed as failed
   * ("interrupted: ..."), so the next run finishes them, they count as skipped, and apply returns
   * without waiting for them (the caller then ends the process or drops the connection).
   */
  stopTimeoutMs?: number;
  /** Cache of downloaded images (`spec.source.url`). */
  images?: ImageCache;
  /** `--move-bandwidth`: most bytes per second a cold move's copy sends (absent: unlimited). */
  moveBandwidth?: number;
  /**
   * The writer lease's check (src/state/lease.ts): asked before each step starts and, through the
   * host, before every mutating call. Once it refuses, no new step starts; the step whose call it
   * refused keeps its journal entry open (the next holder finishes it), like a lost connection.
   */
  guard?: MutationGuard;
}

export interface ApplyResult {
  outcomes: StepOutcome[];
  /** Failed resources by key: the error text. */
  failed: Map<string, string>;
  /** Skipped resources by key: the reason's text. */
  skipped: Map<string, string>;
  /** The typed cause of each failure in `failed` (same keys). */
  failures: Map<string, FailureCause>;
  /** The typed reason of each skip in `skipped` (same keys). */
  skips: Map<string, SkipReason>;
}

function errorText(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

function skippedOutcome(step: PlanStep, skip: SkipReason, attempts = 0, ms = 0): StepOutcome {
  return { step, status: 'skipped', attempts, ms, error: skipText(skip), skip };
}

function retryable(e: unknown): boolean {
  if (e instanceof HostError) return e.code !== 'invalid' && e.code !== 'already-exists';
  return true;
}

export function backoffDelay(policy: RetryPolicy, attempt: number, random: () => number = Math.random): number {
  return jitteredDelay({ baseMs: policy.baseDelayMs, maxMs: policy.maxDelayMs }, attempt, random);
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** What the journal remembers about a step: enough for a later run to find and finish or clean it. */
function intentOf(step: PlanStep, desired: Desired): Record<string, unknown> {
  const d = desired.byKey.get(step.key);
  const intent: Record<string, unknown> = { op: step.op.op, reason: step.change.reason };
  if (step.op.op !== 'record.forget') Object.assign(intent, kindOf(step.kind).intent(step.op, d?.kind === step.kind ? d : undefined));
  if (d) intent.specHash = d.specHash;
  return intent;
}

export async function apply(plan: Plan, opts: ApplyOptions): Promise<ApplyResult> {
  const { store, desired, runId } = opts;
  const hosts = opts.hosts ?? (opts.host ? localHosts(opts.host) : new Map<HostId, HostPort>());
  const observedHosts = perHost(opts.observed);
  const portOf = (step: PlanStep): HostPort => {
    const port = hosts.get(step.host);
    if (!port) throw new Error(`internal error: ${step.key}: no connection to host ${step.host}`);
    return port;
  };
  const observedOf = (step: PlanStep): Observed => {
    const o = observedHosts.get(step.host);
    if (!o) throw new Error(`internal error: ${step.key}: host ${step.host} was not observed`);
    return o;
  };
  const policy = opts.retry ?? DEFAULT_RETRY;
  const queue = new PQueue({ concurrency: Math.max(1, opts.concurrency ?? 4) });
  const outcomes = new Map<number, StepOutcome>();
  const failed = new Map<string, string>();
  const skipped = new Map<string, string>();
  const failures = new Map<string, FailureCause>();
  const skips = new Map<string, SkipReason>();
  const waiting = new Map<number, Set<number>>();
  const dependents = new Map<number, number[]>();
  /** Hosts whose connection was lost during this apply, with the error: no new step starts on them. */
  const connectionLost = new Map<HostId, string>();
  /** Set once the lease guard refused: this process may change nothing more, on any host. */
  let refused: string | undefined;

  for (const s of plan.steps) {
    waiting.set(s.id, new Set(s.deps));
    for (const d of s.deps) dependents.set(d, [...(dependents.get(d) ?? []), s.id]);
  }

  const record = async (
    step: PlanStep,
    fields: Parameters<ExecContext<unknown>['record']>[0],
  ): Promise<void> => {
    const d = desired.byKey.get(step.key);
    // `details.facts` (see ResourceIndexEntry.facts) are kept across records; `fields.facts` is
    // merged into them (a null value removes that fact).
    let details: Record<string, unknown> | undefined;
    if (fields.config && d) details = { config: d.config };
    if (fields.facts !== undefined || details) {
      const existing = (await store.resources.get(parseResourceKey(step.key)))?.details ?? {};
      details ??= { ...existing };
      const facts: Record<string, unknown> = { ...((existing.facts as Record<string, unknown> | undefined) ?? {}) };
      for (const [k, v] of Object.entries(fields.facts ?? {})) {
        if (v === null || v === undefined) delete facts[k];
        else facts[k] = v;
      }
      if (Object.keys(facts).length > 0) details.facts = facts;
      else delete details.facts;
    }
    await store.resources.upsert({
      ...parseResourceKey(step.key),
      ...(fields.uuid !== undefined ? { uuid: fields.uuid } : {}),
      ...(fields.config && d ? { specHash: d.specHash } : {}),
      ...(details ? { details } : {}),
      ...(fields.desiredState !== undefined ? { desiredState: fields.desiredState } : {}),
      observedStatus: fields.observedStatus,
      lastError: null,
      attempts: 0,
      ...(opts.revisionId !== undefined ? { lastAppliedRevision: opts.revisionId } : {}),
    });
    await recordBaseline(portOf(step), store, parseResourceKey(step.key));
  };

  /** Execute one step against the host through its kind's module; idempotent. */
  const execute = async (step: PlanStep, attempt: number): Promise<void> => {
    const ref = parseResourceKey(step.key);
    if (step.op.op === 'record.forget') {
      await store.resources.delete(ref);
      await store.baselines?.delete(ref);
      return;
    }
    const ctx: ExecContext<unknown> = {
      host: portOf(step), step, desired: desired.byKey.get(step.key), observed: observedOf(step), attempt,
      replacing: step.change.action === 'replace',
      shutdownTimeoutMs: opts.shutdownTimeoutMs,
      ...(opts.detachTimeoutMs !== undefined ? { detachTimeoutMs: opts.detachTimeoutMs } : {}),
      boundary: () => opts.boundary?.(`${step.key}:${step.op.op}:called`),
      record: (fields) => record(step, fields),
      forgetIfUndeclared: async () => {
        if (!desired.byKey.has(step.key)) {
          await store.resources.delete(ref);
          await store.baselines?.delete(ref);
        }
      },
      createdPaths: {
        list: () => store.createdPaths.list(ref),
        add: (paths) => store.createdPaths.add(ref, paths),
        remove: (paths) => store.createdPaths.remove(ref, paths),
      },
      note: (text) => opts.onEvent?.({ type: 'note', step, text }),
      images: opts.images,
      progress: (progress) => opts.onEvent?.({ type: 'progress', step, progress }),
      peer: (host) => hosts.get(host),
      factsOf: async (key) => {
        const r = await store.resources.get(parseResourceKey(key));
        if (!r) return undefined;
        const f = r.details?.facts;
        return f && typeof f === 'object' ? { ...(f as Record<string, unknown>) } : {};
      },
      facts: async () => {
        const f = (await store.resources.get(ref))?.details?.facts;
        return f && typeof f === 'object' ? { ...(f as Record<string, unknown>) } : {};
      },
      ...(opts.moveBandwidth !== undefined ? { moveBandwidth: opts.moveBandwidth } : {}),
    };
    await kindOf(step.kind).execute(step.op, ctx);
  };

  /** Journal entries of the steps running now (closed as failed when they are abandoned). */
  const inFlight = new Map<number, { jid: number; started: number; attempt: number }>();
  const runStep = async (step: PlanStep): Promise<StepOutcome> => {
    const started = Date.now();
    opts.onEvent?.({ type: 'start', step });
    let lastError = '';
    let cause: FailureCause = {};
    for (let attempt = 1; attempt <= policy.maxAttempts; attempt += 1) {
      const stepDown = opts.guard?.();
      if (stepDown) {
        refused ??= stepDown;
        return { step, status: 'skipped', attempts: attempt - 1, ms: Date.now() - started, error: `not started: ${stepDown}` };
      }
      const jid = await store.journal.begin({
        runId, ...parseResourceKey(step.key), action: step.op.op, intent: intentOf(step, desired), attempt,
      });
      inFlight.set(step.id, { jid, started, attempt });
      opts.boundary?.(`${step.key}:${step.op.op}:begin`);
      try {
        await execute(step, attempt);
        await store.journal.finish(jid, 'succeeded');
        return { step, status: 'succeeded', attempts: attempt, ms: Date.now() - started };
      } catch (e) {
        lastError = errorText(e);
        cause = failureCause(e);
        if (e instanceof MutationRefusedError) {
          // Nothing of this call was sent; earlier calls of the step may have been: the entry stays
          // open, so the next holder treats what it finds as half-done work of its own.
          refused ??= opts.guard?.() ?? lastError;
          return { step, status: 'failed', attempts: attempt, ms: Date.now() - started, error: lastError, failure: cause };
        }
        if (e instanceof HostError && e.code === 'connection') {
          // The call's outcome on the host is unknown: the entry stays open, so the next run treats
          // whatever it finds under this name as half-done work of its own. No retry on a dead
          // connection, and no new step starts on that host (the others go on).
          if (!connectionLost.has(step.host)) connectionLost.set(step.host, lastError);
          return { step, status: 'failed', attempts: attempt, ms: Date.now() - started, error: lastError, failure: cause };
        }
        await store.journal.finish(jid, 'failed', lastError);
        if (!retryable(e) || attempt === policy.maxAttempts) {
          return { step, status: 'failed', attempts: attempt, ms: Date.now() - started, error: lastError, failure: cause };
        }
        if (opts.signal?.aborted) {
          return skippedOutcome(step, { reason: 'not-retried', error: lastError }, attempt, Date.now() - started);
        }
        const delayMs = backoffDelay(policy, attempt);
        opts.onEvent?.({ type: 'retry', step, attempt, delayMs, error: lastError });
        await sleep(delayMs);
      } finally {
        if (inFlight.get(step.id)?.jid === jid) inFlight.delete(step.id);
      }
    }
    return { step, status: 'failed', attempts: policy.maxAttempts, ms: Date.now() - started, error: lastError, failure: cause };
  };
  let abandoned = false;

  const skipReasons = new Map<number, SkipReason>();
  const stopReason = (step: PlanStep): SkipReason | undefined => {
    refused ??= opts.guard?.();
    if (refused) return { reason: 'lease-lost', error: refused };
    const lost = connectionLost.get(step.host);
    return lost ? { reason: 'connection-lost', error: lost }
      : opts.signal?.aborted ? { reason: 'shutting-down' } : undefined;
  };
  let disarmStop = (): void => undefined;
  if (opts.guard) for (const port of hosts.values()) port.setMutationGuard?.(opts.guard);
  const finished = new Promise<void>((resolveAll, rejectAll) => {
    let remaining = plan.steps.length;
    if (remaining === 0) resolveAll();
    const complete = (outcome: StepOutcome): void => {
      // A step abandoned at the stop timeout that ends later: its outcome was already given.
      if (outcomes.has(outcome.step.id)) return;
      outcomes.set(outcome.step.id, outcome);
      opts.onEvent?.({ type: 'done', outcome });
      if (outcome.status === 'failed' && outcome.error) {
        failed.set(outcome.step.key, outcome.error);
        failures.set(outcome.step.key, outcome.failure ?? {});
      }
      if (outcome.status === 'skipped' && outcome.error && !failed.has(outcome.step.key)) {
        skipped.set(outcome.step.key, outcome.error);
        if (outcome.skip) skips.set(outcome.step.key, outcome.skip);
      }
      remaining -= 1;
      for (const next of dependents.get(outcome.step.id) ?? []) {
        const w = waiting.get(next)!;
        w.delete(outcome.step.id);
        if (outcome.status !== 'succeeded' && !skipReasons.has(next)) {
          skipReasons.set(next, { reason: 'prerequisite', key: outcome.step.key, status: outcome.status });
        }
        if (w.size === 0) schedule(plan.steps[next]!);
      }
      if (remaining === 0) resolveAll();
    };
    // A step runs once all its prerequisites are done; it is skipped if any of them did not succeed.
    const schedule = (step: PlanStep): void => {
      const reason = skipReasons.get(step.id) ?? stopReason(step);
      if (reason) {
        complete(skippedOutcome(step, reason));
        return;
      }
      queue.add(() => {
        const late = stopReason(step);
        return late ? Promise.resolve(skippedOutcome(step, late)) : runStep(step);
      }).then(complete, rejectAll);
    };
    for (const s of plan.steps) if (s.deps.length === 0) schedule(s);

    // The stop timeout: once the signal aborted, the steps in flight get stopTimeoutMs to end.
    const stopTimeoutMs = opts.stopTimeoutMs;
    const signal = opts.signal;
    if (signal && stopTimeoutMs !== undefined && remaining > 0) {
      let timer: NodeJS.Timeout | undefined;
      const abandon = async (): Promise<void> => {
        abandoned = true;
        for (const [id, f] of [...inFlight]) {
          inFlight.delete(id);
          const step = plan.steps[id]!;
          const outcome = skippedOutcome(step, { reason: 'abandoned', stopTimeoutMs }, f.attempt, Date.now() - f.started);
          await store.journal.finish(f.jid, 'failed', outcome.error);
          complete(outcome);
        }
        // Steps still queued behind them never start.
        queue.clear();
        for (const step of plan.steps) {
          if (!outcomes.has(step.id)) complete(skippedOutcome(step, { reason: 'shutting-down' }));
        }
      };
      const arm = (): void => {
        timer = setTimeout(() => void abandon().catch(rejectAll), stopTimeoutMs);
      };
      if (signal.aborted) arm();
      else signal.addEventListener('abort', arm, { once: true });
      disarmStop = () => {
        clearTimeout(timer);
        signal.removeEventListener('abort', arm);
      };
    }
  });
  try {
    await finished;
  } finally {
    disarmStop();
    if (opts.guard) for (const port of hosts.values()) port.setMutationGuard?.(undefined);
  }
  // Abandoned steps may still be running: not waited for.
  if (!abandoned) await queue.onIdle();

  // Resource-level status for failures and skips.
  const moveTargets = new Set(plan.changes.filter((c) => c.move?.role === 'target').map((c) => c.key));
  for (const [key, error] of [...failed, ...skipped]) {
    const ref = parseResourceKey(key);
    const attempts = [...outcomes.values()].filter((o) => o.step.key === key).reduce((n, o) => n + o.attempts, 0);
    const existing = await store.resources.get(ref);
    if (existing) {
      await store.resources.setStatus(ref, {
        observedStatus: failed.has(key) ? 'failed' : 'pending', lastError: error, attempts: existing.attempts + attempts,
      });
    } else if (desired.byKey.has(key) && !moveTargets.has(key)) {
      // Not for a cold move's target: a record there (without its copy's `move` fact) would read as
      // the target's own object on the next run, and the move would no longer resume (copy + verify).
      await store.resources.upsert({
        ...ref, uuid: null, observedStatus: failed.has(key) ? 'failed' : 'pending', lastError: error, attempts,
      });
    }
  }

  return { outcomes: plan.steps.map((s) => outcomes.get(s.id)!).filter(Boolean), failed, skipped, failures, skips };
}

export function stepLabel(step: PlanStep): string {
  return `${stepOpLabel(step.op.op)} ${step.key}`;
}

export type { JournalEntry };
