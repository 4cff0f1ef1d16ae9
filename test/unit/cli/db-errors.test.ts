/**
 * virtform issue #12: a state DB that could not be opened said only `unable to open database file`.
 * `reconcile` and `watch` now say which path and why, and exit 1 (before connecting to libvirt).
 */
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, afterEach, describe, expect, it, vi } from 'vitest';
import { runReconcile, type ReconcileFlags } from '../../../src/cli/commands/reconcile.js';
import { runWatch, type WatchFlags } from '../../../src/cli/commands/watch.js';
import { LibvirtClient } from '../../../src/libvirt/index.js';
import { labManifests, tempDir, writeManifests } from '../../support/manifests.js';
import { capture } from '../../support/cli.js';

const BOGUS_URI = 'qemu+unix:///system?socket=/tmp/vftest-nonexistent.sock';
const work = tempDir('vftest-cli-dberr-');
const dir = writeManifests(join(work, 'm'), labManifests({ prefix: 'vftest-cli', poolPath: join(work, 'pool') }));
const aDir = join(work, 'a-directory');
mkdirSync(aDir);
const notDb = join(work, 'notes.db');
writeFileSync(notDb, 'not a database at all; only some text that is long enough for a header. '.repeat(3));

const flags = (db: string): ReconcileFlags => ({ uri: BOGUS_URI, db, concurrency: 1, maxAttempts: 1, retryDelay: 0, shutdownTimeout: 1, color: false });

afterEach(() => vi.restoreAllMocks());
afterAll(() => rmSync(work, { recursive: true, force: true }));

describe('state DB errors on the command line', () => {
  it.each([
    [aDir, `${aDir} is a directory, not a database file`],
    [notDb, `${notDb} is not a SQLite database (SQLITE_NOTADB)`],
  ])('reconcile --db %s: exit 1, path and reason named, no connection', async (db, reason) => {
    const connect = vi.spyOn(LibvirtClient, 'connect');
    const r = await capture(() => runReconcile(dir, flags(db)));
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`virtform: cannot open state DB ${db}: ${reason}`);
    expect(connect).not.toHaveBeenCalled();
  });

  it('watch --db DIRECTORY: exit 1, path and reason in the log', async () => {
    const o: WatchFlags = {
      uri: BOGUS_URI, db: aDir, resync: 300, debounce: 0, listen: false, logLevel: 'info', concurrency: 1, maxAttempts: 1,
      retryDelay: 0, shutdownTimeout: 1,
    };
    const r = await capture(() => runWatch(dir, o));
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`cannot open state DB ${aDir}: ${aDir} is a directory, not a database file`);
  });
});
