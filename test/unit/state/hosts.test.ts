/**
 * Records are tied to the host they describe (migration 0002: `hosts` table, `host` column on
 * resources and journal, default 'local'); StateStore.hosts.bind records the host identity on first
 * use and refuses a DB that holds records of another host (HostMismatchError naming both).
 */
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { Kysely, Migrator, SqliteDialect } from 'kysely';
import { afterAll, describe, expect, it } from 'vitest';
import * as m0001 from '../../../src/state/migrations/0001_initial.js';
import { HostMismatchError, openStateStore, type HostIdentity, type StateStore } from '../../../src/state/index.js';
import { verifyHostIdentity } from '../../../src/cli/common.js';
import { FakeHost } from '../../support/fake-host.js';
import { tempDir } from '../../support/manifests.js';
import { resourceRef, LOCAL_HOST } from '../../../src/model/kinds.js';

const work = tempDir('vftest-hosts-');
afterAll(() => rmSync(work, { recursive: true, force: true }));

const QEMU: HostIdentity = { uri: 'qemu:///system', hostname: 'lab1', uuid: 'aca42082-0fa6-4126-89cb-d995ec095b97', driver: 'qemu' };
const TEST: HostIdentity = { uri: 'test+unix:///default', hostname: 'lab1', uuid: null, driver: 'test' };
let n = 0;
const fresh = () => openStateStore(join(work, `s${n++}.db`));
/** Runs `body` on a fresh store, closed after. */
async function withFresh(body: (s: StateStore) => Promise<void>): Promise<void> {
  const s = await fresh();
  try {
    await body(s);
  } finally {
    await s.close();
  }
}

describe('hosts table and host columns (migration 0002)', () => {
  it('existing store APIs keep working; rows default to the implicit host "local"', async () => {
    await withFresh(async (s) => {
      await s.resources.upsert({ kind: 'Network', name: 'net0', host: LOCAL_HOST, specHash: 'h' });
      const id = await s.journal.begin({ runId: 'r1', kind: 'Network', name: 'net0', host: LOCAL_HOST, action: 'create', intent: {} });
      await s.journal.finish(id, 'succeeded');
      expect((await s.resources.get(resourceRef('Network', 'net0')))?.specHash).toBe('h');
      expect(await s.db.selectFrom('resources').select('host').execute()).toEqual([{ host: 'local' }]);
      expect(await s.db.selectFrom('journal').select('host').execute()).toEqual([{ host: 'local' }]);
      expect(await s.hosts.list()).toEqual([]);
    });
  });

  it('a DB created before 0002 migrates: its rows belong to "local", nothing lost', async () => {
    const path = join(work, 'old.db');
    const sqlite = new Database(path);
    const old = new Kysely<any>({ dialect: new SqliteDialect({ database: sqlite }) }); // eslint-disable-line @typescript-eslint/no-explicit-any
    const r = await new Migrator({ db: old, provider: { getMigrations: async () => ({ '0001_initial': m0001 }) } }).migrateToLatest();
    expect(r.error).toBeUndefined();
    await old.insertInto('resources').values({ kind: 'Network', name: 'legacy', details: '{}', created_at: 'x', updated_at: 'x', generation: 1, attempts: 0 }).execute();
    await old.destroy();
    const s = await openStateStore(path);
    try {
      expect((await s.resources.list()).map((x) => x.name)).toEqual(['legacy']);
      expect(await s.db.selectFrom('resources').select(['name', 'host']).execute()).toEqual([{ name: 'legacy', host: 'local' }]);
    } finally {
      await s.close();
    }
  });
});

describe('hosts.bind', () => {
  it('records on first use, refreshes last_seen on the same host, writes nothing without record', async () => {
    let t = Date.parse('2026-01-01T00:00:00Z');
    const s = await openStateStore(join(work, `clock.db`), { now: () => new Date((t += 1000)) });
    try {
      expect(await s.hosts.bind(QEMU, { record: false })).toEqual({ status: 'first-use', recorded: false });
      expect(await s.hosts.list()).toEqual([]);
      expect(await s.hosts.bind(QEMU, { record: true })).toEqual({ status: 'first-use', recorded: true });
      const first = (await s.hosts.get())!;
      expect(first).toMatchObject({ id: 'local', ...QEMU });
      expect(first.firstSeen).toBe(first.lastSeen);
      const again = await s.hosts.bind({ ...QEMU, uuid: QEMU.uuid!.toUpperCase(), hostname: 'lab1.example' }, { record: true });
      expect(again.status).toBe('same');
      const after = (await s.hosts.get())!;
      expect(after.firstSeen).toBe(first.firstSeen);
      expect(after.lastSeen > first.lastSeen).toBe(true);
      expect(after.hostname).toBe('lab1.example');
    } finally {
      await s.close();
    }
  });

  it('another host while the DB holds records of the first: HostMismatchError naming both, nothing written', async () => {
    await withFresh(async (s) => {
      await s.hosts.bind(QEMU, { record: true });
      await s.resources.upsert({ kind: 'Network', name: 'vftest-net', host: LOCAL_HOST, specHash: 'h' });
      for (const record of [false, true]) {
        const e = await s.hosts.bind(TEST, { record }).catch((err: unknown) => err);
        expect(e).toBeInstanceOf(HostMismatchError);
        const msg = (e as Error).message;
        expect(msg).toContain(`state DB ${s.path} holds the records of host qemu:///system (driver qemu, host UUID ${QEMU.uuid}`);
        expect(msg).toContain('different host: test+unix:///default (driver test, host UUID none');
      }
      expect(await s.hosts.get()).toMatchObject(QEMU);
      // Same UUID, other driver: another host too.
      await expect(s.hosts.bind({ ...QEMU, driver: 'test' }, { record: true })).rejects.toBeInstanceOf(HostMismatchError);
      // Same driver, another UUID and another hostname: another host.
      await expect(s.hosts.bind({ ...QEMU, uuid: '22222222-2222-4222-8222-222222222222', hostname: 'lab2' }, { record: true }))
        .rejects.toBeInstanceOf(HostMismatchError);
      expect(await s.hosts.get()).toMatchObject(QEMU);
    });
  });

  it('a new host UUID with the same driver and hostname (libvirtd made up a temporary UUID at restart) is the same host, re-recorded', async () => {
    await withFresh(async (s) => {
      await s.hosts.bind(QEMU, { record: true });
      await s.resources.upsert({ kind: 'Network', name: 'vftest-net', host: LOCAL_HOST, specHash: 'h' });
      const restarted = { ...QEMU, uuid: '9003b537-1b27-409d-9ea2-115fdc89522c' };
      expect((await s.hosts.bind(restarted, { record: true })).status).toBe('same');
      expect(await s.hosts.get()).toMatchObject(restarted);
    });
  });

  it('an open journal entry of the recorded host also counts as its records', async () => {
    await withFresh(async (s) => {
      await s.hosts.bind(QEMU, { record: true });
      await s.journal.begin({ runId: 'r', kind: 'Network', name: 'n', host: LOCAL_HOST, action: 'create', intent: {} });
      await expect(s.hosts.bind(TEST, { record: true })).rejects.toBeInstanceOf(HostMismatchError);
    });
  });

  it('a recorded host with no records left is replaced (rebound)', async () => {
    await withFresh(async (s) => {
      await s.hosts.bind(QEMU, { record: true });
      expect(await s.hosts.bind(TEST, { record: false })).toMatchObject({ status: 'rebound', recorded: false });
      expect(await s.hosts.get()).toMatchObject(QEMU);
      expect(await s.hosts.bind(TEST, { record: true })).toMatchObject({ status: 'rebound', recorded: true });
      expect(await s.hosts.get()).toMatchObject(TEST);
    });
  });

  it('verifyHostIdentity (the CLI call) asks the host port for its identity', async () => {
    const s = await fresh();
    const host = new FakeHost();
    try {
      expect(await verifyHostIdentity(s, host, { record: true })).toEqual({ status: 'first-use', recorded: true });
      await s.resources.upsert({ kind: 'Network', name: 'x', host: LOCAL_HOST });
      host.identity = { ...host.identity, uuid: '11111111-1111-4111-8111-111111111111', hostname: 'other' };
      await expect(verifyHostIdentity(s, host, { record: true })).rejects.toBeInstanceOf(HostMismatchError);
      expect(host.calls.filter((c) => c === 'hostIdentity:*')).toHaveLength(2);
    } finally {
      await s.close();
    }
  });
});
