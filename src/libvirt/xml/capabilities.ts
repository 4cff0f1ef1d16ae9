/**
 * Host capabilities (`virConnectGetCapabilities` / `virsh capabilities`): which domain types the
 * host offers for x86_64 `hvm` guests, to choose KVM or TCG.
 */
import { LibvirtXmlError, type DomainCapabilities } from './types.js';
import { attr, child, childText, children, parseRoot, text } from './xml-util.js';

export interface GuestCapability {
  osType: string;
  arch: string;
  /** Domain types offered for this guest, e.g. ['qemu', 'kvm']. */
  domainTypes: string[];
}

export interface HostCapabilities {
  /** Host CPU architecture (`<host><cpu><arch>`), '' if absent. */
  hostArch: string;
  /** The host's UUID (`<host><uuid>`), null if absent (libvirt's test driver reports none). */
  hostUuid: string | null;
  guests: GuestCapability[];
  /** Domain types (of kvm, qemu) offered for x86_64 hvm guests, kvm first when present. */
  x86_64HvmDomainTypes: ('kvm' | 'qemu')[];
}

export function parseCapabilities(xml: string): HostCapabilities {
  const root = parseRoot(xml, 'capabilities');
  const hostArch = childText(child(child(root, 'host'), 'cpu'), 'arch') ?? '';
  const hostUuid = childText(child(root, 'host'), 'uuid')?.trim() || null;
  const guests: GuestCapability[] = [];
  for (const g of children(root, 'guest')) {
    const osType = text(child(g, 'os_type')).trim();
    for (const a of children(g, 'arch')) {
      guests.push({
        osType,
        arch: attr(a, 'name') ?? '',
        domainTypes: children(a, 'domain')
          .map((d) => attr(d, 'type'))
          .filter((t): t is string => t !== undefined),
      });
    }
  }
  const offered = new Set(
    guests.filter((g) => g.osType === 'hvm' && g.arch === 'x86_64').flatMap((g) => g.domainTypes),
  );
  const x86_64HvmDomainTypes = (['kvm', 'qemu'] as const).filter((t) => offered.has(t));
  return { hostArch, hostUuid, guests, x86_64HvmDomainTypes };
}

/**
 * The host's UUID alone (`<host><uuid>`), as {@link parseCapabilities} reads it: libvirt writes it
 * first of all (`<capabilities><host><uuid>`), so it is taken from there without parsing the whole
 * document (tens of KiB: its guests and CPU models, ~10 ms of a CLI start); any other shape is
 * parsed in full.
 */
export function capabilitiesHostUuid(xml: string): string | null {
  const m = /^\s*(?:<\?xml[^>]*\?>\s*)?<capabilities>\s*<host>\s*<uuid>([0-9a-fA-F-]{36})<\/uuid>/.exec(xml);
  return m ? m[1]! : parseCapabilities(xml).hostUuid;
}

/** What the operator asks for: `auto` picks the best the host offers. */
export type DomainTypeChoice = 'auto' | 'kvm' | 'qemu';

/**
 * `auto`: 'kvm' when the host offers it for x86_64 hvm, else 'qemu' (TCG). `kvm` or `qemu`: that
 * type, which the host must offer. Throws when the choice cannot be met.
 */
export function chooseDomainType(caps: Pick<HostCapabilities, 'x86_64HvmDomainTypes'>, choice: DomainTypeChoice = 'auto'): 'kvm' | 'qemu' {
  const offered = caps.x86_64HvmDomainTypes;
  if (choice !== 'auto') {
    if (offered.includes(choice)) return choice;
    throw new LibvirtXmlError('unexpected-document',
      `domain type '${choice}' was asked for, but the host offers ${offered.length ? offered.map((t) => `'${t}'`).join(' and ') : 'no x86_64 hvm domain type'}` +
      (choice === 'kvm' ? ' (is /dev/kvm present and accessible to libvirt\'s QEMU?)' : ''));
  }
  const t = offered[0];
  if (!t) throw new LibvirtXmlError('unexpected-document', 'host offers no x86_64 hvm domain type (kvm or qemu)');
  return t;
}

/** The `<value>`s of `<enum name=…>` under an element. */
function enumValues(node: ReturnType<typeof child>, name: string): string[] {
  const e = children(node, 'enum').find((x) => attr(x, 'name') === name);
  return children(e, 'value').map((v) => text(v).trim());
}

/**
 * Domain capabilities (`virConnectGetDomainCapabilities` / `virsh domcapabilities`): the CPU modes
 * and custom models, graphics and channel types the hypervisor offers for one domain type.
 */
export function parseDomainCapabilities(xml: string): DomainCapabilities {
  const root = parseRoot(xml, 'domainCapabilities');
  const cpu = child(root, 'cpu');
  const modes = children(cpu, 'mode');
  const cpuModes = modes.filter((m) => attr(m, 'supported') === 'yes').map((m) => attr(m, 'name') ?? '').filter(Boolean);
  const custom = modes.find((m) => attr(m, 'name') === 'custom' && attr(m, 'supported') === 'yes');
  const cpuModels = children(custom, 'model').map((m) => ({ name: text(m).trim(), usable: attr(m, 'usable') !== 'no' }));
  const devices = child(root, 'devices');
  const supported = (tag: string, name: string): string[] => {
    const e = child(devices, tag);
    return e && attr(e, 'supported') === 'yes' ? enumValues(e, name) : [];
  };
  return {
    domainType: childText(root, 'domain')?.trim() ?? '',
    machine: childText(root, 'machine')?.trim() ?? '',
    cpuModes,
    cpuModels,
    graphicsTypes: supported('graphics', 'type'),
    channelTypes: supported('channel', 'type'),
  };
}
