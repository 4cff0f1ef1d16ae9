/**
 * The data rule of the Volume kind: a volume holds data unless virtform can prove it does not.
 *
 * Proof is narrow: the volume was created empty by virtform (no imported image, not adopted) and
 * nothing has ever referred to it. A reference is any use of its file by any definition on the
 * host, live or persistent, managed by virtform or not: a domain's disk or CD-ROM, its kernel or
 * initrd, the backing store of any volume in any pool; and any use by a VM or volume config
 * virtform declared or recorded. virtform records every reference it observes (the state DB's
 * `volume_references`), so a volume once used stays data after its user is gone. (A cloud-init
 * seed is derived data: it is the VM kind's own file, never a Volume resource.)
 *
 * The host-wide references (every domain's persistent and live definition, every volume of every
 * active pool) cost host calls: they are gathered only when a plan would delete or replace a
 * volume that is not already known to hold data, so a run that deletes nothing pays nothing.
 *
 * `safety.ts` dispatches here (`KindHandler.dataLoss`) and holds what is returned.
 */
import { parseResourceKey, resourceKey } from '../../../model/kinds.js';
import type { DomainDetail } from '../../../model/definitions.js';
import { HostError, type HostPort, type ObservedVolume } from '../../ports.js';
import { definitionOf, definitionsOf, type Observed } from '../../core/observed.js';
import type { Desired } from '../../core/resource.js';
import { recordedConfig, type DataLoss, type ResourceChange } from '../../core/change.js';
import { redactUrl } from '../../images.js';
import type { DesiredVolume, VolumeConfig } from './types.js';
import type { DataRuleContext, StoredReference } from '../../core/kind.js';

export type { DataRuleContext, StoredReference };

/** How a file is used. */
export type ReferenceRole = 'disk' | 'kernel' | 'initrd' | 'backing';
/** Where a reference was seen. */
export type ReferenceSource = 'live definition' | 'persistent definition' | 'declared config' | 'recorded config' | 'recorded reference';

/** One use of a volume's file (by path) or of a volume (by name, from a config). */
export interface VolumeReference {
  /** The file used (a volume's key in a dir pool); absent for a config naming a volume not yet placed. */
  path?: string;
  /** The volume name a config uses (spec.disks[].volume, boot.kernelVolume, backingVolume). */
  volume?: string;
  /** `VirtualMachine/x`, `Volume/x` for what virtform manages; `domain x`, `volume pool/file` otherwise. */
  by: string;
  role: ReferenceRole;
  source: ReferenceSource;
  managed: boolean;
}

const vmKey = (name: string): string => resourceKey('VirtualMachine', name);
const kindOfKey = (key: string): string => parseResourceKey(key).kind;

/** The files a domain definition uses. */
function domainReferences(d: DomainDetail, source: ReferenceSource, managed: boolean): VolumeReference[] {
  const by = managed ? vmKey(d.name) : `domain ${d.name}`;
  const out: VolumeReference[] = [];
  for (const disk of [...d.disks, ...(d.cdroms ?? [])]) if (disk.path) out.push({ path: disk.path, by, role: 'disk', source, managed });
  if (d.boot?.kernel) out.push({ path: d.boot.kernel, by, role: 'kernel', source, managed });
  if (d.boot?.initrd) out.push({ path: d.boot.initrd, by, role: 'initrd', source, managed });
  return out;
}

/**
 * What the data rule reads of a VirtualMachine config (declared or recorded): the files and
 * volumes it uses. Stated here, not imported: a kind imports no other kind.
 */
interface VmFileUses {
  disks: { path: string; volume?: string }[];
  boot?: { kernel?: string; kernelVolume?: string; initrd?: string; initrdVolume?: string };
}

/** The volumes and files a VM config uses. */
function vmConfigReferences(name: string, c: VmFileUses, source: ReferenceSource): VolumeReference[] {
  const by = vmKey(name);
  const out: VolumeReference[] = [];
  for (const d of c.disks) out.push({ path: d.path, volume: d.volume, by, role: 'disk', source, managed: true });
  const b = c.boot;
  if (b?.kernel || b?.kernelVolume) out.push({ path: b.kernel, volume: b.kernelVolume, by, role: 'kernel', source, managed: true });
  if (b?.initrd || b?.initrdVolume) out.push({ path: b.initrd, volume: b.initrdVolume, by, role: 'initrd', source, managed: true });
  return out;
}

function volumeConfigReferences(name: string, c: VolumeConfig, source: ReferenceSource): VolumeReference[] {
  if (!c.backingVolume && !c.backingPath) return [];
  return [{ path: c.backingPath, volume: c.backingVolume, by: resourceKey('Volume', name), role: 'backing', source, managed: true }];
}

/**
 * The references virtform knows without asking the host: declared and recorded configs of VMs
 * and volumes, and the persistent definitions observe read (managed objects only).
 */
export function knownReferences(desired: Desired, observed: Observed): VolumeReference[] {
  const out: VolumeReference[] = [];
  for (const r of desired.resources) {
    if (r.kind === 'VirtualMachine') out.push(...vmConfigReferences(r.name, r.config as VmFileUses, 'declared config'));
    else if (r.kind === 'Volume') out.push(...volumeConfigReferences(r.name, r.config as VolumeConfig, 'declared config'));
  }
  for (const [key, rec] of observed.records) {
    if (rec.kind === 'VirtualMachine') {
      const c = recordedConfig<VmFileUses>(observed, key);
      if (c) out.push(...vmConfigReferences(rec.name, c, 'recorded config'));
    } else if (rec.kind === 'Volume') {
      const c = recordedConfig<VolumeConfig>(observed, key);
      if (c) out.push(...volumeConfigReferences(rec.name, c, 'recorded config'));
    }
  }
  out.push(...definitionReferences(observed));
  return out;
}

/** References in the persistent definitions observe read (virtform's own domains and volumes). */
export function definitionReferences(observed: Observed): VolumeReference[] {
  const out: VolumeReference[] = [];
  for (const key of observed.definitions.keys()) {
    const kind = kindOfKey(key);
    if (kind === 'VirtualMachine') out.push(...domainReferences(definitionOf(observed, 'VirtualMachine', key)!, 'persistent definition', true));
    else if (kind === 'Volume') {
      const backingPath = definitionOf(observed, 'Volume', key)?.backingPath;
      if (backingPath) out.push({ path: backingPath, by: key, role: 'backing', source: 'persistent definition', managed: true });
    }
  }
  return out;
}

/**
 * Every reference on the host that observe did not read: the persistent definitions of domains
 * virtform does not manage, the live definition of every running domain, and the backing store of
 * every volume of every active pool. One call per domain and per pool, pipelined.
 */
export async function hostReferences(host: HostPort, observed: Observed): Promise<VolumeReference[]> {
  const out: VolumeReference[] = [];
  const managedDomains = new Set<string>();
  for (const [, d] of definitionsOf(observed, 'VirtualMachine')) managedDomains.add(d.name);
  const isManaged = (name: string): boolean => managedDomains.has(name) || observed.records.has(vmKey(name));
  const domains = observed.snapshot.domains;
  // Not read by observe, nor unreadable there (a managed VM whose definition cannot be parsed is
  // already counted as a possible user of every volume).
  const unread = domains.filter((d) => !managedDomains.has(d.name) && !observed.unreadable?.has(vmKey(d.name)));
  // An unmanaged domain whose definition cannot be parsed may use any volume too: it joins them.
  const persistentP = host.definitions.domains(unread, (observed.unreadable ??= new Map()));
  const gone = (e: unknown): null => {
    if (e instanceof HostError && e.code === 'not-found') return null; // stopped or undefined meanwhile: no live definition
    throw e;
  };
  const liveP = Promise.all(domains.filter((d) => d.active).map((d) => host.getRunningDomain(d.name).catch(gone)));
  // Volumes of every active pool; the pools observe listed are not listed again.
  const pools = observed.snapshot.pools.filter((p) => p.active);
  const listings = await Promise.all(pools.map(async (p) => observed.volumes.get(p.name) ? [...observed.volumes.get(p.name)!.values()]
    : await host.listVolumes(p.name).catch((e: unknown) => {
      if (e instanceof HostError && e.code === 'not-found') return [] as ObservedVolume[]; // pool gone or stopped meanwhile
      throw e;
    })));
  const readKeys = new Set<string>();
  for (const [, d] of definitionsOf(observed, 'Volume')) readKeys.add(d.key);
  const volumeDefs = await host.definitions.volumes(listings.flat().filter((v) => !readKeys.has(v.key)));
  const managedVolumeByPath = new Map<string, string>();
  for (const [key, rec] of observed.records) {
    if (rec.kind !== 'Volume') continue;
    const c = recordedConfig<VolumeConfig>(observed, key);
    if (c?.path) managedVolumeByPath.set(c.path, key);
  }
  for (const v of volumeDefs.values()) {
    if (!v.backingPath) continue;
    const managedAs = managedVolumeByPath.get(v.path);
    out.push({ path: v.backingPath, by: managedAs ?? `volume ${v.pool}/${v.name}`, role: 'backing', source: 'persistent definition', managed: !!managedAs });
  }
  for (const d of (await persistentP).values()) out.push(...domainReferences(d, 'persistent definition', isManaged(d.name)));
  for (const d of await liveP) if (d) out.push(...domainReferences(d, 'live definition', isManaged(d.name)));
  return out;
}

/** The references to remember: every one seen on the host (configs are not uses of a file yet). */
export function referencesToStore(refs: VolumeReference[]): StoredReference[] {
  const seen = new Map<string, StoredReference>();
  for (const r of refs) {
    if (!r.path || (r.source !== 'live definition' && r.source !== 'persistent definition')) continue;
    const s: StoredReference = { path: r.path, by: r.by, role: r.role, source: r.source, managed: r.managed };
    seen.set(`${s.path}\0${s.by}\0${s.role}\0${s.source}`, s);
  }
  return [...seen.values()];
}

const SOURCE_ORDER: ReferenceSource[] = ['live definition', 'persistent definition', 'declared config', 'recorded config', 'recorded reference'];

/** One line per user: `attached to VirtualMachine/vm (live definition, persistent definition)`, `attached to domain x (live definition; not managed by virtform)`. */
function describeUsers(refs: VolumeReference[]): string[] {
  const byUser = new Map<string, { role: ReferenceRole; by: string; managed: boolean; sources: Set<ReferenceSource> }>();
  for (const r of refs) {
    const k = `${r.role}\0${r.by}`;
    const u = byUser.get(k) ?? { role: r.role, by: r.by, managed: r.managed, sources: new Set<ReferenceSource>() };
    u.sources.add(r.source);
    u.managed ||= r.managed;
    byUser.set(k, u);
  }
  const lines: string[] = [];
  // A recorded reference is news only for a user no longer seen: one seen now is named by where it is seen.
  for (const u of byUser.values()) if (u.sources.size > 1) u.sources.delete('recorded reference');
  // By user (domains and VMs sort before the volumes they are backed by), then by role.
  for (const u of [...byUser.values()].sort((a, b) => a.by.localeCompare(b.by) || a.role.localeCompare(b.role))) {
    const verb = u.role === 'disk' ? 'attached to' : u.role === 'backing' ? 'backs' : `${u.role} of`;
    const sources = SOURCE_ORDER.filter((s) => u.sources.has(s)).join(', ');
    lines.push(`${verb} ${u.by} (${sources}${u.managed ? '' : '; not managed by virtform'})`);
  }
  return lines;
}

/** Whether a reference is to the volume of change `c` (by its name from a config, or by its file). */
function refersTo(r: VolumeReference, name: string, path: string | undefined): boolean {
  return r.volume === name || (path !== undefined && r.path === path);
}

/** The volume change destroys a file: its key, name and path, and the config it has or had. */
interface Candidate {
  c: ResourceChange;
  path?: string;
  sizeBytes?: number;
  /** Reasons that need no references: an imported image, adoption. */
  intrinsic: string[];
}

function candidateOf(c: ResourceChange, observed: Observed): Candidate | undefined {
  if (c.kind !== 'Volume' || c.release || c.action === 'conflict') return undefined;
  if (!c.steps.some((s) => s.op === 'volume.delete')) return undefined;
  const desiredCfg = c.desired?.kind === 'Volume' ? (c.desired as DesiredVolume).config : undefined;
  const cfg = (c.previous as VolumeConfig | undefined) ?? recordedConfig<VolumeConfig>(observed, c.key) ?? desiredCfg;
  const detail = definitionOf(observed, 'Volume', c.key);
  const intrinsic: string[] = [];
  // The image is named by where the manifest takes it from (a URL without its credentials), else by its digest.
  const image = c.desired?.kind === 'Volume' ? (c.desired as DesiredVolume).image : undefined;
  const sha = cfg?.sourceSha256 && !cfg.sourceSha256.startsWith('path:') ? ` (sha256 ${cfg.sourceSha256.slice(0, 12)}…)` : '';
  const source = image && (c.previous === undefined || (c.previous as VolumeConfig).sourceSha256 === image.sha256)
    ? (image.kind === 'url' ? redactUrl(image.url) : image.path) + sha
    : cfg?.sourcePath ?? (sha ? `image${sha}` : undefined);
  if (source) intrinsic.push(`holds imported image ${source}`);
  // An adopted volume was made by someone else: whatever it holds is theirs, not derived data.
  if (c.adopt) intrinsic.push('adopted: its contents were not made by virtform');
  return { c, path: detail?.path ?? cfg?.path, sizeBytes: detail?.capacityBytes, intrinsic };
}

/**
 * The data rule: for each change of `changes` that would destroy a volume's file, what would be
 * lost, by resource key; changes that destroy only derived or pristine volumes are left out.
 */
export async function volumeDataLoss(changes: ResourceChange[], ctx: DataRuleContext): Promise<Map<string, DataLoss>> {
  const out = new Map<string, DataLoss>();
  const candidates = changes.map((c) => candidateOf(c, ctx.observed)).filter((x): x is Candidate => x !== undefined);
  if (candidates.length === 0) return out;
  const refs = knownReferences(ctx.desired, ctx.observed);
  const paths = candidates.flatMap((x) => (x.path ? [x.path] : []));
  if (ctx.recorded && paths.length > 0) {
    for (const s of await ctx.recorded(paths)) {
      refs.push({ path: s.path, by: s.by, role: s.role as ReferenceRole, source: 'recorded reference', managed: s.managed });
    }
  }
  if (ctx.host) {
    const gathered = await hostReferences(ctx.host, ctx.observed);
    refs.push(...gathered);
    GATHERED.set(ctx.observed, gathered);
  }
  for (const x of candidates) {
    const users = refs.filter((r) => refersTo(r, x.c.name, x.path));
    const why = [...x.intrinsic, ...describeUsers(users)];
    // A managed VM whose definition cannot be read may use it: not derived data.
    for (const key of ctx.observed.unreadable?.keys() ?? []) {
      if (parseResourceKey(key).kind === 'VirtualMachine') why.push(`attached to ${key} (its definition cannot be read, it may use it)`);
    }
    if (why.length > 0) out.set(x.c.key, { volume: x.c.key, path: x.path, sizeBytes: x.sizeBytes, why });
  }
  return out;
}

/** Host-wide references gathered for a plan (by its `Observed`), so the run can record them. */
const GATHERED = new WeakMap<Observed, VolumeReference[]>();

/** Every reference this run saw on the host, to be recorded: the definitions observe read and what the rule gathered. */
export function observedReferences(observed: Observed): StoredReference[] {
  return referencesToStore([...definitionReferences(observed), ...(GATHERED.get(observed) ?? [])]);
}
