import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  type CallInfo,
  ConnectionError,
  type Domain,
  KEEPALIVE_PROC_PING,
  KEEPALIVE_PROC_PONG,
  KEEPALIVE_PROGRAM,
  LibvirtClient,
  LibvirtError,
  MessageType,
  PROCEDURES,
  readDomain,
  readNetwork,
  readNonnullString,
  REMOTE_PROC_DOMAIN_EVENT_CALLBACK_LIFECYCLE,
  VIR_CONNECT_LIST_DOMAINS_ACTIVE,
  VIR_DRV_FEATURE_NETWORK_UPDATE_HAS_CORRECT_ORDER,
  VIR_ERR_NO_DOMAIN,
  VIR_NETWORK_SECTION_IP_DHCP_HOST,
  VIR_NETWORK_UPDATE_COMMAND_ADD_LAST,
  writeDomain,
  writeNetwork,
  writeStoragePool,
  writeStorageVol,
  type XdrWriter,
} from '../../../src/libvirt/index.js';
import { FakeLibvirtd } from './support/fake-libvirtd.js';

const DOMS: Domain[] = [
  { name: 'alpha', uuid: '11111111-2222-3333-4444-555555555555', id: 3 },
  { name: 'beta', uuid: 'aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee', id: -1 },
];

let fake: FakeLibvirtd;
let clients: LibvirtClient[] = [];
beforeEach(async () => {
  fake = await FakeLibvirtd.start();
});
afterEach(async () => {
  for (const c of clients) await c.close();
  clients = [];
  await fake.stop();
});

async function connect(uri = 'test+unix:///default', opts: Parameters<typeof LibvirtClient.connect>[1] = {}) {
  const c = await LibvirtClient.connect(uri, { socketPath: fake.path, keepaliveIntervalMs: 0, ...opts });
  clients.push(c);
  return c;
}

describe('handshake', () => {
  it('does auth-list then connect-open with the URI minus its transport', async () => {
    let opened: { name: string | null; flags: number } | undefined;
    fake.on('connectOpen', (r) => {
      opened = { name: r.optional(readNonnullString), flags: r.uint() };
      return {};
    });
    const c = await connect('test+unix:///default?socket=/ignored&foo=bar');
    expect(opened).toEqual({ name: 'test:///default?foo=bar', flags: 0 });
    expect(c.remoteUri).toBe('test:///default?foo=bar');
    expect(c.uri).toBe('test+unix:///default?socket=/ignored&foo=bar');
    expect(fake.lastConn.received.map((h) => h.proc).slice(0, 2)).toEqual([PROCEDURES.authList.proc, PROCEDURES.connectOpen.proc]);
    expect(c.isConnected).toBe(true);
  });

  it('connects over TCP (qemu+tcp://host:port/system) and sends qemu:///system', async () => {
    const tcp = await FakeLibvirtd.start({ tcp: true });
    try {
      let name: string | null = null;
      tcp.on('connectOpen', (r) => {
        name = r.optional(readNonnullString);
        return {};
      });
      tcp.on('connectGetVersion', () => ({ ok: (w) => w.uhyper(7002022) }));
      const c = await LibvirtClient.connect(`qemu+tcp://127.0.0.1:${tcp.port}/system`, { keepaliveIntervalMs: 0 });
      expect(name).toBe('qemu:///system');
      expect(await c.connectGetVersion()).toBe(7002022);
      await c.close();
    } finally {
      await tcp.stop();
    }
  });

  it('opens read-only with VIR_CONNECT_RO', async () => {
    let flags = -1;
    fake.on('connectOpen', (r) => {
      r.optional(readNonnullString);
      flags = r.uint();
      return {};
    });
    const c = await connect('qemu:///system', { readOnly: true });
    expect(flags).toBe(1);
    expect(c.readOnly).toBe(true);
  });

  it('does polkit auth when the daemon asks for it', async () => {
    fake.on('authList', () => ({ ok: (w) => w.array([2], (x, v) => x.int(v)) }));
    let polkit = 0;
    fake.on('authPolkit', () => {
      polkit++;
      return { ok: (w) => w.int(1) };
    });
    await connect();
    expect(polkit).toBe(1);
  });

  it('refuses SASL-only daemons with a clear error', async () => {
    fake.on('authList', () => ({ ok: (w) => w.array([1], (x, v) => x.int(v)) }));
    await expect(connect()).rejects.toMatchObject({ name: 'ConnectionError', reason: 'connect', message: expect.stringMatching(/SASL/) });
  });

  it('surfaces a connect-open error as LibvirtError and closes the socket', async () => {
    fake.on('connectOpen', () => ({ error: { code: 38, domain: 13, message: 'Failed to connect socket' } }));
    const err = await connect().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(LibvirtError);
    expect(err).toMatchObject({ code: 38, procedure: 'connectOpen' });
  });

  it('fails fast with ConnectionError when there is no daemon', async () => {
    const err = await LibvirtClient.connect('qemu:///system', { socketPath: '/nonexistent/sock' }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ConnectionError);
    expect((err as ConnectionError).reason).toBe('connect');
    expect((err as Error).message).toMatch(/is libvirtd running/);
  });

  it('turns on keepalive when the daemon supports it, and answers the daemon PINGs', async () => {
    const features: number[] = [];
    fake.on('connectSupportsFeature', (r) => {
      features.push(r.int());
      return { ok: (w) => w.int(1) };
    });
    const c = await connect('test+unix:///default', { keepaliveIntervalMs: 50 });
    expect(features).toContain(10);
    fake.lastConn.sendPacket({ prog: KEEPALIVE_PROGRAM, proc: KEEPALIVE_PROC_PING, type: MessageType.MESSAGE });
    await new Promise((r) => setTimeout(r, 200));
    expect(fake.keepalive.some((h) => h.proc === KEEPALIVE_PROC_PONG)).toBe(true);
    // Idle for > 50 ms: the client pinged too.
    expect(fake.keepalive.some((h) => h.proc === KEEPALIVE_PROC_PING)).toBe(true);
    expect(c.isConnected).toBe(true);
  });

  it('drops a connection whose daemon stops answering keepalive', async () => {
    const c = await connect('test+unix:///default', { keepaliveIntervalMs: 30, keepaliveCount: 3 });
    const disconnected = new Promise<ConnectionError>((r) => c.once('disconnect', r));
    fake.on('connectGetVersion', () => ({ none: true }));
    const pending = c.connectGetVersion().catch((e: unknown) => e);
    const err = await disconnected;
    expect(err.reason).toBe('keepalive');
    expect(await pending).toMatchObject({ reason: 'keepalive', procedure: 'connectGetVersion' });
  });
});

describe('calls', () => {
  it('decodes list-all-domains with UUID strings and id -1 for inactive', async () => {
    let flags = -1;
    fake.on('connectListAllDomains', (r) => {
      expect(r.int()).toBe(1); // need_results
      flags = r.uint();
      return { ok: (w) => w.array(DOMS, writeDomain).uint(DOMS.length) };
    });
    const c = await connect();
    expect(await c.connectListAllDomains(VIR_CONNECT_LIST_DOMAINS_ACTIVE)).toEqual(DOMS);
    expect(flags).toBe(VIR_CONNECT_LIST_DOMAINS_ACTIVE);
  });

  it('sends domain references back as name + 16-byte uuid + id', async () => {
    let got: Domain | undefined;
    fake.on('domainGetState', (r) => {
      got = readDomain(r);
      expect(r.uint()).toBe(0);
      return { ok: (w) => w.int(5).int(1) };
    });
    const c = await connect();
    expect(await c.domainGetState(DOMS[1]!)).toEqual({ state: 5, stateName: 'shut off', reason: 1 });
    expect(got).toEqual(DOMS[1]);
  });

  it('decodes get-info (unsigned char / short each take 4 bytes) and volumes', async () => {
    fake.on('domainGetInfo', () => ({ ok: (w) => w.uint(1).uhyper(65536).uhyper(32768).uint(2).uhyper(2n ** 62n) }));
    fake.on('storageVolGetInfo', () => ({ ok: (w) => w.int(0).uhyper(10 * 2 ** 30).uhyper(196608) }));
    fake.on('storagePoolListAllVolumes', () => ({
      ok: (w) => w.array([{ pool: 'p', name: 'a.qcow2', key: '/d/a.qcow2' }], writeStorageVol).uint(1),
    }));
    const c = await connect();
    expect(await c.domainGetInfo(DOMS[0]!)).toEqual({ state: 1, stateName: 'running', maxMem: 65536, memory: 32768, nrVirtCpu: 2, cpuTime: 2n ** 62n });
    expect(await c.storageVolGetInfo({ pool: 'p', name: 'a', key: 'k' })).toEqual({ type: 0, capacity: 10 * 2 ** 30, allocation: 196608 });
    const pool = { name: 'p', uuid: DOMS[0]!.uuid };
    expect(await c.storagePoolListAllVolumes(pool)).toEqual([{ pool: 'p', name: 'a.qcow2', key: '/d/a.qcow2' }]);
  });

  it('raises LibvirtError 42 for an unknown domain and keeps going on the same connection', async () => {
    fake.on('domainLookupByName', (r) => {
      const name = readNonnullString(r);
      if (name === 'alpha') return { ok: (w) => writeDomain(w, DOMS[0]!) };
      return { error: { code: VIR_ERR_NO_DOMAIN, domain: 10, message: `Domain not found: no domain with matching name '${name}'` } };
    });
    const c = await connect();
    const err = await c.domainLookupByName('nope').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(LibvirtError);
    expect(err).toMatchObject({ code: 42, domain: 10, procedure: 'domainLookupByName' });
    expect((err as Error).message).toContain("'nope'");
    expect(await c.domainLookupByName('alpha')).toEqual(DOMS[0]);
  });

  for (const mode of ['split', 'hold'] as const) {
    it(`matches 32 concurrent calls answered out of order (${mode} writes)`, async () => {
      const c = await connect();
      fake.lastConn.writeMode = mode;
      let n = 0;
      fake.on('domainLookupByName', (r) => {
        const name = readNonnullString(r);
        const i = Number(name.slice(2));
        n++;
        // Reverse order: later calls answer sooner.
        return { ok: (w: XdrWriter) => writeDomain(w, { name, uuid: DOMS[0]!.uuid, id: i }), delayMs: mode === 'split' ? (32 - i) * 2 : 0 };
      });
      const calls = Array.from({ length: 32 }, (_, i) => c.domainLookupByName(`vm${i}`));
      if (mode === 'hold') {
        while (n < 32) await new Promise((r) => setTimeout(r, 5));
        await new Promise((r) => setTimeout(r, 5));
        fake.lastConn.flush();
        fake.lastConn.writeMode = 'whole';
      }
      const got = await Promise.all(calls);
      got.forEach((d, i) => expect(d).toMatchObject({ name: `vm${i}`, id: i }));
    });
  }

  it('counts calls per procedure, flags mutating ones, and reports each to onCall', async () => {
    fake.on('domainDefineXml', () => ({ ok: (w) => writeDomain(w, DOMS[1]!) }));
    fake.on('domainCreate', () => ({}));
    fake.on('domainLookupByName', () => ({ error: { code: 42, message: 'no' } }));
    fake.on('connectGetVersion', () => ({ ok: (w) => w.uhyper(9000000) }));
    const c = await connect();
    c.resetStats();
    const seen: CallInfo[] = [];
    c.onCall = (i) => seen.push(i);
    const d = await c.domainDefineXml('<domain/>');
    await c.domainCreate(d);
    await c.domainLookupByName('x').catch(() => undefined);
    expect(await c.connectGetVersion()).toBe(9000000);
    expect(c.callCount).toBe(4);
    expect(c.mutatingCallCount).toBe(2);
    const s = c.stats();
    expect(s.domainDefineXml).toMatchObject({ count: 1, errors: 0 });
    expect(s.domainLookupByName).toMatchObject({ count: 1, errors: 1 });
    expect(seen.map((i) => [i.procedure, i.mutating, !!i.error])).toEqual([
      ['domainDefineXml', true, false],
      ['domainCreate', true, false],
      ['domainLookupByName', false, true],
      ['connectGetVersion', false, false],
    ]);
    expect(seen.every((i) => i.ms >= 0)).toBe(true);
    expect(LibvirtClient.isMutating('storageVolResize')).toBe(true);
    expect(LibvirtClient.isMutating('domainGetXmlDesc')).toBe(false);
    // acl connect:write in remote_protocol.x, but it only reads what the hypervisor offers
    expect(LibvirtClient.isMutating('connectGetDomainCapabilities')).toBe(false);
    expect(LibvirtClient.isMutating('domainOpenConsole')).toBe(false);
  });

  it('swaps command and section of network-update for daemons with the old wire order', async () => {
    const net = { name: 'n', uuid: DOMS[0]!.uuid };
    for (const correct of [true, false]) {
      fake.on('connectSupportsFeature', (r) => {
        const f = r.int();
        return { ok: (w) => w.int(f === VIR_DRV_FEATURE_NETWORK_UPDATE_HAS_CORRECT_ORDER ? Number(correct) : 1) };
      });
      let wire: number[] = [];
      fake.on('networkUpdate', (r) => {
        expect(readNetwork(r)).toEqual(net);
        wire = [r.uint(), r.uint(), r.int()];
        expect(readNonnullString(r)).toBe('<host/>');
        wire.push(r.uint());
        return {};
      });
      const c = await connect();
      await c.networkUpdate(net, VIR_NETWORK_UPDATE_COMMAND_ADD_LAST, VIR_NETWORK_SECTION_IP_DHCP_HOST, -1, '<host/>', 3);
      expect(wire).toEqual(correct ? [3, 4, -1, 3] : [4, 3, -1, 3]);
    }
  });

  it('encodes pool and volume args (create-xml-from, resize)', async () => {
    const pool = { name: 'p', uuid: DOMS[0]!.uuid };
    const src = { pool: 'p', name: 'base', key: '/d/base' };
    fake.on('storageVolCreateXmlFrom', (r) => {
      r.string();
      r.opaqueFixed(16);
      expect(readNonnullString(r)).toBe('<volume/>');
      expect([r.string(), r.string(), r.string()]).toEqual(['p', 'base', '/d/base']);
      expect(r.uint()).toBe(0);
      return { ok: (w) => writeStorageVol(w, { pool: 'p', name: 'clone', key: '/d/clone' }) };
    });
    let cap = 0n;
    fake.on('storageVolResize', (r) => {
      r.string();
      r.string();
      r.string();
      cap = r.uhyper();
      r.uint();
      return {};
    });
    fake.on('storagePoolDefineXml', () => ({ ok: (w) => writeStoragePool(w, pool) }));
    const c = await connect();
    expect(await c.storagePoolDefineXml('<pool/>')).toEqual(pool);
    expect(await c.storageVolCreateXmlFrom(pool, '<volume/>', src)).toEqual({ pool: 'p', name: 'clone', key: '/d/clone' });
    await c.storageVolResize(src, 3 * 2 ** 30);
    expect(cap).toBe(3n * 2n ** 30n);
  });
});

describe('connection loss', () => {
  it('fails every pending call promptly and emits disconnect', async () => {
    const c = await connect();
    fake.on('connectGetVersion', () => ({ none: true }));
    const disconnected = new Promise<ConnectionError>((r) => c.once('disconnect', r));
    const calls = Array.from({ length: 8 }, () => c.connectGetVersion().catch((e: unknown) => e));
    await new Promise((r) => setTimeout(r, 20));
    expect(c.pendingCalls).toBe(8);
    const t0 = Date.now();
    fake.lastConn.kill();
    const errs = await Promise.all(calls);
    expect(Date.now() - t0).toBeLessThan(1000);
    for (const e of errs) {
      expect(e).toBeInstanceOf(ConnectionError);
      expect(e).toMatchObject({ reason: 'lost', procedure: 'connectGetVersion' });
    }
    expect((await disconnected).reason).toBe('lost');
    expect(c.isConnected).toBe(false);
    await expect(c.connectGetVersion()).rejects.toBeInstanceOf(ConnectionError);
  });

  it('close() emits disconnect with reason closed and is idempotent', async () => {
    const c = await connect();
    const reasons: string[] = [];
    c.on('disconnect', (e) => reasons.push(e.reason));
    await c.close();
    await c.close();
    expect(reasons).toEqual(['closed']);
    expect(fake.lastConn.received.at(-1)?.proc).toBe(PROCEDURES.connectClose.proc);
  });
});

describe('lifecycle events', () => {
  function sendEvent(callbackId: number, dom: Domain, event: number, detail: number) {
    fake.lastConn.sendPacket({ proc: REMOTE_PROC_DOMAIN_EVENT_CALLBACK_LIFECYCLE, type: MessageType.MESSAGE }, (w) => {
      w.int(callbackId);
      writeDomain(w, dom);
      w.int(event).int(detail);
    });
  }

  it('registers, delivers events by callback id (emitter, iterator, waitFor), and deregisters', async () => {
    let registered: { eventId: number; dom: Domain | null } | undefined;
    fake.on('connectDomainEventCallbackRegisterAny', (r) => {
      registered = { eventId: r.int(), dom: r.optional(readDomain) };
      return { ok: (w) => w.int(7) };
    });
    let deregistered = -1;
    fake.on('connectDomainEventCallbackDeregisterAny', (r) => {
      deregistered = r.int();
      return {};
    });
    const c = await connect();
    const sub = await c.domainEventLifecycleRegister();
    expect(registered).toEqual({ eventId: 0, dom: null });
    expect(sub.callbackId).toBe(7);
    const viaEmitter: string[] = [];
    sub.on('event', (e) => viaEmitter.push(`${e.eventName}/${e.detailName}`));
    const started = sub.waitFor((e) => e.eventName === 'started');
    sendEvent(7, DOMS[0]!, 2, 0);
    sendEvent(99, DOMS[1]!, 0, 0); // another callback: not ours
    sendEvent(7, DOMS[0]!, 5, 1);
    expect((await started).domain).toEqual(DOMS[0]);
    const it = sub[Symbol.asyncIterator]();
    const a = await it.next();
    const b = await it.next();
    expect([a.value, b.value].map((e) => [e!.event, e!.eventName, e!.detail, e!.detailName])).toEqual([
      [2, 'started', 0, 'booted'],
      [5, 'stopped', 1, 'destroyed'],
    ]);
    expect(viaEmitter).toEqual(['started/booted', 'stopped/destroyed']);
    // Past events count for waitFor.
    expect((await sub.waitFor((e) => e.eventName === 'stopped', 10)).detail).toBe(1);
    await sub.close();
    expect(deregistered).toBe(7);
    expect((await it.next()).done).toBe(true);
  });

  it('registers for one domain', async () => {
    let dom: Domain | null = null;
    fake.on('connectDomainEventCallbackRegisterAny', (r) => {
      r.int();
      dom = r.optional(readDomain);
      return { ok: (w) => w.int(1) };
    });
    const c = await connect();
    await c.domainEventLifecycleRegister({ domain: DOMS[0]! });
    expect(dom).toEqual(DOMS[0]);
  });

  it('ends iteration with the connection error when the connection is lost', async () => {
    fake.on('connectDomainEventCallbackRegisterAny', () => ({ ok: (w) => w.int(1) }));
    const c = await connect();
    const sub = await c.domainEventLifecycleRegister();
    const it = sub[Symbol.asyncIterator]();
    const next = it.next().catch((e: unknown) => e);
    fake.lastConn.kill();
    expect(await next).toMatchObject({ name: 'ConnectionError', reason: 'lost' });
    expect(sub.isActive).toBe(false);
  });

  it('drops malformed event payloads without breaking the connection', async () => {
    fake.on('connectDomainEventCallbackRegisterAny', () => ({ ok: (w) => w.int(1) }));
    fake.on('connectGetVersion', () => ({ ok: (w) => w.uhyper(1) }));
    const c = await connect();
    await c.domainEventLifecycleRegister();
    fake.lastConn.sendPacket({ proc: REMOTE_PROC_DOMAIN_EVENT_CALLBACK_LIFECYCLE, type: MessageType.MESSAGE }, (w) => w.int(1));
    fake.lastConn.sendPacket({ proc: 999, type: MessageType.MESSAGE }, (w) => writeNetwork(w, { name: 'x', uuid: DOMS[0]!.uuid }));
    expect(await c.connectGetVersion()).toBe(1);
  });
});
