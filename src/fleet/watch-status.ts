/**
 * What `virtform watch DIR` with Host manifests serves on `--listen` (src/watch/http.ts): the same
 * endpoints and the same `/status` shape as the single-host watcher (`WatchStatus`), built from the
 * fleet loop's cycles (src/fleet/watch.ts) and, for `/status`, every Host asked at once as
 * `virtform status` asks them (`observeFleet`: rows with their host, a `HostUnreachable` row for
 * each resource of a host that cannot be reached, the per-host summary in `hosts`).
 *
 * `/readyz` is 503 while a standby (no writer lease) and before the first fleet run finished.
 * Metrics: runs by outcome and their duration, resources and conditions with a `host` label, and
 * per host `virtform_host_reachable` (set after every cycle, and by every `/status`).
 */
import type { DesiredState } from '../manifest/index.js';
import type { HostId } from '../model/kinds.js';
import { redactUri } from '../libvirt/uri.js';
import { readLease, type Lease, type StateStore } from '../state/index.js';
import {
  buildStatus, leaseStatus, observeFleet, persistConditions, revisionsFor, type FleetView, type StatusHost,
} from '../status/index.js';
import type { StatusSource } from '../watch/http.js';
import { WatchMetrics } from '../watch/metrics.js';
import type { WatchStatus } from '../watch/controller.js';
import { DEFAULT_HISTORY_RUNS, runRecord, type RunInfo } from '../watch/runner.js';
import { FeedHub, planKeys, type PlanRecord } from '../watch/feed.js';
import type { WatchFeedEvent } from '../watch/controller.js';
import type { Plan } from '../reconcile/plan.js';
import type { StepOutcome } from '../reconcile/apply.js';
import type { AnyDesired } from '../reconcile/core/resource.js';
import type { RunRecord } from '../state/index.js';
import type { FleetResult } from './run.js';
import { leaseView, standbyReason } from '../watch/lease-view.js';

/** How long /status reuses one fleet view (a scrape loop must not hammer the hosts). */
const FLEET_VIEW_TTL_MS = 2000;

export interface FleetWatchStatusOptions {
  dir: string;
  store: StateStore;
  /** Opens a host read-only for /status (closed after use). */
  open: Parameters<typeof observeFleet>[3];
  metrics?: WatchMetrics;
  /** Runs kept in the history (`--history-runs`, default 500; 0: none). */
  historyRuns?: number;
  /** Logs a failure to record a run. */
  onError?: (what: string, e: unknown) => void;
}

export class FleetWatchStatus implements StatusSource {
  readonly metrics: WatchMetrics;
  readonly #o: FleetWatchStatusOptions;
  #lease: Lease | undefined;
  #stopping = false;
  #state: DesiredState | undefined;
  #manifestErrors: string[] = [];
  #runs = 0;
  #inFlight = false;
  #started = 0;
  #last: RunInfo | undefined;
  #lastReconcile: RunInfo | undefined;
  #unreachable = new Map<HostId, string>();
  /** Consecutive fleet runs with a host unreachable (the connection's `attempts`). */
  #failedCycles = 0;
  #since = new Date().toISOString();
  #view: { at: number; view: Promise<FleetView> } | undefined;
  readonly #feed = new FeedHub<RunInfo, WatchStatus>();
  #desired: readonly AnyDesired[] | undefined;
  #plan: PlanRecord | undefined;
  #steps: RunRecord['steps'] = [];
  /** The dashboard builds its snapshot after a run by asking: this feed does not build a status by itself. */
  readonly statusAfterRun = false;

  constructor(o: FleetWatchStatusOptions) {
    this.#o = o;
    this.metrics = o.metrics ?? new WatchMetrics();
  }

  /** The writer lease this watcher holds (until then: a standby). */
  leading(lease: Lease): void {
    this.#lease = lease;
    this.metrics.leader.set(1);
    this.metrics.leaseEpoch.set(lease.epoch);
  }

  stopping(): void {
    this.#stopping = true;
    this.metrics.leader.set(0);
  }

  manifests(r: { ok: true; state: DesiredState } | { ok: false; errors: string[] }): void {
    if (r.ok) this.#state = r.state;
    this.#manifestErrors = r.ok ? [] : r.errors;
    this.metrics.manifestErrors.set(this.#manifestErrors.length);
  }

  subscribe(listener: (e: WatchFeedEvent) => void): () => void {
    return this.#feed.subscribe(listener);
  }

  get desiredResources(): readonly AnyDesired[] | undefined {
    return this.#desired;
  }

  get lastPlan(): PlanRecord | undefined {
    return this.#plan;
  }

  /** The engine's plan of the cycle (`onPlan`): its keys show Reconciling until the cycle ends. */
  planned(plan: Plan): void {
    this.#plan = { runId: null, time: new Date().toISOString(), plan };
    this.#feed.emit({ type: 'runStart', runId: null, keys: planKeys(plan) });
  }

  /** A step finished (the engine's `done` event): its timing goes into the run's history. */
  stepDone(s: StepOutcome): void {
    this.#steps.push({ kind: s.step.kind, name: s.step.name, host: s.step.host, op: s.step.op.op, ms: s.ms, outcome: s.status });
  }

  cycleStarted(): void {
    this.#steps = [];
    this.#inFlight = true;
    this.#started = Date.now();
    this.metrics.triggers.inc({ source: this.#runs === 0 ? 'initial' : 'resync' });
  }

  async cycleFinished(r: FleetResult): Promise<void> {
    const failures = r.run?.applied ? [...r.run.applied.failed].map(([resource, error]) => ({ resource, error: String(error) })) : [];
    const sum = r.run?.plan.summary;
    const run = this.#finish({
      outcome: r.run?.outcome ?? 'error', runId: r.run?.runId, revisionId: r.run?.revisionId, manifestDigest: this.#state?.digest,
      ...(r.run && sum ? { plan: { ...sum, steps: r.run.plan.steps.length, noop: r.run.plan.noop }, mutations: r.run.mutations } : {}),
      failures, blocked: [],
      ...(r.run ? {} : { error: `no host reachable: ${[...r.unreachable].map(([h, e]) => `${h}: ${e}`).join('; ')}` }),
    });
    if (r.run) this.#lastReconcile = run;
    this.#desired = r.desired.resources;
    if (r.run && this.#plan?.plan === r.run.plan) this.#plan = { ...this.#plan, runId: r.run.runId };
    await this.#record(run);
    if (this.#unreachable.size !== r.unreachable.size || [...r.unreachable.keys()].some((h) => !this.#unreachable.has(h))) this.#since = run.finishedAt;
    this.#unreachable = new Map(r.unreachable);
    this.#failedCycles = r.unreachable.size > 0 ? this.#failedCycles + 1 : 0;
    for (const h of this.#state?.hosts ?? []) this.metrics.hostReachable.set({ host: h.id }, r.unreachable.has(h.id) ? 0 : 1);
    this.metrics.connected.set(r.unreachable.size === 0 ? 1 : 0);
    this.metrics.setResources(await this.#o.store.resources.list());
    this.#view = undefined;
  }

  cycleFailed(e: unknown): void {
    const run = this.#finish({ outcome: 'error', failures: [], blocked: [], error: e instanceof Error ? e.message : String(e) });
    void this.#record(run);
  }

  /** Into the history (pruned to `historyRuns`), then the run's end for the dashboard. */
  async #record(run: RunInfo): Promise<void> {
    const keep = this.#o.historyRuns ?? DEFAULT_HISTORY_RUNS;
    if (keep > 0 && this.#leading) {
      const rec = runRecord(run, this.#steps);
      if (!run.runId) run.runId = rec.id;
      await this.#o.store.runs.record(rec, keep).catch((e: unknown) => this.#o.onError?.('recording the run in the history failed', e));
    }
    this.#feed.emit({ type: 'runEnd', run });
  }

  #finish(r: Omit<RunInfo, 'seq' | 'sources' | 'startedAt' | 'finishedAt' | 'durationMs'>): RunInfo {
    const now = Date.now();
    this.#runs += 1;
    this.#inFlight = false;
    const run: RunInfo = {
      seq: this.#runs, sources: [this.#runs === 1 ? 'initial' : 'resync'], startedAt: new Date(this.#started).toISOString(),
      finishedAt: new Date(now).toISOString(), durationMs: now - this.#started, ...r,
    };
    this.#last = run;
    this.metrics.runs.inc({ outcome: run.outcome });
    this.metrics.runDuration.observe(run.durationMs / 1000);
    return run;
  }

  get #leading(): boolean {
    return this.#lease?.held === true;
  }

  get ready(): boolean {
    return this.notReadyReason === undefined;
  }

  get notReadyReason(): string | undefined {
    if (this.#stopping) return 'stopping';
    const standby = standbyReason(this.#lease);
    if (standby !== undefined) return standby;
    if (!this.#lastReconcile) return 'the first fleet run has not finished';
    return undefined;
  }

  #targets(): StatusHost[] {
    return (this.#state?.hosts ?? []).map((h) => ({ id: h.id, uri: h.uri, capacity: h.capacity, reserved: h.reserved }));
  }

  #fleetView(records: Parameters<typeof observeFleet>[1]): Promise<FleetView> {
    const now = Date.now();
    if (!this.#view || now - this.#view.at > FLEET_VIEW_TTL_MS) {
      const view = observeFleet(this.#targets(), records, undefined, this.#o.open);
      this.#view = { at: now, view };
      // safe-catch: only forgets a failed cached view; the caller awaits the same promise and gets the error
      view.catch(() => {
        if (this.#view?.view === view) this.#view = undefined;
      });
    }
    return this.#view.view;
  }

  async status(): Promise<WatchStatus> {
    const store = this.#o.store;
    const records = await store.resources.list();
    const view = await this.#fleetView(records);
    const revisions = await revisionsFor(store, records);
    const suspension = await store.controls.suspension();
    const leader = leaseStatus(await readLease(store.leaseDeps()));
    const previousConditions = await store.conditions.list();
    const report = buildStatus({ records, revisions, suspension, previousConditions, hosts: view.views, hostErrors: view.errors });
    // safe-catch: conditions only record transition times; a busy DB must not fail /status (the next one stores them)
    if (view.views.size > 0 && this.#leading) await persistConditions(store, report.resources).catch(() => undefined);
    this.metrics.setConditions(report.resources);
    this.metrics.setHosts(view.hosts);
    const errors = [...view.errors].map(([h, e]) => `${h}: ${e}`);
    const last = this.#last;
    const status: WatchStatus = {
      ready: this.ready,
      stopping: this.#stopping,
      dir: this.#o.dir,
      connection: {
        state: view.errors.size === 0 && view.hosts.length > 0 ? 'connected' : 'disconnected', since: this.#since, attempts: this.#failedCycles,
        ...(errors.length > 0 ? { lastError: errors.join('; ') } : {}),
      },
      runs: { total: this.#runs, inFlight: this.#inFlight, pending: false, last, lastReconcile: this.#lastReconcile },
      requeue: { attempt: 0 },
      stalled: [],
      suspended: suspension ?? null,
      manifests: { valid: this.#manifestErrors.length === 0, digest: this.#state?.digest, resources: this.#state?.manifests.length, errors: this.#manifestErrors },
      git: null,
      lease: leaseView(this.#lease, leader),
      resources: report.resources,
      summary: report.summary,
      hostError: errors.length > 0 ? errors.join('; ') : null,
      hosts: view.hosts.map((h) => ({ ...h, uri: redactUri(h.uri) })),
    };
    this.#feed.emit({ type: 'status', status });
    return status;
  }
}
