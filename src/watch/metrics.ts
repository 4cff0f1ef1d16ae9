/**
 * The watcher's Prometheus metrics, on prom-client (text exposition 0.0.4). Each WatchMetrics has
 * its own registry (several controllers can live in one process, e.g. in tests) holding the
 * virtform_* metrics below plus prom-client's default process metrics (CPU, RSS, heap, open fds,
 * event-loop lag, GC) unless `defaultMetrics: false`.
 */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import { hostOf, LOCAL_HOST, type HostId } from '../model/kinds.js';
import type { HostSummary } from '../status/index.js';

/**
 * A resource's labels with its host: the `host` label is set for resources of a host other than
 * the implicit local one only, so a one-host watcher exports the series it always did. In a fleet
 * (Host manifests) every host is a named Host, never the implicit local one, so every per-resource
 * series carries `host`. The per-host gauges (`virtform_host_*`) always carry it (`local` for the
 * host of `--uri`).
 */
export function hostLabels<L extends Record<string, string>>(labels: L, host: HostId | undefined): L & { host?: string } {
  return host === undefined || host === LOCAL_HOST ? labels : { ...labels, host };
}

export const DEFAULT_DURATION_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300];
const CALL_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];

export class WatchMetrics {
  readonly registry = new Registry();
  readonly up: Gauge;
  readonly connected: Gauge;
  readonly runs: Counter<'outcome'>;
  readonly runDuration: Histogram;
  /** A run's time waiting on libvirt (union of its calls' intervals) and its own time (the rest), by read (full, incremental). */
  readonly runLibvirt: Histogram<'read'>;
  readonly runOwn: Histogram<'read'>;
  /** Manifest files and definitions an incremental run took from the watch's caches, and read again. */
  readonly cacheReuse: Counter<'what' | 'outcome'>;
  readonly steps: Counter<'op' | 'outcome'>;
  readonly resources: Gauge<'kind' | 'state' | 'host'>;
  readonly driftCorrections: Counter;
  readonly calls: Counter<'procedure'>;
  readonly callErrors: Counter<'procedure'>;
  readonly callDuration: Histogram<'procedure'>;
  readonly manifestErrors: Gauge;
  readonly triggers: Counter<'source'>;
  readonly reconnects: Counter;
  readonly requeues: Counter<'reason'>;
  readonly backoff: Gauge;
  readonly stalled: Gauge;
  /** `watch --git`: fetches by outcome (new, unchanged, refused, failed). */
  readonly gitFetches: Counter<'outcome'>;
  /** `watch --git`: 1 while the fetched commit is not the applied one. */
  readonly gitDiffers: Gauge;
  readonly conditions: Gauge<'kind' | 'name' | 'type' | 'status' | 'host'>;
  /** 1 while this watcher holds the writer lease (0: a standby). */
  readonly leader: Gauge;
  /** The epoch of the writer lease this watcher holds or last held (0: never). */
  readonly leaseEpoch: Gauge;
  /** Per host (label `host`, always): reachable, and memory/vCPUs allocated to its defined VMs vs capacity. */
  readonly hostReachable: Gauge<'host'>;
  readonly hostMemoryAllocated: Gauge<'host'>;
  readonly hostMemoryCapacity: Gauge<'host'>;
  readonly hostVcpusAllocated: Gauge<'host'>;
  readonly hostVcpusCapacity: Gauge<'host'>;

  constructor(opts: { defaultMetrics?: boolean } = {}) {
    const registers = [this.registry];
    const gauge = <L extends string = string>(name: string, help: string, labelNames: L[] = []): Gauge<L> => new Gauge<L>({ name, help, labelNames, registers });
    const counter = <L extends string = string>(name: string, help: string, labelNames: L[] = []): Counter<L> => new Counter<L>({ name, help, labelNames, registers });
    this.up = gauge('virtform_up', '1 while the watcher process is running');
    this.connected = gauge('virtform_connected', '1 while connected to libvirtd');
    this.runs = counter('virtform_reconcile_runs_total', 'Reconcile runs by outcome (noop, succeeded, failed, interrupted, invalid, error)', ['outcome']);
    this.runDuration = new Histogram({ name: 'virtform_reconcile_duration_seconds', help: 'Duration of reconcile runs', buckets: DEFAULT_DURATION_BUCKETS, registers });
    this.runLibvirt = new Histogram({
      name: 'virtform_reconcile_libvirt_seconds', help: 'Time a reconcile run waited on libvirt calls (the union of the calls\' intervals), by read (full, incremental)',
      labelNames: ['read'], buckets: DEFAULT_DURATION_BUCKETS, registers,
    });
    this.runOwn = new Histogram({
      name: 'virtform_reconcile_own_seconds', help: 'A reconcile run\'s own time: its duration minus the time it waited on libvirt, by read (full, incremental)',
      labelNames: ['read'], buckets: DEFAULT_DURATION_BUCKETS, registers,
    });
    this.cacheReuse = counter('virtform_watch_cache_total', 'Manifest files and host definitions a run took from the watch\'s caches (hit) or read again (read)', ['what', 'outcome']);
    this.steps = counter('virtform_apply_steps_total', 'Apply steps by operation and outcome', ['op', 'outcome']);
    this.resources = gauge('virtform_resources', 'Resources in the state DB by kind and last observed state (and host, for hosts other than the local one)', ['kind', 'state', 'host']);
    this.driftCorrections = counter('virtform_drift_corrections_total', 'Succeeded steps that corrected drift on the host');
    this.calls = counter('virtform_libvirt_calls_total', 'Calls made to libvirtd by procedure', ['procedure']);
    this.callErrors = counter('virtform_libvirt_call_errors_total', 'Failed calls to libvirtd by procedure', ['procedure']);
    this.callDuration = new Histogram({
      name: 'virtform_libvirt_call_duration_seconds', help: 'Latency of calls to libvirtd', labelNames: ['procedure'], buckets: CALL_BUCKETS, registers,
    });
    this.manifestErrors = gauge('virtform_manifest_errors', 'Errors in the manifest folder at the last load (0 when valid)');
    this.triggers = counter('virtform_triggers_total', 'Reconcile triggers by source (file, event, resync, reconnect, initial, requeue)', ['source']);
    this.reconnects = counter('virtform_reconnect_attempts_total', 'Attempts to (re)connect to libvirtd');
    this.requeues = counter('virtform_requeue_total', 'Failed or interrupted runs requeued with backoff, by reason (failed, error, interrupted)', ['reason']);
    this.backoff = gauge('virtform_backoff_seconds', 'Backoff delay chosen at the last requeue of a failed run; 0 after a successful or stalled run');
    this.stalled = gauge('virtform_stalled_resources', 'Resources whose last failure cannot succeed by retrying; they wait for a manifest change or an event');
    this.gitFetches = counter('virtform_git_fetches_total', 'watch --git: fetches by outcome (new: a valid new commit, unchanged, refused: the commit did not validate or verify, failed: the fetch failed)', ['outcome']);
    this.gitDiffers = gauge('virtform_git_fetched_differs', 'watch --git: 1 while the fetched commit is not the applied one (a refused commit, a fetch not applied yet)');
    this.conditions = gauge('virtform_resource_condition',
      'Resource conditions (Ready, Reconciling, Stalled, Drifted, RestartRequired, Suspended, HeldForDataLoss): 1 for the current status of each, 0 for the other (host: for hosts other than the local one)', ['kind', 'name', 'type', 'status', 'host']);
    this.leader = gauge('virtform_lease_leader', '1 while this watcher holds the state DB\'s writer lease and applies; 0 while it is a standby');
    this.leaseEpoch = gauge('virtform_lease_epoch', 'Epoch (fencing token) of the writer lease this watcher holds or last held; 0 before it first held it');
    this.hostReachable = gauge('virtform_host_reachable', '1 while the host answered at the last status, 0 when it could not be reached', ['host']);
    this.hostMemoryAllocated = gauge('virtform_host_memory_allocated_bytes', 'Memory of the host\'s defined VMs (managed or not, their <memory>)', ['host']);
    this.hostMemoryCapacity = gauge('virtform_host_memory_capacity_bytes', 'Memory of the host: the Host manifest\'s spec.capacity.memory, else what the host reports', ['host']);
    this.hostVcpusAllocated = gauge('virtform_host_vcpus_allocated', 'vCPUs of the host\'s defined VMs (managed or not)', ['host']);
    this.hostVcpusCapacity = gauge('virtform_host_vcpus_capacity', 'CPUs of the host: the Host manifest\'s spec.capacity.vcpus, else what the host reports', ['host']);
    this.up.set(1);
    this.connected.set(0);
    this.leader.set(0);
    this.leaseEpoch.set(0);
    this.manifestErrors.set(0);
    this.backoff.set(0);
    this.stalled.set(0);
    // Event-loop lag sampled every 100 ms instead of prom-client's 10 ms: at 10 ms the sampling
    // timer alone cost an idle watcher 40-100 ms of CPU per 10 s here (0.4-1 % of a core), at
    // 100 ms 5-40 ms, within the noise of this shared machine.
    if (opts.defaultMetrics !== false) collectDefaultMetrics({ register: this.registry, eventLoopMonitoringPrecision: 100 });
  }

  /** Replace the condition series with those of `rows` (each type: status True and False, one of them 1). */
  setConditions(rows: readonly { kind: string; name: string; host?: HostId; conditions: readonly { type: string; status: string }[] }[]): void {
    this.conditions.reset();
    for (const r of rows) {
      for (const c of r.conditions) {
        this.conditions.set(hostLabels({ kind: r.kind, name: r.name, type: c.type, status: 'True' }, r.host), c.status === 'True' ? 1 : 0);
        this.conditions.set(hostLabels({ kind: r.kind, name: r.name, type: c.type, status: 'False' }, r.host), c.status === 'True' ? 0 : 1);
      }
    }
  }

  /**
   * Replace the per-host series with those of `hosts`: reachable 1/0; an unreachable host keeps
   * no capacity series (unknown is not 0).
   */
  setHosts(hosts: readonly HostSummary[]): void {
    for (const g of [this.hostReachable, this.hostMemoryAllocated, this.hostMemoryCapacity, this.hostVcpusAllocated, this.hostVcpusCapacity]) g.reset();
    for (const h of hosts) {
      const l = { host: h.host };
      this.hostReachable.set(l, h.connected ? 1 : 0);
      if (h.memory) {
        this.hostMemoryAllocated.set(l, h.memory.allocated);
        this.hostMemoryCapacity.set(l, h.memory.capacity);
      }
      if (h.vcpus) {
        this.hostVcpusAllocated.set(l, h.vcpus.allocated);
        this.hostVcpusCapacity.set(l, h.vcpus.capacity);
      }
    }
  }

  /** Replace the resource gauge with the counts of `records` by host, kind and last observed state. */
  setResources(records: readonly { kind: string; observedStatus?: string | null }[]): void {
    this.resources.reset();
    const counts = new Map<string, { kind: string; state: string; host: HostId; n: number }>();
    for (const r of records) {
      const state = r.observedStatus ?? 'unknown';
      const host = hostOf(r as { host?: HostId });
      const k = `${host}\u0000${r.kind}\u0000${state}`;
      const c = counts.get(k) ?? { kind: r.kind, state, host, n: 0 };
      c.n += 1;
      counts.set(k, c);
    }
    for (const c of counts.values()) this.resources.set(hostLabels({ kind: c.kind, state: c.state }, c.host), c.n);
  }

  /** The exposition text, newline-terminated. */
  render(): Promise<string> {
    return this.registry.metrics();
  }

  get contentType(): string {
    return this.registry.contentType;
  }
}
