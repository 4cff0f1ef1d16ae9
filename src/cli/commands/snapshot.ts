/**
 * `virtform snapshot revert NAME` and `virtform snapshot list` (issue 24). Snapshots are declared
 * (kind Snapshot, taken by reconcile); restoring one is the only imperative part: it changes the
 * VM's disks (and memory) and is not desired state. A revert needs consent (`--allow-data-loss`:
 * what the VM's disks hold now is lost) and the writer lease; it is journaled like a step
 * (src/reconcile/snapshot-revert.ts). While a watcher holds the lease, the revert is queued as a
 * `snapshot-revert` request the watcher carries out (src/watch/snapshot-request.ts), and its
 * outcome printed; `--no-queue` refuses instead (exit 1, naming the holder). Afterwards the
 * manifests still rule: the output names the drift the revert leaves (definition, state) for the
 * next reconcile (or the watcher's next run) to correct.
 */
import { EXIT, errorMessage, leaseTiming, openStore, verifyHostIdentity, type LeaseFlags } from '../common.js';
import { openHost, type LibvirtHostOptions } from '../../reconcile/adapters/libvirt-host.js';
import { HostError, type HostPort } from '../../reconcile/ports.js';
import { SNAPSHOT_KIND, listSnapshots } from '../../reconcile/kinds/index.js';
import { HELD_REVERT, UnknownSnapshotError, revertPreview, revertSnapshot, revertSummary, revertedLines } from '../../reconcile/snapshot-revert.js';
import { StateDbMissingError, type Lease, type RequestRecord, type StateStore } from '../../state/index.js';
import { LOCAL_HOST } from '../../model/kinds.js';
import { printable } from '../../util/printable.js';
import { crashAtBoundary } from '../../reconcile/faults.js';
import { leaseOrQueue } from '../lease-or-queue.js';

export interface SnapshotFlags extends LeaseFlags {
  uri: string;
  db?: string;
  dataDir?: string;
  json?: boolean;
  domainType?: LibvirtHostOptions['domainType'];
}

const out = (s: string): void => void process.stdout.write(s);
const err = (s: string): void => void process.stderr.write(s);

async function open(o: SnapshotFlags): Promise<{ store: StateStore } | { code: number }> {
  try {
    return { store: await openStore(o.db, { mustExist: true, dataDir: o.dataDir }) };
  } catch (e) {
    err(`virtform: ${e instanceof StateDbMissingError ? e.message : errorMessage(e)}\n`);
    return { code: EXIT.failure };
  }
}

export async function runSnapshotList(o: SnapshotFlags & { offline?: boolean }): Promise<number> {
  const opened = await open(o);
  if ('code' in opened) return opened.code;
  const { store } = opened;
  let host: HostPort | undefined;
  try {
    if (!o.offline) {
      host = await openHost(o.uri, { domainType: o.domainType });
      await verifyHostIdentity(store, host, { record: false });
    }
    const records = await store.resources.list({ kind: SNAPSHOT_KIND, host: LOCAL_HOST });
    const rows = await listSnapshots(host, records);
    if (o.json) {
      out(`${JSON.stringify({ snapshots: rows }, null, 2)}\n`);
      return EXIT.ok;
    }
    if (rows.length === 0) {
      out('No snapshots managed by virtform in this state DB.\n');
      return EXIT.ok;
    }
    const table = [['NAME', 'VM', 'TAKEN', 'HOLDS', 'VM WAS', 'ON HOST'], ...rows.map((r) => [r.name, r.vm, r.takenAt ?? '?', r.holds, r.state ?? '?', r.onHost])];
    const widths = table[0]!.map((_, i) => Math.max(...table.map((row) => row[i]!.length)));
    out(printable(`${table.map((row) => row.map((c, i) => c.padEnd(widths[i]!)).join('  ').trimEnd()).join('\n')}\n`, { keepNewlines: true }));
    return EXIT.ok;
  } catch (e) {
    err(`virtform: ${errorMessage(e)}\n`);
    return EXIT.failure;
  } finally {
    // safe-catch: cleanup in finally; the command's own outcome is already decided and reported
    await host?.close().catch(() => undefined);
    // safe-catch: cleanup in finally; a read-only command wrote nothing
    await store.close().catch(() => undefined);
  }
}

export interface RevertFlags extends SnapshotFlags {
  allowDataLoss?: boolean;
  /** commander's `--no-queue`: false when given. */
  queue?: boolean;
  /** `--queue-timeout` seconds. */
  queueTimeout?: number;
  lockTimeout?: number;
}

export async function runSnapshotRevert(name: string, o: RevertFlags): Promise<number> {
  const lease = leaseTiming(o);
  if (!lease.ok) {
    err(`virtform: ${lease.message}\n`);
    return EXIT.invalid;
  }
  const opened = await open(o);
  if ('code' in opened) return opened.code;
  const { store } = opened;
  let host: HostPort | undefined;
  let writer: Lease | undefined;
  const json = (doc: Record<string, unknown>): void => {
    if (o.json) out(`${JSON.stringify(doc, null, 2)}\n`);
  };
  try {
    host = await openHost(o.uri, { domainType: o.domainType });
    await verifyHostIdentity(store, host, { record: false });
    // Read-only first: the plan of the revert, and the refusal without consent (no lease needed).
    const preview = await revertPreview(host, store, name);
    if (!o.json) out(printable(`${preview.lines.join('\n')}\n`, { keepNewlines: true }));
    if (!o.allowDataLoss) {
      if (!o.json) out(`\nNothing was changed (${HELD_REVERT}).\n`);
      json({ outcome: 'held', held: HELD_REVERT, ...revertSummary(preview) });
      return EXIT.failure;
    }
    const got = await leaseOrQueue(store, {
      command: `virtform snapshot revert ${name}`, timing: lease.timing, lockTimeoutMs: (o.lockTimeout ?? 0) * 1000,
      noQueue: o.queue === false, ...(o.queueTimeout !== undefined ? { queueTimeoutMs: o.queueTimeout * 1000 } : {}),
      type: 'snapshot-revert', args: { name, allowDataLoss: true }, err,
    });
    if ('refused' in got) {
      err(`virtform: ${got.refused}\n`);
      json({ outcome: 'not-queued', error: got.refused, ...revertSummary(preview) });
      return EXIT.failure;
    }
    if ('request' in got) return reportRequest(got.request, o.json === true);
    writer = got.lease;
    writer.keepAlive({ onLost: (why) => err(`virtform: ${why}: the revert is not made\n`) });
    const w = writer;
    host.setMutationGuard?.(() => w.refusal());
    // The crash matrix's hook (VIRTFORM_TEST_CRASH_AT): after the entry is journaled, and after the revert before it is closed.
    const crashAt = Number(process.env.VIRTFORM_TEST_CRASH_AT ?? 0);
    const boundary = crashAt > 0 ? crashAtBoundary(crashAt, (l) => err(`[test] crashing at boundary ${crashAt}: ${l}\n`)) : undefined;
    const r = await revertSnapshot(host, store, name, { allowDataLoss: true, guard: () => w.refusal(), ...(boundary ? { boundary } : {}) });
    if (r.outcome !== 'reverted') throw new Error('internal error: a consented revert was held');
    if (!o.json) out(`\n${revertedLines(r).join('\n')}\n`);
    json({ outcome: 'reverted', ms: r.ms, state: r.state, ...revertSummary(r.preview) });
    return EXIT.ok;
  } catch (e) {
    if (e instanceof UnknownSnapshotError) {
      err(`virtform: ${e.message}\n`);
      json({ outcome: 'invalid', error: e.message });
      return EXIT.invalid;
    }
    err(`virtform: ${errorMessage(e)}${e instanceof HostError && e.code === 'not-found' ? '; nothing was changed' : ''}\n`);
    json({ outcome: 'error', error: errorMessage(e) });
    return EXIT.failure;
  } finally {
    // safe-catch: cleanup in finally; the command's own outcome is already decided and reported
    await host?.close().catch(() => undefined);
    // safe-catch: cleanup in finally; a lease left behind expires and is taken over
    await writer?.release().catch(() => undefined);
    // safe-catch: cleanup in finally; SQLite keeps what was committed
    await store.close().catch(() => undefined);
  }
}

/** A revert the lease holder (a watcher) carried out: its output and outcome, as the command itself would print them. */
function reportRequest(r: RequestRecord, asJson: boolean): number {
  const o = r.outcome;
  if (!o) {
    err(`virtform: request ${r.id} ended ${r.status} without an outcome\n`);
    return EXIT.failure;
  }
  if (asJson) out(`${JSON.stringify({ request: r.id, by: r.claimedBy, ...(o.result ?? { outcome: o.ok ? 'reverted' : 'failed', message: o.message }) }, null, 2)}\n`);
  else {
    out(`\n(carried out by the lease holder, ${r.claimedBy ?? '?'}, as request ${r.id})\n`);
    if (o.output) out(printable(`${o.output.split('\n').slice(-2).join('\n')}\n`, { keepNewlines: true }));
    if (!o.ok) err(`virtform: ${o.message}\n`);
  }
  return o.exitCode;
}
