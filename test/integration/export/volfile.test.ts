/**
 * Volume `spec.fileName` on the real daemon (issue 24, helper volfile): volumes named as kcli and
 * terraform-provider-libvirt name them are exported and adopted with no change.
 *
 * - kcli's shape: a cloud image `jammy-server-cloudimg-amd64.img` (qcow2 with an `.img` name), the
 *   VM's disk `<vm>_0.img` (a qcow2 clone of it) and its seed `<vm>.ISO` on an IDE CD-ROM;
 * - terraform's shape: a base volume `ubuntu_base` (qcow2, no extension), the VM's disk
 *   `<vm>-qcow2` (a clone of it) and `<vm>-commoninit.iso` (libvirt_cloudinit_disk) on an IDE CD-ROM;
 * - export of both VMs exits 0 without a warning, each volume a Volume with `fileName`; the
 *   dry-run plans only adoptions; the apply changes the domains' definitions by the owner marker
 *   only and no volume file; the next dry-run is "No changes.";
 * - a fresh Volume with `fileName` is created under that name and attached; another fileName is a
 *   replace held without --allow-data-loss (file kept); removing its manifests holds its deletion
 *   without --allow-data-loss (file kept), deletes it with.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdirSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { execFileSync } from 'node:child_process';
import { runCli } from '../../support/cli.js';
import { suiteNames } from '../../support/names.js';
import { virsh } from '../../support/virsh.js';
import { defineFromXml, withoutMarker } from '../../support/virsh-made.js';

const N = suiteNames('expfile');
const P = N.prefix;
const POOL = N.name('pool');
const POOL_PATH = N.poolPath();
const NET = N.name('net');
const KVM = N.name('kvm');
const TVM = N.name('tvm');
const KBASE = `${P}jammy-server-cloudimg-amd64.img`;
const TBASE = `${P}ubuntu_base`;
const FILES = [KBASE, `${KVM}_0.img`, `${KVM}.ISO`, TBASE, `${TVM}-qcow2`, `${TVM}-commoninit.iso`];
let work: string;
let db: string;

function domainXml(name: string, disk: string, seed: string, mac: string): string {
  return `<domain type='qemu'>
  <name>${name}</name>
  <memory unit='MiB'>128</memory>
  <currentMemory unit='MiB'>128</currentMemory>
  <vcpu placement='static'>1</vcpu>
  <os><type arch='x86_64' machine='pc'>hvm</type><boot dev='hd'/></os>
  <features><acpi/><apic/></features>
  <clock offset='utc'/>
  <on_poweroff>destroy</on_poweroff><on_reboot>restart</on_reboot><on_crash>destroy</on_crash>
  <devices>
    <disk type='file' device='disk'>
      <driver name='qemu' type='qcow2'/>
      <source file='${POOL_PATH}/${disk}'/>
      <target dev='vda' bus='virtio'/>
    </disk>
    <disk type='file' device='cdrom'>
      <driver name='qemu' type='raw'/>
      <source file='${POOL_PATH}/${seed}'/>
      <target dev='hdd' bus='ide'/>
      <readonly/>
    </disk>
    <interface type='network'><mac address='${mac}'/><source network='${NET}'/><model type='virtio'/></interface>
    <serial type='pty'><target port='0'/></serial>
    <console type='pty'><target type='serial' port='0'/></console>
    <channel type='unix'><target type='virtio' name='org.qemu.guest_agent.0'/></channel>
    <graphics type='vnc' port='-1' autoport='yes' listen='127.0.0.1'><listen type='address' address='127.0.0.1'/></graphics>
  </devices>
</domain>`;
}

/** Size, mtime and inode of each pool file: an apply that only adopts touches none. */
const fingerprint = (): string[] => FILES.map((f) => {
  const st = statSync(join(POOL_PATH, f));
  return `${f} ${st.size} ${st.mtimeMs} ${st.ino}`;
});

beforeAll(() => {
  N.cleanup();
  work = N.tempDir();
  db = join(work, 'state.db');
  mkdirSync(POOL_PATH, { recursive: true });
  defineFromXml(work, 'pool-define', `<pool type='dir'><name>${POOL}</name><target><path>${POOL_PATH}</path></target></pool>`);
  virsh('pool-start', POOL);
  virsh('vol-create-as', POOL, KBASE, '64M', '--format', 'qcow2');
  virsh('vol-create-as', POOL, `${KVM}_0.img`, '128M', '--format', 'qcow2', '--backing-vol', `${POOL_PATH}/${KBASE}`, '--backing-vol-format', 'qcow2');
  virsh('vol-create-as', POOL, TBASE, '64M', '--format', 'qcow2');
  virsh('vol-create-as', POOL, `${TVM}-qcow2`, '128M', '--format', 'qcow2', '--backing-vol', `${POOL_PATH}/${TBASE}`, '--backing-vol-format', 'qcow2');
  const seed = join(work, 'seed');
  mkdirSync(seed);
  writeFileSync(join(seed, 'user-data'), '#cloud-config\nhostname: vm\n');
  writeFileSync(join(seed, 'meta-data'), 'instance-id: vm\nlocal-hostname: vm\n');
  for (const iso of [`${KVM}.ISO`, `${TVM}-commoninit.iso`]) {
    execFileSync('genisoimage', ['-quiet', '-output', `${POOL_PATH}/${iso}`, '-volid', 'cidata', '-joliet', '-rock', join(seed, 'user-data'), join(seed, 'meta-data')]);
  }
  virsh('pool-refresh', POOL);
  defineFromXml(work, 'net-define', `<network><name>${NET}</name><forward mode='nat'/>
  <ip address='${N.ip(1)}' netmask='255.255.255.0'><dhcp><range start='${N.ip(100)}' end='${N.ip(199)}'/></dhcp></ip></network>`);
  virsh('net-start', NET);
  defineFromXml(work, 'define', domainXml(KVM, `${KVM}_0.img`, `${KVM}.ISO`, N.mac(1)));
  defineFromXml(work, 'define', domainXml(TVM, `${TVM}-qcow2`, `${TVM}-commoninit.iso`, N.mac(2)));
}, 120_000);

afterAll(() => {
  N.cleanup();
  rmSync(work, { recursive: true, force: true });
}, 120_000);

describe.sequential('Volume spec.fileName: kcli and terraform-provider-libvirt volume names', () => {
  const out = (): string => join(work, 'out');

  it('export of both VMs exits 0 without a warning; each odd file is a Volume with its fileName', async () => {
    const r = await runCli(['export', KVM, TVM, '--out', out(), '--json']);
    expect(r.code, r.stdout + r.stderr).toBe(0);
    const j = JSON.parse(r.stdout) as { ok: boolean; objects: { kind: string; name: string; warnings: string[] }[] };
    expect(j.ok).toBe(true);
    expect(j.objects.flatMap((o) => o.warnings)).toEqual([]);
    const vol = (name: string): string => readFileSync(join(out(), `volume-${name}.yaml`), 'utf8');
    // kcli: the cloud image (qcow2 named .img), the clone `<vm>_0.img` on it, the seed `<vm>.ISO`.
    expect(vol(`${P}jammy-server-cloudimg-amd64`)).toMatch(new RegExp(`format: qcow2\\n\\s+fileName: ${KBASE.replace(/\./g, '\\.')}`));
    const kroot = vol(`${KVM}-0`);
    expect(kroot).toContain(`fileName: ${KVM}_0.img`);
    expect(kroot).toContain(`backingVolume: ${P}jammy-server-cloudimg-amd64`);
    // Its seed `<vm>.ISO`: the extension kept, as `<vm>` is the domain's name.
    expect(vol(`${KVM}-iso`)).toMatch(new RegExp(`format: raw\\n\\s+fileName: ${KVM}\\.ISO`));
    // terraform: `ubuntu_base`, the clone `<vm>-qcow2`, its libvirt_cloudinit_disk `<vm>-commoninit.iso`.
    expect(vol(`${P}ubuntu-base`)).toContain(`fileName: ${TBASE}`);
    const troot = vol(`${TVM}-qcow2`);
    expect(troot).toContain(`fileName: ${TVM}-qcow2`);
    expect(troot).toContain(`backingVolume: ${P}ubuntu-base`);
    expect(vol(`${TVM}-commoninit`)).toContain(`fileName: ${TVM}-commoninit.iso`);
    const kvm = readFileSync(join(out(), `vm-${KVM}.yaml`), 'utf8');
    expect(kvm).toContain(`- volume: ${KVM}-0`);
    expect(kvm).toMatch(new RegExp(`- volume: ${KVM}-iso\\n\\s+device: cdrom\\n\\s+bus: ide`));
    expect(kvm).not.toContain('seedVolume');
    const tvm = readFileSync(join(out(), `vm-${TVM}.yaml`), 'utf8');
    expect(tvm).toMatch(new RegExp(`- volume: ${TVM}-commoninit\\n\\s+device: cdrom\\n\\s+bus: ide`));
    expect(tvm).not.toContain('seedVolume');
  }, 120_000);

  it('dry-run plans only adoptions; apply changes the domains by the marker only and no volume file; then "No changes."', async () => {
    const plan = await runCli(['reconcile', out(), '--dry-run', '--db', db, '--json']);
    expect(plan.code, plan.stderr).toBe(0);
    const p = JSON.parse(plan.stdout) as { plan: { summary: Record<string, number>; changes: { kind: string; name: string; action: string; reason: string; fields: unknown[]; notes: string[] }[] } };
    // pool, network, 6 volumes, 2 VMs
    expect(p.plan.summary).toMatchObject({ create: 0, replace: 0, delete: 0, conflict: 0, change: 10 });
    for (const c of p.plan.changes) {
      expect(c.action, c.name).toBe('update');
      expect(c.reason, c.name).toMatch(/^adopting existing /);
    }
    for (const vm of [KVM, TVM]) {
      const c = p.plan.changes.find((x) => x.name === vm)!;
      expect(c.fields, vm).toEqual([]);
      expect(c.notes.join(' ')).toMatch(/writes only virtform's owner marker/);
    }
    const before = { k: virsh('dumpxml', '--inactive', KVM), t: virsh('dumpxml', '--inactive', TVM), files: fingerprint() };
    const apply = await runCli(['reconcile', out(), '--db', db]);
    expect(apply.code, apply.stdout + apply.stderr).toBe(0);
    const after = { k: virsh('dumpxml', '--inactive', KVM), t: virsh('dumpxml', '--inactive', TVM), files: fingerprint() };
    expect(after.k).toContain(`kind="VirtualMachine" name="${KVM}"`);
    expect(withoutMarker(after.k)).toBe(withoutMarker(before.k));
    expect(withoutMarker(after.t)).toBe(withoutMarker(before.t));
    expect(after.files).toEqual(before.files);
    expect(readdirSync(POOL_PATH).sort()).toEqual([...FILES].sort());
    const again = await runCli(['reconcile', out(), '--dry-run', '--db', db]);
    expect(again.code).toBe(0);
    expect(again.stdout).toContain('No changes.');
  }, 240_000);

  it('a fresh Volume with fileName: created under that name and attached; its deletion held without --allow-data-loss', async () => {
    const pool2 = N.name('fresh');
    const path2 = N.poolPath('fresh');
    const dir = join(work, 'fresh');
    const fresh = `${P}Fresh_0.img`;
    const db2 = join(work, 'fresh.db');
    mkdirSync(dir, { recursive: true });
    const H = 'apiVersion: virtform.dev/v1\n';
    writeFileSync(join(dir, 'pool.yaml'), `${H}kind: StoragePool\nmetadata: {name: ${pool2}}\nspec: {path: ${path2}}\n`);
    writeFileSync(join(dir, 'vol.yaml'), `${H}kind: Volume\nmetadata: {name: ${P}fresh}\nspec: {pool: ${pool2}, capacity: 16MiB, fileName: ${fresh}}\n`);
    writeFileSync(join(dir, 'vm.yaml'), `${H}kind: VirtualMachine\nmetadata: {name: ${N.name('fvm')}}\nspec:\n  vcpus: 1\n  memory: 128MiB\n  state: stopped\n  disks: [{volume: ${P}fresh}]\n`);
    const r = await runCli(['reconcile', dir, '--db', db2]);
    expect(r.code, r.stdout + r.stderr).toBe(0);
    expect(readdirSync(path2)).toEqual([fresh]);
    expect(virsh('vol-list', pool2)).toContain(fresh);
    expect(virsh('vol-dumpxml', '--pool', pool2, fresh)).toContain("<format type='qcow2'/>");
    expect(virsh('dumpxml', '--inactive', N.name('fvm'))).toContain(`<source file='${path2}/${fresh}'/>`);
    expect((await runCli(['reconcile', dir, '--db', db2, '--dry-run'])).stdout).toContain('No changes.');

    // Another fileName: a replace (the old file deleted), held without --allow-data-loss.
    const renamed = `${P}fresh-disk`;
    writeFileSync(join(dir, 'vol.yaml'), `${H}kind: Volume\nmetadata: {name: ${P}fresh}\nspec: {pool: ${pool2}, capacity: 16MiB, fileName: ${renamed}}\n`);
    const moved = await runCli(['reconcile', dir, '--db', db2]);
    expect(moved.code, moved.stdout + moved.stderr).toBe(1);
    expect(moved.stdout).toContain(`file name changes (${fresh} → ${renamed}, spec.fileName)`);
    expect(moved.stdout).toContain('To consent to the data loss, run again with --allow-data-loss.');
    expect(readdirSync(path2)).toEqual([fresh]);
    writeFileSync(join(dir, 'vol.yaml'), `${H}kind: Volume\nmetadata: {name: ${P}fresh}\nspec: {pool: ${pool2}, capacity: 16MiB, fileName: ${fresh}}\n`);
    expect((await runCli(['reconcile', dir, '--db', db2, '--dry-run'])).stdout).toContain('No changes.');

    rmSync(join(dir, 'vol.yaml'));
    rmSync(join(dir, 'vm.yaml'));
    const held = await runCli(['reconcile', dir, '--db', db2]);
    expect(held.code, held.stdout + held.stderr).toBe(1);
    expect(held.stdout).toContain(`! data loss: Volume/${P}fresh file ${path2}/${fresh}`);
    expect(held.stdout).toContain('To consent to the data loss, run again with --allow-data-loss.');
    expect(readdirSync(path2)).toContain(fresh);
    const done = await runCli(['reconcile', dir, '--db', db2, '--allow-data-loss']);
    expect(done.code, done.stdout + done.stderr).toBe(0);
    expect(readdirSync(path2)).not.toContain(fresh);
  }, 180_000);
});
