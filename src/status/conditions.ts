/**
 * Conditions kept in the state DB: a report's rows carry freshly derived conditions; persisting
 * them keeps each condition's `lastTransitionTime` while its status is unchanged (the DB decides,
 * so several readers — `virtform status`, the watcher — agree) and drops those of resources no
 * longer reported, except the fleet run's own types (`FLEET_CONDITION_TYPES`), which it prunes.
 */
import { FLEET_CONDITION_TYPES } from '../model/conditions.js';
import { resourceKey, type ResourceKind } from '../model/kinds.js';
import type { StateStore } from '../state/index.js';
import type { StatusRow } from './build.js';

export async function persistConditions(store: Pick<StateStore, 'conditions'>, rows: StatusRow[]): Promise<void> {
  const synced = await store.conditions.sync(
    rows.map((r) => ({ kind: r.kind as ResourceKind, name: r.name, host: r.host, conditions: r.conditions.map(({ lastTransitionTime: _t, ...c }) => c) })),
    // The fleet run's conditions (Unschedulable, HostUnreachable) are kept: a status does not
    // place VMs, and a status of one host does not know the others'.
    { prune: true, keepTypes: FLEET_CONDITION_TYPES },
  );
  for (const r of rows) r.conditions = synced.get(resourceKey(r.kind, r.name, r.host)) ?? r.conditions;
}

/** The table's CONDITIONS cell: the types that are True (`-` when none). */
export function trueConditions(r: Pick<StatusRow, 'conditions'>): string {
  const on = r.conditions.filter((c) => c.status === 'True').map((c) => c.type);
  return on.length ? on.join(',') : '-';
}
