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
import { parseResourceKey, type ResourceKind } from '../model/kinds.js';
import { xmlSha256 } from '../libvirt/xml/compare.js';
import { HostError, type HostPort } from './ports.js';
import type { Desired } from './desired.js';
import type { Observed } from './observe.js';
import type { Plan, PlanStep } from './plan.js';
import { stepOpLabel } from './diff.js';
import { kindOf } from './kinds/index.js';
import type { ExecContext } from './core/kind.js';
import type { ImageCache, ImageProgress } from './images.js';
import type { JournalEntry, ResourceRecord } from '../state/index.js';
import { backoffDelay as jitteredDelay } from '../util/backoff.js';

/** The part of the state store apply writes to. */
export interface ApplyStore {
  resources: {
    get(kind: string, name: string): Promise<ResourceRecord | undefined>;
    upsert(r: { kind: string; name: string } & Partial<Omit<ResourceRecord, 'kind' | 'name' | 'createdAt' | 'updatedAt' | 'generation'>>): Promise<ResourceRecord>;
    setStatus(kind: string, name: string, s: { observedStatus?: string | null; lastError?: string | null; attempts?: number }): Promise<void>;
    delete(kind: string, name: string): Promise<void>;
  };
  createdPaths: {
    list(kind: string, name: string): Promise<string[]>;
    add(kind: string, name: string, paths: string[]): Promise<void>;
    remove(kind: string, name: string, paths: string[]): Promise<void>;
  };
  journal: {
    begin(e: { runId: string; kind: string; name: string; action: string; intent: Record<string, unknown>; attempt?: number }): Promise<number>;
    finish(id: number, outcome: 'succeeded' | 'failed' | 'abandoned', error?: string): Promise<void>;
  };
  /** Baselines of definitions (exact drift); absent: none are recorded. */
  baselines?: BaselineWriter;
}

/** Where apply records the baseline of a definition after writing it. */
export interface BaselineWriter {
  put(b: { kind: string; name: string; xml: string; sha256: string; version: string }): Promise<void>;
  delete(kind: string, name: string): Promise<void>;
}

/**
 * Record libvirt's inactive XML of an object as its baseline (exact drift), for kinds that have
 * one, on hosts and stores that support it. Called after each step's write, before its journal
 * entry closes: a crash in between leaves the entry open, and the next run takes the baseline
 * again without reporting drift.
 */
export async function recordBaseline(host: HostPort, store: { baselines?: BaselineWriter }, kind: ResourceKind, name: string): Promise<void> {
  const exact = kindOf(kind).exact;
  if (!exact || !host.inactiveXml || !host.versionTag || !store.baselines) return;
  const xml = await host.inactiveXml(exact.object, name);
  if (xml === null) {
    await store.baselines.delete(kind, name);
    return;
  }
  await store.baselines.put({ kind, name, xml, sha256: xmlSha256(xml), version: await host.versionTag() });
}

export interface RetryPolicy {
  maxAttempts: number;
  baseDelayMs: number;
  maxDelayMs: number;
}

export const DEFAULT_RETRY: RetryPolicy = { maxAttempts: 3, baseDelayMs: 250, maxDelayMs: 5_000 };

export type StepStatus = 'succeeded' | 'failed' | 'skipped';

export interface StepOutcome {
  step: PlanStep;
  status: StepStatus;
  attempts: number;
  ms: number;
  error?: string;
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
  host: HostPort;
  store: ApplyStore;
  desired: Desired;
  observed: Observed;
  runId: string;
  revisionId?: number;
  concurrency?: number;
  retry?: RetryPolicy;
  /** Test hook: called at every journal boundary (after begin, after the host call). */
  boundary?: (label: string) => void;
  onEvent?: (e: ApplyEvent) => void;
  /** Timeout for a graceful VM shutdown before it is forced off. */
  shutdownTimeoutMs?: number;
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
}

export interface ApplyResult {
  outcomes: StepOutcome[];
  failed: Map<string, string>;
  skipped: Map<string, string>;
}

function errorText(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
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
  const { host, store, desired, observed, runId } = opts;
  const policy = opts.retry ?? DEFAULT_RETRY;
  const queue = new PQueue({ concurrency: Math.max(1, opts.concurrency ?? 4) });
  const outcomes = new Map<number, StepOutcome>();
  const failed = new Map<string, string>();
  const skipped = new Map<string, string>();
  const waiting = new Map<number, Set<number>>();
  const dependents = new Map<number, number[]>();
  let connectionLost: string | undefined;

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
      const existing = (await store.resources.get(step.kind, step.name))?.details ?? {};
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
      kind: step.kind,
      name: step.name,
      ...(fields.uuid !== undefined ? { uuid: fields.uuid } : {}),
      ...(fields.config && d ? { specHash: d.specHash } : {}),
      ...(details ? { details } : {}),
      ...(fields.desiredState !== undefined ? { desiredState: fields.desiredState } : {}),
      observedStatus: fields.observedStatus,
      lastError: null,
      attempts: 0,
      ...(opts.revisionId !== undefined ? { lastAppliedRevision: opts.revisionId } : {}),
    });
    await recordBaseline(host, store, step.kind, step.name);
  };

  /** Execute one step against the host through its kind's module; idempotent. */
  const execute = async (step: PlanStep, attempt: number): Promise<void> => {
    if (step.op.op === 'record.forget') {
      await store.resources.delete(step.kind, step.name);
      await store.baselines?.delete(step.kind, step.name);
      return;
    }
    const ctx: ExecContext<unknown> = {
      host, step, desired: desired.byKey.get(step.key), observed, attempt,
      replacing: step.change.action === 'replace',
      shutdownTimeoutMs: opts.shutdownTimeoutMs,
      boundary: () => opts.boundary?.(`${step.key}:${step.op.op}:called`),
      record: (fields) => record(step, fields),
      forgetIfUndeclared: async () => {
        if (!desired.byKey.has(step.key)) {
          await store.resources.delete(step.kind, step.name);
          await store.baselines?.delete(step.kind, step.name);
        }
      },
      createdPaths: {
        list: () => store.createdPaths.list(step.kind, step.name),
        add: (paths) => store.createdPaths.add(step.kind, step.name, paths),
        remove: (paths) => store.createdPaths.remove(step.kind, step.name, paths),
      },
      note: (text) => opts.onEvent?.({ type: 'note', step, text }),
      images: opts.images,
      progress: (progress) => opts.onEvent?.({ type: 'progress', step, progress }),
    };
    await kindOf(step.kind).execute(step.op, ctx);
  };

  /** Journal entries of the steps running now (closed as failed when they are abandoned). */
  const inFlight = new Map<number, { jid: number; started: number; attempt: number }>();
  const runStep = async (step: PlanStep): Promise<StepOutcome> => {
    const started = Date.now();
    opts.onEvent?.({ type: 'start', step });
    let lastError = '';
    for (let attempt = 1; attempt <= policy.maxAttempts; attempt += 1) {
      const jid = await store.journal.begin({
        runId, kind: step.kind, name: step.name, action: step.op.op, intent: intentOf(step, desired), attempt,
      });
      inFlight.set(step.id, { jid, started, attempt });
      opts.boundary?.(`${step.key}:${step.op.op}:begin`);
      try {
        await execute(step, attempt);
        await store.journal.finish(jid, 'succeeded');
        return { step, status: 'succeeded', attempts: attempt, ms: Date.now() - started };
      } catch (e) {
        lastError = errorText(e);
        if (e instanceof HostError && e.code === 'connection') {
          // The call's outcome on the host is unknown: the entry stays open, so the next run treats
          // whatever it finds under this name as half-done work of its own. No retry on a dead
          // connection, and no new step starts.
          connectionLost ??= lastError;
          return { step, status: 'failed', attempts: attempt, ms: Date.now() - started, error: lastError };
        }
        await store.journal.finish(jid, 'failed', lastError);
        if (!retryable(e) || attempt === policy.maxAttempts) {
          return { step, status: 'failed', attempts: attempt, ms: Date.now() - started, error: lastError };
        }
        if (opts.signal?.aborted) {
          return { step, status: 'skipped', attempts: attempt, ms: Date.now() - started, error: `not retried: shutting down (${lastError})` };
        }
        const delayMs = backoffDelay(policy, attempt);
        opts.onEvent?.({ type: 'retry', step, attempt, delayMs, error: lastError });
        await sleep(delayMs);
      } finally {
        if (inFlight.get(step.id)?.jid === jid) inFlight.delete(step.id);
      }
    }
    return { step, status: 'failed', attempts: policy.maxAttempts, ms: Date.now() - started, error: lastError };
  };
  let abandoned = false;

  const skipReasons = new Map<number, string>();
  const stopReason = (): string | undefined =>
    connectionLost ? `not started: connection to libvirt lost (${connectionLost})`
      : opts.signal?.aborted ? 'not started: shutting down' : undefined;
  let disarmStop = (): void => undefined;
  const finished = new Promise<void>((resolveAll, rejectAll) => {
    let remaining = plan.steps.length;
    if (remaining === 0) resolveAll();
    const complete = (outcome: StepOutcome): void => {
      // A step abandoned at the stop timeout that ends later: its outcome was already given.
      if (outcomes.has(outcome.step.id)) return;
      outcomes.set(outcome.step.id, outcome);
      opts.onEvent?.({ type: 'done', outcome });
      if (outcome.status === 'failed' && outcome.error) failed.set(outcome.step.key, outcome.error);
      if (outcome.status === 'skipped' && outcome.error && !failed.has(outcome.step.key)) skipped.set(outcome.step.key, outcome.error);
      remaining -= 1;
      for (const next of dependents.get(outcome.step.id) ?? []) {
        const w = waiting.get(next)!;
        w.delete(outcome.step.id);
        if (outcome.status !== 'succeeded' && !skipReasons.has(next)) {
          skipReasons.set(next, `skipped: ${outcome.step.key} ${outcome.status === 'failed' ? 'failed' : 'was skipped'}`);
        }
        if (w.size === 0) schedule(plan.steps[next]!);
      }
      if (remaining === 0) resolveAll();
    };
    // A step runs once all its prerequisites are done; it is skipped if any of them did not succeed.
    const schedule = (step: PlanStep): void => {
      const reason = skipReasons.get(step.id) ?? stopReason();
      if (reason) {
        complete({ step, status: 'skipped', attempts: 0, ms: 0, error: reason });
        return;
      }
      queue.add(() => {
        const late = stopReason();
        return late ? Promise.resolve<StepOutcome>({ step, status: 'skipped', attempts: 0, ms: 0, error: late }) : runStep(step);
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
          const error = `interrupted: still running ${stopTimeoutMs / 1000} s after the stop was requested (--stop-timeout); abandoned, the next run finishes it`;
          await store.journal.finish(f.jid, 'failed', error);
          complete({ step, status: 'skipped', attempts: f.attempt, ms: Date.now() - f.started, error });
        }
        // Steps still queued behind them never start.
        queue.clear();
        for (const step of plan.steps) {
          if (!outcomes.has(step.id)) complete({ step, status: 'skipped', attempts: 0, ms: 0, error: 'not started: shutting down' });
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
  }
  // Abandoned steps may still be running: not waited for.
  if (!abandoned) await queue.onIdle();

  // Resource-level status for failures and skips.
  for (const [key, error] of [...failed, ...skipped]) {
    const { kind, name } = parseResourceKey(key);
    const attempts = [...outcomes.values()].filter((o) => o.step.key === key).reduce((n, o) => n + o.attempts, 0);
    const existing = await store.resources.get(kind, name);
    if (existing) {
      await store.resources.setStatus(kind, name, {
        observedStatus: failed.has(key) ? 'failed' : 'pending', lastError: error, attempts: existing.attempts + attempts,
      });
    } else if (desired.byKey.has(key)) {
      await store.resources.upsert({
        kind: kind, name, uuid: null, observedStatus: failed.has(key) ? 'failed' : 'pending', lastError: error, attempts,
      });
    }
  }

  return { outcomes: plan.steps.map((s) => outcomes.get(s.id)!).filter(Boolean), failed, skipped };
}

export function stepLabel(step: PlanStep): string {
  return `${stepOpLabel(step.op.op)} ${step.key}`;
}

export type { JournalEntry };
