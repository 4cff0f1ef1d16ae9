/**
 * The fleet view of `status` and `/status`: which hosts a status asks, and one summary per host
 * (connected or why not, libvirt's version, the capacity its defined VMs use — memory, vCPUs —
 * the disk of each active pool, and its VMs).
 *
 * Hosts: the Host manifests when DIR has them; else the hosts the state DB's `hosts` table
 * records other than the implicit local one (a fleet run records each Host's id and URI there),
 * with the local host of `--uri` too when records of it remain; else the one implicit host of
 * `--uri` (a single-host status, as before).
 *
 * Capacity: what the host reports (virNodeGetInfo, virStoragePoolGetInfo) unless the Host's
 * `spec.capacity` overrides it (memory, vcpus, disk per pool); `reserved` is shown beside it and
 * `free` = capacity − reserved − allocated. Allocated: the sum over every defined domain of the
 * host, managed or not, of its persistent definition's memory maximum (`<memory>`) and vCPUs
 * (`<vcpu current>`), running or not (what a start would claim). Pools: allocation as the pool
 * reports it.
 *
 * `summarizeHost` is pure; `observeHostFacts` is what it asks the host (read-only: the version,
 * the node info, the domains' allocations in one bulk call, one info call per active pool).
 */
import { compareHosts, hostOf, LOCAL_HOST, type HostId } from '../model/kinds.js';
import type { HostPort, HostSnapshot, NodeInfo, PoolInfo } from '../reconcile/ports.js';
import type { DesiredResource } from '../reconcile/desired.js';
import { isGuestKind } from '../reconcile/kinds/index.js';
import type { ResourceRecord } from '../state/index.js';
import type { HostView } from './build.js';
import { observeForStatus, type StatusPort } from './observe.js';

/** A host of the status: its id and URI, with what its Host manifest says of its capacity. */
export interface StatusHost {
  id: HostId;
  uri: string;
  /** Host `spec.capacity` (bytes; disk by pool): overrides what the host reports. */
  capacity?: { memory?: number; vcpus?: number; disk?: Record<string, number> };
  /** Host `spec.reserved` (memory in bytes). */
  reserved?: { memory: number; vcpus: number };
}

/** One resource of a host: allocated by its defined VMs vs capacity (bytes for memory and disk). */
export interface CapacityUse {
  allocated: number;
  capacity: number;
  reserved: number;
  /** capacity − reserved − allocated (negative when overcommitted). */
  free: number;
  /** Where `capacity` comes from: the host's own report, or the Host manifest's `spec.capacity`. */
  source: 'host' | 'manifest';
}

export interface PoolUse {
  name: string;
  /** Bytes the pool's volumes take on disk, as the pool reports. */
  allocation: number;
  capacity: number;
  available: number;
  source: 'host' | 'manifest';
}

/** One host's line of the per-host summary (`hosts` of `status --json` and `/status`). */
export interface HostSummary {
  host: HostId;
  uri: string;
  /** false: the host could not be reached (`error` says why) and everything else is null/empty. */
  connected: boolean;
  /** Why the host could not be reached, or (connected) why its summary is empty. */
  error: string | null;
  /** `9.0.0` (virConnectGetLibVersion of the daemon). */
  libvirtVersion: string | null;
  hypervisorVersion: string | null;
  memory: CapacityUse | null;
  vcpus: CapacityUse | null;
  /** Active pools, by name. */
  pools: PoolUse[];
  /** Defined domains: all of them, those virtform manages here, those running. */
  vms: { total: number; managed: number; running: number } | null;
}

/** What a host showed, for {@link summarizeHost}. */
export interface HostFacts {
  /** `libvirt 9.0.0, hypervisor 7.2.0` (HostPort.versionTag), when the host says. */
  version?: string;
  node: NodeInfo;
  /** Every defined domain: its persistent definition's memory maximum (bytes) and vCPUs. */
  domains: readonly { name: string; active: boolean; memory: number; vcpus: number }[];
  pools: ReadonlyMap<string, PoolInfo>;
}

/**
 * The hosts a status asks. `defined`: the Host manifests (none: []); `recorded`: the state DB's
 * hosts table; `localRecords`: records of the implicit local host remain in the DB.
 */
export function statusHosts(o: {
  defined: readonly StatusHost[]; recorded: readonly { id: HostId; uri: string }[]; localUri: string; localRecords: boolean;
}): { fleet: boolean; hosts: StatusHost[] } {
  const sorted = (hs: StatusHost[]): StatusHost[] => hs.sort((a, b) => compareHosts(a.id, b.id));
  if (o.defined.length > 0) return { fleet: true, hosts: sorted([...o.defined]) };
  const others = o.recorded.filter((h) => h.id !== LOCAL_HOST).map((h) => ({ id: h.id, uri: h.uri }));
  if (others.length === 0) return { fleet: false, hosts: [{ id: LOCAL_HOST, uri: o.localUri }] };
  return { fleet: true, hosts: sorted([...(o.localRecords ? [{ id: LOCAL_HOST, uri: o.localUri }] : []), ...others]) };
}

/** `libvirt 9.0.0, hypervisor 7.2.0` → its two versions. */
export function parseVersionTag(tag: string | undefined): { libvirt: string | null; hypervisor: string | null } {
  return {
    libvirt: /libvirt (\S+?)(,|$)/.exec(tag ?? '')?.[1] ?? null,
    hypervisor: /hypervisor (\S+?)(,|$)/.exec(tag ?? '')?.[1] ?? null,
  };
}

function use(allocated: number, reported: number, override: number | undefined, reserved: number): CapacityUse {
  const capacity = override ?? reported;
  return { allocated, capacity, reserved, free: capacity - reserved - allocated, source: override !== undefined ? 'manifest' : 'host' };
}

/** The summary of a host that answered (pure). `managed`: the domains virtform records on it. */
export function summarizeHost(h: StatusHost, facts: HostFacts, managed: ReadonlySet<string>): HostSummary {
  let memory = 0;
  let vcpus = 0;
  let running = 0;
  let managedCount = 0;
  for (const d of facts.domains) {
    memory += d.memory;
    vcpus += d.vcpus;
    if (d.active) running += 1;
    if (managed.has(d.name)) managedCount += 1;
  }
  const disk = h.capacity?.disk ?? {};
  const pools: PoolUse[] = [...facts.pools].sort(([a], [b]) => a.localeCompare(b)).map(([name, p]) => {
    const capacity = disk[name] ?? p.capacity;
    return {
      name, allocation: p.allocation, capacity, available: disk[name] !== undefined ? Math.max(0, capacity - p.allocation) : p.available,
      source: disk[name] !== undefined ? 'manifest' : 'host',
    };
  });
  const v = parseVersionTag(facts.version);
  return {
    host: h.id, uri: h.uri, connected: true, error: null, libvirtVersion: v.libvirt, hypervisorVersion: v.hypervisor,
    memory: use(memory, facts.node.memory, h.capacity?.memory, h.reserved?.memory ?? 0),
    vcpus: use(vcpus, facts.node.cpus, h.capacity?.vcpus, h.reserved?.vcpus ?? 0),
    pools,
    vms: { total: facts.domains.length, managed: managedCount, running },
  };
}

/** The summary of a host that could not be reached. */
export function unreachableHost(h: StatusHost, error: string): HostSummary {
  return {
    host: h.id, uri: h.uri, connected: false, error, libvirtVersion: null, hypervisorVersion: null,
    memory: null, vcpus: null, pools: [], vms: null,
  };
}

type FactsHost = Pick<HostPort, 'nodeInfo' | 'poolInfo' | 'domainAllocations'> & Partial<Pick<HostPort, 'versionTag'>>;

/**
 * What {@link summarizeHost} needs of a host, for the objects of `snapshot` (the listing the
 * status already made): a constant number of calls (the domains' allocations in one bulk call),
 * plus one per active pool.
 */
export async function observeHostFacts(host: FactsHost, snapshot: HostSnapshot): Promise<HostFacts> {
  const [version, node, allocations, pools] = await Promise.all([
    host.versionTag?.(), host.nodeInfo(), host.domainAllocations(), host.poolInfo(snapshot.pools),
  ]);
  // A domain defined since the listing is counted at the next status; one gone since is left out.
  const domains = snapshot.domains.flatMap((d) => {
    const a = allocations.get(d.name);
    return a ? [{ name: d.name, active: d.active, memory: a.memory, vcpus: a.vcpus }] : [];
  });
  return { ...(version !== undefined ? { version } : {}), node, domains, pools };
}

const GIB = 1024 ** 3;
const gib = (bytes: number): string => (bytes / GIB).toFixed(1);

/** `2.0/7.8 GiB (1.0 reserved)`. */
function memoryCell(u: CapacityUse | null): string {
  if (!u) return '-';
  return `${gib(u.allocated)}/${gib(u.capacity)} GiB${u.reserved ? ` (${gib(u.reserved)} reserved)` : ''}`;
}

function vcpuCell(u: CapacityUse | null): string {
  if (!u) return '-';
  return `${u.allocated}/${u.capacity}${u.reserved ? ` (${u.reserved} reserved)` : ''}`;
}

/** The per-host summary table `virtform status` prints for a fleet. */
export function renderHostTable(hosts: readonly HostSummary[]): string {
  const header = ['HOST', 'STATE', 'LIBVIRT', 'MEMORY', 'VCPUS', 'DISK (ALLOCATED/CAPACITY GiB)', 'VMS'];
  const rows = hosts.map((h) => h.connected
    ? [
      h.host, 'connected', h.libvirtVersion ?? '?', memoryCell(h.memory), vcpuCell(h.vcpus),
      h.pools.length ? h.pools.map((p) => `${p.name} ${gib(p.allocation)}/${gib(p.capacity)}`).join(', ') : '-',
      h.vms ? `${h.vms.total} (${h.vms.managed} managed, ${h.vms.running} running)` : '-',
    ]
    : [h.host, `unreachable: ${(h.error ?? '').replace(/\s+/g, ' ').slice(0, 100)}`]);
  // An unreachable host's message runs on past the columns: only its HOST cell counts for the widths.
  const widths = header.map((c, i) => Math.max(c.length, ...rows.filter((r) => r.length === header.length || i < r.length - 1).map((r) => r[i]!.length)));
  const fmt = (r: string[]): string => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]!))).join('  ');
  return `${[fmt(header), ...rows.map(fmt)].join('\n')}\n`;
}

/** What a fleet status saw: each host's view (those that answered), why the others did not, and every host's summary. */
export interface FleetView {
  views: Map<HostId, HostView>;
  errors: Map<HostId, string>;
  /** In the order of the hosts given. */
  hosts: HostSummary[];
}

type FleetPort = StatusPort & FactsHost & { close(): Promise<void> };

/**
 * Ask every host at once (one slow or unreachable host delays nobody): its status view
 * ({@link observeForStatus}, for the records and declared resources of that host) and its summary.
 * A host that cannot be connected to or fails midway is in `errors` (its summary says so); the
 * others are complete. `onHost` runs with each connected host's port and view before it is closed
 * (a single-host status makes its plan there); its failure counts as the host's.
 */
export async function observeFleet(
  targets: readonly StatusHost[], records: ResourceRecord[], declared: readonly DesiredResource[] | undefined,
  connect: (h: StatusHost) => Promise<FleetPort>,
  onHost?: (h: StatusHost, port: FleetPort, view: HostView) => Promise<void>,
): Promise<FleetView> {
  const views = new Map<HostId, HostView>();
  const errors = new Map<HostId, string>();
  const hosts = await Promise.all(targets.map(async (h): Promise<HostSummary> => {
    try {
      const port = await connect(h);
      try {
        const view = await observeForStatus(port, records, declared, h.id);
        // The summary's reads failing (a driver without them) leave the status of the host's
        // resources as it is: the summary says why it is empty.
        const facts = await observeHostFacts(port, view.snapshot).catch((e: unknown) => new Error(`no summary: ${e instanceof Error ? e.message : String(e)}`));
        await onHost?.(h, port, view);
        views.set(h.id, view);
        if (facts instanceof Error) return { ...unreachableHost(h, facts.message), connected: true };
        const managed = new Set(records.filter((r) => isGuestKind(r.kind) && hostOf(r as { host?: HostId }) === h.id).map((r) => r.name));
        return summarizeHost(h, facts, managed);
      } finally {
        // safe-catch: closing a connection that failed is not an error of the status
        await port.close().catch(() => undefined);
      }
    } catch (e) {
      const message = e instanceof Error ? e.message : String(e);
      errors.set(h.id, message);
      return unreachableHost(h, message);
    }
  }));
  return { views, errors, hosts };
}
