/**
 * Issue 18 on qemu:///system: one object holding a value virtform does not model never stops the
 * run (finding 3: a managed network's forward mode changed to `route` outside virtform), sizes are
 * normalized to what libvirt stores before they are compared (finding 5: a qcow2 capacity of
 * 1000001 bytes), and a connection failure while reading the domain capabilities fails the run
 * instead of skipping the CPU/graphics checks (finding 10).
 */
import { describe, expect, it } from 'vitest';
import { rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { writeManifests } from '../../support/manifests.js';
import { runCli, virsh } from '../../support/real-host.js';
import { useSuite } from '../../support/suite.js';
import { makeTempDir } from '../../support/temp-dirs.js';

const N = useSuite('rob', {
  setup: async () => {
    writeManifests(N.mdir, manifests());
    const first = await cli('reconcile', N.mdir);
    expect(first.code, `${first.stdout}\n${first.stderr}`).toBe(0);
  },
  setupTimeoutMs: 120_000,
});
const P = N.prefix;
const POOL_DIR = `/var/lib/virtform-test/${P}pool`;

const cli = (...args: string[]) => runCli([...args, '--uri', 'qemu:///system', '--db', N.db, '--shutdown-timeout', '0', '--no-color']);

/** Capacity of the base/clone pair (the clone test grows it; later tests keep the grown size). */
let pairCapacity = 1000001;

function manifests(): Record<string, string> {
  return {
    'all.yaml': `apiVersion: virtform.dev/v1
kind: StoragePool
metadata: {name: ${P}pool}
spec: {path: ${POOL_DIR}, autostart: false}
---
apiVersion: virtform.dev/v1
kind: Volume
metadata: {name: ${P}odd-qcow2}
spec: {pool: ${P}pool, capacity: 1000001, format: qcow2}
---
apiVersion: virtform.dev/v1
kind: Volume
metadata: {name: ${P}odd-raw}
spec: {pool: ${P}pool, capacity: 1000001, format: raw}
---
apiVersion: virtform.dev/v1
kind: Volume
metadata: {name: ${P}base}
spec: {pool: ${P}pool, capacity: ${pairCapacity}, format: qcow2}
---
apiVersion: virtform.dev/v1
kind: Volume
metadata: {name: ${P}clone}
spec: {pool: ${P}pool, capacity: ${pairCapacity}, format: qcow2, backingVolume: ${P}base}
---
apiVersion: virtform.dev/v1
kind: Network
metadata: {name: ${P}net}
spec: {mode: isolated, cidr: 10.213.13.0/24, autostart: false}
---
apiVersion: virtform.dev/v1
kind: VirtualMachine
metadata: {name: ${P}vm}
spec: {vcpus: 1, memory: 1000001KB, state: running, disks: [], nics: []}
`,
  };
}

function redefineNet(xml: string): void {
  const dir = makeTempDir(`${P}xml-`);
  try {
    writeFileSync(join(dir, 'net.xml'), xml);
    virsh('net-define', join(dir, 'net.xml'));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

describe('sizes are normalized to what libvirt stores', () => {
  it('a qcow2 capacity of 1000001 bytes (and a raw one, memory 1000001KB) converges: the second dry-run plans nothing', async () => {
    const again = await cli('reconcile', N.mdir, '--dry-run', '--detailed-exitcode');
    expect(again.code, again.stdout).toBe(0);
    expect(again.stdout).toContain('No changes.');
    // libvirt stores the qcow2 rounded up to whole KiB (qemu-img create takes KiB).
    expect(virsh('vol-dumpxml', '--pool', `${P}pool`, `${P}odd-qcow2.qcow2`)).toContain("<capacity unit='bytes'>1000448</capacity>");
    // A raw file keeps its exact size in libvirt, but QEMU shows the guest whole sectors: made whole KiB too.
    expect(virsh('vol-dumpxml', '--pool', `${P}pool`, `${P}odd-raw.img`)).toContain("<capacity unit='bytes'>1000448</capacity>");
  });

  it('the plan shows a rounded size as libvirt will store it', async () => {
    const edited = manifests()['all.yaml']!.replace('capacity: 1000001, format: qcow2', 'capacity: 2000001, format: qcow2');
    writeManifests(N.mdir, { 'all.yaml': edited });
    try {
      const plan = await cli('reconcile', N.mdir, '--dry-run');
      expect(plan.code, plan.stderr).toBe(0);
      // 2000001 rounded up to whole KiB = 1954KiB.
      expect(plan.stdout).toMatch(/spec\.capacity: 977KiB → 1954KiB/);
      expect(plan.stdout).not.toMatch(/2000001/);
    } finally {
      writeManifests(N.mdir, manifests());
    }
  });
  it('a qcow2 clone grows in place over its grown base (created as qcow2 v3, which qemu-img can grow)', async () => {
    pairCapacity = 3000001;
    writeManifests(N.mdir, manifests());
    const r = await cli('reconcile', N.mdir);
    expect(r.code, `${r.stdout}\n${r.stderr}`).toBe(0);
    expect(virsh('vol-dumpxml', '--pool', `${P}pool`, `${P}clone.qcow2`)).toContain("<capacity unit='bytes'>3000320</capacity>");
    const again = await cli('reconcile', N.mdir, '--dry-run', '--detailed-exitcode');
    expect(again.code, again.stdout).toBe(0);
  });
});

describe('one bad object never stops the run', () => {
  it('a network redefined with forward mode route outside virtform is drift, corrected, while a destroyed VM elsewhere is started', async () => {
    const xml = virsh('net-dumpxml', '--inactive', `${P}net`);
    redefineNet(xml.replace(/<name>/, "<forward mode='route'/>\n  <name>"));
    expect(virsh('net-dumpxml', '--inactive', `${P}net`)).toContain("<forward mode='route'/>");
    virsh('destroy', `${P}vm`);

    const plan = await cli('reconcile', N.mdir, '--dry-run', '--detailed-exitcode');
    expect(plan.code, `${plan.stdout}\n${plan.stderr}`).toBe(3);
    expect(plan.stdout).toMatch(/spec\.mode: "route" → "isolated" \(drift\)/);
    expect(plan.stdout).toMatch(new RegExp(`VirtualMachine/${P}vm`));

    const status = await runCli(['status', N.mdir, '--json', '--uri', 'qemu:///system', '--db', N.db]);
    const rows = JSON.parse(status.stdout).resources as { kind: string; name: string; status: string }[];
    expect(rows.find((r) => r.kind === 'Network' && r.name === `${P}net`)?.status).not.toBe('converged');

    const applied = await cli('reconcile', N.mdir);
    expect(applied.code, `${applied.stdout}\n${applied.stderr}`).toBe(0);
    expect(virsh('net-dumpxml', '--inactive', `${P}net`)).not.toContain('<forward');
    expect(virsh('domstate', `${P}vm`).trim()).toBe('running');
    const again = await cli('reconcile', N.mdir, '--dry-run', '--detailed-exitcode');
    expect(again.code, again.stdout).toBe(0);
  });
});

describe('no silent catch', () => {
  it('a connection failure while reading the domain capabilities fails the run (exit 1), not skips the checks', async () => {
    const withCpu = manifests()['all.yaml']!.replace('state: running, disks', 'state: running, cpu: {mode: maximum}, disks');
    const dir = join(N.work, 'caps');
    writeManifests(dir, { 'all.yaml': withCpu });
    const r = await runCli(['reconcile', dir, '--dry-run', '--uri', 'qemu:///system', '--db', N.db, '--no-color'],
      { VIRTFORM_TEST_FAIL: 'domainCapabilities:*:connection' });
    expect(r.code, `${r.stdout}\n${r.stderr}`).toBe(1);
    expect(r.stderr).toMatch(/domain capabilities|capabilit/i);
  });
});
