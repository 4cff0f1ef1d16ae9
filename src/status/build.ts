/**
 * One status report for `virtform status` (table and --json) and the watcher's `/status`: a pure
 * function over what the state DB recorded, what the manifests declare, what the host shows now
 * (optional: offline or unreachable), the revisions the records point at, and what the watcher
 * knows about stalled resources.
 *
 * STATUS is derived, never copied from the last apply's record:
 *   stalled    the watcher will not retry it until an input changes (invalid definition, conflict,
 *              held for data loss, braked)
 *   suspended  `metadata.reconcile: disabled`: virtform leaves it alone
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
import { compareHosts, hostOf, isResourceKind, LOCAL_HOST, type HostId, type ResourceKind } from '../model/kinds.js';
import { isGuestKind, kindOf } from '../reconcile/kinds/index.js';
import type { StatusView } from '../reconcile/core/kind.js';
import type { AddressReport, NicAddresses } from './addresses.js';
import type { ResourceRecord, RevisionRecord, Suspension } from '../state/index.js';
import type { Condition, ConditionDraft } from '../model/conditions.js';
import { HELD_FOR_DATA_LOSS_FACT, RECONCILE_DISABLED_FACT } from '../reconcile/diff.js';
import { STALL_CONDITION_REASON, stallText, type Stall } from './stall.js';

export type ResourceStatus = 'converged' | 'drifted' | 'failed' | 'pending' | 'stalled' | 'suspended' | 'applied' | 'unknown';

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
  /** The host the resource lives on (`local`: the implicit host of `--uri`). */
  host: HostId;
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
  /** VMs with graphics, while running: type, listen address and port of the VNC/SPICE server (only then present). */
  graphics?: { type: string; listen?: string; port?: number }[];
  /** Typed conditions (src/model/conditions.ts), one per emitted type, with their last transition times. */
  conditions: Condition[];
}

/** What the host showed (undefined when it was not asked, offline, or could not be reached). */
export type HostView = StatusView & { addresses?: AddressReport };

export interface StatusInput {
  records: ResourceRecord[];
  /** The declared resources (a manifest folder given, or the watcher's last good state). */
  declared?: readonly DesiredResource[];
  /** What the local host showed (a single-host status). */
  host?: HostView;
  /** What each host showed, by host id (instead of `host`; a host absent here was not asked). */
  hosts?: ReadonlyMap<HostId, HostView>;
  /**
   * A fleet status: the hosts that could not be reached, with why. Given (even empty), every row
   * carries the `HostUnreachable` condition; the rows of these hosts are `unknown` with it True.
   */
  hostErrors?: ReadonlyMap<HostId, string>;
  /** Revisions by id, for the records' lastAppliedRevision. */
  revisions: ReadonlyMap<number, RevisionRecord>;
  /** The watcher's stalled resources by key, with the reason. */
  stalled?: ReadonlyMap<string, Stall>;
  /** Drift a plan found (deep comparison) and no apply has corrected yet, by key: the plan's reason. */
  drift?: ReadonlyMap<string, string>;
  /** Other changes the same plan has for a resource (a manifest edit, an interrupted operation), by key: the plan's reason. */
  pending?: ReadonlyMap<string, string>;
  /** `virtform suspend` on this DB. */
  suspension?: Suspension;
  /** Conditions stored before, by key: a condition whose status is unchanged keeps its transition time. */
  previousConditions?: ReadonlyMap<string, readonly Condition[]>;
  /** Time of a transition happening now (default: the current time). */
  now?: string;
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
  const n = r && isResourceKind(kind) ? kindOf(kind).statusNote?.(host, { name, facts: r.details.facts, config: r.details.config }) : undefined;
  return { restartRequired: n?.flag === 'restart required' ? n.data : null, note: n ? { flag: n.flag, text: n.text } : null };
}

function addressesOf(host: HostView | undefined, kind: string, name: string): Pick<StatusRow, 'addresses' | 'addressesReady' | 'addressesNote'> {
  // Other kinds, and VMs when the host was not asked (offline, unreachable): unknown.
  if (!isGuestKind(kind) || !host?.addresses) return { addresses: null, addressesReady: null, addressesNote: null };
  const a = host?.addresses?.vms.get(name);
  return { addresses: a?.nics ?? null, addressesReady: a?.ready ?? false, addressesNote: a?.running ? a.note : null };
}

/** What the host shows of a resource, through its kind's module; `unknown` when the host was not asked. */
function observedOf(host: HostView | undefined, kind: string, name: string, r: ResourceRecord | undefined, d: DesiredResource | undefined): string {
  if (!host || !isResourceKind(kind)) return 'unknown';
  return kindOf(kind).observedStatus(host, { name, uuid: r?.uuid ?? null, config: d?.config ?? r?.details.config });
}

function derive(
  r: ResourceRecord | undefined, d: DesiredResource | undefined, declaredGiven: boolean, desired: string, observed: string, stalled: Stall | undefined,
  drift: string | undefined, pending?: string,
): { status: ResourceStatus; reason: string | null } {
  if (stalled !== undefined) return { status: 'stalled', reason: stallText(stalled) };
  if (isDisabled(r, d, declaredGiven)) return { status: 'suspended', reason: 'metadata.reconcile: disabled: left alone' };
  if (!r) return { status: 'pending', reason: observed === 'absent' || observed === 'unknown' ? 'not created yet' : 'not managed yet' };
  if (declaredGiven && !d) return { status: 'pending', reason: 'not declared: the next reconcile deletes it' };
  if (r.observedStatus === 'failed') return { status: 'failed', reason: r.lastError ?? 'the last apply failed' };
  if (r.observedStatus === 'pending') return { status: 'pending', reason: r.lastError ?? 'not applied yet' };
  if (d && r.specHash !== null && r.specHash !== d.specHash) return { status: 'pending', reason: 'manifest changed since the last apply' };
  if (observed === 'unknown') return r.lastError ? { status: 'unknown', reason: r.lastError } : { status: 'applied', reason: 'host not asked' };
  // The plan's own comparison: a resource it has a change for is never converged.
  if (observed === desired && drift !== undefined) return { status: 'drifted', reason: drift };
  if (observed === desired && pending !== undefined) return { status: 'pending', reason: pending };
  if (observed === desired) return { status: 'converged', reason: null };
  return { status: 'drifted', reason: observed === 'absent' ? `missing on the host (want ${desired})` : `${observed} on the host (want ${desired})` };
}

/** `metadata.reconcile: disabled`: declared so, or (no manifests given) recorded so at the last apply. */
function isDisabled(r: ResourceRecord | undefined, d: DesiredResource | undefined, declaredGiven: boolean): boolean {
  if (d) return d.suspended === true;
  if (declaredGiven) return false;
  return (r?.details.facts as Record<string, unknown> | undefined)?.[RECONCILE_DISABLED_FACT] === true;
}

/** The conditions of one row, derived from what the row already says (no host calls of their own). */
export function deriveConditions(
  row: Omit<StatusRow, 'conditions'>, r: ResourceRecord | undefined, disabled: boolean, input: StatusInput,
): ConditionDraft[] {
  const key = resourceKey(row.kind as ResourceKind, row.name, row.host);
  const t = (type: ConditionDraft['type'], on: boolean, reason: string, message: string): ConditionDraft =>
    ({ type, status: on ? 'True' : 'False', reason, message });
  const why = row.reason ?? '';
  const camel = (s: string): string => s.charAt(0).toUpperCase() + s.slice(1);
  const stalled = input.stalled?.get(key);
  const facts = (r?.details.facts as Record<string, unknown> | undefined) ?? {};
  const heldFact = typeof facts[HELD_FOR_DATA_LOSS_FACT] === 'string' ? facts[HELD_FOR_DATA_LOSS_FACT] as string : undefined;
  const heldStall = stalled?.reason === 'held' ? stalled.detail.trim() : undefined;
  const held = heldStall ?? heldFact;
  const restart = row.note?.flag === 'restart required';
  const s = input.suspension;
  return [
    row.status === 'converged' ? t('Ready', true, 'Converged', 'the host shows the desired state')
      : t('Ready', false, camel(row.status), why || row.status),
    row.status === 'pending' ? t('Reconciling', true, 'ChangesPending', why || 'changes not applied yet')
      : t('Reconciling', false, 'Idle', 'no changes waiting to be applied'),
    stalled !== undefined
      ? t('Stalled', true, STALL_CONDITION_REASON[stalled.reason], stallText(stalled))
      : t('Stalled', false, 'Progressing', 'not stalled'),
    row.status === 'drifted' ? t('Drifted', true, row.observed === 'absent' ? 'MissingOnHost' : 'ObservedDiffers', why)
      : t('Drifted', false, 'NoDrift', 'no difference from the desired state seen'),
    restart ? t('RestartRequired', true, 'PendingRestart', row.note!.text) : t('RestartRequired', false, 'UpToDate', 'the running object matches its definition'),
    disabled ? t('Suspended', true, 'ManifestDisabled', 'metadata.reconcile: disabled: not changed, not pruned')
      : s ? t('Suspended', true, 'DatabaseSuspended', `suspended since ${s.since}, by ${s.by}${s.reason ? ` (${s.reason})` : ''}`)
        : t('Suspended', false, 'Active', 'reconciled'),
    held !== undefined ? t('HeldForDataLoss', true, 'NeedsConsent', `${held} (needs reconcile --allow-data-loss)`)
      : t('HeldForDataLoss', false, 'NotHeld', 'no change held'),
    ...(input.hostErrors === undefined ? [] : [input.hostErrors.has(row.host)
      ? t('HostUnreachable', true, 'ConnectionFailed', `host ${row.host} cannot be reached: ${input.hostErrors.get(row.host)!}`)
      : t('HostUnreachable', false, 'Connected', `host ${row.host} answered`)]),
  ];
}

/** Give drafts their transition times: kept from `previous` while the status is unchanged, else `now`. */
export function withTransitions(drafts: ConditionDraft[], previous: readonly Condition[] | undefined, now: string): Condition[] {
  return drafts.map((c) => {
    const prev = previous?.find((p) => p.type === c.type);
    return { ...c, lastTransitionTime: prev && prev.status === c.status ? prev.lastTransitionTime : now };
  });
}

/** Build the rows, in plan order (pools, volumes, networks, VMs), then by name. */
export function buildStatus(input: StatusInput): { resources: StatusRow[]; summary: StatusSummary } {
  const declared = new Map<string, DesiredResource>();
  for (const d of input.declared ?? []) declared.set(resourceKey(d.kind, d.name, d.host), d);
  const viewOf = (h: HostId): HostView | undefined => input.hosts ? input.hosts.get(h) : h === LOCAL_HOST ? input.host : undefined;
  const declaredGiven = input.declared !== undefined;
  const revisionOf = (id: number | null): StatusRevision | null => {
    if (id === null) return null;
    const rev = input.revisions.get(id);
    if (!rev) return null;
    return { id, gitCommit: rev.gitCommit, gitDirty: rev.gitDirty, manifestDigest: rev.manifestDigest, finishedAt: rev.finishedAt, label: revisionLabel(rev) };
  };
  const rows: StatusRow[] = [];
  const seen = new Set<string>();
  const row = (kind: string, name: string, hostId: HostId, r: ResourceRecord | undefined, d: DesiredResource | undefined): StatusRow => {
    const key = resourceKey(kind as ResourceKind, name, hostId);
    const host = viewOf(hostId);
    const desired = d ? kindOf(d.kind).desiredStatus(d)
      : declaredGiven ? 'undeclared (will be deleted)'
        : r?.desiredState ?? (isResourceKind(kind) ? kindOf(kind).defaultDesiredStatus : 'unknown');
    const observed = observedOf(host, kind, name, r, d);
    const derived = derive(r, d, declaredGiven, desired, observed, input.stalled?.get(key), input.drift?.get(key), input.pending?.get(key));
    // A host that could not be reached: what it shows is unknown, whatever the record says (a
    // stalled, suspended or failed resource keeps that status: it holds whatever the host does).
    const unreachable = input.hostErrors?.get(hostId);
    const { status, reason } = unreachable !== undefined && !['stalled', 'suspended', 'failed'].includes(derived.status)
      ? { status: 'unknown' as const, reason: `HostUnreachable: ${unreachable}` } : derived;
    const base = {
      kind, name, host: hostId, desired, observed, status, reason,
      recordedStatus: r?.observedStatus ?? null, lastError: r?.lastError ?? null, attempts: r?.attempts ?? 0, generation: r?.generation ?? 0,
      revision: revisionOf(r?.lastAppliedRevision ?? null), updatedAt: r?.updatedAt ?? null,
      ...noteOf(host, kind, name, r),
      ...addressesOf(host, kind, name),
      ...(isGuestKind(kind) && host?.graphics?.has(name) ? { graphics: host.graphics.get(name)! } : {}),
    };
    const drafts = deriveConditions(base, r, isDisabled(r, d, declaredGiven), input);
    return { ...base, conditions: withTransitions(drafts, input.previousConditions?.get(key), now) };
  };
  const now = input.now ?? new Date().toISOString();
  for (const r of input.records) {
    const h = hostOf(r as { host?: HostId });
    const key = resourceKey(r.kind as ResourceKind, r.name, h);
    seen.add(key);
    rows.push(row(r.kind, r.name, h, r, declared.get(key)));
  }
  for (const [key, d] of declared) if (!seen.has(key)) rows.push(row(d.kind, d.name, d.host, undefined, d));
  rows.sort((a, b) => KIND_ORDER.indexOf(a.kind as ResourceKind) - KIND_ORDER.indexOf(b.kind as ResourceKind) || a.name.localeCompare(b.name)
    || compareHosts(a.host, b.host));
  const byStatus: StatusSummary['byStatus'] = {};
  for (const r of rows) byStatus[r.status] = (byStatus[r.status] ?? 0) + 1;
  return { resources: rows, summary: { total: rows.length, byStatus } };
}
