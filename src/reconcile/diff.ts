/**
 * Diff: desired resources against observed objects and recorded state.
 *
 * For each resource the diff decides one change (create, update, replace, delete or conflict),
 * the field-level before → after, a human reason, and the ordered steps that carry it out.
 * Runtime fields (running/stopped, active, autostart) are compared against the bulk list calls;
 * definition fields against the config recorded in the state DB when virtform last applied it.
 */
import type { DhcpHost, ResourceKind } from './ports.js';
import type { Observed } from './observe.js';
import { ownershipOf, type Ownership } from './ownership.js';
import {
  type Desired,
  type DesiredResource,
  type DesiredPool,
  type DesiredVolume,
  type DesiredNetwork,
  type DesiredVm,
  type NetworkConfig,
  type VolumeConfig,
  type VmConfig,
  type PoolConfig,
  resourceKey,
  canonicalJson,
  KIND_ORDER,
} from './desired.js';

export type StepOp =
  | { op: 'pool.ensure'; define: boolean; start: boolean; autostart?: boolean }
  | { op: 'pool.delete' }
  | { op: 'volume.create'; recreate?: boolean }
  | { op: 'volume.resize'; capacityBytes: number }
  | { op: 'volume.delete'; pool: string; volName: string }
  | { op: 'network.ensure'; define: boolean; start: boolean; autostart?: boolean; addHosts: DhcpHost[]; deleteHosts: DhcpHost[] }
  | { op: 'network.delete' }
  | { op: 'vm.define'; define: boolean; autostart?: boolean }
  | { op: 'vm.start' }
  | { op: 'vm.stop'; graceful: boolean }
  | { op: 'vm.delete' }
  | { op: 'record.forget' };

export const TEARDOWN_OPS = new Set<StepOp['op']>([
  'pool.delete', 'volume.delete', 'network.delete', 'vm.stop', 'vm.delete', 'record.forget',
]);

export const STEP_LABELS: Record<StepOp['op'], string> = {
  'pool.ensure': 'ensure pool', 'pool.delete': 'delete pool',
  'volume.create': 'create volume', 'volume.resize': 'resize volume', 'volume.delete': 'delete volume',
  'network.ensure': 'ensure network', 'network.delete': 'delete network',
  'vm.define': 'define domain', 'vm.start': 'start domain', 'vm.stop': 'stop domain', 'vm.delete': 'delete domain',
  'record.forget': 'forget record',
};

export type ChangeAction = 'create' | 'update' | 'replace' | 'delete' | 'conflict';

export interface FieldChange {
  field: string;
  before: unknown;
  after: unknown;
}

export interface ResourceChange {
  key: string;
  kind: ResourceKind;
  name: string;
  action: ChangeAction;
  reason: string;
  fields: FieldChange[];
  notes: string[];
  steps: StepOp[];
  desired?: DesiredResource;
  /** Config recorded at the last apply (for deletes and replaces). */
  previous?: unknown;
  ownership: Ownership['state'];
  /** Adopting a foreign object declared with metadata.adopt. */
  adopt?: boolean;
  /** The change corrects drift: the host no longer matches what virtform applied. */
  drift: boolean;
}

export interface DiffOptions {
  /** Stop VMs gracefully (ACPI) before forcing them off. */
  gracefulStop?: boolean;
}

type Config = PoolConfig | VolumeConfig | NetworkConfig | VmConfig;

function recordedConfig(observed: Observed, key: string): Config | undefined {
  const cfg = observed.records.get(key)?.details?.config;
  return cfg && typeof cfg === 'object' ? (cfg as Config) : undefined;
}

function flatten(value: unknown, prefix: string, out: Map<string, unknown>): void {
  if (Array.isArray(value)) {
    if (value.length === 0) out.set(prefix, []);
    value.forEach((v, i) => flatten(v, `${prefix}[${i}]`, out));
  } else if (value && typeof value === 'object') {
    for (const [k, v] of Object.entries(value)) if (v !== undefined) flatten(v, prefix ? `${prefix}.${k}` : k, out);
  } else if (value !== undefined) {
    out.set(prefix, value);
  }
}

/** Field-level differences between two configs, as `path: before → after`. */
export function fieldChanges(before: unknown, after: unknown, prefix = 'spec'): FieldChange[] {
  const a = new Map<string, unknown>();
  const b = new Map<string, unknown>();
  flatten(before, prefix, a);
  flatten(after, prefix, b);
  const keys = [...new Set([...a.keys(), ...b.keys()])].sort();
  return keys
    .filter((k) => canonicalJson(a.get(k)) !== canonicalJson(b.get(k)))
    .map((k) => ({ field: k, before: a.get(k), after: b.get(k) }));
}

function pick<T extends object>(obj: T | undefined, keys: (keyof T)[]): Partial<T> {
  const out: Partial<T> = {};
  if (!obj) return out;
  for (const k of keys) if (obj[k] !== undefined) out[k] = obj[k];
  return out;
}

function change(
  r: DesiredResource,
  action: ChangeAction,
  reason: string,
  ownership: Ownership,
  extra: Partial<ResourceChange> = {},
): ResourceChange {
  return {
    key: r.key, kind: r.kind, name: r.name, action, reason,
    fields: [], notes: [], steps: [], desired: r, ownership: ownership.state, drift: false, ...extra,
  };
}

function interruptedOr(own: Ownership, otherwise: string): string {
  return own.state === 'owned' && own.via === 'journal' ? 'finishing an operation interrupted in an earlier run' : otherwise;
}

/** Why something recorded must be created: it vanished (drift) or its creation failed before. */
function isMissingDrift(record: { uuid: string | null } | undefined): boolean {
  return !!record?.uuid;
}

function createReason(record: { uuid: string | null; lastError: string | null } | undefined): string {
  if (!record) return 'new';
  if (!record.uuid) return record.lastError ? `retrying after failure: ${record.lastError}` : 'new';
  return 'recorded but missing on the host (drift)';
}

function conflictOrAdopt(r: DesiredResource, own: Ownership): ResourceChange | undefined {
  if (own.state !== 'foreign') return undefined;
  if (r.adopt) return undefined;
  return change(r, 'conflict', `${own.reason}; set metadata.adopt: true to let virtform take it over`, own);
}

// ---------------------------------------------------------------------------------------------

function diffPool(r: DesiredPool, observed: Observed): ResourceChange | undefined {
  const key = r.key;
  const own = ownershipOf(observed, r.kind, r.name, undefined, key);
  const conflict = conflictOrAdopt(r, own);
  if (conflict) return conflict;
  const obs = observed.pools.get(r.name);
  if (own.state === 'absent' || !obs) {
    return change(r, 'create', createReason(observed.records.get(key)), own, {
      drift: isMissingDrift(observed.records.get(key)),
      fields: fieldChanges(undefined, { ...r.config, autostart: r.autostart }),
      steps: [{ op: 'pool.ensure', define: true, start: true, autostart: r.autostart }],
    });
  }
  const prev = recordedConfig(observed, key) as PoolConfig | undefined;
  const adopting = own.state === 'foreign';
  const configChanged = adopting || observed.records.get(key)?.specHash !== r.specHash;
  if (configChanged && prev && prev.path !== r.config.path) {
    return change(r, 'replace', 'spec.path is immutable for a directory pool', own, {
      fields: fieldChanges(prev, r.config), previous: prev,
      steps: [{ op: 'pool.delete' }, { op: 'pool.ensure', define: true, start: true, autostart: r.autostart }],
    });
  }
  const fields: FieldChange[] = [];
  const reasons: string[] = [];
  let drift = false;
  if (configChanged) {
    fields.push(...fieldChanges(prev, r.config));
    reasons.push(adopting ? 'adopting existing pool (metadata.adopt)' : interruptedOr(own, 'definition changed'));
  }
  if (!obs.active) {
    fields.push({ field: 'status', before: 'inactive', after: 'active' });
    reasons.push('pool is inactive (drift)');
    drift = true;
  }
  if (obs.autostart !== r.autostart) fields.push({ field: 'spec.autostart', before: obs.autostart, after: r.autostart });
  if (fields.length === 0 && !configChanged) return undefined;
  return change(r, 'update', reasons.join('; ') || 'autostart differs', own, {
    fields, adopt: adopting, drift,
    steps: [{
      op: 'pool.ensure', define: configChanged, start: !obs.active,
      autostart: obs.autostart !== r.autostart || configChanged ? r.autostart : undefined,
    }],
  });
}

function diffVolume(r: DesiredVolume, observed: Observed): ResourceChange | undefined {
  const key = r.key;
  const own = ownershipOf(observed, r.kind, r.name, r.config, key);
  const record = observed.records.get(key);
  // Owned and applied with this very spec: nothing to do (the common case of a converged host).
  if (own.state === 'owned' && record?.specHash === r.specHash) return undefined;
  const conflict = conflictOrAdopt(r, own);
  if (conflict) return conflict;
  const prev = recordedConfig(observed, key) as VolumeConfig | undefined;
  if (own.state === 'absent') {
    const poolListed = observed.volumes.has(r.config.pool);
    if (!poolListed && record?.specHash === r.specHash) return undefined; // pool inactive: verified next run
    if (record && prev && record.specHash !== r.specHash && prev.path !== r.config.path) {
      // The old file (other name or pool) goes; the new one is created.
      return change(r, 'replace', replaceReason(prev, r.config), own, {
        fields: fieldChanges(prev, r.config), previous: prev,
        steps: [{ op: 'volume.delete', pool: prev.pool, volName: prev.volName }, { op: 'volume.create' }],
      });
    }
    return change(r, 'create', createReason(record), own, {
      drift: isMissingDrift(record),
      fields: fieldChanges(undefined, r.config), steps: [{ op: 'volume.create' }],
    });
  }
  const adopting = own.state === 'foreign';
  if (!prev && own.state === 'owned' && own.via === 'journal') {
    // Created by an interrupted run and never recorded: its contents are unknown, so make it again.
    return change(r, 'create', 'finishing a creation interrupted in an earlier run', own, {
      fields: fieldChanges(undefined, r.config), steps: [{ op: 'volume.create', recreate: true }],
    });
  }
  if (!prev) {
    // Adopted, or recorded without config: take the object as it is and record it.
    return change(r, 'update', adopting ? 'adopting existing volume (metadata.adopt)' : 'recording volume', own, {
      adopt: adopting, steps: [{ op: 'volume.resize', capacityBytes: r.config.capacityBytes }],
    });
  }
  const immutable: (keyof VolumeConfig)[] = ['pool', 'volName', 'path', 'format', 'backingVolume', 'backingPath', 'sourcePath'];
  const immutableChanged = canonicalJson(pick(prev, immutable)) !== canonicalJson(pick(r.config, immutable));
  const shrink = r.config.capacityBytes < prev.capacityBytes;
  if (immutableChanged || shrink) {
    return change(r, 'replace', replaceReason(prev, r.config), own, {
      fields: fieldChanges(prev, r.config), previous: prev,
      notes: ['the volume is recreated empty: its current contents are lost'],
      steps: [{ op: 'volume.delete', pool: prev.pool, volName: prev.volName }, { op: 'volume.create' }],
    });
  }
  return change(r, 'update', 'capacity grows in place', own, {
    fields: fieldChanges(prev, r.config),
    steps: [{ op: 'volume.resize', capacityBytes: r.config.capacityBytes }],
  });
}

function replaceReason(prev: VolumeConfig, next: VolumeConfig): string {
  if (prev.format !== next.format) return `format is immutable (${prev.format} → ${next.format})`;
  if ((prev.backingVolume ?? '') !== (next.backingVolume ?? '') || prev.backingPath !== next.backingPath)
    return 'backing volume is immutable';
  if ((prev.sourcePath ?? '') !== (next.sourcePath ?? '')) return 'source image changed';
  if (prev.pool !== next.pool || prev.path !== next.path) return 'volume moves to another pool or path';
  if (next.capacityBytes < prev.capacityBytes) return 'capacity cannot shrink in place';
  return 'immutable field changed';
}

function hostKey(h: DhcpHost): string {
  return canonicalJson({ mac: h.mac.toLowerCase(), ip: h.ip, name: h.name });
}

function diffNetwork(r: DesiredNetwork, observed: Observed): ResourceChange | undefined {
  const key = r.key;
  const own = ownershipOf(observed, r.kind, r.name, undefined, key);
  const conflict = conflictOrAdopt(r, own);
  if (conflict) return conflict;
  const obs = observed.networks.get(r.name);
  const record = observed.records.get(key);
  const full = { ...r.config, autostart: r.autostart };
  if (own.state === 'absent' || !obs) {
    return change(r, 'create', createReason(record), own, {
      drift: isMissingDrift(record),
      fields: fieldChanges(undefined, full),
      steps: [{ op: 'network.ensure', define: true, start: true, autostart: r.autostart, addHosts: [], deleteHosts: [] }],
    });
  }
  const adopting = own.state === 'foreign';
  const prev = recordedConfig(observed, key) as NetworkConfig | undefined;
  const configChanged = adopting || record?.specHash !== r.specHash;
  const immutable: (keyof NetworkConfig)[] = ['mode', 'bridge', 'cidr', 'ipv4', 'dhcpRange'];
  if (configChanged && prev && canonicalJson(pick(prev, immutable)) !== canonicalJson(pick(r.config, immutable))) {
    return change(r, 'replace', 'mode, bridge, CIDR or DHCP range changed: the network is recreated', own, {
      fields: fieldChanges(prev, r.config), previous: prev,
      notes: ['VMs attached to it are stopped before and started after'],
      steps: [
        { op: 'network.delete' },
        { op: 'network.ensure', define: true, start: true, autostart: r.autostart, addHosts: [], deleteHosts: [] },
      ],
    });
  }
  const fields: FieldChange[] = [];
  const reasons: string[] = [];
  let drift = false;
  let addHosts: DhcpHost[] = [];
  let deleteHosts: DhcpHost[] = [];
  let define = false;
  if (configChanged) {
    if (prev) {
      const before = new Set(prev.dhcpHosts.map(hostKey));
      const after = new Set(r.config.dhcpHosts.map(hostKey));
      addHosts = r.config.dhcpHosts.filter((h) => !before.has(hostKey(h)));
      deleteHosts = prev.dhcpHosts.filter((h) => !after.has(hostKey(h)));
      fields.push(...fieldChanges(prev, r.config));
      reasons.push('DHCP host entries changed (updated live)');
    } else {
      define = true; // adopted: take it over with our definition
      reasons.push(adopting ? 'adopting existing network (metadata.adopt)' : interruptedOr(own, 'recording network'));
    }
  }
  if (!obs.active) {
    fields.push({ field: 'status', before: 'inactive', after: 'active' });
    reasons.push('network is inactive (drift)');
    drift = true;
  }
  if (obs.autostart !== r.autostart) fields.push({ field: 'spec.autostart', before: obs.autostart, after: r.autostart });
  if (fields.length === 0 && !configChanged) return undefined;
  return change(r, 'update', reasons.join('; ') || 'autostart differs', own, {
    fields, adopt: adopting, drift,
    steps: [{
      op: 'network.ensure', define, start: !obs.active,
      autostart: obs.autostart !== r.autostart || define ? r.autostart : undefined,
      addHosts, deleteHosts,
    }],
  });
}

function diffVm(r: DesiredVm, observed: Observed, opts: DiffOptions): ResourceChange | undefined {
  const key = r.key;
  const own = ownershipOf(observed, r.kind, r.name, undefined, key);
  const obs = observed.domains.get(r.name);
  const record = observed.records.get(key);
  const wantRunning = r.state === 'running';
  // Owned, applied with this very spec, in the desired state: nothing to do (a converged host).
  if (own.state === 'owned' && obs && record?.specHash === r.specHash && obs.autostart === r.autostart && obs.active === wantRunning) {
    return undefined;
  }
  const conflict = conflictOrAdopt(r, own);
  if (conflict) return conflict;
  if (own.state === 'absent' || !obs) {
    return change(r, 'create', createReason(record), own, {
      drift: isMissingDrift(record),
      fields: fieldChanges(undefined, { ...r.config, state: r.state, autostart: r.autostart }),
      steps: [
        { op: 'vm.define', define: true, autostart: r.autostart },
        ...(r.state === 'running' ? [{ op: 'vm.start' as const }] : []),
      ],
    });
  }
  const adopting = own.state === 'foreign';
  const prev = recordedConfig(observed, key) as VmConfig | undefined;
  const configChanged = adopting || record?.specHash !== r.specHash;
  const fields: FieldChange[] = [];
  const reasons: string[] = [];
  const notes: string[] = [];
  const steps: StepOp[] = [];
  let drift = false;
  if (obs.active && !wantRunning) {
    steps.push({ op: 'vm.stop', graceful: opts.gracefulStop ?? true });
    fields.push({ field: 'spec.state', before: 'running', after: 'stopped' });
    reasons.push('desired stopped');
  }
  if (configChanged || obs.autostart !== r.autostart) {
    steps.push({
      op: 'vm.define', define: configChanged,
      autostart: obs.autostart !== r.autostart || configChanged ? r.autostart : undefined,
    });
    if (configChanged) {
      fields.push(...fieldChanges(prev, r.config));
      reasons.push(adopting ? 'adopting existing domain (metadata.adopt)' : interruptedOr(own, 'definition changed'));
      if (obs.active && wantRunning) notes.push('definition changes take effect on next boot');
    }
    if (obs.autostart !== r.autostart) fields.push({ field: 'spec.autostart', before: obs.autostart, after: r.autostart });
  }
  if (!obs.active && wantRunning) {
    steps.push({ op: 'vm.start' });
    fields.push({ field: 'spec.state', before: 'stopped', after: 'running' });
    reasons.push(record?.desiredState === 'running' ? 'domain is stopped (drift)' : 'desired running');
    drift = record?.desiredState === 'running';
  }
  if (steps.length === 0) return undefined;
  return change(r, 'update', reasons.join('; ') || 'autostart differs', own, { fields, notes, steps, adopt: adopting, drift });
}

/** Keys that the state DB records or the journal names but no manifest declares, each once. */
function* undeclaredKeys(desired: Desired, observed: Observed): Generator<string> {
  for (const key of observed.records.keys()) if (!desired.byKey.has(key)) yield key;
  for (const key of observed.openJournal.keys()) if (!desired.byKey.has(key) && !observed.records.has(key)) yield key;
}

/** Deletes for what virtform owns (recorded, or half-created in an interrupted run) but no manifest declares. */
function diffPrune(desired: Desired, observed: Observed): ResourceChange[] {
  const out: ResourceChange[] = [];
  for (const key of undeclaredKeys(desired, observed)) {
    const record = observed.records.get(key);
    const journal = observed.openJournal.get(key) ?? [];
    const kind = (record?.kind ?? journal[0]?.kind) as ResourceKind;
    const name = record?.name ?? journal[0]?.name ?? '';
    const prev = recordedConfig(observed, key);
    let volume: { pool: string; volName: string } | undefined;
    if (kind === 'Volume') {
      const fromRecord = prev as VolumeConfig | undefined;
      const intent = journal.find((j) => typeof j.intent.pool === 'string')?.intent;
      const pool = fromRecord?.pool ?? (intent?.pool as string | undefined);
      const volName = fromRecord?.volName ?? (intent?.volName as string | undefined);
      if (pool && volName) volume = { pool, volName };
    }
    const own = ownershipOf(observed, kind, name, volume, key);
    const base = { key, kind, name, fields: [], notes: [] as string[], previous: prev, ownership: own.state, drift: false };
    if (own.state === 'owned') {
      const steps: StepOp[] =
        kind === 'StoragePool' ? [{ op: 'pool.delete' }]
          : kind === 'Volume' ? [{ op: 'volume.delete', pool: volume!.pool, volName: volume!.volName }]
            : kind === 'Network' ? [{ op: 'network.delete' }]
              : [{ op: 'vm.delete' }];
      out.push({
        ...base, action: 'delete', steps,
        reason: record ? 'no longer declared in manifests' : 'left half-created by an interrupted run and no longer declared',
      });
    } else {
      out.push({
        ...base, action: 'delete', steps: [{ op: 'record.forget' }],
        notes: own.state === 'foreign' ? [`${own.reason}: left untouched`] : [],
        reason: own.state === 'absent' ? 'no longer declared; already gone from the host' : 'no longer declared; the object with that name is not ours',
      });
    }
  }
  return out;
}

export function diff(desired: Desired, observed: Observed, opts: DiffOptions = {}): ResourceChange[] {
  const changes: ResourceChange[] = [];
  for (const r of desired.resources) {
    let c: ResourceChange | undefined;
    switch (r.kind) {
      case 'StoragePool': c = diffPool(r, observed); break;
      case 'Volume': c = diffVolume(r, observed); break;
      case 'Network': c = diffNetwork(r, observed); break;
      case 'VirtualMachine': c = diffVm(r, observed, opts); break;
    }
    if (c) changes.push(c);
  }
  addRestartsForReplacedDependencies(desired, observed, changes, opts);
  changes.push(...diffPrune(desired, observed));
  const order = (k: ResourceKind): number => KIND_ORDER.indexOf(k);
  return changes.sort((a, b) => order(a.kind) - order(b.kind) || a.name.localeCompare(b.name));
}

/** A running VM whose volume or network is replaced is stopped first and started again after. */
function addRestartsForReplacedDependencies(
  desired: Desired, observed: Observed, changes: ResourceChange[], opts: DiffOptions,
): void {
  const replaced = new Set(changes.filter((c) => c.action === 'replace').map((c) => c.key));
  if (replaced.size === 0) return;
  for (const r of desired.resources) {
    if (r.kind !== 'VirtualMachine') continue;
    const obs = observed.domains.get(r.name);
    if (!obs?.active) continue;
    const uses = [
      ...r.config.disks.map((d) => resourceKey('Volume', d.volume)),
      ...r.config.nics.map((n) => resourceKey('Network', n.network)),
    ].filter((k) => replaced.has(k));
    if (uses.length === 0) continue;
    const key = r.key;
    let c = changes.find((x) => x.key === key);
    if (c?.action === 'conflict') continue;
    if (!c) {
      c = change(r, 'update', '', ownershipOf(observed, r.kind, r.name, undefined, key));
      changes.push(c);
    }
    const why = `restarted because ${uses.join(', ')} is replaced`;
    c.reason = c.reason ? `${c.reason}; ${why}` : why;
    if (!c.steps.some((s) => s.op === 'vm.stop')) c.steps.unshift({ op: 'vm.stop', graceful: opts.gracefulStop ?? true });
    if (r.state === 'running' && !c.steps.some((s) => s.op === 'vm.start')) c.steps.push({ op: 'vm.start' });
    c.notes = c.notes.filter((n) => !n.includes('next boot'));
  }
}
