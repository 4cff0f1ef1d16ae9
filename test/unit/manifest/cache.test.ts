/**
 * The per-file manifest cache (src/manifest/cache.ts): the same result as loadManifests, with only
 * changed files read and parsed again; deleted, renamed and added files; a bad edit gives exactly
 * loadManifests' errors (file:line:col) and a fix loads again; cross-file rules still see the
 * whole set; clear() reads everything again.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { readdirSync, renameSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadManifests, ManifestCache } from '../../../src/manifest/index.js';
import { makeTempDir } from '../../support/temp-dirs.js';

let dir: string;

const pool = `apiVersion: virtform.dev/v1
kind: StoragePool
metadata: {name: p}
spec: {path: /srv/pools/p}
`;
const vol = (i: number, capacity = '1MiB'): string => `apiVersion: virtform.dev/v1
kind: Volume
metadata: {name: v${i}}
spec: {pool: p, capacity: ${capacity}, format: qcow2}
`;

function write(name: string, text: string): void {
  const tmp = join(dir, `.${name}.tmp`);
  writeFileSync(tmp, text);
  renameSync(tmp, join(dir, name));
}

beforeEach(() => {
  dir = makeTempDir('vftest-mcache-');
  write('pool.yaml', pool);
  for (let i = 0; i < 5; i++) write(`v${i}.yaml`, vol(i));
});

afterEach(() => rmSync(dir, { recursive: true, force: true }));

const strip = <T extends { ok: boolean }>(r: T): Omit<T, 'stats'> => {
  const { stats: _s, ...rest } = r as T & { stats?: unknown };
  return rest;
};

describe('ManifestCache', () => {
  it("a VM whose user-data the load reads from a file: a kept file loads again as the first time (the load's cross-file step fills in the text on its own copy, never on the kept file)", async () => {
    write('ud.txt', '#cloud-config\nhostname: one\n');
    write('vm.yaml', `apiVersion: virtform.dev/v1
kind: VirtualMachine
metadata: {name: d0}
spec:
  vcpus: 1
  memory: 64MiB
  disks: [{volume: v0}]
  nics: []
  cloudInit: {pool: p, userDataFile: ud.txt}
`);
    const cache = new ManifestCache();
    const first = await cache.load(dir);
    expect(first.ok ? [] : first.errors).toEqual([]);
    const again = await cache.load(dir);
    expect(again.stats.parsed).toBe(0);
    expect(again.ok ? [] : again.errors).toEqual([]);
    expect(strip(again)).toEqual(await loadManifests(dir));
    // The user-data file edited alone: the new text, as a fresh load reads it.
    write('ud.txt', '#cloud-config\nhostname: two\n');
    const edited = await cache.load(dir);
    expect(strip(edited)).toEqual(await loadManifests(dir));
    expect(edited.ok && edited.desired.digest).not.toBe(first.ok && first.desired.digest);
  });

  it('loads what loadManifests loads, and reads again only the changed file', async () => {
    const cache = new ManifestCache();
    const first = await cache.load(dir);
    expect(first.stats).toEqual({ files: 6, read: 6, parsed: 6 });
    expect(strip(first)).toEqual(await loadManifests(dir));

    const again = await cache.load(dir);
    expect(again.stats).toEqual({ files: 6, read: 0, parsed: 0 });
    expect(strip(again)).toEqual(await loadManifests(dir));

    write('v2.yaml', vol(2, '2MiB'));
    const edited = await cache.load(dir);
    expect(edited.stats).toEqual({ files: 6, read: 1, parsed: 1 });
    expect(strip(edited)).toEqual(await loadManifests(dir));
    expect(edited.ok && edited.desired.digest).not.toBe(first.ok && first.desired.digest);

    // The same bytes written again (a touch, a checkout): read, not parsed.
    write('v3.yaml', vol(3));
    expect((await cache.load(dir)).stats).toEqual({ files: 6, read: 1, parsed: 0 });
  });

  it('a file added, renamed or deleted', async () => {
    const cache = new ManifestCache();
    await cache.load(dir);
    write('v9.yaml', vol(9));
    let r = await cache.load(dir);
    expect(r.stats).toEqual({ files: 7, read: 1, parsed: 1 });
    expect(strip(r)).toEqual(await loadManifests(dir));

    renameSync(join(dir, 'v9.yaml'), join(dir, 'renamed.yaml'));
    r = await cache.load(dir);
    expect(r.stats).toEqual({ files: 7, read: 1, parsed: 1 });
    expect(strip(r)).toEqual(await loadManifests(dir));
    expect(r.ok && r.desired.volumes.find((v) => v.metadata.name === 'v9')?.source.file).toBe(join(dir, 'renamed.yaml'));

    unlinkSync(join(dir, 'renamed.yaml'));
    r = await cache.load(dir);
    expect(r.stats).toEqual({ files: 6, read: 0, parsed: 0 });
    expect(strip(r)).toEqual(await loadManifests(dir));
    expect(cache.size).toBe(6);
  });

  it('a bad edit gives loadManifests errors (file:line:col); the fix loads again', async () => {
    const cache = new ManifestCache();
    await cache.load(dir);
    write('v1.yaml', vol(1, 'lots'));
    const bad = await cache.load(dir);
    expect(bad.ok).toBe(false);
    expect(strip(bad)).toEqual(await loadManifests(dir));
    expect(!bad.ok && bad.errors[0]).toMatchObject({ file: join(dir, 'v1.yaml'), line: 4, col: 27, field: 'spec.capacity' });
    // Again without a change: the same errors from the kept file.
    expect(strip(await cache.load(dir))).toEqual(await loadManifests(dir));
    write('v1.yaml', vol(1));
    const fixed = await cache.load(dir);
    expect(fixed.ok).toBe(true);
    expect(strip(fixed)).toEqual(await loadManifests(dir));
  });

  it('cross-file rules run over the whole set: a duplicate in a new file names both places', async () => {
    const cache = new ManifestCache();
    await cache.load(dir);
    write('dup.yaml', vol(0));
    const r = await cache.load(dir);
    expect(r.stats.parsed).toBe(1);
    expect(r.ok).toBe(false);
    expect(strip(r)).toEqual(await loadManifests(dir));
    expect(!r.ok && r.errors.map((e) => e.message).join('\n')).toMatch(/duplicate Volume name "v0"/);
    // The pool's file removed, the volumes' files unchanged: every volume's reference is dangling.
    unlinkSync(join(dir, 'dup.yaml'));
    unlinkSync(join(dir, 'pool.yaml'));
    const dangling = await cache.load(dir);
    expect(dangling.stats).toEqual({ files: 5, read: 0, parsed: 0 });
    expect(!dangling.ok && dangling.errors.filter((e) => /StoragePool "p" is not defined/.test(e.message))).toHaveLength(5);
  });

  it('clear() reads and parses every file again', async () => {
    const cache = new ManifestCache();
    await cache.load(dir);
    cache.clear();
    expect(cache.size).toBe(0);
    expect((await cache.load(dir)).stats).toEqual({ files: 6, read: 6, parsed: 6 });
  });

  // wstep (issue 22): the cache freezes what it keeps and the loader copies only what its
  // cross-file checks write to (writableValue): a write anywhere else throws here.
  it('every fixture and example folder loads through the cache (twice) as loadManifests loads it', async () => {
    const root = fileURLToPath(new URL('../../fixtures/manifests/', import.meta.url));
    const folders = [
      ...['valid', 'broken'].flatMap((d) => readdirSync(join(root, d)).map((x) => join(root, d, x))),
      fileURLToPath(new URL('../../../manifests/examples', import.meta.url)),
    ];
    expect(folders.length).toBeGreaterThan(100);
    for (const folder of folders) {
      const cache = new ManifestCache();
      const want = await loadManifests(folder);
      expect(strip(await cache.load(folder)), folder).toEqual(want);
      const again = await cache.load(folder);
      expect(again.stats.parsed, folder).toBe(0);
      expect(strip(again), folder).toEqual(want);
    }
  });

  it('an unchanged manifest is handed out as the same object as by the last load; a changed one, or after clear(), is new', async () => {
    const cache = new ManifestCache();
    const first = await cache.load(dir);
    write('v2.yaml', vol(2, '2MiB'));
    const edited = await cache.load(dir);
    if (!first.ok || !edited.ok) throw new Error('load failed');
    const by = (r: Awaited<ReturnType<typeof cache.load>>, name: string) => r.ok ? r.desired.manifests.find((m) => m.metadata.name === name) : undefined;
    expect(by(edited, 'v1')).toBe(by(first, 'v1'));
    expect(by(edited, 'p')).toBe(by(first, 'p'));
    expect(edited.desired.volumes[1]).toBe(by(first, 'v1'));
    expect(by(edited, 'v2')).not.toBe(by(first, 'v2'));
    expect(edited.desired.digest).toBe((await loadManifests(dir) as typeof first & { ok: true }).desired.digest);
    cache.clear();
    const fresh = await cache.load(dir);
    expect(by(fresh, 'v1')).not.toBe(by(first, 'v1'));
    expect(strip(fresh)).toEqual(await loadManifests(dir));
  });
});
