/**
 * Dashboard data made up for the page tests and the page bench: N resources over a few hosts, with
 * conditions, labels, and a `PageSource` that filters, sorts and pages them like the API does. A
 * test server (`startFixtureServer`) serves the pages and assets with the watcher's security
 * headers, and an event stream the test drives (`emit`), so the script's patching is tested
 * without a controller. The real controller's pages are tested in dashboard.test.ts.
 */
import { readFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { CONDITION_TYPES, type Condition, type ConditionType } from '../../src/model/conditions.js';
import type {
  AttentionList, Overview, PlanView, ResourceDetail, ResourceItem, ResourcePage, ResourceQuery, RunDetail, RunPage, SnapshotEvent, SortField,
} from '../../src/dashboard/types.js';
import { isPagePath, renderPage, type PageSource } from '../../src/dashboard/pages/index.js';
import { ROOT } from '../support/cli.js';
import { SECURITY_HEADERS } from '../../src/watch/http.js';

const KINDS = ['StoragePool', 'Volume', 'Network', 'VirtualMachine'];
const T0 = '2026-12-07T09:00:00.000Z';

function conditions(state: string): Condition[] {
  return CONDITION_TYPES.slice(0, 7).map((type) => ({
    type, status: (type === 'Ready' ? state === 'Ready' : type === state) ? 'True' : 'False',
    reason: type === state ? (state === 'Ready' ? 'Converged' : `${state}Reason`) : 'Idle', message: type === state ? `${type} message` : 'no', lastTransitionTime: T0,
  }));
}

export function makeItems(n: number, hosts = ['h1', 'h2', 'h3']): ResourceItem[] {
  const out: ResourceItem[] = [];
  for (let i = 0; i < n; i++) {
    const kind = KINDS[i % 4]!;
    const host = hosts[i % hosts.length]!;
    const name = `res-${String(i).padStart(5, '0')}`;
    const state = i % 50 === 7 ? 'Drifted' : i % 97 === 3 ? 'Stalled' : 'Ready';
    out.push({
      key: `${host}/${kind}/${name}`, kind, name, host, status: state as ResourceItem['status'], reason: state === 'Ready' ? null : `why ${name} is ${state}`,
      desired: kind === KINDS[3] ? 'running' : 'present', observed: state === 'Drifted' ? 'stopped' : kind === KINDS[3] ? 'running' : 'present',
      conditions: conditions(state), labels: { tier: i % 3 === 0 ? 'web' : 'db', team: `t${i % 5}` }, updatedAt: T0,
    });
  }
  return out;
}

export const DEFAULTS = { sort: 'name' as SortField, order: 'asc' as const, pageSize: 50 };

export class FixtureSource implements PageSource {
  seq = 1;
  readonly resourceDefaults = DEFAULTS;
  constructor(public items: ResourceItem[]) {}

  set(key: string, state: ResourceItem['status']): void {
    const it = this.items.find((i) => i.key === key);
    if (!it) throw new Error(`no ${key}`);
    it.status = state;
    it.reason = state === 'Ready' ? null : `now ${state}`;
    it.conditions = conditions(state);
    this.seq++;
  }

  overview(): Overview {
    const counts = Object.fromEntries(CONDITION_TYPES.map((t) => [t, this.items.filter((i) => i.conditions.some((c) => c.type === t && c.status === 'True')).length])) as Record<ConditionType, number>;
    const hosts = [...new Set(this.items.map((i) => i.host))];
    return {
      generatedAt: T0, seq: this.seq, running: false, suspended: false, manifestErrors: [], total: this.items.length, counts,
      revision: { applied: { commit: 'a'.repeat(40), author: 'Ada <ada@example.invalid>', message: 'vms: more memory', time: T0 }, fetched: { commit: 'a'.repeat(40), author: null, message: null, time: null } },
      lastRun: { id: '42', outcome: 'succeeded', durationMs: 1234, finishedAt: T0 },
      hosts: hosts.map((h, i) => ({ id: h, uri: `qemu+tcp://10.0.0.${i + 1}/system`, connected: true, memory: { used: (i + 2) * 2 ** 30, total: 16 * 2 ** 30 }, vcpus: { used: 3 + i, total: 8 }, disk: [{ pool: 'default', used: 40 * 2 ** 30, total: 100 * 2 ** 30 }], vms: 3 })),
    };
  }

  parseResourceQuery(p: URLSearchParams): ResourceQuery {
    const sort = (p.get('sort') || 'name') as SortField;
    if (!['name', 'kind', 'host', 'status'].includes(sort)) throw new Error(`sort: ${JSON.stringify(sort)} is not one of name, kind, host, status`);
    const order = (p.get('order') || 'asc') as 'asc' | 'desc';
    const label = p.get('label');
    return {
      ...(p.get('kind') ? { kind: p.get('kind')! } : {}), ...(p.get('host') ? { host: p.get('host')! } : {}),
      ...(label ? { label: label.split(',') } : {}), ...(p.get('condition') ? { condition: p.get('condition') as ConditionType } : {}),
      ...(p.get('q') ? { q: p.get('q')! } : {}), sort, order, page: Number(p.get('page') || 1), pageSize: Number(p.get('pageSize') || DEFAULTS.pageSize),
    };
  }

  resources(q: ResourceQuery): ResourcePage {
    const match = this.items.filter((i) => (!q.kind || i.kind === q.kind) && (!q.host || i.host === q.host)
      && (!q.condition || i.conditions.some((c) => c.type === q.condition && c.status === 'True'))
      && (!q.label || q.label.every((l) => { const [k, v] = l.split('='); return v === undefined ? k! in i.labels : i.labels[k!] === v; }))
      && (!q.q || i.key.toLowerCase().includes(q.q.toLowerCase())));
    const dir = q.order === 'asc' ? 1 : -1;
    match.sort((a, b) => dir * (String(a[q.sort]).localeCompare(String(b[q.sort])) || a.key.localeCompare(b.key)));
    const facet = (f: (i: ResourceItem) => string[]): { value: string; count: number }[] => {
      const m = new Map<string, number>();
      for (const i of this.items) for (const v of f(i)) m.set(v, (m.get(v) ?? 0) + 1);
      return [...m].sort().map(([value, count]) => ({ value, count }));
    };
    return {
      seq: this.seq, total: match.length, page: q.page, pageSize: q.pageSize, items: match.slice((q.page - 1) * q.pageSize, q.page * q.pageSize),
      facets: {
        kinds: facet((i) => [i.kind]), hosts: facet((i) => [i.host]),
        conditions: facet((i) => i.conditions.filter((c) => c.status === 'True').map((c) => c.type)) as { value: ConditionType; count: number }[],
        labels: facet((i) => Object.entries(i.labels).map(([k, v]) => `${k}=${v}`)),
      },
    };
  }

  resource(key: string): ResourceDetail | undefined {
    const item = this.items.find((i) => i.key === key);
    if (!item) return undefined;
    return {
      seq: this.seq, item, manifest: { file: 'env/vms.yaml', line: 12, col: 3 }, desired: { memory: 268435456, userData: '[redacted: 120 bytes, sha256 0123456789ab]' }, observed: { memory: 134217728 },
      fields: [{ path: 'spec.memory', desired: 268435456, observed: 134217728, differs: true }, { path: 'spec.vcpus', desired: 1, observed: 1, differs: false }],
      conditions: item.conditions, addresses: [{ mac: '52:54:00:01:02:03', network: 'net', addresses: ['10.1.2.3'] }],
      journal: [{ id: 1, runId: '42', op: 'vm.define', status: 'done', startedAt: T0, finishedAt: T0, error: null }],
      events: [{ time: T0, type: 'Changed', message: 'memory 128 MiB → 256 MiB <b>not bold</b>' }],
    };
  }

  plan(): PlanView {
    return { runId: '42', time: T0, text: '~ VirtualMachine/res-00003  spec.memory 128 MiB → 256 MiB [restart]\n+ Volume/res-00001\nPlan: 1 to create, 1 to change.', steps: [] };
  }

  runs(page: number, pageSize: number): RunPage {
    const items = Array.from({ length: 3 }, (_, i) => ({
      id: String(42 - i), startedAt: T0, finishedAt: T0, trigger: 'git', outcome: i === 1 ? 'failed' : 'succeeded', durationMs: 1000 + i, commit: 'a'.repeat(40), revisionId: 7,
      counts: { create: i, change: 1, replace: 0, delete: 0, conflict: 0, steps: 2, held: 0, failed: i === 1 ? 1 : 0 },
    }));
    return { total: 3, page, pageSize, retention: 500, items };
  }

  run(id: string): RunDetail | undefined {
    const s = this.runs(1, 50).items.find((r) => r.id === id);
    if (!s) return undefined;
    return { ...s, commitInfo: { commit: 'a'.repeat(40), author: 'Ada', message: 'vms: more memory', time: T0 },
      failures: s.outcome === 'failed' ? [{ resource: this.items[3]?.key ?? 'x', error: 'libvirt: domain not found', code: 'VIR_ERR_NO_DOMAIN' }] : [],
      steps: [{ kind: 'Volume', name: 'res-00001', host: 'h2', op: 'volume.create', ms: 321, outcome: 'succeeded' }] };
  }

  attention(): AttentionList {
    const items = this.items.filter((i) => i.status !== 'Ready').map((i) => ({
      key: i.key, kind: i.kind, name: i.name, host: i.host, condition: i.status as ConditionType, reason: `${i.status}Reason`, message: i.reason ?? '', since: T0,
      action: i.status === 'Stalled' ? 'fix the manifest' : 'virtform reconcile',
    }));
    return { seq: this.seq, total: items.length, items };
  }
}

export interface FixtureServer {
  url: string;
  src: FixtureSource;
  /** Sends a snapshot event to every connected page. */
  emit(ev: Omit<SnapshotEvent, 'seq' | 'statuses'>): void;
  clients(): number;
  close(): Promise<void>;
}

export async function startFixtureServer(src: FixtureSource): Promise<FixtureServer> {
  const streams = new Set<ServerResponse>();
  const asset = (name: string): string => readFileSync(join(ROOT, 'src/dashboard/assets', name), 'utf8');
  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const u = new URL(req.url ?? '/', 'http://x');
    const send = (status: number, type: string, body: string): void => {
      res.writeHead(status, { 'content-type': type, 'cache-control': 'no-store', ...SECURITY_HEADERS });
      res.end(body);
    };
    if (u.pathname === '/api/v1/events') {
      res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-store', ...SECURITY_HEADERS });
      res.write(': hello\n\n');
      streams.add(res);
      req.on('close', () => streams.delete(res));
      return;
    }
    if (u.pathname === '/assets/app.js') return send(200, 'text/javascript; charset=utf-8', asset('app.js'));
    if (u.pathname === '/assets/app.css') return send(200, 'text/css; charset=utf-8', asset('app.css'));
    if (isPagePath(u.pathname)) {
      renderPage(u.pathname, u.searchParams, src).then((p) => send(p.status, p.contentType, p.body), (e: unknown) => send(500, 'text/plain', String(e)));
      return;
    }
    send(404, 'text/plain', 'not found');
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as AddressInfo).port;
  return {
    url: `http://127.0.0.1:${port}`,
    src,
    emit(ev) {
      const statuses = Object.fromEntries(ev.changedKeys.map((k) => [k, src.items.find((i) => i.key === k)?.status ?? 'absent']));
      const data = JSON.stringify({ seq: src.seq, ...ev, statuses });
      for (const s of streams) s.write(`event: snapshot\ndata: ${data}\n\n`);
    },
    clients: () => streams.size,
    close: () => new Promise<void>((r) => {
      for (const s of streams) s.end();
      server.close(() => r());
      server.closeAllConnections();
    }),
  };
}
