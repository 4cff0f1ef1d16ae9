/** Desired resources → the host-level definitions of {@link ./ports.ts}. */
import type { DomainDef, NetworkDef, PoolDef, VolumeDef } from './ports.js';
import type { DesiredNetwork, DesiredPool, DesiredVm, DesiredVolume } from './desired.js';

export function poolDef(r: DesiredPool, uuid?: string): PoolDef {
  return { name: r.name, uuid, path: r.config.path, marker: { kind: r.kind, name: r.name, specHash: r.specHash } };
}

export function volumeDef(r: DesiredVolume): VolumeDef {
  const c = r.config;
  return {
    pool: c.pool,
    name: c.volName,
    capacityBytes: c.capacityBytes,
    format: c.format,
    ...(c.backingPath ? { backing: { path: c.backingPath, format: 'qcow2' as const } } : {}),
    ...(c.sourcePath ? { sourcePath: c.sourcePath } : {}),
  };
}

export function networkDef(r: DesiredNetwork, uuid?: string): NetworkDef {
  const c = r.config;
  return {
    name: r.name,
    uuid,
    mode: c.mode,
    ...(c.bridge ? { bridge: c.bridge } : {}),
    ...(c.ipv4 ? { ipv4: c.ipv4 } : {}),
    ...(c.dhcpRange ? { dhcp: { ...c.dhcpRange, hosts: c.dhcpHosts } } : {}),
    marker: { kind: r.kind, name: r.name, specHash: r.specHash },
  };
}

export function domainDef(r: DesiredVm, type: 'kvm' | 'qemu', uuid?: string): DomainDef {
  const c = r.config;
  return {
    name: r.name,
    uuid,
    type,
    vcpus: c.vcpus,
    memoryKiB: c.memoryKiB,
    description: c.description,
    disks: c.disks.map((d) => ({ path: d.path, format: d.format, bus: d.bus, target: d.target, bootOrder: d.bootOrder })),
    nics: c.nics.map((n) => ({ network: n.network, mac: n.mac, model: n.model })),
    marker: { kind: r.kind, name: r.name, specHash: r.specHash },
  };
}
