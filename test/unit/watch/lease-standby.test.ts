/**
 * `watch` and the writer lease: a second watcher on the same state DB is a standby (it logs the
 * holder and retries every retry period) and takes over once the first releases; a watcher whose
 * lease was taken over steps down (no further run) and is a standby again.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { labManifests, tempDir, writeManifests } from '../../support/manifests.js';
import { FakeHost } from '../../support/fake-host.js';
import { openStateStore, type LeaseTiming, type StateStore } from '../../../src/state/index.js';
import { WatchController, jsonLogger } from '../../../src/watch/index.js';
import { waitFor } from './helpers.js';

const P = 'vftest-wlease';
const FAST: LeaseTiming = { leaseMs: 1500, renewDeadlineMs: 1000, retryMs: 100 };
let work: string;
let store: StateStore;
let host: FakeHost;
const controllers: WatchController[] = [];

function make(name: string, logs: Record<string, unknown>[]): WatchController {
  const mdir = join(work, 'm');
  const c = new WatchController({
    dir: mdir, store, connect: async () => host, resyncMs: 0, debounceMs: 50, eventDebounceMs: 20, gracefulStop: false, watchFiles: false,
    retry: { maxAttempts: 2, baseDelayMs: 1, maxDelayMs: 2 }, lease: FAST, lockCommand: `watch ${name}`,
    logger: jsonLogger({ level: 'debug', write: (l) => void logs.push(JSON.parse(l) as Record<string, unknown>) }),
  });
  controllers.push(c);
  return c;
}

beforeEach(async () => {
  work = tempDir(`${P}-`);
  writeManifests(join(work, 'm'), labManifests({ prefix: P, poolPath: '/srv/pools/wlease' }));
  store = await openStateStore(join(work, 'state.db'));
  host = new FakeHost();
});
afterEach(async () => {
  for (const c of controllers.splice(0)) await c.stop();
  await store.close();
  rmSync(work, { recursive: true, force: true });
});

describe('watch and the writer lease', () => {
  it('a second watcher waits as a standby and takes over when the first stops', async () => {
    const aLogs: Record<string, unknown>[] = [];
    const bLogs: Record<string, unknown>[] = [];
    const a = make('a', aLogs);
    await a.start();
    await waitFor(() => a.ready, 'a ready');
    const b = make('b', bLogs);
    let bStarted = false;
    const bStart = b.start().then(() => (bStarted = true));
    await waitFor(() => bLogs.some((l) => l.msg === 'standby: another process holds the writer lease; retrying'), 'b standby');
    await new Promise((r) => setTimeout(r, 5 * FAST.retryMs));
    expect(bStarted).toBe(false);
    expect(b.ready).toBe(false);
    expect(bLogs.filter((l) => l.msg === 'reconcile started')).toEqual([]);
    expect(bLogs.find((l) => l.msg?.toString().startsWith('standby'))).toMatchObject({ holderCommand: 'watch a', epoch: 1 });
    expect((await a.status()).lease).toMatchObject({ role: 'leader', epoch: 1, lost: null, leader: { held: true, epoch: 1, command: 'watch a', pid: process.pid } });
    // The standby's /status names the leader too.
    expect((await b.status()).lease).toMatchObject({ role: 'standby', epoch: null, holder: null, leader: { held: true, epoch: 1, command: 'watch a' } });
    expect(b.notReadyReason).toMatch(/^standby: /);
    expect(await a.metrics.render()).toMatch(/^virtform_lease_leader 1$/m);
    expect(await a.metrics.render()).toMatch(/^virtform_lease_epoch 1$/m);
    expect(await b.metrics.render()).toMatch(/^virtform_lease_leader 0$/m);
    await a.stop();
    await bStart;
    await waitFor(() => b.ready, 'b ready after taking over');
    expect(bLogs.find((l) => l.msg === 'writer lease acquired')).toMatchObject({ epoch: 2 });
    expect((await b.status()).lease).toMatchObject({ role: 'leader', epoch: 2, lost: null, leader: { held: true, epoch: 2, command: 'watch b' } });
  });

  it('a watcher whose lease is taken over is deposed (says so), starts no run, and is a standby again', async () => {
    const logs: Record<string, unknown>[] = [];
    const a = make('a', logs);
    await a.start();
    await waitFor(() => a.ready, 'a ready');
    // Another holder takes the lease over (as after an expiry): a's next renewal finds it gone.
    await store.db.updateTable('leases').set({ holder: 'elsewhere/1/x', pid: 1, hostname: 'elsewhere', epoch: 7, expires_at: Date.now() + 60_000 }).execute();
    await waitFor(() => logs.some((l) => l.msg?.toString().startsWith('deposed')), 'step-down');
    expect(logs.find((l) => l.msg?.toString().startsWith('deposed'))).toMatchObject({ epoch: 1, leader: 'elsewhere/1/x', leaderHost: 'elsewhere', leaderEpoch: 7 });
    expect(a.ready).toBe(false);
    expect(await a.metrics.render()).toMatch(/^virtform_lease_leader 0$/m);
    const runs = logs.filter((l) => l.msg === 'reconcile started').length;
    a.trigger('resync');
    await new Promise((r) => setTimeout(r, 300));
    expect(logs.filter((l) => l.msg === 'reconcile started').length).toBe(runs);
    expect((await a.status()).lease).toMatchObject({ role: 'standby', epoch: null, lost: expect.stringMatching(/taken over by pid 1 on host elsewhere/) });
    await waitFor(() => logs.some((l) => l.msg === 'standby: another process holds the writer lease; retrying'), 'standby again');
  });
});
