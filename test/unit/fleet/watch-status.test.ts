/**
 * What the fleet watch serves on --listen (src/fleet/watch-status.ts through src/watch/http.ts),
 * over fake hosts and an in-memory state DB: /readyz 503 as a standby and before the first fleet
 * run, then 200; /status in the watcher's shape with each row's host and the hosts' summaries (an
 * unreachable one with why, its rows HostUnreachable); /metrics with `host` labels.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { rmSync } from 'node:fs';
import { loadManifests } from '../../../src/manifest/index.js';
import { openStateStore, type StateStore } from '../../../src/state/index.js';
import { fleetParts } from '../../../src/fleet/parts.js';
import { runFleet } from '../../../src/fleet/run.js';
import { FleetWatchStatus } from '../../../src/fleet/watch-status.js';
import { startStatusServer, type StatusServer } from '../../../src/watch/http.js';
import { FakeHost } from '../../support/fake-host.js';
import { tempDir, writeManifests } from '../../support/manifests.js';
import { scenario } from '../../support/scenario.js';

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

const hostDoc = (id: string): string =>
  `apiVersion: virtform.dev/v1\nkind: Host\nmetadata: {name: ${id}}\nspec: {uri: "test:///${id}?user=u&password=secret", capacity: {memory: 1GiB, vcpus: 4}}\n`;

describe('fleet watch status', () => {
  it('readiness, /status hosts and rows by host, /metrics host labels, an unreachable host', async () => {
    const dir = tempDir('vftest-flwatch-');
    cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
    const s = scenario().in('hosts.yaml').doc([hostDoc('h1'), hostDoc('h2')].join('---\n'))
      .in('storage.yaml').pool('fw-pool', { path: '/srv/pools/fw-pool', autostart: false });
    writeManifests(dir, s.files());
    const loaded = await loadManifests(dir);
    if (!loaded.ok) throw new Error('manifests');
    const store: StateStore = await openStateStore(':memory:');
    cleanups.push(() => store.close());
    const hosts = new Map(['h1', 'h2'].map((id, i) => {
      const h = new FakeHost();
      h.identity = { uri: `test:///${id}`, hostname: `fake-${id}`, uuid: `00000000-0000-4000-8000-00000000000${i + 1}`, driver: 'test' };
      return [id, h] as const;
    }));
    const down = new Set<string>();
    const open = async (uri: string): Promise<FakeHost> => {
      const id = /^test:\/\/\/(\w+)/.exec(uri)![1]!;
      if (down.has(id)) throw new Error(`cannot connect to libvirt at test:///${id}: connection refused`);
      return hosts.get(id)!;
    };
    const st = new FleetWatchStatus({ dir, store, open: (h) => open(h.uri) });
    st.manifests({ ok: true, state: loaded.desired });
    const server: StatusServer = await startStatusServer(st, { host: '127.0.0.1', port: 0 });
    cleanups.push(() => server.close());
    const get = async (path: string): Promise<{ status: number; body: string }> => {
      const r = await fetch(`http://127.0.0.1:${server.port}${path}`);
      return { status: r.status, body: await r.text() };
    };

    expect((await get('/healthz')).status).toBe(200);
    expect(await get('/readyz')).toEqual({ status: 503, body: 'not ready (standby: another process holds the writer lease (or it was not acquired yet))\n' });
    const lease = await store.acquireLease({ command: 'test' });
    cleanups.push(() => lease.release());
    st.leading(lease);
    expect(await get('/readyz')).toEqual({ status: 503, body: 'not ready (the first fleet run has not finished)\n' });

    const cycle = async (): Promise<void> => {
      st.cycleStarted();
      await st.cycleFinished(await runFleet({
        state: loaded.desired, store, parts: fleetParts(), open, rebalance: false,
        engine: { retry: { maxAttempts: 1, baseDelayMs: 0, maxDelayMs: 0 }, guard: () => lease.refusal() },
      }));
    };
    await cycle();
    expect((await get('/readyz')).status).toBe(200);
    const ok = JSON.parse((await get('/status')).body) as {
      ready: boolean; lease: { role: string; epoch: number }; runs: { total: number; last: { outcome: string } };
      hosts: { host: string; uri: string; connected: boolean; error: string | null }[];
      resources: { kind: string; name: string; host: string; status: string; conditions: { type: string; status: string }[] }[];
      hostError: string | null; connection: { state: string };
    };
    expect(ok).toMatchObject({ ready: true, lease: { role: 'leader', epoch: lease.epoch }, runs: { total: 1, last: { outcome: 'succeeded' } }, hostError: null, connection: { state: 'connected' } });
    expect(ok.hosts.map((h) => [h.host, h.connected, h.error])).toEqual([['h1', true, null], ['h2', true, null]]);
    for (const h of ok.hosts) expect(h.uri).not.toContain('secret');
    expect(ok.resources.map((r) => [r.host, r.kind, r.name, r.status])).toEqual([['h1', 'StoragePool', 'fw-pool', 'converged'], ['h2', 'StoragePool', 'fw-pool', 'converged']]);
    const m = (await get('/metrics')).body;
    expect(m).toMatch(/^virtform_host_reachable\{host="h1"\} 1$/m);
    expect(m).toMatch(/^virtform_resources\{kind="StoragePool",state="[a-z]+",host="h2"\} 1$/m);
    expect(m).toMatch(/^virtform_reconcile_runs_total\{outcome="succeeded"\} 1$/m);
    expect(m).toMatch(/^virtform_lease_leader 1$/m);

    // h2 down: the next cycle keeps h1, /status says why h2 is not there and keeps its row.
    down.add('h2');
    await cycle();
    expect((await get('/metrics')).body).toMatch(/^virtform_host_reachable\{host="h2"\} 0$/m);
    const d = JSON.parse((await get('/status')).body) as typeof ok;
    expect(d.hosts.map((h) => [h.host, h.connected])).toEqual([['h1', true], ['h2', false]]);
    expect(d.hosts[1]!.error).toMatch(/connection refused/);
    expect(d.hostError).toMatch(/^h2: .*connection refused/);
    expect(d.connection.state).toBe('disconnected');
    const h2 = d.resources.find((r) => r.host === 'h2')!;
    expect(h2.conditions.find((c) => c.type === 'HostUnreachable')?.status).toBe('True');
    expect(d.resources.find((r) => r.host === 'h1')!.status).toBe('converged');
    expect((await get('/readyz')).status).toBe(200);
    st.stopping();
    expect(await get('/readyz')).toEqual({ status: 503, body: 'not ready (stopping)\n' });
  });
});
