/**
 * The dashboard's server on the real libvirtd (issue 23): `virtform watch` as a process on a small
 * manifest set; the JSON API answers from the real host (overview with the host's capacity,
 * filters, pagination, the detail with the manifest position, addresses and journal, the plan,
 * the history); a VM destroyed with virsh makes the event stream emit a snapshot where it is
 * Reconciling, then one where it is Ready; cloud-init user-data is never sent.
 * Every object is named vftest-dashsrv-*; the network is isolated and the VM boots no OS.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { secretSeedVm, writeManifests } from '../../support/manifests.js';
import { startWatch, waitFor, type Watcher } from '../../support/cli.js';
import { suiteNames } from '../../support/names.js';
import { lab } from '../../support/suite.js';
import { domState, URI, virsh } from '../../support/virsh.js';
import { openSse } from '../../unit/dashboard/sse.js';
import type { Overview, ResourcePage, ResourceDetail, PlanView, RunPage, RunDetail, SnapshotEvent } from '../../../src/dashboard/types.js';

const N = suiteNames('dashsrv');
const P = N.base;
const VM = `${P}-vm`;
const SECRET = 'correct-horse-battery-staple-145';

function manifests(): Record<string, string> {
  return {
    ...lab(N, { dhcpHosts: [11], mac: 11 }).files(),
    'ci.yaml': secretSeedVm(P, 'role: db', `chpasswd: {list: "root:${SECRET}"}`),
  };
}

let work: string;
let w: Watcher;

async function api<T>(path: string): Promise<{ status: number; body: T }> {
  const r = await w.http(path);
  return { status: r.status, body: (r.body.startsWith('{') ? JSON.parse(r.body) : r.body) as T };
}

beforeAll(async () => {
  N.cleanup();
  work = N.tempDir();
  writeManifests(join(work, 'm'), manifests());
  w = await startWatch([join(work, 'm'), '--uri', URI, '--db', join(work, 'state.db'), '--debounce', '200', '--retry-delay', '200', '--history-runs', '3']);
}, 120_000);

afterEach((ctx) => {
  if (ctx.task.result?.state === 'fail') process.stderr.write(`--- last watcher log lines ---\n${w?.tail()}\n`);
});

afterAll(async () => {
  if (w && w.exitCode === undefined) await w.stop();
  N.cleanup();
  rmSync(work, { recursive: true, force: true });
}, 60_000);

describe('the dashboard API of virtform watch on qemu:///system', () => {
  it('overview: the last run, counts by condition, the host with its capacity used', async () => {
    const ov = await api<Overview>('/api/v1/overview');
    expect(ov.status).toBe(200);
    // The apply, or a no-op run after it (the lifecycle events of its own starts trigger one).
    expect(ov.body.lastRun).toMatchObject({ outcome: expect.stringMatching(/^(succeeded|noop)$/), durationMs: expect.any(Number) });
    expect(ov.body.total).toBe(5);
    expect(ov.body.counts.Ready).toBe(5);
    expect(ov.body.revision).toEqual({ applied: null, fetched: null }); // a folder: no commit
    const h = ov.body.hosts[0]!;
    expect(h).toMatchObject({ id: 'local', connected: true, vms: 2 });
    expect(h.memory.total).toBeGreaterThan(h.memory.used);
    expect(h.memory.used).toBeGreaterThanOrEqual(128 * 1024 * 1024); // the two VMs' 64 MiB
    expect(h.vcpus.total).toBeGreaterThan(0);
    expect(h.disk.map((d) => d.pool)).toContain(`${P}-pool`);
  });

  it('resources: filtered, sorted and paged on the server; the detail has the manifest position, conditions, addresses and journal', async () => {
    const vms = await api<ResourcePage>('/api/v1/resources?kind=VirtualMachine&sort=name');
    expect(vms.body.items.map((i) => i.name)).toEqual([`${P}-ci`, VM]);
    expect((await api<ResourcePage>('/api/v1/resources?label=role=db')).body.items.map((i) => i.name)).toEqual([`${P}-ci`]);
    const page2 = await api<ResourcePage>('/api/v1/resources?pageSize=2&page=2&sort=kind&order=desc');
    expect(page2.body).toMatchObject({ total: 5, page: 2, pageSize: 2 });
    expect(page2.body.items).toHaveLength(2);
    expect(page2.body.facets.hosts).toEqual([{ value: 'local', count: 5 }]);
    expect((await api('/api/v1/resources?pageSize=1000')).status).toBe(400);

    const d = await api<ResourceDetail>(`/api/v1/resources/${encodeURIComponent(`VirtualMachine/${VM}`)}`);
    expect(d.status).toBe(200);
    expect(d.body.manifest).toMatchObject({ file: expect.stringMatching(/vm\.yaml$/), line: expect.any(Number) });
    expect(d.body.item).toMatchObject({ status: 'Ready', observed: 'running', desired: 'running' });
    expect(d.body.conditions.map((c) => c.type)).toEqual(expect.arrayContaining(['Ready', 'Reconciling', 'Stalled', 'Drifted']));
    expect(d.body.addresses[0]).toMatchObject({ mac: N.mac(11), network: `${P}-net` });
    expect(d.body.journal.map((j) => `${j.op}:${j.status}`)).toContain('vm.start:succeeded');
    expect(d.body.fields.find((f) => f.path === 'memoryKiB' || f.path.startsWith('memory'))).toBeDefined();
  });

  it('never sends cloud-init user-data: redacted with its size and digest', async () => {
    const d = await api<ResourceDetail>(`/api/v1/resources/${encodeURIComponent(`VirtualMachine/${P}-ci`)}`);
    expect(d.status).toBe(200);
    expect(JSON.stringify(d.body)).not.toContain(SECRET);
    expect(JSON.stringify(d.body.desired)).toMatch(/"userData":"\[redacted: \d+ bytes, sha256 [0-9a-f]{12}\]"/);
    for (const p of ['/api/v1/overview', '/api/v1/resources?pageSize=500', '/api/v1/plan', '/api/v1/attention', '/status']) {
      expect((await w.http(p)).body, p).not.toContain(SECRET);
    }
  });

  it('a VM destroyed with virsh: the event stream has a snapshot where it is Reconciling, then one where it is Ready', async () => {
    const s = await openSse(`http://127.0.0.1:${w.port}/api/v1/events`);
    try {
      expect(s.status).toBe(200);
      const first = JSON.parse((await s.next(() => true, 10_000, 'the current snapshot')).data) as SnapshotEvent;
      const key = `VirtualMachine/${VM}`;
      virsh('destroy', VM);
      const ev = (e: { data: string }): SnapshotEvent => JSON.parse(e.data) as SnapshotEvent;
      const reconciling = ev(await s.next((e) => ev(e).seq > first.seq && ev(e).statuses[key] === 'Reconciling', 30_000, 'a snapshot with the VM Reconciling'));
      expect(reconciling.phase).toBe('start');
      const ready = ev(await s.next((e) => ev(e).seq > reconciling.seq && ev(e).statuses[key] === 'Ready', 30_000, 'a snapshot with the VM Ready'));
      expect(ready.phase).toBe('end');
      expect(ready.runId).toMatch(/^[0-9a-f-]{36}$/);
      expect(domState(VM)).toBe('running');
      // The run is in the history with its step timings; the plan view is that run's.
      const run = await api<RunDetail>(`/api/v1/runs/${ready.runId}`);
      expect(run.status).toBe(200);
      expect(run.body).toMatchObject({ outcome: 'succeeded', trigger: expect.stringContaining('event') });
      expect(run.body.steps.find((x) => x.op === 'vm.start')).toMatchObject({ name: VM, outcome: 'succeeded', ms: expect.any(Number) });
      // The plan view is the last run's: this one, or a run the VM's own start event triggered
      // after it (a no-op, which a fast run can finish before this request).
      const plan = await api<PlanView>('/api/v1/plan');
      const newest = (await api<RunPage>('/api/v1/runs')).body.items.find((r) => r.id === plan.body.runId);
      expect(newest, `the plan's run ${plan.body.runId} is in the history`).toBeDefined();
      if (plan.body.runId === ready.runId) {
        expect(plan.body.text).toMatch(new RegExp(`${VM}`));
        expect(plan.body.steps.map((x) => x.op)).toContain('vm.start');
      } else {
        expect(newest!.finishedAt >= run.body.finishedAt).toBe(true);
        expect(newest!.outcome).toBe('noop');
        expect(plan.body.steps).toEqual([]);
      }
    } finally {
      s.close();
    }
  });

  it('keeps the newest --history-runs runs', async () => {
    for (let i = 0; i < 3; i++) {
      const before = (await api<RunPage>('/api/v1/runs')).body.items[0]?.id;
      virsh('destroy', VM);
      await waitFor(async () => (await api<RunPage>('/api/v1/runs')).body.items[0]?.id !== before && domState(VM) === 'running', 'a new run', 30_000);
    }
    const runs = await api<RunPage>('/api/v1/runs');
    expect(runs.body).toMatchObject({ total: 3, retention: 3 });
    expect(runs.body.items).toHaveLength(3);
    const times = runs.body.items.map((r) => r.finishedAt);
    expect([...times].sort().reverse()).toEqual(times);
    expect(runs.body.items.every((r) => r.trigger !== 'initial')).toBe(true); // the first run was pruned
  });
});
