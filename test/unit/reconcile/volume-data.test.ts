/**
 * The Volume kind's data rule (src/reconcile/kinds/volume/data.ts) and the mass-deletion brake
 * (src/reconcile/safety.ts), each detection route alone: by volume name and by path; declared
 * config, recorded config, persistent definition, live definition, recorded reference, host-wide
 * (unmanaged) definitions; and what must NOT be held. The brake's verdict is checked field by field.
 */
import { describe, expect, it } from 'vitest';
import { hashConfig } from '../../../src/reconcile/core/resource.js';
import type { Desired, DesiredResource, DesiredVolume, DesiredVm, VmConfig, VolumeConfig } from '../../../src/reconcile/desired.js';
import type { Observed } from '../../../src/reconcile/observe.js';
import type { ResourceChange } from '../../../src/reconcile/kinds/index.js';
import {
  definitionReferences, hostReferences, knownReferences, observedReferences, referencesToStore, volumeDataLoss, type StoredReference, type VolumeReference,
} from '../../../src/reconcile/kinds/volume/data.js';
import { brakeDeletions, defaultMaxDeletions, holdDataLoss } from '../../../src/reconcile/safety.js';
import type { DomainDetail, VolumeDetail } from '../../../src/model/definitions.js';
import { FakeHost } from '../../support/fake-host.js';

const POOL = 'p';
const DIR = '/srv/p';
const path = (v: string): string => `${DIR}/${v}.qcow2`;

function volCfg(name: string, extra: Partial<VolumeConfig> = {}): VolumeConfig {
  return { pool: POOL, volName: `${name}.qcow2`, path: path(name), format: 'qcow2', capacityBytes: 1 << 20, ...extra };
}
function vol(name: string, extra: Partial<VolumeConfig> = {}, image?: DesiredVolume['image']): DesiredVolume {
  const config = volCfg(name, extra);
  return { kind: 'Volume', name, host: 'local', key: `Volume/${name}`, adopt: false, labels: {}, config, specHash: hashConfig(config), ...(image ? { image } : {}) };
}
function vmWith(name: string, c: Partial<VmConfig>): DesiredVm {
  const config: VmConfig = { vcpus: 1, memoryKiB: 65536, disks: [], nics: [], ...c };
  return {
    kind: 'VirtualMachine', name, host: 'local', key: `VirtualMachine/${name}`, adopt: false, labels: {},
    config, specHash: hashConfig(config), autostart: false, state: 'stopped', restartPolicy: 'Never',
  };
}
const disk = (volume: string, p = path(volume)): VmConfig['disks'][number] => ({ volume, path: p, format: 'qcow2', bus: 'virtio', target: 'vda' });
const desiredOf = (resources: DesiredResource[]): Desired => ({ resources, byKey: new Map(resources.map((r) => [r.key, r])), digest: 'd', empty: resources.length === 0 });

interface Setup {
  /** Volumes recorded as virtform's (config and definition). */
  volumes?: VolumeConfig[];
  /** Recorded VMs with their configs (no definition unless given). */
  vms?: Record<string, VmConfig>;
  definitions?: Record<string, unknown>;
  /** Domains listed on the host (managed or not). */
  domains?: { name: string; active: boolean }[];
}
function observedOf(h: Setup): Observed {
  const records: Observed['records'] = new Map();
  const listed = new Map<string, { pool: string; name: string; key: string }>();
  const definitions = new Map<string, unknown>(Object.entries(h.definitions ?? {}));
  for (const v of h.volumes ?? []) {
    const name = v.volName.replace(/\.(qcow2|img)$/, '');
    listed.set(v.volName, { pool: v.pool, name: v.volName, key: v.path });
    records.set(`Volume/${name}`, { kind: 'Volume', name, uuid: v.path, specHash: hashConfig(v), desiredState: null, lastError: null, details: { config: v } });
    if (!definitions.has(`Volume/${name}`)) {
      definitions.set(`Volume/${name}`, { pool: v.pool, name: v.volName, key: v.path, path: v.path, capacityBytes: 2 << 20, format: v.format, backingPath: v.backingPath } satisfies VolumeDetail);
    }
  }
  for (const [name, config] of Object.entries(h.vms ?? {})) {
    records.set(`VirtualMachine/${name}`, { kind: 'VirtualMachine', name, uuid: `u-${name}`, specHash: hashConfig(config), desiredState: 'stopped', lastError: null, details: { config } });
  }
  const domains = (h.domains ?? []).map((d) => ({ name: d.name, uuid: `u-${d.name}`, id: d.active ? 1 : -1, active: d.active, autostart: false }));
  return {
    snapshot: { pools: [{ name: POOL, uuid: 'pu', active: true, autostart: true }], networks: [], domains },
    pools: new Map([[POOL, { name: POOL, uuid: 'pu', active: true, autostart: true }]]),
    networks: new Map(), domains: new Map(domains.map((d) => [d.name, d])),
    volumes: new Map([[POOL, listed]]), records, openJournal: new Map(), definitions, hostCalls: 0,
  } as unknown as Observed;
}
function del(cfg: VolumeConfig, extra: Partial<ResourceChange> = {}): ResourceChange {
  const name = cfg.volName.replace(/\.(qcow2|img)$/, '');
  return {
    key: `Volume/${name}`, kind: 'Volume', name, action: 'delete', reason: 't', fields: [], notes: [],
    steps: [{ op: 'volume.delete', pool: cfg.pool, volName: cfg.volName }], previous: cfg, ownership: 'owned', drift: false, ...extra,
  };
}
const replace = (cfg: VolumeConfig, extra: Partial<ResourceChange> = {}): ResourceChange =>
  del(cfg, { action: 'replace', steps: [{ op: 'volume.delete', pool: cfg.pool, volName: cfg.volName }, { op: 'volume.create' }], ...extra });
const domain = (name: string, disks: string[], extra: Partial<DomainDetail> = {}): Partial<DomainDetail> =>
  ({ name, disks: disks.map((p) => ({ path: p, target: 'vda', bus: 'virtio' })), nics: [], ...extra });

async function why(changes: ResourceChange[], d: Desired, o: Observed, extra: { host?: FakeHost; recorded?: (p: string[]) => Promise<StoredReference[]> } = {}): Promise<Record<string, string[]>> {
  const m = await volumeDataLoss(changes, { desired: d, observed: o, ...extra });
  return Object.fromEntries([...m].map(([k, l]) => [k, l.why]));
}

describe('the data rule: each route alone', () => {
  const d1 = volCfg('d1');
  it('pristine: created empty by virtform, never referenced: not data', async () => {
    expect(await why([del(d1)], desiredOf([]), observedOf({ volumes: [d1] }))).toEqual({});
  });
  it('a declared VM naming the volume (its path elsewhere): by name alone', async () => {
    const vm = vmWith('vm', { disks: [disk('d1', '/elsewhere/x.qcow2')] });
    expect(await why([del(d1)], desiredOf([vm]), observedOf({ volumes: [d1] }))).toEqual({ 'Volume/d1': ['attached to VirtualMachine/vm (declared config)'] });
  });
  it('a declared VM using the file under another volume name: by path alone', async () => {
    const vm = vmWith('vm', { disks: [disk('other', path('d1'))] });
    expect(await why([del(d1)], desiredOf([vm]), observedOf({ volumes: [d1] }))).toEqual({ 'Volume/d1': ['attached to VirtualMachine/vm (declared config)'] });
  });
  it('a recorded VM config alone', async () => {
    const o = observedOf({ volumes: [d1], vms: { old: { vcpus: 1, memoryKiB: 1, disks: [disk('d1')], nics: [] } } });
    expect(await why([del(d1)], desiredOf([]), o)).toEqual({ 'Volume/d1': ['attached to VirtualMachine/old (recorded config)'] });
  });
  it('a persistent definition alone (a CD-ROM counts as a use)', async () => {
    const o = observedOf({ volumes: [d1], definitions: { 'VirtualMachine/vm': domain('vm', [], { cdroms: [{ path: path('d1'), target: 'hda', bus: 'ide' }] }) } });
    expect(await why([del(d1)], desiredOf([]), o)).toEqual({ 'Volume/d1': ['attached to VirtualMachine/vm (persistent definition)'] });
  });
  it('kernel by kernelVolume (name), initrd by path, and the persistent definition of both', async () => {
    const k = volCfg('k');
    const i = volCfg('i');
    const vm = vmWith('vm', { boot: { kernelVolume: 'k', kernel: '/other/k', initrd: path('i') } });
    expect(await why([del(k), del(i)], desiredOf([vm]), observedOf({ volumes: [k, i] }))).toEqual({
      'Volume/k': ['kernel of VirtualMachine/vm (declared config)'],
      'Volume/i': ['initrd of VirtualMachine/vm (declared config)'],
    });
    const o = observedOf({ volumes: [k, i], definitions: { 'VirtualMachine/h': domain('h', [], { boot: { kernel: path('k'), initrd: path('i') } }) } });
    expect(await why([del(k), del(i)], desiredOf([]), o)).toEqual({
      'Volume/k': ['kernel of VirtualMachine/h (persistent definition)'],
      'Volume/i': ['initrd of VirtualMachine/h (persistent definition)'],
    });
  });
  it('initrd by initrdVolume (name) alone', async () => {
    const i = volCfg('i');
    const vm = vmWith('vm', { boot: { kernel: '/k', initrdVolume: 'i', initrd: '/not/here' } });
    expect(await why([del(i)], desiredOf([vm]), observedOf({ volumes: [i] }))).toEqual({ 'Volume/i': ['initrd of VirtualMachine/vm (declared config)'] });
  });
  it('backing: a declared clone by backingVolume alone, by backingPath alone, a volume definition alone', async () => {
    const base = volCfg('base');
    expect(await why([del(base)], desiredOf([vol('c', { backingVolume: 'base', backingPath: '/x/y.qcow2' })]), observedOf({ volumes: [base] })))
      .toEqual({ 'Volume/base': ['backs Volume/c (declared config)'] });
    expect(await why([del(base)], desiredOf([vol('c', { backingPath: path('base') })]), observedOf({ volumes: [base] })))
      .toEqual({ 'Volume/base': ['backs Volume/c (declared config)'] });
    const o = observedOf({ volumes: [base], definitions: { 'Volume/c': { pool: POOL, name: 'c.qcow2', key: path('c'), path: path('c'), capacityBytes: 1, format: 'qcow2', backingPath: path('base') } } });
    expect(await why([del(base)], desiredOf([]), o)).toEqual({ 'Volume/base': ['backs Volume/c (persistent definition)'] });
  });
  it('a reference recorded by an earlier run alone; asked only for the paths of what would be destroyed', async () => {
    const asked: string[][] = [];
    const recorded = async (paths: string[]): Promise<StoredReference[]> => {
      asked.push(paths);
      return [{ path: path('d1'), by: 'VirtualMachine/gone', role: 'disk', source: 'persistent definition', managed: true },
        { path: path('d1'), by: 'domain ext', role: 'disk', source: 'live definition', managed: false }];
    };
    expect(await why([del(d1)], desiredOf([]), observedOf({ volumes: [d1] }), { recorded })).toEqual({
      'Volume/d1': ['attached to domain ext (recorded reference; not managed by virtform)', 'attached to VirtualMachine/gone (recorded reference)'],
    });
    expect(asked).toEqual([[path('d1')]]);
    // A user still seen is named by where it is seen: the recorded reference adds nothing then.
    const o = observedOf({ volumes: [d1], definitions: { 'VirtualMachine/gone': domain('gone', [path('d1')]) } });
    expect(await why([del(d1)], desiredOf([]), o, { recorded })).toEqual({
      'Volume/d1': ['attached to domain ext (recorded reference; not managed by virtform)', 'attached to VirtualMachine/gone (persistent definition)'],
    });
    await why([{ ...del(d1), action: 'update', steps: [{ op: 'volume.resize', capacityBytes: 1 }] }], desiredOf([]), observedOf({ volumes: [d1] }), { recorded });
    expect(asked).toHaveLength(2);
  });
  it('imported image (file path; URL without credentials; digest when the image changed) and adoption', async () => {
    const sha = 'a'.repeat(64);
    const img = volCfg('img', { sourceSha256: sha });
    const file = vol('img', { sourceSha256: sha }, { kind: 'file', path: '/images/x.qcow2', sha256: sha, size: 1, format: 'qcow2', virtualSize: 1 });
    expect(await why([replace(img, { desired: file })], desiredOf([file]), observedOf({ volumes: [img] })))
      .toEqual({ 'Volume/img': [`holds imported image /images/x.qcow2 (sha256 ${'a'.repeat(12)}…)`] });
    const url = vol('img', { sourceSha256: sha }, { kind: 'url', url: 'https://u:secret@h.example/x.qcow2', sha256: sha });
    const w = (await why([replace(img, { desired: url })], desiredOf([url]), observedOf({ volumes: [img] })))['Volume/img']!;
    expect(w).toHaveLength(1);
    expect(w[0]).toMatch(/^holds imported image https:\/\/.*h\.example\/x\.qcow2 \(sha256 a{12}…\)$/);
    expect(w[0]).not.toContain('secret');
    const changed = vol('img', { sourceSha256: 'b'.repeat(64) }, { kind: 'file', path: '/images/new.qcow2', sha256: 'b'.repeat(64), size: 1, format: 'qcow2', virtualSize: 1 });
    expect(await why([replace(img, { desired: changed })], desiredOf([changed]), observedOf({ volumes: [img] })))
      .toEqual({ 'Volume/img': [`holds imported image image (sha256 ${'a'.repeat(12)}…)`] });
    const legacy = volCfg('old', { sourcePath: '/images/legacy.img' });
    expect(await why([del(legacy)], desiredOf([]), observedOf({ volumes: [legacy] }))).toEqual({ 'Volume/old': ['holds imported image /images/legacy.img'] });
    const bypath = volCfg('p2', { sourceSha256: 'path:/images/p2.img' });
    expect(await why([del(bypath)], desiredOf([]), observedOf({ volumes: [bypath] }))).toEqual({});
    expect(await why([del(d1, { adopt: true })], desiredOf([]), observedOf({ volumes: [d1] })))
      .toEqual({ 'Volume/d1': ['adopted: its contents were not made by virtform'] });
  });
});

describe('the data rule: what must not be held', () => {
  const d1 = volCfg('d1');
  it('references to other volumes, a volume\'s own backing store, and changes that destroy nothing', async () => {
    const base = volCfg('base');
    const clone = volCfg('clone', { backingVolume: 'base', backingPath: path('base') });
    const vm = vmWith('vm', { disks: [disk('other')], boot: { kernel: '/boot/k', initrd: '/boot/i' } });
    const o = observedOf({ volumes: [d1, base, clone], definitions: { 'VirtualMachine/x': domain('x', [path('other')]) } });
    // The clone is deleted: it backs nothing, no VM uses it; its own backing reference is not a use of itself.
    expect(await why([del(d1), del(clone)], desiredOf([vm, vol('base')]), o)).toEqual({});
    const none = await volumeDataLoss([
      { ...del(d1), action: 'update', steps: [{ op: 'volume.resize', capacityBytes: 2 }] },
      { ...del(d1), release: { policy: 'Retain', kept: 'file' } },
      { ...del(d1), action: 'conflict' },
      { ...del(d1), kind: 'VirtualMachine', key: 'VirtualMachine/d1' },
    ], { desired: desiredOf([vmWith('vm', { disks: [disk('d1')] })]), observed: o });
    expect(none.size).toBe(0);
  });
  it('no candidate: no host call, no recorded lookup', async () => {
    const host = new FakeHost();
    let asked = 0;
    const o = observedOf({ volumes: [d1], domains: [{ name: 'a', active: true }] });
    await volumeDataLoss([{ ...del(d1), action: 'update', steps: [{ op: 'volume.resize', capacityBytes: 2 }] }], {
      desired: desiredOf([]), observed: o, host, recorded: async () => { asked += 1; return []; },
    });
    expect(host.calls).toEqual([]);
    expect(asked).toBe(0);
  });
  it('the loss names the file and size the host reports, else the recorded or declared config', async () => {
    const m = await volumeDataLoss([del(d1, { adopt: true })], { desired: desiredOf([]), observed: observedOf({ volumes: [d1] }) });
    expect(m.get('Volume/d1')).toEqual({ volume: 'Volume/d1', path: path('d1'), sizeBytes: 2 << 20, why: ['adopted: its contents were not made by virtform'] });
    const moved = volCfg('d1', { path: '/moved/d1.qcow2' });
    const o = observedOf({});
    o.records.set('Volume/d1', { kind: 'Volume', name: 'd1', uuid: null, specHash: 'x', desiredState: null, lastError: null, details: { config: moved } });
    const fromRecord = await volumeDataLoss([del(d1, { adopt: true, previous: undefined })], { desired: desiredOf([]), observed: o });
    expect(fromRecord.get('Volume/d1')).toEqual({ volume: 'Volume/d1', path: '/moved/d1.qcow2', sizeBytes: undefined, why: ['adopted: its contents were not made by virtform'] });
    const declared = vol('d1', { path: '/declared/d1.qcow2' });
    const fromDesired = await volumeDataLoss([del(d1, { adopt: true, previous: undefined, desired: declared })], { desired: desiredOf([declared]), observed: observedOf({}) });
    expect(fromDesired.get('Volume/d1')!.path).toBe('/declared/d1.qcow2');
  });
});

/** A FakeHost with the pool POOL (at DIR) and the pool `other` (at /srv/other), both started. */
async function twoPools(): Promise<FakeHost> {
  const host = new FakeHost();
  await host.definePool({ name: POOL, path: DIR, autostart: true } as never);
  await host.startPool(POOL);
  await host.definePool({ name: 'other', path: '/srv/other', autostart: true } as never);
  await host.startPool('other');
  return host;
}

describe('the data rule: host-wide references (FakeHost)', () => {
  async function lab() {
    const host = await twoPools();
    for (const v of ['d1', 'd2', 'base', 'k']) await host.createVolume({ pool: POOL, name: `${v}.qcow2`, capacityBytes: 1 << 20, format: 'qcow2' });
    await host.createVolume({ pool: 'other', name: 'ovl.qcow2', capacityBytes: 1 << 20, format: 'qcow2', backing: { path: path('base'), format: 'qcow2' } });
    const dom = (name: string, disks: string[]) => ({
      name, type: 'qemu', vcpus: 1, memoryKiB: 65536, disks: disks.map((p, i) => ({ path: p, format: 'qcow2', bus: 'virtio', target: `vd${'ab'[i]}` })), nics: [],
    });
    await host.defineDomain(dom('ext', [path('d1')]) as never);
    await host.defineDomain(dom('run', [path('d2')]) as never);
    await host.startDomain('run');
    // The persistent definition of `run` drops d2; the running domain keeps it.
    await host.defineDomain({ ...dom('run', []), uuid: (await host.getDomain('run'))!.uuid } as never);
    return host;
  }
  it('an unmanaged domain (persistent), a running domain (live only), an overlay in another pool', async () => {
    const host = await lab();
    const snapshot = await host.snapshot();
    const o = observedOf({ volumes: ['d1', 'd2', 'base', 'k'].map((v) => volCfg(v)) });
    o.snapshot = { ...snapshot };
    const before = host.calls.length;
    const w = await why(['d1', 'd2', 'base', 'k'].map((v) => del(volCfg(v))), desiredOf([]), o, { host });
    expect(w).toEqual({
      'Volume/d1': ['attached to domain ext (persistent definition; not managed by virtform)'],
      'Volume/d2': ['attached to domain run (live definition; not managed by virtform)'],
      'Volume/base': ['backs volume other/ovl.qcow2 (persistent definition; not managed by virtform)'],
    });
    const calls = host.calls.slice(before);
    // Live definitions of running domains only; the pool observe listed is not listed again.
    expect(calls.filter((c) => c.startsWith('getRunningDomain'))).toEqual(['getRunningDomain:run']);
    expect(calls.filter((c) => c.startsWith('listVolumes'))).toEqual(['listVolumes:other']);
    // What was seen on the host is what the run records.
    expect(observedReferences(o).map((r) => `${r.by} ${r.role} ${r.source} ${r.managed}`).sort()).toEqual([
      'domain ext disk persistent definition false',
      'domain run disk live definition false',
      'volume other/ovl.qcow2 backing persistent definition false',
    ]);
  });
  it('a managed domain seen host-wide is named as virtform\'s', async () => {
    const host = await lab();
    const o = observedOf({ volumes: [volCfg('d2')], vms: { ext: { vcpus: 1, memoryKiB: 1, disks: [], nics: [] } } });
    o.snapshot = await host.snapshot();
    const refs = await hostReferences(host, o);
    expect(refs.filter((r) => r.role === 'disk').map((r) => `${r.by} ${r.path} ${r.source} ${r.managed}`).sort()).toEqual([
      `VirtualMachine/ext ${path('d1')} persistent definition true`,
      `domain run ${path('d2')} live definition false`,
    ]);
  });
});

describe('the data rule: host-wide references, the edges', () => {
  async function small() {
    const host = await twoPools();
    await host.definePool({ name: 'off', path: '/srv/off', autostart: false } as never);
    for (const v of ['d1', 'base']) await host.createVolume({ pool: POOL, name: `${v}.qcow2`, capacityBytes: 1 << 20, format: 'qcow2' });
    await host.createVolume({ pool: 'other', name: 'ovl.qcow2', capacityBytes: 1 << 20, format: 'qcow2', backing: { path: path('base'), format: 'qcow2' } });
    await host.defineDomain({ name: 'ext', type: 'qemu', vcpus: 1, memoryKiB: 65536, disks: [{ path: path('d1'), format: 'qcow2', bus: 'virtio', target: 'vda' }], nics: [] } as never);
    await host.startDomain('ext');
    return host;
  }
  it('a user seen live and persistent is named with both; the overlay of a recorded volume is virtform\'s; an inactive pool is not listed', async () => {
    const host = await small();
    const o = observedOf({ volumes: [volCfg('d1'), volCfg('base')] });
    o.records.set('Volume/ovl', { kind: 'Volume', name: 'ovl', uuid: '/srv/other/ovl.qcow2', specHash: 'h', desiredState: null, lastError: null,
      details: { config: { ...volCfg('ovl'), pool: 'other', path: '/srv/other/ovl.qcow2' } } });
    o.snapshot = await host.snapshot();
    const before = host.calls.length;
    expect(await why([del(volCfg('d1')), del(volCfg('base'))], desiredOf([]), o, { host })).toEqual({
      'Volume/d1': ['attached to domain ext (live definition, persistent definition; not managed by virtform)'],
      'Volume/base': ['backs Volume/ovl (persistent definition)'],
    });
    expect(host.calls.slice(before).filter((c) => c.startsWith('listVolumes'))).toEqual(['listVolumes:other']);
  });
  it('a domain or pool gone meanwhile (not found) still gives what the rest shows', async () => {
    const host = await small();
    const o = observedOf({ volumes: [volCfg('d1'), volCfg('base')] });
    o.snapshot = await host.snapshot();
    host.failNext('getRunningDomain', 'ext', 1, 'not-found');
    host.failNext('listVolumes', 'other', 1, 'not-found');
    expect(await why([del(volCfg('d1')), del(volCfg('base'))], desiredOf([]), o, { host })).toEqual({
      'Volume/d1': ['attached to domain ext (persistent definition; not managed by virtform)'],
    });
  });
  it('any other failure of a live read or a listing fails the rule: a use it could not see is never taken for none', async () => {
    for (const [op, name] of [['getRunningDomain', 'ext'], ['listVolumes', 'other']] as const) {
      const host = await small();
      const o = observedOf({ volumes: [volCfg('d1'), volCfg('base')] });
      o.snapshot = await host.snapshot();
      host.failNext(op, name);
      await expect(why([del(volCfg('d1')), del(volCfg('base'))], desiredOf([]), o, { host })).rejects.toThrow();
    }
  });
  it('a running domain whose definition observe read is virtform\'s, record or not', async () => {
    const host = await small();
    const o = observedOf({ volumes: [volCfg('d1')], definitions: { 'VirtualMachine/ext': await host.getDomain('ext') } });
    o.snapshot = await host.snapshot();
    const before = host.calls.length;
    expect(await why([del(volCfg('d1'))], desiredOf([]), o, { host })).toEqual({
      'Volume/d1': ['attached to VirtualMachine/ext (live definition, persistent definition)'],
    });
    // Its persistent definition is not read again.
    expect(host.calls.slice(before).filter((c) => c.includes('ext') && !c.startsWith('getRunningDomain'))).toEqual([]);
  });
  it('recorded references are not asked for a change without a file; a managed user stays managed whatever else says', async () => {
    let asked = 0;
    const recorded = async (): Promise<StoredReference[]> => {
      asked += 1;
      return [{ path: path('d1'), by: 'VirtualMachine/vm', role: 'disk', source: 'live definition', managed: false }];
    };
    const o = observedOf({});
    await volumeDataLoss([del(volCfg('x'), { previous: undefined })], { desired: desiredOf([]), observed: o, recorded });
    expect(asked).toBe(0);
    const d1 = volCfg('d1');
    expect(await why([del(d1)], desiredOf([vmWith('vm', { disks: [disk('d1')] })]), observedOf({ volumes: [d1] }), { recorded }))
      .toEqual({ 'Volume/d1': ['attached to VirtualMachine/vm (declared config)'] });
  });
  it('an imported image named from the manifest when nothing was recorded yet', async () => {
    const sha = 'd'.repeat(64);
    const file = vol('img', { sourceSha256: sha }, { kind: 'file', path: '/images/i.qcow2', sha256: sha, size: 1, format: 'qcow2', virtualSize: 1 });
    expect(await why([del(volCfg('img'), { previous: undefined, desired: file })], desiredOf([file]), observedOf({})))
      .toEqual({ 'Volume/img': [`holds imported image /images/i.qcow2 (sha256 ${'d'.repeat(12)}…)`] });
  });
  it('one VM using a volume as disk and as kernel: one line per use, in role order', async () => {
    const v = volCfg('v');
    const o = observedOf({ volumes: [v], definitions: { 'VirtualMachine/a': domain('a', [path('v')], { boot: { kernel: path('v'), initrd: path('v') } }) } });
    expect((await why([del(v)], desiredOf([]), o))['Volume/v']).toEqual([
      'attached to VirtualMachine/a (persistent definition)', 'initrd of VirtualMachine/a (persistent definition)', 'kernel of VirtualMachine/a (persistent definition)',
    ]);
  });
});

describe('references to store', () => {
  it('keeps what was seen on the host (by path), once; never configs', () => {
    const r = (source: VolumeReference['source'], p?: string): VolumeReference => ({ path: p, by: 'VirtualMachine/a', role: 'disk', source, managed: true });
    expect(referencesToStore([
      r('live definition', '/a'), r('live definition', '/a'), r('persistent definition', '/a'), r('declared config', '/b'),
      r('recorded config', '/c'), r('recorded reference', '/d'), r('persistent definition', undefined),
    ])).toEqual([
      { path: '/a', by: 'VirtualMachine/a', role: 'disk', source: 'live definition', managed: true },
      { path: '/a', by: 'VirtualMachine/a', role: 'disk', source: 'persistent definition', managed: true },
    ]);
  });
});

describe('the order of the reasons', () => {
  it('imported first, then users by name (attached, kernel, initrd), then what it backs; sources in a fixed order', async () => {
    const sha = 'c'.repeat(64);
    const v = volCfg('v', { sourcePath: '/images/v.img', sourceSha256: sha });
    const o = observedOf({
      volumes: [v], vms: { b: { vcpus: 1, memoryKiB: 1, disks: [disk('v')], nics: [] } },
      definitions: { 'VirtualMachine/b': domain('b', [path('v')]), 'VirtualMachine/a': domain('a', [], { boot: { kernel: path('v') } }) },
    });
    const d = desiredOf([vmWith('b', { disks: [disk('v')] }), vol('z', { backingVolume: 'v' }), vol('y', { backingVolume: 'v' })]);
    expect((await why([del(v)], d, o))['Volume/v']).toEqual([
      'holds imported image /images/v.img',
      'kernel of VirtualMachine/a (persistent definition)',
      'attached to VirtualMachine/b (persistent definition, declared config, recorded config)',
      'backs Volume/y (declared config)',
      'backs Volume/z (declared config)',
    ]);
  });
});

describe('holdDataLoss dispatches to the kind and holds with one line', () => {
  it('held with the file and every reason, not held with consent; nothing for a pristine volume', async () => {
    const d1 = volCfg('d1');
    const free = volCfg('free');
    const o = observedOf({ volumes: [d1, free], definitions: { 'VirtualMachine/vm': domain('vm', [path('d1')]) } });
    const changes = [del(d1), del(free)];
    const held = await holdDataLoss(desiredOf([]), o, changes);
    expect([...held]).toEqual([['Volume/d1', `would destroy the contents of Volume/d1 (${path('d1')}): attached to VirtualMachine/vm (persistent definition)`]]);
    expect(changes[1]!.dataLoss).toBeUndefined();
    expect(changes[1]!.held).toBeUndefined();
    const again = [del(d1)];
    expect((await holdDataLoss(desiredOf([]), o, again, { allowDataLoss: true })).size).toBe(0);
    expect(again[0]!.dataLoss?.[0]?.why).toEqual(['attached to VirtualMachine/vm (persistent definition)']);
    expect(again[0]!.held).toBeUndefined();
  });
  it('a loss without a path names the volume only', async () => {
    const o = observedOf({});
    const c: ResourceChange = { ...del(volCfg('x'), { adopt: true, previous: undefined }) };
    const held = await holdDataLoss(desiredOf([]), o, [c]);
    expect(held.get('Volume/x')).toBe('would destroy the contents of Volume/x: adopted: its contents were not made by virtform');
  });
});

describe('the mass-deletion brake: the plan\'s intent, field by field', () => {
  const rec = (kind: string, name: string) => [`${kind}/${name}`, { kind, name, uuid: null, specHash: 'h', desiredState: null, lastError: null }] as const;
  const obs = (vms: number, vols: number): Observed => ({
    records: new Map([...Array.from({ length: vms }, (_, i) => rec('VirtualMachine', `vm${i}`)), ...Array.from({ length: vols }, (_, i) => rec('Volume', `v${i}`))]),
  }) as unknown as Observed;
  const ch = (key: string, action: ResourceChange['action'], extra: Partial<ResourceChange> = {}): ResourceChange => {
    const [kind, name] = key.split('/') as [ResourceChange['kind'], string];
    const steps: ResourceChange['steps'] = action === 'delete' ? [{ op: kind === 'VirtualMachine' ? 'vm.delete' : 'volume.delete', pool: 'p', volName: name } as never] : [{ op: 'volume.create' }];
    return { key, kind, name, action, reason: 'r', fields: [], notes: [], steps, ownership: 'owned', drift: false, ...extra };
  };

  it('defaultMaxDeletions is max(5, ceil(10% of owned))', () => {
    expect([0, 50, 51, 59, 60, 61, 1000].map(defaultMaxDeletions)).toEqual([5, 5, 6, 6, 6, 7, 100]);
  });
  it('held and blocked deletes and replaces count; releases, forgets, updates, creates and conflicts do not', () => {
    const changes = [
      ch('Volume/v0', 'delete', { held: 'would destroy' }),
      ch('Volume/v1', 'replace', { held: 'would destroy' }),
      ch('Volume/v2', 'delete'),
      ch('Volume/v3', 'delete', { steps: [{ op: 'record.forget' }] }),
      ch('Volume/v4', 'delete', { steps: [{ op: 'record.forget' }], release: { policy: 'Retain', kept: 'file' } }),
      ch('Volume/v5', 'update'),
      ch('Volume/v6', 'create'),
      ch('Volume/v7', 'conflict'),
      ch('Volume/v8', 'delete', { steps: [{ op: 'record.forget' }, { op: 'volume.delete', pool: 'p', volName: 'v8' }] }),
    ];
    expect(brakeDeletions(obs(0, 9), changes, undefined)).toEqual({ deletions: ['Volume/v0', 'Volume/v1', 'Volume/v2', 'Volume/v8'], max: 5, source: 'default', owned: 9, braked: false });
  });
  it('the limit: equal passes, one more is braked; a flag sets it; all disables it', () => {
    const five = Array.from({ length: 5 }, (_, i) => ch(`Volume/v${i}`, 'delete'));
    const six = [...five, ch('Volume/v5', 'replace')];
    expect(brakeDeletions(obs(0, 6), five, undefined)).toEqual({ deletions: five.map((c) => c.key), max: 5, source: 'default', owned: 6, braked: false });
    expect(brakeDeletions(obs(0, 6), six, undefined)).toEqual({ deletions: six.map((c) => c.key), max: 5, source: 'default', owned: 6, braked: true });
    expect(brakeDeletions(obs(0, 6), six, 6)).toEqual({ deletions: six.map((c) => c.key), max: 6, source: 'flag', owned: 6, braked: false });
    expect(brakeDeletions(obs(0, 6), six, 2)).toEqual({ deletions: six.map((c) => c.key), max: 2, source: 'flag', owned: 6, braked: true });
    expect(brakeDeletions(obs(0, 6), six, 'all')).toEqual({ deletions: six.map((c) => c.key), max: null, source: 'all', owned: 6, braked: false });
  });
  it('every owned VM deleted (two or more) is refused by default, even within the limit; a flag lifts it', () => {
    const both = [ch('VirtualMachine/vm0', 'delete', { held: 'x' }), ch('VirtualMachine/vm1', 'delete')];
    expect(brakeDeletions(obs(2, 3), both, undefined)).toEqual({
      deletions: ['VirtualMachine/vm0', 'VirtualMachine/vm1'], max: 5, source: 'default', owned: 5, braked: true, wipe: { kind: 'VirtualMachine', owned: 2 },
    });
    expect(brakeDeletions(obs(2, 3), both, 2)).toEqual({ deletions: ['VirtualMachine/vm0', 'VirtualMachine/vm1'], max: 2, source: 'flag', owned: 5, braked: false });
    // One of two, the only one, replaces (recreated), or volumes only: no wipe.
    expect(brakeDeletions(obs(2, 0), [both[0]!], undefined).braked).toBe(false);
    expect(brakeDeletions(obs(2, 1), [both[0]!, ch('Volume/v0', 'delete')], undefined)).toEqual({
      deletions: ['VirtualMachine/vm0', 'Volume/v0'], max: 5, source: 'default', owned: 3, braked: false,
    });
    expect(brakeDeletions(obs(1, 0), [ch('VirtualMachine/vm0', 'delete')], undefined)).toEqual({ deletions: ['VirtualMachine/vm0'], max: 5, source: 'default', owned: 1, braked: false });
    expect(brakeDeletions(obs(2, 0), [ch('VirtualMachine/vm0', 'replace'), ch('VirtualMachine/vm1', 'replace')], undefined).braked).toBe(false);
    expect(brakeDeletions(obs(0, 2), [ch('Volume/v0', 'delete'), ch('Volume/v1', 'delete')], undefined).braked).toBe(false);
    // Three VMs, all deleted; already braked by the count: the count is the reason given.
    const many = [...Array.from({ length: 3 }, (_, i) => ch(`VirtualMachine/vm${i}`, 'delete')), ...Array.from({ length: 3 }, (_, i) => ch(`Volume/v${i}`, 'delete'))];
    expect(brakeDeletions(obs(3, 3), many, undefined)).toEqual({ deletions: many.map((c) => c.key), max: 5, source: 'default', owned: 6, braked: true });
    const three = many.slice(0, 3);
    expect(brakeDeletions(obs(3, 3), three, undefined).wipe).toEqual({ kind: 'VirtualMachine', owned: 3 });
  });
});

describe('the references, exactly', () => {
  it('knownReferences: declared and recorded configs (a disk, a kernel path, an initrd volume, a backing volume), then the definitions read', () => {
    const d = desiredOf([
      vmWith('a', { disks: [disk('d1')], boot: { kernel: '/boot/k' } }),
      vmWith('b', { boot: { kernel: '/boot/k2', initrdVolume: 'i' } }),
      vol('c', { backingVolume: 'base' }),
      vol('plain'),
    ]);
    const o = observedOf({
      volumes: [volCfg('r', { backingPath: path('base') })],
      vms: { old: { vcpus: 1, memoryKiB: 1, disks: [], nics: [] } },
      definitions: { 'VirtualMachine/x': domain('x', [path('d9'), ''], { cdroms: [{ path: '', target: 'hda', bus: 'ide' }] }), 'Network/n': { name: 'n' } },
    });
    expect(knownReferences(d, o)).toEqual([
      { path: path('d1'), volume: 'd1', by: 'VirtualMachine/a', role: 'disk', source: 'declared config', managed: true },
      { path: '/boot/k', volume: undefined, by: 'VirtualMachine/a', role: 'kernel', source: 'declared config', managed: true },
      { path: '/boot/k2', volume: undefined, by: 'VirtualMachine/b', role: 'kernel', source: 'declared config', managed: true },
      { path: undefined, volume: 'i', by: 'VirtualMachine/b', role: 'initrd', source: 'declared config', managed: true },
      { path: undefined, volume: 'base', by: 'Volume/c', role: 'backing', source: 'declared config', managed: true },
      { path: path('base'), volume: undefined, by: 'Volume/r', role: 'backing', source: 'recorded config', managed: true },
      { path: path('d9'), by: 'VirtualMachine/x', role: 'disk', source: 'persistent definition', managed: true },
      { path: path('base'), by: 'Volume/r', role: 'backing', source: 'persistent definition', managed: true },
    ]);
    expect(definitionReferences(observedOf({ volumes: [volCfg('q')] }))).toEqual([]);
  });
  it('hostReferences: exactly what the host shows beyond observe', async () => {
    const host = new FakeHost();
    await host.definePool({ name: POOL, path: DIR, autostart: true } as never);
    await host.startPool(POOL);
    await host.createVolume({ pool: POOL, name: 'b.qcow2', capacityBytes: 1 << 20, format: 'qcow2' });
    await host.createVolume({ pool: POOL, name: 'o.qcow2', capacityBytes: 1 << 20, format: 'qcow2', backing: { path: path('b'), format: 'qcow2' } });
    await host.defineDomain({ name: 'e', type: 'qemu', vcpus: 1, memoryKiB: 65536, disks: [{ path: path('z'), format: 'qcow2', bus: 'virtio', target: 'vda' }], nics: [] } as never);
    const o = observedOf({});
    o.volumes = new Map();
    o.snapshot = await host.snapshot();
    expect(await hostReferences(host, o)).toEqual([
      { path: path('b'), by: `volume ${POOL}/o.qcow2`, role: 'backing', source: 'persistent definition', managed: false },
      { path: path('z'), by: 'domain e', role: 'disk', source: 'persistent definition', managed: false },
    ]);
  });
  it('a change without a file is not matched by references without one', async () => {
    const o = observedOf({});
    const m = await volumeDataLoss([del(volCfg('x'), { previous: undefined })], { desired: desiredOf([vmWith('vm', { boot: { kernelVolume: 'other' } })]), observed: o });
    expect(m.size).toBe(0);
  });
});

describe('what a held change takes with it: the edges', () => {
  it('two reasons in one line; the pool of a held volume recorded without `previous`; a conflict and a build-up of the pool are not held', async () => {
    const d1 = volCfg('d1');
    const o = observedOf({ volumes: [d1], definitions: { 'VirtualMachine/vm': domain('vm', [path('d1')]) } });
    const changes: ResourceChange[] = [
      del(d1, { adopt: true, previous: undefined }),
      { key: 'StoragePool/p', kind: 'StoragePool', name: 'p', action: 'delete', reason: 'r', fields: [], notes: [], steps: [{ op: 'pool.delete' }], ownership: 'owned', drift: false, previous: { name: 'p' } },
      { key: 'VirtualMachine/c', kind: 'VirtualMachine', name: 'c', action: 'conflict', reason: 'taken', fields: [], notes: [], steps: [], ownership: 'foreign', drift: false, previous: { vcpus: 1, memoryKiB: 1, disks: [disk('d1')], nics: [] } },
    ];
    const held = await holdDataLoss(desiredOf([]), o, changes);
    expect(Object.fromEntries(held)).toEqual({
      'Volume/d1': `would destroy the contents of Volume/d1 (${path('d1')}): adopted: its contents were not made by virtform, attached to VirtualMachine/vm (persistent definition)`,
      'StoragePool/p': 'Volume/d1, which uses it, is held',
    });
    // The pool only ensured (no teardown) while a volume on it is held: it runs.
    const ensure = [del(d1, { adopt: true }), { ...changes[1]!, action: 'update' as const, steps: [{ op: 'pool.ensure' } as never] }];
    expect([...(await holdDataLoss(desiredOf([]), o, ensure)).keys()]).toEqual(['Volume/d1']);
  });
});
