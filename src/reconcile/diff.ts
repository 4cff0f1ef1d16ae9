/**
 * Diff: desired resources against observed objects and recorded state.
 *
 * For each resource its kind's module (`kinds/`) decides one change (create, update, replace or
 * conflict) with the field-level before → after, a human reason, and the ordered steps that carry
 * it out. What virtform owns but no manifest declares is pruned here, with the kind's delete steps.
 */
import { RESOURCE_KINDS, type ResourceKind } from '../model/kinds.js';
import type { Observed } from './core/observed.js';
import { change, recordedConfig, recordedFacts, type DiffOptions } from './core/change.js';
import { KINDS, kindOf, opInfo, ownershipOf, type Desired, type DesiredResource, type ResourceChange, type StepOp } from './kinds/index.js';

export { fieldChanges, type ChangeAction, type DiffOptions, type FieldChange } from './core/change.js';
export type { ResourceChange, StepOp } from './kinds/index.js';

/** `details.facts` key of a resource recorded while its manifest said `metadata.reconcile: disabled`. */
export const RECONCILE_DISABLED_FACT = 'reconcileDisabled';

/** `details.facts` key of a resource whose change the last apply held for consent to data loss (its reason). */
export const HELD_FOR_DATA_LOSS_FACT = 'heldForDataLoss';

/** Human label of every step operation (`define domain`, `delete volume`, …). */
export function stepOpLabel(op: StepOp['op']): string {
  return opInfo(op).label;
}

/** Whether a step operation tears something down (ordered after the teardown of its users). */
export function isTeardown(op: StepOp['op']): boolean {
  return opInfo(op).teardown;
}

/** Keys that the state DB records or the journal names but no manifest declares, each once. */
function* undeclaredKeys(desired: Desired, observed: Observed): Generator<string> {
  for (const key of observed.records.keys()) if (!desired.byKey.has(key)) yield key;
  for (const key of observed.openJournal.keys()) if (!desired.byKey.has(key) && !observed.records.has(key)) yield key;
}

/** Deletes for what virtform owns (recorded, or half-created in an interrupted run) but no manifest declares. */
function diffPrune(desired: Desired, observed: Observed, opts: DiffOptions): ResourceChange[] {
  const out: ResourceChange[] = [];
  for (const key of undeclaredKeys(desired, observed)) {
    const record = observed.records.get(key);
    const journal = observed.openJournal.get(key) ?? [];
    const kind = (record?.kind ?? journal[0]?.kind) as ResourceKind;
    const name = record?.name ?? journal[0]?.name ?? '';
    const prev = recordedConfig(observed, key);
    const where = { config: prev, intents: journal.map((j) => j.intent) };
    const own = ownershipOf(observed, kind, name, where, key);
    const base = { key, kind, name, fields: [], notes: [] as string[], previous: prev, ownership: own.state, drift: false };
    // Recorded while `metadata.reconcile: disabled`: the manifest's removal releases it, whatever it is.
    const suspended = recordedFacts(observed, key)[RECONCILE_DISABLED_FACT] === true;
    const release = suspended
      ? { policy: 'Suspended' as const, kept: own.state === 'absent' ? 'nothing on the host' : `the ${kind} is kept as it is on the host` }
      : own.state === 'owned' ? kindOf(kind).release?.(name, where) : undefined;
    const steps = own.state === 'owned' && !release ? kindOf(kind).deleteSteps(name, where, opts) as StepOp[] | undefined : undefined;
    if (release) {
      out.push({
        ...base, action: 'delete', steps: [{ op: 'record.forget' }], release,
        reason: release.policy === 'Suspended'
          ? `no longer declared while metadata.reconcile was disabled; released: ${release.kept}`
          : `no longer declared; released (deletionPolicy: ${release.policy}): ${release.kept}`,
      });
    } else if (steps) {
      out.push({
        ...base, action: 'delete', steps, notes: kindOf(kind).deleteNotes?.(name, observed, opts) ?? [],
        reason: record ? 'no longer declared in manifests' : 'left half-created by an interrupted run and no longer declared',
      });
    } else {
      out.push({
        ...base, action: 'delete', steps: [{ op: 'record.forget' }],
        notes: own.state === 'foreign' ? [`${own.reason}: left untouched`] : [],
        reason: own.state === 'absent' ? 'no longer declared; already gone from the host' : 'no longer declared; the object with that name is not ours',
      });
    }
  }
  return out;
}

/** Notes about declared resources that need no change (e.g. a VM waiting for a restart). */
export function notices(desired: Desired, observed: Observed, changes: ResourceChange[], opts: DiffOptions = {}): string[] {
  const changed = new Set(changes.map((c) => c.key));
  const out: string[] = [];
  for (const r of desired.resources) {
    const hook = kindOf(r.kind).notices;
    if (hook && !changed.has(r.key)) out.push(...hook(r, { observed, opts }));
  }
  return out;
}

/**
 * A declared object whose definition exists but cannot be read (observe's `unreadable`): it is not
 * compared and not touched; the change is a conflict of that resource alone (Stalled), so what
 * depends on it is blocked and everything else converges.
 */
function unreadableChange(r: DesiredResource, why: string, observed: Observed): ResourceChange {
  const own = ownershipOf(observed, r.kind, r.name, { config: r.config }, r.key);
  return change(r, 'conflict', `${r.kind} ${r.name} exists but ${why}; virtform leaves it untouched until its definition can be read`, own);
}

export function diff(desired: Desired, observed: Observed, opts: DiffOptions = {}): ResourceChange[] {
  const ctx = { observed, opts };
  const changes: ResourceChange[] = [];
  const byKind = new Map<ResourceKind, DesiredResource[]>(RESOURCE_KINDS.map((k) => [k, []]));
  const suspended = new Set<string>();
  const stalled = new Set<string>();
  for (const r of desired.resources) {
    // metadata.reconcile: disabled: left alone (the plan lists it under `suspended`).
    if (r.suspended) {
      suspended.add(r.key);
      continue;
    }
    const unreadable = observed.unreadable?.get(r.key);
    if (unreadable !== undefined) {
      stalled.add(r.key);
      changes.push(unreadableChange(r, unreadable, observed));
      continue;
    }
    byKind.get(r.kind)!.push(r);
    // A kind's change carries that kind's step operations: members of the registry's union.
    const c = kindOf(r.kind).diff(r, ctx) as ResourceChange | undefined;
    if (c) changes.push(c);
  }
  // The prune's deletes first: cross-resource adjustments see them (a renamed VM's new domain starts
  // after the old one, which holds its disks, is gone).
  changes.push(...diffPrune(desired, observed, opts));
  for (const k of RESOURCE_KINDS) KINDS[k].afterDiff?.(byKind.get(k)!, observed, changes, opts);
  // A cross-resource adjustment (a VM restarted for its replaced disk) never touches a suspended
  // one, nor one whose definition cannot be read (its conflict stays the only change).
  for (let i = changes.length - 1; i >= 0; i--) {
    const c = changes[i]!;
    if (suspended.has(c.key) || (stalled.has(c.key) && c.action !== 'conflict')) changes.splice(i, 1);
  }
  const order = (k: ResourceKind): number => RESOURCE_KINDS.indexOf(k);
  return changes.sort((a, b) => order(a.kind) - order(b.kind) || a.name.localeCompare(b.name));
}
