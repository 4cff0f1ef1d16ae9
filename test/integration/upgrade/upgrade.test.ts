/**
 * A state DB made by an earlier virtform upgrades in place: today's binary opens it (running the
 * migrations since), plans "No changes." for the manifests that DB was applied with, and an apply
 * changes nothing. The earlier versions are built from this repository's history, once per
 * commit (`scripts/old-build.sh`, cached in /var/cache/virtform-test/old-builds/<sha>):
 * 90f7ed0 (migrations 0001-0004, before exact drift) and eea9481 (0001-0007, before the host in
 * every key). Each gets its own objects (vftest-upg-<sha>-*) and DB.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { tempDir, writeManifests } from '../../support/manifests.js';
import { cleanupPrefix, ensureBuilt, ROOT, runCli, virsh } from '../../support/real-host.js';
import { suiteNames } from '../../support/names.js';

const N = suiteNames('upg');
const P = N.prefix;
const URI = 'qemu:///system';
const OLD = [
  { sha: '90f7ed0', cidr: N.cidr(0) },
  { sha: 'eea9481', cidr: N.cidr(1) },
];

/** A small set every version understands: a pool, a volume and its clone, a network, a stopped VM. */
function manifests(p: string, cidr: string): Record<string, string> {
  return {
    'all.yaml': `apiVersion: virtform.dev/v1
kind: StoragePool
metadata: {name: ${p}pool}
spec: {path: /var/lib/virtform-test/${p}pool}
---
apiVersion: virtform.dev/v1
kind: Volume
metadata: {name: ${p}base}
spec: {pool: ${p}pool, capacity: 16MiB}
---
apiVersion: virtform.dev/v1
kind: Volume
metadata: {name: ${p}root}
spec: {pool: ${p}pool, capacity: 32MiB, backingVolume: ${p}base}
---
apiVersion: virtform.dev/v1
kind: Network
metadata: {name: ${p}net}
spec: {mode: isolated, cidr: ${cidr}}
---
apiVersion: virtform.dev/v1
kind: VirtualMachine
metadata: {name: ${p}vm}
spec:
  vcpus: 1
  memory: 64MiB
  state: stopped
  disks: [{volume: ${p}root}]
  nics: [{network: ${p}net}]
`,
  };
}

/** Migrations applied to a DB (kysely's table). */
function migrations(db: string): string[] {
  const d = new Database(db, { readonly: true });
  try {
    return (d.prepare('SELECT name FROM kysely_migration ORDER BY name').all() as { name: string }[]).map((r) => r.name);
  } finally {
    d.close();
  }
}

/** The records a run leaves, as comparable rows (what "nothing changed" means for the DB). */
function records(db: string): unknown[] {
  const d = new Database(db, { readonly: true });
  try {
    return d.prepare('SELECT kind, name, uuid, spec_hash, generation, desired_state, details FROM resources ORDER BY kind, name').all();
  } finally {
    d.close();
  }
}

let work: string;
const builds = new Map<string, string>();

beforeAll(() => {
  ensureBuilt();
  work = tempDir(P);
  for (const { sha } of OLD) {
    // Cached by sha: a cold build (npm ci + tsc in a temporary worktree) takes minutes, a warm one nothing.
    const out = execFileSync('bash', [join(ROOT, 'scripts/old-build.sh'), sha], { encoding: 'utf8', timeout: 1_200_000, stdio: ['ignore', 'pipe', 'pipe'] });
    builds.set(sha, out.trim().split('\n').pop()!);
  }
}, 1_500_000);

afterAll(() => {
  cleanupPrefix(P);
  if (work) rmSync(work, { recursive: true, force: true });
});

describe.each(OLD)('a state DB made by $sha', ({ sha, cidr }) => {
  it('upgrades, plans "No changes." and an apply changes nothing', async () => {
    const p = `${P}${sha.slice(0, 3)}-`;
    const dir = join(work, sha);
    mkdirSync(dir, { recursive: true });
    const mdir = writeManifests(join(dir, 'm'), manifests(p, cidr));
    const db = join(dir, 'state.db');
    const oldRun = spawnSync('node', [join(builds.get(sha)!, 'dist/cli/main.js'), 'reconcile', mdir, '--db', db, '--uri', URI, '--domain-type', 'qemu'], {
      encoding: 'utf8', timeout: 180_000,
    });
    expect(oldRun.status, `${oldRun.stdout}\n${oldRun.stderr}`).toBe(0);
    expect(virsh('domstate', `${p}vm`).trim()).toBe('shut off');
    const before = records(db);
    const old = migrations(db);
    expect(old).not.toContain('0008_host_keys');

    const dry = await runCli(['reconcile', mdir, '--db', db, '--uri', URI, '--dry-run']);
    expect(dry.code, `${dry.stdout}\n${dry.stderr}`).toBe(0);
    expect(dry.stdout).toContain('No changes.');

    const run = await runCli(['reconcile', mdir, '--db', db, '--uri', URI]);
    expect(run.code, `${run.stdout}\n${run.stderr}`).toBe(0);
    expect(run.stdout).toContain('No changes.');
    expect(records(db)).toEqual(before);
    // The DB was upgraded: every migration since ran (0008 rebuilt resources with host keys).
    expect(migrations(db)).toEqual(expect.arrayContaining([...old, '0008_host_keys']));
    expect(virsh('domstate', `${p}vm`).trim()).toBe('shut off');
  }, 300_000);
});
