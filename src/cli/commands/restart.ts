/**
 * `virtform restart VM… [--force] [--all-pending]` (issue 24): restart VMs so that they boot with
 * what their persistent definition holds (the changes `reconcile` marked restart required), through
 * the engine's journaled steps (`src/reconcile/restart.ts`). Needs the writer lease: while another
 * process holds it (a watcher), exit 1 naming the holder.
 *
 * Exit codes: 0 restarted (or nothing pending with --all-pending); 1 a step failed, the DB is
 * suspended, the lease is held, libvirt or the DB cannot be reached; 2 invalid request, nothing
 * changed: no VM named, an unknown or unmanaged VM, one declared stopped or with
 * `metadata.reconcile: disabled` (the request is refused whole).
 */
import { EXIT, errorMessage, leaseTiming, openStore, retryPolicy, useColor, verifyHostIdentity, type LeaseFlags } from '../common.js';
import { openHost, type LibvirtHostOptions } from '../../reconcile/adapters/libvirt-host.js';
import { crashAtBoundary, faultWrapperFromEnv } from '../../reconcile/faults.js';
import { restartGuests, type RestartResult } from '../../reconcile/restart.js';
import { LeaseHeldError, type Lease, type StateStore } from '../../state/index.js';
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
}

export async function runRestart(names: string[], o: RestartFlags): Promise<number> {
  const out = (s: string): void => void process.stdout.write(s);
  const err = (s: string): void => void process.stderr.write(s);
  const style = { color: !o.json && useColor(o.color) };
  const json = (doc: Record<string, unknown>): void => {
    if (o.json) out(`${JSON.stringify(doc, null, 2)}\n`);
  };
  const invalid = (message: string, refused: { name: string; reason: string }[] = []): number => {
    err(`virtform: ${message}\n`);
    json({ outcome: 'refused', error: message, refused });
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
    host = await openHost(o.uri, { domainType: o.domainType });
    await verifyHostIdentity(store, host, { record: false });
    try {
      writer = await store.acquireLease({ command: `virtform restart ${o.allPending ? '--all-pending ' : ''}${names.join(' ')}`.trim() }, lease.timing, {
        timeoutMs: (o.lockTimeout ?? 0) * 1000,
        signal: abort.signal,
        onHeld: (e) => err(`virtform: waiting up to ${o.lockTimeout} s (--lock-timeout) for the writer lease: ${e.message.replace(/; --lock-timeout.*$/, '')}\n`),
      });
    } catch (e) {
      if (!(e instanceof LeaseHeldError)) throw e;
      // A running watcher holds the lease: the request is not queued to it (yet): exit 1 naming the holder.
      const m = `${e.message.replace(/; --lock-timeout.*$/, '')}; the VMs were not restarted (stop the holder, or run again with --lock-timeout)`;
      err(`virtform: ${m}\n`);
      json({ outcome: 'lease-held', error: m });
      return EXIT.failure;
    }
    writer.keepAlive({ onLost: (why) => err(`virtform: ${why}: no further change is made to libvirt\n`) });
    const effectiveHost = faultWrapperFromEnv()?.(host) ?? host;
    const progress = new ProgressLine({ write: err, isTTY: process.stderr.isTTY === true }, o.json === true);
    const crashAt = Number(process.env.VIRTFORM_TEST_CRASH_AT ?? 0);
    const w = writer;
    const result: RestartResult = await restartGuests({
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
    if (result.outcome === 'refused') {
      for (const r of result.refused) err(`virtform: cannot restart ${r.name}: ${r.reason}\n`);
      err('virtform: nothing was restarted\n');
      json({ outcome: 'refused', refused: result.refused });
      return EXIT.invalid;
    }
    if (result.outcome === 'nothing') {
      if (!o.json) out('No VM has a restart pending.\n');
      json({ outcome: 'nothing', vms: [] });
      return EXIT.ok;
    }
    if (result.outcome === 'suspended') {
      err(`virtform: ${suspendedText(store.path, result.suspension)}; nothing was restarted (\`virtform resume\` lifts it)\n`);
      json({ outcome: 'suspended', suspension: result.suspension, vms: result.targets.map((t) => t.name) });
      return EXIT.failure;
    }
    const vms = result.targets.map((t) => {
      const steps = result.applied.outcomes.filter((s) => s.step.key === t.key);
      const error = result.applied.failed.get(t.key) ?? (result.applied.skipped.has(t.key) ? 'skipped' : undefined);
      return { name: t.name, pending: t.pending ?? null, restarted: !error, ms: steps.reduce((n, s) => n + s.ms, 0), error: error ?? null };
    });
    if (!o.json) {
      for (const v of vms) {
        out(v.restarted
          ? `Restarted ${v.name} (${(v.ms / 1000).toFixed(1)}s)${v.pending ? `: applied ${v.pending.replace(/^restart required for /, '')}` : ''}\n`
          : `Not restarted ${v.name}: ${v.error}\n`);
      }
    }
    json({
      outcome: result.outcome, runId: result.runId, vms, durationMs: result.durationMs,
      steps: result.applied.outcomes.map((s) => ({ resource: s.step.key, op: s.step.op.op, status: s.status, attempts: s.attempts, ms: s.ms, error: s.error ?? null })),
    });
    return result.outcome === 'succeeded' ? EXIT.ok : EXIT.failure;
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
