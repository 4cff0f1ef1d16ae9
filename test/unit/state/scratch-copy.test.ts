/**
 * `StateStore.scratchCopy()` (SQLite): a throwaway copy of the whole DB that a dry-run may write to
 * (the fleet's binding of the implicit host's records) without the original changing; closing it
 * removes its file.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { existsSync, rmSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { openStateStore, type StateStore } from '../../../src/state/index.js';
import { resourceRef } from '../../../src/model/kinds.js';
import { tempDir } from '../../support/manifests.js';

const cleanup: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const f of cleanup.splice(0).reverse()) await f();
});

describe('scratchCopy (SQLite)', () => {
  it('holds what the original holds; its writes never reach the original; close removes the copy', async () => {
    const dir = tempDir('vftest-scratch-');
    cleanup.push(() => rmSync(dir, { recursive: true, force: true }));
    const st: StateStore = await openStateStore(join(dir, 'state.db'));
    cleanup.push(() => st.close());
    await st.resources.upsert({ ...resourceRef('Network', 'n1'), specHash: 'h1' });
    const copy = await st.scratchCopy!();
    expect(copy.path).not.toBe(st.path);
    expect(copy.dataDir).toBe(st.dataDir);
    expect((await copy.resources.list()).map((r) => r.name)).toEqual(['n1']);
    await copy.resources.upsert({ ...resourceRef('Network', 'n2'), specHash: 'h2' });
    await copy.resources.delete(resourceRef('Network', 'n1'));
    expect((await st.resources.list()).map((r) => r.name)).toEqual(['n1']);
    const file = copy.path;
    expect(existsSync(file)).toBe(true);
    await copy.close();
    expect(existsSync(file)).toBe(false);
    expect(existsSync(dirname(file))).toBe(false);
  });

  it('an in-memory DB copies too', async () => {
    const st = await openStateStore(':memory:');
    cleanup.push(() => st.close());
    await st.resources.upsert({ ...resourceRef('Network', 'm1'), specHash: 'h' });
    const copy = await st.scratchCopy!();
    cleanup.push(() => copy.close());
    expect((await copy.resources.list()).map((r) => r.name)).toEqual(['m1']);
  });
});
