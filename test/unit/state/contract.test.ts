/**
 * The StateStore contract, run on every backend: SQLite always; PostgreSQL when a private cluster
 * is given in VIRTFORM_TEST_PG_URL (`make test-postgres` starts one: test/support/postgres.ts).
 * Each test gets a fresh database.
 */
import { afterEach, describe, expect, it } from 'vitest';
import {
  LeaseHeldError, RequestOrphanedError, RequestTimeoutError, awaitOutcome, openStateStore, submit, type StateStore,
} from '../../../src/state/index.js';
import { resourceRef } from '../../../src/model/kinds.js';
import { stateBackends } from '../../support/backends.js';

const backends = stateBackends('contract');

describe.each(backends)('StateStore contract on $name', (backend) => {
  const open: StateStore[] = [];
  const store = async (location?: string, now?: () => Date): Promise<StateStore> => {
    const s = await openStateStore(location ?? (await backend.fresh()), now ? { now } : {});
    open.push(s);
    return s;
  };
  afterEach(async () => {
    for (const s of open.splice(0)) await s.close();
  });

  it('migrates a new DB to the latest migration, and opening again changes nothing', async () => {
    const loc = await backend.fresh();
    const s = await store(loc);
    expect(s.backend).toBe(backend.name);
    const names = async (x: StateStore) => (await x.db.withTables<{ kysely_migration: { name: string } }>().selectFrom('kysely_migration').select('name').orderBy('name').execute()).map((r) => r.name);
    const first = await names(s);
    expect(first.at(-1)).toBe('0015_requests');
    expect(first[0]).toBe('0001_initial');
    expect(await names(await store(loc))).toEqual(first);
  });

  it('runs: recorded with their JSON columns, paged newest first, pruned to the newest N on insert (migration 0014)', async () => {
    const s = await store();
    const run = (i: number) => ({
      id: `run-${i}`, startedAt: `2026-01-01T00:00:0${i}.000Z`, finishedAt: `2026-01-01T00:00:0${i}.500Z`, trigger: 'file,event', outcome: i === 2 ? 'failed' : 'succeeded',
      durationMs: 500 + i, revisionId: i, gitCommit: i % 2 ? 'a'.repeat(40) : null, counts: { create: i, steps: 2 * i },
      failures: i === 2 ? [{ resource: 'VirtualMachine/x', error: 'boom', code: 'invalid' }] : [],
      steps: [{ kind: 'VirtualMachine', name: 'x', host: 'local', op: 'vm.start', ms: 12, outcome: 'succeeded' }],
    });
    for (let i = 1; i <= 5; i++) await s.runs.record(run(i), 3);
    const page = await s.runs.page(0, 10);
    expect(page.total).toBe(3);
    expect(page.items.map((r) => r.id)).toEqual(['run-5', 'run-4', 'run-3']);
    expect(await s.runs.get('run-1')).toBeUndefined();
    expect(await s.runs.get('run-4')).toEqual(run(4));
    expect((await s.runs.page(1, 1)).items.map((r) => r.id)).toEqual(['run-4']);
    await s.runs.record({ ...run(5), outcome: 'failed' }, 3); // the same id again: replaced, not added
    expect((await s.runs.page(0, 10)).items.map((r) => `${r.id}:${r.outcome}`)).toEqual(['run-5:failed', 'run-4:succeeded', 'run-3:succeeded']);
    await s.gitCommits.put({ sha: 'b'.repeat(40), author: 'A <a@example.invalid>', message: 'subject\n\nbody', committedAt: '2026-01-01T00:00:00.000Z' });
    expect(await s.gitCommits.getMany(['b'.repeat(40), 'c'.repeat(40)])).toEqual([{ sha: 'b'.repeat(40), author: 'A <a@example.invalid>', message: 'subject\n\nbody', committedAt: '2026-01-01T00:00:00.000Z' }]);
    await s.events.append({ level: 'info', ref: resourceRef('VirtualMachine', 'x'), message: 'about x' });
    await s.events.append({ level: 'info', message: 'about nothing' });
    expect((await s.events.forResource(resourceRef('VirtualMachine', 'x'))).map((e) => e.message)).toEqual(['about x']);
  });

  it('serializes concurrent first opens (the migrations run once)', async () => {
    const loc = await backend.fresh();
    const [a, b, c] = await Promise.all([store(loc), store(loc), store(loc)]);
    await a!.resources.upsert({ ...resourceRef('Network', 'n'), specHash: 'h' });
    expect((await c!.resources.get(resourceRef('Network', 'n')))?.specHash).toBe('h');
    expect(b!.backend).toBe(backend.name);
  });

  it('resources: upsert keeps unnamed fields, generation moves with the spec hash, names are unique per host', async () => {
    let t = Date.parse('2025-01-01T00:00:00.000Z');
    const s = await store(undefined, () => new Date((t += 1000)));
    const rev = await s.revisions.start({ runId: 'r1', manifestDigest: 'd' });
    const vm = resourceRef('VirtualMachine', 'vm1');
    const first = await s.resources.upsert({ ...vm, uuid: 'u-1', specHash: 'h1', desiredState: 'running', details: { a: 1 }, lastAppliedRevision: rev });
    expect(first).toMatchObject({ ...vm, uuid: 'u-1', specHash: 'h1', generation: 1, details: { a: 1 }, lastAppliedRevision: rev, attempts: 0 });
    expect((await s.resources.upsert({ ...vm, specHash: 'h1' })).generation).toBe(1);
    const changed = await s.resources.upsert({ ...vm, specHash: 'h2' });
    expect(changed).toMatchObject({ generation: 2, uuid: 'u-1', details: { a: 1 }, createdAt: first.createdAt });
    expect(changed.updatedAt > first.updatedAt).toBe(true);
    expect(await s.resources.upsert({ ...vm, observedStatus: 'running', desiredState: null })).toMatchObject({ generation: 2, specHash: 'h2', desiredState: null });
    await s.resources.setStatus(vm, { lastError: 'boom', attempts: 3 });
    expect(await s.resources.get(vm)).toMatchObject({ lastError: 'boom', attempts: 3, observedStatus: 'running' });
    await s.resources.setStatus(resourceRef('Network', 'new'), { observedStatus: 'failed' });
    expect(await s.resources.get(resourceRef('Network', 'new'))).toMatchObject({ generation: 0, specHash: null, observedStatus: 'failed' });
    // Another host: another resource of the same name.
    const other = resourceRef('VirtualMachine', 'vm1', 'h2');
    expect((await s.resources.upsert({ ...other, specHash: 'x' })).generation).toBe(1);
    expect((await s.resources.get(vm))?.specHash).toBe('h2');
    expect((await s.resources.list()).map((r) => `${r.host}/${r.kind}/${r.name}`)).toEqual(['h2/VirtualMachine/vm1', 'local/Network/new', 'local/VirtualMachine/vm1']);
    expect((await s.resources.list({ host: 'h2' })).map((r) => r.name)).toEqual(['vm1']);
    expect((await s.resources.list({ kind: 'Network' })).map((r) => r.name)).toEqual(['new']);
    await s.resources.delete(other);
    expect(await s.resources.get(other)).toBeUndefined();
    expect(await s.resources.get(vm)).toBeDefined();
    await expect(s.resources.upsert({ ...resourceRef('Volume', 'v'), lastAppliedRevision: 999 })).rejects.toThrow();
  });

  it('resources: concurrent upserts of one new resource from two connections make one row', async () => {
    const loc = await backend.fresh();
    const [a, b] = [await store(loc), await store(loc)];
    const ref = resourceRef('Volume', 'race');
    await Promise.all([
      ...Array.from({ length: 10 }, (_, i) => a.resources.upsert({ ...ref, specHash: `a${i}` })),
      ...Array.from({ length: 10 }, (_, i) => b.resources.upsert({ ...ref, specHash: `b${i}` })),
    ]);
    expect(await a.resources.list()).toHaveLength(1);
    expect((await a.resources.get(ref))!.generation).toBeGreaterThanOrEqual(2);
  });

  it('resources: the index in pages (facts, exact text) and full records by ref', async () => {
    const s = await store();
    for (let i = 0; i < 250; i += 1) {
      await s.resources.upsert({ ...resourceRef('Volume', `v${i}`), uuid: `/p/v${i}`, specHash: `h${i}`, details: { config: { i }, ...(i === 7 ? { facts: { mac: 'x' } } : {}) } });
    }
    await s.resources.delete(resourceRef('Volume', 'v121'));
    const odd = 'vm "q" \\ ✓ 🚀';
    const err = 'line1\n"quoted" \\ back\ttab \u0001 é';
    await s.resources.upsert({ ...resourceRef('VirtualMachine', odd, 'h2'), specHash: 'h', desiredState: 'running', lastError: err });
    const pages = [];
    for await (const p of s.resources.indexPages(100)) pages.push(p);
    expect(pages.map((p) => p.length)).toEqual([100, 100, 50]);
    const index = pages.flat();
    expect(index.find((r) => r.name === 'v7')).toEqual({
      id: expect.any(Number), host: 'local', kind: 'Volume', name: 'v7', uuid: '/p/v7', specHash: 'h7', desiredState: null, lastError: null, facts: { mac: 'x' },
    });
    expect(index.find((r) => r.kind === 'VirtualMachine')).toMatchObject({ host: 'h2', name: odd, lastError: err, desiredState: 'running' });
    expect(index.some((r) => r.name === 'v121')).toBe(false);
    const empty = [];
    for await (const p of (await store()).resources.indexPages(10)) empty.push(p);
    expect(empty).toEqual([]);
    const keys = [...Array(250).keys()].filter((i) => i % 2 === 0).map((i) => resourceRef('Volume', `v${i}`));
    const full = await s.resources.getMany([...keys, resourceRef('Volume', 'missing'), resourceRef('Volume', 'v2', 'h2')]);
    expect(full).toHaveLength(125);
    expect(full.find((r) => r.name === 'v200')?.details).toEqual({ config: { i: 200 } });
  });

  it('journal: begin/finish, unresolved per resource and host, resolve, recent', async () => {
    const s = await store();
    const j = s.journal;
    const a1 = await j.begin({ runId: 'r', ...resourceRef('Network', 'a'), action: 'network.ensure', intent: { x: 1 } });
    await j.finish(a1, 'failed', 'boom');
    // A success of the same name on another host does not resolve it.
    const a2 = await j.begin({ runId: 'r', ...resourceRef('Network', 'a', 'h2'), action: 'network.ensure', intent: {} });
    await j.finish(a2, 'succeeded');
    const c1 = await j.begin({ runId: 'r', ...resourceRef('Volume', 'c'), action: 'volume.create', intent: {}, attempt: 2 });
    await j.finish(c1, 'succeeded');
    await j.finish(c1, 'failed', 'late'); // a closed entry keeps its first outcome
    const d1 = await j.begin({ runId: 'r', ...resourceRef('Volume', 'd'), action: 'volume.create', intent: {} });
    expect((await j.listUnresolved()).map((e) => `${e.host}/${e.name}:${e.status}`)).toEqual(['local/a:failed', 'local/d:open']);
    expect((await j.listOpen()).map((e) => e.id)).toEqual([d1]);
    await expect(j.finish(99999, 'succeeded')).rejects.toThrow(/does not exist/);
    await j.resolve([a1, d1]);
    expect(await j.listUnresolved()).toEqual([]);
    expect((await j.forResource(resourceRef('Network', 'a')))[0]).toMatchObject({ status: 'abandoned', error: 'boom', intent: { x: 1 }, host: 'local' });
    expect((await j.forResource(resourceRef('Volume', 'c')))[0]).toMatchObject({ status: 'succeeded', attempt: 2 });
    expect((await j.recent(2)).map((e) => e.id)).toEqual([d1, c1]);
  });

  it('revisions, events (with host), controls, git sources', async () => {
    let t = Date.parse('2025-06-01T00:00:00.000Z');
    const s = await store(undefined, () => new Date((t += 1)));
    const r1 = await s.revisions.start({ runId: 'r1', manifestDigest: 'd1', gitCommit: 'abc', gitDirty: true });
    await s.revisions.finish(r1, 'succeeded', { steps: 2 });
    const r2 = await s.revisions.start({ runId: 'r2', manifestDigest: 'd2' });
    expect(await s.revisions.latest()).toMatchObject({ id: r2, outcome: 'running' });
    expect(await s.revisions.latest({ outcome: 'succeeded' })).toMatchObject({ id: r1, gitCommit: 'abc', gitDirty: true, summary: { steps: 2 } });
    await expect(s.revisions.finish(99999, 'x', {})).rejects.toThrow(/does not exist/);

    await s.events.append({ level: 'info', message: 'run' });
    await s.events.append({ level: 'warn', ref: resourceRef('Network', 'n', 'h2'), message: 'blocked' });
    expect(await s.events.recent()).toEqual([
      { at: expect.any(String), level: 'warn', kind: 'Network', name: 'n', host: 'h2', message: 'blocked' },
      { at: expect.any(String), level: 'info', kind: null, name: null, host: null, message: 'run' },
    ]);

    expect(await s.controls.suspension()).toBeUndefined();
    const first = await s.controls.suspend({ by: 'me', reason: 'maintenance' });
    expect(first).toMatchObject({ already: false, suspension: { by: 'me', reason: 'maintenance' } });
    expect((await s.controls.suspend({ by: 'you' })).already).toBe(true);
    expect((await s.controls.resume())?.by).toBe('me');
    expect(await s.controls.resume()).toBeUndefined();

    const g = await s.gitSources.update({ id: 'g1', url: 'https://x/r.git', ref: 'branch:main', path: '', fetchedCommit: 'c1' });
    expect(g).toMatchObject({ id: 'g1', fetchedCommit: 'c1', appliedCommit: null });
    const g2 = await s.gitSources.update({ id: 'g1', url: 'https://x/r.git', ref: 'branch:main', path: '', appliedCommit: 'c1', appliedRevision: r1 });
    expect(g2).toMatchObject({ fetchedCommit: 'c1', appliedCommit: 'c1', appliedRevision: r1 });
    expect((await s.gitSources.list()).map((x) => x.id)).toEqual(['g1']);
  });

  it('conditions: transition times kept while the status is, per host; prune', async () => {
    let t = Date.parse('2025-06-01T00:00:00.000Z');
    const s = await store(undefined, () => new Date((t += 1000)));
    const ready = (status: 'True' | 'False', message = '') => ({ type: 'Ready' as const, status, reason: 'R', message });
    const a = resourceRef('Network', 'n');
    const b = resourceRef('Network', 'n', 'h2');
    const first = await s.conditions.sync([{ ...a, conditions: [ready('True')] }, { ...b, conditions: [ready('False')] }]);
    const at = first.get('Network/n')![0]!.lastTransitionTime;
    expect(first.get('h2/Network/n')![0]!.status).toBe('False');
    const second = await s.conditions.sync([{ ...a, conditions: [ready('True', 'msg changed')] }, { ...b, conditions: [ready('True')] }]);
    expect(second.get('Network/n')![0]).toMatchObject({ lastTransitionTime: at, message: 'msg changed' });
    expect(second.get('h2/Network/n')![0]!.lastTransitionTime > at).toBe(true);
    await s.conditions.sync([{ ...b, conditions: [ready('True')] }], { prune: true });
    expect([...(await s.conditions.list()).keys()]).toEqual(['h2/Network/n']);
  });

  it('conditions: a prune limited to some types leaves the others; kept types are never pruned', async () => {
    const s = await store();
    const vm = resourceRef('VirtualMachine', 'v', 'h1');
    const gone = resourceRef('VirtualMachine', 'gone', 'h1');
    const c = (type: 'Ready' | 'Unschedulable', status: 'True' | 'False' = 'False') => ({ type, status, reason: 'R', message: '' });
    await s.conditions.sync([{ ...vm, conditions: [c('Ready'), c('Unschedulable')] }, { ...gone, conditions: [c('Ready'), c('Unschedulable', 'True')] }]);
    // A status: derives Ready only, keeps the fleet's Unschedulable even of a resource it no longer reports.
    await s.conditions.sync([{ ...vm, conditions: [c('Ready', 'True')] }], { prune: true, keepTypes: ['Unschedulable', 'HostUnreachable'] });
    const types = async () => [...(await s.conditions.list())].map(([k, cs]) => `${k}:${cs.map((x) => x.type).sort().join(',')}`).sort();
    expect(await types()).toEqual(['h1/VirtualMachine/gone:Unschedulable', 'h1/VirtualMachine/v:Ready,Unschedulable']);
    // The fleet run: prunes only its own types.
    await s.conditions.sync([{ ...vm, conditions: [c('Unschedulable')] }], { prune: true, pruneTypes: ['Unschedulable', 'HostUnreachable'] });
    expect(await types()).toEqual(['h1/VirtualMachine/v:Ready,Unschedulable']);
  });

  it('baselines, references and created paths are per host', async () => {
    const s = await store();
    const a = resourceRef('Network', 'n');
    const b = resourceRef('Network', 'n', 'h2');
    await s.baselines.put({ ...a, xml: '<a/>', sha256: 'sa', version: 'v1' });
    await s.baselines.put({ ...b, xml: '<b/>', sha256: 'sb', version: 'v1' });
    await s.baselines.put({ ...a, xml: '<a2/>', sha256: 'sa2', version: 'v2' });
    expect(await s.baselines.index()).toEqual(new Map([['Network/n', { sha256: 'sa2', version: 'v2' }], ['h2/Network/n', { sha256: 'sb', version: 'v1' }]]));
    expect(await s.baselines.xml([b, resourceRef('Network', 'zz')])).toEqual(new Map([['h2/Network/n', '<b/>']]));
    await s.baselines.delete(a);
    expect([...(await s.baselines.index()).keys()]).toEqual(['h2/Network/n']);

    const use = { path: '/p/x', by: 'VirtualMachine/vm', role: 'disk', source: 'persistent definition', managed: true };
    await s.references.record('local', [use, use]);
    await s.references.record('h2', [{ ...use, managed: false }]);
    expect((await s.references.list('local', ['/p/x', '/p/y'])).map((r) => r.managed)).toEqual([true]);
    await s.references.forget('local', ['/p/x']);
    expect(await s.references.list('local', ['/p/x'])).toEqual([]);
    expect(await s.references.list('h2', ['/p/x'])).toHaveLength(1);

    const pool = resourceRef('StoragePool', 'p');
    await s.createdPaths.add(pool, ['/srv/b', '/srv/a', '/srv/a']);
    await s.createdPaths.add(resourceRef('StoragePool', 'p', 'h2'), ['/srv/c']);
    expect(await s.createdPaths.list(pool)).toEqual(['/srv/a', '/srv/b']);
    await s.createdPaths.remove(pool, ['/srv/a']);
    expect(await s.createdPaths.list(pool)).toEqual(['/srv/b']);
    expect(await s.createdPaths.list(resourceRef('StoragePool', 'p', 'h2'))).toEqual(['/srv/c']);
  });

  it('definition checks (the no-op fast path): written and replaced per host, rows not kept dropped, other hosts untouched', async () => {
    const s = await store();
    const vm = resourceRef('VirtualMachine', 'v');
    const vol = resourceRef('Volume', 'x');
    const other = resourceRef('VirtualMachine', 'v', 'h2');
    await s.definitionChecks.sync('local', [{ ...vm, sha256: 's1', inputs: 'i1' }, { ...vol, sha256: 's2', inputs: 'i2' }], new Set(['VirtualMachine/v', 'Volume/x']));
    await s.definitionChecks.sync('h2', [{ ...other, sha256: 's3', inputs: 'i3' }], new Set(['h2/VirtualMachine/v']));
    // Replaced in place; the volume's row is not kept: dropped; h2's row stays.
    await s.definitionChecks.sync('local', [{ ...vm, sha256: 's1b', inputs: 'i1b' }], new Set(['VirtualMachine/v']));
    expect(await s.definitionChecks.index()).toEqual(new Map([
      ['VirtualMachine/v', { sha256: 's1b', inputs: 'i1b' }], ['h2/VirtualMachine/v', { sha256: 's3', inputs: 'i3' }],
    ]));
    await s.definitionChecks.sync('local', [], new Set());
    expect([...(await s.definitionChecks.index()).keys()]).toEqual(['h2/VirtualMachine/v']);
  });

  it('hosts: first use, same host, refusal of another host while records remain', async () => {
    const s = await store();
    const id = { uri: 'qemu:///system', hostname: 'h', uuid: 'u1', driver: 'qemu' };
    expect(await s.hosts.bind(id, { record: false })).toEqual({ status: 'first-use', recorded: false });
    expect(await s.hosts.get()).toBeUndefined();
    expect(await s.hosts.bind(id, { record: true })).toEqual({ status: 'first-use', recorded: true });
    expect((await s.hosts.bind(id, { record: true })).status).toBe('same');
    await s.resources.upsert({ ...resourceRef('Network', 'n'), specHash: 'h' });
    await expect(s.hosts.bind({ ...id, uuid: 'u2', hostname: 'other' }, { record: true })).rejects.toThrow(/different host/);
    await s.resources.delete(resourceRef('Network', 'n'));
    expect((await s.hosts.bind({ ...id, uuid: 'u2', hostname: 'other' }, { record: true })).status).toBe('rebound');
    expect((await s.hosts.list()).map((h) => h.hostname)).toEqual(['other']);
  });

  it('writer lease: a second holder is refused while the first is alive (test/unit/state/lease.test.ts has the rest)', async () => {
    const loc = await backend.fresh();
    const [a, b] = [await store(loc), await store(loc)];
    const lease = await a.acquireLease({ command: 'test' });
    await expect(b.acquireLease({ command: 'other' })).rejects.toBeInstanceOf(LeaseHeldError);
    await lease.release();
    await (await b.acquireLease({ command: 'other' })).release();
  });

  // savedplan (issue 24): the request queue, written without the lease, served by its holder.
  it('requests: submitted without the lease, claimed oldest first by the holder, finished, cancelled, abandoned', async () => {
    const loc = await backend.fresh();
    const [holder, requester] = [await store(loc), await store(loc)];
    const lease = await holder.acquireLease({ command: 'virtform watch' });
    const a = await submit(requester, { type: 'plan', args: { plan: { digest: 'x' } }, requestedBy: 'u@h (pid 1)' });
    const b = await submit(requester, { type: 'restart', args: { vms: ['v'] }, requestedBy: 'u@h (pid 2)' });
    expect(b).toBeGreaterThan(a);
    expect((await requester.requests.get(a))).toMatchObject({ status: 'queued', type: 'plan', args: { plan: { digest: 'x' } }, outcome: null, claimedBy: null });
    const claimed = await holder.requests.claim('me@1');
    expect(claimed).toMatchObject({ id: a, status: 'running', claimedBy: 'me@1' });
    // The requester cannot cancel what the holder took; it can cancel what is still queued.
    expect(await requester.requests.cancel(a)).toBe(false);
    expect(await requester.requests.cancel(b)).toBe(true);
    expect(await holder.requests.claim('me@1')).toBeUndefined();
    await holder.requests.finish(a, { ok: true, exitCode: 0, message: 'applied 2 steps' });
    const done = await awaitOutcome(requester, a, { timeoutMs: 1000, pollMs: 10 });
    expect(done).toMatchObject({ status: 'succeeded', outcome: { ok: true, exitCode: 0, message: 'applied 2 steps' } });
    expect((await requester.requests.get(b))!.status).toBe('cancelled');
    // A running request of another holder is abandoned by the next holder.
    const c = await submit(requester, { type: 'plan', args: {}, requestedBy: 'u' });
    await holder.requests.claim('old@1');
    expect((await holder.requests.abandon('new@2', 'gone')).map((r) => r.id)).toEqual([c]);
    expect(await requester.requests.get(c)).toMatchObject({ status: 'abandoned', outcome: { ok: false, exitCode: 1 } });
    // A queued request times out (and is cancelled) while the holder never takes it.
    const d = await submit(requester, { type: 'plan', args: {}, requestedBy: 'u' });
    await expect(awaitOutcome(requester, d, { timeoutMs: 50, pollMs: 10 })).rejects.toBeInstanceOf(RequestTimeoutError);
    expect((await requester.requests.get(d))!.status).toBe('cancelled');
    // No live holder: a queued request is cancelled at once (the requester may take the lease).
    await lease.release();
    const e = await submit(requester, { type: 'plan', args: {}, requestedBy: 'u' });
    await expect(awaitOutcome(requester, e, { timeoutMs: 5000, pollMs: 10 })).rejects.toBeInstanceOf(RequestOrphanedError);
    expect((await requester.requests.list({ status: ['cancelled'] })).map((r) => r.id)).toEqual([e, d, b]);
  });
});
