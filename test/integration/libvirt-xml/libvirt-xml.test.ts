/**
 * The XML layer against the real libvirtd (qemu:///system): every built document is defined with
 * virsh, dumped back and parsed. This proves libvirt accepts the XML and that the parsers read
 * libvirt's own output. virsh (child_process) is used because the RPC client is written
 * concurrently. All objects are named vftest-xml-* and removed in afterAll.
 */
import { execFile } from 'node:child_process';
import { rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  buildDhcpHostXml,
  buildDomainXml,
  buildNetworkXml,
  buildPoolXml,
  buildVolumeXml,
  chooseDomainType,
  parseCapabilities,
  parseDomainXml,
  parseNetworkXml,
  parsePoolXml,
  parseVolumeXml,
  type DomainDef,
  type NetworkDef,
  type OwnerMarker,
  type PoolDef,
  type VolumeDef,
} from '../../../src/libvirt/xml/index.js';
import { suiteNames } from '../../support/names.js';
import { makeTempDir } from '../../support/temp-dirs.js';

const N = suiteNames('xml');
const P = N.base;

const run = promisify(execFile);
const URI = 'qemu:///system';
const POOL = `${P}-pool`;
const POOL_DIR = `/var/lib/virtform-test/${POOL}`;
const POOL2 = `${P}-pool-meta`;
const NET = `${P}-net`;
const DOM = `${P}-dom`;
const HOSTILE = `a<b&"c'>`;
const marker = (kind: OwnerMarker['kind'], name: string): OwnerMarker => ({ kind, name, specHash: `sha256:${HOSTILE}é😀` });

let tmp: string;
let n = 0;

/** virsh with retries on connection errors (libvirtd may be restarted by another test suite). */
async function virsh(...args: string[]): Promise<string> {
  for (let attempt = 0; ; attempt++) {
    try {
      const { stdout } = await run('virsh', ['-q', '-c', URI, ...args], { maxBuffer: 16 * 1024 * 1024 });
      return stdout;
    } catch (e) {
      const msg = String((e as { stderr?: string }).stderr ?? e);
      if (attempt < 20 && /Failed to connect|unable to connect|End of file while reading data|Cannot recv data/i.test(msg)) {
        await new Promise((r) => setTimeout(r, 500));
        continue;
      }
      throw new Error(`virsh ${args.join(' ')} failed: ${msg}`);
    }
  }
}
const quiet = (...args: string[]) => virsh(...args).catch(() => '');

function file(xml: string): string {
  const p = join(tmp, `doc-${n++}.xml`);
  writeFileSync(p, xml);
  return p;
}

beforeAll(() => {
  tmp = makeTempDir(`${P}-`);
});

afterAll(async () => {
  await quiet('destroy', DOM);
  await quiet('undefine', DOM);
  await quiet('net-destroy', NET);
  await quiet('net-undefine', NET);
  for (const pool of [POOL, POOL2]) {
    const vols = await quiet('vol-list', pool, '--name');
    for (const v of vols.split('\n').map((s) => s.trim()).filter(Boolean)) await quiet('vol-delete', '--pool', pool, v);
    await quiet('pool-destroy', pool);
    await quiet('pool-delete', pool);
    await quiet('pool-undefine', pool);
  }
  rmSync(tmp, { recursive: true, force: true });
});

const poolDef: PoolDef = { name: POOL, path: POOL_DIR, marker: marker('StoragePool', POOL) };
const baseVol: VolumeDef = { pool: POOL, name: `${P}-${HOSTILE}é😀.qcow2`, capacityBytes: 64 * 1024 ** 2, format: 'qcow2' };
const rawVol: VolumeDef = { pool: POOL, name: `${P}-data.raw`, capacityBytes: 8 * 1024 ** 2, format: 'raw' };
const bootVol: VolumeDef = { pool: POOL, name: `${P}-boot.qcow2`, capacityBytes: 32 * 1024 ** 2, format: 'qcow2' };
const cloneVol: VolumeDef = {
  pool: POOL,
  name: `${P}-clone.qcow2`,
  capacityBytes: 128 * 1024 ** 2,
  format: 'qcow2',
  backing: { path: `${POOL_DIR}/${baseVol.name}`, format: 'qcow2' },
};
const netDef: NetworkDef = {
  name: NET,
  mode: 'isolated',
  ipv4: { address: '10.213.77.1', prefix: 24 },
  dhcp: {
    start: '10.213.77.100',
    end: '10.213.77.199',
    hosts: [
      { mac: '52:54:00:7f:00:01', ip: '10.213.77.11', name: 'web' },
      { mac: '52:54:00:7f:00:02', ip: '10.213.77.12' },
    ],
  },
  marker: marker('Network', `${NET} ${HOSTILE}`),
};

describe.sequential('libvirt 9 accepts built XML and parsers read its dumpxml', () => {
  it('dir pool: pool-define/build/start, pool-dumpxml parses back', async () => {
    await virsh('pool-define', file(buildPoolXml(poolDef)));
    await virsh('pool-build', POOL);
    await virsh('pool-start', POOL);
    const p = parsePoolXml(await virsh('pool-dumpxml', POOL));
    expect(p.name).toBe(POOL);
    expect(p.type).toBe('dir');
    expect(p.path).toBe(POOL_DIR);
    expect(p.uuid).toMatch(/^[0-9a-f-]{36}$/);
    expect(p.marker).toBeUndefined();
  });

  it('finding: libvirt 9.0 drops a <metadata> element from pool XML (no place for a marker)', async () => {
    const withMeta = buildPoolXml({ name: POOL2, path: `/var/lib/virtform-test/${POOL2}`, marker: poolDef.marker }).replace(
      '</pool>',
      `<metadata><vf:owner xmlns:vf="https://virtform.dev/xmlns/owner/v1" kind="StoragePool" name="x" spec-hash="h"/></metadata></pool>`,
    );
    await virsh('pool-define', file(withMeta));
    const dumped = await virsh('pool-dumpxml', POOL2);
    expect(dumped).not.toContain('virtform.dev');
    expect(parsePoolXml(dumped).marker).toBeUndefined();
    await virsh('pool-undefine', POOL2);
  });

  it('volumes: qcow2 with a hostile name, sparse raw, copy-on-write clone', async () => {
    for (const v of [baseVol, rawVol, bootVol, cloneVol]) await virsh('vol-create', POOL, file(buildVolumeXml(v)));
    for (const v of [baseVol, rawVol, bootVol, cloneVol]) {
      const path = `${POOL_DIR}/${v.name}`;
      const d = parseVolumeXml(await virsh('vol-dumpxml', '--pool', POOL, v.name), POOL);
      expect(d).toEqual({
        pool: POOL,
        name: v.name,
        key: path,
        path,
        capacityBytes: v.capacityBytes,
        format: v.format,
        ...(v.backing ? { backingPath: v.backing.path } : {}),
      });
    }
    // allocation 0 → the raw volume is sparse
    const raw = await virsh('vol-dumpxml', '--pool', POOL, rawVol.name);
    const alloc = Number(/<allocation unit='bytes'>(\d+)</.exec(raw)?.[1]);
    expect(alloc).toBeLessThan(rawVol.capacityBytes);
  });

  it('isolated network: net-define, net-dumpxml keeps the <metadata> marker; dhcp host update', async () => {
    await virsh('net-define', file(buildNetworkXml(netDef)));
    const p = parseNetworkXml(await virsh('net-dumpxml', NET));
    expect(p.uuid).toMatch(/^[0-9a-f-]{36}$/);
    expect(p).toEqual({ ...netDef, uuid: p.uuid });
    expect(p.marker).toEqual(netDef.marker);

    await virsh('net-start', NET);
    const host = { mac: '52:54:00:7f:00:03', ip: '10.213.77.13', name: 'db' };
    await virsh('net-update', NET, 'add', 'ip-dhcp-host', buildDhcpHostXml(host), '--live', '--config');
    for (const flag of [[], ['--inactive']]) {
      const after = parseNetworkXml(await virsh('net-dumpxml', NET, ...flag));
      expect(after.dhcp?.hosts).toEqual([...netDef.dhcp!.hosts, host]);
      expect(after.marker).toEqual(netDef.marker); // survives start and update
    }
    await virsh('net-update', NET, 'delete', 'ip-dhcp-host', buildDhcpHostXml(host), '--live', '--config');
    expect(parseNetworkXml(await virsh('net-dumpxml', NET)).dhcp?.hosts).toEqual(netDef.dhcp!.hosts);
  });

  it('domain: define, dumpxml parses back; boots briefly with the capabilities-chosen type', async () => {
    const type = chooseDomainType(parseCapabilities(await virsh('capabilities')));
    const def: DomainDef = {
      name: DOM,
      uuid: '5e0c1a2b-3c4d-4e5f-8a9b-0c1d2e3f4a5b',
      type,
      vcpus: 1,
      memoryKiB: 65536,
      description: `${HOSTILE}</description><devices><disk/></devices>\n\tline 2 é😀 日本`,
      disks: [
        { path: `${POOL_DIR}/${bootVol.name}`, format: 'qcow2', bus: 'virtio', target: 'vda', bootOrder: 1 },
        { path: `${POOL_DIR}/${rawVol.name}`, format: 'raw', bus: 'sata', target: 'sda' },
      ],
      nics: [
        { network: NET, mac: '52:54:00:7f:00:01', model: 'virtio' },
        { network: NET, model: 'e1000' },
      ],
      marker: marker('VirtualMachine', `${DOM} ${HOSTILE}`),
    };
    await virsh('define', '--validate', file(buildDomainXml(def)));
    const p = parseDomainXml(await virsh('dumpxml', DOM));
    expect(p.name).toBe(DOM);
    expect(p.uuid).toBe(def.uuid);
    expect(p.type).toBe(type);
    expect(p.vcpus).toBe(1);
    expect(p.memoryKiB).toBe(65536);
    expect(p.description).toBe(def.description);
    expect(p.marker).toEqual(def.marker);
    expect(p.disks).toEqual([
      { path: def.disks[0]!.path, target: 'vda', bus: 'virtio', bootOrder: 1, format: 'qcow2' },
      { path: def.disks[1]!.path, target: 'sda', bus: 'sata', format: 'raw' },
    ]);
    expect(p.nics).toHaveLength(2);
    expect(p.nics[0]).toEqual({ network: NET, mac: '52:54:00:7f:00:01', model: 'virtio', type: 'network' });
    expect(p.nics[1]).toMatchObject({ network: NET, model: 'e1000', type: 'network' });
    expect(p.nics[1]!.mac).toMatch(/^52:54:00(:[0-9a-f]{2}){3}$/); // generated by libvirt

    await virsh('start', DOM);
    expect((await virsh('domstate', DOM)).trim()).toBe('running');
    // the live XML parses too, and still carries the marker
    const live = parseDomainXml(await virsh('dumpxml', DOM));
    expect(live.marker).toEqual(def.marker);
    expect(live.disks.map((d) => d.path)).toEqual(def.disks.map((d) => d.path));
    await virsh('destroy', DOM);
    await virsh('undefine', DOM);
  });
});
