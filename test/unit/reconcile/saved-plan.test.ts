/**
 * Saved plans on the FakeHost (savedplan, issue 24): the document round-trips, an edit or another
 * format is refused, a fresh plan of an unchanged host matches, an object added or a step changed
 * is named, and applySavedPlan refuses a stale plan before any mutating call. (The real daemon:
 * test/integration/reconcile/saved-plan*.test.ts.)
 */
import { describe, expect, it } from 'vitest';
import { labManifests } from '../../support/manifests.js';
import { useHarness } from '../../support/harness.js';
import {
  StalePlanError, applySavedPlan, manifestDifferences, parseSavedPlan, planDifferences, savedPlanDocument, type PlanConsent,
} from '../../../src/reconcile/saved-plan.js';

const P = 'vftest-sp';
const fx = useHarness({ dirPrefix: 'vftest-sp-', manifests: labManifests({ prefix: P, poolPath: '/srv/pools/sp' }) });
const CONSENT: PlanConsent = { allowDataLoss: false, maxDeletions: null, ignoreSuspend: false, allowEmpty: false };

async function saved() {
  const desired = await fx.desired();
  const r = await fx.planResult(desired);
  return { desired, doc: savedPlanDocument({ plan: r.plan, observed: r.observedHosts, desired, consent: CONSENT, source: { dir: fx.mdir } }) };
}

describe('saved plan document', () => {
  it('round-trips through JSON; an edit, another format and junk are refused with the right code', async () => {
    const { doc } = await saved();
    expect(doc.format).toBe('virtform-plan/1');
    expect(doc.steps.length).toBeGreaterThan(3);
    const text = JSON.stringify(doc);
    expect(parseSavedPlan(text, 'p.json')).toEqual({ ok: true, plan: doc });
    const edited = JSON.parse(text) as typeof doc;
    edited.consent.allowDataLoss = true;
    expect(parseSavedPlan(JSON.stringify(edited), 'p.json')).toMatchObject({ ok: false, code: 1, message: expect.stringContaining('was edited after it was made') });
    expect(parseSavedPlan(JSON.stringify({ ...doc, format: 'virtform-plan/9' }), 'p.json')).toMatchObject({ ok: false, code: 1 });
    expect(parseSavedPlan('{', 'p.json')).toMatchObject({ ok: false, code: 2 });
    expect(parseSavedPlan('[]', 'p.json')).toMatchObject({ ok: false, code: 2 });
  });

  it('a fresh plan of the same host matches; an object added on the host and an edited manifest are named', async () => {
    const { desired, doc } = await saved();
    const again = await fx.planResult(desired);
    expect(planDifferences(doc, again.plan, again.observedHosts)).toEqual([]);
    expect(manifestDifferences(doc, desired)).toEqual([]);
    await fx.host.defineNetwork({ name: 'by-hand', mode: 'isolated', autostart: false } as never);
    const moved = await fx.planResult(desired);
    expect(planDifferences(doc, moved.plan, moved.observedHosts)).toEqual(['object added on the host since the plan: network/by-hand']);
    const edited = await fx.desired(labManifests({ prefix: P, poolPath: '/srv/pools/sp', vm1Memory: '128MiB' }));
    expect(manifestDifferences(doc, edited)).toEqual([expect.stringMatching(new RegExp(`^the manifests changed since the plan \\(digest \\w+ → \\w+\\): VirtualMachine/${P}-vm1 changed$`))]);
  });

  it('applySavedPlan refuses a stale plan before any mutating call, and applies a current one', async () => {
    const { desired, doc } = await saved();
    await fx.host.defineNetwork({ name: 'by-hand', mode: 'isolated', autostart: false } as never);
    const before = fx.host.mutationCount();
    await expect(applySavedPlan(doc, desired, { host: fx.host, store: fx.store })).rejects.toBeInstanceOf(StalePlanError);
    expect(fx.host.mutationCount()).toBe(before);
    await fx.host.undefineNetwork('by-hand');
    const ok = await applySavedPlan(doc, desired, { host: fx.host, store: fx.store, gracefulStop: false });
    expect(ok.outcome).toBe('succeeded');
    expect(ok.applied?.outcomes.map((o) => `${o.step.op.op} ${o.step.key}`).sort()).toEqual(doc.steps.map((s) => `${s.op} ${s.resource}`).sort());
    await expect(applySavedPlan(doc, desired, { host: fx.host, store: fx.store })).rejects.toThrow(/this plan was applied already/);
  });
});
