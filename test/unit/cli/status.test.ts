/**
 * `virtform status` without libvirt: the state DB must exist (and is never created), an unreachable
 * libvirt is exit 1 (the DB's view still printed), a dirty tree shows in the revision.
 */
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { existsSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { tempDir } from '../../support/manifests.js';
import { openStateStore } from '../../../src/state/index.js';
import { runStatus } from '../../../src/cli/commands/status.js';
import { LOCAL_HOST } from '../../../src/model/kinds.js';

let work: string;
/** A libvirt URI whose socket does not exist: connecting fails at once. */
let deadUri: string;

async function status(args: { db?: string; json?: boolean; offline?: boolean; uri?: string }, dir?: string): Promise<{ code: number; stdout: string; stderr: string }> {
  let stdout = '';
  let stderr = '';
  const out = vi.spyOn(process.stdout, 'write').mockImplementation((s) => ((stdout += String(s)), true));
  const err = vi.spyOn(process.stderr, 'write').mockImplementation((s) => ((stderr += String(s)), true));
  try {
    const code = await runStatus(dir, { uri: args.uri ?? deadUri, db: args.db, json: args.json, offline: args.offline });
    return { code, stdout, stderr };
  } finally {
    out.mockRestore();
    err.mockRestore();
  }
}

/** A DB with one VM applied by revision #1 from a dirty git tree. */
async function seed(db: string, gitDirty: boolean): Promise<void> {
  const store = await openStateStore(db);
  try {
    const rev = await store.revisions.start({ runId: 'r1', manifestDigest: 'd'.repeat(64), gitCommit: '5203174022abcdef5203174022abcdef52031740', gitDirty });
    await store.revisions.finish(rev, 'succeeded', {});
    await store.resources.upsert({
      kind: 'VirtualMachine', name: 'vftest-status-vm', host: LOCAL_HOST, uuid: '11111111-2222-3333-4444-555555555555', specHash: 'h',
      desiredState: 'running', observedStatus: 'running', lastAppliedRevision: rev,
    });
  } finally {
    await store.close();
  }
}

beforeEach(() => {
  work = tempDir('vftest-status-');
  deadUri = `qemu+unix:///system?socket=${join(work, 'no-libvirtd.sock')}`;
});
afterEach(() => rmSync(work, { recursive: true, force: true }));

describe('virtform status', () => {
  it('a missing state DB is exit 1 naming the path, and neither the file nor its folders are created', async () => {
    const db = join(work, 'not', 'there', 'state.db');
    for (const json of [false, true]) {
      const r = await status({ db, json });
      expect(r.code).toBe(1);
      expect(r.stderr).toContain(db);
      expect(r.stderr).toMatch(/does not exist/);
      expect(r.stdout).toBe('');
    }
    const offline = await status({ db, offline: true });
    expect(offline.code).toBe(1);
    expect(existsSync(join(work, 'not'))).toBe(false);
    // the folder exists but the file does not: still nothing created
    const db2 = join(work, 'state.db');
    expect((await status({ db: db2 })).code).toBe(1);
    expect(existsSync(db2)).toBe(false);
    expect(existsSync(`${db2}-wal`)).toBe(false);
  });

  it('libvirt unreachable: exit 1 with a clear message, the DB view still printed; --offline exits 0', async () => {
    const db = join(work, 'state.db');
    await seed(db, false);
    const table = await status({ db });
    expect(table.code).toBe(1);
    expect(table.stderr).toMatch(/cannot reach libvirt at qemu\+unix:\/\/\/system\?socket=.*no-libvirtd\.sock/);
    expect(table.stderr).toMatch(/--offline/);
    expect(table.stdout).toMatch(/VirtualMachine\/vftest-status-vm\s+running\s+unknown\s+/);

    const json = await status({ db, json: true });
    expect(json.code).toBe(1);
    const doc = JSON.parse(json.stdout) as { hostError: string | null; resources: { name: string; observed: string; status: string; recordedStatus: string }[] };
    expect(doc.hostError).toBeTruthy();
    expect(doc.resources).toHaveLength(1);
    expect(doc.resources[0]).toMatchObject({ observed: 'unknown', recordedStatus: 'running' });
    // the recorded 'running' is not presented as the status: the host was not seen
    expect(doc.resources[0]!.status).not.toBe('running');

    const offline = await status({ db, offline: true, json: true });
    expect(offline.code).toBe(0);
    const o = JSON.parse(offline.stdout) as { hostError: string | null; offline: boolean; resources: { status: string }[] };
    expect(o).toMatchObject({ hostError: null, offline: true });
    expect(o.resources[0]!.status).toBe('applied');
  });

  it('a revision applied from a dirty tree says so in the table and has gitDirty in JSON', async () => {
    const db = join(work, 'state.db');
    await seed(db, true);
    const table = await status({ db, offline: true });
    expect(table.code).toBe(0);
    expect(table.stdout).toMatch(/#1 5203174022-dirty/);
    expect(table.stdout).toMatch(/\(git 5203174022, dirty\)/);
    const json = JSON.parse((await status({ db, offline: true, json: true })).stdout) as { resources: { revision: { gitDirty: boolean; gitCommit: string } }[] };
    expect(json.resources[0]!.revision).toMatchObject({ gitDirty: true, gitCommit: '5203174022abcdef5203174022abcdef52031740' });

    const clean = join(work, 'clean.db');
    await seed(clean, false);
    const t2 = await status({ db: clean, offline: true });
    expect(t2.stdout).toMatch(/#1 5203174022\s/);
    expect(t2.stdout).not.toMatch(/dirty\s/);
  });
});
