/**
 * The fleet in the manifests: `kind: Host` documents (checked and normalized into
 * {@link HostDefinition}s) and the rules of the fields that place the other kinds on hosts —
 * VirtualMachine `spec.host`/`spec.placement`, StoragePool/Network `spec.hosts`/`spec.hostSelector`,
 * Volume `spec.host`.
 *
 * Rules (each error at the field's file:line:col):
 *   - Host names are unique, so are their URIs; `spec.uri` is a libvirt URI; sizes parse.
 *   - Without any Host manifest, a field naming or selecting hosts is an error (one implicit host).
 *   - A named Host must be declared. `spec.hosts` and `spec.hostSelector` are mutually exclusive.
 *   - A Volume lives with the VMs using it (disk, kernel or initrd), or with the volumes it backs;
 *     a Volume none of them reaches needs `spec.host`. A volume used by a VM names no host (pin the VM).
 *   - VMs sharing a volume are placed together: two different pins among them are an error.
 *   - A pinned VM (and a Volume on `spec.host`) needs its pools and networks on that host.
 *   - A Host's `capacity.disk` names StoragePools on that host; `spreadBy.vmLabel` is a label the VM has.
 */
import type { HostDefinition, HostId, HostScope, PlacementSpec } from '../model/hosts.js';
import { selectHosts } from '../model/hosts.js';
import type { ManifestError, FieldPath } from './errors.js';
import { fieldPathString, quote } from './errors.js';
import type { AnyManifest, DesiredState, NetworkManifest, StoragePoolManifest, VirtualMachineManifest } from './model.js';
import { ManifestSizeError, parseSize } from './size.js';
import type { Entry } from './semantics.js';
import { specOf } from './semantics.js';
import { locate, type SourceDoc } from './yaml-source.js';
import type { HostSpec } from './types.generated.js';

/** A `kind: Host` document after the schema (`valid`: its data matches HostSpec, defaults filled in). */
export interface HostEntry {
  sd: SourceDoc;
  name?: string;
  valid: boolean;
  data: { metadata: { name: string; labels?: Record<string, string> }; spec: unknown };
}

/** Transports a libvirt URI may name (the connection layer says which it supports). */
const TRANSPORTS = new Set(['unix', 'tcp', 'ssh', 'tls', 'libssh', 'libssh2', 'ext']);
const URI_RE = /^([a-zA-Z][a-zA-Z0-9.-]*)(?:\+([a-zA-Z0-9-]+))?:\/\/([^/?#]*)(\/[^?#]*)?(?:\?[^#]*)?$/;

/** Why `uri` is not a libvirt URI, or undefined when it is one. */
export function libvirtUriProblem(uri: string): string | undefined {
  const m = URI_RE.exec(uri);
  if (!m) return 'is not a libvirt URI (expected e.g. qemu:///system, qemu+ssh://user@host/system, qemu+tls://host/system)';
  const transport = m[2]?.toLowerCase();
  if (transport !== undefined && !TRANSPORTS.has(transport)) return `names an unknown transport ${quote(transport)} (expected one of ${[...TRANSPORTS].join(', ')})`;
  const authority = m[3] ?? '';
  const hostPort = authority.slice(authority.lastIndexOf('@') + 1);
  if (transport !== undefined && transport !== 'unix' && !hostPort) return `has no host name: transport ${transport} needs one`;
  const port = /:(\d*)$/.exec(hostPort.replace(/^\[[^\]]*\]/, ''))?.[1];
  if (port !== undefined && (port === '' || Number(port) < 1 || Number(port) > 65535)) return `has a bad port ${quote(port)}`;
  if (!m[4] || m[4] === '/') return 'has no path (expected e.g. /system)';
  return undefined;
}

/** Collects errors against documents. */
class At {
  readonly errors: ManifestError[] = [];
  push(sd: SourceDoc, kind: string, name: string | undefined, path: FieldPath, message: string, key = false): void {
    const pos = locate(sd, path, { key });
    this.errors.push({
      file: sd.file, line: pos.line, col: pos.col, kind, ...(name ? { name } : {}),
      ...(path.length ? { field: fieldPathString(path) } : {}), message,
    });
  }
  entry(e: Entry, path: FieldPath, message: string): void {
    this.push(e.sd, e.kind, e.name, path, message);
  }
}

function size(at: At, h: HostEntry, path: FieldPath, v: string | number | undefined): number | undefined {
  if (v === undefined) return undefined;
  try {
    return parseSize(v);
  } catch (err) {
    if (!(err instanceof ManifestSizeError)) throw err;
    at.push(h.sd, 'Host', h.name, path, err.message);
    return undefined;
  }
}

/** One Host document → its definition (sizes in bytes, defaults); size errors are reported. */
function hostDefinition(at: At, h: HostEntry): HostDefinition {
  const spec = h.data.spec as HostSpec;
  const cap = spec.capacity;
  const disk: Record<string, number> = {};
  for (const [pool, v] of Object.entries(cap?.disk ?? {})) {
    const b = size(at, h, ['spec', 'capacity', 'disk', pool], v as string | number);
    if (b !== undefined) disk[pool] = b;
  }
  const memory = size(at, h, ['spec', 'capacity', 'memory'], cap?.memory as string | number | undefined);
  const capacity = cap ? {
    ...(memory !== undefined ? { memory } : {}), ...(cap.vcpus !== undefined ? { vcpus: cap.vcpus } : {}),
    ...(cap.disk ? { disk } : {}),
  } : undefined;
  return {
    id: h.data.metadata.name,
    uri: spec.uri,
    labels: { ...(h.data.metadata.labels ?? {}) },
    schedulable: spec.schedulable ?? true,
    drain: spec.drain ?? false,
    ...(capacity ? { capacity } : {}),
    reserved: { memory: size(at, h, ['spec', 'reserved', 'memory'], spec.reserved?.memory as string | number | undefined) ?? 0, vcpus: spec.reserved?.vcpus ?? 0 },
    overcommit: { cpu: spec.overcommit?.cpu ?? 1, memory: spec.overcommit?.memory ?? 1 },
    insecure: spec.insecure ?? false,
    ...(spec.domainType !== undefined ? { domainType: spec.domainType } : {}),
    source: { file: h.sd.file, line: h.sd.start.line, col: h.sd.start.col },
  };
}

/** The volumes a VM manifest uses directly: disks, kernel and initrd volumes (each once, in order). */
export function vmVolumes(spec: VirtualMachineManifest['spec']): string[] {
  const out = [...(spec.disks ?? []).map((d) => d.volume)];
  if (spec.boot?.kernelVolume !== undefined) out.push(spec.boot.kernelVolume);
  if (spec.boot?.initrdVolume !== undefined) out.push(spec.boot.initrdVolume);
  return [...new Set(out)];
}

/** {@link vmVolumes} of a spec that may have failed the schema: the names it holds where names belong. */
function vmVolumesLoose(spec: unknown): string[] {
  const obj = (v: unknown): Record<string, unknown> | undefined => (typeof v === 'object' && v !== null && !Array.isArray(v) ? v as Record<string, unknown> : undefined);
  const s = obj(spec);
  if (!s) return [];
  const out = (Array.isArray(s.disks) ? s.disks : []).map((d) => obj(d)?.volume);
  const boot = obj(s.boot);
  out.push(boot?.kernelVolume, boot?.initrdVolume);
  return [...new Set(out.filter((v): v is string => typeof v === 'string'))];
}

/** The pools a VM manifest needs on its host, besides those of its volumes: the cloud-init seed's. */
export function vmOwnPools(spec: VirtualMachineManifest['spec']): string[] {
  return spec.cloudInit?.pool !== undefined ? [spec.cloudInit.pool] : [];
}

/** The networks a VM manifest needs on its host. */
export function vmNetworks(spec: VirtualMachineManifest['spec']): string[] {
  return [...new Set((spec.nics ?? []).map((n) => n.network))];
}

/** A volume and its backing chain (the volume first), by name; stops at an unknown name or a cycle. */
export function backingChain(volume: string, backingOf: (v: string) => string | undefined): string[] {
  const out: string[] = [];
  for (let v: string | undefined = volume; v !== undefined && !out.includes(v); v = backingOf(v)) out.push(v);
  return out;
}

/** The scope of a pool or network manifest (`spec.hosts`/`spec.hostSelector`). */
export function scopeOf(m: StoragePoolManifest | NetworkManifest): HostScope {
  return { ...(m.spec.hosts !== undefined ? { hosts: m.spec.hosts } : {}), ...(m.spec.hostSelector ? { hostSelector: m.spec.hostSelector } : {}) };
}

/**
 * Groups of VMs sharing a volume they use directly (a disk, kernel or initrd volume; a backing
 * store is instantiated per host instead): VM name → group id (the first VM name of its group, by
 * name). Only VMs of a group of two or more appear.
 */
export function volumeGroups(vms: readonly Pick<VirtualMachineManifest, 'metadata' | 'spec'>[]): Map<string, string> {
  const parent = new Map<string, string>();
  const find = (x: string): string => {
    let r = x;
    while (parent.get(r) !== r) r = parent.get(r)!;
    parent.set(x, r);
    return r;
  };
  const union = (a: string, b: string): void => {
    const [ra, rb] = [find(a), find(b)];
    if (ra !== rb) parent.set(ra < rb ? rb : ra, ra < rb ? ra : rb);
  };
  const userOf = new Map<string, string>();
  for (const vm of vms) {
    parent.set(vm.metadata.name, vm.metadata.name);
    for (const v of vmVolumes(vm.spec)) {
      const first = userOf.get(v);
      if (first === undefined) userOf.set(v, vm.metadata.name);
      else union(first, vm.metadata.name);
    }
  }
  const size = new Map<string, number>();
  for (const vm of vms) size.set(find(vm.metadata.name), (size.get(find(vm.metadata.name)) ?? 0) + 1);
  const out = new Map<string, string>();
  for (const vm of vms) {
    const root = find(vm.metadata.name);
    if ((size.get(root) ?? 0) > 1) out.set(vm.metadata.name, root);
  }
  return out;
}

export interface FleetCheck {
  hosts: HostDefinition[];
  errors: ManifestError[];
}

/**
 * Check the Host documents and every field placing the other kinds on hosts; normalize the valid
 * Hosts (sorted by id). `entries`: the documents of the resource kinds (after the schema).
 */
export function checkFleet(hostEntries: readonly HostEntry[], entries: readonly Entry[]): FleetCheck {
  const at = new At();
  const hosts: HostDefinition[] = [];
  const byName = new Map<string, HostEntry>();
  const byUri = new Map<string, HostEntry>();
  const whereOf = (h: HostEntry): string => `${h.sd.file}:${h.sd.start.line}`;
  for (const h of hostEntries) {
    if (h.name !== undefined) {
      const first = byName.get(h.name);
      if (first) at.push(h.sd, 'Host', h.name, ['metadata', 'name'], `duplicate Host name ${quote(h.name)} (first defined at ${whereOf(first)})`);
      else byName.set(h.name, h);
    }
    // The URI is checked even when another field failed the schema: every bad field is reported.
    const uri = (h.data.spec as { uri?: unknown } | undefined)?.uri;
    const problem = typeof uri === 'string' ? libvirtUriProblem(uri) : undefined;
    if (typeof uri === 'string' && problem) at.push(h.sd, 'Host', h.name, ['spec', 'uri'], `${quote(uri)} ${problem}`);
    else if (typeof uri === 'string') {
      const first = byUri.get(uri);
      if (first) at.push(h.sd, 'Host', h.name, ['spec', 'uri'], `URI ${quote(uri)} is already the URI of Host ${quote(first.name ?? '')} (${whereOf(first)}): one Host per libvirt host`);
      else byUri.set(uri, h);
    }
    if (h.valid && byName.get(h.name ?? '') === h) hosts.push(hostDefinition(at, h));
  }
  hosts.sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));

  const valid = (k: Entry['kind']): Entry[] => entries.filter((e) => e.valid && e.kind === k);
  const pools = valid('StoragePool');
  const networks = valid('Network');
  const volumes = valid('Volume');
  const vms = valid('VirtualMachine');
  const fleet = hostEntries.length > 0;
  const noHosts = (e: Entry, path: FieldPath, what: string): void =>
    at.entry(e, path, `${what} but no Host manifest declares one (without Host manifests virtform manages the one host of --uri)`);
  const hostRef = (e: Entry, path: FieldPath, name: string): boolean => {
    if (!fleet) {
      noHosts(e, path, `names host ${quote(name)}`);
      return false;
    }
    if (!byName.has(name)) {
      at.entry(e, path, `Host ${quote(name)} is not defined`);
      return false;
    }
    return true;
  };

  // Pools and networks: where they exist.
  const scopes = new Map<string, Set<string>>(); // `${kind}/${name}` → host ids
  for (const e of [...pools, ...networks]) {
    const spec = e.data.spec as { hosts?: 'all' | string[]; hostSelector?: { matchLabels?: Record<string, string> } };
    if (spec.hosts !== undefined && spec.hostSelector !== undefined) {
      at.entry(e, ['spec', 'hostSelector'], 'hosts and hostSelector are mutually exclusive');
    }
    if (!fleet && spec.hostSelector !== undefined) noHosts(e, ['spec', 'hostSelector'], 'selects hosts');
    if (!fleet && spec.hosts === 'all') noHosts(e, ['spec', 'hosts'], 'names hosts (all)');
    if (Array.isArray(spec.hosts)) spec.hosts.forEach((n, i) => hostRef(e, ['spec', 'hosts', i], n));
    if (e.name) scopes.set(`${e.kind}/${e.name}`, new Set(selectHosts(hosts, spec)));
  }
  const onHost = (kind: 'StoragePool' | 'Network', name: string, host: string): boolean =>
    scopes.get(`${kind}/${name}`)?.has(host) ?? true; // an undefined pool is reported by the semantics

  // Volumes: who uses them, where they live.
  const volSpec = new Map(volumes.filter((e) => e.name).map((e) => [e.name!, specOf(e, 'Volume')]));
  const users = new Map<string, Entry[]>(); // volume → VMs using it directly
  // Every VM document counts, one that failed the schema too (read defensively): no error cascades onto its volumes.
  for (const e of entries.filter((x) => x.kind === 'VirtualMachine')) {
    for (const v of vmVolumesLoose(e.data?.spec)) users.set(v, [...(users.get(v) ?? []), e]);
  }
  for (const e of volumes) {
    const spec = specOf(e, 'Volume');
    if (spec.host === undefined) continue;
    if (!hostRef(e, ['spec', 'host'], spec.host)) continue;
    const used = users.get(e.name ?? '');
    if (used?.length) {
      at.entry(e, ['spec', 'host'], `the volume lives with VirtualMachine ${quote(used[0]!.name ?? '')}, which uses it: pin the VM (its spec.host) instead`);
      continue;
    }
    for (const v of backingChain(e.name ?? '', (n) => volSpec.get(n)?.backingVolume)) {
      const pool = volSpec.get(v)?.pool;
      if (pool !== undefined && !onHost('StoragePool', pool, spec.host)) {
        at.entry(e, ['spec', 'host'], `${v === e.name ? 'its' : `its backing volume ${quote(v)}'s`} StoragePool ${quote(pool)} is not on host ${quote(spec.host)} (see the pool's spec.hosts/hostSelector)`);
      }
    }
  }
  if (fleet) {
    // Reached: used by a VM, on spec.host, or backing a reached volume.
    const reached = new Set<string>();
    const roots = [...users.keys(), ...volumes.filter((e) => specOf(e, 'Volume').host !== undefined).map((e) => e.name ?? '')];
    for (const r of roots) for (const v of backingChain(r, (n) => volSpec.get(n)?.backingVolume)) reached.add(v);
    for (const e of volumes) {
      if (e.name && !reached.has(e.name)) {
        at.entry(e, ['spec'], 'no VirtualMachine uses this volume, so it has no host: set spec.host (a volume lives with the VM using it, or on spec.host)');
      }
    }
  }

  // A Host's capacity.disk names pools that exist on it.
  for (const h of hostEntries) {
    if (!h.valid || byName.get(h.name ?? '') !== h) continue;
    for (const pool of Object.keys((h.data.spec as HostSpec).capacity?.disk ?? {})) {
      const on = scopes.get(`StoragePool/${pool}`);
      if (!on) at.push(h.sd, 'Host', h.name, ['spec', 'capacity', 'disk', pool], `StoragePool ${quote(pool)} is not defined`, true);
      else if (!on.has(h.name ?? '')) at.push(h.sd, 'Host', h.name, ['spec', 'capacity', 'disk', pool], `StoragePool ${quote(pool)} is not on this host (see its spec.hosts/hostSelector)`, true);
    }
  }

  // VMs: pins, placement, shared volumes.
  const groups = volumeGroups(vms.map((e) => ({ metadata: e.data.metadata, spec: specOf(e, 'VirtualMachine') }) as VirtualMachineManifest));
  const pinOfGroup = new Map<string, Entry>();
  for (const e of vms) {
    const spec = specOf(e, 'VirtualMachine');
    if (spec.placement !== undefined && !fleet) noHosts(e, ['spec', 'placement'], 'has a placement');
    const vmLabel = spec.placement?.spreadBy?.vmLabel;
    if (vmLabel !== undefined && (e.data.metadata as { labels?: Record<string, string> }).labels?.[vmLabel] === undefined) {
      at.entry(e, ['spec', 'placement', 'spreadBy', 'vmLabel'], `the VM has no label ${quote(vmLabel)} (metadata.labels): it is spread with the VMs sharing that label's value`);
    }
    if (spec.host === undefined) continue;
    if (!hostRef(e, ['spec', 'host'], spec.host)) continue;
    const host = spec.host;
    const group = groups.get(e.name ?? '');
    if (group !== undefined) {
      const first = pinOfGroup.get(group);
      const firstHost = first ? specOf(first, 'VirtualMachine').host : undefined;
      if (first && firstHost !== host) {
        const shared = vmVolumes(spec).filter((v) => (users.get(v) ?? []).length > 1);
        at.entry(e, ['spec', 'host'], `pinned to host ${quote(host)} but VirtualMachine ${quote(first.name ?? '')} is pinned to ${quote(firstHost ?? '')} (${first.sd.file}:${first.sd.start.line}); VMs sharing a volume (${shared.map((v) => quote(v)).join(', ')}) are placed together`);
      } else if (!first) pinOfGroup.set(group, e);
    }
    const need: [string, 'StoragePool' | 'Network', string][] = [];
    for (const v of vmVolumes(spec)) {
      for (const b of backingChain(v, (n) => volSpec.get(n)?.backingVolume)) {
        const pool = volSpec.get(b)?.pool;
        if (pool !== undefined) need.push([b === v ? `volume ${quote(v)}` : `backing volume ${quote(b)} of ${quote(v)}`, 'StoragePool', pool]);
      }
    }
    for (const p of vmOwnPools(spec)) need.push(['cloud-init seed', 'StoragePool', p]);
    for (const n of vmNetworks(spec)) need.push(['NIC', 'Network', n]);
    const told = new Set<string>();
    for (const [why, kind, name] of need) {
      if (onHost(kind, name, host) || told.has(`${kind}/${name}`)) continue;
      told.add(`${kind}/${name}`);
      at.entry(e, ['spec', 'host'], `pinned to host ${quote(host)}, where its ${why} needs ${kind} ${quote(name)}, which is not on that host (see the ${kind}'s spec.hosts/hostSelector)`);
    }
  }
  return { hosts, errors: at.errors };
}

/**
 * The part of a validated desired state that lives on `host`: the pools and networks its scope
 * selects there, the VMs placed there (`placeOf`), the volumes they use with their backing chains,
 * and the volumes whose `spec.host` is `host` (with theirs). A backing volume used on several
 * hosts is in the part of each. `hosts` of the result is the whole fleet's.
 */
export function stateOnHost(state: DesiredState, host: HostId, placeOf: (vm: string) => HostId | undefined): DesiredState {
  const pools = state.pools.filter((p) => selectHosts(state.hosts, scopeOf(p)).includes(host));
  const networks = state.networks.filter((n) => selectHosts(state.hosts, scopeOf(n)).includes(host));
  const vms = state.vms.filter((vm) => placeOf(vm.metadata.name) === host);
  const backingOf = new Map(state.volumes.map((v) => [v.metadata.name, v.spec.backingVolume]));
  const here = new Set<string>();
  const roots = [...vms.flatMap((vm) => vmVolumes(vm.spec)), ...state.volumes.filter((v) => v.spec.host === host).map((v) => v.metadata.name)];
  for (const r of roots) for (const v of backingChain(r, (n) => backingOf.get(n))) here.add(v);
  const volumes = state.volumes.filter((v) => here.has(v.metadata.name));
  // A snapshot lives with its VM.
  const vmNames = new Set(vms.map((vm) => vm.metadata.name));
  const snapshots = (state.snapshots ?? []).filter((s) => vmNames.has(s.spec.vm));
  const keep = new Set<AnyManifest>([...pools, ...volumes, ...networks, ...vms, ...snapshots]);
  return { ...state, manifests: state.manifests.filter((m) => keep.has(m)), pools, volumes, networks, vms, snapshots };
}

/** What placement needs of a VM manifest besides its demands: labels, pin, placement spec, group. */
export interface VmPlacementFacts {
  name: string;
  labels: Record<string, string>;
  pin?: HostId;
  placement?: PlacementSpec;
  group?: string;
  /** The hosts where all its pools and networks exist, when not every host (see PlacementRequest.eligible). */
  eligible?: HostId[];
}

/**
 * The hosts where every pool and network a VM needs exists (its volumes, their backing chains, its
 * seed, its NICs), for each VM spec given to the function returned (the state's maps built once).
 */
export function eligibleHostsOf(state: Pick<DesiredState, 'hosts' | 'pools' | 'networks' | 'volumes'>): (spec: VirtualMachineManifest['spec']) => HostId[] {
  const vol = new Map(state.volumes.map((v) => [v.metadata.name, v.spec]));
  const scope = new Map<string, Set<HostId>>();
  for (const p of state.pools) scope.set(`StoragePool/${p.metadata.name}`, new Set(selectHosts(state.hosts, scopeOf(p))));
  for (const n of state.networks) scope.set(`Network/${n.metadata.name}`, new Set(selectHosts(state.hosts, scopeOf(n))));
  const all = state.hosts.map((h) => h.id);
  return (spec) => {
    const need = new Set<string>(vmOwnPools(spec).map((p) => `StoragePool/${p}`));
    for (const v of vmVolumes(spec)) {
      for (const b of backingChain(v, (n) => vol.get(n)?.backingVolume)) {
        const p = vol.get(b)?.pool;
        if (p !== undefined) need.add(`StoragePool/${p}`);
      }
    }
    for (const n of vmNetworks(spec)) need.add(`Network/${n}`);
    let out = all;
    for (const k of need) {
      const on = scope.get(k);
      if (on) out = out.filter((h) => on.has(h));
    }
    return out;
  };
}

/** The placement facts of every VM manifest, in manifest order. */
export function vmPlacementFacts(state: Pick<DesiredState, 'vms' | 'hosts' | 'pools' | 'networks' | 'volumes'>): VmPlacementFacts[] {
  const groups = volumeGroups(state.vms);
  const hosts = state.hosts ?? [];
  const eligibleOf = eligibleHostsOf({ ...state, hosts });
  return state.vms.map((vm) => {
    const eligible = eligibleOf(vm.spec);
    const p = vm.spec.placement;
    const placement: PlacementSpec | undefined = p ? {
      ...(p.hostSelector ? { hostSelector: p.hostSelector } : {}),
      ...(p.spreadBy ? {
        spreadBy: {
          hostLabel: p.spreadBy.hostLabel, ...(p.spreadBy.vmLabel !== undefined ? { vmLabel: p.spreadBy.vmLabel } : {}),
          maxSkew: p.spreadBy.maxSkew ?? 1, whenUnsatisfiable: p.spreadBy.whenUnsatisfiable ?? 'DoNotSchedule',
        },
      } : {}),
    } : undefined;
    const group = groups.get(vm.metadata.name);
    return {
      name: vm.metadata.name, labels: { ...(vm.metadata.labels ?? {}) },
      ...(vm.spec.host !== undefined ? { pin: vm.spec.host } : {}),
      ...(placement ? { placement } : {}),
      ...(group !== undefined ? { group } : {}),
      ...(eligible.length < hosts.length ? { eligible } : {}),
    };
  });
}
