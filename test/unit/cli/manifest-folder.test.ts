/**
 * virtform issue #12: `reconcile DIR/net.yaml` loaded that one file and planned deleting everything
 * the other files declare. `reconcile` and `watch` now refuse anything but a folder (exit 2, the
 * path named, no DB, no libvirt connection); `validate FILE` still checks a single file.
 */
import { existsSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, afterEach, describe, expect, it, vi } from 'vitest';
import { runReconcile, type ReconcileFlags } from '../../../src/cli/commands/reconcile.js';
import { runValidate } from '../../../src/cli/commands/validate.js';
import { runWatch, type WatchFlags } from '../../../src/cli/commands/watch.js';
import { LibvirtClient } from '../../../src/libvirt/index.js';
import { labManifests, tempDir, writeManifests } from '../../support/manifests.js';
import { capture } from '../../support/cli.js';

const BOGUS_URI = 'qemu+unix:///system?socket=/tmp/vftest-nonexistent.sock';
const work = tempDir('vftest-cli-folder-');
const dir = writeManifests(join(work, 'm'), labManifests({ prefix: 'vftest-cli', poolPath: join(work, 'pool') }));
const file = join(dir, 'network.yaml');
const db = join(work, 'db', 'state.db');

const reconcileFlags: ReconcileFlags = { uri: BOGUS_URI, db, concurrency: 1, maxAttempts: 1, retryDelay: 0, shutdownTimeout: 1, color: false };
const watchFlags: WatchFlags = {
  uri: BOGUS_URI, db, resync: 300, debounce: 0, listen: false, logLevel: 'info', concurrency: 1, maxAttempts: 1,
  retryDelay: 0, shutdownTimeout: 1,
};

afterEach(() => vi.restoreAllMocks());
afterAll(() => rmSync(work, { recursive: true, force: true }));

describe('a manifest file where a folder is expected', () => {
  it.each([
    ['reconcile', false],
    ['reconcile --dry-run', true],
  ])('%s FILE: exit 2, names the path, no DB, no connection', async (_, dryRun) => {
    const connect = vi.spyOn(LibvirtClient, 'connect');
    const r = await capture(() => runReconcile(file, { ...reconcileFlags, dryRun }));
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(`${file} is not a folder`);
    expect(r.stderr).toContain('virtform validate');
    expect(r.stdout).toBe('');
    expect(connect).not.toHaveBeenCalled();
    expect(existsSync(join(work, 'db'))).toBe(false);
  });

  it('watch FILE: exit 2, names the path, no DB, no connection', async () => {
    const connect = vi.spyOn(LibvirtClient, 'connect');
    const r = await capture(() => runWatch(file, watchFlags));
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(`${file} is not a folder`);
    expect(connect).not.toHaveBeenCalled();
    expect(existsSync(join(work, 'db'))).toBe(false);
  });

  it('validate FILE still checks the one file', async () => {
    const r = await capture(() => runValidate(file, {}));
    expect(r.code).toBe(0);
    expect(r.stdout).toContain(`${file}: 1 resource(s), valid`);
  });
});
