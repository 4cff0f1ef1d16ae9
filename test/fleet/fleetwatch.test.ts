/**
 * `virtform watch DIR` with Host manifests serves the single-host watcher's endpoints on `--listen`
 * (namespace hosts vfflw1-2, zones a, b): /readyz 200 after the first fleet run, /status with both
 * hosts (connected, redacted URI, summary) and the rows with their host, /metrics with `host`
 * labels and a reachable gauge per host. One host's libvirtd SIGKILLed (by its pid): /status shows
 * it unreachable (its rows HostUnreachable) while the other's rows stay converged; after its restart
 * the watcher reconnects and converges it again (a VM undefined behind its back is defined again).
 * Objects: vftest-flwatch-*.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { spawnWatch, waitFor, type Watcher } from '../support/cli.js';
import { useFleet } from '../support/fleet.js';
import { useSuite } from '../support/suite.js';
import { FLEET_FLAGS, webFleet } from './support.js';

const S = useSuite('flwatch');
const F = useFleet('w', 2, { labels: (i) => ({ zone: 'ab'[i]! }), capacity: { memory: '2GiB', vcpus: 8 } });

interface Summary { host: string; uri: string; connected: boolean; error: string | null; vms: { total: number; managed: number } | null }
interface Row { kind: string; name: string; host: string; status: string; reason: string | null; conditions: { type: string; status: string }[] }
interface Status {
  ready: boolean; hosts: Summary[]; resources: Row[]; hostError: string | null;
  lease: { role: string; epoch: number | null }; runs: { total: number; lastReconcile?: { outcome: string } };
}

let w: Watcher | undefined;
afterAll(async () => {
  if (w && w.exitCode === undefined) await w.stop('SIGKILL');
});

const status = async (): Promise<Status> => {
  const r = await w!.http('/status');
  expect(r.status, r.body).toBe(200);
  return JSON.parse(r.body) as Status;
};
const condition = (r: Row, type: string): string | undefined => r.conditions.find((c) => c.type === type)?.status;
const hostsOf = (s: Status): [string, boolean][] => s.hosts.map((h) => [h.host, h.connected]);

describe('fleet watch: the HTTP endpoints', () => {
  it('/readyz, /status with hosts and rows by host, /metrics with host labels; a killed host is unreachable, then reconverges', async () => {
    S.write(webFleet(S, F, { count: 2 }));
    w = spawnWatch([S.mdir, '--db', S.db, '--listen', '127.0.0.1:0', '--resync', '2', '--reconnect-max', '2', ...FLEET_FLAGS]);
    await w.waitForLog('listening', undefined, 60_000);
    expect((await w.http('/healthz')).status).toBe(200);
    await waitFor(async () => (await w!.http('/readyz')).status === 200, `/readyz 200\n${w.tail()}`, 180_000);

    const s = await status();
    expect(s.ready).toBe(true);
    expect(s.lease.role).toBe('leader');
    expect(s.runs.lastReconcile?.outcome).toMatch(/succeeded|noop/);
    expect(hostsOf(s), JSON.stringify(s.hosts)).toEqual([['h1', true], ['h2', true]]);
    for (const h of s.hosts) {
      expect(h.uri).toBe(F.host(h.host).uri);
      expect(h.error).toBeNull();
      expect(h.vms).toMatchObject({ total: 1, managed: 1 });
    }
    expect(new Set(s.resources.map((r) => r.host))).toEqual(new Set(['h1', 'h2']));
    for (const r of s.resources) expect(r.status, `${r.host}/${r.kind}/${r.name}: ${r.reason}`).toBe('converged');

    const m = await w.http('/metrics');
    expect(m.status).toBe(200);
    expect(m.body).toMatch(/^virtform_host_reachable\{host="h1"\} 1$/m);
    expect(m.body).toMatch(/^virtform_host_reachable\{host="h2"\} 1$/m);
    expect(m.body).toMatch(/^virtform_resources\{[^}]*host="h1"[^}]*\} [1-9]/m);
    expect(m.body).toMatch(/^virtform_resources\{[^}]*host="h2"[^}]*\} [1-9]/m);
    expect(m.body).toMatch(/^virtform_resource_condition\{[^}]*type="Ready"[^}]*host="h2"[^}]*\} /m);
    expect(m.body).toMatch(/^virtform_reconcile_runs_total\{outcome="(succeeded|noop)"\} [1-9]/m);
    expect(m.body).toMatch(/^virtform_lease_leader 1$/m);

    // h2's libvirtd dies: /status says so, h1's rows stay converged; the watcher keeps running.
    const vm2 = F.domains('h2', S.base)[0]!;
    expect(vm2).toBeTruthy();
    F.kill('h2');
    let down!: Status;
    await waitFor(async () => {
      down = await status();
      return hostsOf(down).toString() === [['h1', true], ['h2', false]].toString();
    }, '/status: h2 unreachable', 30_000);
    expect(down.hosts[1]!.error).toBeTruthy();
    expect(down.hostError).toMatch(/^h2: /);
    const h2rows = down.resources.filter((r) => r.host === 'h2');
    expect(h2rows.length).toBeGreaterThanOrEqual(3); // its pool, its volume, its VM
    for (const r of h2rows) expect(condition(r, 'HostUnreachable'), `${r.kind}/${r.name}`).toBe('True');
    const h1rows = down.resources.filter((r) => r.host === 'h1');
    expect(h1rows.length).toBeGreaterThanOrEqual(3);
    for (const r of h1rows) {
      expect(r.status, `${r.kind}/${r.name}: ${r.reason}`).toBe('converged');
      expect(condition(r, 'HostUnreachable')).toBe('False');
    }
    await w.waitForLog('host unreachable; its resources are left as they are (HostUnreachable), retrying', (l) => l.host === 'h2', 30_000);
    expect((await w.http('/metrics')).body).toMatch(/^virtform_host_reachable\{host="h2"\} 0$/m);
    expect((await w.http('/readyz')).status).toBe(200);

    // Back: the watcher reconnects (its backoff, capped at 2 s) and converges h2 again.
    await F.restart('h2');
    await w.waitForLog('host reachable again', (l) => l.host === 'h2', 60_000);
    F.virsh('h2', 'undefine', vm2);
    await waitFor(() => F.domains('h2', S.base).includes(vm2), `${vm2} defined again on h2\n${w.tail()}`, 60_000);
    let back!: Status;
    await waitFor(async () => {
      back = await status();
      return hostsOf(back).every(([, c]) => c) && back.resources.every((r) => r.status === 'converged');
    }, 'everything converged on both hosts', 60_000);
    expect(new Set(back.resources.map((r) => r.host))).toEqual(new Set(['h1', 'h2']));
    expect((await w.http('/metrics')).body).toMatch(/^virtform_host_reachable\{host="h2"\} 1$/m);
    expect(await w.stop('SIGTERM')).toBe(0);
  }, 420_000);
});
