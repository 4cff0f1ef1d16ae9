/**
 * The watcher's side of the request queue (savedplan, issue 24) on the FakeHost: a request
 * submitted while the watcher holds the lease is served by it between runs, with the lease's
 * guard and its host; an unknown type fails with a clear message; a request a dead holder took
 * is abandoned by the next holder. (The real daemon: test/integration/saved-plan.test.ts.)
 */
import { afterEach, describe, expect, it } from 'vitest';
import { labManifests } from '../../support/manifests.js';
import { FAST_RETRY, useHarness } from '../../support/harness.js';
import { awaitOutcome, openStateStore, submit, type StateStore } from '../../../src/state/index.js';
import { WatchController } from '../../../src/watch/index.js';
import type { HostPort } from '../../../src/reconcile/ports.js';
import { waitFor } from './helpers.js';

const fx = useHarness({ dirPrefix: 'vftest-requests-', manifests: labManifests({ prefix: 'vftest-req', poolPath: '/srv/pools/req' }) });
let controller: WatchController | undefined;
let other: StateStore | undefined;

afterEach(async () => {
  await controller?.stop();
  await other?.close();
  controller = undefined;
  other = undefined;
});

async function start(): Promise<WatchController> {
  controller = new WatchController({
    dir: fx.mdir, store: fx.store, connect: async (): Promise<HostPort> => fx.host,
    resyncMs: 0, gracefulStop: false, retry: FAST_RETRY, requestPollMs: 20, debounceMs: 100,
  });
  await controller.start();
  await waitFor(() => controller!.ready, 'the initial reconcile');
  await controller.idle();
  return controller;
}

describe('request queue served by a watcher', () => {
  it('a request is served between runs with the watcher host, guard and desired state; the outcome reaches the requester', async () => {
    const c = await start();
    const seen: Record<string, unknown>[] = [];
    c.requests.handle('echo', async (args, ctx) => {
      seen.push({ args, host: ctx.host === fx.host, guard: ctx.guard?.(), resources: ctx.desired?.resources.length, type: ctx.request.type });
      return { ok: true, exitCode: 0, message: `echo ${String(args.word)}`, result: { word: args.word } };
    });
    other = await openStateStore(fx.dbPath);
    const id = await submit(other, { type: 'echo', args: { word: 'hi' }, requestedBy: 'u@h (pid 1)' });
    const done = await awaitOutcome(other, id, { timeoutMs: 10_000, pollMs: 20 });
    expect(done).toMatchObject({ status: 'succeeded', outcome: { ok: true, exitCode: 0, message: 'echo hi', result: { word: 'hi' } } });
    expect(done.claimedBy).toMatch(/@\d+$/);
    expect(seen).toEqual([{ args: { word: 'hi' }, host: true, guard: undefined, resources: expect.any(Number), type: 'echo' }]);
    expect((await other.events.recent(20)).map((e) => e.message)).toContain(`request ${id} (echo, by u@h (pid 1)): echo hi`);
  });

  it('a type the watcher does not serve fails with a message naming what it serves; a handler that throws fails its request', async () => {
    const c = await start();
    c.requests.handle('boom', async () => {
      throw new Error('kaput');
    });
    other = await openStateStore(fx.dbPath);
    const unknown = await awaitOutcome(other, await submit(other, { type: 'nope', args: {}, requestedBy: 'u' }), { timeoutMs: 10_000, pollMs: 20 });
    expect(unknown.status).toBe('failed');
    expect(unknown.outcome?.message).toMatch(/serves no request of type 'nope' \(it serves: boom, plan, restart, snapshot-revert\); nothing was done/);
    const boom = await awaitOutcome(other, await submit(other, { type: 'boom', args: {}, requestedBy: 'u' }), { timeoutMs: 10_000, pollMs: 20 });
    expect(boom).toMatchObject({ status: 'failed', outcome: { ok: false, exitCode: 1, message: 'failed: kaput' } });
  });

  it('a request an earlier holder took and never finished is abandoned when the next holder takes the lease', async () => {
    other = await openStateStore(fx.dbPath);
    const id = await submit(other, { type: 'echo', args: {}, requestedBy: 'u' });
    await other.requests.claim('dead-holder@1');
    await start();
    expect(await other.requests.get(id)).toMatchObject({ status: 'abandoned', outcome: { ok: false, exitCode: 1 } });
    expect((await other.requests.get(id))!.outcome!.message).toMatch(/abandoned: .*taken by dead-holder@1/);
  });
});
