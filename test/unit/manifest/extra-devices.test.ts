/**
 * spec.extraDevices at load time: well-formed XML with one element, the allowlist, devices that
 * collide with modelled ones, namespaced elements, and deny by default of what reaches the host
 * (with and without a policy file), each error at file:line:col of the list item and its field.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { tempDir, writeManifests } from '../../support/manifests.js';
import { formatManifestError, loadManifests, loadPolicy, type Policy } from '../../../src/manifest/index.js';

let work: string;
beforeEach(() => {
  work = tempDir();
});
afterEach(() => rmSync(work, { recursive: true, force: true }));

const VM = 'vftest-xdevu-vm';
/** A VM whose spec.extraDevices items are `items` (YAML flow strings, one per line from line 8). */
function vm(items: string[]): string {
  return `apiVersion: virtform.dev/v1
kind: VirtualMachine
metadata: {name: ${VM}}
spec:
  vcpus: 1
  memory: 64MiB
  extraDevices:
${items.map((x) => `    - ${JSON.stringify(x)}`).join('\n')}
`;
}

async function policy(text: string): Promise<Policy> {
  const f = join(work, 'policy.yaml');
  writeFileSync(f, `apiVersion: virtform.dev/v1\nkind: Policy\n${text}`);
  const r = await loadPolicy(f);
  if (!r.ok) throw new Error(r.errors.map(formatManifestError).join('\n'));
  return r.policy!;
}

async function errorsOf(items: string[], p?: Policy): Promise<string[]> {
  const dir = writeManifests(join(work, 'm'), { 'vm.yaml': vm(items) });
  const r = await loadManifests(dir, p ? { policy: p } : {});
  return r.ok ? [] : r.errors.map(formatManifestError);
}

describe('spec.extraDevices: allowed devices', () => {
  it('a watchdog, an rng on /dev/urandom, a USB tablet, a panic device and a second serial (pty) load without a policy', async () => {
    const dir = writeManifests(join(work, 'm'), {
      'vm.yaml': vm([
        "<watchdog model='i6300esb' action='reset'/>",
        "<rng model='virtio'>\n  <backend model='random'>/dev/urandom</backend>\n</rng>",
        "<input type='tablet' bus='usb'/>",
        "<panic model='isa'/>",
        "<serial type='pty'><target port='1'/></serial>",
      ]),
    });
    const r = await loadManifests(dir);
    expect(r.ok ? [] : r.errors.map(formatManifestError)).toEqual([]);
  });
});

describe('spec.extraDevices: refused, at the list item', () => {
  const cases: [string, string, RegExp][] = [
    ['malformed', "<watchdog model='i6300esb'>", /spec\.extraDevices\[0\]: not well-formed XML: Unclosed tag 'watchdog'\. \(line 1, column 1 of the fragment\)/],
    ['two elements', "<watchdog model='i6300esb'/><panic/>", /2 top-level elements \(<watchdog>, <panic>\): a fragment is exactly one device element/],
    ['text only', 'watchdog', /not well-formed XML|text outside the device element/],
    ['a disk (modelled)', "<disk type='file' device='disk'><source file='/etc/shadow'/><target dev='vdz'/></disk>", /<disk> cannot be an extra device: virtform models disks \(spec\.disks/],
    ['an interface (modelled)', "<interface type='network'><source network='default'/></interface>", /<interface> cannot be an extra device: virtform models network interfaces \(spec\.nics\)/],
    ['graphics (modelled)', "<graphics type='vnc'/>", /<graphics> cannot be an extra device: virtform models graphics \(spec\.graphics\)/],
    ['a controller', "<controller type='scsi' model='virtio-scsi'/>", /<controller> cannot be an extra device/],
    ['an unknown element', '<frobnicator/>', /<frobnicator> is not an allowed extra device; allowed: watchdog, rng/],
    ['qemu:commandline (namespaced)', "<qemu:commandline xmlns:qemu='http://libvirt.org/schemas/domain/qemu/1.0'><qemu:arg value='-S'/></qemu:commandline>", /namespaced element <qemu:commandline> is not allowed/],
    ['a namespaced child', "<watchdog model='i6300esb'><x:y xmlns:x='urn:x'/></watchdog>", /namespaced (element <x:y>|attribute xmlns:x)/],
    ['a DOCTYPE with an entity', "<!DOCTYPE w [<!ENTITY e 'x'>]><watchdog model='&e;'/>", /a DOCTYPE is not allowed/],
    ['an XML declaration', "<?xml version='1.0'?><watchdog model='i6300esb'/>", /processing instructions/],
    ['the serial port 0', "<serial type='file'><source path='/tmp/x'/><target port='0'/></serial>", /collides with a device virtform or libvirt defines: virtform defines the serial port 0/],
    ['the guest agent channel', "<channel type='unix'><target type='virtio' name='org.qemu.guest_agent.0'/></channel>", /the guest agent channel is spec\.guestAgent/],
    ['a PS/2 mouse', "<input type='mouse' bus='ps2'/>", /libvirt adds the PS\/2 mouse and keyboard itself/],
  ];
  for (const [what, xml, msg] of cases) {
    it(what, async () => {
      const errs = await errorsOf([xml]);
      expect(errs).toHaveLength(1);
      // at the item (8:7), or for a malformed one at the character inside it (after the quote: 8:8)
      expect(errs[0]).toMatch(new RegExp(`vm\\.yaml:8:${/malformed|text only/.test(what) ? 8 : 7}: VirtualMachine/${VM}: spec\\.extraDevices\\[0\\]: `));
      expect(errs[0]).toMatch(msg);
    });
  }

  it('a malformed fragment points at the very line and column in the file (literal block, quoted, plain)', async () => {
    const doc = `apiVersion: virtform.dev/v1
kind: VirtualMachine
metadata: {name: ${VM}}
spec:
  vcpus: 1
  memory: 64MiB
  extraDevices:
    - |
      <rng model='virtio'>
        <backend model='random'>/dev/urandom</backend>
      </rnq>
    - "<watchdog model='i6300esb' action=reset/>"
    - <panic model='isa'></panik>
`;
    const dir = writeManifests(join(work, 'm'), { 'vm.yaml': doc });
    const r = await loadManifests(dir);
    const errs = r.ok ? [] : r.errors.map(formatManifestError);
    expect(errs).toHaveLength(3);
    // </rnq>: line 3 of the fragment = line 11 of the file; its column 1 at the block's indentation (6) + 1
    expect(errs[0]).toMatch(/vm\.yaml:11:7: VirtualMachine\/vftest-xdevu-vm: spec\.extraDevices\[0\]: not well-formed XML: Expected closing tag 'rng' .*\(line 3, column 1 of the fragment\)/);
    // action=reset: fragment column 29 (the attribute without quotes), after the opening quote at column 7
    expect(errs[1]).toMatch(/vm\.yaml:12:(\d+): .*spec\.extraDevices\[1\]: not well-formed XML: .*\(line 1, column (\d+) of the fragment\)/);
    const [, c1, f1] = /vm\.yaml:12:(\d+):.*column (\d+) of/.exec(errs[1]!)!;
    expect(Number(c1)).toBe(7 + Number(f1));
    const [, c2, f2] = /vm\.yaml:13:(\d+):.*column (\d+) of/.exec(errs[2]!)!;
    expect(Number(c2)).toBe(6 + Number(f2));
  });

  it('errors name their own item of the list', async () => {
    const errs = await errorsOf(["<watchdog model='i6300esb'/>", '<disk/>', "<rng model='virtio'/>", '<bogus/>']);
    expect(errs.map((e) => /spec\.extraDevices\[(\d)\]/.exec(e)?.[1])).toEqual(['1', '3']);
    expect(errs[0]).toMatch(/vm\.yaml:9:7: /);
    expect(errs[1]).toMatch(/vm\.yaml:11:7: /);
  });
});

describe('spec.extraDevices: deny by default what reaches the host', () => {
  const share = "<filesystem type='mount' accessmode='passthrough'><source dir='/'/><target dir='hostroot'/></filesystem>";

  it('without a policy file: a <filesystem> sharing / is refused, naming hostElements and extraDeviceSources', async () => {
    const errs = await errorsOf([share]);
    expect(errs).toHaveLength(2);
    expect(errs[0]).toMatch(/spec\.extraDevices\[0\]: <filesystem> gives the guest part of the host and is denied by default: the policy's extraDevices\.hostElements must list filesystem \(no policy file: denied by default/);
    expect(errs[1]).toMatch(/host path "\/" at \/filesystem\/source@dir is outside the allowed roots and denied by default: allowedRoots\.extraDeviceSources allows none/);
  });

  it('hostdev and smartcard are host elements too; namespaced elements stay refused whatever the policy', async () => {
    const p = await policy('extraDevices: {hostElements: [filesystem, hostdev, smartcard], networkChardevs: true}\n');
    expect(await errorsOf(["<hostdev mode='subsystem' type='usb'><source><vendor id='0x1234'/><product id='0xbeef'/></source></hostdev>"])).toHaveLength(1);
    expect(await errorsOf(["<hostdev mode='subsystem' type='usb'><source><vendor id='0x1234'/><product id='0xbeef'/></source></hostdev>"], p)).toEqual([]);
    expect(await errorsOf(["<smartcard mode='host'/>"])).toHaveLength(1);
    expect(await errorsOf(["<qemu:commandline xmlns:qemu='http://libvirt.org/schemas/domain/qemu/1.0'/>"], p)).toHaveLength(1);
  });

  it('a policy that lists filesystem and a root: a share under the root is allowed, / and a symlink out of the root are not', async () => {
    mkdirSync(join(work, 'shares', 'data'), { recursive: true });
    const { symlinkSync } = await import('node:fs');
    symlinkSync('/etc', join(work, 'shares', 'etc-link'));
    const p = await policy(`extraDevices: {hostElements: [filesystem]}\nallowedRoots: {extraDeviceSources: [${work}/shares]}\n`);
    const fs = (dir: string): string => `<filesystem type='mount'><source dir='${dir}'/><target dir='share'/></filesystem>`;
    expect(await errorsOf([fs(`${work}/shares/data`)], p)).toEqual([]);
    const refused = await errorsOf([fs('/')], p);
    expect(refused).toHaveLength(1);
    expect(refused[0]).toMatch(new RegExp(`host path "/" at /filesystem/source@dir is outside the allowed roots and denied by default: allowedRoots\\.extraDeviceSources allows ${work}/shares \\(policy `));
    const link = await errorsOf([fs(`${work}/shares/etc-link`)], p);
    expect(link[0]).toMatch(/resolves to "\/etc"/);
  });

  it('a policy without the section: filesystem still refused (a left-out section allows nothing)', async () => {
    const p = await policy(`allowedRoots: {poolPaths: [${work}/pools]}\n`);
    const errs = await errorsOf([share], p);
    expect(errs.some((e) => e.includes('extraDevices.hostElements must list filesystem (policy '))).toBe(true);
  });

  it('serial and channel sources: a file or socket outside the roots is refused, inside allowed; a log file counts', async () => {
    const serial = (path: string): string => `<serial type='file'><source path='${path}'/><target port='1'/></serial>`;
    expect((await errorsOf([serial('/etc/cron.d/evil')]))[0]).toMatch(/host path "\/etc\/cron\.d\/evil" at \/serial\/source@path is outside the allowed roots/);
    const p = await policy(`allowedRoots: {extraDeviceSources: [${work}/logs]}\n`);
    expect(await errorsOf([serial(`${work}/logs/vm.log`)], p)).toEqual([]);
    expect(await errorsOf([serial('/etc/cron.d/evil')], p)).toHaveLength(1);
    expect(await errorsOf([`<channel type='unix'><source mode='bind' path='/run/evil.sock'/><target type='virtio' name='x'/></channel>`], p)).toHaveLength(1);
    expect((await errorsOf([`<serial type='pty'><log file='/etc/x'/><target port='2'/></serial>`], p))[0]).toMatch(/at \/serial\/log@file/);
    expect((await errorsOf([`<rng model='virtio'><backend model='random'>/etc/shadow</backend></rng>`]))[0]).toMatch(/host path "\/etc\/shadow" at \/rng\/backend/);
    expect(await errorsOf([serial('relative.log')], p)).toEqual([expect.stringMatching(/must be absolute/)]);
    const block = await errorsOf(["<hostdev mode='capabilities' type='storage'><source><block>/dev/sda</block></source></hostdev>"], await policy('extraDevices: {hostElements: [hostdev]}\n'));
    expect(block).toEqual([expect.stringMatching(/host path "\/dev\/sda" at \/hostdev\/source\/block is outside the allowed roots/)]);
    const nss = await errorsOf(["<smartcard mode='host-certificates'><certificate>a</certificate><certificate>b</certificate><certificate>c</certificate><database>/etc/pki/nssdb</database></smartcard>"], await policy('extraDevices: {hostElements: [smartcard]}\n'));
    expect(nss).toEqual([expect.stringMatching(/host path "\/etc\/pki\/nssdb" at \/smartcard\/database/)]);
    const virtiofsd = await errorsOf(["<filesystem type='mount'><driver type='virtiofs'/><binary path='/tmp/evil'/><source dir='/srv/x'/><target dir='x'/></filesystem>"], await policy(`extraDevices: {hostElements: [filesystem]}\nallowedRoots: {extraDeviceSources: [/srv]}\n`));
    expect(virtiofsd).toEqual([expect.stringMatching(/host path "\/tmp\/evil" at \/filesystem\/binary@path/)]);
  });

  it('tcp/udp character devices need extraDevices.networkChardevs', async () => {
    const tcp = "<serial type='tcp'><source mode='bind' host='0.0.0.0' service='4555'/><protocol type='telnet'/><target port='1'/></serial>";
    expect((await errorsOf([tcp]))[0]).toMatch(/\/serial type=tcp opens a network socket on the host and is denied by default: set extraDevices\.networkChardevs: true/);
    expect(await errorsOf([tcp], await policy('extraDevices: {networkChardevs: true}\n'))).toEqual([]);
  });
});
