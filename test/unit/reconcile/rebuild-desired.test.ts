/**
 * rebuildDesired (src/reconcile/desired.ts; wstep, issue 22): the watch's incremental build of the
 * desired state equals buildDesired of the same state after every kind of edit (a VM, a network,
 * a snapshot, a volume and a pool — the kinds that answer lookups —, a file added, deleted and
 * renamed, a user-data file), and keeps the unchanged resources as the same objects.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { renameSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ManifestCache, type DesiredState } from '../../../src/manifest/index.js';
import { buildDesired, rebuildDesired, type Desired, type DesiredBuild } from '../../../src/reconcile/desired.js';
import { LOCAL_HOST } from '../../../src/model/kinds.js';
import { makeTempDir } from '../../support/temp-dirs.js';

let dir: string;

const head = (kind: string, name: string): string => `apiVersion: virtform.dev/v1\nkind: ${kind}\nmetadata: {name: ${name}}\n`;
const pool = (path = '/srv/pools/p'): string => `${head('StoragePool', 'p')}spec: {path: ${path}}\n`;
const vol = (i: number, capacity = '1MiB', format = 'qcow2'): string => `${head('Volume', `v${i}`)}spec: {pool: p, capacity: ${capacity}, format: ${format}}\n`;
const net = (cidr = '10.77.0.0/24'): string => `${head('Network', 'n')}spec: {mode: isolated, cidr: ${cidr}}\n`;
const vm = (i: number, memory = '64MiB', extra = ''): string => `${head('VirtualMachine', `m${i}`)}spec:
  vcpus: 1
  memory: ${memory}
  state: stopped
  disks: [{volume: v${i}}]
  nics: [{network: n}]
${extra}`;
const snap = (name: string, of: string): string => `${head('Snapshot', name)}spec: {vm: ${of}}\n`;

function write(name: string, text: string): void {
  const tmp = join(dir, `.${name}.tmp`);
  writeFileSync(tmp, text);
  renameSync(tmp, join(dir, name));
}

beforeEach(() => {
  dir = makeTempDir('vftest-rebuild-');
  write('pool.yaml', pool());
  write('net.yaml', net());
  write('ud.txt', '#cloud-config\nhostname: a\n');
  for (let i = 0; i < 4; i++) {
    write(`v${i}.yaml`, vol(i));
    write(`m${i}.yaml`, vm(i, '64MiB', i === 3 ? '  cloudInit: {pool: p, userDataFile: ud.txt}\n' : ''));
  }
  write('s0.yaml', snap('s0', 'm0'));
});

afterEach(() => rmSync(dir, { recursive: true, force: true }));

/** A watch's loads: each result built incrementally from the last, checked against a full build. */
class Loads {
  readonly cache = new ManifestCache();
  last: DesiredBuild | undefined;

  async next(): Promise<{ desired: Desired; prev: Desired | undefined }> {
    const r = await this.cache.load(dir);
    if (!r.ok) throw new Error(r.errors.map((e) => e.message).join('\n'));
    const state: DesiredState = r.desired;
    const desired = rebuildDesired(state, this.last);
    expect(desired).toEqual(buildDesired(state));
    const prev = this.last?.desired;
    this.last = { state, desired, host: LOCAL_HOST };
    return { desired, prev };
  }
}

const same = (a: Desired, b: Desired | undefined, key: string): boolean => a.byKey.get(key) === b?.byKey.get(key);

describe('rebuildDesired', () => {
  it('an edit of one VM builds that VM again and keeps every other resource', async () => {
    const loads = new Loads();
    await loads.next();
    write('m1.yaml', vm(1, '128MiB'));
    const { desired, prev } = await loads.next();
    expect(same(desired, prev, 'VirtualMachine/m1')).toBe(false);
    for (const k of desired.byKey.keys()) if (k !== 'VirtualMachine/m1') expect(same(desired, prev, k), k).toBe(true);
    // Nothing changed: everything kept.
    const again = await loads.next();
    for (const k of again.desired.byKey.keys()) expect(same(again.desired, again.prev, k), k).toBe(true);
  });

  it('a network or a snapshot edited: that resource alone is new', async () => {
    const loads = new Loads();
    await loads.next();
    write('net.yaml', net('10.78.0.0/24'));
    write('s0.yaml', snap('s0', 'm1'));
    const { desired, prev } = await loads.next();
    expect(same(desired, prev, 'Network/n')).toBe(false);
    expect(same(desired, prev, 'Snapshot/s0')).toBe(false);
    expect(same(desired, prev, 'VirtualMachine/m0')).toBe(true);
  });

  it('a volume or a pool edited (kinds that answer lookups: disk paths and formats): everything is built again, as a full build', async () => {
    const loads = new Loads();
    await loads.next();
    write('v2.yaml', vol(2, '1MiB', 'raw'));
    let r = await loads.next();
    expect(r.desired.byKey.get('VirtualMachine/m2')?.config).toMatchObject({ disks: [{ format: 'raw' }] });
    write('pool.yaml', pool('/srv/pools/q'));
    r = await loads.next();
    expect(r.desired.byKey.get('VirtualMachine/m0')?.config).toMatchObject({ disks: [{ path: '/srv/pools/q/v0.qcow2' }] });
    expect(same(r.desired, r.prev, 'VirtualMachine/m0')).toBe(false);
  });

  it('a file added, deleted and renamed; a user-data file edited alone', async () => {
    const loads = new Loads();
    await loads.next();
    write('m9.yaml', vm(9).replace('v9', 'v1').replace('disks: [{volume: v1}]', 'disks: []'));
    let r = await loads.next();
    expect(r.desired.byKey.has('VirtualMachine/m9')).toBe(true);
    unlinkSync(join(dir, 'm9.yaml'));
    r = await loads.next();
    expect(r.desired.byKey.has('VirtualMachine/m9')).toBe(false);
    // Renamed: the manifest's source differs, so its resource is built again (source is part of it).
    renameSync(join(dir, 'm1.yaml'), join(dir, 'renamed.yaml'));
    r = await loads.next();
    expect(r.desired.byKey.get('VirtualMachine/m1')?.source?.file).toBe(join(dir, 'renamed.yaml'));
    expect(same(r.desired, r.prev, 'VirtualMachine/m1')).toBe(false);
    // The user-data text is read into the manifest: the VM is built again with the new seed.
    write('ud.txt', '#cloud-config\nhostname: b\n');
    r = await loads.next();
    expect(same(r.desired, r.prev, 'VirtualMachine/m3')).toBe(false);
    expect(same(r.desired, r.prev, 'VirtualMachine/m2')).toBe(true);
  });

  it('without a previous build, or for another host: a full build', async () => {
    const loads = new Loads();
    const { desired } = await loads.next();
    const r = await loads.cache.load(dir);
    if (!r.ok) throw new Error('load failed');
    const other = rebuildDesired(r.desired, { ...loads.last!, host: 'elsewhere' });
    expect(other).toEqual(buildDesired(r.desired));
    expect(other.byKey.get('VirtualMachine/m0')).not.toBe(desired.byKey.get('VirtualMachine/m0'));
  });
});
