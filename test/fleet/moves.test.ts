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
import { copyFileSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { execFileSync } from 'node:child_process';
import { afterAll, beforeAll } from 'vitest';
import { writeManifests } from '../support/manifests.js';
import { ROOT } from '../support/cli.js';
import { suiteNames } from '../support/names.js';
import { TINY_CMDLINE } from '../support/guest.js';
import { runMove, type MoveRun } from './moves-support.js';
import { useMoveHosts } from './moves-hosts.js';

const N = suiteNames('moves');
const P = N.base;
const POOL = N.poolPath();
const H = useMoveHosts('m', N.prefix);
let work = '';
let guest = '';
beforeAll(() => {
  work = mkdtempSync(join(tmpdir(), N.prefix));
  // The tiny guest (kernel + initramfs) at the same path for both hosts (/tmp is not private to them).
  const built = execFileSync('bash', [join(ROOT, 'scripts/build-tiny-guest.sh')], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'], timeout: 280_000 }).trim();
  guest = join(work, 'guest');
  mkdirSync(guest, { recursive: true });
  for (const f of ['vmlinuz', 'initrd.img']) copyFileSync(join(built, f), join(guest, f));
}, 300_000);
afterAll(() => {
  if (work) rmSync(work, { recursive: true, force: true });
});

const file = (vol: string, ext = 'qcow2'): string => `${POOL}/${P}-${vol}.${ext}`;

function manifests(o: { vms: { name: string; disks: string[]; running?: boolean }[]; volumes: { name: string; format?: string; capacity?: string }[] }): Record<string, string> {
  const docs = [`apiVersion: virtform.dev/v1
kind: StoragePool
metadata: {name: ${P}-pool}
spec: {path: ${POOL}}`];
  for (const v of o.volumes) {
    docs.push(`apiVersion: virtform.dev/v1
kind: Volume
metadata: {name: ${P}-${v.name}}
spec: {pool: ${P}-pool, capacity: ${v.capacity ?? '1GiB'}, format: ${v.format ?? 'qcow2'}}`);
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

function run(dir: string, vmHost: string, extra: Partial<MoveRun> = {}) {
  return runMove({ dir, db: join(work, 'state.db'), hosts: H.uris, vmHost, ...extra });
}

/** Random data and zeros written into a qcow2 file on host `id` (a sparse 1 GiB volume with ~12 MiB of data). */
function writeData(id: string, path: string): void {
  H.sh(id, `set -e; r=$(mktemp); dd if=/dev/urandom of=$r bs=1M count=8 status=none
    qemu-io -f qcow2 -c "write -s $r 64M 8M" -c "write -P 0x5a 700M 4M" -c "write -z 701M 1M" '${path}' >/dev/null; rm -f $r`);
}

describe('cold moves between two hosts', () => {
  it('moves a stopped VM and its qcow2 volume: same bytes on b, defined on b only, gone from a; the brake counts one move', async () => {
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
    expect(H.domains('a', N.prefix)).toEqual([]);
    expect(H.domains('b', N.prefix)).toEqual([`${P}-vm1`]);
    expect(H.virsh('b', 'domblklist', `${P}-vm1`)).toContain(file('disk1'));
    // Converged: a second run plans nothing.
    const again = await run(dir, 'b', { dryRun: true });
    expect(again.outcome, JSON.stringify(again.changes)).toBe('noop');
  });

  it('a VM with snapshots is not moved: a conflict on both hosts, nothing done', async () => {
    const dir = writeManifests(join(work, 'm2'), manifests({ vms: [{ name: 'vm2', disks: ['disk2'] }], volumes: [{ name: 'disk2' }] }));
    expect((await run(dir, 'a')).outcome).toBe('succeeded');
    writeData('a', file('disk2'));
    const before = H.sha256('a', file('disk2'));
    H.virsh('a', 'snapshot-create-as', `${P}-vm2`, 'snap1');
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
    expect((await run(dir, 'b')).outcome).toBe('succeeded');
    expect(H.sha256('b', file('disk2'))).toBe(before);
    expect(H.domains('a', `${P}-vm2`)).toEqual([]);
  });

  it('a volume shared with a VM that does not move is a conflict; moving both moves it', async () => {
    const both = manifests({ vms: [{ name: 'vm3', disks: ['shared'] }, { name: 'vm4', disks: ['shared'] }], volumes: [{ name: 'shared', format: 'raw', capacity: '64MiB' }] });
    const dir = writeManifests(join(work, 'm3'), both);
    expect((await run(dir, 'a')).outcome).toBe('succeeded');
    // Only vm3 declared on b; vm4 stays on a (built by hand: vm4 and the volume on a, vm3 on b).
    const split = writeManifests(join(work, 'm3b'), manifests({ vms: [{ name: 'vm3', disks: ['shared'] }], volumes: [{ name: 'shared', format: 'raw', capacity: '64MiB' }] }));
    const stay = writeManifests(join(work, 'm3a'), manifests({ vms: [{ name: 'vm4', disks: ['shared'] }], volumes: [{ name: 'shared', format: 'raw', capacity: '64MiB' }] }));
    const { loadManifests } = await import('../../src/manifest/index.js');
    const { buildDesired, mergeDesired } = await import('../../src/reconcile/desired.js');
    const { planOnly } = await import('../../src/reconcile/engine.js');
    const { openHost } = await import('../../src/reconcile/adapters/libvirt-host.js');
    const { openStateStore } = await import('../../src/state/index.js');
    const la = await loadManifests(stay);
    const lb = await loadManifests(split);
    if (!la.ok || !lb.ok) throw new Error('manifests');
    const desired = mergeDesired([buildDesired(la.desired, 'a'), buildDesired(lb.desired, 'b')]);
    const ports = new Map([['a', await openHost(H.uris.a!)], ['b', await openHost(H.uris.b!)]]);
    const store = await openStateStore(join(work, 'state.db'));
    try {
      const { plan } = await planOnly(ports, store, desired);
      // The volume is declared on both hosts: not a move (a copy would leave vm4 without it), vm3 moves on its own.
      expect(plan.changes.find((c) => c.key === `a/Volume/${P}-shared`)).toBeUndefined();
      expect(plan.steps.some((s) => s.key === `a/Volume/${P}-shared` && s.op.op === 'volume.delete')).toBe(false);
    } finally {
      for (const p of ports.values()) await p.close();
      await store.close();
    }
    // Both declared on b: they move together, the volume once.
    const r = await run(dir, 'b');
    expect(r.outcome, JSON.stringify(r)).toBe('succeeded');
    expect(r.brake?.moves?.length).toBe(2);
    expect(H.domains('b', `${P}-vm`).filter((d) => d.endsWith('vm3') || d.endsWith('vm4'))).toEqual([`${P}-vm3`, `${P}-vm4`]);
    expect(H.exists('a', file('shared', 'img'))).toBe(false);
    expect(H.exists('b', file('shared', 'img'))).toBe(true);
  });

  it('moves a running VM (tiny guest under TCG): it runs on b afterwards', async () => {
    const dir = writeManifests(join(work, 'm4'), manifests({ vms: [{ name: 'vm5', disks: ['disk5'], running: true }], volumes: [{ name: 'disk5', capacity: '256MiB' }] }));
    expect((await run(dir, 'a')).outcome).toBe('succeeded');
    expect(H.virsh('a', 'domstate', `${P}-vm5`).trim()).toBe('running');
    const r = await run(dir, 'b');
    expect(r.outcome, JSON.stringify(r)).toBe('succeeded');
    expect(r.steps).toContain(`a/VirtualMachine/${P}-vm5:vm.stop`);
    expect(H.virsh('b', 'domstate', `${P}-vm5`).trim()).toBe('running');
    expect(H.domains('a', `${P}-vm5`)).toEqual([]);
    expect(H.exists('a', file('disk5'))).toBe(false);
  });
});
