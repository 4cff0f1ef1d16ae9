import { describe, expect, it } from 'vitest';
import {
  buildDomainXml,
  LibvirtXmlError,
  OWNER_NS,
  parseDomainXml,
  type DomainDef,
} from '../../../src/libvirt/xml/index.js';
import { fixture, HOSTILE, HOSTILE_MORE } from './helpers.js';

function def(over: Partial<DomainDef> = {}): DomainDef {
  return {
    name: 'vm1',
    type: 'kvm',
    vcpus: 2,
    memoryKiB: 524288,
    disks: [{ path: '/var/lib/vf/vm1.qcow2', format: 'qcow2', bus: 'virtio', target: 'vda', bootOrder: 1 }],
    nics: [{ network: 'net1', mac: '52:54:00:12:34:56', model: 'virtio' }],
    marker: { kind: 'VirtualMachine', name: 'vm1', specHash: 'sha256:abc' },
    ...over,
  };
}

/** The fields of a def a parsed domain must reproduce. */
function expectRoundTrip(d: DomainDef): void {
  const p = parseDomainXml(buildDomainXml(d));
  expect(p.name).toBe(d.name);
  expect(p.uuid).toBe(d.uuid ?? '');
  expect(p.type).toBe(d.type);
  expect(p.vcpus).toBe(d.vcpus);
  expect(p.memoryKiB).toBe(d.memoryKiB);
  expect(p.description).toBe(d.description);
  expect(p.disks).toEqual(
    d.disks.map((x) => ({
      path: x.path,
      target: x.target,
      bus: x.bus,
      format: x.format,
      ...(x.bootOrder !== undefined ? { bootOrder: x.bootOrder } : {}),
    })),
  );
  expect(p.nics).toEqual(d.nics.map((n) => ({ network: n.network, mac: n.mac ?? '', model: n.model, type: 'network' })));
  expect(p.marker).toEqual(d.marker);
}

describe('buildDomainXml / parseDomainXml round trip', () => {
  it('plain definition', () => {
    expectRoundTrip(def());
  });

  it('uuid, description, several disks and NICs, no boot order on some', () => {
    expectRoundTrip(
      def({
        uuid: '2c964bbf-8540-4a07-9c1b-4a2eabe6b1d2',
        description: 'web server\nsecond line\twith tab',
        disks: [
          { path: '/a/os.qcow2', format: 'qcow2', bus: 'virtio', target: 'vda', bootOrder: 2 },
          { path: '/a/data.raw', format: 'raw', bus: 'sata', target: 'sda' },
          { path: '/a/boot.raw', format: 'raw', bus: 'ide', target: 'hda', bootOrder: 1 },
        ],
        nics: [
          { network: 'n1', model: 'virtio' },
          { network: 'n2', mac: '52:54:00:00:00:02', model: 'e1000' },
        ],
      }),
    );
  });

  it('no disks and no NICs', () => {
    expectRoundTrip(def({ disks: [], nics: [] }));
  });

  it('hostile and unicode values in every user-supplied field', () => {
    expectRoundTrip(
      def({
        name: HOSTILE,
        description: `${HOSTILE_MORE}\r\n\t  leading and trailing  `,
        disks: [{ path: `/p/${HOSTILE}/é 😀.qcow2`, format: 'qcow2', bus: 'virtio', target: 'vda', bootOrder: 1 }],
        nics: [{ network: HOSTILE, mac: HOSTILE, model: `${HOSTILE}m` }],
        marker: { kind: 'VirtualMachine', name: `${HOSTILE} 日本`, specHash: `${HOSTILE}\n\t` },
      }),
    );
  });

  it('an empty description is written as none', () => {
    const xml = buildDomainXml(def({ description: '' }));
    expect(xml).not.toContain('<description');
    expect(parseDomainXml(xml).description).toBeUndefined();
  });

  it('a description cannot inject elements', () => {
    const d = def({ description: '</description><devices><disk type="file"><source file="/etc/shadow"/></disk></devices><description>', disks: [] });
    const xml = buildDomainXml(d);
    expect(xml.match(/<disk/g)).toBeNull();
    expect(xml.match(/<devices>/g)).toHaveLength(1);
    const p = parseDomainXml(xml);
    expect(p.disks).toEqual([]);
    expect(p.description).toBe(d.description);
  });

  it('names and MACs cannot inject attributes', () => {
    const xml = buildDomainXml(def({ nics: [{ network: `x' evil='1`, mac: `y" evil="2`, model: 'virtio' }] }));
    expect(xml).not.toMatch(/evil=["']/);
    const nic = parseDomainXml(xml).nics[0];
    expect(nic?.network).toBe(`x' evil='1`);
    expect(nic?.mac).toBe(`y" evil="2`);
  });

  it('uses per-disk boot order, not <os><boot>', () => {
    const xml = buildDomainXml(def());
    expect(xml).toMatch(/<boot order="1"\/>/);
    expect(xml).not.toMatch(/<boot dev=/);
    expect(xml).toMatch(/<on_poweroff>destroy<\/on_poweroff>/);
    expect(xml).not.toMatch(/<graphics/);
    expect(xml).toContain(`xmlns:vf="${OWNER_NS}"`);
  });
});

describe('buildDomainXml input checks', () => {
  it('rejects invalid definitions', () => {
    expect(() => buildDomainXml(def({ vcpus: 0 }))).toThrow(LibvirtXmlError);
    expect(() => buildDomainXml(def({ memoryKiB: 1.5 }))).toThrow(LibvirtXmlError);
    expect(() => buildDomainXml(def({ type: 'xen' as 'kvm' }))).toThrow(LibvirtXmlError);
    expect(() => buildDomainXml(def({ name: '' }))).toThrow(LibvirtXmlError);
    expect(() => buildDomainXml(def({ description: 'bell\u0007' }))).toThrow(LibvirtXmlError);
    const disk = { path: '/a', format: 'raw' as const, bus: 'virtio' as const, target: 'vda' };
    expect(() => buildDomainXml(def({ disks: [disk, { ...disk, path: '/b' }] }))).toThrow(/duplicate disk target/);
    expect(() =>
      buildDomainXml(def({ disks: [{ ...disk, bootOrder: 1 }, { ...disk, target: 'vdb', bootOrder: 1 }] })),
    ).toThrow(/duplicate boot order/);
    expect(() => buildDomainXml(def({ marker: { kind: 'Thing' as 'Volume', name: 'a', specHash: 'b' } }))).toThrow(LibvirtXmlError);
  });
});

describe('parseDomainXml on libvirt output shapes', () => {
  it('reads libvirt 9.0 dumpxml of a built domain', () => {
    const p = parseDomainXml(fixture('libvirt9-dom.xml'));
    expect(p).toEqual({
      name: 'vftest-xml-probedom',
      uuid: '2c964bbf-8540-4a07-9c1b-4a2eabe6b1d2',
      type: 'kvm',
      vcpus: 2,
      maxVcpus: 2,
      memoryKiB: 65536,
      maxMemoryKiB: 65536,
      // this fixture was built before virtform gave domains a balloon
      balloon: 'none',
      // libvirt's default, written into a definition without <cpu>
      cpu: { mode: 'custom', model: 'qemu64' },
      graphics: [],
      guestAgent: false,
      // built with "\r\n": libvirt writes the CR raw, so it reads back as a line feed.
      description: `x</description><devices>\n\t y <>&"' é😀`,
      disks: [
        {
          path: "/var/lib/virtform-test/vftest-xml-probepool/vftest-xml-a&b'é.qcow2",
          target: 'vda',
          bus: 'virtio',
          bootOrder: 2,
          format: 'qcow2',
        },
        {
          path: '/var/lib/virtform-test/vftest-xml-probepool/vftest-xml-clone.qcow2',
          target: 'sda',
          bus: 'sata',
          bootOrder: 1,
          format: 'qcow2',
        },
      ],
      cdroms: [],
      nics: [
        { network: 'vftest-xml-probenet', mac: '52:54:00:ab:cd:01', model: 'virtio', type: 'network' },
        { network: 'vftest-xml-probenet', mac: '52:54:00:71:ca:f5', model: 'e1000', type: 'network' },
      ],
      extraDevices: [],
      marker: { kind: 'VirtualMachine', name: `a<b&"c'>é😀`, specHash: 'sha256:1' },
    });
  });

  it('single disk, cdrom skipped, memory in MiB, no NIC, no description/metadata', () => {
    const xml = `<domain type='qemu' id='3'>
  <name>foreign</name>
  <uuid>11111111-2222-3333-4444-555555555555</uuid>
  <memory unit='MiB'>1024</memory>
  <currentMemory unit='KiB'>524288</currentMemory>
  <vcpu placement='static' current='1'>4</vcpu>
  <os><type arch='x86_64' machine='pc-q35-7.2'>hvm</type><boot dev='hd'/></os>
  <devices>
    <disk type='file' device='cdrom'>
      <driver name='qemu' type='raw'/>
      <source file='/iso/debian.iso'/>
      <target dev='sdb' bus='sata'/>
      <readonly/>
    </disk>
    <disk type='block' device='disk'>
      <driver name='qemu' type='raw'/>
      <source dev='/dev/vg0/root'/>
      <target dev='vda' bus='virtio'/>
    </disk>
  </devices>
</domain>`;
    const p = parseDomainXml(xml);
    // <memory> is the maximum, <currentMemory> what the domain runs with; <vcpu> the maximum, current= the count
    expect(p.maxMemoryKiB).toBe(1024 * 1024);
    expect(p.memoryKiB).toBe(524288);
    expect(p.maxVcpus).toBe(4);
    expect(p.vcpus).toBe(1);
    expect(p.balloon).toBe('virtio'); // libvirt's default when the XML names none
    expect(p.type).toBe('qemu');
    expect(p.description).toBeUndefined();
    expect(p.marker).toBeUndefined();
    expect(p.nics).toEqual([]);
    expect(p.disks).toEqual([{ path: '/dev/vg0/root', target: 'vda', bus: 'virtio', format: 'raw' }]);
  });

  it('memory given in bytes / GiB / GB is converted to KiB (rounded up)', () => {
    const mk = (unit: string, v: string) =>
      parseDomainXml(`<domain type='kvm'><name>m</name><memory unit='${unit}'>${v}</memory><vcpu>1</vcpu></domain>`).memoryKiB;
    expect(mk('bytes', '67108864')).toBe(65536);
    expect(mk('b', '1025')).toBe(2);
    expect(mk('GiB', '2')).toBe(2 * 1024 * 1024);
    expect(mk('G', '1')).toBe(1024 * 1024);
    expect(mk('GB', '1')).toBe(976563);
    expect(mk('KiB', '123')).toBe(123);
  });

  it('finds the marker under another prefix or the default namespace, ignores other namespaces', () => {
    const wrap = (meta: string) =>
      `<domain type='kvm'><name>m</name><memory>1</memory><vcpu>1</vcpu><metadata>${meta}</metadata></domain>`;
    const attrs = `kind='Volume' name='v&amp;1' spec-hash='h'`;
    expect(parseDomainXml(wrap(`<other:owner xmlns:other='${OWNER_NS}' ${attrs}/>`)).marker).toEqual({
      kind: 'Volume',
      name: 'v&1',
      specHash: 'h',
    });
    expect(parseDomainXml(wrap(`<owner xmlns='${OWNER_NS}' ${attrs}/>`)).marker?.name).toBe('v&1');
    expect(
      parseDomainXml(wrap(`<x:owner xmlns:x='https://example.com/not-ours' ${attrs}/><app:data xmlns:app='urn:a'/>`)).marker,
    ).toBeUndefined();
    // ours, but incomplete / bad kind
    expect(parseDomainXml(wrap(`<vf:owner xmlns:vf='${OWNER_NS}' kind='Nope' name='a' spec-hash='h'/>`)).marker).toBeUndefined();
    expect(parseDomainXml(wrap(`<vf:owner xmlns:vf='${OWNER_NS}' kind='Volume' name='a'/>`)).marker).toBeUndefined();
    // another app's element first, ours second
    expect(
      parseDomainXml(wrap(`<a:owner xmlns:a='urn:other' kind='Volume' name='x' spec-hash='y'/><vf:owner xmlns:vf='${OWNER_NS}' ${attrs}/>`))
        .marker?.name,
    ).toBe('v&1');
  });

  it('rejects documents that are not domains or have no name', () => {
    expect(() => parseDomainXml('<network><name>x</name></network>')).toThrow(LibvirtXmlError);
    expect(() => parseDomainXml('<domain><memory>1</memory></domain>')).toThrow(/no <name>/);
    expect(() => parseDomainXml("<domain><name>x</name><memory unit='parsec'>1</memory></domain>")).toThrow(/unknown unit/);
  });
});

/** The built document without the pretty-printing whitespace between tags. */
const flat = (xml: string): string => xml.replace(/>\s+</g, '><');

describe('cpu, graphics and the guest agent channel', () => {
  it('round-trips every cpu mode; custom carries its model', () => {
    for (const mode of ['host-passthrough', 'host-model', 'maximum'] as const) {
      const xml = flat(buildDomainXml(def({ cpu: { mode } })));
      expect(xml).toContain(`<cpu mode="${mode}"/>`);
      expect(parseDomainXml(xml).cpu).toEqual({ mode });
    }
    const xml = flat(buildDomainXml(def({ cpu: { mode: 'custom', model: 'Westmere' } })));
    expect(xml).toMatch(/<cpu mode="custom" match="exact" check="none"><model fallback="allow">Westmere<\/model><\/cpu>/);
    expect(parseDomainXml(xml).cpu).toEqual({ mode: 'custom', model: 'Westmere' });
    // no <cpu> at all: nothing reported (libvirt writes its default into the definition)
    expect(parseDomainXml(buildDomainXml(def())).cpu).toBeUndefined();
  });

  it('rejects a model without custom, custom without a model, unknown modes', () => {
    expect(() => buildDomainXml(def({ cpu: { mode: 'host-model', model: 'EPYC' } }))).toThrow(/takes no model/);
    expect(() => buildDomainXml(def({ cpu: { mode: 'custom' } }))).toThrow(/cpu model/);
    expect(() => buildDomainXml(def({ cpu: { mode: 'fast' as 'custom' } }))).toThrow(/unknown cpu mode/);
    expect(() => buildDomainXml(def({ graphics: { type: 'rdp' as 'vnc', listen: '127.0.0.1' } }))).toThrow(/unknown graphics type/);
  });

  it('graphics: vnc/spice with listen and autoport; none by default', () => {
    const xml = flat(buildDomainXml(def({ graphics: { type: 'vnc', listen: '127.0.0.1' } })));
    expect(xml).toContain('<graphics type="vnc" autoport="yes" listen="127.0.0.1"><listen type="address" address="127.0.0.1"/></graphics>');
    expect(parseDomainXml(xml).graphics).toEqual([{ type: 'vnc', listen: '127.0.0.1' }]);
    expect(parseDomainXml(buildDomainXml(def({ graphics: { type: 'spice', listen: '0.0.0.0' } }))).graphics).toEqual([{ type: 'spice', listen: '0.0.0.0' }]);
    expect(flat(buildDomainXml(def()))).not.toContain('<graphics');
    expect(parseDomainXml(buildDomainXml(def())).graphics).toEqual([]);
  });

  it('reads libvirt 9.0 shapes: the inactive port -1, a running port, listen only as a child element', () => {
    const dom = (devices: string): string => `<domain type='qemu'><name>g</name><devices>${devices}</devices></domain>`;
    expect(parseDomainXml(dom(`<graphics type='vnc' port='-1' autoport='yes' listen='127.0.0.1'><listen type='address' address='127.0.0.1'/></graphics>`)).graphics)
      .toEqual([{ type: 'vnc', listen: '127.0.0.1' }]);
    expect(parseDomainXml(dom(`<graphics type='vnc' port='5900' autoport='yes' listen='127.0.0.1'><listen type='address' address='127.0.0.1'/></graphics>`)).graphics)
      .toEqual([{ type: 'vnc', listen: '127.0.0.1', port: 5900 }]);
    expect(parseDomainXml(dom(`<graphics type='spice' autoport='yes'><listen type='address' address='10.0.0.1'/></graphics>`)).graphics)
      .toEqual([{ type: 'spice', listen: '10.0.0.1' }]);
    expect(parseDomainXml(dom(`<graphics type='sdl'/>`)).graphics).toEqual([{ type: 'sdl' }]);
  });

  it('the guest agent channel is on by default and can be left out; only the agent name counts', () => {
    const xml = flat(buildDomainXml(def()));
    expect(xml).toContain('<channel type="unix"><target type="virtio" name="org.qemu.guest_agent.0"/></channel>');
    expect(parseDomainXml(xml).guestAgent).toBe(true);
    expect(parseDomainXml(buildDomainXml(def({ guestAgent: false }))).guestAgent).toBe(false);
    const other = `<domain type='qemu'><name>g</name><devices><channel type='spicevmc'><target type='virtio' name='com.redhat.spice.0'/></channel></devices></domain>`;
    expect(parseDomainXml(other).guestAgent).toBe(false);
    // as libvirt 9.0 writes it back (socket path and address filled in)
    const back = `<domain type='qemu'><name>g</name><devices><channel type='unix'><source mode='bind' path='/var/lib/libvirt/qemu/channel/target/domain-1-g/org.qemu.guest_agent.0'/><target type='virtio' name='org.qemu.guest_agent.0' state='disconnected'/><alias name='channel0'/><address type='virtio-serial' controller='0' bus='0' port='1'/></channel></devices></domain>`;
    expect(parseDomainXml(back).guestAgent).toBe(true);
  });
});

describe('cdrom disks (issue 24, helper cdseed)', () => {
  it("a disk with device cdrom is a read-only device='cdrom' on its bus, read back as a CD-ROM with its format and boot order", () => {
    const iso = { path: '/p/tools.img', format: 'raw' as const, bus: 'sata' as const, target: 'sda', bootOrder: 2, device: 'cdrom' as const };
    const xml = buildDomainXml(def({ disks: [def().disks[0]!, iso], cdroms: [{ path: '/p/vm1-cidata.iso', bus: 'ide', target: 'hda' }] }));
    const cds = flat(xml).match(/<disk type="file" device="cdrom">.*?<\/disk>|<disk type='file' device='cdrom'>.*?<\/disk>/g)!;
    expect(cds).toHaveLength(2);
    for (const c of cds) expect(c).toContain('readonly');
    const p = parseDomainXml(xml);
    expect(p.disks.map((d) => d.path)).toEqual(['/var/lib/vf/vm1.qcow2']);
    expect(p.cdroms).toEqual([
      { path: '/p/tools.img', target: 'sda', bus: 'sata', format: 'raw', bootOrder: 2 },
      { path: '/p/vm1-cidata.iso', target: 'hda', bus: 'ide', format: 'raw' },
    ]);
  });

  it('refuses a cdrom on the virtio bus', () => {
    const iso = { path: '/p/tools.img', format: 'raw' as const, bus: 'virtio' as const, target: 'vdb', device: 'cdrom' as const };
    expect(() => buildDomainXml(def({ disks: [iso] }))).toThrow(/a cdrom cannot be on the virtio bus/);
  });
});
