/**
 * The dashboard's data: ONE immutable snapshot per change (a run's start, its end, a status
 * refresh), from which every API answer is computed. Viewers never cause host calls or store scans
 * of their own: the snapshot holds the rows, the facets, the attention list and the overview
 * already built; a request filters, sorts and pages rows in memory (and the per-snapshot query
 * cache answers the same query once). What a refresh costs depends on the number of resources,
 * never on the number of viewers.
 *
 * The feed (./data.ts's `DashboardFeed`) is what a watcher offers: the single-host controller
 * (src/watch/controller.ts) and the fleet watch (src/fleet/watch-status.ts) both implement it.
 */
import type { Condition, ConditionType } from '../model/conditions.js';
import { CONDITION_TYPES } from '../model/conditions.js';
import { parseResourceKey, resourceKey } from '../model/kinds.js';
import type { StatusRow } from '../status/build.js';
import type { HostSummary } from '../status/fleet.js';
import type { StateStore } from '../state/index.js';
import type { WatchFeedEvent as FeedEvent, WatchStatus } from '../watch/controller.js';
import type { RunInfo } from '../watch/runner.js';
import type { PlanRecord } from '../watch/feed.js';
import type { Plan } from '../reconcile/plan.js';
import type { AnyDesired } from '../reconcile/core/resource.js';
import { redact } from './redact.js';
import { EventBroadcaster } from './events.js';
import {
  MAX_EVENT_STATUSES, STATE_PRIORITY,
  type AttentionItem, type CommitInfo, type HostCapacity, type NicAddress, type Overview, type ResourceItem, type ResourceState, type SnapshotEvent,
} from './types.js';

export type { PlanRecord } from '../watch/feed.js';
export type { WatchFeedEvent as FeedEvent } from '../watch/controller.js';

/** What the dashboard needs of a watcher. */
export interface DashboardFeed {
  /** Builds a fresh status (asks the host, within its own caching). */
  status(): Promise<WatchStatus>;
  /** The desired resources of the last good manifests (labels, source position, config). */
  readonly desiredResources: readonly AnyDesired[] | undefined;
  /** The last run's plan (undefined before the first run). */
  readonly lastPlan: PlanRecord | undefined;
  /**
   * The watcher builds a status after every run by itself (the single-host controller): the
   * dashboard waits for it. False (the fleet watch): the dashboard asks at the run's end.
   */
  readonly statusAfterRun?: boolean;
  /** Subscribe to runs and status refreshes; returns the unsubscribe function. */
  subscribe(listener: (e: FeedEvent) => void): () => void;
}

/** A resource's row plus what the detail view needs (kept in the snapshot; the detail reads journal/events from the store). */
export interface SnapshotResource {
  item: ResourceItem;
  row: StatusRow;
  desired: AnyDesired | undefined;
  /** Lower-case text `q` searches (key, reason, label values). */
  haystack: string;
}

/** One immutable view of everything; replaced, never mutated. */
export interface DashboardSnapshot {
  seq: number;
  generatedAt: string;
  runId: string | null;
  phase: SnapshotEvent['phase'];
  status: WatchStatus;
  overview: Overview;
  /** Every resource, sorted by key. */
  resources: readonly SnapshotResource[];
  byKey: ReadonlyMap<string, SnapshotResource>;
  attention: readonly AttentionItem[];
  plan: PlanRecord | undefined;
  /** Keys whose item changed since the previous snapshot. */
  changedKeys: string[];
  /** Per-snapshot answers by canonical query (filled lazily by ./api.ts; dropped with the snapshot). */
  readonly cache: Map<string, unknown>;
}

/** The most important True condition (types.ts `STATE_PRIORITY`), else Ready / NotReady. */
export function stateOf(conditions: readonly Condition[]): ResourceState {
  const on = new Set(conditions.filter((c) => c.status === 'True').map((c) => c.type));
  for (const t of STATE_PRIORITY) if (on.has(t)) return t;
  return on.has('Ready') ? 'Ready' : 'NotReady';
}

function addressesOf(row: StatusRow): NicAddress[] | undefined {
  if (!row.addresses) return undefined;
  return row.addresses.map((n) => ({ mac: n.mac, network: n.network, addresses: n.addresses.map((a) => `${a.ip}/${a.prefix}`) }));
}

/** Reconciling overlay: a resource whose change runs now shows `Reconciling` True (and not Ready). */
function reconcilingConditions(conditions: readonly Condition[], now: string): Condition[] {
  return conditions.map((c) => {
    if (c.type === 'Reconciling') return c.status === 'True' ? c : { ...c, status: 'True', reason: 'Applying', message: 'a run is applying its changes', lastTransitionTime: now };
    if (c.type === 'Ready' && c.status === 'True') return { ...c, status: 'False', reason: 'Reconciling', message: 'a run is applying its changes', lastTransitionTime: now };
    return c;
  });
}

const isoOr = (s: string | null | undefined): string | null => (s ? s : null);

function hostCapacity(h: HostSummary): HostCapacity {
  return {
    id: h.host,
    uri: h.uri,
    connected: h.connected,
    ...(h.error ? { error: h.error } : {}),
    memory: { used: h.memory?.allocated ?? 0, total: h.memory?.capacity ?? 0 },
    vcpus: { used: h.vcpus?.allocated ?? 0, total: h.vcpus?.capacity ?? 0 },
    disk: h.pools.map((p) => ({ pool: p.name, used: p.allocation, total: p.capacity })),
    vms: h.vms?.managed ?? 0,
  };
}

/** What to do about a condition, in words an operator can act on. */
export function actionFor(type: ConditionType, c: Condition, key: string): string {
  const { name } = parseResourceKey(key);
  switch (type) {
    case 'HeldForDataLoss': return 'review the plan (virtform reconcile --dry-run DIR), then consent: virtform reconcile --allow-data-loss DIR';
    case 'RestartRequired': return `restart the VM to take its new definition: virsh shutdown ${name} (watch starts it again), or set spec.restartPolicy: OnChange`;
    case 'Stalled':
      if (c.reason === 'Braked') return 'check the manifests (a mass deletion was refused); to allow it: virtform reconcile --max-deletions N DIR';
      if (c.reason === 'Conflict') return 'an object virtform does not own has this name: remove or rename it, or declare metadata.adopt: true';
      return 'fix the manifest (the host refused the definition); the next change of the manifests retries';
    case 'Drifted': return 'the next run corrects it (or run virtform reconcile DIR now)';
    case 'Unschedulable': return 'no host can take it: free capacity, add a host, or relax its placement';
    case 'HostUnreachable': return 'check the host connection (virsh -c URI list); the watch retries with backoff';
    case 'Reconciling': return 'wait for the run in flight (or the requeue) to finish';
    case 'Suspended': return c.reason === 'DatabaseSuspended' ? 'virtform resume' : 'set metadata.reconcile: enabled to manage it again';
    default: return 'see the resource detail';
  }
}

const ATTENTION_TYPES: readonly ConditionType[] = ['HostUnreachable', 'Stalled', 'HeldForDataLoss', 'Unschedulable', 'Drifted', 'RestartRequired'];

function commitOf(commit: string | null | undefined, meta: ReadonlyMap<string, CommitInfo>): CommitInfo | null {
  if (!commit) return null;
  return meta.get(commit) ?? { commit, author: null, message: null, time: null };
}

export interface BuildInput {
  seq: number;
  phase: SnapshotEvent['phase'];
  runId: string | null;
  status: WatchStatus;
  desired: readonly AnyDesired[] | undefined;
  plan: PlanRecord | undefined;
  /** Keys shown Reconciling (a run in flight applies their changes). */
  reconciling: ReadonlySet<string>;
  /** Commit metadata by hash (git_commits). */
  commits: ReadonlyMap<string, CommitInfo>;
  previous: DashboardSnapshot | undefined;
  now?: string;
}

/** Build one snapshot (pure: no I/O). */
export function buildSnapshot(i: BuildInput): DashboardSnapshot {
  const now = i.now ?? new Date().toISOString();
  const desiredByKey = new Map<string, AnyDesired>();
  for (const d of i.desired ?? []) desiredByKey.set(d.key ?? resourceKey(d.kind, d.name, d.host), d);
  const counts = Object.fromEntries(CONDITION_TYPES.map((t) => [t, 0])) as Record<ConditionType, number>;
  const resources: SnapshotResource[] = [];
  const attention: AttentionItem[] = [];
  const changedKeys: string[] = [];
  for (const row of i.status.resources) {
    const key = resourceKey(row.kind, row.name, row.host);
    const d = desiredByKey.get(key);
    const conditions = i.reconciling.has(key) ? reconcilingConditions(row.conditions, now) : row.conditions;
    const status = stateOf(conditions);
    const labels = d?.labels ?? {};
    // A status built from a run's own observation did not ask for addresses (null, not []): the
    // last known ones are kept while the VM still shows the same state (no flicker after each run).
    const prevItem = i.previous?.byKey.get(key)?.item;
    const addresses = addressesOf(row) ?? (row.addressesReady === null && prevItem?.addresses && prevItem.observed === row.observed ? prevItem.addresses : undefined);
    const item: ResourceItem = {
      key, kind: row.kind, name: row.name, host: row.host, status,
      reason: status === 'Ready' ? null : i.reconciling.has(key) ? 'a run is applying its changes' : row.reason ?? conditions.find((c) => c.type === status)?.message ?? null,
      desired: row.desired, observed: row.observed, conditions, labels,
      ...(addresses ? { addresses } : {}),
      updatedAt: isoOr(row.updatedAt),
    };
    for (const c of conditions) if (c.status === 'True') counts[c.type] += 1;
    for (const t of ATTENTION_TYPES) {
      const c = conditions.find((x) => x.type === t && x.status === 'True');
      if (c) attention.push({ key, kind: row.kind, name: row.name, host: row.host, condition: t, reason: c.reason, message: c.message, since: c.lastTransitionTime, action: actionFor(t, c, key) });
    }
    const haystack = [key, item.reason ?? '', ...Object.entries(labels).map(([k, v]) => `${k}=${v}`)].join('\n').toLowerCase();
    resources.push({ item, row, desired: d, haystack });
    if (!prevItem || JSON.stringify(prevItem) !== JSON.stringify(item)) changedKeys.push(key);
  }
  for (const k of i.previous?.byKey.keys() ?? []) if (!resources.some((r) => r.item.key === k)) changedKeys.push(k);
  resources.sort((a, b) => (a.item.key < b.item.key ? -1 : a.item.key > b.item.key ? 1 : 0));
  attention.sort((a, b) => ATTENTION_TYPES.indexOf(a.condition) - ATTENTION_TYPES.indexOf(b.condition) || (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
  const s = i.status;
  const last = s.runs.last;
  const git = s.git;
  const applied = git ? commitOf(git.appliedCommit, i.commits) : commitOf(last?.gitCommit, i.commits);
  const overview: Overview = {
    generatedAt: now,
    seq: i.seq,
    revision: { applied, fetched: git ? commitOf(git.fetchedCommit, i.commits) : null },
    lastRun: last ? { id: last.runId ?? `seq-${last.seq}`, outcome: last.outcome, durationMs: last.durationMs, finishedAt: last.finishedAt } : null,
    running: i.phase === 'start' || s.runs.inFlight,
    counts,
    total: resources.length,
    hosts: s.hosts.map(hostCapacity),
    suspended: s.suspended !== null,
    manifestErrors: s.manifests.errors,
  };
  return {
    seq: i.seq, generatedAt: now, runId: i.runId, phase: i.phase, status: s, overview,
    resources, byKey: new Map(resources.map((r) => [r.item.key, r])), attention, plan: i.plan, changedKeys, cache: new Map(),
  };
}

/** Redacted desired config of a resource (never the desired resource itself: a VM's seed image sits beside its config). */
export function desiredView(r: SnapshotResource): unknown {
  return r.desired ? redact(r.desired.config) : null;
}

/** Flatten an object to dotted paths (arrays by index); leaves only. */
export function flatten(value: unknown, prefix = '', out = new Map<string, unknown>(), depth = 0): Map<string, unknown> {
  if (depth < 12 && value && typeof value === 'object' && !Buffer.isBuffer(value)) {
    const entries = Array.isArray(value) ? value.map((v, i) => [`[${i}]`, v] as const) : Object.entries(value as Record<string, unknown>).map(([k, v]) => [k, v] as const);
    if (entries.length === 0) out.set(prefix, value);
    for (const [k, v] of entries) flatten(v, prefix ? (k.startsWith('[') ? `${prefix}${k}` : `${prefix}.${k}`) : k.replace(/^\[/, '['), out, depth + 1);
    return out;
  }
  out.set(prefix, value);
  return out;
}

export type StoreForDashboard = Pick<StateStore, 'journal' | 'events' | 'resources'> & Partial<Pick<StateStore, 'runs' | 'gitCommits'>>;

export interface DashboardOptions {
  feed: DashboardFeed;
  store: StoreForDashboard;
  /** The plan text (`reconcile --dry-run`'s rendering, no colour): given by the CLI, which owns the rendering. */
  renderPlan?: (plan: Plan) => string;
  /** `--history-runs` (shown by /api/v1/runs; the runner prunes). */
  historyRuns?: number;
  /** A snapshot older than this is refreshed (in the background) when asked for (default 15 s). */
  maxAgeMs?: number;
  /** A run's end without a status refresh within this time refreshes by itself (default 2 s). */
  endRefreshMs?: number;
  /**
   * Statuses built outside runs (every `/status` request builds one) make at most one snapshot per
   * this many ms (default 1000; the latest status wins): scrapers of `/status` do not multiply the
   * dashboard's work. A run's start and end are always built at once.
   */
  minRefreshMs?: number;
  onError?: (e: unknown) => void;
}

/**
 * Holds the current snapshot and rebuilds it from the feed: at a run's start (no I/O: the last
 * status with the plan's resources marked Reconciling), on every status the watcher builds (after
 * each run), and when a viewer finds it older than `maxAgeMs` (one refresh, whatever the number
 * of viewers). Publishes one `snapshot` event per new snapshot.
 */
export class Dashboard {
  readonly events = new EventBroadcaster();
  readonly historyRuns: number;
  readonly #o: DashboardOptions;
  readonly #unsubscribe: () => void;
  #current: DashboardSnapshot | undefined;
  #seq = 0;
  #reconciling = new Set<string>();
  #runId: string | null = null;
  #endPending: RunInfo | undefined;
  #endTimer: NodeJS.Timeout | undefined;
  #chain: Promise<void> = Promise.resolve();
  #refresh: Promise<void> | undefined;
  #closed = false;
  /** The last status the feed handed over (a refresh that caused it is not built twice). */
  #lastFed: WatchStatus | undefined;
  /** Snapshots built, and the CPU they took (µs, process.cpuUsage user+system): the bench reads them. */
  builds = 0;
  buildCpuMicros = 0;

  constructor(o: DashboardOptions) {
    this.#o = o;
    this.historyRuns = o.historyRuns ?? 500;
    this.#unsubscribe = o.feed.subscribe((e) => this.#onFeed(e));
  }

  get store(): StoreForDashboard {
    return this.#o.store;
  }

  get current(): DashboardSnapshot | undefined {
    return this.#current;
  }

  /** The plan text of a plan (empty when the CLI gave no renderer). */
  planText(plan: Plan): string {
    return this.#o.renderPlan?.(plan) ?? '';
  }

  /** The current snapshot: the first one is waited for (built now if none); a stale one is refreshed in the background. */
  async snapshot(): Promise<DashboardSnapshot> {
    const cur = this.#current;
    if (cur && this.#stale) {
      this.#stale = false;
      await this.refresh();
      return this.#current ?? cur;
    }
    if (cur) {
      if (Date.now() - Date.parse(cur.generatedAt) > (this.#o.maxAgeMs ?? 15_000)) void this.refresh();
      return cur;
    }
    await this.refresh();
    if (this.#current) return this.#current;
    throw new Error(`no dashboard data yet: ${this.#lastError ?? 'the first status is being built'}`);
  }

  #lastError: string | undefined;
  /** A run ended and its status was not built yet (the next request builds it first). */
  #stale = false;

  /** Ask the watcher for a fresh status (coalesced: one at a time); its `status` event builds the snapshot. */
  refresh(): Promise<void> {
    this.#refresh ??= (async () => {
      try {
        const s = await this.#o.feed.status();
        // A feed that does not emit `status` for status() it was asked: take it here.
        if (this.#lastFed !== s) this.#enqueue('refresh', s);
        else if (this.#pendingStatus === s) {
          // Asked for: built now, not after the refresh interval.
          if (this.#refreshTimer) clearTimeout(this.#refreshTimer);
          this.#refreshTimer = undefined;
          this.#pendingStatus = undefined;
          this.#enqueue('refresh', s);
        }
        await this.#chain;
      } catch (e) {
        this.#lastError = e instanceof Error ? e.message : String(e);
        this.#o.onError?.(e);
      } finally {
        this.#refresh = undefined;
      }
    })();
    return this.#refresh;
  }

  /** Resolves when every snapshot asked for so far is built (tests). */
  async settled(): Promise<void> {
    await this.#refresh;
    await this.#chain;
  }

  close(): void {
    this.#closed = true;
    this.#unsubscribe();
    if (this.#endTimer) clearTimeout(this.#endTimer);
    if (this.#refreshTimer) clearTimeout(this.#refreshTimer);
    this.events.close();
  }

  #onFeed(e: FeedEvent): void {
    if (this.#closed) return;
    if (e.type === 'runStart') {
      this.#runId = e.runId;
      this.#reconciling = new Set(e.keys);
      if (this.#current && e.keys.length > 0) this.#enqueue('start', this.#current.status);
    } else if (e.type === 'runEnd') {
      this.#runId = e.run.runId ?? null;
      this.#reconciling = new Set();
      this.#endPending = e.run;
      if (this.#endTimer) clearTimeout(this.#endTimer);
      this.#endTimer = setTimeout(() => {
        if (this.#endPending !== e.run) return;
        // A feed that builds no status after a run (the fleet watch: a status asks every host):
        // asked now only while someone watches the stream; else the next request asks (stale).
        if (this.#o.feed.statusAfterRun === false && this.events.clients === 0) this.#stale = true;
        else void this.refresh();
      }, this.#o.feed.statusAfterRun === false ? 0 : this.#o.endRefreshMs ?? 2000);
      this.#endTimer.unref();
    } else {
      this.#lastFed = e.status;
      if (this.#endPending || !this.#current) {
        this.#endPending = undefined;
        this.#enqueue(this.#current ? 'end' : 'refresh', e.status);
        return;
      }
      // A refresh: at most one snapshot per minRefreshMs, the latest status wins (trailing).
      this.#pendingStatus = e.status;
      if (this.#refreshTimer) return;
      const wait = Math.max(0, this.#lastBuildAt + (this.#o.minRefreshMs ?? 1000) - Date.now());
      const fire = (): void => {
        this.#refreshTimer = undefined;
        const st = this.#pendingStatus;
        this.#pendingStatus = undefined;
        if (st && !this.#closed) this.#enqueue('refresh', st);
      };
      if (wait === 0) fire();
      else {
        this.#refreshTimer = setTimeout(fire, wait);
        this.#refreshTimer.unref();
      }
    }
  }

  #pendingStatus: WatchStatus | undefined;
  #refreshTimer: NodeJS.Timeout | undefined;
  #lastBuildAt = 0;

  #enqueue(phase: SnapshotEvent['phase'], status: WatchStatus): void {
    const reconciling = phase === 'start' ? this.#reconciling : status.runs.inFlight ? this.#reconciling : new Set<string>();
    this.#lastBuildAt = Date.now();
    this.#chain = this.#chain.then(async () => {
      if (this.#closed) return;
      const commits = await this.#commits(status);
      const cpu = process.cpuUsage();
      const snap = buildSnapshot({
        seq: this.#seq + 1, phase, runId: this.#runId, status, desired: this.#o.feed.desiredResources, plan: this.#o.feed.lastPlan,
        reconciling, commits, previous: this.#current,
      });
      const used = process.cpuUsage(cpu);
      this.builds += 1;
      this.buildCpuMicros += used.user + used.system;
      // A refresh that changed nothing is not news: no event (the snapshot is still replaced, fresher).
      const news = phase !== 'refresh' || snap.changedKeys.length > 0 || !this.#current;
      this.#seq = snap.seq;
      this.#current = snap;
      if (news) {
        const statuses: Record<string, ResourceState> = {};
        for (const k of snap.changedKeys.slice(0, MAX_EVENT_STATUSES)) {
          const r = snap.byKey.get(k);
          if (r) statuses[k] = r.item.status;
        }
        this.events.publish({ seq: snap.seq, runId: snap.runId, phase, changedKeys: snap.changedKeys, statuses });
      }
    }).catch((e: unknown) => this.#o.onError?.(e));
  }

  async #commits(status: WatchStatus): Promise<Map<string, CommitInfo>> {
    const want = [status.git?.appliedCommit, status.git?.fetchedCommit, status.runs.last?.gitCommit].filter((x): x is string => !!x);
    const out = new Map<string, CommitInfo>();
    if (want.length === 0 || !this.#o.store.gitCommits) return out;
    for (const c of await this.#o.store.gitCommits.getMany(want)) out.set(c.sha, { commit: c.sha, author: c.author, message: c.message, time: c.committedAt });
    return out;
  }
}
