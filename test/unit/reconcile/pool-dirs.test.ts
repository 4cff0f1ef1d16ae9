/** Pool directories on the fake host: only what virtform created is removed, deepest first, when empty. */
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { FakeHost } from '../../support/fake-host.js';
import { desiredFrom, tempDir, writeManifests } from '../../support/manifests.js';
import { openStateStore, type StateStore } from '../../../src/state/index.js';
import { reconcile } from '../../../src/reconcile/engine.js';
import type { ApplyEvent } from '../../../src/reconcile/apply.js';
import { resourceRef } from '../../../src/model/kinds.js';

let work: string;
let host: FakeHost;
let store: StateStore;

beforeEach(async () => {
  work = tempDir();
  host = new FakeHost();
  host.dirs = new Set(['/srv', '/srv/pre']);
  store = await openStateStore(join(work, 'state.db'));
});
afterEach(async () => {
  await store.close();
  rmSync(work, { recursive: true, force: true });
});

async function run(pools: Record<string, string>, extra: Partial<Parameters<typeof reconcile>[0]> = {}) {
  const docs = Object.entries(pools).map(([n, p]) => `apiVersion: virtform.dev/v1\nkind: StoragePool\nmetadata: {name: ${n}}\nspec: {path: ${p}}\n`);
  const dir = writeManifests(join(work, `m${Math.random()}`), docs.length ? { 'm.yaml': docs.join('---\n') } : {});
  return reconcile({ host, store, desired: await desiredFrom(dir), maxDeletions: 'all', gracefulStop: false, ...extra });
}

describe('pool directories', () => {
  it('records the pool directory and the parents it made; deleting removes those only, keeps busy and pre-existing ones, and says so', async () => {
    expect((await run({ pre: '/srv/pre', deep: '/srv/new/a/b', busy: '/srv/busy/x' })).outcome).toBe('succeeded');
    expect(await store.createdPaths.list(resourceRef('StoragePool', 'pre'))).toEqual([]);
    expect(await store.createdPaths.list(resourceRef('StoragePool', 'deep'))).toEqual(['/srv/new', '/srv/new/a', '/srv/new/a/b']);
    expect(await store.createdPaths.list(resourceRef('StoragePool', 'busy'))).toEqual(['/srv/busy', '/srv/busy/x']);
    host.dirFiles.set('/srv/busy', ['notes.txt']);
    const notes: string[] = [];
    const r = await run({}, { onEvent: (e: ApplyEvent) => { if (e.type === 'note') notes.push(`${e.step.name}: ${e.text}`); } });
    expect(r.outcome).toBe('succeeded');
    expect([...host.dirs!].sort()).toEqual(['/srv', '/srv/busy', '/srv/pre']);
    expect(notes.sort()).toEqual([
      'busy: kept directory /srv/busy: not empty (files virtform did not put there)',
      'pre: kept directory /srv/pre: virtform did not create it',
    ]);
    for (const n of ['pre', 'deep', 'busy']) expect(await store.createdPaths.list(resourceRef('StoragePool', n))).toEqual([]);
  });
});
