/**
 * The hosts of a fleet as the manifests declare them (`kind: Host`), normalized, and the label
 * selectors manifests use to pick hosts. A Host is not a {@link ResourceKind}: it is no libvirt
 * object, it names where the resources live. No Host manifest means one implicit host
 * ({@link LOCAL_HOST} of `--uri`), today's behaviour exactly.
 */
import { LOCAL_HOST, refKey, type HostId, type ResourceRef } from './kinds.js';

export type { HostId };

/** One `kind: Host` manifest, normalized (sizes in bytes, defaults filled in). */
export interface HostDefinition {
  /** metadata.name */
  id: HostId;
  /** spec.uri: the libvirt URI virtform connects to. */
  uri: string;
  /** metadata.labels */
  labels: Record<string, string>;
  /** spec.schedulable (default true): new VMs may be placed here. */
  schedulable: boolean;
  /** spec.drain (default false): move its VMs away. */
  drain: boolean;
  /** spec.capacity, in bytes: overrides what the host reports (node info, pool sizes). */
  capacity?: { memory?: number; vcpus?: number; disk?: Record<string, number> };
  /** spec.reserved (default 0): kept free for the host itself. */
  reserved: { memory: number; vcpus: number };
  /** spec.overcommit (ratios, default 1). */
  overcommit: { cpu: number; memory: number };
  /** spec.insecure: allow plain qemu+tcp to a non-loopback address. */
  insecure: boolean;
  /** spec.domainType: between the VM's own field and `--domain-type` in precedence. */
  domainType?: 'auto' | 'kvm' | 'qemu';
  /** Where the manifest starts. */
  source?: { file: string; line: number; col: number };
}

/** `{matchLabels}`: every listed label must be present with that value (an empty selector matches all). */
export interface LabelSelector {
  matchLabels?: Record<string, string>;
}

/** Whether `labels` satisfy `sel` (no selector: yes). */
export function matchesSelector(labels: Record<string, string>, sel: LabelSelector | undefined): boolean {
  if (!sel?.matchLabels) return true;
  return Object.entries(sel.matchLabels).every(([k, v]) => Object.prototype.hasOwnProperty.call(labels, k) && labels[k] === v);
}

/** Which hosts a StoragePool or Network is on: `spec.hosts` ('all' or names) or `spec.hostSelector`; default all. */
export interface HostScope {
  hosts?: 'all' | string[];
  hostSelector?: LabelSelector;
}

/** The ids of the hosts `scope` selects, in the order of `hosts`. */
export function selectHosts(hosts: readonly HostDefinition[], scope: HostScope | undefined): HostId[] {
  if (scope?.hostSelector) return hosts.filter((h) => matchesSelector(h.labels, scope.hostSelector)).map((h) => h.id);
  if (Array.isArray(scope?.hosts)) {
    const named = new Set(scope.hosts);
    return hosts.filter((h) => named.has(h.id)).map((h) => h.id);
  }
  return hosts.map((h) => h.id);
}

/** `spec.placement` of a VirtualMachine. */
export interface PlacementSpec {
  hostSelector?: LabelSelector;
  spreadBy?: {
    hostLabel: string;
    vmLabel?: string;
    /** Default 1. */
    maxSkew?: number;
    /** Default DoNotSchedule. */
    whenUnsatisfiable?: 'DoNotSchedule' | 'ScheduleAnyway';
  };
}

/**
 * What the scheduler needs of one VM (the same shape as `src/placement/`'s `PlacementRequest`):
 * memory in bytes, vCPUs, disk bytes per pool, labels, pin (`spec.host`), placement spec, and
 * `group`: VMs sharing a volume carry the same group id (they are placed together).
 */
export interface PlacementRequest {
  name: string;
  labels: Record<string, string>;
  memory: number;
  vcpus: number;
  disk: Record<string, number>;
  pin?: HostId;
  placement?: PlacementSpec;
  group?: string;
  /** Where it is recorded now (sticky); set by the caller that read the records. */
  current?: HostId;
  /**
   * The hosts where every pool and network it needs exists (their `spec.hosts`/`hostSelector`),
   * when that is not every host: placing it elsewhere would leave a disk or NIC without its pool
   * or network. Absent: every host.
   */
  eligible?: HostId[];
}

/** A host virtform owns objects on that no Host manifest declares (any more). */
export interface HostRemovalConflict {
  host: HostId;
  /** The owned objects recorded on it, sorted by key. */
  objects: ResourceRef[];
  message: string;
}

/**
 * Hosts with owned records but no Host manifest: removing a Host manifest while virtform owns
 * objects there is a plan conflict naming them (drain it or delete them first). Records of the
 * implicit host {@link LOCAL_HOST} left once there are Host manifests are the same conflict: no
 * Host matched its identity. Without Host manifests there is no conflict (one implicit host).
 */
export function hostRemovalConflicts(records: readonly ResourceRef[], hostDefs: readonly Pick<HostDefinition, 'id'>[]): HostRemovalConflict[] {
  if (hostDefs.length === 0) return [];
  const declared = new Set(hostDefs.map((h) => h.id));
  const orphaned = new Map<HostId, ResourceRef[]>();
  for (const r of records) if (!declared.has(r.host)) orphaned.set(r.host, [...(orphaned.get(r.host) ?? []), r]);
  const MAX_NAMED = 10;
  return [...orphaned.entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)).map(([host, refs]) => {
    const objects = [...refs].sort((a, b) => (refKey(a) < refKey(b) ? -1 : 1));
    const named = objects.slice(0, MAX_NAMED).map((r) => `${r.kind}/${r.name}`).join(', ') + (objects.length > MAX_NAMED ? ` and ${objects.length - MAX_NAMED} more` : '');
    const message = host === LOCAL_HOST
      ? `virtform owns ${objects.length} object(s) on the host of --uri (${named}), and no Host manifest has that host's libvirt identity: declare a Host with its URI (its records are then bound to it), or delete them first`
      : `Host ${host} has no manifest any more, but virtform owns ${objects.length} object(s) on it (${named}): drain it first (put its Host manifest back with spec.drain: true) or delete them, then remove its manifest`;
    return { host, objects, message };
  });
}
