/**
 * Plan: the changes as a dependency-ordered graph of steps.
 *
 * Build-up steps (create, define, start, resize) run after the build-up steps of what they depend
 * on: pools → volumes → backing volumes before their clones → networks → VMs. Teardown steps
 * (stop, delete) run after the teardown steps of everything that uses the object: a VM is stopped
 * and undefined before its volumes and networks go, clones before their backing volume, volumes
 * before their pool. Within one resource, steps run in order (a replace deletes, then creates).
 * A conflict blocks its resource and everything that depends on it. A change held for consent
 * to data loss (`safety.ts`) is listed in `held`, apart from the blocked ones; neither runs.
 */
import { hostOfKey, onHost, type HostId, type ResourceKind } from '../model/kinds.js';
import type { Desired } from './desired.js';
import { dependenciesOf } from './desired.js';
import { isTeardown, type ResourceChange, type StepOp } from './diff.js';
import { kindOf, opInfo, type PlanStep } from './kinds/index.js';

export type { PlanStep } from './kinds/index.js';

export interface PlanSummary {
  create: number;
  change: number;
  replace: number;
  delete: number;
  conflict: number;
  /** Removed manifests whose objects are kept (deletionPolicy: Retain); also counted in `delete`. */
  release: number;
  /** Changes held for consent to data loss (plus what depends on them). */
  held: number;
  /** Cold moves (each counted once, by its target change; neither a create nor a delete); absent when none. */
  move?: number;
}

export interface Plan {
  changes: ResourceChange[];
  steps: PlanStep[];
  /** Resources that will not be touched because they, or something they depend on, conflict. */
  blocked: Map<string, string>;
  /**
   * Resources whose changes are held: they would destroy data and `--allow-data-loss` was not
   * given, or they depend on such a change. Reason by key. Their steps are not in `steps`.
   */
  held: Map<string, string>;
  /**
   * Declared resources with `metadata.reconcile: disabled`: not diffed, changed or pruned. Reason by key.
   */
  suspended: Map<string, string>;
  /** The mass-deletion brake's verdict (`safety.ts`); set by the engine's plan stage. */
  brake?: DeletionBrake;
  summary: PlanSummary;
  noop: boolean;
  /** Notes about resources that need no change (a VM still waiting for a restart): shown, never applied. */
  notices: string[];
}

/** How many objects the plan deletes (replaces count) against the limit; `braked`: the run is refused. */
export interface DeletionBrake {
  /** Keys of the resources whose objects the plan deletes (deletes and replaces, held or blocked or not). */
  deletions: string[];
  /** Most deletions allowed; null with `--max-deletions all`. */
  max: number | null;
  /** Where `max` comes from: `--max-deletions N`, or the default max(5, ceil(10% of owned)). */
  source: 'flag' | 'default' | 'all';
  /** Resources recorded in the state DB when the plan was made. */
  owned: number;
  braked: boolean;
  /** Cold moves in the plan, each once (`Kind/name: A → B`): not deletions, whatever they delete on the source; absent when none. */
  moves?: string[];
  /** Set when the default brake refused a plan deleting every owned object of a kind (at least two): which kind, how many. */
  wipe?: { kind: string; owned: number };
}

export function buildPlan(
  desired: Desired, changes: ResourceChange[], held: Map<string, string> = new Map(),
  /** Suspended resources (metadata.reconcile: disabled) whose object does not exist: what needs them cannot be built. */
  suspendedAbsent: ReadonlySet<string> = new Set(),
): Plan {
  const suspended = new Map<string, string>();
  for (const r of desired.resources) if (r.suspended) suspended.set(r.key, 'metadata.reconcile: disabled: left alone (not changed, not pruned)');
  // Blocked: conflicts and, transitively, the desired resources that depend on them (or on a
  // suspended resource that does not exist).
  const blocked = new Map<string, string>();
  for (const c of changes) if (c.action === 'conflict') blocked.set(c.key, c.reason);
  for (const r of desired.resources) {
    if (r.suspended || !changes.some((c) => c.key === r.key)) continue;
    const dep = dependenciesOf(r).find((d) => suspendedAbsent.has(d));
    if (dep) blocked.set(r.key, `depends on ${dep}, which is suspended (metadata.reconcile: disabled) and does not exist`);
  }
  let grew = blocked.size > 0;
  while (grew) {
    grew = false;
    for (const r of desired.resources) {
      const key = r.key;
      if (blocked.has(key)) continue;
      const dep = dependenciesOf(r).find((d) => blocked.has(d));
      if (dep) {
        blocked.set(key, `depends on ${dep}, which is blocked`);
        grew = true;
      }
    }
  }

  const steps: PlanStep[] = [];
  const byKey = new Map<string, PlanStep[]>();
  for (const c of changes) {
    if (blocked.has(c.key) || held.has(c.key)) continue;
    let prev: PlanStep | undefined;
    for (const op of c.steps) {
      const step: PlanStep = {
        id: steps.length, key: c.key, kind: c.kind, name: c.name, host: c.host ?? hostOfKey(c.key), op,
        teardown: isTeardown(op.op), deps: prev ? [prev.id] : [], change: c,
      };
      steps.push(step);
      byKey.set(c.key, [...(byKey.get(c.key) ?? []), step]);
      prev = step;
    }
  }

  if (steps.length === 0) {
    return { changes, steps, blocked, held, suspended, summary: summarize(changes, held), noop: changes.length === 0, notices: [] };
  }

  // users(X): resources that depend on X, by their desired config or by their recorded config.
  const users = new Map<string, Set<string>>();
  const addUse = (user: string, dep: string): void => {
    users.set(dep, (users.get(dep) ?? new Set()).add(user));
  };
  for (const r of desired.resources) for (const d of dependenciesOf(r)) addUse(r.key, d);
  for (const c of changes) for (const d of recordedDependenciesOf(c)) addUse(c.key, d);

  for (const step of steps) {
    const deps = new Set(step.deps);
    if (step.teardown) {
      for (const user of users.get(step.key) ?? []) {
        for (const s of byKey.get(user) ?? []) if (s.teardown) deps.add(s.id);
      }
    } else {
      const r = desired.byKey.get(step.key);
      for (const d of r ? dependenciesOf(r) : []) {
        for (const s of byKey.get(d) ?? []) if (!s.teardown) deps.add(s.id);
      }
      // E.g. growing a volume: after a VM using it is stopped in this plan (its leading stop steps).
      if (opInfo(step.op.op).afterUsersStop) {
        for (const user of users.get(step.key) ?? []) {
          for (const s of byKey.get(user) ?? []) {
            if (!s.teardown) break;
            deps.add(s.id);
          }
        }
      }
    }
    // Cold moves (changes with `move`): a target's transfer (the copy) runs after the source's users
    // stopped on the source host; every source step but those stops runs after the whole target
    // (the source's definition and data go only once the target is complete and verified).
    const move = step.change.move;
    if (move?.role === 'target' && opInfo(step.op.op).move === 'transfer') {
      for (const user of users.get(move.partner) ?? []) {
        for (const s of byKey.get(user) ?? []) if (s.change.move?.role === 'source' && opInfo(s.op.op).move === 'quiesce') deps.add(s.id);
      }
    }
    if (move?.role === 'source' && opInfo(step.op.op).move !== 'quiesce') {
      for (const s of byKey.get(move.partner) ?? []) deps.add(s.id);
    }
    // Declared edges to another resource's teardown (a volume changes hands only after its holder stopped).
    for (const w of step.change.waitFor ?? []) {
      if (w.op !== step.op.op) continue;
      for (const k of w.keys) for (const s of byKey.get(k) ?? []) if (s.teardown) deps.add(s.id);
    }
    deps.delete(step.id);
    step.deps = [...deps].sort((a, b) => a - b);
  }
  assertAcyclic(steps);

  return { changes, steps, blocked, held, suspended, summary: summarize(changes, held), noop: changes.length === 0, notices: [] };
}

/** Dependencies named by the config recorded for a change's resource, on the change's host (they never cross hosts). */
export function recordedDependenciesOf(c: Pick<ResourceChange, 'kind' | 'key' | 'host'>, previous: unknown = (c as ResourceChange).previous): string[] {
  const host = c.host ?? hostOfKey(c.key);
  return kindOf(c.kind).recordedDependencies(previous).map((d) => onHost(d, host));
}

function summarize(changes: ResourceChange[], held: Map<string, string>): PlanSummary {
  const summary: PlanSummary = { create: 0, change: 0, replace: 0, delete: 0, conflict: 0, release: 0, held: 0 };
  for (const c of changes) {
    if (c.release) summary.release += 1;
    if (held.has(c.key)) summary.held += 1;
    if (c.move && c.action !== 'conflict') {
      if (c.move.role === 'target') summary.move = (summary.move ?? 0) + 1;
    } else if (c.action === 'create') summary.create += 1;
    else if (c.action === 'update') summary.change += 1;
    else if (c.action === 'replace') summary.replace += 1;
    else if (c.action === 'delete') summary.delete += 1;
    else summary.conflict += 1;
  }
  return summary;
}

function assertAcyclic(steps: PlanStep[]): void {
  const indegree = new Map(steps.map((s) => [s.id, s.deps.length]));
  const dependents = new Map<number, number[]>();
  for (const s of steps) for (const d of s.deps) dependents.set(d, [...(dependents.get(d) ?? []), s.id]);
  const ready = steps.filter((s) => s.deps.length === 0).map((s) => s.id);
  let seen = 0;
  while (ready.length > 0) {
    const id = ready.pop()!;
    seen += 1;
    for (const next of dependents.get(id) ?? []) {
      const n = (indegree.get(next) ?? 0) - 1;
      indegree.set(next, n);
      if (n === 0) ready.push(next);
    }
  }
  if (seen !== steps.length) {
    const stuck = steps.filter((s) => (indegree.get(s.id) ?? 0) > 0).map((s) => `${s.key}:${s.op.op}`);
    throw new Error(`internal error: plan has a dependency cycle among ${stuck.join(', ')}`);
  }
}

