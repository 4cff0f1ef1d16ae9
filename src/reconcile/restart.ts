/**
 * `virtform restart` (issue 24): restart guests (VMs) so that they take what their persistent
 * definition holds for the next boot (the restart-required mark), journaled like any step.
 *
 * Nothing imperative beyond that: the desired state stays in the manifests. A restart runs the
 * guest kind's own stop and start steps (`KindHandler.guest.restart`) with the config virtform
 * applied last (the record's), through `apply` (journal, retries, the lease's guard). What a
 * reconcile defined is what the guest boots with; a manifest edited since is reconcile's to apply.
 * A run killed between the stop and the start leaves a VM declared running stopped: the next
 * reconcile (or restart) starts it, as it starts any VM declared running that is not.
 *
 * Refused, before anything is changed: a name that is no guest virtform manages (unknown, or a
 * domain without a record: not managed), one declared stopped, one with `metadata.reconcile:
 * disabled`; and the whole request while the state DB is suspended (`virtform suspend`).
 */
import { randomUUID } from 'node:crypto';
import { LOCAL_HOST, RESOURCE_KINDS, resourceRef, type ResourceKind } from '../model/kinds.js';
import type { HostPort, MutationGuard } from './ports.js';
import { localHosts, observeHosts, type Observed, type ObservedHosts } from './observe.js';
import { buildPlan, type Plan } from './plan.js';
import { apply, type ApplyEvent, type ApplyResult, type RetryPolicy } from './apply.js';
import { change, recordedFacts } from './core/change.js';
import type { Desired } from './desired.js';
import type { DesiredResource } from './kinds/index.js';
import { RECONCILE_DISABLED_FACT } from './diff.js';
import { kindOf, ownershipOf } from './kinds/index.js';
import type { EngineStore } from './engine.js';
import type { ResourceRecord, Suspension } from '../state/index.js';

export interface RestartOptions {
  host: HostPort;
  store: EngineStore & { resources: EngineStore['resources'] & { get(ref: { kind: string; name: string; host: string }): Promise<ResourceRecord | undefined> } };
  /** Guests by name (on the local host). */
  names: string[];
  /** Also every managed guest whose restart-required mark is pending. */
  allPending?: boolean;
  /** Graceful shutdown (ACPI) before forcing off; false: `--force`. */
  graceful: boolean;
  shutdownTimeoutMs?: number;
  concurrency?: number;
  retry?: RetryPolicy;
  onEvent?: (e: ApplyEvent) => void;
  signal?: AbortSignal;
  stopTimeoutMs?: number;
  guard?: MutationGuard;
  boundary?: (label: string) => void;
  /** Who asked (events). */
  by?: string;
}

/** One guest of the request and why it is restarted (its pending mark) or refused. */
export interface RestartTarget {
  key: string;
  kind: ResourceKind;
  name: string;
  /** The restart-required mark's text, when one is pending. */
  pending?: string;
}

export type RestartResult =
  | { outcome: 'refused'; refused: { name: string; reason: string }[] }
  | { outcome: 'suspended'; suspension: Suspension; targets: RestartTarget[] }
  | { outcome: 'nothing'; targets: [] }
  | {
    outcome: 'succeeded' | 'failed' | 'interrupted'; runId: string; targets: RestartTarget[]; plan: Plan; applied: ApplyResult;
    observed: ObservedHosts; durationMs: number;
  };

/** The guest kinds that can be restarted. */
function restartKinds(): ResourceKind[] {
  return RESOURCE_KINDS.filter((k) => kindOf(k).guest?.restart !== undefined);
}

/**
 * Why the named guests cannot be restarted (read-only: the records and the host's listing), or []:
 * what the command checks before it runs or queues the request (exit 2), and the run again.
 */
export async function restartRefusals(host: HostPort, store: RestartOptions['store'], names: string[]): Promise<{ name: string; reason: string }[]> {
  if (names.length === 0) return [];
  const empty: Desired = { resources: [], byKey: new Map(), digest: '', empty: true };
  const observed = (await observeHosts(localHosts(host), store, empty)).get(LOCAL_HOST)!;
  return (await pick(observed, store, names)).refused;
}

async function pick(observed: Observed, store: RestartOptions['store'], names: string[]) {
  const kinds = restartKinds();
  const refused: { name: string; reason: string }[] = [];
  const picked = new Map<string, { kind: ResourceKind; record: ResourceRecord }>();
  const recordOf = async (name: string): Promise<{ kind: ResourceKind; record: ResourceRecord } | undefined> => {
    for (const kind of kinds) {
      const record = await store.resources.get(resourceRef(kind, name));
      if (record) return { kind, record };
    }
    return undefined;
  };
  const why = (kind: ResourceKind, record: ResourceRecord): string | undefined => {
    const facts = record.details.facts as Record<string, unknown> | undefined;
    if (facts?.[RECONCILE_DISABLED_FACT] === true) return 'its manifest says metadata.reconcile: disabled (virtform leaves it alone)';
    if (record.desiredState === 'stopped') return 'it is declared stopped (spec.state: stopped): restarting would start it; change the manifest and reconcile instead';
    if (!kindOf(kind).guest!.restart!.desired(record)) return 'virtform has no applied configuration recorded for it (reconcile it first)';
    return undefined;
  };
  for (const name of new Set(names)) {
    const found = await recordOf(name);
    if (!found) {
      refused.push({
        name,
        reason: observed.domains.has(name)
          ? 'not managed by virtform (no record in this state DB): declare it with metadata.adopt and reconcile to manage it'
          : 'no such VM (not managed by virtform, and no domain of that name on the host)',
      });
      continue;
    }
    const no = why(found.kind, found.record);
    if (no) refused.push({ name, reason: no });
    else picked.set(found.record.name, found);
  }
  return { refused, picked, kinds, why };
}

export async function restartGuests(opts: RestartOptions): Promise<RestartResult> {
  const started = Date.now();
  const hosts = localHosts(opts.host);
  const empty: Desired = { resources: [], byKey: new Map(), digest: '', empty: true };
  // What the host has and the records (every record is read, whatever the desired state).
  const observed = (await observeHosts(hosts, opts.store, empty)).get(LOCAL_HOST)!;
  const { refused, picked, kinds, why } = await pick(observed, opts.store, opts.names);
  if (refused.length > 0) return { outcome: 'refused', refused };
  if (opts.allPending) {
    for (const [key, rec] of observed.records) {
      const kind = rec.kind as ResourceKind;
      if (!kinds.includes(kind) || picked.has(rec.name)) continue;
      if (!kindOf(kind).guest!.restart!.pending(recordedFacts(observed, key), observed.domains.get(rec.name))) continue;
      const record = await opts.store.resources.get(resourceRef(kind, rec.name));
      if (record && !why(kind, record)) picked.set(rec.name, { kind, record });
    }
  }
  const targets: RestartTarget[] = [...picked.values()].map(({ kind, record }) => {
    const key = `${kind}/${record.name}`;
    const pending = kindOf(kind).guest!.restart!.pending(record.details.facts as Record<string, unknown> | undefined, observed.domains.get(record.name));
    return { key, kind, name: record.name, ...(pending ? { pending } : {}) };
  });
  if (targets.length === 0) return { outcome: 'nothing', targets: [] };
  const suspension = await opts.store.controls?.suspension();
  if (suspension) return { outcome: 'suspended', suspension, targets };

  const resources = [...picked.values()].map(({ kind, record }) => kindOf(kind).guest!.restart!.desired(record)! as DesiredResource);
  const desired: Desired = { resources, byKey: new Map(resources.map((r) => [r.key, r])), digest: '', empty: false };
  const changes = resources.map((r) => {
    const t = targets.find((x) => x.key === r.key)!;
    const running = observed.domains.get(r.name)?.active === true;
    return change(r, 'update', t.pending ? `restart (virtform restart): ${t.pending}` : running ? 'restart (virtform restart)' : 'start (virtform restart: not running)',
      ownershipOf(observed, r.kind, r.name, {}, r.key), { steps: kindOf(r.kind).guest!.restart!.steps(opts.graceful) as never[] });
  });
  const plan = buildPlan(desired, changes as Parameters<typeof buildPlan>[1]);
  const runId = randomUUID();
  const observedHosts: ObservedHosts = new Map([[LOCAL_HOST, observed]]);
  const applied = await apply(plan, {
    hosts, store: opts.store, desired, observed: observedHosts, runId,
    concurrency: opts.concurrency, retry: opts.retry, onEvent: opts.onEvent, shutdownTimeoutMs: opts.shutdownTimeoutMs,
    signal: opts.signal, stopTimeoutMs: opts.stopTimeoutMs, guard: opts.guard, boundary: opts.boundary,
  });
  // Operations an earlier run left open on these guests (a restart killed between its stop and its start) are finished now.
  const resolved = targets.filter((t) => !applied.failed.has(t.key) && !applied.skipped.has(t.key))
    .flatMap((t) => observed.openJournal.get(t.key) ?? []).map((e) => e.id);
  if (resolved.length > 0) await opts.store.journal.resolve(resolved);
  for (const t of targets) {
    const error = applied.failed.get(t.key);
    await opts.store.events.append(error
      ? { level: 'error', ref: resourceRef(t.kind, t.name), message: `restart failed: ${error}` }
      : { level: 'info', ref: resourceRef(t.kind, t.name), message: `restarted (virtform restart${opts.by ? ` by ${opts.by}` : ''}${opts.graceful ? '' : ', forced'})` });
  }
  const ok = applied.failed.size === 0 && applied.skipped.size === 0;
  const outcome = ok ? 'succeeded' : opts.signal?.aborted && applied.failed.size === 0 ? 'interrupted' : 'failed';
  return { outcome, runId, targets, plan, applied, observed: observedHosts, durationMs: Date.now() - started };
}

/** What a restart's run says: its exit code, the lines the command prints, the `--json` document, one line for a queued request. */
export interface RestartReport {
  exitCode: 0 | 1 | 2;
  /** stdout lines. */
  out: string[];
  /** stderr lines (`virtform: ` prefixed by the printer). */
  err: string[];
  json: Record<string, unknown>;
  message: string;
}

export function restartReport(result: RestartResult, suspendedText: (s: Suspension) => string): RestartReport {
  if (result.outcome === 'refused') {
    return {
      exitCode: 2, out: [], err: [...result.refused.map((r) => `cannot restart ${r.name}: ${r.reason}`), 'nothing was restarted'],
      json: { outcome: 'refused', refused: result.refused }, message: `refused: ${result.refused.map((r) => `${r.name}: ${r.reason}`).join('; ')}`,
    };
  }
  if (result.outcome === 'nothing') return { exitCode: 0, out: ['No VM has a restart pending.'], err: [], json: { outcome: 'nothing', vms: [] }, message: 'no VM has a restart pending' };
  if (result.outcome === 'suspended') {
    const m = `${suspendedText(result.suspension)}; nothing was restarted (\`virtform resume\` lifts it)`;
    return { exitCode: 1, out: [], err: [m], json: { outcome: 'suspended', suspension: result.suspension, vms: result.targets.map((t) => t.name) }, message: m };
  }
  const vms = result.targets.map((t) => {
    const steps = result.applied.outcomes.filter((s) => s.step.key === t.key);
    const error = result.applied.failed.get(t.key) ?? (result.applied.skipped.has(t.key) ? 'skipped' : undefined);
    return { name: t.name, pending: t.pending ?? null, restarted: !error, ms: steps.reduce((n, s) => n + s.ms, 0), error: error ?? null };
  });
  const out = vms.map((v) => (v.restarted
    ? `Restarted ${v.name} (${(v.ms / 1000).toFixed(1)}s)${v.pending ? `: applied ${v.pending.replace(/^restart required for /, '')}` : ''}`
    : `Not restarted ${v.name}: ${v.error}`));
  const done = vms.filter((v) => v.restarted).length;
  return {
    exitCode: result.outcome === 'succeeded' ? 0 : 1, out, err: [],
    json: {
      outcome: result.outcome, runId: result.runId, vms, durationMs: result.durationMs,
      steps: result.applied.outcomes.map((s) => ({ resource: s.step.key, op: s.step.op.op, status: s.status, attempts: s.attempts, ms: s.ms, error: s.error ?? null })),
    },
    message: `${result.outcome}: ${done} of ${vms.length} VM(s) restarted`,
  };
}
