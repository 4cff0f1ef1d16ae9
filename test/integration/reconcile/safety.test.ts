/**
 * No data destroyed without consent, on the real libvirtd (qemu:///system): a base volume shrunk
 * under two clones and a running VM (bug 3), and `metadata.deletionPolicy: Retain`.
 */
import { describe, expect, it } from 'vitest';
import { join } from 'node:path';
import { createHash } from 'node:crypto';
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { writeManifests } from '../../support/manifests.js';
import { inventory, runCli, virsh, type CliResult } from '../../support/real-host.js';
import { useSuite } from '../../support/suite.js';

const N = useSuite('safety');
const P = N.base;
const POOL_DIR = `/var/lib/virtform-test/${P}-pool`;
const file = (vol: string): string => `${POOL_DIR}/${vol}.qcow2`;

const sha = (path: string): string => createHash('sha256').update(readFileSync(path)).digest('hex');
/** What identifies a file's contents here: inode (a recreated file gets a new one) and checksum. */
const fingerprint = (path: string): string => `${statSync(path).ino}:${sha(path)}`;
/** Write a recognizable pattern into a qcow2 image (QEMU must not hold it). */
const writePattern = (path: string): void => {
  execFileSync('qemu-io', ['-f', 'qcow2', '-c', 'write -P 0xab 0 64k', path], { stdio: 'pipe' });
};
/** Whether the image still holds the pattern (qemu-io exits 1 with "Pattern verification failed" if not). */
const readsPattern = (path: string): boolean => {
  const r = spawnSync('qemu-io', ['-U', '-f', 'qcow2', '-r', '-c', 'read -P 0xab 0 64k', path], { encoding: 'utf8' });
  if (r.status !== 0 && !/Pattern verification failed/.test(r.stdout + r.stderr)) throw new Error(`qemu-io: ${r.stdout}${r.stderr}`);
  return r.status === 0;
};
const domId = (name: string): string => virsh('domid', name).trim();

function expectCode(r: CliResult, code: number): void {
  expect(r.code, `${r.stdout}\n${r.stderr}`).toBe(code);
}

describe('bug 3: replacing a base volume with clones and a running VM', () => {
  const manifests = (o: { baseCapacity?: string; vm1State?: string } = {}): Record<string, string> => ({
    'storage.yaml': `apiVersion: virtform.dev/v1
kind: StoragePool
metadata: {name: ${P}-pool}
spec: {path: ${POOL_DIR}}
---
apiVersion: virtform.dev/v1
kind: Volume
metadata: {name: ${P}-base}
spec: {pool: ${P}-pool, capacity: ${o.baseCapacity ?? '64MiB'}, format: qcow2}
---
apiVersion: virtform.dev/v1
kind: Volume
metadata: {name: ${P}-c1}
spec: {pool: ${P}-pool, capacity: 64MiB, format: qcow2, backingVolume: ${P}-base}
---
apiVersion: virtform.dev/v1
kind: Volume
metadata: {name: ${P}-c2}
spec: {pool: ${P}-pool, capacity: 64MiB, format: qcow2, backingVolume: ${P}-base}
`,
    'vms.yaml': `apiVersion: virtform.dev/v1
kind: VirtualMachine
metadata: {name: ${P}-vm1}
spec: {vcpus: 1, memory: 64MiB, state: ${o.vm1State ?? 'running'}, disks: [{volume: ${P}-c1}]}
---
apiVersion: virtform.dev/v1
kind: VirtualMachine
metadata: {name: ${P}-vm2}
spec: {vcpus: 1, memory: 64MiB, state: stopped, disks: [{volume: ${P}-c2}]}
`,
  });

  it('plans the clones with the base, holds it all without --allow-data-loss, recreates and restarts with it', async () => {
    const dir = join(N.work, 'cascade');
    const db = join(N.work, 'cascade.db');
    // Create everything with the VM stopped, put data into both clones, then start the VM.
    writeManifests(dir, manifests({ vm1State: 'stopped' }));
    expectCode(await runCli(['reconcile', dir, '--db', db]), 0);
    writePattern(file(`${P}-c1`));
    writePattern(file(`${P}-c2`));
    writeManifests(dir, manifests());
    expectCode(await runCli(['reconcile', dir, '--db', db]), 0);
    expect(inventory(N.prefix).runningDomains).toEqual([`${P}-vm1`]);
    const files = [`${P}-base`, `${P}-c1`, `${P}-c2`].map(file);
    const before = files.map(fingerprint);
    const id = domId(`${P}-vm1`);

    writeManifests(dir, manifests({ baseCapacity: '32MiB' }));
    const dry = await runCli(['reconcile', dir, '--db', db, '--dry-run', '--detailed-exitcode']);
    expectCode(dry, 3); // held changes are pending changes
    expect(dry.stdout).toMatch(/# Volume\/vftest-safety-base must be replaced: capacity cannot shrink in place\n-\/\+ Volume\/vftest-safety-base/);
    expect(dry.stdout).toMatch(/# Volume\/vftest-safety-c1 must be replaced: its backing volume Volume\/vftest-safety-base is replaced: recreated on the new one\n-\/\+ Volume\/vftest-safety-c1/);
    expect(dry.stdout).toMatch(/-\/\+ Volume\/vftest-safety-c2/);
    expect(dry.stdout).toMatch(/# VirtualMachine\/vftest-safety-vm1 will be updated in place: restarted because Volume\/vftest-safety-c1 is replaced/);
    expect(dry.stdout).toContain(`! data loss: Volume/${P}-base file ${file(`${P}-base`)} (64MiB): backs Volume/${P}-c1 (persistent definition, declared config); backs Volume/${P}-c2 (persistent definition, declared config)`);
    expect(dry.stdout).toContain(`! data loss: Volume/${P}-c1 file ${file(`${P}-c1`)} (64MiB): attached to VirtualMachine/${P}-vm1 (live definition, persistent definition, declared config)`);
    expect(dry.stdout).toContain('Plan: 0 to create, 1 to change, 3 to replace, 0 to delete. 4 held (data loss; needs --allow-data-loss).');

    const held = await runCli(['reconcile', dir, '--db', db]);
    expectCode(held, 1);
    expect(held.stdout).toContain('To consent to the data loss, run again with --allow-data-loss.');
    expect(held.stdout).toMatch(/Apply incomplete: 0 step\(s\) succeeded, 0 resource\(s\) failed, 0 skipped, 0 blocked, 4 held/);
    expect(files.map(fingerprint)).toEqual(before); // not one byte changed, no file recreated
    expect(domId(`${P}-vm1`)).toBe(id); // not restarted
    expect(readsPattern(file(`${P}-c1`))).toBe(true);

    const done = await runCli(['reconcile', dir, '--db', db, '--allow-data-loss', '--shutdown-timeout', '0']);
    expectCode(done, 0);
    expect(done.stdout).toMatch(/✓ stop domain VirtualMachine\/vftest-safety-vm1/);
    expect(done.stdout).toMatch(/✓ start domain VirtualMachine\/vftest-safety-vm1/);
    expect(virsh('vol-info', '--bytes', '--pool', `${P}-pool`, `${P}-base.qcow2`)).toMatch(/Capacity:\s+33554432 bytes/);
    for (const c of [`${P}-c1`, `${P}-c2`]) {
      expect(virsh('vol-dumpxml', '--pool', `${P}-pool`, `${c}.qcow2`)).toContain(`<path>${file(`${P}-base`)}</path>`);
      expect(readsPattern(file(c))).toBe(false); // recreated on the new base
    }
    const after = files.map(fingerprint);
    after.forEach((f, i) => expect(f).not.toBe(before[i]));
    expect(inventory(N.prefix).runningDomains).toEqual([`${P}-vm1`]);
    expect(domId(`${P}-vm1`)).not.toBe(id); // restarted, on the new disk
    const again = await runCli(['reconcile', dir, '--db', db, '--dry-run', '--detailed-exitcode']);
    expectCode(again, 0);
    expect(again.stdout).toContain('No changes.');

    expectCode(await runCli(['reconcile', writeManifests(join(N.work, 'none'), {}), '--db', db, '--allow-empty', '--allow-data-loss', '--max-deletions', 'all']), 0);
    expect(inventory(N.prefix).files).toEqual([]);
  });
});

describe('metadata.deletionPolicy: Retain', () => {
  const RPOOL_DIR = `/var/lib/virtform-test/${P}-rpool`;
  const pool = `apiVersion: virtform.dev/v1
kind: StoragePool
metadata: {name: ${P}-rpool}
spec: {path: ${RPOOL_DIR}}
`;
  const keep = (meta: string): string => `---
apiVersion: virtform.dev/v1
kind: Volume
metadata: {name: ${P}-keep${meta}}
spec: {pool: ${P}-rpool, capacity: 16MiB, format: qcow2}
`;

  it('keeps the file when the manifest is removed; a manifest with adopt takes it back', async () => {
    const dir = join(N.work, 'retain');
    const db = join(N.work, 'retain.db');
    const path = `${RPOOL_DIR}/${P}-keep.qcow2`;
    writeManifests(dir, { 'm.yaml': pool + keep(', deletionPolicy: Retain') });
    expectCode(await runCli(['reconcile', dir, '--db', db]), 0);
    writePattern(path);
    const before = fingerprint(path);

    writeManifests(dir, { 'm.yaml': pool });
    const dry = await runCli(['reconcile', dir, '--db', db, '--dry-run']);
    expectCode(dry, 0);
    expect(dry.stdout).toContain(`# Volume/${P}-keep will be released (deletionPolicy: Retain): file ${path} kept`);
    expect(dry.stdout).toContain('Plan: 0 to create, 0 to change, 0 to replace, 0 to delete, 1 to release.');
    expectCode(await runCli(['reconcile', dir, '--db', db]), 0);
    expect(existsSync(path)).toBe(true);
    expect(fingerprint(path)).toBe(before);
    const status = JSON.parse((await runCli(['status', '--db', db, '--json', '--offline'])).stdout) as { resources: { kind: string; name: string }[] };
    expect(status.resources.map((r) => `${r.kind}/${r.name}`)).toEqual([`StoragePool/${P}-rpool`]);
    const quiet = await runCli(['reconcile', dir, '--db', db, '--dry-run', '--detailed-exitcode']);
    expectCode(quiet, 0);

    // No longer ours: a plain manifest conflicts, one with adopt takes the file back as it is.
    writeManifests(dir, { 'm.yaml': pool + keep('') });
    const conflict = await runCli(['reconcile', dir, '--db', db]);
    expectCode(conflict, 1);
    expect(conflict.stdout).toMatch(/Volume\/vftest-safety-keep conflicts and will not be touched/);
    writeManifests(dir, { 'm.yaml': pool + keep(', adopt: true') });
    const adopted = await runCli(['reconcile', dir, '--db', db]);
    expectCode(adopted, 0);
    expect(adopted.stdout).toMatch(/adopting existing volume/);
    expect(fingerprint(path)).toBe(before);
    expect(readsPattern(path)).toBe(true);

    // Default policy (Delete): removing the manifest deletes it. Never attached to a VM, backing
    // nothing and holding no import, it counts as derived data: no consent is asked.
    writeManifests(dir, { 'm.yaml': pool });
    expectCode(await runCli(['reconcile', dir, '--db', db]), 0);
    expect(existsSync(path)).toBe(false);
    expectCode(await runCli(['reconcile', writeManifests(join(N.work, 'none2'), {}), '--db', db, '--allow-empty', '--allow-data-loss', '--max-deletions', 'all']), 0);
  });
});
