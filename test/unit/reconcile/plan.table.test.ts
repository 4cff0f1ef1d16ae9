/**
 * buildPlan(desired, changes) on plain objects: the step graph (ids, order, teardown flags and
 * dependencies), the blocked map, the summary and noop, for changes produced by the public diff.
 * The regression net for the per-kind split of src/reconcile/.
 */
import { describe, expect, it } from 'vitest';
import { diff, type ResourceChange } from '../../../src/reconcile/diff.js';
import { buildPlan, type Plan, type PlanSummary } from '../../../src/reconcile/plan.js';
import type { Desired } from '../../../src/reconcile/desired.js';
import { convergedHost, desiredOf, observed, type ManifestSet, type ObservedBuilder } from '../../support/observed.js';
import { BASE, DATA, HOST1, lab, POOL, VM1 } from './fixtures.js';

/** `id key op teardown? deps` for each step: compact and exact. */
type StepRow = [id: number, key: string, op: string, teardown: boolean, deps: number[]];

interface Row {
  name: string;
  desired: ManifestSet;
  host: (d: Desired) => ObservedBuilder;
  /** Optional edit of the diff's changes before planning (hand-made shapes). */
  edit?: (changes: ResourceChange[]) => ResourceChange[];
  steps: StepRow[];
  blocked?: Record<string, string>;
  summary: Partial<PlanSummary>;
  noop?: boolean;
}

const hostOf = (set: ManifestSet) => convergedHost(desiredOf(set));
const LAB = lab();
const T = true;
const F = false;
/** A replace of `key` that vm1 (running) uses: stop vm1 → delete → create → start vm1. */
const replacedUnderRunningVm = (key: string, del: string, create: string): StepRow[] => [
  [0, key, del, T, [2]],
  [1, key, create, F, [0]],
  [2, 'VirtualMachine/vm1', 'vm.stop', T, []],
  [3, 'VirtualMachine/vm1', 'vm.start', F, [1, 2]],
];
const ZERO: PlanSummary = { create: 0, change: 0, replace: 0, delete: 0, conflict: 0, release: 0, held: 0 };
const NOT_MANAGED = (kind: string, name: string) =>
  `a ${kind} named ${name} already exists and is not managed by virtform; set metadata.adopt: true to let virtform take it over`;
const BLOCKED_BY = (key: string) => `depends on ${key}, which is blocked`;

const rows: Row[] = [
  {
    name: 'create everything: pools → volumes (backing before clone) → networks → VMs; define before start',
    desired: LAB, host: () => observed(),
    steps: [
      [0, 'StoragePool/p', 'pool.ensure', F, []],
      [1, 'Volume/base', 'volume.create', F, [0]],
      [2, 'Volume/data', 'volume.create', F, [0]],
      [3, 'Volume/root', 'volume.create', F, [0, 1]],
      [4, 'Network/net', 'network.ensure', F, []],
      [5, 'VirtualMachine/vm1', 'vm.define', F, [2, 3, 4]],
      [6, 'VirtualMachine/vm1', 'vm.start', F, [2, 3, 4, 5]],
      [7, 'VirtualMachine/vm2', 'vm.define', F, [4]],
    ],
    summary: { create: 7 },
  },
  {
    name: 'tear everything down: VMs before their volumes and network, clone before backing, volumes before pool',
    desired: {}, host: () => hostOf(LAB),
    steps: [
      [0, 'StoragePool/p', 'pool.delete', T, [1, 2, 3]],
      [1, 'Volume/base', 'volume.delete', T, [3]],
      [2, 'Volume/data', 'volume.delete', T, [5]],
      [3, 'Volume/root', 'volume.delete', T, [5]],
      [4, 'Network/net', 'network.delete', T, [5, 6]],
      [5, 'VirtualMachine/vm1', 'vm.delete', T, []],
      [6, 'VirtualMachine/vm2', 'vm.delete', T, []],
    ],
    summary: { delete: 7 },
  },
  {
    name: 'prune a VM and one of its volumes: the domain goes first (by its recorded disks)',
    desired: lab({ vm1: null, data: null }), host: () => hostOf(LAB),
    steps: [
      [0, 'Volume/data', 'volume.delete', T, [1]],
      [1, 'VirtualMachine/vm1', 'vm.delete', T, []],
    ],
    summary: { delete: 2 },
  },
  {
    name: 'replace a volume used by a running VM: stop VM → delete → create → start VM',
    desired: lab({ data: { capacity: '16MiB' } }), host: () => hostOf(LAB),
    steps: replacedUnderRunningVm('Volume/data', 'volume.delete', 'volume.create'),
    summary: { replace: 1, change: 1 },
  },
  {
    name: 'replace the network of a running VM: stop VM → delete network → ensure network → start VM',
    desired: lab({ net: { cidr: '10.232.0.0/24', dhcp: { start: '10.232.0.100', end: '10.232.0.199', hosts: [{ ...HOST1, ip: '10.232.0.11' }] } } }),
    host: () => hostOf(LAB),
    steps: replacedUnderRunningVm('Network/net', 'network.delete', 'network.ensure'),
    summary: { replace: 1, change: 1 },
  },
  {
    name: 'network inactive (drift): started again; the running VM on it is stopped (in parallel) and started after it',
    desired: LAB, host: (d) => convergedHost(d).network('net', { active: false }),
    steps: [
      [0, 'Network/net', 'network.ensure', F, []],
      [1, 'VirtualMachine/vm1', 'vm.stop', T, []],
      [2, 'VirtualMachine/vm1', 'vm.start', F, [0, 1]],
    ],
    summary: { change: 2 },
  },
  {
    name: 'network range changed outside virtform: same chain as a declared replace (stop VM → delete → ensure → start VM)',
    desired: LAB, host: (d) => convergedHost(d).networkDef('net', { dhcp: { start: '10.231.0.100', end: '10.231.0.150', hosts: [{ mac: '52:54:00:aa:00:01', ip: '10.231.0.11' }] } }),
    steps: replacedUnderRunningVm('Network/net', 'network.delete', 'network.ensure'),
    summary: { replace: 1, change: 1 },
  },
  {
    name: 'pool gone: recreated, then its recorded volumes are checked and created if missing (backing before clone)',
    desired: { pools: [POOL], volumes: [BASE, { name: 'root', pool: 'p', capacity: '64MiB', format: 'qcow2', backingVolume: 'base' }, DATA] },
    host: (d) => convergedHost(d).without('StoragePool', 'p'),
    steps: [
      [0, 'StoragePool/p', 'pool.ensure', F, []],
      [1, 'Volume/base', 'volume.create', F, [0]],
      [2, 'Volume/data', 'volume.create', F, [0]],
      [3, 'Volume/root', 'volume.create', F, [0, 1]],
    ],
    summary: { create: 4 },
  },
  {
    name: 'replace the pool path: the whole chain is torn down in reverse and built up again',
    desired: { ...LAB, pools: [{ ...POOL, path: '/pools/new' }], vms: [VM1] }, host: () => hostOf({ ...LAB, vms: [VM1] }),
    steps: [
      [0, 'StoragePool/p', 'pool.delete', T, [2, 4, 6]],
      [1, 'StoragePool/p', 'pool.ensure', F, [0]],
      [2, 'Volume/base', 'volume.delete', T, [6]],
      [3, 'Volume/base', 'volume.create', F, [1, 2]],
      [4, 'Volume/data', 'volume.delete', T, [8]],
      [5, 'Volume/data', 'volume.create', F, [1, 4]],
      [6, 'Volume/root', 'volume.delete', T, [8]],
      [7, 'Volume/root', 'volume.create', F, [1, 3, 6]],
      [8, 'VirtualMachine/vm1', 'vm.stop', T, []],
      [9, 'VirtualMachine/vm1', 'vm.define', F, [5, 7, 8]],
      [10, 'VirtualMachine/vm1', 'vm.start', F, [5, 7, 9]],
    ],
    summary: { replace: 4, change: 1 },
  },
  {
    name: 'replace a backing volume: the clone is recreated on the new base, the VM on it stopped first and started last',
    desired: lab({ base: { capacity: '32MiB' } }), host: () => hostOf(LAB),
    // (Was NOTE(bug): base was recreated under root and the running vm1. Fixed on main: clone
    // cascade; the VM stops before root is deleted, root is deleted before base, and the VM
    // starts once root is made again on the new base.)
    steps: [
      [0, 'Volume/base', 'volume.delete', T, [2]],
      [1, 'Volume/base', 'volume.create', F, [0]],
      [2, 'Volume/root', 'volume.delete', T, [4]],
      [3, 'Volume/root', 'volume.create', F, [1, 2]],
      [4, 'VirtualMachine/vm1', 'vm.stop', T, []],
      [5, 'VirtualMachine/vm1', 'vm.start', F, [3, 4]],
    ],
    summary: { replace: 2, change: 1 },
  },
  {
    name: 'a mix: new volume and DHCP host alongside a VM redefine; independent chains have no deps',
    desired: { ...lab({ vm1: { memory: '128MiB' }, net: { dhcp: { start: '10.231.0.100', end: '10.231.0.199', hosts: [HOST1, { mac: '52:54:00:aa:00:09', ip: '10.231.0.19' }] } } }),
      volumes: [BASE, { name: 'root', pool: 'p', capacity: '64MiB', format: 'qcow2', backingVolume: 'base' }, DATA, { ...DATA, name: 'extra' }] },
    host: () => hostOf(LAB),
    steps: [
      [0, 'Volume/extra', 'volume.create', F, []],
      [1, 'Network/net', 'network.ensure', F, []],
      [2, 'VirtualMachine/vm1', 'vm.define', F, [1]],
    ],
    summary: { create: 1, change: 2 },
  },
  {
    name: 'conflict on the pool blocks everything that depends on it, transitively',
    desired: LAB, host: () => observed().pool('p'),
    steps: [
      [0, 'Network/net', 'network.ensure', F, []],
      [1, 'VirtualMachine/vm2', 'vm.define', F, [0]],
    ],
    blocked: {
      'StoragePool/p': NOT_MANAGED('StoragePool', 'p'),
      'Volume/base': BLOCKED_BY('StoragePool/p'),
      'Volume/root': BLOCKED_BY('StoragePool/p'),
      'Volume/data': BLOCKED_BY('StoragePool/p'),
      'VirtualMachine/vm1': BLOCKED_BY('Volume/root'),
    },
    summary: { create: 6, conflict: 1 },
  },
  {
    name: 'conflict on a backing volume blocks a chain declared in reverse order (several passes)',
    desired: {
      pools: [POOL],
      volumes: [
        { name: 'clone2', pool: 'p', capacity: '64MiB', format: 'qcow2', backingVolume: 'clone1' },
        { name: 'clone1', pool: 'p', capacity: '64MiB', format: 'qcow2', backingVolume: 'base' },
        BASE,
      ],
      vms: [{ name: 'vm3', vcpus: 1, memory: '64MiB', state: 'stopped', disks: [{ volume: 'clone2' }], nics: [] }],
    },
    host: () => hostOf({ pools: [POOL] }).volume('p', 'base.qcow2', '/pools/p/base.qcow2'),
    steps: [],
    blocked: {
      'Volume/base': NOT_MANAGED('Volume', 'base'),
      'Volume/clone1': BLOCKED_BY('Volume/base'),
      'Volume/clone2': BLOCKED_BY('Volume/clone1'),
      'VirtualMachine/vm3': BLOCKED_BY('Volume/clone2'),
    },
    summary: { create: 3, conflict: 1 },
  },
  {
    name: 'conflict on a VM blocks only that VM',
    desired: LAB, host: (d) => convergedHost(d).domain('vm2', { uuid: '00000000-0000-4000-8000-00000000beef', active: false }),
    steps: [],
    blocked: {
      'VirtualMachine/vm2': 'a VirtualMachine named vm2 exists but is not the one virtform created (uuid 00000000-0000-4000-8000-00000000beef, recorded '
        + `${convergedHost(desiredOf(LAB)).records.get('VirtualMachine/vm2')!.uuid}); set metadata.adopt: true to let virtform take it over`,
    },
    summary: { conflict: 1 },
  },
  {
    name: 'only record.forget: a teardown step with no deps',
    desired: {}, host: () => observed().record('Network', 'old', { uuid: 'u-1' }),
    steps: [[0, 'Network/old', 'record.forget', T, []]],
    summary: { delete: 1 },
  },
  {
    name: 'converged: no steps, noop',
    desired: LAB, host: (d) => convergedHost(d),
    steps: [], summary: {}, noop: true,
  },
];

function stepRows(plan: Plan): StepRow[] {
  return plan.steps.map((s) => [s.id, s.key, s.op.op, s.teardown, s.deps]);
}

describe('plan table', () => {
  it.each(rows.map((r) => [r.name, r] as const))('%s', (_name, row) => {
    const d = desiredOf(row.desired);
    const changes0 = diff(d, row.host(d).build(d));
    const changes = row.edit ? row.edit(changes0) : changes0;
    const plan = buildPlan(d, changes);
    expect(stepRows(plan)).toEqual(row.steps);
    expect(plan.blocked).toEqual(new Map(Object.entries(row.blocked ?? {})));
    expect(plan.summary).toEqual({ ...ZERO, ...row.summary });
    expect(plan.noop).toBe(row.noop ?? false);
    expect(plan.changes).toBe(changes);
    // Each step is one of its change's steps, in the change's order, with the change's identity.
    for (const c of changes) {
      const mine = plan.steps.filter((s) => s.key === c.key);
      if (plan.blocked.has(c.key)) expect(mine).toEqual([]);
      else expect(mine.map((s) => s.op)).toEqual(c.steps);
      for (const s of mine) {
        expect(s.change).toBe(c);
        expect([s.kind, s.name]).toEqual([c.kind, c.name]);
        expect(c.steps).toContain(s.op);
      }
    }
    // Ids are dense and in step order (teardown deps may point forwards: a VM's stop is listed after its volume).
    expect(plan.steps.map((s) => s.id)).toEqual(plan.steps.map((_s, i) => i));
  });
});

describe('plan acyclicity guard', () => {
  it('throws naming the stuck steps when hand-made changes form a cycle', () => {
    const d = desiredOf(lab({ data: { capacity: '16MiB' } }));
    const changes = diff(d, hostOf(LAB).build(d));
    expect(changes.map((c) => [c.key, c.steps.map((s) => s.op)])).toEqual([
      ['Volume/data', ['volume.delete', 'volume.create']],
      ['VirtualMachine/vm1', ['vm.stop', 'vm.start']],
    ]);
    // Start before stop: vm.start waits for the new volume, the volume's delete waits for vm.stop,
    // and vm.stop waits for vm.start: a cycle.
    const vm = changes[1]!;
    const cyclic = [changes[0]!, { ...vm, steps: [...vm.steps].reverse() }];
    expect(() => buildPlan(d, cyclic)).toThrow(new Error(
      'internal error: plan has a dependency cycle among Volume/data:volume.delete, Volume/data:volume.create, '
      + 'VirtualMachine/vm1:vm.start, VirtualMachine/vm1:vm.stop',
    ));
  });
  it('a conflict resource is left out before the cycle check (blocked steps never enter the graph)', () => {
    const d = desiredOf(lab({ data: { capacity: '16MiB' } }));
    const changes = diff(d, hostOf(LAB).build(d));
    const vm = changes[1]!;
    const plan = buildPlan(d, [changes[0]!, { ...vm, action: 'conflict', reason: 'hand-made', steps: [...vm.steps].reverse() }]);
    expect(stepRows(plan)).toEqual([
      [0, 'Volume/data', 'volume.delete', T, []],
      [1, 'Volume/data', 'volume.create', F, [0]],
    ]);
    expect(plan.blocked).toEqual(new Map([['VirtualMachine/vm1', 'hand-made']]));
  });
  it('every table plan has a topological order', () => {
    for (const row of rows) {
      const d = desiredOf(row.desired);
      const plan = buildPlan(d, diff(d, row.host(d).build(d)));
      const done = new Set<number>();
      let progress = true;
      while (progress) {
        progress = false;
        for (const s of plan.steps) if (!done.has(s.id) && s.deps.every((x) => done.has(x))) { done.add(s.id); progress = true; }
      }
      expect(done.size, row.name).toBe(plan.steps.length);
    }
  });
});
