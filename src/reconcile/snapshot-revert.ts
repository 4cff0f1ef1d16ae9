/**
 * Reverting a VM to a snapshot (`virtform snapshot revert NAME`, issue 24), journaled: the one
 * imperative operation on snapshots. Used by the command when it holds the writer lease, and by a
 * watcher holding it for a queued `snapshot-revert` request (src/watch/snapshot-request.ts). What a
 * revert does and what it leaves as drift is the Snapshot kind's (`previewRevert`, `revertTo`,
 * through the registry); this module adds consent, the journal entry (action `snapshot.revert` on
 * the Snapshot resource; an interrupted one is resolved by the next revert or reconcile), the
 * lease's guard and the crash matrix's boundaries.
 */
import { randomUUID } from 'node:crypto';
import { LOCAL_HOST } from '../model/kinds.js';
import { SNAPSHOT_KIND, previewRevert, revertTo, type RevertPreview } from './kinds/index.js';
import type { HostPort, MutationGuard } from './ports.js';
import type { StateStore } from '../state/index.js';

/** The revert names no snapshot virtform took (bad input: exit 2, nothing changed). */
export class UnknownSnapshotError extends Error {
  override readonly name = 'UnknownSnapshotError';
}

export type RevertResult =
  | { outcome: 'held'; preview: RevertPreview; message: string }
  | { outcome: 'reverted'; preview: RevertPreview; ms: number; state: 'running' | 'stopped' };

export interface RevertOptions {
  /** `--allow-data-loss`: without it the revert is held (the preview only). */
  allowDataLoss: boolean;
  /** The writer lease's check before the mutating call. */
  guard?: MutationGuard;
  /** Crash-test hook: after the entry is journaled, and after the revert before it is closed. */
  boundary?: (label: string) => void;
}

/** What reverting `name` would do (read-only): UnknownSnapshotError when virtform took no snapshot of that name. */
export async function revertPreview(host: HostPort, store: StateStore, name: string): Promise<RevertPreview> {
  const rec = await store.resources.get({ kind: SNAPSHOT_KIND, name, host: LOCAL_HOST });
  if (!rec || !rec.uuid) throw new UnknownSnapshotError(`no Snapshot named ${name} taken by virtform in ${store.path} (\`virtform snapshot list\` shows them); nothing was changed`);
  return previewRevert(host, name, rec);
}

export const HELD_REVERT = 'held: a revert destroys what the VM\'s disks hold now; to consent, run again with --allow-data-loss';

export async function revertSnapshot(host: HostPort, store: StateStore, name: string, o: RevertOptions): Promise<RevertResult> {
  const preview = await revertPreview(host, store, name);
  if (!o.allowDataLoss) return { outcome: 'held', preview, message: HELD_REVERT };
  if (o.guard) {
    const refused = o.guard();
    if (refused) throw new Error(`not reverted: ${refused}`);
  }
  const ref = { kind: SNAPSHOT_KIND, name, host: LOCAL_HOST };
  const earlier = (await store.journal.listUnresolved()).filter((j) => j.kind === SNAPSHOT_KIND && j.name === name && j.action === 'snapshot.revert');
  const id = await store.journal.begin({ ...ref, runId: randomUUID(), action: 'snapshot.revert', intent: { vm: preview.vm } });
  o.boundary?.(`${SNAPSHOT_KIND}/${name} snapshot.revert journaled`);
  let done: { ms: number; state: 'running' | 'stopped' };
  try {
    done = await revertTo(host, preview);
  } catch (e) {
    await store.journal.finish(id, 'failed', e instanceof Error ? e.message : String(e));
    throw e;
  }
  o.boundary?.(`${SNAPSHOT_KIND}/${name} snapshot.revert done`);
  await store.journal.finish(id, 'succeeded');
  // A revert interrupted earlier (its entry left open or failed) is finished by this one.
  if (earlier.length > 0) await store.journal.resolve(earlier.map((j) => j.id));
  await store.events.append({ level: 'info', ref, message: `reverted VirtualMachine ${preview.vm} to snapshot ${name} (taken ${preview.takenAt}) in ${done.ms} ms` });
  return { outcome: 'reverted', preview, ...done };
}

/** The `--json` fields of a revert's preview. */
export function revertSummary(p: RevertPreview): Record<string, unknown> {
  return {
    snapshot: p.key, vm: p.vm, takenAt: p.takenAt, holds: p.holds, description: p.taken.description ?? null,
    stateBefore: p.stateNow, stateAfter: p.stateAfter, disksLost: p.disks, definitionDrift: p.definitionDrift,
  };
}

/** The lines printed after a revert. */
export function revertedLines(r: Extract<RevertResult, { outcome: 'reverted' }>): string[] {
  return [
    `Reverted VirtualMachine/${r.preview.vm} to Snapshot/${r.preview.name} in ${(r.ms / 1000).toFixed(2)}s; the VM is ${r.state}.`,
    ...(r.preview.definitionDrift.length > 0 ? ['Its definition is now the snapshot\'s: drift from the manifest, corrected by the next reconcile.'] : []),
  ];
}
