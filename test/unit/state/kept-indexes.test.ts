/**
 * The SQLite store keeps its whole-table reads (the resource index, the baselines' and the
 * definition checks' indexes) in memory while the table's change token is the same (issue 22: a
 * watch step reads none of the 2,002-row indexes again). Every write path must show at the next
 * read: this connection's writes (any statement, committed or rolled back), another connection's
 * commits (another process: `PRAGMA data_version`).
 */
import { afterEach, describe, expect, it } from 'vitest';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { sql } from 'kysely';
import { openStateStore, type StateStore } from '../../../src/state/index.js';
import { resourceKey, resourceRef } from '../../../src/model/kinds.js';
import { tempDir } from '../../support/manifests.js';

const cleanup: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const f of cleanup.splice(0).reverse()) await f();
});

async function open(): Promise<{ st: StateStore; file: string }> {
  const dir = tempDir('vftest-kept-');
  cleanup.push(() => rmSync(dir, { recursive: true, force: true }));
  const file = join(dir, 'state.db');
  const st = await openStateStore(file);
  cleanup.push(() => st.close());
  return { st, file };
}

async function index(st: StateStore): Promise<{ name: string; specHash: string | null; lastError: string | null; facts?: unknown }[]> {
  const out = [];
  for await (const page of st.resources.indexPages(500)) out.push(...page);
  return out;
}

const vm = resourceRef('VirtualMachine', 'web');
const net = resourceRef('Network', 'n1');

describe('kept indexes (SQLite change tokens)', () => {
  it('an unchanged table is not read again: the same frozen objects come back', async () => {
    const { st } = await open();
    await st.resources.upsert({ ...vm, specHash: 'h1', details: { facts: { macs: ['52:54:00:00:00:01'] } } });
    await st.baselines!.put({ ...vm, xml: '<domain/>', sha256: 's1', version: 'v1' });
    await st.definitionChecks!.sync('local', [{ ...vm, sha256: 's1', inputs: 'i1' }], new Set([resourceKey('VirtualMachine', 'web')]));
    const [a, b] = [await index(st), await index(st)];
    expect(b[0]).toBe(a[0]);
    expect(Object.isFrozen(a[0])).toBe(true);
    expect(Object.isFrozen(a[0]!.facts)).toBe(true);
    expect(() => { (a[0] as { name: string }).name = 'x'; }).toThrow(TypeError);
    const [c1, c2] = [await st.definitionChecks!.index(), await st.definitionChecks!.index()];
    expect(c2).not.toBe(c1); // each caller gets its own Map of the kept entries
    expect(c2.get('VirtualMachine/web')).toBe(c1.get('VirtualMachine/web'));
    const [b1, b2] = [await st.baselines!.index(), await st.baselines!.index()];
    expect(b2.get('VirtualMachine/web')).toBe(b1.get('VirtualMachine/web'));
  });

  it('a write reads again only the rows it wrote: the others stay the same objects', async () => {
    const { st } = await open();
    await st.resources.upsert({ ...vm, specHash: 'h1' });
    await st.resources.upsert({ ...net, specHash: 'n1' });
    await st.baselines!.put({ ...vm, xml: '<domain/>', sha256: 's1', version: 'v1' });
    await st.baselines!.put({ ...net, xml: '<network/>', sha256: 'sn', version: 'v1' });
    const before = await index(st);
    const bBefore = await st.baselines!.index();
    await st.resources.upsert({ ...vm, specHash: 'h2' });
    await st.baselines!.put({ ...vm, xml: '<domain/>', sha256: 's2', version: 'v1' });
    const after = await index(st);
    const bAfter = await st.baselines!.index();
    const byName = (xs: typeof before, n: string) => xs.find((x) => x.name === n)!;
    expect(byName(after, 'n1')).toBe(byName(before, 'n1'));
    expect(byName(after, 'web')).not.toBe(byName(before, 'web'));
    expect(byName(after, 'web').specHash).toBe('h2');
    expect(after.map((x) => x.name)).toEqual(before.map((x) => x.name)); // still in id order
    expect(bAfter.get('Network/n1')).toBe(bBefore.get('Network/n1'));
    expect(bAfter.get('VirtualMachine/web')?.sha256).toBe('s2');
  });

  it("every write of this connection shows at the next read, through the repositories or raw SQL", async () => {
    const { st } = await open();
    await st.resources.upsert({ ...vm, specHash: 'h1' });
    expect((await index(st)).map((r) => r.specHash)).toEqual(['h1']);
    await st.resources.upsert({ ...vm, specHash: 'h2' });
    expect((await index(st)).map((r) => r.specHash)).toEqual(['h2']);
    await st.resources.setStatus(vm, { lastError: 'boom' });
    expect((await index(st)).map((r) => r.lastError)).toEqual(['boom']);
    await st.resources.upsert({ ...net, specHash: 'n' });
    expect((await index(st)).map((r) => r.name).sort()).toEqual(['n1', 'web']);
    await st.resources.delete(net);
    expect((await index(st)).map((r) => r.name)).toEqual(['web']);
    const kysely = (st as unknown as { db: { executeQuery: unknown } }).db as never as import('kysely').Kysely<never>;
    await sql`UPDATE resources SET spec_hash = 'raw'`.execute(kysely);
    expect((await index(st)).map((r) => r.specHash)).toEqual(['raw']);
    await st.baselines!.put({ ...vm, xml: '<domain/>', sha256: 's1', version: 'v1' });
    expect((await st.baselines!.index()).get('VirtualMachine/web')?.sha256).toBe('s1');
    await st.baselines!.put({ ...vm, xml: '<domain/>', sha256: 's2', version: 'v1' });
    expect((await st.baselines!.index()).get('VirtualMachine/web')?.sha256).toBe('s2');
    await st.baselines!.delete(vm);
    expect((await st.baselines!.index()).size).toBe(0);
    const keep = new Set([resourceKey('VirtualMachine', 'web')]);
    await st.definitionChecks!.sync('local', [{ ...vm, sha256: 'c1', inputs: 'i' }], keep);
    expect((await st.definitionChecks!.index()).get('VirtualMachine/web')?.sha256).toBe('c1');
    await st.definitionChecks!.sync('local', [{ ...vm, sha256: 'c2', inputs: 'i' }], keep);
    expect((await st.definitionChecks!.index()).get('VirtualMachine/web')?.sha256).toBe('c2');
    await st.definitionChecks!.sync('local', [], new Set());
    expect((await st.definitionChecks!.index()).size).toBe(0);
  });

  it('a transaction rolled back leaves what the index showed before it; a read inside it sees its writes', async () => {
    const { st } = await open();
    await st.resources.upsert({ ...vm, specHash: 'h1' });
    expect((await index(st)).map((r) => r.specHash)).toEqual(['h1']);
    const kysely = (st as unknown as { db: import('kysely').Kysely<never> }).db;
    await expect(kysely.transaction().execute(async (trx) => {
      await sql`UPDATE resources SET spec_hash = 'inside'`.execute(trx);
      throw new Error('roll back');
    })).rejects.toThrow('roll back');
    expect((await index(st)).map((r) => r.specHash)).toEqual(['h1']);
    await sql`UPDATE resources SET spec_hash = 'after'`.execute(kysely);
    expect((await index(st)).map((r) => r.specHash)).toEqual(['after']);
  });

  it("another connection's commits (another process) show at the next read", async () => {
    const { st, file } = await open();
    await st.resources.upsert({ ...vm, specHash: 'h1' });
    await st.definitionChecks!.sync('local', [{ ...vm, sha256: 'c1', inputs: 'i' }], new Set([resourceKey('VirtualMachine', 'web')]));
    await st.baselines!.put({ ...vm, xml: '<domain/>', sha256: 's1', version: 'v1' });
    expect((await index(st)).map((r) => r.specHash)).toEqual(['h1']);
    expect((await st.definitionChecks!.index()).get('VirtualMachine/web')?.sha256).toBe('c1');
    expect((await st.baselines!.index()).get('VirtualMachine/web')?.sha256).toBe('s1');
    const other = new Database(file);
    cleanup.push(() => { other.close(); });
    other.prepare("UPDATE resources SET spec_hash = 'other'").run();
    other.prepare("UPDATE definition_checks SET sha256 = 'c-other'").run();
    other.prepare("UPDATE baselines SET sha256 = 's-other'").run();
    expect((await index(st)).map((r) => r.specHash)).toEqual(['other']);
    expect((await st.definitionChecks!.index()).get('VirtualMachine/web')?.sha256).toBe('c-other');
    expect((await st.baselines!.index()).get('VirtualMachine/web')?.sha256).toBe('s-other');
    other.prepare("DELETE FROM resources").run();
    expect(await index(st)).toEqual([]);
  });

  // SQLite keeps this connection's temporary triggers on a table another connection renamed, made
  // anew and filled (the way a migration rebuilds a table): measured here, so nothing re-installs them.
  it('a table another connection made anew (a migration rebuilding it): this connection\'s own writes still show', async () => {
    const { st, file } = await open();
    await st.resources.upsert({ ...vm, specHash: 'h1' });
    expect((await index(st)).map((r) => r.specHash)).toEqual(['h1']);
    const other = new Database(file);
    cleanup.push(() => { other.close(); });
    const table = (other.prepare("SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'resources'").pluck().get() as string);
    const indexes = other.prepare("SELECT sql FROM sqlite_master WHERE type = 'index' AND tbl_name = 'resources' AND sql IS NOT NULL").pluck().all() as string[];
    other.exec(`BEGIN; ALTER TABLE resources RENAME TO resources_old; ${table}; INSERT INTO resources SELECT * FROM resources_old; DROP TABLE resources_old; ${indexes.map((i) => `${i};`).join(' ')} COMMIT;`);
    expect((await index(st)).map((r) => r.specHash)).toEqual(['h1']);
    await st.resources.upsert({ ...vm, specHash: 'h2' });
    await st.resources.upsert({ ...net, specHash: 'n1' });
    expect((await index(st)).map((r) => [r.name, r.specHash])).toEqual([['web', 'h2'], ['n1', 'n1']]);
  });
});
