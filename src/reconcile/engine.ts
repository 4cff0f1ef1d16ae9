/**
 * One reconcile run: observe → diff → plan → (apply) → record.
 *
 * The caller owns the writer lock and the connections; the engine only needs the ports.
 */
import { randomUUID } from 'node:crypto';
import { LOCAL_HOST, hostOf, hostOfKey, parseResourceKey, type ResourceRef } from '../model/kinds.js';
import type { HostPort, MutationGuard, ObservedPool } from './ports.js';
import type { Desired } from './desired.js';
import { localHosts, observeHosts, type HostPorts, type Observed, type ObservedHosts, type StateReader } from './observe.js';
import { diff, notices } from './diff.js';
import { buildPlan, type Plan } from './plan.js';
import { imageCacheFor, type ImageCache } from './images.js';
import { brakeDeletions, holdDataLoss, type MaxDeletions } from './safety.js';
import { HELD_FOR_DATA_LOSS_FACT, RECONCILE_DISABLED_FACT } from './diff.js';
import { recordedFacts } from './core/change.js';
import { definitionStats, definitionXml, type DefinitionCounts, type DefinitionStats } from './core/observed.js';
import { checkInputs } from './core/checks.js';
import type { DefinitionCheck, StoredReference, Suspension } from '../state/index.js';
import { RESOURCE_KINDS } from '../model/kinds.js';
import { kindOf, ownershipOf } from './kinds/index.js';
import { apply, type ApplyEvent, type ApplyResult, type ApplyStore, type RetryPolicy } from './apply.js';

export interface EngineStore extends StateReader, ApplyStore {
  journal: StateReader['journal'] & ApplyStore['journal'] & { resolve(ids: number[]): Promise<void> };
  resources: StateReader['resources'] & ApplyStore['resources'];
  baselines?: NonNullable<StateReader['baselines']> & NonNullable<ApplyStore['baselines']>;
  revisions: {
    start(r: { runId: string; manifestDigest: string; gitCommit?: string | null; gitDirty?: boolean }): Promise<number>;
    finish(id: number, outcome: string, summary: Record<string, unknown>): Promise<void>;
  };
  /** `ref`: the resource the event is about (its host included; absent on run-wide events). */
  events: { append(e: { level: 'info' | 'warn' | 'error'; ref?: ResourceRef; message: string }): Promise<void> };
  /** The no-op fast path's record (`core/checks.ts`): written after each applying run. */
  definitionChecks?: NonNullable<StateReader['definitionChecks']> & {
    sync(host: string, put: (ResourceRef & DefinitionCheck)[], keep: ReadonlySet<string>): Promise<void>;
  };
  /** Uses of files seen on the host (the data rule): recorded after each applying run. */
  references?: StateReader['references'] & {
    record(host: string, refs: StoredReference[]): Promise<void>;
    forget(host: string, paths: string[]): Promise<void>;
  };
  /** The DB file or URL. */
  readonly path?: string;
  /** The data dir: the image cache is its `images/` (see `--data-dir`). */
  readonly dataDir?: string | undefined;
  /** `virtform suspend`'s switch (absent in stores that have none: never suspended). */
  controls?: { suspension(): Promise<Suspension | undefined> };
}

export interface ReconcileOptions {
  /** The one host of a single-host run (the implicit local host of `--uri`); `hosts` instead for several. */
  host?: HostPort;
  /** The hosts of the run by host id; absent: `host` is the local host. */
  hosts?: HostPorts;
  store: EngineStore;
  desired: Desired;
  dryRun?: boolean;
  concurrency?: number;
  retry?: RetryPolicy;
  gracefulStop?: boolean;
  /**
   * Consent to steps that destroy data (`--allow-data-loss`). Default false: such changes, and
   * what depends on them, are held (`plan.held`), and the run ends `held`.
   */
  allowDataLoss?: boolean;
  /**
   * The mass-deletion brake (`--max-deletions`): most objects the run may delete (replaces count);
   * `all` disables it; undefined is the default max(5, ceil(10% of owned)). A braked plan runs
   * nothing: outcome `braked`.
   */
  maxDeletions?: MaxDeletions;
  /** Apply even though the DB is suspended (`virtform suspend`); default false: outcome `suspended`. */
  ignoreSuspend?: boolean;
  shutdownTimeoutMs?: number;
  /** Hot-plug (issue 24): how long a guest gets to complete a live detach (`--detach-timeout`). */
  detachTimeoutMs?: number;
  boundary?: (label: string) => void;
  onPlan?: (plan: Plan) => void;
  onEvent?: (e: ApplyEvent) => void;
  /** Stop starting new steps (graceful shutdown); steps in flight finish. */
  signal?: AbortSignal;
  /** After `signal`, how long steps in flight may still run before they are abandoned (see ApplyOptions.stopTimeoutMs). */
  stopTimeoutMs?: number;
  /** Cache of downloaded images (`spec.source.url`); a temp-dir cache when absent. */
  images?: ImageCache;
  /** The writer lease's check before each step and mutating call (see ApplyOptions.guard). */
  guard?: MutationGuard;
  /** `--move-bandwidth`: most bytes per second a cold move's copy sends (absent: unlimited). */
  moveBandwidth?: number;
  /**
   * Called with the plan and the observation before anything else (before `onPlan`, the
   * suspension and the brake): throwing refuses the run, nothing applied and nothing recorded
   * (a saved plan that no longer matches: `saved-plan.ts`).
   */
  checkPlan?: (plan: Plan, observed: ObservedHosts) => void | Promise<void>;
}

export interface ReconcileResult {
  runId: string;
  plan: Plan;
  /** What was observed on the local host (on a run without it, its first host); `observedHosts` has every host. */
  observed: Observed;
  observedHosts: ObservedHosts;
  applied?: ApplyResult;
  revisionId?: number;
  /**
   * `interrupted`: a graceful shutdown stopped the run before all steps had started. `held`:
   * everything else was done, but changes that would destroy data were held for consent
   * (`plan.held`, also in `held`).
   */
  outcome: 'noop' | 'planned' | 'succeeded' | 'failed' | 'interrupted' | 'held' | 'braked' | 'suspended';
  /** Set when the DB is suspended (`virtform suspend`); with outcome `suspended` nothing was applied. */
  suspension?: Suspension;
  /** Resources whose changes were held for consent to data loss, with the reason of each. */
  held: Map<string, string>;
  /** Mutating host calls made by this run. */
  mutations: number;
  durationMs: number;
  /** Definitions observe read, parsed and left unparsed (the no-op fast path), over every host, after planning. */
  definitions: DefinitionStats;
  /**
   * Wall time of the run's stages in ms (libvirt calls included): `observe`, `diff` (diff, data
   * rule, plan, notices, brake), `apply` (the steps), `record` (what the state DB keeps after
   * them). The watch reports it with each run (`RunInfo.timing.stages`).
   */
  stages: RunStages;
}

/** See {@link ReconcileResult.stages}. */
export interface RunStages {
  observe: number;
  diff: number;
  apply?: number;
  record?: number;
}

export interface PlanOptions {
  /** Consent to data loss; without it, destructive changes are held (see `safety.ts`). */
  allowDataLoss?: boolean;
  /** The mass-deletion brake's limit (see {@link ReconcileOptions.maxDeletions}). */
  maxDeletions?: MaxDeletions;
}

/** The hosts of a run: a map of them, or one host (the implicit local host). */
export function runHosts(host: HostPort | HostPorts | undefined, hosts?: HostPorts): HostPorts {
  if (hosts) return hosts;
  if (host instanceof Map) return host;
  if (!host) throw new Error('internal error: a reconcile run needs a host');
  return localHosts(host as HostPort);
}

/** Remove the scratch pools a killed run left on a host (best effort: the next apply tries again). */
async function removeScratchPools(host: HostPort | undefined, pools: readonly ObservedPool[] | undefined, store: EngineStore): Promise<void> {
  if (!host?.removeScratchPools || !pools?.length) return;
  // safe-catch: best effort; a pool left here is removed after the next apply and is never observed as a pool
  const removed = await host.removeScratchPools(pools).catch(() => [] as string[]);
  if (removed.length > 0) await store.events.append({ level: 'info', message: `removed scratch pools left by an interrupted run: ${removed.join(', ')}` });
}

/** The observation a single-host caller reads: the local host's, else the first host's. */
function mainObserved(hosts: ObservedHosts): Observed {
  return hosts.get(LOCAL_HOST) ?? hosts.values().next().value!;
}

export async function planOnly(
  host: HostPort | HostPorts, store: StateReader, desired: Desired, gracefulStop = true, opts: PlanOptions = {},
): Promise<{ plan: Plan; observed: Observed; observedHosts: ObservedHosts; stages: RunStages }> {
  const hosts = runHosts(host);
  const t0 = performance.now();
  const observedHosts = await observeHosts(hosts, store, desired);
  const t1 = performance.now();
  const allowDataLoss = opts.allowDataLoss ?? false;
  const changes = diff(desired, observedHosts, { gracefulStop, allowDataLoss });
  const refs = store.references;
  const held = await holdDataLoss(desired, observedHosts, changes, {
    allowDataLoss, hosts, ...(refs ? { recorded: (host: string, paths: string[]) => refs.list(host, paths) } : {}),
  });
  const suspendedAbsent = new Set(desired.resources
    .filter((r) => r.suspended && ownershipOf(observedHosts.get(r.host)!, r.kind, r.name, { config: r.config }, r.key).state === 'absent')
    .map((r) => r.key));
  const plan = buildPlan(desired, changes, held, suspendedAbsent);
  plan.notices = notices(desired, observedHosts, changes, { gracefulStop });
  plan.brake = brakeDeletions(observedHosts, changes, opts.maxDeletions);
  const stages = { observe: round(t1 - t0), diff: round(performance.now() - t1) };
  return { plan, observed: mainObserved(observedHosts), observedHosts, stages };
}

export async function reconcile(opts: ReconcileOptions): Promise<ReconcileResult> {
  const started = Date.now();
  const runId = randomUUID();
  const hosts = runHosts(opts.host, opts.hosts);
  const mutationCount = (): number => [...hosts.values()].reduce((n, h) => n + h.mutationCount(), 0);
  const mutationsBefore = mutationCount();
  const { plan, observed, observedHosts, stages } = await planOnly(hosts, opts.store, opts.desired, opts.gracefulStop ?? true, {
    allowDataLoss: opts.allowDataLoss ?? false, maxDeletions: opts.maxDeletions,
  });
  await opts.checkPlan?.(plan, observedHosts);
  const suspension = await opts.store.controls?.suspension();
  opts.onPlan?.(plan);
  const base = {
    runId, plan, observed, observedHosts, held: plan.held, ...(suspension ? { suspension } : {}),
    definitions: sumStats([...observedHosts.values()].map(definitionStats)), stages,
  };
  if (opts.dryRun) {
    return { ...base, outcome: plan.noop ? 'noop' : 'planned', mutations: 0, durationMs: Date.now() - started };
  }
  // Checked after planning, so a suspended watcher still observes (and reports) what it would do.
  if (suspension && !opts.ignoreSuspend) {
    return { ...base, outcome: 'suspended', mutations: 0, durationMs: Date.now() - started };
  }
  if (plan.brake?.braked) {
    const b = plan.brake;
    const why = b.wipe
      ? `every ${b.wipe.kind} virtform owns (${b.wipe.owned}), refused by default`
      : `more than the ${b.max} allowed (${b.source === 'flag' ? '--max-deletions' : `default: max(5, 10% of ${b.owned} owned)`})`;
    await opts.store.events.append({
      level: 'warn',
      message: `braked: the plan deletes ${b.deletions.length} resources, ${why}: ${b.deletions.join(', ')}`,
    });
    return { ...base, outcome: 'braked', mutations: 0, durationMs: Date.now() - started };
  }

  const revisionId = await opts.store.revisions.start({
    runId, manifestDigest: opts.desired.digest, gitCommit: opts.desired.gitCommit ?? null, gitDirty: opts.desired.gitDirty ?? false,
  });
  const images = opts.images ?? imageCacheFor(opts.store.dataDir);
  const ta = performance.now();
  const applied = await apply(plan, {
    hosts, store: opts.store, desired: opts.desired, observed: observedHosts, runId, revisionId,
    concurrency: opts.concurrency, retry: opts.retry, boundary: opts.boundary, onEvent: opts.onEvent,
    shutdownTimeoutMs: opts.shutdownTimeoutMs, signal: opts.signal,
    ...(opts.detachTimeoutMs !== undefined ? { detachTimeoutMs: opts.detachTimeoutMs } : {}), stopTimeoutMs: opts.stopTimeoutMs, images,
    guard: opts.guard, ...(opts.moveBandwidth !== undefined ? { moveBandwidth: opts.moveBandwidth } : {}),
  });
  const tr = performance.now();
  stages.apply = round(tr - ta);
  // Downloaded images no declared volume names any more, partial downloads and converted copies
  // left by killed runs, are removed.
  const keep = new Set(opts.desired.resources.flatMap((r) => kindOf(r.kind).cachedImages?.(r) ?? []));
  // safe-catch: the image cache clean-up is best effort; the next apply prunes again
  await images.prune(keep).catch(() => undefined);
  // Scratch pools left by a killed run (a probe or rmdir pool) are removed, never reported as drift.
  // Like every change, only while this process still holds the writer lease.
  if (!opts.guard?.()) for (const [hostName, o] of observedHosts) await removeScratchPools(hosts.get(hostName), o.snapshot.scratchPools, opts.store);

  // Baselines taken again without a change (first run after an upgrade, another libvirt version,
  // an interrupted run): from the XML observed, which no step of this run rewrote.
  for (const o of observedHosts.values()) await rebaseline(opts.store, o, plan, applied);

  // Unresolved operations of earlier runs are resolved by this run unless it failed on them.
  const resolved = [...observedHosts.values()].flatMap((o) => [...o.openJournal])
    .filter(([key]) => !applied.failed.has(key) && !applied.skipped.has(key) && !plan.blocked.has(key) && !plan.held.has(key))
    .flatMap(([, entries]) => entries.map((e) => e.id));
  if (resolved.length > 0) await opts.store.journal.resolve(resolved);
  for (const [key, reason] of plan.blocked) {
    await opts.store.events.append({ level: 'warn', ref: parseResourceKey(key), message: `blocked: ${reason}` });
  }
  for (const [key, reason] of plan.held) {
    await opts.store.events.append({ level: 'warn', ref: parseResourceKey(key), message: `held (data loss; needs --allow-data-loss): ${reason}` });
  }
  for (const [key, error] of applied.failed) {
    await opts.store.events.append({ level: 'error', ref: parseResourceKey(key), message: error });
  }

  const ok = applied.failed.size === 0 && applied.skipped.size === 0 && plan.blocked.size === 0;
  const onlyHeld = ok && plan.held.size > 0;
  const summary = {
    ...plan.summary,
    steps: plan.steps.length,
    failed: applied.failed.size,
    skipped: applied.skipped.size,
    blocked: plan.blocked.size,
    held: plan.held.size,
  };
  for (const o of observedHosts.values()) {
    await recordSafetyFacts(opts.store, opts.desired, o, plan, applied);
    const forgot = await recordReferences(opts.store, o, plan, applied);
    await recordChecks(opts.store, opts.desired, o, plan, applied, forgot);
  }
  const interrupted = !ok && opts.signal?.aborted === true && applied.failed.size === 0;
  const outcome = onlyHeld ? 'held' : ok ? (plan.noop ? 'noop' : 'succeeded') : interrupted ? 'interrupted' : 'failed';
  await opts.store.revisions.finish(revisionId, outcome === 'noop' ? 'succeeded' : outcome, summary);
  stages.record = round(performance.now() - tr);
  return {
    ...base, applied, revisionId,
    outcome,
    mutations: mutationCount() - mutationsBefore,
    durationMs: Date.now() - started,
  };
}

const round = (ms: number): number => Math.round(ms * 10) / 10;

function sumStats(all: DefinitionStats[]): DefinitionStats {
  const out: DefinitionStats = { read: 0, parsed: 0, unchanged: 0, byKind: {} };
  const add = (a: DefinitionCounts, b: DefinitionCounts): void => {
    a.read += b.read;
    a.parsed += b.parsed;
    a.unchanged += b.unchanged;
  };
  for (const s of all) {
    add(out, s);
    for (const [k, c] of Object.entries(s.byKind)) add((out.byKind[k] ??= { read: 0, parsed: 0, unchanged: 0 }), c);
  }
  return out;
}

async function rebaseline(store: EngineStore, observed: Observed, plan: Plan, applied: ApplyResult): Promise<void> {
  const e = observed.exact;
  if (!e || !store.baselines) return;
  const changed = new Set(plan.changes.map((c) => c.key));
  for (const key of e.rebaseline) {
    if (changed.has(key) || applied.failed.has(key)) continue;
    const xml = definitionXml(observed, key);
    const sha256 = e.sha256.get(key);
    if (xml === undefined || sha256 === undefined) continue;
    await store.baselines.put({ ...parseResourceKey(key), xml, sha256, version: e.version });
  }
}

/**
 * Uses of files this run saw on the host are remembered (a volume once used stays data); the uses
 * of files this run deleted with consent are forgotten (a new file there starts pristine).
 */
async function recordReferences(store: EngineStore, observed: Observed, plan: Plan, applied: ApplyResult): Promise<boolean> {
  if (!store.references) return false;
  const seen = RESOURCE_KINDS.flatMap((k) => kindOf(k).referencesSeen?.(observed) ?? []);
  const done = (key: string): boolean => !applied.failed.has(key) && !applied.skipped.has(key) && !plan.held.has(key) && !plan.blocked.has(key);
  const host = hostOf(observed);
  const destroyed = new Set(plan.changes.filter((c) => hostOfKey(c.key) === host && done(c.key)).flatMap((c) => (c.dataLoss ?? []).flatMap((l) => (l.path ? [l.path] : []))));
  await store.references.record(host, seen.filter((r) => !destroyed.has(r.path)));
  await store.references.forget(host, [...destroyed]);
  return destroyed.size > 0;
}

/**
 * The no-op fast path's record (`core/checks.ts`): each definition this run parsed and compared
 * for a resource it planned nothing for (nor failed, skipped, held or blocked, no open journal,
 * no re-baseline) is recorded with the sha256 of its bytes and the digest of the comparison's
 * inputs, where that differs from what is recorded; rows of other resources are dropped. A run
 * that forgot uses of files (data destroyed with consent) drops the host's rows: the next run
 * parses every definition again, so the uses still in them are recorded again (`recordReferences`
 * sees parsed definitions only).
 */
async function recordChecks(store: EngineStore, desired: Desired, observed: Observed, plan: Plan, applied: ApplyResult, forgot: boolean): Promise<void> {
  if (!store.definitionChecks || !observed.checks) return;
  const host = hostOf(observed);
  const e = observed.exact;
  const changed = new Set(plan.changes.map((c) => c.key));
  const settled = (key: string): boolean => !changed.has(key) && !applied.failed.has(key) && !applied.skipped.has(key)
    && !plan.held.has(key) && !plan.blocked.has(key) && !observed.openJournal.has(key) && !observed.unreadable?.has(key) && !e?.rebaseline.has(key);
  const keep = new Set<string>();
  const put: (ResourceRef & DefinitionCheck)[] = [];
  if (!forgot) {
    for (const key of observed.unparsed?.keys() ?? []) if (settled(key)) keep.add(key);
    for (const [key, sha256] of observed.digests ?? []) {
      const r = desired.byKey.get(key);
      const record = observed.records.get(key);
      if (!r || !record || r.suspended || !observed.definitions.has(key) || !settled(key)) continue;
      const inputs = checkInputs(r, record, e?.baselines.get(key), e?.version);
      keep.add(key);
      const now = observed.checks.get(key);
      if (now?.sha256 !== sha256 || now.inputs !== inputs) put.push({ ...parseResourceKey(key), sha256, inputs });
    }
  }
  const stale = [...observed.checks.keys()].some((k) => !keep.has(k));
  if (put.length > 0 || stale) await store.definitionChecks.sync(host, put, keep);
}

/**
 * What later runs and `status` need to remember about a resource beyond its applied config, kept
 * in `details.facts` of its record: `reconcileDisabled` while its manifest says
 * `metadata.reconcile: disabled` (so removing that manifest releases the object instead of
 * deleting it), `heldForDataLoss` (the reason) while the last apply held its change. Set and
 * cleared after every apply; records that do not exist are not created.
 */
async function recordSafetyFacts(store: EngineStore, desired: Desired, observed: Observed, plan: Plan, applied: ApplyResult): Promise<void> {
  for (const key of observed.records.keys()) {
    const d = desired.byKey.get(key);
    const facts = recordedFacts(observed, key);
    const want: Record<string, unknown> = {};
    if (d) {
      const disabled = d.suspended === true;
      if (disabled !== (facts[RECONCILE_DISABLED_FACT] === true)) want[RECONCILE_DISABLED_FACT] = disabled ? true : null;
    }
    const held = plan.held.get(key) ?? null;
    if ((facts[HELD_FOR_DATA_LOSS_FACT] ?? null) !== held) want[HELD_FOR_DATA_LOSS_FACT] = held;
    if (Object.keys(want).length === 0 || applied.failed.has(key)) continue;
    const ref = parseResourceKey(key);
    const current = await store.resources.get(ref);
    if (!current) continue; // forgotten or deleted by this run
    const merged: Record<string, unknown> = { ...((current.details.facts as Record<string, unknown> | undefined) ?? {}) };
    for (const [k, v] of Object.entries(want)) {
      if (v === null) delete merged[k];
      else merged[k] = v;
    }
    const details = { ...current.details };
    if (Object.keys(merged).length > 0) details.facts = merged;
    else delete details.facts;
    await store.resources.upsert({ ...ref, details });
  }
}
