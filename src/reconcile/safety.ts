/**
 * The data-loss hold and the mass-deletion brake: no data is destroyed without consent.
 *
 * A pass after diff. Which steps destroy data is each kind's call (`KindHandler.dataLoss`: the
 * Volume kind's rule is in `kinds/volume/data.ts`); this pass only dispatches to it and holds.
 *
 * Without consent (`reconcile --allow-data-loss`) such a change is held, and so is everything that
 * depends on it: what is built on it (a clone on a held base, a VM restarted for a held disk), what
 * uses a held volume and is deleted with it (the VM of a held disk: deleting it first would make the
 * disk look unattached, and so derived, to the next run), and what a held change needs and is torn
 * down (its pool; the network of a held VM). The
 * plan lists held changes apart from conflicts (`plan.held`); apply runs none of their steps.
 */
import { parseResourceKey, RESOURCE_KINDS, type ResourceKind } from '../model/kinds.js';
import { dependenciesOf } from './desired.js';
import type { Observed } from './core/observed.js';
import { recordedConfig, type DataLoss } from './core/change.js';
import { isTeardown } from './diff.js';
import { kindOf, type Desired, type ResourceChange } from './kinds/index.js';
import type { HostPort } from './ports.js';
import type { StoredReference } from '../state/index.js';

const kindOfKey = (key: string): ResourceKind => parseResourceKey(key).kind;

export interface SafetyOptions {
  /** Consent to data loss: classify, but hold nothing. */
  allowDataLoss?: boolean;
  /** The host, for the references a kind's data rule gathers host-wide (only when something would be destroyed). */
  host?: HostPort;
  /** References recorded by earlier runs (the state DB), for these paths. */
  recorded?: (paths: string[]) => Promise<StoredReference[]>;
}

function describe(loss: DataLoss): string {
  return `${loss.volume}${loss.path ? ` (${loss.path})` : ''}: ${loss.why.join(', ')}`;
}

/** Resource keys a change's resource needs: by its desired config and by the config recorded for it. */
function needs(c: ResourceChange, desired: Desired, observed: Observed): string[] {
  const r = desired.byKey.get(c.key);
  const recorded = c.previous ?? recordedConfig(observed, c.key);
  return [...new Set([...(r ? dependenciesOf(r) : []), ...kindOf(c.kind).recordedDependencies(recorded)])];
}

/**
 * Classify every change (`c.dataLoss`) and, without consent, hold the destructive ones and what
 * depends on them (`c.held`). Returns the held resource keys with the reason of each.
 */
export async function holdDataLoss(
  desired: Desired, observed: Observed, changes: ResourceChange[], opts: SafetyOptions = {},
): Promise<Map<string, string>> {
  const held = new Map<string, string>();
  // What a kind's diff already named (a deleted file still open by a running VM: recreating it
  // empty loses the guest's writes) is held like what the kinds' data rules find below.
  for (const c of changes) {
    const loss = c.action === 'conflict' ? undefined : c.dataLoss?.[0];
    if (loss && !opts.allowDataLoss) held.set(c.key, `would destroy the contents of ${describe(loss)}`);
  }
  const byKey = new Map(changes.map((c) => [c.key, c]));
  for (const kind of RESOURCE_KINDS) {
    const rule = kindOf(kind).dataLoss;
    if (!rule) continue;
    // The kind's rule picks its own changes (conflicts destroy nothing).
    for (const [key, loss] of await rule(changes, { desired, observed, host: opts.host, recorded: opts.recorded })) {
      byKey.get(key)!.dataLoss = [loss];
      if (!opts.allowDataLoss) held.set(key, `would destroy the contents of ${describe(loss)}`);
    }
  }
  if (held.size === 0) return held;

  // Conflicts have no steps: nothing of theirs runs, so nothing of theirs is held.
  const live = changes.filter((c) => c.steps.length > 0);
  const needsOf = new Map(live.map((c) => [c.key, needs(c, desired, observed)]));
  let grew = true;
  while (grew) {
    grew = false;
    for (const c of live) {
      if (held.has(c.key)) continue;
      // Built on something held; or, for a teardown, using a held object of a kind that holds data
      // (`holdsData`: the VM of a held disk, the clone of a held base: gone first, they would leave
      // the volume looking derived to the next run).
      const tearsDownOnly = c.steps.every((s) => isTeardown(s.op));
      const dep = needsOf.get(c.key)!.find((d) => held.has(d) && (!tearsDownOnly || kindOf(kindOfKey(d)).holdsData === true));
      if (dep) {
        held.set(c.key, `depends on ${dep}, which is held`);
        grew = true;
        continue;
      }
      // Torn down while something held still needs it.
      if (c.steps.some((s) => isTeardown(s.op))) {
        const user = [...held.keys()].find((h) => (needsOf.get(h) ?? []).includes(c.key));
        if (user) {
          held.set(c.key, `${user}, which uses it, is held`);
          grew = true;
        }
      }
    }
  }
  for (const c of changes) {
    const why = held.get(c.key);
    if (why) c.held = why;
  }
  return held;
}

/** `--max-deletions`: a number, `all` (no brake), or undefined (the default). */
export type MaxDeletions = number | 'all' | undefined;

/** The default limit: max(5, ceil(10% of the resources the state DB records)). */
export function defaultMaxDeletions(owned: number): number {
  return Math.max(5, Math.ceil(owned * 0.1));
}

/**
 * The mass-deletion brake: a plan that deletes more objects than allowed is refused as a whole (a
 * repository push that lost most manifests, a moved folder, a partial checkout). It counts the
 * plan's intent: every delete of an object that exists and every replace (a replace deletes, then
 * recreates), held or blocked or not (a commit removing everything is a wipe even when part of it
 * waits for consent). Not counted: releases (nothing is deleted) and forgetting records of objects
 * already gone or not ours. The limit is `max` (`--max-deletions N`), or by default
 * max(5, ceil(10% of owned)); `all` disables it. By default a plan is also refused when it deletes
 * every owned object of a kind that asks for it (`KindHandler.brakeOnWipe`: the VMs) and there are
 * at least two of them; `--max-deletions N` lifts that. `--allow-empty` does not lift the brake: a
 * full teardown beyond the limit is `--allow-empty --max-deletions all`.
 */
export function brakeDeletions(observed: Observed, changes: ResourceChange[], max: MaxDeletions): import('./plan.js').DeletionBrake {
  const deleting = changes
    .filter((c) => !c.release)
    .filter((c) => c.action === 'replace' || (c.action === 'delete' && c.steps.some((s) => s.op !== 'record.forget')));
  const deletions = deleting.map((c) => c.key);
  const owned = observed.records.size;
  if (max === 'all') return { deletions, max: null, source: 'all', owned, braked: false };
  const limit = max ?? defaultMaxDeletions(owned);
  const brake: import('./plan.js').DeletionBrake = { deletions, max: limit, source: max === undefined ? 'default' : 'flag', owned, braked: deletions.length > limit };
  if (max === undefined && !brake.braked) {
    for (const kind of RESOURCE_KINDS) {
      if (!kindOf(kind).brakeOnWipe) continue;
      const ownedOfKind = [...observed.records.values()].filter((r) => r.kind === kind).length;
      const deleted = deleting.filter((c) => c.kind === kind && c.action === 'delete').length;
      if (ownedOfKind >= 2 && deleted === ownedOfKind) {
        brake.braked = true;
        brake.wipe = { kind, owned: ownedOfKind };
        break;
      }
    }
  }
  return brake;
}
