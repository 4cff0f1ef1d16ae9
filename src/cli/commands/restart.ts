/**
 * `virtform restart VM… [--force] [--all-pending]` (issue 24): restart VMs so that they boot with
 * what their persistent definition holds (the changes `reconcile` marked restart required), through
 * the engine's journaled steps (`src/reconcile/restart.ts`). Needs the writer lease: while a
 * watcher holds it, the restart is queued as a request the watcher carries out (src/watch/restart-request.ts)
 * and its outcome printed; `--no-queue`: exit 1 naming the holder.
 *
 * Exit codes: 0 restarted (or nothing pending with --all-pending); 1 a step failed, the DB is
 * suspended, the lease is held, libvirt or the DB cannot be reached; 2 invalid request, nothing
 * changed: no VM named, an unknown or unmanaged VM, one declared stopped or with
 * `metadata.reconcile: disabled` (the request is refused whole).
 */
import { EXIT, errorMessage, leaseTiming, openStore, retryPolicy, useColor, verifyHostIdentity, type LeaseFlags } from '../common.js';
import { openHost, type LibvirtHostOptions } from '../../reconcile/adapters/libvirt-host.js';
import { crashAtBoundary, faultWrapperFromEnv } from '../../reconcile/faults.js';
import { restartGuests, restartRefusals, restartReport, type RestartReport } from '../../reconcile/restart.js';
import type { Lease, StateStore } from '../../state/index.js';
import { leaseOrQueue } from '../lease-or-queue.js';
import type { HostPort } from '../../reconcile/ports.js';
import { renderApplyEvent } from '../render.js';
import { ProgressLine } from '../progress.js';
import { suspendedText } from './reconcile.js';
import { whoAmI } from './suspend.js';

export interface RestartFlags extends LeaseFlags {
  uri: string;
  db?: string;
  dataDir?: string;
  domainType?: LibvirtHostOptions['domainType'];
  force?: boolean;
  allPending?: boolean;
  shutdownTimeout: number;
  json?: boolean;
  color?: boolean;
  maxAttempts: number;
  retryDelay: number;
  lockTimeout?: number;
  /** `--no-queue` (commander: `queue: false`): never queue the request to a running watcher. */
  queue?: boolean;
  /** `--queue-timeout` seconds. */
  queueTimeout?: number;
}

export async function runRestart(names: string[], o: RestartFlags): Promise<number> {
  const out = (s: string): void => void process.stdout.write(s);
  const err = (s: string): void => void process.stderr.write(s);
  const style = { color: !o.json && useColor(o.color) };
  const json = (doc: Record<string, unknown>): void => {
    if (o.json) out(`${JSON.stringify(doc, null, 2)}\n`);
  };
  const print = (r: RestartReport): number => {
    if (!o.json) for (const l of r.out) out(`${l}\n`);
    for (const l of r.err) err(`virtform: ${l}\n`);
    json(r.json);
    return r.exitCode;
  };
  const invalid = (message: string): number => {
    err(`virtform: ${message}\n`);
    json({ outcome: 'refused', error: message, refused: [] });
    return EXIT.invalid;
  };
  if (names.length === 0 && !o.allPending) return invalid('name the VMs to restart, or --all-pending; nothing was changed');
  const lease = leaseTiming(o);
  if (!lease.ok) return invalid(lease.message);

  let store: StateStore;
  try {
    store = await openStore(o.db, { mustExist: true, dataDir: o.dataDir });
  } catch (e) {
    err(`virtform: ${errorMessage(e)}\n`);
    json({ outcome: 'error', error: errorMessage(e) });
    return EXIT.failure;
  }
  let host: HostPort | undefined;
  let writer: Lease | undefined;
  const abort = new AbortController();
  const onSignal = (signal: NodeJS.Signals): void => {
    if (abort.signal.aborted) {
      writer?.releaseSync();
      err(`virtform: interrupted by ${signal}; the journal records the step in flight and the next run finishes it\n`);
      process.exit(signal === 'SIGINT' ? 130 : 143);
    }
    abort.abort();
    err(`virtform: ${signal}: finishing the steps in flight, starting no new ones (again to stop at once)\n`);
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  try {
    const h = await openHost(o.uri, { domainType: o.domainType });
    host = h;
    await verifyHostIdentity(store, h, { record: false });
    // Checked before anything runs or is queued: an invalid request changes nothing (exit 2).
    const refused = await restartRefusals(h, store, names);
    if (refused.length > 0) return print(restartReport({ outcome: 'refused', refused }, (x) => suspendedText(store.path, x)));
    // The writer lease, or (held by a watcher) a request it carries out; --no-queue: exit 1 naming the holder.
    const got = await leaseOrQueue(store, {
      command: `virtform restart ${o.allPending ? '--all-pending ' : ''}${names.join(' ')}`.trim(), timing: lease.timing,
      lockTimeoutMs: (o.lockTimeout ?? 0) * 1000, noQueue: o.queue === false,
      ...(o.queueTimeout !== undefined ? { queueTimeoutMs: o.queueTimeout * 1000 } : {}),
      type: 'restart', args: { vms: names, allPending: o.allPending === true, graceful: o.force !== true, shutdownTimeoutMs: o.shutdownTimeout * 1000, by: whoAmI() },
      signal: abort.signal, err,
    });
    if ('refused' in got) {
      const m = got.refused.replace('nothing was done', 'nothing was restarted');
      err(`virtform: ${m}\n`);
      json({ outcome: 'not-queued', error: m });
      return EXIT.failure;
    }
    if ('request' in got) {
      const r = got.request;
      const outcome = r.outcome ?? { ok: false, exitCode: 1, message: `request ${r.id} ended ${r.status}` };
      if (o.json) out(`${JSON.stringify({ request: { id: r.id, status: r.status, claimedBy: r.claimedBy }, ...(outcome.result ?? { outcome: r.status, error: outcome.message }) }, null, 2)}\n`);
      else if (outcome.output) out(`${outcome.output}\n`);
      err(`virtform: request ${r.id} ${r.status} (by the watcher ${r.claimedBy ?? '?'}): ${outcome.message}\n`);
      return outcome.exitCode;
    }
    const w = got.lease;
    writer = w;
    w.keepAlive({ onLost: (why) => err(`virtform: ${why}: no further change is made to libvirt\n`) });
    const effectiveHost = faultWrapperFromEnv()?.(h) ?? h;
    const progress = new ProgressLine({ write: err, isTTY: process.stderr.isTTY === true }, o.json === true);
    const crashAt = Number(process.env.VIRTFORM_TEST_CRASH_AT ?? 0);
    const result = await restartGuests({
      host: effectiveHost, store, names, allPending: o.allPending === true, graceful: o.force !== true,
      shutdownTimeoutMs: o.shutdownTimeout * 1000, retry: retryPolicy(o), signal: abort.signal, by: whoAmI(),
      guard: () => w.refusal(),
      boundary: crashAt > 0 ? crashAtBoundary(crashAt, (l) => err(`[test] crashing at boundary ${crashAt}: ${l}\n`)) : undefined,
      onEvent: (e) => {
        if (progress.handle(e)) return;
        const line = renderApplyEvent(e, style);
        progress.clear();
        if (line) (o.json ? err : out)(`${line}\n`);
      },
    });
    return print(restartReport(result, (x) => suspendedText(store.path, x)));
  } catch (e) {
    if (abort.signal.aborted && e === abort.signal.reason) {
      err('virtform: interrupted while waiting for the writer lease; nothing was changed\n');
      return EXIT.failure;
    }
    err(`virtform: ${errorMessage(e)}\n`);
    json({ outcome: 'error', error: errorMessage(e) });
    return EXIT.failure;
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    // safe-catch: cleanup in finally; the outcome is already decided and reported
    await host?.close().catch(() => undefined);
    // safe-catch: cleanup in finally; a lease left behind expires and is taken over
    await writer?.release().catch(() => undefined);
    // safe-catch: cleanup in finally; SQLite keeps what was committed
    await store.close().catch(() => undefined);
  }
}
