/**
 * The fleet view of `status`: which hosts it asks, the per-host summary (capacity used by the
 * defined VMs vs the host's or the Host manifest's capacity, reserved, pools, VM counts), every host
 * asked at once with an unreachable one kept apart, and its rows HostUnreachable.
 */
import { describe, expect, it, vi } from 'vitest';
import { join } from 'node:path';
import { rmSync } from 'node:fs';
import { FakeHost } from '../../support/fake-host.js';
import { tempDir } from '../../support/manifests.js';
import {
  buildStatus, observeFleet, parseVersionTag, renderHostTable, statusHosts, summarizeHost, type HostFacts, type StatusHost,
} from '../../../src/status/index.js';
import { LOCAL_HOST } from '../../../src/model/kinds.js';
import { openStateStore, type ResourceRecord } from '../../../src/state/index.js';
import { runStatus } from '../../../src/cli/commands/status.js';

const GIB = 1024 ** 3;
const marker = { kind: 'VirtualMachine', name: 'x', specHash: 'x' } as const;

const record = (name: string, host: string): ResourceRecord => ({
  kind: 'VirtualMachine', name, host, uuid: null, specHash: 'h', desiredState: 'running', observedStatus: 'running', lastError: null,
  attempts: 0, generation: 1, lastAppliedRevision: null, updatedAt: '2026-01-01T00:00:00Z', details: { config: {}, facts: {} },
}) as unknown as ResourceRecord;

describe('statusHosts: which hosts a status asks', () => {
  const recorded = [{ id: LOCAL_HOST, uri: 'qemu:///system' }, { id: 'h2', uri: 'qemu+tcp://b/system' }, { id: 'h1', uri: 'qemu+tcp://a/system' }];
  it('the Host manifests when there are, sorted by id', () => {
    const defined: StatusHost[] = [{ id: 'z', uri: 'qemu+tcp://z/system' }, { id: 'a', uri: 'qemu+tcp://y/system', capacity: { memory: GIB } }];
    expect(statusHosts({ defined, recorded, localUri: 'qemu:///system', localRecords: true })).toEqual({ fleet: true, hosts: [defined[1], defined[0]] });
  });
  it('else the hosts table (local only while records of it remain), else the one host of --uri', () => {
    expect(statusHosts({ defined: [], recorded, localUri: 'qemu:///x', localRecords: false }).hosts.map((h) => [h.id, h.uri]))
      .toEqual([['h1', 'qemu+tcp://a/system'], ['h2', 'qemu+tcp://b/system']]);
    expect(statusHosts({ defined: [], recorded, localUri: 'qemu:///x', localRecords: true }).hosts.map((h) => [h.id, h.uri]))
      .toEqual([[LOCAL_HOST, 'qemu:///x'], ['h1', 'qemu+tcp://a/system'], ['h2', 'qemu+tcp://b/system']]);
    expect(statusHosts({ defined: [], recorded: [recorded[0]!], localUri: 'qemu:///x', localRecords: true }))
      .toEqual({ fleet: false, hosts: [{ id: LOCAL_HOST, uri: 'qemu:///x' }] });
    expect(statusHosts({ defined: [], recorded: [], localUri: 'qemu:///x', localRecords: false }).fleet).toBe(false);
  });
});

describe('summarizeHost: capacity used', () => {
  const facts: HostFacts = {
    version: 'libvirt 9.0.0, hypervisor 7.2.0',
    node: { memory: 16 * GIB, cpus: 8, disk: {} },
    domains: [
      { name: 'web-1', active: true, memory: 2 * GIB, vcpus: 2 },
      { name: 'web-2', active: false, memory: 1 * GIB, vcpus: 1 },
      { name: 'other', active: true, memory: 4 * GIB, vcpus: 4 },
    ],
    pools: new Map([['images', { capacity: 100 * GIB, allocation: 30 * GIB, available: 70 * GIB }], ['default', { capacity: 50 * GIB, allocation: 5 * GIB, available: 45 * GIB }]]),
  };
  it('sums every defined VM (managed or not, running or not) against what the host reports', () => {
    const s = summarizeHost({ id: 'h1', uri: 'u' }, facts, new Set(['web-1', 'web-2']));
    expect(s).toMatchObject({ host: 'h1', connected: true, error: null, libvirtVersion: '9.0.0', hypervisorVersion: '7.2.0' });
    expect(s.memory).toEqual({ allocated: 7 * GIB, capacity: 16 * GIB, reserved: 0, free: 9 * GIB, source: 'host' });
    expect(s.vcpus).toEqual({ allocated: 7, capacity: 8, reserved: 0, free: 1, source: 'host' });
    expect(s.vms).toEqual({ total: 3, managed: 2, running: 2 });
    expect(s.pools.map((p) => [p.name, p.allocation, p.capacity, p.source])).toEqual([['default', 5 * GIB, 50 * GIB, 'host'], ['images', 30 * GIB, 100 * GIB, 'host']]);
  });
  it('the Host spec.capacity overrides the report (memory, vCPUs, a pool), reserved is taken off the free part', () => {
    const s = summarizeHost({ id: 'h1', uri: 'u', capacity: { memory: 8 * GIB, vcpus: 6, disk: { images: 40 * GIB } }, reserved: { memory: 2 * GIB, vcpus: 1 } }, facts, new Set());
    expect(s.memory).toEqual({ allocated: 7 * GIB, capacity: 8 * GIB, reserved: 2 * GIB, free: -1 * GIB, source: 'manifest' });
    expect(s.vcpus).toEqual({ allocated: 7, capacity: 6, reserved: 1, free: -2, source: 'manifest' });
    expect(s.pools.find((p) => p.name === 'images')).toEqual({ name: 'images', allocation: 30 * GIB, capacity: 40 * GIB, available: 10 * GIB, source: 'manifest' });
    expect(s.pools.find((p) => p.name === 'default')!.source).toBe('host');
    expect(s.vms!.managed).toBe(0);
  });
  it('parses the version tag, and a host that says none has none', () => {
    expect(parseVersionTag('libvirt 10.1.2, hypervisor 8.2.0')).toEqual({ libvirt: '10.1.2', hypervisor: '8.2.0' });
    expect(parseVersionTag(undefined)).toEqual({ libvirt: null, hypervisor: null });
  });
});

describe('observeFleet: every host at once, an unreachable one apart', () => {
  it('summaries of the hosts that answer, the error of the one that does not, and its rows HostUnreachable', async () => {
    const a = new FakeHost();
    const b = new FakeHost();
    a.node = { memory: 4 * GIB, cpus: 2, poolCapacity: 10 * GIB };
    await a.defineDomain({ name: 'vm-a', type: 'qemu', vcpus: 2, memoryKiB: 1024 * 1024, disks: [], nics: [], marker });
    await a.defineDomain({ name: 'stray', type: 'qemu', vcpus: 1, memoryKiB: 512 * 1024, disks: [], nics: [], marker });
    await a.startDomain('vm-a');
    await a.definePool({ name: 'p', path: '/var/lib/x', marker: { kind: 'StoragePool', name: 'p', specHash: 'x' } } as never);
    await a.startPool('p');
    await b.defineDomain({ name: 'vm-b', type: 'qemu', vcpus: 1, memoryKiB: 256 * 1024, disks: [], nics: [], marker });
    const ports = new Map([['a', a], ['b', b]]);
    // The unreachable host answers only after the others: they do not wait for it.
    let releaseC!: () => void;
    const cGate = new Promise<void>((r) => (releaseC = r));
    const connect = vi.fn(async (h: StatusHost) => {
      if (h.id === 'c') {
        await cGate;
        throw new Error('connect ECONNREFUSED 10.0.0.3:16509');
      }
      return ports.get(h.id)!;
    });
    const records = [record('vm-a', 'a'), record('vm-b', 'b'), record('vm-c', 'c')];
    const targets: StatusHost[] = [{ id: 'a', uri: 'ua' }, { id: 'b', uri: 'ub', capacity: { vcpus: 16 } }, { id: 'c', uri: 'uc' }];
    const p = observeFleet(targets, records, undefined, connect);
    await new Promise((r) => setTimeout(r, 20));
    expect(connect).toHaveBeenCalledTimes(3); // all three asked at once
    releaseC();
    const view = await p;
    expect([...view.views.keys()].sort()).toEqual(['a', 'b']);
    expect(view.errors).toEqual(new Map([['c', 'connect ECONNREFUSED 10.0.0.3:16509']]));
    expect(view.hosts.map((h) => h.host)).toEqual(['a', 'b', 'c']);
    expect(view.hosts[0]).toMatchObject({
      connected: true, memory: { allocated: 1.5 * GIB, capacity: 4 * GIB }, vcpus: { allocated: 3, capacity: 2 }, vms: { total: 2, managed: 1, running: 1 },
      pools: [{ name: 'p', allocation: 0, capacity: 10 * GIB, available: 10 * GIB, source: 'host' }],
    });
    expect(view.hosts[1]).toMatchObject({ vcpus: { allocated: 1, capacity: 16, source: 'manifest' }, vms: { total: 1, managed: 1, running: 0 } });
    expect(view.hosts[2]).toEqual({
      host: 'c', uri: 'uc', connected: false, error: 'connect ECONNREFUSED 10.0.0.3:16509', libvirtVersion: null, hypervisorVersion: null,
      memory: null, vcpus: null, pools: [], vms: null,
    });

    const { resources } = buildStatus({ records, revisions: new Map(), hosts: view.views, hostErrors: view.errors });
    const byName = new Map(resources.map((r) => [r.name, r]));
    expect(byName.get('vm-c')).toMatchObject({ host: 'c', observed: 'unknown', status: 'unknown', reason: 'HostUnreachable: connect ECONNREFUSED 10.0.0.3:16509' });
    expect(byName.get('vm-c')!.conditions.find((c) => c.type === 'HostUnreachable')).toMatchObject({ status: 'True', reason: 'ConnectionFailed' });
    expect(byName.get('vm-a')).toMatchObject({ observed: 'running', status: 'converged' });
    expect(byName.get('vm-a')!.conditions.find((c) => c.type === 'HostUnreachable')).toMatchObject({ status: 'False' });
    expect(byName.get('vm-b')).toMatchObject({ observed: 'stopped', status: 'drifted' });
    // A single-host status has no HostUnreachable condition (as before the fleet).
    const single = buildStatus({ records: [record('vm-a', LOCAL_HOST)], revisions: new Map() });
    expect(single.resources[0]!.conditions.some((c) => c.type === 'HostUnreachable')).toBe(false);

    // A host whose summary reads fail keeps its status view; its summary says why it is empty.
    const d = new FakeHost();
    d.failures.set('nodeInfo:*', Infinity);
    const partial = await observeFleet([{ id: 'd', uri: 'ud' }], [record('vm-d', 'd')], undefined, async () => d);
    expect(partial.views.has('d')).toBe(true);
    expect(partial.errors.size).toBe(0);
    expect(partial.hosts[0]).toMatchObject({ connected: true, memory: null, vms: null });
    expect(partial.hosts[0]!.error).toMatch(/^no summary: /);

    const table = renderHostTable(view.hosts);
    expect(table.split('\n')[0]).toMatch(/^HOST\s+STATE\s+LIBVIRT\s+MEMORY\s+VCPUS\s+DISK/);
    expect(table).toMatch(/^a\s+connected\s+\S+\s+1\.5\/4\.0 GiB\s+3\/2\s+p 0\.0\/10\.0\s+2 \(1 managed, 1 running\)$/m);
    expect(table).toMatch(/^c\s+unreachable: connect ECONNREFUSED/m);
  });
});

describe('virtform status over the hosts table', () => {
  it('asks each recorded host; unreachable ones: exit 1, every row HostUnreachable, HOST column, hosts in --json', async () => {
    const work = tempDir('vftest-fleetst-');
    try {
      const db = join(work, 'state.db');
      const store = await openStateStore(db);
      const dead = (n: string): string => `qemu+unix:///system?socket=${join(work, `${n}.sock`)}`;
      for (const id of ['h1', 'h2']) {
        await store.hosts.bind({ uri: dead(id), hostname: id, uuid: null, driver: 'qemu' }, { id, record: true });
        await store.resources.upsert({ kind: 'VirtualMachine', name: `vm-${id}`, host: id, uuid: null, specHash: 'h', desiredState: 'running', observedStatus: 'running' });
      }
      await store.close();
      let stdout = '';
      let stderr = '';
      const out = vi.spyOn(process.stdout, 'write').mockImplementation((s) => ((stdout += String(s)), true));
      const err = vi.spyOn(process.stderr, 'write').mockImplementation((s) => ((stderr += String(s)), true));
      let code: number;
      let jsonCode: number;
      let json = '';
      try {
        code = await runStatus(undefined, { uri: dead('local'), db });
        const text = stdout;
        stdout = '';
        jsonCode = await runStatus(undefined, { uri: dead('local'), db, json: true });
        json = stdout;
        stdout = text;
      } finally {
        out.mockRestore();
        err.mockRestore();
      }
      expect(code).toBe(1);
      expect(jsonCode).toBe(1);
      expect(stdout).toMatch(/^HOST\s+RESOURCE\s+DESIRED\s+OBSERVED\s+STATUS/m);
      expect(stdout).toMatch(/^h1\s+VirtualMachine\/vm-h1\s+running\s+unknown\s+unknown\s.*HostUnreachable/m);
      expect(stdout).toMatch(/^h2\s+unreachable: /m);
      expect(stderr).toContain(`host h1: cannot reach libvirt at ${dead('h1')}`);
      const j = JSON.parse(json) as { fleet: boolean; hosts: { host: string; connected: boolean; error: string }[]; resources: { host: string; status: string }[] };
      expect(j.fleet).toBe(true);
      expect(j.hosts.map((h) => [h.host, h.connected])).toEqual([['h1', false], ['h2', false]]);
      expect(j.resources.map((r) => [r.host, r.status])).toEqual([['h1', 'unknown'], ['h2', 'unknown']]);
    } finally {
      rmSync(work, { recursive: true, force: true });
    }
  });
});
