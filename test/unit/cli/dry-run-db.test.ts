/**
 * virtform issue #12: `reconcile --dry-run` created the state DB (and its folders) when it did not
 * exist, so a typo in --db left a new empty DB behind. A dry-run now plans against an EMPTY
 * in-memory state and creates nothing; an apply still creates the DB.
 */
import { existsSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, afterEach, describe, expect, it, vi } from 'vitest';
import { runReconcile, type ReconcileFlags } from '../../../src/cli/commands/reconcile.js';
import { openStore } from '../../../src/cli/common.js';
import { labManifests, tempDir, writeManifests } from '../../support/manifests.js';
import { capture } from '../../support/cli.js';

const work = tempDir('vftest-cli-drydb-');
const dir = writeManifests(join(work, 'm'), labManifests({ prefix: 'vftest-cli', poolPath: join(work, 'pool') }));
const flags = (db: string): ReconcileFlags => ({
  uri: 'qemu+unix:///system?socket=/tmp/vftest-nonexistent.sock', db, concurrency: 1, maxAttempts: 1, retryDelay: 0, shutdownTimeout: 1, color: false,
});

afterEach(() => vi.restoreAllMocks());
afterAll(() => rmSync(work, { recursive: true, force: true }));

describe('dry-run and a state DB that does not exist', () => {
  it('reconcile --dry-run --db MISSING creates neither the file nor its folders, and says it plans against an empty state', async () => {
    const db = join(work, 'typo', 'deeper', 'state.db');
    const r = await capture(() => runReconcile(dir, { ...flags(db), dryRun: true }));
    expect(r.stderr).toContain(`state DB ${db} does not exist: planning against an empty state`);
    expect(existsSync(join(work, 'typo'))).toBe(false);
  });

  it('openStore(create: false) on a missing DB: an empty, migrated in-memory state; nothing on disk', async () => {
    const db = join(work, 'missing', 'state.db');
    const store = await openStore(db, { create: false });
    try {
      expect(store.path).toBe(':memory:');
      expect(await store.resources.list()).toEqual([]);
      expect(await store.journal.listOpen()).toEqual([]);
    } finally {
      await store.close();
    }
    expect(existsSync(join(work, 'missing'))).toBe(false);
  });

  it('openStore(create: false) on an existing DB reads it; openStore() creates a missing one', async () => {
    const db = join(work, 'real', 'state.db');
    const created = await openStore(db);
    await created.resources.upsert({ kind: 'Network', name: 'vftest-cli-net', specHash: 'abc' });
    await created.close();
    expect(existsSync(db)).toBe(true);
    const again = await openStore(db, { create: false });
    try {
      expect(again.path).toBe(db);
      expect((await again.resources.list()).map((r) => r.name)).toEqual(['vftest-cli-net']);
    } finally {
      await again.close();
    }
  });
});
