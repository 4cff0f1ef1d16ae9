/**
 * Observe: one bulk snapshot of the host (a constant number of list calls), the volumes of the
 * pools that matter (one list call per pool), merged with what the state DB remembers.
 * Never one lookup per resource for the whole inventory.
 */
import { RESOURCE_KINDS, type ResourceKind } from '../model/kinds.js';
import type { Locator } from './core/kind.js';
import type { ExactView, Observed } from './core/observed.js';
import { definitionXml } from './core/observed.js';
import type { HostPort, ObservedVolume } from './ports.js';
import type { BaselineEntry, JournalEntry, ResourceIndexEntry, ResourceRecord, StoredReference } from '../state/index.js';
import { xmlSha256 } from '../libvirt/xml/compare.js';
import { parseResourceKey, resourceKey } from '../model/kinds.js';
import { kindOf, type Desired } from './kinds/index.js';
import { HostError } from './ports.js';

export type { Definition, ExactView, Observed } from './core/observed.js';

export interface StateReader {
  resources: {
    indexPages(pageSize: number): AsyncIterable<ResourceIndexEntry[]>;
    getMany(keys: { kind: string; name: string }[]): Promise<ResourceRecord[]>;
  };
  journal: { listUnresolved(): Promise<JournalEntry[]> };
  /** Baselines of definitions (exact drift); a store without them compares fields only. */
  baselines?: {
    index(): Promise<Map<string, BaselineEntry>>;
    xml(keys: { kind: string; name: string }[]): Promise<Map<string, string>>;
  };
  /** Uses of files recorded by earlier runs (the data rule reads them only for what a plan would destroy). */
  references?: { list(paths: string[]): Promise<StoredReference[]> };
}

/** Rows of the state index read at a time (about half a millisecond each) before letting I/O in. */
const INDEX_PAGE_ROWS = 500;

const turnOfEventLoop = (): Promise<void> => new Promise((r) => setImmediate(r));

export async function observe(host: HostPort, state: StateReader, desired: Desired): Promise<Observed> {
  let hostCalls = 0;
  const counted = <T>(p: Promise<T>): Promise<T> => p.then((v) => {
    hostCalls += 1;
    return v;
  });
  // Put the list calls on the wire first. The state DB reads below are synchronous (better-sqlite3),
  // so they go in pages with a turn of the event loop between them: libvirtd's replies are handled
  // as they come, and the volume listing's chained calls (lookup, refresh, list) go out meanwhile
  // instead of after the whole read. Volumes of desired pools are listed right away; a pool that
  // does not exist or is inactive simply has no listing.
  // A listing's failure is kept (not thrown yet): it is expected of a pool that does not exist or
  // is inactive, which the snapshot tells; for an active pool it fails the run below.
  const listing = new Map<string, Promise<{ list: ObservedVolume[] } | { error: unknown }>>();
  const listPool = (name: string): void => {
    if (!listing.has(name)) listing.set(name, counted(host.listVolumes(name)).then((list) => ({ list }), (error: unknown) => ({ error })));
  };
  const snapshotP = counted(host.snapshot());
  // safe-catch: only marks the rejection handled; snapshotP itself is awaited below and throws there.
  snapshotP.catch(() => undefined);
  const exactOn = host.versionTag !== undefined && host.inactiveXml !== undefined && state.baselines !== undefined;
  const versionP = exactOn ? counted(host.versionTag!()) : undefined;
  // safe-catch: only marks the rejection handled; versionP is awaited below and throws there.
  versionP?.catch(() => undefined);
  for (const r of desired.resources) for (const p of kindOf(r.kind).poolsToList?.({ desired: r }) ?? []) listPool(p);
  await turnOfEventLoop();
  const open = await state.journal.listUnresolved();
  // Recorded configs are needed only where the spec changed or the resource is to be pruned.
  const recordMap: Observed['records'] = new Map();
  const needDetails: ResourceIndexEntry[] = [];
  const recordedPools: string[] = [];
  for await (const page of state.resources.indexPages(INDEX_PAGE_ROWS)) {
    for (const r of page) {
      const key = resourceKey(r.kind, r.name);
      recordMap.set(key, r);
      if (desired.byKey.get(key)?.specHash !== r.specHash) needDetails.push(r);
      const pools = kindOf(r.kind as ResourceKind).poolsToList?.({ recordName: r.name });
      if (pools) recordedPools.push(...pools);
    }
    await turnOfEventLoop();
  }
  if (needDetails.length > 0) {
    for (const full of await state.resources.getMany(needDetails)) recordMap.set(resourceKey(full.kind, full.name), full);
  }
  const openJournal = new Map<string, JournalEntry[]>();
  for (const e of open) {
    const key = resourceKey(e.kind, e.name);
    openJournal.set(key, [...(openJournal.get(key) ?? []), e]);
  }
  // Pools we remember owning, or that an interrupted operation names, are listed too.
  for (const name of recordedPools) listPool(name);
  for (const e of open) for (const p of kindOf(e.kind as ResourceKind).poolsToList?.({ journal: e }) ?? []) listPool(p);

  const snapshot = await snapshotP;
  const pools = new Map(snapshot.pools.map((p) => [p.name, p]));
  const volumes = new Map<string, Map<string, ObservedVolume>>();
  for (const [name, p] of listing) {
    const r = await p;
    if (!pools.get(name)?.active) continue; // absent or inactive: its volumes cannot be listed
    if ('error' in r) throw r.error;
    volumes.set(name, new Map(r.list.map((v) => [v.name, v])));
  }

  const observed: Observed = {
    snapshot,
    pools,
    networks: new Map(snapshot.networks.map((n) => [n.name, n])),
    domains: new Map(snapshot.domains.map((d) => [d.name, d])),
    volumes,
    records: recordMap,
    openJournal,
    definitions: new Map(),
    unreadable: new Map(),
    hostCalls,
  };

  // Deep comparison: the definitions of everything declared, recorded or journaled that exists.
  const wanted = new Map<ResourceKind, Map<string, { name: string; where: Locator }>>(RESOURCE_KINDS.map((k) => [k, new Map()]));
  for (const r of desired.resources) wanted.get(r.kind)!.set(r.key, { name: r.name, where: { config: r.config } });
  for (const [key, r] of recordMap) {
    const w = wanted.get(r.kind as ResourceKind);
    if (w && !w.has(key)) w.set(key, { name: r.name, where: { config: r.details?.config, intents: openJournal.get(key)?.map((j) => j.intent) } });
  }
  for (const [key, entries] of openJournal) {
    const w = wanted.get(entries[0]!.kind as ResourceKind);
    if (w && !w.has(key)) w.set(key, { name: entries[0]!.name, where: { intents: entries.map((j) => j.intent) } });
  }
  // Every object of a kind that asks for it (networks, pools) is read, managed or not: a new
  // network's CIDR or a new pool's path is checked against them before anything is created.
  for (const k of RESOURCE_KINDS) {
    const w = wanted.get(k)!;
    for (const name of kindOf(k).readsAllListed?.(snapshot) ?? []) {
      const key = resourceKey(k, name);
      if (!w.has(key)) w.set(key, { name, where: {} });
    }
  }
  // Checked against what the hypervisor offers: one call, only when something declares what needs it.
  const needCaps = desired.resources.some((r) => (kindOf(r.kind).needsDomainCapabilities as ((x: unknown) => boolean) | undefined)?.(r));
  // A failure to read them fails the run (the checks are never skipped silently), except a domain
  // type the host does not offer at all (`invalid`): the define step then fails with the types
  // it does offer, as without the checks.
  const capsP = needCaps
    ? counted(host.domainCapabilities()).then((c) => ({ c }), (error: unknown) => ({ error }))
    : Promise.resolve({ c: undefined });
  const reads = await Promise.all(RESOURCE_KINDS.map((k) => counted(kindOf(k).readDefinitions(host, observed, wanted.get(k)!))));
  const capsR = await capsP;
  if ('error' in capsR && !(capsR.error instanceof HostError && capsR.error.code === 'invalid')) throw capsR.error;
  const caps = 'c' in capsR ? capsR.c : undefined;
  if (caps !== undefined) observed.domainCapabilities = caps;
  for (const m of reads) for (const [key, d] of m) observed.definitions.set(key, d);
  if (exactOn) {
    // Exact drift: the raw bytes' hash first; the baseline XML is read only where it differs.
    const baselines = await state.baselines!.index();
    const exact: ExactView = { version: await versionP!, baselines, sha256: new Map(), xml: new Map(), rebaseline: new Set() };
    const differ: { kind: string; name: string }[] = [];
    for (const key of observed.definitions.keys()) {
      const xml = definitionXml(observed, key);
      if (xml === undefined) continue;
      const sha = xmlSha256(xml);
      exact.sha256.set(key, sha);
      const b = baselines.get(key);
      if (b && b.sha256 !== sha && b.version === exact.version) {
        const { kind, name } = parseResourceKey(key);
        differ.push({ kind, name });
      }
    }
    if (differ.length > 0) exact.xml = await state.baselines!.xml(differ);
    observed.exact = exact;
  }
  observed.hostCalls = hostCalls;
  return observed;
}
