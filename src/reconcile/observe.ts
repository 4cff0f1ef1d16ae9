/**
 * Observe: one bulk snapshot of the host (a constant number of list calls), the volumes of the
 * pools that matter (one list call per pool), merged with what the state DB remembers.
 * Never one lookup per resource for the whole inventory.
 */
import { RESOURCE_KINDS, type ResourceKind, type ResourceRef } from '../model/kinds.js';
import type { Wanted } from './core/kind.js';
import type { Definition, ExactView, Observed } from './core/observed.js';
import { definitionXml, localHosts, type HostPorts, type ObservedHosts } from './core/observed.js';
import type { HostPort, HostSnapshot, ObservedVolume } from './ports.js';
import type { BaselineEntry, DefinitionCheck, JournalEntry, ResourceIndexEntry, ResourceRecord, StoredReference } from '../state/index.js';
import { xmlSha256 } from '../libvirt/xml/compare.js';
import { hostOf, LOCAL_HOST, parseResourceKey, resourceKey, type HostId } from '../model/kinds.js';
import { kindOf, type Desired } from './kinds/index.js';
import { knownDigest } from './core/checks.js';
import { HostError } from './ports.js';

export type { Definition, ExactView, HostPorts, Observed, ObservedHosts } from './core/observed.js';
export { localHosts, perHost } from './core/observed.js';

/** A desired resource names a host the run has no connection to. */
export class UnknownHostError extends Error {
  override readonly name = 'UnknownHostError';
  constructor(readonly host: HostId, readonly keys: string[]) {
    super(`${keys.join(', ')}: host ${host} is not one of this run's hosts`);
  }
}

export interface StateReader {
  resources: {
    indexPages(pageSize: number): AsyncIterable<ResourceIndexEntry[]>;
    getMany(keys: { kind: string; name: string; host: HostId }[]): Promise<ResourceRecord[]>;
  };
  journal: { listUnresolved(): Promise<JournalEntry[]> };
  /** Baselines of definitions (exact drift); a store without them compares fields only. */
  baselines?: {
    index(): Promise<Map<string, BaselineEntry>>;
    xml(keys: { kind: string; name: string; host: HostId }[]): Promise<Map<string, string>>;
  };
  /** Definitions compared without a difference by earlier runs (the no-op fast path, `core/checks.ts`). */
  definitionChecks?: { index(): Promise<Map<string, DefinitionCheck>> };
  /** Uses of files recorded by earlier runs (the data rule reads them only for what a plan would destroy). */
  references?: { list(host: string, paths: string[]): Promise<StoredReference[]> };
}

/** Rows of the state index read at a time (about half a millisecond each) before letting I/O in. */
const INDEX_PAGE_ROWS = 500;

const turnOfEventLoop = (): Promise<void> => new Promise((r) => setImmediate(r));

/** The host id of a record or journal entry (rows of a store that keeps none: the local host). */
const rowHost = (r: object): HostId => hostOf(r as { host?: HostId });

/** Observe one host (the implicit local host): see {@link observeHosts}. */
export async function observe(host: HostPort, state: StateReader, desired: Desired): Promise<Observed> {
  return (await observeHosts(localHosts(host), state, desired)).get(LOCAL_HOST)!;
}

/**
 * Observe every host of the run, all at once: each host's snapshot and listings go on the wire
 * first, the state DB is read once and split by host, then each host's definitions are read.
 * Records and journal entries of a host that is not one of `hosts` are left out (nothing of theirs
 * is planned); a desired resource on such a host is an {@link UnknownHostError}.
 */
export async function observeHosts(hosts: HostPorts, state: StateReader, desired: Desired): Promise<ObservedHosts> {
  const missing = new Map<HostId, string[]>();
  for (const r of desired.resources) if (!hosts.has(r.host)) missing.set(r.host, [...(missing.get(r.host) ?? []), r.key]);
  for (const [h, keys] of missing) throw new UnknownHostError(h, keys);
  // Put the list calls on the wire first. The state DB reads below are synchronous (better-sqlite3),
  // so they go in pages with a turn of the event loop between them: libvirtd's replies are handled
  // as they come, and the volume listing's chained calls (lookup, refresh, list) go out meanwhile
  // instead of after the whole read. Volumes of desired pools are listed right away; a pool that
  // does not exist or is inactive simply has no listing.
  // A listing's failure is kept (not thrown yet): it is expected of a pool that does not exist or
  // is inactive, which the snapshot tells; for an active pool it fails the run below.
  const runs = new Map([...hosts].map(([id, host]) => [id, startHost(host, state.baselines !== undefined)]));
  for (const r of desired.resources) for (const p of kindOf(r.kind).poolsToList?.({ desired: r }) ?? []) runs.get(r.host)!.listPool(p);
  await turnOfEventLoop();
  const open = await state.journal.listUnresolved();
  // Recorded configs are needed only where the spec changed or the resource is to be pruned.
  const recordMaps = new Map<HostId, Observed['records']>([...hosts.keys()].map((h) => [h, new Map()]));
  const needDetails: ResourceIndexEntry[] = [];
  for await (const page of state.resources.indexPages(INDEX_PAGE_ROWS)) {
    for (const r of page) {
      const h = rowHost(r);
      const run = runs.get(h);
      if (!run) continue; // a host this run does not connect to: nothing of it is planned
      const key = resourceKey(r.kind, r.name, h);
      recordMaps.get(h)!.set(key, r);
      if (desired.byKey.get(key)?.specHash !== r.specHash) needDetails.push(r);
      for (const p of kindOf(r.kind as ResourceKind).poolsToList?.({ recordName: r.name }) ?? []) run.recordedPools.push(p);
    }
    await turnOfEventLoop();
  }
  if (needDetails.length > 0) {
    const refs = needDetails.map((r) => ({ kind: r.kind, name: r.name, host: rowHost(r) }));
    for (const full of await state.resources.getMany(refs)) {
      const h = rowHost(full);
      recordMaps.get(h)?.set(resourceKey(full.kind, full.name, h), full);
    }
  }
  const journals = new Map<HostId, Map<string, JournalEntry[]>>([...hosts.keys()].map((h) => [h, new Map()]));
  for (const e of open) {
    const h = rowHost(e);
    const run = runs.get(h);
    if (!run) continue;
    const key = resourceKey(e.kind, e.name, h);
    const openJournal = journals.get(h)!;
    openJournal.set(key, [...(openJournal.get(key) ?? []), e]);
  }
  // Pools we remember owning, or that an interrupted operation names, are listed too.
  for (const run of runs.values()) for (const name of run.recordedPools) run.listPool(name);
  for (const e of open) for (const p of kindOf(e.kind as ResourceKind).poolsToList?.({ journal: e }) ?? []) runs.get(rowHost(e))?.listPool(p);

  const byHost = new Map<HostId, Desired['resources']>([...hosts.keys()].map((h) => [h, []]));
  for (const r of desired.resources) byHost.get(r.host)!.push(r);
  const results = await Promise.all([...runs].map(async ([id, run]) => {
    const o = await finishHost(id, run, state, byHost.get(id)!, recordMaps.get(id)!, journals.get(id)!);
    o.hostCalls = run.calls;
    return [id, o] as const;
  }));
  if (hosts.size > 1) await observeMoveSources(hosts, desired, results);
  return new Map(results);
}

/**
 * What the kinds need to know of a cold move's source object before planning (a VM's snapshots):
 * read for each object recorded on one host and declared on another, one call each.
 */
async function observeMoveSources(hosts: HostPorts, desired: Desired, results: (readonly [HostId, Observed])[]): Promise<void> {
  const declaredOn = new Map<string, HostId[]>();
  for (const r of desired.resources) declaredOn.set(`${r.kind}/${r.name}`, [...(declaredOn.get(`${r.kind}/${r.name}`) ?? []), r.host]);
  await Promise.all(results.map(async ([id, o]) => {
    for (const [key, r] of o.records) {
      const hook = kindOf(r.kind as ResourceKind).observeMove;
      if (!hook || desired.byKey.has(key)) continue;
      if (!(declaredOn.get(`${r.kind}/${r.name}`) ?? []).some((h) => h !== id)) continue;
      (o.moveFacts ??= new Map()).set(key, await hook(hosts.get(id)!, r.name));
    }
  }));
}

/** One host's calls started before the state DB is read. */
interface HostRun {
  host: HostPort;
  snapshotP: Promise<HostSnapshot>;
  versionP: Promise<string> | undefined;
  exactOn: boolean;
  listing: Map<string, Promise<{ list: ObservedVolume[] } | { error: unknown }>>;
  listPool(name: string): void;
  recordedPools: string[];
  /** Calls made to this host so far. */
  calls: number;
  counted<T>(p: Promise<T>): Promise<T>;
}

function startHost(host: HostPort, withBaselines: boolean): HostRun {
  const run = { calls: 0 } as HostRun;
  const counted = <T>(p: Promise<T>): Promise<T> => p.then((v) => {
    run.calls += 1;
    return v;
  });
  const listing = new Map<string, Promise<{ list: ObservedVolume[] } | { error: unknown }>>();
  const snapshotP = counted(host.snapshot());
  // safe-catch: only marks the rejection handled; snapshotP itself is awaited below and throws there.
  snapshotP.catch(() => undefined);
  const exactOn = host.versionTag !== undefined && host.inactiveXml !== undefined && withBaselines;
  const versionP = exactOn ? counted(host.versionTag!()) : undefined;
  // safe-catch: only marks the rejection handled; versionP is awaited below and throws there.
  versionP?.catch(() => undefined);
  return Object.assign(run, {
    host, snapshotP, versionP, exactOn, listing, recordedPools: [], counted,
    listPool: (name: string) => {
      if (!listing.has(name)) listing.set(name, counted(host.listVolumes(name)).then((list) => ({ list }), (error: unknown) => ({ error })));
    },
  });
}

async function finishHost(
  hostId: HostId, run: HostRun, state: StateReader, desired: Desired['resources'],
  recordMap: Observed['records'], openJournal: Map<string, JournalEntry[]>,
): Promise<Observed> {
  const { host, counted, exactOn } = run;
  // What to read, and the no-op fast path's inputs, before the listings are awaited: none of it
  // needs them (only the state DB and libvirt's version, whose call went out with the listings),
  // so the definition reads go on the wire the moment the snapshot is in.
  const wanted = new Map<ResourceKind, Map<string, Wanted>>(RESOURCE_KINDS.map((k) => [k, new Map()]));
  for (const r of desired) wanted.get(r.kind)!.set(r.key, { name: r.name, where: { config: r.config } });
  for (const [key, r] of recordMap) {
    const w = wanted.get(r.kind as ResourceKind);
    if (w && !w.has(key)) w.set(key, { name: r.name, where: { config: r.details?.config, intents: openJournal.get(key)?.map((j) => j.intent) } });
  }
  for (const [key, entries] of openJournal) {
    const w = wanted.get(entries[0]!.kind as ResourceKind);
    if (w && !w.has(key)) w.set(key, { name: entries[0]!.name, where: { intents: entries.map((j) => j.intent) } });
  }
  // The no-op fast path: a declared, recorded resource whose definition an earlier run compared
  // without a difference under the same inputs is read unparsed when its bytes hash the same.
  const [baselines, checks, version] = await Promise.all([
    exactOn ? state.baselines!.index() : undefined,
    state.definitionChecks?.index(),
    run.versionP,
  ]);
  if (checks && checks.size > 0) {
    const byKey = new Map(desired.map((r) => [r.key, r]));
    for (const w of wanted.values()) {
      for (const [key, entry] of w) {
        const check = checks.get(key);
        // Its digest when its definition arrives (every input is read by then and stays as it is).
        if (check) entry.known = () => knownDigest(check, byKey.get(key), recordMap.get(key), openJournal.has(key), baselines?.get(key), version);
      }
    }
  }

  const snapshot = await run.snapshotP;
  const pools = new Map(snapshot.pools.map((p) => [p.name, p]));
  /** Filled from the pools' listings below, before the reads of the kinds that need them start. */
  const volumes = new Map<string, Map<string, ObservedVolume>>();

  const observed: Observed = {
    ...(hostId === LOCAL_HOST ? {} : { host: hostId }),
    snapshot,
    pools,
    networks: new Map(snapshot.networks.map((n) => [n.name, n])),
    domains: new Map(snapshot.domains.map((d) => [d.name, d])),
    volumes,
    records: recordMap,
    openJournal,
    definitions: new Map(),
    unreadable: new Map(),
    hostCalls: 0,
  };
  if (checks) observed.checks = checks;

  // Deep comparison: the definitions of everything declared, recorded or journaled that exists.
  // Every object of a kind that asks for it (networks, pools) is read, managed or not: a new
  // network's CIDR or a new pool's path is checked against them before anything is created.
  for (const k of RESOURCE_KINDS) {
    const w = wanted.get(k)!;
    for (const name of kindOf(k).readsAllListed?.(snapshot) ?? []) {
      const key = resourceKey(k, name, hostId);
      if (!w.has(key)) w.set(key, { name, where: {} });
    }
  }
  // Checked against what the hypervisor offers: one call, only when something declares what needs it.
  const needCaps = desired.some((r) => (kindOf(r.kind).needsDomainCapabilities as ((x: unknown) => boolean) | undefined)?.(r));
  // A failure to read them fails the run (the checks are never skipped silently), except a domain
  // type the host does not offer at all (`invalid`): the define step then fails with the types
  // it does offer, as without the checks.
  const capsP = needCaps
    ? counted(host.domainCapabilities()).then((c) => ({ c }), (error: unknown) => ({ error }))
    : Promise.resolve({ c: undefined });
  const readKind = (k: ResourceKind): Promise<Map<string, Definition>> => counted(kindOf(k).readDefinitions(host, observed, wanted.get(k)!));
  // The reads of kinds that need no volume listing go on the wire now: libvirtd works on them
  // while the pools' listings (a directory refresh each) complete.
  const early = new Map(RESOURCE_KINDS.filter((k) => !kindOf(k).readsVolumes).map((k) => [k, readKind(k)] as const));
  // safe-catch: only marks a rejection handled while the listings are awaited; each is awaited below and throws there.
  for (const p of early.values()) p.catch(() => undefined);
  for (const [name, p] of run.listing) {
    const r = await p;
    if (!pools.get(name)?.active) continue; // absent or inactive: its volumes cannot be listed
    if ('error' in r) throw r.error;
    volumes.set(name, new Map(r.list.map((v) => [v.name, v])));
  }
  const reads = await Promise.all(RESOURCE_KINDS.map((k) => early.get(k) ?? readKind(k)));
  const capsR = await capsP;
  if ('error' in capsR && !(capsR.error instanceof HostError && capsR.error.code === 'invalid')) throw capsR.error;
  const caps = 'c' in capsR ? capsR.c : undefined;
  if (caps !== undefined) observed.domainCapabilities = caps;
  for (const m of reads) for (const [key, d] of m) observed.definitions.set(key, d);
  if (exactOn) {
    // Exact drift: the raw bytes' hash first; the baseline XML is read only where it differs.
    const exact: ExactView = { version: version!, baselines: baselines!, sha256: new Map(), xml: new Map(), rebaseline: new Set() };
    const differ: ResourceRef[] = [];
    for (const key of [...observed.definitions.keys(), ...(observed.unparsed?.keys() ?? [])]) {
      const xml = definitionXml(observed, key);
      if (xml === undefined) continue;
      const sha = observed.digests?.get(key) ?? xmlSha256(xml);
      exact.sha256.set(key, sha);
      const b = exact.baselines.get(key);
      if (b && b.sha256 !== sha && b.version === exact.version) differ.push(parseResourceKey(key));
    }
    if (differ.length > 0) exact.xml = await state.baselines!.xml(differ);
    observed.exact = exact;
  }
  return observed;
}
