/**
 * `virtform snapshot revert` and `snapshot list`: what the Snapshot kind knows of restoring one
 * (virDomainRevertToSnapshot) and of listing them. The CLI (src/cli/commands/snapshot.ts) asks
 * through the registry; the journal entry and the writer lease are its part.
 *
 * A revert restores the VM's disks (and its memory and running state, when the snapshot saved them)
 * and the definition the snapshot carries: what the VM's disks hold now is lost (consent:
 * `--allow-data-loss`). The manifests still rule: a definition that differs from the current one
 * (so, most likely, from the manifest) is drift after the revert, and so is a state that differs
 * from the declared one; the next reconcile (or the watcher) corrects both, as for any drift. The
 * preview names them, by XML path.
 */
import { resourceKey, type ResourceKind } from '../../../model/kinds.js';
import type { SnapshotDetail } from '../../../model/definitions.js';
import { xmlDifferences } from '../../../libvirt/xml/compare.js';
import { HostError, type HostPort } from '../../ports.js';
import { holds, takenAt } from './index.js';
import type { SnapshotConfig, SnapshotFacts } from './types.js';

/** The kind these commands are about (callers outside the kinds name no kind literal). */
export const SNAPSHOT_KIND: ResourceKind = 'Snapshot';

/** What a revert would do, read from the host; nothing is changed. */
export interface RevertPreview {
  /** `Snapshot/name`. */
  key: string;
  name: string;
  vm: string;
  taken: SnapshotDetail;
  takenAt: string;
  /** `disks and memory` or `disks`. */
  holds: string;
  stateNow: 'running' | 'stopped';
  /** The VM's state after the revert (the snapshot's: running with memory, else stopped). */
  stateAfter: 'running' | 'stopped';
  /** The VM's disks whose current contents are lost (target and path). */
  disks: { target: string; path: string }[];
  /** Where the snapshot's definition differs from the VM's current one (XML path: change): drift once reverted. */
  definitionDrift: string[];
  /** The plan's lines, for output. */
  lines: string[];
}

/** The recorded VM and creation time of a Snapshot record; undefined when the record has none. */
function recordedOf(rec: { uuid: string | null; details: { config?: unknown; facts?: unknown } }): { vm: string; creationTime?: number } | undefined {
  const f = rec.details.facts as Partial<SnapshotFacts> | undefined;
  const vm = f?.vm ?? (rec.details.config as Partial<SnapshotConfig> | undefined)?.vm;
  return typeof vm === 'string' ? { vm, ...(typeof f?.creationTime === 'number' ? { creationTime: f.creationTime } : {}) } : undefined;
}

/**
 * What reverting the recorded snapshot `name` would do. Throws HostError `not-found` when the VM or
 * the snapshot is gone, `invalid` when the snapshot on the host is not the one virtform took.
 */
export async function previewRevert(
  host: HostPort, name: string, rec: { uuid: string | null; details: { config?: unknown; facts?: unknown } },
): Promise<RevertPreview> {
  const recorded = recordedOf(rec);
  if (!recorded) throw new HostError('invalid', `Snapshot ${name} has no recorded VM: it was never taken by virtform`);
  const { vm } = recorded;
  const dom = await host.getDomain(vm);
  if (!dom) throw new HostError('not-found', `VirtualMachine ${vm} of Snapshot ${name} does not exist on the host`);
  const taken = await host.getDomainSnapshot(vm, name);
  if (!taken) throw new HostError('not-found', `Snapshot ${name} of VirtualMachine ${vm} is gone from the host (deleted outside virtform): there is nothing to revert to`);
  if (rec.uuid && rec.uuid !== `${dom.uuid}@${taken.creationTime}`) {
    throw new HostError('invalid', `the snapshot ${name} of VirtualMachine ${vm} on the host (taken ${takenAt(taken.creationTime)}) is not the one virtform took ` +
      `(${recorded.creationTime !== undefined ? takenAt(recorded.creationTime) : rec.uuid}): not reverted`);
  }
  const now = await host.inactiveXml?.('domain', vm) ?? null;
  const definitionDrift = now && taken.domainXml
    ? xmlDifferences(now, taken.domainXml).map((d) => `${d.path} ${d.change}`) : [];
  const stateNow = dom.active ? 'running' : 'stopped';
  const stateAfter = taken.state === 'running' || taken.state === 'paused' ? 'running' : 'stopped';
  const disks = dom.disks.filter((d) => taken.disks.some((x) => x.target === d.target && x.snapshot === 'internal')).map((d) => ({ target: d.target, path: d.path }));
  const at = takenAt(taken.creationTime);
  const lines = [
    `Revert VirtualMachine/${vm} to Snapshot/${name} (taken ${at}: ${holds(taken.memory)}${taken.description ? `; "${taken.description}"` : ''}):`,
    `  - lost: what the VM's disks hold now (${disks.map((d) => `${d.target} ${d.path}`).join(', ') || 'its disks'})${dom.active ? ', and its running memory' : ''}`,
    `  - state: ${stateNow} → ${stateAfter}${taken.memory === 'internal' ? ' (its memory as saved)' : ''}`,
    definitionDrift.length > 0
      ? `  - definition: the snapshot's differs from the current one (${definitionDrift.join(', ')}): after the revert that is drift, and the manifest rules: the next reconcile (or the watcher) defines it again as declared`
      : '  - definition: the snapshot\'s is the current one',
    '  - the manifests still rule: a state that differs from the declared one is drift too, corrected by the next reconcile',
  ];
  return {
    key: resourceKey(SNAPSHOT_KIND, name), name, vm, taken, takenAt: at, holds: holds(taken.memory),
    stateNow, stateAfter, disks, definitionDrift, lines,
  };
}

/** Revert (the host call), then read what the VM looks like: its state and how long it took. */
export async function revertTo(host: HostPort, p: RevertPreview): Promise<{ ms: number; state: 'running' | 'stopped' }> {
  const started = Date.now();
  await host.revertDomainSnapshot(p.vm, p.name);
  const ms = Date.now() - started;
  const dom = await host.getDomain(p.vm);
  return { ms, state: dom?.active ? 'running' : 'stopped' };
}

/** One row of `virtform snapshot list`. */
export interface SnapshotRow {
  name: string;
  vm: string;
  /** ISO time (from the host, else the record). */
  takenAt: string | null;
  holds: string;
  /** The VM's state when it was taken. */
  state: string | null;
  description: string | null;
  /** present: on the host as recorded; missing: gone (deleted outside virtform); unknown: the host was not asked. */
  onHost: 'present' | 'missing' | 'unknown';
}

/** The Snapshot records with what the host shows of each (one listing per VM); `host` undefined: offline. */
export async function listSnapshots(
  host: HostPort | undefined, records: { name: string; uuid: string | null; details: { config?: unknown; facts?: unknown } }[],
): Promise<SnapshotRow[]> {
  const byVm = new Map<string, SnapshotDetail[]>();
  if (host) {
    const vms = new Set(records.map((r) => recordedOf(r)?.vm).filter((v): v is string => !!v));
    const listed = (await host.snapshot()).domains.filter((d) => vms.has(d.name));
    for (const [vm, l] of await host.listDomainSnapshots(listed)) byVm.set(vm, l);
  }
  return records.map((r): SnapshotRow => {
    const rec = recordedOf(r);
    const f = r.details.facts as Partial<SnapshotFacts> | undefined;
    const d = rec ? byVm.get(rec.vm)?.find((s) => s.name === r.name) : undefined;
    const time = d?.creationTime ?? f?.creationTime;
    return {
      name: r.name, vm: rec?.vm ?? '?', takenAt: time !== undefined ? takenAt(time) : null,
      holds: holds(d?.memory ?? f?.memory ?? 'no'), state: d?.state ?? f?.state ?? null, description: d?.description ?? null,
      onHost: !host ? 'unknown' : d && (rec?.creationTime === undefined || d.creationTime === rec.creationTime) ? 'present' : 'missing',
    };
  }).sort((a, b) => a.vm.localeCompare(b.vm) || a.name.localeCompare(b.name));
}
