/**
 * `virtform export` and adoption on the real daemon (issue 24), with objects made by virsh in the
 * shapes kcli and terraform-provider-libvirt give them: a directory pool, a qcow2 base image and a
 * qcow2 clone of it (backing store), a cloud-init NoCloud ISO (made with genisoimage, as
 * `libvirt_cloudinit_disk` and kcli make it; `commoninit.iso` is a Volume with spec.fileName) attached as an IDE CD-ROM, a NAT network with DHCP, and
 * a domain booting from the clone with the usual devices (virtio disk and NIC, serial console,
 * guest agent channel, VNC on loopback, a virtio RNG, a USB tablet).
 *
 * - export names what the VM needs (its volumes, their pool, its network) and writes one file each;
 * - `reconcile --dry-run` of the exported folder plans only adoptions (no create, no replace, no
 *   delete), and the VM's adoption writes only the owner marker;
 * - the apply leaves the domain's and the network's definitions as they were but for the marker
 *   (`virsh dumpxml --inactive` before and after); the next dry-run is "No changes.";
 * - a domain with what virtform does not model (a `pae` feature, a `vga` video, balloon stats,
 *   libosinfo metadata): export warns about each (exit 3) and the adoption plan names each element
 *   it would drop or rewrite (before this change the adoption plan named none of them);
 * - a network adopted with other DHCP static hosts: the hosts change, its bridge name, MAC and DNS
 *   domain stay (before, adoption defined it anew from the manifest: another bridge and MAC).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { existsSync, mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { execFileSync } from 'node:child_process';
import { runCli } from '../../support/cli.js';
import { suiteNames } from '../../support/names.js';
import { virsh } from '../../support/virsh.js';
import { defineFromXml, withoutMarker } from '../../support/virsh-made.js';

const N = suiteNames('expvirsh');
const P = N.prefix;
const POOL = N.name('pool');
const POOL_PATH = N.poolPath();
const NET = N.name('net');
const VM = N.name('vm');
const ODD = N.name('odd');
let work: string;
let db: string;

function domainXml(name: string, extra: { top?: string; devices?: string; metadata?: string } = {}): string {
  return `<domain type='qemu'>
  <name>${name}</name>
  ${extra.metadata ?? ''}
  <memory unit='MiB'>128</memory>
  <currentMemory unit='MiB'>128</currentMemory>
  <vcpu placement='static'>1</vcpu>
  <os><type arch='x86_64' machine='pc'>hvm</type><boot dev='hd'/></os>
  <features><acpi/><apic/>${extra.top ?? ''}</features>
  <clock offset='utc'/>
  <on_poweroff>destroy</on_poweroff><on_reboot>restart</on_reboot><on_crash>destroy</on_crash>
  <devices>
    <disk type='file' device='disk'>
      <driver name='qemu' type='qcow2'/>
      <source file='${POOL_PATH}/${name}-root.qcow2'/>
      <target dev='vda' bus='virtio'/>
    </disk>
    ${name === VM ? `<disk type='file' device='cdrom'>
      <driver name='qemu' type='raw'/>
      <source file='${POOL_PATH}/${name}-seed.img'/>
      <target dev='hdd' bus='ide'/>
      <readonly/>
    </disk>` : `<disk type='file' device='cdrom'>
      <driver name='qemu' type='raw'/>
      <source file='${POOL_PATH}/${name}-commoninit.iso'/>
      <target dev='hdc' bus='ide'/>
      <readonly/>
    </disk>`}
    <interface type='network'><mac address='${N.mac(name === VM ? 1 : 2)}'/><source network='${NET}'/><model type='virtio'/></interface>
    <serial type='pty'><target port='0'/></serial>
    <console type='pty'><target type='serial' port='0'/></console>
    <channel type='unix'><target type='virtio' name='org.qemu.guest_agent.0'/></channel>
    <input type='tablet' bus='usb'/>
    <graphics type='vnc' port='-1' autoport='yes' listen='127.0.0.1'><listen type='address' address='127.0.0.1'/></graphics>
    <rng model='virtio'><backend model='random'>/dev/urandom</backend></rng>
    ${extra.devices ?? ''}
  </devices>
</domain>`;
}

beforeAll(() => {
  N.cleanup();
  work = N.tempDir();
  db = join(work, 'state.db');
  mkdirSync(POOL_PATH, { recursive: true });
  defineFromXml(work, 'pool-define', `<pool type='dir'><name>${POOL}</name><target><path>${POOL_PATH}</path></target></pool>`);
  virsh('pool-start', POOL);
  virsh('vol-create-as', POOL, `${P}base.qcow2`, '64M', '--format', 'qcow2');
  for (const vm of [VM, ODD]) {
    virsh('vol-create-as', POOL, `${vm}-root.qcow2`, '128M', '--format', 'qcow2', '--backing-vol', `${POOL_PATH}/${P}base.qcow2`, '--backing-vol-format', 'qcow2');
  }
  // The cloud-init seed as other tools make it: an ISO 9660 image labelled cidata (a raw file).
  const seed = join(work, 'seed');
  mkdirSync(seed);
  writeFileSync(join(seed, 'user-data'), '#cloud-config\nhostname: vm\n');
  writeFileSync(join(seed, 'meta-data'), `instance-id: ${VM}\nlocal-hostname: vm\n`);
  execFileSync('genisoimage', ['-quiet', '-output', `${POOL_PATH}/${VM}-seed.img`, '-volid', 'cidata', '-joliet', '-rock', join(seed, 'user-data'), join(seed, 'meta-data')]);
  // terraform-provider-libvirt's name for it: a Volume with spec.fileName.
  execFileSync('genisoimage', ['-quiet', '-output', `${POOL_PATH}/${ODD}-commoninit.iso`, '-volid', 'cidata', '-joliet', '-rock', join(seed, 'user-data'), join(seed, 'meta-data')]);
  virsh('pool-refresh', POOL);
  defineFromXml(work, 'net-define', `<network><name>${NET}</name><forward mode='nat'><nat><port start='1024' end='65535'/></nat></forward>
  <ip address='${N.ip(1)}' netmask='255.255.255.0'><dhcp><range start='${N.ip(100)}' end='${N.ip(199)}'/></dhcp></ip></network>`);
  virsh('net-start', NET);
  defineFromXml(work, 'define', domainXml(VM));
  defineFromXml(work, 'define', domainXml(ODD, {
    top: '<pae/>',
    devices: "<video><model type='vga' vram='16384' heads='1' primary='yes'/></video><memballoon model='virtio'><stats period='10'/></memballoon>",
    metadata: "<metadata><libosinfo:libosinfo xmlns:libosinfo='http://libosinfo.org/xmlns/libvirt/domain/1.0'><libosinfo:os id='http://ubuntu.com/ubuntu/22.04'/></libosinfo:libosinfo></metadata>",
  }));
}, 120_000);

afterAll(() => {
  N.cleanup();
  rmSync(work, { recursive: true, force: true });
}, 120_000);

describe.sequential('export and adoption of objects made by virsh (kcli / terraform-provider-libvirt shapes)', () => {
  it('export VM writes the VM and what it needs, one file each; a second export without --force writes nothing (exit 2)', async () => {
    const out = join(work, 'out');
    const r = await runCli(['export', VM, '--out', out]);
    expect(r.stderr).not.toMatch(/warning/);
    expect(r.code).toBe(0);
    expect(readdirSync(out).sort()).toEqual([
      `network-${NET}.yaml`, `pool-${POOL}.yaml`, `vm-${VM}.yaml`, `volume-${P}base.yaml`, `volume-${VM}-root.yaml`, `volume-${VM}-seed.yaml`,
    ].sort());
    const vm = readFileSync(join(out, `vm-${VM}.yaml`), 'utf8');
    expect(vm).toContain('adopt: true');
    expect(vm).toContain(`- volume: ${VM}-root`);
    // The seed ISO: a Volume (never decoded) attached as a CD-ROM on its IDE target.
    expect(vm).toMatch(new RegExp(`- volume: ${VM}-seed\\n\\s+device: cdrom\\n\\s+bus: ide`));
    expect(readFileSync(join(out, `volume-${VM}-seed.yaml`), 'utf8')).toMatch(/format: raw/);
    expect(vm).toContain("<rng model='virtio'><backend model='random'>/dev/urandom</backend></rng>");
    expect(vm).toContain("<input bus='usb' type='tablet'/>");
    expect(vm).not.toMatch(/<address /);
    const clone = readFileSync(join(out, `volume-${VM}-root.yaml`), 'utf8');
    expect(clone).toContain(`backingVolume: ${P}base`);
    expect(clone).toMatch(/# spec\.source left out/);
    expect(clone).not.toMatch(/^\s*source:/m);
    const net = readFileSync(join(out, `network-${NET}.yaml`), 'utf8');
    expect(net).toContain('mode: nat');
    expect(net).toContain(`cidr: ${N.cidr()}`);

    const again = await runCli(['export', VM, '--out', out]);
    expect(again.code).toBe(2);
    expect(again.stderr).toMatch(/exist.*nothing written.*--force/);
    expect((await runCli(['export', VM, '--out', out, '--force'])).code).toBe(0);
  }, 120_000);

  it('bad input: an unknown name and no name at all are exit 2', async () => {
    const r = await runCli(['export', `${P}nope`]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(`${P}nope: no pool, volume, network or domain of that name on the host`);
    const none = await runCli(['export']);
    expect(none.code).toBe(2);
    expect(none.stderr).toMatch(/--all/);
  }, 60_000);

  it('dry-run of the exported folder plans only adoptions; apply changes the definitions by the owner marker only; then "No changes."', async () => {
    const out = join(work, 'out');
    const plan = await runCli(['reconcile', out, '--dry-run', '--db', db, '--json']);
    expect(plan.code, plan.stderr).toBe(0);
    const p = JSON.parse(plan.stdout) as { plan: { summary: Record<string, number>; changes: { kind: string; name: string; action: string; reason: string; fields: unknown[]; notes: string[] }[] } };
    expect(p.plan.summary).toMatchObject({ create: 0, replace: 0, delete: 0, conflict: 0, change: 6 });
    for (const c of p.plan.changes) {
      expect(c.action, c.name).toBe('update');
      expect(c.reason, c.name).toMatch(/^adopting existing /);
    }
    const vmChange = p.plan.changes.find((c) => c.name === VM)!;
    expect(vmChange.fields).toEqual([]);
    expect(vmChange.notes.join(' ')).toMatch(/writes only virtform's owner marker/);

    const before = { vm: virsh('dumpxml', '--inactive', VM), net: virsh('net-dumpxml', '--inactive', NET) };
    const apply = await runCli(['reconcile', out, '--db', db]);
    expect(apply.code, apply.stdout + apply.stderr).toBe(0);
    const after = { vm: virsh('dumpxml', '--inactive', VM), net: virsh('net-dumpxml', '--inactive', NET) };
    expect(after.vm).toContain(`kind="VirtualMachine" name="${VM}"`);
    expect(after.net).toContain(`kind="Network" name="${NET}"`);
    expect(withoutMarker(after.vm)).toBe(withoutMarker(before.vm));
    expect(withoutMarker(after.net)).toBe(withoutMarker(before.net));

    const again = await runCli(['reconcile', out, '--dry-run', '--db', db]);
    expect(again.code).toBe(0);
    expect(again.stdout).toContain('No changes.');
  }, 180_000);

  it('what virtform does not model: export warns (exit 3), and the adoption plan names every element it would drop or rewrite', async () => {
    const out = join(work, 'odd');
    const r = await runCli(['export', ODD, '--out', out, '--json']);
    expect(r.code).toBe(3);
    const j = JSON.parse(r.stdout) as { ok: boolean; objects: { name: string; warnings: string[]; file?: string }[] };
    expect(j.ok).toBe(false);
    const warnings = j.objects.find((o) => o.name === ODD)!.warnings.join('\n');
    expect(warnings).toMatch(/features rewritten by adoption/);
    expect(warnings).toMatch(/devices\/video.*rewritten by adoption.*vga/);
    expect(warnings).toMatch(/devices\/memballoon.*stats/);
    expect(warnings).toMatch(/metadata\/libosinfo:libosinfo dropped by adoption/);
    // The seed ISO named commoninit.iso (terraform's libvirt_cloudinit_disk, a resource of its own):
    // a Volume with spec.fileName attached as a CD-ROM (helper volfile), no warning about it.
    expect(warnings).not.toMatch(/commoninit/);
    const oddVm = readFileSync(join(out, `vm-${ODD}.yaml`), 'utf8');
    expect(oddVm).toMatch(new RegExp(`- volume: ${ODD}-commoninit\\n\\s+device: cdrom\\n\\s+bus: ide`));
    expect(oddVm).not.toMatch(/cloudInit|seedVolume/);
    expect(readFileSync(join(out, `volume-${ODD}-commoninit.yaml`), 'utf8')).toContain(`fileName: ${ODD}-commoninit.iso`);
    expect(existsSync(join(out, `vm-${ODD}.yaml`))).toBe(true);
    expect(readFileSync(join(out, `vm-${ODD}.yaml`), 'utf8')).toMatch(/# WARNING: features rewritten by adoption/);

    // With the first VM's manifests (adopted above: else the plan would delete it).
    for (const f of readdirSync(join(work, 'out'))) if (!existsSync(join(out, f))) writeFileSync(join(out, f), readFileSync(join(work, 'out', f)));
    const plan = await runCli(['reconcile', out, '--dry-run', '--db', db]);
    expect(plan.code, plan.stderr).toBe(0);
    const from = plan.stdout.indexOf(`VirtualMachine/${ODD} will be`);
    const block = plan.stdout.slice(from, plan.stdout.indexOf('\n  #', from));
    expect(block).toMatch(/adopting existing domain/);
    expect(block).toMatch(/~ features rewritten by adoption.*\[restart\]: <features><acpi\/><apic\/><pae\/><\/features> → <features><acpi\/><apic\/><\/features>/);
    expect(block).toMatch(/~ devices\/video rewritten by adoption/);
    expect(block).toMatch(/~ devices\/memballoon.*rewritten by adoption/);
    expect(block).toMatch(/~ metadata\/libosinfo:libosinfo dropped by adoption/);
    expect(block).not.toMatch(/writes only virtform's owner marker/);
    // The CD-ROM on the commoninit Volume is adopted as it is: no seed step, no CD-ROM line.
    expect(block).not.toMatch(/cloudInit|devices\/disk/);
  }, 180_000);

  it('a network adopted with other DHCP hosts: the hosts change (live and in the config), the rest of its definition stays, with the marker', async () => {
    const net2 = N.name('net2');
    defineFromXml(work, 'net-define', `<network><name>${net2}</name><forward mode='nat'/><domain name='lab.test'/>
  <ip address='${N.ip(1, 1)}' prefix='24'><dhcp><range start='${N.ip(100, 1)}' end='${N.ip(199, 1)}'/>
  <host mac='${N.mac(7, 1)}' name='old' ip='${N.ip(7, 1)}'/></dhcp></ip></network>`);
    virsh('net-start', net2);
    const before = virsh('net-dumpxml', '--inactive', net2);
    const dir = join(work, 'net2');
    mkdirSync(dir);
    writeFileSync(join(dir, 'net.yaml'), `apiVersion: virtform.dev/v1
kind: Network
metadata: {name: ${net2}, adopt: true}
spec:
  mode: nat
  cidr: ${N.cidr(1)}
  dhcp: {start: ${N.ip(100, 1)}, end: ${N.ip(199, 1)}, hosts: [{mac: "${N.mac(8, 1)}", ip: ${N.ip(8, 1)}, name: new}]}
  autostart: false
`);
    const db2 = join(work, 'net2.db');
    const r = await runCli(['reconcile', dir, '--db', db2]);
    expect(r.code, r.stdout + r.stderr).toBe(0);
    const after = virsh('net-dumpxml', '--inactive', net2);
    expect(after).toContain(`kind="Network" name="${net2}"`);
    expect(after).toContain(`name='new'`);
    expect(after).not.toContain(`name='old'`);
    // Everything else as it was: the bridge name and MAC libvirt chose, the DNS domain virtform does not model.
    const rest = (x: string): string => withoutMarker(x).replace(/\s*<host [^>]*\/>/g, '');
    expect(rest(after)).toBe(rest(before));
    expect(virsh('net-dumpxml', net2)).toContain(`name='new'`);
    expect((await runCli(['reconcile', dir, '--db', db2, '--dry-run'])).stdout).toContain('No changes.');
  }, 120_000);
});
