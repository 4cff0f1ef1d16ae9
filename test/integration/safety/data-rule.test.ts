/**
 * Issue 19 on the real libvirtd (qemu:///system): the data rule and the brake.
 *
 * One lab, one sequence of runs (each CLI run is a second or two):
 *  - finding 1: a disk the running VM still uses (its live definition) after it left spec.disks;
 *  - finding 2: a disk whose VM was deleted one run earlier (a recorded reference);
 *  - finding 3: a managed volume used by a domain defined with virsh, and a managed qcow2 backing
 *    an overlay made outside virtform, shrunk (replaced);
 *  - finding 4: the volumes of boot.kernelVolume / initrdVolume, shrunk;
 *  - finding 5: an unmanaged volume named like a VM's cloud-init seed;
 *  - finding 11: held changes count in the brake; deleting every VM is refused by default; a
 *    running VM is shut down gracefully before it is forced off.
 */
import { describe, expect, it } from 'vitest';
import { join } from 'node:path';
import { createHash } from 'node:crypto';
import { existsSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { writeManifests } from '../../support/manifests.js';
import { inventory, runCli, virsh, type CliResult } from '../../support/real-host.js';
import { useSuite } from '../../support/suite.js';

const N = useSuite('data', {
  setup: () => {
    dir = join(N.work, 'm');
  },
});
const P = N.base;
const POOL = `${P}-pool`;
const POOL_DIR = `/var/lib/virtform-test/${POOL}`;
const file = (vol: string, ext = 'qcow2'): string => `${POOL_DIR}/${vol}.${ext}`;
const fingerprint = (path: string): string => (existsSync(path) ? `${statSync(path).ino}:${createHash('sha256').update(readFileSync(path)).digest('hex')}` : 'missing');

let dir: string;

function expectCode(r: CliResult, code: number): void {
  expect(r.code, `${r.stdout}\n${r.stderr}`).toBe(code);
}

const doc = (kind: string, name: string, spec: string): string => `apiVersion: virtform.dev/v1\nkind: ${kind}\nmetadata: {name: ${name}}\nspec: ${spec}\n`;
const vol = (name: string, capacity = '16MiB', format = 'qcow2'): string => doc('Volume', `${P}-${name}`, `{pool: ${POOL}, capacity: ${capacity}, format: ${format}}`);

interface Lab {
  vm1Disks: string[];
  vm2?: boolean;
  volumes: Record<string, string | undefined>;
  vms?: boolean;
  vm5?: boolean;
}
function manifests(l: Lab): Record<string, string> {
  const docs = [doc('StoragePool', POOL, `{path: ${POOL_DIR}}`)];
  for (const [name, capacity] of Object.entries(l.volumes)) {
    if (capacity) docs.push(vol(name, capacity, name === 'kernel' || name === 'initrd' ? 'raw' : 'qcow2'));
  }
  if (l.vms !== false) {
    docs.push(doc('VirtualMachine', `${P}-vm1`, `{vcpus: 1, memory: 64MiB, state: running, disks: [${l.vm1Disks.map((d) => `{volume: ${P}-${d}}`).join(', ')}]}`));
    if (l.vm2) docs.push(doc('VirtualMachine', `${P}-vm2`, `{vcpus: 1, memory: 64MiB, state: stopped, disks: [{volume: ${P}-d3}]}`));
    docs.push(doc('VirtualMachine', `${P}-vm3`,
      `{vcpus: 1, memory: 64MiB, state: stopped, boot: {kernelVolume: ${P}-kernel, initrdVolume: ${P}-initrd, cmdline: console=ttyS0}}`));
  }
  if (l.vm5) {
    docs.push(doc('VirtualMachine', `${P}-vm5`, `{vcpus: 1, memory: 64MiB, state: stopped, cloudInit: {pool: ${POOL}, userData: "#cloud-config\\n"}}`));
  }
  return { 'all.yaml': docs.join('---\n') };
}

const ALL = { d1: '16MiB', d2: '16MiB', d3: '16MiB', kernel: '8MiB', initrd: '8MiB', used: '16MiB', base: '16MiB' };

describe('the data rule on the real daemon (issue 19, findings 1-5 and 11)', () => {
  it('holds every volume some definition uses or used; the brake counts held changes and refuses a wipe of the VMs', async () => {
    // The lab: vm1 runs with d1 and d2; vm2 (stopped) has d3; vm3 boots a kernel and initrd volume.
    writeManifests(dir, manifests({ vm1Disks: ['d1', 'd2'], vm2: true, volumes: ALL }));
    expectCode(await runCli(['reconcile', dir, '--db', N.db, '--domain-type', 'qemu']), 0);
    expect(inventory(N.prefix).runningDomains).toEqual([`${P}-vm1`]);
    // Outside virtform: a domain defined with virsh uses `used`; an overlay in the pool is built on `base`.
    const xml = join(N.work, 'ext.xml');
    writeFileSync(xml, `<domain type='qemu'><name>${P}-ext</name><memory unit='MiB'>64</memory><vcpu>1</vcpu>
<os><type arch='x86_64'>hvm</type></os><devices><disk type='file' device='disk'><driver name='qemu' type='qcow2'/>
<source file='${file(`${P}-used`)}'/><target dev='vda' bus='virtio'/></disk></devices></domain>`);
    virsh('define', xml);
    virsh('vol-create-as', POOL, `${P}-ovl.qcow2`, '16M', '--format', 'qcow2', '--backing-vol', file(`${P}-base`), '--backing-vol-format', 'qcow2');

    // Run B: d2 leaves vm1's spec.disks (the running domain keeps it until its restart); vm2 is deleted.
    writeManifests(dir, manifests({ vm1Disks: ['d1'], volumes: ALL }));
    const b = await runCli(['reconcile', dir, '--db', N.db, '--domain-type', 'qemu']);
    expectCode(b, 0);
    expect(inventory(N.prefix).domains).not.toContain(`${P}-vm2`);

    // Run C: d2 and d3 removed; kernel, initrd, used and base shrunk (a shrink replaces the volume).
    const before = Object.fromEntries(['d2', 'd3', 'used', 'base'].map((v) => [v, fingerprint(file(`${P}-${v}`))]));
    const kBefore = fingerprint(file(`${P}-kernel`, 'img'));
    const iBefore = fingerprint(file(`${P}-initrd`, 'img'));
    writeManifests(dir, manifests({ vm1Disks: ['d1'], volumes: { ...ALL, d2: undefined, d3: undefined, kernel: '4MiB', initrd: '4MiB', used: '8MiB', base: '8MiB' } }));
    const c = await runCli(['reconcile', dir, '--db', N.db, '--domain-type', 'qemu', '--max-deletions', '20']);
    expect.soft(c.code).toBe(1);
    const loss = (v: string): string => c.stdout.split('\n').find((l) => l.includes(`! data loss: Volume/${P}-${v} `)) ?? `(no data-loss line for ${v})\n${c.stdout}`;
    expect.soft(loss('d2')).toContain(`attached to VirtualMachine/${P}-vm1 (live definition`); // finding 1
    expect.soft(loss('d3')).toContain(`attached to VirtualMachine/${P}-vm2 (recorded reference)`); // finding 2
    expect.soft(loss('used')).toContain(`attached to domain ${P}-ext (persistent definition; not managed by virtform)`); // finding 3
    expect.soft(loss('base')).toContain(`backs volume ${POOL}/${P}-ovl.qcow2 (persistent definition; not managed by virtform)`); // finding 3
    expect.soft(loss('kernel')).toContain(`kernel of VirtualMachine/${P}-vm3`); // finding 4
    expect.soft(loss('initrd')).toContain(`initrd of VirtualMachine/${P}-vm3`); // finding 4
    expect.soft(c.stdout).toMatch(/change\(s\) held: 6 would destroy data/);
    for (const [v, f] of Object.entries(before)) expect.soft(fingerprint(file(`${P}-${v}`)), v).toBe(f);
    expect.soft(fingerprint(file(`${P}-kernel`, 'img'))).toBe(kBefore);
    expect.soft(fingerprint(file(`${P}-initrd`, 'img'))).toBe(iBefore);

    // Finding 5: an unmanaged volume named like vm5's cloud-init seed is a conflict, left untouched.
    writeFileSync(file(`${P}-vm5-cidata`, 'iso'), 'not a seed: somebody else\'s file\n');
    virsh('pool-refresh', POOL);
    const seedBefore = fingerprint(file(`${P}-vm5-cidata`, 'iso'));
    const keep = { vm1Disks: ['d1'], volumes: { ...ALL, d2: '16MiB', d3: '16MiB' } };
    writeManifests(dir, manifests({ ...keep, vm5: true }));
    const d = await runCli(['reconcile', dir, '--db', N.db, '--domain-type', 'qemu']);
    expect.soft(d.code).toBe(1);
    expect.soft(d.stdout).toMatch(new RegExp(`the cloud-init seed's volume ${POOL}/${P}-vm5-cidata\\.iso already exists and virtform did not create it`));
    expect.soft(inventory(N.prefix).domains).not.toContain(`${P}-vm5`);
    expect.soft(fingerprint(file(`${P}-vm5-cidata`, 'iso'))).toBe(seedBefore);

    // Finding 11: four volumes removed and two shrunk: 6 deletions, all held, counted: braked.
    writeManifests(dir, manifests({ vm1Disks: ['d1'], volumes: { d1: '16MiB', kernel: '4MiB', initrd: '4MiB' } }));
    const e = await runCli(['reconcile', dir, '--db', N.db, '--domain-type', 'qemu']);
    expect.soft(e.code).toBe(1);
    expect.soft(e.stderr).toMatch(/refused by the mass-deletion brake/);
    expect.soft(e.stderr).toMatch(/this plan deletes 6 resources \(replaces and held changes count\), more than the default limit/);
    // Every VM (vm1, vm3) removed, nothing else: refused by default, whatever the count.
    writeManifests(dir, manifests({ ...keep, vms: false }));
    const f = await runCli(['reconcile', dir, '--db', N.db, '--domain-type', 'qemu']);
    expect.soft(f.code).toBe(1);
    expect.soft(f.stderr).toMatch(/this plan deletes 2 resources .*every VirtualMachine virtform owns \(2\)/);
    expect.soft(inventory(N.prefix).domains).toEqual(expect.arrayContaining([`${P}-vm1`, `${P}-vm3`]));
    // Lifted by --max-deletions: the running vm1 is shut down (ACPI) first, forced off after the timeout.
    const g = await runCli(['reconcile', dir, '--db', N.db, '--domain-type', 'qemu', '--max-deletions', '2', '--shutdown-timeout', '2']);
    expectCode(g, 0);
    expect.soft(g.stdout).toContain('the running VM is shut down (ACPI) and forced off if it is still running after --shutdown-timeout');
    // The blank guest ignores ACPI: forced off after the 2 s, not at once.
    const took = /✓ delete domain VirtualMachine\/vftest-data-vm1 \((\d+\.\d+)s\)/.exec(g.stdout);
    expect.soft(took, g.stdout).not.toBeNull();
    expect.soft(Number(took?.[1] ?? 0)).toBeGreaterThanOrEqual(2);
    expect(inventory(N.prefix).domains.filter((x) => x.startsWith(`${P}-vm`))).toEqual([]);
    expect(existsSync(file(`${P}-d1`))).toBe(true);
  });
});
