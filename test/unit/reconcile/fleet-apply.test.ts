/**
 * A fleet's desired state applied by the engine on two (fake) hosts: a base image from a URL used
 * by clones on both hosts is downloaded once into the run's image cache and uploaded to each host;
 * every resource lands on its host; the rerun plans nothing. And binding the records of the
 * implicit host to a Host (`hosts.rekey`): the next fleet run plans nothing, nothing is recreated.
 */
import { createHash } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import { join } from 'node:path';
import { rmSync } from 'node:fs';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { FakeHost } from '../../support/fake-host.js';
import { tempDir, writeManifests } from '../../support/manifests.js';
import { formatManifestError, loadManifests, type DesiredState } from '../../../src/manifest/index.js';
import { openStateStore, type StateStore } from '../../../src/state/index.js';
import { reconcile } from '../../../src/reconcile/engine.js';
import { buildDesired } from '../../../src/reconcile/desired.js';
import { buildFleetDesired } from '../../../src/reconcile/fleet-desired.js';
import { ImageCache } from '../../../src/reconcile/images.js';
import { LOCAL_HOST } from '../../../src/model/kinds.js';

const P = 'vftest-fa';
const FAST_RETRY = { maxAttempts: 2, baseDelayMs: 1, maxDelayMs: 2 };
const IMAGE = Buffer.alloc(1024 * 1024, 7);
const SHA = createHash('sha256').update(IMAGE).digest('hex');

let work: string;
let store: StateStore;
let server: Server;
let gets = 0;
let url = '';

beforeEach(async () => {
  work = tempDir(`${P}-`);
  store = await openStateStore(join(work, 'state.db'));
  gets = 0;
  server = createServer((_req, res) => {
    gets += 1;
    setTimeout(() => res.end(IMAGE), 50);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  url = `http://127.0.0.1:${(server.address() as { port: number }).port}/base.img`;
});
afterEach(async () => {
  await store.close();
  server.closeAllConnections();
  server.close();
  rmSync(work, { recursive: true, force: true });
});

const doc = (kind: string, name: string, spec: string): string => `apiVersion: virtform.dev/v1\nkind: ${kind}\nmetadata: {name: ${name}}\nspec: ${spec}\n`;
const hostDoc = (name: string): string => doc('Host', name, `{uri: "test:///${name}"}`);
function resources(withHosts: boolean): string[] {
  return [
    doc('StoragePool', `${P}-pool`, `{path: /srv/pools/${P}}`),
    doc('Volume', `${P}-base`, `{pool: ${P}-pool, format: raw, source: {url: "${url}", sha256: "${SHA}"}}`),
    doc('Volume', `${P}-c1`, `{pool: ${P}-pool, backingVolume: ${P}-base, capacity: 8MiB}`),
    doc('Volume', `${P}-c2`, `{pool: ${P}-pool, backingVolume: ${P}-base, capacity: 8MiB}`),
    doc('VirtualMachine', `${P}-vm1`, `{vcpus: 1, memory: 64MiB, state: stopped, disks: [{volume: ${P}-c1}]${withHosts ? ', host: h1' : ''}}`),
    doc('VirtualMachine', `${P}-vm2`, `{vcpus: 1, memory: 64MiB, state: stopped, disks: [{volume: ${P}-c2}]${withHosts ? ', host: h2' : ''}}`),
  ];
}
async function load(docs: string[], sub: string): Promise<DesiredState> {
  const r = await loadManifests(writeManifests(join(work, sub), { 'all.yaml': docs.join('---\n') }));
  if (!r.ok) throw new Error(r.errors.map(formatManifestError).join('\n'));
  return r.desired;
}
const placeOf = (state: DesiredState) => (vm: string): string | undefined => state.vms.find((v) => v.metadata.name === vm)?.spec.host;

describe('a fleet applied', () => {
  it('a URL base used on two hosts: one download, uploaded to each; every resource on its host; rerun plans nothing', async () => {
    const state = await load([hostDoc('h1'), hostDoc('h2'), ...resources(true)], 'm');
    const h1 = new FakeHost();
    const h2 = new FakeHost();
    const hosts = new Map([['h1', h1], ['h2', h2]]);
    const images = new ImageCache(join(work, 'images'));
    const desired = buildFleetDesired(state, placeOf(state));
    const first = await reconcile({ hosts, store, desired, images, retry: FAST_RETRY, gracefulStop: false });
    expect(first.outcome).toBe('succeeded');
    expect(gets).toBe(1);
    for (const [h, vm, clone] of [[h1, `${P}-vm1`, `${P}-c1`], [h2, `${P}-vm2`, `${P}-c2`]] as const) {
      const vols = h.volumes.get(`${P}-pool`)!;
      expect([...vols.keys()].sort()).toEqual([`${P}-base.img`, `${clone}.qcow2`]);
      expect(h.contents.get(vols.get(`${P}-base.img`)!.path)!.equals(IMAGE)).toBe(true);
      expect([...h.domains.keys()]).toEqual([vm]);
    }
    expect((await store.resources.list()).map((r) => `${r.host}/${r.kind}/${r.name}`).sort()).toEqual([
      `h1/StoragePool/${P}-pool`, `h1/VirtualMachine/${P}-vm1`, `h1/Volume/${P}-base`, `h1/Volume/${P}-c1`,
      `h2/StoragePool/${P}-pool`, `h2/VirtualMachine/${P}-vm2`, `h2/Volume/${P}-base`, `h2/Volume/${P}-c2`,
    ]);
    const again = await reconcile({ hosts, store, desired: buildFleetDesired(state, placeOf(state)), images, retry: FAST_RETRY, gracefulStop: false });
    expect(again.plan.noop).toBe(true);
    expect(again.mutations).toBe(0);
    expect(gets).toBe(1);
  });

  it('from one host to a fleet: the implicit host\'s records bound to the Host, nothing recreated', async () => {
    // One host, as today: everything on the implicit host.
    const h1 = new FakeHost();
    const single = await load(resources(false).filter((d) => !d.includes(`${P}-vm2`) && !d.includes(`${P}-c2`)), 'one');
    const images = new ImageCache(join(work, 'images'));
    const before = await reconcile({ hosts: new Map([[LOCAL_HOST, h1]]), store, desired: buildDesired(single), images, retry: FAST_RETRY, gracefulStop: false });
    expect(before.outcome).toBe('succeeded');
    const uuids = (await store.resources.list()).map((r) => [r.kind, r.name, r.uuid]);
    await store.hosts.bind({ uri: 'qemu:///system', hostname: 'box1', uuid: 'u-1', driver: 'qemu' }, { record: true });
    // Host manifests appear; h1 is the same libvirt host (seen through another URI).
    const fleet = await load([hostDoc('h1'), ...resources(true).filter((d) => !d.includes(`${P}-vm2`) && !d.includes(`${P}-c2`))], 'fleet');
    const rk = await store.hosts.rekey({ uri: 'qemu+tcp://10.0.0.1/system', hostname: 'box1', uuid: 'u-1', driver: 'qemu' }, { to: 'h1' });
    expect(rk.status).toBe('rekeyed');
    const mutationsBefore = h1.mutationCount();
    const after = await reconcile({ hosts: new Map([['h1', h1]]), store, desired: buildFleetDesired(fleet, placeOf(fleet)), images, retry: FAST_RETRY, gracefulStop: false });
    expect(after.plan.changes.map((c) => `${c.action} ${c.key}`)).toEqual([]);
    expect(after.plan.noop).toBe(true);
    expect(h1.mutationCount() - mutationsBefore).toBe(0);
    expect((await store.resources.list()).map((r) => [r.kind, r.name, r.uuid])).toEqual(uuids);
    expect((await store.resources.list()).every((r) => r.host === 'h1')).toBe(true);
    expect(gets).toBe(1);
  });
});
