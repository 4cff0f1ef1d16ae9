/**
 * The dashboard's server side on the FakeHost (the same paths run against the real daemon in
 * test/integration/dashboard-server.test.ts): snapshot per run, the JSON API (filters, sort,
 * pagination, detail, plan, attention, history with retention), the event stream (a VM destroyed
 * outside virtform: a snapshot where it is Reconciling, then one where it is Ready), security headers.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { labManifests, secretSeedVm } from '../../support/manifests.js';
import { FAST_RETRY, useHarness } from '../../support/harness.js';
import { WatchController, startStatusServer, type StatusServer } from '../../../src/watch/index.js';
import { dashboardFor } from '../../../src/cli/http-options.js';
import type { Dashboard } from '../../../src/dashboard/data.js';
import type { Overview, ResourcePage, ResourceDetail, PlanView, RunPage, RunDetail, AttentionList, SnapshotEvent } from '../../../src/dashboard/types.js';
import { FakeHost } from '../../support/fake-host.js';
import { waitFor } from '../watch/helpers.js';
import { openSse, type SseStream } from './sse.js';

const P = 'vftest-dash';
const SECRET = 'hunter2-very-secret-password';

const manifests = {
  ...labManifests({ prefix: P, poolPath: '/srv/pools/dash' }),
  'ci.yaml': secretSeedVm(P, 'role: db, tier: back', `password: ${SECRET}`),
};

const fx = useHarness({ dirPrefix: 'vftest-dash-api-', manifestDir: 'm', manifests });
let controller: WatchController | undefined;
let server: StatusServer | undefined;
let dashboard: Dashboard | undefined;
let stream: SseStream | undefined;

afterEach(async () => {
  stream?.close();
  await server?.close();
  dashboard?.close();
  await controller?.stop();
  server = controller = dashboard = stream = undefined;
});

async function start(host: FakeHost, o: { historyRuns?: number; token?: string } = {}): Promise<void> {
  controller = new WatchController({
    dir: fx.mdir, store: fx.store, resyncMs: 0, debounceMs: 50, eventDebounceMs: 20, gracefulStop: false, retry: { ...FAST_RETRY, maxAttempts: 1 },
    connect: async () => host, historyRuns: o.historyRuns ?? 500,
  });
  dashboard = dashboardFor(controller, fx.store, o.historyRuns ?? 500);
  server = await startStatusServer(controller, { host: '127.0.0.1', port: 0 }, undefined, { dashboard, ...(o.token ? { token: o.token } : {}) });
  await controller.start();
  await waitFor(() => controller!.runCount >= 1, 'the first run');
  await controller.idle();
  await dashboard.settled();
}

async function api<T>(path: string, headers: Record<string, string> = {}): Promise<{ status: number; body: T; headers: Headers }> {
  const r = await fetch(`http://127.0.0.1:${server!.port}${path}`, { headers });
  const text = await r.text();
  return { status: r.status, body: (text.startsWith('{') ? JSON.parse(text) : text) as T, headers: r.headers };
}

describe('dashboard API', () => {
  it('overview, resources (filters, sort, pagination, facets), detail with manifest position and redaction, plan, attention, history', async () => {
    await start(new FakeHost());
    const ov = await api<Overview>('/api/v1/overview');
    expect(ov.status).toBe(200);
    expect(ov.headers.get('content-security-policy')).toBe("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'");
    expect(ov.headers.get('x-content-type-options')).toBe('nosniff');
    expect(ov.headers.get('referrer-policy')).toBe('no-referrer');
    expect(ov.headers.get('cache-control')).toBe('no-store');
    expect(ov.body.total).toBe(8);
    expect(ov.body.counts.Ready).toBe(8);
    expect(ov.body.counts.Stalled).toBe(0);
    expect(ov.body.lastRun).toMatchObject({ outcome: 'succeeded' });
    expect(ov.body.hosts).toHaveLength(1);
    expect(ov.body.hosts[0]!.connected).toBe(true);
    expect(ov.body.hosts[0]!.memory.total).toBeGreaterThan(0);

    const all = await api<ResourcePage>('/api/v1/resources');
    expect(all.body.total).toBe(8);
    expect(all.body.items.map((i) => i.status)).toEqual(Array(8).fill('Ready'));
    expect(all.body.facets.kinds.map((k) => k.value)).toEqual(['Network', 'StoragePool', 'VirtualMachine', 'Volume']);
    expect(all.body.facets.labels).toEqual([{ value: 'role=db', count: 1 }, { value: 'role=web', count: 1 }, { value: 'tier=back', count: 1 }]);

    const vms = await api<ResourcePage>('/api/v1/resources?kind=VirtualMachine&sort=name&order=desc');
    expect(vms.body.items.map((i) => i.name)).toEqual([`${P}-vm2`, `${P}-vm1`, `${P}-ci`]);
    expect((await api<ResourcePage>('/api/v1/resources?label=role=web')).body.items.map((i) => i.name)).toEqual([`${P}-vm1`]);
    expect((await api<ResourcePage>('/api/v1/resources?label=tier')).body.items.map((i) => i.name)).toEqual([`${P}-ci`]);
    expect((await api<ResourcePage>('/api/v1/resources?q=VM2')).body.items.map((i) => i.name)).toEqual([`${P}-vm2`]);
    expect((await api<ResourcePage>('/api/v1/resources?host=local')).body.total).toBe(8);
    expect((await api<ResourcePage>('/api/v1/resources?host=elsewhere')).body.total).toBe(0);
    expect((await api<ResourcePage>('/api/v1/resources?condition=Ready')).body.total).toBe(8);
    expect((await api<ResourcePage>('/api/v1/resources?condition=Drifted')).body.total).toBe(0);
    const p1 = await api<ResourcePage>('/api/v1/resources?pageSize=3&page=1&sort=kind');
    const p3 = await api<ResourcePage>('/api/v1/resources?pageSize=3&page=3&sort=kind');
    expect(p1.body).toMatchObject({ total: 8, page: 1, pageSize: 3 });
    expect(p1.body.items).toHaveLength(3);
    expect(p3.body.items).toHaveLength(2);
    expect(p1.body.items[0]!.kind).toBe('Network');
    expect(p3.body.items.at(-1)!.kind).toBe('Volume');
    for (const bad of ['pageSize=501', 'pageSize=0', 'page=0', 'sort=size', 'order=up', 'condition=Happy', 'nope=1']) {
      const r = await api<{ error: string }>(`/api/v1/resources?${bad}`);
      expect(r.status, bad).toBe(400);
      expect(r.body.error, bad).toMatch(/must|unknown parameter/);
    }

    const key = encodeURIComponent(`VirtualMachine/${P}-vm1`);
    const d = await api<ResourceDetail>(`/api/v1/resources/${key}`);
    expect(d.status).toBe(200);
    expect(d.body.manifest).toMatchObject({ file: expect.stringMatching(/vms\.yaml$/), line: 1, col: 1 });
    const vm2 = await api<ResourceDetail>(`/api/v1/resources/${encodeURIComponent(`VirtualMachine/${P}-vm2`)}`);
    expect(vm2.body.manifest).toMatchObject({ file: expect.stringMatching(/vms\.yaml$/), line: 11 });
    expect(d.body.conditions.find((c) => c.type === 'Ready')).toMatchObject({ status: 'True', reason: 'Converged' });
    expect(d.body.journal.map((j) => j.op)).toContain('vm.start');
    expect(d.body.fields.find((f) => f.path === 'vcpus')).toMatchObject({ desired: 1, observed: 1, differs: false });
    expect((await api(`/api/v1/resources/${encodeURIComponent('VirtualMachine/none')}`)).status).toBe(404);
    // cloud-init user-data is never sent: not in the detail, not in any list
    const ci = await api<ResourceDetail>(`/api/v1/resources/${encodeURIComponent(`VirtualMachine/${P}-ci`)}`);
    expect(ci.status).toBe(200);
    const raw = JSON.stringify(ci.body);
    expect(raw).not.toContain(SECRET);
    expect(raw).toMatch(/\[redacted: \d+ bytes, sha256 [0-9a-f]{12}\]/);
    for (const path of ['/api/v1/overview', '/api/v1/resources?pageSize=500', '/api/v1/plan', '/api/v1/runs', '/status']) {
      expect(JSON.stringify((await api(path)).body), path).not.toContain(SECRET);
    }

    const plan = await api<PlanView>('/api/v1/plan');
    expect(plan.body.runId).toMatch(/^[0-9a-f-]{36}$/);
    expect(plan.body.text).toMatch(/virtform will perform the following actions/);
    expect(plan.body.steps.map((s) => s.op)).toContain('vm.start');

    expect((await api<AttentionList>('/api/v1/attention')).body).toMatchObject({ total: 0, items: [] });
    const runs = await api<RunPage>('/api/v1/runs');
    expect(runs.body).toMatchObject({ total: 1, page: 1, retention: 500 });
    expect(runs.body.items[0]).toMatchObject({ outcome: 'succeeded', trigger: 'initial', counts: { create: 8 } });
    const run = await api<RunDetail>(`/api/v1/runs/${runs.body.items[0]!.id}`);
    expect(run.body.steps.length).toBeGreaterThan(8);
    expect(run.body.steps.find((s) => s.op === 'vm.start')).toMatchObject({ kind: 'VirtualMachine', name: `${P}-vm1`, host: 'local', outcome: 'succeeded', ms: expect.any(Number) });
    expect((await api('/api/v1/runs/nope')).status).toBe(404);
    expect((await api('/api/v1/nope')).status).toBe(404);
  });

  it('a VM destroyed outside virtform: the event stream has a snapshot where it is Reconciling, then one where it is Ready; one frame per snapshot for any number of viewers', async () => {
    const host = new FakeHost();
    await start(host);
    stream = await openSse(`http://127.0.0.1:${server!.port}/api/v1/events`);
    const second = await openSse(`http://127.0.0.1:${server!.port}/api/v1/events`);
    try {
      expect(stream.status).toBe(200);
      expect(stream.headers['content-type']).toMatch(/^text\/event-stream/);
      const first = await stream.next(() => true, 5000, 'the current snapshot');
      const seq0 = (JSON.parse(first.data) as SnapshotEvent).seq;
      const frames0 = dashboard!.events.framesBuilt;
      const vm = `VirtualMachine/${P}-vm1`;
      host.domains.get(`${P}-vm1`)!.active = false;
      controller!.trigger('event');
      const reconciling = await stream.next((e) => {
        const s = JSON.parse(e.data) as SnapshotEvent;
        return s.seq > seq0 && s.phase === 'start' && s.changedKeys.includes(vm);
      }, 20_000, 'a start snapshot with the VM');
      const rs = JSON.parse(reconciling.data) as SnapshotEvent;
      expect(rs.statuses[vm]).toBe('Reconciling');
      const ready = await stream.next((e) => {
        const s = JSON.parse(e.data) as SnapshotEvent;
        return s.seq > rs.seq && s.phase === 'end' && s.changedKeys.includes(vm);
      }, 20_000, 'an end snapshot with the VM');
      expect(JSON.parse(ready.data)).toMatchObject({ runId: expect.stringMatching(/^[0-9a-f-]{36}$/), statuses: { [vm]: 'Ready' } });
      // The snapshot of the start event showed it Reconciling: the API answers from the current one (Ready now).
      const now = await api<ResourcePage>(`/api/v1/resources?kind=VirtualMachine&q=${P}-vm1`);
      expect(now.body.items[0]!.status).toBe('Ready');
      // Both viewers got the same events; each snapshot was serialized once.
      await second.next((e) => e.data === ready.data, 5000, 'the same end event on the second stream');
      expect(dashboard!.events.framesBuilt - frames0).toBe(stream.events.filter((e) => (JSON.parse(e.data) as SnapshotEvent).seq > seq0).length);
    } finally {
      second.close();
    }
  });

  it('the start snapshot marks the planned resources Reconciling (and not Ready)', async () => {
    const host = new FakeHost();
    await start(host);
    const seen: string[] = [];
    const stop = controller!.subscribe((e) => {
      if (e.type === 'runStart') queueMicrotask(() => void dashboard!.settled().then(() => {
        const s = dashboard!.current!;
        seen.push(`${s.phase}:${s.byKey.get(`VirtualMachine/${P}-vm1`)?.item.status}`);
      }));
    });
    host.domains.get(`${P}-vm1`)!.active = false;
    controller!.trigger('event');
    await waitFor(() => controller!.runCount >= 2, 'the second run');
    await controller!.idle();
    await dashboard!.settled();
    stop();
    expect(seen[0]).toBe('start:Reconciling');
    expect(dashboard!.current!.byKey.get(`VirtualMachine/${P}-vm1`)!.item.status).toBe('Ready');
    expect(dashboard!.current!.overview.counts.Reconciling).toBe(0);
  });

  it('keeps the newest --history-runs runs (pruned on insert)', async () => {
    await start(new FakeHost(), { historyRuns: 2 });
    for (let i = 0; i < 3; i++) {
      const before = controller!.runCount;
      controller!.trigger('resync');
      await waitFor(() => controller!.runCount > before, 'a resync run');
      await controller!.idle();
    }
    const runs = await api<RunPage>('/api/v1/runs');
    expect(runs.body.total).toBe(2);
    expect(runs.body.retention).toBe(2);
    expect(runs.body.items.map((r) => r.trigger)).toEqual(['resync', 'resync']);
    expect(runs.body.items.map((r) => r.outcome)).toEqual(['noop', 'noop']);
    const all = await fx.store.runs.page(0, 100);
    expect(all.total).toBe(2);
  });

  it('a stalled resource (held for data loss) is in the attention list with the consent flag', async () => {
    await start(new FakeHost());
    // shrinking... a replace of a volume holding data is held by watch (never consents)
    writeFileSync(join(fx.mdir, 'storage.yaml'), labManifests({ prefix: P, poolPath: '/srv/pools/dash', rootFormat: 'raw' })['storage.yaml']!);
    await waitFor(async () => (await api<AttentionList>('/api/v1/attention')).body.total > 0, 'an attention item', 20_000);
    const att = await api<AttentionList>('/api/v1/attention');
    const held = att.body.items.find((i) => i.condition === 'HeldForDataLoss');
    expect(held).toBeDefined();
    expect(held!.action).toMatch(/--allow-data-loss/);
    const stalled = await api<ResourcePage>('/api/v1/resources?condition=HeldForDataLoss');
    expect(stalled.body.total).toBeGreaterThan(0);
    expect(stalled.body.items[0]!.status).toBe('Stalled');
  });
});
