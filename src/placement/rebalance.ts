/**
 * Rebalancing (`reconcile --rebalance`, never by itself): cold moves proposed one at a time, at
 * most `maxMoves`, each the first that applies of:
 *
 *  1. overload: a reachable host whose placed memory or vCPUs exceed what it can hold (its
 *     capacity shrank, its reserve or overcommit changed): a VM leaves it, preferring the smallest
 *     whose leaving ends the overload, else the largest;
 *  2. spread: a spread constraint whose skew (most − fewest VMs over the domains open to new VMs)
 *     exceeds its maxSkew (the smallest of its VMs'): a VM of a fullest domain moves to a host of
 *     an emptiest one;
 *  3. imbalance: among the hosts open to new VMs (schedulable, not drained, reachable), the most
 *     and least allocated (allocation = the larger of memory and vCPU use, in percent of what the
 *     host can hold) are more than {@link IMBALANCE_POINTS} points apart: a VM of the most
 *     allocated host (ties: host id) moves where it evens the allocations most (the sum of squared
 *     deviations from their mean falls most), and only if they become more even.
 *
 * A VM moves only if it is recorded on a reachable host (`current`), is not pinned, shares no
 * volume with another VM (a group moves only by drain or pin), and has not moved in this run. The
 * target passes every filter (so no move breaks a DoNotSchedule spread or overfills a host), leaves
 * every spread the VM counts in within its maxSkew or no worse than before (ScheduleAnyway ones
 * too: no later run moves it back), and is the best ranked such host. Applied run after run, the
 * proposals come to an end (tested over random fleets).
 */
import { type Scheduler, type VmState, othersOf, scoreOf } from './scheduler.js';
import type { HostState } from './state.js';
import { type Constraint, cmp, num, size } from './state.js';
import type { Move } from './types.js';

/** Allocation gap (percentage points) between the most and least allocated open hosts that a rebalance narrows. */
export const IMBALANCE_POINTS = 20;

interface Candidate { vm: VmState; to: HostState; reason: string }

export function rebalance(s: Scheduler, maxMoves: number): void {
  const moved = new Set<VmState>();
  const info = spreadInfo(s);
  while (s.moves.filter((m) => m.cause === 'rebalance').length < maxMoves) {
    const c = overload(s, info, moved) ?? spread(s, info, moved) ?? imbalance(s, info, moved);
    if (!c) return;
    const from = c.vm.on!;
    s.place(c.vm, c.to);
    moved.add(c.vm);
    const move: Move = { vm: c.vm.r.name, from: from.id, to: c.to.id, cause: 'rebalance', reason: c.reason };
    s.moves.push(move);
    const ev = evaluateFrom(s, c.vm, from);
    const won = ev.fits.find((f) => f.host === c.to);
    s.placements.set(c.vm.r.name, {
      vm: c.vm.r.name, host: c.to.id, why: 'scheduled',
      summary: `rebalance from ${from.id}: ${c.reason}; ${s.fitSummary(s.unit([c.vm]), c.to)}`,
      rejected: ev.rejected, score: won ? scoreOf(won) : {}, fitting: ev.fits.length, others: othersOf(ev.fits, c.to),
    });
  }
}

function movable(s: Scheduler, vm: VmState, moved: Set<VmState>): boolean {
  const on = vm.on;
  if (!on || !on.h.reachable || moved.has(vm) || vm.r.pin !== undefined || vm.r.current !== on.id) return false;
  if (s.placements.get(vm.r.name)?.warning !== undefined) return false;
  return s.groupMates(vm).length === 0;
}

/** The filters and ranking for `vm` as if it were not on `from` (`from` itself excluded). */
function evaluateFrom(s: Scheduler, vm: VmState, from: HostState): ReturnType<Scheduler['evaluate']> {
  const back = vm.on;
  s.unplace(vm);
  try {
    return s.evaluate(s.unit([vm]), from);
  } finally {
    if (back) s.place(vm, back);
  }
}

const byName = (a: VmState, b: VmState): number => cmp(a.r.name, b.r.name);

/** Per spread constraint: the domains open to new VMs (labelled, schedulable, not drained, reachable) and its maxSkew (the smallest of its VMs'). */
type SpreadInfo = Map<Constraint, { domains: string[]; maxSkew: number }>;

function spreadInfo(s: Scheduler): SpreadInfo {
  const maxSkew = new Map<Constraint, number>();
  for (const v of s.vms.values()) {
    if (v.own) maxSkew.set(v.own, Math.min(maxSkew.get(v.own) ?? Infinity, v.r.placement?.spreadBy?.maxSkew ?? 1));
  }
  const info: SpreadInfo = new Map();
  for (const c of [...s.constraints.values()].sort((a, b) => cmp(a.key, b.key))) {
    const domains = [...new Set(s.hosts.filter((h) => h.open && h.h.labels[c.hostLabel] !== undefined).map((h) => h.h.labels[c.hostLabel]!))].sort(cmp);
    info.set(c, { domains, maxSkew: maxSkew.get(c) ?? 1 });
  }
  return info;
}

function skewOf(c: Constraint, domains: string[]): number {
  if (domains.length < 2) return 0;
  let min = Infinity;
  let max = 0;
  for (const d of domains) {
    const n = c.count(d);
    if (n < min) min = n;
    if (n > max) max = n;
  }
  return max - min;
}

/**
 * Whether moving `vm` to `to` keeps every spread it counts in within its maxSkew, or no worse than
 * now: a move for allocation never undoes a spread (not even a ScheduleAnyway one), so no later
 * run moves it back.
 */
function keepsSpreads(s: Scheduler, info: SpreadInfo, vm: VmState, to: HostState): boolean {
  if (vm.counts.length === 0) return true;
  const from = vm.on!;
  const before = vm.counts.map((c) => skewOf(c, info.get(c)?.domains ?? []));
  s.place(vm, to);
  const after = vm.counts.map((c) => skewOf(c, info.get(c)?.domains ?? []));
  s.place(vm, from);
  return vm.counts.every((c, i) => after[i]! <= Math.max(before[i]!, info.get(c)?.maxSkew ?? 1));
}

function vmsOn(s: Scheduler, h: HostState, moved: Set<VmState>): VmState[] {
  return [...s.vms.values()].filter((v) => v.on === h && movable(s, v, moved)).sort(byName);
}

function overload(s: Scheduler, info: SpreadInfo, moved: Set<VmState>): Candidate | undefined {
  for (const h of s.hosts) {
    if (!h.h.reachable || (h.mem <= h.allocMem && h.cpu <= h.allocCpu)) continue;
    const overMem = h.mem > h.allocMem;
    const what = overMem ? `memory ${size(h.mem)} placed, ${h.ofMem()} allocatable` : `${num(h.cpu)} vCPUs placed, ${h.ofCpu()} allocatable`;
    const ends = (v: VmState): boolean => h.mem - v.r.memory <= h.allocMem && h.cpu - v.r.vcpus <= h.allocCpu;
    const big = (a: VmState, b: VmState): number => b.r.memory - a.r.memory || b.r.vcpus - a.r.vcpus || byName(a, b);
    const vms = vmsOn(s, h, moved);
    const order = [...vms.filter(ends).sort((a, b) => -big(a, b)), ...vms.filter((v) => !ends(v)).sort(big)];
    for (const vm of order) {
      const to = evaluateFrom(s, vm, h).fits.find((f) => keepsSpreads(s, info, vm, f.host))?.host;
      if (to) return { vm, to, reason: `${h.id} is over capacity: ${what}` };
    }
  }
  return undefined;
}

function spread(s: Scheduler, info: SpreadInfo, moved: Set<VmState>): Candidate | undefined {
  for (const [c, { domains, maxSkew }] of info) {
    const skew = skewOf(c, domains);
    if (skew <= maxSkew) continue;
    const counts = domains.map((d) => c.count(d));
    const max = Math.max(...counts);
    const min = Math.min(...counts);
    const fullest = new Set(domains.filter((d) => c.count(d) === max));
    const emptiest = new Set(domains.filter((d) => c.count(d) === min));
    const vms = [...s.vms.values()]
      .filter((v) => v.counts.includes(c) && v.on && fullest.has(v.on.h.labels[c.hostLabel]!) && movable(s, v, moved)).sort(byName);
    for (const vm of vms) {
      const to = evaluateFrom(s, vm, vm.on!).fits
        .find((f) => emptiest.has(f.host.h.labels[c.hostLabel]!) && keepsSpreads(s, info, vm, f.host))?.host;
      if (to) return { vm, to, reason: `${c.title}: ${c.describe(domains)} (skew ${skew} > maxSkew ${maxSkew})` };
    }
  }
  return undefined;
}

function imbalance(s: Scheduler, info: SpreadInfo, moved: Set<VmState>): Candidate | undefined {
  const open = s.hosts.filter((h) => h.open);
  if (open.length < 2) return undefined;
  const alloc = new Map(open.map((h) => [h, h.allocation()]));
  let hi = open[0]!;
  let lo = open[0]!;
  for (const h of open) {
    if (alloc.get(h)! > alloc.get(hi)!) hi = h;
    if (alloc.get(h)! < alloc.get(lo)!) lo = h;
  }
  const gap = alloc.get(hi)! - alloc.get(lo)!;
  if (gap <= IMBALANCE_POINTS) return undefined;
  // Sum of squared deviations from the mean allocation: a move must lower it (so moves end).
  const spreadOf = (a: Map<HostState, number>): number => {
    let sum = 0;
    for (const v of a.values()) sum += v;
    const mean = sum / a.size;
    let sq = 0;
    for (const v of a.values()) sq += (v - mean) ** 2;
    return sq;
  };
  const base = spreadOf(alloc);
  let best: { vm: VmState; to: HostState; sq: number; hiAfter: number; toAfter: number } | undefined;
  for (const vm of vmsOn(s, hi, moved)) {
    for (const f of evaluateFrom(s, vm, hi).fits) {
      if (!f.host.open) continue;
      const hiAfter = hi.allocation(-vm.r.memory, -vm.r.vcpus);
      const toAfter = f.host.allocation(vm.r.memory, vm.r.vcpus);
      const trial = new Map(alloc);
      trial.set(hi, hiAfter);
      trial.set(f.host, toAfter);
      const sq = spreadOf(trial);
      if (sq < base - 1e-6 && (!best || sq < best.sq - 1e-6) && keepsSpreads(s, info, vm, f.host)) best = { vm, to: f.host, sq, hiAfter, toAfter };
    }
  }
  if (!best) return undefined;
  const pct = (x: number): string => `${Math.round(x)}%`;
  return {
    vm: best.vm, to: best.to,
    reason: `allocation ${hi.id} ${pct(alloc.get(hi)!)} vs ${lo.id} ${pct(alloc.get(lo)!)}, ${Math.round(gap)} points apart (> ${IMBALANCE_POINTS}): ${hi.id} → ${pct(best.hiAfter)}, ${best.to.id} → ${pct(best.toAfter)}`,
  };
}
