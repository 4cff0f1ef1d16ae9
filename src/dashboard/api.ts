/**
 * The JSON API under `/api/v1` (contract: ./types.ts). Every answer comes from the current
 * snapshot (./data.ts); the resource list is filtered, sorted and paged here, on the server, and
 * the answer to one query is cached with its snapshot (N viewers of the same page: one
 * computation). The detail view and the history read the state DB (journal, events, runs): per
 * request, bounded (50 rows, one page).
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { isConditionType, type ConditionType } from '../model/conditions.js';
import { parseResourceKey } from '../model/kinds.js';
import { desiredView, flatten, type Dashboard, type DashboardSnapshot, type SnapshotResource } from './data.js';
import { redact } from './redact.js';
import {
  API_PREFIX, DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE,
  type AttentionList, type CommitInfo, type FieldRow, type PlanStepView, type PlanView, type ResourceDetail, type ResourcePage, type ResourceQuery,
  type RunDetail, type RunPage, type RunSummary, type SortField,
} from './types.js';
import type { RunRecord } from '../state/index.js';

export class BadRequest extends Error {}

const SORTS: readonly SortField[] = ['name', 'kind', 'host', 'status'];

/** Parse the query of `/api/v1/resources`; bad values throw BadRequest (400) naming the parameter. */
export function parseResourceQuery(params: URLSearchParams): ResourceQuery {
  const known = new Set(['kind', 'host', 'label', 'condition', 'q', 'sort', 'order', 'page', 'pageSize']);
  for (const k of params.keys()) if (!known.has(k)) throw new BadRequest(`unknown parameter ${JSON.stringify(k)} (known: ${[...known].join(', ')})`);
  const int = (name: string, def: number, min: number, max: number): number => {
    const v = params.get(name);
    if (v === null || v === '') return def;
    if (!/^\d+$/.test(v) || Number(v) < min || Number(v) > max) throw new BadRequest(`${name} must be a whole number from ${min} to ${max}, not ${JSON.stringify(v)}`);
    return Number(v);
  };
  const sort = params.get('sort') || 'name';
  if (!(SORTS as readonly string[]).includes(sort)) throw new BadRequest(`sort must be one of ${SORTS.join(', ')}, not ${JSON.stringify(sort)}`);
  const order = params.get('order') || 'asc';
  if (order !== 'asc' && order !== 'desc') throw new BadRequest(`order must be asc or desc, not ${JSON.stringify(order)}`);
  const condition = params.get('condition') || undefined;
  if (condition !== undefined && !isConditionType(condition)) throw new BadRequest(`condition must be a condition type (Ready, Reconciling, Stalled, …), not ${JSON.stringify(condition)}`);
  const labels = params.getAll('label').filter((l) => l !== '');
  for (const l of labels) if (l.startsWith('=')) throw new BadRequest(`label must be k=v or k, not ${JSON.stringify(l)}`);
  const q: ResourceQuery = { sort: sort as SortField, order, page: int('page', 1, 1, 1_000_000), pageSize: int('pageSize', DEFAULT_PAGE_SIZE, 1, MAX_PAGE_SIZE) };
  const kind = params.get('kind');
  if (kind) q.kind = kind;
  const host = params.get('host');
  if (host) q.host = host;
  if (labels.length > 0) q.label = labels;
  if (condition) q.condition = condition as ConditionType;
  const text = params.get('q');
  if (text) q.q = text.slice(0, 200).toLowerCase();
  return q;
}

const STATUS_RANK: Record<string, number> = {
  HostUnreachable: 0, Stalled: 1, HeldForDataLoss: 2, Unschedulable: 3, Reconciling: 4, Drifted: 5, RestartRequired: 6, NotReady: 7, Suspended: 8, Ready: 9,
};

function matches(r: SnapshotResource, q: ResourceQuery): boolean {
  const it = r.item;
  if (q.kind !== undefined && it.kind !== q.kind) return false;
  if (q.host !== undefined && it.host !== q.host) return false;
  if (q.condition !== undefined && !it.conditions.some((c) => c.type === q.condition && c.status === 'True')) return false;
  for (const l of q.label ?? []) {
    const i = l.indexOf('=');
    if (i < 0 ? !(l in it.labels) : it.labels[l.slice(0, i)] !== l.slice(i + 1)) return false;
  }
  if (q.q !== undefined && !r.haystack.includes(q.q)) return false;
  return true;
}

function facetsOf(s: DashboardSnapshot): ResourcePage['facets'] {
  const hit = s.cache.get('facets') as ResourcePage['facets'] | undefined;
  if (hit) return hit;
  const count = (m: Map<string, number>, v: string): void => void m.set(v, (m.get(v) ?? 0) + 1);
  const kinds = new Map<string, number>();
  const hosts = new Map<string, number>();
  const conds = new Map<string, number>();
  const labels = new Map<string, number>();
  for (const r of s.resources) {
    count(kinds, r.item.kind);
    count(hosts, r.item.host);
    for (const c of r.item.conditions) if (c.status === 'True') count(conds, c.type);
    for (const [k, v] of Object.entries(r.item.labels)) count(labels, `${k}=${v}`);
  }
  const list = <T extends string>(m: Map<string, number>): { value: T; count: number }[] =>
    [...m].sort((a, b) => (a[0] < b[0] ? -1 : 1)).map(([value, c]) => ({ value: value as T, count: c }));
  const facets = { kinds: list(kinds), hosts: list(hosts), conditions: list<ConditionType>(conds), labels: list(labels) };
  s.cache.set('facets', facets);
  return facets;
}

/** Filter, sort and page the snapshot's resources (pure). */
export function queryResources(s: DashboardSnapshot, q: ResourceQuery): ResourcePage {
  const key = `resources:${JSON.stringify(q)}`;
  const hit = s.cache.get(key) as ResourcePage | undefined;
  if (hit) return hit;
  const rows = s.resources.filter((r) => matches(r, q));
  const dir = q.order === 'desc' ? -1 : 1;
  const by = (a: SnapshotResource, b: SnapshotResource): number => {
    const x = a.item;
    const y = b.item;
    let c = 0;
    if (q.sort === 'kind') c = x.kind.localeCompare(y.kind);
    else if (q.sort === 'host') c = x.host.localeCompare(y.host);
    else if (q.sort === 'status') c = (STATUS_RANK[x.status] ?? 99) - (STATUS_RANK[y.status] ?? 99);
    if (c === 0) c = x.name.localeCompare(y.name);
    if (c === 0) c = x.key < y.key ? -1 : x.key > y.key ? 1 : 0;
    return c * dir;
  };
  rows.sort(by);
  const start = (q.page - 1) * q.pageSize;
  const page: ResourcePage = {
    seq: s.seq, total: rows.length, page: q.page, pageSize: q.pageSize,
    items: rows.slice(start, start + q.pageSize).map((r) => r.item), facets: facetsOf(s),
  };
  // Bounded: a snapshot caches at most 64 distinct queries.
  if (s.cache.size < 64) s.cache.set(key, page);
  return page;
}

/** Field rows of the detail view: the desired config against what the last apply recorded, with the last plan's field changes (the host's values) over it. */
export function fieldRows(s: DashboardSnapshot, r: SnapshotResource, recordedConfig: unknown): FieldRow[] {
  const desired = flatten(redact(r.desired?.config ?? null));
  const observed = flatten(redact(recordedConfig ?? null));
  const change = s.plan?.plan.changes.find((c) => c.key === r.item.key);
  const planned = new Map<string, unknown>();
  for (const f of change?.fields ?? []) planned.set(f.field, redact({ v: f.before }) as { v: unknown });
  const rows: FieldRow[] = [];
  const paths = [...new Set([...desired.keys(), ...observed.keys()])].filter((p) => p !== '');
  for (const path of paths) {
    const d = desired.get(path);
    const o = observed.get(path);
    rows.push({ path, desired: d ?? null, observed: o ?? null, differs: JSON.stringify(d) !== JSON.stringify(o) });
  }
  for (const f of change?.fields ?? []) {
    rows.push({ path: `plan: ${f.field}`, desired: (redact({ v: f.after }) as { v: unknown }).v ?? null, observed: (planned.get(f.field) as { v: unknown } | undefined)?.v ?? null, differs: true });
  }
  return rows;
}

export async function detail(d: Dashboard, s: DashboardSnapshot, key: string): Promise<ResourceDetail | undefined> {
  const r = s.byKey.get(key);
  if (!r) return undefined;
  const ref = parseResourceKey(key);
  const [record, journal, events] = await Promise.all([
    d.store.resources.get(ref),
    d.store.journal.forResource(ref, 50),
    d.store.events.forResource ? d.store.events.forResource(ref, 50) : Promise.resolve([]),
  ]);
  const src = r.desired?.source;
  return {
    seq: s.seq,
    item: r.item,
    manifest: src ? { file: src.file, line: src.line, col: src.col } : null,
    desired: desiredView(r),
    observed: redact({ status: r.row.observed, recordedStatus: r.row.recordedStatus, lastError: r.row.lastError, config: record?.details.config ?? null, facts: record?.details.facts ?? null }),
    fields: fieldRows(s, r, record?.details.config),
    conditions: r.item.conditions,
    addresses: r.item.addresses ?? [],
    journal: journal.map((j) => ({ id: j.id, runId: j.runId, op: j.action, status: j.status, startedAt: j.startedAt, finishedAt: j.finishedAt, error: j.error })),
    events: events.map((e) => ({ time: e.at, type: e.level, message: e.message })),
  };
}

export function planView(d: Dashboard, s: DashboardSnapshot): PlanView {
  const hit = s.cache.get('plan') as PlanView | undefined;
  if (hit) return hit;
  const p = s.plan;
  const view: PlanView = p
    ? {
      runId: p.runId, time: p.time, text: d.planText(p.plan),
      steps: p.plan.steps.map((st): PlanStepView => ({
        key: st.key, op: st.op.op, label: (st.op as { label?: string }).label ?? st.op.op,
        marks: [...new Set(st.change.fields.map((f) => f.effect).filter((x): x is NonNullable<typeof x> => !!x)), ...(st.change.action === 'replace' ? ['replace'] : [])],
        reason: st.change.reason,
      })),
    }
    : { runId: null, time: null, text: '', steps: [] };
  s.cache.set('plan', view);
  return view;
}

export function runSummary(r: RunRecord): RunSummary {
  const c = r.counts;
  const n = (k: string): number => (typeof c[k] === 'number' ? c[k]! : 0);
  return {
    id: r.id, startedAt: r.startedAt, finishedAt: r.finishedAt, trigger: r.trigger, outcome: r.outcome, durationMs: r.durationMs,
    commit: r.gitCommit, revisionId: r.revisionId,
    counts: { create: n('create'), change: n('change'), replace: n('replace'), delete: n('delete'), conflict: n('conflict'), steps: n('steps'), held: n('held'), failed: n('failed') },
  };
}

export type Send = (code: number, type: string, body: string, headers?: Record<string, string>) => void;

/**
 * Route one `/api/v1/*` GET (auth already checked by the listener). Returns false when the path is
 * not an API path (the listener answers 404).
 */
export async function handleApi(d: Dashboard, req: IncomingMessage, res: ServerResponse, url: URL, send: Send, headers: Record<string, string>): Promise<boolean> {
  const path = url.pathname;
  if (!path.startsWith(`${API_PREFIX}/`)) return false;
  const sub = path.slice(API_PREFIX.length);
  const json = (code: number, body: unknown): void => send(code, 'application/json; charset=utf-8', `${JSON.stringify(body)}\n`);
  /** An answer computed from the snapshot alone: serialized once per snapshot (at most 64 distinct ones). */
  const cached = (s: DashboardSnapshot, key: string, make: () => unknown): void => {
    const k = `json:${key}`;
    let text = s.cache.get(k) as string | undefined;
    if (text === undefined) {
      text = `${JSON.stringify(make())}\n`;
      if (s.cache.size < 128) s.cache.set(k, text);
    }
    send(200, 'application/json; charset=utf-8', text);
  };
  try {
    if (sub === '/events') {
      await d.snapshot();
      d.events.open(req, res, headers);
      return true;
    }
    const s = await d.snapshot();
    if (sub === '/overview') return (cached(s, 'overview', () => s.overview), true);
    if (sub === '/resources') {
      const q = parseResourceQuery(url.searchParams);
      return (cached(s, `resources:${JSON.stringify(q)}`, () => queryResources(s, q)), true);
    }
    if (sub.startsWith('/resources/')) {
      let key: string;
      try {
        key = decodeURIComponent(sub.slice('/resources/'.length));
      } catch { // safe-catch: answered 400 below
        throw new BadRequest('the resource key is not valid URL encoding');
      }
      const body = await detail(d, s, key);
      if (!body) return (json(404, { error: `no resource ${JSON.stringify(key)} (keys: Kind/name, host/Kind/name; URL-encode the slashes)` }), true);
      return (json(200, body), true);
    }
    if (sub === '/plan') return (cached(s, 'plan', () => planView(d, s)), true);
    if (sub === '/attention') {
      return (cached(s, 'attention', (): AttentionList => ({ seq: s.seq, total: s.attention.length, items: [...s.attention] })), true);
    }
    if (sub === '/runs') {
      const page = Number(url.searchParams.get('page') ?? '1');
      const pageSize = Number(url.searchParams.get('pageSize') ?? '50');
      if (!Number.isInteger(page) || page < 1) throw new BadRequest('page must be a whole number ≥ 1');
      if (!Number.isInteger(pageSize) || pageSize < 1 || pageSize > MAX_PAGE_SIZE) throw new BadRequest(`pageSize must be a whole number from 1 to ${MAX_PAGE_SIZE}`);
      const runs = d.store.runs;
      const got = runs ? await runs.page((page - 1) * pageSize, pageSize) : { total: 0, items: [] };
      const body: RunPage = { total: got.total, page, pageSize, retention: d.historyRuns, items: got.items.map(runSummary) };
      return (json(200, body), true);
    }
    if (sub.startsWith('/runs/')) {
      const id = decodeURIComponent(sub.slice('/runs/'.length));
      const r = await d.store.runs?.get(id);
      if (!r) return (json(404, { error: `no run ${JSON.stringify(id)} (it may be older than the last ${d.historyRuns} runs kept)` }), true);
      let commitInfo: CommitInfo | null = null;
      if (r.gitCommit) {
        const [c] = (await d.store.gitCommits?.getMany([r.gitCommit])) ?? [];
        commitInfo = c ? { commit: c.sha, author: c.author, message: c.message, time: c.committedAt } : { commit: r.gitCommit, author: null, message: null, time: null };
      }
      const body: RunDetail = { ...runSummary(r), commitInfo, failures: r.failures, steps: r.steps };
      return (json(200, body), true);
    }
    json(404, { error: `not found: ${sub} (try ${API_PREFIX}/overview, /resources, /plan, /runs, /attention, /events)` });
    return true;
  } catch (e) {
    if (e instanceof BadRequest) json(400, { error: e.message });
    else if (e instanceof Error && e.message.startsWith('no dashboard data yet')) send(503, 'application/json; charset=utf-8', `${JSON.stringify({ error: e.message })}\n`, { 'retry-after': '2' });
    else json(500, { error: e instanceof Error ? e.message : String(e) });
    return true;
  }
}
