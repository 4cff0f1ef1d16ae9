import { describe, expect, it } from 'vitest';
import { capabilitiesHostUuid, chooseDomainType, LibvirtXmlError, parseCapabilities, parseDomainCapabilities } from '../../../src/libvirt/xml/index.js';
import { fixture } from './helpers.js';

function caps(guests: string): string {
  return `<capabilities><host><cpu><arch>x86_64</arch></cpu></host>${guests}</capabilities>`;
}
const guest = (os: string, arch: string, types: string[]) =>
  `<guest><os_type>${os}</os_type><arch name='${arch}'><wordsize>64</wordsize>${types
    .map((t) => `<domain type='${t}'/>`)
    .join('')}</arch></guest>`;

describe('parseCapabilities', () => {
  it('reads the real libvirt 9.0 capabilities of this host (KVM available)', () => {
    const c = parseCapabilities(fixture('libvirt9-caps.xml'));
    expect(c.hostArch).toBe('x86_64');
    expect(c.guests.map((g) => g.arch)).toEqual(['i686', 'x86_64']);
    expect(c.x86_64HvmDomainTypes).toEqual(['kvm', 'qemu']);
    expect(chooseDomainType(c)).toBe('kvm');
  });

  it('host UUID: <host><uuid> when present, null when the driver reports none (test driver)', () => {
    expect(parseCapabilities(fixture('libvirt9-caps.xml')).hostUuid).toBe('7f2f6a65-832b-4fc7-a605-9cbe7c4a85c0');
    const xml = '<capabilities><host><uuid> aca42082-0fa6-4126-89cb-d995ec095b97 </uuid><cpu><arch>x86_64</arch></cpu></host></capabilities>';
    expect(parseCapabilities(xml).hostUuid).toBe('aca42082-0fa6-4126-89cb-d995ec095b97');
    expect(parseCapabilities(caps('')).hostUuid).toBeNull();
  });

  it('capabilitiesHostUuid: the UUID parseCapabilities reads, from the layout libvirt writes without a parse, from any other by parsing', () => {
    const real = fixture('libvirt9-caps.xml');
    expect(capabilitiesHostUuid(real)).toBe('7f2f6a65-832b-4fc7-a605-9cbe7c4a85c0');
    // Other shapes than libvirt's: an XML declaration, padding in the element, UUID elsewhere, none.
    const shapes = [
      `<?xml version="1.0"?>\n${real}`,
      '<capabilities><host><uuid> aca42082-0fa6-4126-89cb-d995ec095b97 </uuid><cpu><arch>x86_64</arch></cpu></host></capabilities>',
      '<capabilities><host><cpu><arch>x86_64</arch></cpu><uuid>aca42082-0fa6-4126-89cb-d995ec095b97</uuid></host></capabilities>',
      caps(''),
    ];
    for (const xml of shapes) expect(capabilitiesHostUuid(xml)).toBe(parseCapabilities(xml).hostUuid);
    expect(capabilitiesHostUuid(shapes[2]!)).toBe('aca42082-0fa6-4126-89cb-d995ec095b97');
    // Not a capabilities document: refused as by the full parse.
    expect(() => capabilitiesHostUuid('<domain/>')).toThrow(LibvirtXmlError);
  });

  it('TCG only', () => {
    const c = parseCapabilities(caps(guest('hvm', 'x86_64', ['qemu'])));
    expect(c.x86_64HvmDomainTypes).toEqual(['qemu']);
    expect(chooseDomainType(c)).toBe('qemu');
  });

  it('kvm offered only for another arch or os type does not count', () => {
    const c = parseCapabilities(caps(guest('hvm', 'i686', ['qemu', 'kvm']) + guest('xen', 'x86_64', ['kvm']) + guest('hvm', 'x86_64', ['qemu'])));
    expect(c.x86_64HvmDomainTypes).toEqual(['qemu']);
  });

  it('no x86_64 hvm guest: chooseDomainType throws', () => {
    const c = parseCapabilities(caps(guest('hvm', 'aarch64', ['qemu'])));
    expect(c.x86_64HvmDomainTypes).toEqual([]);
    expect(() => chooseDomainType(c)).toThrow(LibvirtXmlError);
    expect(parseCapabilities('<capabilities/>').guests).toEqual([]);
  });
});

describe('chooseDomainType with an operator choice', () => {
  const both = { x86_64HvmDomainTypes: ['kvm', 'qemu'] as ('kvm' | 'qemu')[] };
  const tcgOnly = { x86_64HvmDomainTypes: ['qemu'] as ('kvm' | 'qemu')[] };
  it('auto prefers kvm; an explicit offered type is taken as asked', () => {
    expect(chooseDomainType(both, 'auto')).toBe('kvm');
    expect(chooseDomainType(both, 'qemu')).toBe('qemu');
    expect(chooseDomainType(both, 'kvm')).toBe('kvm');
    expect(chooseDomainType(tcgOnly, 'qemu')).toBe('qemu');
  });
  it('a type the host does not offer is an error naming what it does offer', () => {
    expect(() => chooseDomainType(tcgOnly, 'kvm')).toThrow(/domain type 'kvm' was asked for, but the host offers 'qemu' \(is \/dev\/kvm/);
    expect(() => chooseDomainType({ x86_64HvmDomainTypes: [] }, 'qemu')).toThrow(/host offers no x86_64 hvm domain type/);
  });
});

describe('parseDomainCapabilities (virsh domcapabilities of libvirt 9.0 / QEMU 7.2 on this machine)', () => {
  it('kvm: every cpu mode; the custom models with their usability; vnc and spice', () => {
    const c = parseDomainCapabilities(fixture('libvirt9-domcaps-kvm.xml'));
    expect(c.domainType).toBe('kvm');
    expect(c.machine).toBe('pc-i440fx-7.2');
    expect(c.cpuModes).toEqual(['host-passthrough', 'maximum', 'host-model', 'custom']);
    expect(c.cpuModels.length).toBe(53);
    expect(c.cpuModels.filter((m) => m.usable).map((m) => m.name)).toEqual(['pentium3', 'pentium2', 'pentium', '486']);
    expect(c.graphicsTypes).toEqual(['sdl', 'vnc', 'spice', 'egl-headless', 'dbus']);
    expect(c.channelTypes).toEqual(['pty', 'unix', 'spicevmc']);
  });

  it('qemu (TCG): no host-passthrough', () => {
    const c = parseDomainCapabilities(fixture('libvirt9-domcaps-qemu.xml'));
    expect(c.domainType).toBe('qemu');
    expect(c.cpuModes).toEqual(['maximum', 'host-model', 'custom']);
    expect(c.cpuModels.find((m) => m.name === 'Westmere')).toEqual({ name: 'Westmere', usable: true });
    expect(c.cpuModels.filter((m) => m.usable).length).toBe(18);
    expect(c.graphicsTypes).toContain('spice');
  });

  it('graphics not supported, no cpu element: empty lists', () => {
    const c = parseDomainCapabilities(`<domainCapabilities><domain>qemu</domain><devices><graphics supported='no'/></devices></domainCapabilities>`);
    expect(c).toEqual({ domainType: 'qemu', machine: '', cpuModes: [], cpuModels: [], graphicsTypes: [], channelTypes: [] });
  });
});
