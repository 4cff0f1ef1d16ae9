/**
 * `virtform watch` exits promptly on SIGTERM after its manifest folder was replaced whole (a
 * deploy tool, `rm -r` and a fresh copy) while it watched. chokidar (4.0.3, also 5.0.0) drops the
 * closer of a directory watch when close() lands during that directory's scan
 * (paulmillr/chokidar#1482): the watcher closed on the folder's removal, or at stop, left an
 * fs.watch handle nothing would close, and the process, its graceful stop done ("stopped"
 * logged), stayed alive until the forced exit 30 s + grace later (make test's saved-plan-queue
 * test timed out waiting for it). Every object is named vftest-wexit-*.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { cpSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { spawnWatch, waitFor, type Watcher } from '../../support/cli.js';
import { suiteNames } from '../../support/names.js';

const N = suiteNames('wexit');
const POOL = N.name('pool');
const work = N.tempDir();
const mdir = join(work, 'manifests');
const copy = join(work, 'copy');
const watchers: Watcher[] = [];

const poolDoc = (autostart: boolean): string =>
  `apiVersion: virtform.dev/v1\nkind: StoragePool\nmetadata: {name: ${POOL}}\nspec: {path: ${N.poolPath()}, autostart: ${autostart}}\n`;

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

afterAll(async () => {
  for (const w of watchers) if (w.exitCode === undefined) w.child.kill('SIGKILL');
  N.cleanup();
}, 60_000);

describe('watch: a replaced manifest folder', () => {
  it('an edit after the folder was replaced several times is seen, and the watcher still exits at once on SIGTERM', async () => {
    N.cleanup();
    mkdirSync(copy, { recursive: true });
    writeFileSync(join(copy, 'pool.yaml'), poolDoc(false));
    for (let round = 0; round < 5; round++) {
      rmSync(mdir, { recursive: true, force: true });
      cpSync(copy, mdir, { recursive: true });
      const w = spawnWatch([mdir, '--db', join(work, 'state.db'), '--no-listen', '--debounce', '100']);
      watchers.push(w);
      await w.waitForLog('reconcile finished', () => true, 60_000);
      // The folder replaced whole, twice in quick succession (as a deploy tool does).
      for (const gap of [100 + 200 * round, 200]) {
        // One step at a time, a few ms apart, as `rm -r`, `mkdir` and `cp` do.
        rmSync(mdir, { recursive: true, force: true });
        await sleep(5);
        mkdirSync(mdir);
        await sleep(5);
        cpSync(join(copy, 'pool.yaml'), join(mdir, 'pool.yaml'));
        await sleep(gap);
      }
      await sleep(1000);
      // An edit in the re-created folder is seen by the file watch (the resync is 300 s away).
      const edits = w.count('reconcile started', (l) => (l.sources as string[]).includes('file'));
      writeFileSync(join(mdir, 'pool.yaml'), poolDoc(round % 2 === 0));
      await w.waitForLog('reconcile started', (l) => (l.sources as string[]).includes('file') && w.count('reconcile started', (x) => (x.sources as string[]).includes('file')) > edits, 15_000)
        .catch((e: unknown) => { throw new Error(`round ${round}: ${(e as Error).message}\n${w.tail(20)}`); });
      expect(w.exitCode).toBeUndefined();
      const t0 = Date.now();
      w.child.kill('SIGTERM');
      await waitFor(() => w.exitCode !== undefined, `the watcher to exit (round ${round}); its log:\n${w.tail(15)}`, 20_000);
      expect(w.exitCode).toBe(0);
      // The graceful stop takes milliseconds here (no run in flight): well within 5 s, not the 30 s + grace of the forced exit.
      expect(Date.now() - t0).toBeLessThan(5_000);
    }
  });
});
