/**
 * `schedule()`: which host each VirtualMachine lives on, and why. Pure and deterministic: no I/O,
 * and the same hosts and VMs in any order give the same result.
 *
 *  1. Sticky: a VM recorded on a host (`current`) that still exists, is not drained, and is its
 *     pin when pinned stays there, reachable or not (a host that is down keeps its VMs). Sticky VMs
 *     are counted in their hosts' usage before anything new is placed. A VM that must leave (pin
 *     changed, host drained) while its host is unreachable stays too, with a warning: a cold move
 *     needs its source.
 *  2. The rest, as units (the pending VMs of one `group`, which share a volume, are one demand,
 *     anchored on the host of the group's first placed member by name): pinned units first, then
 *     VMs that must move, then by size (memory, then vCPUs, larger first, so big VMs are not
 *     squeezed out by small ones), then by name. Each unit runs every host through the filters
 *     (scheduler.ts; the first failing filter is the host's reason) and the survivors are ranked:
 *     spread skew (lower first), least allocated after placing (higher first), fewest VMs, host id.
 *     A VM that must move but fits nowhere stays where it is, with a warning; a new one that fits
 *     nowhere is unschedulable, with the reason per host.
 *  3. With `rebalance`: at most `maxMoves` cold moves (rebalance.ts).
 */
import { rebalance } from './rebalance.js';
import { type Unit, type VmState, Scheduler, othersOf, scoreOf } from './scheduler.js';
import { cmp } from './state.js';
import type { Placement, PlacementHost, PlacementRequest, Rejection, ScheduleOptions, ScheduleResult } from './types.js';

const rejectionSummary = (rejected: Rejection[], total: number): string => {
  const by = new Map<string, string[]>();
  for (const r of rejected) by.set(r.filter, [...(by.get(r.filter) ?? []), r.host]);
  const list = (hs: string[]): string => (hs.length > 4 ? `${hs.slice(0, 4).join(', ')} and ${hs.length - 4} more` : hs.join(', '));
  return `0/${total} hosts fit: ${[...by].map(([f, hs]) => `${f} (${list(hs)})`).join(', ') || 'no hosts'}`;
};

export function schedule(hosts: PlacementHost[], vms: PlacementRequest[], opts: ScheduleOptions = {}): ScheduleResult {
  const s = new Scheduler(hosts, vms);
  const pending: VmState[] = [];
  const leaving = new Map<VmState, { cause: 'pin' | 'drain'; text: string }>();

  // 1. Sticky.
  for (const vm of s.vms.values()) {
    const why = s.leaveReason(vm);
    const cur = vm.r.current === undefined ? undefined : s.byId.get(vm.r.current);
    if (why === undefined && cur) {
      s.place(vm, cur);
      s.placements.set(vm.r.name, {
        vm: vm.r.name, host: cur.id, why: vm.r.pin !== undefined ? 'pinned' : 'sticky',
        summary: vm.r.pin !== undefined ? `pinned (spec.host), recorded there` : `sticky: recorded on ${cur.id}`, rejected: [],
      });
    } else if (why !== undefined && why !== 'gone' && cur && !cur.h.reachable) {
      // The move needs its source: it waits for the host to come back.
      s.place(vm, cur);
      s.placements.set(vm.r.name, {
        vm: vm.r.name, host: cur.id, why: 'sticky', summary: `sticky: recorded on ${cur.id}`, rejected: [],
        warning: `${why.text}, but ${cur.id} is unreachable: it moves when the host is back`,
      });
    } else {
      if (why !== undefined && why !== 'gone') leaving.set(vm, why);
      pending.push(vm);
    }
  }

  // 2. Units of the rest: a group's pending members together, anchored where a sticky member is.
  const groups = new Map<string, VmState[]>();
  for (const vm of pending) {
    const g = vm.r.group !== undefined ? `g\0${vm.r.group}` : `v\0${vm.r.name}`;
    groups.set(g, [...(groups.get(g) ?? []), vm]);
  }
  const units: Unit[] = [];
  for (const members of groups.values()) {
    const u = s.unit(members);
    const g = members[0]!.r.group;
    if (g !== undefined) {
      const placed = (s.groups.get(g) ?? []).map((n) => s.vms.get(n)!).filter((v) => v.on);
      if (placed[0]) {
        u.anchor = placed[0].on;
        u.anchorVia = `shares a volume with ${placed.map((v) => v.r.name).join(', ')}`;
      }
    }
    units.push(u);
  }
  const key = (u: Unit): (number | string)[] => [
    u.pin !== undefined ? 0 : 1, u.members.some((m) => leaving.has(m)) ? 0 : 1, -u.memory, -u.vcpus, u.members[0]!.r.name,
  ];
  units.sort((a, b) => {
    const ka = key(a);
    const kb = key(b);
    for (let i = 0; i < ka.length; i++) {
      const x = ka[i]!;
      const y = kb[i]!;
      if (x !== y) return typeof x === 'number' && typeof y === 'number' ? x - y : cmp(String(x), String(y));
    }
    return 0;
  });

  for (const u of units) {
    const ev = s.evaluate(u);
    const best = ev.fits[0];
    if (best) {
      const summary = s.fitSummary(u, best.host);
      const groupNote = u.members.length > 1 || u.anchor
        ? `with its group (${u.anchorVia ?? `shares a volume with ${u.members.map((m) => m.r.name).join(', ')}`}); `
        : '';
      for (const m of u.members) {
        s.place(m, best.host);
        const why: Placement['why'] = m.r.pin !== undefined ? 'pinned' : u.members.length > 1 || u.anchor ? 'group' : 'scheduled';
        const leave = leaving.get(m);
        const moving = leave !== undefined && m.r.current !== undefined && m.r.current !== best.host.id;
        const p: Placement = {
          vm: m.r.name, host: best.host.id, why,
          summary: `${moving ? `moves from ${m.r.current} (${leave.text}); ` : ''}${m.r.pin !== undefined ? 'pinned (spec.host); ' : ''}${groupNote}${summary}`,
          rejected: ev.rejected, score: scoreOf(best), fitting: ev.fits.length, others: othersOf(ev.fits, best.host),
        };
        s.placements.set(m.r.name, p);
        if (moving && m.r.current !== undefined) {
          s.moves.push({ vm: m.r.name, from: m.r.current, to: best.host.id, cause: leave.cause, reason: leave.text });
        }
      }
      continue;
    }
    const summary = rejectionSummary(ev.rejected, s.hosts.length);
    for (const m of u.members) {
      const leave = leaving.get(m);
      const cur = m.r.current === undefined ? undefined : s.byId.get(m.r.current);
      if (leave && cur) {
        s.place(m, cur);
        s.placements.set(m.r.name, {
          vm: m.r.name, host: cur.id, why: 'sticky', summary: `sticky: recorded on ${cur.id}`, rejected: ev.rejected,
          warning: `${leave.text}, but no host fits it: ${summary}; it stays on ${cur.id}`,
        });
      } else {
        s.unschedulable.set(m.r.name, { vm: m.r.name, reasons: ev.rejected, summary });
      }
    }
  }

  // 3. Rebalance (opt-in).
  if (opts.rebalance) rebalance(s, Math.max(0, opts.maxMoves ?? 1));

  return { placements: s.placements, moves: s.moves, unschedulable: s.unschedulable };
}

