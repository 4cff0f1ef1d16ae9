/**
 * The lifecycle of a git manifest source, shared by `reconcile --git` and the watcher's git source:
 *
 *   fetch ─► fetched commit ─► verify + check out into candidate/ + validate
 *              │                      ├─ refused: recorded (rejected commit, error); nothing changes,
 *              │                      │  the last good commit stays applied
 *              │                      └─ valid: staged/ ─► (next run) applied/ ─► reconcile ─► applied commit
 *
 * What was fetched, what was applied (with the run's outcome) and why they differ is kept in
 * memory and in the state DB (`git_sources`), so `virtform status` shows it across restarts.
 */
import type { GitSourceRecord, StateStore } from '../state/index.js';
import { GitError } from './exec.js';
import type { DesiredState } from '../manifest/index.js';
import { GitRepository, rebaseState, refString, short, type Validation } from './repository.js';

/**
 * A git source's status: its DB record (see GitSourceRecord; `url` redacted) without the
 * bookkeeping fields, plus what the process knows beyond the record.
 */
export type GitSourceStatus = Omit<GitSourceRecord, 'appliedRevision' | 'errorAt' | 'updatedAt'> & {
  /** A validated commit waiting for (or in) its run. */
  pendingCommit: string | null;
  /** fetched and applied differ. */
  differ: boolean;
  /** Watch only: fetch attempts failed in a row, and when the next one is due. */
  fetch?: { failures: number; nextAt: string | null; intervalMs: number };
  /** One line: "fetched abc1234, applied 9f8e7d6: validation failed at vms.yaml:12:3: ...". */
  summary: string;
};

/** The one-line summary status, logs and the CLI print. */
export function gitSummary(s: Pick<GitSourceStatus, 'fetchedCommit' | 'appliedCommit' | 'pendingCommit' | 'error' | 'rejectedCommit' | 'fetchError' | 'appliedOutcome'>): string {
  const parts: string[] = [];
  if (!s.fetchedCommit && !s.appliedCommit) parts.push('nothing fetched or applied yet');
  else if (s.fetchedCommit === s.appliedCommit) {
    parts.push(`fetched ${short(s.fetchedCommit)}, applied ${short(s.appliedCommit)} (up to date${s.appliedOutcome && s.appliedOutcome !== 'succeeded' ? `; that run ${s.appliedOutcome}` : ''})`);
  } else {
    let line = `fetched ${short(s.fetchedCommit)}, applied ${short(s.appliedCommit)}`;
    if (s.error && s.rejectedCommit && s.rejectedCommit === s.fetchedCommit) line += `: ${s.error}`;
    else if (s.pendingCommit && s.pendingCommit === s.fetchedCommit) line += `: applying ${short(s.pendingCommit)}`;
    parts.push(line);
  }
  if (s.fetchError) parts.push(`last fetch failed: ${s.fetchError}`);
  return parts.join('; ');
}

export type Consideration =
  | { result: 'current'; commit: string }
  | { result: 'staged'; commit: string; validation: Extract<Validation, { ok: true }> }
  | { result: 'rejected'; commit: string; reason: string; validation?: Extract<Validation, { ok: false }>; repeated: boolean };

export class GitSync {
  readonly repo: GitRepository;
  readonly #store: StateStore | undefined;
  #record: GitSourceRecord | undefined;
  #fetched: string | null = null;
  #fetchedAt: string | null = null;
  #applied: string | null = null;
  #appliedAt: string | null = null;
  #appliedOutcome: string | null = null;
  /** The commit in applied/ (what runs reconcile). */
  #desired: string | null = null;
  #staged: string | null = null;
  /** The staged commit's manifests as validated, with the paths of the applied checkout. */
  #stagedState: DesiredState | undefined;
  #rejected: string | null = null;
  #error: string | null = null;
  #errorKind: string | null = null;
  #fetchError: string | null = null;
  #fetchErrorAt: string | null = null;

  /** `store` undefined: nothing is recorded (dry-runs). */
  constructor(repo: GitRepository, store?: StateStore) {
    this.repo = repo;
    this.#store = store;
  }

  get desiredCommit(): string | null {
    return this.#desired;
  }

  get fetchedCommit(): string | null {
    return this.#fetched;
  }

  get appliedCommit(): string | null {
    return this.#applied;
  }

  get stagedCommit(): string | null {
    return this.#staged;
  }

  get record(): GitSourceRecord | undefined {
    return this.#record;
  }

  async #save(u: Partial<Omit<GitSourceRecord, 'id' | 'url' | 'ref' | 'path' | 'updatedAt'>>): Promise<void> {
    if (!this.#store) return;
    this.#record = await this.#store.gitSources.update({
      id: this.repo.id, url: this.repo.displayUrl, ref: refString(this.repo.spec.ref), path: this.repo.spec.path, ...u,
    });
  }

  /**
   * Load what the DB recorded of this source and make applied/ hold the recorded applied commit
   * (checked out again when the folder is missing or holds another; verified again when
   * --verify-commits is on). Returns a problem text when the applied commit cannot be restored.
   */
  async restore(): Promise<string | undefined> {
    await this.repo.init();
    const rec = this.#store ? await this.#store.gitSources.get(this.repo.id) : undefined;
    this.#record = rec;
    if (rec) {
      this.#fetched = rec.fetchedCommit;
      this.#fetchedAt = rec.fetchedAt;
      this.#applied = rec.appliedCommit;
      this.#appliedAt = rec.appliedAt;
      this.#appliedOutcome = rec.appliedOutcome;
      this.#rejected = rec.rejectedCommit;
      this.#error = rec.error;
      this.#errorKind = rec.errorKind;
      this.#fetchError = rec.fetchError;
      this.#fetchErrorAt = rec.fetchErrorAt;
    }
    // A stage left by an earlier process is validated again when it is fetched again.
    this.#staged = null;
    if (this.repo.ephemeral) return undefined;
    const want = rec?.appliedCommit ?? null;
    if (!want) return undefined;
    return this.repo.exclusive(async () => {
      if (this.repo.checkedOut('applied') === want) {
        try {
          await this.repo.verify(want);
        } catch (e) {
          return `the applied commit ${short(want)} is not used: ${(e as Error).message}`;
        }
        this.#desired = want;
        return undefined;
      }
      if (!(await this.repo.has(want))) return `the applied commit ${short(want)} is no longer in the cache ${this.repo.cacheDir}; waiting for a fetch`;
      const v = await this.repo.validate(want);
      if (!v.ok) return `the applied commit ${short(want)} is not used: ${v.reason}`;
      this.repo.move('candidate', 'staged');
      this.repo.move('staged', 'applied');
      this.#desired = want;
      return undefined;
    });
  }

  /** Author, message and time of a fetched commit into `git_commits` (the dashboard shows them); best effort, logged by the caller's status. */
  async #recordCommit(sha: string): Promise<void> {
    if (!this.#store?.gitCommits) return;
    try {
      await this.#store.gitCommits.put(await this.repo.commitInfo(sha));
    } catch (e) {
      // safe-catch: the metadata is only shown; the fetch itself succeeded and is recorded
      this.#commitInfoError = e instanceof Error ? e.message : String(e);
    }
  }

  #commitInfoError: string | undefined;

  /** Why the last fetched commit's metadata could not be recorded (tests, logs). */
  get commitInfoError(): string | undefined {
    return this.#commitInfoError;
  }

  /** Fetch; records the fetched commit or the fetch error. Throws the (redacted) error. */
  async fetch(): Promise<string> {
    const now = new Date().toISOString();
    try {
      const sha = await this.repo.fetch();
      // The DB is written when something changes (not at every poll of an unchanged remote).
      const changed = sha !== this.#fetched || this.#fetchError !== null || !this.#record;
      this.#fetched = sha;
      this.#fetchedAt = now;
      this.#fetchError = null;
      this.#fetchErrorAt = null;
      if (changed) await this.#save({ fetchedCommit: sha, fetchedAt: now, fetchError: null, fetchErrorAt: null });
      if (changed) await this.#recordCommit(sha);
      return sha;
    } catch (e) {
      if (e instanceof GitError && e.aborted) throw e; // stopping: not a fetch failure worth recording
      const msg = e instanceof GitError ? e.message : this.repo.redactor.text(e instanceof Error ? e.message : String(e));
      const changed = msg !== this.#fetchError;
      this.#fetchError = msg;
      if (changed) this.#fetchErrorAt = now;
      // safe-catch: recording the error is best effort; the fetch error itself is thrown just below
      if (changed) await this.#save({ fetchError: msg, fetchErrorAt: now }).catch(() => undefined);
      throw e instanceof GitError ? e : new GitError(msg, null, '');
    }
  }

  /**
   * Decide about a fetched commit: `current` (already applied or staged), `rejected` (verify or
   * validation failed: recorded; `repeated` when this commit had already been refused), or
   * `staged` (valid: the next {@link promote} makes it the applied checkout).
   */
  async consider(sha: string): Promise<Consideration> {
    if (sha === this.#desired || sha === this.#staged) return { result: 'current', commit: sha };
    return this.repo.exclusive(async () => {
      const v = await this.repo.validate(sha);
      const now = new Date().toISOString();
      if (!v.ok) {
        const repeated = this.#rejected === sha && this.#error === v.reason;
        this.#rejected = sha;
        this.#error = v.reason;
        this.#errorKind = v.errors.length === 0 ? 'signature' : 'validation';
        await this.#save({ rejectedCommit: sha, error: v.reason, errorKind: this.#errorKind, errorAt: now });
        return { result: 'rejected', commit: sha, reason: v.reason, validation: v, repeated };
      }
      this.#stagedState = rebaseState(v.state, this.repo.checkoutRoot('candidate'), this.repo.checkoutRoot('applied'));
      this.repo.move('candidate', 'staged');
      this.#staged = sha;
      if (this.#rejected !== null || this.#error !== null) {
        this.#rejected = null;
        this.#error = null;
        this.#errorKind = null;
        await this.#save({ rejectedCommit: null, error: null, errorKind: null, errorAt: null });
      }
      return { result: 'staged', commit: sha, validation: v };
    });
  }

  /**
   * Move the staged commit into applied/ (call with no run in flight: a run reads applied/).
   * Returns the folder to load and its commit, or undefined when no commit is available yet.
   */
  async promote(): Promise<{ dir: string; commit: string; state?: DesiredState } | undefined> {
    return this.repo.exclusive(async () => {
      let state: DesiredState | undefined;
      if (this.#staged && this.repo.checkedOut('staged') === this.#staged) {
        this.repo.move('staged', 'applied');
        this.#desired = this.#staged;
        this.#staged = null;
        state = this.#stagedState;
        // safe-catch: pinning keeps git gc away from the commit; the checkout itself already exists
        await this.repo.pin(this.#desired).catch(() => undefined);
      }
      this.#stagedState = undefined;
      if (!this.#desired) return undefined;
      // The first run of a commit takes its manifests as validated (no second parse of the folder).
      return { dir: this.repo.manifestDir('applied'), commit: this.#desired, ...(state ? { state } : {}) };
    });
  }

  /** A run reconciled `commit` (any outcome but a thrown error). */
  async recordRun(commit: string, outcome: string, revisionId?: number): Promise<void> {
    const now = new Date().toISOString();
    this.#applied = commit;
    this.#appliedAt = now;
    this.#appliedOutcome = outcome;
    await this.#save({ appliedCommit: commit, appliedAt: now, appliedOutcome: outcome, ...(revisionId !== undefined && { appliedRevision: revisionId }) });
  }

  status(extra: Pick<GitSourceStatus, 'fetch'> = {}): GitSourceStatus {
    const s = {
      id: this.repo.id, url: this.repo.displayUrl, ref: refString(this.repo.spec.ref), path: this.repo.spec.path,
      fetchedCommit: this.#fetched, fetchedAt: this.#fetchedAt,
      appliedCommit: this.#applied, appliedAt: this.#appliedAt, appliedOutcome: this.#appliedOutcome,
      pendingCommit: this.#staged ?? (this.#desired !== this.#applied ? this.#desired : null),
      differ: this.#fetched !== this.#applied,
      error: this.#rejected !== null && this.#rejected === this.#fetched ? this.#error : null,
      errorKind: this.#rejected !== null && this.#rejected === this.#fetched ? this.#errorKind : null,
      rejectedCommit: this.#rejected,
      fetchError: this.#fetchError, fetchErrorAt: this.#fetchErrorAt,
      ...extra,
    };
    return { ...s, summary: gitSummary(s) };
  }
}

/** The status of a source from its DB record alone (`virtform status` without --git). */
export function gitStatusFromRecord(r: GitSourceRecord): GitSourceStatus {
  const s = {
    id: r.id, url: r.url, ref: r.ref, path: r.path,
    fetchedCommit: r.fetchedCommit, fetchedAt: r.fetchedAt,
    appliedCommit: r.appliedCommit, appliedAt: r.appliedAt, appliedOutcome: r.appliedOutcome,
    pendingCommit: null,
    differ: r.fetchedCommit !== r.appliedCommit,
    error: r.rejectedCommit !== null && r.rejectedCommit === r.fetchedCommit ? r.error : null,
    errorKind: r.rejectedCommit !== null && r.rejectedCommit === r.fetchedCommit ? r.errorKind : null,
    rejectedCommit: r.rejectedCommit,
    fetchError: r.fetchError, fetchErrorAt: r.fetchErrorAt,
  };
  return { ...s, summary: gitSummary(s) };
}
