/**
 * The desired state of a fleet (issue 21): pools and networks on every selected host, volumes with
 * the VMs using them (backing volumes on every host where a clone is), VMs where placement says,
 * the Host's domainType; and what the scheduler is asked (placementRequests).
 */
import { createServer } from 'node:http';
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { formatManifestError, loadManifests, type DesiredState } from '../../../src/manifest/index.js';
import { buildDesired, type DesiredVm, type DesiredVolume } from '../../../src/reconcile/desired.js';
import { buildFleetDesired, placementRequests } from '../../../src/reconcile/fleet-desired.js';
import { ImageCache } from '../../../src/reconcile/images.js';
import { KINDS } from '../../../src/reconcile/kinds/index.js';
import { makeTempDir } from '../../support/temp-dirs.js';

const H = 'apiVersion: virtform.dev/v1\n';
const host = (name: string, labels: string, extra = ''): string => `${H}kind: Host\nmetadata: {name: ${name}, labels: {${labels}}}\nspec:\n  uri: qemu+tcp://${name}.example/system\n${extra}`;
const doc = (kind: string, name: string, spec: string, labels = ''): string => `${H}kind: ${kind}\nmetadata: {name: ${name}${labels ? `, labels: {${labels}}` : ''}}\nspec: ${spec}\n`;
const IMAGE = Buffer.from('QFI\xfb'.padEnd(4096, '\0'), 'binary');

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});
async function load(docs: string[]): Promise<DesiredState> {
  const dir = makeTempDir('vf-fleetd-');
  dirs.push(dir);
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'all.yaml'), docs.join('---\n'));
  const r = await loadManifests(dir);
  if (!r.ok) throw new Error(r.errors.map(formatManifestError).join('\n'));
  return r.desired;
}

const FLEET = [
  host('h1', 'zone: a', '  domainType: qemu\n'), host('h2', 'zone: b'), host('h3', 'zone: a, ssd: "yes"', '  domainType: auto\n'),
  doc('StoragePool', 'p', '{path: /srv/p}'),
  doc('StoragePool', 'fast', '{path: /srv/fast, hostSelector: {matchLabels: {ssd: "yes"}}}'),
  doc('Network', 'n', '{mode: isolated, cidr: 10.9.0.0/24, hosts: [h1, h2]}'),
  doc('Volume', 'base', `{pool: p, format: qcow2, source: {url: "http://img.example/base.qcow2", sha256: "${'a'.repeat(64)}"}, capacity: 1GiB}`),
  doc('Volume', 'c1', '{pool: p, backingVolume: base, capacity: 2GiB}'),
  doc('Volume', 'c2', '{pool: p, backingVolume: base, capacity: 2GiB}'),
  doc('Volume', 'data', '{pool: fast, capacity: 10GiB}'),
  doc('Volume', 'shared', '{pool: p, capacity: 1MiB, format: raw}'),
  doc('Volume', 'spare', '{pool: fast, capacity: 5GiB, host: h3}'),
  doc('VirtualMachine', 'web1', '{vcpus: 2, memory: 1GiB, disks: [{volume: c1}], nics: [{network: n}], boot: {kernelVolume: shared}}', 'app: web'),
  doc('VirtualMachine', 'web2', '{vcpus: 1, memory: 512MiB, domainType: kvm, disks: [{volume: c2}], boot: {kernelVolume: shared}, placement: {spreadBy: {hostLabel: zone, vmLabel: app}}}', 'app: web'),
  doc('VirtualMachine', 'db', '{vcpus: 4, memory: 4GiB, disks: [{volume: data}], host: h3, placement: {hostSelector: {matchLabels: {ssd: "yes"}}}}'),
];
const keys = (d: { resources: { key: string }[] }): string[] => d.resources.map((r) => r.key).sort();
/** FLEET without web2's share of the kernel volume: web1 and web2 may then be on two hosts. */
const APART = FLEET.map((d) => d.replace('disks: [{volume: c2}], boot: {kernelVolume: shared}', 'disks: [{volume: c2}]'));

describe('buildFleetDesired', () => {
  it('places every kind: pools and networks per scope, volumes with their VMs, bases on every host of a clone, VMs where placed', async () => {
    const state = await load(FLEET);
    const place: Record<string, string> = { web1: 'h1', web2: 'h1', db: 'h3' };
    const d = buildFleetDesired(state, (vm) => place[vm]);
    expect(keys(d)).toEqual([
      'h1/Network/n', 'h1/StoragePool/p', 'h1/VirtualMachine/web1', 'h1/VirtualMachine/web2',
      'h1/Volume/base', 'h1/Volume/c1', 'h1/Volume/c2', 'h1/Volume/shared',
      'h2/Network/n', 'h2/StoragePool/p',
      'h3/StoragePool/fast', 'h3/StoragePool/p', 'h3/VirtualMachine/db', 'h3/Volume/data', 'h3/Volume/spare',
    ].sort());
    expect(d.resources.every((r) => r.key.startsWith(`${r.host}/`))).toBe(true);
    // One manifest set: the state's digest whatever the number of hosts.
    expect(d.digest).toBe(state.digest);
    // Dependencies stay on the resource's host.
    expect(KINDS.VirtualMachine.dependencies(d.byKey.get('h1/VirtualMachine/web1')!)).toEqual(expect.arrayContaining(['h1/Volume/c1', 'h1/Network/n']));
  });

  it('a backing volume used on several hosts is on each (one image, the same config), an unplaced VM is left out', async () => {
    const state = await load(APART);
    const place: Record<string, string> = { web1: 'h1', web2: 'h2' };
    const d = buildFleetDesired(state, (vm) => place[vm]);
    const bases = d.resources.filter((r) => r.name === 'base') as DesiredVolume[];
    expect(bases.map((b) => b.host)).toEqual(['h1', 'h2']);
    expect(bases[0]!.specHash).toBe(bases[1]!.specHash);
    expect(bases.map((b) => b.image)).toEqual([bases[0]!.image, bases[0]!.image]);
    expect(d.byKey.has('h3/VirtualMachine/db')).toBe(false);
    expect(d.byKey.has('h3/Volume/data')).toBe(false);
    // ... and its volume with it; a volume on spec.host is there regardless.
    expect(d.byKey.has('h3/Volume/spare')).toBe(true);
  });

  it('VMs sharing a volume placed on two hosts: refused (two copies of a disk would diverge)', async () => {
    const state = await load(FLEET);
    expect(() => buildFleetDesired(state, (vm) => (vm === 'web1' ? 'h1' : 'h2'))).toThrow(/web1 and web2 share a volume but are placed on h1 and h2/);
    // One of them unplaced: the other takes the volume.
    expect(buildFleetDesired(state, (vm) => (vm === 'web1' ? 'h1' : undefined)).byKey.has('h1/Volume/shared')).toBe(true);
  });

  it('domainType: the VM\'s own field, then its Host\'s (auto: none, left to --domain-type at define)', async () => {
    const state = await load(FLEET);
    const onH1 = buildFleetDesired(state, () => 'h1');
    expect((onH1.byKey.get('h1/VirtualMachine/web1') as DesiredVm).config.domainType).toBe('qemu');
    expect((onH1.byKey.get('h1/VirtualMachine/web2') as DesiredVm).config.domainType).toBe('kvm');
    const onH3 = buildFleetDesired(state, (vm) => (vm === 'db' ? 'h3' : 'h2'));
    expect((onH3.byKey.get('h3/VirtualMachine/db') as DesiredVm).config.domainType).toBeUndefined();
    expect((onH3.byKey.get('h2/VirtualMachine/web1') as DesiredVm).config.domainType).toBeUndefined();
  });

  it('without Host manifests: exactly buildDesired on the implicit host', async () => {
    const state = await load([
      doc('StoragePool', 'p', '{path: /srv/p}'), doc('Network', 'n', '{mode: isolated, cidr: 10.9.0.0/24}'),
      doc('Volume', 'base', '{pool: p, capacity: 1GiB}'), doc('Volume', 'c1', '{pool: p, backingVolume: base, capacity: 2GiB}'),
      doc('VirtualMachine', 'web1', '{vcpus: 2, memory: 1GiB, disks: [{volume: c1}], nics: [{network: n}]}', 'app: web'),
    ]);
    expect(state.hosts).toEqual([]);
    const d = buildFleetDesired(state, () => undefined);
    const plain = buildDesired(state);
    expect(d.resources).toEqual(plain.resources);
    expect(d.digest).toBe(plain.digest);
    expect(keys(d)).toContain('VirtualMachine/web1');
  });
});

describe('placementRequests', () => {
  it('memory in bytes, vCPUs, disk per pool from the VM\'s volumes, labels, pin, placement with defaults, groups by shared volume, hosts where its pools and networks are', async () => {
    const state = await load(FLEET);
    const reqs = placementRequests(state);
    expect(reqs).toEqual([
      {
        name: 'web1', labels: { app: 'web' }, memory: 1024 ** 3, vcpus: 2,
        disk: { p: 2 * 1024 ** 3 + 1024 ** 2 }, group: 'web1', eligible: ['h1', 'h2'], // its network is on h1 and h2 only
      },
      {
        // the shared kernel volume (1 MiB) counts once in the group: on web1, the first user by name
        name: 'web2', labels: { app: 'web' }, memory: 512 * 1024 ** 2, vcpus: 1, disk: { p: 2 * 1024 ** 3 }, group: 'web1',
        placement: { spreadBy: { hostLabel: 'zone', vmLabel: 'app', maxSkew: 1, whenUnsatisfiable: 'DoNotSchedule' } },
      },
      {
        name: 'db', labels: {}, memory: 4 * 1024 ** 3, vcpus: 4, disk: { fast: 10 * 1024 ** 3 }, pin: 'h3', eligible: ['h3'],
        placement: { hostSelector: { matchLabels: { ssd: 'yes' } } },
      },
    ]);
  });
});

describe('a URL image on several hosts', () => {
  it('is downloaded once into the image cache, whatever the number of hosts uploading it', async () => {
    let gets = 0;
    const server = createServer((_req, res) => {
      gets += 1;
      // Slow enough for the hosts' fetches to overlap.
      setTimeout(() => res.end(IMAGE), 100);
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    try {
      const port = (server.address() as { port: number }).port;
      const sha = createHash('sha256').update(IMAGE).digest('hex');
      const state = await load(APART.map((d) => d.replace(`http://img.example/base.qcow2", sha256: "${'a'.repeat(64)}`, `http://127.0.0.1:${port}/base.qcow2", sha256: "${sha}`)));
      const d = buildFleetDesired(state, (vm) => ({ web1: 'h1', web2: 'h2' } as Record<string, string>)[vm]);
      const bases = d.resources.filter((r) => r.name === 'base') as DesiredVolume[];
      expect(bases).toHaveLength(2);
      const cacheDir = makeTempDir('vf-fleetd-cache-');
      dirs.push(cacheDir);
      const cache = new ImageCache(cacheDir);
      // Each host's volume step asks the one cache of the run (ExecContext.images): concurrently, then again.
      const fetchFor = (v: DesiredVolume) => (v.image?.kind === 'url' ? cache.fetch(v.image.url, v.image.sha256) : Promise.reject(new Error('no url')));
      const first = await Promise.all(bases.map(fetchFor));
      const again = await fetchFor(bases[1]!);
      expect(gets).toBe(1);
      expect(first.filter((x) => x.downloaded)).toHaveLength(1);
      expect(new Set([...first, again].map((x) => x.path)).size).toBe(1);
      expect(again.downloaded).toBe(false);
    } finally {
      server.close();
    }
  });
});
