/**
 * Invariants of the scheduler over random fleets (seeded, so a failure names its seed):
 * every VM placed or unschedulable, never both; new placements never overfill a host; a hard
 * spread is never exceeded by what was placed; a recorded VM moves only for a cause; rebalance
 * moves at most maxMoves and never a pinned VM; every host accounted for in each explanation.
 */
import { describe, expect, it } from 'vitest';
import { allocatable, schedule, type PlacementHost, type PlacementRequest } from '../../../src/placement/index.js';
import { prng } from '../../support/prng.js';

const GiB = 1024 ** 3;

const rng = prng;

function fleet(seed: number, withCurrent: boolean): { hosts: PlacementHost[]; vms: PlacementRequest[] } {
  const r = rng(seed);
  const pick = <T>(xs: T[]): T => xs[Math.floor(r() * xs.length)]!;
  const nHosts = 2 + Math.floor(r() * 8);
  const hosts: PlacementHost[] = Array.from({ length: nHosts }, (_, i) => ({
    id: `h${i}`,
    labels: { zone: pick(['a', 'b', 'c']), ...(r() < 0.5 ? { ssd: 'true' } : {}) },
    schedulable: r() > 0.1, drain: withCurrent && r() < 0.1, reachable: r() > 0.1,
    capacity: { memory: pick([4, 8, 16]) * GiB, vcpus: pick([2, 4, 8]), disk: (r() < 0.5 ? { default: pick([50, 200]) * GiB } : {}) as Record<string, number> },
    reserved: { memory: pick([0, 1]) * GiB, vcpus: pick([0, 1]) },
    overcommit: { cpu: pick([1, 2]), memory: pick([1, 1.5]) },
  }));
  // One placement spec per app, so every VM counted by a spread is also held to it.
  const apps = ['web', 'db', 'cache', 'batch'];
  const specs = new Map(apps.map((a) => [a, r() < 0.6
    ? { spreadBy: { hostLabel: 'zone', vmLabel: 'app', maxSkew: pick([1, 2]), whenUnsatisfiable: pick(['DoNotSchedule', 'DoNotSchedule', 'ScheduleAnyway'] as const) } }
    : r() < 0.5 ? { hostSelector: { matchLabels: { ssd: 'true' } } } : undefined]));
  const nVms = 5 + Math.floor(r() * 40);
  const vms: PlacementRequest[] = Array.from({ length: nVms }, (_, i) => {
    const app = pick(apps);
    return {
      name: `vm${i}`, labels: { app }, memory: pick([0.5, 1, 2, 4]) * GiB, vcpus: pick([1, 1, 2]),
      disk: (r() < 0.3 ? { default: pick([10, 40]) * GiB } : {}) as Record<string, number>,
      placement: specs.get(app),
      ...(r() < 0.05 ? { pin: pick(hosts).id } : {}),
      ...(r() < 0.1 ? { group: `g${Math.floor(r() * 3)}` } : {}),
      ...(withCurrent && r() < 0.5 ? { current: r() < 0.9 ? pick(hosts).id : 'gone' } : {}),
    };
  });
  return { hosts, vms };
}

const SEEDS = Array.from({ length: 150 }, (_, i) => i + 1);

describe('scheduler invariants over random fleets', () => {
  it('every VM is placed or unschedulable, and every host is in each explanation once', () => {
    for (const seed of SEEDS) {
      const { hosts, vms } = fleet(seed, true);
      const res = schedule(hosts, vms, { rebalance: seed % 2 === 0, maxMoves: seed % 4 });
      for (const v of vms) {
        const placed = res.placements.has(v.name);
        expect(placed !== res.unschedulable.has(v.name), `seed ${seed}: ${v.name}`).toBe(true);
        const p = res.placements.get(v.name);
        if (p?.score) {
          const named = [p.host, ...p.rejected.map((x) => x.host)];
          expect(new Set(named).size, `seed ${seed}: ${v.name} names a host twice`).toBe(named.length);
          expect(p.rejected.length + (p.fitting ?? 0), `seed ${seed}: ${v.name}`).toBe(hosts.length - (res.moves.some((m) => m.vm === v.name && m.cause === 'rebalance') ? 1 : 0));
        }
        const u = res.unschedulable.get(v.name);
        if (u) expect(u.reasons.map((x) => x.host).sort(), `seed ${seed}: ${v.name}`).toEqual(hosts.map((h) => h.id).sort());
      }
    }
  });

  it('without recorded VMs: no host is filled beyond what it holds, and no hard spread beyond maxSkew', () => {
    for (const seed of SEEDS) {
      const { hosts, vms } = fleet(seed, false);
      const res = schedule(hosts, vms);
      for (const h of hosts) {
        const on = vms.filter((v) => res.placements.get(v.name)?.host === h.id);
        const mem = on.reduce((s, v) => s + v.memory, 0);
        const cpu = on.reduce((s, v) => s + v.vcpus, 0);
        expect(mem, `seed ${seed}: ${h.id} memory`).toBeLessThanOrEqual(allocatable(h.capacity.memory, h.reserved.memory, h.overcommit.memory) + 1e-6);
        expect(cpu, `seed ${seed}: ${h.id} vcpus`).toBeLessThanOrEqual(allocatable(h.capacity.vcpus, h.reserved.vcpus, h.overcommit.cpu) + 1e-6);
        for (const pool of Object.keys(h.capacity.disk)) {
          expect(on.reduce((s, v) => s + (v.disk[pool] ?? 0), 0), `seed ${seed}: ${h.id} pool ${pool}`).toBeLessThanOrEqual(h.capacity.disk[pool]!);
        }
      }
      // Hard spreads, over the domains open to the app's VMs, counting only unpinned, ungrouped apps.
      for (const app of ['web', 'db', 'cache', 'batch']) {
        const mine = vms.filter((v) => v.labels.app === app);
        const s = mine[0]?.placement?.spreadBy;
        if (!s || (s.whenUnsatisfiable ?? 'DoNotSchedule') !== 'DoNotSchedule' || mine.some((v) => v.pin !== undefined || v.group !== undefined)) continue;
        const open = hosts.filter((h) => h.schedulable && !h.drain && h.reachable);
        const domains = [...new Set(open.map((h) => h.labels.zone!))];
        const count = (d: string): number => mine.filter((v) => {
          const p = res.placements.get(v.name);
          return p !== undefined && hosts.find((h) => h.id === p.host)!.labels.zone === d;
        }).length;
        const counts = domains.map(count);
        if (counts.length) expect(Math.max(...counts) - Math.min(...counts), `seed ${seed}: ${app} ${domains} ${counts}`).toBeLessThanOrEqual(s.maxSkew ?? 1);
      }
    }
  });

  it('a recorded VM moves only for a cause; rebalance moves at most maxMoves, never a pinned or grouped VM', () => {
    for (const seed of SEEDS) {
      const { hosts, vms } = fleet(seed, true);
      const byId = new Map(hosts.map((h) => [h.id, h]));
      for (const maxMoves of [0, 1, 3]) {
        const res = schedule(hosts, vms, { rebalance: maxMoves > 0, maxMoves });
        const rebalanced = res.moves.filter((m) => m.cause === 'rebalance');
        expect(rebalanced.length, `seed ${seed}`).toBeLessThanOrEqual(maxMoves);
        for (const v of vms) {
          const h = v.current === undefined ? undefined : byId.get(v.current);
          const p = res.placements.get(v.name);
          if (!h) continue;
          // A recorded VM is never dropped: it stays, or moves with a cause.
          expect(p, `seed ${seed}: ${v.name} recorded on ${h.id} lost its placement`).toBeDefined();
          const move = res.moves.find((m) => m.vm === v.name);
          if (p!.host !== h.id) {
            expect(move, `seed ${seed}: ${v.name} moved without a move`).toMatchObject({ from: h.id, to: p!.host });
            const cause = v.pin !== undefined && v.pin !== h.id ? 'pin' : h.drain ? 'drain' : 'rebalance';
            expect(move!.cause, `seed ${seed}: ${v.name}`).toBe(cause);
            if (cause !== 'pin' && cause !== 'drain') {
              expect(v.pin, `seed ${seed}: pinned ${v.name} rebalanced`).toBeUndefined();
              const mates = vms.filter((o) => o !== v && v.group !== undefined && o.group === v.group);
              expect(mates, `seed ${seed}: ${v.name}, sharing a volume, rebalanced`).toEqual([]);
            }
            expect(h.reachable, `seed ${seed}: ${v.name} moved off an unreachable host`).toBe(true);
          } else {
            expect(move, `seed ${seed}: ${v.name}`).toBeUndefined();
          }
        }
      }
    }
  });

  it('rebalancing run after run (each run applying the last one\'s moves) comes to an end', () => {
    for (const seed of SEEDS) {
      const { hosts, vms } = fleet(seed, true);
      let now = vms;
      let runs = 0;
      for (;;) {
        const res = schedule(hosts, now, { rebalance: true, maxMoves: 2 });
        if (res.moves.length === 0) break;
        now = now.map((v) => ({ ...v, current: res.placements.get(v.name)?.host ?? v.current }));
        runs += 1;
        expect(runs, `seed ${seed}: still moving after ${runs} runs: ${res.moves.map((m) => `${m.vm} ${m.from}→${m.to} ${m.reason}`).join('; ')}`).toBeLessThan(40);
      }
    }
  });
});
