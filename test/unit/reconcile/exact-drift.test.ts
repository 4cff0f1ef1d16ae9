/**
 * Exact drift (issue 18): naming what differs between a definition and its baseline by XML path,
 * and when a baseline is taken again without reporting drift.
 */
import { describe, expect, it } from 'vitest';
import { flattenXml, xmlDifferences, xmlSha256 } from '../../../src/libvirt/xml/compare.js';
import { exactDrift, liveOnlyDevices } from '../../../src/reconcile/core/change.js';
import type { Observed } from '../../../src/reconcile/observe.js';
import { VM_EXACT } from '../../../src/reconcile/kinds/vm/index.js';
import { POOL_EXACT } from '../../../src/reconcile/kinds/pool/index.js';

const DOMAIN = `<domain type='qemu'>
  <name>vm</name>
  <uuid>2e42dea4-8b4e-478c-ac79-c8d25f2d1575</uuid>
  <metadata><vf:owner xmlns:vf="https://virtform.dev/xmlns/owner/v1" kind="VirtualMachine" name="vm" spec-hash="abc"/></metadata>
  <memory unit='KiB'>65536</memory>
  <vcpu placement='static'>1</vcpu>
  <on_reboot>restart</on_reboot>
  <devices>
    <disk type='file' device='disk'>
      <driver name='qemu' type='qcow2'/>
      <source file='/p/root.qcow2'/>
      <target dev='vda' bus='virtio'/>
    </disk>
    <controller type='usb' index='0' model='piix3-uhci'/>
    <controller type='pci' index='0' model='pci-root'/>
    <interface type='network'>
      <mac address='52:54:00:EC:9B:78'/>
      <source network='n'/>
      <model type='virtio'/>
    </interface>
    <input type='mouse' bus='ps2'/>
    <input type='keyboard' bus='ps2'/>
  </devices>
</domain>
`;

const NETWORK = `<network>
  <name>n</name>
  <ip address='10.0.0.1' prefix='24'>
    <dhcp>
      <range start='10.0.0.100' end='10.0.0.150'/>
      <host mac='52:54:00:aa:00:01' ip='10.0.0.11'/>
    </dhcp>
  </ip>
</network>`;

const edit = (xml: string, from: string | RegExp, to: string): string => {
  const next = xml.replace(from, to);
  expect(next).not.toBe(xml);
  return next;
};

describe('xmlDifferences: what differs, named by XML path', () => {
  it('names siblings by their libvirt identity (disk target, MAC, controller type and index), else by position', () => {
    const paths = [...flattenXml(DOMAIN).keys()];
    expect(paths).toEqual(expect.arrayContaining([
      'devices/disk[target=vda]', 'devices/disk[target=vda]/source', 'devices/interface[mac=52:54:00:ec:9b:78]/model',
      'devices/controller[type=usb,index=0]', 'devices/controller[type=pci,index=0]', 'devices/input', 'devices/input[2]',
      'metadata/vf:owner', 'on_reboot',
    ]));
  });

  it('an added device is named once, at its top; a changed text and a removed marker too', () => {
    let now = edit(DOMAIN, '</devices>', "<watchdog model='i6300esb' action='reset'><address type='pci' slot='0x09'/></watchdog></devices>");
    now = edit(now, '<on_reboot>restart</on_reboot>', '<on_reboot>destroy</on_reboot>');
    now = edit(now, /<vf:owner[^>]*\/>/, '');
    now = edit(now, "<target dev='vda' bus='virtio'/>", "<target dev='vda' bus='virtio'/><readonly/>");
    now = edit(now, "<model type='virtio'/>", "<model type='virtio'/><link state='down'/>");
    expect(xmlDifferences(DOMAIN, now)).toEqual([
      { path: 'devices/disk[target=vda]/readonly', change: 'added', after: '' },
      { path: 'devices/interface[mac=52:54:00:ec:9b:78]/link', change: 'added', after: "state='down'" },
      { path: 'devices/watchdog', change: 'added', after: "action='reset' model='i6300esb'" },
      { path: 'metadata/vf:owner', change: 'removed', before: expect.stringContaining("kind='VirtualMachine'") },
      { path: 'on_reboot', change: 'changed', before: '"restart"', after: '"destroy"' },
    ]);
  });

  it('a second DHCP range is named by its position; attribute order and whitespace do not matter', () => {
    const now = edit(NETWORK, "<range start='10.0.0.100' end='10.0.0.150'/>", "<range end='10.0.0.150'   start='10.0.0.100'/>\n<range start='10.0.0.200' end='10.0.0.210'/>");
    expect(xmlDifferences(NETWORK, now)).toEqual([{ path: 'ip/dhcp/range[2]', change: 'added', after: "end='10.0.0.210' start='10.0.0.200'" }]);
  });

  it('paths with a slash in their identity still name the top of an added subtree', () => {
    const now = edit(DOMAIN, '</devices>', "<filesystem type='mount'><source dir='/'/><target dir='/host/root'/></filesystem></devices>");
    expect(xmlDifferences(DOMAIN, now).map((d) => `${d.path} ${d.change}`)).toEqual(['devices/filesystem[target=/host/root] added']);
  });

  it('ignored paths are left out', () => {
    const pool = "<pool type='dir'><name>p</name><capacity unit='bytes'>1</capacity><allocation unit='bytes'>1</allocation><available unit='bytes'>0</available><target><path>/p</path></target></pool>";
    const now = pool.replace(/>1</g, '>9<').replace('>0<', '>5<');
    expect(xmlDifferences(pool, now, POOL_EXACT.ignore)).toEqual([]);
    expect(xmlDifferences(pool, now.replace('/p<', '/q<'), POOL_EXACT.ignore).map((d) => d.path)).toEqual(['target/path']);
  });

  it('live only: a device of the live XML its definition lacks, by name (aliases and addresses do not count)', () => {
    const live = edit(DOMAIN, '</devices>', "<watchdog model='i6300esb' action='reset'><alias name='watchdog0'/></watchdog></devices>")
      .replace("<model type='virtio'/>", "<model type='virtio'/><alias name='net0'/>");
    expect(liveOnlyDevices(live, DOMAIN).map((f) => `${f.field} ${f.xml}`)).toEqual(['devices/watchdog live only']);
  });
});

describe('exactDrift: reported against the baseline, or the baseline taken again', () => {
  const KEY = 'VirtualMachine/vm';
  const VERSION = 'libvirt 9.0.0, hypervisor 7.2.0';
  function observedWith(o: { now: string; baseline?: string; version?: string; journal?: boolean; record?: boolean }): Observed {
    const baselines = new Map(o.baseline ? [[KEY, { sha256: xmlSha256(o.baseline), version: o.version ?? VERSION }]] : []);
    return {
      definitions: new Map([[KEY, { xml: o.now }]]),
      records: new Map(o.record === false ? [] : [[KEY, { kind: 'VirtualMachine', name: 'vm', uuid: 'u', specHash: 'h', desiredState: 'running', lastError: null }]]),
      openJournal: new Map(o.journal ? [[KEY, []]] : []),
      exact: {
        version: VERSION, baselines, sha256: new Map([[KEY, xmlSha256(o.now)]]),
        xml: new Map(o.baseline && o.baseline !== o.now ? [[KEY, o.baseline]] : []), rebaseline: new Set(),
      },
    } as unknown as Observed;
  }
  const watchdog = DOMAIN.replace('</devices>', "<watchdog model='i6300esb'/></devices>");

  it('reports what differs as (drift) lines, before = the host, after = the baseline', () => {
    const o = observedWith({ now: watchdog, baseline: DOMAIN });
    expect(exactDrift(o, KEY, VM_EXACT, false)).toEqual([
      { field: 'devices/watchdog', before: "model='i6300esb'", after: undefined, drift: true, xml: 'added' },
    ]);
    expect(o.exact!.rebaseline.size).toBe(0);
  });

  it('equal bytes: nothing to parse, nothing reported', () => {
    const o = observedWith({ now: DOMAIN, baseline: DOMAIN });
    expect(exactDrift(o, KEY, VM_EXACT, false)).toEqual([]);
  });

  it('leaves modelled paths to the field-level lines when those found a difference', () => {
    const now = watchdog.replace("<vcpu placement='static'>1</vcpu>", "<vcpu placement='static'>2</vcpu>");
    expect(exactDrift(observedWith({ now, baseline: DOMAIN }), KEY, VM_EXACT, true).map((f) => f.field)).toEqual(['devices/watchdog']);
    expect(exactDrift(observedWith({ now, baseline: DOMAIN }), KEY, VM_EXACT, false).map((f) => f.field)).toEqual(['devices/watchdog', 'vcpu']);
  });

  it('takes the baseline again, without drift, after a libvirt upgrade, an interrupted run, or for a record from before baselines', () => {
    for (const o of [
      observedWith({ now: watchdog, baseline: DOMAIN, version: 'libvirt 8.0.0, hypervisor 6.2.0' }),
      observedWith({ now: watchdog, baseline: DOMAIN, journal: true }),
      observedWith({ now: watchdog }),
    ]) {
      expect(exactDrift(o, KEY, VM_EXACT, false)).toEqual([]);
      expect([...o.exact!.rebaseline]).toEqual([KEY]);
    }
  });

  it('a record from before baselines waits for a run whose field-level comparison finds no difference; an unrecorded object gets none', () => {
    const o = observedWith({ now: watchdog });
    expect(exactDrift(o, KEY, VM_EXACT, true)).toEqual([]);
    expect(o.exact!.rebaseline.size).toBe(0);
    const adopted = observedWith({ now: watchdog, record: false });
    expect(exactDrift(adopted, KEY, VM_EXACT, false)).toEqual([]);
    expect(adopted.exact!.rebaseline.size).toBe(0);
  });
});
