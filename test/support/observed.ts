/**
 * Plain-object builders for the reconciler's pure stages (diff, plan): a `Desired` from small
 * in-memory manifest objects (through the public `buildDesired`) and an `Observed` literal
 * (no SQLite, no files, no host). Each table row of test/unit/reconcile/*.table.test.ts is a
 * few calls on these.
 */
import type { AnyManifest, DesiredState } from '../../src/manifest/index.js';
import type { JournalEntry, ResourceIndexEntry, ResourceRecord } from '../../src/state/index.js';
import { buildDesired, resourceKey, type Desired, type DesiredResource } from '../../src/reconcile/desired.js';
import type { Observed } from '../../src/reconcile/observe.js';
import type { ObservedDomain, ObservedNetwork, ObservedPool, ObservedVolume, ResourceKind } from '../../src/reconcile/ports.js';

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

type RecordInit = Partial<Omit<ResourceIndexEntry, 'id' | 'kind' | 'name'>> & { config?: unknown };

export class ObservedBuilder {
  readonly pools = new Map<string, ObservedPool>();
  readonly networks = new Map<string, ObservedNetwork>();
  readonly domains = new Map<string, ObservedDomain>();
  readonly volumes = new Map<string, Map<string, ObservedVolume>>();
  readonly records: Observed['records'] = new Map();
  readonly openJournal = new Map<string, JournalEntry[]>();
  private journalId = 1;

  /** A pool on the host; an active pool is listed (empty) unless `listed: false`. */
  pool(name: string, o: { uuid?: string; active?: boolean; autostart?: boolean; listed?: boolean } = {}): this {
    const active = o.active ?? true;
    this.pools.set(name, { name, uuid: o.uuid ?? uuidFor('StoragePool', name), active, autostart: o.autostart ?? true });
    if (active && o.listed !== false && !this.volumes.has(name)) this.volumes.set(name, new Map());
    if (!active || o.listed === false) this.volumes.delete(name);
    return this;
  }
  /** A volume file in a listed pool; key defaults to `/pools/<pool>/<volName>`-like path given. */
  volume(pool: string, volName: string, key: string): this {
    const m = this.volumes.get(pool) ?? new Map<string, ObservedVolume>();
    m.set(volName, { pool, name: volName, key });
    this.volumes.set(pool, m);
    return this;
  }
  network(name: string, o: { uuid?: string; active?: boolean; autostart?: boolean } = {}): this {
    this.networks.set(name, { name, uuid: o.uuid ?? uuidFor('Network', name), active: o.active ?? true, autostart: o.autostart ?? true });
    return this;
  }
  domain(name: string, o: { uuid?: string; active?: boolean; autostart?: boolean } = {}): this {
    this.domains.set(name, { name, uuid: o.uuid ?? uuidFor('VirtualMachine', name), active: o.active ?? true, autostart: o.autostart ?? false });
    return this;
  }
  /** A state DB record. `config` becomes `details.config` (present when the spec changed or pruned). */
  record(kind: ResourceKind, name: string, o: RecordInit = {}): this {
    const { config, ...rest } = o;
    this.records.set(resourceKey(kind, name), {
      kind, name, uuid: null, specHash: null, desiredState: null, lastError: null, ...rest,
      ...(config !== undefined ? { details: { config } as ResourceRecord['details'] } : {}),
    });
    return this;
  }
  /** Record a desired resource as applied: uuid (volume: key path), specHash and config. */
  applied(r: DesiredResource, o: RecordInit = {}): this {
    const uuid = r.kind === 'Volume' ? r.config.path : uuidFor(r.kind, r.name);
    return this.record(r.kind, r.name, {
      uuid, specHash: r.specHash, config: r.config,
      desiredState: r.kind === 'VirtualMachine' ? r.state : 'active', ...o,
    });
  }
  /** An unresolved journal entry (an interrupted or failed run) naming kind/name. */
  journal(kind: ResourceKind, name: string, o: { action?: string; intent?: Record<string, unknown>; status?: JournalEntry['status'] } = {}): this {
    const key = resourceKey(kind, name);
    const e: JournalEntry = {
      id: this.journalId++, runId: 'run-earlier', kind, name, action: o.action ?? 'create', intent: o.intent ?? {},
      status: o.status ?? 'open', error: null, attempt: 1, startedAt: '2026-01-01T00:00:00Z', finishedAt: null,
    };
    this.openJournal.set(key, [...(this.openJournal.get(key) ?? []), e]);
    return this;
  }
  /** Remove one host object (drift: it vanished). */
  without(kind: ResourceKind, name: string, pool?: string): this {
    if (kind === 'StoragePool') { this.pools.delete(name); this.volumes.delete(name); }
    if (kind === 'Network') this.networks.delete(name);
    if (kind === 'VirtualMachine') this.domains.delete(name);
    if (kind === 'Volume') for (const [p, m] of this.volumes) if (!pool || p === pool) m.delete(name);
    return this;
  }
  build(): Observed {
    return {
      snapshot: { pools: [...this.pools.values()], networks: [...this.networks.values()], domains: [...this.domains.values()] },
      pools: new Map(this.pools), networks: new Map(this.networks), domains: new Map(this.domains),
      volumes: new Map([...this.volumes].map(([k, v]) => [k, new Map(v)])),
      records: new Map(this.records), openJournal: new Map(this.openJournal), hostCalls: 0,
    };
  }
}

export function observed(): ObservedBuilder {
  return new ObservedBuilder();
}

/**
 * A host that matches `desired` exactly, every object recorded as applied by virtform:
 * the converged starting point that rows then perturb.
 */
export function convergedHost(desired: Desired): ObservedBuilder {
  const b = new ObservedBuilder();
  for (const r of desired.resources) {
    if (r.kind === 'StoragePool') b.pool(r.name, { autostart: r.autostart });
  }
  for (const r of desired.resources) {
    switch (r.kind) {
      case 'Volume': b.volume(r.config.pool, r.config.volName, r.config.path); break;
      case 'Network': b.network(r.name, { autostart: r.autostart }); break;
      case 'VirtualMachine': b.domain(r.name, { active: r.state === 'running', autostart: r.autostart }); break;
      default: break;
    }
    b.applied(r);
  }
  return b;
}
