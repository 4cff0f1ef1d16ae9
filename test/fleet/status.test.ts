/**
 * `virtform status` over a fleet (namespace hosts vffls1-3, zones a, b, c): the HOST column, the
 * per-host summary (connected, libvirt version, memory and vCPUs allocated vs the Host manifests'
 * capacity, disk per pool, VMs) in the table and in `--json`'s `hosts`; the hosts come from the Host
 * manifests, or without DIR from the hosts table the fleet run recorded. One host's libvirtd
 * SIGKILLed (by its pid file): its rows are unknown with HostUnreachable, the others shown as
 * before, exit 1. Objects: vftest-flstatus-*.
 */
import { describe, expect, it } from 'vitest';
import { useFleet } from '../support/fleet.js';
import { useSuite } from '../support/suite.js';
import { FLEET_FLAGS, poolName, webFleet, webName } from './support.js';

const S = useSuite('flstatus');
const GIB = 1024 ** 3;
const F = useFleet('s', 3, { labels: (i) => ({ zone: 'abc'[i]! }), capacity: { memory: '2GiB', vcpus: 8 } });

interface Summary {
  host: string; uri: string; connected: boolean; error: string | null; libvirtVersion: string | null;
  memory: { allocated: number; capacity: number; reserved: number; source: string } | null;
  vcpus: { allocated: number; capacity: number; reserved: number; source: string } | null;
  pools: { name: string; allocation: number; capacity: number }[];
  vms: { total: number; managed: number; running: number } | null;
}
interface Row { kind: string; name: string; host: string; observed: string; status: string; reason: string | null; conditions: { type: string; status: string }[] }
interface StatusJson { fleet: boolean; hosts: Summary[]; resources: Row[] }

const parse = (stdout: string): StatusJson => JSON.parse(stdout) as StatusJson;
const condition = (r: Row, type: string): string | undefined => r.conditions.find((c) => c.type === type)?.status;

describe('status over a fleet', () => {
  it('HOST column and per-host summary; a host whose libvirtd is killed: its rows HostUnreachable, the others shown, exit 1', async () => {
    // h3 reserves some of its capacity (shown beside it).
    const m = webFleet(S, F, { count: 3, hostSpec: (h) => (h.id === 'h3' ? { reserved: { memory: '512MiB', vcpus: 1 } } : {}) });
    await S.reconcileOk(m, FLEET_FLAGS);

    const j = await S.cli(['status', S.mdir, '--json']);
    expect(j.code, j.stdout + j.stderr).toBe(0);
    const s = parse(j.stdout);
    expect(s.fleet).toBe(true);
    expect(s.hosts.map((h) => [h.host, h.connected, h.error]), j.stderr).toEqual([['h1', true, null], ['h2', true, null], ['h3', true, null]]);
    for (const h of s.hosts) {
      expect(h.uri).toBe(F.host(h.host).uri);
      expect(h.libvirtVersion).toMatch(/^\d+\.\d+\.\d+$/);
      // capacity from the Host manifest (spec.capacity), allocated: the one 64 MiB VM placed there (spread by zone)
      expect(h.memory).toMatchObject({ capacity: 2 * GIB, source: 'manifest', allocated: 64 * 1024 * 1024 });
      expect(h.vcpus).toMatchObject({ capacity: 8, source: 'manifest', allocated: 1 });
      expect(h.vms).toEqual({ total: 1, managed: 1, running: 0 });
      const pool = h.pools.find((p) => p.name === poolName(S));
      expect(pool, JSON.stringify(h.pools)).toBeDefined();
      expect(pool!.capacity).toBeGreaterThan(0);
      expect(pool!.allocation).toBeGreaterThanOrEqual(0);
    }
    expect(s.hosts[2]!.memory!.reserved).toBe(512 * 1024 * 1024);
    expect(s.hosts[2]!.vcpus!.reserved).toBe(1);
    expect(s.hosts[0]!.memory!.reserved).toBe(0);
    expect(new Set(s.resources.map((r) => r.host))).toEqual(new Set(['h1', 'h2', 'h3']));
    for (const r of s.resources) {
      expect(r.status, `${r.host}/${r.kind}/${r.name}: ${r.reason}`).toBe('converged');
      expect(condition(r, 'HostUnreachable')).toBe('False');
    }

    const t = await S.cli(['status', S.mdir]);
    expect(t.code, t.stdout + t.stderr).toBe(0);
    expect(t.stdout).toMatch(/^HOST\s+RESOURCE\s+DESIRED\s+OBSERVED\s+STATUS/m);
    expect(t.stdout).toMatch(new RegExp(`^h[123]\\s+VirtualMachine/${webName(S, 1)}\\s+stopped\\s+stopped\\s+converged`, 'm'));
    expect(t.stdout).toMatch(/^HOST\s+STATE\s+LIBVIRT\s+MEMORY\s+VCPUS\s+DISK \(ALLOCATED\/CAPACITY GiB\)\s+VMS$/m);
    expect(t.stdout).toMatch(/^h1\s+connected\s+\d+\.\d+\.\d+\s+0\.1\/2\.0 GiB\s+1\/8\s+.*1 \(1 managed, 0 running\)$/m);
    expect(t.stdout).toMatch(/^h3\s+connected\s+\S+\s+0\.1\/2\.0 GiB \(0\.5 reserved\)\s+1\/8 \(1 reserved\)/m);

    // Without DIR: the hosts the fleet run recorded in the hosts table (plain tcp to them needs --insecure).
    const table = await S.cli(['status', '--json', '--insecure']);
    expect(table.code, table.stdout + table.stderr).toBe(0);
    expect(parse(table.stdout).hosts.map((h) => [h.host, h.connected, h.error])).toEqual([['h1', true, null], ['h2', true, null], ['h3', true, null]]);
    const refused = await S.cli(['status', '--json']);
    expect(refused.code).toBe(1);
    expect(parse(refused.stdout).hosts.every((h) => !h.connected && /not asked: .*insecure/i.test(h.error ?? ''))).toBe(true);

    // h3's libvirtd dies (SIGKILL by its pid file).
    F.kill('h3');
    const d = await S.cli(['status', S.mdir, '--json']);
    expect(d.code, d.stdout + d.stderr).toBe(1);
    expect(d.stderr).toMatch(/host h3: cannot reach libvirt at qemu\+tcp:\/\/10\.251\.\d+\.2\/system/);
    const ds = parse(d.stdout);
    expect(ds.hosts.map((h) => [h.host, h.connected]), JSON.stringify(ds.hosts.map((h) => h.error))).toEqual([['h1', true], ['h2', true], ['h3', false]]);
    expect(ds.hosts[2]).toMatchObject({ memory: null, vcpus: null, pools: [], vms: null });
    expect(ds.hosts[2]!.error).toBeTruthy();
    const h3rows = ds.resources.filter((r) => r.host === 'h3');
    expect(h3rows.length).toBeGreaterThanOrEqual(3); // its pool, its volume, its VM
    for (const r of h3rows) {
      expect(r).toMatchObject({ observed: 'unknown', status: 'unknown' });
      expect(r.reason).toMatch(/^HostUnreachable: /);
      expect(condition(r, 'HostUnreachable')).toBe('True');
    }
    for (const r of ds.resources.filter((x) => x.host !== 'h3')) {
      expect(r.status, `${r.host}/${r.kind}/${r.name}: ${r.reason}`).toBe('converged');
      expect(condition(r, 'HostUnreachable')).toBe('False');
    }
    const dt = await S.cli(['status', S.mdir]);
    expect(dt.code).toBe(1);
    expect(dt.stdout).toMatch(/^h3\s+\S+\s+\S+\s+unknown\s+unknown\s.*HostUnreachable/m);
    expect(dt.stdout).toMatch(/^h3\s+unreachable: /m);
    expect(dt.stdout).toMatch(/^h1\s+connected/m);
    await F.restart('h3');
  });
});
