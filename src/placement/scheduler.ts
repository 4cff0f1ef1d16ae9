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

/** A host that passed the filters: its rank keys (`skew` only when the unit spreads). */
export interface Fit { host: HostState; skew: number | undefined; least: number; vms: number }

export function scoreOf(f: Fit): Score {
  return f.skew !== undefined ? { skew: f.skew, leastAllocated: f.least, vms: f.vms } : { leastAllocated: f.least, vms: f.vms };
}

/** How many of the hosts that fit but ranked lower a placement lists (`Placement.others`). */
export const OTHERS_SHOWN = 5;

export function othersOf(fits: Fit[], winner: HostState): { host: string; score: Score }[] {
  const out: { host: string; score: Score }[] = [];
  for (const f of fits) {
    if (out.length >= OTHERS_SHOWN) break;
    if (f.host !== winner) out.push({ host: f.host.id, score: scoreOf(f) });
  }
  return out;
}

export interface Evaluation { fits: Fit[]; rejected: Rejection[] }

interface Spread {
  c: Constraint; domainList: string[]; domains: Set<string>; min: number; max: number; self: number; maxSkew: number; hard: boolean;
  /** Rejection text per domain, made once per evaluation. */
  details: Map<string, string>;
}

const byRank = (a: Fit, b: Fit): number =>
  (a.skew ?? 0) - (b.skew ?? 0) || b.least - a.least || a.vms - b.vms || cmp(a.host.id, b.host.id);

export class Scheduler {
  readonly hosts: HostState[];
  readonly byId = new Map<HostId, HostState>();
  readonly vms = new Map<string, VmState>();
  readonly constraints = new Map<string, Constraint>();
  readonly placements = new Map<string, Placement>();
  readonly unschedulable = new Map<string, Unschedulable>();
  readonly moves: Move[] = [];
  /** Group id → its VMs' names (sorted). */
  readonly groups = new Map<string, string[]>();
  /** Domains per spread label and selector (which hosts are open does not change during a run). */
  private readonly domainCache = new Map<string, string[]>();

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
    // Which constraints a VM counts in, without trying each (a fleet may have one per app):
    // those on a label value it has, plus the few without a value (no vmLabel, or a VM lacking it).
    const byValue = new Map<string, Constraint[]>();
    const general: Constraint[] = [];
    for (const c of this.constraints.values()) {
      if (c.vmLabel !== undefined && c.value !== undefined) {
        const k = `${c.vmLabel}\0${c.value}`;
        byValue.set(k, [...(byValue.get(k) ?? []), c]);
      } else general.push(c);
    }
    for (const r of sorted) {
      if (this.vms.has(r.name)) throw new Error(`schedule: VM ${r.name} given twice`);
      const s = r.placement?.spreadBy;
      const counts = general.filter((c) => c.matches(r));
      for (const [k, v] of Object.entries(r.labels)) counts.push(...(byValue.get(`${k}\0${v}`) ?? []));
      this.vms.set(r.name, { r, own: s ? this.constraints.get(Constraint.keyOf(s, r.labels)) : undefined, counts, on: undefined });
      if (r.group !== undefined) this.groups.set(r.group, [...(this.groups.get(r.group) ?? []), r.name]);
    }
  }

  /** The other VMs of a VM's group (sharing a volume with it). */
  groupMates(vm: VmState): VmState[] {
    if (vm.r.group === undefined) return [];
    return (this.groups.get(vm.r.group) ?? []).filter((n) => n !== vm.r.name).map((n) => this.vms.get(n)!);
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
    const sel = m.r.placement?.hostSelector;
    const key = `${c.hostLabel}\0${sel?.matchLabels ? JSON.stringify(Object.entries(sel.matchLabels).sort(([a], [b]) => cmp(a, b))) : ''}`;
    let out = this.domainCache.get(key);
    if (!out) {
      const set = new Set<string>();
      for (const h of this.hosts) {
        const d = h.h.labels[c.hostLabel];
        if (d !== undefined && h.open && matchesSelector(h.h.labels, sel)) set.add(d);
      }
      out = [...set].sort(cmp);
      this.domainCache.set(key, out);
    }
    return out;
  }

  /** Run every host through the filters for a unit; the fits ranked best first. */
  evaluate(u: Unit, exclude?: HostState): Evaluation {
    const rejected: Rejection[] = [];
    const fits: Fit[] = [];
    const pinned = u.pin !== undefined || u.pinConflict !== undefined;
    const spreads = pinned ? [] : this.spreadsOf(u);
    const selectors = pinned ? [] : u.members.filter((m) => m.r.placement?.hostSelector?.matchLabels !== undefined);
    const pools = [...u.disk.keys()].sort(cmp);
    for (const h of this.hosts) {
      if (h === exclude) continue;
      const why = this.firstFilter(u, h, pinned, selectors, pools);
      if (why) { rejected.push({ host: h.id, filter: why[0], detail: why[1] }); continue; }
      let skew = 0;
      let spreadFail: string | undefined;
      for (const sp of spreads) {
        const d = h.h.labels[sp.c.hostLabel];
        if (d === undefined || !sp.domains.has(d)) {
          if (sp.hard) { spreadFail = `${sp.c.title}: ${d === undefined ? `host has no label ${sp.c.hostLabel}` : `${sp.c.hostLabel} ${d} is not among its domains`}`; break; }
          skew += sp.max + sp.self - sp.min + 1; // ranked after every domain it spreads over
          continue;
        }
        const cnt = sp.c.count(d);
        // Kubernetes' PodTopologySpread: skew = count in the domain + the VM itself − min over eligible domains.
        const k = cnt + sp.self - sp.min;
        if (sp.hard && k > sp.maxSkew) {
          // The same text for every host of a domain: made once (most hosts fail here in a big fleet).
          spreadFail = sp.details.get(d);
          if (spreadFail === undefined) {
            const minAt = sp.domainList.filter((x) => sp.c.count(x) === sp.min).slice(0, 3).join(', ');
            spreadFail = `${sp.c.title}: ${sp.c.hostLabel} ${d} would have ${cnt + sp.self}, min ${sp.min} (${minAt}): skew ${k} > maxSkew ${sp.maxSkew}`;
            sp.details.set(d, spreadFail);
          }
          break;
        }
        skew += k;
      }
      if (spreadFail !== undefined) { rejected.push({ host: h.id, filter: 'spread', detail: spreadFail }); continue; }
      const memAfter = h.allocMem > 0 ? Math.max(0, h.freeMem - u.memory) / h.allocMem : 0;
      const cpuAfter = h.allocCpu > 0 ? Math.max(0, h.freeCpu - u.vcpus) / h.allocCpu : 0;
      const least = Math.round(((memAfter + cpuAfter) / 2) * 1000) / 10;
      fits.push({ host: h, skew: spreads.length ? skew : undefined, least, vms: h.vms });
    }
    fits.sort(byRank);
    return { fits, rejected };
  }

  /** The first filter (before spread) that rejects `h` for `u`, with its detail. */
  private firstFilter(u: Unit, h: HostState, pinned: boolean, selectors: VmState[], pools: string[]): [Rejection['filter'], string] | undefined {
    if (u.pinConflict !== undefined) return ['pin', u.pinConflict];
    if (u.pin !== undefined && h.id !== u.pin) return ['pin', `pinned to ${u.pin} (spec.host)${this.byId.has(u.pin) ? '' : ', which is no Host'}`];
    if (u.anchor && h !== u.anchor) return ['group', `its group is on ${u.anchor.id} (${u.anchorVia})`];
    if (h.h.drain) return ['drain', 'host is draining (spec.drain)'];
    if (!pinned && !h.h.schedulable) return ['unschedulable', 'takes no new VMs (spec.schedulable: false)'];
    if (!h.h.reachable) return ['unreachable', 'host is unreachable'];
    for (const m of selectors) {
      if (!matchesSelector(h.h.labels, m.r.placement?.hostSelector)) return ['selector', `hostSelector: ${selectorMismatch(h.h.labels, m.r.placement?.hostSelector)}`];
    }
    if (u.memory > h.freeMem) return ['memory', `needs ${size(u.memory)}, ${size(Math.max(0, h.freeMem))} free of ${h.ofMem()}`];
    if (u.vcpus > h.freeCpu) return ['vcpus', `needs ${u.vcpus} vCPUs, ${num(Math.max(0, h.freeCpu))} free of ${h.ofCpu()}`];
    for (const p of pools) {
      const free = h.diskFree(p);
      const need = u.disk.get(p)!;
      if (free !== undefined && need > free) return ['disk', `pool ${p}: needs ${size(need)}, ${size(Math.max(0, free))} free of ${size(h.h.capacity.disk[p]!)}`];
    }
    return undefined;
  }

  /** Per spread constraint of a member: its domains, their min and max count, how many of the unit count in it. */
  private spreadsOf(u: Unit): Spread[] {
    const out: Spread[] = [];
    for (const m of u.members) {
      const sb = m.r.placement?.spreadBy;
      const c = m.own;
      if (!sb || !c) continue;
      const domainList = this.domainsFor(c, m);
      let min = Infinity;
      let max = 0;
      for (const d of domainList) {
        const n = c.count(d);
        if (n < min) min = n;
        if (n > max) max = n;
      }
      out.push({
        c, domainList, domains: new Set(domainList), min: domainList.length ? min : 0, max,
        self: u.members.length === 1 ? 1 : u.members.filter((x) => x.counts.includes(c)).length,
        maxSkew: sb.maxSkew ?? 1, hard: (sb.whenUnsatisfiable ?? 'DoNotSchedule') === 'DoNotSchedule', details: new Map(),
      });
    }
    return out;
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

