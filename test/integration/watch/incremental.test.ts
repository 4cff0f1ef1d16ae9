/**
 * The incremental watch (issue 22) as a real `virtform watch` process on qemu:///system: a run
 * started by a file edit reads again only the edited file and only the definitions that may have
 * changed, and applies only what the edit changed; a VM changed with virsh outside virtform is
 * corrected by the lifecycle event's run; a network changed outside (libvirt sends no event for
 * it) is left as it is by incremental runs and corrected by the periodic full read (`--resync`)
 * within its period; files added, renamed and deleted are handled; an invalid edit reports
 * file:line:col like `virtform validate` and changes nothing.
 * Every object is named vftest-incw-*; the network is isolated and no VM runs.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { renameSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { writeManifests } from '../../support/manifests.js';
import { runCli, sleep, startWatch, waitFor, type LogLine, type Watcher } from '../../support/cli.js';
import { suiteNames } from '../../support/names.js';
import { dhcpHosts, redefineDomain, tryVirsh, URI, virsh } from '../../support/virsh.js';

const N = suiteNames('incw');
const POOL = N.name('pool');
const NET = N.name('net');
const vm = (i: number): string => N.name(`vm${i}`);
const disk = (i: number): string => N.name(`disk${i}`);

const doc = (body: string): string => `apiVersion: virtform.dev/v1\n${body}`;

function base(): string {
  return [
    doc(`kind: StoragePool\nmetadata: {name: ${POOL}}\nspec: {path: ${N.poolPath()}}\n`),
    doc(`kind: Network\nmetadata: {name: ${NET}}\nspec:\n  mode: isolated\n  cidr: ${N.cidr()}\n  dhcp:\n    start: ${N.ip(100)}\n    end: ${N.ip(150)}\n    hosts:\n      - {mac: "${N.mac(11)}", ip: ${N.ip(11)}}\n`),
    ...[1, 2, 3, 4].map((i) => doc(`kind: Volume\nmetadata: {name: ${disk(i)}}\nspec: {pool: ${POOL}, capacity: 1MiB, format: qcow2}\n`)),
  ].join('---\n');
}

function vmFile(i: number, memory: string | number = 64): string {
  return doc(`kind: VirtualMachine
metadata: {name: ${vm(i)}}
spec:
  vcpus: 1
  memory: ${typeof memory === 'number' ? `${memory}MiB` : memory}
  state: stopped
  disks: [{volume: ${disk(i)}, bus: virtio}]
  nics: [{network: ${NET}${i === 1 ? `, mac: "${N.mac(11)}"` : ''}}]
`);
}

/** The domain's configured maximum memory in MiB (`virsh dominfo`). */
function memoryMiB(name: string): number {
  const line = virsh('dominfo', name).split('\n').find((l) => l.startsWith('Max memory:'))!;
  return Number(line.split(':')[1]!.trim().split(' ')[0]) / 1024;
}

/** Replace a file atomically (write + rename), as editors and git do. */
function writeAtomic(path: string, text: string): void {
  writeFileSync(`${path}.tmp~`, text);
  renameSync(`${path}.tmp~`, path);
}

let work: string;
let mdir: string;
let db: string;
let w: Watcher;

const finished = (l: LogLine): boolean => l.msg === 'reconcile finished' || l.msg === 'reconcile finished with failures';
const runs = (): LogLine[] => w.logs.filter(finished);

/** Wait for the next run to finish after `before` runs; its log line and the step lines logged during it. */
async function nextRun(before: number, what: string, timeoutMs = 30_000): Promise<{ run: LogLine; steps: LogLine[] }> {
  await waitFor(() => runs().length > before, what, timeoutMs);
  const run = runs()[before]!;
  const i = w.logs.indexOf(run);
  const start = w.logs.slice(0, i).findLastIndex((l) => l.msg === 'reconcile started');
  return { run, steps: w.logs.slice(start, i).filter((l) => l.msg === 'step done') };
}

/** Wait until the watcher is quiet: no run for `quietMs` (the edit's own lifecycle events cause one more run). */
async function quiet(quietMs = 1500): Promise<void> {
  let n = -1;
  while (n !== runs().length) {
    n = runs().length;
    await sleep(quietMs);
  }
}

type Timing = { read: string; files?: { listed: number; read: number; parsed: number }; definitions?: { cached: number; cachedBy?: Record<string, number>; read: number; readBy?: Record<string, number> }; ownMs: number; libvirtMs: number };
const timing = (l: LogLine): Timing => l.timing as Timing;

async function watch(resync: number): Promise<void> {
  w = await startWatch([mdir, '--uri', URI, '--db', db, '--debounce', '200', '--resync', String(resync), '--retry-delay', '200', '--max-attempts', '2']);
  await quiet();
}

beforeAll(async () => {
  N.cleanup();
  work = N.tempDir();
  mdir = join(work, 'manifests');
  db = join(work, 'state.db');
  writeManifests(mdir, { 'base.yaml': base(), 'vm1.yaml': vmFile(1), 'vm2.yaml': vmFile(2), 'vm3.yaml': vmFile(3) });
  await watch(3600);
}, 300_000);

afterEach((ctx) => {
  if (ctx.task.result?.state === 'fail') process.stderr.write(`--- last watcher log lines ---\n${w?.tail(40)}\n`);
});

afterAll(async () => {
  if (w && w.exitCode === undefined) await w.stop('SIGTERM');
  N.cleanup();
  rmSync(work, { recursive: true, force: true });
}, 60_000);

describe('incremental watch on qemu:///system', () => {
  it('the first run is a full read of every file and definition', () => {
    const first = runs()[0]!;
    expect(first.outcome).toBe('succeeded');
    expect(timing(first).read).toBe('full');
    expect(timing(first).files).toEqual({ listed: 4, read: 4, parsed: 4 });
    expect(memoryMiB(vm(1))).toBe(64);
  });

  it('an edit of one VM reads that file only, and applies only that VM', async () => {
    const before = runs().length;
    writeAtomic(join(mdir, 'vm2.yaml'), vmFile(2, 96));
    const { run, steps } = await nextRun(before, 'the edit run');
    expect(run.sources).toEqual(['file']);
    expect(run.outcome).toBe('succeeded');
    const t = timing(run);
    expect(t.read).toBe('incremental');
    expect(t.files).toEqual({ listed: 4, read: 1, parsed: 1 });
    // Nothing was read again but what may have changed: no definition of the 3 VMs and 4 volumes;
    // the pool and network kept too (every pool and network on the host is read for overlaps: one
    // another suite adds meanwhile is read, hence by family).
    expect(t.definitions!.readBy?.domain ?? 0).toBe(0);
    expect(t.definitions!.readBy?.volume ?? 0).toBe(0);
    expect(t.definitions!.cachedBy).toMatchObject({ domain: 3, volume: 4 });
    expect(t.definitions!.cachedBy?.pool).toBeGreaterThanOrEqual(1);
    expect(t.definitions!.cachedBy?.network).toBeGreaterThanOrEqual(1);
    expect(t.ownMs).toBeGreaterThan(0);
    expect(t.libvirtMs).toBeGreaterThan(0);
    expect(new Set(steps.map((s) => s.resource))).toEqual(new Set([`VirtualMachine/${vm(2)}`]));
    expect(memoryMiB(vm(2))).toBe(96);
    expect(memoryMiB(vm(1))).toBe(64);
    await quiet();
    // The run after it (the define's own lifecycle event) read the changed definition again and found nothing to do.
    const after = runs().slice(before + 1);
    expect(after.every((r) => r.outcome === 'noop')).toBe(true);
  });

  it('a VM changed with virsh outside virtform is corrected by its lifecycle event, incrementally', async () => {
    const before = runs().length;
    // `virsh define` of an edited definition: libvirt sends `defined` (updated).
    redefineDomain(vm(3), (xml) => xml.replace(/<memory unit='KiB'>\d+<\/memory>/, "<memory unit='KiB'>131072</memory>")
      .replace(/<currentMemory unit='KiB'>\d+<\/currentMemory>/, "<currentMemory unit='KiB'>131072</currentMemory>"), work);
    expect(memoryMiB(vm(3))).toBe(128);
    const { run, steps } = await nextRun(before, 'the event run');
    expect(run.sources).toEqual(['event']);
    expect(timing(run).read).toBe('incremental');
    expect(timing(run).definitions!.readBy?.domain).toBe(1); // only the domain the event named
    expect(timing(run).definitions!.readBy?.volume ?? 0).toBe(0);
    expect(steps.map((s) => s.resource)).toContain(`VirtualMachine/${vm(3)}`);
    expect(memoryMiB(vm(3))).toBe(64);
    await quiet();
  });

  it('a file added, renamed and deleted: created, nothing, and deleted', async () => {
    let before = runs().length;
    writeAtomic(join(mdir, 'vm4.yaml'), vmFile(4));
    let r = await nextRun(before, 'the run of the added file');
    expect(timing(r.run).files).toEqual({ listed: 5, read: 1, parsed: 1 });
    expect(r.steps.map((s) => s.resource)).toContain(`VirtualMachine/${vm(4)}`);
    expect(tryVirsh('domstate', vm(4))).toBe('shut off');
    await quiet();

    before = runs().length;
    renameSync(join(mdir, 'vm4.yaml'), join(mdir, 'renamed-vm4.yaml'));
    r = await nextRun(before, 'the run of the renamed file');
    expect(r.run.outcome).toBe('noop');
    expect(timing(r.run).files).toEqual({ listed: 5, read: 1, parsed: 1 });
    expect(r.steps).toEqual([]);
    await quiet();

    before = runs().length;
    unlinkSync(join(mdir, 'renamed-vm4.yaml'));
    r = await nextRun(before, 'the run of the deleted file');
    expect(r.run.outcome).toBe('succeeded');
    expect(timing(r.run).files).toEqual({ listed: 4, read: 0, parsed: 0 });
    expect(r.steps.map((s) => s.resource)).toEqual([`VirtualMachine/${vm(4)}`]);
    expect(tryVirsh('domstate', vm(4))).toBe('');
    await quiet();
  });

  it('an invalid edit reports file:line:col as validate does, and changes nothing', async () => {
    const before = runs().length;
    const errorsBefore = w.count('manifest error');
    const invalidBefore = w.count('manifests invalid: nothing changed; keeping the last good desired state');
    writeAtomic(join(mdir, 'vm1.yaml'), vmFile(1, 'plenty'));
    await waitFor(() => w.count('manifests invalid: nothing changed; keeping the last good desired state') > invalidBefore, 'the invalid run', 20_000);
    const logged = w.logs.filter((l) => l.msg === 'manifest error').slice(errorsBefore).map((l) => String(l.text));
    const validate = await runCli(['validate', mdir]);
    expect(validate.code).toBe(2);
    const expected = validate.stderr.split('\n').filter((l) => /vm1\.yaml:\d+:\d+: /.test(l));
    expect(expected.length).toBeGreaterThan(0);
    expect(logged.length).toBeGreaterThan(0);
    for (const text of logged) expect(text).toMatch(/vm1\.yaml:6:11: .*memory/);
    for (const line of expected) expect(logged.some((t) => line.includes(t))).toBe(true);
    expect(runs().length).toBe(before); // no reconcile ran
    expect(memoryMiB(vm(1))).toBe(64);

    // The fix is an edit of the same file: read again, and converges (nothing to change).
    writeAtomic(join(mdir, 'vm1.yaml'), vmFile(1));
    const { run } = await nextRun(before, 'the run of the fixed file');
    expect(run.outcome).toBe('noop');
    expect(timing(run).files).toMatchObject({ read: 1, parsed: 1 });
    await quiet();
  });

  it('a network changed outside is left by incremental runs and corrected by the periodic full read within --resync', async () => {
    // libvirt 9.0 sends no event for a network's definition: the incremental run of an unrelated
    // edit does not see the reservation removed outside (the documented bound) ...
    const reservation = `<host mac='${N.mac(11)}' ip='${N.ip(11)}'/>`;
    virsh('net-update', NET, 'delete', 'ip-dhcp-host', reservation, '--live', '--config');
    expect(dhcpHosts(NET)).toEqual([]);
    let before = runs().length;
    writeAtomic(join(mdir, 'vm2.yaml'), vmFile(2, 80));
    const r = await nextRun(before, 'the edit run');
    expect(timing(r.run).read).toBe('incremental');
    expect(memoryMiB(vm(2))).toBe(80);
    await quiet();
    expect(dhcpHosts(NET)).toEqual([]);
    await w.stop('SIGTERM');

    // ... and a watcher with a short --resync corrects it at its next full read, within the period.
    await watch(4);
    expect(dhcpHosts(NET)).toEqual([N.mac(11)]); // the first run is a full read
    virsh('net-update', NET, 'delete', 'ip-dhcp-host', reservation, '--live', '--config');
    const changed = Date.now();
    before = runs().length;
    await waitFor(() => dhcpHosts(NET).length === 1, 'the reservation back', 20_000);
    const took = Date.now() - changed;
    const applying = (l: LogLine): boolean => Number((l.plan as { steps?: number } | undefined)?.steps ?? 0) > 0;
    await waitFor(() => runs().slice(before).some(applying), 'the run that applied it (logged after its step)', 20_000);
    const fixer = runs().slice(before).find(applying)!;
    expect(fixer.sources).toContain('resync');
    expect(timing(fixer).read).toBe('full');
    expect(took).toBeLessThan(4_000 + 10_000); // the period, plus the run
  });
});
