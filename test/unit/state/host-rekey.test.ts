/**
 * From one host to a fleet (issue 21): `hosts.rekey` binds the records of the implicit host
 * `local` to a Host id when the Host's libvirt identity is the recorded one — every table with a
 * host column, in one transaction, nothing pruned or recreated. On every backend (SQLite always,
 * PostgreSQL with VIRTFORM_TEST_PG_URL).
 */
import { afterEach, describe, expect, it } from 'vitest';
import { HOST_KEYED_TABLES, openStateStore, type HostIdentity, type StateStore } from '../../../src/state/index.js';
import { resourceKey, resourceRef } from '../../../src/model/kinds.js';
import { stateBackends } from '../../support/backends.js';

const backends = stateBackends('rekey');
const ident = (over: Partial<HostIdentity> = {}): HostIdentity => ({ uri: 'qemu:///system', hostname: 'box1', uuid: 'aaaa-1', driver: 'qemu', ...over });

describe.each(backends)('hosts.rekey on $name', (backend) => {
  const open: StateStore[] = [];
  const store = async (): Promise<StateStore> => {
    const s = await openStateStore(await backend.fresh());
    open.push(s);
    return s;
  };
  afterEach(async () => {
    for (const s of open.splice(0)) await s.close();
  });

  /** One row of every per-host table on the implicit host. */
  async function seedLocal(s: StateStore): Promise<void> {
    await s.hosts.bind(ident(), { record: true });
    const vm = resourceRef('VirtualMachine', 'web');
    const vol = resourceRef('Volume', 'disk');
    await s.resources.upsert({ ...vm, uuid: 'u-1', specHash: 'h', desiredState: 'running' });
    await s.resources.upsert({ ...vol, specHash: 'v' });
    const j = await s.journal.begin({ ...vm, runId: 'r', action: 'vm.define', intent: {} });
    await s.journal.finish(j, 'failed', 'boom');
    await s.events.append({ level: 'info', ref: vm, message: 'defined' });
    await s.events.append({ level: 'info', message: 'about no resource' });
    await s.conditions.sync([{ ...vm, conditions: [{ type: 'Ready', status: 'True', reason: 'Converged', message: 'ok' }] }]);
    await s.baselines.put({ ...vm, xml: '<domain/>', sha256: 'x', version: '1' });
    await s.definitionChecks.sync('local', [{ ...vm, sha256: 'x', inputs: 'i' }], new Set([resourceKey('VirtualMachine', 'web')]));
    await s.createdPaths.add(vol, ['/pool/disk.qcow2']);
    await s.references.record('local', [
      { path: '/pool/disk.qcow2', by: 'VirtualMachine/web', role: 'disk', source: 'persistent definition', managed: true },
      { path: '/pool/disk.qcow2', by: 'domain other', role: 'disk', source: 'persistent definition', managed: false },
    ]);
  }

  it('every table with a host column is rekeyed (the list matches the schema)', async () => {
    const s = await store();
    const tables = await s.db.introspection.getTables();
    const withHost = tables.filter((t) => t.columns.some((c) => c.name === 'host')).map((t) => t.name).sort();
    expect(withHost).toEqual([...HOST_KEYED_TABLES].sort());
  });

  it('moves every record of local to the Host when its identity matches, in one go, keeping the records', async () => {
    const s = await store();
    await seedLocal(s);
    const before = await s.resources.get(resourceRef('VirtualMachine', 'web'));
    // The same host seen through another URI (the Host's), with a new host UUID but the same hostname.
    const r = await s.hosts.rekey(ident({ uri: 'qemu+tcp://10.0.0.1/system', uuid: 'bbbb-2' }), { to: 'h1' });
    expect(r.status).toBe('rekeyed');
    if (r.status !== 'rekeyed') return;
    expect(r.moved).toEqual({ resources: 2, journal: 1, events: 1, conditions: 1, baselines: 1, created_paths: 1, volume_references: 2, definition_checks: 1 });
    expect(await s.resources.list({ host: 'local' })).toEqual([]);
    const after = await s.resources.get(resourceRef('VirtualMachine', 'web', 'h1'));
    expect(after).toMatchObject({ uuid: 'u-1', specHash: 'h', generation: before!.generation, createdAt: before!.createdAt, updatedAt: before!.updatedAt });
    expect((await s.journal.listUnresolved()).map((e) => `${e.host}/${e.kind}/${e.name}`)).toEqual(['h1/VirtualMachine/web']);
    expect((await s.events.recent()).map((e) => e.host ?? null).sort()).toEqual(['h1', null]);
    expect([...(await s.conditions.list()).keys()]).toEqual(['h1/VirtualMachine/web']);
    expect([...(await s.baselines.index()).keys()]).toEqual(['h1/VirtualMachine/web']);
    expect([...(await s.definitionChecks.index()).keys()]).toEqual(['h1/VirtualMachine/web']);
    expect(await s.createdPaths.list(resourceRef('Volume', 'disk', 'h1'))).toEqual(['/pool/disk.qcow2']);
    expect(await s.createdPaths.list(resourceRef('Volume', 'disk'))).toEqual([]);
    expect((await s.references.list('h1', ['/pool/disk.qcow2'])).map((x) => x.by).sort()).toEqual(['domain other', 'h1/VirtualMachine/web']);
    expect(await s.references.list('local', ['/pool/disk.qcow2'])).toEqual([]);
    const hosts = await s.hosts.list();
    expect(hosts.map((h) => [h.id, h.uri, h.uuid])).toEqual([['h1', 'qemu+tcp://10.0.0.1/system', 'bbbb-2']]);
    // Idempotent: a second run finds nothing left on local.
    expect((await s.hosts.rekey(ident(), { to: 'h1' })).status).toBe('nothing');
  });

  it('another host recorded as local: nothing changes', async () => {
    const s = await store();
    await seedLocal(s);
    const r = await s.hosts.rekey(ident({ hostname: 'box2', uuid: 'cccc-3' }), { to: 'h2' });
    expect(r).toMatchObject({ status: 'other-host', recorded: { id: 'local', hostname: 'box1' } });
    expect((await s.resources.list()).map((x) => x.host)).toEqual(['local', 'local']);
    // Another driver is another host even with the same UUID.
    expect((await s.hosts.rekey(ident({ driver: 'test' }), { to: 'h2' })).status).toBe('other-host');
  });

  it('a Host that already holds records is never merged into', async () => {
    const s = await store();
    await seedLocal(s);
    await s.resources.upsert({ ...resourceRef('Network', 'n', 'h1'), specHash: 'n' });
    const r = await s.hosts.rekey(ident(), { to: 'h1' });
    expect(r).toMatchObject({ status: 'target-in-use', held: 1 });
    expect((await s.resources.list({ host: 'local' })).length).toBe(2);
  });

  it('a Host row recorded before (no records) gives way to local\'s identity and history', async () => {
    const s = await store();
    await seedLocal(s);
    await s.hosts.bind(ident({ uri: 'qemu+tcp://10.0.0.1/system' }), { id: 'h1', record: true });
    const firstSeen = (await s.hosts.get('local'))!.firstSeen;
    expect((await s.hosts.rekey(ident({ uri: 'qemu+tcp://10.0.0.1/system' }), { to: 'h1' })).status).toBe('rekeyed');
    expect((await s.hosts.list()).map((h) => [h.id, h.firstSeen])).toEqual([['h1', firstSeen]]);
  });

  it('nothing recorded: nothing to bind', async () => {
    const s = await store();
    expect(await s.hosts.rekey(ident(), { to: 'h1' })).toEqual({ status: 'nothing' });
  });
});
