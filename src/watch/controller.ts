/**
 * The continuous controller behind `virtform watch`: a thin composition of
 *
 *   sources ──► one coalescing queue ──► runner ──► reconcile()
 *
 * Sources (./sources/): the manifest folder (chokidar, debounced), libvirt lifecycle events of
 * owned domains, the periodic resync, and the host connection (first connect, reconnects). Each
 * only marks the world dirty in the queue (./queue.ts); the runner (./runner.ts) runs one full
 * reconcile at a time, requeues failed runs with backoff and marks what cannot succeed by
 * retrying as stalled. The controller runs only while it holds the state DB's writer lease
 * (src/state/lease.ts), renewed in the background: while another process holds it, and after
 * losing it, the controller is a standby that retries acquiring it every retry period. It builds
 * `/status` with the same function as `virtform status` (src/status/).
 */
import { resolve as resolvePath } from 'node:path';
import type { HostPort } from '../reconcile/ports.js';
import { sleep } from '../util/backoff.js';
import type { Desired } from '../reconcile/desired.js';
import { DEFAULT_LEASE_TIMING, readLease, type Lease, type LeaseTiming, type StateStore, type Suspension } from '../state/index.js';
import type { MaxDeletions } from '../reconcile/safety.js';
import type { Policy } from '../manifest/index.js';
import {
  buildStatus, leaseStatus, observeForStatus, observeHostFacts, persistConditions, revisionsFor, summarizeHost, unreachableHost,
  type HostFacts, type HostSummary, type HostView, type LeaseStatus, type Stall, type StatusRow, type StatusSummary,
} from '../status/index.js';
import { silentLogger, type Logger } from './logger.js';
import { ManifestState } from './manifests.js';
import { CallClock } from './call-clock.js';
import { DefinitionCache } from './definition-cache.js';
import { WatchMetrics } from './metrics.js';
import { hostOf, type HostId } from '../model/kinds.js';
import { CoalescingQueue, type TriggerSource } from './queue.js';
import { Runner, type RequeueInfo, type RunInfo, type RunnerOptions, type StalledResource } from './runner.js';
import {
  HostConnection, LifecycleEventSource, ManifestFolderSource, ResyncSource, SuspendSource, isIgnoredPath,
  type ConnectionInfo, type ConnectionState, type Source,
} from './sources/index.js';
import { errText } from './sources/types.js';
import type { GitRepositorySource } from './sources/git-repository.js';
import type { GitSourceStatus } from '../git/index.js';
import { isGuestKind } from '../reconcile/kinds/index.js';
import { leaseView, standbyReason, type LeaseView } from './lease-view.js';
import { FeedHub, type FeedEvent, type PlanRecord } from './feed.js';

/** What the controller tells its listeners (the dashboard). */
export type WatchFeedEvent = FeedEvent<RunInfo, WatchStatus>;
import type { AnyDesired } from '../reconcile/core/resource.js';
import { RequestSource } from './sources/requests.js';
import { RequestHandlers } from './requests.js';
import { planRequestHandler } from './plan-request.js';
import { restartRequestHandler } from './restart-request.js';
import { snapshotRevertRequestHandler } from './snapshot-request.js';

export type { TriggerSource } from './queue.js';
export type { RunInfo, RunOutcome, StalledResource, RequeueInfo } from './runner.js';
export type { ConnectionState } from './sources/index.js';
export { isIgnoredPath };

/** What the controller hands to its runner as given (see RunnerOptions). */
type RunOptions = Pick<RunnerOptions, 'concurrency' | 'retry' | 'gracefulStop' | 'shutdownTimeoutMs' | 'stopTimeoutMs' | 'maxDeletions' | 'requeue' | 'historyRuns'>;

export interface WatchOptions extends RunOptions {
  /** Manifest folder. */
  dir: string;
  /** Open state store; the controller takes the writer lease on it, the caller closes it. */
  store: StateStore;
  /** Opens a new host connection (called again after every disconnect). */
  connect: () => Promise<HostPort>;
  /** The URI `connect` opens (shown in the per-host summary of `/status`). */
  uri?: string;
  /** Decorates each new connection before the engine uses it (fault injection in tests). */
  wrapHost?: (host: HostPort) => HostPort;
  allowEmpty?: boolean;
  /** Quiet time after the last manifest file event before reconciling (default 500 ms). */
  debounceMs?: number;
  /** Upper bound on how long a continuous stream of file events can postpone a run (default max(5 s, 10 × debounce)). */
  maxDebounceMs?: number;
  /** Coalescing window for lifecycle events (default 100 ms). */
  eventDebounceMs?: number;
  /**
   * Periodic full read (default 300 000 ms; 0 disables it): a run that reads every manifest file
   * and every definition again. Between them, runs are incremental (see `incremental`), and drift
   * no libvirt event announces (networks, pools, volumes) is corrected at the latest by it.
   */
  resyncMs?: number;
  /**
   * Incremental runs (default true): a run started by a file change, a lifecycle event or a lifted
   * suspension reads again only the manifest files that changed and the definitions that may have
   * (DefinitionCache); false: every run reads everything.
   */
  incremental?: boolean;
  /** Reconnect backoff: first delay, cap and growth factor (defaults 500 ms, 30 s, 2). */
  reconnect?: { initialDelayMs?: number; maxDelayMs?: number; factor?: number };
  /** The writer lease's durations (default DEFAULT_LEASE_TIMING: 15 s, renew deadline 10 s, retry 2 s). */
  lease?: LeaseTiming;
  /** Watch the folder for changes (default true). */
  watchFiles?: boolean;
  /** More sources, started after the builtin ones. */
  sources?: Source[];
  /**
   * The manifests come from this git source instead of the folder (`watch --git`): it is one more
   * source feeding the queue, every run reads the applied checkout it prepares, the folder is not
   * watched, and `/status` shows its fetched/applied commits. `dir` is then only a label.
   */
  git?: GitRepositorySource;
  /** The policy manifests are checked against (`--policy`). */
  policy?: Policy;
  /** How often the suspend switch is polled (default 2000 ms; 0: only read before each run). */
  suspendPollMs?: number;
  /** Recorded in the lease row. */
  lockCommand?: string;
  /** How often the request queue is polled (default 1000 ms; 0: only before each run). */
  requestPollMs?: number;
  /** The request handlers (default: `plan`, src/watch/plan-request.ts); more can be added with `controller.requests.handle`. */
  requestHandlers?: RequestHandlers;
  logger?: Logger;
  metrics?: WatchMetrics;
}

export interface WatchStatus {
  ready: boolean;
  stopping: boolean;
  dir: string;
  connection: ConnectionInfo;
  runs: { total: number; inFlight: boolean; pending: boolean; last?: RunInfo; lastReconcile?: RunInfo };
  requeue: RequeueInfo;
  stalled: StalledResource[];
  /** `virtform suspend`: applies paused since, by (null when not suspended). */
  suspended: Suspension | null;
  manifests: { valid: boolean; digest?: string; resources?: number; errors: string[] };
  /** The git source (`watch --git`): fetched and applied commits, whether they differ and why; null for a folder. */
  git: GitSourceStatus | null;
  /**
   * The writer lease: this watcher's `role`, `leader` (held, with its epoch and holder id) or
   * `standby` (retrying; why, when it was lost), and `leader`: the lease row as the database has it
   * (who leads, whoever it is; null when never taken).
   */
  lease: LeaseView;
  /** The same rows as `virtform status --json` (desired from the last good manifests, observed live). */
  resources: StatusRow[];
  summary: StatusSummary;
  /** Set when the host could not be asked for the observed state. */
  hostError: string | null;
  /** Per host (`virtform status --json`'s `hosts`): connected or why not, libvirt version, capacity used, VMs. */
  hosts: HostSummary[];
}

/** The folder has no manifests and --allow-empty was not given. */
export class EmptyManifestsError extends Error {
  constructor(dir: string) {
    super(`no manifests found in ${dir}; refusing to continue, since that would delete everything virtform manages ` +
      `(pass --allow-empty to tear the whole environment down)`);
    this.name = 'EmptyManifestsError';
  }
}

/** How long /status reuses one host view (a scrape loop must not hammer libvirtd). */
const STATUS_VIEW_TTL_MS = 1000;
/** The host's capacity and its VMs' allocations (one definition read per domain) are read at most this often. */
const HOST_FACTS_TTL_MS = 10_000;

export class WatchController {
  readonly metrics: WatchMetrics;
  /** The request types this watcher serves (src/watch/requests.ts): `handle(type, fn)` adds one. */
  readonly requests: RequestHandlers;
  readonly #o: WatchOptions;
  readonly #log: Logger;
  readonly #queue: CoalescingQueue;
  readonly #manifests: ManifestState;
  readonly #connection: HostConnection;
  readonly #events: LifecycleEventSource;
  readonly #runner: Runner;
  readonly #sources: Source[];
  readonly #folder: ManifestFolderSource;
  readonly #definitions = new DefinitionCache();
  readonly #clock = new CallClock();
  /** Aborted on stop(): the run in flight finishes its current steps and starts no new ones. */
  readonly #abort = new AbortController();
  #lease: Lease | undefined;
  /** The background acquisition after a step-down (standby). */
  #standby: Promise<void> | undefined;
  #leaseCommand = '';
  #started = false;
  #stopping = false;
  #stopPromise: Promise<void> | undefined;
  #view: { at: number; view: Promise<HostView>; host: HostPort } | undefined;
  #facts: { at: number; facts: Promise<HostFacts>; host: HostPort } | undefined;
  #gitRecorded: RunInfo | undefined;
  readonly #feed = new FeedHub<RunInfo, WatchStatus>();

  constructor(opts: WatchOptions) {
    this.#o = { ...opts, dir: opts.git ? opts.git.label : resolvePath(opts.dir) };
    this.#log = opts.logger ?? silentLogger;
    this.metrics = opts.metrics ?? new WatchMetrics();
    this.requests = opts.requestHandlers ?? new RequestHandlers();
    if (!this.requests.get('plan')) this.requests.handle('plan', planRequestHandler({ ...(opts.policy ? { policy: opts.policy } : {}) }));
    // issue 24 (helper restart): `virtform restart` while this watcher holds the lease.
    if (!this.requests.get('restart')) this.requests.handle('restart', restartRequestHandler());
    // issue 24 (snaps): `virtform snapshot revert` while this watcher holds the lease.
    if (!this.requests.get('snapshot-revert')) this.requests.handle('snapshot-revert', snapshotRevertRequestHandler());
    const log = this.#log;
    this.#queue = new CoalescingQueue((source) => {
      this.metrics.triggers.inc({ source });
      log.debug('trigger', { source });
      this.#runner.kick();
    });
    this.#manifests = new ManifestState(this.#o.dir, { allowEmpty: opts.allowEmpty, policy: opts.policy, metrics: this.metrics, logger: log, provider: opts.git });
    this.#connection = new HostConnection({ connect: opts.connect, wrapHost: opts.wrapHost, reconnect: opts.reconnect, metrics: this.metrics, logger: log, clock: this.#clock });
    this.#events = new LifecycleEventSource(this.#connection, opts.eventDebounceMs ?? 100, log);
    // Every domain lifecycle event (of any domain, managed or not) forgets that domain's kept definition at once.
    this.#connection.onConnect((raw) => raw.subscribeDomainEvents((e) => this.#definitions.invalidate('domain', e.name)));
    opts.git?.attachMetrics(this.metrics);
    this.#folder = new ManifestFolderSource({ dir: this.#o.dir, debounceMs: opts.debounceMs, maxDebounceMs: opts.maxDebounceMs, logger: log });
    this.#runner = new Runner({
      queue: this.#queue, connection: this.#connection, manifests: this.#manifests, store: opts.store, metrics: this.metrics, logger: log,
      signal: this.#abort.signal, concurrency: opts.concurrency, retry: opts.retry, gracefulStop: opts.gracefulStop,
      shutdownTimeoutMs: opts.shutdownTimeoutMs, stopTimeoutMs: opts.stopTimeoutMs, requeue: opts.requeue, maxDeletions: opts.maxDeletions,
      historyRuns: opts.historyRuns, feed: this.#feed,
      afterRun: () => this.#afterRun(),
      definitions: this.#definitions, clock: this.#clock, incremental: opts.incremental ?? true,
      leader: () => this.#leading,
      guard: () => (this.#lease ? this.#lease.refusal() : 'this watcher does not hold the writer lease'),
      requests: { handlers: this.requests, claimedBy: () => (this.#leading && this.#lease ? `${this.#lease.holder}@${this.#lease.epoch}` : undefined) },
    });
    this.#sources = [
      ...(opts.watchFiles !== false && !opts.git ? [this.#folder] : []),
      new ResyncSource(opts.resyncMs ?? 300_000),
      new SuspendSource(() => opts.store.controls.suspension(), opts.suspendPollMs ?? 2000, log),
      new RequestSource(() => opts.store.requests.list({ status: ['queued'], limit: 1 }), opts.requestPollMs ?? 1000, log),
      this.#events,
      ...(opts.sources ?? []),
      ...(opts.git ? [opts.git] : []),
      this.#connection, // last: its first connect enqueues the initial run
    ];
  }

  get debounceMs(): number {
    return this.#folder.debounceMs;
  }

  /** Ready: holds the writer lease, connected to the host and at least one reconcile has completed. */
  get ready(): boolean {
    return this.notReadyReason === undefined;
  }

  /** Why not ready (/readyz), or undefined when ready. */
  get notReadyReason(): string | undefined {
    if (this.#stopping) return 'stopping';
    const standby = standbyReason(this.#lease);
    if (standby !== undefined) return standby;
    if (this.#connection.state !== 'connected') return `connection: ${this.#connection.state}`;
    if (!this.#runner.firstReconcileDone) return 'the first reconcile has not finished';
    return undefined;
  }

  /** Holds the writer lease (renewed within its deadline). */
  get #leading(): boolean {
    return this.#lease?.held === true;
  }

  get connectionState(): ConnectionState {
    return this.#connection.state;
  }

  /** Completed runs (of any outcome). */
  get runCount(): number {
    return this.#runner.runCount;
  }

  get lastRun(): RunInfo | undefined {
    return this.#runner.lastRun;
  }

  /** The stalled resources by key, typed (`/status` shows their text). */
  get stalls(): ReadonlyMap<string, Stall> {
    return this.#runner.stalls;
  }

  /** Largest number of runs ever in flight at once (1 by construction; exposed for tests). */
  get maxConcurrentRuns(): number {
    return this.#runner.maxConcurrentRuns;
  }

  /** Runs, plans and statuses as they happen (the dashboard subscribes; src/watch/feed.ts). */
  subscribe(listener: (e: WatchFeedEvent) => void): () => void {
    return this.#feed.subscribe(listener);
  }

  /** The desired resources of the last good manifests (the dashboard's labels and manifest positions). */
  get desiredResources(): readonly AnyDesired[] | undefined {
    return this.#manifests.lastGood?.resources;
  }

  /** The last run's plan. */
  get lastPlan(): PlanRecord | undefined {
    return this.#runner.lastPlan;
  }

  /** The desired state last loaded without errors. */
  get lastGoodDesired(): Desired | undefined {
    return this.#manifests.lastGood;
  }

  /**
   * Validate the folder, take the writer lease (a standby until then: while another process holds
   * it, retried every retry period until acquired or {@link stop}), start the sources (the
   * connection last: a host that is down is retried with backoff in the background; its first
   * connect enqueues the initial run). Throws EmptyManifestsError (folder empty, no --allow-empty),
   * or the abort reason when stopped as a standby.
   */
  async start(): Promise<void> {
    if (this.#started) throw new Error('watch controller already started');
    this.#started = true;
    this.#leaseCommand = this.#o.lockCommand ?? `virtform watch ${this.#o.dir}`;
    if (!this.#o.git) {
      const first = await this.#manifests.load();
      if (!first.ok && first.empty) throw new EmptyManifestsError(this.#o.dir);
    }
    await this.#takeLease();
    if (this.#o.git) {
      // The git cache belongs to the lease holder: restore and the first fetch only with the lease.
      try {
        await this.#o.git.initialize();
      } catch (e) {
        // safe-catch: releasing before rethrowing the start-up error, which is what is reported
        await this.#lease?.release().catch(() => undefined);
        throw e;
      }
      const first = await this.#manifests.load();
      if (!first.ok && first.empty) {
        // safe-catch: releasing before throwing EmptyManifestsError, which is what is reported
        await this.#lease?.release().catch(() => undefined);
        throw new EmptyManifestsError(this.#o.dir);
      }
    }
    const started: Source[] = [];
    try {
      await this.#afterRun();
      const enqueue = (source: TriggerSource): void => void this.#queue.add(source);
      for (const s of this.#sources) {
        if (s === this.#connection) continue;
        await s.start(enqueue);
        started.push(s);
      }
      this.#log.info('watch started', { dir: this.#o.dir, debounceMs: this.debounceMs, resyncMs: this.#o.resyncMs ?? 300_000 });
      await this.#connection.start(enqueue);
    } catch (e) {
      // safe-catch: stopping the other sources on the way out; each logs its own errors
      for (const s of started) await s.stop().catch(() => undefined);
      // safe-catch: releasing before rethrowing the start-up error, which is what is reported
      await this.#lease?.release().catch(() => undefined);
      throw e;
    }
  }

  /**
   * Acquire the writer lease, as a standby while another process holds it (retried every retry
   * period until acquired, or until stop() aborts), then renew it in the background. Losing it
   * (taken over, or not renewed within the renew deadline) steps this watcher down: the run in
   * flight makes no further libvirt change, no new run starts, and it is a standby again.
   */
  async #takeLease(): Promise<void> {
    const timing = this.#o.lease ?? DEFAULT_LEASE_TIMING;
    let lease: Lease | undefined;
    let lastError: string | undefined;
    while (!lease) {
      try {
        lease = await this.#o.store.acquireLease({ command: this.#leaseCommand }, timing, {
          timeoutMs: Number.POSITIVE_INFINITY,
          signal: this.#abort.signal,
          onHeld: (e) => this.#log.warn('standby: another process holds the writer lease; retrying', {
            holder: e.holder, holderPid: e.holderPid, holderHost: e.holderHost, holderCommand: e.holderCommand, epoch: e.epoch,
            expiresInMs: e.expiresInMs, retryMs: timing.retryMs,
          }),
        });
      } catch (e) {
        if (this.#abort.signal.aborted) throw e;
        // The state DB could not be asked (PostgreSQL restarting, the network): a standby keeps
        // trying, and says so once per distinct error (debug for the repeats).
        const error = errText(e);
        const level = error === lastError ? 'debug' : 'error';
        lastError = error;
        this.#log[level]('standby: asking the state DB for the writer lease failed; retrying', { error, retryMs: timing.retryMs });
        await sleep(timing.retryMs, this.#abort.signal);
      }
    }
    this.#lease = lease;
    // Requests a previous holder took and never finished (it died or lost the lease) are abandoned:
    // their steps are journaled, so the next run (or the command run again) finishes them.
    try {
      const abandoned = await this.#o.store.requests.abandon(`${lease.holder}@${lease.epoch}`, 'the lease holder that took it stopped or lost the lease before it finished');
      for (const r of abandoned) this.#log.warn('request abandoned by an earlier holder', { id: r.id, type: r.type, claimedBy: r.claimedBy });
    } catch (e) {
      this.#log.warn('abandoning stale requests failed', { error: errText(e) });
    }
    this.metrics.leader.set(1);
    this.metrics.leaseEpoch.set(lease.epoch);
    lease.keepAlive({
      onLost: (reason) => this.#stepDown(reason),
      onError: (e) => this.#log.warn('writer lease: renewal failed', { error: errText(e), renewDeadlineMs: timing.renewDeadlineMs }),
    });
    this.#log.info('writer lease acquired', {
      holder: lease.holder, epoch: lease.epoch, leaseMs: timing.leaseMs, renewDeadlineMs: timing.renewDeadlineMs, retryMs: timing.retryMs,
    });
  }

  #stepDown(reason: string): void {
    this.metrics.leader.set(0);
    if (this.#stopping || this.#standby) return;
    const lost = this.#lease;
    this.#standby = (async () => {
      // Deposed (another process holds it now) or only stepped down (not renewed in time)?
      // safe-catch: the state DB may be what failed; the step-down is logged either way
      const row = await readLease(this.#o.store.leaseDeps()).catch(() => undefined);
      if (lost && row && row.holder !== lost.holder && row.epoch > lost.epoch) {
        this.#log.error('deposed: another process took the writer lease over; this watcher applies nothing more and stands by', {
          reason, epoch: lost.epoch, leader: row.holder, leaderPid: row.pid, leaderHost: row.hostname, leaderEpoch: row.epoch,
        });
      } else {
        this.#log.error('stepped down: lost the writer lease; no further libvirt change, standing by to acquire it again', { reason, epoch: lost?.epoch });
      }
      if (this.#stopping) return;
      try {
        await this.#takeLease();
        this.#queue.add('lease'); // the world may have changed under another holder
      } catch (e) {
        // safe-catch: only an abort (stop) ends the standby loop
        if (!this.#abort.signal.aborted) this.#log.error('standby: stopped retrying the writer lease', { error: errText(e) });
      }
    })().finally(() => {
      this.#standby = undefined;
    });
  }

  /** Ask for a reconcile. Coalesces: any number of triggers during a run cause exactly one more run. */
  trigger(source: TriggerSource): void {
    if (this.#stopping) return;
    this.#queue.add(source);
  }

  /** Resolves when no run is in flight or pending (a requeue waiting for its backoff does not count). */
  async idle(): Promise<void> {
    await this.#runner.idle();
  }

  /**
   * Graceful stop: no new runs; the run in flight completes; sources, timers, event subscription
   * and connection are closed; the writer lease is released. Idempotent.
   */
  stop(): Promise<void> {
    this.#stopPromise ??= this.#doStop();
    return this.#stopPromise;
  }

  async #doStop(): Promise<void> {
    this.#stopping = true;
    this.#queue.shutDown();
    this.#abort.abort();
    this.#log.info('stopping', { runInFlight: this.#runner.inFlight });
    // safe-catch: stopping the other sources on the way out; each logs its own errors
    for (const s of this.#sources) if (s !== this.#connection) await s.stop().catch(() => undefined);
    await this.#runner.idle();
    await this.#connection.stop();
    // safe-catch: the standby loop ends on the abort; its errors were logged
    await this.#standby?.catch(() => undefined);
    await this.#lease?.release().catch((e: unknown) => this.#log.error('releasing the writer lease failed', { error: errText(e) }));
    this.metrics.up.set(0);
    this.metrics.leader.set(0);
    this.metrics.backoff.set(0);
    this.#log.info('stopped', { runs: this.runCount });
  }

  /** Synchronous last resort for a second signal: release the lease (SQLite; on PostgreSQL it expires). */
  releaseLeaseSync(): void {
    this.#lease?.releaseSync();
  }

  async status(): Promise<WatchStatus> {
    const store = this.#o.store;
    // A state DB that cannot be read fails the status (the HTTP endpoint answers 500), rather
    // than reporting no resources.
    const records = await store.resources.list();
    const revisions = await revisionsFor(store, records);
    const lastGood = this.#manifests.lastGood;
    let host: HostView | undefined;
    let hostError: string | null = null;
    const raw = this.#connection.raw;
    if (raw && !this.#stopping) {
      try {
        host = await this.#hostView(raw, records);
      } catch (e) {
        hostError = errText(e);
      }
    } else {
      hostError = `not connected (${this.#connection.state})`;
    }
    const stalled = this.#runner.stalls;
    const suspension = await store.controls.suspension();
    const leader = leaseStatus(await readLease(store.leaseDeps()));
    const previousConditions = await store.conditions.list();
    const report = buildStatus({
      records, declared: lastGood?.resources, host, revisions, stalled, drift: this.#runner.drift, pending: this.#runner.pending, suspension, previousConditions,
    });
    if (host && this.#leading) await persistConditions(store, report.resources).catch((e: unknown) => this.#log.warn('storing conditions failed', { error: errText(e) }));
    this.metrics.setConditions(report.resources);
    const target = { id: this.#events.host, uri: this.#o.uri ?? '' };
    let summary: HostSummary;
    try {
      if (!host || !raw) throw new Error(hostError ?? 'not connected');
      const managed = new Set(records.filter((r) => isGuestKind(r.kind) && hostOf(r as { host?: HostId }) === target.id).map((r) => r.name));
      summary = summarizeHost(target, await this.#hostFacts(raw, host), managed);
    } catch (e) {
      summary = unreachableHost(target, errText(e));
    }
    this.metrics.setHosts([summary]);
    const status: WatchStatus = {
      ready: this.ready,
      stopping: this.#stopping,
      dir: this.#o.dir,
      connection: this.#connection.info,
      runs: {
        total: this.runCount, inFlight: this.#runner.inFlight, pending: this.#queue.dirty,
        last: this.#runner.lastRun, lastReconcile: this.#runner.lastReconcile,
      },
      requeue: this.#runner.requeue,
      stalled: this.#runner.stalled,
      suspended: suspension ?? null,
      manifests: { valid: this.#manifests.valid, digest: lastGood?.digest, resources: lastGood?.resources.length, errors: this.#manifests.errors },
      git: this.#o.git?.status() ?? null,
      lease: leaseView(this.#lease, leader),
      resources: report.resources,
      summary: report.summary,
      hostError,
      hosts: [summary],
    };
    this.#feed.emit({ type: 'status', status });
    return status;
  }

  #hostFacts(raw: HostPort, view: HostView): Promise<HostFacts> {
    const now = Date.now();
    if (!this.#facts || this.#facts.host !== raw || now - this.#facts.at > HOST_FACTS_TTL_MS) {
      const facts = observeHostFacts(raw, view.snapshot);
      this.#facts = { at: now, facts, host: raw };
      // safe-catch: only forgets failed facts; the caller awaits the same promise and gets the error
      facts.catch(() => {
        if (this.#facts?.facts === facts) this.#facts = undefined;
      });
    }
    return this.#facts.facts;
  }

  #hostView(raw: HostPort, records: Parameters<typeof observeForStatus>[1]): Promise<HostView> {
    const now = Date.now();
    if (!this.#view || this.#view.host !== raw || now - this.#view.at > STATUS_VIEW_TTL_MS) {
      const view = observeForStatus(raw, records, this.#manifests.lastGood?.resources);
      this.#view = { at: now, view, host: raw };
      // safe-catch: only forgets a failed cached view; the caller awaits the same promise and gets the error
      view.catch(() => {
        if (this.#view?.view === view) this.#view = undefined;
      });
    }
    return this.#view.view;
  }

  /** After every run (and at start): owned domains for the event filter, the resource gauge. */
  async #afterRun(): Promise<void> {
    const last = this.#runner.lastRun;
    if (this.#o.git && last && last !== this.#gitRecorded) {
      this.#gitRecorded = last;
      await this.#o.git.afterRun(last).catch((e: unknown) => this.#log.warn('git: recording the applied commit failed', { error: errText(e) }));
    }
    const records = await this.#o.store.resources.list();
    const owned = new Set<string>();
    const onEventHost = (r: object): boolean => hostOf(r as { host?: HostId }) === this.#events.host;
    for (const r of records) if (isGuestKind(r.kind) && onEventHost(r)) owned.add(r.name);
    for (const r of this.#manifests.lastGood?.resources ?? []) if (isGuestKind(r.kind) && onEventHost(r)) owned.add(r.name);
    this.#events.setOwned(owned);
    this.metrics.setResources(records);
    this.#view = undefined;
    // Conditions after every run: stored (transition times) and exported (virtform_resource_condition).
    // A run that changed nothing saw the host as it is: its observation is reused (no extra calls).
    const raw = this.#connection.raw;
    if (raw && this.#runner.runCount > 0) {
      const last = this.#runner.lastObserved;
      if (last && last.mutations === 0) {
        const volumeKeys = new Set<string>();
        const volumeNames = new Set<string>();
        for (const [pool, vols] of last.observed.volumes) {
          for (const v of vols.values()) {
            volumeKeys.add(v.key);
            volumeNames.add(`${pool}/${v.name}`);
          }
        }
        this.#view = { at: Date.now(), view: Promise.resolve({ snapshot: last.observed.snapshot, volumeKeys, volumeNames }), host: raw };
      }
      // safe-catch: refreshes the status metrics after a run; a failure shows on the next /status (HTTP 500)
      await this.status().catch(() => undefined);
    }
  }
}
