/**
 * `virtform status [DIR]`: each managed (and, with DIR, each declared) resource with its desired
 * and observed state and a STATUS derived from the two (src/status/build.ts), its last error,
 * attempts and the revision that last applied it.
 *
 * Exit codes: 0 shown; 1 the state DB does not exist (nothing is created) or libvirt cannot be
 * reached without --offline (what the DB records is still printed, observed `unknown`); 2 DIR is
 * invalid.
 */
import { printable } from '../../util/printable.js';
import { hostOf, LOCAL_HOST, resourceKey, type HostId } from '../../model/kinds.js';
import { EXIT, dataDirOf, errorMessage, loadCacheFile, loadDesired, openStore, resolvePolicy } from '../common.js';
import { fleetHosts } from '../../fleet/parts.js';
import { refusedTransports } from '../../fleet/connect.js';
import { transportRefusal } from '../../fleet/transport.js';
import type { HostDefinition } from '../../fleet/contract.js';
import { redactUri } from '../../libvirt/uri.js';
import { openHost } from '../../reconcile/adapters/libvirt-host.js';
import type { Desired, DesiredResource } from '../../reconcile/desired.js';
import { planOnly } from '../../reconcile/engine.js';
import { StateDbMissingError, defaultDbPath, readLease, type StateStore } from '../../state/index.js';
import {
  addressLabel, buildStatus, leaderLine, leaseStatus, observeFleet, persistConditions, renderHostTable, revisionsFor, statusHosts, trueConditions,
  type FleetView, type HostView, type Stall, type StatusHost, type StatusRow,
} from '../../status/index.js';
import type { HostPort } from '../../reconcile/ports.js';
import { suspendedText } from './reconcile.js';
import { buildDesired } from '../../reconcile/desired.js';
import { GitRepository, gitStatusFromRecord, gitSummary, type GitSourceSpec, type GitSourceStatus } from '../../git/index.js';
import { gitCacheRoot, gitDesired, gitInput, type GitFlags } from '../git.js';

export type { StatusRow } from '../../status/index.js';

export async function runStatus(
  dir: string | undefined, o: { uri: string; db?: string; dataDir?: string; json?: boolean; offline?: boolean; policy?: string; insecure?: boolean } & GitFlags,
): Promise<number> {
  let declared: DesiredResource[] | undefined;
  let desired: Desired | undefined;
  let defined: HostDefinition[] = [];
  const source = gitInput(dir, o, { dirRequired: false });
  if ('errors' in source) {
    for (const e of source.errors) process.stderr.write(`virtform: ${e}\n`);
    return EXIT.invalid;
  }
  const policy = await resolvePolicy(o.policy);
  if (!policy.ok) {
    process.stderr.write(`${policy.text}\n`);
    return EXIT.invalid;
  }
  const gitSpec = 'spec' in source ? { ...source.spec, policy: policy.policy } : undefined;
  if (dir) {
    // The load cache is read, never written (status writes nothing).
    const loaded = await loadDesired(dir, policy.policy, { cache: { file: loadCacheFile(dataDirOf(o.db, o.dataDir)), write: false } });
    if (!loaded.ok) {
      process.stderr.write(`${loaded.text}\n`);
      return EXIT.invalid;
    }
    desired = loaded.desired;
    declared = loaded.desired.resources;
    defined = fleetHosts(loaded.state);
    // A Host whose transport the rules refuse (plain tcp to another machine without --insecure or
    // spec.insecure) is invalid input, as for reconcile: nothing is asked.
    const refused = refusedTransports(defined, o.insecure === true);
    if (refused.length > 0) {
      for (const r of refused) process.stderr.write(`virtform: ${r.message}\n`);
      return EXIT.invalid;
    }
  }
  let store: StateStore;
  try {
    store = await openStore(o.db, { mustExist: true, dataDir: o.dataDir });
  } catch (e) {
    if (e instanceof StateDbMissingError) {
      process.stderr.write(`virtform: ${e.message}\n`);
      return EXIT.failure;
    }
    process.stderr.write(`virtform: cannot open the state DB ${o.db ?? defaultDbPath()}: ${errorMessage(e)}\n`);
    return EXIT.failure;
  }
  try {
    // The git source: what the DB recorded (fetched/applied/error), refreshed by a fetch with --git.
    let git: GitSourceStatus | null = null;
    let gitError: string | undefined;
    if (gitSpec) {
      const g = await gitView(gitSpec, store, o);
      git = g.status;
      gitError = g.fetchError;
      declared = g.declared;
    } else {
      const recs = await store.gitSources.list();
      git = recs[0] ? gitStatusFromRecord(recs[0]) : null;
    }
    const records = await store.resources.list();
    const drift = new Map<string, string>();
    const pending = new Map<string, string>();
    const stalled = new Map<string, Stall>();
    // The hosts: the Host manifests, else those the hosts table records (a fleet), else --uri.
    const { fleet, hosts: targets } = statusHosts({
      defined, recorded: await store.hosts.list(), localUri: o.uri,
      localRecords: records.some((r) => hostOf(r as { host?: HostId }) === LOCAL_HOST),
    });
    // A fleet shows what the state DB records on each host: the manifests' resources are placed by
    // a reconcile (their host is recorded then), so declared resources are not guessed here.
    if (fleet) declared = undefined;
    let view: FleetView = { views: new Map(), errors: new Map(), hosts: [] };
    if (!o.offline) {
      view = await observeFleet(targets, records, declared, async (h) => {
        // A host of the hosts table (no Host manifest says it may use plain tcp): asked only when
        // the rules allow its transport, else it is shown unreachable with why.
        const why = fleet && defined.length === 0 ? transportRefusal(h.uri, { insecure: o.insecure === true }) : undefined;
        if (why) throw new Error(`not asked: ${why}`);
        return openHost(h.uri);
      }, async (_h, conn) => {
        // With the manifests: the deep comparison a plan makes (read-only) tells definition drift too.
        // A plan that cannot be made is an error of the status (exit 1), not "no drift". A
        // resource the plan cannot touch (a conflict, a definition virtform cannot read) is
        // stalled, as the watcher shows it.
        if (!desired || fleet) return;
        const { plan } = await planOnly(conn as HostPort, store, desired);
        // Status tells the plan's story: a conflict is stalled, drift drifted, any other change
        // pending, never converged.
        for (const c of plan.changes) {
          if (c.action === 'conflict') stalled.set(c.key, { reason: 'conflict', detail: c.reason });
          else (c.drift ? drift : pending).set(c.key, c.reason);
        }
      });
    }
    const host: HostView | undefined = fleet ? undefined : view.views.get(LOCAL_HOST);
    const hostError = fleet
      ? (view.errors.size > 0 ? [...view.errors].map(([h, e]) => `${h}: ${e}`).join('; ') : undefined)
      : view.errors.get(LOCAL_HOST);
    const revisions = await revisionsFor(store, records);
    const suspension = await store.controls.suspension();
    const previousConditions = await store.conditions.list();
    const { resources: rows, summary } = buildStatus({
      records, declared, revisions, drift, pending, stalled, suspension, previousConditions,
      ...(fleet ? { hosts: view.views, ...(o.offline ? {} : { hostErrors: view.errors }) } : { host }),
    });
    // What the hosts showed moves the conditions' transition times; a status that did not ask them does not.
    // safe-catch: conditions only record transition times; a busy DB must not fail a read-only status
    if (view.views.size > 0) await persistConditions(store, rows).catch(() => undefined);
    const latest = await store.revisions.latest();
    // Who leads: the writer lease row, read by the database's clock.
    const lease = leaseStatus(await readLease(store.leaseDeps()));
    const code = hostError || gitError ? EXIT.failure : EXIT.ok;
    if (gitError) process.stderr.write(`virtform: ${gitError}\n`);

    if (o.json) {
      process.stdout.write(`${JSON.stringify({
        uri: o.uri, db: store.path, offline: o.offline === true, hostError: hostError ?? null, suspended: suspension ?? null,
        latestRevision: latest ?? null, git, lease, summary, resources: rows,
        addressErrors: [...view.views.values()].flatMap((v) => v.addresses?.errors ?? []),
        fleet, hosts: view.hosts.map((h) => ({ ...h, uri: redactUri(h.uri) })),
      }, null, 2)}\n`);
      writeHostErrors(fleet, targets, view, o.uri);
      return code;
    }
    const gitLine = git ? `Git: ${git.url} ${git.ref}${git.path ? ` path ${git.path}` : ''}: ${git.summary}\n` : '';
    if (hostError) {
      writeHostErrors(fleet, targets, view, o.uri);
      process.stderr.write(`  observed state unknown${fleet ? ' on those hosts' : ''}; below is what the state DB ${store.path} records (--offline skips libvirt)\n`);
    }
    if (suspension) process.stdout.write(`Applies paused: ${suspendedText(store.path, suspension)} (virtform resume continues).\n\n`);
    const leaseLine = `${printable(leaderLine(lease))}\n`;
    if (rows.length === 0) {
      process.stdout.write(`No managed resources in ${store.path}.\n${fleet && view.hosts.length ? `\n${printable(renderHostTable(view.hosts), { keepNewlines: true })}` : ''}${gitLine}${leaseLine}`);
      return code;
    }
    process.stdout.write(renderTable(rows, { hostColumn: fleet }));
    // A fleet: one line per host (connected or why not, libvirt, capacity used, VMs).
    if (fleet && view.hosts.length) process.stdout.write(`\n${printable(renderHostTable(view.hosts), { keepNewlines: true })}`);
    for (const v of view.views.values()) for (const e of v.addresses?.errors ?? []) process.stderr.write(`virtform: addresses: ${e}\n`);
    if (latest) {
      process.stdout.write(`\nLast run: #${latest.id} ${latest.outcome} at ${latest.finishedAt ?? latest.startedAt}` +
        `${latest.gitCommit ? ` (git ${latest.gitCommit.slice(0, 10)}${latest.gitDirty ? ', dirty' : ''})` : ''}, digest ${latest.manifestDigest.slice(0, 12)}\n`);
    }
    process.stdout.write(gitLine);
    process.stdout.write(leaseLine);
    return code;
  } finally {
    await store.close();
  }
}

export function renderTable(rows: StatusRow[], o: { hostColumn?: boolean } = {}): string {
  // One host (the implicit local host of --uri): no HOST column, as before there were several; a fleet always has it.
  const manyHosts = o.hostColumn === true || new Set(rows.map((r) => r.host ?? LOCAL_HOST)).size > 1;
  const header = [...(manyHosts ? ['HOST'] : []), 'RESOURCE', 'DESIRED', 'OBSERVED', 'STATUS', 'ATTEMPTS', 'REVISION', 'ADDRESSES', 'CONDITIONS', 'LAST ERROR / REASON'];
  const table = rows.map((r) => [
    ...(manyHosts ? [r.host ?? LOCAL_HOST] : []), `${r.kind}/${r.name}`, r.desired, r.observed, r.note ? `${r.status} (${r.note.flag})` : r.status, String(r.attempts),
    r.revision ? r.revision.label : '-', addressCell(r), trueConditions(r),
    (r.lastError ?? (r.status === 'converged' ? null : r.reason))?.replace(/\s+/g, ' ').slice(0, 80) ?? '-',
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...table.map((row) => row[i]!.length)));
  const fmt = (row: string[]): string => row.map((c, i) => (i === row.length - 1 ? c : c.padEnd(widths[i]!))).join('  ');
  const label = (r: StatusRow): string => (manyHosts ? resourceKey(r.kind, r.name, r.host ?? LOCAL_HOST) : `${r.kind}/${r.name}`);
  const notes = rows.filter((r) => r.note).map((r) => `\n${label(r)}: ${r.note!.text}\n`).join('') +
    rows.filter((r) => r.addressesNote).map((r) => `\n${label(r)}: ${r.addressesNote}\n`).join('');
  // Errors and reasons carry paths and values from manifests and the host: no control character reaches the terminal.
  return printable(`${[fmt(header), ...table.map(fmt)].join('\n')}\n${notes}`, { keepNewlines: true });
}

/** Why each host that could not be reached was not (stderr). */
function writeHostErrors(fleet: boolean, targets: readonly StatusHost[], view: FleetView, uri: string): void {
  if (!fleet) {
    const e = view.errors.get(LOCAL_HOST);
    if (e !== undefined) process.stderr.write(`virtform: cannot reach libvirt at ${redactUri(uri)}: ${e}\n`);
    return;
  }
  for (const h of targets) {
    const e = view.errors.get(h.id);
    if (e !== undefined) process.stderr.write(printable(`virtform: host ${h.id}: cannot reach libvirt at ${redactUri(h.uri)}: ${e}\n`, { keepNewlines: true }));
  }
}

/**
 * The ADDRESSES cell of a VM: per NIC its addresses with their source (`192.168.1.5/24 (lease)`),
 * `waiting` for a NIC on a DHCP network without one yet, `-` for none; NICs separated by `; `.
 */
export function addressCell(r: StatusRow): string {
  if (!r.addresses || r.addresses.length === 0) return '-';
  return r.addresses.map((n) => (n.addresses.length > 0 ? n.addresses.map(addressLabel).join(', ') : n.dhcp ? 'waiting' : '-')).join('; ');
}

/**
 * `status --git URL`: the DB's record of the source, with the fetched commit refreshed by a fetch
 * into a throw-away repository (not with --offline). Declared resources come from the fetched
 * commit when it validates, else from the applied checkout in the cache.
 */
async function gitView(spec: GitSourceSpec, store: StateStore, o: { db?: string; dataDir?: string; offline?: boolean }): Promise<{
  status: GitSourceStatus; fetchError?: string; declared?: DesiredResource[];
}> {
  const repo = new GitRepository(spec, { cacheRoot: gitCacheRoot(o.db, o.dataDir) });
  const rec = await store.gitSources.get(repo.id);
  const base: Omit<GitSourceStatus, 'summary'> = rec ? gitStatusFromRecord(rec) : {
    id: repo.id, url: repo.displayUrl, ref: spec.ref.kind === 'default' ? 'HEAD' : spec.ref.kind === 'commit' ? `commit:${spec.ref.sha}` : `${spec.ref.kind}:${spec.ref.name}`,
    path: repo.spec.path, fetchedCommit: null, fetchedAt: null, appliedCommit: null, appliedAt: null, appliedOutcome: null, pendingCommit: null,
    differ: false, error: null, errorKind: null, rejectedCommit: null, fetchError: null, fetchErrorAt: null,
  };
  const fromApplied = async (): Promise<DesiredResource[] | undefined> => {
    if (!rec?.appliedCommit || repo.checkedOut('applied') !== rec.appliedCommit) return undefined;
    const r = await repo.load('applied');
    return r.ok ? buildDesired(r.desired).resources : undefined;
  };
  if (o.offline) return { status: { ...base, summary: gitSummary(base) }, declared: await fromApplied() };
  const g = await gitDesired(spec, { store, dbPath: o.db, dataDir: o.dataDir, mode: 'read' });
  try {
    const now = new Date().toISOString();
    if (g.ok) {
      const s = { ...base, fetchedCommit: g.commit, fetchedAt: now, fetchError: null, fetchErrorAt: null, differ: g.commit !== base.appliedCommit,
        ...(base.rejectedCommit !== g.commit ? { error: null, errorKind: null } : {}) };
      return { status: { ...s, summary: gitSummary(s) }, declared: buildDesired(g.state).resources };
    }
    if (g.code === 2) {
      const fetched = g.sync.fetchedCommit;
      const reason = g.message.replace(/^fetched \S+, applied \S+: /, '').replace(/; nothing was changed$/, '');
      const s = { ...base, fetchedCommit: fetched, fetchedAt: now, fetchError: null, fetchErrorAt: null, differ: fetched !== base.appliedCommit,
        rejectedCommit: fetched, error: reason, errorKind: g.errors.length ? 'validation' : 'signature' };
      return { status: { ...s, summary: gitSummary(s) }, declared: await fromApplied() };
    }
    const s = { ...base, fetchError: g.message, fetchErrorAt: now };
    return { status: { ...s, summary: gitSummary(s) }, fetchError: g.message, declared: await fromApplied() };
  } finally {
    g.repo.dispose();
  }
}
