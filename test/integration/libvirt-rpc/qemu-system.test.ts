/**
 * The real path: qemu:///system through libvirtd's unix socket.
 *
 * Creates a dir pool, a qcow2 volume, a copy-on-write clone of it (qcow2 with <backingStore>), a
 * full copy (create-xml-from), resizes, an isolated network with a DHCP host update, and a tiny
 * KVM domain (64 MiB, 1 vCPU, the blank qcow2 disk, no NIC) that is started and destroyed while
 * lifecycle events are observed. Every result is compared with what virsh reports on its own
 * connection, then everything is removed. All names start with `vftest-rpc`.
 */
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  type Domain,
  type DomainEventSubscription,
  LibvirtClient,
  LibvirtError,
  type Network,
  type StoragePool,
  type StorageVol,
  VIR_CONNECT_LIST_DOMAINS_ACTIVE,
  VIR_CONNECT_LIST_DOMAINS_INACTIVE,
  VIR_CONNECT_LIST_NETWORKS_ACTIVE,
  VIR_CONNECT_LIST_STORAGE_POOLS_ACTIVE,
  VIR_DOMAIN_RUNNING,
  VIR_DOMAIN_SHUTOFF,
  VIR_ERR_NO_DOMAIN,
  VIR_ERR_NO_NETWORK,
  VIR_ERR_NO_STORAGE_POOL,
  VIR_ERR_NO_STORAGE_VOL,
  VIR_ERR_OPERATION_INVALID,
  VIR_NETWORK_SECTION_IP_DHCP_HOST,
  VIR_NETWORK_UPDATE_AFFECT_CONFIG,
  VIR_NETWORK_UPDATE_AFFECT_LIVE,
  VIR_NETWORK_UPDATE_COMMAND_ADD_LAST,
  VIR_NETWORK_UPDATE_COMMAND_DELETE,
  VIR_STORAGE_POOL_RUNNING,
} from '../../../src/libvirt/index.js';
import { keyValues, lines, virshAt, virshDomains } from '../../support/virsh.js';
import { suiteNames } from '../../support/names.js';

const N = suiteNames('rpc');
const P = N.base;

const URI = 'qemu:///system';
const POOL = `${P}-pool`;
const POOL_DIR = `/var/lib/virtform-test/${P}-pool`;
const NET = `${P}-net`;
const DOM = `${P}-dom`;
const MiB = 2 ** 20;

let c: LibvirtClient;
let events: DomainEventSubscription;
let pool: StoragePool;
let base: StorageVol;
let basePath: string;

beforeAll(async () => {
  c = await LibvirtClient.connect(URI);
  events = await c.domainEventLifecycleRegister();
});

afterAll(async () => {
  // Best-effort removal of anything a failed test left behind.
  if (!c) return;
  const quiet = (p: Promise<unknown>) => p.catch(() => undefined);
  try {
    const d = await c.domainLookupByName(DOM);
    await quiet(c.domainDestroy(d));
    await quiet(c.domainUndefine(d));
  } catch {
    /* gone */
  }
  try {
    const n = await c.networkLookupByName(NET);
    await quiet(c.networkDestroy(n));
    await quiet(c.networkUndefine(n));
  } catch {
    /* gone */
  }
  try {
    const p = await c.storagePoolLookupByName(POOL);
    await quiet(c.storagePoolCreate(p));
    for (const v of await c.storagePoolListAllVolumes(p).catch(() => [])) await quiet(c.storageVolDelete(v));
    await quiet(c.storagePoolDestroy(p));
    await quiet(c.storagePoolDelete(p));
    await quiet(c.storagePoolUndefine(p));
  } catch {
    /* gone */
  }
  await events?.close();
  await c.close();
});

async function libvirtCode(p: Promise<unknown>): Promise<number> {
  const e = await p.then(
    () => undefined,
    (err: unknown) => err,
  );
  expect(e).toBeInstanceOf(LibvirtError);
  return (e as LibvirtError).code;
}

const volXml = (name: string, capMiB: number, backing?: string) => `<volume>
  <name>${name}</name>
  <capacity unit='MiB'>${capMiB}</capacity>
  <target><format type='qcow2'/></target>${
    backing ? `\n  <backingStore><path>${backing}</path><format type='qcow2'/></backingStore>` : ''
  }
</volume>`;

describe.sequential('qemu:///system end to end', () => {
  it('dir pool: define, build, start, autostart, info agree with virsh', async () => {
    pool = await c.storagePoolDefineXml(`<pool type='dir'>
  <name>${POOL}</name>
  <target><path>${POOL_DIR}</path></target>
</pool>`);
    expect(pool.name).toBe(POOL);
    expect(await c.storagePoolIsActive(pool)).toBe(false);
    await c.storagePoolBuild(pool);
    expect(existsSync(POOL_DIR)).toBe(true);
    await c.storagePoolCreate(pool);
    await c.storagePoolSetAutostart(pool, false);
    expect(await c.storagePoolGetAutostart(pool)).toBe(false);
    await c.storagePoolRefresh(pool);

    const info = await c.storagePoolGetInfo(pool);
    expect(info.state).toBe(VIR_STORAGE_POOL_RUNNING);
    expect(info.capacity).toBeGreaterThan(0);
    const vi = keyValues(virshAt(URI, 'pool-info', POOL));
    expect(vi.State).toBe('running');
    expect(vi.UUID).toBe(pool.uuid);
    expect(vi.Autostart).toBe('no');
    const active = await c.connectListAllStoragePools(VIR_CONNECT_LIST_STORAGE_POOLS_ACTIVE);
    expect(active.map((p) => p.name)).toContain(POOL);
    expect(lines(virshAt(URI, 'pool-list', '--name'))).toContain(POOL);
    expect(await c.storagePoolGetXmlDesc(pool)).toBe(virshAt(URI, 'pool-dumpxml', POOL));
  });

  it('qcow2 volume: create, info, resize; agrees with virsh and qemu-img', async () => {
    base = await c.storageVolCreateXml(pool, volXml(`${P}-base.qcow2`, 64));
    basePath = `${POOL_DIR}/${P}-base.qcow2`;
    expect(base).toEqual({ pool: POOL, name: `${P}-base.qcow2`, key: basePath });
    expect(await c.storageVolGetPath(base)).toBe(basePath);
    expect(await c.storageVolLookupByPath(basePath)).toEqual(base);
    expect(await c.storageVolLookupByName(pool, base.name)).toEqual(base);
    const info = await c.storageVolGetInfo(base);
    expect(info).toMatchObject({ type: 0, capacity: 64 * MiB });
    expect(keyValues(virshAt(URI, 'vol-info', '--bytes', basePath)).Capacity).toBe(`${64 * MiB} bytes`);
    expect(await c.storageVolGetXmlDesc(base)).toBe(virshAt(URI, 'vol-dumpxml', basePath));

    await c.storageVolResize(base, 128 * MiB);
    expect((await c.storageVolGetInfo(base)).capacity).toBe(128 * MiB);
    expect(keyValues(virshAt(URI, 'vol-info', '--bytes', basePath)).Capacity).toBe(`${128 * MiB} bytes`);
    const img = JSON.parse(execFileSync('qemu-img', ['info', '-U', '--output=json', basePath], { encoding: 'utf8' })) as {
      format: string;
      'virtual-size': number;
    };
    expect(img).toMatchObject({ format: 'qcow2', 'virtual-size': 128 * MiB });
  });

  it('copy-on-write clone (qcow2 with <backingStore>) and a full copy (create-xml-from)', async () => {
    const clone = await c.storageVolCreateXml(pool, volXml(`${P}-clone.qcow2`, 128, basePath));
    const cloneXml = await c.storageVolGetXmlDesc(clone);
    expect(cloneXml).toContain('<backingStore>');
    expect(cloneXml).toContain(`<path>${basePath}</path>`);
    const img = JSON.parse(execFileSync('qemu-img', ['info', '-U', '--output=json', clone.key], { encoding: 'utf8' })) as {
      'backing-filename'?: string;
    };
    expect(img['backing-filename']).toBe(basePath);

    const copy = await c.storageVolCreateXmlFrom(pool, volXml(`${P}-copy.qcow2`, 128), base);
    expect(copy.key).toBe(`${POOL_DIR}/${P}-copy.qcow2`);
    expect((await c.storageVolGetInfo(copy)).capacity).toBe(128 * MiB);

    const ours = (await c.storagePoolListAllVolumes(pool)).map((v) => v.name).sort();
    expect(ours).toEqual([`${P}-base.qcow2`, `${P}-clone.qcow2`, `${P}-copy.qcow2`]);
    expect(lines(virshAt(URI, 'vol-list', POOL)).map((l) => l.split(/\s+/)[0]).sort()).toEqual(ours);

    await c.storageVolDelete(copy);
    await c.storageVolDelete(clone);
    expect(await libvirtCode(c.storageVolLookupByName(pool, `${P}-clone.qcow2`))).toBe(VIR_ERR_NO_STORAGE_VOL);
  });

  it('isolated network: define, start, DHCP host update; agrees with virsh', async () => {
    const xml = `<network>
  <name>${NET}</name>
  <bridge name='vftrpc0'/>
  <ip address='192.168.213.1' netmask='255.255.255.0'>
    <dhcp><range start='192.168.213.10' end='192.168.213.50'/></dhcp>
  </ip>
</network>`;
    let net: Network = await c.networkDefineXml(xml);
    expect(net.name).toBe(NET);
    expect(await c.networkIsPersistent(net)).toBe(true);
    await c.networkCreate(net);
    net = await c.networkLookupByUuid(net.uuid);
    expect(await c.networkIsActive(net)).toBe(true);
    expect((await c.connectListAllNetworks(VIR_CONNECT_LIST_NETWORKS_ACTIVE)).map((n) => n.name)).toContain(NET);
    const row = lines(virshAt(URI, 'net-list', '--all')).find((l) => l.startsWith(`${NET} `))!.split(/\s+/);
    expect(row.slice(1)).toEqual(['active', 'no', 'yes']);
    expect(await c.networkGetXmlDesc(net)).not.toContain('<forward');

    const host = `<host mac='52:54:00:aa:bb:01' name='${P}-h1' ip='192.168.213.20'/>`;
    const flags = VIR_NETWORK_UPDATE_AFFECT_LIVE | VIR_NETWORK_UPDATE_AFFECT_CONFIG;
    await c.networkUpdate(net, VIR_NETWORK_UPDATE_COMMAND_ADD_LAST, VIR_NETWORK_SECTION_IP_DHCP_HOST, -1, host, flags);
    expect(await c.networkGetXmlDesc(net)).toContain(host);
    expect(virshAt(URI, 'net-dumpxml', NET)).toContain(host);
    expect(virshAt(URI, 'net-dumpxml', '--inactive', NET)).toContain(host);
    expect(await c.networkGetXmlDesc(net)).toBe(virshAt(URI, 'net-dumpxml', NET));
    await c.networkUpdate(net, VIR_NETWORK_UPDATE_COMMAND_DELETE, VIR_NETWORK_SECTION_IP_DHCP_HOST, -1, host, flags);
    expect(virshAt(URI, 'net-dumpxml', NET)).not.toContain(`${P}-h1`);

    await c.networkSetAutostart(net, true);
    expect(await c.networkGetAutostart(net)).toBe(true);
    await c.networkSetAutostart(net, false);
    await c.networkDestroy(net);
    expect(await c.networkIsActive(net)).toBe(false);
    await c.networkUndefine(net);
    expect(await libvirtCode(c.networkLookupByName(NET))).toBe(VIR_ERR_NO_NETWORK);
    expect(lines(virshAt(URI, 'net-list', '--all', '--name'))).not.toContain(NET);
  });

  it('tiny KVM domain: define, start (event), running per get-state / list-all / virsh, destroy (event), undefine', async () => {
    const caps = await c.connectGetCapabilities();
    const type = caps.includes("<domain type='kvm'") ? 'kvm' : 'qemu';
    let dom: Domain = await c.domainDefineXml(`<domain type='${type}'>
  <name>${DOM}</name>
  <memory unit='MiB'>64</memory>
  <vcpu>1</vcpu>
  <os><type arch='x86_64'>hvm</type></os>
  <devices>
    <disk type='file' device='disk'>
      <driver name='qemu' type='qcow2'/>
      <source file='${basePath}'/>
      <target dev='vda' bus='virtio'/>
    </disk>
  </devices>
</domain>`);
    expect(dom).toMatchObject({ name: DOM, id: -1 });
    await events.waitFor((e) => e.domain.name === DOM && e.eventName === 'defined', 10_000);
    expect((await c.domainGetState(dom)).state).toBe(VIR_DOMAIN_SHUTOFF);
    expect(virshAt(URI, 'domstate', DOM).trim()).toBe('shut off');
    expect(virshDomains(URI, '--all').find((d) => d.name === DOM)).toEqual({ id: '-', name: DOM, state: 'shut off' });
    expect((await c.connectListAllDomains(VIR_CONNECT_LIST_DOMAINS_INACTIVE)).find((d) => d.name === DOM)?.id).toBe(-1);
    await c.domainSetAutostart(dom, false);
    expect(await c.domainGetAutostart(dom)).toBe(false);

    await c.domainCreate(dom);
    const started = await events.waitFor((e) => e.domain.name === DOM && e.eventName === 'started', 60_000);
    expect(started.detailName).toBe('booted');
    expect(started.domain.uuid).toBe(dom.uuid);

    const st = await c.domainGetState(dom);
    expect(st.state).toBe(VIR_DOMAIN_RUNNING);
    const listed = (await c.connectListAllDomains(VIR_CONNECT_LIST_DOMAINS_ACTIVE)).find((d) => d.name === DOM)!;
    expect(listed.id).not.toBe(-1);
    expect(listed.id).toBe(started.domain.id);
    dom = listed;
    const theirs = virshDomains(URI).find((d) => d.name === DOM)!;
    expect(theirs).toEqual({ id: String(listed.id), name: DOM, state: 'running' });
    expect(virshAt(URI, 'domstate', DOM).trim()).toBe(st.stateName);
    const info = await c.domainGetInfo(dom);
    expect(info).toMatchObject({ state: VIR_DOMAIN_RUNNING, maxMem: 65536, nrVirtCpu: 1 });
    const vi = keyValues(virshAt(URI, 'dominfo', DOM));
    expect(vi.Id).toBe(String(listed.id));
    expect(vi['Max memory']).toBe(`${info.maxMem} KiB`);
    expect(await c.domainGetXmlDesc(dom)).toContain(`<domain type='${type}' id='${listed.id}'>`);
    expect(await libvirtCode(c.domainCreate(dom))).toBe(VIR_ERR_OPERATION_INVALID);

    await c.domainDestroy(dom);
    const stopped = await events.waitFor((e) => e.domain.name === DOM && e.eventName === 'stopped', 30_000);
    expect(stopped.detailName).toBe('destroyed');
    expect((await c.domainGetState(dom)).stateName).toBe('shut off');
    expect(virshAt(URI, 'domstate', DOM).trim()).toBe('shut off');
    expect((await c.connectListAllDomains(VIR_CONNECT_LIST_DOMAINS_ACTIVE)).map((d) => d.name)).not.toContain(DOM);

    await c.domainUndefine(dom);
    await events.waitFor((e) => e.domain.name === DOM && e.eventName === 'undefined', 10_000);
    expect(await libvirtCode(c.domainLookupByName(DOM))).toBe(VIR_ERR_NO_DOMAIN);
    expect(lines(virshAt(URI, 'list', '--all', '--name'))).not.toContain(DOM);
  });

  it('list-all-domains agrees with virsh list --all', async () => {
    const ours = (await c.connectListAllDomains(0)).map((d) => ({ id: d.id === -1 ? '-' : String(d.id), name: d.name })).sort((a, b) => a.name.localeCompare(b.name));
    const theirs = virshDomains(URI, '--all').map(({ id, name }) => ({ id, name })).sort((a, b) => a.name.localeCompare(b.name));
    // Other suites share the daemon: compare the snapshot only when nothing changed in between.
    const again = (await c.connectListAllDomains(0)).length;
    if (again === ours.length) expect(ours).toEqual(theirs);
  });

  it('remove the volume and the pool', async () => {
    await c.storageVolDelete(base);
    await c.storagePoolDestroy(pool);
    expect((await c.storagePoolGetInfo(pool)).state).toBe(0);
    await c.storagePoolDelete(pool);
    expect(existsSync(POOL_DIR)).toBe(false);
    await c.storagePoolUndefine(pool);
    expect(await libvirtCode(c.storagePoolLookupByName(POOL))).toBe(VIR_ERR_NO_STORAGE_POOL);
    expect(lines(virshAt(URI, 'pool-list', '--all', '--name'))).not.toContain(POOL);
  });

  it('error paths on the real daemon: code 42, then more calls, 32 in flight', async () => {
    const err = await c.domainLookupByName(`${P}-no-such`).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(LibvirtError);
    expect(err).toMatchObject({ code: VIR_ERR_NO_DOMAIN, domain: 10 });
    expect((err as Error).message).toContain(`${P}-no-such`);
    const v = await c.connectGetVersion();
    expect(v).toBeGreaterThan(1_000_000);
    const all = await Promise.all(Array.from({ length: 32 }, () => c.connectGetVersion()));
    expect(all).toEqual(Array(32).fill(v));
    const mixed = await Promise.allSettled(
      Array.from({ length: 32 }, (_, i) => (i % 2 ? c.connectGetHostname() : c.domainLookupByName(`${P}-missing-${i}`))),
    );
    mixed.forEach((r, i) => {
      if (i % 2) expect(r).toMatchObject({ status: 'fulfilled', value: virshAt(URI, 'hostname').trim() });
      else expect((r as PromiseRejectedResult).reason).toMatchObject({ code: 42, message: expect.stringContaining(`${P}-missing-${i}`) });
    });
    expect(c.isConnected).toBe(true);
  });
});
