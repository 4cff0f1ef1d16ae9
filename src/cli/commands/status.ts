/**
 * `virtform status [DIR]`: each managed (and, with DIR, each declared) resource with its desired
 * and observed state and a STATUS derived from the two (src/status/build.ts), its last error,
 * attempts and the revision that last applied it.
 *
 * Exit codes: 0 shown; 1 the state DB does not exist (nothing is created) or libvirt cannot be
 * reached without --offline (what the DB records is still printed, observed `unknown`); 2 DIR is
 * invalid.
 */
import { EXIT, errorMessage, loadDesired, openStore, resolvePolicy } from '../common.js';
import { openHost } from '../../reconcile/adapters/libvirt-host.js';
import type { Desired, DesiredResource } from '../../reconcile/desired.js';
import { planOnly } from '../../reconcile/engine.js';
import { StateDbMissingError, defaultDbPath, type StateStore } from '../../state/index.js';
import {
  buildStatus, observeForStatus, persistConditions, revisionsFor, trueConditions, type HostView, type StatusRow,
} from '../../status/index.js';
import { suspendedText } from './reconcile.js';

export type { StatusRow } from '../../status/index.js';

export async function runStatus(
  dir: string | undefined, o: { uri: string; db?: string; json?: boolean; offline?: boolean; policy?: string },
): Promise<number> {
  let declared: DesiredResource[] | undefined;
  let desired: Desired | undefined;
  if (dir) {
    const policy = await resolvePolicy(o.policy);
    if (!policy.ok) {
      process.stderr.write(`${policy.text}\n`);
      return EXIT.invalid;
    }
    const loaded = await loadDesired(dir, policy.policy);
    if (!loaded.ok) {
      process.stderr.write(`${loaded.text}\n`);
      return EXIT.invalid;
    }
    desired = loaded.desired;
    declared = loaded.desired.resources;
  }
  let store: StateStore;
  try {
    store = await openStore(o.db, { mustExist: true });
  } catch (e) {
    if (e instanceof StateDbMissingError) {
      process.stderr.write(`virtform: ${e.message}\n`);
      return EXIT.failure;
    }
    process.stderr.write(`virtform: cannot open the state DB ${o.db ?? defaultDbPath()}: ${errorMessage(e)}\n`);
    return EXIT.failure;
  }
  try {
    const records = await store.resources.list();
    let host: HostView | undefined;
    let hostError: string | undefined;
    const drift = new Map<string, string>();
    if (!o.offline) {
      try {
        const conn = await openHost(o.uri);
        try {
          host = await observeForStatus(conn, records, declared);
          // With the manifests: the deep comparison a plan makes (read-only) tells definition drift too.
          if (desired) {
            const { plan } = await planOnly(conn, store, desired).catch(() => ({ plan: undefined }));
            for (const c of plan?.changes ?? []) if (c.drift) drift.set(c.key, c.reason);
          }
        } finally {
          await conn.close();
        }
      } catch (e) {
        hostError = errorMessage(e);
      }
    }
    const revisions = await revisionsFor(store, records);
    const suspension = await store.controls.suspension();
    const previousConditions = await store.conditions.list();
    const { resources: rows, summary } = buildStatus({ records, declared, host, revisions, drift, suspension, previousConditions });
    // What the host showed moves the conditions' transition times; a status that did not ask it does not.
    if (host) await persistConditions(store, rows).catch(() => undefined);
    const latest = await store.revisions.latest();
    const code = hostError ? EXIT.failure : EXIT.ok;

    if (o.json) {
      process.stdout.write(`${JSON.stringify({
        uri: o.uri, db: store.path, offline: o.offline === true, hostError: hostError ?? null, suspended: suspension ?? null,
        latestRevision: latest ?? null, summary, resources: rows,
      }, null, 2)}\n`);
      if (hostError) process.stderr.write(`virtform: cannot reach libvirt at ${o.uri}: ${hostError}\n`);
      return code;
    }
    if (hostError) {
      process.stderr.write(`virtform: cannot reach libvirt at ${o.uri}: ${hostError}\n` +
        `  observed state unknown; below is what the state DB ${store.path} records (--offline skips libvirt)\n`);
    }
    if (suspension) process.stdout.write(`Applies paused: ${suspendedText(store.path, suspension)} (virtform resume continues).\n\n`);
    if (rows.length === 0) {
      process.stdout.write(`No managed resources in ${store.path}.\n`);
      return code;
    }
    process.stdout.write(renderTable(rows));
    if (latest) {
      process.stdout.write(`\nLast run: #${latest.id} ${latest.outcome} at ${latest.finishedAt ?? latest.startedAt}` +
        `${latest.gitCommit ? ` (git ${latest.gitCommit.slice(0, 10)}${latest.gitDirty ? ', dirty' : ''})` : ''}, digest ${latest.manifestDigest.slice(0, 12)}\n`);
    }
    return code;
  } finally {
    await store.close();
  }
}

export function renderTable(rows: StatusRow[]): string {
  const header = ['RESOURCE', 'DESIRED', 'OBSERVED', 'STATUS', 'ATTEMPTS', 'REVISION', 'CONDITIONS', 'LAST ERROR / REASON'];
  const table = rows.map((r) => [
    `${r.kind}/${r.name}`, r.desired, r.observed, r.note ? `${r.status} (${r.note.flag})` : r.status, String(r.attempts),
    r.revision ? r.revision.label : '-', trueConditions(r),
    (r.lastError ?? (r.status === 'converged' ? null : r.reason))?.replace(/\s+/g, ' ').slice(0, 80) ?? '-',
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...table.map((row) => row[i]!.length)));
  const fmt = (row: string[]): string => row.map((c, i) => (i === row.length - 1 ? c : c.padEnd(widths[i]!))).join('  ');
  const notes = rows.filter((r) => r.note).map((r) => `\n${r.kind}/${r.name}: ${r.note!.text}\n`).join('');
  return `${[fmt(header), ...table.map(fmt)].join('\n')}\n${notes}`;
}
