/**
 * Migration 0008 (the host in every key) upgrades a DB made by migrations 0001-0007 without loss:
 * every row of every table is kept (resources with their ids and the AUTOINCREMENT counter),
 * names become unique per host, events gain a host.
 */
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { Kysely, Migrator, SqliteDialect, type Migration } from 'kysely';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { openStateStore } from '../../../src/state/index.js';
import { migrations } from '../../../src/state/migrations/index.js';
import { resourceRef } from '../../../src/model/kinds.js';
import { makeTempDir } from '../../support/temp-dirs.js';

let dir: string;
beforeEach(() => {
  dir = makeTempDir('vf-m0008-');
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

/** A DB as the code before 0008 left it: migrations up to 0007 only, with rows in every table. */
async function oldDb(path: string): Promise<void> {
  const sqlite = new Database(path);
  const db = new Kysely<any>({ dialect: new SqliteDialect({ database: sqlite }) }); // eslint-disable-line @typescript-eslint/no-explicit-any
  const upTo7: Record<string, Migration> = Object.fromEntries(Object.entries(migrations).filter(([n]) => n < '0008'));
  const { error } = await new Migrator({ db, provider: { getMigrations: async () => upTo7 } }).migrateToLatest();
  if (error) throw error;
  sqlite.exec(`
    INSERT INTO revisions (run_id, manifest_digest, started_at, outcome, summary) VALUES ('r1', 'd', 't', 'succeeded', '{}');
    INSERT INTO resources (kind, name, uuid, spec_hash, generation, details, created_at, updated_at, last_applied_revision)
      VALUES ('Network', 'n1', 'u1', 'h1', 3, '{"facts":{"a":1}}', 't0', 't1', 1),
             ('Volume', 'v1', '/p/v1', 'h2', 1, '{}', 't0', 't1', NULL),
             ('Volume', 'gone', NULL, NULL, 0, '{}', 't0', 't1', NULL);
    DELETE FROM resources WHERE name = 'gone';
    INSERT INTO journal (run_id, kind, name, action, intent, status, started_at) VALUES ('r1', 'Network', 'n1', 'network.ensure', '{}', 'open', 't');
    INSERT INTO events (at, level, kind, name, message) VALUES ('t', 'info', NULL, NULL, 'run'), ('t', 'warn', 'Network', 'n1', 'blocked');
    INSERT INTO conditions (kind, name, type, status, reason, message, last_transition_time) VALUES ('Network', 'n1', 'Ready', 'True', 'Ok', '', 't');
    INSERT INTO baselines (kind, name, sha256, xml, version, recorded_at) VALUES ('Network', 'n1', 's', '<network/>', 'v', 't');
    INSERT INTO created_paths (kind, name, path, created_at) VALUES ('StoragePool', 'p', '/srv/p', 't');
    INSERT INTO volume_references (path, used_by, role, source, managed, first_seen) VALUES ('/p/v1', 'VirtualMachine/vm', 'disk', 'persistent definition', 1, 't');
  `);
  await db.destroy();
}

describe('migration 0008_host_keys', () => {
  it('keeps every row of a DB made by 0001-0007, and names become unique per host', async () => {
    const path = join(dir, 'state.db');
    await oldDb(path);
    const before = new Database(path, { readonly: true });
    const dump = (d: Database.Database, t: string): unknown[] => d.prepare(`SELECT * FROM ${t} ORDER BY rowid`).all();
    const tables = ['revisions', 'resources', 'journal', 'conditions', 'baselines', 'created_paths', 'volume_references', 'hosts', 'git_sources', 'controls'];
    const old = Object.fromEntries(tables.map((t) => [t, dump(before, t)]));
    const oldEvents = dump(before, 'events');
    const oldSeq = before.prepare(`SELECT seq FROM sqlite_sequence WHERE name = 'resources'`).get();
    before.close();

    const store = await openStateStore(path);
    try {
      expect((await store.resources.get(resourceRef('Network', 'n1')))).toMatchObject({
        host: 'local', uuid: 'u1', specHash: 'h1', generation: 3, details: { facts: { a: 1 } }, lastAppliedRevision: 1,
      });
      // The same name on another host is another resource; on the same host it is the same one.
      await store.resources.upsert({ ...resourceRef('Network', 'n1', 'other'), specHash: 'x' });
      await store.resources.upsert({ ...resourceRef('Network', 'n1'), observedStatus: 'active' });
      expect((await store.resources.list({ kind: 'Network' })).map((r) => `${r.host}/${r.name}:${r.specHash}`)).toEqual(['local/n1:h1', 'other/n1:x']);
      expect((await store.resources.get(resourceRef('Network', 'n1', 'other')))?.generation).toBe(1);
      expect(await store.resources.get(resourceRef('Network', 'n1', 'third'))).toBeUndefined();
      expect((await store.journal.listUnresolved()).map((e) => `${e.host}/${e.kind}/${e.name}`)).toEqual(['local/Network/n1']);
      expect((await store.events.recent()).map((e) => `${e.host}:${e.message}`)).toEqual(['local:blocked', 'null:run']);
    } finally {
      await store.close();
    }
    const after = new Database(path, { readonly: true });
    try {
      // Every old row is there unchanged (resources: the old columns, same ids), apart from the two added above.
      const strip = (rows: unknown[]): unknown[] => rows.filter((r) => (r as { host?: string }).host !== 'other');
      for (const t of tables) {
        const rows = strip(dump(after, t));
        if (t === 'resources') {
          expect(rows.map((r) => ({ ...(r as object), observed_status: null, updated_at: 't1' }))).toEqual(old[t]);
        } else expect(rows, t).toEqual(old[t]);
      }
      expect(dump(after, 'events')).toEqual(oldEvents.map((e) => ({ ...(e as object), host: (e as { kind: unknown }).kind === null ? null : 'local' })));
      // The AUTOINCREMENT counter is carried over: the deleted row's id is not reused.
      expect((after.prepare(`SELECT max(id) AS id FROM resources`).get() as { id: number }).id).toBeGreaterThan((oldSeq as { seq: number }).seq);
      const ddl = (after.prepare(`SELECT sql FROM sqlite_master WHERE name = 'resources'`).get() as { sql: string }).sql;
      expect(ddl).toMatch(/constraint "resources_host_kind_name_uq" unique \("host", "kind", "name"\)/);
      expect(ddl).toMatch(/references "revisions" \("id"\) on delete set null/);
      expect(after.prepare(`PRAGMA foreign_key_check`).all()).toEqual([]);
    } finally {
      after.close();
    }
  });
});
