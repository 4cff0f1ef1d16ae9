/**
 * `virtform export` of domains: a domain's inactive XML → a VirtualMachine manifest, field by
 * field (vCPUs, memory and their maxima, CPU, domain type, boot, graphics, guest agent, disks on
 * volumes, NICs on networks, state, autostart, description), the devices virtform does not model
 * into `spec.extraDevices` (one element each, without the addresses libvirt assigns), and then
 * the check that nothing is dropped silently: the definition the manifest makes
 * (`buildDomainXml`) is compared with the domain's own the way an adoption plan compares them
 * (`domain-adopt.ts`), and every element it would drop, add or rewrite is a warning.
 */
import type { DomainDef, VolumeDetail } from '../../../model/definitions.js';
import { buildDomainXml, parseDomainXml } from '../../../libvirt/xml/domain.js';
import { domainAdoptionDifferences } from '../../../libvirt/xml/domain-adopt.js';
import { canonicalFragment, extraDevicesOf, fragOf, hostReachOf, type Frag } from '../../../libvirt/xml/extra-devices.js';
import { parseRoot, child, type XNode } from '../../../libvirt/xml/xml-util.js';
import type { HostPort, HostSnapshot } from '../../ports.js';
import { API_VERSION, RESOURCE_NAME, unlessGone, type ExportHost, type ExportedObject } from '../../core/export.js';

/** `131072` KiB → `128MiB`; whole GiB as GiB; else KiB. */
function sizeOf(kib: number): string {
  if (kib % (1024 * 1024) === 0) return `${kib / (1024 * 1024)}GiB`;
  if (kib % 1024 === 0) return `${kib / 1024}MiB`;
  return `${kib}KiB`;
}

function withoutAddresses(f: Frag): Frag {
  return { ...f, children: f.children.filter((c) => c.name !== 'address' && c.name !== 'alias').map(withoutAddresses) };
}

type DiskBus = DomainDef['disks'][number]['bus'];

/** The targets of a domain's `<disk>` elements (disks and CD-ROMs), in definition order. */
function diskTargetsInOrder(root: XNode): string[] {
  const disks = child(root, 'devices')?.disk;
  return (Array.isArray(disks) ? disks : []).map((x) => String(child(x as XNode, 'target')?.['@_dev'] ?? '')).filter((t) => t !== '');
}

/**
 * The resource name a volume file gets, as the Volume exporter names it: `<name>` for
 * `<name>.qcow2` / `<name>.img`, else one derived from the file name, with the file in `fileName`.
 */
export type VolumeNamer = (v: VolumeDetail) => { name: string; fileName?: string } | undefined;

export function exportVms(h: ExportHost, volumeName: VolumeNamer): ExportedObject[] {
  const byPath = new Map(h.volumes.map((v) => [v.path, v]));
  return h.domains.map((d) => {
    try {
      return exportVm(d, byPath, volumeName);
    } catch (e) {
      // One definition virtform cannot read does not stop the export of the others.
      return {
        kind: 'VirtualMachine', name: d.name, file: `vm-${d.name}.yaml`, object: `domain ${d.name}`, libvirtName: d.name, managed: false,
        comments: [], warnings: [`its definition cannot be read: ${(e as Error).message}`], needs: [],
      };
    }
  });
}

function exportVm(d: ExportHost['domains'][number], byPath: Map<string, VolumeDetail>, volumeName: VolumeNamer): ExportedObject {
  const out: ExportedObject = {
    kind: 'VirtualMachine', name: d.name, file: `vm-${d.name}.yaml`, object: `domain ${d.name}`, libvirtName: d.name, managed: false, comments: [], warnings: [], needs: [], claims: [],
  };
  const p = parseDomainXml(d.xml);
  out.managed = !!p.marker;
  if (!RESOURCE_NAME.test(d.name)) {
    out.warnings.push(`domain name ${JSON.stringify(d.name)} is not a resource name (1-63 lowercase letters, digits, "-"): virtform cannot manage it under that name (virsh domrename it first)`);
    return out;
  }
  if (!d.persistent) {
    out.warnings.push(`domain ${d.name} is transient (no persistent definition): export it after \`virsh dumpxml ${d.name} > f.xml && virsh define f.xml\``);
    return out;
  }
  const spec: Record<string, unknown> = { vcpus: p.vcpus };
  if (p.maxVcpus !== p.vcpus) spec.maxVcpus = p.maxVcpus;
  spec.memory = sizeOf(p.memoryKiB);
  if (p.maxMemoryKiB !== p.memoryKiB) spec.maxMemory = sizeOf(p.maxMemoryKiB);
  // <cpu>: libvirt writes `custom` qemu64 with fallback='forbid' into a definition without one
  // (the default, left out); virtform writes a declared model with fallback='allow'.
  const root = parseRoot(d.xml, 'domain');
  const fallback = child(child(root, 'cpu'), 'model')?.['@_fallback'];
  if (p.cpu && !(p.cpu.mode === 'custom' && p.cpu.model === 'qemu64' && fallback !== 'allow')) {
    spec.cpu = { mode: p.cpu.mode, ...(p.cpu.mode === 'custom' && p.cpu.model ? { model: p.cpu.model } : {}) };
  }
  if (p.type !== 'kvm' && p.type !== 'qemu') {
    out.warnings.push(`domain ${d.name} has type ${p.type}: virtform defines kvm and qemu domains only`);
    return out;
  }
  spec.state = d.active ? 'running' : 'stopped';
  spec.autostart = d.autostart;
  if (p.description) spec.description = p.description;
  // boot: firmware, and a kernel/initrd that is a volume's file is named by the volume.
  const def: DomainDef = {
    name: d.name, uuid: d.uuid, type: p.type, vcpus: p.vcpus, maxVcpus: p.maxVcpus, memoryKiB: p.memoryKiB, maxMemoryKiB: p.maxMemoryKiB,
    ...(p.description ? { description: p.description } : {}),
    ...(spec.cpu ? { cpu: spec.cpu as DomainDef['cpu'] } : {}),
    guestAgent: p.guestAgent, disks: [], nics: [],
    marker: { kind: 'VirtualMachine', name: d.name, specHash: 'export' },
  };
  if (p.boot) {
    const boot: Record<string, unknown> = {};
    if (p.boot.firmware === 'efi') boot.firmware = 'uefi';
    for (const [k, path] of [['kernel', p.boot.kernel], ['initrd', p.boot.initrd]] as const) {
      if (path === undefined) continue;
      const v = byPath.get(path);
      const name = v ? volumeName(v)?.name : undefined;
      if (name) {
        boot[`${k}Volume`] = name;
        out.needs.push({ kind: 'Volume', name });
      } else boot[k] = path;
    }
    if (p.boot.cmdline) boot.cmdline = p.boot.cmdline;
    spec.boot = boot;
    def.boot = { ...p.boot };
  }
  // graphics: the first VNC or SPICE device with a listen address.
  const g = p.graphics[0];
  if (g && (g.type === 'vnc' || g.type === 'spice') && g.listen) {
    spec.graphics = { type: g.type, listen: g.listen };
    def.graphics = { type: g.type, listen: g.listen };
  }
  if (!p.guestAgent) spec.guestAgent = false;
  // Disks and CD-ROMs on volumes, in definition order (targets by bus, as virtform assigns them).
  const disks: Record<string, unknown>[] = [];
  const cdromAt = new Map(p.cdroms.map((c) => [c.target, c]));
  const diskAt = new Map(p.disks.map((x) => [x.target, x]));
  for (const target of diskTargetsInOrder(root)) {
    const x = diskAt.get(target);
    const c = cdromAt.get(target);
    if (x) {
      const v = byPath.get(x.path);
      const name = v ? volumeName(v)?.name : undefined;
      if (!v || !name) {
        out.warnings.push(`disk ${x.target} (${x.path || 'no source'}) is ${v ? 'a volume virtform cannot name' : 'not a volume of a pool'}: left out`);
        continue;
      }
      if (!['virtio', 'sata', 'scsi', 'ide'].includes(x.bus)) {
        out.warnings.push(`disk ${x.target} is on bus ${x.bus}: virtform attaches disks on virtio, sata, scsi or ide; left out`);
        continue;
      }
      disks.push({ volume: name, bus: x.bus, ...(x.bootOrder !== undefined ? { boot: x.bootOrder } : {}) });
      def.disks.push({ path: x.path, format: v.format === 'qcow2' ? 'qcow2' : 'raw', bus: x.bus as DiskBus, target: x.target, ...(x.bootOrder !== undefined ? { bootOrder: x.bootOrder } : {}) });
      out.needs.push({ kind: 'Volume', name });
    } else if (c) {
      const v = c.path ? byPath.get(c.path) : undefined;
      const name = v ? volumeName(v)?.name : undefined;
      const bootOrder = (c as { bootOrder?: number }).bootOrder;
      if (!c.path || !v) {
        out.warnings.push(`CD-ROM ${c.target} (${c.path || 'empty'}) ${c.path ? 'is not a volume of a pool' : 'holds no medium'}: left out`);
        continue;
      }
      if (!['sata', 'scsi', 'ide'].includes(c.bus)) {
        out.warnings.push(`CD-ROM ${c.target} is on bus ${c.bus}: virtform attaches CD-ROMs on ide, sata or scsi; left out`);
        continue;
      }
      const ownSeed = !!p.marker && v.name === `${d.name}-cidata.iso`;
      // Any other file (terraform's `commoninit.iso` too, with spec.fileName) is a Volume: it stays
      // when the VM goes, as terraform's libvirt_cloudinit_disk is a resource of its own.
      if (!ownSeed && name) {
        // A Volume (never decoded) attached as a CD-ROM as it is.
        disks.push({ volume: name, device: 'cdrom', bus: c.bus, ...(bootOrder !== undefined ? { boot: bootOrder } : {}) });
        def.disks.push({ path: c.path, format: 'raw', bus: c.bus as DiskBus, target: c.target, device: 'cdrom', ...(bootOrder !== undefined ? { bootOrder } : {}) } as DomainDef['disks'][number]);
        out.needs.push({ kind: 'Volume', name });
      } else if (!spec.cloudInit && c.bus === 'ide' && bootOrder === undefined) {
        // virtform's own seed (`<vm>-cidata.iso`), or an ISO a Volume cannot name (not a file name spec.fileName takes):
        // the VM's cloud-init seed, attached as it is (cloudInit.seedVolume).
        spec.cloudInit = { pool: v.pool, seedVolume: v.name };
        def.cdroms = [{ path: c.path, bus: 'ide', target: c.target }];
        out.needs.push({ kind: 'StoragePool', name: v.pool });
        out.claims!.push(`volume ${v.pool}/${v.name}`);
        if (!ownSeed) {
          out.warnings.push(`CD-ROM ${c.target} on ${v.pool}/${v.name}: exported as the VM's cloud-init seed (spec.cloudInit.seedVolume), which is derived data of the VM: deleted with it (to keep it, declare it as a Volume with spec.fileName and attach it with device: cdrom)`);
        }
      } else {
        out.warnings.push(`CD-ROM ${c.target} on ${v.pool}/${v.name}: a Volume cannot name the file (and the VM has its cloud-init seed already): left out`);
      }
    }
  }
  if (disks.length) spec.disks = disks;
  const nics: Record<string, unknown>[] = [];
  for (const n of p.nics) {
    if (n.type !== 'network' || !n.network) {
      out.warnings.push(`interface ${n.mac || '(no MAC)'} of type ${n.type}: virtform attaches NICs to libvirt networks only; left out`);
      continue;
    }
    if (!RESOURCE_NAME.test(n.network)) {
      out.warnings.push(`interface ${n.mac} is on network ${n.network}, which virtform cannot name; left out`);
      continue;
    }
    nics.push({ network: n.network, ...(n.mac ? { mac: n.mac.toLowerCase() } : {}), model: n.model });
    def.nics.push({ network: n.network, ...(n.mac ? { mac: n.mac.toLowerCase() } : {}), model: n.model });
    out.needs.push({ kind: 'Network', name: n.network });
  }
  if (nics.length) spec.nics = nics;
  // Devices virtform does not model: spec.extraDevices, unless they reach into the host.
  const extra: string[] = [];
  for (const x of extraDevicesOf(child(root, 'devices'))) {
    const f = withoutAddresses(fragOf(x));
    const reach = hostReachOf(f);
    const what = [...reach.elements.map((e) => `<${e}>`), ...reach.paths.map((q) => `host path ${q.path}`), ...reach.network];
    if (what.length) {
      out.warnings.push(`device ${canonicalFragment(f)} reaches the host (${what.join(', ')}): the policy must allow it (extraDevices in --policy); left out`);
      continue;
    }
    extra.push(canonicalFragment(f));
  }
  if (extra.length) {
    spec.extraDevices = extra;
    def.extraDevices = extra;
  }
  // Whatever the manifest's definition would not have: a warning each.
  let built: string | undefined;
  try {
    built = buildDomainXml(def);
  } catch (e) {
    out.warnings.push(`the manifest's definition cannot be built: ${(e as Error).message}`);
  }
  if (built !== undefined) {
    for (const x of domainAdoptionDifferences(d.xml, built, { disksOrNics: false })) {
      // A disk or CD-ROM left out is warned about above already.
      if (x.path.startsWith('devices/disk[') && x.change === 'dropped by adoption') continue;
      out.warnings.push(`${x.path} ${x.change}${x.change === 'rewritten by adoption' ? `: ${x.before ?? ''} → ${x.after ?? ''}` : `: ${x.before ?? x.after ?? ''}`}`);
    }
  }
  out.doc = { apiVersion: API_VERSION, kind: 'VirtualMachine', metadata: { name: d.name, adopt: true }, spec };
  if (p.marker) {
    // spec.domainType declared, or left to the host: the XML says the same; the marker's hash tells.
    out.markerHash = p.marker.specHash;
    out.alternatives = [{ ...out.doc, spec: { ...spec, domainType: p.type } }];
  }
  return out;
}

/** The host's domains with their inactive XML (a transient domain: its live XML). */
export async function readDomainsForExport(host: HostPort, snapshot: HostSnapshot): Promise<ExportHost['domains']> {
  const out: ExportHost['domains'] = [];
  for (const o of snapshot.domains) {
    const xml = host.inactiveXml ? await unlessGone(() => host.inactiveXml!('domain', o.name)) : null;
    const detail = xml === null ? await unlessGone(() => host.getDomain(o.name)) : null;
    const text = xml ?? detail?.xml;
    if (text === undefined || text === null) continue;
    out.push({ name: o.name, uuid: o.uuid, active: o.active, autostart: o.autostart, persistent: o.persistent !== false, xml: text });
  }
  return out;
}
