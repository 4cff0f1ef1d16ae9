/**
 * Desired state: manifests normalized into exactly what the host should look like.
 *
 * Sizes become bytes, references become paths, defaults are filled in. Each resource carries
 * `config` (the part that is part of the object's definition, hashed into `specHash`) apart from
 * `runtime` fields (running/stopped, autostart) that are compared live against the bulk list calls.
 */
import { createHash } from 'node:crypto';
import { posix } from 'node:path';
import type { DesiredState, AnyManifest } from '../manifest/index.js';
import { parseSize } from '../manifest/index.js';
import type { ResourceKind, VolumeFormat } from './ports.js';

export interface PoolConfig {
  path: string;
}
export interface VolumeConfig {
  pool: string;
  /** libvirt volume name (file name inside the pool directory). */
  volName: string;
  path: string;
  format: VolumeFormat;
  capacityBytes: number;
  backingVolume?: string;
  backingPath?: string;
  sourcePath?: string;
}
export interface NetworkConfig {
  mode: 'isolated' | 'nat' | 'bridge';
  bridge?: string;
  cidr?: string;
  ipv4?: { address: string; prefix: number };
  dhcpRange?: { start: string; end: string };
  dhcpHosts: { mac: string; ip: string; name?: string }[];
}
export interface VmConfig {
  vcpus: number;
  memoryKiB: number;
  description?: string;
  disks: { volume: string; path: string; format: VolumeFormat; bus: 'virtio' | 'sata' | 'scsi' | 'ide'; target: string; bootOrder?: number }[];
  nics: { network: string; mac?: string; model: string }[];
}

interface Base<K extends ResourceKind, C> {
  kind: K;
  name: string;
  /** `resourceKey(kind, name)`, computed once: observe, diff and plan look resources up by it. */
  key: string;
  adopt: boolean;
  labels: Record<string, string>;
  config: C;
  specHash: string;
  source?: { file: string; line: number; col: number };
}
export type DesiredPool = Base<'StoragePool', PoolConfig> & { autostart: boolean };
export type DesiredVolume = Base<'Volume', VolumeConfig>;
export type DesiredNetwork = Base<'Network', NetworkConfig> & { autostart: boolean };
export type DesiredVm = Base<'VirtualMachine', VmConfig> & { autostart: boolean; state: 'running' | 'stopped' };
export type DesiredResource = DesiredPool | DesiredVolume | DesiredNetwork | DesiredVm;

export interface Desired {
  resources: DesiredResource[];
  byKey: Map<string, DesiredResource>;
  digest: string;
  gitCommit?: string;
  gitDirty?: boolean;
  empty: boolean;
}

export const KIND_ORDER: ResourceKind[] = ['StoragePool', 'Volume', 'Network', 'VirtualMachine'];

export function resourceKey(kind: string, name: string): string {
  return `${kind}/${name}`;
}

/** Stable JSON: keys sorted, undefined dropped. */
export function canonicalJson(value: unknown): string {
  return JSON.stringify(value, (_k, v: unknown) => {
    if (v && typeof v === 'object' && !Array.isArray(v)) {
      const out: Record<string, unknown> = {};
      for (const key of Object.keys(v as Record<string, unknown>).sort()) {
        const item = (v as Record<string, unknown>)[key];
        if (item !== undefined) out[key] = item;
      }
      return out;
    }
    return v;
  });
}

export function hashConfig(config: unknown): string {
  return createHash('sha256').update(canonicalJson(config)).digest('hex').slice(0, 16);
}

export function volumeFileName(name: string, format: VolumeFormat): string {
  return `${name}.${format === 'qcow2' ? 'qcow2' : 'img'}`;
}

/** Disk target names in attach order for a bus: vda, vdb… for virtio; sda… for sata/scsi; hda… for ide. */
export function diskTarget(bus: string, index: number): string {
  const prefix = bus === 'virtio' ? 'vd' : bus === 'ide' ? 'hd' : 'sd';
  let n = index;
  let suffix = '';
  do {
    suffix = String.fromCharCode(97 + (n % 26)) + suffix;
    n = Math.floor(n / 26) - 1;
  } while (n >= 0);
  return prefix + suffix;
}

function ipToInt(ip: string): number {
  return ip.split('.').reduce((acc, part) => acc * 256 + Number(part), 0);
}
function intToIp(n: number): string {
  return [24, 16, 8, 0].map((s) => Math.floor(n / 2 ** s) % 256).join('.');
}

/** Host side address of a network: the first usable address of the CIDR. */
export function cidrHostAddress(cidr: string): { address: string; prefix: number } {
  const [ip, bits] = cidr.split('/');
  const prefix = Number(bits);
  const size = 2 ** (32 - prefix);
  const base = Math.floor(ipToInt(ip ?? '0.0.0.0') / size) * size;
  return { address: intToIp(base + 1), prefix };
}

function labelsOf(m: AnyManifest): Record<string, string> {
  return { ...(m.metadata.labels ?? {}) };
}

/** Normalize validated manifests into desired resources. Assumes references were validated. */
export function buildDesired(state: DesiredState): Desired {
  const pools = new Map(state.pools.map((p) => [p.metadata.name, p]));
  const volumes = new Map(state.volumes.map((v) => [v.metadata.name, v]));
  const resources: DesiredResource[] = [];

  const poolPath = (name: string): string => posix.normalize(pools.get(name)?.spec.path ?? `/nonexistent/${name}`);
  const volumeFormat = (name: string): VolumeFormat => (volumes.get(name)?.spec.format ?? 'qcow2') as VolumeFormat;
  const volumePath = (name: string): string => {
    const v = volumes.get(name);
    if (!v) return `/nonexistent/${name}`;
    return posix.join(poolPath(v.spec.pool), volumeFileName(name, volumeFormat(name)));
  };

  for (const p of state.pools) {
    const config: PoolConfig = { path: posix.normalize(p.spec.path) };
    resources.push({
      kind: 'StoragePool', name: p.metadata.name, key: resourceKey('StoragePool', p.metadata.name), adopt: p.metadata.adopt === true, labels: labelsOf(p),
      config, specHash: hashConfig(config), autostart: p.spec.autostart ?? true, source: p.source,
    });
  }
  for (const v of state.volumes) {
    const format = volumeFormat(v.metadata.name);
    const config: VolumeConfig = {
      pool: v.spec.pool,
      volName: volumeFileName(v.metadata.name, format),
      path: volumePath(v.metadata.name),
      format,
      capacityBytes: parseSize(v.spec.capacity as string | number),
      backingVolume: v.spec.backingVolume,
      backingPath: v.spec.backingVolume ? volumePath(v.spec.backingVolume) : undefined,
      sourcePath: v.spec.source,
    };
    resources.push({
      kind: 'Volume', name: v.metadata.name, key: resourceKey('Volume', v.metadata.name), adopt: v.metadata.adopt === true, labels: labelsOf(v),
      config, specHash: hashConfig(config), source: v.source,
    });
  }
  for (const n of state.networks) {
    const dhcp = n.spec.dhcp;
    const config: NetworkConfig = {
      mode: n.spec.mode as NetworkConfig['mode'],
      bridge: n.spec.bridge,
      cidr: n.spec.cidr,
      ipv4: n.spec.cidr ? cidrHostAddress(n.spec.cidr) : undefined,
      dhcpRange: dhcp ? { start: dhcp.start, end: dhcp.end } : undefined,
      dhcpHosts: [...(dhcp?.hosts ?? [])]
        .map((h) => ({ mac: h.mac.toLowerCase(), ip: h.ip, ...(h.name ? { name: h.name } : {}) }))
        .sort((a, b) => a.mac.localeCompare(b.mac)),
    };
    resources.push({
      kind: 'Network', name: n.metadata.name, key: resourceKey('Network', n.metadata.name), adopt: n.metadata.adopt === true, labels: labelsOf(n),
      config, specHash: hashConfig(config), autostart: n.spec.autostart ?? true, source: n.source,
    });
  }
  for (const vm of state.vms) {
    const busCounters = new Map<string, number>();
    const config: VmConfig = {
      vcpus: vm.spec.vcpus,
      memoryKiB: Math.floor(parseSize(vm.spec.memory as string | number) / 1024),
      description: vm.spec.description,
      disks: (vm.spec.disks ?? []).map((d) => {
        const bus = (d.bus ?? 'virtio') as VmConfig['disks'][number]['bus'];
        const family = bus === 'virtio' ? 'vd' : bus === 'ide' ? 'hd' : 'sd';
        const index = busCounters.get(family) ?? 0;
        busCounters.set(family, index + 1);
        return {
          volume: d.volume, path: volumePath(d.volume), format: volumeFormat(d.volume), bus,
          target: diskTarget(bus, index), bootOrder: d.boot,
        };
      }),
      nics: (vm.spec.nics ?? []).map((nic) => ({
        network: nic.network, mac: nic.mac?.toLowerCase(), model: nic.model ?? 'virtio',
      })),
    };
    resources.push({
      kind: 'VirtualMachine', name: vm.metadata.name, key: resourceKey('VirtualMachine', vm.metadata.name), adopt: vm.metadata.adopt === true, labels: labelsOf(vm),
      config, specHash: hashConfig(config), autostart: vm.spec.autostart ?? false,
      state: (vm.spec.state ?? 'running') as 'running' | 'stopped', source: vm.source,
    });
  }

  return {
    resources,
    byKey: new Map(resources.map((r) => [r.key, r])),
    digest: state.digest,
    gitCommit: state.gitCommit,
    gitDirty: state.gitDirty,
    empty: resources.length === 0,
  };
}

/** Names of the resources a resource depends on (for ordering and for skipping dependents). */
export function dependenciesOf(r: DesiredResource): string[] {
  switch (r.kind) {
    case 'StoragePool':
      return [];
    case 'Volume':
      return [
        resourceKey('StoragePool', r.config.pool),
        ...(r.config.backingVolume ? [resourceKey('Volume', r.config.backingVolume)] : []),
      ];
    case 'Network':
      return [];
    case 'VirtualMachine':
      return [
        ...r.config.disks.map((d) => resourceKey('Volume', d.volume)),
        ...r.config.nics.map((n) => resourceKey('Network', n.network)),
      ];
  }
}
