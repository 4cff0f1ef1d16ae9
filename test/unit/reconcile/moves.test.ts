/**
 * Cold moves on two fake hosts (the engine alone: the desired state names the hosts). A VM and its
 * volume recorded on a and declared on b: the plan moves them (copy, verify, define on b; undefine
 * and delete on a after b), across hosts in that order; the data rule does not hold the source's
 * deletion and the brake counts one move, not deletions; the bytes arrive; a VM with snapshots is a
 * conflict on both hosts; a copy that does not verify keeps the source.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { join } from 'node:path';
import { rmSync } from 'node:fs';
import { Readable } from 'node:stream';
import { FakeHost } from '../../support/fake-host.js';
import { tempDir, writeManifests } from '../../support/manifests.js';
import { loadManifests, type DesiredState } from '../../../src/manifest/index.js';
import { openStateStore, type StateStore } from '../../../src/state/index.js';
import { planOnly, reconcile } from '../../../src/reconcile/engine.js';
import { buildDesired, mergeDesired, type Desired } from '../../../src/reconcile/desired.js';

const P = 'vftest-mv';
const FAST_RETRY = { maxAttempts: 1, baseDelayMs: 1, maxDelayMs: 2 };
const MANIFESTS = {
  'all.yaml': `apiVersion: virtform.dev/v1
kind: StoragePool
metadata: {name: ${P}-pool}
spec: {path: /srv/pools/${P}}
---
apiVersion: virtform.dev/v1
kind: Volume
metadata: {name: ${P}-disk}
spec: {pool: ${P}-pool, capacity: 4MiB, format: raw}
---
apiVersion: virtform.dev/v1
kind: VirtualMachine
metadata: {name: ${P}-vm}
spec: {vcpus: 1, memory: 64MiB, state: running, disks: [{volume: ${P}-disk}]}
`,
};
const PATH = `/srv/pools/${P}/${P}-disk.img`;

let work: string;
let a: FakeHost;
let b: FakeHost;
let store: StateStore;
let state: DesiredState;

const hosts = (): Map<string, FakeHost> => new Map([['a', a], ['b', b]]);
/** Everything on `vmHost`, the pool on both. */
function on(vmHost: string): Desired {
  const pools = { ...state, volumes: [], vms: [] };
  return mergeDesired(['a', 'b'].map((h) => buildDesired(h === vmHost ? state : pools, h)));
}
const run = (vmHost: string, extra: Partial<Parameters<typeof reconcile>[0]> = {}) =>
  reconcile({ hosts: hosts(), store, desired: on(vmHost), retry: FAST_RETRY, gracefulStop: false, ...extra });

beforeEach(async () => {
  work = tempDir(`${P}-`);
  a = new FakeHost();
  b = new FakeHost();
  store = await openStateStore(join(work, 'state.db'));
  const r = await loadManifests(writeManifests(join(work, 'm'), MANIFESTS));
  if (!r.ok) throw new Error('manifests invalid');
  state = r.desired;
  expect((await run('a')).outcome).toBe('succeeded');
  const data = Buffer.alloc(4 * 1024 * 1024);
  data.write('hello from a', 1024 * 1024);
  a.contents.set(PATH, data);
});
afterEach(async () => {
  await store.close();
  rmSync(work, { recursive: true, force: true });
});

describe('cold moves', () => {
  it('plans a move, not a delete and a create, ordered across the hosts; no data-loss hold; the brake counts one move', async () => {
    const { plan } = await planOnly(hosts(), store, on('b'), false, { maxDeletions: 0 });
    expect(plan.held.size).toBe(0);
    expect(plan.brake).toMatchObject({ deletions: [], moves: [`VirtualMachine/${P}-vm: a → b`], braked: false });
    expect(plan.summary).toMatchObject({ create: 0, delete: 0, move: 2 });
    const at = (key: string, op: string): number => plan.steps.findIndex((s) => s.key === key && s.op.op === op);
    const dep = (key: string, op: string, on: [string, string]): boolean => plan.steps[at(key, op)]!.deps.includes(at(...on));
    const reach = (from: number, to: number): boolean => {
      const seen = new Set<number>();
      const walk = (i: number): boolean => i === to || (!seen.has(i) && (seen.add(i), plan.steps[i]!.deps.some(walk)));
      return walk(from);
    };
    const stopA = at(`a/VirtualMachine/${P}-vm`, 'vm.stop');
    const copyB = at(`b/Volume/${P}-disk`, 'volume.moveCopy');
    const verifyB = at(`b/Volume/${P}-disk`, 'volume.moveVerify');
    const defineB = at(`b/VirtualMachine/${P}-vm`, 'vm.define');
    const startB = at(`b/VirtualMachine/${P}-vm`, 'vm.start');
    const undefineA = at(`a/VirtualMachine/${P}-vm`, 'vm.delete');
    const deleteA = at(`a/Volume/${P}-disk`, 'volume.delete');
    for (const i of [stopA, copyB, verifyB, defineB, startB, undefineA, deleteA]) expect(i).toBeGreaterThanOrEqual(0);
    expect(dep(`b/Volume/${P}-disk`, 'volume.moveCopy', [`a/VirtualMachine/${P}-vm`, 'vm.stop'])).toBe(true);
    expect(reach(defineB, verifyB)).toBe(true);
    expect(reach(undefineA, startB)).toBe(true);
    expect(reach(deleteA, verifyB)).toBe(true);
    expect(reach(deleteA, undefineA)).toBe(true);
    expect(reach(stopA, copyB)).toBe(false);
  });

  it('moves the VM with its bytes: on b only, running there; a second run plans nothing', async () => {
    const labels: string[] = [];
    const r = await run('b', { maxDeletions: 0, boundary: (l) => labels.push(l) });
    // Every step of the move is journaled: a boundary after its journal entry and after each host call.
    for (const op of ['vm.stop', 'volume.moveCopy', 'volume.moveVerify', 'vm.define', 'vm.start', 'vm.delete', 'volume.delete']) {
      expect(labels.some((l) => l.includes(`:${op}:begin`)), op).toBe(true);
    }
    console.log(`[moves] ${labels.length} journal boundaries in a move of a running VM with one volume: ${labels.join(', ')}`);
    expect(r.outcome, JSON.stringify([...(r.applied?.failed ?? [])])).toBe('succeeded');
    expect(b.contents.get(PATH)!.toString('utf8', 1024 * 1024, 1024 * 1024 + 12)).toBe('hello from a');
    expect(a.volumes.get(`${P}-pool`)?.size ?? 0).toBe(0);
    expect(a.domains.has(`${P}-vm`)).toBe(false);
    expect(b.domains.get(`${P}-vm`)?.active).toBe(true);
    const facts = (await store.resources.get({ kind: 'Volume', name: `${P}-disk`, host: 'b' }))!.details.facts as { move: { verified: boolean; from: string } };
    expect(facts.move).toMatchObject({ from: 'a', verified: true });
    const again = await run('b');
    expect(again.plan.noop, JSON.stringify(again.plan.changes.map((c) => `${c.action} ${c.key}: ${c.reason}`))).toBe(true);
  });

  it('a VM with snapshots is a conflict on both hosts (its disk too); nothing runs', async () => {
    a.domainSnapshots.set(`${P}-vm`, 2);
    const r = await run('b');
    expect(r.outcome).toBe('failed');
    expect(r.plan.steps).toEqual([]);
    const reasons = new Map(r.plan.changes.map((c) => [c.key, `${c.action}: ${c.reason}`]));
    expect(reasons.get(`b/VirtualMachine/${P}-vm`)).toMatch(/^conflict: cannot move from host a: it has 2 snapshots on host a: a VM with snapshots is not moved/);
    expect(reasons.get(`a/VirtualMachine/${P}-vm`)).toMatch(/^conflict: /);
    expect(reasons.get(`b/Volume/${P}-disk`)).toMatch(/^conflict: .*moves with b\/VirtualMachine\/vftest-mv-vm, which cannot move/);
    expect(a.domains.get(`${P}-vm`)?.active).toBe(true);
  });

  it('a copy that does not verify keeps the source; the next run copies again and finishes', async () => {
    const real = b.downloadVolume.bind(b);
    b.downloadVolume = async (pool, name) => {
      const src = await real(pool, name);
      return (async function* () {
        for await (const c of src) yield c instanceof Uint8Array ? Buffer.from(c).fill(7, 0, 1) : c;
      })();
    };
    const r = await run('b');
    expect(r.outcome).toBe('failed');
    expect([...r.applied!.failed.values()].join('\n')).toMatch(/does not verify/);
    expect(a.volumes.get(`${P}-pool`)?.has(`${P}-disk.img`)).toBe(true);
    expect(a.domains.has(`${P}-vm`)).toBe(true);
    b.downloadVolume = real;
    const again = await run('b');
    expect(again.outcome).toBe('succeeded');
    expect(again.plan.steps.map((s) => `${s.key}:${s.op.op}`)).toContain(`b/Volume/${P}-disk:volume.moveCopy`);
    expect(a.volumes.get(`${P}-pool`)?.size ?? 0).toBe(0);
  });
  it("a target left by a crashed copy (its file, a failed step's record): the rerun copies and verifies again, never a plain create; the VM waits for it", async () => {
    // The copy's upload dies with the target (its connection gone, or a failed call): nothing is
    // defined on b, nothing of a is touched.
    for (const code of ['connection', 'operation-failed'] as const) {
      b.failNext('uploadVolume', `${P}-disk.img`, 1, code);
      const r = await run('b');
      expect(r.outcome, code).toBe('failed');
      expect(b.domains.has(`${P}-vm`), code).toBe(false);
      expect(a.domains.has(`${P}-vm`), code).toBe(true);
      expect(a.contents.get(PATH)!.toString('utf8', 1024 * 1024, 1024 * 1024 + 12), code).toBe('hello from a');
      expect(b.volumes.get(`${P}-pool`)?.has(`${P}-disk.img`), code).toBe(true); // the partial copy
      // No record on b that would read as b's own volume (without its copy's `move` fact).
      const rec = await store.resources.get({ kind: 'Volume', name: `${P}-disk`, host: 'b' });
      expect((rec?.details?.facts as { move?: unknown } | undefined)?.move ?? rec ?? undefined, code).toBeUndefined();
    }
    // A record like the ones earlier versions left there (a failed step's status, no config, no uuid).
    for (const kind of ['Volume', 'VirtualMachine'] as const) {
      await store.resources.upsert({ kind, name: kind === 'Volume' ? `${P}-disk` : `${P}-vm`, host: 'b', uuid: null, observedStatus: 'failed', lastError: 'connection closed', attempts: 1 });
    }
    const { plan } = await planOnly(hosts(), store, on('b'), false);
    const ops = plan.steps.map((s) => `${s.key}:${s.op.op}`);
    expect(ops).toContain(`b/Volume/${P}-disk:volume.moveCopy`);
    expect(ops).toContain(`b/Volume/${P}-disk:volume.moveVerify`);
    expect(ops.filter((o) => o.startsWith(`b/Volume/${P}-disk:`) && !o.includes('move'))).toEqual([]);
    expect(plan.held.size).toBe(0);
    const at = (key: string, op: string): number => plan.steps.findIndex((s) => s.key === key && s.op.op === op);
    const reach = (from: number, to: number): boolean => {
      const seen = new Set<number>();
      const walk = (i: number): boolean => i === to || (!seen.has(i) && (seen.add(i), plan.steps[i]!.deps.some(walk)));
      return walk(from);
    };
    expect(reach(at(`b/VirtualMachine/${P}-vm`, 'vm.define'), at(`b/Volume/${P}-disk`, 'volume.moveVerify'))).toBe(true);
    const again = await run('b');
    expect(again.outcome, JSON.stringify([...(again.applied?.failed ?? [])])).toBe('succeeded');
    expect(b.contents.get(PATH)!.toString('utf8', 1024 * 1024, 1024 * 1024 + 12)).toBe('hello from a');
    expect(b.domains.has(`${P}-vm`)).toBe(true);
    expect(a.domains.has(`${P}-vm`)).toBe(false);
    expect(a.volumes.get(`${P}-pool`)?.size ?? 0).toBe(0);
  });

  it("a VM whose volume would not move with it (b's own volume of that name) does not move: a conflict, nothing runs", async () => {
    // b records a volume of that name as its own (a config, no copy's `move` fact): a's is not paired as a move.
    await store.resources.upsert({
      kind: 'Volume', name: `${P}-disk`, host: 'b', uuid: 'b-own', observedStatus: 'ready', lastError: null, attempts: 0,
      details: { config: { pool: `${P}-pool`, volName: `${P}-disk.img`, capacityBytes: 4 << 20, format: 'raw', path: PATH } },
    });
    const r = await run('b');
    const reasons = new Map(r.plan.changes.map((c) => [c.key, `${c.action}: ${c.reason}`]));
    expect(reasons.get(`b/VirtualMachine/${P}-vm`)).toMatch(/^conflict: .*uses a\/Volume\/vftest-mv-disk, which would be deleted there and not moved/);
    expect(r.plan.steps.some((s) => s.key.endsWith(`VirtualMachine/${P}-vm`))).toBe(false);
    expect(a.domains.get(`${P}-vm`)?.active).toBe(true);
    expect(b.domains.has(`${P}-vm`)).toBe(false);
  });

  it("the VM's define on the target refuses a volume whose copy is not recorded verified, whatever the plan says", async () => {
    // A verify whose record loses `verified` (standing in for any planning or recording bug).
    const upsert = store.resources.upsert.bind(store.resources);
    store.resources.upsert = async (e) => {
      const move = (e.details?.facts as { move?: { verified?: boolean } } | undefined)?.move;
      if (e.host === 'b' && e.kind === 'Volume' && move?.verified) move.verified = false;
      return upsert(e);
    };
    const r = await run('b');
    expect(r.outcome).toBe('failed');
    expect(r.applied!.failed.get(`b/VirtualMachine/${P}-vm`)).toMatch(/has no verified copy from host a here/);
    expect(b.domains.has(`${P}-vm`)).toBe(false);
    expect(a.domains.has(`${P}-vm`)).toBe(true);
    expect(a.volumes.get(`${P}-pool`)?.has(`${P}-disk.img`)).toBe(true);
  });

  it("the target dies before its upload reads a byte: the source's download stream is closed, a later error on it crashes nothing", async () => {
    const real = a.downloadVolume.bind(a);
    let opened: Readable | undefined;
    a.downloadVolume = async (pool, name) => {
      opened = Readable.from(await real(pool, name), { objectMode: true });
      return opened;
    };
    b.failNext('uploadVolume', `${P}-disk.img`, 1, 'connection');
    const r = await run('b');
    expect(r.outcome).toBe('failed');
    expect(opened).toBeDefined();
    expect(opened!.destroyed).toBe(true);
    expect(a.domains.has(`${P}-vm`)).toBe(true);
  });
});
