/**
 * The pages' data from the controller's dashboard (../data.ts): the same answers as the JSON API
 * (../api.ts), from the same cached snapshot, without the HTTP round trip.
 */
import type { Dashboard } from '../data.js';
import { detail, parseResourceQuery, planView, queryResources, runSummary } from '../api.js';
import { DEFAULT_PAGE_SIZE, type AttentionList, type CommitInfo, type RunDetail, type RunPage } from '../types.js';
import type { PageSource } from './index.js';

export function dashboardSource(d: Dashboard): PageSource {
  return {
    resourceDefaults: { sort: 'name', order: 'asc', pageSize: DEFAULT_PAGE_SIZE },
    parseResourceQuery,
    overview: async () => (await d.snapshot()).overview,
    resources: async (q) => queryResources(await d.snapshot(), q),
    resource: async (key) => detail(d, await d.snapshot(), key),
    plan: async () => planView(d, await d.snapshot()),
    attention: async (): Promise<AttentionList> => {
      const s = await d.snapshot();
      return { seq: s.seq, total: s.attention.length, items: [...s.attention] };
    },
    runs: async (page, pageSize): Promise<RunPage> => {
      const got = d.store.runs ? await d.store.runs.page((page - 1) * pageSize, pageSize) : { total: 0, items: [] };
      return { total: got.total, page, pageSize, retention: d.historyRuns, items: got.items.map(runSummary) };
    },
    run: async (id): Promise<RunDetail | undefined> => {
      const r = await d.store.runs?.get(id);
      if (!r) return undefined;
      let commitInfo: CommitInfo | null = null;
      if (r.gitCommit) {
        const [c] = (await d.store.gitCommits?.getMany([r.gitCommit])) ?? [];
        commitInfo = c ? { commit: c.sha, author: c.author, message: c.message, time: c.committedAt } : { commit: r.gitCommit, author: null, message: null, time: null };
      }
      return { ...runSummary(r), commitInfo, failures: r.failures, steps: r.steps };
    },
  };
}
