/**
 * The pages' data from the controller's dashboard (../data.ts): the same answers as the JSON API
 * (../api.ts), from the same cached snapshot, without the HTTP round trip.
 */
import type { Dashboard } from '../data.js';
import { detail, parseResourceQuery, planView, queryResources, runSummary } from '../api.js';
import {
  DEFAULT_PAGE_SIZE,
  type AttentionList, type CommitInfo, type Overview, type PlanView, type ResourceDetail, type ResourcePage, type ResourceQuery, type RunDetail, type RunPage, type SortField,
} from '../types.js';

type MaybePromise<T> = T | Promise<T>;

/** What the pages read: the JSON API's answers (src/dashboard/api.ts), without the HTTP. */
export interface PageSource {
  overview(): MaybePromise<Overview>;
  /** Throws `BadQuery` (its message shown, status 400) for a bad parameter. */
  parseResourceQuery(params: URLSearchParams): ResourceQuery;
  resources(q: ResourceQuery): MaybePromise<ResourcePage>;
  resource(key: string): MaybePromise<ResourceDetail | undefined>;
  plan(): MaybePromise<PlanView>;
  runs(page: number, pageSize: number): MaybePromise<RunPage>;
  run(id: string): MaybePromise<RunDetail | undefined>;
  attention(): MaybePromise<AttentionList>;
  /** The defaults of the resources query (links leave them out). */
  readonly resourceDefaults: { sort: SortField; order: 'asc' | 'desc'; pageSize: number };
}


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
