/**
 * Diff: desired resources against observed objects and recorded state.
 *
 * For each resource its kind's module (`kinds/`) decides one change (create, update, replace or
 * conflict) with the field-level before → after, a human reason, and the ordered steps that carry
 * it out. What virtform owns but no manifest declares is pruned here, with the kind's delete steps.
 */
import { compareHosts, hostOf, hostOfKey, onHost, RESOURCE_KINDS, type ResourceKind } from '../model/kinds.js';
import { perHost, type Observed, type ObservedHosts } from './core/observed.js';
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
    const base = { key, kind, name, host: hostOfKey(key), fields: [], notes: [] as string[], previous: prev, ownership: own.state, drift: false };
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
export function notices(desired: Desired, observed: Observed | ObservedHosts, changes: ResourceChange[], opts: DiffOptions = {}): string[] {
  const changed = new Set(changes.map((c) => c.key));
  const hosts = perHost(observed);
  const out: string[] = [];
  for (const r of desired.resources) {
    const hook = kindOf(r.kind).notices;
    const o = hosts.get(r.host);
    if (hook && o && !changed.has(r.key)) out.push(...hook(r, { observed: o, opts }));
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

/**
 * The changes of every host of the run: each host's declared resources against what was observed
 * on it (its objects, its records, its journal), the prune of what it records but no manifest
 * declares, and the kinds' cross-resource adjustments within that host (dependencies never cross
 * hosts). Ordered by kind (build-up order), name, then host.
 */
export function diff(desired: Desired, observed: Observed | ObservedHosts, opts: DiffOptions = {}): ResourceChange[] {
  let changes: ResourceChange[] = [];
  const hosts = perHost(observed);
  for (const o of hosts.values()) changes.push(...diffHost(desired, o, opts));
  if (hosts.size > 1) changes = pairMoves(desired, hosts, changes, opts);
  const order = (k: ResourceKind): number => RESOURCE_KINDS.indexOf(k);
  return changes.sort((a, b) => order(a.kind) - order(b.kind) || a.name.localeCompare(b.name) || compareHosts(hostOf(a), hostOf(b)));
}

/** One cold move found by {@link pairMoves}: the source's prune delete and the resource declared elsewhere. */
interface MovePair {
  kind: ResourceKind;
  name: string;
  sourceKey: string;
  targetKey: string;
  desired: DesiredResource;
}

/**
 * Cold moves: an object virtform owns on host A whose manifest is now declared on host B (same
 * kind and name; VM names are unique in a fleet) is moved, not deleted and created: its kind's
 * `move` hook turns the prune's delete on A and the change on B into the move's two changes.
 * A move that cannot be made is a conflict on both hosts (nothing is done), and so is every move
 * that depends on it or that it depends on (a VM with snapshots keeps its disks where they are; a
 * VM whose disk cannot move stays).
 */
function pairMoves(desired: Desired, hosts: ObservedHosts, changes: ResourceChange[], opts: DiffOptions): ResourceChange[] {
  const declared = new Map<string, DesiredResource[]>();
  for (const r of desired.resources) declared.set(`${r.kind}/${r.name}`, [...(declared.get(`${r.kind}/${r.name}`) ?? []), r]);
  const byKey = new Map(changes.map((c) => [c.key, c]));
  let pairs: MovePair[] = [];
  for (const c of changes) {
    if (c.action !== 'delete' || c.ownership !== 'owned' || c.release || !kindOf(c.kind).move) continue;
    if (!c.steps.some((s) => s.op !== 'record.forget')) continue;
    const from = c.host ?? hostOfKey(c.key);
    const targets = (declared.get(`${c.kind}/${c.name}`) ?? []).filter((r) => r.host !== from && hosts.has(r.host) && !r.suspended);
    if (targets.length !== 1) continue;
    pairs.push({ kind: c.kind, name: c.name, sourceKey: c.key, targetKey: targets[0]!.key, desired: targets[0]! });
  }
  if (pairs.length === 0) return changes;
  const moving = new Set(pairs.map((p) => p.sourceKey));
  // Users of each object on its host: by the desired configs there, and by the configs recorded for the changes there.
  const users = new Map<string, Set<string>>();
  const use = (user: string, dep: string): void => void users.set(dep, (users.get(dep) ?? new Set()).add(user));
  for (const r of desired.resources) for (const d of dependenciesOfKey(r)) use(r.key, d);
  for (const c of changes) {
    // An object already gone (a record left to forget) uses nothing any more.
    if (c.ownership === 'absent') continue;
    const h = c.host ?? hostOfKey(c.key);
    const prev = c.previous ?? recordedConfig(hosts.get(h)!, c.key);
    for (const d of kindOf(c.kind).recordedDependencies(prev)) use(c.key, onHost(d, h));
  }
  for (const p of pairs) {
    const source = byKey.get(p.sourceKey)!;
    const out = kindOf(p.kind).move!({
      name: p.name, source, target: byKey.get(p.targetKey), desired: p.desired,
      from: hosts.get(source.host ?? hostOfKey(source.key))!, to: hosts.get(p.desired.host)!, moving, all: desired, opts,
      usersOnSource: [...(users.get(p.sourceKey) ?? [])],
    }) as { source: ResourceChange; target?: ResourceChange } | undefined;
    if (!out) {
      // No move after all: the source's delete and the target's change stay as they were.
      moving.delete(p.sourceKey);
      continue;
    }
    byKey.set(p.sourceKey, out.source);
    if (out.target) byKey.set(p.targetKey, out.target);
    else byKey.delete(p.targetKey);
  }
  pairs = pairs.filter((p) => moving.has(p.sourceKey));
  const needs = (p: MovePair): string[] => dependenciesOfKey(p.desired);
  // What a moving resource uses must move with it when it goes from the source host: a dependency
  // deleted there but not moving (its target side a plain create: empty) stops the move, so a VM is
  // never defined on a volume that was not copied.
  for (const p of pairs) {
    const from = byKey.get(p.sourceKey)?.host ?? hostOfKey(p.sourceKey);
    const lost = needs(p).map((d) => onHost(d, from)).find((d) => {
      const c = byKey.get(d);
      return c?.action === 'delete' && !moving.has(d) && c.steps.some((s) => s.op !== 'record.forget');
    });
    if (lost) conflictMove(byKey, p, `it uses ${lost}, which would be deleted there and not moved with it`);
  }
  // A move that cannot be made stops the moves tied to it: what it uses, and what uses it.
  const conflicting = (p: MovePair): boolean => byKey.get(p.sourceKey)?.action === 'conflict' || byKey.get(p.targetKey)?.action === 'conflict';
  let grew = true;
  while (grew) {
    grew = false;
    for (const p of pairs) {
      if (conflicting(p)) continue;
      const bad = pairs.find((q) => q !== p && conflicting(q) && (needs(q).includes(p.targetKey) || needs(p).includes(q.targetKey)));
      const own = byKey.get(p.targetKey)?.action === 'conflict' || byKey.get(p.sourceKey)?.action === 'conflict';
      if (!bad && !own) continue;
      const why = bad ? `moves with ${bad.targetKey}, which cannot move: ${byKey.get(bad.targetKey)?.reason ?? byKey.get(bad.sourceKey)?.reason}` : '';
      conflictMove(byKey, p, why);
      grew = true;
    }
  }
  // A move one side of which conflicts is a conflict on both sides.
  for (const p of pairs) {
    const s = byKey.get(p.sourceKey);
    const t = byKey.get(p.targetKey);
    if (s?.action === 'conflict' && t?.action !== 'conflict') conflictMove(byKey, p, s.reason);
    if (t?.action === 'conflict' && s?.action !== 'conflict') conflictMove(byKey, p, t.reason);
  }
  const kept = changes.filter((c) => byKey.has(c.key)).map((c) => byKey.get(c.key)!);
  const added = [...byKey.values()].filter((c) => !changes.some((x) => x.key === c.key));
  const order = (k: ResourceKind): number => RESOURCE_KINDS.indexOf(k);
  return [...kept, ...added].sort((a, b) => order(a.kind) - order(b.kind) || a.name.localeCompare(b.name) || compareHosts(hostOf(a), hostOf(b)));
}

function dependenciesOfKey(r: DesiredResource): string[] {
  return kindOf(r.kind).dependencies(r) as string[];
}

/** Both sides of a move become conflicts with `why` (nothing of the move runs; the source keeps everything). */
function conflictMove(byKey: Map<string, ResourceChange>, p: MovePair, why: string): void {
  const s = byKey.get(p.sourceKey)!;
  const t = byKey.get(p.targetKey);
  const reason = why || (s.action === 'conflict' ? s.reason : t?.reason ?? 'cannot move');
  const to = p.desired.host;
  const from = s.host ?? hostOfKey(s.key);
  const move = { from, to, partner: p.targetKey };
  byKey.set(p.sourceKey, { ...s, action: 'conflict', steps: [], reason: `cannot move to host ${to}: ${reason}`, move: { ...move, role: 'source' }, waitFor: [] });
  const base: ResourceChange = t ?? {
    key: p.targetKey, kind: p.kind, name: p.name, host: to, action: 'conflict', reason: '', fields: [], notes: [], steps: [],
    desired: p.desired, ownership: 'absent', drift: false,
  };
  byKey.set(p.targetKey, {
    ...base, action: 'conflict', steps: [], reason: `cannot move from host ${from}: ${reason}`,
    move: { from, to, role: 'target', partner: p.sourceKey },
  });
}

function diffHost(desired: Desired, observed: Observed, opts: DiffOptions): ResourceChange[] {
  const host = hostOf(observed);
  const ctx = { observed, opts };
  const changes: ResourceChange[] = [];
  const byKind = new Map<ResourceKind, DesiredResource[]>(RESOURCE_KINDS.map((k) => [k, []]));
  const suspended = new Set<string>();
  const stalled = new Set<string>();
  for (const r of desired.resources) {
    if (r.host !== host) continue;
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
    else c.host ??= host;
  }
  return changes;
}
