/**
 * Cold moves at the engine level, on two real libvirt hosts (namespace hosts, qemu+tcp): a VM
 * recorded on host a and declared on host b (the desired state built per host: nothing else decides
 * where it goes) is moved, never deleted and created: stopped on a, its volumes copied through
 * libvirt's sparse download/upload streams, hashed on the way and verified by reading b's copy back,
 * defined (and started) on b, then undefined on a and its volumes deleted there. The bytes are
 * compared by reading both files inside the hosts' mount namespaces. Also: a VM with snapshots is a
 * conflict (nothing is done), a volume shared with a VM that stays is a conflict, and the brake
 * counts a move as one move, not as deletions.
 */
import { describe, expect, it } from 'vitest';
import { join } from 'node:path';
import { chmodSync, copyFileSync, mkdirSync, rmSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { afterAll, beforeAll } from 'vitest';
import { writeManifests } from '../support/manifests.js';
import { ROOT } from '../support/cli.js';
import { suiteNames } from '../support/names.js';
import { TINY_CMDLINE } from '../support/guest.js';
import { runMove, type MoveRun } from './moves-support.js';
import { useMoveHosts } from './moves-hosts.js';
import { makeTempDir } from '../support/temp-dirs.js';

const N = suiteNames('moves');
const P = N.base;
/** Each scenario has its own pool (and state DB): `${P}-<tag>` at N.poolPath(tag), the same path on both hosts. */
let POOL = N.poolPath('m1');
let POOLNAME = `${P}-m1`;
function scenario(tag: string): void {
  POOL = N.poolPath(tag);
  POOLNAME = `${P}-${tag}`;
}
const H = useMoveHosts('m', N.prefix);
let work = '';
let guest = '';
beforeAll(() => {
  work = makeTempDir(N.prefix);
  // The tiny guest (kernel + initramfs) at the same path for both hosts (/tmp is not private to them).
  const built = execFileSync('bash', [join(ROOT, 'scripts/build-tiny-guest.sh')], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'], timeout: 280_000 }).trim();
  guest = join(work, 'guest');
  mkdirSync(guest, { recursive: true });
  chmodSync(work, 0o755); // QEMU (not root) opens the kernel
  for (const f of ['vmlinuz', 'initrd.img']) copyFileSync(join(built, f), join(guest, f));
}, 300_000);
afterAll(() => {
  if (work) rmSync(work, { recursive: true, force: true });
});

const file = (vol: string, ext = 'qcow2'): string => `${POOL}/${P}-${vol}.${ext}`;

function manifests(o: { vms: { name: string; disks: string[]; running?: boolean }[]; volumes: { name: string; format?: string; capacity?: string; backing?: string }[] }): Record<string, string> {
  const docs = [`apiVersion: virtform.dev/v1
kind: StoragePool
metadata: {name: ${POOLNAME}}
spec: {path: ${POOL}}`];
  for (const v of o.volumes) {
    docs.push(`apiVersion: virtform.dev/v1
kind: Volume
metadata: {name: ${P}-${v.name}}
spec: {pool: ${POOLNAME}, capacity: ${v.capacity ?? '1GiB'}, format: ${v.format ?? 'qcow2'}${v.backing ? `, backingVolume: ${P}-${v.backing}` : ''}}`);
  }
  for (const vm of o.vms) {
    docs.push(`apiVersion: virtform.dev/v1
kind: VirtualMachine
metadata: {name: ${P}-${vm.name}}
spec:
  vcpus: 1
  memory: 96MiB
  domainType: qemu
  state: ${vm.running ? 'running' : 'stopped'}
  disks: [${vm.disks.map((d) => `{volume: ${P}-${d}}`).join(', ')}]${vm.running ? `
  boot:
    kernel: ${guest}/vmlinuz
    initrd: ${guest}/initrd.img
    cmdline: "${TINY_CMDLINE}"` : ''}`);
  }
  return { 'all.yaml': `${docs.join('\n---\n')}\n` };
}

/** The plan with part of the manifests on each host (folder per host id), against the state DB `db`. */
async function planSplit(db: string, dirs: Record<string, string>) {
  const { loadManifests } = await import('../../src/manifest/index.js');
  const { buildDesired, mergeDesired } = await import('../../src/reconcile/desired.js');
  const { planOnly } = await import('../../src/reconcile/engine.js');
  const { openHost } = await import('../../src/reconcile/adapters/libvirt-host.js');
  const { openStateStore } = await import('../../src/state/index.js');
  const parts = [];
  for (const [id, d] of Object.entries(dirs)) {
    const l = await loadManifests(d);
    if (!l.ok) throw new Error(`manifests invalid: ${l.errors.map((e) => e.message).join('; ')}`);
    parts.push(buildDesired(l.desired, id));
  }
  const ports = new Map([['a', await openHost(H.uris.a!)], ['b', await openHost(H.uris.b!)]]);
  const store = await openStateStore(db);
  try {
    return await planOnly(ports, store, mergeDesired(parts));
  } finally {
    for (const p of ports.values()) await p.close();
    await store.close();
  }
}

async function setUp(dir: string): Promise<void> {
  const r = await run(dir, 'a');
  expect(r.outcome, JSON.stringify(r)).toBe('succeeded');
}

function run(dir: string, vmHost: string, extra: Partial<MoveRun> = {}) {
  // One state DB per scenario (its folder's): scenarios do not prune each other.
  return runMove({ dir, db: `${dir}.db`, hosts: H.uris, vmHost, ...extra });
}

/** Random data and zeros written into a qcow2 file on host `id` (~12 MiB of data in a sparse volume of at least 128 MiB). */
function writeData(id: string, path: string): void {
  H.sh(id, `set -e; r=$(mktemp); dd if=/dev/urandom of=$r bs=1M count=8 status=none
    qemu-io -f qcow2 -c "write -s $r 16M 8M" -c "write -P 0x5a 100M 4M" -c "write -z 101M 1M" '${path}' >/dev/null; rm -f $r`);
}

describe('cold moves between two hosts', () => {
  it('moves a stopped VM and its qcow2 volume: same bytes on b, defined on b only, gone from a; the brake counts one move', async () => {
    scenario('m1');
    const dir = writeManifests(join(work, 'm1'), manifests({ vms: [{ name: 'vm1', disks: ['disk1'] }], volumes: [{ name: 'disk1' }] }));
    const first = await run(dir, 'a');
    expect(first.outcome, JSON.stringify(first)).toBe('succeeded');
    writeData('a', file('disk1'));
    const before = H.sha256('a', file('disk1'));
    expect(before).toMatch(/^[0-9a-f]{64}$/);

    const plan = await run(dir, 'b', { dryRun: true, maxDeletions: 0 });
    expect(plan.outcome).toBe('planned');
    expect(plan.summary.move).toBe(2);
    expect(plan.summary.delete).toBe(0);
    expect(plan.brake?.moves).toEqual([`VirtualMachine/${P}-vm1: a → b`]);
    expect(plan.brake?.deletions).toEqual([]);
    expect(plan.brake?.braked).toBe(false);
    expect(plan.steps).toEqual(expect.arrayContaining([
      `b/Volume/${P}-disk1:volume.moveCopy`, `b/Volume/${P}-disk1:volume.moveVerify`,
      `a/Volume/${P}-disk1:volume.delete`, `a/VirtualMachine/${P}-vm1:vm.delete`, `b/VirtualMachine/${P}-vm1:vm.define`,
    ]));
    const copy = plan.changes.find((c) => c.key === `b/Volume/${P}-disk1`)!;
    expect(copy.reason).toMatch(/moves from host a/);

    // --max-deletions 0: a move deletes nothing the brake counts.
    const moved = await run(dir, 'b', { maxDeletions: 0 });
    expect(moved.outcome, JSON.stringify(moved)).toBe('succeeded');
    expect(moved.held).toEqual([]);
    expect(H.sha256('b', file('disk1'))).toBe(before);
    expect(H.exists('a', file('disk1'))).toBe(false);
    expect(H.domains('a', `${P}-vm1`)).toEqual([]);
    expect(H.domains('b', `${P}-vm1`)).toEqual([`${P}-vm1`]);
    expect(H.virsh('b', 'domblklist', `${P}-vm1`)).toContain(file('disk1'));
    // Converged: a second run plans nothing.
    const again = await run(dir, 'b', { dryRun: true });
    expect(again.outcome, JSON.stringify(again.changes)).toBe('noop');
  });

  it('a VM with snapshots is not moved: a conflict on both hosts, nothing done', async () => {
    scenario('m2');
    const dir = writeManifests(join(work, 'm2'), manifests({ vms: [{ name: 'vm2', disks: ['disk2'] }], volumes: [{ name: 'disk2' }] }));
    await setUp(dir);
    writeData('a', file('disk2'));
    H.virsh('a', 'snapshot-create-as', `${P}-vm2`, 'snap1');
    const before = H.sha256('a', file('disk2'));
    const r = await run(dir, 'b');
    expect(r.outcome).toBe('failed');
    const vm = r.changes.find((c) => c.key === `b/VirtualMachine/${P}-vm2`)!;
    expect(vm.action).toBe('conflict');
    expect(vm.reason).toMatch(/1 snapshot on host a: a VM with snapshots is not moved/);
    const disk = r.changes.find((c) => c.key === `b/Volume/${P}-disk2`)!;
    expect(disk.action).toBe('conflict');
    expect(disk.reason).toMatch(/moves with b\/VirtualMachine\/.*vm2, which cannot move/);
    expect(r.steps.filter((s) => s.includes('vm2') || s.includes('disk2'))).toEqual([]);
    expect(H.domains('a', `${P}-vm2`)).toEqual([`${P}-vm2`]);
    expect(H.sha256('a', file('disk2'))).toBe(before);
    expect(H.exists('b', file('disk2'))).toBe(false);
    // Without the snapshot it moves.
    H.virsh('a', 'snapshot-delete', `${P}-vm2`, 'snap1');
    const now = H.sha256('a', file('disk2'));
    expect((await run(dir, 'b')).outcome).toBe('succeeded');
    expect(H.sha256('b', file('disk2'))).toBe(now);
    expect(H.domains('a', `${P}-vm2`)).toEqual([]);
  });

  it('a qcow2 overlay moves only with the same base on b: moving with it (base copied first), else a conflict', async () => {
    const vols = [{ name: 'base', capacity: '128MiB' }, { name: 'c1', capacity: '128MiB', backing: 'base' }, { name: 'c2', capacity: '128MiB', backing: 'base' }];
    scenario('m3');
    const dir = writeManifests(join(work, 'm3'), manifests({ vms: [{ name: 'vm3', disks: ['c1'] }, { name: 'vm4', disks: ['c2'] }], volumes: vols }));
    const db = `${dir}.db`;
    await setUp(dir);
    writeData('a', file('c1'));
    const c1 = H.sha256('a', file('c1'));
    const base = H.sha256('a', file('base'));
    // vm3 to b, vm4 stays on a: the base stays declared on a (vm4's clone needs it) and would be a
    // new, empty file on b: the clone cannot move (nor vm3).
    const onA = writeManifests(join(work, 'm3a'), manifests({ vms: [{ name: 'vm4', disks: ['c2'] }], volumes: [vols[0]!, vols[2]!] }));
    const onB = writeManifests(join(work, 'm3b'), manifests({ vms: [{ name: 'vm3', disks: ['c1'] }], volumes: [vols[0]!, vols[1]!] }));
    const { plan } = await planSplit(db, { a: onA, b: onB });
    const clone = plan.changes.find((c) => c.key === `b/Volume/${P}-c1`)!;
    expect(clone.action).toBe('conflict');
    expect(clone.reason).toMatch(/qcow2 overlay of .*base\.qcow2 .*whose content on host b would not be the same/);
    expect(plan.changes.find((c) => c.key === `b/VirtualMachine/${P}-vm3`)!.action).toBe('conflict');
    expect(plan.changes.find((c) => c.key === `a/VirtualMachine/${P}-vm3`)!.action).toBe('conflict');
    expect(plan.steps.filter((s) => s.key.includes('vm3') || s.key.includes('c1'))).toEqual([]);
    // Both VMs to b: the base moves too, copied before the clone; the clone still reads it on b.
    const r = await run(dir, 'b');
    expect(r.outcome, JSON.stringify(r)).toBe('succeeded');
    expect(r.brake?.moves?.length).toBe(2);
    expect(H.sha256('b', file('c1'))).toBe(c1);
    expect(H.sha256('b', file('base'))).toBe(base);
    expect(H.files('a', POOL)).toEqual([]);
    expect(H.sh('b', `qemu-img info -U --output=json '${file('c1')}'`)).toContain(file('base'));
    expect(H.sh('b', `qemu-img check -U '${file('c1')}' >/dev/null && echo ok`).trim()).toBe('ok');
  });

  it('moves a running VM (tiny guest under TCG): it runs on b afterwards', async () => {
    scenario('m4');
    const dir = writeManifests(join(work, 'm4'), manifests({ vms: [{ name: 'vm5', disks: ['disk5'], running: true }], volumes: [{ name: 'disk5', capacity: '256MiB' }] }));
    await setUp(dir);
    expect(H.virsh('a', 'domstate', `${P}-vm5`).trim()).toBe('running');
    const r = await run(dir, 'b');
    expect(r.outcome, JSON.stringify(r)).toBe('succeeded');
    expect(r.steps).toContain(`a/VirtualMachine/${P}-vm5:vm.stop`);
    expect(H.virsh('b', 'domstate', `${P}-vm5`).trim()).toBe('running');
    expect(H.domains('a', `${P}-vm5`)).toEqual([]);
    expect(H.exists('a', file('disk5'))).toBe(false);
  });

  it('--move-bandwidth limits the copy, with progress events; throughput of a sparse 1 GiB volume with 50 MiB of data', async () => {
    scenario('m5');
    const dir = writeManifests(join(work, 'm5'), manifests({ vms: [{ name: 'vm6', disks: ['big'] }], volumes: [{ name: 'big', format: 'raw', capacity: '1GiB' }] }));
    await setUp(dir);
    const raw = file('big', 'img');
    H.sh('a', `dd if=/dev/urandom of='${raw}' bs=1M count=50 seek=300 conv=notrunc,sparse status=none`);
    const before = H.sha256('a', raw);
    const MiB = 1024 * 1024;
    const free = await run(dir, 'b');
    expect(free.outcome, JSON.stringify(free)).toBe('succeeded');
    expect(H.sha256('b', raw)).toBe(before);
    const copyMs = free.ms[`b/Volume/${P}-big:volume.moveCopy`]!;
    const verifyMs = free.ms[`b/Volume/${P}-big:volume.moveVerify`]!;
    const rate = (ms: number): string => `${(50 / (ms / 1000)).toFixed(1)} MiB/s of data, ${(1024 / (ms / 1000)).toFixed(0)} MiB/s logical`;
    console.log(`[moves] sparse 1 GiB raw, 50 MiB data: copy ${copyMs} ms (${rate(copyMs)}); verify ${verifyMs} ms; copy + verify ${copyMs + verifyMs} ms (${rate(copyMs + verifyMs)})`);
    // Back to a at 20 MiB/s: 50 MiB of data take at least 2.5 s; progress is reported meanwhile.
    const limited = await run(dir, 'a', { moveBandwidth: 20 * MiB });
    expect(limited.outcome, JSON.stringify(limited)).toBe('succeeded');
    expect(H.sha256('a', raw)).toBe(before);
    const limitedMs = limited.ms[`a/Volume/${P}-big:volume.moveCopy`]!;
    console.log(`[moves] the same at --move-bandwidth 20MiB: copy ${limitedMs} ms`);
    expect(limitedMs).toBeGreaterThanOrEqual(2400);
    expect(limited.progress).toBeGreaterThan(2);
  });
});
