/**
 * Observe: one bulk snapshot of the host (a constant number of list calls), the volumes of the
 * pools that matter (one list call per pool), merged with what the state DB remembers.
 * Never one lookup per resource for the whole inventory.
 */
import type { HostPort, HostSnapshot, ObservedVolume, ObservedPool, ObservedNetwork, ObservedDomain } from './ports.js';
import type { JournalEntry, ResourceRecord } from '../state/index.js';
import type { Desired } from './desired.js';
import { resourceKey } from './desired.js';

export interface StateReader {
  resources: { list(kind?: string): Promise<ResourceRecord[]> };
  journal: { listOpen(): Promise<JournalEntry[]> };
}

export interface Observed {
  snapshot: HostSnapshot;
  pools: Map<string, ObservedPool>;
  networks: Map<string, ObservedNetwork>;
  domains: Map<string, ObservedDomain>;
  /** Volumes per active pool that is desired or recorded; a pool missing here was not listed. */
  volumes: Map<string, Map<string, ObservedVolume>>;
  records: Map<string, ResourceRecord>;
  /** Open journal entries left by an interrupted earlier run, by resource key. */
  openJournal: Map<string, JournalEntry[]>;
  /** Number of host calls made while observing. */
  hostCalls: number;
}

export async function observe(host: HostPort, state: StateReader, desired: Desired): Promise<Observed> {
  let hostCalls = 0;
  const [snapshot, records, open] = await Promise.all([
    host.snapshot().then((s) => {
      hostCalls += 1;
      return s;
    }),
    state.resources.list(),
    state.journal.listOpen(),
  ]);

  const recordMap = new Map(records.map((r) => [resourceKey(r.kind, r.name), r]));
  const openJournal = new Map<string, JournalEntry[]>();
  for (const e of open) {
    const key = resourceKey(e.kind, e.name);
    openJournal.set(key, [...(openJournal.get(key) ?? []), e]);
  }

  const pools = new Map(snapshot.pools.map((p) => [p.name, p]));
  // Pools whose volumes we need: desired pools, pools we remember owning, pools named in journal intents.
  const relevant = new Set<string>();
  for (const r of desired.resources) if (r.kind === 'StoragePool') relevant.add(r.name);
  for (const r of records) if (r.kind === 'StoragePool') relevant.add(r.name);
  for (const e of open) {
    if (e.kind === 'StoragePool') relevant.add(e.name);
    if (e.kind === 'Volume' && typeof e.intent.pool === 'string') relevant.add(e.intent.pool);
  }
  const volumes = new Map<string, Map<string, ObservedVolume>>();
  await Promise.all(
    [...relevant]
      .filter((name) => pools.get(name)?.active)
      .map(async (name) => {
        const list = await host.listVolumes(name);
        hostCalls += 1;
        volumes.set(name, new Map(list.map((v) => [v.name, v])));
      }),
  );

  return {
    snapshot,
    pools,
    networks: new Map(snapshot.networks.map((n) => [n.name, n])),
    domains: new Map(snapshot.domains.map((d) => [d.name, d])),
    volumes,
    records: recordMap,
    openJournal,
    hostCalls,
  };
}
