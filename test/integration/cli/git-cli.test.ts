/**
 * `reconcile --git` and `status --git` end to end on libvirt's test driver (test:///default through
 * libvirtd: nothing persists between connections, so only a network, which needs no domain type):
 * a dry-run plans and records nothing, a valid commit applies and records its commit, a bad one
 * exits 2 naming the file:line:col and changes nothing, `status --json` shows both commits and the
 * error, `status --git` fetches again and says the same.
 */
import { describe, expect, it } from 'vitest';
import { join } from 'node:path';
import { runReconcile } from '../../../src/cli/commands/reconcile.js';
import { runStatus } from '../../../src/cli/commands/status.js';
import { TestRepo } from '../../support/git.js';
import { capture } from '../../support/cli.js';
import { suiteNames } from '../../support/names.js';

const N = suiteNames('gitcli');
const P = N.base;

const NET = (cidr: string, autostart = 'false'): string => `apiVersion: virtform.dev/v1
kind: Network
metadata: {name: ${P}-net}
spec: {mode: isolated, cidr: ${cidr}, autostart: ${autostart}}
`;

const base = { uri: 'test:///default', concurrency: 1, maxAttempts: 1, retryDelay: 0, shutdownTimeout: 0 };

describe('reconcile --git and status --git (test driver)', () => {
  it('applies a commit, refuses a bad one with exit 2 and file:line:col, and status --json shows both commits and the error', async () => {
    const work = N.tempDir();
    const repo = new TestRepo(join(work, 'repo'));
    const db = join(work, 'state.db');
    const good = repo.commit({ 'net.yaml': NET('10.231.44.0/24') }, { folder: 'clusters/lab' });
    const flags = { ...base, db, git: repo.url, branch: 'main', path: 'clusters/lab' };

    const dry = await capture(() => runReconcile(undefined, { ...flags, dryRun: true }));
    expect(dry.code, dry.stderr).toBe(0);
    expect(dry.stdout).toContain(`Network/${P}-net will be created`);
    expect(dry.stderr).toContain('dry-run: nothing recorded');

    const r1 = await capture(() => runReconcile(undefined, { ...flags, json: true }));
    expect(r1.code, r1.stderr).toBe(0);
    const j1 = JSON.parse(r1.stdout) as { outcome: string; git: { appliedCommit: string; fetchedCommit: string; differ: boolean } };
    expect(j1.outcome).toBe('succeeded');
    expect(j1.git).toMatchObject({ appliedCommit: good, fetchedCommit: good, differ: false });

    const bad = repo.commit({ 'net.yaml': NET('10.231.44.0/24', 'perhaps') }, { folder: 'clusters/lab' });
    const r2 = await capture(() => runReconcile(undefined, { ...flags }));
    expect(r2.code).toBe(2);
    expect(r2.stderr).toMatch(new RegExp(`clusters/lab/net\\.yaml:4:\\d+: Network/${P}-net: spec\\.autostart`));
    expect(r2.stderr).toContain(`fetched ${bad.slice(0, 7)}, applied ${good.slice(0, 7)}: validation failed at clusters/lab/net.yaml:4:`);
    expect(r2.stderr).toContain('nothing was changed');

    const s = await capture(() => runStatus(undefined, { uri: 'test:///default', db, json: true, offline: true }));
    expect(s.code).toBe(0);
    const js = JSON.parse(s.stdout) as { git: { fetchedCommit: string; appliedCommit: string; differ: boolean; error: string; summary: string }; latestRevision: { gitCommit: string } };
    expect(js.git).toMatchObject({ fetchedCommit: bad, appliedCommit: good, differ: true });
    expect(js.git.error).toMatch(/^validation failed at clusters\/lab\/net\.yaml:4:/);
    expect(js.latestRevision.gitCommit).toBe(good);

    const st = await capture(() => runStatus(undefined, { uri: 'test:///default', db, ...{ git: repo.url, branch: 'main', path: 'clusters/lab' } }));
    expect(st.code).toBe(0);
    expect(st.stdout).toMatch(new RegExp(`Git: file://.* branch:main path clusters/lab: fetched ${bad.slice(0, 7)}, applied ${good.slice(0, 7)}: validation failed`));
  });

});
