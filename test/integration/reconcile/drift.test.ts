/**
 * Deep drift of networks, pools and volumes on qemu:///system: each managed field is changed with
 * virsh (or qemu-img) outside virtform, then `reconcile --dry-run --detailed-exitcode` must see it
 * (exit 3, the field marked "(drift)"), `reconcile` must correct it, and libvirt's real definition
 * must match the manifest again. Also: a network virtform starts again takes its running VMs back
 * onto its bridge (they are restarted), and a pool deleted with its folder converges in one run.
 */
import { describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import { existsSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { labManifests, writeManifests } from '../../support/manifests.js';
import { runCli, virsh, virshOk } from '../../support/real-host.js';
import { useSuite } from '../../support/suite.js';

const N = useSuite('drift', {
  setup: () => {
    writeManifests(N.mdir, labManifests({ prefix: P, poolPath: POOL_DIR, cidr: CIDR }));
  },
});
const P = N.base;
const POOL_DIR = `/var/lib/virtform-test/${P}-pool`;
const CIDR = '10.233.0.0/24';

const cli = (...args: string[]) => runCli([...args, '--uri', 'qemu:///system', '--db', N.db, '--shutdown-timeout', '0']);

async function converge(...extra: string[]): Promise<void> {
  const r = await cli('reconcile', N.mdir, ...extra);
  expect(r.code, `${r.stdout}\n${r.stderr}`).toBe(0);
  const again = await cli('reconcile', N.mdir, '--dry-run', '--detailed-exitcode');
  expect(again.code, again.stdout).toBe(0);
  expect(again.stdout).toContain('No changes.');
}

/** Dry-run sees the drift: exit 3, and every expected line is in the plan. */
async function expectDrift(...lines: (string | RegExp)[]): Promise<string> {
  const plan = await cli('reconcile', N.mdir, '--dry-run', '--detailed-exitcode', '--no-color');
  expect(plan.code, `${plan.stdout}\n${plan.stderr}`).toBe(3);
  for (const l of lines) expect(plan.stdout).toMatch(l);
  return plan.stdout;
}

function inactiveXml(kind: 'net' | 'pool', name: string): string {
  return kind === 'net' ? virsh('net-dumpxml', '--inactive', name) : virsh('pool-dumpxml', '--inactive', name);
}

function redefine(kind: 'net' | 'pool', xml: string): void {
  const dir = N.tempDir();
  try {
    const f = join(dir, 'def.xml');
    writeFileSync(f, xml);
    virsh(kind === 'net' ? 'net-define' : 'pool-define', f);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

function volCapacity(pool: string, vol: string): number {
  const xml = virsh('vol-dumpxml', '--pool', pool, vol);
  return Number(/<capacity unit='bytes'>(\d+)</.exec(xml)?.[1]);
}

function bridgeOf(net: string): string {
  return /^Bridge:\s+(\S+)/m.exec(virsh('net-info', net))?.[1] ?? '';
}

function tapsOn(bridge: string): string[] {
  const out = execFileSync('ip', ['-br', 'link', 'show', 'master', bridge], { encoding: 'utf8' });
  return out.split('\n').map((l) => l.split(/\s+/)[0]!).filter((n) => n && n.startsWith('vnet'));
}

describe('deep drift of networks, pools and volumes', () => {
  it('converges the lab', async () => {
    await converge();
  });

  it('sees and restores a DHCP host removed outside virtform (config and live)', async () => {
    virsh('net-update', `${P}-net`, 'delete', 'ip-dhcp-host', "<host mac='52:54:00:aa:00:01' ip='10.233.0.11'/>", '--live', '--config');
    expect(inactiveXml('net', `${P}-net`)).not.toContain('52:54:00:aa:00:01');
    await expectDrift(/~ Network\/vftest-drift-net/, /\+ spec\.dhcp\.hosts\[0\]\.mac: "52:54:00:aa:00:01" \(drift\)/, /changed outside virtform/);
    await converge();
    expect(inactiveXml('net', `${P}-net`)).toContain("mac='52:54:00:aa:00:01'");
    expect(virsh('net-dumpxml', `${P}-net`)).toContain("mac='52:54:00:aa:00:01'");
  });

  it('sees a DHCP range changed outside virtform and recreates the network with the declared one', async () => {
    redefine('net', inactiveXml('net', `${P}-net`).replace("end='10.233.0.199'", "end='10.233.0.150'"));
    await expectDrift(/-\/\+ Network\/vftest-drift-net/, /10\.233\.0\.150.*→.*10\.233\.0\.199.*\(drift\)/);
    await converge();
    expect(inactiveXml('net', `${P}-net`)).toContain("end='10.233.0.199'");
  });

  it('restarts running VMs on a network it starts again, so their interfaces are back on its bridge', async () => {
    const bridge = bridgeOf(`${P}-net`);
    expect(tapsOn(bridge).length).toBe(1);
    virsh('net-destroy', `${P}-net`);
    virsh('net-start', `${P}-net`);
    virsh('net-destroy', `${P}-net`);
    const plan = await expectDrift(/network is inactive/, /VirtualMachine\/vftest-drift-vm1/, /Network\/vftest-drift-net is started again/);
    expect(plan).not.toMatch(/VirtualMachine\/vftest-drift-vm2/); // stopped: nothing to reconnect
    await converge();
    expect(tapsOn(bridgeOf(`${P}-net`)).length).toBe(1);
  });

  it('grows back a volume shrunk outside virtform', async () => {
    virsh('vol-resize', '--pool', `${P}-pool`, `${P}-data.img`, '16M', '--shrink');
    expect(volCapacity(`${P}-pool`, `${P}-data.img`)).toBe(16 * 1024 * 1024);
    await expectDrift(/~ Volume\/vftest-drift-data/, /~ spec\.capacity: 16MiB → 32MiB \(drift\)/);
    await converge();
    expect(volCapacity(`${P}-pool`, `${P}-data.img`)).toBe(32 * 1024 * 1024);
  });

  it('replaces a volume file recreated outside virtform with another format', async () => {
    const path = `${POOL_DIR}/${P}-data.img`;
    // vm1 uses the disk: stop it first so the file can be swapped under libvirt.
    virsh('destroy', `${P}-vm1`);
    rmSync(path);
    execFileSync('qemu-img', ['create', '-q', '-f', 'qcow2', path, '32M']);
    virsh('pool-refresh', `${P}-pool`);
    await expectDrift(/-\/\+ Volume\/vftest-drift-data/, /format.*"qcow2".*→.*"raw".*\(drift\)/, /! held: needs --allow-data-loss/);
    // The file is attached to vm1: recreating it destroys its contents, so it waits for consent.
    const held = await cli('reconcile', N.mdir);
    expect(held.code, held.stdout).toBe(1);
    expect(existsSync(path)).toBe(true);
    await converge('--allow-data-loss');
    const info = JSON.parse(execFileSync('qemu-img', ['info', '--output=json', '-U', path], { encoding: 'utf8' })) as { format: string };
    expect(info.format).toBe('raw');
  });

  it('puts a pool redefined at another path back at the declared path, keeping its volume files', async () => {
    const elsewhere = `${POOL_DIR}-moved`;
    execFileSync('mkdir', ['-p', elsewhere]);
    try {
      redefine('pool', inactiveXml('pool', `${P}-pool`).replace(`<path>${POOL_DIR}</path>`, `<path>${elsewhere}</path>`));
      await expectDrift(/-\/\+ StoragePool\/vftest-drift-pool/, /path.*-moved.*→.*\(drift\)/);
      await converge();
      expect(inactiveXml('pool', `${P}-pool`)).toContain(`<path>${POOL_DIR}</path>`);
      for (const f of ['base.qcow2', 'root.qcow2', 'data.img']) expect(existsSync(`${POOL_DIR}/${P}-${f}`)).toBe(true);
    } finally {
      rmSync(elsewhere, { recursive: true, force: true });
    }
  });

  it('recreates a pool deleted with its folder, and its volumes, in one run', async () => {
    // Stop the VMs that hold the files open, then remove the pool and the directory behind virtform.
    virshOk('destroy', `${P}-vm1`);
    virsh('pool-destroy', `${P}-pool`);
    virsh('pool-undefine', `${P}-pool`);
    rmSync(POOL_DIR, { recursive: true, force: true });
    await expectDrift(/\+ StoragePool\/vftest-drift-pool/, /Volume\/vftest-drift-data/);
    const r = await cli('reconcile', N.mdir);
    expect(r.code, `${r.stdout}\n${r.stderr}`).toBe(0);
    for (const f of ['base.qcow2', 'root.qcow2', 'data.img']) expect(existsSync(`${POOL_DIR}/${P}-${f}`)).toBe(true);
    expect(virsh('domstate', `${P}-vm1`).trim()).toBe('running');
    const again = await cli('reconcile', N.mdir, '--dry-run', '--detailed-exitcode');
    expect(again.code, again.stdout).toBe(0);
  });
});
