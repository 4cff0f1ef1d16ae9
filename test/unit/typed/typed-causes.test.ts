/**
 * Typed failures, skip reasons, stalls and notes: apply reports each failure's HostError code (and
 * libvirt's code and domain) and each skip's reason as values; status derives the Stalled and
 * HeldForDataLoss conditions from the typed stall; the texts are the ones shown before.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { join } from 'node:path';
import { rmSync, writeFileSync } from 'node:fs';
import { FakeHost } from '../../support/fake-host.js';
import { desiredFrom, labManifests, tempDir, writeManifests } from '../../support/manifests.js';
import { openStateStore, type ResourceRecord, type StateStore } from '../../../src/state/index.js';
import { reconcile } from '../../../src/reconcile/engine.js';
import { skipText, type SkipReason } from '../../../src/reconcile/apply.js';
import { failureCause, HostError } from '../../../src/reconcile/ports.js';
import { toHostError } from '../../../src/reconcile/adapters/libvirt-host.js';
import { LibvirtError } from '../../../src/libvirt/index.js';
import { addNote, withdrawNotes, type ResourceChange } from '../../../src/reconcile/core/change.js';
import { WatchController, jsonLogger } from '../../../src/watch/index.js';
import { waitFor } from '../watch/helpers.js';
import { buildStatus, STALL_CONDITION_REASON, stallText, type HostView, type Stall } from '../../../src/status/index.js';
import { removingOnCall } from '../../support/vanishing-file.js';

const P = 'vftest-typedu';
const FAST_RETRY = { maxAttempts: 2, baseDelayMs: 1, maxDelayMs: 2 };

let work: string;
let host: FakeHost;
let store: StateStore;

beforeEach(async () => {
  work = tempDir();
  host = new FakeHost();
  store = await openStateStore(join(work, 'state.db'));
});
afterEach(async () => {
  await store.close();
  rmSync(work, { recursive: true, force: true });
});

async function run(concurrency?: number) {
  const mdir = join(work, 'manifests');
  writeManifests(mdir, labManifests({ prefix: P, poolPath: '/srv/pools/typed' }));
  return reconcile({ host, store, desired: await desiredFrom(mdir), retry: FAST_RETRY, gracefulStop: false, concurrency });
}

describe('apply: typed failures and skip reasons', () => {
  it('a failure carries its HostError code; a dependent is skipped with reason prerequisite', async () => {
    host.failNext('createVolume', `${P}-base.qcow2`, Infinity, 'invalid');
    const r = await run();
    expect(r.outcome).toBe('failed');
    expect(r.applied!.failures.get(`Volume/${P}-base`)).toEqual({ code: 'invalid' });
    expect(r.applied!.skips.get(`Volume/${P}-root`)).toEqual({ reason: 'prerequisite', key: `Volume/${P}-base`, status: 'failed' });
    // the texts are unchanged
    expect(r.applied!.skipped.get(`Volume/${P}-root`)).toBe(`skipped: Volume/${P}-base failed`);
    expect([...r.applied!.failures.keys()].sort()).toEqual([...r.applied!.failed.keys()].sort());
    expect([...r.applied!.skips.keys()].sort()).toEqual([...r.applied!.skipped.keys()].sort());
  });

  it('a lost connection skips the steps not started with reason connection-lost (typed, whatever the text)', async () => {
    host.failNext('createVolume', `${P}-base.qcow2`, 1, 'connection');
    const r = await run(1);
    expect(r.applied!.failures.get(`Volume/${P}-base`)?.code).toBe('connection');
    const reasons = new Set([...r.applied!.skips.values()].map((s) => s.reason));
    expect(reasons.has('connection-lost')).toBe(true);
    const lost = [...r.applied!.skips.values()].find((s) => s.reason === 'connection-lost')!;
    expect(skipText(lost)).toMatch(/^not started: connection to libvirt lost \(.*injected failure/);
  });

  it('skipText gives the texts of every reason', () => {
    const cases: [SkipReason, string][] = [
      [{ reason: 'prerequisite', key: 'Volume/a', status: 'skipped' }, 'skipped: Volume/a was skipped'],
      [{ reason: 'connection-lost', error: 'x' }, 'not started: connection to libvirt lost (x)'],
      [{ reason: 'shutting-down' }, 'not started: shutting down'],
      [{ reason: 'not-retried', error: 'e' }, 'not retried: shutting down (e)'],
      [{ reason: 'abandoned', stopTimeoutMs: 1500 }, 'interrupted: still running 1.5 s after the stop was requested (--stop-timeout); abandoned, the next run finishes it'],
    ];
    for (const [s, text] of cases) expect(skipText(s)).toBe(text);
  });
});

describe('HostError: libvirt code and domain from the RPC error', () => {
  it('toHostError keeps the code and domain of the LibvirtError; failureCause copies them', () => {
    const e = toHostError(new LibvirtError({ code: 42, domain: 10, level: 2, message: 'no domain with matching name', str1: null, str2: null, str3: null, int1: 0, int2: 0 } as never), 'start domain x');
    expect(e.libvirt).toEqual({ code: 42, domain: 10 });
    expect(e.libvirtCode).toBe(42);
    expect(failureCause(e)).toEqual({ code: 'not-found', libvirt: { code: 42, domain: 10 } });
    // a message that reads like another error does not change the cause
    const lookalike = new HostError('operation-failed', 'define domain x: XML document failed to validate against schema');
    expect(failureCause(lookalike)).toEqual({ code: 'operation-failed' });
    expect(failureCause(new Error('invalid: x'))).toEqual({});
    expect(failureCause(new HostError('invalid', 'image /x changed since it was read', undefined, 'image-changed'))).toEqual({ code: 'invalid', reason: 'image-changed' });
  });
});

describe('status: typed stalls', () => {
  const rec = (): ResourceRecord => ({
    host: 'local', kind: 'VirtualMachine', name: 'vm', uuid: 'u', specHash: null, generation: 1, desiredState: 'running', observedStatus: 'running', lastError: null,
    attempts: 0, details: {}, createdAt: '2026-01-01T00:00:00Z', updatedAt: '2026-01-01T00:00:00Z', lastAppliedRevision: null,
  });
  const view: HostView = {
    snapshot: { pools: [], networks: [], domains: [{ name: 'vm', uuid: 'u', id: 1, active: true, autostart: false }] },
    volumeKeys: new Set(), volumeNames: new Set(),
  };
  const row = (stall: Stall) => buildStatus({ records: [rec()], host: view, revisions: new Map(), stalled: new Map([['VirtualMachine/vm', stall]]) }).resources[0]!;

  it.each([
    [{ reason: 'held', detail: 'would destroy x' }, 'HeldForDataLoss'],
    [{ reason: 'braked', detail: 'the plan deletes 3 resources' }, 'Braked'],
    [{ reason: 'invalid', detail: 'held: not a prefix that counts', libvirt: { code: 92, domain: 5 } }, 'InvalidDefinition'],
    [{ reason: 'conflict', detail: 'invalid: also not' }, 'Conflict'],
  ] as [Stall, string][])('%o: row stalled with its text, Stalled reason %s', (stall, reason) => {
    const r = row(stall);
    expect(r.status).toBe('stalled');
    expect(r.reason).toBe(stallText(stall));
    expect(r.reason).toBe(`${stall.reason}: ${stall.detail}`);
    expect(r.conditions.find((c) => c.type === 'Stalled')).toMatchObject({ status: 'True', reason, message: stallText(stall) });
    expect(STALL_CONDITION_REASON[stall.reason]).toBe(reason);
    // HeldForDataLoss only for a held stall: decided by the reason, not by a detail that reads "held:"
    expect(r.conditions.find((c) => c.type === 'HeldForDataLoss')).toMatchObject(stall.reason === 'held'
      ? { status: 'True', message: 'would destroy x (needs reconcile --allow-data-loss)' }
      : { status: 'False' });
  });
});

describe('notes withdrawn by topic', () => {
  it('withdrawNotes removes the notes of the topics named, whatever their wording; others stay', () => {
    const c = { notes: ['plain note about the next boot'] } as unknown as ResourceChange;
    addNote(c, 'next-boot', 'cloud-init will run again at next boot (instance-id changed)');
    addNote(c, 'restart', 'restarts the VM to apply: memory');
    addNote(c, 'stop', 'the running VM is forced off (no graceful shutdown)');
    withdrawNotes(c, 'next-boot', 'restart');
    expect(c.notes).toEqual(['plain note about the next boot', 'the running VM is forced off (no graceful shutdown)']);
    withdrawNotes(c, 'stop');
    expect(c.notes).toEqual(['plain note about the next boot']);
    expect(c.noteTopics).toEqual([]);
  });
});

describe('watch: retry or stall decided on the typed cause', () => {
  it('an invalid HostError the Volume kind raises itself (no host call) stalls; a transient host failure requeues', async () => {
    const mdir = join(work, 'manifests');
    const image = join(work, 'img.raw');
    writeFileSync(image, Buffer.alloc(1 << 20, 1));
    writeManifests(mdir, {
      ...labManifests({ prefix: P, poolPath: '/srv/pools/typed' }),
      'img.yaml': `apiVersion: virtform.dev/v1\nkind: Volume\nmetadata: {name: ${P}-img}\nspec: {pool: ${P}-pool, format: raw, source: ${image}}\n`,
    });
    host.failNext('createVolume', `${P}-data.img`, Infinity, 'operation-failed');
    const c = new WatchController({
      dir: mdir, store, connect: async () => host, debounceMs: 50, eventDebounceMs: 20, resyncMs: 0,
      gracefulStop: false, retry: { maxAttempts: 1, baseDelayMs: 1, maxDelayMs: 2 }, requeue: { initialDelayMs: 60_000 }, watchFiles: false,
      logger: jsonLogger({ level: 'error', write: () => undefined }),
      // The image goes away after the manifests were validated, at the run's first host call.
      wrapHost: removingOnCall(image),
    });
    try {
      await c.start();
      await waitFor(() => c.ready, 'the initial reconcile');
      await c.idle();
      expect(c.stalls.get(`Volume/${P}-img`)).toEqual({ reason: 'invalid', detail: expect.stringMatching(/^source image .* does not exist any more$/) });
      expect(c.stalls.has(`Volume/${P}-data`)).toBe(false);
      expect(c.lastRun?.failures.find((f) => f.resource === `Volume/${P}-data`)?.code).toBe('operation-failed');
      // the transient failure requeues the run
      expect(c.lastRun?.requeue?.reason).toBe('failed');
    } finally {
      await c.stop();
    }
  });
});
