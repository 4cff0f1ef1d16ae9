import { existsSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { openStateStore, type ResourceIndexEntry, type StateStore } from '../../../src/state/index.js';
import { resourceRef, LOCAL_HOST } from '../../../src/model/kinds.js';
import { makeTempDir } from '../../support/temp-dirs.js';

const TABLES = ['events', 'journal', 'resources', 'revisions'];

let dir: string;
const stores: StateStore[] = [];

async function open(path = join(dir, 'state.db'), now?: () => Date): Promise<StateStore> {
  const s = await openStateStore(path, now ? { now } : {});
  stores.push(s);
  return s;
}

beforeEach(() => {
  dir = makeTempDir('vf-state-');
});
afterEach(async () => {
  for (const s of stores.splice(0)) await s.close();
  rmSync(dir, { recursive: true, force: true });
});

describe('openStateStore', () => {
  it('creates parent directories, all tables, WAL mode and foreign keys', async () => {
    const path = join(dir, 'a', 'b', 'state.db');
    const s = await open(path);
    expect(s.path).toBe(path);
    expect(existsSync(path)).toBe(true);
    await s.close();

    const raw = new Database(path, { readonly: true });
    try {
      const tables = (raw.prepare("select name from sqlite_master where type = 'table'").all() as { name: string }[]).map((r) => r.name);
      for (const t of TABLES) expect(tables).toContain(t);
      expect(raw.pragma('journal_mode', { simple: true })).toBe('wal');
    } finally {
      raw.close();
    }
  });

  it('reports journal_mode wal and foreign_keys on through the open store', async () => {
    const s = await open();
    const { sql } = await import('kysely');
    const jm = await sql<{ journal_mode: string }>`PRAGMA journal_mode`.execute(s.db);
    expect(jm.rows[0]?.journal_mode).toBe('wal');
    const fk = await sql<{ foreign_keys: number }>`PRAGMA foreign_keys`.execute(s.db);
    expect(fk.rows[0]?.foreign_keys).toBe(1);
    const bt = await sql<{ timeout: number }>`PRAGMA busy_timeout`.execute(s.db);
    expect(bt.rows[0]?.timeout).toBeGreaterThan(0);
  });

  it('is idempotent on reopen: migrations run once, data survives', async () => {
    const path = join(dir, 'state.db');
    const s1 = await open(path);
    await s1.resources.upsert({ kind: 'Network', name: 'net0', host: LOCAL_HOST, specHash: 'h' });
    await s1.close();
    const s2 = await open(path);
    expect((await s2.resources.get(resourceRef('Network', 'net0')))?.specHash).toBe('h');
    await s2.close();
    const s3 = await open(path);
    const rows = await s3.db
      .withTables<{ kysely_migration: { name: string; timestamp: string } }>()
      .selectFrom('kysely_migration')
      .select('name')
      .execute();
    expect(rows.map((r) => r.name)).toEqual(['0001_initial', '0002_hosts', '0003_git_sources', '0004_safety', '0005_baselines', '0006_volume_references', '0007_created_paths', '0008_host_keys', '0009_lease', '0012_standby', '0013_definition_checks', '0014_runs', '0015_requests']);
  });

  it('serializes concurrent opens of a fresh file in one process', async () => {
    const path = join(dir, 'fresh.db');
    const [a, b] = await Promise.all([open(path), open(path)]);
    expect(await a.resources.list()).toEqual([]);
    expect(await b.resources.list()).toEqual([]);
  });

  it('accepts :memory:', async () => {
    const s = await open(':memory:');
    await s.events.append({ level: 'info', message: 'hi' });
    expect((await s.events.recent()).map((e) => e.message)).toEqual(['hi']);
  });
});

describe('resources', () => {
  it('inserts with defaults, generation 1 when a spec hash is given', async () => {
    const s = await open();
    const r = await s.resources.upsert({ kind: 'Volume', name: 'disk0', host: LOCAL_HOST, specHash: 'h1', details: { path: '/p/disk0.qcow2', pool: 'p' } });
    expect(r).toMatchObject({
      kind: 'Volume',
      name: 'disk0',
      uuid: null,
      specHash: 'h1',
      generation: 1,
      desiredState: null,
      observedStatus: null,
      lastError: null,
      attempts: 0,
      details: { path: '/p/disk0.qcow2', pool: 'p' },
      lastAppliedRevision: null,
    });
    expect(r.createdAt).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
    expect(r.updatedAt).toBe(r.createdAt);
    expect(await s.resources.get(resourceRef('Volume', 'disk0'))).toEqual(r);
    expect(await s.resources.get(resourceRef('Volume', 'nope'))).toBeUndefined();
  });

  it('increments generation only when the spec hash changes; partial updates keep other fields', async () => {
    let t = Date.parse('2025-01-01T00:00:00.000Z');
    const s = await open(undefined, () => new Date((t += 1000)));
    const rev = await s.revisions.start({ runId: 'r1', manifestDigest: 'd' });
    const first = await s.resources.upsert({
      kind: 'VirtualMachine',
      name: 'vm1',
      host: LOCAL_HOST,
      uuid: 'u-1',
      specHash: 'h1',
      desiredState: 'running',
      details: { a: 1 },
      lastAppliedRevision: rev,
    });
    expect(first.generation).toBe(1);

    const same = await s.resources.upsert({ kind: 'VirtualMachine', name: 'vm1', host: LOCAL_HOST, specHash: 'h1' });
    expect(same.generation).toBe(1);

    const changed = await s.resources.upsert({ kind: 'VirtualMachine', name: 'vm1', host: LOCAL_HOST, specHash: 'h2' });
    expect(changed.generation).toBe(2);
    expect(changed).toMatchObject({ uuid: 'u-1', desiredState: 'running', details: { a: 1 }, lastAppliedRevision: rev });
    expect(changed.createdAt).toBe(first.createdAt);
    expect(changed.updatedAt > first.updatedAt).toBe(true);

    const partial = await s.resources.upsert({ kind: 'VirtualMachine', name: 'vm1', host: LOCAL_HOST, observedStatus: 'running', desiredState: null });
    expect(partial).toMatchObject({ specHash: 'h2', generation: 2, observedStatus: 'running', desiredState: null, uuid: 'u-1' });

    expect((await s.resources.upsert({ kind: 'VirtualMachine', name: 'vm1', host: LOCAL_HOST, specHash: 'h1' })).generation).toBe(3);
  });

  it('inserts with generation 0 when no spec hash is given, then 1 on the first hash', async () => {
    const s = await open();
    expect((await s.resources.upsert({ kind: 'StoragePool', name: 'p', host: LOCAL_HOST })).generation).toBe(0);
    expect((await s.resources.upsert({ kind: 'StoragePool', name: 'p', host: LOCAL_HOST, specHash: 'x' })).generation).toBe(1);
  });

  it('setStatus updates only the given fields and creates a row if missing', async () => {
    const s = await open();
    await s.resources.upsert({ kind: 'Network', name: 'n', host: LOCAL_HOST, specHash: 'h', observedStatus: 'pending', attempts: 0 });
    await s.resources.setStatus(resourceRef('Network', 'n'), { observedStatus: 'failed', lastError: 'boom', attempts: 2 });
    expect(await s.resources.get(resourceRef('Network', 'n'))).toMatchObject({ observedStatus: 'failed', lastError: 'boom', attempts: 2, specHash: 'h', generation: 1 });
    await s.resources.setStatus(resourceRef('Network', 'n'), { lastError: null });
    expect(await s.resources.get(resourceRef('Network', 'n'))).toMatchObject({ observedStatus: 'failed', lastError: null, attempts: 2 });

    await s.resources.setStatus(resourceRef('Network', 'other'), { observedStatus: 'failed' });
    expect(await s.resources.get(resourceRef('Network', 'other'))).toMatchObject({ observedStatus: 'failed', generation: 0, specHash: null });
  });

  it('keeps (kind, name) unique, lists by kind ordered by name, deletes', async () => {
    const s = await open();
    await s.resources.upsert({ kind: 'Volume', name: 'b', host: LOCAL_HOST });
    await s.resources.upsert({ kind: 'Volume', name: 'a', host: LOCAL_HOST });
    await s.resources.upsert({ kind: 'Network', name: 'a', host: LOCAL_HOST });
    await s.resources.upsert({ kind: 'Volume', name: 'a', host: LOCAL_HOST, uuid: 'x' });
    expect((await s.resources.list()).map((r) => `${r.kind}/${r.name}`)).toEqual(['Network/a', 'Volume/a', 'Volume/b']);
    expect((await s.resources.list({ kind: 'Volume' })).map((r) => r.name)).toEqual(['a', 'b']);
    expect(await s.resources.list({ kind: 'StoragePool' })).toEqual([]);

    await s.resources.delete(resourceRef('Volume', 'a'));
    await s.resources.delete(resourceRef('Volume', 'missing'));
    expect((await s.resources.list()).map((r) => `${r.kind}/${r.name}`)).toEqual(['Network/a', 'Volume/b']);
  });

  it('enforces the foreign key to revisions', async () => {
    const s = await open();
    await expect(s.resources.upsert({ kind: 'Volume', name: 'v', host: LOCAL_HOST, lastAppliedRevision: 999 })).rejects.toThrow(/FOREIGN KEY/);
  });
});

describe('journal', () => {
  it('begin/finish/listOpen/recent/forResource', async () => {
    const s = await open();
    const a = await s.journal.begin({ runId: 'r1', kind: 'Volume', name: 'v1', host: LOCAL_HOST, action: 'create', intent: { path: '/p/v1' } });
    const b = await s.journal.begin({ runId: 'r1', kind: 'VirtualMachine', name: 'vm', host: LOCAL_HOST, action: 'start', intent: { uuid: 'u' }, attempt: 2 });
    const c = await s.journal.begin({ runId: 'r1', kind: 'Volume', name: 'v1', host: LOCAL_HOST, action: 'delete', intent: {} });
    expect(b).toBeGreaterThan(a);
    expect(c).toBeGreaterThan(b);

    expect((await s.journal.listOpen()).map((e) => e.id)).toEqual([a, b, c]);

    await s.journal.finish(a, 'succeeded');
    await s.journal.finish(b, 'failed', 'domain crashed');
    const open_ = await s.journal.listOpen();
    expect(open_).toHaveLength(1);
    expect(open_[0]).toMatchObject({ id: c, runId: 'r1', kind: 'Volume', name: 'v1', action: 'delete', status: 'open', error: null, finishedAt: null, attempt: 1 });

    const recent = await s.journal.recent();
    expect(recent.map((e) => e.id)).toEqual([c, b, a]);
    expect(recent[1]).toMatchObject({ status: 'failed', error: 'domain crashed', attempt: 2, intent: { uuid: 'u' } });
    expect(recent[1]?.finishedAt).not.toBeNull();
    expect(recent[2]).toMatchObject({ status: 'succeeded', error: null, intent: { path: '/p/v1' } });
    expect((await s.journal.recent(2)).map((e) => e.id)).toEqual([c, b]);

    expect((await s.journal.forResource(resourceRef('Volume', 'v1'))).map((e) => e.id)).toEqual([c, a]);
    expect((await s.journal.forResource(resourceRef('Volume', 'v1'), 1)).map((e) => e.id)).toEqual([c]);
    expect(await s.journal.forResource(resourceRef('Volume', 'zz'))).toEqual([]);

    await s.journal.finish(c, 'abandoned');
    expect(await s.journal.listOpen()).toEqual([]);
  });

  it('finish is a no-op on a closed entry and throws for an unknown id', async () => {
    const s = await open();
    const id = await s.journal.begin({ runId: 'r', kind: 'Network', name: 'n', host: LOCAL_HOST, action: 'create', intent: {} });
    await s.journal.finish(id, 'failed', 'first');
    await s.journal.finish(id, 'succeeded');
    expect((await s.journal.recent(1))[0]).toMatchObject({ status: 'failed', error: 'first' });
    await expect(s.journal.finish(12345, 'succeeded')).rejects.toThrow(/12345/);
  });

  it('persists open entries across reopen (crash recovery)', async () => {
    const path = join(dir, 'state.db');
    const s1 = await open(path);
    const id = await s1.journal.begin({ runId: 'r', kind: 'Volume', name: 'v', host: LOCAL_HOST, action: 'create', intent: { path: '/x' } });
    await s1.close();
    const s2 = await open(path);
    expect(await s2.journal.listOpen()).toMatchObject([{ id, intent: { path: '/x' }, status: 'open' }]);
  });
});

describe('revisions', () => {
  it('start/finish/get/latest', async () => {
    const s = await open();
    expect(await s.revisions.latest()).toBeUndefined();
    const r1 = await s.revisions.start({ runId: 'run-1', manifestDigest: 'sha256:aa', gitCommit: 'abc123', gitDirty: true });
    let rec = await s.revisions.get(r1);
    expect(rec).toMatchObject({ id: r1, runId: 'run-1', manifestDigest: 'sha256:aa', gitCommit: 'abc123', gitDirty: true, outcome: 'running', finishedAt: null, summary: {} });

    await s.revisions.finish(r1, 'succeeded', { created: 2, updated: 0 });
    rec = await s.revisions.get(r1);
    expect(rec).toMatchObject({ outcome: 'succeeded', summary: { created: 2, updated: 0 } });
    expect(rec?.finishedAt).not.toBeNull();

    const r2 = await s.revisions.start({ runId: 'run-2', manifestDigest: 'sha256:bb' });
    expect(await s.revisions.get(r2)).toMatchObject({ gitCommit: null, gitDirty: false });
    await s.revisions.finish(r2, 'failed', { failed: 1 });

    expect((await s.revisions.latest())?.id).toBe(r2);
    expect((await s.revisions.latest({ outcome: 'succeeded' }))?.id).toBe(r1);
    expect(await s.revisions.latest({ outcome: 'partial' })).toBeUndefined();
    expect(await s.revisions.get(9999)).toBeUndefined();
    await expect(s.revisions.finish(9999, 'failed', {})).rejects.toThrow(/9999/);
  });
});

describe('events', () => {
  it('append and recent (newest first, limited)', async () => {
    let t = Date.parse('2025-06-01T00:00:00.000Z');
    const s = await open(undefined, () => new Date((t += 1)));
    await s.events.append({ level: 'info', message: 'apply started' });
    await s.events.append({ level: 'warn', ref: resourceRef('VirtualMachine', 'vm1'), message: 'retrying' });
    await s.events.append({ level: 'error', ref: resourceRef('Volume', 'v'), message: 'failed' });
    const all = await s.events.recent();
    expect(all).toEqual([
      { at: '2025-06-01T00:00:00.003Z', level: 'error', kind: 'Volume', name: 'v', host: 'local', message: 'failed' },
      { at: '2025-06-01T00:00:00.002Z', level: 'warn', kind: 'VirtualMachine', name: 'vm1', host: 'local', message: 'retrying' },
      { at: '2025-06-01T00:00:00.001Z', level: 'info', kind: null, name: null, host: null, message: 'apply started' },
    ]);
    expect((await s.events.recent(1)).map((e) => e.message)).toEqual(['failed']);
  });
});

const collectPages = async (store: StateStore, size: number): Promise<ResourceIndexEntry[][]> => {
  const pages: ResourceIndexEntry[][] = [];
  for await (const page of store.resources.indexPages(size)) pages.push(page);
  return pages;
};

describe('resources.indexPages and getMany', () => {
  it('indexes every resource without details, in pages, and fetches full records for chosen keys', async () => {
    const dir = makeTempDir('vftest-state-');
    const store = await openStateStore(join(dir, 'state.db'));
    try {
      expect(await collectPages(store, 100)).toEqual([]);
      for (let i = 0; i < 450; i += 1) {
        await store.resources.upsert({ kind: 'Volume', name: `v${i}`, host: LOCAL_HOST, uuid: `/p/v${i}`, specHash: `h${i}`, details: { config: { i } } });
      }
      await store.resources.delete(resourceRef('Volume', 'v121')); // a gap in the ids
      const pages = await collectPages(store, 100);
      expect(pages.map((p) => p.length)).toEqual([100, 100, 100, 100, 49]);
      const index = pages.flat();
      expect(new Set(index.map((r) => r.name)).size).toBe(449);
      expect(index.some((r) => r.name === 'v121')).toBe(false);
      expect(index.find((r) => r.name === 'v7')).toEqual({
        id: expect.any(Number), host: 'local', kind: 'Volume', name: 'v7', uuid: '/p/v7', specHash: 'h7', desiredState: null, lastError: null,
      });
      // Text survives the JSON page encoding exactly: quotes, backslashes, control characters, non-BMP.
      const odd = 'vm "q" \\ ✓ 🚀';
      const err = 'line1\n"quoted" \\ back\ttab \u0001 é';
      await store.resources.upsert({ kind: 'VirtualMachine', name: odd, host: LOCAL_HOST, uuid: null, specHash: 'h', desiredState: 'running', lastError: err });
      expect((await collectPages(store, 1000)).flat().find((r) => r.kind === 'VirtualMachine')).toEqual({
        id: expect.any(Number), host: 'local', kind: 'VirtualMachine', name: odd, uuid: null, specHash: 'h', desiredState: 'running', lastError: err,
      });
      await store.resources.delete(resourceRef('VirtualMachine', odd));
      // A page size that divides the count exactly ends without an empty page; one page of all.
      expect((await collectPages(store, 449)).map((p) => p.length)).toEqual([449]);
      expect((await collectPages(store, 1000)).map((p) => p.length)).toEqual([449]);
      const keys = [...Array(450).keys()].filter((i) => i % 2 === 0).map((i) => resourceRef('Volume', `v${i}`));
      const full = await store.resources.getMany([...keys, { kind: 'Volume', name: 'missing', host: LOCAL_HOST }]);
      expect(full).toHaveLength(225); // spans two chunks of 200
      expect(full.find((r) => r.name === 'v300')?.details).toEqual({ config: { i: 300 } });
      expect((await store.resources.list())[0]!.details).toHaveProperty('config');
    } finally {
      await store.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('journal.listUnresolved and resolve', () => {
  it('lists open entries and failed ones not followed by a success; resolve closes them', async () => {
    const dir = makeTempDir('vftest-state-');
    const store = await openStateStore(join(dir, 'state.db'));
    try {
      const j = store.journal;
      const a1 = await j.begin({ runId: 'r', kind: 'Network', name: 'a', host: LOCAL_HOST, action: 'network.ensure', intent: {} });
      await j.finish(a1, 'failed', 'boom');
      const a2 = await j.begin({ runId: 'r', kind: 'Network', name: 'a', host: LOCAL_HOST, action: 'network.ensure', intent: {} });
      await j.finish(a2, 'succeeded'); // a: failed then succeeded → resolved
      const b1 = await j.begin({ runId: 'r', kind: 'Network', name: 'b', host: LOCAL_HOST, action: 'network.ensure', intent: {} });
      await j.finish(b1, 'failed', 'boom'); // b: failed last → unresolved
      const c1 = await j.begin({ runId: 'r', kind: 'Volume', name: 'c', host: LOCAL_HOST, action: 'volume.create', intent: {} }); // open
      expect((await j.listUnresolved()).map((e) => `${e.name}:${e.status}`)).toEqual(['b:failed', 'c:open']);
      await j.resolve([b1, c1]);
      expect(await j.listUnresolved()).toEqual([]);
      expect((await j.forResource(resourceRef('Network', 'b')))[0]).toMatchObject({ status: 'abandoned', error: 'boom' });
    } finally {
      await store.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

