/**
 * Host capabilities (`virConnectGetCapabilities` / `virsh capabilities`): which domain types the
 * host offers for x86_64 `hvm` guests, to choose KVM or TCG.
 */
import { LibvirtXmlError } from './types.js';
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
  guests: GuestCapability[];
  /** Domain types (of kvm, qemu) offered for x86_64 hvm guests, kvm first when present. */
  x86_64HvmDomainTypes: ('kvm' | 'qemu')[];
}

export function parseCapabilities(xml: string): HostCapabilities {
  const root = parseRoot(xml, 'capabilities');
  const hostArch = childText(child(child(root, 'host'), 'cpu'), 'arch') ?? '';
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
  return { hostArch, guests, x86_64HvmDomainTypes };
}

/** 'kvm' when the host offers it for x86_64 hvm, else 'qemu' (TCG); throws when neither. */
export function chooseDomainType(caps: HostCapabilities): 'kvm' | 'qemu' {
  const t = caps.x86_64HvmDomainTypes[0];
  if (!t) throw new LibvirtXmlError('unexpected-document', 'host offers no x86_64 hvm domain type (kvm or qemu)');
  return t;
}
