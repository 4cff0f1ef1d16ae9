/**
 * Extra device fragments in the XML layer: canonical form, the domain XML built with them, and the
 * devices read back from libvirt 9.0's inactive XML (what it added: PCI addresses, a serial's
 * target type and model) matched against what was declared.
 */
import { describe, expect, it } from 'vitest';
import {
  buildDomainXml, canonicalFragment, extraDevicesMatch, fragOf, parseDomainXml,
} from '../../../src/libvirt/xml/index.js';

const canon = (x: string): string => canonicalFragment(fragOf(x));
const WATCHDOG = canon("<watchdog model='i6300esb' action='reset'/>");
const RNG = canon("<rng model='virtio'>\n  <backend model='random'>/dev/urandom</backend>\n</rng>");
const SERIAL = canon("<serial type='file'><source path='/var/lib/virtform-test/x.log'/></serial>");
const TABLET = canon("<input type='tablet' bus='usb'/>");

/** `virsh dumpxml --inactive` (libvirt 9.0, QEMU 7.2) of a domain built with the four devices above. */
const DUMPED = `<domain type='qemu'>
  <name>vftest-xdev-probe</name>
  <uuid>0d2c7a56-4e7e-4a5a-9d59-1a3c2b9f0d11</uuid>
  <memory unit='KiB'>65536</memory>
  <currentMemory unit='KiB'>65536</currentMemory>
  <vcpu placement='static'>1</vcpu>
  <os><type arch='x86_64' machine='pc-i440fx-7.2'>hvm</type></os>
  <devices>
    <emulator>/usr/bin/qemu-system-x86_64</emulator>
    <controller type='usb' index='0' model='piix3-uhci'>
      <address type='pci' domain='0x0000' bus='0x00' slot='0x01' function='0x2'/>
    </controller>
    <controller type='pci' index='0' model='pci-root'/>
    <serial type='pty'>
      <target type='isa-serial' port='0'>
        <model name='isa-serial'/>
      </target>
    </serial>
    <serial type='file'>
      <source path='/var/lib/virtform-test/x.log'/>
      <target type='isa-serial' port='1'>
        <model name='isa-serial'/>
      </target>
    </serial>
    <console type='pty'>
      <target type='serial' port='0'/>
    </console>
    <channel type='unix'>
      <target type='virtio' name='org.qemu.guest_agent.0'/>
      <address type='virtio-serial' controller='0' bus='0' port='1'/>
    </channel>
    <input type='tablet' bus='usb'>
      <address type='usb' bus='0' port='1'/>
    </input>
    <input type='mouse' bus='ps2'/>
    <input type='keyboard' bus='ps2'/>
    <audio id='1' type='none'/>
    <watchdog model='i6300esb' action='reset'>
      <address type='pci' domain='0x0000' bus='0x00' slot='0x05' function='0x0'/>
    </watchdog>
    <memballoon model='virtio'>
      <address type='pci' domain='0x0000' bus='0x00' slot='0x03' function='0x0'/>
    </memballoon>
    <rng model='virtio'>
      <backend model='random'>/dev/urandom</backend>
      <address type='pci' domain='0x0000' bus='0x00' slot='0x04' function='0x0'/>
    </rng>
  </devices>
</domain>
`;

describe('extra device fragments', () => {
  it('canonical form: one line, attributes sorted, whitespace and comments dropped, escapes kept', () => {
    expect(WATCHDOG).toBe("<watchdog action='reset' model='i6300esb'/>");
    expect(RNG).toBe("<rng model='virtio'><backend model='random'>/dev/urandom</backend></rng>");
    expect(canon("<!-- hi --><panic model='isa'>\n</panic>")).toBe("<panic model='isa'/>");
    expect(canon(`<channel type='unix'><target type='virtio' name="a&amp;b'c"/></channel>`)).toBe("<channel type='unix'><target name='a&amp;b&apos;c' type='virtio'/></channel>");
  });

  it('are appended to <devices> of the built domain', () => {
    const xml = buildDomainXml({
      name: 'x', type: 'qemu', vcpus: 1, memoryKiB: 65536, disks: [], nics: [], extraDevices: [WATCHDOG, RNG],
      marker: { kind: 'VirtualMachine', name: 'x', specHash: 'h' },
    });
    const devices = xml.slice(xml.indexOf('<devices>'));
    expect(devices).toContain('<watchdog action="reset" model="i6300esb"/>');
    expect(devices).toMatch(/<rng model="virtio">\s*<backend model="random">\/dev\/urandom<\/backend>\s*<\/rng>/);
    // the parser reads back exactly what was built (no libvirt additions here)
    expect(parseDomainXml(xml).extraDevices.sort()).toEqual([RNG, WATCHDOG].sort());
  });

  it('read back from libvirt: the unmodelled devices only (not the serial 0, console, agent channel, PS/2 inputs, audio, controllers)', () => {
    const got = parseDomainXml(DUMPED).extraDevices;
    expect(got.map((x) => /^<(\w+)/.exec(x)![1]).sort()).toEqual(['input', 'rng', 'serial', 'watchdog']);
    expect(got).toContain("<watchdog action='reset' model='i6300esb'><address bus='0x00' domain='0x0000' function='0x0' slot='0x05' type='pci'/></watchdog>");
  });

  it('what libvirt added (addresses, target type) matches what was declared, in any order', () => {
    const got = parseDomainXml(DUMPED).extraDevices;
    expect(extraDevicesMatch([WATCHDOG, RNG, SERIAL, TABLET], got)).toBe(true);
    expect(extraDevicesMatch([TABLET, SERIAL, RNG, WATCHDOG], got)).toBe(true);
    // a declared address written in decimal matches libvirt's hex
    expect(extraDevicesMatch([canon("<watchdog model='i6300esb'><address type='pci' slot='5'/></watchdog>"), RNG, SERIAL, TABLET], got)).toBe(true);
  });

  it('a device added, removed or changed is a difference', () => {
    const got = parseDomainXml(DUMPED).extraDevices;
    expect(extraDevicesMatch([WATCHDOG, RNG, SERIAL], got)).toBe(false); // tablet added outside
    expect(extraDevicesMatch([WATCHDOG, RNG, SERIAL, TABLET, canon("<panic model='isa'/>")], got)).toBe(false); // panic removed outside
    expect(extraDevicesMatch([canon("<watchdog model='i6300esb' action='poweroff'/>"), RNG, SERIAL, TABLET], got)).toBe(false);
    expect(extraDevicesMatch([WATCHDOG, canon("<rng model='virtio'><backend model='random'>/dev/random</backend></rng>"), SERIAL, TABLET], got)).toBe(false);
    // two declared watchdogs cannot both match the one there
    expect(extraDevicesMatch([WATCHDOG, WATCHDOG, SERIAL, TABLET], got)).toBe(false);
  });
});

describe('extra device matching at scale', () => {
  it('32 alike devices of which one differs: answered at once (a matching, not a search of permutations)', () => {
    const w = (n: number): string => canon(`<serial type='pty'><target port='${n}'/></serial>`);
    const want = Array.from({ length: 32 }, () => canon("<serial type='pty'/>"));
    const have = Array.from({ length: 32 }, (_, i) => (i === 31 ? canon("<panic model='isa'/>") : w(i + 1)));
    const t = performance.now();
    expect(extraDevicesMatch(want, have)).toBe(false);
    expect(extraDevicesMatch(want.slice(0, 31), have.slice(0, 31))).toBe(true);
    expect(performance.now() - t).toBeLessThan(1000);
  });

  it('a character XML cannot carry is refused when parsing', async () => {
    const { parseFragment } = await import('../../../src/libvirt/xml/index.js');
    const r = parseFragment("<watchdog model='&#1;'/>");
    expect(r.ok).toBe(false);
    expect(!r.ok && r.message).toMatch(/U\+0001/);
  });
});
