/**
 * Cold moves of volumes: a volume recorded on host A and declared on host B is copied through
 * libvirt's sparse download (A) and upload (B) streams, hashed as it leaves A (holes as zeros: the
 * sha256 of the logical content), read back from B and compared (a second transfer: libvirt has no
 * remote hash call), and only then deleted on A. The copy's hash and whether B's copy verified are
 * facts of B's record (`move`), so a run after a crash knows: verified → finish (delete A's);
 * otherwise → copy again (B's partial file is ours: its journal entry or record says so).
 */
import { createHash, type Hash } from 'node:crypto';
import { hostOf, resourceKey } from '../../../model/kinds.js';
import { formatSize } from '../../../manifest/index.js';
import { HostError, type HostPort, type VolumeHole } from '../../ports.js';
import { fieldChanges, recordedConfig, recordedFacts, type ResourceChange } from '../../core/change.js';
import { definitionOf, runningDiskHolders } from '../../core/observed.js';
import type { ExecContext, MoveContext } from '../../core/kind.js';
import type { DesiredVolume, MoveFact, VolumeConfig, VolumeOp } from './types.js';

const ZEROS = Buffer.alloc(1024 * 1024);

/** Feed `n` zero bytes to the hash (a hole of the sparse stream is that much logical content). */
function hashZeros(hash: Hash, n: number): void {
  for (let left = n; left > 0; left -= ZEROS.length) hash.update(left >= ZEROS.length ? ZEROS : ZEROS.subarray(0, left));
}

export function moveFactOf(facts: Record<string, unknown>): MoveFact | undefined {
  const m = facts.move as Partial<MoveFact> | undefined;
  return m && typeof m.sha256 === 'string' && typeof m.from === 'string' ? (m as MoveFact) : undefined;
}

/** The move's two changes (see `KindHandler.move`). */
export function moveVolume(m: MoveContext<DesiredVolume>): { source: ResourceChange; target?: ResourceChange } | undefined {
  const from = hostOf(m.from);
  const to = hostOf(m.to);
  const d = m.desired;
  const c = d.config;
  const del = m.source.steps.find((s) => s.op === 'volume.delete') as Extract<VolumeOp, { op: 'volume.delete' }> | undefined;
  const prev = m.source.previous as VolumeConfig | undefined;
  const moveSource = { from, to, role: 'source' as const, partner: d.key };
  const moveTarget = { from, to, role: 'target' as const, partner: m.source.key };
  const conflict = (why: string): { source: ResourceChange; target?: ResourceChange } => ({
    source: { ...m.source, action: 'conflict', steps: [], reason: why, move: moveSource },
    ...(m.target ? { target: m.target } : {}),
  });
  if (!del) return conflict('internal error: no delete step to move');
  if (m.target?.action === 'conflict') return conflict(m.target.reason);

  // Used on A by something that does not move with it: it stays.
  const staying = m.usersOnSource.filter((u) => !m.moving.has(u));
  if (staying.length > 0) return conflict(`it is also used by ${staying.join(', ')} on host ${from}, which does not move`);
  const path = prev?.path ?? c.path;
  const holders = (runningDiskHolders(m.from).get(path) ?? []).filter((n) => !m.moving.has(resourceKey('VirtualMachine', n, from)));
  if (holders.length > 0) return conflict(`running ${holders.map((n) => `VirtualMachine/${n}`).join(', ')} on host ${from} has it open and does not move`);

  // A qcow2 overlay names its base by absolute path: the base must be at that path on B, with
  // the same content: moving with it (copied and verified first: the plan orders the base's copy
  // before the overlay's), or imported there from the same image (spec.source, by sha256).
  const backing = prev?.backingPath ?? definitionOf(m.from, 'Volume', m.source.key)?.backingPath;
  if (backing) {
    if (c.backingPath !== backing) {
      return conflict(`it is a qcow2 overlay of ${backing}, but on host ${to} its base would be ${c.backingPath ?? 'none'}: its base must be at the same path there (a pool with the same path on every host)`);
    }
    const base = c.backingVolume;
    if (base !== undefined) {
      const baseA = resourceKey('Volume', base, from);
      const baseB = resourceKey('Volume', base, to);
      const sha = (key: string, o: typeof m.from): string | undefined =>
        (m.all.byKey.get(key)?.config as Partial<VolumeConfig> | undefined)?.sourceSha256 ?? recordedConfig<VolumeConfig>(o, key)?.sourceSha256;
      const shaA = sha(baseA, m.from);
      const same = m.moving.has(baseA) || (shaA !== undefined && sha(baseB, m.to) === shaA);
      if (!same) {
        return conflict(`it is a qcow2 overlay of ${backing} (Volume ${base}), whose content on host ${to} would not be the same: `
          + `the base must move with it, or be imported on ${to} from the same image (spec.source)`);
      }
    } else if (![...m.to.volumes.values()].some((vols) => [...vols.values()].some((v) => v.key === backing))) {
      return conflict(`it is a qcow2 overlay of ${backing}, which does not exist on host ${to}: its base must be there first, at the same path`);
    }
  }

  // What host B has under that name.
  const onB = m.to.volumes.get(c.pool)?.get(c.volName);
  const fact = moveFactOf(recordedFacts(m.to, d.key));
  const ours = m.to.records.has(d.key) || m.to.openJournal.has(d.key);
  const source: ResourceChange = {
    ...m.source, move: moveSource,
    reason: `moves to host ${to}: deleted there once its copy on ${to} is verified`,
    steps: m.source.steps.map((s) => (s.op === 'volume.delete' ? { ...s, movedTo: to } : s)),
  };
  if (onB && fact?.verified) {
    // Copied and verified by an earlier run: only the source's deletion is left.
    return { source, ...(m.target ? { target: { ...m.target, move: moveTarget } } : {}) };
  }
  if (onB && !ours) return conflict(`a volume ${c.pool}/${c.volName} that virtform did not create exists on host ${to}`);
  // B has its own volume of that name, not a copy of A's (the same name on several hosts): A's is
  // simply no longer declared there, not moving.
  // A record without a config (nor identity) is no volume of B's own: what a failed or interrupted
  // step of an earlier move left there (its status); the move resumes, copy and verify again.
  const own = m.to.records.get(d.key);
  if (own && !fact && (own.uuid || recordedConfig(m.to, d.key) !== undefined)) return undefined;
  const size = definitionOf(m.from, 'Volume', m.source.key)?.capacityBytes ?? c.capacityBytes;
  const shown = size !== undefined ? `up to ${formatSize(size)}` : 'its data';
  const target: ResourceChange = {
    key: d.key, kind: d.kind, name: d.name, host: to, action: 'create',
    reason: `moves from host ${from}: copied through a sparse stream, verified by reading it back`,
    fields: fieldChanges(undefined, c),
    notes: [`copy: ${shown} from ${from} to ${to} (holes are not sent), then the same again read back from ${to} to verify (sha256; two transfers)`],
    steps: [{ op: 'volume.moveCopy', from, pool: del.pool, volName: del.volName }, { op: 'volume.moveVerify', from }],
    desired: d, ownership: m.target?.ownership ?? 'absent', drift: false,
    move: { ...moveTarget, ...(size !== undefined ? { bytes: size } : {}) },
  };
  return { source, target };
}

/** A byte budget per second (`--move-bandwidth`): waits as long as the bytes sent so far are ahead of it. */
function throttle(bytesPerSecond: number | undefined): (n: number) => Promise<void> {
  if (!bytesPerSecond || bytesPerSecond <= 0) return () => Promise.resolve();
  const started = Date.now();
  let sent = 0;
  return async (n) => {
    sent += n;
    const due = started + (sent / bytesPerSecond) * 1000;
    const wait = due - Date.now();
    if (wait > 0) await new Promise((r) => setTimeout(r, wait));
  };
}

/** Stream a volume, hashing its logical content (holes as zeros); `each` sees every chunk. */
async function* hashed(
  src: AsyncIterable<Uint8Array | VolumeHole>, hash: Hash, count: { bytes: number; data: number },
  each: (chunk: Uint8Array | VolumeHole) => Promise<void>,
): AsyncGenerator<Uint8Array | VolumeHole> {
  for await (const chunk of src) {
    if (chunk instanceof Uint8Array) {
      hash.update(chunk);
      count.bytes += chunk.byteLength;
      count.data += chunk.byteLength;
    } else {
      hashZeros(hash, chunk.hole);
      count.bytes += chunk.hole;
    }
    await each(chunk);
    yield chunk;
  }
}

function streamOf(host: HostPort | undefined, what: string): NonNullable<HostPort['downloadVolume']> {
  if (!host?.downloadVolume) throw new HostError('invalid', `${what} cannot stream volumes (no download stream)`);
  return host.downloadVolume.bind(host);
}

/** Progress at most every 500 ms. */
function progressEvery(ctx: ExecContext<DesiredVolume>, phase: 'copy' | 'verify', total: number | undefined, count: { bytes: number }): () => void {
  let last = 0;
  return () => {
    const now = Date.now();
    if (now - last < 500) return;
    last = now;
    ctx.progress?.({ phase, bytes: count.bytes, ...(total !== undefined ? { total } : {}) });
  };
}

export async function executeMove(op: Extract<VolumeOp, { op: 'volume.moveCopy' | 'volume.moveVerify' }>, ctx: ExecContext<DesiredVolume>): Promise<void> {
  const d = ctx.desired!;
  const { pool, volName } = d.config;
  const host = ctx.host;
  if (op.op === 'volume.moveCopy') {
    const src = ctx.peer?.(op.from);
    const download = streamOf(src, `host ${op.from}`);
    const source = await src!.getVolume(op.pool, op.volName);
    if (!source) throw new HostError('not-found', `volume ${op.pool}/${op.volName} is gone from host ${op.from}: nothing to copy`);
    // A file here is an earlier, unverified copy of ours (the plan checked): made again from scratch.
    if (await host.getVolume(pool, volName)) await host.deleteVolume(pool, volName);
    // Created empty and raw: the upload writes the source file as it is (a qcow2 header included);
    // libvirt reads the volume again once the upload is done.
    await host.createVolume({ pool, name: volName, capacityBytes: 0, format: 'raw' });
    ctx.boundary();
    const hash = createHash('sha256');
    const count = { bytes: 0, data: 0 };
    const wait = throttle(ctx.moveBandwidth);
    const tick = progressEvery(ctx, 'copy', source.capacityBytes, count);
    const stream = await download(op.pool, op.volName);
    const data = hashed(stream, hash, count, async (chunk) => {
      if (chunk instanceof Uint8Array) await wait(chunk.byteLength);
      tick();
    });
    try {
      await host.uploadVolume(pool, volName, data, { sparse: true });
    } finally {
      // On any failure of the upload (the target gone before it read a byte, say), the source's
      // download stream is closed too: never left open on the source's connection.
      await closeStream(stream, data);
    }
    const detail = await host.getVolume(pool, volName);
    if (!detail) throw new HostError('not-found', `volume ${pool}/${volName} vanished after the copy`);
    ctx.boundary();
    const fact: MoveFact = { from: op.from, sha256: hash.digest('hex'), bytes: count.bytes, data: count.data, verified: false };
    ctx.progress?.({ phase: 'copy', bytes: count.bytes, total: count.bytes });
    await ctx.record({ uuid: detail.key, observedStatus: 'copied', config: true, facts: { move: fact } });
    return;
  }
  const fact = moveFactOf((await ctx.facts?.()) ?? recordedFacts(ctx.observed, d.key));
  if (!fact) throw new HostError('invalid', `volume ${pool}/${volName} has no recorded copy to verify`);
  const hash = createHash('sha256');
  const count = { bytes: 0, data: 0 };
  const tick = progressEvery(ctx, 'verify', fact.bytes, count);
  for await (const chunk of hashed(await streamOf(host, 'this host')(pool, volName), hash, count, async () => tick())) void chunk;
  const sha256 = hash.digest('hex');
  ctx.boundary();
  if (sha256 !== fact.sha256 || count.bytes !== fact.bytes) {
    // The next run copies again (an unverified copy is never kept, the source never deleted for it).
    await ctx.record({ observedStatus: 'copied', facts: { move: { ...fact, verified: false } } });
    throw new HostError('operation-failed', `copy of volume ${pool}/${volName} from host ${fact.from} does not verify: read back ${count.bytes} bytes with sha256 ${sha256}, sent ${fact.bytes} with ${fact.sha256}`);
  }
  ctx.progress?.({ phase: 'verify', bytes: count.bytes, total: fact.bytes });
  await ctx.record({ observedStatus: 'ready', facts: { move: { ...fact, verified: true } } });
}

/** Ends a download early (destroyed without an error: nothing is emitted); a finished one is left as it is. */
async function closeStream(stream: AsyncIterable<unknown>, data: AsyncGenerator<unknown>): Promise<void> {
  const s = stream as { destroy?: (e?: Error) => void; destroyed?: boolean };
  if (typeof s.destroy === 'function') {
    if (!s.destroyed) s.destroy();
    return;
  }
  // safe-catch: closing a source the copy no longer reads; the copy's own outcome is what counts
  await data.return(undefined).catch(() => undefined);
}

/** Before a move's source is deleted: its copy is still on the target host (the plan ordered the delete after the verify). */
export async function checkMovedCopy(ctx: ExecContext<DesiredVolume>, to: string, pool: string, volName: string): Promise<void> {
  const target = ctx.peer?.(to);
  if (!target) throw new HostError('invalid', `volume ${pool}/${volName} moved to host ${to}, which this run does not connect to: the source is kept`);
  const there = await target.getVolume(pool, volName);
  if (!there) throw new HostError('not-found', `volume ${pool}/${volName} is not on host ${to}: the source is kept`);
}
