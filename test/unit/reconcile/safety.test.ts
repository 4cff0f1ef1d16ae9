/**
 * The data-loss hold (src/reconcile/safety.ts, dispatching to the Volume kind's rule in kinds/volume/data.ts) and the clone cascade (the Volume kind's afterDiff),
 * on plain objects: desired resources, an observed host and changes written out by hand.
 */
import { describe, expect, it } from 'vitest';
import { hashConfig } from '../../../src/reconcile/core/resource.js';
import type { Desired, DesiredResource, DesiredVolume, DesiredVm, VmConfig, VolumeConfig } from '../../../src/reconcile/desired.js';
import type { Observed } from '../../../src/reconcile/observe.js';
import type { ResourceChange } from '../../../src/reconcile/kinds/index.js';
import { holdDataLoss } from '../../../src/reconcile/safety.js';
import { buildPlan } from '../../../src/reconcile/plan.js';
import { volumeKind } from '../../../src/reconcile/kinds/volume/index.js';
import { vmKind } from '../../../src/reconcile/kinds/vm/index.js';
import type { DomainDetail, VolumeDetail } from '../../../src/model/definitions.js';

const POOL = 'p';
const DIR = '/srv/p';

function volCfg(name: string, extra: Partial<VolumeConfig> = {}): VolumeConfig {
  return { pool: POOL, volName: `${name}.qcow2`, path: `${DIR}/${name}.qcow2`, format: 'qcow2', capacityBytes: 1 << 20, ...extra };
}
function vol(name: string, extra: Partial<VolumeConfig> = {}): DesiredVolume {
  const config = volCfg(name, extra);
  return { kind: 'Volume', name, host: 'local', key: `Volume/${name}`, adopt: false, labels: {}, config, specHash: hashConfig(config) };
}
const clone = (name: string, base: string): DesiredVolume => vol(name, { backingVolume: base, backingPath: `${DIR}/${base}.qcow2` });
function vmCfg(disks: string[]): VmConfig {
  return {
    vcpus: 1, memoryKiB: 65536,
    disks: disks.map((d, i) => ({ volume: d, path: `${DIR}/${d}.qcow2`, format: 'qcow2' as const, bus: 'virtio' as const, target: `vd${'abc'[i]}` })),
    nics: [],
  };
}
function vm(name: string, disks: string[], state: 'running' | 'stopped' = 'running'): DesiredVm {
  const config = vmCfg(disks);
  return {
    kind: 'VirtualMachine', name, host: 'local', key: `VirtualMachine/${name}`, adopt: false, labels: {},
    config, specHash: hashConfig(config), autostart: false, state, restartPolicy: 'Never',
  };
}
function desiredOf(resources: DesiredResource[]): Desired {
  return { resources, byKey: new Map(resources.map((r) => [r.key, r])), digest: 'd', empty: resources.length === 0 };
}

interface HostSetup {
  /** Volumes on the host and recorded as virtform's, with the config recorded for them. */
  volumes?: VolumeConfig[];
  /** Recorded VMs (name → config), on the host; `running` ones are active. */
  vms?: Record<string, VmConfig>;
  running?: string[];
  /** Extra persistent definitions by key (e.g. a VM attaching a file outside virtform). */
  definitions?: Record<string, unknown>;
}
function observedOf(h: HostSetup): Observed {
  const records: Observed['records'] = new Map();
  const listed = new Map<string, { pool: string; name: string; key: string }>();
  const definitions = new Map<string, unknown>(Object.entries(h.definitions ?? {}));
  for (const v of h.volumes ?? []) {
    const name = v.volName.replace(/\.(qcow2|img)$/, '');
    listed.set(v.volName, { pool: v.pool, name: v.volName, key: v.path });
    records.set(`Volume/${name}`, {
      kind: 'Volume', name, uuid: v.path, specHash: hashConfig(v), desiredState: null, lastError: null, details: { config: v },
    });
    const d: VolumeDetail = { pool: v.pool, name: v.volName, key: v.path, path: v.path, capacityBytes: v.capacityBytes!, format: v.format, backingPath: v.backingPath };
    if (!definitions.has(`Volume/${name}`)) definitions.set(`Volume/${name}`, d);
  }
  const domains = new Map<string, { name: string; uuid: string; id: number; active: boolean; autostart: boolean }>();
  for (const [name, config] of Object.entries(h.vms ?? {})) {
    const active = (h.running ?? []).includes(name);
    domains.set(name, { name, uuid: `uuid-${name}`, id: active ? 1 : -1, active, autostart: false });
    records.set(`VirtualMachine/${name}`, {
      kind: 'VirtualMachine', name, uuid: `uuid-${name}`, specHash: hashConfig(config), desiredState: 'running', lastError: null, details: { config },
    });
  }
  return {
    snapshot: { pools: [{ name: POOL, uuid: 'pool-uuid', active: true, autostart: true }], networks: [], domains: [...domains.values()] },
    pools: new Map([[POOL, { name: POOL, uuid: 'pool-uuid', active: true, autostart: true }]]),
    networks: new Map(),
    domains,
    volumes: new Map([[POOL, listed]]),
    records,
    openJournal: new Map(),
    definitions,
    hostCalls: 0,
  } as unknown as Observed;
}

function volumeChange(action: 'delete' | 'replace' | 'update', cfg: VolumeConfig, extra: Partial<ResourceChange> = {}): ResourceChange {
  const name = cfg.volName.replace(/\.(qcow2|img)$/, '');
  const steps: ResourceChange['steps'] = action === 'update'
    ? [{ op: 'volume.resize', capacityBytes: cfg.capacityBytes! * 2 }]
    : [{ op: 'volume.delete', pool: cfg.pool, volName: cfg.volName }, ...(action === 'replace' ? [{ op: 'volume.create' as const }] : [])];
  return {
    key: `Volume/${name}`, kind: 'Volume', name, action, reason: 'test', fields: [], notes: [], steps,
    previous: cfg, ownership: 'owned', drift: false, ...extra,
  };
}
const pruneOf = (key: string, steps: ResourceChange['steps'], previous?: unknown): ResourceChange => {
  const [kind, name] = key.split('/') as [ResourceChange['kind'], string];
  return { key, kind, name, action: 'delete', reason: 'no longer declared in manifests', fields: [], notes: [], steps, previous, ownership: 'owned', drift: false };
};

describe('data-loss classification', () => {
  const blank = volCfg('blank');
  const imported = volCfg('imported', { sourcePath: '/images/seed.img' });
  const disk = volCfg('disk');
  const base = volCfg('base');
  const cases: {
    name: string; desired: DesiredResource[]; host: HostSetup; change: ResourceChange;
    held: boolean; why?: string[];
  }[] = [
    {
      name: 'a blank volume never attached and backing nothing is derived data: deleted without asking',
      desired: [], host: { volumes: [blank] }, change: volumeChange('delete', blank), held: false,
    },
    {
      name: 'a replaced blank volume (shrink) attached to nothing is not held',
      desired: [vol('blank', { capacityBytes: 1 << 19 })], host: { volumes: [blank] }, change: volumeChange('replace', blank), held: false,
    },
    {
      name: 'growing a volume in place destroys nothing',
      desired: [vol('disk'), vm('vm', ['disk'])], host: { volumes: [disk], vms: { vm: vmCfg(['disk']) } }, change: volumeChange('update', disk), held: false,
    },
    {
      name: 'an adopted volume whose file does not match the manifest (replaced on adoption)',
      desired: [vol('blank', { capacityBytes: 1 << 19 })], host: { volumes: [blank] }, change: volumeChange('replace', blank, { adopt: true, ownership: 'foreign' }),
      held: true, why: ['adopted: its contents were not made by virtform'],
    },
    {
      name: 'a volume holding an imported image',
      desired: [], host: { volumes: [imported] }, change: volumeChange('delete', imported), held: true, why: ['holds imported image /images/seed.img'],
    },
    {
      name: 'a volume a declared VM attaches',
      desired: [vol('disk', { format: 'raw' }), vm('vm', ['disk'])], host: { volumes: [disk] }, change: volumeChange('replace', disk),
      held: true, why: ['attached to VirtualMachine/vm (declared config)'],
    },
    {
      name: 'a volume only the recorded config of a pruned VM attaches',
      desired: [], host: { volumes: [disk], vms: { old: vmCfg(['disk']) } }, change: volumeChange('delete', disk),
      held: true, why: ['attached to VirtualMachine/old (recorded config)'],
    },
    {
      name: 'a volume whose file a VM definition on the host attaches (edited outside virtform)',
      desired: [vm('vm', [])], host: {
        volumes: [disk],
        definitions: { 'VirtualMachine/vm': { name: 'vm', disks: [{ path: disk.path, target: 'vdb', bus: 'virtio' }] } as Partial<DomainDetail> },
      },
      change: volumeChange('delete', disk), held: true, why: ['attached to VirtualMachine/vm (persistent definition)'],
    },
    {
      name: 'a base volume a declared clone is built on',
      desired: [vol('base', { capacityBytes: 1 << 19 }), clone('c1', 'base')], host: { volumes: [base] }, change: volumeChange('replace', base),
      held: true, why: ['backs Volume/c1 (declared config)'],
    },
    {
      name: 'a base volume only a recorded clone is built on',
      desired: [], host: { volumes: [base, clone('c1', 'base').config] }, change: volumeChange('delete', base),
      held: true, why: ['backs Volume/c1 (persistent definition, recorded config)'],
    },
    {
      name: 'every reason at once, in order: imported, attached, backing',
      desired: [vm('vm', ['imported']), clone('c1', 'imported')], host: { volumes: [imported] }, change: volumeChange('delete', imported),
      held: true, why: ['holds imported image /images/seed.img', 'attached to VirtualMachine/vm (declared config)', 'backs Volume/c1 (declared config)'],
    },
    {
      name: 'a release (deletionPolicy: Retain) deletes nothing',
      desired: [], host: { volumes: [imported] },
      change: { ...pruneOf('Volume/imported', [{ op: 'record.forget' }], imported), release: { policy: 'Retain', kept: `file ${imported.path} kept` } },
      held: false,
    },
  ];
  for (const t of cases) {
    it(t.name, async () => {
      const d = desiredOf(t.desired);
      const o = observedOf(t.host);
      const c = structuredClone(t.change);
      const held = await holdDataLoss(d, o, [c]);
      expect(held.has(c.key)).toBe(t.held);
      expect(c.dataLoss?.[0]?.why).toEqual(t.why);
      if (t.held) {
        expect(c.held).toMatch(new RegExp(`would destroy the contents of ${c.key.replace('/', '\\/')}`));
        expect(c.dataLoss![0]!.path).toBe(`${DIR}/${c.name}.qcow2`);
        expect(c.dataLoss![0]!.sizeBytes).toBe(1 << 20);
        // With consent the same change is classified, and not held.
        const c2 = structuredClone(t.change);
        expect((await holdDataLoss(d, o, [c2], { allowDataLoss: true })).size).toBe(0);
        expect(c2.dataLoss?.[0]?.why).toEqual(t.why);
        expect(c2.held).toBeUndefined();
      } else {
        expect(c.held).toBeUndefined();
      }
    });
  }
});

describe('what a held change takes with it', () => {
  it('a teardown: the VM of a held disk, the network that VM uses and the pool are held; a blank volume and an unrelated VM go', async () => {
    const disk = volCfg('disk');
    const blank = volCfg('blank');
    const vmUsing = { ...vmCfg(['disk']), nics: [{ network: 'net', model: 'virtio' }] };
    const o = observedOf({ volumes: [disk, blank], vms: { vm: vmUsing, other: vmCfg([]) } });
    const changes = [
      pruneOf('StoragePool/p', [{ op: 'pool.delete' }], { name: POOL, path: DIR, autostart: true }),
      volumeChange('delete', disk),
      volumeChange('delete', blank),
      pruneOf('Network/net', [{ op: 'network.delete' }], { name: 'net' }),
      pruneOf('VirtualMachine/vm', [{ op: 'vm.delete' }], vmUsing),
      pruneOf('VirtualMachine/other', [{ op: 'vm.delete' }], vmCfg([])),
    ];
    const d = desiredOf([]);
    const held = await holdDataLoss(d, o, changes);
    expect(Object.fromEntries(held)).toEqual({
      'Volume/disk': expect.stringMatching(/^would destroy the contents of Volume\/disk \(\/srv\/p\/disk\.qcow2\): attached to VirtualMachine\/vm \(recorded config\)$/),
      'VirtualMachine/vm': 'depends on Volume/disk, which is held',
      'StoragePool/p': 'Volume/disk, which uses it, is held',
      'Network/net': 'VirtualMachine/vm, which uses it, is held',
    });
    const plan = buildPlan(d, changes, held);
    expect(plan.steps.map((s) => `${s.key}:${s.op.op}`).sort()).toEqual(['VirtualMachine/other:vm.delete', 'Volume/blank:volume.delete']);
    expect(plan.summary.held).toBe(4);
    expect(plan.blocked.size).toBe(0);
  });

  it('nothing is held with consent: every step is planned', async () => {
    const disk = volCfg('disk');
    const o = observedOf({ volumes: [disk], vms: { vm: vmCfg(['disk']) } });
    const changes = [volumeChange('delete', disk), pruneOf('VirtualMachine/vm', [{ op: 'vm.delete' }], vmCfg(['disk']))];
    const held = await holdDataLoss(desiredOf([]), o, changes, { allowDataLoss: true });
    expect(held.size).toBe(0);
    expect(buildPlan(desiredOf([]), changes, held).steps).toHaveLength(2);
  });
});

describe('clone cascade (Volume afterDiff, then VM afterDiff)', () => {
  /** base ← c1 ← c1b, base ← c2; vm1 (running) uses c1b, vm2 (running) uses c2, vm3 (stopped) uses c1. */
  function lab() {
    const volumes = [vol('base', { capacityBytes: 1 << 19 }), clone('c1', 'base'), clone('c1b', 'c1'), clone('c2', 'base'), vol('other')];
    const vms = [vm('vm1', ['c1b']), vm('vm2', ['c2']), vm('vm3', ['c1'], 'stopped'), vm('vm4', ['other'])];
    const o = observedOf({
      volumes: [volCfg('base'), ...volumes.slice(1).map((v) => v.config)],
      vms: Object.fromEntries(vms.map((v) => [v.name, v.config])), running: ['vm1', 'vm2', 'vm4'],
    });
    return { volumes, vms, o };
  }
  const run = (changes: ResourceChange[], volumes: DesiredVolume[], vms: DesiredVm[], o: Observed): void => {
    volumeKind.afterDiff!(volumes, o, changes, { gracefulStop: false });
    vmKind.afterDiff!(vms, o, changes, { gracefulStop: false });
  };
  /** The base replaced: every clone on it too, and both running VMs restarted. */
  const EVERY_CLONE_REPLACED = {
    'Volume/base': 'replace:volume.delete,volume.create',
    'Volume/c1': 'replace:volume.delete,volume.create',
    'Volume/c1b': 'replace:volume.delete,volume.create',
    'Volume/c2': 'replace:volume.delete,volume.create',
    'VirtualMachine/vm1': 'update:vm.stop,vm.start',
    'VirtualMachine/vm2': 'update:vm.stop,vm.start',
  };
  const cases: { name: string; start: (l: ReturnType<typeof lab>) => ResourceChange[]; expected: Record<string, string> }[] = [
    {
      name: 'replacing the base replaces every clone built on it, transitively, and restarts the running VMs using them',
      start: ({ volumes }) => [volumeChange('replace', volCfg('base'), { desired: volumes[0] })],
      expected: EVERY_CLONE_REPLACED,
    },
    {
      name: 'replacing a middle clone takes only its own clones',
      start: ({ volumes }) => [volumeChange('replace', clone('c1', 'base').config, { desired: volumes[1] })],
      expected: {
        'Volume/c1': 'replace:volume.delete,volume.create',
        'Volume/c1b': 'replace:volume.delete,volume.create',
        'VirtualMachine/vm1': 'update:vm.stop,vm.start',
      },
    },
    {
      name: 'a clone with its own pending resize is replaced instead (recreated at the new size)',
      start: ({ volumes }) => [
        volumeChange('replace', volCfg('base'), { desired: volumes[0] }),
        volumeChange('update', clone('c2', 'base').config, { desired: volumes[3] }),
      ],
      expected: EVERY_CLONE_REPLACED,
    },
    {
      name: 'a resize of the base is no replace: nothing cascades',
      start: ({ volumes }) => [volumeChange('update', volCfg('base'), { desired: volumes[0] })],
      expected: { 'Volume/base': 'update:volume.resize' },
    },
  ];
  for (const t of cases) {
    it(t.name, () => {
      const l = lab();
      const changes = t.start(l);
      run(changes, l.volumes, l.vms, l.o);
      expect(Object.fromEntries(changes.map((c) => [c.key, `${c.action}:${c.steps.map((s) => s.op).join(',')}`]))).toEqual(t.expected);
      for (const c of changes.filter((x) => x.key.startsWith('Volume/c') && x.action === 'replace' && !t.start(lab()).some((s) => s.key === x.key && s.action === 'replace'))) {
        expect(c.reason).toMatch(/its backing volume Volume\/\w+ is replaced: recreated on the new one/);
        expect(c.steps[0]).toEqual({ op: 'volume.delete', pool: POOL, volName: `${c.name}.qcow2` });
      }
    });
  }

  it('the whole cascade is one data-loss operation: held together without consent, ordered safely with it', async () => {
    const l = lab();
    const changes = [volumeChange('replace', volCfg('base'), { desired: l.volumes[0] })];
    run(changes, l.volumes, l.vms, l.o);
    const d = desiredOf([...l.volumes, ...l.vms]);
    const held = await holdDataLoss(d, l.o, changes);
    expect([...held.keys()].sort()).toEqual([
      'VirtualMachine/vm1', 'VirtualMachine/vm2', 'Volume/base', 'Volume/c1', 'Volume/c1b', 'Volume/c2',
    ]);
    expect(changes.find((c) => c.key === 'Volume/base')!.dataLoss![0]!.why).toEqual(['backs Volume/c1 (persistent definition, declared config, recorded config)', 'backs Volume/c2 (persistent definition, declared config, recorded config)']);
    expect(changes.find((c) => c.key === 'Volume/c1')!.dataLoss![0]!.why).toEqual(['attached to VirtualMachine/vm3 (declared config, recorded config)', 'backs Volume/c1b (persistent definition, declared config, recorded config)']);
    expect(buildPlan(d, changes, held).steps).toEqual([]);

    const consented = await holdDataLoss(d, l.o, changes, { allowDataLoss: true });
    expect(consented.size).toBe(0);
    const plan = buildPlan(d, changes, consented);
    const step = (key: string, op: string) => plan.steps.find((s) => s.key === key && s.op.op === op)!;
    const before = (a: { id: number }, b: { id: number; deps: number[] }): boolean => {
      const seen = new Set<number>();
      const stack = [...b.deps];
      while (stack.length) {
        const id = stack.pop()!;
        if (id === a.id) return true;
        if (!seen.has(id)) {
          seen.add(id);
          stack.push(...plan.steps[id]!.deps);
        }
      }
      return false;
    };
    // VM stopped → clone deleted → base deleted → base created → clone created → VM started.
    expect(before(step('VirtualMachine/vm1', 'vm.stop'), step('Volume/c1b', 'volume.delete'))).toBe(true);
    expect(before(step('Volume/c1b', 'volume.delete'), step('Volume/c1', 'volume.delete'))).toBe(true);
    expect(before(step('Volume/c1', 'volume.delete'), step('Volume/base', 'volume.delete'))).toBe(true);
    expect(before(step('Volume/c2', 'volume.delete'), step('Volume/base', 'volume.delete'))).toBe(true);
    expect(before(step('Volume/base', 'volume.create'), step('Volume/c1', 'volume.create'))).toBe(true);
    expect(before(step('Volume/c1', 'volume.create'), step('Volume/c1b', 'volume.create'))).toBe(true);
    expect(before(step('Volume/c1b', 'volume.create'), step('VirtualMachine/vm1', 'vm.start'))).toBe(true);
    expect(before(step('Volume/c2', 'volume.create'), step('VirtualMachine/vm2', 'vm.start'))).toBe(true);
  });
});
