/**
 * The fleet's scheduler (src/placement/): filters with their reasons, spread, stickiness, groups,
 * drains, pin changes, rebalancing, determinism and the plan's text. Pure: no host, no store.
 */
import { describe, expect, it } from 'vitest';
import {
  explainLines, placementLine, resultJson, schedule, stayLines, unschedulableText,
  type PlacementHost, type PlacementRequest, type ScheduleResult,
} from '../../../src/placement/index.js';
import { prng } from '../../support/prng.js';

const GiB = 1024 ** 3;

function host(id: string, labels: Record<string, string> = {}, o: Partial<Omit<PlacementHost, 'capacity'>> & { memory?: number; vcpus?: number; disk?: Record<string, number> } = {}): PlacementHost {
  return {
    id, labels, schedulable: o.schedulable ?? true, drain: o.drain ?? false, reachable: o.reachable ?? true,
    capacity: { memory: (o.memory ?? 8) * GiB, vcpus: o.vcpus ?? 8, disk: o.disk ?? {} },
    reserved: o.reserved ?? { memory: 0, vcpus: 0 }, overcommit: o.overcommit ?? { cpu: 1, memory: 1 },
  };
}

function vm(name: string, o: Partial<Omit<PlacementRequest, 'memory'>> & { memory?: number } = {}): PlacementRequest {
  return { labels: {}, vcpus: 1, disk: {}, ...o, name, memory: (o.memory ?? 1) * GiB };
}

const web = (n: number, spread: PlacementRequest['placement'] = { spreadBy: { hostLabel: 'zone', vmLabel: 'app' } }): PlacementRequest[] =>
  Array.from({ length: n }, (_, i) => vm(`web-${i + 1}`, { labels: { app: 'web' }, placement: spread }));

const zones3 = (): PlacementHost[] => [host('h1', { zone: 'a' }), host('h2', { zone: 'b' }), host('h3', { zone: 'c' })];

const where = (r: ScheduleResult): Record<string, string> => Object.fromEntries([...r.placements].map(([k, p]) => [k, p.host]).sort());
const perHost = (r: ScheduleResult): Record<string, number> => {
  const out: Record<string, number> = {};
  for (const p of r.placements.values()) out[p.host] = (out[p.host] ?? 0) + 1;
  return out;
};
/** The requests again, each recorded where the result placed it. */
const recorded = (vms: PlacementRequest[], r: ScheduleResult): PlacementRequest[] =>
  vms.map((v) => ({ ...v, current: r.placements.get(v.name)?.host }));

const rng = prng;
function shuffle<T>(xs: T[], rand: () => number): T[] {
  const a = [...xs];
  for (let i = a.length - 1; i > 0; i--) {
    const j = Math.floor(rand() * (i + 1));
    [a[i], a[j]] = [a[j]!, a[i]!];
  }
  return a;
}

describe('spread', () => {
  it('6 VMs spread by zone over 3 zones land 2/2/2, each placement explained', () => {
    const r = schedule(zones3(), web(6));
    expect(perHost(r)).toEqual({ h1: 2, h2: 2, h3: 2 });
    expect(r.unschedulable.size).toBe(0);
    expect(r.moves).toEqual([]);
    const p3 = r.placements.get('web-3')!;
    expect(p3).toMatchObject({ host: 'h3', why: 'scheduled' });
    expect(p3.summary).toBe('fits: 8GiB free, 8 vCPUs free; spread by zone for app=web: a 1, b 1, c 0 → c');
    expect(placementLine(p3)).toBe('→ host h3 (fits: 8GiB free, 8 vCPUs free; spread by zone for app=web: a 1, b 1, c 0 → c)');
    expect(p3.rejected).toEqual([
      { host: 'h1', filter: 'spread', detail: 'spread by zone for app=web: zone a would have 2, min 0 (c): skew 2 > maxSkew 1' },
      { host: 'h2', filter: 'spread', detail: 'spread by zone for app=web: zone b would have 2, min 0 (c): skew 2 > maxSkew 1' },
    ]);
    expect(p3.score).toEqual({ skew: 1, leastAllocated: 87.5, vms: 0 });
    const lines = explainLines(p3);
    expect(lines[0]).toBe('h3: chosen (scheduled): skew 1, least allocated 87.5, VMs 0');
    expect(lines).toContain('h1: rejected by spread: spread by zone for app=web: zone a would have 2, min 0 (c): skew 2 > maxSkew 1');
  });

  it('a rerun with each VM recorded where it landed changes nothing (sticky), even with more room elsewhere', () => {
    const vms = web(6);
    const first = schedule(zones3(), vms);
    const hosts = [...zones3(), host('h4', { zone: 'd' }, { memory: 64, vcpus: 64 })];
    const again = schedule(hosts, recorded(vms, first));
    expect(where(again)).toEqual(where(first));
    expect([...again.placements.values()].every((p) => p.why === 'sticky' && p.summary === `sticky: recorded on ${p.host}`)).toBe(true);
    expect(again.moves).toEqual([]);
  });

  it('only VMs sharing the vmLabel value are counted; without vmLabel, all VMs with the same spreadBy', () => {
    const spread = { spreadBy: { hostLabel: 'zone', vmLabel: 'app' } };
    const vms = [
      ...['db-1', 'db-2'].map((n) => vm(n, { labels: { app: 'db' }, placement: spread })),
      ...['web-1', 'web-2'].map((n) => vm(n, { labels: { app: 'web' }, placement: spread })),
    ];
    const r = schedule([host('h1', { zone: 'a' }), host('h2', { zone: 'b' })], vms);
    expect(where(r)).toEqual({ 'db-1': 'h1', 'db-2': 'h2', 'web-1': 'h1', 'web-2': 'h2' });
    const any = { spreadBy: { hostLabel: 'zone' } };
    const r2 = schedule([host('h1', { zone: 'a' }), host('h2', { zone: 'b' })], [vm('x', { placement: any }), vm('y', { placement: any }), vm('z', { placement: any })]);
    expect(perHost(r2)).toEqual({ h1: 2, h2: 1 });
    expect(r2.placements.get('z')!.summary).toContain('spread by zone: a 1, b 1 → a');
  });

  it('DoNotSchedule leaves a VM unschedulable where ScheduleAnyway places it beyond maxSkew', () => {
    // zone c's host is too small for any VM, but zone c still counts (0 VMs) as Kubernetes counts it.
    const hosts = [host('h1', { zone: 'a' }), host('h2', { zone: 'b' }), host('h3', { zone: 'c' }, { memory: 1 })];
    const mk = (when: 'DoNotSchedule' | 'ScheduleAnyway'): PlacementRequest[] =>
      ['v1', 'v2', 'v3', 'v4'].map((n) => vm(n, { memory: 2, labels: { app: 'x' }, placement: { spreadBy: { hostLabel: 'zone', vmLabel: 'app', whenUnsatisfiable: when } } }));
    const hard = schedule(hosts, mk('DoNotSchedule'));
    expect(where(hard)).toEqual({ v1: 'h1', v2: 'h2' });
    expect([...hard.unschedulable.keys()]).toEqual(['v3', 'v4']);
    expect(hard.unschedulable.get('v3')!.reasons).toEqual([
      { host: 'h1', filter: 'spread', detail: 'spread by zone for app=x: zone a would have 2, min 0 (c): skew 2 > maxSkew 1' },
      { host: 'h2', filter: 'spread', detail: 'spread by zone for app=x: zone b would have 2, min 0 (c): skew 2 > maxSkew 1' },
      { host: 'h3', filter: 'memory', detail: 'needs 2GiB, 1GiB free of 1GiB' },
    ]);
    const soft = schedule(hosts, mk('ScheduleAnyway'));
    expect(perHost(soft)).toEqual({ h1: 2, h2: 2 });
    expect(soft.unschedulable.size).toBe(0);
    expect(soft.placements.get('v3')!.score).toMatchObject({ skew: 2 });
  });

  it('maxSkew 2 allows 2 more in one zone; a host without the label is rejected by a hard spread', () => {
    const hosts = [host('h1', { zone: 'a' }, { memory: 64 }), host('h2', { zone: 'b' }, { memory: 1 }), host('h9')];
    const vms = ['v1', 'v2', 'v3'].map((n) => vm(n, { labels: { app: 'x' }, placement: { spreadBy: { hostLabel: 'zone', vmLabel: 'app', maxSkew: 2 } } }));
    const r = schedule(hosts, vms);
    // v2 prefers zone b (lower skew); v3 then goes to a (b is full): a 2, b 1 is within maxSkew 2.
    expect(where(r)).toEqual({ v1: 'h1', v2: 'h2', v3: 'h1' });
    expect(r.placements.get('v1')!.rejected.find((x) => x.host === 'h9')).toEqual({ host: 'h9', filter: 'spread', detail: 'spread by zone for app=x: host has no label zone' });
  });
});

describe('filters', () => {
  it('a pinned VM lands on its pin, even on a host closed to new VMs or outside its selector; others are rejected by pin', () => {
    const hosts = [host('h1'), host('h2', {}, { schedulable: false }), host('h3')];
    const r = schedule(hosts, [vm('p', { pin: 'h2', placement: { hostSelector: { matchLabels: { ssd: 'true' } } } })]);
    const p = r.placements.get('p')!;
    expect(p).toMatchObject({ host: 'h2', why: 'pinned' });
    expect(p.summary).toBe('pinned (spec.host); fits: 8GiB free, 8 vCPUs free');
    expect(p.rejected).toEqual([
      { host: 'h1', filter: 'pin', detail: 'pinned to h2 (spec.host)' },
      { host: 'h3', filter: 'pin', detail: 'pinned to h2 (spec.host)' },
    ]);
    expect(schedule(hosts, [vm('q', { pin: 'h9' })]).unschedulable.get('q')!.reasons[0]).toEqual({ host: 'h1', filter: 'pin', detail: 'pinned to h9 (spec.host), which is no Host' });
    // A pin is checked for capacity all the same.
    const big = schedule(hosts, [vm('p', { pin: 'h2', memory: 9 })]);
    expect(big.unschedulable.get('p')!.reasons.find((x) => x.host === 'h2')).toEqual({ host: 'h2', filter: 'memory', detail: 'needs 9GiB, 8GiB free of 8GiB' });
  });

  it('a VM too big for every host is unschedulable with the reason per host while the others place', () => {
    const hosts = [host('h1', {}, { memory: 8 }), host('h2', {}, { memory: 16 }), host('h3', {}, { vcpus: 2, memory: 64 })];
    const r = schedule(hosts, [vm('small'), vm('huge', { memory: 32, vcpus: 4 }), vm('small2')]);
    expect([...r.placements.keys()].sort()).toEqual(['small', 'small2']);
    const u = r.unschedulable.get('huge')!;
    expect(u.reasons).toEqual([
      { host: 'h1', filter: 'memory', detail: 'needs 32GiB, 8GiB free of 8GiB' },
      { host: 'h2', filter: 'memory', detail: 'needs 32GiB, 16GiB free of 16GiB' },
      { host: 'h3', filter: 'vcpus', detail: 'needs 4 vCPUs, 2 free of 2' },
    ]);
    expect(u.summary).toBe('0/3 hosts fit: memory (h1, h2), vcpus (h3)');
    expect(unschedulableText(u)).toBe([
      'huge: no valid host was found (0/3 hosts fit: memory (h1, h2), vcpus (h3))',
      '  h1: rejected by memory: needs 32GiB, 8GiB free of 8GiB',
      '  h2: rejected by memory: needs 32GiB, 16GiB free of 16GiB',
      '  h3: rejected by vcpus: needs 4 vCPUs, 2 free of 2',
    ].join('\n'));
    expect(resultJson(r).unschedulable.huge!.reasons).toHaveLength(3);
  });

  it('hostSelector matchLabels keeps a VM to matching hosts and says what did not match', () => {
    const hosts = [host('h1', { ssd: 'false', zone: 'a' }), host('h2', { zone: 'b' }), host('h3', { ssd: 'true', zone: 'c' }, { memory: 2 })];
    const r = schedule(hosts, [vm('db', { placement: { hostSelector: { matchLabels: { ssd: 'true' } } } })]);
    expect(r.placements.get('db')).toMatchObject({ host: 'h3' });
    expect(r.placements.get('db')!.rejected).toEqual([
      { host: 'h1', filter: 'selector', detail: 'hostSelector: needs ssd=true, has ssd=false' },
      { host: 'h2', filter: 'selector', detail: 'hostSelector: needs ssd=true, has no label ssd' },
    ]);
  });

  it('a VM whose pools or networks exist only on some hosts is kept to those hosts (eligible), saying why elsewhere', () => {
    const r = schedule(zones3(), [vm('db', { eligible: ['h3'] }), vm('none', { eligible: [] })]);
    expect(where(r)).toEqual({ db: 'h3' });
    const rej = r.placements.get('db')!.rejected;
    expect(rej.map((x) => [x.host, x.filter])).toEqual([['h1', 'resources'], ['h2', 'resources']]);
    expect(rej[0]!.detail).toContain('exist only on h3');
    expect(r.unschedulable.get('none')!.reasons.map((x) => x.filter)).toEqual(['resources', 'resources', 'resources']);
  });

  it('overcommit multiplies what a host holds beyond its reserve; reserved memory and vCPUs are never given out', () => {
    const over = [host('h1', {}, { memory: 8, overcommit: { memory: 1.5, cpu: 4 } })];
    const twelve = Array.from({ length: 13 }, (_, i) => vm(`v${String(i).padStart(2, '0')}`));
    const r = schedule(over, twelve);
    expect(r.placements.size).toBe(12);
    expect(r.unschedulable.get('v12')!.reasons).toEqual([{ host: 'h1', filter: 'memory', detail: 'needs 1GiB, 0B free of 12GiB (8GiB, overcommit 1.5)' }]);

    const res = [host('h1', {}, { memory: 8, vcpus: 4, reserved: { memory: 2 * GiB, vcpus: 1 } })];
    const r2 = schedule(res, Array.from({ length: 7 }, (_, i) => vm(`m${i}`, { vcpus: 0 })));
    expect(r2.placements.size).toBe(6);
    expect(r2.unschedulable.get('m6')!.reasons[0]!.detail).toBe('needs 1GiB, 0B free of 6GiB (8GiB, 2GiB reserved)');
    const r3 = schedule(res, [vm('c1', { vcpus: 2, memory: 0 }), vm('c2', { vcpus: 2, memory: 0 })]);
    expect(r3.unschedulable.get('c2')!.reasons[0]).toEqual({ host: 'h1', filter: 'vcpus', detail: 'needs 2 vCPUs, 1 free of 3 (4, 1 reserved)' });
  });

  it('disk per pool where the pool capacity on the host is known; unknown pools are not checked', () => {
    const hosts = [host('h1', {}, { disk: { default: 10 * GiB } }), host('h2', {}, { disk: { default: 100 * GiB } }), host('h3', {}, { memory: 0.5 })];
    const r = schedule(hosts, [vm('a', { disk: { default: 60 * GiB } }), vm('b', { disk: { default: 50 * GiB, other: 1000 * GiB } })]);
    expect(r.placements.get('a')!.host).toBe('h2');
    expect(r.placements.get('a')!.rejected).toContainEqual({ host: 'h1', filter: 'disk', detail: 'pool default: needs 60GiB, 10GiB free of 10GiB' });
    expect(r.unschedulable.get('b')!.reasons).toEqual([
      { host: 'h1', filter: 'disk', detail: 'pool default: needs 50GiB, 10GiB free of 10GiB' },
      { host: 'h2', filter: 'disk', detail: 'pool default: needs 50GiB, 40GiB free of 100GiB' },
      { host: 'h3', filter: 'memory', detail: 'needs 1GiB, 512MiB free of 512MiB' },
    ]);
  });

  it('usage counts what is already placed: sticky VMs first, whatever the order they are given in', () => {
    const hosts = [host('h1', {}, { memory: 4 }), host('h2', {}, { memory: 4 })];
    const r = schedule(hosts, [vm('new', { memory: 3 }), vm('old', { memory: 3, current: 'h2' })]);
    expect(where(r)).toEqual({ new: 'h1', old: 'h2' });
    expect(r.placements.get('new')!.rejected).toEqual([{ host: 'h2', filter: 'memory', detail: 'needs 3GiB, 1GiB free of 4GiB' }]);
  });

  it('an unreachable host keeps its VMs and takes no new ones; a host with schedulable false likewise', () => {
    const hosts = [host('h1', {}, { reachable: false }), host('h2', {}, { schedulable: false }), host('h3')];
    const r = schedule(hosts, [vm('a', { current: 'h1' }), vm('b', { current: 'h2' }), vm('c')]);
    expect(where(r)).toEqual({ a: 'h1', b: 'h2', c: 'h3' });
    expect(r.placements.get('a')!.why).toBe('sticky');
    expect(r.placements.get('c')!.rejected).toEqual([
      { host: 'h1', filter: 'unreachable', detail: 'host is unreachable' },
      { host: 'h2', filter: 'unschedulable', detail: 'takes no new VMs (spec.schedulable: false)' },
    ]);
    expect(r.moves).toEqual([]);
  });

  it('a VM recorded on a host that no longer exists is placed anew (no move)', () => {
    const r = schedule([host('h2')], [vm('a', { current: 'gone' })]);
    expect(r.placements.get('a')).toMatchObject({ host: 'h2', why: 'scheduled' });
    expect(r.moves).toEqual([]);
  });

  it('ranks least allocated after placing, then fewest VMs, then host id', () => {
    const hosts = [host('h2', {}, { memory: 16 }), host('h1', {}, { memory: 8 }), host('h3', {}, { memory: 16 })];
    const r = schedule(hosts, [vm('a', { memory: 4, current: 'h3' }), vm('b', { memory: 2 })]);
    // after placing b: h2 (14/16 + 7/8)/2 = 87.5; h1 (6/8 + 7/8)/2 = 81.25; h3 (10/16 + 6/8)/2 = 68.75
    expect(r.placements.get('b')!.host).toBe('h2');
    expect(r.placements.get('b')!.others).toEqual([
      { host: 'h1', score: { leastAllocated: 81.3, vms: 0 } },
      { host: 'h3', score: { leastAllocated: 68.8, vms: 1 } },
    ]);
    const tie = schedule([host('h2'), host('h1')], [vm('x', { memory: 0, vcpus: 0, current: 'h1' }), vm('y')]);
    expect(tie.placements.get('y')!.host).toBe('h2');
    const idTie = schedule([host('h2'), host('h1')], [vm('y')]);
    expect(idTie.placements.get('y')!.host).toBe('h1');
  });
});

describe('groups (VMs sharing a volume)', () => {
  it('a new group is one demand on one host', () => {
    const hosts = [host('h1', {}, { memory: 4 }), host('h2', {}, { memory: 8 })];
    const r = schedule(hosts, [vm('a', { memory: 3, group: 'g' }), vm('b', { memory: 3, group: 'g' }), vm('c', { memory: 1 })]);
    expect(where(r)).toEqual({ a: 'h2', b: 'h2', c: 'h1' });
    expect(r.placements.get('a')!.why).toBe('group');
    expect(r.placements.get('a')!.summary).toBe('with its group (shares a volume with a, b); fits: 8GiB free, 8 vCPUs free');
    expect(r.placements.get('a')!.rejected).toEqual([{ host: 'h1', filter: 'memory', detail: 'needs 6GiB, 4GiB free of 4GiB' }]);
  });

  it('a new member lands where its group already is, or nowhere', () => {
    const hosts = [host('h1', {}, { memory: 4 }), host('h2', {}, { memory: 16 })];
    const r = schedule(hosts, [vm('a', { memory: 1, group: 'g', current: 'h1' }), vm('b', { memory: 1, group: 'g' })]);
    expect(where(r)).toEqual({ a: 'h1', b: 'h1' });
    expect(r.placements.get('b')!.rejected).toEqual([{ host: 'h2', filter: 'group', detail: 'its group is on h1 (shares a volume with a)' }]);
    const full = schedule(hosts, [vm('a', { memory: 3, group: 'g', current: 'h1' }), vm('b', { memory: 2, group: 'g' })]);
    expect(full.unschedulable.get('b')!.reasons).toEqual([
      { host: 'h1', filter: 'memory', detail: 'needs 2GiB, 1GiB free of 4GiB' },
      { host: 'h2', filter: 'group', detail: 'its group is on h1 (shares a volume with a)' },
    ]);
  });

  it('members pinned to different hosts: the group is unschedulable, saying so', () => {
    const r = schedule([host('h1'), host('h2')], [vm('a', { group: 'g', pin: 'h1' }), vm('b', { group: 'g', pin: 'h2' })]);
    expect(r.placements.size).toBe(0);
    expect(r.unschedulable.get('a')!.reasons[0]!.detail).toBe('the VMs of its group (sharing a volume) are pinned to different hosts: a → h1, b → h2');
  });

  it('a drained group moves together', () => {
    const hosts = [host('h1', {}, { drain: true }), host('h2', {}, { memory: 2 }), host('h3')];
    const r = schedule(hosts, [vm('a', { group: 'g', current: 'h1' }), vm('b', { group: 'g', current: 'h1', memory: 2 })]);
    expect(where(r)).toEqual({ a: 'h3', b: 'h3' });
    expect(r.moves.map((m) => [m.vm, m.from, m.to, m.cause])).toEqual([['a', 'h1', 'h3', 'drain'], ['b', 'h1', 'h3', 'drain']]);
  });
});

describe('moves', () => {
  it('a drained host\'s VMs move to the best other hosts; the rest stay; drains ignore maxMoves', () => {
    const hosts = [host('h1', { zone: 'a' }, { drain: true }), host('h2', { zone: 'b' }), host('h3', { zone: 'c' }, { memory: 16 })];
    const vms = [vm('a1', { current: 'h1', memory: 2 }), vm('a2', { current: 'h1', memory: 2 }), vm('b1', { current: 'h2' }), vm('c1', { current: 'h3' })];
    const r = schedule(hosts, vms, { rebalance: true, maxMoves: 0 });
    expect(r.moves).toEqual([
      { vm: 'a1', from: 'h1', to: 'h3', cause: 'drain', reason: 'host h1 is draining' },
      { vm: 'a2', from: 'h1', to: 'h2', cause: 'drain', reason: 'host h1 is draining' },
    ]);
    // a1 (same size: by name): h3 78.1 after placing beats h2 68.75; a2: h2 68.75 beats h3 65.6.
    expect(where(r)).toEqual({ a1: 'h3', a2: 'h2', b1: 'h2', c1: 'h3' });
    expect(r.placements.get('a1')!.rejected[0]).toEqual({ host: 'h1', filter: 'drain', detail: 'host is draining (spec.drain)' });
    expect(placementLine(r.placements.get('a1')!)).toBe('→ host h3 (moves from h1 (host h1 is draining); fits: 15GiB free, 7 vCPUs free)');
  });

  it('a VM pinned to a drained host stays there, saying it cannot leave', () => {
    const r = schedule([host('h1', {}, { drain: true }), host('h2')], [vm('p', { pin: 'h1', current: 'h1' })]);
    expect(r.moves).toEqual([]);
    expect(r.placements.get('p')).toMatchObject({ host: 'h1', why: 'sticky' });
    expect(r.placements.get('p')!.warning).toBe('host h1 is draining, but no host fits it: 0/2 hosts fit: drain (h1), pin (h2); it stays on h1');
  });

  it('a drained VM that fits nowhere else stays and says why; a drain of an unreachable host waits for it', () => {
    const hosts = [host('h1', {}, { drain: true }), host('h2', {}, { memory: 1 })];
    const r = schedule(hosts, [vm('big', { current: 'h1', memory: 4 })]);
    expect(r.moves).toEqual([]);
    const p = r.placements.get('big')!;
    expect(p).toMatchObject({ host: 'h1', why: 'sticky' });
    expect(p.warning).toBe('host h1 is draining, but no host fits it: 0/2 hosts fit: drain (h1), memory (h2); it stays on h1');
    expect(placementLine(p)).toContain('[host h1 is draining, but no host fits it');
    expect(r.unschedulable.size).toBe(0);

    const down = schedule([host('h1', {}, { drain: true, reachable: false }), host('h2')], [vm('v', { current: 'h1' }), vm('w', { current: 'h2' })]);
    expect(down.moves).toEqual([]);
    expect(down.placements.get('v')!.warning).toBe('host h1 is draining, but h1 is unreachable: it moves when the host is back');
    expect(stayLines(down)).toEqual(['v stays on h1: host h1 is draining, but h1 is unreachable: it moves when the host is back']);
  });

  it('a changed pin moves the VM (cause pin), not counted against maxMoves', () => {
    const r = schedule([host('h1'), host('h2')], [vm('v', { current: 'h1', pin: 'h2' })], { rebalance: true, maxMoves: 0 });
    expect(r.moves).toEqual([{ vm: 'v', from: 'h1', to: 'h2', cause: 'pin', reason: 'spec.host changed from h1 to h2' }]);
    expect(r.placements.get('v')).toMatchObject({ host: 'h2', why: 'pinned' });
    expect(r.placements.get('v')!.summary).toBe('moves from h1 (spec.host changed from h1 to h2); pinned (spec.host); fits: 8GiB free, 8 vCPUs free');
    const same = schedule([host('h1'), host('h2')], [vm('v', { current: 'h1', pin: 'h1' })]);
    expect(same.moves).toEqual([]);
    expect(same.placements.get('v')).toMatchObject({ host: 'h1', why: 'pinned' });
    const full = schedule([host('h1'), host('h2', {}, { memory: 0 })], [vm('v', { current: 'h1', pin: 'h2' })]);
    expect(full.moves).toEqual([]);
    expect(full.placements.get('v')!.warning).toMatch(/^spec.host changed from h1 to h2, but no host fits it: .*memory \(h2\); it stays on h1$/);
  });

  it('rebalance after adding an empty host moves at most maxMoves VMs, each with its reason; none without rebalance', () => {
    const three = [host('h1'), host('h2'), host('h3')];
    const vms = Array.from({ length: 9 }, (_, i) => vm(`v${i + 1}`, { memory: 2 }));
    const first = schedule(three, vms);
    expect(perHost(first)).toEqual({ h1: 3, h2: 3, h3: 3 });
    const four = [...three, host('h4')];
    const now = recorded(vms, first);
    expect(schedule(four, now).moves).toEqual([]);
    const one = schedule(four, now, { rebalance: true });
    expect(one.moves).toHaveLength(1);
    expect(one.moves[0]).toEqual({ vm: 'v1', from: 'h1', to: 'h4', cause: 'rebalance', reason: 'allocation h1 75% vs h4 0%, 75 points apart (> 20): h1 → 50%, h4 → 25%' });
    expect(one.placements.get('v1')).toMatchObject({ host: 'h4', why: 'scheduled' });
    expect(one.placements.get('v1')!.summary).toMatch(/^rebalance from h1: allocation h1 75% vs h4 0%/);
    const three2 = schedule(four, now, { rebalance: true, maxMoves: 3 });
    expect(three2.moves.map((m) => `${m.from}→${m.to}`)).toEqual(['h1→h4', 'h2→h4']);
    expect(perHost(three2)).toEqual({ h1: 2, h2: 2, h3: 3, h4: 2 });
    // Balanced within the threshold: nothing more to propose.
    expect(schedule(four, recorded(vms, three2), { rebalance: true, maxMoves: 5 }).moves).toEqual([]);
  });

  it('rebalance reduces spread skew when a new zone appears, never moving pinned VMs', () => {
    const hosts = [...zones3(), host('h4', { zone: 'd' })];
    const vms = web(6).map((v, i) => ({ ...v, current: `h${(i % 3) + 1}`, pin: i === 0 ? 'h1' : undefined }));
    const r = schedule(hosts, vms, { rebalance: true, maxMoves: 1 });
    // web-1 is pinned: the first movable VM of a fullest zone by name is web-2.
    expect(r.moves).toEqual([{ vm: 'web-2', from: 'h2', to: 'h4', cause: 'rebalance', reason: 'spread by zone for app=web: a 2, b 2, c 2, d 0 (skew 2 > maxSkew 1)' }]);
    const pinnedOnly = schedule(hosts, vms.map((v) => ({ ...v, pin: v.current })), { rebalance: true, maxMoves: 5 });
    expect(pinnedOnly.moves).toEqual([]);
  });

  it('a rebalance for allocation never undoes a spread, even a ScheduleAnyway one', () => {
    const hosts = [host('h1', { zone: 'a' }), host('h2', { zone: 'b' }), host('h3', { zone: 'b' })];
    const soft = { spreadBy: { hostLabel: 'zone', vmLabel: 'app', whenUnsatisfiable: 'ScheduleAnyway' as const } };
    const webs = [vm('w1', { current: 'h1', memory: 2, labels: { app: 'web' }, placement: soft }), vm('w2', { current: 'h1', memory: 2, labels: { app: 'web' }, placement: soft }),
      vm('w3', { current: 'h2', memory: 2, labels: { app: 'web' }, placement: soft }), vm('w4', { current: 'h2', memory: 2, labels: { app: 'web' }, placement: soft })];
    // h1 is the most allocated (x is pinned): its web VMs could only go to zone b (a 1, b 3): no move.
    expect(schedule(hosts, [...webs, vm('x', { current: 'h1', pin: 'h1', memory: 1 })], { rebalance: true, maxMoves: 3 }).moves).toEqual([]);
    // h2 is: a web VM moves within zone b.
    const r = schedule(hosts, [...webs, vm('x', { current: 'h2', pin: 'h2', memory: 1 })], { rebalance: true, maxMoves: 3 });
    expect(r.moves.map((m) => `${m.vm} ${m.from}→${m.to}`)).toEqual(['w3 h2→h3']);
  });

  it('rebalance moves a VM off a host above its capacity (capacity shrank)', () => {
    const hosts = [host('h1', {}, { memory: 4 }), host('h2', {}, { memory: 8 })];
    const vms = [vm('a', { memory: 2, current: 'h1' }), vm('b', { memory: 2, current: 'h1' }), vm('c', { memory: 3, current: 'h1' }), vm('d', { memory: 1, current: 'h2' })];
    expect(schedule(hosts, vms).moves).toEqual([]);
    const r = schedule(hosts, vms, { rebalance: true });
    expect(r.moves).toEqual([{ vm: 'c', from: 'h1', to: 'h2', cause: 'rebalance', reason: 'h1 is over capacity: memory 7GiB placed, 4GiB allocatable' }]);
  });
});

describe('explanations', () => {
  it('--explain lists the winner, the best few that fit but ranked lower, how many more, and every rejected host', () => {
    const hosts = Array.from({ length: 9 }, (_, i) => host(`h${i}`, {}, { memory: 8 + i }));
    hosts.push(host('hx', {}, { schedulable: false }));
    const r = schedule(hosts, [vm('a', { memory: 2 })]);
    const p = r.placements.get('a')!;
    expect(p.host).toBe('h8');
    expect(p.fitting).toBe(9);
    expect(p.others!.map((o) => o.host)).toEqual(['h7', 'h6', 'h5', 'h4', 'h3']);
    expect(explainLines(p)).toEqual([
      'h8: chosen (scheduled): least allocated 87.5, VMs 0', // (14/16 + 7/8) / 2,
      'h7: fits, ranked lower: least allocated 87.1, VMs 0',
      'h6: fits, ranked lower: least allocated 86.6, VMs 0',
      'h5: fits, ranked lower: least allocated 86.1, VMs 0',
      'h4: fits, ranked lower: least allocated 85.4, VMs 0',
      'h3: fits, ranked lower: least allocated 84.7, VMs 0',
      '… and 3 more hosts fit, ranked lower still',
      'ranking: lower skew, then more free after placing (least allocated), then fewer VMs, then host name',
      'hx: rejected by unschedulable: takes no new VMs (spec.schedulable: false)',
    ]);
    const sticky = schedule(hosts, [vm('a', { current: 'h0' })]).placements.get('a')!;
    expect(explainLines(sticky)).toEqual(['h0: sticky: recorded on h0']);
  });

  it('host names and labels from manifests are printed safely', () => {
    const r = schedule([host('h\u001b[31m', { zone: 'a' })], [vm('v', { memory: 99, placement: { hostSelector: { matchLabels: { zone: 'b\u202e' } } } })]);
    const text = unschedulableText(r.unschedulable.get('v')!);
    expect(text).not.toMatch(/[\u001b\u202e]/);
    expect(text).toContain('h\\u001b[31m: rejected by selector: hostSelector: needs zone=b\\u202e, has zone=a');
  });

  it('1,000 VMs onto 50 hosts with spread and a selector take well under a second of CPU (not quadratic in a bad way)', () => {
    const hosts = Array.from({ length: 50 }, (_, i) => host(`h${String(i).padStart(2, '0')}`, { zone: `z${i % 5}`, ...(i % 2 ? { ssd: 'true' } : {}) }, { memory: 128, vcpus: 64 }));
    const vms = Array.from({ length: 1000 }, (_, i) => vm(`vm${String(i).padStart(4, '0')}`, {
      memory: 1 + (i % 4), labels: { app: `app${i % 10}` },
      placement: { spreadBy: { hostLabel: 'zone', vmLabel: 'app' }, ...(i % 4 === 0 ? { hostSelector: { matchLabels: { ssd: 'true' } } } : {}) },
    }));
    schedule(hosts, vms);
    const c = process.cpuUsage();
    const r = schedule(hosts, vms);
    const cpu = process.cpuUsage(c);
    expect(r.placements.size).toBe(1000);
    expect((cpu.user + cpu.system) / 1e6).toBeLessThan(1);
  });
});

describe('determinism', () => {
  it('the same result for shuffled hosts and VMs (seeded, 30 shuffles of a mixed fleet)', () => {
    const rand = rng(21);
    const zones = ['a', 'b', 'c'];
    const hosts = Array.from({ length: 9 }, (_, i) => host(`h${i}`, { zone: zones[i % 3]!, ...(i % 2 ? { ssd: 'true' } : {}) }, {
      memory: 8 + (i % 4) * 4, vcpus: 4 + (i % 3) * 4, drain: i === 7, schedulable: i !== 5, reachable: i !== 4,
      disk: i % 3 === 0 ? { default: 200 * GiB } : {},
    }));
    const vms: PlacementRequest[] = Array.from({ length: 80 }, (_, i) => vm(`vm-${String(i).padStart(2, '0')}`, {
      memory: 1 + (i % 5), vcpus: 1 + (i % 3), labels: { app: ['web', 'db', 'cache'][i % 3]! },
      disk: i % 4 === 0 ? { default: (10 + i) * GiB } : {},
      placement: i % 5 === 0 ? { hostSelector: { matchLabels: { ssd: 'true' } } }
        : i % 2 ? { spreadBy: { hostLabel: 'zone', vmLabel: 'app', whenUnsatisfiable: i % 3 ? 'DoNotSchedule' : 'ScheduleAnyway' } } : undefined,
      pin: i === 13 ? 'h2' : undefined,
      group: i >= 70 ? `g${i % 3}` : undefined,
      current: i < 30 ? `h${i % 9}` : undefined,
    }));
    const base = JSON.stringify(resultJson(schedule(hosts, vms, { rebalance: true, maxMoves: 3 })));
    for (let k = 0; k < 30; k++) {
      const out = JSON.stringify(resultJson(schedule(shuffle(hosts, rand), shuffle(vms, rand), { rebalance: true, maxMoves: 3 })));
      expect(out).toBe(base);
    }
    const r = JSON.parse(base) as ReturnType<typeof resultJson>;
    expect(Object.keys(r.placements).length + Object.keys(r.unschedulable).length).toBe(80);
  });

  it('rejects a host or a VM given twice', () => {
    expect(() => schedule([host('h1'), host('h1')], [])).toThrow(/host h1 given twice/);
    expect(() => schedule([host('h1')], [vm('a'), vm('a')])).toThrow(/VM a given twice/);
  });
});
