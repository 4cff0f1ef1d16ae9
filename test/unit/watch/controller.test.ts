import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { labManifests, writeManifests } from '../../support/manifests.js';
import { FAST_RETRY, useHarness } from '../../support/harness.js';
import { LeaseHeldError } from '../../../src/state/index.js';
import { WatchController, EmptyManifestsError, isIgnoredPath, jsonLogger, type Enqueue, type Source, type TriggerSource, type WatchOptions } from '../../../src/watch/index.js';
import type { HostPort } from '../../../src/reconcile/ports.js';
import { GatedHost, parsePrometheus, sampleValue, sleep, waitFor, writeFilesInPlace } from './helpers.js';

const P = 'vftest-watch';
const VM1 = `${P}-vm1`;
const DEBOUNCE = 400;

function manifests(opts: Partial<Parameters<typeof labManifests>[0]> = {}): Record<string, string> {
  return labManifests({ prefix: P, poolPath: '/srv/pools/watch', ...opts });
}

const fx = useHarness({ dirPrefix: 'vftest-watch-', newHost: () => new GatedHost(), manifests: manifests() });
let controller: WatchController | undefined;
let logs: Record<string, unknown>[];
let connectAttempts: number;
let failConnects: number;

function make(extra: Partial<WatchOptions> = {}): WatchController {
  controller = new WatchController({
    dir: fx.mdir,
    store: fx.store,
    connect: async (): Promise<HostPort> => {
      connectAttempts += 1;
      if (failConnects > 0) {
        failConnects -= 1;
        throw new Error('connection refused');
      }
      return fx.host;
    },
    debounceMs: DEBOUNCE,
    eventDebounceMs: 20,
    resyncMs: 0,
    gracefulStop: false,
    retry: FAST_RETRY,
    reconnect: { initialDelayMs: 10, maxDelayMs: 40, factor: 2 },
    logger: jsonLogger({ level: 'debug', write: (l) => void logs.push(JSON.parse(l) as Record<string, unknown>) }),
    ...extra,
  });
  return controller;
}

async function startConverged(extra: Partial<WatchOptions> = {}): Promise<WatchController> {
  const c = make(extra);
  await c.start();
  await waitFor(() => c.ready, 'the initial reconcile');
  await c.idle();
  return c;
}

async function metric(c: WatchController, name: string, labels: Record<string, string> = {}): Promise<number> {
  return sampleValue(parsePrometheus(await c.metrics.render()), name, labels);
}

function runsFrom(source: TriggerSource): number {
  return logs.filter((l) => l.msg === 'reconcile started' && (l.sources as string[]).includes(source)).length;
}

beforeEach(() => {
  logs = [];
  connectAttempts = 0;
  failConnects = 0;
  controller = undefined;
});

// before the harness closes the store (after-hooks run in reverse order)
afterEach(async () => {
  fx.host.open();
  await controller?.stop();
});

describe('start', () => {
  it('runs the initial reconcile, becomes ready and holds the writer lock', async () => {
    const c = make();
    expect(c.ready).toBe(false);
    await c.start();
    await waitFor(() => c.ready, 'ready');
    expect(fx.host.domains.get(VM1)?.active).toBe(true);
    expect(c.lastRun?.outcome).toBe('succeeded');
    expect(c.lastRun?.plan?.create).toBe(7);
    expect(await metric(c, 'virtform_triggers_total', { source: 'initial' })).toBe(1);
    expect(await metric(c, 'virtform_reconcile_runs_total', { outcome: 'succeeded' })).toBe(1);
    expect(await metric(c, 'virtform_connected')).toBe(1);
    expect(await metric(c, 'virtform_resources', { kind: 'VirtualMachine', state: 'running' })).toBe(1);
    await expect(fx.store.acquireLease({ command: 'test' })).rejects.toBeInstanceOf(LeaseHeldError);
  });

  it('refuses an empty folder unless allowEmpty, without taking the lock', async () => {
    writeManifests(fx.mdir, {});
    await expect(make().start()).rejects.toBeInstanceOf(EmptyManifestsError);
    const lock = await fx.store.acquireLease({ command: 'test' });
    await lock.release();
    controller = undefined;
    const c = make({ allowEmpty: true });
    await c.start();
    await waitFor(() => c.ready, 'ready with an empty folder');
    expect(c.lastRun?.outcome).toBe('noop');
  });

  it('keeps retrying the first connection with backoff and reconciles once connected', async () => {
    failConnects = 2;
    const c = make();
    await c.start();
    await waitFor(() => c.ready, 'ready after failed connects');
    expect(connectAttempts).toBe(3);
    expect(logs.filter((l) => l.msg === 'connection failed').map((l) => l.retryInMs)).toEqual([10, 20]);
    expect(await metric(c, 'virtform_triggers_total', { source: 'initial' })).toBe(1);
  });
});

describe('run loop', () => {
  it('a burst of 50 manifest writes causes exactly one reconcile', async () => {
    const c = await startConverged();
    const runsBefore = c.runCount;
    for (let i = 0; i < 50; i++) {
      writeFileSync(join(fx.mdir, `extra-${String(i).padStart(2, '0')}.yaml`), `apiVersion: virtform.dev/v1
kind: Volume
metadata: {name: ${P}-extra-${i}}
spec: {pool: ${P}-pool, capacity: 1MiB, format: raw}
`);
    }
    await waitFor(() => c.runCount > runsBefore, 'the file-triggered run', 20_000);
    await c.idle();
    // Give any straggling file event time to (wrongly) cause a second run.
    await sleep(DEBOUNCE * 3);
    await c.idle();
    expect(c.runCount - runsBefore).toBe(1);
    expect(runsFrom('file')).toBe(1);
    expect(await metric(c, 'virtform_triggers_total', { source: 'file' })).toBe(1);
    expect(fx.host.volumes.get(`${P}-pool`)!.size).toBe(3 + 50);
    expect(c.lastRun?.plan?.create).toBe(50);
  });

  it('triggers during a run coalesce into exactly one follow-up run, never overlapping', async () => {
    const c = await startConverged();
    const runsBefore = c.runCount;
    fx.host.maxInSnapshot = 0;
    fx.host.hold = true;
    c.trigger('resync');
    await waitFor(() => fx.host.waiting === 1, 'the run to reach the gate');
    for (let i = 0; i < 5; i++) c.trigger('resync');
    fx.host.emitDomainEvent(VM1, 'stopped');
    writeFileSync(join(fx.mdir, 'vms.yaml'), manifests({ vm1Memory: '96MiB' })['vms.yaml']!);
    await sleep(DEBOUNCE + 200); // the file trigger lands while the first run is still held
    expect(c.runCount).toBe(runsBefore); // still in flight
    fx.host.open();
    await waitFor(() => c.runCount === runsBefore + 2, 'the follow-up run');
    await c.idle();
    await sleep(100);
    await c.idle();
    expect(c.runCount).toBe(runsBefore + 2);
    expect(c.maxConcurrentRuns).toBe(1);
    expect(fx.host.maxInSnapshot).toBe(1);
    // started/finished log lines strictly alternate: no overlap
    const seq = logs.filter((l) => l.msg === 'reconcile started' || l.msg === 'reconcile finished').map((l) => l.msg);
    seq.forEach((m, i) => expect(m).toBe(i % 2 === 0 ? 'reconcile started' : 'reconcile finished'));
    expect(new Set(c.lastRun!.sources)).toEqual(new Set(['resync', 'event', 'file']));
    expect(fx.host.domains.get(VM1)!.def.memoryKiB).toBe(96 * 1024);
  });
});

describe('manifest errors', () => {
  it('an invalid edit logs every error with file:line, keeps the last good state and changes nothing; a fix converges', async () => {
    const c = await startConverged();
    const goodDigest = c.lastGoodDesired!.digest;
    const mutations = fx.host.mutationCount();
    writeFileSync(join(fx.mdir, 'vms.yaml'), manifests({ vm1Memory: 'lots' })['vms.yaml']!.replace('vcpus: 1', 'vcpus: -3'));
    await waitFor(() => c.lastRun?.outcome === 'invalid', 'the invalid run');
    const errors = logs.filter((l) => l.msg === 'manifest error');
    expect(errors.length).toBeGreaterThanOrEqual(2);
    for (const e of errors) {
      expect(String(e.file)).toMatch(/vms\.yaml$/);
      expect(e.line).toBeGreaterThan(0);
      expect(String(e.text)).toMatch(/vms\.yaml:\d+:\d+: /);
    }
    const status = await c.status();
    expect(status.manifests.valid).toBe(false);
    expect(status.manifests.errors.length).toBe(errors.length);
    expect(status.manifests.digest).toBe(goodDigest);
    expect(await metric(c, 'virtform_manifest_errors')).toBe(errors.length);
    expect(await metric(c, 'virtform_reconcile_runs_total', { outcome: 'invalid' })).toBe(1);

    // While the folder is invalid nothing changes, not even on a resync after outside drift.
    fx.host.domains.get(VM1)!.active = false;
    c.trigger('resync');
    await waitFor(() => c.runCount >= 3, 'the resync run');
    await c.idle();
    expect(fx.host.mutationCount()).toBe(mutations);
    expect(c.lastGoodDesired!.digest).toBe(goodDigest);
    expect(fx.host.domains.get(VM1)!.active).toBe(false);

    writeFilesInPlace(fx.mdir, manifests({ vm1Memory: '128MiB' }));
    await waitFor(() => c.lastRun?.outcome === 'succeeded', 'the converging run after the fix');
    expect(fx.host.domains.get(VM1)!.def.memoryKiB).toBe(128 * 1024);
    expect(fx.host.domains.get(VM1)!.active).toBe(true);
    expect(c.lastGoodDesired!.digest).not.toBe(goodDigest);
    expect(await metric(c, 'virtform_manifest_errors')).toBe(0);
    expect((await c.status()).manifests).toMatchObject({ valid: true, errors: [] });
  });

  it('an edit that empties the folder is refused like reconcile does and deletes nothing', async () => {
    const c = await startConverged();
    const mutations = fx.host.mutationCount();
    for (const f of ['storage.yaml', 'network.yaml', 'vms.yaml']) rmSync(join(fx.mdir, f));
    await waitFor(() => c.lastRun?.outcome === 'invalid', 'the refused run');
    expect(fx.host.mutationCount()).toBe(mutations);
    expect(fx.host.domains.has(VM1)).toBe(true);
    expect((await c.status()).manifests.errors[0]).toMatch(/no manifests found/);
  });

  it('ignores editor temp files and .git/', async () => {
    expect(['/m/.vms.yaml.swp', '/m/vms.yaml~', '/m/.#vms.yaml', '/m/4913', '/m/.git/HEAD', '/m/.git'].every(isIgnoredPath)).toBe(true);
    expect(['/m/vms.yaml', '/m/sub/net.yml', '/m/gitlab.yaml'].some(isIgnoredPath)).toBe(false);
    const c = await startConverged();
    const runs = c.runCount;
    mkdirSync(join(fx.mdir, '.git'), { recursive: true });
    writeFileSync(join(fx.mdir, '.git', 'bad.yaml'), 'x: [');
    writeFileSync(join(fx.mdir, '.#vms.yaml'), 'x');
    writeFileSync(join(fx.mdir, '.vms.yaml.swp'), 'x');
    writeFileSync(join(fx.mdir, 'vms.yaml~'), 'x');
    writeFileSync(join(fx.mdir, '4913'), '');
    await sleep(DEBOUNCE * 3);
    await c.idle();
    expect(c.runCount).toBe(runs);
    expect(await metric(c, 'virtform_triggers_total', { source: 'file' })).toBe(0);
  });
});

describe('folder replaced', () => {
  it('watches the folder again after it was removed and re-created', async () => {
    const c = await startConverged();
    rmSync(fx.mdir, { recursive: true, force: true });
    await waitFor(() => logs.some((l) => l.msg === 'manifest folder removed; watching for it to come back'), 'the removal to be noticed');
    writeFilesInPlace(fx.mdir, manifests({ vm1Memory: '72MiB' }));
    await waitFor(() => fx.host.domains.get(VM1)!.def.memoryKiB === 72 * 1024, 'the re-created folder to converge');
    expect(fx.host.domains.has(VM1)).toBe(true);
    await c.idle();
    writeFilesInPlace(fx.mdir, manifests({ vm1Memory: '88MiB' }));
    await waitFor(() => fx.host.domains.get(VM1)!.def.memoryKiB === 88 * 1024, 'a later edit in the re-created folder');
  });
});

describe('lifecycle events', () => {
  it('an owned VM stopped outside virtform is started again; a foreign VM event is ignored', async () => {
    const c = await startConverged();
    fx.host.domains.set('foreign-vm', {
      uuid: '11111111-2222-3333-4444-555555555555', active: true, autostart: false,
      def: { ...fx.host.domains.get(VM1)!.def, name: 'foreign-vm' },
    });
    const runs = c.runCount;
    fx.host.domains.get('foreign-vm')!.active = false;
    fx.host.emitDomainEvent('foreign-vm', 'stopped');
    await sleep(300);
    await c.idle();
    expect(c.runCount).toBe(runs);
    expect(await metric(c, 'virtform_triggers_total', { source: 'event' })).toBe(0);
    expect(fx.host.domains.get('foreign-vm')!.active).toBe(false);

    const drift = await metric(c, 'virtform_drift_corrections_total');
    fx.host.domains.get(VM1)!.active = false; // "virsh destroy"
    fx.host.emitDomainEvent(VM1, 'stopped');
    await waitFor(() => fx.host.domains.get(VM1)!.active, 'the VM to be started again');
    await c.idle();
    expect(await metric(c, 'virtform_triggers_total', { source: 'event' })).toBe(1);
    expect(await metric(c, 'virtform_drift_corrections_total')).toBe(drift + 1);
    expect(await metric(c, 'virtform_apply_steps_total', { op: 'vm.start', outcome: 'succeeded' })).toBe(2);
  });
});

describe('connection', () => {
  it('on disconnect: not ready, reconnects with capped exponential backoff, re-registers events, resyncs', async () => {
    const c = await startConverged();
    failConnects = 4;
    const attempts = connectAttempts;
    fx.host.disconnect(new Error('libvirtd went away'));
    expect(c.ready).toBe(false);
    expect(c.connectionState).toBe('disconnected');
    expect(await metric(c, 'virtform_connected')).toBe(0);
    fx.host.domains.get(VM1)!.active = false; // killed while we were not listening
    await waitFor(() => c.ready, 'reconnect');
    expect(connectAttempts - attempts).toBe(5);
    expect(logs.filter((l) => l.msg === 'connection failed').map((l) => l.retryInMs)).toEqual([10, 20, 40, 40]);
    await waitFor(() => fx.host.domains.get(VM1)!.active, 'the resync after reconnect to restart the VM');
    expect(await metric(c, 'virtform_triggers_total', { source: 'reconnect' })).toBe(1);
    expect(await metric(c, 'virtform_connected')).toBe(1);
    // events are delivered on the new registration
    await c.idle();
    fx.host.domains.get(VM1)!.active = false;
    fx.host.emitDomainEvent(VM1, 'crashed');
    await waitFor(() => fx.host.domains.get(VM1)!.active, 'event-driven restart after reconnect');
  });
});

describe('stop', () => {
  it('waits for the run in flight, starts no new run, closes and releases the lock', async () => {
    const c = await startConverged();
    fx.host.hold = true;
    writeFilesInPlace(fx.mdir, manifests({ vm1Memory: '80MiB' }));
    await waitFor(() => fx.host.waiting === 1, 'a run in flight');
    let stopped = false;
    const stopping = c.stop().then(() => {
      stopped = true;
    });
    c.trigger('resync');
    await sleep(100);
    expect(stopped).toBe(false);
    await expect(fx.store.acquireLease({ command: 'test' })).rejects.toBeInstanceOf(LeaseHeldError);
    const runs = c.runCount;
    fx.host.open();
    await stopping;
    expect(c.runCount).toBe(runs + 1); // the run in flight finished …
    // It was stopped while observing, so it started no step: the change waits for the next start.
    expect(c.lastRun?.outcome).toBe('interrupted');
    expect(fx.host.domains.get(VM1)!.def.memoryKiB).toBe(64 * 1024);
    expect(await fx.store.journal.listOpen()).toEqual([]);
    await sleep(50);
    expect(c.runCount).toBe(runs + 1); // … and nothing ran after it
    expect(c.connectionState).toBe('closed');
    expect(await metric(c, 'virtform_up')).toBe(0);
    const lock = await fx.store.acquireLease({ command: 'test' });
    await lock.release();
  });
});

describe('requeue and stalled', () => {
  const extraVolume = (capacity: string): string => `apiVersion: virtform.dev/v1
kind: Volume
metadata: {name: ${P}-bad}
spec: {pool: ${P}-pool, capacity: ${capacity}, format: raw}
`;

  it('a failed run is requeued with jittered exponential backoff (default 1 s doubling) and converges within seconds', async () => {
    const c = await startConverged(); // default requeue policy: 1 s doubling to 60 s, half jittered
    const runs = c.runCount;
    // Two runs' worth of failures (2 attempts per run): the 1st and 2nd runs fail, the 3rd converges.
    fx.host.failNext('startDomain', VM1, 4);
    fx.host.domains.get(VM1)!.active = false; // "virsh destroy"
    const t0 = Date.now();
    fx.host.emitDomainEvent(VM1, 'stopped');
    await waitFor(() => c.lastRun?.outcome === 'failed' && c.runCount === runs + 1, 'the failing run');
    const status = await c.status();
    expect(status.requeue.attempt).toBe(1);
    expect(status.requeue.pending).toMatchObject({ reason: 'failed' });
    expect(await metric(c, 'virtform_backoff_seconds')).toBeGreaterThanOrEqual(0.5);
    expect(await metric(c, 'virtform_backoff_seconds')).toBeLessThanOrEqual(1);
    expect(status.resources.find((r) => r.name === VM1)).toMatchObject({ status: 'failed', observed: 'stopped', desired: 'running' });

    await waitFor(() => fx.host.domains.get(VM1)!.active, 'the requeued runs to start the VM', 10_000);
    await c.idle();
    const convergedMs = Date.now() - t0;
    expect(convergedMs).toBeLessThan(6_000); // the resync is off: only the requeue can have done it
    expect(c.lastRun?.outcome).toBe('succeeded');
    expect(c.runCount).toBe(runs + 3);
    const requeues = logs.filter((l) => l.msg === 'requeue');
    expect(requeues.map((l) => [l.attempt, l.reason])).toEqual([[1, 'failed'], [2, 'failed']]);
    expect(Number(requeues[0]!.delayMs)).toBeGreaterThanOrEqual(500);
    expect(Number(requeues[0]!.delayMs)).toBeLessThanOrEqual(1000);
    expect(Number(requeues[1]!.delayMs)).toBeGreaterThanOrEqual(1000);
    expect(Number(requeues[1]!.delayMs)).toBeLessThanOrEqual(2000);
    expect(logs.filter((l) => l.msg === 'reconcile started').slice(-2).map((l) => l.sources)).toEqual([['requeue'], ['requeue']]);
    expect(await metric(c, 'virtform_requeue_total', { reason: 'failed' })).toBe(2);
    expect(await metric(c, 'virtform_triggers_total', { source: 'requeue' })).toBe(2);
    expect(await metric(c, 'virtform_backoff_seconds')).toBe(0); // reset on success
    const after = await c.status();
    expect(after.requeue).toEqual({ attempt: 0 });
    expect(after.resources.find((r) => r.name === VM1)).toMatchObject({ status: 'converged', observed: 'running' });
  });

  it('a run that throws (the connection dropped mid-run) is requeued too', async () => {
    const c = await startConverged({ requeue: { initialDelayMs: 20, maxDelayMs: 40 } });
    const snapshot = fx.host.snapshot.bind(fx.host);
    let throws = 1;
    fx.host.snapshot = async () => {
      if (throws-- > 0) throw new Error('socket hang up');
      return snapshot();
    };
    c.trigger('resync');
    await waitFor(() => logs.some((l) => l.msg === 'requeue' && l.reason === 'error'), 'the requeue after the error');
    await waitFor(() => c.lastRun?.outcome === 'noop', 'the requeued run');
    expect(await metric(c, 'virtform_requeue_total', { reason: 'error' })).toBe(1);
  });

  it('an invalid definition stalls the resource: no requeue, shown in /status, until a manifest change', async () => {
    const c = await startConverged({ requeue: { initialDelayMs: 50, maxDelayMs: 100 } });
    fx.host.failNext('createVolume', `${P}-bad.img`, Infinity, 'invalid');
    writeFileSync(join(fx.mdir, 'bad.yaml'), extraVolume('1MiB'));
    await waitFor(() => c.lastRun?.outcome === 'failed', 'the failing run');
    const runs = c.runCount;
    await sleep(600); // many requeue delays of this policy
    await c.idle();
    expect(c.runCount).toBe(runs);
    expect(logs.filter((l) => l.msg === 'requeue')).toEqual([]);
    expect(logs.some((l) => l.msg === 'stalled: not retrying until a manifest change or a lifecycle event')).toBe(true);
    expect(await metric(c, 'virtform_stalled_resources')).toBe(1);
    expect(await metric(c, 'virtform_requeue_total', { reason: 'failed' })).toBe(0);
    const status = await c.status();
    expect(status.stalled).toHaveLength(1);
    expect(status.stalled[0]).toMatchObject({ resource: `Volume/${P}-bad`, reason: expect.stringMatching(/^invalid: injected failure/) });
    expect(status.resources.find((r) => r.name === `${P}-bad`)).toMatchObject({ status: 'stalled', observed: 'absent' });
    expect(status.requeue.pending).toBeUndefined();
    expect(c.lastRun?.stalled).toEqual([{ resource: `Volume/${P}-bad`, reason: expect.stringMatching(/^invalid:/) }]);

    // An input change is retried: the fix converges and clears the stall.
    fx.host.failures.clear();
    writeFileSync(join(fx.mdir, 'bad.yaml'), extraVolume('2MiB'));
    await waitFor(() => c.lastRun?.outcome === 'succeeded', 'the run after the manifest change');
    expect(fx.host.volumes.get(`${P}-pool`)!.get(`${P}-bad.img`)?.capacityBytes).toBe(2 * 1024 * 1024);
    expect((await c.status()).stalled).toEqual([]);
    expect(await metric(c, 'virtform_stalled_resources')).toBe(0);
  });

  it('a conflict with a foreign object stalls it instead of requeueing', async () => {
    const c = await startConverged({ requeue: { initialDelayMs: 50, maxDelayMs: 100 } });
    fx.host.networks.set(`${P}-foreign`, {
      uuid: '22222222-3333-4444-5555-666666666666', active: true, autostart: false,
      def: { ...fx.host.networks.get(`${P}-net`)!.def, name: `${P}-foreign` },
    });
    writeFileSync(join(fx.mdir, 'foreign.yaml'), `apiVersion: virtform.dev/v1
kind: Network
metadata: {name: ${P}-foreign}
spec: {mode: isolated, cidr: 10.232.0.0/24}
`);
    await waitFor(() => c.lastRun?.outcome === 'failed', 'the conflicting run');
    const runs = c.runCount;
    await sleep(500);
    await c.idle();
    expect(c.runCount).toBe(runs);
    const status = await c.status();
    expect(status.stalled.map((s) => s.resource)).toEqual([`Network/${P}-foreign`]);
    expect(status.stalled[0]!.reason).toMatch(/^conflict: .*adopt/);
    expect(status.resources.find((r) => r.name === `${P}-foreign`)).toMatchObject({ status: 'stalled' });
    expect(logs.filter((l) => l.msg === 'requeue')).toEqual([]);
  });
});

describe('/status: addresses', () => {
  it('each VM row has addresses (by MAC, with their source) and addressesReady; a stopped VM has none', async () => {
    fx.host.guestDhcp = true;
    const c = await startConverged();
    const status = await c.status();
    const vm1 = status.resources.find((r) => r.name === VM1)!;
    const lease = fx.host.leases.get(`${P}-net`)!.find((l) => l.mac === '52:54:00:aa:00:01')!;
    expect(vm1).toMatchObject({
      addressesReady: true, addressesNote: null,
      addresses: [{ mac: '52:54:00:aa:00:01', network: `${P}-net`, dhcp: true, addresses: [{ ip: lease.ip, prefix: 24, family: 'ipv4', source: 'lease', hostname: null }] }],
    });
    expect(status.resources.find((r) => r.name === `${P}-vm2`)).toMatchObject({ addresses: null, addressesReady: false });
    expect(status.resources.find((r) => r.kind === 'Network')).toMatchObject({ addresses: null, addressesReady: null });
    await c.stop();
  });
});

describe('/status and /metrics: the per-host summary', () => {
  it('hosts[] says connected, libvirt and capacity used; virtform_host_* gauges carry host (local here), resource series stay unlabelled', async () => {
    fx.host.node = { memory: 16 * 2 ** 30, cpus: 8, poolCapacity: 50 * 2 ** 30 };
    const c = await startConverged({ uri: 'test:///fake' });
    const status = await c.status();
    const domains = [...fx.host.domains.values()];
    const memory = domains.reduce((n, d) => n + d.def.memoryKiB * 1024, 0);
    const vcpus = domains.reduce((n, d) => n + d.def.vcpus, 0);
    expect(status.hosts).toHaveLength(1);
    expect(status.hosts[0]).toMatchObject({
      host: 'local', uri: 'test:///fake', connected: true, error: null,
      memory: { allocated: memory, capacity: 16 * 2 ** 30, reserved: 0, source: 'host' },
      vcpus: { allocated: vcpus, capacity: 8 },
      vms: { total: domains.length, managed: domains.length, running: domains.filter((d) => d.active).length },
    });
    expect(status.hosts[0]!.pools.map((p) => p.name)).toEqual([...fx.host.pools.keys()].filter((n) => fx.host.pools.get(n)!.active).sort());
    expect(await metric(c, 'virtform_host_reachable', { host: 'local' })).toBe(1);
    expect(await metric(c, 'virtform_host_memory_allocated_bytes', { host: 'local' })).toBe(memory);
    expect(await metric(c, 'virtform_host_memory_capacity_bytes', { host: 'local' })).toBe(16 * 2 ** 30);
    expect(await metric(c, 'virtform_host_vcpus_allocated', { host: 'local' })).toBe(vcpus);
    expect(await metric(c, 'virtform_host_vcpus_capacity', { host: 'local' })).toBe(8);
    const text = await c.metrics.render();
    expect(text).toMatch(/^virtform_resources\{kind="VirtualMachine",state="[a-z]+"\} \d+$/m); // no host label on the local host
    // The host gone: reachable 0, its capacity series dropped (unknown, not 0).
    c.metrics.setHosts([{ ...status.hosts[0]!, connected: false, error: 'gone', memory: null, vcpus: null, pools: [], vms: null }]);
    expect(await metric(c, 'virtform_host_reachable', { host: 'local' })).toBe(0);
    expect(await c.metrics.render()).not.toMatch(/^virtform_host_memory_capacity_bytes/m);
    // A named host (a fleet's Host): its series carry it.
    c.metrics.setHosts([{ ...status.hosts[0]!, host: 'h2' }]);
    expect(await metric(c, 'virtform_host_vcpus_capacity', { host: 'h2' })).toBe(8);
    await c.stop();
  });
});

describe('sources', () => {
  it('a plugged-in source (as a future git poller would be) feeds the same queue and runner', async () => {
    let enqueue: Enqueue | undefined;
    let stopped = false;
    const git: Source = {
      name: 'git',
      async start(e) {
        enqueue = e;
      },
      async stop() {
        stopped = true;
      },
    };
    const c = await startConverged({ sources: [git] });
    const runs = c.runCount;
    writeFilesInPlace(fx.mdir, manifests({ vm1Memory: '80MiB' })); // as if the poller checked out a new revision …
    enqueue!('git'); // … and asked for a run (the folder watch fires too, after its debounce)
    await waitFor(() => fx.host.domains.get(VM1)!.def.memoryKiB === 80 * 1024, 'the run the source asked for');
    expect(logs.find((l) => l.msg === 'reconcile started' && (l.sources as string[]).includes('git'))).toBeDefined();
    expect(await metric(c, 'virtform_triggers_total', { source: 'git' })).toBe(1);
    // The run is counted when it ends (after the apply the host already shows).
    await waitFor(() => c.runCount > runs, 'the run to be counted');
    await c.stop();
    expect(stopped).toBe(true);
  });
});

describe('incremental runs (issue 22)', () => {
  const finishedRuns = (): Record<string, unknown>[] => logs.filter((l) => l.msg === 'reconcile finished');
  const readOf = (l: Record<string, unknown>): string => (l.timing as { read: string }).read;

  it('a file or event run is incremental; initial, resync, requeue and reconnect runs are full reads; --no-incremental: all full', async () => {
    const c = await startConverged();
    expect(readOf(finishedRuns().at(-1)!)).toBe('full');
    for (const [source, read] of [['event', 'incremental'], ['file', 'incremental'], ['resync', 'full'], ['event', 'incremental'], ['requeue', 'full'], ['reconnect', 'full']] as const) {
      const n = finishedRuns().length;
      c.trigger(source);
      await c.idle();
      const run = finishedRuns()[n]!;
      expect([source, run.sources, readOf(run)]).toEqual([source, [source], read]);
    }
    // The first incremental run read again what the initial run changed (virtform's own calls
    // forget what they touch); the second one read no definition and no file again.
    const [first, second] = finishedRuns().filter((l) => readOf(l) === 'incremental');
    expect((first!.timing as { definitions: { read: number } }).definitions.read).toBeGreaterThan(0);
    const inc = second!;
    expect(inc.timing).toMatchObject({ definitions: { read: 0 }, files: { read: 0, parsed: 0 } });
    expect((c.lastRun?.timing?.ownMs ?? -1) >= 0).toBe(true);
    expect(await metric(c, 'virtform_watch_cache_total', { what: 'definition', outcome: 'hit' })).toBeGreaterThan(0);
    await c.stop();

    logs = [];
    const full = await startConverged({ incremental: false });
    full.trigger('event');
    await full.idle();
    expect(finishedRuns().map(readOf)).toEqual(['full', 'full']);
  });
});
