/**
 * One reconcile run over a fleet of Host manifests:
 *
 *   connect every Host (in parallel) ──► node info → PlacementHosts ──► schedule (sticky: `current`
 *   from the state DB) ──► buildFleetDesired ──► the engine's reconcile({hosts, desired})
 *
 * A host that cannot be reached is left out of the run (its records are not observed, so nothing
 * of it is pruned), its resources get `HostUnreachable`, and everything else converges. A VM that
 * fits nowhere gets `Unschedulable` (the reason per host) and is left out; the rest proceed.
 * Placement needs no observation: it reads the state DB (where each VM is recorded) and the hosts'
 * node info, and it decides the hosts observe then reads; data still flows one way.
 */
import type { DesiredState } from '../manifest/index.js';
import { LOCAL_HOST, RESOURCE_KINDS, parseResourceKey, resourceKey, type HostId, type ResourceKind } from '../model/kinds.js';
import { FLEET_CONDITION_TYPES, type ConditionDraft } from '../model/conditions.js';
import type { Desired } from '../reconcile/desired.js';
import { reconcile, type ReconcileOptions, type ReconcileResult } from '../reconcile/engine.js';
import { isGuestKind } from '../reconcile/kinds/index.js';
import type { HostPort } from '../reconcile/ports.js';
import { HostMismatchError, sameHost, type ResourceRecord, type StateStore } from '../state/index.js';
import { placementHost } from './capacity.js';
import { closeFleet, connectFleet, type FleetConnections, type OpenHost } from './connect.js';
import type { BoundHost, FleetPlanInfo } from './types.js';
import { hostRemovalConflicts, type HostRemovalConflict } from '../model/hosts.js';
import type { HostDefinition, Move, Placement, PlacementHost, PlacementRequest, ScheduleResult, Unschedulable } from './contract.js';

/** The host of the conditions of a VM placed nowhere (no host holds it). */
export const UNPLACED_HOST: HostId = '-';

/** What the fleet needs of the modules that own the contracts (hostkind: desired; sched: schedule). */
export interface FleetParts {
  /** `placementRequests(state)` without `current` (the fleet adds it from the state DB). */
  requests(state: DesiredState): PlacementRequest[];
  schedule(hosts: PlacementHost[], vms: PlacementRequest[], opts: { rebalance?: boolean; maxMoves?: number }): ScheduleResult;
  /** `buildFleetDesired(state, placeOf)`. */
  desired(state: DesiredState, placeOf: (vm: string) => HostId | undefined): Desired;
}

export type EngineOptions = Omit<ReconcileOptions, 'host' | 'hosts' | 'store' | 'desired'>;

export interface FleetOptions {
  state: DesiredState;
  store: StateStore;
  open: OpenHost;
  parts: FleetParts;
  engine: EngineOptions;
  /** `--domain-type` (a Host's `spec.domainType` comes first). */
  domainType?: HostDefinition['domainType'];
  rebalance?: boolean;
  maxMoves?: number;
  /** Wraps each connected host's port (the test fault injection). */
  wrap?: (port: HostPort, host: HostId) => HostPort;
  /** What the fleet adds to the plan, before the engine plans (the CLI's plan output annotates with it). */
  onPlaced?: (info: FleetPlanInfo) => void;
  /** Told about each host that cannot be reached (before the plan). */
  onUnreachable?: (host: HostId, why: string) => void;
  /** Leave the hosts connected (`reconcile --wait` asks them for addresses after the run): the result's `connections`, which the caller closes. */
  keepConnections?: boolean;
}


export interface FleetResult {
  /** The engine's run; absent when no host could be reached. */
  run?: ReconcileResult;
  schedule: ScheduleResult;
  /** Placements of VMs this run creates or moves, by resource key (what the plan annotates). */
  annotations: Map<string, Placement>;
  moves: Move[];
  unschedulable: Map<string, Unschedulable>;
  /** Hosts that could not be reached (or are not the host their records describe), with why. */
  unreachable: Map<HostId, string>;
  /** Resources left untouched because their host is unreachable, by key. */
  unreachableResources: Map<string, HostId>;
  orphanHosts: HostRemovalConflict[];
  /** Hosts bound to the implicit host's records this run (see {@link FleetPlanInfo.bound}). */
  bound: BoundHost[];
  desired: Desired;
  /** With `keepConnections`: the connected hosts' ports; the caller closes them. */
  connections?: { ports: Map<HostId, HostPort>; close(): Promise<void> };
}

/** The kind of the guests (VMs), asked of the registry. */
function guestKind(): ResourceKind {
  const k = RESOURCE_KINDS.find((x) => isGuestKind(x));
  if (!k) throw new Error('internal error: no guest kind');
  return k;
}

/** Only the resources of `hosts`: a desired state restricted to the reachable hosts. */
export function restrictDesired(d: Desired, hosts: ReadonlySet<HostId>): Desired {
  const resources = d.resources.filter((r) => hosts.has(r.host));
  return { ...d, resources, byKey: new Map(resources.map((r) => [r.key, r])), empty: resources.length === 0 };
}

/**
 * Where each VM stands: its recorded host (sticky). A VM recorded on several hosts (a move
 * interrupted between its steps) keeps the host the moves helper finishes on; the first one here.
 */
export function currentHosts(records: readonly Pick<ResourceRecord, 'kind' | 'name' | 'host'>[], kind: string): Map<string, HostId> {
  const out = new Map<string, HostId>();
  for (const r of records) if (r.kind === kind && !out.has(r.name)) out.set(r.name, r.host ?? LOCAL_HOST);
  return out;
}

/**
 * Placement of the fleet, pure: the scheduler's result, with the rule the fleet adds on top — a VM
 * whose recorded host is unreachable (or has no Host manifest any more) stays there (it is not
 * re-created elsewhere while its host may still run it): left out of this run, marked
 * HostUnreachable (or named by the host-removal conflict).
 */
export function placeFleet(
  parts: Pick<FleetParts, 'requests' | 'schedule'>, state: FleetOptions['state'], nodes: Map<HostId, Parameters<typeof placementHost>[1]>,
  current: Map<string, HostId>, opts: { rebalance?: boolean; maxMoves?: number },
): { result: ScheduleResult; hosts: PlacementHost[]; requests: PlacementRequest[]; stuck: Map<string, HostId> } {
  const hosts = state.hosts.map((d) => placementHost(d, nodes.get(d.id)));
  const reachable = new Set(hosts.filter((h) => h.reachable).map((h) => h.id));
  const requests = parts.requests(state).map((r) => {
    const c = current.get(r.name);
    return c !== undefined ? { ...r, current: c } : r;
  });
  const declared = new Set(state.hosts.map((h) => h.id));
  const stuck = new Map<string, HostId>();
  for (const r of requests) if (r.current !== undefined && !reachable.has(r.current)) stuck.set(r.name, r.current);
  // The scheduler knows the declared hosts: a VM on an unreachable one still counts there (spread,
  // load); a VM on an undeclared host is left out of the scheduling.
  const result = parts.schedule(hosts, requests.filter((r) => r.current === undefined || declared.has(r.current)), { rebalance: opts.rebalance === true, maxMoves: opts.maxMoves ?? 1 });
  for (const [vm, host] of stuck) {
    const p = result.placements.get(vm);
    if (p && p.host !== host) result.placements.delete(vm);
    result.unschedulable.delete(vm);
  }
  result.moves = result.moves.filter((m) => !stuck.has(m.vm));
  return { result, hosts, requests, stuck };
}

export async function runFleet(o: FleetOptions): Promise<FleetResult> {
  const dryRun = o.engine.dryRun === true;
  const conn: FleetConnections = await connectFleet(o.state.hosts, o.open, { domainType: o.domainType });
  // A dry-run that must see the apply's first write (the binding below) plans on a scratch copy.
  let scratch: StateStore | undefined;
  try {
    // From one host to a fleet: the implicit host's records become the records of the Host whose
    // libvirt identity they describe (never pruned and recreated). A dry-run changes nothing: on
    // SQLite it binds them in a scratch copy of the DB and plans on it, so the plan is the apply's;
    // on PostgreSQL (no copy) it says what it cannot show.
    const bound: BoundHost[] = [];
    const implicit = await o.store.hosts.get(LOCAL_HOST);
    const binding = implicit ? [...conn.connected].filter(([, h]) => sameHost(implicit, h.identity)) : [];
    if (dryRun && binding.length > 0) scratch = await o.store.scratchCopy?.();
    const store = scratch ?? o.store;
    if (!dryRun || scratch) {
      for (const [id, h] of binding) {
        const r = await store.hosts.rekey(h.identity, { to: id });
        if (r.status === 'rekeyed') bound.push({ host: id, resources: r.moved.resources, shown: true });
      }
    } else {
      const recorded = binding.length > 0 ? (await o.store.resources.list({ host: LOCAL_HOST })).length : 0;
      for (const [id] of binding) bound.push({ host: id, resources: recorded, shown: false });
    }
    // Each Host's id and URI in the `hosts` table (`status` finds hosts without the manifests); a
    // host whose records describe another libvirt host is not touched (as with --uri).
    for (const [id, h] of [...conn.connected]) {
      try {
        await store.hosts.bind(h.identity, { id, record: !dryRun });
      } catch (e) {
        if (!(e instanceof HostMismatchError)) throw e;
        conn.unreachable.set(id, e.message);
        // safe-catch: closing a host left out of the run is best effort
        await h.port.close().catch(() => undefined);
        conn.connected.delete(id);
      }
    }
    for (const [id, why] of conn.unreachable) o.onUnreachable?.(id, why);

    const kind = guestKind();
    const records = await store.resources.list();
    const current = currentHosts(records, kind);
    const nodes = new Map([...conn.connected].map(([id, h]) => [id, h.node]));
    const placed = placeFleet(o.parts, o.state, nodes, current, { rebalance: o.rebalance, maxMoves: o.maxMoves });
    const { result } = placed;
    const full = o.parts.desired(o.state, (vm) => result.placements.get(vm)?.host ?? placed.stuck.get(vm));
    const reachable = new Set(conn.connected.keys());
    const desired = restrictDesired(full, reachable);

    // Records on a host no Host manifest names: a conflict naming them (drain it or delete them first).
    const orphanHosts = hostRemovalConflicts(records.map((r) => ({ kind: r.kind as ResourceKind, name: r.name, host: r.host ?? LOCAL_HOST })), o.state.hosts);

    const unreachableResources = new Map<string, HostId>();
    for (const r of full.resources) if (!reachable.has(r.host)) unreachableResources.set(r.key, r.host);
    for (const r of records) {
      const h = r.host ?? LOCAL_HOST;
      if (conn.unreachable.has(h)) unreachableResources.set(resourceKey(r.kind, r.name, h), h);
    }

    const annotations = new Map<string, Placement>();
    for (const p of result.placements.values()) {
      const cur = current.get(p.vm);
      if (cur !== p.host) annotations.set(resourceKey(kind, p.vm, p.host), p);
    }

    o.onPlaced?.({ annotations, moves: result.moves, unschedulable: result.unschedulable, unreachable: conn.unreachable, orphanHosts, bound });
    const hosts = new Map([...conn.connected].map(([id, h]) => [id, o.wrap ? o.wrap(h.port, id) : h.port]));
    const run = hosts.size > 0 ? await reconcile({ ...o.engine, hosts, store, desired }) : undefined;

    if (!dryRun) await recordFleetConditions(o.store, kind, o.state, placed.requests, result, conn, unreachableResources);
    return {
      ...(run ? { run } : {}), schedule: result, annotations, moves: result.moves, unschedulable: result.unschedulable,
      unreachable: conn.unreachable, unreachableResources, orphanHosts, bound, desired,
      ...(o.keepConnections ? { connections: { ports: new Map([...conn.connected].map(([id, h]) => [id, h.port])), close: () => closeFleet(conn) } } : {}),
    };
  } catch (e) {
    if (o.keepConnections) await closeFleet(conn);
    throw e;
  } finally {
    if (!o.keepConnections) await closeFleet(conn);
    await scratch?.close();
  }
}

/**
 * `Unschedulable` on every declared VM (True with the reason per host when it fits nowhere), and
 * `HostUnreachable` on every resource of a host of the run (True while its host cannot be reached).
 * Pruned within these two types only; `status` derives the others and keeps these.
 */
async function recordFleetConditions(
  store: StateStore, kind: ResourceKind, state: FleetOptions['state'], requests: PlacementRequest[], result: ScheduleResult,
  conn: FleetConnections, unreachableResources: Map<string, HostId>,
): Promise<void> {
  const entries: { kind: ResourceKind; name: string; host: HostId; conditions: ConditionDraft[] }[] = [];
  for (const r of requests) {
    const u = result.unschedulable.get(r.name);
    const host = result.placements.get(r.name)?.host ?? r.current ?? UNPLACED_HOST;
    entries.push({
      kind, name: r.name, host,
      conditions: [u
        ? { type: 'Unschedulable', status: 'True', reason: 'NoHostFits', message: `${u.summary}${u.reasons.length ? `: ${u.reasons.map((x) => `${x.host}: ${x.filter} (${x.detail})`).join('; ')}` : ''}` }
        : { type: 'Unschedulable', status: 'False', reason: 'Placed', message: `placed on host ${host}` }],
    });
  }
  const seen = new Set<string>();
  for (const [key, host] of unreachableResources) {
    const { kind: k, name } = parseResourceKey(key);
    seen.add(`${host}\u0000${k}\u0000${name}`);
    entries.push({ kind: k, name, host, conditions: [{ type: 'HostUnreachable', status: 'True', reason: 'ConnectionFailed', message: `host ${host}: ${conn.unreachable.get(host) ?? 'unreachable'}` }] });
  }
  for (const r of await store.resources.list()) {
    const host = r.host ?? LOCAL_HOST;
    if (!conn.connected.has(host) || seen.has(`${host}\u0000${r.kind}\u0000${r.name}`)) continue;
    entries.push({ kind: r.kind as ResourceKind, name: r.name, host, conditions: [{ type: 'HostUnreachable', status: 'False', reason: 'Connected', message: `host ${host} reachable` }] });
  }
  // Pruned within the fleet's own types: a VM no longer declared, a resource no longer recorded.
  await store.conditions.sync(mergeEntries(entries), { prune: true, pruneTypes: FLEET_CONDITION_TYPES });
  const declared = new Set(state.hosts.map((h) => h.id));
  for (const [host, why] of conn.unreachable) {
    if (declared.has(host)) await store.events.append({ level: 'error', message: `host ${host} unreachable: ${why}` });
  }
  for (const u of result.unschedulable.values()) {
    await store.events.append({ level: 'warn', ref: { kind, name: u.vm, host: UNPLACED_HOST }, message: `unschedulable: ${u.summary}` });
  }
}

/** One entry per resource (the same resource may get both conditions). */
function mergeEntries<E extends { kind: ResourceKind; name: string; host: HostId; conditions: ConditionDraft[] }>(entries: E[]): E[] {
  const by = new Map<string, E>();
  for (const e of entries) {
    const k = `${e.host}\u0000${e.kind}\u0000${e.name}`;
    const prev = by.get(k);
    if (prev) prev.conditions = [...prev.conditions.filter((c) => !e.conditions.some((x) => x.type === c.type)), ...e.conditions];
    else by.set(k, { ...e, conditions: [...e.conditions] });
  }
  return [...by.values()];
}
