/**
 * `virtform status [DIR]`: each managed (and, with DIR, each declared) resource with its desired
 * and observed state and a STATUS derived from the two (src/status/build.ts), its last error,
 * attempts and the revision that last applied it.
 *
 * Exit codes: 0 shown; 1 the state DB does not exist (nothing is created) or libvirt cannot be
 * reached without --offline (what the DB records is still printed, observed `unknown`); 2 DIR is
 * invalid.
 */
import { EXIT, errorMessage, loadDesired, openStore } from '../common.js';
import { openHost } from '../../reconcile/adapters/libvirt-host.js';
import type { DesiredResource } from '../../reconcile/desired.js';
import { StateDbMissingError, defaultDbPath, type StateStore } from '../../state/index.js';
import { addressLabel, buildStatus, observeForStatus, revisionsFor, type HostView, type StatusRow } from '../../status/index.js';

export type { StatusRow } from '../../status/index.js';

export async function runStatus(dir: string | undefined, o: { uri: string; db?: string; json?: boolean; offline?: boolean }): Promise<number> {
  let declared: DesiredResource[] | undefined;
  if (dir) {
    const loaded = await loadDesired(dir);
    if (!loaded.ok) {
      process.stderr.write(`${loaded.text}\n`);
      return EXIT.invalid;
    }
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
    if (!o.offline) {
      try {
        const conn = await openHost(o.uri);
        try {
          host = await observeForStatus(conn, records, declared);
        } finally {
          await conn.close();
        }
      } catch (e) {
        hostError = errorMessage(e);
      }
    }
    const revisions = await revisionsFor(store, records);
    const { resources: rows, summary } = buildStatus({ records, declared, host, revisions });
    const latest = await store.revisions.latest();
    const code = hostError ? EXIT.failure : EXIT.ok;

    if (o.json) {
      process.stdout.write(`${JSON.stringify({
        uri: o.uri, db: store.path, offline: o.offline === true, hostError: hostError ?? null, latestRevision: latest ?? null, summary, resources: rows,
        addressErrors: host?.addresses?.errors ?? [],
      }, null, 2)}\n`);
      if (hostError) process.stderr.write(`virtform: cannot reach libvirt at ${o.uri}: ${hostError}\n`);
      return code;
    }
    if (hostError) {
      process.stderr.write(`virtform: cannot reach libvirt at ${o.uri}: ${hostError}\n` +
        `  observed state unknown; below is what the state DB ${store.path} records (--offline skips libvirt)\n`);
    }
    if (rows.length === 0) {
      process.stdout.write(`No managed resources in ${store.path}.\n`);
      return code;
    }
    process.stdout.write(renderTable(rows));
    for (const e of host?.addresses?.errors ?? []) process.stderr.write(`virtform: addresses: ${e}\n`);
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
  const header = ['RESOURCE', 'DESIRED', 'OBSERVED', 'STATUS', 'ATTEMPTS', 'REVISION', 'ADDRESSES', 'LAST ERROR / REASON'];
  const table = rows.map((r) => [
    `${r.kind}/${r.name}`, r.desired, r.observed, r.note ? `${r.status} (${r.note.flag})` : r.status, String(r.attempts),
    r.revision ? r.revision.label : '-', addressCell(r),
    (r.lastError ?? (r.status === 'converged' ? null : r.reason))?.replace(/\s+/g, ' ').slice(0, 80) ?? '-',
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...table.map((row) => row[i]!.length)));
  const fmt = (row: string[]): string => row.map((c, i) => (i === row.length - 1 ? c : c.padEnd(widths[i]!))).join('  ');
  const notes = rows.filter((r) => r.note).map((r) => `\n${r.kind}/${r.name}: ${r.note!.text}\n`).join('') +
    rows.filter((r) => r.addressesNote).map((r) => `\n${r.kind}/${r.name}: ${r.addressesNote}\n`).join('');
  return `${[fmt(header), ...table.map(fmt)].join('\n')}\n${notes}`;
}

/**
 * The ADDRESSES cell of a VM: per NIC its addresses with their source (`192.168.1.5/24 (lease)`),
 * `waiting` for a NIC on a DHCP network without one yet, `-` for none; NICs separated by `; `.
 */
export function addressCell(r: StatusRow): string {
  if (!r.addresses || r.addresses.length === 0) return '-';
  return r.addresses.map((n) => (n.addresses.length > 0 ? n.addresses.map(addressLabel).join(', ') : n.dhcp ? 'waiting' : '-')).join('; ');
}
