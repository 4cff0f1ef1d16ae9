/**
 * The desired state as the watcher sees it: the manifest folder loaded at the start of every run.
 * A load that fails (invalid manifests, unreadable folder, an empty folder without allowEmpty)
 * keeps the last good desired state and reports every error; nothing is applied from a broken
 * folder.
 */
import { formatManifestError, ManifestCache, type CacheLoadStats, type DesiredState, type LoadResult as ManifestLoad, type ManifestError, type Policy } from '../manifest/index.js';
import { rebuildDesired, type Desired, type DesiredBuild } from '../reconcile/desired.js';
import { LOCAL_HOST } from '../model/kinds.js';
import { silentLogger, type Logger } from './logger.js';
import type { WatchMetrics } from './metrics.js';

export type LoadResult = { ok: true; desired: Desired } | { ok: false; empty?: boolean };

/**
 * Where a run reads its manifests from when it is not the folder itself: the git source
 * (sources/git-repository.ts). `prepare()` runs at the start of every run, before the folder is read.
 */
export interface ManifestProvider {
  /** For logs: the folder or the (redacted) repository URL. */
  readonly label: string;
  /** `state`: the folder's manifests already loaded and validated (the first run of a new commit). */
  prepare(): Promise<{ ok: true; dir: string; gitCommit?: string; state?: DesiredState } | { ok: false; problem: string }>;
}

function errText(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

export class ManifestState {
  #lastGood: Desired | undefined;
  /** Files kept between loads: only files whose stamp or bytes changed are parsed and checked again. */
  readonly #cache = new ManifestCache();
  #lastStats: CacheLoadStats | undefined;
  /** The last desired state built: the next load builds again only the resources whose manifests changed. */
  #build: DesiredBuild | undefined;
  #errors: ManifestError[] = [];
  #problem: string | undefined;
  readonly #log: Logger;

  constructor(readonly dir: string, private readonly o: { allowEmpty?: boolean; policy?: Policy; metrics: WatchMetrics; logger?: Logger; provider?: ManifestProvider }) {
    this.#log = o.logger ?? silentLogger;
  }

  /** The desired state last loaded without errors. */
  get lastGood(): Desired | undefined {
    return this.#lastGood;
  }

  get valid(): boolean {
    return this.#errors.length === 0 && this.#problem === undefined;
  }

  /** Number of errors of the last load (0 when valid). */
  get errorCount(): number {
    return this.#errors.length + (this.#problem ? 1 : 0);
  }

  /** The errors of the last load, formatted `file:line:col: kind/name: field: message`. */
  get errors(): string[] {
    return [...this.#errors.map(formatManifestError), ...(this.#problem ? [this.#problem] : [])];
  }

  /** Forget the kept files: the next load reads and checks every file (the full read). */
  clear(): void {
    this.#cache.clear();
    this.#build = undefined;
  }

  /** What the last load read: files listed, read again and parsed again (undefined: preloaded by the git source). */
  get lastStats(): CacheLoadStats | undefined {
    return this.#lastStats;
  }

  async load(): Promise<LoadResult> {
    this.#lastStats = undefined;
    const m = this.o.metrics;
    let dir = this.dir;
    let gitCommit: string | undefined;
    let preloaded: DesiredState | undefined;
    if (this.o.provider) {
      const p = await this.o.provider.prepare().catch((e: unknown) => ({ ok: false as const, problem: errText(e) }));
      if (!p.ok) return this.#fail(p.problem);
      dir = p.dir;
      gitCommit = p.gitCommit;
      preloaded = p.state;
    }
    let result: ManifestLoad;
    try {
      if (preloaded) result = { ok: true, desired: preloaded };
      else {
        const loaded = await this.#cache.load(dir, { policy: this.o.policy });
        this.#lastStats = loaded.stats;
        result = loaded;
      }
    } catch (e) {
      return this.#fail(`cannot read ${dir}: ${errText(e)}`);
    }
    if (result.ok && gitCommit) result.desired = { ...result.desired, gitCommit, gitDirty: false };
    if (!result.ok) {
      this.#errors = result.errors;
      this.#problem = undefined;
      m.manifestErrors.set(result.errors.length);
      for (const e of result.errors) {
        this.#log.error('manifest error', {
          file: e.file, line: e.line, col: e.col, kind: e.kind, name: e.name, field: e.field, error: e.message, text: formatManifestError(e),
        });
      }
      return { ok: false };
    }
    // A watch started without Host manifests (or on --git) manages the one host of --uri; Host
    // manifests showing up are refused like invalid ones: nothing is planned onto --uri's host.
    if (result.desired.hosts.length > 0) {
      return this.#fail(`${this.o.provider?.label ?? this.dir} declares Host manifests (${result.desired.hosts.map((h) => h.id).join(', ')}): ` +
        'this watch manages the one host of --uri: restart `virtform watch DIR` to run the fleet (a folder with Host manifests at start-up; not with --git yet); nothing is applied');
    }
    const desired = rebuildDesired(result.desired, this.#build);
    this.#build = { state: result.desired, desired, host: LOCAL_HOST };
    if (desired.empty && !this.o.allowEmpty) {
      return { ...this.#fail(`no manifests found in ${this.o.provider?.label ?? this.dir}; refusing to delete everything virtform manages (no --allow-empty)`), empty: true };
    }
    this.#errors = [];
    this.#problem = undefined;
    m.manifestErrors.set(0);
    this.#lastGood = desired;
    return { ok: true, desired };
  }

  #fail(problem: string): { ok: false } {
    this.#errors = [];
    this.#problem = problem;
    this.o.metrics.manifestErrors.set(1);
    this.#log.error('manifest error', { error: problem });
    return { ok: false };
  }
}
