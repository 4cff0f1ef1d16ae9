/**
 * The watcher with a git source (`watch --git`) on the in-memory host: a pushed commit converges
 * within one interval, a bad commit changes nothing and is reported (fetched vs applied, the
 * file:line:col), drift is corrected from the last good commit, fetch failures back off and never
 * stop the watcher, and the applied commit is restored from the state DB after a restart.
 */
import { createHash } from 'node:crypto';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { renameSync } from 'node:fs';
import { createServer, type Socket } from 'node:net';
import { join } from 'node:path';
import { labManifests } from '../../support/manifests.js';
import { TestRepo } from '../../support/git.js';
import { FAST_RETRY, useHarness } from '../../support/harness.js';
import { GitRepository, GitSync, type GitSourceSpec } from '../../../src/git/index.js';
import { GitRepositorySource, WatchController, jsonLogger } from '../../../src/watch/index.js';
import { GatedHost, parsePrometheus, sampleValue, waitFor } from './helpers.js';

const P = 'vftest-gitw';
const VM1 = `${P}-vm1`;
const INTERVAL = 150;

const fx = useHarness({ dirPrefix: 'vftest-gitw-', newHost: () => new GatedHost() });
let repo: TestRepo;
let controller: WatchController | undefined;
let source: GitRepositorySource | undefined;
let logs: Record<string, unknown>[];

const files = (o: Partial<Parameters<typeof labManifests>[0]> = {}): Record<string, string> =>
  labManifests({ prefix: P, poolPath: '/srv/pools/gitw', withVm2: false, ...o });

function start(spec: Partial<GitSourceSpec> = {}): WatchController {
  const sync = new GitSync(new GitRepository({ url: repo.url, ref: { kind: 'branch', name: 'main' }, path: 'env', ...spec }, { cacheRoot: join(fx.work, 'git') }), fx.store);
  source = new GitRepositorySource({ sync, intervalMs: INTERVAL, backoff: { baseMs: 50, maxMs: 400 }, logger: jsonLogger({ level: 'debug', write: (l) => void logs.push(JSON.parse(l) as Record<string, unknown>) }) });
  controller = new WatchController({
    dir: '', git: source, store: fx.store, connect: async () => fx.host, resyncMs: 0, heartbeatMs: 0, eventDebounceMs: 20, gracefulStop: false,
    retry: FAST_RETRY, reconnect: { initialDelayMs: 10, maxDelayMs: 40 },
    logger: jsonLogger({ level: 'debug', write: (l) => void logs.push(JSON.parse(l) as Record<string, unknown>) }),
  });
  return controller;
}

beforeEach(() => {
  repo = new TestRepo(join(fx.work, 'repo'));
  logs = [];
  controller = undefined;
});

// before the harness closes the store (after-hooks run in reverse order)
afterEach(async () => {
  await controller?.stop();
});

describe('watch --git', () => {
  it('converges the first commit, then each pushed commit within an interval; records applied commits', async () => {
    const a = repo.commit(files(), { folder: 'env' });
    const c = start();
    await c.start();
    await waitFor(() => c.ready, 'the initial reconcile');
    expect(fx.host.domains.get(VM1)?.active).toBe(true);
    let st = await c.status();
    expect(st.git?.appliedCommit).toBe(a);
    expect(st.git?.fetchedCommit).toBe(a);
    expect(st.git?.differ).toBe(false);
    expect(st.dir).toContain(repo.url);

    const b = repo.commit(files({ vm1State: 'stopped' }), { folder: 'env' });
    const t0 = Date.now();
    await waitFor(() => fx.host.domains.get(VM1)?.active === false, 'the pushed commit to converge', 10_000);
    expect(Date.now() - t0).toBeLessThan(INTERVAL * 2 + 3000);
    await c.idle();
    st = await c.status();
    expect(st.git?.appliedCommit).toBe(b);
    expect(st.git?.summary).toBe(`fetched ${b.slice(0, 7)}, applied ${b.slice(0, 7)} (up to date)`);
    expect(logs.some((l) => l.msg === 'reconcile started' && (l.sources as string[]).includes('git'))).toBe(true);
    const rev = await fx.store.revisions.latest();
    expect(rev?.gitCommit).toBe(b);
    expect((await fx.store.gitSources.list())[0]?.appliedCommit).toBe(b);
  });

  it('a bad commit changes nothing and is reported; drift is still corrected from the last good commit', async () => {
    const a = repo.commit(files(), { folder: 'env' });
    const c = start();
    await c.start();
    await waitFor(() => c.ready, 'ready');
    await c.idle();
    const runs = c.runCount;
    const bad = repo.commit({ ...files({ vm1State: 'stopped' }), 'vms.yaml': files()['vms.yaml']!.replace('vcpus: 1', 'vcpus: lots') }, { folder: 'env' });
    await waitFor(async () => (await c.status()).git?.error != null, 'the refusal', 10_000);
    const st = await c.status();
    expect(st.git?.fetchedCommit).toBe(bad);
    expect(st.git?.appliedCommit).toBe(a);
    expect(st.git?.differ).toBe(true);
    expect(st.git?.error).toMatch(/^validation failed at env\/vms\.yaml:\d+:\d+: VirtualMachine\/vftest-gitw-vm1: spec\.vcpus/);
    expect(st.git?.summary).toMatch(new RegExp(`^fetched ${bad.slice(0, 7)}, applied ${a.slice(0, 7)}: validation failed at env/vms\\.yaml:`));
    expect(logs.some((l) => l.msg === 'git: fetched commit refused; nothing changed, the applied commit stays' && String(l.summary).includes('validation failed'))).toBe(true);
    expect(c.runCount).toBe(runs); // no run for a refused commit
    const m = parsePrometheus(await c.metrics.render());
    expect(sampleValue(m, 'virtform_git_fetches_total', { outcome: 'refused' })).toBeGreaterThanOrEqual(1);
    expect(sampleValue(m, 'virtform_git_fetched_differs')).toBe(1);
    expect(fx.host.domains.get(VM1)?.active).toBe(true);
    // Refused once, logged once (later fetches of the same commit are quiet).
    await new Promise((r) => setTimeout(r, INTERVAL * 3));
    expect(logs.filter((l) => l.msg === 'git: fetched commit refused; nothing changed, the applied commit stays').length).toBe(1);

    fx.host.domains.get(VM1)!.active = false; // "virsh destroy"
    c.trigger('resync');
    await waitFor(() => fx.host.domains.get(VM1)?.active === true, 'drift corrected from the applied commit');
    await c.idle();
    expect((await fx.store.revisions.latest())?.gitCommit).toBe(a);
    expect((await c.status()).manifests.valid).toBe(true);

    const fixed = repo.commit(files({ vm1State: 'stopped' }), { folder: 'env' });
    await waitFor(() => fx.host.domains.get(VM1)?.active === false, 'the fix to converge', 10_000);
    await c.idle();
    const after = await c.status();
    expect(after.git?.appliedCommit).toBe(fixed);
    expect(after.git?.error).toBeNull();
    const m2 = parsePrometheus(await c.metrics.render());
    expect(sampleValue(m2, 'virtform_git_fetched_differs')).toBe(0);
    expect(sampleValue(m2, 'virtform_git_fetches_total', { outcome: 'new' })).toBeGreaterThanOrEqual(2);
    expect(sampleValue(m2, 'virtform_triggers_total', { source: 'git' })).toBeGreaterThanOrEqual(1);
  });

  it('fetch failures are logged with backoff and shown in status; the watcher keeps going and recovers', async () => {
    repo.commit(files(), { folder: 'env' });
    const c = start();
    await c.start();
    await waitFor(() => c.ready, 'ready');
    renameSync(repo.bare, `${repo.bare}.away`);
    await waitFor(() => logs.filter((l) => l.msg === 'git fetch failed').length >= 3, 'three failed fetches', 10_000);
    const fails = logs.filter((l) => l.msg === 'git fetch failed');
    expect(fails.map((l) => l.attempt)).toEqual(expect.arrayContaining([1, 2, 3]));
    expect(Number(fails[2]!.retryInMs)).toBeGreaterThanOrEqual(Number(fails[0]!.retryInMs));
    const st = await c.status();
    expect(st.git?.fetchError).toBeTruthy();
    expect(st.git?.fetch?.failures).toBeGreaterThanOrEqual(3);
    expect(st.git?.summary).toMatch(/last fetch failed/);
    expect(c.ready).toBe(true);
    // drift correction goes on meanwhile
    fx.host.domains.get(VM1)!.active = false;
    c.trigger('resync');
    await waitFor(() => fx.host.domains.get(VM1)?.active === true, 'drift corrected while the remote is away');

    renameSync(`${repo.bare}.away`, repo.bare);
    const b = repo.commit(files({ vm1State: 'stopped' }), { folder: 'env' });
    await waitFor(() => fx.host.domains.get(VM1)?.active === false, 'the commit after the outage', 10_000);
    await c.idle();
    expect((await c.status()).git?.fetchError).toBeNull();
    expect((await c.status()).git?.appliedCommit).toBe(b);
    expect(logs.some((l) => l.msg === 'git fetch works again')).toBe(true);
  });

  it('restarts from the applied commit recorded in the DB even when the remote is unreachable', async () => {
    const a = repo.commit(files(), { folder: 'env' });
    let c = start();
    await c.start();
    await waitFor(() => c.ready, 'ready');
    await c.idle();
    await c.stop();
    renameSync(repo.bare, `${repo.bare}.away`);
    fx.host.domains.get(VM1)!.active = false; // drift while the watcher was down
    c = start();
    await c.start();
    await waitFor(() => c.ready, 'ready after restart');
    await c.idle();
    expect(fx.host.domains.get(VM1)?.active).toBe(true);
    const st = await c.status();
    expect(st.git?.appliedCommit).toBe(a);
    expect(st.git?.fetchError).toBeTruthy();
    expect((await fx.store.revisions.latest())?.gitCommit).toBe(a);
  });

  it('a Volume source relative to its manifest keeps its path from commit to commit (no replace)', async () => {
    const img = 'x'.repeat(4096);
    const withImage = (memory: string): Record<string, string> => ({
      ...files({ vm1Memory: memory }),
      'images/seed.raw': img,
      'image.yaml': `apiVersion: virtform.dev/v1\nkind: Volume\nmetadata: {name: ${P}-img}\nspec: {pool: ${P}-pool, capacity: 1MiB, format: raw, source: images/seed.raw}\n`,
    });
    repo.commit(withImage('64MiB'), { folder: 'env' });
    const c = start();
    await c.start();
    await waitFor(() => c.ready, 'ready');
    await c.idle();
    expect(c.lastRun?.outcome).toBe('succeeded');
    // A local source is identified by its content, not its path (the checkout path is no identity).
    const details = (await fx.store.resources.get('Volume', `${P}-img`))?.details as { config?: { sourceSha256?: string } } | undefined;
    expect(details?.config?.sourceSha256).toBe(createHash('sha256').update(img).digest('hex'));
    repo.commit(withImage('96MiB'), { folder: 'env' });
    await waitFor(async () => (await c.status()).git?.appliedCommit === repo.head(), 'the second commit applied', 10_000);
    await c.idle();
    expect(c.lastRun?.plan?.replace).toBe(0);
    c.trigger('resync');
    await waitFor(() => c.lastRun?.sources.includes('resync') === true, 'the resync run');
    await c.idle();
    expect(c.lastRun?.plan?.noop).toBe(true);
  });

  it('stop() kills a fetch that hangs instead of waiting for its timeout', async () => {
    const sockets: Socket[] = [];
    const srv = createServer((sock) => void sockets.push(sock)); // accepts, never answers
    await new Promise<void>((r) => srv.listen(0, '127.0.0.1', () => r()));
    const port = (srv.address() as { port: number }).port;
    try {
      const sync = new GitSync(new GitRepository({ url: `git://127.0.0.1:${port}/hang.git`, ref: { kind: 'default' }, path: '' }, { cacheRoot: join(fx.work, 'git') }), fx.store);
      const s = new GitRepositorySource({ sync, intervalMs: 60_000 });
      await sync.restore();
      const poll = s.pollNow();
      await waitFor(() => sockets.length > 0, 'git to connect');
      const t0 = Date.now();
      await s.stop();
      await poll;
      expect(Date.now() - t0).toBeLessThan(2000);
      expect(sync.status().fetchError).toBeNull(); // a stop is not recorded as a fetch failure
    } finally {
      for (const k of sockets) k.destroy();
      srv.close();
    }
  });

  it('with no valid commit at all, nothing is applied and status says why', async () => {
    repo.commit({ 'vms.yaml': 'apiVersion: virtform.dev/v1\nkind: VirtualMachine\n' }, { folder: 'env' });
    const c = start();
    await c.start();
    await waitFor(() => c.lastRun !== undefined, 'a run');
    await c.idle();
    expect(c.lastRun?.outcome).toBe('invalid');
    const st = await c.status();
    expect(st.git?.appliedCommit).toBeNull();
    expect(st.git?.error).toMatch(/validation failed at env\/vms\.yaml/);
    expect(st.manifests.errors.join('\n')).toMatch(/no valid commit of .* to apply yet/);
    expect(fx.host.domains.size).toBe(0);
  });
});
