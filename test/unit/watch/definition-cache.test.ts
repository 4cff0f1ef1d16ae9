/**
 * The watch's kept definitions (src/watch/definition-cache.ts) on the FakeHost: a second observe
 * reads no definition again; a mutating call through the port, an invalidation (a lifecycle event)
 * and a changed listing make exactly that object be read again; an invalidation while a read is on
 * the wire is not lost; a plan through the cache equals the plan without it. The real daemon:
 * test/integration/watch/incremental.test.ts.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { FakeHost } from '../../support/fake-host.js';
import { desiredFrom, labManifests, writeManifests } from '../../support/manifests.js';
import { openStateStore, type StateStore } from '../../../src/state/index.js';
import { planOnly, reconcile } from '../../../src/reconcile/engine.js';
import { DefinitionCache } from '../../../src/watch/definition-cache.js';
import { CallClock } from '../../../src/watch/call-clock.js';
import { createHash } from 'node:crypto';
import { LibvirtXmlError } from '../../../src/libvirt/xml/types.js';
import type { DefinitionRead, DomainDetail, HostDefinitions } from '../../../src/reconcile/ports.js';
import { makeTempDir } from '../../support/temp-dirs.js';

const P = 'vftest-dcache';
let work: string;
let store: StateStore;
let fake: FakeHost;

const reads = (): string[] => fake.calls.filter((c) => c.startsWith('describe'));

beforeEach(async () => {
  work = makeTempDir('vftest-dcache-');
  writeManifests(join(work, 'm'), labManifests({ prefix: P, poolPath: '/srv/pools/dcache', withVm2: true }));
  store = await openStateStore(join(work, 'state.db'));
  fake = new FakeHost();
  const r = await reconcile({ host: fake, store, desired: await desiredFrom(join(work, 'm')) });
  expect(r.outcome).toBe('succeeded');
});

afterEach(async () => {
  await store.close();
  rmSync(work, { recursive: true, force: true });
});

describe('DefinitionCache', () => {
  it('a second observe through the cache reads no definition again, and plans the same', async () => {
    const desired = await desiredFrom(join(work, 'm'));
    const cache = new DefinitionCache();
    const port = cache.port(fake);
    fake.calls = [];
    const first = await planOnly(port, store, desired);
    const firstReads = reads().length;
    expect(firstReads).toBeGreaterThan(5);
    expect(cache.takeStats()).toMatchObject({ hits: 0, reads: firstReads });
    fake.calls = [];
    const second = await planOnly(port, store, desired);
    expect(reads()).toEqual([]);
    expect(cache.takeStats()).toMatchObject({ hits: firstReads, reads: 0 });
    expect(second.plan.noop).toBe(true);
    expect(second.plan.changes).toEqual(first.plan.changes);
  });

  it('an edit planned through the cache is the plan without it', async () => {
    const cache = new DefinitionCache();
    const port = cache.port(fake);
    await planOnly(port, store, await desiredFrom(join(work, 'm')));
    writeManifests(join(work, 'm'), labManifests({ prefix: P, poolPath: '/srv/pools/dcache', withVm2: true, vm2Memory: '96MiB' }));
    const edited = await desiredFrom(join(work, 'm'));
    const cached = await planOnly(port, store, edited);
    const fresh = await planOnly(fake, store, edited);
    expect(cached.plan.changes.map((c) => c.key)).toEqual([`VirtualMachine/${P}-vm2`]);
    expect(cached.plan.changes).toEqual(fresh.plan.changes);
    expect(cached.plan.steps.map((s) => s.op.op)).toEqual(fresh.plan.steps.map((s) => s.op.op));
  });

  it('a mutating call through the port, an invalidation and a changed listing each re-read only that object', async () => {
    const desired = await desiredFrom(join(work, 'm'));
    const cache = new DefinitionCache();
    const port = cache.port(fake);
    await planOnly(port, store, desired);

    // virtform's own call: forgotten before and after it.
    await port.setDomainAutostart(`${P}-vm2`, false);
    fake.calls = [];
    await planOnly(port, store, desired);
    expect(reads()).toEqual([`describeDomain:${P}-vm2`]);

    // A change outside (no call through the port): kept until invalidated (the lifecycle event).
    const vm1 = fake.domains.get(`${P}-vm1`)!.def;
    await fake.defineDomain({ ...vm1, uuid: fake.domains.get(`${P}-vm1`)!.uuid, memoryKiB: vm1.memoryKiB * 2, maxMemoryKiB: vm1.memoryKiB * 2 });
    fake.calls = [];
    const stale = await planOnly(port, store, desired);
    expect(reads()).toEqual([]);
    expect(stale.plan.changes.map((c) => c.key)).not.toContain(`VirtualMachine/${P}-vm1`);
    cache.invalidate('domain', `${P}-vm1`);
    fake.calls = [];
    const seen = await planOnly(port, store, desired);
    expect(reads()).toEqual([`describeDomain:${P}-vm1`]);
    expect(seen.plan.changes.map((c) => c.key)).toContain(`VirtualMachine/${P}-vm1`);

    // A changed listing (autostart set outside): that domain is read again.
    await fake.setDomainAutostart(`${P}-vm2`, true);
    fake.calls = [];
    await planOnly(port, store, desired);
    expect(reads()).toEqual([`describeDomain:${P}-vm2`]);

    // clear(): everything again (the full read).
    cache.clear();
    fake.calls = [];
    await planOnly(port, store, desired);
    expect(reads().length).toBeGreaterThan(5);

    // A new connection starts empty.
    const other = new DefinitionCache();
    expect(other.port(fake)).not.toBe(port);
    expect(cache.port(fake)).toBe(port);
  });

  it('a definition invalidated while its read is on the wire is not kept', async () => {
    const cache = new DefinitionCache();
    const port = cache.port(fake);
    const snap = await fake.snapshot();
    const d = snap.domains.find((x) => x.name === `${P}-vm1`)!;
    const real = fake.definitions.domains;
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    (fake.definitions as { domains: typeof real }).domains = async (list, u) => {
      await gate;
      return real(list, u);
    };
    const read = port.definitions.domains([d]);
    cache.invalidate('domain', d.name);
    release();
    expect((await read).size).toBe(1);
    (fake.definitions as { domains: typeof real }).domains = real;
    fake.calls = [];
    await port.definitions.domains([d]);
    expect(reads()).toEqual([`describeDomain:${d.name}`]);
  });
});

/**
 * The FakeHost's domain reads with the no-op fast path the adapter has (`unparsedOr`): the sha256
 * of a stand-in XML (the parse as JSON) goes to `digests`; a definition whose sha256 `known` names
 * is put in `unparsed`. `refuse`: names whose parse throws the XML parser's error.
 */
function withFastPath(refuse: Set<string> = new Set()): void {
  const real = fake.definitions.domains.bind(fake.definitions);
  const domains: HostDefinitions['domains'] = async (list, unreadable, read) => {
    const parsed = await real(list, unreadable);
    if (!read) return parsed;
    const out = new Map<string, DomainDetail>();
    for (const [name, d] of parsed) {
      const xml = JSON.stringify(d);
      const parse = (): DomainDetail => {
        if (refuse.has(name)) throw new LibvirtXmlError('malformed-xml', `refused ${name}`);
        return d;
      };
      const sha = createHash('sha256').update(xml).digest('hex');
      read.digests.set(name, sha);
      if (read.known.get(name) === sha) read.unparsed.set(name, { xml, parse });
      else {
        try {
          out.set(name, parse());
        } catch (e) {
          unreadable?.set(name, `its definition cannot be read: ${(e as Error).message}`);
        }
      }
    }
    return out;
  };
  (fake.definitions as { domains: HostDefinitions['domains'] }).domains = domains;
}

const fastRead = (known: [string, string][] = []): DefinitionRead<DomainDetail> => ({ known: new Map(known), digests: new Map(), unparsed: new Map() });

describe('DefinitionCache and the no-op fast path', () => {
  it('a kept definition whose bytes the caller knows is handed out unparsed, as the host read gives it, without a read', async () => {
    withFastPath();
    const cache = new DefinitionCache();
    const port = cache.port(fake);
    const list = (await fake.snapshot()).domains.filter((d) => d.name.startsWith(P));
    const [vm1, vm2] = [`${P}-vm1`, `${P}-vm2`];
    const first = fastRead();
    const parsed = await port.definitions.domains(list, new Map(), first);
    expect([...parsed.keys()].sort()).toEqual([vm1, vm2]);
    expect(first.unparsed.size).toBe(0);
    expect([...first.digests.keys()].sort()).toEqual([vm1, vm2]);

    // vm1's bytes known: unparsed (with its XML), vm2 parsed; both from the cache.
    fake.calls = [];
    const second = fastRead([[vm1, first.digests.get(vm1)!]]);
    const out = await port.definitions.domains(list, new Map(), second);
    expect(reads()).toEqual([]);
    expect([...out.keys()]).toEqual([vm2]);
    expect([...second.unparsed.keys()]).toEqual([vm1]);
    expect(second.unparsed.get(vm1)!.xml).toBe(JSON.stringify(parsed.get(vm1)));
    expect(second.unparsed.get(vm1)!.parse()).toEqual(parsed.get(vm1));
    expect(second.digests).toEqual(first.digests);

    // Other bytes known (the definition changed since it was compared): parsed.
    const third = fastRead([[vm1, 'f'.repeat(64)]]);
    expect([...(await port.definitions.domains(list, new Map(), third)).keys()].sort()).toEqual([vm1, vm2]);
    expect(third.unparsed.size).toBe(0);

    // A fresh read (after clear) whose bytes the caller knows: unparsed at once, as the host gives it.
    cache.clear();
    const fourth = fastRead([[vm2, first.digests.get(vm2)!]]);
    expect([...(await port.definitions.domains(list, new Map(), fourth)).keys()]).toEqual([vm1]);
    expect([...fourth.unparsed.keys()]).toEqual([vm2]);
  });

  it("a definition the XML parser refuses is named unreadable, as by the host's read, and not kept", async () => {
    withFastPath(new Set([`${P}-vm2`]));
    const cache = new DefinitionCache();
    const port = cache.port(fake);
    const list = (await fake.snapshot()).domains.filter((d) => d.name.startsWith(P));
    const unreadable = new Map<string, string>();
    const out = await port.definitions.domains(list, unreadable, fastRead());
    expect([...out.keys()]).toEqual([`${P}-vm1`]);
    expect(unreadable).toEqual(new Map([[`${P}-vm2`, `its definition cannot be read: refused ${P}-vm2`]]));
    fake.calls = [];
    await port.definitions.domains(list, new Map(), fastRead());
    expect(reads()).toEqual([`describeDomain:${P}-vm2`]);
  });
});

describe('CallClock', () => {
  it('counts overlapping calls once, and only inside the window', () => {
    const c = new CallClock();
    c.begin(100);
    c.record(30, 140); // 110..140
    c.record(20, 150); // 130..150: overlaps
    c.record(10, 200); // 190..200
    c.record(50, 120); // 70..120: 100..120 inside
    expect(c.end(195)).toEqual({ busyMs: 50 + 5, calls: 4 });
    expect(c.end(300)).toEqual({ busyMs: 0, calls: 0 });
  });
});
