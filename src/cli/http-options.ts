/**
 * The HTTP listener flags of `watch` (single host and fleet): `--listen`, `--allowed-host`,
 * `--http-token-file`, `--http-tls-cert`/`--http-tls-key`, `--history-runs`, checked before
 * anything starts (a bad one: exit 2, a clear message, nothing changed), and the dashboard over a
 * watcher's feed with the CLI's plan rendering (the same text as `reconcile --dry-run`).
 */
import { readFileSync } from 'node:fs';
import { checkListenSecurity, parseAllowedHost, parseListen, type ListenAddress, type ListenTls } from '../watch/http.js';
import { readTokenFile } from '../dashboard/auth.js';
import { Dashboard, type DashboardFeed, type StoreForDashboard } from '../dashboard/data.js';
import { renderPlan } from './render.js';

export interface HttpFlags {
  listen: string | false;
  allowedHost?: string[];
  httpTokenFile?: string;
  httpTlsCert?: string;
  httpTlsKey?: string;
  historyRuns?: number;
}

export interface HttpSetup {
  listen?: ListenAddress;
  allowedHosts: string[];
  token?: string;
  tls?: ListenTls;
  historyRuns: number;
}

/** Parse and check the listener flags; throws an Error whose message is the exit-2 text. */
export function httpSetup(o: HttpFlags): HttpSetup {
  const listen = o.listen === false ? undefined : parseListen(o.listen);
  const allowedHosts = (o.allowedHost ?? []).map(parseAllowedHost);
  const historyRuns = o.historyRuns ?? 500;
  if ((o.httpTlsCert === undefined) !== (o.httpTlsKey === undefined)) throw new Error('--http-tls-cert and --http-tls-key go together: give both');
  if (!listen) {
    if (o.httpTokenFile || o.httpTlsCert) throw new Error('--http-token-file and --http-tls-cert/--http-tls-key need a listener (not with --no-listen)');
    return { allowedHosts, historyRuns };
  }
  const token = o.httpTokenFile !== undefined ? readTokenFile(o.httpTokenFile) : undefined;
  let tls: ListenTls | undefined;
  if (o.httpTlsCert !== undefined && o.httpTlsKey !== undefined) {
    const read = (flag: string, path: string): string => {
      try {
        return readFileSync(path, 'utf8');
      } catch (e) {
        throw new Error(`${flag} ${path}: cannot read it (${(e as NodeJS.ErrnoException).code ?? String(e)})`);
      }
    };
    tls = { cert: read('--http-tls-cert', o.httpTlsCert), key: read('--http-tls-key', o.httpTlsKey) };
    if (!/-----BEGIN [A-Z ]*CERTIFICATE-----/.test(String(tls.cert))) throw new Error(`--http-tls-cert ${o.httpTlsCert}: not a PEM certificate`);
    if (!/-----BEGIN [A-Z ]*PRIVATE KEY-----/.test(String(tls.key))) throw new Error(`--http-tls-key ${o.httpTlsKey}: not a PEM private key`);
  }
  const refused = checkListenSecurity(listen, { token: token !== undefined, tls: tls !== undefined });
  if (refused) throw new Error(refused);
  return { listen, allowedHosts, historyRuns, ...(token !== undefined ? { token } : {}), ...(tls ? { tls } : {}) };
}

/** The dashboard over a watcher's feed (plan text as `reconcile --dry-run` prints it, no colour). */
export function dashboardFor(feed: DashboardFeed, store: StoreForDashboard, historyRuns: number, onError?: (e: unknown) => void): Dashboard {
  return new Dashboard({ feed, store, historyRuns, renderPlan: (plan) => renderPlan(plan, { color: false }), ...(onError ? { onError } : {}) });
}

/** `http://host:port/` or `https://…` of a bound listener. */
export function listenUrl(host: string, port: number, tls: boolean): string {
  return `${tls ? 'https' : 'http'}://${host.includes(':') ? `[${host}]` : host}:${port}/`;
}
