/**
 * The domain definition of a desired VM: disk target names, the `DomainDef` handed to the host,
 * the MAC of a new NIC, the `<domain type>`, and the resources a config uses.
 */
import { randomBytes } from 'node:crypto';
import { resourceKey } from '../../../model/kinds.js';
import type { DomainBoot, DomainDef, DomainDetail } from '../../../model/definitions.js';
import type { HostPort } from '../../ports.js';
import type { DesiredVm, VmBoot, VmConfig } from './types.js';

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

/** The domain definition of a desired VM; `macs[i]` is the MAC of `nics[i]` (declared or resolved). */
export function domainDef(r: DesiredVm, type: 'kvm' | 'qemu', uuid?: string, macs: (string | undefined)[] = []): DomainDef {
  const c = r.config;
  return {
    name: r.name,
    uuid,
    type,
    vcpus: c.vcpus,
    maxVcpus: c.maxVcpus ?? c.vcpus,
    memoryKiB: c.memoryKiB,
    maxMemoryKiB: c.maxMemoryKiB ?? c.memoryKiB,
    description: c.description,
    ...(c.boot ? { boot: domainBoot(c.boot) } : {}),
    ...(c.cpu ? { cpu: { ...c.cpu } } : {}),
    ...(c.graphics ? { graphics: { ...c.graphics } } : {}),
    guestAgent: c.guestAgent ?? true,
    disks: c.disks.map((d) => ({ path: d.path, format: d.format, bus: d.bus, target: d.target, bootOrder: d.bootOrder })),
    ...(c.cloudInit ? { cdroms: [{ path: c.cloudInit.path, bus: 'ide' as const, target: c.cloudInit.target }] } : {}),
    nics: c.nics.map((n, i) => ({ network: n.network, mac: n.mac ?? macs[i], model: n.model })),
    ...(c.extraDevices ? { extraDevices: [...c.extraDevices] } : {}),
    marker: { kind: r.kind, name: r.name, specHash: r.specHash },
  };
}

function domainBoot(b: VmBoot): DomainBoot {
  return {
    ...(b.firmware === 'uefi' ? { firmware: 'efi' as const } : {}),
    ...(b.kernel !== undefined ? { kernel: b.kernel } : {}),
    ...(b.initrd !== undefined ? { initrd: b.initrd } : {}),
    ...(b.cmdline !== undefined ? { cmdline: b.cmdline } : {}),
  };
}

export function usedKeys(c: Pick<VmConfig, 'disks' | 'nics' | 'boot' | 'cloudInit'>, host?: string): string[] {
  return [
    ...(c.cloudInit ? [resourceKey('StoragePool', c.cloudInit.pool, host)] : []),
    ...(c.disks ?? []).map((d) => resourceKey('Volume', d.volume, host)),
    ...[c.boot?.kernelVolume, c.boot?.initrdVolume].filter((v): v is string => !!v).map((v) => resourceKey('Volume', v, host)),
    ...(c.nics ?? []).map((n) => resourceKey('Network', n.network, host)),
  ];
}

/** A MAC virtform chooses for a new NIC (libvirt's and QEMU's 52:54:00 prefix), unused in the domain. */
export function freshMac(taken: Set<string>): string {
  for (;;) {
    const mac = `52:54:00:${[...randomBytes(3)].map((b) => b.toString(16).padStart(2, '0')).join(':')}`;
    if (!taken.has(mac)) return mac;
  }
}

/**
 * The `<domain type>` a definition gets. Precedence: the VM's `spec.domainType`; then (a fleet's
 * Host, once there is one); for an existing domain the type it has (so a run with another
 * `--domain-type`, or an upgrade, never flips it); for a new one the host's choice (`--domain-type`,
 * default auto: kvm when offered).
 */
export async function domainTypeFor(host: HostPort, d: DesiredVm, current: DomainDetail | undefined, exists: boolean): Promise<'kvm' | 'qemu'> {
  if (d.config.domainType) return d.config.domainType;
  const have = current?.type ?? (exists ? (await host.getDomain(d.name))?.type : undefined);
  if (have === 'kvm' || have === 'qemu') return have;
  return host.domainType();
}
