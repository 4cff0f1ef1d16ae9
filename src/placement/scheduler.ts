/**
 * The scheduler's working state and its filters: hosts with their usage, VMs with the spread
 * constraints they count in, and `evaluate` (every host through the filters for one unit, the
 * survivors ranked). `schedule.ts` drives it; `rebalance.ts` proposes moves with it.
 *
 * Filters, in order (a host's reason is the first that fails): pin, group, drain, unschedulable
 * (bypassed by a pin), unreachable, selector (bypassed by a pin), memory, vcpus, disk (per pool
 * whose capacity on the host is known), spread (DoNotSchedule only; bypassed by a pin).
 */
import type { HostId } from '../model/kinds.js';
import { Constraint, HostState, cmp, matchesSelector, num, selectorMismatch, size } from './state.js';
import type { Move, Placement, PlacementHost, PlacementRequest, Rejection, Score, Unschedulable } from './types.js';

export interface VmState {
  readonly r: PlacementRequest;
  /** The constraint of its own `spreadBy`. */
  readonly own: Constraint | undefined;
  /** Every constraint it counts in. */
  readonly counts: Constraint[];
  on: HostState | undefined;
}

export interface Unit {
  members: VmState[];
  memory: number;
  vcpus: number;
  disk: Map<string, number>;
  pin: HostId | undefined;
  pinConflict: string | undefined;
  anchor: HostState | undefined;
  anchorVia: string | undefined;
}

export interface Fit { host: HostState; score: Score; rank: number[] }

export interface Evaluation { fits: Fit[]; rejected: Rejection[] }

export class Scheduler {
  readonly hosts: HostState[];
  readonly byId = new Map<HostId, HostState>();
  readonly vms = new Map<string, VmState>();
  readonly constraints = new Map<string, Constraint>();
  readonly placements = new Map<string, Placement>();
  readonly unschedulable = new Map<string, Unschedulable>();
  readonly moves: Move[] = [];

  constructor(hosts: PlacementHost[], requests: PlacementRequest[]) {
    this.hosts = [...hosts].sort((a, b) => cmp(a.id, b.id)).map((h) => new HostState(h));
    for (const h of this.hosts) {
      if (this.byId.has(h.id)) throw new Error(`schedule: host ${h.id} given twice`);
      this.byId.set(h.id, h);
    }
    const sorted = [...requests].sort((a, b) => cmp(a.name, b.name));
    for (const r of sorted) {
      const s = r.placement?.spreadBy;
      if (!s) continue;
      const key = Constraint.keyOf(s, r.labels);
      if (!this.constraints.has(key)) this.constraints.set(key, new Constraint(key, s.hostLabel, s.vmLabel, s.vmLabel === undefined ? undefined : r.labels[s.vmLabel]));
    }
    const all = [...this.constraints.values()];
    for (const r of sorted) {
      if (this.vms.has(r.name)) throw new Error(`schedule: VM ${r.name} given twice`);
      const s = r.placement?.spreadBy;
      this.vms.set(r.name, { r, own: s ? this.constraints.get(Constraint.keyOf(s, r.labels)) : undefined, counts: all.filter((c) => c.matches(r)), on: undefined });
    }
  }

  place(vm: VmState, h: HostState): void {
    if (vm.on) this.unplace(vm);
    vm.on = h;
    h.mem += vm.r.memory;
    h.cpu += vm.r.vcpus;
    h.vms += 1;
    for (const [pool, b] of Object.entries(vm.r.disk)) h.disk.set(pool, (h.disk.get(pool) ?? 0) + b);
    for (const c of vm.counts) c.add(h.h.labels[c.hostLabel], 1);
  }

  unplace(vm: VmState): void {
    const h = vm.on;
    if (!h) return;
    vm.on = undefined;
    h.mem -= vm.r.memory;
    h.cpu -= vm.r.vcpus;
    h.vms -= 1;
    for (const [pool, b] of Object.entries(vm.r.disk)) h.disk.set(pool, (h.disk.get(pool) ?? 0) - b);
    for (const c of vm.counts) c.add(h.h.labels[c.hostLabel], -1);
  }

  /** Why a VM cannot stay where it is recorded, or undefined when it stays (sticky). */
  leaveReason(vm: VmState): { cause: 'pin' | 'drain'; text: string } | 'gone' | undefined {
    const cur = vm.r.current;
    if (cur === undefined) return 'gone';
    const h = this.byId.get(cur);
    if (!h) return 'gone';
    if (vm.r.pin !== undefined && vm.r.pin !== cur) return { cause: 'pin', text: `spec.host changed from ${cur} to ${vm.r.pin}` };
    if (h.h.drain) return { cause: 'drain', text: `host ${cur} is draining` };
    return undefined;
  }

  unit(members: VmState[]): Unit {
    const pins = [...new Set(members.map((m) => m.r.pin).filter((p): p is string => p !== undefined))].sort(cmp);
    const disk = new Map<string, number>();
    for (const m of members) for (const [p, b] of Object.entries(m.r.disk)) disk.set(p, (disk.get(p) ?? 0) + b);
    return {
      members,
      memory: members.reduce((s, m) => s + m.r.memory, 0),
      vcpus: members.reduce((s, m) => s + m.r.vcpus, 0),
      disk,
      pin: pins.length === 1 ? pins[0] : undefined,
      pinConflict: pins.length > 1
        ? `the VMs of its group (sharing a volume) are pinned to different hosts: ${members.filter((m) => m.r.pin).map((m) => `${m.r.name} → ${m.r.pin}`).join(', ')}`
        : undefined,
      anchor: undefined,
      anchorVia: undefined,
    };
  }

  /** Domains a constraint spreads a member over: values of `hostLabel` on hosts open to it (selector, schedulable, not drained, reachable). */
  domainsFor(c: Constraint, m: VmState): string[] {
    const out = new Set<string>();
    for (const h of this.hosts) {
      const d = h.h.labels[c.hostLabel];
      if (d !== undefined && h.open && matchesSelector(h.h.labels, m.r.placement?.hostSelector)) out.add(d);
    }
    return [...out].sort(cmp);
  }

  /** Run every host through the filters for a unit; the fits ranked best first. */
  evaluate(u: Unit, exclude?: HostState): Evaluation {
    const rejected: Rejection[] = [];
    const fits: Fit[] = [];
    const pinned = u.pin !== undefined || u.pinConflict !== undefined;
    // Per spread constraint of a member: its domains, their minimum and how many of the unit count in it.
    const spreads: { m: VmState; c: Constraint; domains: string[]; min: number; max: number; self: number; maxSkew: number; hard: boolean }[] = [];
    if (!pinned) {
      for (const m of u.members) {
        const s = m.r.placement?.spreadBy;
        if (!s || !m.own) continue;
        const domains = this.domainsFor(m.own, m);
        const cs = domains.map((d) => m.own!.count(d));
        spreads.push({
          m, c: m.own, domains,
          min: cs.length ? Math.min(...cs) : 0,
          max: cs.length ? Math.max(...cs) : 0,
          self: u.members.filter((x) => x.counts.includes(m.own!)).length,
          maxSkew: s.maxSkew ?? 1,
          hard: (s.whenUnsatisfiable ?? 'DoNotSchedule') === 'DoNotSchedule',
        });
      }
    }
    for (const h of this.hosts) {
      if (h === exclude) continue;
      const reject = (filter: Rejection['filter'], detail: string): void => void rejected.push({ host: h.id, filter, detail });
      if (u.pinConflict !== undefined) { reject('pin', u.pinConflict); continue; }
      if (u.pin !== undefined && h.id !== u.pin) { reject('pin', `pinned to ${u.pin} (spec.host)`); continue; }
      if (u.anchor && h !== u.anchor) { reject('group', `its group is on ${u.anchor.id} (${u.anchorVia})`); continue; }
      if (h.h.drain) { reject('drain', 'host is draining (spec.drain)'); continue; }
      if (!pinned && !h.h.schedulable) { reject('unschedulable', 'takes no new VMs (spec.schedulable: false)'); continue; }
      if (!h.h.reachable) { reject('unreachable', 'host is unreachable'); continue; }
      if (!pinned) {
        const bad = u.members.find((m) => !matchesSelector(h.h.labels, m.r.placement?.hostSelector));
        if (bad) { reject('selector', `hostSelector: ${selectorMismatch(h.h.labels, bad.r.placement?.hostSelector)}`); continue; }
      }
      if (u.memory > h.freeMem) {
        reject('memory', `needs ${size(u.memory)}, ${size(Math.max(0, h.freeMem))} free of ${h.ofMem()}`);
        continue;
      }
      if (u.vcpus > h.freeCpu) {
        reject('vcpus', `needs ${u.vcpus} vCPUs, ${num(Math.max(0, h.freeCpu))} free of ${h.ofCpu()}`);
        continue;
      }
      const pools = [...u.disk.keys()].sort(cmp);
      const short = pools.find((p) => { const f = h.diskFree(p); return f !== undefined && u.disk.get(p)! > f; });
      if (short !== undefined) {
        reject('disk', `pool ${short}: needs ${size(u.disk.get(short)!)}, ${size(Math.max(0, h.diskFree(short)!))} free of ${size(h.h.capacity.disk[short]!)}`);
        continue;
      }
      let skew = 0;
      let spreadFail: string | undefined;
      for (const s of spreads) {
        const d = h.h.labels[s.c.hostLabel];
        const cnt = d === undefined ? undefined : s.c.count(d);
        const inDomains = d !== undefined && s.domains.includes(d);
        // Kubernetes' PodTopologySpread: skew = count in the domain + the VM itself − min over eligible domains.
        const k = cnt === undefined || !inDomains ? s.max + s.self - s.min + 1 : cnt + s.self - s.min;
        if (s.hard && d === undefined) { spreadFail = `${s.c.title}: host has no label ${s.c.hostLabel}`; break; }
        if (s.hard && k > s.maxSkew) {
          const minAt = s.domains.filter((x) => s.c.count(x) === s.min).slice(0, 3).join(', ');
          spreadFail = `${s.c.title}: ${s.c.hostLabel} ${d} would have ${cnt! + s.self}, min ${s.min} (${minAt}): skew ${k} > maxSkew ${s.maxSkew}`;
          break;
        }
        skew += k;
      }
      if (spreadFail !== undefined) { reject('spread', spreadFail); continue; }
      const freeAfter = (free: number, alloc: number): number => (alloc > 0 ? Math.max(0, free) / alloc : 0);
      const least = Math.round(((freeAfter(h.freeMem - u.memory, h.allocMem) + freeAfter(h.freeCpu - u.vcpus, h.allocCpu)) / 2) * 1000) / 10;
      const score: Score = spreads.length ? { skew, leastAllocated: least, vms: h.vms } : { leastAllocated: least, vms: h.vms };
      fits.push({ host: h, score, rank: [skew, -least, h.vms] });
    }
    fits.sort((a, b) => a.rank[0]! - b.rank[0]! || a.rank[1]! - b.rank[1]! || a.rank[2]! - b.rank[2]! || cmp(a.host.id, b.host.id));
    return { fits, rejected };
  }

  /** "fits: 3.1GiB free, 6 vCPUs free; spread by zone for app=web: a 1, b 1, c 0 → c" (counts before placing). */
  fitSummary(u: Unit, h: HostState): string {
    const parts = [`fits: ${size(Math.max(0, h.freeMem))} free, ${num(Math.max(0, h.freeCpu))} vCPUs free`];
    if (u.pin === undefined) {
      const seen = new Set<Constraint>();
      for (const m of u.members) {
        if (!m.own || seen.has(m.own)) continue;
        seen.add(m.own);
        const domains = this.domainsFor(m.own, m);
        const d = h.h.labels[m.own.hostLabel];
        parts.push(`${m.own.title}: ${m.own.describe(domains)}${d === undefined ? ` → host has no label ${m.own.hostLabel}` : ` → ${d}`}`);
      }
    }
    return parts.join('; ');
  }
}

