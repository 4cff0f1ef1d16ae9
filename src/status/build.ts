/**
 * One status report for `virtform status` (table and --json) and the watcher's `/status`: a pure
 * function over what the state DB recorded, what the manifests declare, what the host shows now
 * (optional: offline or unreachable), the revisions the records point at, and what the watcher
 * knows about stalled resources.
 *
 * STATUS is derived, never copied from the last apply's record:
 *   stalled    the watcher will not retry it until an input changes (invalid definition, conflict)
 *   failed     the last apply of it failed (its error is in lastError)
 *   pending    declared but not created, changed in the manifests since the last apply, blocked,
 *              or recorded but no longer declared (the next reconcile deletes it)
 *   drifted    the host differs from the desired state (a VM destroyed outside virtform, an
 *              object missing)
 *   converged  the host shows exactly the desired state
 *   applied    offline: the last apply succeeded, the host was not asked
 *   unknown    the host could not be asked and the record says nothing more
 */
import { KIND_ORDER, resourceKey, type DesiredResource } from '../reconcile/desired.js';
import { isResourceKind, type ResourceKind } from '../model/kinds.js';
import { kindOf } from '../reconcile/kinds/index.js';
import type { StatusView } from '../reconcile/kinds/types.js';
import type { ResourceRecord, RevisionRecord } from '../state/index.js';
import type { AddressReport, NicAddresses } from './addresses.js';

export type ResourceStatus = 'converged' | 'drifted' | 'failed' | 'pending' | 'stalled' | 'applied' | 'unknown';

export interface StatusRevision {
  id: number;
  gitCommit: string | null;
  gitDirty: boolean;
  manifestDigest: string;
  finishedAt: string | null;
  /** `#18 5203174022-dirty`, as the table shows it. */
  label: string;
}

export interface StatusRow {
  kind: string;
  name: string;
  /** running | stopped (VMs), active (pools, networks), present (volumes); `undeclared (will be deleted)`. */
  desired: string;
  /** What the host shows now: running | stopped | active | inactive | present | absent | unknown. */
  observed: string;
  status: ResourceStatus;
  /** Why the status is not `converged` (one line). */
  reason: string | null;
  /** What the last apply recorded for it (`running`, `ready`, `failed`, `pending`, …), informational. */
  recordedStatus: string | null;
  lastError: string | null;
  attempts: number;
  generation: number;
  revision: StatusRevision | null;
  updatedAt: string | null;
  /** VMs: changes applied to the persistent definition that the running domain takes at its next boot. */
  restartRequired: unknown;
  /** One line the table prints below itself (e.g. "restart required for spec.vcpus (running with 1, defined 2)"). */
  note: { flag: string; text: string } | null;
  /**
   * VMs: the IP addresses of each NIC (by MAC) with their source (src/status/addresses.ts); null
   * for other kinds, and for a VM that is not running or when the host was not asked.
   */
  addresses: NicAddresses[] | null;
  /** VMs: running, and every NIC on a network with DHCP has an address (null for other kinds, and when the host was not asked). */
  addressesReady: boolean | null;
  /** VMs: which NICs are still waited for, and which are not waited for (network without DHCP). */
  addressesNote: string | null;
}

/** What the host showed (undefined when it was not asked, offline, or could not be reached). */
export type HostView = StatusView & { addresses?: AddressReport };

export interface StatusInput {
  records: ResourceRecord[];
  /** The declared resources (a manifest folder given, or the watcher's last good state). */
  declared?: readonly DesiredResource[];
  host?: HostView;
  /** Revisions by id, for the records' lastAppliedRevision. */
  revisions: ReadonlyMap<number, RevisionRecord>;
  /** The watcher's stalled resources by key, with the reason. */
  stalled?: ReadonlyMap<string, string>;
}

export interface StatusSummary {
  total: number;
  byStatus: Partial<Record<ResourceStatus, number>>;
}

export function revisionLabel(rev: Pick<RevisionRecord, 'id' | 'gitCommit' | 'gitDirty'>): string {
  const commit = rev.gitCommit ? ` ${rev.gitCommit.slice(0, 10)}${rev.gitDirty ? '-dirty' : ''}` : rev.gitDirty ? ' dirty' : '';
  return `#${rev.id}${commit}`;
}

function noteOf(host: HostView | undefined, kind: string, name: string, r: ResourceRecord | undefined): Pick<StatusRow, 'restartRequired' | 'note'> {
  const n = r && isResourceKind(kind) ? kindOf(kind).statusNote?.(host, { name, facts: r.details.facts }) : undefined;
  return { restartRequired: n?.flag === 'restart required' ? n.data : null, note: n ? { flag: n.flag, text: n.text } : null };
}

function addressesOf(host: HostView | undefined, kind: string, name: string): Pick<StatusRow, 'addresses' | 'addressesReady' | 'addressesNote'> {
  // Other kinds, and VMs when the host was not asked (offline, unreachable): unknown.
  if (kind !== 'VirtualMachine' || !host?.addresses) return { addresses: null, addressesReady: null, addressesNote: null };
  const a = host?.addresses?.vms.get(name);
  return { addresses: a?.nics ?? null, addressesReady: a?.ready ?? false, addressesNote: a?.running ? a.note : null };
}

/** What the host shows of a resource, through its kind's module; `unknown` when the host was not asked. */
function observedOf(host: HostView | undefined, kind: string, name: string, r: ResourceRecord | undefined, d: DesiredResource | undefined): string {
  if (!host || !isResourceKind(kind)) return 'unknown';
  return kindOf(kind).observedStatus(host, { name, uuid: r?.uuid ?? null, config: d?.config ?? r?.details.config });
}

function derive(
  r: ResourceRecord | undefined, d: DesiredResource | undefined, declaredGiven: boolean, desired: string, observed: string, stalled: string | undefined,
): { status: ResourceStatus; reason: string | null } {
  if (stalled !== undefined) return { status: 'stalled', reason: stalled };
  if (!r) return { status: 'pending', reason: observed === 'absent' || observed === 'unknown' ? 'not created yet' : 'not managed yet' };
  if (declaredGiven && !d) return { status: 'pending', reason: 'not declared: the next reconcile deletes it' };
  if (r.observedStatus === 'failed') return { status: 'failed', reason: r.lastError ?? 'the last apply failed' };
  if (r.observedStatus === 'pending') return { status: 'pending', reason: r.lastError ?? 'not applied yet' };
  if (d && r.specHash !== null && r.specHash !== d.specHash) return { status: 'pending', reason: 'manifest changed since the last apply' };
  if (observed === 'unknown') return r.lastError ? { status: 'unknown', reason: r.lastError } : { status: 'applied', reason: 'host not asked' };
  if (observed === desired) return { status: 'converged', reason: null };
  return { status: 'drifted', reason: observed === 'absent' ? `missing on the host (want ${desired})` : `${observed} on the host (want ${desired})` };
}

/** Build the rows, in plan order (pools, volumes, networks, VMs), then by name. */
export function buildStatus(input: StatusInput): { resources: StatusRow[]; summary: StatusSummary } {
  const declared = new Map<string, DesiredResource>();
  for (const d of input.declared ?? []) declared.set(resourceKey(d.kind, d.name), d);
  const declaredGiven = input.declared !== undefined;
  const revisionOf = (id: number | null): StatusRevision | null => {
    if (id === null) return null;
    const rev = input.revisions.get(id);
    if (!rev) return null;
    return { id, gitCommit: rev.gitCommit, gitDirty: rev.gitDirty, manifestDigest: rev.manifestDigest, finishedAt: rev.finishedAt, label: revisionLabel(rev) };
  };
  const rows: StatusRow[] = [];
  const seen = new Set<string>();
  const row = (kind: string, name: string, r: ResourceRecord | undefined, d: DesiredResource | undefined): StatusRow => {
    const key = resourceKey(kind as ResourceKind, name);
    const desired = d ? kindOf(d.kind).desiredStatus(d)
      : declaredGiven ? 'undeclared (will be deleted)'
        : r?.desiredState ?? (isResourceKind(kind) ? kindOf(kind).defaultDesiredStatus : 'unknown');
    const observed = observedOf(input.host, kind, name, r, d);
    const { status, reason } = derive(r, d, declaredGiven, desired, observed, input.stalled?.get(key));
    return {
      kind, name, desired, observed, status, reason,
      recordedStatus: r?.observedStatus ?? null, lastError: r?.lastError ?? null, attempts: r?.attempts ?? 0, generation: r?.generation ?? 0,
      revision: revisionOf(r?.lastAppliedRevision ?? null), updatedAt: r?.updatedAt ?? null,
      ...noteOf(input.host, kind, name, r),
      ...addressesOf(input.host, kind, name),
    };
  };
  for (const r of input.records) {
    const key = resourceKey(r.kind as ResourceKind, r.name);
    seen.add(key);
    rows.push(row(r.kind, r.name, r, declared.get(key)));
  }
  for (const [key, d] of declared) if (!seen.has(key)) rows.push(row(d.kind, d.name, undefined, d));
  rows.sort((a, b) => KIND_ORDER.indexOf(a.kind as ResourceKind) - KIND_ORDER.indexOf(b.kind as ResourceKind) || a.name.localeCompare(b.name));
  const byStatus: StatusSummary['byStatus'] = {};
  for (const r of rows) byStatus[r.status] = (byStatus[r.status] ?? 0) + 1;
  return { resources: rows, summary: { total: rows.length, byStatus } };
}
