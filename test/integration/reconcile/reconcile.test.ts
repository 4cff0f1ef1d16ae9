/**
 * The reconcile engine against the real libvirtd (qemu:///system): KVM/TCG domains with blank
 * disks, isolated networks, a directory pool under /var/lib/virtform-test.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { join } from 'node:path';
import { rmSync } from 'node:fs';
import { openHost, type LibvirtHost } from '../../../src/reconcile/adapters/libvirt-host.js';
import { openStateStore, type StateStore } from '../../../src/state/index.js';
import { reconcile, planOnly } from '../../../src/reconcile/engine.js';
import { desiredFrom, labManifests, tempDir, writeManifests } from '../../support/manifests.js';
import { cleanupPrefix, ensureBuilt, inventory, orphans, runCli, virsh, virshOk } from '../../support/real-host.js';
import { expectReadbackMatches, mergeSnapshots, type Snapshot } from '../../support/readback.js';
import { testDbLocation } from '../../support/postgres.js';

const P = 'vftest-rec';
const POOL_DIR = `/var/lib/virtform-test/${P}-pool`;
const FAST = { maxAttempts: 3, baseDelayMs: 20, maxDelayMs: 100 };
const URI = 'qemu:///system';

let work: string;
let mdir: string;
let dbPath: string;
let host: LibvirtHost;
let store: StateStore;

type Opts = Partial<Parameters<typeof labManifests>[0]>;
const files = (o: Opts = {}): Record<string, string> => labManifests({ prefix: P, poolPath: POOL_DIR, cidr: '10.231.0.0/24', ...o });
async function desired(o: Opts = {}) {
  writeManifests(mdir, files(o));
  return desiredFrom(mdir);
}
async function apply(o: Opts = {}, allowDataLoss = false) {
  return reconcile({ host, store, desired: await desired(o), retry: FAST, gracefulStop: false, allowDataLoss });
}
/** Issue #12: read libvirt back and compare it with the manifests (snapshots carried across scenarios). */
let snap: Snapshot | undefined;
async function oracle(label: string, dir = mdir): Promise<void> {
  snap = mergeSnapshots(snap, await expectReadbackMatches(dir, URI, snap, label), 'last');
}
async function expectOk(args: string[]): Promise<void> {
  const r = await runCli(args);
  expect(r.code, `${r.stdout}\n${r.stderr}`).toBe(0);
}
const declaredAll = {
  domains: [`${P}-vm1`, `${P}-vm2`], networks: [`${P}-net`], pools: [`${P}-pool`],
  volumes: [`${P}-pool/${P}-base.qcow2`, `${P}-pool/${P}-data.img`, `${P}-pool/${P}-root.qcow2`],
  files: [`${POOL_DIR}/${P}-base.qcow2`, `${POOL_DIR}/${P}-data.img`, `${POOL_DIR}/${P}-root.qcow2`],
};

beforeAll(async () => {
  cleanupPrefix(P);
  ensureBuilt();
  work = tempDir();
  mdir = join(work, 'manifests');
  // A SQLite file; under make test-postgres a database on the run's private PostgreSQL cluster.
  dbPath = await testDbLocation(work);
  host = await openHost('qemu:///system');
  store = await openStateStore(dbPath);
});
afterAll(async () => {
  await host?.close();
  await store?.close();
  cleanupPrefix(P);
  rmSync(work, { recursive: true, force: true });
});

describe('reconcile on qemu:///system', () => {
  it('converges the lab; a second dry-run is "No changes." and a second apply makes zero mutating calls', async () => {
    const first = await apply();
    expect(first.outcome).toBe('succeeded');
    const inv = inventory(P);
    expect(inv.domains).toEqual([`${P}-vm1`, `${P}-vm2`]);
    expect(inv.runningDomains).toEqual([`${P}-vm1`]);
    expect(inv.activeNetworks).toEqual([`${P}-net`]);
    expect(inv.volumes).toEqual(declaredAll.volumes);
    expect(virsh('vol-dumpxml', '--pool', `${P}-pool`, `${P}-root.qcow2`)).toContain(`<path>${POOL_DIR}/${P}-base.qcow2</path>`);
    expect(orphans(P, declaredAll)).toEqual([]);
    await oracle('lab converged');

    const dry = await runCli(['reconcile', mdir, '--db', dbPath, '--dry-run', '--detailed-exitcode']);
    expect(dry.stdout).toContain('No changes.');
    expect(dry.code).toBe(0);

    const mutatingBefore = host.client.mutatingCallCount;
    const callsBefore = host.client.callCount;
    const second = await apply();
    expect(second.plan.noop).toBe(true);
    await oracle('second apply');
    expect(host.client.mutatingCallCount - mutatingBefore).toBe(0);
    // observe: 8 bulk list calls + 3 of transient objects + lookup/refresh/list for the one pool,
    // then one definition read per object: the 7 managed ones (pool, 3 volumes, network, 2
    // domains), the live XML of the running VM (its live-only devices), and every other network
    // and pool on the host (their CIDRs and paths are checked before creating), no lookups. The
    // versions baselines are recorded with are asked once per connection (the first apply did).
    const others = virsh('net-list', '--all', '--name').split('\n').filter((n) => n.trim() && !n.startsWith(P)).length
      + virsh('pool-list', '--all', '--name').split('\n').filter((n) => n.trim() && !n.startsWith(P)).length;
    expect(host.client.callCount - callsBefore).toBe(14 + 7 + 1 + others);
  });

  it('updates memory in place keeping the UUID, grows a volume, adds a DHCP host live', async () => {
    const uuid = virsh('domuuid', `${P}-vm1`).trim();
    const result = await apply({
      vm1Memory: '96MiB', dataCapacity: '48MiB',
      extraHosts: '\n      - {mac: "52:54:00:aa:00:02", ip: 10.231.0.12}',
    });
    expect(result.outcome).toBe('succeeded');
    expect(result.plan.summary).toMatchObject({ create: 0, change: 3, replace: 0, delete: 0 });
    expect(virsh('domuuid', `${P}-vm1`).trim()).toBe(uuid);
    expect(virsh('dumpxml', '--inactive', `${P}-vm1`)).toMatch(/<memory unit='KiB'>98304<\/memory>/);
    expect(virsh('vol-info', '--bytes', '--pool', `${P}-pool`, `${P}-data.img`)).toMatch(/Capacity:\s+50331648 bytes/);
    expect(virsh('net-dumpxml', `${P}-net`)).toContain("mac='52:54:00:aa:00:02'");
    await oracle('memory, capacity, DHCP host updated');
    expect((await apply({ vm1Memory: '96MiB', dataCapacity: '48MiB', extraHosts: '\n      - {mac: "52:54:00:aa:00:02", ip: 10.231.0.12}' })).plan.noop).toBe(true);
    await oracle('noop after updates');
  });

  it('replaces a volume whose format changes, restarting the VM that uses it', async () => {
    const result = await apply({ rootFormat: 'raw' }, true);
    expect(result.outcome).toBe('succeeded');
    const c = result.plan.changes.find((x) => x.name === `${P}-root`)!;
    expect(c.action).toBe('replace');
    const inv = inventory(P);
    expect(inv.volumes).toContain(`${P}-pool/${P}-root.img`);
    expect(inv.volumes).not.toContain(`${P}-pool/${P}-root.qcow2`);
    expect(inv.runningDomains).toContain(`${P}-vm1`);
    expect(virsh('dumpxml', `${P}-vm1`)).toContain(`${POOL_DIR}/${P}-root.img`);
    expect(orphans(P, {
      ...declaredAll,
      volumes: [`${P}-pool/${P}-base.qcow2`, `${P}-pool/${P}-data.img`, `${P}-pool/${P}-root.img`],
      files: [`${POOL_DIR}/${P}-base.qcow2`, `${POOL_DIR}/${P}-data.img`, `${POOL_DIR}/${P}-root.img`],
    })).toEqual([]);
    await oracle('root replaced by a raw volume');
    expect((await apply({}, true)).outcome).toBe('succeeded'); // and back
    await oracle('root back to a clone');
  });

  it('stops a VM declared stopped and prunes a VM removed from the manifests', async () => {
    const result = await apply({ vm1State: 'stopped', withVm2: false });
    expect(result.outcome).toBe('succeeded');
    expect(result.plan.changes.map((c) => `${c.action} ${c.name}`).sort()).toEqual([`delete ${P}-vm2`, `update ${P}-vm1`]);
    const inv = inventory(P);
    expect(inv.domains).toEqual([`${P}-vm1`]);
    expect(inv.runningDomains).toEqual([]);
    await oracle('vm1 stopped, vm2 pruned');
    expect((await apply()).outcome).toBe('succeeded');
    expect(inventory(P).runningDomains).toEqual([`${P}-vm1`]);
    await oracle('vm1 running, vm2 back');
  });

  it('corrects drift: a domain destroyed, a network destroyed, a volume deleted outside virtform', async () => {
    virsh('destroy', `${P}-vm1`);
    virsh('net-destroy', `${P}-net`);
    virsh('vol-delete', '--pool', `${P}-pool`, `${P}-data.img`);
    const dry = await runCli(['reconcile', mdir, '--db', dbPath, '--dry-run', '--detailed-exitcode']);
    expect(dry.code).toBe(3);
    expect(dry.stdout).toMatch(/VirtualMachine\/vftest-rec-vm1 will be updated in place: domain is stopped \(drift\)/);
    expect(dry.stdout).toMatch(/Network\/vftest-rec-net will be updated in place: network is inactive \(drift\)/);
    expect(dry.stdout).toMatch(/Volume\/vftest-rec-data will be created: recorded but missing on the host \(drift\)/);
    const applied = await runCli(['reconcile', mdir, '--db', dbPath]);
    expect(applied.code).toBe(0);
    const inv = inventory(P);
    expect(inv.runningDomains).toEqual([`${P}-vm1`]);
    expect(inv.activeNetworks).toEqual([`${P}-net`]);
    expect(inv.volumes).toContain(`${P}-pool/${P}-data.img`);
    expect(orphans(P, declaredAll)).toEqual([]);
    await oracle('drift corrected');
  });

  it('refuses to touch a foreign object that collides with a manifest; adopts it with metadata.adopt', async () => {
    const foreign = `${P}-foreign`;
    const xml = join(work, 'foreign.xml');
    const { writeFileSync } = await import('node:fs');
    writeFileSync(xml, `<network><name>${foreign}</name><ip address='10.233.0.1' prefix='24'/></network>`);
    virsh('net-define', xml);
    const before = virsh('net-dumpxml', foreign);
    const extra = `---
apiVersion: virtform.dev/v1
kind: Network
metadata: {name: ${foreign}__ADOPT__}
spec: {mode: isolated, cidr: 10.242.0.0/24}
`;
    const f = files();
    writeManifests(mdir, { ...f, 'foreign.yaml': extra.replace('__ADOPT__', '') });
    const r = await runCli(['reconcile', mdir, '--db', dbPath]);
    expect(r.code).toBe(1);
    expect(r.stdout).toMatch(/Network\/vftest-rec-foreign conflicts and will not be touched: .*not managed by virtform/);
    expect(virsh('net-dumpxml', foreign)).toBe(before);
    expect(virshOk('net-info', foreign)).toBe(true);

    writeManifests(mdir, { ...f, 'foreign.yaml': extra.replace('__ADOPT__', ', adopt: true') });
    const adopted = await runCli(['reconcile', mdir, '--db', dbPath]);
    expect(adopted.code).toBe(0);
    expect(virsh('net-dumpxml', foreign)).toContain("address='10.242.0.1'");
    await oracle('foreign network adopted');
    // Now owned: removing it from the manifests prunes it.
    writeManifests(mdir, f);
    await expectOk(['reconcile', mdir, '--db', dbPath]);
    expect(virshOk('net-info', foreign)).toBe(false);
    await oracle('adopted network pruned');
  });

  it('retries an injected start failure, reports it with exit 1, and the rerun converges', async () => {
    virsh('destroy', `${P}-vm1`);
    const failed = await runCli(['reconcile', mdir, '--db', dbPath, '--retry-delay', '10'], { VIRTFORM_TEST_FAIL: `startDomain:${P}-vm1` });
    expect(failed.code).toBe(1);
    expect(failed.stdout).toMatch(/↻ start domain VirtualMachine\/vftest-rec-vm1: attempt 1 failed/);
    expect(failed.stdout).toMatch(/✗ start domain VirtualMachine\/vftest-rec-vm1 failed after 3 attempt\(s\)/);
    const status = JSON.parse((await runCli(['status', '--db', dbPath, '--json'])).stdout) as { resources: { name: string; status: string; lastError: string; attempts: number }[] };
    const vm = status.resources.find((r) => r.name === `${P}-vm1`)!;
    expect(vm.status).toBe('failed');
    expect(vm.lastError).toMatch(/injected failure/);
    expect(vm.attempts).toBe(3);
    expect(orphans(P, declaredAll)).toEqual([]);
    await expectOk(['reconcile', mdir, '--db', dbPath]);
    expect(inventory(P).runningDomains).toEqual([`${P}-vm1`]);
    await oracle('rerun after injected start failures');
  });

  it('leaves no volume file behind when an image import fails, and finishes the rest', async () => {
    const { writeFileSync } = await import('node:fs');
    const img = join(work, 'not-an-image.qcow2');
    // A qcow2 header that passes virtform's own header check (no backing file, size 0) but that
    // qemu-img can't read (version 0xffffffff): a real failure, after libvirt created the volume.
    writeFileSync(img, Buffer.concat([Buffer.from('QFI\xfb', 'latin1'), Buffer.alloc(4, 0xff), Buffer.alloc(56, 0)]));
    const bad = `---
apiVersion: virtform.dev/v1
kind: Volume
metadata: {name: ${P}-import}
spec: {pool: ${P}-pool, capacity: 16MiB, format: raw, source: ${img}}
`;
    writeManifests(mdir, { ...files(), 'import.yaml': bad });
    const r = await runCli(['reconcile', mdir, '--db', dbPath, '--retry-delay', '10', '--max-attempts', '2']);
    expect(r.code).toBe(1);
    // An unreadable image is invalid input, not a transient failure: no retry.
    expect(r.stdout).toMatch(/✗ create volume Volume\/vftest-rec-import failed after 1 attempt\(s\).*cannot read source image/);
    expect(orphans(P, declaredAll)).toEqual([]); // no vftest-rec-import.img file left
    writeManifests(mdir, files());
    await expectOk(['reconcile', mdir, '--db', dbPath]);
    await oracle('import dropped');
  });

  it('issue #12 item 1: a NIC without a declared MAC keeps its MAC when its VM is redefined', async () => {
    await oracle('before vm2 is redefined'); // remembers vm2's generated MAC
    const r = await apply({ vm2Memory: '96MiB' });
    expect(r.outcome).toBe('succeeded');
    expect(r.plan.changes.map((c) => `${c.action} ${c.name}`)).toEqual([`update ${P}-vm2`]);
    await oracle('vm2 redefined');
    expect((await apply()).outcome).toBe('succeeded');
    await oracle('vm2 redefined back');
  });

  it('issue #12 item 3: replacing a base volume does not leave its clone on the new, empty base', async () => {
    await oracle('before the base is replaced'); // remembers which base file the clone sits on
    const held = await apply({ baseCapacity: '32MiB' }); // a shrink replaces the volume: data loss, held
    expect(held.outcome).toBe('held');
    const r = await apply({ baseCapacity: '32MiB' }, true);
    expect(r.outcome).toBe('succeeded');
    expect(r.plan.changes.find((c) => c.name === `${P}-base`)?.action).toBe('replace');
    expect(r.plan.changes.find((c) => c.name === `${P}-root`)?.action).toBe('replace'); // the clone with it
    await oracle('base replaced');
    // Back to the lab with a root clone made afresh on the current base (raw in between: a base
    // that a running VM's clone sits on cannot be grown, QEMU holds its lock).
    expect((await apply({ rootFormat: 'raw', baseCapacity: '32MiB' }, true)).outcome).toBe('succeeded');
    expect((await apply({}, true)).outcome).toBe('succeeded');
    await oracle('root cloned again');
  });

  it('issue #12 item 5: adopting an ACTIVE foreign network takes over its whole definition, live too, and marks it', async () => {
    const foreign = `${P}-foreign2`;
    const xml = join(work, 'foreign2.xml');
    const { writeFileSync } = await import('node:fs');
    writeFileSync(xml, `<network><name>${foreign}</name><ip address='10.243.0.1' prefix='24'><dhcp><range start='10.243.0.10' end='10.243.0.20'/></dhcp></ip></network>`);
    virsh('net-define', xml);
    virsh('net-start', foreign);
    const f = files();
    writeManifests(mdir, { ...f, 'foreign.yaml': `apiVersion: virtform.dev/v1
kind: Network
metadata: {name: ${foreign}, adopt: true}
spec: {mode: isolated, cidr: 10.243.0.0/24, dhcp: {start: 10.243.0.100, end: 10.243.0.199}, autostart: false}
` });
    await expectOk(['reconcile', mdir, '--db', dbPath]);
    await oracle('active foreign network adopted');
    writeManifests(mdir, f);
    await expectOk(['reconcile', mdir, '--db', dbPath]);
    expect(virshOk('net-info', foreign)).toBe(false);
  });

  it('issue #12 item 7: a network virtform starts again puts the running VMs\' taps back on its bridge', async () => {
    expect(inventory(P).runningDomains).toEqual([`${P}-vm1`]);
    virsh('net-destroy', `${P}-net`); // the VM keeps running; its tap loses the bridge
    const r = await apply();
    expect(r.outcome).toBe('succeeded');
    await oracle('network started again under a running VM');
    // Leave fresh taps behind for the scenarios after this one.
    virsh('destroy', `${P}-vm1`);
    expect((await apply()).outcome).toBe('succeeded');
    await oracle('vm1 started again');
  });

  it('--domain-type qemu defines and starts a TCG domain even where KVM is offered; kvm where it is not offered fails clearly', async () => {
    const dir = join(work, 'tcg');
    const db = join(work, 'tcg.db');
    const vm = `${P}-tcg`;
    writeManifests(dir, { 'vm.yaml': `apiVersion: virtform.dev/v1\nkind: VirtualMachine\nmetadata: {name: ${vm}}\nspec: {vcpus: 1, memory: 64MiB}\n` });
    const bad = await runCli(['reconcile', dir, '--db', db, '--domain-type', 'xen']);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/--domain-type.*xen.*(auto, kvm, qemu)/s);
    expect(virshOk('dominfo', vm)).toBe(false);

    await expectOk(['reconcile', dir, '--db', db, '--domain-type', 'qemu']);
    expect(virsh('dumpxml', vm)).toMatch(/^<domain type='qemu'/);
    expect(virsh('domstate', vm).trim()).toBe('running');
    await oracle('TCG domain', dir);
    await expectOk(['reconcile', writeManifests(join(work, 'tcg-none'), {}), '--db', db, '--allow-empty', '--allow-data-loss', '--max-deletions', 'all']);
    expect(virshOk('dominfo', vm)).toBe(false);

    // libvirt's test driver offers no kvm: the define step fails at once (not retried) and says why.
    const testDb = join(work, 'tcg-test.db');
    const r = await runCli(['reconcile', dir, '--db', testDb, '--uri', 'test+unix:///default', '--domain-type', 'kvm', '--json']);
    expect(r.code).toBe(1);
    const steps = (JSON.parse(r.stdout) as { steps: { op: string; status: string; attempts: number; error: string | null }[] }).steps;
    expect(steps).toContainEqual(expect.objectContaining({
      op: 'vm.define', status: 'failed', attempts: 1, error: expect.stringMatching(/domain type 'kvm' was asked for, but the host offers 'qemu'/),
    }));
  });

  it('tears everything down with --allow-empty --allow-data-loss, refuses an empty folder without --allow-empty, holds attached disks without --allow-data-loss', async () => {
    writeManifests(mdir, {});
    const refused = await runCli(['reconcile', mdir, '--db', dbPath]);
    expect(refused.code).toBe(2);
    expect(refused.stderr).toMatch(/no manifests found/);
    expect(inventory(P).domains.length).toBe(2);
    const held = await runCli(['reconcile', mdir, '--db', dbPath, '--allow-empty', '--max-deletions', 'all']);
    expect(held.code, `${held.stdout}\n${held.stderr}`).toBe(1);
    expect(held.stdout).toMatch(/! data loss: Volume\/vftest-rec-data file .*vftest-rec-data\.img \(32MiB\): attached to VirtualMachine\/vftest-rec-vm1/);
    expect(held.stdout).toContain('To consent to the data loss, run again with --allow-data-loss.');
    const afterHold = inventory(P);
    expect(afterHold.domains).toEqual([`${P}-vm1`]); // vm2 has no disks: deleted
    expect(afterHold.files).toEqual(declaredAll.files);
    const torn = await runCli(['reconcile', mdir, '--db', dbPath, '--allow-empty', '--allow-data-loss', '--max-deletions', 'all']);
    expect(torn.code).toBe(0);
    const inv = inventory(P);
    expect([...inv.domains, ...inv.networks, ...inv.pools, ...inv.files]).toEqual([]);
    const { plan } = await planOnly(host, store, await desiredFrom(mdir));
    expect(plan.noop).toBe(true);
  });
});
