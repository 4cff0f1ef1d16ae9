/** Conditions: derived per row, transition times kept while the status is unchanged (in the state DB too). */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { buildStatus, persistConditions, trueConditions, type HostView } from '../../../src/status/index.js';
import { openStateStore, type ResourceRecord, type StateStore } from '../../../src/state/index.js';
import { CONDITION_TYPES, EMITTED_CONDITION_TYPES } from '../../../src/model/conditions.js';
import { WatchMetrics } from '../../../src/watch/metrics.js';
import { tempDir } from '../../support/manifests.js';

function rec(extra: Partial<ResourceRecord> = {}): ResourceRecord {
  return {
    kind: 'VirtualMachine', name: 'vm', host: 'local', uuid: 'u', specHash: null, generation: 1, desiredState: 'running', observedStatus: 'running', lastError: null,
    attempts: 0, details: {}, createdAt: '2026-01-01T00:00:00Z', updatedAt: '2026-01-01T00:00:00Z', lastAppliedRevision: null, ...extra,
  };
}
const view = (active: boolean): HostView => ({
  snapshot: { pools: [], networks: [], domains: [{ name: 'vm', uuid: 'u', id: active ? 1 : -1, active, autostart: false }] },
  volumeKeys: new Set(), volumeNames: new Set(),
});
const cond = (row: { conditions: { type: string; status: string; lastTransitionTime: string; reason: string }[] }, type: string) =>
  row.conditions.find((c) => c.type === type)!;

let work: string;
let store: StateStore;
beforeEach(async () => {
  work = tempDir();
  store = await openStateStore(join(work, 'state.db'));
});
afterEach(async () => {
  await store.close();
  rmSync(work, { recursive: true, force: true });
});

describe('conditions', () => {
  it('one list of types; the reserved ones are not emitted', () => {
    expect(CONDITION_TYPES).toEqual(expect.arrayContaining(['Unschedulable', 'HostUnreachable', ...EMITTED_CONDITION_TYPES]));
    const row = buildStatus({ records: [rec()], host: view(true), revisions: new Map() }).resources[0]!;
    expect(row.conditions.map((c) => c.type)).toEqual([...EMITTED_CONDITION_TYPES]);
    expect(trueConditions(row)).toBe('Ready');
  });

  it('Ready → Drifted → Ready; lastTransitionTime moves only on transitions, and survives in the DB', async () => {
    const at = async (active: boolean, now: string) => {
      const { resources } = buildStatus({ records: [rec()], host: view(active), revisions: new Map(), previousConditions: await store.conditions.list(), now });
      await persistConditions(store, resources);
      return resources[0]!;
    };
    const t0 = await at(true, '2026-01-01T00:00:00.000Z');
    expect(cond(t0, 'Ready')).toMatchObject({ status: 'True', reason: 'Converged' });
    // the store's clock decides new transition times; record them
    const ready0 = cond(t0, 'Ready').lastTransitionTime;
    const t1 = await at(true, '2026-01-01T00:01:00.000Z');
    expect(cond(t1, 'Ready').lastTransitionTime).toBe(ready0);
    await new Promise((r) => setTimeout(r, 5));
    const t2 = await at(false, '2026-01-01T00:02:00.000Z');
    expect(cond(t2, 'Ready')).toMatchObject({ status: 'False', reason: 'Drifted' });
    expect(cond(t2, 'Drifted')).toMatchObject({ status: 'True', reason: 'ObservedDiffers' });
    expect(cond(t2, 'Ready').lastTransitionTime > ready0).toBe(true);
    const drifted = cond(t2, 'Drifted').lastTransitionTime;
    // reopen: times survive
    await store.close();
    store = await openStateStore(join(work, 'state.db'));
    const t3 = await at(false, '2026-01-01T00:03:00.000Z');
    expect(cond(t3, 'Drifted').lastTransitionTime).toBe(drifted);
    const t4 = await at(true, '2026-01-01T00:04:00.000Z');
    expect(cond(t4, 'Ready').status).toBe('True');
    expect(cond(t4, 'Drifted').status).toBe('False');
    expect(cond(t4, 'RestartRequired').lastTransitionTime).toBe(cond(t0, 'RestartRequired').lastTransitionTime);
  });

  it('Suspended (metadata and DB switch), HeldForDataLoss (recorded fact) and Stalled (watcher) with reasons', () => {
    const s = { since: '2026-01-01T00:00:00Z', by: 'me@h (pid 1)', reason: null };
    const db = buildStatus({ records: [rec()], host: view(true), revisions: new Map(), suspension: s }).resources[0]!;
    expect(cond(db, 'Suspended')).toMatchObject({ status: 'True', reason: 'DatabaseSuspended', message: 'suspended since 2026-01-01T00:00:00Z, by me@h (pid 1)' });
    const md = buildStatus({ records: [rec({ details: { facts: { reconcileDisabled: true } } })], host: view(false), revisions: new Map() }).resources[0]!;
    expect(md.status).toBe('suspended');
    expect(cond(md, 'Suspended')).toMatchObject({ status: 'True', reason: 'ManifestDisabled' });
    const held = buildStatus({ records: [rec({ details: { facts: { heldForDataLoss: 'would destroy x' } } })], host: view(true), revisions: new Map() }).resources[0]!;
    expect(cond(held, 'HeldForDataLoss')).toMatchObject({ status: 'True', reason: 'NeedsConsent' });
    const stalled = buildStatus({ records: [rec()], host: view(true), revisions: new Map(), stalled: new Map([['VirtualMachine/vm', 'braked: too many']]) }).resources[0]!;
    expect(cond(stalled, 'Stalled')).toMatchObject({ status: 'True', reason: 'Braked' });
    const drift = buildStatus({ records: [rec()], host: view(true), revisions: new Map(), drift: new Map([['VirtualMachine/vm', 'definition changed outside virtform (drift)']]) }).resources[0]!;
    expect(drift.status).toBe('drifted');
    expect(cond(drift, 'Drifted').status).toBe('True');
  });

  it('virtform_resource_condition: 1 for the current status, 0 for the other', async () => {
    const m = new WatchMetrics({ defaultMetrics: false });
    const { resources } = buildStatus({ records: [rec()], host: view(false), revisions: new Map() });
    m.setConditions(resources);
    const text = await m.render();
    expect(text).toContain('virtform_resource_condition{kind="VirtualMachine",name="vm",type="Drifted",status="True"} 1');
    expect(text).toContain('virtform_resource_condition{kind="VirtualMachine",name="vm",type="Ready",status="True"} 0');
    expect(text).toContain('virtform_resource_condition{kind="VirtualMachine",name="vm",type="Ready",status="False"} 1');
  });
});
