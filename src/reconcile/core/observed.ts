/**
 * The observed state: what observe read from the host and the state DB, as every stage and every
 * kind sees it. Types and pure lookups only (the observe stage is `../observe.ts`).
 */
import type { HostId, ResourceKind } from '../../model/kinds.js';
import { hostOf, LOCAL_HOST, parseResourceKey } from '../../model/kinds.js';
import type { DetailOfKind, DomainDetail } from '../../model/definitions.js';
import type { DomainCapabilities, HostPort, HostSnapshot, ObservedVolume, ObservedPool, ObservedNetwork, ObservedDomain, UnparsedDefinition } from '../ports.js';
import type { BaselineEntry, DefinitionCheck, JournalEntry, ResourceIndexEntry, ResourceRecord } from '../../state/index.js';

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
   * The no-op fast path (`checks.ts`): definitions read whose bytes and comparison inputs are the
   * ones an earlier run compared without a difference, by key, not parsed (not in `definitions`).
   * A kind's diff skips their comparison (`unchangedDefinition`); `definitionOf` and the other
   * lookups here parse one when something still needs it (counted in `lateParses`).
   */
  unparsed?: Map<string, UnparsedDefinition<Definition>>;
  /** sha256 of the raw definitions read of the kinds on the fast path (VMs, volumes), by key. */
  digests?: Map<string, string>;
  /** The checks earlier runs recorded (the no-op fast path), by key: observe read them. */
  checks?: Map<string, DefinitionCheck>;
  /** Unparsed definitions parsed later on demand (`definitionOf`, iteration): the fast path's misses. */
  lateParses?: number;
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

/** Parse an unparsed definition (the fast path's) into `definitions`, where there is one for `key`. */
function parseLate(observed: Observed, key: string): void {
  const u = observed.unparsed?.get(key);
  if (!u) return;
  observed.unparsed!.delete(key);
  observed.definitions.set(key, u.parse());
  observed.lateParses = (observed.lateParses ?? 0) + 1;
}

/** The definition observe read for `key`, typed by its kind (undefined when absent or of another kind). */
export function definitionOf<K extends ResourceKind>(observed: Observed, kind: K, key: string): DetailOfKind[K] | undefined {
  parseLate(observed, key);
  const d = observed.definitions.get(key);
  return d !== undefined && parseResourceKey(key).kind === kind ? (d as DetailOfKind[K]) : undefined;
}

/** The definitions observe read of one kind, by key (unparsed ones parsed). */
export function* definitionsOf<K extends ResourceKind>(observed: Observed, kind: K): Generator<[string, DetailOfKind[K]]> {
  for (const key of [...(observed.unparsed?.keys() ?? [])]) if (parseResourceKey(key).kind === kind) parseLate(observed, key);
  for (const [key, d] of observed.definitions) if (parseResourceKey(key).kind === kind) yield [key, d as DetailOfKind[K]];
}

/**
 * Whether `key`'s definition was read and left unparsed by the fast path: its bytes and the
 * comparison's inputs are the ones an earlier full comparison found no difference with, so the
 * kind's diff need not compare it (`checks.ts`). The object exists.
 */
export function unchangedDefinition(observed: Observed, key: string): boolean {
  return observed.unparsed?.has(key) === true;
}

/** Whether a definition was read for `key` (parsed or not). */
export function hasDefinition(observed: Observed, key: string): boolean {
  return observed.definitions.has(key) || unchangedDefinition(observed, key);
}

/** The raw inactive XML of a definition (what exact drift compares), where its kind keeps it; never parses. */
export function definitionXml(observed: Observed, key: string): string | undefined {
  const u = observed.unparsed?.get(key);
  if (u) return u.xml;
  const d = observed.definitions.get(key);
  return d && 'xml' in d && typeof d.xml === 'string' ? d.xml : undefined;
}

/** A running domain's live XML read with its definition; never parses. */
export function definitionLiveXml(observed: Observed, key: string): string | undefined {
  const u = observed.unparsed?.get(key);
  if (u) return u.liveXml;
  const d = observed.definitions.get(key);
  return d && 'liveXml' in d && typeof d.liveXml === 'string' ? d.liveXml : undefined;
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
export function runningDiskHolders(observed: Observed, parseUnchanged: (key: string) => boolean = () => true): Map<string, string[]> {
  const out = new Map<string, string[]>();
  const live = observed.liveDisks;
  // Unparsed definitions (the no-op fast path) of running domains are parsed (stopped ones hold no
  // file open), those a caller does not need left out (`parseUnchanged`).
  for (const key of [...(observed.unparsed?.keys() ?? [])]) {
    if (observed.domains.get(parseResourceKey(key).name)?.active && parseUnchanged(key)) parseLate(observed, key);
  }
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
  for (const key of [...(observed.unparsed?.keys() ?? [])]) parseLate(observed, key);
  for (const d of observed.definitions.values()) if (isDomainDetail(d) && d.name && d.disks.some((x) => x.path === path)) names.add(d.name);
  for (const name of names) {
    const now = await host.getDomain(name);
    if (now?.active && now.disks.some((x) => x.path === path)) return name;
  }
  return undefined;
}

/** Definitions read, parsed and left unparsed. */
export interface DefinitionCounts {
  /** Definitions read from the host. */
  read: number;
  /** Of them, parsed: by the read, or later because something needed it. */
  parsed: number;
  /** Of them, never parsed nor compared: bytes and inputs as compared before (the no-op fast path). */
  unchanged: number;
}

/** What observe read of definitions, at the time asked (`--json`'s `definitions`), in all and by kind. */
export interface DefinitionStats extends DefinitionCounts {
  byKind: Record<string, DefinitionCounts>;
}

export function definitionStats(observed: Observed): DefinitionStats {
  const out: DefinitionStats = { read: 0, parsed: 0, unchanged: 0, byKind: {} };
  const count = (key: string, parsed: boolean): void => {
    const k = (out.byKind[parseResourceKey(key).kind] ??= { read: 0, parsed: 0, unchanged: 0 });
    for (const c of [out, k]) {
      c.read += 1;
      if (parsed) c.parsed += 1;
      else c.unchanged += 1;
    }
  };
  for (const key of observed.definitions.keys()) count(key, true);
  for (const key of observed.unparsed?.keys() ?? []) count(key, false);
  return out;
}
