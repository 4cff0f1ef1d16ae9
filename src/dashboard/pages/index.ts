/**
 * The dashboard's HTML pages (issue 23): `GET /`, `/resources`, `/resources/{key}`, `/plan`,
 * `/history`, `/history/{id}`, `/attention`, `/login`. Server-rendered from the same data the JSON
 * API answers (`PageSource`, over the one cached snapshot), so a page costs what one API call costs.
 * `?fragment=1` answers the content of `<main>` alone: the script (`/assets/app.js`) fetches it on
 * each snapshot event and patches the regions (`[data-live-region]`) and table rows (`data-key`)
 * that changed.
 */
import type { ResourceQuery, RunDetail } from '../types.js';
import { toHtml, type SafeHtml } from './html.js';
import { layout, type LayoutOptions, type Section } from './layout.js';
import { overviewMain } from './overview.js';
import { resourcesMain } from './resources.js';
import { resourceMain } from './resource.js';
import { planMain } from './plan.js';
import { historyMain, runMain } from './history.js';
import { attentionMain } from './attention.js';
import { errorMain, loginMain } from './login.js';
import { asset, isAssetPath } from './assets.js';
import { dashboardSource, type PageSource } from './source.js';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Dashboard } from '../data.js';

export type { PageSource } from './source.js';

export interface PageResponse {
  status: number;
  contentType: string;
  body: string;
}

/** The paths the pages answer (the listener routes them to `handlePage`), the assets included. */
export function isPagePath(path: string): boolean {
  return path === '/' || path === '/resources' || path.startsWith('/resources/') || path === '/plan'
    || path === '/history' || path.startsWith('/history/') || path === '/attention' || path === '/login' || path.startsWith('/assets/');
}

/** Paths answered without a token or session (the login form and the static assets). */
export function isPublicPage(path: string): boolean {
  return path === '/login' || path.startsWith('/assets/');
}

/** What the listener (src/watch/http.ts) hands a page request. */
export interface PageContext {
  dashboard: Dashboard;
  /** Security headers to send with the answer (`send` adds them already). */
  headers: Record<string, string>;
  /** Authentication is on (the login page is useful). */
  authEnabled: boolean;
  send(code: number, type: string, body: string, headers?: Record<string, string>): void;
}

/**
 * Answers one page or asset GET (the listener has checked the Host header and, but for
 * `isPublicPage` paths, the token or session). Returns false for a path that is not a page.
 */
export function handlePage(req: IncomingMessage, _res: ServerResponse, url: URL, ctx: PageContext): boolean {
  const path = url.pathname;
  if (!isPagePath(path)) return false;
  if (path.startsWith('/assets/')) {
    const a = isAssetPath(path) ? asset(path) : undefined;
    if (!a) {
      ctx.send(404, 'text/plain; charset=utf-8', `no asset ${path}\n`);
      return true;
    }
    // Revalidated on each load (no-cache), answered 304 while unchanged.
    if (req.headers['if-none-match'] === a.etag) ctx.send(304, a.contentType, '', { etag: a.etag, 'cache-control': 'no-cache' });
    else ctx.send(200, a.contentType, a.body.toString('utf8'), { etag: a.etag, 'cache-control': 'no-cache' });
    return true;
  }
  renderPage(path, url.searchParams, dashboardSource(ctx.dashboard)).then(
    (p) => ctx.send(p.status, p.contentType, p.body),
    (e: unknown) => ctx.send(500, 'text/plain; charset=utf-8', `page failed: ${e instanceof Error ? e.message : String(e)}\n`),
  );
  return true;
}

const HTML = 'text/html; charset=utf-8';
const RUNS_PAGE_SIZE = 50;

function intParam(params: URLSearchParams, name: string, dflt: number, max: number): number {
  const v = params.get(name);
  if (v === null || v === '') return dflt;
  if (!/^\d+$/.test(v) || Number(v) < 1 || Number(v) > max) throw new PageError(400, `${name}: ${JSON.stringify(v)} is not a whole number from 1 to ${max}`);
  return Number(v);
}

class PageError extends Error {
  constructor(readonly status: number, message: string) {
    super(message);
  }
}

function decodeSegment(s: string): string {
  try {
    return decodeURIComponent(s);
  } catch {
    throw new PageError(400, `bad percent-encoding in ${JSON.stringify(s)}`); // safe-catch: the URIError becomes this 400
  }
}

/**
 * Renders the page of `path` (one of `isPagePath`), or only its `<main>` content when
 * `fragment=1`. `o.authenticated`: the listener demands a session (the login page is then useful).
 */
export async function renderPage(path: string, params: URLSearchParams, src: PageSource, o: { loginFailed?: boolean } = {}): Promise<PageResponse> {
  const fragment = params.get('fragment') === '1';
  const page = (status: number, title: string, section: Section, main: SafeHtml, extra: Partial<LayoutOptions> = {}): PageResponse => ({
    status, contentType: HTML, body: fragment ? toHtml(main) : toHtml(layout({ title, section, ...extra }, main)),
  });
  try {
    if (path === '/login') return page(200, 'Sign in', 'login', loginMain({ failed: o.loginFailed ?? params.get('error') === '1' }));
    if (path === '/') {
      const ov = await src.overview();
      return page(200, 'Overview', 'overview', overviewMain(ov), { seq: ov.seq });
    }
    if (path === '/resources') {
      let q: ResourceQuery;
      try {
        const own = new URLSearchParams(params);
        own.delete('fragment');
        q = src.parseResourceQuery(own);
      } catch (e) {
        throw new PageError(400, (e as Error).message); // safe-catch: the parser's message becomes the 400 page
      }
      const p = await src.resources(q);
      return page(200, 'Resources', 'resources', resourcesMain(p, q, src.resourceDefaults), { seq: p.seq });
    }
    if (path.startsWith('/resources/')) {
      const key = decodeSegment(path.slice('/resources/'.length));
      const d = await src.resource(key);
      if (!d) throw new PageError(404, `no resource ${key}`);
      return page(200, `${d.item.kind} ${d.item.name}`, 'resources', resourceMain(d), { seq: d.seq, resourceKey: d.item.key });
    }
    if (path === '/plan') return page(200, 'Plan', 'plan', planMain(await src.plan()));
    if (path === '/history') {
      const p = await src.runs(intParam(params, 'page', 1, 1_000_000), intParam(params, 'pageSize', RUNS_PAGE_SIZE, 500));
      const failed = new Map<string, RunDetail>();
      for (const r of p.items) {
        if (r.counts.failed > 0 || r.outcome === 'failed') {
          const d = await src.run(r.id);
          if (d) failed.set(r.id, d);
        }
      }
      return page(200, 'History', 'history', historyMain(p, failed, RUNS_PAGE_SIZE));
    }
    if (path.startsWith('/history/')) {
      const id = decodeSegment(path.slice('/history/'.length));
      const d = await src.run(id);
      if (!d) throw new PageError(404, `no run ${id} (the history keeps the last runs only)`);
      return page(200, `Run ${d.id}`, 'history', runMain(d));
    }
    if (path === '/attention') {
      const a = await src.attention();
      return page(200, 'Needs attention', 'attention', attentionMain(a), { seq: a.seq });
    }
    throw new PageError(404, `no page ${path}`);
  } catch (e) {
    if (e instanceof PageError) return page(e.status, e.status === 404 ? 'Not found' : 'Bad request', 'overview', errorMain(e.status, e.message));
    throw e;
  }
}
