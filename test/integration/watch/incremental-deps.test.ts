/**
 * The incremental watch (issue 22) plans an edit of a dependency exactly as a full read does: a
 * volume's capacity and a network's CIDR edited in their file, while the file of the VM using them
 * is unchanged, are planned by the watcher's incremental run (kept files, kept definitions, the
 * no-op fast path on the kept definitions) with the same changes and steps as a full plan of a
 * fresh connection and a fresh load (what `--no-incremental` plans) on the same state. The watcher
 * runs in this process on qemu:///system with the state DB suspended (`virtform suspend`), so it
 * plans each edit and applies nothing; the kept definitions go through the fast path (the wart of
 * the first incremental watch: the cache parsed and compared every definition).
 * Every object is named vftest-wfdeps-*; the network is isolated and no VM runs.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { renameSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { writeManifests, desiredFrom } from '../../support/manifests.js';
import { waitFor } from '../../support/cli.js';
import { suiteNames } from '../../support/names.js';
import { redefineDomain, URI } from '../../support/virsh.js';
import { openHost } from '../../../src/reconcile/adapters/libvirt-host.js';
import { planOnly } from '../../../src/reconcile/engine.js';
import type { HostPort } from '../../../src/reconcile/ports.js';
import type { Plan } from '../../../src/reconcile/plan.js';
import { openStateStore, type StateStore } from '../../../src/state/index.js';
import { WatchController, type RunInfo } from '../../../src/watch/index.js';

const N = suiteNames('wfdeps');
const POOL = N.name('pool');
const NET = N.name('net');
const vm = (i: number): string => N.name(`vm${i}`);
const disk = (i: number): string => N.name(`disk${i}`);
const doc = (body: string): string => `apiVersion: virtform.dev/v1\n${body}`;

function base(o: { capacity?: string; cidr?: string; poolPath?: string } = {}): string {
  return [
    doc(`kind: StoragePool\nmetadata: {name: ${POOL}}\nspec: {path: ${o.poolPath ?? N.poolPath()}}\n`),
    doc(`kind: Network\nmetadata: {name: ${NET}}\nspec: {mode: isolated, cidr: ${o.cidr ?? N.cidr()}}\n`),
    doc(`kind: Volume\nmetadata: {name: ${disk(1)}}\nspec: {pool: ${POOL}, capacity: ${o.capacity ?? '1MiB'}, format: qcow2}\n`),
    doc(`kind: Volume\nmetadata: {name: ${disk(2)}}\nspec: {pool: ${POOL}, capacity: 1MiB, format: qcow2}\n`),
  ].join('---\n');
}

function vmFile(i: number, memory = 64): string {
  return doc(`kind: VirtualMachine
metadata: {name: ${vm(i)}}
spec:
  vcpus: 1
  memory: ${memory}MiB
  state: stopped
  disks: [{volume: ${disk(i)}, bus: virtio}]
  nics: [{network: ${NET}}]
`);
}

function writeAtomic(path: string, text: string): void {
  writeFileSync(`${path}.tmp~`, text);
  renameSync(`${path}.tmp~`, path);
}

let work: string;
let mdir: string;
let store: StateStore;
let c: WatchController;
let fresh: HostPort;
const hosts: HostPort[] = [];

/** Every finished run with the plan it made (the feed's runEnd: a later run cannot hide an earlier one). */
const finished: { run: RunInfo; plan: Plan | undefined }[] = [];

/**
 * The first run after `seq` whose sources include `source` (any run when omitted), once it has
 * finished and the watcher is idle; with its own plan. Runs from other sources (a lifecycle event
 * of an earlier step arriving late on a loaded machine) may come before or after it.
 */
async function runAfter(seq: number, what: string, source?: string): Promise<{ run: RunInfo; plan: Plan | undefined }> {
  const match = (): { run: RunInfo; plan: Plan | undefined } | undefined =>
    finished.find((f) => f.run.seq > seq && (source === undefined || f.run.sources.includes(source as never)));
  await waitFor(() => match() !== undefined, what, 120_000);
  await c.idle();
  return match()!;
}

/** Wait until the watcher is quiet: no run for `quietMs` (a step's own lifecycle events cause one more run). */
async function quiet(quietMs = 1500): Promise<void> {
  let seq = -1;
  while (seq !== (c.lastRun?.seq ?? 0)) {
    seq = c.lastRun?.seq ?? 0;
    await new Promise((r) => setTimeout(r, quietMs));
    await c.idle();
  }
}

/** What a plan decides, without the observation it carries. */
function decisions(plan: Plan): unknown {
  return {
    changes: plan.changes, noop: plan.noop, summary: plan.summary,
    steps: plan.steps.map((s) => ({ key: s.key, op: s.op, deps: [...s.deps] })),
    held: [...plan.held], blocked: [...plan.blocked],
  };
}

/** The full plan on the same state: a new connection (nothing kept), the folder loaded from scratch. */
async function fullPlan(): Promise<Plan> {
  return (await planOnly(fresh, store, await desiredFrom(mdir), false)).plan;
}

beforeAll(async () => {
  N.cleanup();
  work = N.tempDir();
  mdir = join(work, 'manifests');
  writeManifests(mdir, { 'base.yaml': base(), 'vm1.yaml': vmFile(1), 'vm2.yaml': vmFile(2) });
  store = await openStateStore(join(work, 'state.db'));
  c = new WatchController({
    dir: mdir, store, connect: async () => {
      const h = await openHost(URI);
      hosts.push(h);
      return h;
    },
    debounceMs: 100, resyncMs: 0, eventDebounceMs: 100, concurrency: 4, gracefulStop: false,
    // The suspension below is read before each run only: its poll would add a run of its own.
    suspendPollMs: 0,
  });
  c.subscribe((e) => {
    if (e.type === 'runEnd') finished.push({ run: e.run, plan: c.lastPlan?.plan });
  });
  await c.start();
  expect((await runAfter(0, 'the initial run', 'initial')).run.outcome).toBe('succeeded');
  await quiet();
  // One applied edit (recording the no-op fast path's checks), then the lifecycle events' run.
  const seq = c.lastRun!.seq;
  writeAtomic(join(mdir, 'vm2.yaml'), vmFile(2, 72));
  expect((await runAfter(seq, 'the first edit', 'file')).run.outcome).toBe('succeeded');
  await quiet();
  fresh = await openHost(URI);
  await store.controls.suspend({ by: 'incremental-deps test', reason: 'plan only' });
}, 300_000);

afterAll(async () => {
  await c?.stop();
  await fresh?.close();
  await store?.close();
  N.cleanup();
  if (work) rmSync(work, { recursive: true, force: true });
}, 120_000);

describe('incremental watch: an edited dependency of an unchanged VM', () => {
  it('an incremental run with nothing changed compares no definition: the kept definitions go through the fast path', async () => {
    const seq = c.lastRun!.seq;
    c.trigger('event');
    const { run, plan } = await runAfter(seq, 'the event run');
    expect(run.timing?.read).toBe('incremental');
    expect(run.outcome).toBe('suspended');
    const d = run.timing!.definitions!;
    // The VMs' and volumes' definitions come from the cache, none read again. Networks and pools:
    // every one on the host is read (CIDR and path overlaps), other suites' too, so at least ours.
    expect(d.readBy?.domain ?? 0).toBe(0);
    expect(d.readBy?.volume ?? 0).toBe(0);
    expect(d.cachedBy).toMatchObject({ domain: 2, volume: 2 });
    expect(d.cachedBy?.network).toBeGreaterThanOrEqual(1);
    expect(d.cachedBy?.pool).toBeGreaterThanOrEqual(1);
    // Every definition was kept and none of the VMs' and volumes' needed a comparison.
    expect(d.unchanged).toBe(4);
    // Parsed and compared: the pool's and the network's (not on the fast path), and other suites' ones.
    expect(d.compared).toBeGreaterThanOrEqual(2);
    expect(decisions(plan!)).toEqual(decisions(await fullPlan()));
  });

  it("a volume's capacity edited in its own file: the incremental plan is the full plan", async () => {
    const seq = c.lastRun!.seq;
    writeAtomic(join(mdir, 'base.yaml'), base({ capacity: '2MiB' }));
    const { run, plan } = await runAfter(seq, 'the capacity edit', 'file');
    expect(run.timing?.read).toBe('incremental');
    expect(run.timing?.files).toMatchObject({ parsed: 1 });
    const incremental = plan!;
    expect(incremental.changes.map((x) => x.key)).toContain(`Volume/${disk(1)}`);
    expect(decisions(incremental)).toEqual(decisions(await fullPlan()));
  });

  it("a network's CIDR edited while the VM using it is unchanged: the incremental plan is the full plan", async () => {
    const seq = c.lastRun!.seq;
    writeAtomic(join(mdir, 'base.yaml'), base({ capacity: '2MiB', cidr: N.cidr(1) }));
    const { run, plan } = await runAfter(seq, 'the CIDR edit', 'file');
    expect(run.timing?.read).toBe('incremental');
    const incremental = plan!;
    expect(incremental.changes.map((x) => x.key)).toContain(`Network/${NET}`);
    expect(decisions(incremental)).toEqual(decisions(await fullPlan()));
  });

  it('the VM file edited back and forth: each incremental plan is the full plan', async () => {
    for (const memory of [96, 72]) {
      const seq = c.lastRun!.seq;
      writeAtomic(join(mdir, 'vm1.yaml'), vmFile(1, memory));
      const { run, plan } = await runAfter(seq, `the memory edit to ${memory}`, 'file');
      expect(run.timing?.read).toBe('incremental');
      expect(decisions(plan!)).toEqual(decisions(await fullPlan()));
    }
  });

  // wstep (issue 22): the watch keeps unchanged manifests and desired resources between runs
  // (ManifestCache, rebuildDesired) and each resource's dependencies; these edits reach what is kept.
  it("the pool's path edited (every disk path resolves through it) and back: each incremental plan is the full plan", async () => {
    for (const poolPath of [`${N.poolPath()}-moved`, N.poolPath()]) {
      const seq = c.lastRun!.seq;
      writeAtomic(join(mdir, 'base.yaml'), base({ capacity: '2MiB', cidr: N.cidr(1), poolPath }));
      const { run, plan } = await runAfter(seq, `the pool path edit to ${poolPath}`, 'file');
      expect(run.timing?.read).toBe('incremental');
      if (poolPath !== N.poolPath()) expect(plan!.changes.map((x) => x.key)).toContain(`StoragePool/${POOL}`);
      expect(decisions(plan!)).toEqual(decisions(await fullPlan()));
    }
  });

  it('a VM file renamed, then deleted: each incremental plan is the full plan', async () => {
    let seq = c.lastRun!.seq;
    renameSync(join(mdir, 'vm2.yaml'), join(mdir, 'renamed.yaml'));
    let r = await runAfter(seq, 'the rename', 'file');
    expect(r.run.timing?.read).toBe('incremental');
    expect(r.plan!.changes.map((x) => x.key)).not.toContain(`VirtualMachine/${vm(2)}`);
    expect(decisions(r.plan!)).toEqual(decisions(await fullPlan()));
    seq = c.lastRun!.seq;
    unlinkSync(join(mdir, 'renamed.yaml'));
    r = await runAfter(seq, 'the delete', 'file');
    expect(r.run.timing?.read).toBe('incremental');
    expect(r.plan!.changes.map((x) => x.key)).toContain(`VirtualMachine/${vm(2)}`);
    expect(decisions(r.plan!)).toEqual(decisions(await fullPlan()));
    // Back: the VM is declared again, as it is on the host.
    seq = c.lastRun!.seq;
    writeAtomic(join(mdir, 'vm2.yaml'), vmFile(2, 72));
    r = await runAfter(seq, 'the file back', 'file');
    expect(decisions(r.plan!)).toEqual(decisions(await fullPlan()));
  });

  it("a VM's domain changed outside virtform: the lifecycle event's incremental plan is the full plan", async () => {
    await quiet();
    const seq = c.lastRun!.seq;
    // `virsh define` of an edited definition: libvirt sends `defined` (updated).
    redefineDomain(vm(2), (xml) => xml.replace(/<memory unit='KiB'>\d+<\/memory>/, "<memory unit='KiB'>131072</memory>")
      .replace(/<currentMemory unit='KiB'>\d+<\/currentMemory>/, "<currentMemory unit='KiB'>131072</currentMemory>"), work);
    const { run, plan } = await runAfter(seq, 'the event run', 'event');
    expect(run.timing?.read).toBe('incremental');
    expect(plan!.changes.map((x) => x.key)).toContain(`VirtualMachine/${vm(2)}`);
    expect(decisions(plan!)).toEqual(decisions(await fullPlan()));
  });
});
