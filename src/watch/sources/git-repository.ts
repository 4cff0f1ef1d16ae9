/**
 * The git repository source (`watch --git URL`): fetches every `--git-interval` seconds; a fetch
 * that brings a new commit has it verified (--verify-commits), checked out and validated, and only
 * a commit that passes is staged and enqueued (`git`). The next run moves it into the applied
 * checkout before it loads the manifests (see {@link GitRepositorySource.prepare}): the runner is
 * sequential, so a run never sees its folder change under it. A commit that does not validate
 * changes nothing: it is logged with the summary line and shown in /status, and the last good
 * commit stays applied (drift correction by events and the resync goes on from it).
 *
 * A failed fetch is logged and retried with a jittered exponential backoff (from min(interval,
 * 5 s), capped at max(interval, 5 min)); it never stops the watcher.
 */
import { GitError, short, type GitSourceStatus, type GitSync } from '../../git/index.js';
import type { DesiredState } from '../../manifest/index.js';
import { Backoff } from '../../util/backoff.js';
import { silentLogger, type Logger } from '../logger.js';
import type { ManifestProvider } from '../manifests.js';
import { errText, type Enqueue, type Source } from './types.js';
import type { WatchMetrics } from '../metrics.js';

export interface GitRepositorySourceOptions {
  sync: GitSync;
  /** Poll interval (ms). */
  intervalMs: number;
  logger?: Logger;
  /** Fetch-failure backoff (defaults: from min(interval, 5 s) to max(interval, 5 min)). */
  backoff?: { baseMs?: number; maxMs?: number };
}

export class GitRepositorySource implements Source, ManifestProvider {
  readonly name = 'git';
  readonly sync: GitSync;
  readonly intervalMs: number;
  readonly #log: Logger;
  readonly #backoff: Backoff;
  #enqueue: Enqueue = () => undefined;
  #timer: NodeJS.Timeout | undefined;
  #nextAt: number | undefined;
  #polling: Promise<void> | undefined;
  #stopped = false;
  /** The restore problem, shown until a good commit is available. */
  #problem: string | undefined;
  #metrics: WatchMetrics | undefined;

  constructor(o: GitRepositorySourceOptions) {
    this.sync = o.sync;
    this.intervalMs = o.intervalMs;
    this.#log = o.logger ?? silentLogger;
    this.#backoff = new Backoff({
      baseMs: o.backoff?.baseMs ?? Math.min(o.intervalMs, 5_000),
      maxMs: o.backoff?.maxMs ?? Math.max(o.intervalMs, 300_000),
      factor: 2,
      jitter: 0.3,
    });
  }

  /** The controller hands its metrics over (virtform_git_fetches_total, virtform_git_fetched_differs). */
  attachMetrics(m: WatchMetrics): void {
    this.#metrics = m;
    this.#gauge();
  }

  #gauge(): void {
    this.#metrics?.gitDiffers.set(this.sync.fetchedCommit !== null && this.sync.fetchedCommit !== this.sync.appliedCommit ? 1 : 0);
  }

  get label(): string {
    const p = this.sync.repo.spec.path;
    return `${this.sync.repo.displayUrl}${p ? ` (path ${p})` : ''}`;
  }

  /**
   * Before the controller starts: restore the applied commit recorded in the DB (its checkout in
   * the cache), then fetch once. Never throws: a failed fetch is logged and retried by start().
   */
  async initialize(): Promise<void> {
    this.#problem = await this.sync.restore().catch((e: unknown) => `cannot restore the applied commit: ${errText(e)}`);
    if (this.#problem) this.#log.warn('git: applied commit not restored', { url: this.sync.repo.displayUrl, problem: this.#problem });
    else if (this.sync.desiredCommit) this.#log.info('git: applied commit restored from the cache', { commit: this.sync.desiredCommit });
    // With a restored commit the watcher starts at once (a slow or hanging remote does not delay
    // drift correction); a new commit found by this first fetch is staged and taken by the first run.
    const first = this.#poll(false);
    if (!this.sync.desiredCommit) await first;
  }

  async start(enqueue: Enqueue): Promise<void> {
    this.#enqueue = enqueue;
    this.#schedule(this.#failureDelay ?? this.intervalMs);
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    clearTimeout(this.#timer);
    this.#timer = undefined;
    this.sync.repo.abort(); // a fetch in flight is killed, not waited for
    // safe-catch: stopping: a poll reports its own errors through the git status
    await this.#polling?.catch(() => undefined);
  }

  /** Fetch now (tests, and the first poll). */
  async pollNow(): Promise<void> {
    clearTimeout(this.#timer);
    await this.#poll(true);
  }

  #failureDelay: number | undefined;

  #schedule(ms: number): void {
    if (this.#stopped) return;
    clearTimeout(this.#timer);
    this.#nextAt = Date.now() + ms;
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      void this.#poll(true);
    }, ms);
  }

  #poll(schedule: boolean): Promise<void> {
    this.#polling ??= this.#pollOnce().finally(() => {
      this.#polling = undefined;
      if (schedule) this.#schedule(this.#failureDelay ?? this.intervalMs);
    });
    return this.#polling;
  }

  async #pollOnce(): Promise<void> {
    const s = this.sync;
    let sha: string;
    const t0 = performance.now();
    let fetchMs = 0;
    try {
      sha = await s.fetch();
      fetchMs = Math.round(performance.now() - t0);
    } catch (e) {
      if (this.#stopped || (e instanceof GitError && e.aborted)) return;
      const delay = this.#backoff.next();
      this.#failureDelay = delay;
      this.#metrics?.gitFetches.inc({ outcome: 'failed' });
      this.#log.warn('git fetch failed', {
        url: s.repo.displayUrl, ref: s.status().ref, attempt: this.#backoff.attempt, retryInMs: delay,
        error: e instanceof GitError ? e.message : s.repo.redactor.text(errText(e)),
        applied: short(s.appliedCommit), summary: s.status().summary,
      });
      return;
    }
    if (this.#backoff.attempt > 0) this.#log.info('git fetch works again', { url: s.repo.displayUrl, failures: this.#backoff.attempt, commit: short(sha) });
    this.#backoff.reset();
    this.#failureDelay = undefined;
    try {
      const t1 = performance.now();
      const c = await s.consider(sha);
      const validateMs = Math.round(performance.now() - t1);
      this.#metrics?.gitFetches.inc({ outcome: c.result === 'current' ? 'unchanged' : c.result === 'rejected' ? 'refused' : 'new' });
      this.#gauge();
      if (c.result === 'current') {
        this.#log.debug('git: no new commit', { commit: short(sha) });
        return;
      }
      if (c.result === 'rejected') {
        const fields = { url: s.repo.displayUrl, fetched: short(sha), applied: short(s.appliedCommit), differ: true, error: c.reason, summary: s.status().summary };
        if (c.repeated) this.#log.debug('git: fetched commit still refused', fields);
        else {
          this.#log.error('git: fetched commit refused; nothing changed, the applied commit stays', fields);
          for (const e of c.validation?.errors.slice(0, 20) ?? []) {
            this.#log.error('manifest error', { commit: short(sha), file: e.file, line: e.line, col: e.col, kind: e.kind, name: e.name, field: e.field, error: e.message });
          }
        }
        return;
      }
      this.#problem = undefined;
      this.#log.info('git: new commit fetched and validated', {
        url: s.repo.displayUrl, fetched: short(sha), applied: short(s.appliedCommit), differ: sha !== s.appliedCommit, manifests: c.validation.manifests, fetchMs, validateMs, summary: s.status().summary,
      });
      this.#enqueue('git');
    } catch (e) {
      this.#log.error('git: checkout or validation failed', { url: s.repo.displayUrl, commit: short(sha), error: s.repo.redactor.text(errText(e)) });
    }
  }

  /** ManifestProvider: the applied checkout, after moving a staged commit into it. */
  async prepare(): Promise<{ ok: true; dir: string; gitCommit: string; state?: DesiredState } | { ok: false; problem: string }> {
    const p = await this.sync.promote();
    if (p) return { ok: true, dir: p.dir, gitCommit: p.commit, ...(p.state ? { state: p.state } : {}) };
    const st = this.sync.status();
    const why = st.fetchError ? `the fetch failed: ${st.fetchError}` : st.error ? `fetched ${short(st.fetchedCommit)} was refused: ${st.error}` : this.#problem ?? 'waiting for the first fetch';
    return { ok: false, problem: `no valid commit of ${this.label} to apply yet (${why})` };
  }

  /** After a run: record the commit it applied (not for runs that threw or had no valid manifests). */
  async afterRun(run: { gitCommit?: string; outcome: string; revisionId?: number }): Promise<void> {
    if (!run.gitCommit || run.outcome === 'invalid' || run.outcome === 'error') return;
    const before = this.sync.appliedCommit;
    await this.sync.recordRun(run.gitCommit, run.outcome, run.revisionId);
    this.#gauge();
    if (before !== run.gitCommit) {
      this.#log.info('git: commit applied', { commit: short(run.gitCommit), previous: short(before), outcome: run.outcome, summary: this.sync.status().summary });
    }
  }

  status(): GitSourceStatus {
    return this.sync.status({
      fetch: { failures: this.#backoff.attempt, nextAt: this.#nextAt ? new Date(this.#nextAt).toISOString() : null, intervalMs: this.intervalMs },
    });
  }
}
