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
import { hostOfKey, parseResourceKey, RESOURCE_KINDS, type HostId, type ResourceKind } from '../model/kinds.js';
import { dependenciesOf } from './desired.js';
import { perHost, type HostPorts, type Observed, type ObservedHosts } from './core/observed.js';
import { recordedConfig, type DataLoss } from './core/change.js';
import { isTeardown } from './diff.js';
import { kindOf, type Desired, type ResourceChange } from './kinds/index.js';
import type { HostPort } from './ports.js';
import type { StoredReference } from '../state/index.js';
import { recordedDependenciesOf } from './plan.js';

const kindOfKey = (key: string): ResourceKind => parseResourceKey(key).kind;

export interface SafetyOptions {
  /** Consent to data loss: classify, but hold nothing. */
  allowDataLoss?: boolean;
  /** The host, for the references a kind's data rule gathers host-wide (only when something would be destroyed). */
  host?: HostPort;
  /** The hosts of a run of several, by host id (instead of `host`). */
  hosts?: HostPorts;
  /** References recorded by earlier runs (the state DB), for these paths on that host. */
  recorded?: (host: HostId, paths: string[]) => Promise<StoredReference[]>;
}

function describe(loss: DataLoss): string {
  return `${loss.volume}${loss.path ? ` (${loss.path})` : ''}: ${loss.why.join(', ')}`;
}

/** Resource keys a change's resource needs: by its desired config and by the config recorded for it. */
function needs(c: ResourceChange, desired: Desired, observed: Observed | undefined): string[] {
  const r = desired.byKey.get(c.key);
  const recorded = c.previous ?? (observed ? recordedConfig(observed, c.key) : undefined);
  return [...new Set([...(r ? dependenciesOf(r) : []), ...recordedDependenciesOf(c, recorded)])];
}

/**
 * Classify every change (`c.dataLoss`) and, without consent, hold the destructive ones and what
 * depends on them (`c.held`). Returns the held resource keys with the reason of each.
 */
export async function holdDataLoss(
  desired: Desired, observedIn: Observed | ObservedHosts, changes: ResourceChange[], opts: SafetyOptions = {},
): Promise<Map<string, string>> {
  const hosts = perHost(observedIn);
  const hostOfChange = (c: ResourceChange): string => c.host ?? hostOfKey(c.key);
  const held = new Map<string, string>();
  // A move's source is deleted only once its target verified: part of the move, never data loss.
  changes = changes.filter((c) => c.move?.role !== 'source');
  // What a kind's diff already named (a deleted file still open by a running VM: recreating it
  // empty loses the guest's writes) is held like what the kinds' data rules find below.
  for (const c of changes) {
    const loss = c.action === 'conflict' ? undefined : c.dataLoss?.[0];
    if (loss && !opts.allowDataLoss) held.set(c.key, `would destroy the contents of ${describe(loss)}`);
  }
  const byKey = new Map(changes.map((c) => [c.key, c]));
  for (const [h, observed] of hosts) {
    // Each host's rule sees that host's changes, objects and records only.
    const ofHost = changes.filter((c) => hostOfChange(c) === h);
    const host = opts.hosts ? opts.hosts.get(h) : opts.host;
    for (const kind of RESOURCE_KINDS) {
      const rule = kindOf(kind).dataLoss;
      if (!rule) continue;
      // The kind's rule picks its own changes (conflicts destroy nothing).
      const recorded = opts.recorded;
      const ctx = { desired, observed, host, ...(recorded ? { recorded: (paths: string[]) => recorded(h, paths) } : {}) };
      for (const [key, loss] of await rule(ofHost, ctx)) {
        byKey.get(key)!.dataLoss = [loss];
        if (!opts.allowDataLoss) held.set(key, `would destroy the contents of ${describe(loss)}`);
      }
    }
  }
  if (held.size === 0) return held;

  // Conflicts have no steps: nothing of theirs runs, so nothing of theirs is held.
  const live = changes.filter((c) => c.steps.length > 0);
  const needsOf = new Map(live.map((c) => [c.key, needs(c, desired, hosts.get(hostOfChange(c)))]));
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
export function brakeDeletions(observedIn: Observed | ObservedHosts, changes: ResourceChange[], max: MaxDeletions): import('./plan.js').DeletionBrake {
  const records = [...perHost(observedIn).values()].flatMap((o) => [...o.records.values()]);
  // A cold move is one move, not a deletion (its source is deleted only after the target verified).
  // Counted once: a resource moving with another (a VM's disks) is part of that one's move.
  const sources = changes.filter((c) => c.move?.role === 'source' && c.action !== 'conflict');
  const movingKeys = new Set(sources.map((c) => c.key));
  const partOfAnother = (c: ResourceChange): boolean => sources.some((u) => u !== c && recordedDependenciesOf(u).includes(c.key) && movingKeys.has(u.key));
  const moves = sources.filter((c) => !partOfAnother(c)).map((c) => `${c.kind}/${c.name}: ${c.move!.from} → ${c.move!.to}`);
  const deleting = changes
    .filter((c) => !c.release && !c.move)
    .filter((c) => c.action === 'replace' || (c.action === 'delete' && c.steps.some((s) => s.op !== 'record.forget')));
  const deletions = deleting.map((c) => c.key);
  const owned = records.length;
  const moved = moves.length > 0 ? { moves } : {};
  if (max === 'all') return { deletions, ...moved, max: null, source: 'all', owned, braked: false };
  const limit = max ?? defaultMaxDeletions(owned);
  const brake: import('./plan.js').DeletionBrake = { deletions, ...moved, max: limit, source: max === undefined ? 'default' : 'flag', owned, braked: deletions.length > limit };
  if (max === undefined && !brake.braked) {
    for (const kind of RESOURCE_KINDS) {
      if (!kindOf(kind).brakeOnWipe) continue;
      const ownedOfKind = records.filter((r) => r.kind === kind).length;
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
