/**
 * The overview's revision (issue 23): a fetched commit's author, message and commit time are
 * recorded in the state DB (`git_commits`, migration 0014) when it is fetched, and the dashboard
 * shows them for the applied and the fetched commit; the run history names each run's commit.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { join } from 'node:path';
import { labManifests } from '../../support/manifests.js';
import { TestRepo } from '../../support/git.js';
import { FAST_RETRY, useHarness } from '../../support/harness.js';
import { GitRepository, GitSync } from '../../../src/git/index.js';
import { GitRepositorySource, WatchController, startStatusServer, type StatusServer } from '../../../src/watch/index.js';
import { dashboardFor } from '../../../src/cli/http-options.js';
import type { Dashboard } from '../../../src/dashboard/data.js';
import type { Overview, RunDetail, RunPage } from '../../../src/dashboard/types.js';
import { waitFor } from '../watch/helpers.js';

const P = 'vftest-dashgit';
const fx = useHarness({ dirPrefix: 'vftest-dashgit-' });
let controller: WatchController | undefined;
let server: StatusServer | undefined;
let dashboard: Dashboard | undefined;

afterEach(async () => {
  await server?.close();
  dashboard?.close();
  await controller?.stop();
  server = controller = dashboard = undefined;
});

describe('commit metadata', () => {
  it('records author, message and time of a fetched commit; the overview and the history show them', async () => {
    const repo = new TestRepo(join(fx.work, 'repo'));
    const files = labManifests({ prefix: P, poolPath: '/srv/pools/dashgit', withVm2: false });
    const a = repo.commit(files, { folder: 'env', message: 'first: the lab\n\nwith a body line' });
    const sync = new GitSync(new GitRepository({ url: repo.url, ref: { kind: 'branch', name: 'main' }, path: 'env' }, { cacheRoot: join(fx.work, 'git') }), fx.store);
    const source = new GitRepositorySource({ sync, intervalMs: 100 });
    controller = new WatchController({ dir: '', git: source, store: fx.store, connect: async () => fx.host, resyncMs: 0, gracefulStop: false, retry: FAST_RETRY });
    dashboard = dashboardFor(controller, fx.store, 500);
    server = await startStatusServer(controller, { host: '127.0.0.1', port: 0 }, undefined, { dashboard });
    await controller.start();
    await waitFor(() => controller!.ready, 'the first run');
    await controller.idle();
    const [rec] = await fx.store.gitCommits.getMany([a]);
    expect(rec).toMatchObject({ sha: a, author: 'vftest <vftest@example.invalid>', message: 'first: the lab\n\nwith a body line' });
    expect(Date.parse(rec!.committedAt)).toBeGreaterThan(Date.now() - 600_000);

    const b = repo.commit({ ...files, 'vms.yaml': files['vms.yaml']!.replace('vcpus: 1', 'vcpus: 2') }, { folder: 'env', message: 'second: two vCPUs' });
    await waitFor(async () => (await controller!.status()).git?.appliedCommit === b, 'the second commit applied', 10_000);
    await controller.idle();
    await dashboard.refresh();
    const ov = (await (await fetch(`http://127.0.0.1:${server.port}/api/v1/overview`)).json()) as Overview;
    expect(ov.revision.applied).toMatchObject({ commit: b, author: 'vftest <vftest@example.invalid>', message: 'second: two vCPUs', time: expect.stringMatching(/^\d{4}-\d\d-\d\dT/) });
    expect(ov.revision.fetched).toMatchObject({ commit: b, message: 'second: two vCPUs' });
    const runs = (await (await fetch(`http://127.0.0.1:${server.port}/api/v1/runs`)).json()) as RunPage;
    expect(runs.items.map((r) => r.commit)).toEqual([b, a]);
    const run = (await (await fetch(`http://127.0.0.1:${server.port}/api/v1/runs/${runs.items[1]!.id}`)).json()) as RunDetail;
    expect(run.commitInfo).toMatchObject({ commit: a, message: 'first: the lab\n\nwith a body line' });
  });
});
