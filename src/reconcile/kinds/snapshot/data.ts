/**
 * The data rule of the Snapshot kind: a snapshot is data. Deleting one (its manifest removed)
 * destroys what it saved (the disks' state then, and the memory when taken): held without
 * `--allow-data-loss`. So is deleting a VM that has snapshots no Snapshot deletion of this plan
 * accounts for (made outside virtform: undefining the domain drops their metadata, and the VM's
 * volumes go with it); a VM whose Snapshot resources are held is held by `safety.ts` already (it is
 * torn down while something held needs it).
 */
import { hostOf, resourceKey } from '../../../model/kinds.js';
import type { DataLoss, ResourceChange } from '../../core/change.js';
import { definitionOf, type Observed } from '../../core/observed.js';
import type { DataRuleContext } from '../../core/kind.js';
import type { SnapshotDetail } from '../../../model/definitions.js';
import type { SnapshotFacts } from './types.js';
import { recordedFacts } from '../../core/change.js';

const at = (seconds: number): string => new Date(seconds * 1000).toISOString().replace(/\.000Z$/, 'Z');
const what = (memory: string | undefined): string => (memory === 'internal' ? 'disks and memory' : 'disks');

function describe(d: SnapshotDetail | undefined, f: Partial<SnapshotFacts>, vm: string | undefined): string {
  const time = d?.creationTime ?? f.creationTime;
  return `snapshot of VirtualMachine/${vm ?? '?'}${time !== undefined ? ` taken ${at(time)}` : ''} (${what(d?.memory ?? f.memory)})`;
}

export async function snapshotDataLoss(changes: ResourceChange[], ctx: DataRuleContext): Promise<Map<string, DataLoss>> {
  const out = new Map<string, DataLoss>();
  const observed: Observed = ctx.observed;
  const deleting = new Set<string>();
  for (const c of changes) {
    if (c.kind !== 'Snapshot' || c.release || c.action === 'conflict') continue;
    const del = c.steps.find((s) => s.op === 'snapshot.delete') as { vm?: string } | undefined;
    if (!del) continue;
    const d = definitionOf(observed, 'Snapshot', c.key);
    if (!d && c.ownership === 'absent') continue; // nothing left to destroy
    deleting.add(`${del.vm ?? ''}/${c.name}`);
    out.set(c.key, { volume: c.key, why: [describe(d, recordedFacts(observed, c.key) as Partial<SnapshotFacts>, del.vm)] });
  }
  // A VM deleted (or replaced) with snapshots of its own that no Snapshot deletion above accounts for.
  for (const c of changes) {
    if (c.kind !== 'VirtualMachine' || c.action === 'conflict' || c.release) continue;
    if (c.action !== 'replace' && !c.steps.some((s) => s.op === 'vm.delete')) continue;
    if (!observed.domains.has(c.name)) continue;
    const listed = LISTED.get(observed)?.get(c.name);
    const names = listed?.map((s) => s.name);
    const count = names ? names.length : ctx.host ? await ctx.host.domainSnapshotCount?.(c.name) ?? 0 : 0;
    const others = names ? names.filter((n) => !deleting.has(`${c.name}/${n}`)) : undefined;
    const left = others ? others.length : count;
    if (left === 0) continue;
    out.set(c.key, {
      volume: resourceKey('VirtualMachine', c.name, hostOf(observed)),
      why: [`has ${left} snapshot${left === 1 ? '' : 's'}${others ? ` (${others.join(', ')})` : ''}: deleting the VM deletes ${left === 1 ? 'it' : 'them'}`],
    });
  }
  return out;
}

/** Every snapshot of the domains observe listed for Snapshot resources, by domain name, per observation (set by the kind's readDefinitions). */
export const LISTED = new WeakMap<Observed, Map<string, SnapshotDetail[]>>();
