/**
 * The dashboard's pages (owned by dashui; this is the server's placeholder and the contract):
 * `handlePage` answers `/`, `/resources…`, `/plan`, `/history…`, `/attention`, `/login` and
 * `/assets/*` GETs, or returns false (the listener answers 404). The listener has already checked
 * the Host header and, for every path but `/login` and `/assets/*`, the token or session cookie.
 * Security headers (CSP without inline script or style, nosniff, no referrer, frame-ancestors
 * 'none') are in `ctx.headers`: send them with every answer.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Dashboard } from '../data.js';

export interface PageContext {
  dashboard: Dashboard;
  /** Security headers to send with the answer. */
  headers: Record<string, string>;
  /** Authentication is on (the login page is useful). */
  authEnabled: boolean;
  send(code: number, type: string, body: string, headers?: Record<string, string>): void;
}

/** Paths answered without a token or session (the login form and static assets). */
export function isPublicPage(path: string): boolean {
  return path === '/login' || path.startsWith('/assets/');
}

/** Whether a path is one of the pages (routed here). */
export function isPagePath(path: string): boolean {
  return path === '/' || path === '/login' || path === '/plan' || path === '/attention'
    || path === '/resources' || path.startsWith('/resources/') || path === '/history' || path.startsWith('/history/') || path.startsWith('/assets/');
}

const esc = (s: string): string => s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

export function handlePage(_req: IncomingMessage, _res: ServerResponse, url: URL, ctx: PageContext): boolean {
  const path = url.pathname;
  if (!isPagePath(path)) return false;
  if (path === '/login') {
    ctx.send(200, 'text/html; charset=utf-8', `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>virtform: log in</title></head><body>
<h1>virtform</h1>${url.searchParams.has('error') ? '<p role="alert">Wrong token.</p>' : ''}
<form method="post" action="/api/v1/session"><label for="token">Token</label> <input id="token" name="token" type="password" autocomplete="current-password" required> <button type="submit">Log in</button></form>
</body></html>\n`);
    return true;
  }
  if (path.startsWith('/assets/')) return false;
  const s = ctx.dashboard.current;
  ctx.send(200, 'text/html; charset=utf-8', `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>virtform</title></head><body>
<h1>virtform</h1><p>${s ? `${s.overview.total} resources, snapshot ${s.seq}` : 'no snapshot yet'}. JSON: <a href="/api/v1/overview">${esc('/api/v1/overview')}</a></p></body></html>\n`);
  return true;
}
