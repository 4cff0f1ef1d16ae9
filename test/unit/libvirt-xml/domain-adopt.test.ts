/**
 * What adopting a domain would rewrite (`src/libvirt/xml/domain-adopt.ts`, issue 24). The fixture
 * pair is measured: `BUILT` is what `buildDomainXml` writes, `STORED` what libvirt 9.0 / QEMU 7.2
 * stored after `virsh define` of it (`virsh dumpxml --inactive`): the definition virtform would
 * define compared with its own stored form has no difference. Each change to the stored form is
 * then named once, with what virtform would write instead.
 */
import { describe, expect, it } from 'vitest';
import { domainAdoptionDifferences } from '../../../src/libvirt/xml/domain-adopt.js';

const BUILT = `<domain type="qemu">
  <name>vftest-180-probe</name>
  <metadata>
    <vf:owner xmlns:vf="https://virtform.dev/xmlns/owner/v1" kind="VirtualMachine" name="vftest-180-probe" spec-hash="x"/>
  </metadata>
  <memory unit="KiB">65536</memory>
  <currentMemory unit="KiB">65536</currentMemory>
  <vcpu placement="static" current="1">1</vcpu>
  <os>
    <type arch="x86_64" machine="pc">hvm</type>
  </os>
  <features>
    <acpi/>
    <apic/>
  </features>
  <on_poweroff>destroy</on_poweroff>
  <on_reboot>restart</on_reboot>
  <on_crash>destroy</on_crash>
  <devices>
    <disk type="file" device="disk">
      <driver name="qemu" type="qcow2"/>
      <source file="/tmp/vftest-180-probe.qcow2"/>
      <target dev="vda" bus="virtio"/>
      <boot order="1"/>
    </disk>
    <disk type="file" device="cdrom">
      <driver name="qemu" type="raw"/>
      <source file="/tmp/vftest-180-probe.iso"/>
      <target dev="hda" bus="ide"/>
      <readonly/>
    </disk>
    <interface type="network">
      <mac address="52:54:00:b4:00:01"/>
      <source network="default"/>
      <model type="virtio"/>
    </interface>
    <serial type="pty">
      <target port="0"/>
    </serial>
    <console type="pty">
      <target type="serial" port="0"/>
    </console>
    <channel type="unix">
      <target type="virtio" name="org.qemu.guest_agent.0"/>
    </channel>
    <graphics type="vnc" autoport="yes" listen="127.0.0.1">
      <listen type="address" address="127.0.0.1"/>
    </graphics>
    <memballoon model="virtio"/>
    <watchdog model="i6300esb" action="reset"/>
  </devices>
</domain>`;

const STORED = `<domain type='qemu'>
  <name>vftest-180-probe</name>
  <uuid>29f9b911-3990-4948-bb0d-14a28a6180d8</uuid>
  <metadata>
    <vf:owner xmlns:vf="https://virtform.dev/xmlns/owner/v1" kind="VirtualMachine" name="vftest-180-probe" spec-hash="x"/>
  </metadata>
  <memory unit='KiB'>65536</memory>
  <currentMemory unit='KiB'>65536</currentMemory>
  <vcpu placement='static'>1</vcpu>
  <os>
    <type arch='x86_64' machine='pc-i440fx-7.2'>hvm</type>
  </os>
  <features>
    <acpi/>
    <apic/>
  </features>
  <cpu mode='custom' match='exact' check='none'>
    <model fallback='forbid'>qemu64</model>
  </cpu>
  <clock offset='utc'/>
  <on_poweroff>destroy</on_poweroff>
  <on_reboot>restart</on_reboot>
  <on_crash>destroy</on_crash>
  <devices>
    <emulator>/usr/bin/qemu-system-x86_64</emulator>
    <disk type='file' device='disk'>
      <driver name='qemu' type='qcow2'/>
      <source file='/tmp/vftest-180-probe.qcow2'/>
      <target dev='vda' bus='virtio'/>
      <boot order='1'/>
      <address type='pci' domain='0x0000' bus='0x00' slot='0x05' function='0x0'/>
    </disk>
    <disk type='file' device='cdrom'>
      <driver name='qemu' type='raw'/>
      <source file='/tmp/vftest-180-probe.iso'/>
      <target dev='hda' bus='ide'/>
      <readonly/>
      <address type='drive' controller='0' bus='0' target='0' unit='0'/>
    </disk>
    <controller type='usb' index='0' model='piix3-uhci'>
      <address type='pci' domain='0x0000' bus='0x00' slot='0x01' function='0x2'/>
    </controller>
    <controller type='pci' index='0' model='pci-root'/>
    <controller type='ide' index='0'>
      <address type='pci' domain='0x0000' bus='0x00' slot='0x01' function='0x1'/>
    </controller>
    <controller type='virtio-serial' index='0'>
      <address type='pci' domain='0x0000' bus='0x00' slot='0x04' function='0x0'/>
    </controller>
    <interface type='network'>
      <mac address='52:54:00:b4:00:01'/>
      <source network='default'/>
      <model type='virtio'/>
      <address type='pci' domain='0x0000' bus='0x00' slot='0x03' function='0x0'/>
    </interface>
    <serial type='pty'>
      <target type='isa-serial' port='0'>
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
    <input type='mouse' bus='ps2'/>
    <input type='keyboard' bus='ps2'/>
    <graphics type='vnc' port='-1' autoport='yes' listen='127.0.0.1'>
      <listen type='address' address='127.0.0.1'/>
    </graphics>
    <audio id='1' type='none'/>
    <video>
      <model type='cirrus' vram='16384' heads='1' primary='yes'/>
      <address type='pci' domain='0x0000' bus='0x00' slot='0x02' function='0x0'/>
    </video>
    <watchdog model='i6300esb' action='reset'>
      <address type='pci' domain='0x0000' bus='0x00' slot='0x07' function='0x0'/>
    </watchdog>
    <memballoon model='virtio'>
      <address type='pci' domain='0x0000' bus='0x00' slot='0x06' function='0x0'/>
    </memballoon>
  </devices>
</domain>`;

const diff = (stored: string, disksOrNics = false) => domainAdoptionDifferences(stored, BUILT, { disksOrNics });

describe('domainAdoptionDifferences', () => {
  it('libvirt\'s stored form of the definition virtform builds is no difference (addresses, machine, clock, controllers, inputs, audio, video, emulator)', () => {
    expect(diff(STORED)).toEqual([]);
  });

  it('a feature, a video model, balloon stats, foreign metadata, a boot menu and another machine type are each named, with what virtform writes', () => {
    const odd = STORED
      .replace('<apic/>', '<apic/>\n    <pae/>')
      .replace("type='cirrus'", "type='vga'")
      .replace("<memballoon model='virtio'>", "<memballoon model='virtio'>\n      <stats period='10'/>")
      .replace('</metadata>', "<k:info xmlns:k='urn:kvirt'><k:plan>p</k:plan></k:info></metadata>")
      .replace("machine='pc-i440fx-7.2'>hvm</type>", "machine='pc-q35-7.2'>hvm</type>\n    <bootmenu enable='yes'/>");
    const d = diff(odd);
    expect(d.map((x) => `${x.path} ${x.change}`)).toEqual([
      'devices/memballoon[model=virtio] rewritten by adoption',
      'devices/video rewritten by adoption',
      'features rewritten by adoption',
      'metadata/k:info dropped by adoption',
      'os/bootmenu dropped by adoption',
      'os/type rewritten by adoption',
    ]);
    expect(d.find((x) => x.path === 'features')).toMatchObject({ before: '<features><acpi/><apic/><pae/></features>', after: '<features><acpi/><apic/></features>' });
    expect(d.find((x) => x.path === 'os/type')?.before).toContain('pc-q35-7.2');
  });

  it('a device virtform does not define is dropped; one it defines that the host lacks is added', () => {
    const d = diff(STORED.replace(/\s*<watchdog[\s\S]*?<\/watchdog>/, '').replace('</devices>', "<sound model='ich9'/></devices>"));
    expect(d).toEqual([
      { path: 'devices/sound[model=ich9]', change: 'dropped by adoption', before: "<sound model='ich9'/>" },
      { path: 'devices/watchdog[model=i6300esb]', change: 'added by adoption', after: "<watchdog action='reset' model='i6300esb'/>" },
    ]);
  });

  it('a disk\'s cache mode is named unless the field-level comparison already found disk or NIC differences', () => {
    const cached = STORED.replace("<driver name='qemu' type='qcow2'/>", "<driver name='qemu' type='qcow2' cache='none'/>");
    expect(diff(cached).map((x) => `${x.path} ${x.change}`)).toEqual(['devices/disk[vda] rewritten by adoption']);
    expect(diff(cached, true)).toEqual([]);
  });
});
