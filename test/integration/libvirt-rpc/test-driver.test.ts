/**
 * Breadth on libvirt's test driver through the real daemon (test+unix:///default).
 *
 * Test-driver state is per connection: virsh (its own connection) sees the DEFAULT objects only
 * (domain `test`, network `default`, pool `default-pool`), so results are compared with virsh on
 * those; objects this file creates are checked through the client itself.
 */
import { hostname } from 'node:os';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  ConnectionError,
  type DomainLifecycleEvent,
  type DomainEventSubscription,
  LibvirtClient,
  LibvirtError,
  VIR_CONNECT_LIST_DOMAINS_ACTIVE,
  VIR_CONNECT_LIST_DOMAINS_AUTOSTART,
  VIR_CONNECT_LIST_DOMAINS_INACTIVE,
  VIR_CONNECT_LIST_DOMAINS_PERSISTENT,
  VIR_CONNECT_LIST_DOMAINS_RUNNING,
  VIR_CONNECT_LIST_DOMAINS_SHUTOFF,
  VIR_CONNECT_LIST_NETWORKS_ACTIVE,
  VIR_CONNECT_LIST_NETWORKS_INACTIVE,
  VIR_CONNECT_LIST_STORAGE_POOLS_ACTIVE,
  VIR_CONNECT_LIST_STORAGE_POOLS_DIR,
  VIR_CONNECT_LIST_STORAGE_POOLS_INACTIVE,
  VIR_DOMAIN_RUNNING,
  VIR_DOMAIN_SHUTOFF,
  VIR_DOMAIN_XML_INACTIVE,
  VIR_ERR_NO_DOMAIN,
  VIR_ERR_NO_NETWORK,
  VIR_ERR_NO_STORAGE_POOL,
  VIR_ERR_NO_STORAGE_VOL,
  VIR_ERR_NO_SUPPORT,
  VIR_ERR_OPERATION_DENIED,
  VIR_NETWORK_SECTION_IP_DHCP_HOST,
  VIR_NETWORK_UPDATE_AFFECT_CONFIG,
  VIR_NETWORK_UPDATE_AFFECT_LIVE,
  VIR_NETWORK_UPDATE_COMMAND_ADD_LAST,
  VIR_NETWORK_UPDATE_COMMAND_DELETE,
  VIR_STORAGE_POOL_RUNNING,
} from '../../../src/libvirt/index.js';
import { keyValues, lines, virshAt, virshDomains } from '../../support/virsh.js';
import { suiteNames } from '../../support/names.js';

const N = suiteNames('rpctd');
const P = N.base;

const URI = 'test+unix:///default';
let c: LibvirtClient;
let events: DomainEventSubscription;

beforeAll(async () => {
  c = await LibvirtClient.connect(URI);
  events = await c.domainEventLifecycleRegister();
});
afterAll(async () => {
  await events?.close();
  await c?.close();
});

async function code(p: Promise<unknown>): Promise<number> {
  const e = await p.then(
    () => undefined,
    (err: unknown) => err,
  );
  expect(e).toBeInstanceOf(LibvirtError);
  return (e as LibvirtError).code;
}

const domXml = (name: string) => `<domain type='test'>
  <name>${name}</name>
  <memory unit='MiB'>64</memory>
  <vcpu>1</vcpu>
  <os><type>hvm</type></os>
</domain>`;

describe('connection-level calls agree with virsh', () => {
  it('versions, hostname, URI, type, capabilities', async () => {
    const v = keyValues(virshAt(URI, 'version'));
    const fmt = (n: number) => `${Math.floor(n / 1e6)}.${Math.floor(n / 1e3) % 1000}.${n % 1000}`;
    expect(`TEST ${fmt(await c.connectGetVersion())}`).toBe(v['Running hypervisor']);
    expect(`libvirt ${fmt(await c.connectGetLibVersion())}`).toBe(v['Using library']);
    expect(await c.connectGetHostname()).toBe(virshAt(URI, 'hostname').trim());
    expect(await c.connectGetHostname()).toBe(hostname());
    expect(await c.connectGetUri()).toBe('test:///default');
    expect(c.remoteUri).toBe('test:///default');
    expect(await c.connectGetType()).toBe('TEST');
    const caps = await c.connectGetCapabilities();
    expect(caps).toContain('<capabilities>');
    expect(caps.trimEnd()).toBe(virshAt(URI, 'capabilities').trimEnd());
  });
});

describe('default objects agree with virsh', () => {
  it('list-all-domains, state, info, XML of `test`', async () => {
    const ours = await c.connectListAllDomains(0);
    const test = ours.find((d) => d.name === 'test')!;
    expect(test).toBeDefined();
    const theirs = virshDomains(URI, '--all').find((d) => d.name === 'test')!;
    expect(String(test.id)).toBe(theirs.id);
    expect(test.uuid).toBe(virshAt(URI, 'domuuid', 'test').trim());
    const st = await c.domainGetState(test);
    expect(st.state).toBe(VIR_DOMAIN_RUNNING);
    expect(st.stateName).toBe(virshAt(URI, 'domstate', 'test').trim());
    expect(st.stateName).toBe(theirs.state);
    const info = await c.domainGetInfo(test);
    const vi = keyValues(virshAt(URI, 'dominfo', 'test'));
    expect(`${info.maxMem} KiB`).toBe(vi['Max memory']);
    expect(`${info.memory} KiB`).toBe(vi['Used memory']);
    expect(String(info.nrVirtCpu)).toBe(vi['CPU(s)']);
    expect(info.stateName).toBe(vi.State);
    expect(await c.domainGetAutostart(test)).toBe(vi.Autostart === 'enable');
    expect(await c.domainGetXmlDesc(test)).toBe(virshAt(URI, 'dumpxml', 'test'));
    expect(await c.domainGetXmlDesc(test, VIR_DOMAIN_XML_INACTIVE)).toBe(virshAt(URI, 'dumpxml', '--inactive', 'test'));
    expect(await c.domainLookupByUuid(test.uuid)).toEqual(test);
    expect(await c.domainLookupById(test.id)).toEqual(test);
    expect(await c.domainIsActive(test)).toBe(true);
    expect(await c.domainIsPersistent(test)).toBe(true);
  });

  it('network `default`: list, XML, active, autostart', async () => {
    const nets = await c.connectListAllNetworks(0);
    expect(nets.map((n) => n.name)).toContain('default');
    const net = await c.networkLookupByName('default');
    expect(net.uuid).toBe(virshAt(URI, 'net-uuid', 'default').trim());
    expect(await c.networkLookupByUuid(net.uuid)).toEqual(net);
    const row = lines(virshAt(URI, 'net-list', '--all')).find((l) => l.startsWith('default '))!.split(/\s+/);
    expect((await c.networkIsActive(net)) ? 'active' : 'inactive').toBe(row[1]);
    expect((await c.networkGetAutostart(net)) ? 'yes' : 'no').toBe(row[2]);
    expect(await c.networkIsPersistent(net)).toBe(row[3] === 'yes');
    expect(await c.networkGetXmlDesc(net)).toBe(virshAt(URI, 'net-dumpxml', 'default'));
  });

  it('pool `default-pool`: list, info, XML, volumes', async () => {
    const pools = await c.connectListAllStoragePools(0);
    expect(pools.map((p) => p.name)).toContain('default-pool');
    const pool = await c.storagePoolLookupByName('default-pool');
    expect(pool.uuid).toBe(virshAt(URI, 'pool-uuid', 'default-pool').trim());
    expect(await c.storagePoolLookupByUuid(pool.uuid)).toEqual(pool);
    const info = await c.storagePoolGetInfo(pool);
    const vi = keyValues(virshAt(URI, 'pool-info', 'default-pool'));
    expect(info.state).toBe(VIR_STORAGE_POOL_RUNNING);
    expect(vi.State).toBe('running');
    expect(`${(info.capacity / 2 ** 30).toFixed(2)} GiB`).toBe(vi.Capacity);
    expect((await c.storagePoolGetAutostart(pool)) ? 'yes' : 'no').toBe(vi.Autostart);
    expect(await c.storagePoolGetXmlDesc(pool)).toBe(virshAt(URI, 'pool-dumpxml', 'default-pool'));
    expect(await c.storagePoolIsActive(pool)).toBe(true);
    expect((await c.storagePoolListAllVolumes(pool)).map((v) => v.name)).toEqual(lines(virshAt(URI, 'vol-list', 'default-pool')));
  });
});

describe('domains', () => {
  // A failed test must not leave domains behind for the next one (state lives on this connection).
  afterEach(async () => {
    for (const d of await c.connectListAllDomains()) {
      if (!d.name.startsWith('vftest')) continue;
      if (d.id !== -1) await c.domainDestroy(d).catch(() => undefined);
      await c.domainUndefine(d).catch(() => undefined);
    }
  });

  it('define → inactive, autostart, start → running + started event, destroy → stopped event, undefine', async () => {
    const name = `${P}-dom`;
    const d = await c.domainDefineXml(domXml(name));
    expect(d).toMatchObject({ name, id: -1 });
    expect(d.uuid).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/);
    await events.waitFor((e) => e.domain.name === name && e.eventName === 'defined', 5000);
    expect((await c.domainGetState(d)).state).toBe(VIR_DOMAIN_SHUTOFF);
    expect(await c.domainIsActive(d)).toBe(false);

    expect(await c.domainGetAutostart(d)).toBe(false);
    await c.domainSetAutostart(d, true);
    expect(await c.domainGetAutostart(d)).toBe(true);
    await c.domainSetAutostart(d, false);
    expect(await c.domainGetAutostart(d)).toBe(false);

    await c.domainCreate(d);
    const started = await events.waitFor((e) => e.domain.name === name && e.eventName === 'started', 5000);
    expect(started.detailName).toBe('booted');
    expect(started.domain.id).toBeGreaterThan(0);
    expect((await c.domainGetState(d)).stateName).toBe('running');
    const running = (await c.connectListAllDomains(VIR_CONNECT_LIST_DOMAINS_ACTIVE)).find((x) => x.name === name)!;
    expect(running.id).toBeGreaterThan(0);
    expect(await c.domainGetXmlDesc(running)).toContain(`<name>${name}</name>`);
    // Starting a running domain fails (the test driver says internal error, qemu operation invalid).
    expect(await code(c.domainCreate(running))).toBeGreaterThan(0);

    await c.domainDestroy(running);
    const stopped = await events.waitFor((e) => e.domain.name === name && e.eventName === 'stopped', 5000);
    expect(stopped.detailName).toBe('destroyed');
    expect((await c.domainGetState(d)).state).toBe(VIR_DOMAIN_SHUTOFF);

    await c.domainUndefine(d);
    await events.waitFor((e) => e.domain.name === name && e.eventName === 'undefined', 5000);
    expect(await code(c.domainLookupByName(name))).toBe(VIR_ERR_NO_DOMAIN);
  });

  it('define-xml-flags, create-with-flags (returns the new id), shutdown, undefine-flags', async () => {
    const name = `${P}-dom2`;
    const d = await c.domainDefineXmlFlags(domXml(name), 0);
    const started = await c.domainCreateWithFlags(d, 0);
    expect(started.name).toBe(name);
    expect(started.id).toBeGreaterThan(0);
    expect((await c.domainGetInfo(started)).stateName).toBe('running');
    await c.domainShutdown(started);
    expect((await c.domainGetState(d)).stateName).toBe('shut off');
    await c.domainUndefineFlags(d, 0);
    expect(await code(c.domainLookupByUuid(d.uuid))).toBe(VIR_ERR_NO_DOMAIN);
  });

  it('list-all-domains honours flags', async () => {
    const d = await c.domainDefineXml(domXml(`${P}-flags`));
    await c.domainSetAutostart(d, true);
    const names = async (flags: number) => (await c.connectListAllDomains(flags)).map((x) => x.name).sort();
    expect(await names(VIR_CONNECT_LIST_DOMAINS_ACTIVE)).toEqual(['test']);
    expect(await names(VIR_CONNECT_LIST_DOMAINS_RUNNING)).toEqual(['test']);
    expect(await names(VIR_CONNECT_LIST_DOMAINS_INACTIVE)).toEqual([`${P}-flags`]);
    expect(await names(VIR_CONNECT_LIST_DOMAINS_SHUTOFF)).toEqual([`${P}-flags`]);
    expect(await names(VIR_CONNECT_LIST_DOMAINS_AUTOSTART)).toEqual([`${P}-flags`]);
    expect(await names(VIR_CONNECT_LIST_DOMAINS_PERSISTENT)).toEqual(['test', `${P}-flags`]);
    expect(await names(0)).toEqual(['test', `${P}-flags`]);
    const inactive = (await c.connectListAllDomains(VIR_CONNECT_LIST_DOMAINS_INACTIVE))[0]!;
    expect(inactive.id).toBe(-1);
    await c.domainUndefine(d);
  });
});

describe('networks', () => {
  const name = `${P}-net`;
  const xml = `<network>
  <name>${name}</name>
  <bridge name='vftrpctd0'/>
  <ip address='192.168.213.1' netmask='255.255.255.0'>
    <dhcp><range start='192.168.213.10' end='192.168.213.50'/></dhcp>
  </ip>
</network>`;

  it('define, start, autostart, update a DHCP host entry, destroy, undefine', async () => {
    const net = await c.networkDefineXml(xml);
    expect(net.name).toBe(name);
    expect(await c.networkIsActive(net)).toBe(false);
    expect((await c.connectListAllNetworks(VIR_CONNECT_LIST_NETWORKS_INACTIVE)).map((n) => n.name)).toEqual([name]);
    await c.networkCreate(net);
    expect(await c.networkIsActive(net)).toBe(true);
    expect((await c.connectListAllNetworks(VIR_CONNECT_LIST_NETWORKS_ACTIVE)).map((n) => n.name).sort()).toEqual(['default', name]);
    await c.networkSetAutostart(net, true);
    expect(await c.networkGetAutostart(net)).toBe(true);

    const host = `<host mac='52:54:00:aa:bb:01' name='vm1' ip='192.168.213.20'/>`;
    const flags = VIR_NETWORK_UPDATE_AFFECT_LIVE | VIR_NETWORK_UPDATE_AFFECT_CONFIG;
    await c.networkUpdate(net, VIR_NETWORK_UPDATE_COMMAND_ADD_LAST, VIR_NETWORK_SECTION_IP_DHCP_HOST, -1, host, flags);
    expect(await c.networkGetXmlDesc(net)).toContain(host);
    await c.networkUpdate(net, VIR_NETWORK_UPDATE_COMMAND_DELETE, VIR_NETWORK_SECTION_IP_DHCP_HOST, -1, host, flags);
    expect(await c.networkGetXmlDesc(net)).not.toContain('52:54:00:aa:bb:01');

    await c.networkDestroy(net);
    expect(await c.networkIsActive(net)).toBe(false);
    await c.networkUndefine(net);
    expect(await code(c.networkLookupByName(name))).toBe(VIR_ERR_NO_NETWORK);
  });
});

describe('storage pools and volumes', () => {
  it('define, build, start, info, autostart, refresh; volumes incl. create-xml-from; delete all', async () => {
    const name = `${P}-pool`;
    const pool = await c.storagePoolDefineXml(
      `<pool type='dir'><name>${name}</name><target><path>/${P}-pool</path></target></pool>`,
    );
    expect(pool.name).toBe(name);
    expect((await c.connectListAllStoragePools(VIR_CONNECT_LIST_STORAGE_POOLS_INACTIVE)).map((p) => p.name)).toEqual([name]);
    await c.storagePoolBuild(pool);
    await c.storagePoolCreate(pool);
    expect((await c.storagePoolGetInfo(pool)).state).toBe(VIR_STORAGE_POOL_RUNNING);
    expect((await c.connectListAllStoragePools(VIR_CONNECT_LIST_STORAGE_POOLS_ACTIVE | VIR_CONNECT_LIST_STORAGE_POOLS_DIR)).map((p) => p.name).sort()).toEqual(['default-pool', name]);
    await c.storagePoolSetAutostart(pool, true);
    expect(await c.storagePoolGetAutostart(pool)).toBe(true);
    await c.storagePoolRefresh(pool);
    expect(await c.storagePoolGetXmlDesc(pool)).toContain(`<name>${name}</name>`);

    const base = await c.storageVolCreateXml(
      pool,
      `<volume><name>base.qcow2</name><capacity unit='MiB'>16</capacity><target><format type='qcow2'/></target></volume>`,
    );
    expect(base).toEqual({ pool: name, name: 'base.qcow2', key: `/${P}-pool/base.qcow2` });
    expect(await c.storageVolGetInfo(base)).toMatchObject({ type: 0, capacity: 16 * 2 ** 20 });
    expect(await c.storageVolGetXmlDesc(base)).toContain('<name>base.qcow2</name>');
    expect(await c.storageVolGetPath(base)).toBe(`/${P}-pool/base.qcow2`);
    expect(await c.storageVolLookupByPath(`/${P}-pool/base.qcow2`)).toEqual(base);
    expect(await c.storageVolLookupByName(pool, 'base.qcow2')).toEqual(base);
    expect(await c.storageVolLookupByKey(base.key)).toEqual(base);

    const copy = await c.storageVolCreateXmlFrom(
      pool,
      `<volume><name>copy.qcow2</name><capacity unit='MiB'>16</capacity><target><format type='qcow2'/></target></volume>`,
      base,
    );
    expect(copy.name).toBe('copy.qcow2');
    expect((await c.storagePoolListAllVolumes(pool)).map((v) => v.name).sort()).toEqual(['base.qcow2', 'copy.qcow2']);
    // The test driver does not implement resize; the real resize is covered on qemu:///system.
    expect(await code(c.storageVolResize(base, 32 * 2 ** 20))).toBe(VIR_ERR_NO_SUPPORT);

    await c.storageVolDelete(copy);
    await c.storageVolDelete(base);
    expect(await code(c.storageVolLookupByName(pool, 'base.qcow2'))).toBe(VIR_ERR_NO_STORAGE_VOL);
    await c.storagePoolDestroy(pool);
    await c.storagePoolDelete(pool);
    await c.storagePoolUndefine(pool);
    expect(await code(c.storagePoolLookupByName(name))).toBe(VIR_ERR_NO_STORAGE_POOL);
  });
});

describe('errors and concurrency', () => {
  it('unknown objects raise LibvirtError with their libvirt codes; the connection keeps working', async () => {
    const err = await c.domainLookupByName('vftest-no-such-domain').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(LibvirtError);
    expect(err).toMatchObject({ code: VIR_ERR_NO_DOMAIN, procedure: 'domainLookupByName' });
    expect(await code(c.networkLookupByName('vftest-nope'))).toBe(VIR_ERR_NO_NETWORK);
    expect(await code(c.storagePoolLookupByName('vftest-nope'))).toBe(VIR_ERR_NO_STORAGE_POOL);
    expect(await code(c.storageVolLookupByPath('/vftest/nope'))).toBe(VIR_ERR_NO_STORAGE_VOL);
    expect(await code(c.domainDefineXml('<domain'))).toBeGreaterThan(0);
    expect((await c.domainLookupByName('test')).name).toBe('test');
    expect(c.stats().domainLookupByName!.errors).toBeGreaterThanOrEqual(1);
  });

  it('32 calls in flight on one connection all resolve correctly', async () => {
    const calls = Array.from({ length: 32 }, (_, i) => {
      switch (i % 4) {
        case 0:
          return c.connectGetVersion().then((v) => ['version', v] as const);
        case 1:
          return c.domainLookupByName('test').then((d) => ['lookup', d.name] as const);
        case 2:
          return c.domainLookupByName(`vftest-missing-${i}`).then(
            () => ['missing', 'found?!'] as const,
            (e: LibvirtError) => ['missing', `${e.code}:${e.message.includes(`vftest-missing-${i}`) || e.code === 42}`] as const,
          );
        default:
          return c.connectListAllNetworks().then((n) => ['nets', n.length] as const);
      }
    });
    const res = await Promise.all(calls);
    res.forEach((r, i) => {
      if (i % 4 === 0) expect(r).toEqual(['version', 2]);
      if (i % 4 === 1) expect(r).toEqual(['lookup', 'test']);
      if (i % 4 === 2) expect(r).toEqual(['missing', '42:true']);
      if (i % 4 === 3) expect(r[1]).toBeGreaterThanOrEqual(1);
    });
  });

  it('read-only connections can read but not write', async () => {
    const ro = await LibvirtClient.connect(URI, { readOnly: true });
    try {
      expect(ro.readOnly).toBe(true);
      expect((await ro.connectListAllDomains()).map((d) => d.name)).toContain('test');
      const e = await ro.domainDefineXml(domXml(`${P}-ro`)).catch((x: unknown) => x);
      expect(e).toBeInstanceOf(LibvirtError);
      expect((e as LibvirtError).code).toBe(VIR_ERR_OPERATION_DENIED);
    } finally {
      await ro.close();
    }
  });

  it('a closed client rejects calls with ConnectionError', async () => {
    const x = await LibvirtClient.connect(URI);
    await x.close();
    expect(x.isConnected).toBe(false);
    await expect(x.connectGetVersion()).rejects.toBeInstanceOf(ConnectionError);
  });

  it('events arrive as an async iterator too, on a second subscription sharing the server callback', async () => {
    const sub = await c.domainEventLifecycleRegister();
    expect(sub.callbackId).toBe(events.callbackId);
    const got: DomainLifecycleEvent[] = [];
    const reader = (async () => {
      for await (const ev of sub) {
        got.push(ev);
        if (got.length === 2) break;
      }
    })();
    const d = await c.domainDefineXml(domXml(`${P}-iter`));
    await c.domainUndefine(d);
    await reader;
    expect(got.map((e) => e.eventName)).toEqual(['defined', 'undefined']);
    expect(sub.isActive).toBe(false);
    // The first subscription still gets events after the second one closed.
    const d2 = await c.domainDefineXml(domXml(`${P}-iter2`));
    await events.waitFor((e) => e.domain.name === `${P}-iter2` && e.eventName === 'defined', 5000);
    await c.domainUndefine(d2);
  });
});
