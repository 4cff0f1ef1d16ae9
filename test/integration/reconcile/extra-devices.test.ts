/**
 * spec.extraDevices against the real libvirtd (qemu:///system, a stopped TCG domain without a
 * disk): a watchdog and an rng are defined and read back (libvirt adds PCI addresses: no
 * difference, the second dry-run says "No changes."); a device added with `virsh define` is drift
 * of the field and removed by apply; a device removed from the manifest is removed from the
 * domain; an attribute libvirt's schema does not know fails the define (VIR_DOMAIN_DEFINE_VALIDATE)
 * with libvirt's message on the VM, and the definition stays as it was; a <filesystem> sharing the
 * host's / is refused by the policy (exit 2, file:line:col, nothing created).
 */
import { describe, expect, it } from 'vitest';
import { join } from 'node:path';
import { writeFileSync } from 'node:fs';
import { writeManifests } from '../../support/manifests.js';
import { runCli, virsh, virshOk } from '../../support/real-host.js';
import { expectReadbackMatches } from '../../support/readback.js';
import { useSuite } from '../../support/suite.js';

const N = useSuite('xdev', {
  setup: () => {
    // A policy that allows nothing host-reaching for extra devices (the default path may not exist).
    policy = join(N.work, 'policy.yaml');
    writeFileSync(policy, `apiVersion: virtform.dev/v1\nkind: Policy\nallowedRoots: {extraDeviceSources: [${N.work}/shares]}\nextraDevices: {hostElements: [hostdev]}\n`);
  },
});
const P = N.prefix;
const VM = `${P}vm`;
const WATCHDOG = "<watchdog model='i6300esb' action='reset'/>";
const RNG = "<rng model='virtio'><backend model='random'>/dev/urandom</backend></rng>";

function vm(name: string, devices: string[]): string {
  return `apiVersion: virtform.dev/v1
kind: VirtualMachine
metadata: {name: ${name}}
spec:
  vcpus: 1
  memory: 64MiB
  state: stopped
  guestAgent: false
${devices.length ? `  extraDevices:\n${devices.map((d) => `    - ${JSON.stringify(d)}`).join('\n')}\n` : ''}`;
}

let policy: string;
const env = () => ({ VIRTFORM_POLICY: policy });
const cli = (args: string[]) => runCli([...args, '--db', N.db], env());
async function reconcile(devices: string[]): Promise<string> {
  writeManifests(N.mdir, { 'vm.yaml': vm(VM, devices) });
  const r = await cli(['reconcile', N.mdir, '--domain-type', 'qemu']);
  expect(r.code, `${r.stdout}\n${r.stderr}`).toBe(0);
  return r.stdout;
}
async function dryRun(devices: string[]): Promise<{ code: number | null; out: string }> {
  writeManifests(N.mdir, { 'vm.yaml': vm(VM, devices) });
  const r = await cli(['reconcile', N.mdir, '--dry-run', '--detailed-exitcode', '--domain-type', 'qemu']);
  return { code: r.code, out: r.stdout + r.stderr };
}
const devicesXml = (name = VM): string => {
  const xml = virsh('dumpxml', '--inactive', name);
  return xml.slice(xml.indexOf('<devices>'), xml.indexOf('</devices>'));
};

describe.sequential('spec.extraDevices on qemu:///system', () => {
  it('a watchdog and an rng are defined, read back with libvirt\'s additions, and a second dry-run says "No changes."', async () => {
    await reconcile([WATCHDOG, RNG]);
    const devices = devicesXml();
    expect(devices).toMatch(/<watchdog model='i6300esb' action='reset'>\s*<address type='pci'/);
    expect(devices).toMatch(/<rng model='virtio'>\s*<backend model='random'>\/dev\/urandom<\/backend>/);
    await expectReadbackMatches(N.mdir, 'qemu:///system', undefined, 'extra-devices');
    const dry = await dryRun([WATCHDOG, RNG]);
    expect(dry.code, dry.out).toBe(0);
    expect(dry.out).toContain('No changes.');
  });

  it('a device added outside virtform (virsh define) is drift of spec.extraDevices and removed by apply', async () => {
    const file = join(N.work, 'edited.xml');
    writeFileSync(file, virsh('dumpxml', '--inactive', VM).replace('</devices>', "<panic model='isa'/></devices>"));
    virsh('define', file);
    expect(devicesXml()).toContain("<panic model='isa'/>");
    const dry = await dryRun([WATCHDOG, RNG]);
    expect(dry.code, dry.out).toBe(3);
    expect(dry.out).toMatch(/~ spec\.extraDevices: .*panic.* → .* \(drift\) \[restart\]/);
    await reconcile([WATCHDOG, RNG]);
    expect(devicesXml()).not.toContain('<panic');
    expect(devicesXml()).toContain('<watchdog');
  });

  it('a device removed from the manifest is removed from the domain', async () => {
    const out = await reconcile([RNG]);
    expect(out).toContain('spec.extraDevices');
    expect(devicesXml()).not.toContain('<watchdog');
    expect(devicesXml()).toContain('<rng');
    await expectReadbackMatches(N.mdir, 'qemu:///system', undefined, 'extra-devices');
  });

  it('an attribute libvirt\'s schema refuses fails the define (VALIDATE) with libvirt\'s message on the VM; the definition is unchanged', async () => {
    const before = virsh('dumpxml', '--inactive', VM);
    writeManifests(N.mdir, { 'vm.yaml': vm(VM, [RNG, "<watchdog model='i6300esb' action='reset' bogus='1'/>"]) });
    const r = await cli(['reconcile', N.mdir, '--domain-type', 'qemu']);
    const out = r.stdout + r.stderr;
    expect(r.code, out).toBe(1);
    expect(out).toContain(VM);
    expect(out).toMatch(/XML document failed to validate against schema|Invalid attribute|bogus/i);
    expect(virsh('dumpxml', '--inactive', VM)).toBe(before);
  });

  it('a <filesystem> sharing the host\'s / is refused by the policy: exit 2 at file:line:col, nothing created', async () => {
    const other = `${P}share`;
    writeManifests(N.mdir, {
      'vm.yaml': vm(VM, [RNG]),
      'share.yaml': vm(other, ["<filesystem type='mount' accessmode='passthrough'><source dir='/'/><target dir='hostroot'/></filesystem>"]),
    });
    const r = await cli(['reconcile', N.mdir, '--domain-type', 'qemu']);
    expect(r.code, r.stdout + r.stderr).toBe(2);
    expect(r.stderr).toMatch(new RegExp(`share\\.yaml:10:7: VirtualMachine/${other}: spec\\.extraDevices\\[0\\]: <filesystem> gives the guest part of the host and is denied by default: the policy's extraDevices\\.hostElements must list filesystem \\(policy `));
    expect(r.stderr).toMatch(/host path "\/" at \/filesystem\/source@dir is outside the allowed roots/);
    expect(virshOk('dominfo', other)).toBe(false);
    // validate says the same, without a policy file too (deny by default)
    const v = await runCli(['validate', N.mdir], { VIRTFORM_POLICY: join(N.work, 'absent.yaml') });
    expect(v.code, v.stdout + v.stderr).toBe(2);
    expect(v.stdout + v.stderr).toMatch(/share\.yaml:10:7: .*extraDevices\.hostElements must list filesystem \(no policy file: denied by default/);
  });
});
