/**
 * The domain definition of a desired VM: disk target names, the `DomainDef` handed to the host,
 * the MAC of a new NIC, the `<domain type>`, and the resources a config uses.
 */
import { randomBytes } from 'node:crypto';
import { resourceKey } from '../../../model/kinds.js';
import type { DomainBoot, DomainDef, DomainDetail } from '../../../model/definitions.js';
import type { HostPort } from '../../ports.js';
import { diskView } from './match.js';
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
    disks: c.disks.map((d) => ({ path: d.path, format: d.format, bus: d.bus, target: d.target, bootOrder: d.bootOrder, ...(d.device ? { device: d.device } : {}) })),
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

// --- disk targets assigned once (issue 24; helper restart) -----------------------------------

const family = (bus: string): string => (bus === 'virtio' ? 'vd' : bus === 'ide' ? 'hd' : 'sd');

/**
 * The config with each disk's target as assigned once, never by list position alone (build gives
 * `vda, vdb…` by position; removing any disk but the last would rename the others): a disk keeps
 * the target virtform recorded for its path (`VmFacts.disks`), else the target it has in the
 * definition (a domain defined by an older virtform keeps its targets: nothing changes); a disk not
 * there yet takes its positional target when that is free or held by a disk being removed (a volume
 * swapped in place keeps the slot), else the first target of its bus not used by the definition.
 * The cloud-init CD-ROM keeps its current target, or gets the first IDE target no disk takes.
 */
export function resolveTargets(
  c: VmConfig, current: Pick<DomainDetail, 'disks' | 'cdroms'> | undefined, recorded: { path: string; target: string }[] | undefined,
  /** Targets the running domain still has (a detach the guest has not completed): never given to a new disk. */
  busy: Iterable<string> = [],
): VmConfig {
  // Declared CD-ROMs are disks here (their targets kept like any disk's); the seed stays a CD-ROM.
  current = current && diskView(current, c);
  const disks = c.disks;
  const out: (string | undefined)[] = disks.map(() => undefined);
  const taken = new Set<string>();
  const cur = current?.disks ?? [];
  const assign = (i: number, target: string | undefined): void => {
    if (target === undefined || taken.has(target) || !target.startsWith(family(disks[i]!.bus))) return;
    out[i] = target;
    taken.add(target);
  };
  disks.forEach((d, i) => assign(i, recorded?.find((r) => r.path === d.path)?.target));
  disks.forEach((d, i) => {
    if (out[i] === undefined) assign(i, cur.find((x) => x.path === d.path)?.target);
  });
  const keptPaths = new Set(disks.map((d) => d.path));
  const busySet = new Set(busy);
  // Live only (a detach the guest has not completed): the slot is not free. A target of the
  // definition held by a disk being removed is (a volume swapped in place keeps it: a restart).
  const busyAt = (t: string): boolean => busySet.has(t) && !cur.some((x) => x.target === t);
  const cdromTargets = new Set((current?.cdroms ?? []).map((x) => x.target));
  disks.forEach((d, i) => {
    if (out[i] !== undefined) return;
    const holder = cur.find((x) => x.target === d.target);
    if ((!holder || !keptPaths.has(holder.path)) && !cdromTargets.has(d.target) && !busyAt(d.target)) assign(i, d.target);
  });
  const used = new Set([...taken, ...cur.map((x) => x.target), ...cdromTargets, ...busy]);
  disks.forEach((d, i) => {
    if (out[i] !== undefined) return;
    for (let n = 0; ; n += 1) {
      const t = diskTarget(d.bus, n);
      if (!used.has(t)) {
        used.add(t);
        taken.add(t);
        out[i] = t;
        return;
      }
    }
  });
  const resolved = disks.map((d, i) => (d.target === out[i] ? d : { ...d, target: out[i]! }));
  let cloudInit = c.cloudInit;
  if (cloudInit) {
    const have = current?.cdroms?.find((x) => x.path === cloudInit!.path)?.target;
    const diskTargets = new Set(resolved.map((d) => d.target));
    let t = have !== undefined && !diskTargets.has(have) ? have : cloudInit.target;
    for (let n = 0; diskTargets.has(t); n += 1) t = diskTarget('ide', n);
    if (t !== cloudInit.target) cloudInit = { ...cloudInit, target: t };
  }
  const same = resolved.every((d, i) => d === disks[i]) && cloudInit === c.cloudInit;
  return same ? c : { ...c, disks: resolved, ...(cloudInit ? { cloudInit } : {}) };
}
