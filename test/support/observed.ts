/**
 * Plain-object builders for the reconciler's pure stages (diff, plan): a `Desired` from small
 * in-memory manifest objects (through the public `buildDesired`) and an `Observed` literal
 * (no SQLite, no files, no host). Each table row of test/unit/reconcile/*.table.test.ts is a
 * few calls on these.
 *
 * Every host object the builder holds has a persistent definition too, which `build()` puts in
 * `Observed.definitions` the way observe does (every pool and network; the domains and volume
 * files a declared, recorded or journaled resource names). `convergedHost()` defines each object
 * exactly as virtform's apply would (through the kinds' own `poolDef`/`volumeDef`/`networkDef`/
 * `domainDef`), so a converged host's definitions equal the desired ones; rows then perturb them
 * (`poolDef`, `volumeDef`, `networkDef`, `domainDef`) to model drift.
 */
import type { AnyManifest, DesiredState } from '../../src/manifest/index.js';
import type { JournalEntry, ResourceIndexEntry, ResourceRecord } from '../../src/state/index.js';
import { buildDesired, resourceKey, type Desired, type DesiredResource } from '../../src/reconcile/desired.js';
import type { Observed } from '../../src/reconcile/observe.js';
import type {
  DomainDetail, NetworkDetail, ObservedDomain, ObservedNetwork, ObservedPool, ObservedVolume, OwnerMarker, PoolDetail, ResourceKind,
  VolumeDetail,
} from '../../src/reconcile/ports.js';
import { LOCAL_HOST, RESOURCE_KINDS } from '../../src/model/kinds.js';
import { kindOf } from '../../src/reconcile/kinds/index.js';
import type { Locator } from '../../src/reconcile/core/kind.js';
import { poolDef } from '../../src/reconcile/kinds/pool/index.js';
import { volumeDef } from '../../src/reconcile/kinds/volume/index.js';
import { networkDef } from '../../src/reconcile/kinds/network/index.js';
import { domainDef } from '../../src/reconcile/kinds/vm/index.js';

// ---------------------------------------------------------------------------------------------
// Desired
// ---------------------------------------------------------------------------------------------

type Meta = { adopt?: boolean; labels?: Record<string, string> };
export interface ManifestSet {
  pools?: ({ name: string } & Meta & Record<string, unknown>)[];
  volumes?: ({ name: string } & Meta & Record<string, unknown>)[];
  networks?: ({ name: string } & Meta & Record<string, unknown>)[];
  vms?: ({ name: string } & Meta & Record<string, unknown>)[];
}

function manifest(kind: ResourceKind, item: { name: string } & Meta & Record<string, unknown>, line: number): AnyManifest {
  const { name, adopt, labels, ...spec } = item;
  return {
    apiVersion: 'virtform.dev/v1',
    kind,
    metadata: { name, ...(adopt !== undefined ? { adopt } : {}), ...(labels ? { labels } : {}) },
    spec,
    source: { file: 'mem.yaml', line, col: 1 },
  } as unknown as AnyManifest;
}

/** Desired state from manifest-like objects: `{ name, adopt?, labels?, ...spec }` per resource. */
export function desiredOf(set: ManifestSet): Desired {
  let line = 1;
  const pools = (set.pools ?? []).map((p) => manifest('StoragePool', p, line++));
  const volumes = (set.volumes ?? []).map((p) => manifest('Volume', p, line++));
  const networks = (set.networks ?? []).map((p) => manifest('Network', p, line++));
  const vms = (set.vms ?? []).map((p) => manifest('VirtualMachine', p, line++));
  const state = {
    dir: 'mem', files: ['mem.yaml'], manifests: [...pools, ...volumes, ...networks, ...vms],
    pools, volumes, networks, vms, digest: 'digest-of-test-manifests',
  } as unknown as DesiredState;
  return buildDesired(state);
}

/** The desired resource with this kind and name (throws when absent: a broken table row). */
export function res(desired: Desired, kind: ResourceKind, name: string): DesiredResource {
  const r = desired.byKey.get(resourceKey(kind, name));
  if (!r) throw new Error(`test setup: no desired ${kind}/${name}`);
  return r;
}

// ---------------------------------------------------------------------------------------------
// Observed
// ---------------------------------------------------------------------------------------------

/** A deterministic UUID-shaped id for a kind and name (and a variant, for foreign objects). */
export function uuidFor(kind: ResourceKind, name: string, variant = 0): string {
  let h = 0x811c9dc5 ^ variant;
  for (const ch of `${kind}/${name}/${variant}`) h = Math.imul(h ^ ch.charCodeAt(0), 0x01000193) >>> 0;
  const hex = (h.toString(16).padStart(8, '0') + name.length.toString(16).padStart(4, '0')).slice(0, 12);
  return `${hex.slice(0, 8)}-0000-4000-8000-${hex.padEnd(12, '0')}`;
}

/** The MAC libvirt would generate for NIC `index` of a domain defined without one (deterministic here). */
export function generatedMac(domain: string, index: number): string {
  const hex = uuidFor('VirtualMachine', `${domain}#${index}`).slice(0, 6);
  return `52:54:00:${hex.slice(0, 2)}:${hex.slice(2, 4)}:${hex.slice(4, 6)}`;
}

/** Size of a volume file added with `volume()` without a capacity (the fixtures' DATA size). */
export const DEFAULT_FILE_BYTES = 32 * 1024 * 1024;

type RecordInit = Partial<Omit<ResourceIndexEntry, 'id' | 'kind' | 'name'>> & { config?: unknown };
/** A persistent definition without the listing's fields (uuid, active, autostart come from the object). */
type PoolDefinition = Omit<PoolDetail, 'uuid' | 'active' | 'autostart'>;
type NetworkDefinition = Omit<NetworkDetail, 'uuid' | 'active' | 'autostart'>;
type DomainDefinition = Omit<DomainDetail, 'uuid' | 'active' | 'autostart'>;
/** What libvirt writes into an x86 definition without `<cpu>`. */
const DEFAULT_CPU = { mode: 'custom', model: 'qemu64' };

export class ObservedBuilder {
  readonly pools = new Map<string, ObservedPool>();
  readonly networks = new Map<string, ObservedNetwork>();
  readonly domains = new Map<string, ObservedDomain>();
  readonly volumes = new Map<string, Map<string, ObservedVolume>>();
  readonly records: Observed['records'] = new Map();
  readonly openJournal = new Map<string, JournalEntry[]>();
  /** Persistent definitions of the host objects: pools, networks, domains by name; volume files by key. */
  readonly poolDefs = new Map<string, PoolDefinition>();
  readonly networkDefs = new Map<string, NetworkDefinition>();
  readonly domainDefs = new Map<string, DomainDefinition>();
  readonly volumeDefs = new Map<string, VolumeDetail>();
  private journalId = 1;
  private domainId = 1;

  /**
   * A pool on the host; an active pool is listed (empty) unless `listed: false`. Its definition
   * (target path, default `/pools/<name>`) is kept when the pool is there already, unless `path`.
   */
  pool(name: string, o: { uuid?: string; active?: boolean; autostart?: boolean; listed?: boolean; path?: string } = {}): this {
    const active = o.active ?? true;
    const was = this.pools.get(name);
    this.pools.set(name, { name, uuid: o.uuid ?? was?.uuid ?? uuidFor('StoragePool', name), active, autostart: o.autostart ?? was?.autostart ?? true });
    if (active && o.listed !== false && !this.volumes.has(name)) this.volumes.set(name, new Map());
    if (!active || o.listed === false) this.volumes.delete(name);
    if (o.path !== undefined || !this.poolDefs.has(name)) this.poolDefs.set(name, { name, path: o.path ?? this.poolDefs.get(name)?.path ?? `/pools/${name}` });
    return this;
  }
  /**
   * A volume file in a listed pool. Its definition defaults to a file of DEFAULT_FILE_BYTES in the
   * format its extension names, without backing store; given fields replace those (or the ones
   * it has already).
   */
  volume(pool: string, volName: string, key: string, o: Partial<Pick<VolumeDetail, 'capacityBytes' | 'format' | 'backingPath'>> = {}): this {
    const m = this.volumes.get(pool) ?? new Map<string, ObservedVolume>();
    m.set(volName, { pool, name: volName, key });
    this.volumes.set(pool, m);
    const was = this.volumeDefs.get(key);
    this.volumeDefs.set(key, {
      pool, name: volName, key, path: key,
      capacityBytes: was?.capacityBytes ?? DEFAULT_FILE_BYTES, format: was?.format ?? (volName.endsWith('.qcow2') ? 'qcow2' : 'raw'),
      ...(was?.backingPath !== undefined ? { backingPath: was.backingPath } : {}),
      ...Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)),
    });
    return this;
  }
  /** A network; a new one is defined as an isolated network without IP and without owner marker. */
  network(name: string, o: { uuid?: string; active?: boolean; autostart?: boolean; def?: NetworkDefinition } = {}): this {
    const was = this.networks.get(name);
    this.networks.set(name, { name, uuid: o.uuid ?? was?.uuid ?? uuidFor('Network', name), active: o.active ?? was?.active ?? true, autostart: o.autostart ?? was?.autostart ?? true });
    if (o.def || !this.networkDefs.has(name)) this.networkDefs.set(name, o.def ?? { name, mode: 'isolated' });
    return this;
  }
  /** A domain (a new libvirt id at each start); a new one is defined with 1 vCPU, 64 MiB, no disk or NIC, no marker. */
  domain(name: string, o: { uuid?: string; active?: boolean; autostart?: boolean; def?: DomainDefinition } = {}): this {
    const was = this.domains.get(name);
    const active = o.active ?? was?.active ?? true;
    const id = active ? (was?.active ? was.id : this.domainId++) : -1;
    this.domains.set(name, { name, uuid: o.uuid ?? was?.uuid ?? uuidFor('VirtualMachine', name), id, active, autostart: o.autostart ?? was?.autostart ?? false });
    if (o.def || !this.domainDefs.has(name)) {
      this.domainDefs.set(name, o.def ?? { name, vcpus: 1, maxVcpus: 1, memoryKiB: 64 * 1024, maxMemoryKiB: 64 * 1024, balloon: 'virtio', cpu: DEFAULT_CPU, graphics: [], guestAgent: true, disks: [], nics: [] });
    }
    return this;
  }

  // --- drift: a definition changed behind virtform's back -------------------------------------
  poolDef(name: string, patch: Partial<PoolDefinition>): this {
    this.poolDefs.set(name, { ...this.need(this.poolDefs, name), ...patch });
    return this;
  }
  networkDef(name: string, patch: Partial<NetworkDefinition>): this {
    this.networkDefs.set(name, { ...this.need(this.networkDefs, name), ...patch });
    return this;
  }
  domainDef(name: string, patch: Partial<DomainDefinition>): this {
    this.domainDefs.set(name, { ...this.need(this.domainDefs, name), ...patch });
    return this;
  }
  /** Change the file of volume `volName` in `pool` (a `backingPath: undefined` removes its backing store). */
  volumeDef(pool: string, volName: string, patch: Partial<Pick<VolumeDetail, 'capacityBytes' | 'format' | 'backingPath'>>): this {
    const key = this.volumes.get(pool)?.get(volName)?.key;
    if (!key) throw new Error(`test setup: no volume ${volName} listed in pool ${pool}`);
    const next = { ...this.need(this.volumeDefs, key), ...patch };
    if ('backingPath' in patch && patch.backingPath === undefined) delete next.backingPath;
    this.volumeDefs.set(key, next);
    return this;
  }
  private need<V>(m: Map<string, V>, key: string): V {
    const v = m.get(key);
    if (!v) throw new Error(`test setup: no definition of ${key}`);
    return v;
  }

  /** A state DB record. `config` becomes `details.config` (present when the spec changed or pruned). */
  record(kind: ResourceKind, name: string, o: RecordInit = {}): this {
    const { config, ...rest } = o;
    this.records.set(resourceKey(kind, name), {
      kind, name, uuid: null, specHash: null, desiredState: null, lastError: null, ...rest,
      ...(config !== undefined ? { details: { config, ...(rest.facts ? { facts: rest.facts } : {}) } as ResourceRecord['details'] } : {}),
    });
    return this;
  }
  /**
   * Record a desired resource as applied: uuid (volume: key path), specHash and config; a VM also
   * with the facts its define records (the MAC of each NIC, the virtio balloon).
   */
  applied(r: DesiredResource, o: RecordInit = {}): this {
    const uuid = r.kind === 'Volume' ? r.config.path : uuidFor(r.kind, r.name);
    const facts = r.kind === 'VirtualMachine'
      ? { balloon: 'virtio', nics: r.config.nics.map((n, i) => ({ network: n.network, model: n.model, mac: n.mac ?? generatedMac(r.name, i), declared: !!n.mac })) }
      : undefined;
    return this.record(r.kind, r.name, {
      uuid, specHash: r.specHash, config: r.config,
      desiredState: r.kind === 'VirtualMachine' ? r.state : 'active', ...(facts ? { facts } : {}), ...o,
    });
  }
  /** An unresolved journal entry (an interrupted or failed run) naming kind/name. */
  journal(kind: ResourceKind, name: string, o: { action?: string; intent?: Record<string, unknown>; status?: JournalEntry['status'] } = {}): this {
    const key = resourceKey(kind, name);
    const e: JournalEntry = {
      id: this.journalId++, runId: 'run-earlier', kind, name, host: LOCAL_HOST, action: o.action ?? 'create', intent: o.intent ?? {},
      status: o.status ?? 'open', error: null, attempt: 1, startedAt: '2026-01-01T00:00:00Z', finishedAt: null,
    };
    this.openJournal.set(key, [...(this.openJournal.get(key) ?? []), e]);
    return this;
  }
  /** Remove one host object (drift: it vanished). */
  without(kind: ResourceKind, name: string, pool?: string): this {
    if (kind === 'StoragePool') {
      this.pools.delete(name); this.poolDefs.delete(name);
      for (const v of this.volumes.get(name)?.values() ?? []) this.volumeDefs.delete(v.key);
      this.volumes.delete(name);
    }
    if (kind === 'Network') { this.networks.delete(name); this.networkDefs.delete(name); }
    if (kind === 'VirtualMachine') { this.domains.delete(name); this.domainDefs.delete(name); }
    if (kind === 'Volume') {
      for (const [p, m] of this.volumes) {
        if (pool && p !== pool) continue;
        const v = m.get(name);
        if (v) this.volumeDefs.delete(v.key);
        m.delete(name);
      }
    }
    return this;
  }

  /**
   * The Observed literal. `desired` (the row's desired state) decides, as in observe, which
   * definitions were read: every pool and network on the host, and the domains and volume files
   * that a declared, recorded or journaled resource names.
   */
  build(desired?: Desired): Observed {
    const o: Observed = {
      snapshot: { pools: [...this.pools.values()], networks: [...this.networks.values()], domains: [...this.domains.values()] },
      pools: new Map(this.pools), networks: new Map(this.networks), domains: new Map(this.domains),
      volumes: new Map([...this.volumes].map(([k, v]) => [k, new Map(v)])),
      records: new Map(this.records), openJournal: new Map(this.openJournal), definitions: new Map(), unreadable: new Map(), hostCalls: 0,
    };
    // Who wants a definition read, exactly as observe.ts builds it.
    const wanted = new Map<ResourceKind, Map<string, { name: string; where: Locator }>>(RESOURCE_KINDS.map((k) => [k, new Map()]));
    for (const r of desired?.resources ?? []) wanted.get(r.kind)!.set(r.key, { name: r.name, where: { config: r.config } });
    for (const [key, r] of o.records) {
      const w = wanted.get(r.kind as ResourceKind);
      if (w && !w.has(key)) w.set(key, { name: r.name, where: { config: r.details?.config, intents: o.openJournal.get(key)?.map((j) => j.intent) } });
    }
    for (const [key, entries] of o.openJournal) {
      const w = wanted.get(entries[0]!.kind as ResourceKind);
      if (w && !w.has(key)) w.set(key, { name: entries[0]!.name, where: { intents: entries.map((j) => j.intent) } });
    }
    const listed = <L extends { uuid: string; active: boolean; autostart: boolean }, D>(l: L, d: D) =>
      ({ ...d, uuid: l.uuid, active: l.active, autostart: l.autostart });
    for (const [name, p] of this.pools) o.definitions.set(resourceKey('StoragePool', name), listed(p, this.poolDefs.get(name)!));
    for (const [name, n] of this.networks) o.definitions.set(resourceKey('Network', name), listed(n, this.networkDefs.get(name)!));
    for (const [key, w] of wanted.get('VirtualMachine')!) {
      const d = this.domains.get(w.name);
      if (d) o.definitions.set(key, listed(d, this.domainDefs.get(w.name)!));
    }
    const seen = new Set<string>();
    for (const [key, w] of wanted.get('Volume')!) {
      const file = kindOf('Volume').identity(o, w.name, w.where) as string | undefined;
      if (file === undefined || seen.has(file)) continue;
      seen.add(file);
      o.definitions.set(key, { ...this.volumeDefs.get(file)! });
    }
    return o;
  }
}

export function observed(): ObservedBuilder {
  return new ObservedBuilder();
}

/** What virtform writes for a desired resource, as the host's definition (listing fields aside). */
function definitionOf(r: DesiredResource): PoolDefinition | NetworkDefinition | DomainDefinition | VolumeDetail {
  const strip = <T extends { uuid?: string }>(d: T): Omit<T, 'uuid'> => {
    const { uuid: _u, ...rest } = d;
    return rest;
  };
  switch (r.kind) {
    case 'StoragePool': {
      // libvirt's pool XML has no <metadata>: the marker is not stored.
      const { marker: _m, ...d } = strip(poolDef(r));
      return d;
    }
    case 'Volume': {
      const v = volumeDef(r);
      return {
        pool: v.pool, name: v.name, key: r.config.path, path: r.config.path, capacityBytes: v.capacityBytes, format: v.format,
        ...(v.backing ? { backingPath: v.backing.path } : {}),
      };
    }
    case 'Network':
      return strip(networkDef(r));
    case 'VirtualMachine': {
      const d = domainDef(r, 'qemu');
      return {
        name: d.name, vcpus: d.vcpus, maxVcpus: d.maxVcpus ?? d.vcpus, memoryKiB: d.memoryKiB, maxMemoryKiB: d.maxMemoryKiB ?? d.memoryKiB,
        balloon: 'virtio', ...(d.description ? { description: d.description } : {}),
        cpu: d.cpu ? { ...d.cpu } : DEFAULT_CPU,
        graphics: d.graphics ? [{ type: d.graphics.type, listen: d.graphics.listen }] : [],
        guestAgent: d.guestAgent ?? true,
        disks: d.disks.map((x) => ({ path: x.path, target: x.target, bus: x.bus, format: x.format, ...(x.bootOrder !== undefined ? { bootOrder: x.bootOrder } : {}) })),
        nics: d.nics.map((x, i) => ({ network: x.network, mac: x.mac ?? generatedMac(d.name, i), model: x.model })),
        marker: d.marker as OwnerMarker,
      };
    }
    case 'Snapshot':
      throw new Error('internal error: the observed builder does not build snapshots (use the FakeHost)');
  }
}

/**
 * A host that matches `desired` exactly, every object recorded as applied by virtform and
 * defined as virtform's apply defines it: the converged starting point that rows then perturb.
 */
export function convergedHost(desired: Desired): ObservedBuilder {
  const b = new ObservedBuilder();
  for (const r of desired.resources) {
    if (r.kind === 'StoragePool') b.pool(r.name, { autostart: r.autostart, path: r.config.path });
  }
  for (const r of desired.resources) {
    switch (r.kind) {
      case 'Volume': {
        const v = definitionOf(r) as VolumeDetail;
        b.volume(r.config.pool, r.config.volName, r.config.path, { capacityBytes: v.capacityBytes, format: v.format, backingPath: v.backingPath });
        break;
      }
      case 'Network': b.network(r.name, { autostart: r.autostart, def: definitionOf(r) as NetworkDefinition }); break;
      case 'VirtualMachine': b.domain(r.name, { active: r.state === 'running', autostart: r.autostart, def: definitionOf(r) as DomainDefinition }); break;
      default: break;
    }
    b.applied(r);
  }
  return b;
}
