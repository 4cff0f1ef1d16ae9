/**
 * The watch's desired state between loads (src/watch/manifests.ts; wstep, issue 22): each load's
 * desired state, built incrementally from the last good one (rebuildDesired), equals a fresh load's
 * built from scratch, also after an invalid edit (the build it starts from stays the last good
 * one) and after clear() (the full read: nothing kept).
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { loadManifests } from '../../../src/manifest/index.js';
import { buildDesired, type Desired } from '../../../src/reconcile/desired.js';
import { ManifestState } from '../../../src/watch/manifests.js';
import { WatchMetrics } from '../../../src/watch/metrics.js';
import { makeTempDir } from '../../support/temp-dirs.js';

let dir: string;

const head = (kind: string, name: string): string => `apiVersion: virtform.dev/v1\nkind: ${kind}\nmetadata: {name: ${name}}\n`;
const vm = (i: number, memory = '64MiB'): string =>
  `${head('VirtualMachine', `m${i}`)}spec: {vcpus: 1, memory: ${memory}, state: stopped, disks: [{volume: v${i}}], nics: []}\n`;

function write(name: string, text: string): void {
  writeFileSync(join(dir, `.${name}.tmp`), text);
  renameSync(join(dir, `.${name}.tmp`), join(dir, name));
}

beforeEach(() => {
  dir = makeTempDir('vftest-mstate-');
  write('pool.yaml', `${head('StoragePool', 'p')}spec: {path: /srv/pools/p}\n`);
  for (let i = 0; i < 3; i++) {
    write(`v${i}.yaml`, `${head('Volume', `v${i}`)}spec: {pool: p, capacity: 1MiB, format: qcow2}\n`);
    write(`m${i}.yaml`, vm(i));
  }
});

afterEach(() => rmSync(dir, { recursive: true, force: true }));

async function fromScratch(): Promise<Desired> {
  const r = await loadManifests(dir);
  if (!r.ok) throw new Error(r.errors.map((e) => e.message).join('\n'));
  return buildDesired(r.desired);
}

async function load(s: ManifestState): Promise<Desired> {
  const r = await s.load();
  if (!r.ok) throw new Error(s.errors.join('\n'));
  expect(r.desired).toEqual(await fromScratch());
  return r.desired;
}

describe('ManifestState: the desired state of each load', () => {
  it('an edit, an invalid edit, its fix and a full read each give what a fresh load gives', async () => {
    const s = new ManifestState(dir, { metrics: new WatchMetrics({ defaultMetrics: false }) });
    const first = await load(s);
    write('m1.yaml', vm(1, '96MiB'));
    const edited = await load(s);
    expect(edited.byKey.get('VirtualMachine/m0')).toBe(first.byKey.get('VirtualMachine/m0'));
    expect(edited.byKey.get('VirtualMachine/m1')).not.toBe(first.byKey.get('VirtualMachine/m1'));
    // Invalid: nothing built, the last good state kept; the fix is built from that last good state.
    write('m2.yaml', vm(2, 'lots'));
    expect((await s.load()).ok).toBe(false);
    expect(s.lastGood).toBe(edited);
    write('m2.yaml', vm(2, '128MiB'));
    const fixed = await load(s);
    expect(fixed.byKey.get('VirtualMachine/m1')).toBe(edited.byKey.get('VirtualMachine/m1'));
    expect(fixed.byKey.get('VirtualMachine/m2')?.config).toMatchObject({ memoryKiB: 128 * 1024 });
    // The full read: every resource built again.
    s.clear();
    const full = await load(s);
    expect(full.byKey.get('VirtualMachine/m0')).not.toBe(fixed.byKey.get('VirtualMachine/m0'));
  });
});
