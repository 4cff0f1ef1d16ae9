/**
 * The continuous controller behind `virtform watch`.
 *
 * Level-triggered: every trigger (manifest change, owned-domain lifecycle event, periodic resync,
 * reconnect) only marks the world dirty; a single loop runs one full reconcile at a time and, if
 * anything was triggered while it ran, exactly one more. Manifests are (re)loaded at the start of
 * every run; an invalid or empty folder keeps the last good desired state and changes nothing.
 *
 * The controller owns the writer lock for its whole life and one host connection at a time,
 * obtained from an injected `connect` factory (the real libvirt adapter in the CLI, FakeHost in
 * unit tests); a lost connection is re-established with capped exponential backoff, events are
 * re-registered and a resync follows.
 */
import { existsSync } from 'node:fs';
import { basename, resolve as resolvePath, sep } from 'node:path';
import { watch as chokidarWatch, type FSWatcher } from 'chokidar';
import { loadManifests, formatManifestError, type ManifestError } from '../manifest/index.js';
import { buildDesired, type Desired } from '../reconcile/desired.js';
import { reconcile, type ReconcileResult } from '../reconcile/engine.js';
import type { RetryPolicy } from '../reconcile/apply.js';
import type { DomainLifecycleEvent, HostCallInfo, HostPort } from '../reconcile/ports.js';
import type { StateStore, WriterLock } from '../state/index.js';
import { silentLogger, type Logger } from './logger.js';
import { WatchMetrics } from './metrics.js';

export type TriggerSource = 'file' | 'event' | 'resync' | 'reconnect' | 'initial';
export type ConnectionState = 'connecting' | 'connected' | 'disconnected' | 'closed';
export type RunOutcome = ReconcileResult['outcome'] | 'invalid' | 'error';

export interface WatchOptions {
  /** Manifest folder. */
  dir: string;
  /** Open state store; the controller takes the writer lock on it, the caller closes it. */
  store: StateStore;
  /** Opens a new host connection (called again after every disconnect). */
  connect: () => Promise<HostPort>;
  /** Decorates each new connection before the engine uses it (fault injection in tests). */
  wrapHost?: (host: HostPort) => HostPort;
  allowEmpty?: boolean;
  /** Quiet time after the last manifest file event before reconciling (default 500 ms). */
  debounceMs?: number;
  /** Upper bound on how long a continuous stream of file events can postpone a run (default max(5 s, 10 × debounce)). */
  maxDebounceMs?: number;
  /** Coalescing window for lifecycle events (default 100 ms). */
  eventDebounceMs?: number;
  /** Periodic full reconcile (default 300 000 ms); 0 disables it. */
  resyncMs?: number;
  /** Reconnect backoff: first delay, cap and growth factor (defaults 500 ms, 30 s, 2). */
  reconnect?: { initialDelayMs?: number; maxDelayMs?: number; factor?: number };
  /** Lock heartbeat interval (default 30 s). */
  heartbeatMs?: number;
  /** Watch the folder for changes (default true). */
  watchFiles?: boolean;
  concurrency?: number;
  retry?: RetryPolicy;
  gracefulStop?: boolean;
  shutdownTimeoutMs?: number;
  /** Recorded in the lock row. */
  lockCommand?: string;
  logger?: Logger;
  metrics?: WatchMetrics;
}

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
  plan?: { create: number; change: number; replace: number; delete: number; conflict: number; steps: number; noop: boolean };
  mutations?: number;
  failures: { resource: string; error: string }[];
  blocked: { resource: string; reason: string }[];
  error?: string;
}

export interface WatchStatus {
  ready: boolean;
  stopping: boolean;
  dir: string;
  connection: { state: ConnectionState; since: string; attempts: number; lastError?: string; nextRetryMs?: number };
  runs: { total: number; inFlight: boolean; pending: boolean; last?: RunInfo; lastReconcile?: RunInfo };
  manifests: { valid: boolean; digest?: string; resources?: number; errors: string[] };
  resources: {
    kind: string; name: string; desiredState: string | null; observedStatus: string | null;
    lastError: string | null; generation: number; updatedAt: string;
  }[];
}

/** The folder has no manifests and --allow-empty was not given. */
export class EmptyManifestsError extends Error {
  constructor(dir: string) {
    super(`no manifests found in ${dir}; refusing to continue, since that would delete everything virtform manages ` +
      `(pass --allow-empty to tear the whole environment down)`);
    this.name = 'EmptyManifestsError';
  }
}

const EDITOR_TEMP = [/\.sw[a-p]$/i, /\.swx$/i, /~$/, /^\.#/, /^4913$/];

/** Paths the file watcher ignores: `.git/`, editor swap/backup/lock files and vim's `4913` probe. */
export function isIgnoredPath(path: string): boolean {
  if (path.split(/[\\/]/).includes('.git')) return true;
  const base = basename(path);
  return EDITOR_TEMP.some((re) => re.test(base));
}

function isManifestFile(path: string): boolean {
  return /\.ya?ml$/i.test(path);
}

function errText(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

export class WatchController {
  readonly metrics: WatchMetrics;
  readonly #o: WatchOptions;
  readonly #log: Logger;

  #lock: WriterLock | undefined;
  #host: HostPort | undefined;
  #rawHost: HostPort | undefined;
  #unsubscribe: (() => Promise<void>) | undefined;
  #conn: WatchStatus['connection'] = { state: 'connecting', since: new Date().toISOString(), attempts: 0 };
  #everConnected = false;

  #lastGood: Desired | undefined;
  #manifestErrors: ManifestError[] = [];
  #manifestProblem: string | undefined;
  #owned = new Set<string>();

  #dirty = false;
  #pendingSources = new Set<TriggerSource>();
  #loop: Promise<void> | undefined;
  #inFlight = false;
  #runSeq = 0;
  #firstReconcileDone = false;
  #lastRun: RunInfo | undefined;
  #lastReconcile: RunInfo | undefined;
  /** Largest number of runs ever in flight at once (1 by construction; exposed for tests). */
  maxConcurrentRuns = 0;
  #active = 0;

  #watcher: FSWatcher | undefined;
  #rewatching = false;
  #fileTimer: NodeJS.Timeout | undefined;
  #burstStart: number | undefined;
  #eventTimer: NodeJS.Timeout | undefined;
  #resyncTimer: NodeJS.Timeout | undefined;
  #heartbeatTimer: NodeJS.Timeout | undefined;
  #sleep: { timer: NodeJS.Timeout; resolve: () => void } | undefined;
  #connecting: Promise<void> | undefined;

  #started = false;
  #stopping = false;
  /** Aborted on stop(): the run in flight finishes its current steps and starts no new ones. */
  readonly #abort = new AbortController();
  #stopPromise: Promise<void> | undefined;

  constructor(opts: WatchOptions) {
    this.#o = { ...opts, dir: resolvePath(opts.dir) };
    this.#log = opts.logger ?? silentLogger;
    this.metrics = opts.metrics ?? new WatchMetrics();
  }

  get debounceMs(): number {
    return this.#o.debounceMs ?? 500;
  }

  /** Ready: connected to the host and at least one reconcile has completed. */
  get ready(): boolean {
    return this.#conn.state === 'connected' && this.#firstReconcileDone && !this.#stopping;
  }

  get connectionState(): ConnectionState {
    return this.#conn.state;
  }

  /** Completed runs (of any outcome). */
  get runCount(): number {
    return this.#runSeq - (this.#inFlight ? 1 : 0);
  }

  get lastRun(): RunInfo | undefined {
    return this.#lastRun;
  }

  /** The desired state last loaded without errors. */
  get lastGoodDesired(): Desired | undefined {
    return this.#lastGood;
  }

  /**
   * Validate the folder, take the writer lock, start watching files and the resync timer, and
   * start connecting (in the background: a host that is down is retried with backoff; the first
   * successful connection triggers the initial reconcile).
   * Throws EmptyManifestsError (folder empty, no --allow-empty) or LockHeldError.
   */
  async start(): Promise<void> {
    if (this.#started) throw new Error('watch controller already started');
    this.#started = true;
    const first = await this.#load();
    if (!first.ok && first.empty) throw new EmptyManifestsError(this.#o.dir);
    this.#lock = await this.#o.store.acquireWriterLock({ command: this.#o.lockCommand ?? `virtform watch ${this.#o.dir}` });
    try {
      await this.#refreshOwned();
      await this.#refreshResourceGauge();
      if (this.#o.watchFiles !== false) await this.#startFileWatcher();
      const heartbeat = this.#o.heartbeatMs ?? 30_000;
      if (heartbeat > 0) {
        this.#heartbeatTimer = setInterval(() => {
          this.#lock?.heartbeat().catch((e: unknown) => this.#log.warn('lock heartbeat failed', { error: errText(e) }));
        }, heartbeat);
      }
      const resync = this.#o.resyncMs ?? 300_000;
      if (resync > 0) this.#resyncTimer = setInterval(() => this.trigger('resync'), resync);
    } catch (e) {
      await this.#watcher?.close().catch(() => undefined);
      clearInterval(this.#heartbeatTimer);
      await this.#lock.release().catch(() => undefined);
      throw e;
    }
    this.#log.info('watch started', { dir: this.#o.dir, debounceMs: this.debounceMs, resyncMs: resync(this.#o) });
    this.#connecting = this.#connectLoop();
  }

  /** Ask for a reconcile. Coalesces: any number of triggers during a run cause exactly one more run. */
  trigger(source: TriggerSource): void {
    if (this.#stopping) return;
    this.metrics.triggers.inc({ source });
    this.#log.debug('trigger', { source });
    this.#pendingSources.add(source);
    this.#dirty = true;
    if (!this.#loop) this.#loop = this.#runLoop();
  }

  /** Resolves when no run is in flight or pending (for tests and the benchmark). */
  async idle(): Promise<void> {
    while (this.#loop) await this.#loop;
  }

  /**
   * Graceful stop: no new runs; the run in flight completes; file watcher, timers, event
   * subscription and connection are closed; the writer lock is released. Idempotent.
   */
  stop(): Promise<void> {
    this.#stopPromise ??= this.#doStop();
    return this.#stopPromise;
  }

  async #doStop(): Promise<void> {
    this.#stopping = true;
    this.#abort.abort();
    this.#log.info('stopping', { runInFlight: this.#inFlight });
    clearTimeout(this.#fileTimer);
    clearTimeout(this.#eventTimer);
    clearInterval(this.#resyncTimer);
    clearInterval(this.#heartbeatTimer);
    if (this.#sleep) {
      clearTimeout(this.#sleep.timer);
      this.#sleep.resolve();
    }
    await this.#watcher?.close().catch(() => undefined);
    await this.#loop;
    await this.#connecting?.catch(() => undefined);
    await this.#unsubscribe?.().catch(() => undefined);
    this.#unsubscribe = undefined;
    const raw = this.#rawHost;
    this.#host = this.#rawHost = undefined;
    raw?.setCallObserver(undefined);
    await raw?.close().catch(() => undefined);
    this.#setConn('closed');
    await this.#lock?.release().catch((e: unknown) => this.#log.error('releasing the writer lock failed', { error: errText(e) }));
    this.metrics.up.set(0);
    this.#log.info('stopped', { runs: this.runCount });
  }

  /** Synchronous last resort for a second signal: drop the lock row. */
  releaseLockSync(): void {
    this.#lock?.releaseSync();
  }

  async status(): Promise<WatchStatus> {
    const records = await this.#o.store.resources.list().catch(() => []);
    return {
      ready: this.ready,
      stopping: this.#stopping,
      dir: this.#o.dir,
      connection: { ...this.#conn },
      runs: { total: this.runCount, inFlight: this.#inFlight, pending: this.#dirty, last: this.#lastRun, lastReconcile: this.#lastReconcile },
      manifests: {
        valid: this.#manifestErrors.length === 0 && this.#manifestProblem === undefined,
        digest: this.#lastGood?.digest,
        resources: this.#lastGood?.resources.length,
        errors: [...this.#manifestErrors.map(formatManifestError), ...(this.#manifestProblem ? [this.#manifestProblem] : [])],
      },
      resources: records.map((r) => ({
        kind: r.kind, name: r.name, desiredState: r.desiredState, observedStatus: r.observedStatus,
        lastError: r.lastError, generation: r.generation, updatedAt: r.updatedAt,
      })),
    };
  }

  // ------------------------------------------------------------------------------------------
  // Run loop
  // ------------------------------------------------------------------------------------------

  async #runLoop(): Promise<void> {
    try {
      await new Promise<void>((r) => setImmediate(r)); // let a synchronous burst of triggers coalesce
      while (this.#dirty && !this.#stopping) {
        this.#dirty = false;
        const sources = [...this.#pendingSources];
        this.#pendingSources.clear();
        this.#active += 1;
        this.maxConcurrentRuns = Math.max(this.maxConcurrentRuns, this.#active);
        try {
          await this.#runOnce(sources);
        } finally {
          this.#active -= 1;
        }
      }
    } finally {
      // Cleared synchronously after the last check of #dirty: a trigger after this starts a new loop.
      this.#loop = undefined;
    }
  }

  async #runOnce(sources: TriggerSource[]): Promise<void> {
    const host = this.#host;
    if (!host || this.#conn.state !== 'connected') {
      this.#log.debug('not connected; run deferred until reconnect', { sources });
      return;
    }
    this.#inFlight = true;
    const seq = ++this.#runSeq;
    const started = Date.now();
    const base = { seq, sources, startedAt: new Date(started).toISOString() };
    const finish = (info: Omit<RunInfo, keyof typeof base | 'finishedAt' | 'durationMs'>): RunInfo => {
      const durationMs = Date.now() - started;
      const run: RunInfo = { ...base, finishedAt: new Date().toISOString(), durationMs, ...info };
      this.#lastRun = run;
      this.metrics.runs.inc({ outcome: run.outcome });
      return run;
    };
    try {
      const loaded = await this.#load();
      if (!loaded.ok) {
        finish({ outcome: 'invalid', failures: [], blocked: [], error: 'manifests invalid; last good state kept, nothing changed' });
        this.#log.warn('manifests invalid: nothing changed; keeping the last good desired state', {
          errors: this.#manifestErrors.length + (this.#manifestProblem ? 1 : 0), sources, lastGoodDigest: this.#lastGood?.digest,
        });
        return;
      }
      const desired = loaded.desired;
      this.#log.info('reconcile started', { seq, sources, digest: desired.digest, resources: desired.resources.length });
      const result = await reconcile({
        host,
        store: this.#o.store,
        desired,
        concurrency: this.#o.concurrency,
        retry: this.#o.retry,
        gracefulStop: this.#o.gracefulStop,
        allowDataLoss: false, // never destroys data unattended: such changes are held (result.held)
        shutdownTimeoutMs: this.#o.shutdownTimeoutMs,
        signal: this.#abort.signal,
        onEvent: (e) => {
          if (e.type === 'retry') {
            this.#log.warn('step retry', { resource: e.step.key, op: e.step.op.op, attempt: e.attempt, delayMs: e.delayMs, error: e.error });
          } else if (e.type === 'done') {
            const o = e.outcome;
            this.metrics.steps.inc({ op: o.step.op.op, outcome: o.status });
            if (o.status === 'succeeded' && o.step.change.drift) this.metrics.driftCorrections.inc();
            const fields = { resource: o.step.key, op: o.step.op.op, status: o.status, attempts: o.attempts, ms: o.ms, reason: o.step.change.reason, error: o.error };
            if (o.status === 'succeeded') this.#log.info('step done', fields);
            else this.#log.error('step not done', fields);
          }
        },
      });
      this.#firstReconcileDone = true;
      this.metrics.runDuration.observe(result.durationMs / 1000);
      const s = result.plan.summary;
      const run = finish({
        outcome: result.outcome,
        runId: result.runId,
        revisionId: result.revisionId,
        manifestDigest: desired.digest,
        plan: { ...s, steps: result.plan.steps.length, noop: result.plan.noop },
        mutations: result.mutations,
        failures: [...(result.applied?.failed ?? new Map<string, string>())].map(([resource, error]) => ({ resource, error })),
        blocked: [...result.plan.blocked].map(([resource, reason]) => ({ resource, reason })),
      });
      this.#lastReconcile = run;
      const fields = { seq, sources, outcome: run.outcome, durationMs: run.durationMs, plan: run.plan, mutations: run.mutations, failures: run.failures.length, blocked: run.blocked.length };
      if (run.outcome === 'failed') this.#log.error('reconcile finished with failures', { ...fields, failed: run.failures.slice(0, 10) });
      else this.#log.info('reconcile finished', fields);
      if (result.held.size > 0) this.#log.warn('changes held: they would destroy data; watch never consents (run reconcile --allow-data-loss)', { held: [...result.held].slice(0, 10).map(([resource, reason]) => ({ resource, reason })) });
    } catch (e) {
      this.metrics.runDuration.observe((Date.now() - started) / 1000);
      finish({ outcome: 'error', failures: [], blocked: [], error: errText(e) });
      this.#log.error('reconcile aborted', { seq, sources, error: errText(e) });
    } finally {
      this.#inFlight = false;
      await this.#refreshOwned().catch(() => undefined);
      await this.#refreshResourceGauge().catch(() => undefined);
    }
  }

  /** Load the folder; on success it becomes the last good desired state. */
  async #load(): Promise<{ ok: true; desired: Desired } | { ok: false; empty?: boolean }> {
    let result: Awaited<ReturnType<typeof loadManifests>>;
    try {
      result = await loadManifests(this.#o.dir);
    } catch (e) {
      this.#manifestErrors = [];
      this.#manifestProblem = `cannot read ${this.#o.dir}: ${errText(e)}`;
      this.metrics.manifestErrors.set(1);
      this.#log.error('manifest error', { error: this.#manifestProblem });
      return { ok: false };
    }
    if (!result.ok) {
      this.#manifestErrors = result.errors;
      this.#manifestProblem = undefined;
      this.metrics.manifestErrors.set(result.errors.length);
      for (const e of result.errors) {
        this.#log.error('manifest error', {
          file: e.file, line: e.line, col: e.col, kind: e.kind, name: e.name, field: e.field, error: e.message, text: formatManifestError(e),
        });
      }
      return { ok: false };
    }
    const desired = buildDesired(result.desired);
    if (desired.empty && !this.#o.allowEmpty) {
      this.#manifestErrors = [];
      this.#manifestProblem = `no manifests found in ${this.#o.dir}; refusing to delete everything virtform manages (no --allow-empty)`;
      this.metrics.manifestErrors.set(1);
      this.#log.error('manifest error', { error: this.#manifestProblem });
      return { ok: false, empty: true };
    }
    this.#manifestErrors = [];
    this.#manifestProblem = undefined;
    this.metrics.manifestErrors.set(0);
    this.#lastGood = desired;
    return { ok: true, desired };
  }

  /** Domains virtform owns: recorded in the state DB or declared in the last good manifests. */
  async #refreshOwned(): Promise<void> {
    const owned = new Set<string>();
    for (const r of await this.#o.store.resources.list('VirtualMachine')) owned.add(r.name);
    for (const r of this.#lastGood?.resources ?? []) if (r.kind === 'VirtualMachine') owned.add(r.name);
    this.#owned = owned;
  }

  async #refreshResourceGauge(): Promise<void> {
    const counts = new Map<string, { kind: string; state: string; n: number }>();
    for (const r of await this.#o.store.resources.list()) {
      const state = r.observedStatus ?? 'unknown';
      const k = `${r.kind}\u0000${state}`;
      const c = counts.get(k) ?? { kind: r.kind, state, n: 0 };
      c.n += 1;
      counts.set(k, c);
    }
    this.metrics.resources.replace([...counts.values()].map((c) => ({ labels: { kind: c.kind, state: c.state }, value: c.n })));
  }

  // ------------------------------------------------------------------------------------------
  // Files
  // ------------------------------------------------------------------------------------------

  async #startFileWatcher(): Promise<void> {
    const watcher = chokidarWatch(this.#o.dir, {
      ignoreInitial: true,
      persistent: true,
      ignored: (path: string) => path !== this.#o.dir && isIgnoredPath(path.startsWith(this.#o.dir) ? path.slice(this.#o.dir.length) || sep : path),
    });
    this.#watcher = watcher;
    watcher.on('all', (event, path) => this.#onFileEvent(event, path));
    watcher.on('error', (e) => this.#log.warn('file watcher error', { error: errText(e) }));
    await new Promise<void>((resolve) => watcher.once('ready', () => resolve()));
  }

  /** Re-create the file watcher once the folder exists again, then reload. */
  async #rewatch(): Promise<void> {
    if (this.#rewatching) return;
    this.#rewatching = true;
    try {
      const old = this.#watcher;
      this.#watcher = undefined;
      await old?.close().catch(() => undefined);
      while (!this.#stopping) {
        await new Promise((r) => setTimeout(r, Math.max(100, this.debounceMs)));
        if (this.#stopping) return;
        if (existsSync(this.#o.dir)) {
          await this.#startFileWatcher();
          if (this.#stopping) {
            const w = this.#watcher as FSWatcher | undefined;
            await w?.close().catch(() => undefined);
            return;
          }
          this.#log.info('manifest folder is back; watching it again', { dir: this.#o.dir });
          this.trigger('file');
          return;
        }
      }
    } catch (e) {
      this.#log.error('could not watch the manifest folder again; the periodic resync still reloads it', { error: errText(e) });
    } finally {
      this.#rewatching = false;
    }
  }

  #onFileEvent(event: string, path: string): void {
    if (this.#stopping) return;
    if (event === 'unlinkDir' && path === this.#o.dir) {
      // The folder itself was removed (e.g. replaced by a deploy tool): the watch on it is gone.
      this.#log.warn('manifest folder removed; watching for it to come back', { dir: this.#o.dir });
      void this.#rewatch();
    }
    const isDirEvent = event === 'addDir' || event === 'unlinkDir';
    if (!isDirEvent && !isManifestFile(path)) return;
    this.#log.debug('manifest change', { event, path });
    const now = Date.now();
    this.#burstStart ??= now;
    const maxWait = this.#o.maxDebounceMs ?? Math.max(5_000, this.debounceMs * 10);
    const wait = Math.max(0, Math.min(this.debounceMs, this.#burstStart + maxWait - now));
    clearTimeout(this.#fileTimer);
    this.#fileTimer = setTimeout(() => {
      this.#burstStart = undefined;
      this.trigger('file');
    }, wait);
  }

  // ------------------------------------------------------------------------------------------
  // Connection and events
  // ------------------------------------------------------------------------------------------

  #setConn(state: ConnectionState, extra: Partial<WatchStatus['connection']> = {}): void {
    if (state !== this.#conn.state) this.#conn = { state, since: new Date().toISOString(), attempts: this.#conn.attempts };
    Object.assign(this.#conn, extra);
    this.metrics.connected.set(state === 'connected' ? 1 : 0);
  }

  #sleepFor(ms: number): Promise<void> {
    return new Promise<void>((resolve) => {
      const timer = setTimeout(() => {
        this.#sleep = undefined;
        resolve();
      }, ms);
      this.#sleep = { timer, resolve };
    });
  }

  async #connectLoop(): Promise<void> {
    const initial = this.#o.reconnect?.initialDelayMs ?? 500;
    const max = this.#o.reconnect?.maxDelayMs ?? 30_000;
    const factor = this.#o.reconnect?.factor ?? 2;
    let delay = initial;
    let attempt = 0;
    this.#setConn(this.#everConnected ? 'disconnected' : 'connecting', { attempts: 0 });
    while (!this.#stopping) {
      attempt += 1;
      this.#conn.attempts = attempt;
      this.metrics.reconnects.inc();
      let raw: HostPort | undefined;
      try {
        raw = await this.#o.connect();
        if (this.#stopping) {
          await raw.close().catch(() => undefined);
          return;
        }
        const conn = raw;
        raw.setCallObserver((info) => this.#observeCall(info));
        raw.onDisconnect((err) => this.#onDisconnect(conn, err));
        this.#unsubscribe = await raw.subscribeDomainEvents((e) => this.#onDomainEvent(e));
        this.#rawHost = raw;
        this.#host = this.#o.wrapHost ? this.#o.wrapHost(raw) : raw;
        this.#setConn('connected', { lastError: undefined, nextRetryMs: undefined });
        const source: TriggerSource = this.#everConnected ? 'reconnect' : 'initial';
        this.#log.info(this.#everConnected ? 'reconnected' : 'connected', { attempts: attempt });
        this.#everConnected = true;
        this.trigger(source);
        return;
      } catch (e) {
        if (raw) await raw.close().catch(() => undefined);
        if (this.#stopping) return;
        this.#conn.lastError = errText(e);
        this.#conn.nextRetryMs = delay;
        this.#log.warn('connection failed', { attempt, error: errText(e), retryInMs: delay });
        await this.#sleepFor(delay);
        delay = Math.min(max, Math.round(delay * factor));
      }
    }
  }

  #onDisconnect(conn: HostPort, err: Error): void {
    if (this.#stopping || conn !== this.#rawHost) return;
    this.#log.warn('disconnected from libvirtd', { error: errText(err) });
    conn.setCallObserver(undefined);
    this.#host = this.#rawHost = undefined;
    const unsubscribe = this.#unsubscribe;
    this.#unsubscribe = undefined;
    void unsubscribe?.().catch(() => undefined);
    void conn.close().catch(() => undefined);
    this.#setConn('disconnected', { lastError: errText(err) });
    this.#connecting = this.#connectLoop();
  }

  #observeCall(info: HostCallInfo): void {
    const labels = { procedure: info.procedure };
    this.metrics.calls.inc(labels);
    if (info.error) this.metrics.callErrors.inc(labels);
    this.metrics.callDuration.observe(info.ms / 1000, labels);
  }

  #onDomainEvent(e: DomainLifecycleEvent): void {
    if (this.#stopping) return;
    if (!this.#owned.has(e.name)) {
      this.#log.debug('lifecycle event ignored: domain not managed', { domain: e.name, event: e.event });
      return;
    }
    this.#log.info('lifecycle event', { domain: e.name, event: e.event, detail: e.detail });
    const window = this.#o.eventDebounceMs ?? 100;
    if (this.#eventTimer) return; // already scheduled: this event joins it
    this.#eventTimer = setTimeout(() => {
      this.#eventTimer = undefined;
      this.trigger('event');
    }, window);
  }
}

function resync(o: WatchOptions): number {
  return o.resyncMs ?? 300_000;
}
