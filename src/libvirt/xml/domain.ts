/**
 * Domain (VM) XML.
 *
 * Built documents: `<domain type='kvm|qemu'>` with name, optional uuid and description, the owner
 * marker in `<metadata>`, `<memory>` (the maximum) and `<currentMemory>` in KiB, `<vcpu
 * current='N'>MAX</vcpu>`, an x86_64 `hvm` OS on the `pc` machine type, per-disk `<boot order>`
 * (no `<os><boot>`), destroy/restart/destroy lifecycle actions, file-backed disks,
 * `type='network'` NICs, a pty serial console, a virtio memory balloon (so memory below the maximum
 * can be changed on a running domain; vCPUs below the maximum can be plugged), and optionally a
 * `<cpu mode>` (with `<model>` for custom), one `<graphics type='vnc|spice' listen autoport='yes'>`
 * and the QEMU guest agent's virtio channel (`<channel type='unix'>`, libvirt picks the socket),
 * then the extra devices (`spec.extraDevices`, see extra-devices.ts) as they are.
 */
import { markerMetadata, readMarker } from './marker.js';
import { extraDevicesOf, fragOf, fragToElement } from './extra-devices.js';
import {
  LibvirtXmlError,
  type DomainBoot,
  type DomainDef,
  type DomainDiskDef,
  type DomainNicDef,
  type ParsedDomain,
  type ParsedDomainDisk,
  type ParsedDomainNic,
} from './types.js';
import {
  attr,
  child,
  childText,
  children,
  el,
  parseIntStrict,
  parseRoot,
  renderXml,
  requireInt,
  requireNonEmpty,
  scaledBytes,
  text,
  toSafeNumber,
  type XElement,
  type XNode,
} from './xml-util.js';

const BUSES = new Set(['virtio', 'sata', 'scsi', 'ide']);
const FORMATS = new Set(['qcow2', 'raw']);
const CPU_MODES = new Set(['host-passthrough', 'host-model', 'maximum', 'custom']);
const GRAPHICS = new Set(['vnc', 'spice']);
/** The virtio-serial port name the QEMU guest agent listens on. */
export const GUEST_AGENT_CHANNEL = 'org.qemu.guest_agent.0';

// --- hot-plug (issue 24): one device's XML, as `<devices>` of a built domain has it -----------

function diskElement(d: DomainDiskDef): XElement {
  const cdrom = d.device === 'cdrom';
  if (cdrom && d.bus === 'virtio') throw new LibvirtXmlError('invalid-input', `cdrom ${d.target}: a cdrom cannot be on the virtio bus`);
  return el('disk', { type: 'file', device: cdrom ? 'cdrom' : 'disk' }, [
    el('driver', { name: 'qemu', type: d.format }),
    el('source', { file: d.path }),
    el('target', { dev: d.target, bus: d.bus }),
    // A CD-ROM is read-only (QEMU refuses a writable one).
    cdrom && el('readonly'),
    d.bootOrder !== undefined && el('boot', { order: d.bootOrder }),
  ]);
}

function nicElement(n: DomainNicDef, what: string): XElement {
  return el('interface', { type: 'network' }, [
    n.mac !== undefined && el('mac', { address: requireNonEmpty(n.mac, `${what} mac`) }),
    el('source', { network: requireNonEmpty(n.network, `${what} network`) }),
    el('model', { type: requireNonEmpty(n.model, `${what} model`) }),
  ]);
}

/** One `<disk>` element, for virDomainAttachDeviceFlags / DetachDeviceFlags. */
export function buildDiskDeviceXml(d: DomainDiskDef): string {
  requireNonEmpty(d.path, 'disk path');
  requireNonEmpty(d.target, 'disk target');
  if (!FORMATS.has(d.format)) throw new LibvirtXmlError('invalid-input', `disk: unknown format ${String(d.format)}`);
  if (!BUSES.has(d.bus)) throw new LibvirtXmlError('invalid-input', `disk: unknown bus ${String(d.bus)}`);
  return renderXml(diskElement(d));
}

/** One `<interface type='network'>` element (with its MAC), for attach and detach. */
export function buildNicDeviceXml(n: DomainNicDef & { mac: string }): string {
  return renderXml(nicElement(n, 'nic'));
}

export function buildDomainXml(def: DomainDef): string {
  if ((def.boot?.initrd !== undefined || def.boot?.cmdline !== undefined) && def.boot?.kernel === undefined) {
    throw new LibvirtXmlError('invalid-input', 'boot initrd/cmdline need a boot kernel');
  }
  if (def.type !== 'kvm' && def.type !== 'qemu') {
    throw new LibvirtXmlError('invalid-input', `domain type must be kvm or qemu, got ${String(def.type)}`);
  }
  requireNonEmpty(def.name, 'domain name');
  requireInt(def.vcpus, 'vcpus', 1);
  requireInt(def.memoryKiB, 'memoryKiB', 1);
  const maxVcpus = def.maxVcpus ?? def.vcpus;
  const maxMemoryKiB = def.maxMemoryKiB ?? def.memoryKiB;
  requireInt(maxVcpus, 'maxVcpus', def.vcpus);
  requireInt(maxMemoryKiB, 'maxMemoryKiB', def.memoryKiB);

  const targets = new Set<string>();
  const bootOrders = new Set<number>();
  const disks: XElement[] = def.disks.map((d, i) => {
    requireNonEmpty(d.path, `disk ${i} path`);
    requireNonEmpty(d.target, `disk ${i} target`);
    if (!FORMATS.has(d.format)) throw new LibvirtXmlError('invalid-input', `disk ${i}: unknown format ${String(d.format)}`);
    if (!BUSES.has(d.bus)) throw new LibvirtXmlError('invalid-input', `disk ${i}: unknown bus ${String(d.bus)}`);
    if (targets.has(d.target)) throw new LibvirtXmlError('invalid-input', `duplicate disk target ${d.target}`);
    targets.add(d.target);
    if (d.bootOrder !== undefined) {
      requireInt(d.bootOrder, `disk ${i} bootOrder`, 1);
      if (bootOrders.has(d.bootOrder)) throw new LibvirtXmlError('invalid-input', `duplicate boot order ${d.bootOrder}`);
      bootOrders.add(d.bootOrder);
    }
    return diskElement(d);
  });

  const cdroms: XElement[] = (def.cdroms ?? []).map((c, i) => {
    requireNonEmpty(c.path, `cdrom ${i} path`);
    if (targets.has(c.target)) throw new LibvirtXmlError('invalid-input', `duplicate disk target ${c.target}`);
    targets.add(c.target);
    return el('disk', { type: 'file', device: 'cdrom' }, [
      el('driver', { name: 'qemu', type: 'raw' }),
      el('source', { file: c.path }),
      el('target', { dev: requireNonEmpty(c.target, `cdrom ${i} target`), bus: c.bus }),
      el('readonly'),
    ]);
  });

  const nics: XElement[] = def.nics.map((n, i) => nicElement(n, `nic ${i}`));

  let cpu: XElement | false = false;
  if (def.cpu) {
    if (!CPU_MODES.has(def.cpu.mode)) throw new LibvirtXmlError('invalid-input', `unknown cpu mode ${String(def.cpu.mode)}`);
    if (def.cpu.mode === 'custom') {
      // check='none', as libvirt's own default model: QEMU runs a model the host CPU cannot fully
      // provide without the missing features. With libvirt's check='partial' for a declared model,
      // KVM refused qemu64 here ("Host CPU does not provide required features: svm").
      cpu = el('cpu', { mode: 'custom', match: 'exact', check: 'none' }, [el('model', { fallback: 'allow' }, requireNonEmpty(def.cpu.model ?? '', 'cpu model'))]);
    } else {
      if (def.cpu.model !== undefined) throw new LibvirtXmlError('invalid-input', `cpu mode ${def.cpu.mode} takes no model`);
      cpu = el('cpu', { mode: def.cpu.mode });
    }
  }
  let graphics: XElement | false = false;
  if (def.graphics) {
    if (!GRAPHICS.has(def.graphics.type)) throw new LibvirtXmlError('invalid-input', `unknown graphics type ${String(def.graphics.type)}`);
    graphics = el('graphics', { type: def.graphics.type, autoport: 'yes', listen: requireNonEmpty(def.graphics.listen, 'graphics listen') }, [
      el('listen', { type: 'address', address: def.graphics.listen }),
    ]);
  }

  const doc = el('domain', { type: def.type }, [
    el('name', undefined, def.name),
    def.uuid !== undefined && el('uuid', undefined, requireNonEmpty(def.uuid, 'uuid')),
    // An empty description is the same as none: libvirt does not keep an empty <description>.
    !!def.description && el('description', undefined, def.description),
    markerMetadata(def.marker),
    el('memory', { unit: 'KiB' }, maxMemoryKiB),
    el('currentMemory', { unit: 'KiB' }, def.memoryKiB),
    el('vcpu', { placement: 'static', current: def.vcpus }, maxVcpus),
    el('os', def.boot?.firmware === 'efi' ? { firmware: 'efi' } : undefined, [
      el('type', { arch: 'x86_64', machine: 'pc' }, 'hvm'),
      // No secure boot: its OVMF build needs SMM, which the `pc` machine type does not have.
      def.boot?.firmware === 'efi' && el('firmware', undefined, [el('feature', { enabled: 'no', name: 'secure-boot' })]),
      def.boot?.kernel !== undefined && el('kernel', undefined, requireNonEmpty(def.boot.kernel, 'boot kernel')),
      def.boot?.initrd !== undefined && el('initrd', undefined, requireNonEmpty(def.boot.initrd, 'boot initrd')),
      def.boot?.cmdline !== undefined && el('cmdline', undefined, def.boot.cmdline),
    ]),
    el('features', undefined, [el('acpi'), el('apic')]),
    cpu,
    el('on_poweroff', undefined, 'destroy'),
    el('on_reboot', undefined, 'restart'),
    el('on_crash', undefined, 'destroy'),
    el('devices', undefined, [
      ...disks,
      ...cdroms,
      ...nics,
      el('serial', { type: 'pty' }, [el('target', { port: 0 })]),
      el('console', { type: 'pty' }, [el('target', { type: 'serial', port: 0 })]),
      (def.guestAgent ?? true) && el('channel', { type: 'unix' }, [el('target', { type: 'virtio', name: GUEST_AGENT_CHANNEL })]),
      graphics,
      el('memballoon', { model: 'virtio' }),
      // spec.extraDevices: validated and canonical fragments, appended as they are.
      ...(def.extraDevices ?? []).map((x) => fragToElement(fragOf(x))),
    ]),
  ]);
  return renderXml(doc);
}

/**
 * Read a domain document (as returned by virDomainGetXMLDesc / `virsh dumpxml`).
 * Returns {@link ParsedDomain}: everything in `DomainDetail` except `active`/`autostart`.
 * `maxMemoryKiB` is `<memory>` and `memoryKiB` is `<currentMemory>` (`<memory>` when absent),
 * converted to KiB from whatever unit libvirt used; `maxVcpus` is the `<vcpu>` count and `vcpus`
 * its `current` attribute (the count when absent). Only `device='disk'` disks are reported. What
 * libvirt fills in by default for x86 QEMU domains is reported as such: a NIC without `<model>`
 * is `rtl8139`, a domain without `<memballoon>` has a `virtio` one. `cpu` is the `<cpu>` element's
 * mode (custom when absent) and, for custom, its model (libvirt writes `custom` qemu64 into a
 * definition that has none); `graphics` lists every `<graphics>` with its listen address (the
 * attribute, else the first `<listen type='address'>`) and a port above 0 (a running domain's).
 */
export function parseDomainXml(xml: string): ParsedDomain {
  const root = parseRoot(xml, 'domain');
  const name = childText(root, 'name');
  if (!name) throw new LibvirtXmlError('unexpected-document', 'domain XML has no <name>');
  // libvirt rounds memory up to whole KiB.
  const kib = (tag: string): number | undefined => {
    const e = child(root, tag);
    return e ? toSafeNumber((scaledBytes(e, `domain ${tag}`, 'KiB') + 1023n) / 1024n, `domain ${tag}`) : undefined;
  };
  const maxMemoryKiB = kib('memory') ?? 0;
  const memoryKiB = kib('currentMemory') ?? maxMemoryKiB;
  const vcpu = child(root, 'vcpu');
  const maxVcpus = vcpu ? parseIntStrict(text(vcpu), 'domain vcpu') : 0;
  const current = attr(vcpu, 'current');
  const vcpus = current !== undefined ? parseIntStrict(current, 'domain vcpu current') : maxVcpus;

  const devices = child(root, 'devices');
  const disks: ParsedDomainDisk[] = [];
  const cdroms: ParsedDomain['cdroms'] = [];
  for (const d of children(devices, 'disk')) {
    if (attr(d, 'device') === 'cdrom') {
      const t = child(d, 'target');
      const cd: ParsedDomain['cdroms'][number] = { path: attr(child(d, 'source'), 'file') ?? '', target: attr(t, 'dev') ?? '', bus: attr(t, 'bus') ?? '' };
      const cdOrder = attr(child(d, 'boot'), 'order');
      if (cdOrder !== undefined) cd.bootOrder = parseIntStrict(cdOrder, 'cdrom boot order');
      const cdFormat = attr(child(d, 'driver'), 'type');
      if (cdFormat !== undefined) cd.format = cdFormat;
      cdroms.push(cd);
      continue;
    }
    if ((attr(d, 'device') ?? 'disk') !== 'disk') continue;
    const source = child(d, 'source');
    const pool = attr(source, 'pool');
    const volume = attr(source, 'volume');
    const path =
      attr(source, 'file') ?? attr(source, 'dev') ?? (pool !== undefined && volume !== undefined ? `${pool}/${volume}` : '');
    const target = child(d, 'target');
    const disk: ParsedDomainDisk = { path, target: attr(target, 'dev') ?? '', bus: attr(target, 'bus') ?? '' };
    const order = attr(child(d, 'boot'), 'order');
    if (order !== undefined) disk.bootOrder = parseIntStrict(order, 'disk boot order');
    const format = attr(child(d, 'driver'), 'type');
    if (format !== undefined) disk.format = format;
    disks.push(disk);
  }

  const nics: ParsedDomainNic[] = children(devices, 'interface').map((n) => {
    const source = child(n, 'source');
    return {
      network: attr(source, 'network') ?? attr(source, 'bridge') ?? '',
      mac: attr(child(n, 'mac'), 'address') ?? '',
      model: attr(child(n, 'model'), 'type') ?? 'rtl8139',
      type: attr(n, 'type') ?? '',
    };
  });

  const graphics = children(devices, 'graphics').map((g) => {
    const out: { type: string; listen?: string; port?: number } = { type: attr(g, 'type') ?? '' };
    const listen = attr(g, 'listen') ?? attr(children(g, 'listen').find((l) => (attr(l, 'type') ?? 'address') === 'address'), 'address');
    if (listen !== undefined) out.listen = listen;
    const port = attr(g, 'port');
    if (port !== undefined && /^\d+$/.test(port) && Number(port) > 0) out.port = Number(port);
    return out;
  });
  const guestAgent = children(devices, 'channel').some((c) => {
    const t = child(c, 'target');
    return attr(t, 'type') === 'virtio' && attr(t, 'name') === GUEST_AGENT_CHANNEL;
  });

  const out: ParsedDomain = {
    name,
    uuid: childText(root, 'uuid') ?? '',
    type: attr(root, 'type') ?? '',
    vcpus,
    maxVcpus,
    memoryKiB,
    maxMemoryKiB,
    balloon: attr(child(devices, 'memballoon'), 'model') ?? 'virtio',
    graphics,
    guestAgent,
    disks,
    cdroms,
    nics,
    extraDevices: extraDevicesOf(devices),
  };
  const description = childText(root, 'description');
  if (description !== undefined) out.description = description;
  const boot = parseBoot(child(root, 'os'));
  if (boot) out.boot = boot;
  const cpuEl = child(root, 'cpu');
  if (cpuEl) {
    // libvirt's default mode is custom; host-model definitions may carry a <model> too (not ours).
    const mode = attr(cpuEl, 'mode') ?? 'custom';
    const model = childText(cpuEl, 'model')?.trim();
    out.cpu = mode === 'custom' && model ? { mode, model } : { mode };
  }
  const marker = readMarker(root);
  if (marker) out.marker = marker;
  return out;
}

/**
 * `<os>` → boot: `firmware='efi'` (autoselection, before or after libvirt resolved it) or a
 * pflash `<loader>` is `efi`; kernel, initrd and cmdline as written (an empty `<cmdline/>` is none).
 */
function parseBoot(os: XNode | undefined): DomainBoot | undefined {
  if (!os) return undefined;
  const out: DomainBoot = {};
  const loader = child(os, 'loader');
  if (attr(os, 'firmware') === 'efi' || attr(loader, 'type') === 'pflash') out.firmware = 'efi';
  const kernel = childText(os, 'kernel');
  const initrd = childText(os, 'initrd');
  const cmdline = childText(os, 'cmdline');
  if (kernel) out.kernel = kernel;
  if (initrd) out.initrd = initrd;
  if (cmdline) out.cmdline = cmdline;
  return Object.keys(out).length > 0 ? out : undefined;
}
