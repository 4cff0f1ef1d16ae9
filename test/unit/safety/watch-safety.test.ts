/** The watcher and issue #14: the brake stalls, the suspend switch pauses applies (polled), conditions in /status and /metrics. */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { labManifests, tempDir, writeManifests } from '../../support/manifests.js';
import { openStateStore, type StateStore } from '../../../src/state/index.js';
import { WatchController, jsonLogger, type WatchOptions } from '../../../src/watch/index.js';
import { GatedHost, parsePrometheus, sampleValue, waitFor, writeFilesInPlace } from '../watch/helpers.js';

const P = 'vftest-safety-w';
const VM1 = `${P}-vm1`;
let work: string;
let mdir: string;
let store: StateStore;
let host: GatedHost;
let controller: WatchController | undefined;
let logs: Record<string, unknown>[];

const manifests = (): Record<string, string> => labManifests({ prefix: P, poolPath: '/srv/pools/safety-w' });

async function start(extra: Partial<WatchOptions> = {}): Promise<WatchController> {
  controller = new WatchController({
    dir: mdir, store, connect: async () => host, debounceMs: 50, eventDebounceMs: 20, resyncMs: 0, gracefulStop: false,
    retry: { maxAttempts: 2, baseDelayMs: 1, maxDelayMs: 2 }, suspendPollMs: 50,
    logger: jsonLogger({ level: 'debug', write: (l) => void logs.push(JSON.parse(l) as Record<string, unknown>) }),
    ...extra,
  });
  await controller.start();
  await waitFor(() => controller!.ready, 'the initial reconcile');
  await controller.idle();
  return controller;
}

beforeEach(async () => {
  work = tempDir('vftest-safety-w-');
  mdir = join(work, 'manifests');
  writeManifests(mdir, manifests());
  store = await openStateStore(join(work, 'state.db'));
  host = new GatedHost();
  logs = [];
  controller = undefined;
});
afterEach(async () => {
  host.open();
  await controller?.stop();
  await store.close();
  rmSync(work, { recursive: true, force: true });
});

describe('watch: safety', () => {
  it('a braked run stalls the resources it would delete until the input changes; nothing is deleted', async () => {
    const c = await start({ maxDeletions: 2 });
    const keep = Object.fromEntries(Object.entries(manifests()).map(([f, t]) => [f, f.includes('storage') ? t : '']));
    writeFilesInPlace(mdir, keep);
    await waitFor(() => c.lastRun?.outcome === 'braked', 'a braked run', 10_000);
    await c.idle();
    const s = await c.status();
    expect(s.stalled.length).toBe(3);
    expect(s.stalled[0]!.reason).toMatch(/^braked: the plan deletes 3 resources, more than the 2 allowed/);
    expect(s.requeue.pending).toBeUndefined();
    expect(host.domains.has(VM1)).toBe(true);
    const row = s.resources.find((r) => r.name === VM1)!;
    expect(row.conditions.find((x) => x.type === 'Stalled')).toMatchObject({ status: 'True', reason: 'Braked' });
  });

  it('suspend pauses applies while runs go on observing; resume (polled) runs and applies at once', async () => {
    const c = await start();
    await store.controls.suspend({ by: 'tester' });
    await waitFor(() => c.lastRun?.outcome === 'suspended', 'the suspended run the switch triggers', 5000);
    host.domains.get(VM1)!.active = false;
    c.trigger('event');
    await waitFor(() => logs.filter((l) => l.msg === 'reconcile finished' && l.outcome === 'suspended').length >= 2, 'a second suspended run');
    expect(host.domains.get(VM1)!.active).toBe(false);
    const s = await c.status();
    expect(s.suspended?.by).toBe('tester');
    const row = s.resources.find((r) => r.name === VM1)!;
    expect(row.status).toBe('drifted');
    expect(row.conditions.find((x) => x.type === 'Suspended')).toMatchObject({ status: 'True', reason: 'DatabaseSuspended' });
    const m = parsePrometheus(await c.metrics.render());
    expect(sampleValue(m, 'virtform_resource_condition', { kind: 'VirtualMachine', name: VM1, type: 'Drifted', status: 'True' })).toBe(1);
    expect(sampleValue(m, 'virtform_resource_condition', { kind: 'VirtualMachine', name: VM1, type: 'Ready', status: 'True' })).toBe(0);
    await store.controls.resume();
    await waitFor(() => host.domains.get(VM1)!.active, 'the VM started after resume', 5000);
    expect(logs.some((l) => l.msg === 'reconcile started' && (l.sources as string[]).includes('resume'))).toBe(true);
    await c.idle();
    const after = await c.status();
    expect(after.suspended).toBeNull();
    expect(after.resources.find((r) => r.name === VM1)!.conditions.find((x) => x.type === 'Ready')!.status).toBe('True');
  });
});
