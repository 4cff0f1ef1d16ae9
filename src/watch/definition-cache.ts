/**
 * The watch's observed index between runs: the parsed persistent definitions observe reads
 * (`HostPort.definitions`), kept per object so that an incremental run reads again only what may
 * have changed. Everything else observe asks (the bulk listings of domains, networks, pools and
 * volumes with their state, the state DB) is asked at every run as before: only the one call per
 * object, and its XML parse, are saved.
 *
 * A kept definition is used only while the object is listed as it was when it was read (the same
 * UUID or volume key; a domain also its id, running state and autostart; a network or pool its
 * state and autostart). It is forgotten:
 * - on a libvirt domain lifecycle event of its domain (defined, undefined, started, stopped, …:
 *   `virsh edit`, `virsh define` outside virtform send `defined`);
 * - on every mutating call virtform itself makes through the port (before and after the call);
 *   a mutating call the cache cannot attribute to one object forgets everything;
 * - on {@link DefinitionCache.clear}: the full read (`--resync`, a reconnect, a requeue after a
 *   failed run, the first run, a new writer lease).
 * libvirt 9.0 sends no change events for networks, pools and volumes: their definitions changed
 * outside virtform are seen at the next full read, i.e. within the resync period. The same holds
 * for a running domain's live-only device changes (device events are not lifecycle events).
 *
 * The no-op fast path (`src/reconcile/core/checks.ts`) works on kept definitions as on read ones:
 * the caller's `DefinitionRead` (domains, volumes) is forwarded to the host's read, and a kept
 * definition whose bytes (their sha256, kept with it) are the ones `known` names is handed out
 * unparsed (`unparsed`, its sha256 in `digests`), exactly as the host's own read would. To keep
 * every definition's XML and sha256 (a volume's parse has no XML), the cache asks the host as if
 * every definition were known and parses, itself, those the caller's `known` does not name.
 *
 * Reads and invalidations can interleave (an event arrives while a read is on the wire): every
 * object has a generation, and a read stores its result only if no invalidation came meanwhile.
 */
import { LibvirtXmlError } from '../libvirt/xml/types.js';
import type { DefinitionRead, HostDefinitions, HostPort, ObservedDomain, ObservedNetwork, ObservedPool, ObservedVolume } from '../reconcile/ports.js';

type Family = 'domain' | 'network' | 'pool' | 'volume';

/** Port methods that change nothing on the host (passed through as they are). */
const READ_ONLY = new Set<string>([
  'domainType', 'domainCapabilities', 'hostIdentity', 'nodeInfo', 'snapshot', 'listVolumes', 'getPool', 'getNetwork', 'getDomain',
  'getRunningDomain', 'getVolume', 'networkLeases', 'domainInterfaceAddresses', 'downloadVolume', 'domainSnapshotCount',
  'domainBalloonKiB', 'guestOnlineVcpus', 'inactiveXml', 'versionTag', 'poolInfo', 'domainAllocations', 'mutationCount',
  'subscribeDomainEvents', 'onDisconnect', 'setMutationGuard', 'setCallObserver', 'close', 'definitions',
]);

/** Mutating port methods and the object each changes (from its arguments); any other mutating method forgets everything. */
const TARGET: Record<string, (args: unknown[]) => [Family, string][]> = {
  definePool: (a) => [['pool', nameOf(a[0])]],
  buildPool: (a) => [['pool', String(a[0])]],
  startPool: (a) => [['pool', String(a[0])]],
  setPoolAutostart: (a) => [['pool', String(a[0])]],
  deletePool: (a) => [['pool', String(a[0])]],
  // Scratch pools are never observed (nor cached): forgetting them keeps every other definition.
  removeScratchPools: (a) => (a[0] as readonly ObservedPool[]).map((p): [Family, string] => ['pool', p.name]),
  createVolume: (a) => [['volume', volumeId(a[0])]],
  resizeVolume: (a) => [['volume', `${String(a[0])}/${String(a[1])}`]],
  uploadVolume: (a) => [['volume', `${String(a[0])}/${String(a[1])}`]],
  deleteVolume: (a) => [['volume', `${String(a[0])}/${String(a[1])}`]],
  defineNetwork: (a) => [['network', nameOf(a[0])]],
  startNetwork: (a) => [['network', String(a[0])]],
  stopNetwork: (a) => [['network', String(a[0])]],
  setNetworkAutostart: (a) => [['network', String(a[0])]],
  updateNetworkDhcpHost: (a) => [['network', String(a[0])]],
  undefineNetwork: (a) => [['network', String(a[0])]],
  defineDomain: (a) => [['domain', nameOf(a[0])]],
  startDomain: (a) => [['domain', String(a[0])]],
  stopDomain: (a) => [['domain', String(a[0])]],
  setDomainAutostart: (a) => [['domain', String(a[0])]],
  undefineDomain: (a) => [['domain', String(a[0])]],
  setDomainVcpus: (a) => [['domain', String(a[0])]],
  setDomainMemory: (a) => [['domain', String(a[0])]],
  setDomainDescription: (a) => [['domain', String(a[0])]],
  resizeDomainDisk: (a) => [['domain', String(a[0])]],
};

function nameOf(def: unknown): string {
  return String((def as { name?: unknown } | undefined)?.name);
}

function volumeId(def: unknown): string {
  const d = def as { pool?: unknown; name?: unknown } | undefined;
  return `${String(d?.pool)}/${String(d?.name)}`;
}

/**
 * One kept definition: parsed (`detail`), or left unparsed by the no-op fast path (`raw` and
 * `parse`; parsed on first demand); `sha256`: of its raw bytes, where the host tells it.
 */
interface Kept<O, D> {
  listed: O;
  sha256?: string | undefined;
  detail?: D;
  raw?: { xml: string; liveXml?: string };
  parse?: () => D;
}

/** How many definitions the last runs took from the cache and how many they read. */
export interface DefinitionCacheStats {
  hits: number;
  /** Objects taken from the cache, by family. */
  hitBy: Partial<Record<Family, number>>;
  reads: number;
  /** Objects read again, by family (domain, network, pool, volume). */
  readBy: Partial<Record<Family, number>>;
}

export class DefinitionCache {
  readonly #kept: Record<Family, Map<string, Kept<unknown, unknown>>> = {
    domain: new Map(), network: new Map(), pool: new Map(), volume: new Map(),
  };
  /** Generation of each object (bumped on every invalidation) and of the whole cache (bumped on clear). */
  readonly #gens: Record<Family, Map<string, number>> = {
    domain: new Map(), network: new Map(), pool: new Map(), volume: new Map(),
  };
  #epoch = 0;
  #of: HostPort | undefined;
  #port: HostPort | undefined;
  /** Counts since the last {@link takeStats}. */
  #stats: DefinitionCacheStats = { hits: 0, hitBy: {}, reads: 0, readBy: {} };

  /** Forget every definition (the next run reads all of them: a full read). */
  clear(): void {
    this.#epoch += 1;
    for (const m of Object.values(this.#kept)) m.clear();
    for (const m of Object.values(this.#gens)) m.clear();
  }

  /** Forget one object's definition (a domain's: by name; a volume's: `pool/name`). */
  invalidate(family: Family, id: string): void {
    this.#kept[family].delete(id);
    const g = this.#gens[family];
    g.set(id, (g.get(id) ?? 0) + 1);
  }

  /** Definitions held, by family. */
  get sizes(): Record<Family, number> {
    return { domain: this.#kept.domain.size, network: this.#kept.network.size, pool: this.#kept.pool.size, volume: this.#kept.volume.size };
  }

  /** Hits and reads since the last call. */
  takeStats(): DefinitionCacheStats {
    const s = this.#stats;
    this.#stats = { hits: 0, hitBy: {}, reads: 0, readBy: {} };
    return s;
  }

  /**
   * The port the engine uses for `host`: its definition reads go through the cache, its mutating
   * calls invalidate. A new connection (another `host`) starts from an empty cache.
   */
  port(host: HostPort): HostPort {
    if (this.#of === host && this.#port) return this.#port;
    this.clear();
    this.#of = host;
    const definitions: HostDefinitions = {
      domains: (list, unreadable, fast) => this.#read('domain', list, (d) => d.name, sameDomain, (l, u, f) => host.definitions.domains(l, u, f), unreadable, undefined, fast),
      networks: (list, unreadable) => this.#read('network', list, (n) => n.name, sameNetwork, (l, u) => host.definitions.networks(l, u), unreadable),
      pools: (list, unreadable) => this.#read('pool', list, (p) => p.name, samePool, (l, u) => host.definitions.pools(l, u), unreadable),
      volumes: (list, unreadable, fast) => this.#read('volume', list, (v) => `${v.pool}/${v.name}`, sameVolume, (l, u, f) => host.definitions.volumes(l, u, f), unreadable, (v) => v.key, fast),
    };
    this.#port = new Proxy(host, {
      get: (target, prop) => {
        if (prop === 'definitions') return definitions;
        const v = Reflect.get(target, prop, target) as unknown;
        if (typeof v !== 'function' || typeof prop !== 'string' || READ_ONLY.has(prop)) {
          return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(target) : v;
        }
        return (...args: unknown[]) => {
          const forget = (): void => {
            const targets = TARGET[prop]?.(args);
            if (targets) for (const [f, id] of targets) this.invalidate(f, id);
            else this.clear();
          };
          forget();
          const r = (v as (...a: unknown[]) => unknown).apply(target, args);
          if (r instanceof Promise) return r.finally(forget);
          forget();
          return r;
        };
      },
    });
    return this.#port;
  }

  async #read<O, D>(
    family: Family, list: O[], idOf: (o: O) => string, same: (a: O, b: O) => boolean,
    read: (list: O[], unreadable?: Map<string, string>, fast?: DefinitionRead<D>) => Promise<Map<string, D>>,
    unreadable: Map<string, string> | undefined, keyOf: (o: O) => string = idOf, fast?: DefinitionRead<D>,
  ): Promise<Map<string, D>> {
    const kept = this.#kept[family] as Map<string, Kept<O, D>>;
    const out = new Map<string, D>();
    const missing: O[] = [];
    for (const o of list) {
      const k = kept.get(idOf(o));
      if (!k || !same(k.listed, o)) {
        missing.push(o);
        continue;
      }
      const id = keyOf(o);
      if (fast && k.sha256 !== undefined) fast.digests.set(id, k.sha256);
      // The no-op fast path, as the host's own read does it: bytes compared before stay unparsed.
      const raw = rawOf(k);
      if (fast && raw && k.sha256 !== undefined && fast.known.get(id) === k.sha256) fast.unparsed.set(id, { ...raw, parse: () => parsedOf(k) });
      else out.set(id, parsedOf(k));
    }
    this.#stats.hits += list.length - missing.length;
    if (list.length > missing.length) this.#stats.hitBy[family] = (this.#stats.hitBy[family] ?? 0) + list.length - missing.length;
    if (missing.length === 0) return out;
    this.#stats.reads += missing.length;
    this.#stats.readBy[family] = (this.#stats.readBy[family] ?? 0) + missing.length;
    const epoch = this.#epoch;
    const gens = this.#gens[family];
    const before = new Map(missing.map((o) => [idOf(o), gens.get(idOf(o)) ?? 0]));
    // Asked of the host as if every definition were known: each comes back unparsed with its XML
    // and sha256, both kept; it is parsed here unless the caller's `known` names those bytes.
    const digests = new Map<string, string>();
    const inner: DefinitionRead<D> | undefined = fast ? { known: new EveryDigest(digests), digests, unparsed: new Map() } : undefined;
    const fresh = await read(missing, unreadable, inner);
    for (const o of missing) {
      const id = keyOf(o);
      const sha256 = digests.get(id);
      if (sha256 !== undefined) fast!.digests.set(id, sha256);
      const u = inner?.unparsed.get(id);
      const d = fresh.get(id);
      let entry: Kept<O, D>;
      if (u) {
        const e: Kept<O, D> = { listed: o, sha256, raw: { xml: u.xml, ...(u.liveXml !== undefined ? { liveXml: u.liveXml } : {}) }, parse: u.parse };
        entry = e;
        if (fast!.known.get(id) === sha256) fast!.unparsed.set(id, { ...e.raw!, parse: () => parsedOf(e) });
        else {
          try {
            out.set(id, parsedOf(e));
          } catch (err) {
            // As the host's read names a definition its parser refuses (not kept: read again next run).
            if (!(unreadable && err instanceof LibvirtXmlError)) throw err;
            unreadable.set(id, `its definition cannot be read: ${err.message}`);
            continue;
          }
        }
      } else if (d !== undefined) {
        entry = { listed: o, sha256, detail: d };
        out.set(id, d);
      } else continue;
      const gid = idOf(o);
      if (this.#epoch === epoch && (gens.get(gid) ?? 0) === before.get(gid)) kept.set(gid, entry);
    }
    return out;
  }
}

/** The `known` of a read that leaves every definition unparsed: each definition's own sha256 (set before it is asked). */
class EveryDigest extends Map<string, string> {
  constructor(private readonly of: ReadonlyMap<string, string>) {
    super();
  }

  override get(id: string): string | undefined {
    return this.of.get(id);
  }

  override has(id: string): boolean {
    return this.of.has(id);
  }
}

/** A kept definition's parse (parsed once, on the first demand, then kept). */
function parsedOf<O, D>(k: Kept<O, D>): D {
  if (k.detail === undefined) k.detail = k.parse!();
  return k.detail;
}

/** A kept definition's raw XML: kept as read unparsed, or the parse's own (a domain's keeps its XML; a volume's does not). */
function rawOf<O, D>(k: Kept<O, D>): { xml: string; liveXml?: string } | undefined {
  if (k.raw) return k.raw;
  const d = k.detail as { xml?: unknown; liveXml?: unknown } | undefined;
  if (!d || typeof d.xml !== 'string') return undefined;
  return { xml: d.xml, ...(typeof d.liveXml === 'string' ? { liveXml: d.liveXml } : {}) };
}

const sameDomain = (a: ObservedDomain, b: ObservedDomain): boolean =>
  a.uuid === b.uuid && a.id === b.id && a.active === b.active && a.autostart === b.autostart && a.persistent === b.persistent;
const sameNetwork = (a: ObservedNetwork, b: ObservedNetwork): boolean =>
  a.uuid === b.uuid && a.active === b.active && a.autostart === b.autostart && a.persistent === b.persistent;
const samePool = (a: ObservedPool, b: ObservedPool): boolean =>
  a.uuid === b.uuid && a.active === b.active && a.autostart === b.autostart && a.persistent === b.persistent;
const sameVolume = (a: ObservedVolume, b: ObservedVolume): boolean => a.key === b.key && a.pool === b.pool && a.name === b.name;
