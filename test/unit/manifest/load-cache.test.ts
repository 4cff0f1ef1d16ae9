/**
 * The load cache across processes (src/manifest/load-cache.ts): a load through it gives exactly
 * loadManifests' result (desired state, digest, errors with file:line:col), parsing only files whose
 * bytes it does not hold; a corrupted, edited or foreign cache is ignored as a whole; `write: false`
 * (a dry-run) writes nothing; files with errors are never kept.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import { loadManifests, loadManifestsCached, type LoadResult } from '../../../src/manifest/index.js';
import { makeTempDir } from '../../support/temp-dirs.js';

let work: string;
let dir: string;
let cacheFile: string;

const head = `apiVersion: virtform.dev/v1
kind: StoragePool
metadata: {name: p}
spec: {path: /srv/pools/p}
---
apiVersion: virtform.dev/v1
kind: Network
metadata: {name: n}
spec: {mode: isolated, cidr: 10.77.0.0/24}
`;
const vm = (i: number, memory = '64MiB', network = 'n'): string => `---
apiVersion: virtform.dev/v1
kind: Volume
metadata: {name: v${i}}
spec: {pool: p, capacity: 1MiB, format: qcow2}
---
apiVersion: virtform.dev/v1
kind: VirtualMachine
metadata: {name: d${i}}
spec:
  vcpus: 1
  memory: ${memory}
  disks: [{volume: v${i}}]
  nics: [{network: ${network}}]
`;

beforeEach(() => {
  work = makeTempDir('vftest-loadcache-');
  dir = join(work, 'm');
  mkdirSync(dir);
  cacheFile = join(work, 'manifest-cache.json');
  writeFileSync(join(dir, 'a.yaml'), head);
  writeFileSync(join(dir, 'b.yaml'), [0, 1, 2].map((i) => vm(i)).join(''));
  writeFileSync(join(dir, 'c.yaml'), vm(3).slice(4));
});
afterEach(() => rmSync(work, { recursive: true, force: true }));

/** The result as data: the desired state's fields with its digest, or the errors. */
const plain = (r: LoadResult): unknown => (r.ok ? { ...JSON.parse(JSON.stringify(r.desired)), digest: r.desired.digest } : r.errors);
const cached = (write = true) => loadManifestsCached(dir, { revision: false }, { file: cacheFile, write });
const direct = () => loadManifests(dir, { revision: false });

describe('the load cache', () => {
  it('a cached file whose user-data the load reads, kept while another file changes: the cache keeps the file as written (the load filled in userData on its own copy)', async () => {
    writeFileSync(join(dir, 'ud.txt'), '#cloud-config\nhostname: one\n');
    writeFileSync(join(dir, 'c.yaml'), `${vm(3).slice(4)}  cloudInit: {pool: p, userDataFile: ud.txt}\n`);
    expect((await cached()).ok).toBe(true);
    writeFileSync(join(dir, 'b.yaml'), [0, 1, 2].map((i) => vm(i, '128MiB')).join(''));
    expect((await cached()).ok).toBe(true); // c.yaml from the cache, b.yaml parsed: the cache is written again
    const third = await cached();
    expect(third.ok ? [] : third.errors).toEqual([]);
    expect(plain(third)).toEqual(plain(await direct()));
  });

  it('a user-data file edited while the manifests stay the same: the digest is the new one (the file is outside the manifests)', async () => {
    writeFileSync(join(dir, 'ud.txt'), '#cloud-config\nhostname: one\n');
    writeFileSync(join(dir, 'c.yaml'), `${vm(3).slice(4)}  cloudInit: {pool: p, userDataFile: ud.txt}\n`);
    const first = await cached();
    expect(first.ok).toBe(true);
    writeFileSync(join(dir, 'ud.txt'), '#cloud-config\nhostname: two\n');
    const again = await cached();
    const fresh = await direct();
    expect(again.ok && fresh.ok).toBe(true);
    expect(plain(again)).toEqual(plain(fresh));
    expect(again.ok && first.ok && again.desired.digest).not.toBe(first.ok && first.desired.digest);
  });

  it('gives loadManifests\' result, then the same again without parsing any file', async () => {
    const first = await cached();
    expect(first.cacheStats).toMatchObject({ files: 3, cached: 0, digest: false, written: true });
    expect(plain(first)).toEqual(plain(await direct()));
    const second = await cached();
    expect(second.cacheStats).toMatchObject({ files: 3, cached: 3, digest: true, written: false });
    expect(plain(second)).toEqual(plain(await direct()));
    // Positions of the documents (manifest sources) are the file's.
    expect(second.ok && second.desired.manifests.find((m) => m.metadata.name === 'd1')?.source).toEqual({ file: join(dir, 'b.yaml'), line: 21, col: 1 });
  });

  it('parses a changed file again (its new content, another digest); the others come from the cache', async () => {
    await cached();
    const before = await cached();
    writeFileSync(join(dir, 'b.yaml'), [0, 1, 2].map((i) => vm(i, i === 1 ? '128MiB' : '64MiB')).join(''));
    const after = await cached();
    expect(after.cacheStats).toMatchObject({ files: 3, cached: 2, digest: false, written: true });
    expect(plain(after)).toEqual(plain(await direct()));
    expect(after.ok && before.ok && after.desired.digest).not.toBe(before.ok && before.desired.digest);
    const vm1 = after.ok ? after.desired.vms.find((m) => m.metadata.name === 'd1') : undefined;
    expect(vm1?.spec.memory).toBe('128MiB');
    // A file going back to earlier bytes that the cache no longer holds is parsed, and right.
    expect(plain(await cached())).toEqual(plain(await direct()));
  });

  it('a file removed or added: the cross-file checks see the whole set (errors with file:line:col, as loadManifests)', async () => {
    await cached();
    // b.yaml and c.yaml unchanged (from the cache) now name a network no file declares.
    writeFileSync(join(dir, 'a.yaml'), head.split('---\n')[0]!);
    const broken = await cached();
    expect(broken.ok).toBe(false);
    expect(broken.cacheStats.cached).toBe(2);
    expect(plain(broken)).toEqual(plain(await direct()));
    const errs = broken.ok ? [] : broken.errors;
    expect(errs.some((e) => e.file === join(dir, 'c.yaml') && e.line === 13 && e.col === 20 && e.field === 'spec.nics[0].network'), JSON.stringify(errs)).toBe(true);
    writeFileSync(join(dir, 'a.yaml'), head);
    writeFileSync(join(dir, 'd.yaml'), vm(4).slice(4));
    const more = await cached();
    expect(more.cacheStats).toMatchObject({ files: 4, cached: 3 });
    expect(plain(more)).toEqual(plain(await direct()));
  });

  it('keeps no file with an error; a bad edit gives loadManifests\' errors at every load', async () => {
    await cached();
    writeFileSync(join(dir, 'c.yaml'), vm(3, 'lots').slice(4));
    for (let i = 0; i < 2; i++) {
      const r = await cached();
      expect(r.ok).toBe(false);
      expect(r.cacheStats.cached).toBe(2);
      expect(plain(r)).toEqual(plain(await direct()));
    }
  });

  it('ignores a corrupted, edited or foreign cache as a whole, and writes a good one again', async () => {
    await cached();
    const good = readFileSync(cacheFile, 'utf8');
    // A torn write / a flipped byte: the checksum does not match.
    writeFileSync(cacheFile, good.slice(0, good.length - 100));
    let r = await cached(false);
    expect(r.cacheStats).toMatchObject({ cached: 0, digest: false, ignored: 'checksum mismatch' });
    expect(plain(r)).toEqual(plain(await direct()));
    // An edit with a matching checksum but another build's identity.
    const body = JSON.parse(good.slice(good.indexOf('\n') + 1)) as { identity: string };
    body.identity = 'another';
    const text = JSON.stringify(body);
    writeFileSync(cacheFile, `${createHash('sha256').update(text).digest('hex')}\n${text}`);
    r = await cached(false);
    expect(r.cacheStats).toMatchObject({ cached: 0, ignored: 'another build' });
    writeFileSync(cacheFile, 'garbage');
    r = await cached();
    expect(r.cacheStats).toMatchObject({ cached: 0, ignored: 'checksum mismatch', written: true });
    expect(plain(r)).toEqual(plain(await direct()));
    expect((await cached()).cacheStats).toMatchObject({ cached: 3, digest: true });
  });

  it('keeps Host manifests too: the hosts of a fleet and the digest are those of loadManifests (a Host edit: another digest)', async () => {
    const hostDoc = (zone: string): string => `apiVersion: virtform.dev/v1
kind: Host
metadata: {name: h1, labels: {zone: ${zone}}}
spec:
  uri: qemu+tcp://10.251.1.2/system
  insecure: true
`;
    writeFileSync(join(dir, 'hosts.yaml'), hostDoc('a'));
    await cached();
    const hit = await cached();
    expect(hit.cacheStats).toMatchObject({ files: 4, cached: 4, digest: true });
    expect(plain(hit)).toEqual(plain(await direct()));
    expect(hit.ok && hit.desired.hosts.map((h) => [h.id, h.labels.zone])).toEqual([['h1', 'a']]);
    writeFileSync(join(dir, 'hosts.yaml'), hostDoc('b'));
    const edited = await cached();
    expect(edited.cacheStats).toMatchObject({ cached: 3, digest: false });
    expect(plain(edited)).toEqual(plain(await direct()));
    expect(edited.ok && hit.ok && edited.desired.digest).not.toBe(hit.ok && hit.desired.digest);
  });

  it('write: false (a dry-run) writes nothing, and nothing is written into a folder that does not exist', async () => {
    expect((await cached(false)).cacheStats.written).toBe(false);
    expect(existsSync(cacheFile)).toBe(false);
    cacheFile = join(work, 'missing', 'manifest-cache.json');
    expect((await cached(true)).cacheStats.written).toBe(false);
    expect(existsSync(join(work, 'missing'))).toBe(false);
  });
});
