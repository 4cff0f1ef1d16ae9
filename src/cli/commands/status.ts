import { EXIT, errorMessage, loadDesired, openStore } from '../common.js';
import { openHost } from '../../reconcile/adapters/libvirt-host.js';
import { resourceKey, KIND_ORDER } from '../../reconcile/desired.js';
import type { HostSnapshot, ResourceKind } from '../../reconcile/ports.js';
import type { ResourceRecord, RevisionRecord } from '../../state/index.js';
import { restartText, type RestartRequired } from '../../reconcile/kinds/vm.js';

export interface StatusRow {
  kind: string;
  name: string;
  desired: string;
  observed: string;
  status: string;
  lastError: string | null;
  attempts: number;
  generation: number;
  revision: { id: number; gitCommit: string | null; manifestDigest: string; finishedAt: string | null } | null;
  updatedAt: string | null;
  /** VMs: changes applied to the persistent definition that the running domain takes at its next boot. */
  restartRequired: RestartRequired | null;
}

/** The record's restart-required mark while the domain it was set on still runs (same libvirt domain id). */
function restartRequiredOf(snapshot: HostSnapshot | undefined, r: ResourceRecord): RestartRequired | null {
  if (r.kind !== 'VirtualMachine') return null;
  const rr = (r.details.facts as { restartRequired?: RestartRequired } | undefined)?.restartRequired;
  if (!rr) return null;
  if (!snapshot) return rr; // offline: as recorded
  const d = snapshot.domains.find((x) => x.name === r.name);
  return d?.active && d.id === rr.domainId ? rr : null;
}

function observedState(snapshot: HostSnapshot | undefined, r: { kind: string; name: string }, volumeKnown: boolean): string {
  if (!snapshot) return 'unknown';
  const find = <T extends { name: string; active: boolean }>(list: T[]): string => {
    const o = list.find((x) => x.name === r.name);
    if (!o) return 'absent';
    return r.kind === 'VirtualMachine' ? (o.active ? 'running' : 'stopped') : o.active ? 'active' : 'inactive';
  };
  switch (r.kind as ResourceKind) {
    case 'StoragePool': return find(snapshot.pools);
    case 'Network': return find(snapshot.networks);
    case 'VirtualMachine': return find(snapshot.domains);
    case 'Volume': return volumeKnown ? 'present' : 'absent';
  }
}

export async function runStatus(dir: string | undefined, o: { uri: string; db?: string; json?: boolean; offline?: boolean }): Promise<number> {
  const store = await openStore(o.db);
  try {
    const records = await store.resources.list();
    const declared = new Map<string, { kind: string; name: string; desired: string }>();
    if (dir) {
      const loaded = await loadDesired(dir);
      if (!loaded.ok) {
        process.stderr.write(`${loaded.text}\n`);
        return EXIT.invalid;
      }
      for (const r of loaded.desired.resources) {
        const desired = r.kind === 'VirtualMachine' ? r.state : r.kind === 'Volume' ? 'present' : 'active';
        declared.set(resourceKey(r.kind, r.name), { kind: r.kind, name: r.name, desired });
      }
    }
    let snapshot: HostSnapshot | undefined;
    const volumes = new Set<string>();
    let hostError: string | undefined;
    if (!o.offline) {
      try {
        const host = await openHost(o.uri);
        try {
          snapshot = await host.snapshot();
          const pools = new Set(records.filter((r) => r.kind === 'Volume').map((r) => String((r.details.config as { pool?: string } | undefined)?.pool)));
          for (const p of pools) {
            if (!snapshot.pools.find((x) => x.name === p)?.active) continue;
            for (const v of await host.listVolumes(p)) volumes.add(v.key);
          }
        } finally {
          await host.close();
        }
      } catch (e) {
        hostError = errorMessage(e);
      }
    }
    const revisions = new Map<number, RevisionRecord | undefined>();
    const revisionOf = async (id: number | null): Promise<StatusRow['revision']> => {
      if (id === null) return null;
      if (!revisions.has(id)) revisions.set(id, await store.revisions.get(id));
      const rev = revisions.get(id);
      return rev ? { id, gitCommit: rev.gitCommit, manifestDigest: rev.manifestDigest, finishedAt: rev.finishedAt } : null;
    };

    const rows: StatusRow[] = [];
    const seen = new Set<string>();
    for (const r of records as ResourceRecord[]) {
      const key = resourceKey(r.kind, r.name);
      seen.add(key);
      rows.push({
        kind: r.kind, name: r.name,
        desired: declared.get(key)?.desired ?? (dir ? 'undeclared (will be deleted)' : r.desiredState ?? (r.kind === 'Volume' ? 'present' : 'active')),
        observed: observedState(snapshot, r, r.uuid !== null && volumes.has(r.uuid)),
        status: r.observedStatus ?? 'unknown', lastError: r.lastError, attempts: r.attempts, generation: r.generation,
        revision: await revisionOf(r.lastAppliedRevision), updatedAt: r.updatedAt,
        restartRequired: restartRequiredOf(snapshot, r),
      });
    }
    for (const [key, d] of declared) {
      if (seen.has(key)) continue;
      rows.push({ kind: d.kind, name: d.name, desired: d.desired, observed: observedState(snapshot, d, false), status: 'not created', lastError: null, attempts: 0, generation: 0, revision: null, updatedAt: null, restartRequired: null });
    }
    rows.sort((a, b) => KIND_ORDER.indexOf(a.kind as ResourceKind) - KIND_ORDER.indexOf(b.kind as ResourceKind) || a.name.localeCompare(b.name));
    const latest = await store.revisions.latest();

    if (o.json) {
      process.stdout.write(`${JSON.stringify({ uri: o.uri, db: store.path, hostError: hostError ?? null, latestRevision: latest ?? null, resources: rows }, null, 2)}\n`);
      return EXIT.ok;
    }
    if (hostError) process.stderr.write(`warning: cannot reach libvirt at ${o.uri} (${hostError}); observed state unknown\n`);
    if (rows.length === 0) {
      process.stdout.write(`No managed resources in ${store.path}.\n`);
      return EXIT.ok;
    }
    const header = ['RESOURCE', 'DESIRED', 'OBSERVED', 'STATUS', 'ATTEMPTS', 'REVISION', 'LAST ERROR'];
    const table = rows.map((r) => [
      `${r.kind}/${r.name}`, r.desired, r.observed, r.restartRequired ? `${r.status} (restart required)` : r.status, String(r.attempts),
      r.revision ? `#${r.revision.id}${r.revision.gitCommit ? ` ${r.revision.gitCommit.slice(0, 10)}` : ''}` : '-',
      r.lastError ? r.lastError.replace(/\s+/g, ' ').slice(0, 80) : '-',
    ]);
    const widths = header.map((h, i) => Math.max(h.length, ...table.map((row) => row[i]!.length)));
    const fmt = (row: string[]): string => row.map((c, i) => (i === row.length - 1 ? c : c.padEnd(widths[i]!))).join('  ');
    process.stdout.write(`${[fmt(header), ...table.map(fmt)].join('\n')}\n`);
    for (const r of rows) if (r.restartRequired) process.stdout.write(`\n${r.kind}/${r.name}: ${restartText(r.restartRequired)}\n`);
    if (latest) {
      process.stdout.write(`\nLast run: #${latest.id} ${latest.outcome} at ${latest.finishedAt ?? latest.startedAt}` +
        `${latest.gitCommit ? ` (git ${latest.gitCommit.slice(0, 10)}${latest.gitDirty ? ', dirty' : ''})` : ''}, digest ${latest.manifestDigest.slice(0, 12)}\n`);
    }
    return EXIT.ok;
  } finally {
    await store.close();
  }
}
