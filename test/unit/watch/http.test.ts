import { afterEach, describe, expect, it } from 'vitest';
import { request } from 'node:http';
import { labManifests } from '../../support/manifests.js';
import { FAST_RETRY, useHarness } from '../../support/harness.js';
import {
  WatchController, WatchMetrics, allowedHostHeaders, checkListenSecurity, isLoopbackHost, parseAllowedHost, parseListen, startStatusServer, type StatusServer,
} from '../../../src/watch/index.js';
import { FakeHost } from '../../support/fake-host.js';
import { parsePrometheus, sampleValue, waitFor } from './helpers.js';

const P = 'vftest-watch';

const fx = useHarness({ dirPrefix: 'vftest-watch-http-', manifestDir: 'm', manifests: labManifests({ prefix: P, poolPath: '/srv/pools/watch' }) });
let controller: WatchController | undefined;
let server: StatusServer | undefined;

// before the harness closes the store (after-hooks run in reverse order)
afterEach(async () => {
  await server?.close();
  await controller?.stop();
  server = controller = undefined;
});

async function get(path: string): Promise<{ status: number; type: string; body: string }> {
  const r = await fetch(`http://127.0.0.1:${server!.port}${path}`);
  return { status: r.status, type: r.headers.get('content-type') ?? '', body: await r.text() };
}

describe('listen address', () => {
  it('parses loopback and other addresses; a non-loopback one needs a token and TLS (checkListenSecurity)', () => {
    expect(parseListen('127.0.0.1:0')).toEqual({ host: '127.0.0.1', port: 0 });
    expect(parseListen('localhost:9465')).toEqual({ host: '127.0.0.1', port: 9465 });
    expect(parseListen('[::1]:80')).toEqual({ host: '::1', port: 80 });
    expect(parseListen('9465')).toEqual({ host: '127.0.0.1', port: 9465 });
    expect(parseListen('10.1.2.3:1')).toEqual({ host: '10.1.2.3', port: 1 });
    for (const bad of [':80', '127.0.0.1:99999', '127.0.0.1:x', 'a b:80']) {
      expect(() => parseListen(bad), bad).toThrow(/--listen/);
    }
    for (const spec of ['0.0.0.0:9465', '10.1.2.3:1', '[::]:1', 'example.com:80']) {
      const addr = parseListen(spec);
      expect(checkListenSecurity(addr, { token: false, tls: false }), spec).toMatch(/--http-token-file and --http-tls-cert/);
      expect(checkListenSecurity(addr, { token: true, tls: false }), spec).toMatch(/needs --http-tls-cert and --http-tls-key/);
      expect(checkListenSecurity(addr, { token: false, tls: true }), spec).toMatch(/needs --http-token-file \(/);
      expect(checkListenSecurity(addr, { token: true, tls: true }), spec).toBeUndefined();
    }
    for (const spec of ['127.0.0.1:1', '127.3.4.5:1', '[::1]:1', 'localhost:1']) expect(checkListenSecurity(parseListen(spec), { token: false, tls: false })).toBeUndefined();
    expect(isLoopbackHost('127.1.2.3')).toBe(true);
    expect(isLoopbackHost('127.1.2.300')).toBe(false);
  });
});

describe('metrics text', () => {
  it('renders counters, gauges and histograms that parse as Prometheus text, with the process metrics', async () => {
    const m = new WatchMetrics();
    m.runs.inc({ outcome: 'succeeded' });
    m.steps.inc({ op: 'vm.start', outcome: 'failed' }, 2);
    m.calls.inc({ procedure: 'weird"name\\with\nstuff' });
    m.runDuration.observe(0.3);
    m.runDuration.observe(100);
    m.callDuration.observe({ procedure: 'snapshot' }, 0.002);
    m.requeues.inc({ reason: 'failed' });
    m.backoff.set(2.5);
    const text = await m.render();
    const samples = parsePrometheus(text);
    expect(sampleValue(samples, 'virtform_up')).toBe(1);
    expect(sampleValue(samples, 'virtform_apply_steps_total', { op: 'vm.start', outcome: 'failed' })).toBe(2);
    expect(sampleValue(samples, 'virtform_libvirt_calls_total', { procedure: 'weird"name\\with\nstuff' })).toBe(1);
    expect(sampleValue(samples, 'virtform_reconcile_duration_seconds_count')).toBe(2);
    expect(sampleValue(samples, 'virtform_reconcile_duration_seconds_sum')).toBeCloseTo(100.3);
    expect(sampleValue(samples, 'virtform_reconcile_duration_seconds_bucket', { le: '0.5' })).toBe(1);
    expect(sampleValue(samples, 'virtform_reconcile_duration_seconds_bucket', { le: '+Inf' })).toBe(2);
    expect(sampleValue(samples, 'virtform_libvirt_call_duration_seconds_bucket', { procedure: 'snapshot', le: '0.0025' })).toBe(1);
    expect(sampleValue(samples, 'virtform_requeue_total', { reason: 'failed' })).toBe(1);
    expect(sampleValue(samples, 'virtform_backoff_seconds')).toBe(2.5);
    // prom-client's default process metrics: CPU, RSS, event-loop lag
    expect(sampleValue(samples, 'process_resident_memory_bytes')).toBeGreaterThan(0);
    expect(samples.some((s) => s.name === 'process_cpu_seconds_total')).toBe(true);
    expect(samples.some((s) => s.name === 'nodejs_eventloop_lag_seconds')).toBe(true);
    expect(m.contentType).toMatch(/^text\/plain; version=0\.0\.4/);
    // without them, only virtform_* families
    const bare = parsePrometheus(await new WatchMetrics({ defaultMetrics: false }).render());
    expect(bare.every((s) => s.name.startsWith('virtform_'))).toBe(true);
  });

  it('the test parser rejects malformed exposition (so it can fail)', async () => {
    expect(() => parsePrometheus('foo 1\n')).toThrow(/before its # TYPE/);
    expect(() => parsePrometheus('# TYPE foo counter\nfoo{a=b} 1\n')).toThrow(/not a valid sample/);
    expect(() => parsePrometheus('# TYPE foo counter\nfoo one\n')).toThrow(/not a valid sample/);
    expect(() => parsePrometheus('# TYPE foo counter\nfoo 1')).toThrow(/newline/);
    expect(() => parsePrometheus('# TYPE foo counter\n# TYPE foo counter\nfoo 1\n')).toThrow(/typed twice/);
    expect(() => parsePrometheus('# TYPE h histogram\nh_bucket{le="1"} 2\nh_bucket{le="+Inf"} 1\nh_sum 1\nh_count 1\n')).toThrow(/cumulative/);
    expect(() => parsePrometheus('# TYPE h histogram\nh_bucket{le="1"} 1\nh_bucket{le="+Inf"} 1\nh_sum 1\nh_count 2\n')).toThrow(/_count/);
    const m = new WatchMetrics({ defaultMetrics: false });
    m.runDuration.observe(1.5);
    const text = await m.render();
    expect(parsePrometheus(text).filter((s) => s.name.startsWith('virtform_reconcile_duration_seconds')).length).toBe(15 + 1 + 2);
    // the same histogram with its +Inf bucket removed is caught
    expect(() => parsePrometheus(text.replace(/^virtform_reconcile_duration_seconds_bucket\{le="\+Inf"\}.*\n/m, ''))).toThrow(/\+Inf/);
  });
});

describe('HTTP listener', () => {
  it('serves /healthz, /readyz 503 → 200, /status and /metrics whose counters move', async () => {
    const host = new FakeHost();
    let letConnect!: () => void;
    const connectGate = new Promise<void>((r) => (letConnect = r));
    let refuse = 0;
    controller = new WatchController({
      dir: fx.mdir, store: fx.store, resyncMs: 0, debounceMs: 100, gracefulStop: false,
      retry: { ...FAST_RETRY, maxAttempts: 1 },
      reconnect: { initialDelayMs: 50, maxDelayMs: 100 },
      connect: async () => {
        await connectGate;
        if (refuse > 0) {
          refuse -= 1;
          throw new Error('connection refused');
        }
        return host;
      },
    });
    await controller.start();
    server = await startStatusServer(controller, { host: '127.0.0.1', port: 0 });
    expect(server.port).toBeGreaterThan(0);
    expect(server.host).toBe('127.0.0.1');

    expect((await get('/healthz')).status).toBe(200);
    const notReady = await get('/readyz');
    expect(notReady.status).toBe(503);
    expect(notReady.body).toMatch(/connecting/);
    expect((await get('/nope')).status).toBe(404);

    letConnect();
    await waitFor(async () => (await get('/readyz')).status === 200, '/readyz 200');

    const m1 = await get('/metrics');
    expect(m1.type).toMatch(/^text\/plain; version=0\.0\.4/);
    const s1 = parsePrometheus(m1.body);
    const names = new Set(s1.map((s) => s.name));
    for (const n of [
      'virtform_up', 'virtform_connected', 'virtform_reconcile_runs_total', 'virtform_reconcile_duration_seconds_bucket',
      'virtform_reconcile_duration_seconds_sum', 'virtform_reconcile_duration_seconds_count', 'virtform_apply_steps_total',
      'virtform_resources', 'virtform_libvirt_calls_total', 'virtform_libvirt_call_duration_seconds_bucket',
      'virtform_manifest_errors', 'virtform_triggers_total',
    ]) expect(names, n).toContain(n);
    expect(sampleValue(s1, 'virtform_connected')).toBe(1);
    expect(sampleValue(s1, 'virtform_reconcile_runs_total', { outcome: 'succeeded' })).toBe(1);
    expect(sampleValue(s1, 'virtform_apply_steps_total', { op: 'vm.start', outcome: 'succeeded' })).toBe(1);
    expect(sampleValue(s1, 'virtform_libvirt_calls_total', { procedure: 'snapshot' })).toBeGreaterThanOrEqual(1);
    expect(sampleValue(s1, 'virtform_resources', { kind: 'Volume', state: 'ready' })).toBe(3);

    host.failNext('getDomain', `${P}-vm1`);
    controller.trigger('resync');
    await waitFor(() => controller!.runCount === 2, 'the resync run');
    await controller.idle();
    const s2 = parsePrometheus((await get('/metrics')).body);
    expect(sampleValue(s2, 'virtform_reconcile_runs_total', { outcome: 'noop' })).toBe(1);
    expect(sampleValue(s2, 'virtform_triggers_total', { source: 'resync' })).toBe(1);
    expect(sampleValue(s2, 'virtform_libvirt_calls_total', { procedure: 'snapshot' }))
      .toBe(sampleValue(s1, 'virtform_libvirt_calls_total', { procedure: 'snapshot' }) + 1);
    expect(sampleValue(s2, 'virtform_reconcile_duration_seconds_count')).toBe(2);

    const status = JSON.parse((await get('/status')).body) as Record<string, any>;
    expect(status.ready).toBe(true);
    expect(status.connection.state).toBe('connected');
    expect(status.runs.total).toBe(2);
    expect(status.runs.last).toMatchObject({ outcome: 'noop', sources: ['resync'], plan: { noop: true, create: 0 }, failures: [] });
    expect(status.runs.lastReconcile.outcome).toBe('noop');
    expect(status.manifests).toMatchObject({ valid: true, errors: [], resources: 7 });
    expect(status.resources).toHaveLength(7);
    expect(status.resources.find((r: { name: string }) => r.name === `${P}-vm1`)).toMatchObject({
      // the same row as `virtform status --json`: observed live from the host, status derived
      kind: 'VirtualMachine', desired: 'running', observed: 'running', status: 'converged', recordedStatus: 'running',
    });
    expect(status.summary).toEqual({ total: 7, byStatus: { converged: 7 } });
    expect(status.hostError).toBeNull();
    expect(status.stalled).toEqual([]);
    expect(status.requeue).toEqual({ attempt: 0 });
    // a VM destroyed outside virtform shows as drifted at once (before any run)
    host.domains.get(`${P}-vm1`)!.active = false;
    await new Promise((r) => setTimeout(r, 1100)); // past the /status host-view cache
    const drifted = JSON.parse((await get('/status')).body) as Record<string, any>;
    expect(drifted.resources.find((r: { name: string }) => r.name === `${P}-vm1`)).toMatchObject({
      desired: 'running', observed: 'stopped', status: 'drifted', recordedStatus: 'running',
    });
    host.domains.get(`${P}-vm1`)!.active = true;

    refuse = 3;
    host.disconnect();
    const down = await get('/readyz');
    expect(down.status).toBe(503);
    expect(down.body).toMatch(/disconnected/);
    expect(sampleValue(parsePrometheus((await get('/metrics')).body), 'virtform_connected')).toBe(0);
    await waitFor(async () => (await get('/readyz')).status === 200, '/readyz 200 after reconnect');
    expect((await get('/healthz')).status).toBe(200);
  });

  it('answers only a Host header naming the listen address, localhost, 127.0.0.1 or [::1] with the port, or an --allowed-host name (DNS rebinding)', async () => {
    controller = new WatchController({ dir: fx.mdir, store: fx.store, connect: async () => new FakeHost() });
    server = await startStatusServer(controller, { host: '127.0.0.1', port: 0 }, undefined, { allowedHosts: [parseAllowedHost('Dash.Example')] });
    const port = server.port;
    const ask = (host: string | undefined, path = '/status'): Promise<number> => new Promise((resolve, reject) => {
      const req = request({ host: '127.0.0.1', port, path, setHost: false, headers: host === undefined ? {} : { host } }, (res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
      });
      req.on('error', reject);
      req.end();
    });
    for (const h of [`127.0.0.1:${port}`, `localhost:${port}`, `LOCALHOST:${port}`, `[::1]:${port}`, `dash.example:${port}`]) {
      expect(await ask(h, '/healthz'), h).toBe(200);
    }
    for (const h of ['evil.example', `evil.example:${port}`, `127.0.0.1:${port + 1}`, 'localhost', `127.0.0.2:${port}`, `localhost.evil.example:${port}`]) {
      expect(await ask(h), h).toBe(421);
      expect(await ask(h, '/metrics'), h).toBe(421);
    }
    // No Host (or an empty one): node's own HTTP/1.1 check answers 400 before the handler.
    expect([400, 421]).toContain(await ask(undefined));
    expect([400, 421]).toContain(await ask(''));
    expect(() => parseAllowedHost('http://x:80')).toThrow(/--allowed-host/);
    expect(allowedHostHeaders({ host: '::1', port: 80 }, 80)).toContain('[::1]');
  });

  it('refuses to bind a non-loopback address', async () => {
    controller = new WatchController({ dir: fx.mdir, store: fx.store, connect: async () => new FakeHost() });
    await expect(startStatusServer(controller, { host: '0.0.0.0', port: 0 })).rejects.toThrow(/non-loopback/);
    controller = undefined;
  });
});
