/**
 * The writer lease's guard in apply (src/state/lease.ts, ApplyOptions.guard): once the holder
 * steps down (its last renewal older than the renew deadline on its monotonic clock), no further
 * libvirt mutation is made — not the next step, not the second call of a step — and the step whose
 * call was refused keeps its journal entry open for the next holder.
 */
import { describe, expect, it } from 'vitest';
import { join } from 'node:path';
import { useHarness } from '../../support/harness.js';
import { desiredFrom, labManifests, writeManifests } from '../../support/manifests.js';
import { tryAcquireLease } from '../../../src/state/index.js';
import { reconcile } from '../../../src/reconcile/engine.js';

const P = 'vftest-lguard';
const h = useHarness();

describe('apply under the writer lease', () => {
  it('a holder past its renew deadline makes no further mutating call; the refused step stays open in the journal', async () => {
    const { work, host, store } = h;
    const mdir = join(work, 'm');
    writeManifests(mdir, labManifests({ prefix: P, poolPath: '/srv/pools/lguard' }));
    const desired = await desiredFrom(mdir);
    let now = 0;
    const lease = await tryAcquireLease({ ...store.leaseDeps(), monotonic: () => now }, { command: 'test' });
    // Time passes only while the host works: 4 s per mutating call, no renewal (the DB is unreachable).
    const guard = (): string | undefined => lease.refusal();
    let made = 0;
    host.setCallObserver((c) => {
      if (c.mutating) {
        made += 1;
        now += 4000;
      }
    });
    const result = await reconcile({ host, store, desired, retry: { maxAttempts: 3, baseDelayMs: 1, maxDelayMs: 2 }, gracefulStop: false, concurrency: 1, guard });
    // The pool's step makes four calls: define (t=0), build (4 s), start (8 s); its fourth, autostart
    // at 12 s, is past the 10 s deadline: refused inside the step, and nothing more is started.
    expect(made).toBe(3);
    expect(host.calls.filter((c) => /^(definePool|buildPool|startPool|setPoolAutostart):/.test(c))).toEqual(
      ['definePool', 'buildPool', 'startPool'].map((op) => `${op}:${P}-pool`));
    expect(host.mutationCount()).toBe(3);
    expect(lease.held).toBe(false);
    expect(result.outcome).toBe('failed');
    const outcomes = result.applied!.outcomes;
    const refused = outcomes.filter((o) => o.status === 'failed');
    expect(refused.map((o) => o.step.key)).toEqual([`StoragePool/${P}-pool`]);
    expect(refused[0]!.error).toMatch(/not done: lost the writer lease .*not renewed for 12\.0 s, longer than the renew deadline \(10\.0 s\); stepped down/);
    expect(refused[0]!.attempts).toBe(1); // never retried
    const notStarted = outcomes.filter((o) => o.status === 'skipped' && /^not started: lost the writer lease/.test(o.error ?? ''));
    expect(notStarted.length).toBeGreaterThan(0);
    expect(outcomes.filter((o) => o.status === 'succeeded').length + refused.length + outcomes.filter((o) => o.status === 'skipped').length).toBe(result.plan.steps.length);
    const open = await store.journal.listOpen();
    expect(open.map((e) => `${e.kind}/${e.name}`)).toEqual([refused[0]!.step.key]);
    // The guard is the run's only: the host is not left guarded.
    await host.startNetwork(`${P}-net`).catch(() => undefined);
    expect(host.mutationCount()).toBe(4);
  });
});
