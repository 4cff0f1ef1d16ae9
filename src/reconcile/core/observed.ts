/**
 * The observed state: what observe read from the host and the state DB, as every stage and every
 * kind sees it. Types and pure lookups only (the observe stage is `../observe.ts`).
 */
import type { HostId, ResourceKind } from '../../model/kinds.js';
import { hostOf, LOCAL_HOST, parseResourceKey } from '../../model/kinds.js';
import type { DetailOfKind, DomainDetail } from '../../model/definitions.js';
import type { DomainCapabilities, HostPort, HostSnapshot, ObservedVolume, ObservedPool, ObservedNetwork, ObservedDomain } from '../ports.js';
import type { BaselineEntry, JournalEntry, ResourceIndexEntry, ResourceRecord } from '../../state/index.js';

/** A definition observe read back: the `*Detail` of its kind (`DetailOfKind`). */
export type Definition = DetailOfKind[ResourceKind];

/** What exact drift compares: each definition's raw XML against its baseline (see `change.ts` `exactDrift`). */
export interface ExactView {
  /** libvirt's and the hypervisor's versions now. */
  version: string;
  /** Hash and version of every recorded baseline, by key. */
  baselines: Map<string, BaselineEntry>;
  /** sha256 of each definition's raw XML read this run, by key. */
  sha256: Map<string, string>;
  /** The baseline XML of the definitions whose hash differs from their baseline's. */
  xml: Map<string, string>;
  /** Baselines to (re)take after this run's apply without a change (filled by diff). */
  rebaseline: Set<string>;
}

export interface Observed {
  /**
   * The host this observation is of (absent: the local host). Everything below is of this host
   * only: its objects, and the records and journal entries whose host it is (keys name it).
   */
  host?: HostId;
  snapshot: HostSnapshot;
  pools: Map<string, ObservedPool>;
  networks: Map<string, ObservedNetwork>;
  domains: Map<string, ObservedDomain>;
  /** Volumes per active pool that is desired or recorded; a pool missing here was not listed. */
  volumes: Map<string, Map<string, ObservedVolume>>;
  /** What the state DB records, by key; full records (with `details`) where the spec changed or the resource is pruned. */
  records: Map<string, Omit<ResourceIndexEntry, 'id' | 'host'> & Partial<Pick<ResourceRecord, 'details'>>>;
  /**
   * Journal entries of earlier runs whose effects no record accounts for, by resource key: open
   * ones (the run was interrupted) and failed ones not followed by a success (a step that failed
   * after creating something). Either makes what exists under that name virtform's.
   */
  openJournal: Map<string, JournalEntry[]>;
  /**
   * Persistent definitions read back from the host, by resource key, for every declared,
   * recorded or journaled resource whose object exists: what diff compares with the desired state.
   */
  definitions: Map<string, Definition>;
  /**
   * Objects that exist but whose definition virtform cannot parse, by resource key, with the
   * reason: not in `definitions`. Diff reports each on its own resource (Stalled) and goes on.
   */
  unreadable?: Map<string, string>;
  /**
   * The host's domain capabilities (CPU modes and models, graphics types), read only when a
   * desired resource's kind asks for them (`needsDomainCapabilities`); null: the host has none.
   */
  domainCapabilities?: DomainCapabilities | null;
  /** Exact drift: absent when the host or the store has no baselines. */
  exact?: ExactView;
  /**
   * Disk paths of running domains whose live definition differs from the persistent one (a restart
   * is pending), by domain name: read by the kind that knows (the VirtualMachine kind), used by
   * every kind that asks which running domain has a file open (`runningDiskHolders`).
   */
  liveDisks?: Map<string, string[]>;
  /**
   * What a kind read about its objects recorded here and declared on another host (a cold move's
   * source), by key (`KindHandler.observeMove`: a VM's snapshot count).
   */
  moveFacts?: Map<string, Record<string, unknown>>;
  /** Number of host calls made while observing. */
  hostCalls: number;
}

/** The libvirt hosts of a run, by host id (one host: the implicit local host of `--uri`). */
export type HostPorts = ReadonlyMap<HostId, HostPort>;

/** What observe saw, one {@link Observed} per host id. */
export type ObservedHosts = ReadonlyMap<HostId, Observed>;

/** The one host of a single-host run. */
export function localHosts(host: HostPort): HostPorts {
  return new Map([[LOCAL_HOST, host]]);
}

/** Per-host observations, from either one observation (one host) or the map of them. */
export function perHost(observed: Observed | ObservedHosts): ObservedHosts {
  return observed instanceof Map ? observed : new Map([[hostOf(observed as Observed), observed as Observed]]);
}

/** The definition observe read for `key`, typed by its kind (undefined when absent or of another kind). */
export function definitionOf<K extends ResourceKind>(observed: Observed, kind: K, key: string): DetailOfKind[K] | undefined {
  const d = observed.definitions.get(key);
  return d !== undefined && parseResourceKey(key).kind === kind ? (d as DetailOfKind[K]) : undefined;
}

/** The definitions observe read of one kind, by key. */
export function* definitionsOf<K extends ResourceKind>(observed: Observed, kind: K): Generator<[string, DetailOfKind[K]]> {
  for (const [key, d] of observed.definitions) if (parseResourceKey(key).kind === kind) yield [key, d as DetailOfKind[K]];
}

/** The raw inactive XML of a definition (what exact drift compares), where its kind keeps it. */
export function definitionXml(observed: Observed, key: string): string | undefined {
  const d = observed.definitions.get(key);
  return d && 'xml' in d && typeof d.xml === 'string' ? d.xml : undefined;
}

/** Whether a definition is a domain's (by shape: a domain read for any key, e.g. in a unit test's observed state). */
function isDomainDetail(d: Definition): d is DomainDetail {
  return !!d && typeof d === 'object' && 'disks' in d && Array.isArray(d.disks) && 'nics' in d && Array.isArray(d.nics) && typeof d.name === 'string';
}

/**
 * Which running domains have each disk path open, as far as observe knows: the live definition
 * where it was read (running domains with a pending restart: their persistent definition moved
 * on, `Observed.liveDisks`), else the persistent one (a running domain takes its persistent
 * definition's disks at start). Host data every kind may ask about (a volume's file held open).
 */
export function runningDiskHolders(observed: Observed): Map<string, string[]> {
  const out = new Map<string, string[]>();
  const live = observed.liveDisks;
  for (const d of observed.definitions.values()) {
    if (!isDomainDetail(d) || !observed.domains.get(d.name)?.active) continue;
    const paths = live?.get(d.name) ?? d.disks.map((x) => x.path);
    for (const p of new Set(paths)) out.set(p, [...(out.get(p) ?? []), d.name]);
  }
  return out;
}

/** The domain that runs with a disk on `path` right now (its persistent definition has it), if any. */
export async function runningDomainWithDisk(host: HostPort, observed: Observed, path: string): Promise<string | undefined> {
  const names = new Set<string>();
  for (const d of observed.definitions.values()) if (isDomainDetail(d) && d.name && d.disks.some((x) => x.path === path)) names.add(d.name);
  for (const name of names) {
    const now = await host.getDomain(name);
    if (now?.active && now.disks.some((x) => x.path === path)) return name;
  }
  return undefined;
}
