/**
 * `virtform snapshot revert NAME` and `virtform snapshot list` (issue 24). Snapshots are declared
 * (kind Snapshot, taken by reconcile); restoring one is the only imperative part: it changes the
 * VM's disks (and memory) and is not desired state. A revert needs consent (`--allow-data-loss`:
 * what the VM's disks hold now is lost) and the writer lease; it is journaled like a step (an entry
 * for the Snapshot resource, action `snapshot.revert`), so an interrupted revert is visible in the
 * journal and the next reconcile re-records the snapshot. Afterwards the manifests still rule: the
 * output names the drift the revert leaves (definition, state) for the next reconcile to correct.
 *
 * While another process (a watcher) holds the writer lease the revert is refused, exit 1, naming
 * the holder (`--no-queue` says so explicitly; queueing through the watcher comes with the request
 * queue of saved plans).
 */
import { randomUUID } from 'node:crypto';
import { EXIT, errorMessage, leaseTiming, openStore, verifyHostIdentity, type LeaseFlags } from '../common.js';
import { openHost, type LibvirtHostOptions } from '../../reconcile/adapters/libvirt-host.js';
import { HostError, type HostPort } from '../../reconcile/ports.js';
import { SNAPSHOT_KIND, listSnapshots, previewRevert, revertTo, type RevertPreview } from '../../reconcile/kinds/index.js';
import { LeaseHeldError, StateDbMissingError, type Lease, type StateStore } from '../../state/index.js';
import { LOCAL_HOST } from '../../model/kinds.js';
import { printable } from '../../util/printable.js';
import { crashAtBoundary } from '../../reconcile/faults.js';

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

export async function runSnapshotRevert(name: string, o: SnapshotFlags & { allowDataLoss?: boolean; queue?: boolean }): Promise<number> {
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
  const summary = (p: RevertPreview): Record<string, unknown> => ({
    snapshot: p.key, vm: p.vm, takenAt: p.takenAt, holds: p.holds, description: p.taken.description ?? null,
    stateBefore: p.stateNow, stateAfter: p.stateAfter, disksLost: p.disks, definitionDrift: p.definitionDrift,
  });
  try {
    const rec = await store.resources.get({ kind: SNAPSHOT_KIND, name, host: LOCAL_HOST });
    if (!rec || !rec.uuid) {
      const m = `no Snapshot named ${name} taken by virtform in ${store.path} (\`virtform snapshot list\` shows them); nothing was changed`;
      err(`virtform: ${m}\n`);
      json({ outcome: 'invalid', error: m });
      return EXIT.invalid;
    }
    host = await openHost(o.uri, { domainType: o.domainType });
    await verifyHostIdentity(store, host, { record: false });
    const preview = await previewRevert(host, name, rec);
    if (!o.json) out(printable(`${preview.lines.join('\n')}\n`, { keepNewlines: true }));
    if (!o.allowDataLoss) {
      const m = 'held: a revert destroys what the VM\'s disks hold now; to consent, run again with --allow-data-loss';
      if (!o.json) out(`\nNothing was changed (${m}).\n`);
      json({ outcome: 'held', held: m, ...summary(preview) });
      return EXIT.failure;
    }
    try {
      writer = await store.acquireLease({ command: `virtform snapshot revert ${name}` }, lease.timing, { timeoutMs: 0 });
    } catch (e) {
      if (!(e instanceof LeaseHeldError)) throw e;
      const m = `${e.message.replace(/; --lock-timeout.*$/, '')}: a running watcher applies the manifests; the revert was not made ` +
        `(${o.queue === false ? '--no-queue' : 'queueing through the watcher is not available yet: stop it, or retry when it is idle'})`;
      err(`virtform: ${m}\n`);
      json({ outcome: 'refused', error: m, holder: { pid: e.holderPid, host: e.holderHost, command: e.holderCommand }, ...summary(preview) });
      return EXIT.failure;
    }
    writer.keepAlive({ onLost: (why) => err(`virtform: ${why}: the revert is not made\n`) });
    host.setMutationGuard?.(() => writer?.refusal());
    // The crash matrix's hook (VIRTFORM_TEST_CRASH_AT): after the entry is journaled, and after the revert before it is closed.
    const crashAt = Number(process.env.VIRTFORM_TEST_CRASH_AT ?? 0);
    const boundary = crashAt > 0 ? crashAtBoundary(crashAt, (l) => err(`[test] crashing at boundary ${crashAt}: ${l}\n`)) : undefined;
    const earlier = (await store.journal.listUnresolved()).filter((j) => j.kind === SNAPSHOT_KIND && j.name === name && j.action === 'snapshot.revert');
    const id = await store.journal.begin({ kind: SNAPSHOT_KIND, name, host: LOCAL_HOST, runId: randomUUID(), action: 'snapshot.revert', intent: { vm: preview.vm } });
    boundary?.(`${SNAPSHOT_KIND}/${name} snapshot.revert journaled`);
    let done: { ms: number; state: 'running' | 'stopped' };
    try {
      done = await revertTo(host, preview);
    } catch (e) {
      await store.journal.finish(id, 'failed', errorMessage(e));
      throw e;
    }
    boundary?.(`${SNAPSHOT_KIND}/${name} snapshot.revert done`);
    await store.journal.finish(id, 'succeeded');
    // A revert interrupted earlier (its entry left open or failed) is finished by this one.
    if (earlier.length > 0) await store.journal.resolve(earlier.map((j) => j.id));
    await store.events.append({ level: 'info', ref: { kind: SNAPSHOT_KIND, name, host: LOCAL_HOST }, message: `reverted VirtualMachine ${preview.vm} to snapshot ${name} (taken ${preview.takenAt}) in ${done.ms} ms` });
    if (!o.json) {
      out(`\nReverted VirtualMachine/${preview.vm} to Snapshot/${name} in ${(done.ms / 1000).toFixed(2)}s; the VM is ${done.state}.\n`);
      if (preview.definitionDrift.length > 0) out('Its definition is now the snapshot\'s: drift from the manifest, corrected by the next reconcile.\n');
    }
    json({ outcome: 'reverted', ms: done.ms, state: done.state, ...summary(preview) });
    return EXIT.ok;
  } catch (e) {
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
