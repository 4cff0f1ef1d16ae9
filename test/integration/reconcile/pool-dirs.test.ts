/**
 * Pool directories (issue 19, finding 12) on the real daemon: deleting a pool removes only the
 * directories virtform created for it (recorded in the state DB), deepest first and only when
 * empty. A directory that existed before is kept (libvirt's pool delete removed it), the parents
 * virtform had to create go too (libvirt left them behind), and a created directory holding a
 * file virtform did not put there is kept, and the output says so.
 *
 * Scratch pools: virtform reaches directories through throw-away pools (a transient
 * `virtform-probe-…` to test that a directory exists, an inactive `virtform-rmdir-…` to remove one).
 * A run killed while one exists leaves it behind; it once made every later pool under that
 * directory a conflict ("lies inside the directory of pool virtform-probe-…", CI of stop 28).
 */
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, describe, expect, it } from 'vitest';
import { writeManifests } from '../../support/manifests.js';
import { runCli, TEST_POOL_ROOT, virsh, virshOk } from '../../support/real-host.js';
import { useSuite } from '../../support/suite.js';

const N = useSuite('pooldirs', {
  setup: () => {
    clean();
  },
});
const P = N.base;
const PRE = `${TEST_POOL_ROOT}/${P}-pre`; // exists before
const NEW_TOP = `${TEST_POOL_ROOT}/${P}-new`; // none of NEW_TOP/a/b exists before
const NEW = `${NEW_TOP}/a/b`;
const BUSY_TOP = `${TEST_POOL_ROOT}/${P}-busy`;
const BUSY = `${BUSY_TOP}/x`; // created by virtform; someone then puts a file into BUSY_TOP

const SC = `${TEST_POOL_ROOT}/${P}-sc`;
const GONE = `${TEST_POOL_ROOT}/${P}-gone`;
const FOREIGN = `${TEST_POOL_ROOT}/${P}-foreign`;
/** Scratch-pool names this file makes (not under the suite's prefix: cleaned up here by name). */
const scratch: string[] = [];
const scratchName = (purpose: 'probe' | 'rmdir'): string => {
  const name = `virtform-${purpose}-${randomBytes(6).toString('hex')}`;
  scratch.push(name);
  return name;
};

const clean = (): void => {
  N.cleanup();
  for (const name of scratch) {
    if (virshOk('pool-info', name)) {
      if (virsh('pool-info', name).includes('running')) virsh('pool-destroy', name);
      if (virshOk('pool-info', name)) virsh('pool-undefine', name);
    }
  }
  for (const d of [PRE, NEW_TOP, BUSY_TOP, SC, GONE, FOREIGN]) rmSync(d, { recursive: true, force: true });
};

afterAll(() => {
  clean();
});

const pool = (name: string, path: string): string => `apiVersion: virtform.dev/v1\nkind: StoragePool\nmetadata: {name: ${P}-${name}}\nspec: {path: ${path}}\n`;

describe('pool directories', () => {
  it('keeps a directory that existed before, removes the parents it created, keeps a created one with foreign files', async () => {
    mkdirSync(PRE, { recursive: true });
    writeFileSync(join(TEST_POOL_ROOT, `${P}-marker`), ''); // not in any pool: untouched
    const dir = writeManifests(join(N.work, 'm'), { 'm.yaml': [pool('pre', PRE), pool('new', NEW), pool('busy', BUSY)].join('---\n') });
    const db = join(N.work, 'state.db');
    const up = await runCli(['reconcile', dir, '--db', db]);
    expect(up.code, up.stdout + up.stderr).toBe(0);
    expect([existsSync(PRE), existsSync(NEW), existsSync(BUSY)]).toEqual([true, true, true]);
    const d = new Database(db, { readonly: true });
    const rows = d.prepare("select name, path from created_paths where kind = 'StoragePool' order by name, path").all();
    d.close();
    expect(rows).toEqual([
      { name: `${P}-busy`, path: BUSY_TOP }, { name: `${P}-busy`, path: BUSY },
      { name: `${P}-new`, path: NEW_TOP }, { name: `${P}-new`, path: `${NEW_TOP}/a` }, { name: `${P}-new`, path: NEW },
    ]);
    writeFileSync(join(BUSY_TOP, 'notes.txt'), 'someone else\'s file\n');

    const empty = writeManifests(join(N.work, 'empty'), {});
    const down = await runCli(['reconcile', empty, '--db', db, '--allow-empty', '--max-deletions', 'all']);
    expect(down.code, down.stdout + down.stderr).toBe(0);
    expect(existsSync(PRE), 'a directory that existed before is kept').toBe(true);
    expect(existsSync(NEW_TOP), 'the pool directory and the parents virtform created are removed').toBe(false);
    expect(existsSync(BUSY), 'the empty pool directory virtform created is removed').toBe(false);
    expect(existsSync(join(BUSY_TOP, 'notes.txt')), 'a created directory with foreign files is kept').toBe(true);
    expect(down.stdout).toContain(`kept directory ${PRE}: virtform did not create it`);
    expect(down.stdout).toContain(`kept directory ${BUSY_TOP}: not empty (files virtform did not put there)`);
    const d2 = new Database(db, { readonly: true });
    expect(d2.prepare('select count(*) as n from created_paths').get()).toEqual({ n: 0 });
    d2.close();
    rmSync(join(TEST_POOL_ROOT, `${P}-marker`), { force: true });
  }, 120_000);

  it('a scratch pool left by a killed run is neither a conflict nor a change, and the next apply removes it (never its directory)', async () => {
    // What a run killed inside a probe leaves: a transient pool on the parent of a pool directory.
    const probe = scratchName('probe');
    virsh('pool-create-as', probe, 'dir', '--target', TEST_POOL_ROOT);
    // What a run killed inside a directory removal leaves: a defined, never started pool.
    const rmdir = scratchName('rmdir');
    mkdirSync(GONE, { recursive: true });
    virsh('pool-define-as', rmdir, 'dir', '--target', GONE);
    // A persistent pool with a probe's name is not what a probe leaves: someone's pool, kept.
    const lookalike = scratchName('probe');
    mkdirSync(FOREIGN, { recursive: true });
    virsh('pool-define-as', lookalike, 'dir', '--target', FOREIGN);

    const dir = writeManifests(join(N.work, 'sc'), { 'm.yaml': pool('sc', SC) });
    const db = join(N.work, 'sc.db');
    const plan = await runCli(['reconcile', dir, '--db', db, '--dry-run']);
    expect(plan.code, plan.stdout + plan.stderr).toBe(0);
    expect(plan.stdout).toContain(`+ StoragePool/${P}-sc`);
    expect(plan.stdout).not.toMatch(/conflict|virtform-(probe|rmdir)-/);

    const up = await runCli(['reconcile', dir, '--db', db]);
    expect(up.code, up.stdout + up.stderr).toBe(0);
    expect(existsSync(SC)).toBe(true);
    expect(virshOk('pool-info', probe), 'the leftover probe is stopped (transient: gone)').toBe(false);
    expect(virshOk('pool-info', rmdir), 'the leftover rmdir pool is undefined').toBe(false);
    expect(existsSync(GONE), 'its directory is kept: only the throw-away definition goes').toBe(true);
    expect(virshOk('pool-info', lookalike), 'a persistent pool with a probe\'s name is not touched').toBe(true);

    const again = await runCli(['reconcile', dir, '--db', db, '--dry-run']);
    expect(again.code, again.stdout + again.stderr).toBe(0);
    expect(again.stdout).toContain('No changes.');

    // The names are reserved: a manifest cannot declare one.
    const bad = writeManifests(join(N.work, 'bad'), { 'm.yaml': `apiVersion: virtform.dev/v1\nkind: StoragePool\nmetadata: {name: virtform-probe-0123456789ab}\nspec: {path: ${SC}-x}\n` });
    const refused = await runCli(['validate', bad]);
    expect(refused.code).toBe(2);
    expect(refused.stderr).toMatch(/m\.yaml:3:\d+: .*"virtform-probe-0123456789ab" is reserved/);

    const empty = writeManifests(join(N.work, 'empty-sc'), {});
    const down = await runCli(['reconcile', empty, '--db', db, '--allow-empty', '--max-deletions', 'all']);
    expect(down.code, down.stdout + down.stderr).toBe(0);
  }, 120_000);
});
