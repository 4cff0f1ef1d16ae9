/**
 * The load cache on qemu:///system (issue 22, src/manifest/load-cache.ts): after an applying run
 * has kept what it made of each manifest file (next to the state DB), a dry-run parses no unchanged
 * file and still plans exactly what a run without the cache plans (`--data-dir` of an empty folder:
 * no cache there) when a manifest file changed, a definition changed on the host, a record of the
 * state DB changed, or the cache file is corrupted. Objects are vftest-loadcache-*.
 */
import { describe, expect, it } from 'vitest';
import { existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { writeManifests } from '../../support/manifests.js';
import { runCli, virsh } from '../../support/real-host.js';
import { useSuite } from '../../support/suite.js';

const N = useSuite('loadcache', { setup: () => void writeManifests(N.mdir, manifests('64MiB')) });
const P = N.base;
const POOL = `${P}-pool`;
const NET = `${P}-net`;

const manifests = (memoryOfA: string): Record<string, string> => ({
  'a.yaml': `apiVersion: virtform.dev/v1
kind: StoragePool
metadata: {name: ${POOL}}
spec: {path: /var/lib/virtform-test/${POOL}}
---
apiVersion: virtform.dev/v1
kind: Network
metadata: {name: ${NET}}
spec: {mode: isolated, cidr: ${N.cidr()}}
`,
  ...Object.fromEntries(['a', 'b'].map((v) => [`vm-${v}.yaml`, `apiVersion: virtform.dev/v1
kind: Volume
metadata: {name: ${P}-${v}-root}
spec: {pool: ${POOL}, capacity: 16MiB, format: qcow2}
---
apiVersion: virtform.dev/v1
kind: VirtualMachine
metadata: {name: ${P}-${v}}
spec:
  vcpus: 1
  memory: ${v === 'a' ? memoryOfA : '64MiB'}
  state: stopped
  disks: [{volume: ${P}-${v}-root}]
  nics: [{network: ${NET}}]
`])),
});

interface CacheStats { files: number; cached: number; digest: boolean; written: boolean; ignored: string | null }
interface RunJson { outcome: string; plan: unknown; manifestCache: CacheStats; definitions: { parsed: number } }

const cacheFile = (): string => join(N.work, 'manifest-cache.json');
const cli = (...args: string[]) => runCli([...args, '--db', N.db, '--shutdown-timeout', '0', '--domain-type', 'qemu']);

async function run(extra: string[] = []): Promise<{ code: number | null; json: RunJson; text: string }> {
  const r = await cli('reconcile', N.mdir, '--json', ...extra);
  expect(r.code === 0 || r.code === 3, `${r.stdout}\n${r.stderr}`).toBe(true);
  return { code: r.code, json: JSON.parse(r.stdout) as RunJson, text: `${r.stdout}\n${r.stderr}` };
}

/** The dry-run with the cache, and without it (a data dir with no cache): the same plan, exit code and outcome. */
async function samePlanAsWithoutCache(): Promise<RunJson> {
  const empty = join(N.work, 'no-cache');
  mkdirSync(empty, { recursive: true });
  const withCache = await run(['--dry-run', '--detailed-exitcode']);
  const without = await run(['--dry-run', '--detailed-exitcode', '--data-dir', empty]);
  expect(without.json.manifestCache.cached).toBe(0);
  expect(existsSync(join(empty, 'manifest-cache.json')), 'a dry-run writes no cache').toBe(false);
  expect(withCache.code).toBe(without.code);
  expect(withCache.json.outcome).toBe(without.json.outcome);
  expect(withCache.json.plan).toEqual(without.json.plan);
  return withCache.json;
}

describe('the load cache: unchanged files are not parsed again, and every plan is the one made without it', () => {
  it('an applying run writes it, a dry-run reads it (parsing no file) and writes nothing', async () => {
    const applied = await run();
    expect(applied.json.outcome).toBe('succeeded');
    expect(applied.json.manifestCache).toMatchObject({ files: 3, cached: 0, written: true });
    const stamp = statSync(cacheFile()).mtimeMs;
    const dry = await samePlanAsWithoutCache();
    expect(dry.outcome).toBe('noop');
    expect(dry.manifestCache).toEqual({ files: 3, cached: 3, digest: true, written: false, ignored: null });
    expect(statSync(cacheFile()).mtimeMs).toBe(stamp);
    const text = await cli('reconcile', N.mdir, '--dry-run', '--detailed-exitcode');
    expect(text.code, text.stdout + text.stderr).toBe(0);
    expect(text.stdout).toContain('No changes.');
  });

  it('a changed manifest file is parsed again and planned (the others still come from the cache)', async () => {
    writeManifests(N.mdir, manifests('96MiB'));
    const dry = await samePlanAsWithoutCache();
    expect(dry.outcome).toBe('planned');
    expect(dry.manifestCache).toMatchObject({ files: 3, cached: 2, digest: false, written: false });
    expect(JSON.stringify(dry.plan)).toContain(`VirtualMachine/${P}-a`);
    expect(JSON.stringify(dry.plan)).not.toContain(`VirtualMachine/${P}-b`);
    writeManifests(N.mdir, manifests('64MiB'));
    expect((await samePlanAsWithoutCache()).outcome).toBe('noop');
  });

  it('a definition changed on the host is planned with every file from the cache', async () => {
    // The run that records the no-op fast path's checks: the next dry-run parses no definition either.
    expect((await run()).json.outcome).toBe('noop');
    const vm = `${P}-b`;
    const edited = virsh('dumpxml', '--inactive', vm).replace('</devices>', "<watchdog model='i6300esb' action='reset'/></devices>");
    writeFileSync(join(N.work, 'b.xml'), edited);
    virsh('define', join(N.work, 'b.xml'));
    const dry = await samePlanAsWithoutCache();
    expect(dry.manifestCache.cached).toBe(3);
    expect(dry.outcome).toBe('planned');
    expect(JSON.stringify(dry.plan)).toContain(`VirtualMachine/${P}-b`);
    const text = await cli('reconcile', N.mdir, '--dry-run', '--detailed-exitcode', '--no-color');
    expect(text.code).toBe(3);
    expect(text.stdout).toMatch(/devices\/watchdog added \(drift\)/);
    expect((await run()).json.outcome).toBe('succeeded');
    expect(virsh('dumpxml', '--inactive', vm)).not.toContain('<watchdog');
  });

  it('a changed record of the state DB is planned with every file from the cache', async () => {
    expect((await run()).json.outcome).toBe('noop');
    const db = new Database(N.db);
    try {
      // The record of VM a says another spec was applied last: its definition is compared in full.
      db.prepare("update resources set spec_hash = 'not-the-applied-one' where kind = 'VirtualMachine' and name = ?").run(`${P}-a`);
    } finally {
      db.close();
    }
    const dry = await samePlanAsWithoutCache();
    expect(dry.manifestCache.cached).toBe(3);
    expect(dry.definitions.parsed).toBeGreaterThanOrEqual(1);
  });

  it('a corrupted cache is ignored (the plan made from the files), and the next applying run writes a good one', async () => {
    writeFileSync(cacheFile(), readFileSync(cacheFile(), 'utf8').replace('64MiB', '65MiB'));
    const dry = await samePlanAsWithoutCache();
    expect(dry.manifestCache).toMatchObject({ cached: 0, ignored: 'checksum mismatch', written: false });
    const again = await run();
    expect(again.json.manifestCache).toMatchObject({ cached: 0, written: true });
    expect((await samePlanAsWithoutCache()).manifestCache).toMatchObject({ cached: 3, digest: true, ignored: null });
  });
});
