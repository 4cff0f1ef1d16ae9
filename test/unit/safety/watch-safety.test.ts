/** The watcher and issue #14: the brake stalls, the suspend switch pauses applies (polled), conditions in /status and /metrics. */
import { afterEach, describe, expect, it } from 'vitest';
import { labManifests } from '../../support/manifests.js';
import { FAST_RETRY, useHarness } from '../../support/harness.js';
import { WatchController, jsonLogger, type WatchOptions } from '../../../src/watch/index.js';
import { GatedHost, parsePrometheus, sampleValue, waitFor, writeFilesInPlace } from '../watch/helpers.js';

const P = 'vftest-safety-w';
const VM1 = `${P}-vm1`;
const manifests = (): Record<string, string> => labManifests({ prefix: P, poolPath: '/srv/pools/safety-w' });

const fx = useHarness({ dirPrefix: 'vftest-safety-w-', newHost: () => new GatedHost(), manifests: manifests() });
let controller: WatchController | undefined;
let logs: Record<string, unknown>[] = [];

async function start(extra: Partial<WatchOptions> = {}): Promise<WatchController> {
  controller = new WatchController({
    dir: fx.mdir, store: fx.store, connect: async () => fx.host, debounceMs: 50, eventDebounceMs: 20, resyncMs: 0, heartbeatMs: 0, gracefulStop: false,
    retry: FAST_RETRY, suspendPollMs: 50,
    logger: jsonLogger({ level: 'debug', write: (l) => void logs.push(JSON.parse(l) as Record<string, unknown>) }),
    ...extra,
  });
  await controller.start();
  await waitFor(() => controller!.ready, 'the initial reconcile');
  await controller.idle();
  return controller;
}

// before the harness closes the store (after-hooks run in reverse order)
afterEach(async () => {
  fx.host.open();
  await controller?.stop();
  controller = undefined;
  logs = [];
});

describe('watch: safety', () => {
  it('a braked run stalls the resources it would delete until the input changes; nothing is deleted', async () => {
    const c = await start({ maxDeletions: 2 });
    const keep = Object.fromEntries(Object.entries(manifests()).map(([f, t]) => [f, f.includes('storage') ? t : '']));
    writeFilesInPlace(fx.mdir, keep);
    await waitFor(() => c.lastRun?.outcome === 'braked', 'a braked run', 10_000);
    await c.idle();
    const s = await c.status();
    expect(s.stalled.length).toBe(3);
    expect(s.stalled[0]!.reason).toMatch(/^braked: the plan deletes 3 resources, more than the 2 allowed/);
    expect(s.requeue.pending).toBeUndefined();
    expect(fx.host.domains.has(VM1)).toBe(true);
    const row = s.resources.find((r) => r.name === VM1)!;
    expect(row.conditions.find((x) => x.type === 'Stalled')).toMatchObject({ status: 'True', reason: 'Braked' });
  });

  it('suspend pauses applies while runs go on observing; resume (polled) runs and applies at once', async () => {
    const c = await start();
    await fx.store.controls.suspend({ by: 'tester' });
    await waitFor(() => c.lastRun?.outcome === 'suspended', 'the suspended run the switch triggers', 5000);
    fx.host.domains.get(VM1)!.active = false;
    c.trigger('event');
    await waitFor(() => logs.filter((l) => l.msg === 'reconcile finished' && l.outcome === 'suspended').length >= 2, 'a second suspended run');
    expect(fx.host.domains.get(VM1)!.active).toBe(false);
    const s = await c.status();
    expect(s.suspended?.by).toBe('tester');
    const row = s.resources.find((r) => r.name === VM1)!;
    expect(row.status).toBe('drifted');
    expect(row.conditions.find((x) => x.type === 'Suspended')).toMatchObject({ status: 'True', reason: 'DatabaseSuspended' });
    const m = parsePrometheus(await c.metrics.render());
    expect(sampleValue(m, 'virtform_resource_condition', { kind: 'VirtualMachine', name: VM1, type: 'Drifted', status: 'True' })).toBe(1);
    expect(sampleValue(m, 'virtform_resource_condition', { kind: 'VirtualMachine', name: VM1, type: 'Ready', status: 'True' })).toBe(0);
    await fx.store.controls.resume();
    await waitFor(() => fx.host.domains.get(VM1)!.active, 'the VM started after resume', 5000);
    expect(logs.some((l) => l.msg === 'reconcile started' && (l.sources as string[]).includes('resume'))).toBe(true);
    await c.idle();
    const after = await c.status();
    expect(after.suspended).toBeNull();
    expect(after.resources.find((r) => r.name === VM1)!.conditions.find((x) => x.type === 'Ready')!.status).toBe('True');
  });
});
