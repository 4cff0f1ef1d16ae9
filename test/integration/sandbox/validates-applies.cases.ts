/**
 * What validates can apply (issue 19, finding 10), on qemu:///system: a qcow2 clone of a raw
 * volume is created with backing format raw (it validated and then failed three times at apply);
 * cross-resource rules that libvirt or QEMU would refuse only at apply are refused by validation
 * with file:line:col instead (more than four IDE devices; a qcow2 size QEMU rounds up, which every
 * later run saw as a shrink to undo).
 */
import { describe, expect, it } from 'vitest';
import { join } from 'node:path';
import { writeManifests } from '../../support/manifests.js';
import { runCli, virsh } from '../../support/real-host.js';
import { useSuite } from '../../support/suite.js';

const N = useSuite('sbxva');
const P = N.base;
const ROOT = process.env.VIRTFORM_TEST_POOL_ROOT ?? '/var/lib/virtform-test';
const pool = (name: string): string => `apiVersion: virtform.dev/v1\nkind: StoragePool\nmetadata: {name: ${P}-${name}}\nspec: {path: ${ROOT}/${P}-${name}}\n---\n`;
const vol = (name: string, spec: string): string => `apiVersion: virtform.dev/v1\nkind: Volume\nmetadata: {name: ${P}-${name}}\nspec: {${spec}}\n---\n`;

describe('what validates can apply', () => {
  it('a qcow2 clone of a raw volume (in another pool, and a clone of that clone): created with backing format raw; rerun "No changes."', async () => {
    const dir = writeManifests(join(N.work, 'clone'), {
      'm.yaml': pool('a') + pool('b')
        + vol('base', `pool: ${P}-a, format: raw, capacity: 8MiB`)
        + vol('clone', `pool: ${P}-b, format: qcow2, capacity: 16MiB, backingVolume: ${P}-base`)
        + vol('clone2', `pool: ${P}-b, capacity: 16MiB, backingVolume: ${P}-clone`),
    });
    const db = join(N.work, 'clone.db');
    const r = await runCli(['reconcile', dir, '--db', db, '--max-attempts', '1']);
    expect(r.code, r.stdout + r.stderr).toBe(0);
    const xml = virsh('vol-dumpxml', '--pool', `${P}-b`, `${P}-clone.qcow2`);
    expect(xml).toMatch(new RegExp(`<backingStore>\\s*<path>${ROOT}/${P}-a/${P}-base\\.img</path>\\s*<format type='raw'/>`));
    expect(virsh('vol-dumpxml', '--pool', `${P}-b`, `${P}-clone2.qcow2`)).toMatch(/<backingStore>\s*<path>[^<]*clone\.qcow2<\/path>\s*<format type='qcow2'\/>/);
    const again = await runCli(['reconcile', dir, '--db', db, '--dry-run', '--detailed-exitcode']);
    expect(again.code, again.stdout).toBe(0);
    expect(again.stdout).toContain('No changes.');
  }, 60_000);

  it('refused by validation instead of failing at apply: five IDE devices, a qcow2 size that is not whole sectors, a kernel volume that is another VM\'s disk', async () => {
    N.cleanup();
    const vm = (name: string, body: string): string =>
      `apiVersion: virtform.dev/v1\nkind: VirtualMachine\nmetadata: {name: ${P}-${name}}\nspec:\n  vcpus: 1\n  memory: 64MiB\n  state: stopped\n${body}---\n`;
    const dir = writeManifests(join(N.work, 'bad'), {
      'm.yaml': pool('a')
        + ['1', '2', '3', '4'].map((i) => vol(`d${i}`, `pool: ${P}-a, format: raw, capacity: 1MiB`)).join('')
        + vol('kernel', `pool: ${P}-a, format: raw, capacity: 1MiB`)
        + vm('ide', `  cloudInit: {userData: "#cloud-config\\n"}\n  disks:\n${['1', '2', '3', '4'].map((i) => `    - {volume: ${P}-d${i}, bus: ide}\n`).join('')}`)
        + vm('kernel', `  boot: {kernelVolume: ${P}-kernel}\n`)
        + vm('user', `  disks:\n    - {volume: ${P}-kernel}\n`),
    });
    const r = await runCli(['reconcile', dir, '--db', join(N.work, 'bad.db'), '--max-attempts', '1']);
    expect(r.code, r.stdout + r.stderr).toBe(2);
    expect(r.stderr).toMatch(new RegExp(`m\\.yaml:\\d+:\\d+: VirtualMachine/${P}-ide: spec\\.disks\\[3\\]\\.bus: more than 3 ide disks \\(the cloud-init seed is a fourth ide device\\)`));
    expect(r.stderr).toContain(`VirtualMachine/${P}-kernel: spec.boot.kernelVolume: volume "${P}-kernel" is attached as a disk to VirtualMachine "${P}-user"`);
    expect(virsh('pool-list', '--all', '--name')).not.toContain(P);
  }, 60_000);
});
