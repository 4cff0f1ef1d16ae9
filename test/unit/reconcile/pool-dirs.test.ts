/** Pool directories on the fake host: only what virtform created is removed, deepest first, when empty. */
import { beforeEach, describe, expect, it } from 'vitest';
import { useHarness, type RunOptions } from '../../support/harness.js';
import { scenario } from '../../support/scenario.js';
import type { ApplyEvent } from '../../../src/reconcile/apply.js';

const fx = useHarness();
beforeEach(() => {
  fx.host.dirs = new Set(['/srv', '/srv/pre']);
});

/** Reconcile exactly these pools (name → path), no mass-deletion brake. */
async function run(pools: Record<string, string>, extra: RunOptions = {}) {
  const s = scenario();
  for (const [n, p] of Object.entries(pools)) s.pool(n, { path: p });
  return fx.reconcile(s, { maxDeletions: 'all', ...extra });
}

describe('pool directories', () => {
  it('records the pool directory and the parents it made; deleting removes those only, keeps busy and pre-existing ones, and says so', async () => {
    expect((await run({ pre: '/srv/pre', deep: '/srv/new/a/b', busy: '/srv/busy/x' })).outcome).toBe('succeeded');
    expect(await fx.store.createdPaths.list('StoragePool', 'pre')).toEqual([]);
    expect(await fx.store.createdPaths.list('StoragePool', 'deep')).toEqual(['/srv/new', '/srv/new/a', '/srv/new/a/b']);
    expect(await fx.store.createdPaths.list('StoragePool', 'busy')).toEqual(['/srv/busy', '/srv/busy/x']);
    fx.host.dirFiles.set('/srv/busy', ['notes.txt']);
    const notes: string[] = [];
    const r = await run({}, { onEvent: (e: ApplyEvent) => { if (e.type === 'note') notes.push(`${e.step.name}: ${e.text}`); } });
    expect(r.outcome).toBe('succeeded');
    expect([...fx.host.dirs!].sort()).toEqual(['/srv', '/srv/busy', '/srv/pre']);
    expect(notes.sort()).toEqual([
      'busy: kept directory /srv/busy: not empty (files virtform did not put there)',
      'pre: kept directory /srv/pre: virtform did not create it',
    ]);
    for (const n of ['pre', 'deep', 'busy']) expect(await fx.store.createdPaths.list('StoragePool', n)).toEqual([]);
  });
});
