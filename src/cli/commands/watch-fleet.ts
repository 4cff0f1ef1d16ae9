/**
 * `virtform watch DIR` when the folder declares Host manifests: the fleet loop (src/fleet/watch.ts)
 * under the writer lease (a standby waits for it). JSON log lines on stderr; a signal stops it
 * (exit 0). With `--listen`, the same endpoints as the single-host watcher (src/watch/http.ts over
 * src/fleet/watch-status.ts), served from the start (a standby answers too). No lifecycle events
 * yet: the fleet is reconciled at the resync interval, sooner while a host is unreachable (retried
 * with backoff), and never rebalanced.
 */
import { loadManifests, formatManifestError, type DesiredState, type Policy } from '../../manifest/index.js';
import { openHost } from '../../reconcile/adapters/libvirt-host.js';
import type { MaxDeletions } from '../../reconcile/safety.js';
import type { LeaseTiming, Lease, StateStore } from '../../state/index.js';
import { fleetParts } from '../../fleet/parts.js';
import { refusedTransports } from '../../fleet/connect.js';
import { watchFleet, type FleetLogger } from '../../fleet/watch.js';
import { FleetWatchStatus } from '../../fleet/watch-status.js';
import { refuseRequests, startStatusServer, type ListenAddress, type StatusServer } from '../../watch/index.js';
import { EXIT, errorMessage, openStore, retryPolicy } from '../common.js';

export interface FleetWatchFlags {
  db?: string; dataDir?: string; resync: number; concurrency: number; maxAttempts: number; retryDelay: number;
  shutdownTimeout: number; stopTimeout?: number; reconnectMax?: number; maxDeletions?: MaxDeletions; insecure?: boolean;
  domainType?: 'auto' | 'kvm' | 'qemu';
}

/** `--listen` (parsed) and `--allowed-host` names: the HTTP listener, none when `listen` is undefined. */
export interface FleetListen {
  listen?: ListenAddress;
  allowedHosts: string[];
}

export async function runFleetWatch(dir: string, o: FleetWatchFlags, policy: Policy | undefined, timing: LeaseTiming, log: FleetLogger & { debug(m: string, f?: Record<string, unknown>): void }, http: FleetListen = { allowedHosts: [] }): Promise<number> {
  const load = async (): Promise<{ ok: true; state: DesiredState } | { ok: false; errors: string[] }> => {
    const r = await loadManifests(dir, { policy });
    if (!r.ok) return { ok: false, errors: r.errors.map(formatManifestError) };
    const refused = refusedTransports(r.desired.hosts, o.insecure === true);
    if (refused.length > 0) return { ok: false, errors: refused.map((x) => x.message) };
    return { ok: true, state: r.desired };
  };
  const first = await load();
  if (!first.ok) {
    log.error('manifest error', { errors: first.errors });
    return EXIT.invalid;
  }
  let store: StateStore | undefined;
  let lease: Lease | undefined;
  let server: StatusServer | undefined;
  let status: FleetWatchStatus | undefined;
  const abort = new AbortController();
  const onSignal = (s: NodeJS.Signals): void => {
    if (abort.signal.aborted) {
      lease?.releaseSync();
      process.exit(s === 'SIGINT' ? 130 : 143);
    }
    log.info('shutdown requested', { signal: s });
    status?.stopping();
    abort.abort();
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  let requestRefuser: NodeJS.Timeout | undefined;
  try {
    store = await openStore(o.db, { dataDir: o.dataDir });
    log.info('starting (fleet)', { dir, hosts: first.state.hosts.map((h) => h.id), db: store.path, pid: process.pid });
    // The listener first: a standby answers /healthz, /readyz (503, saying why) and /status too.
    status = new FleetWatchStatus({ dir, store, open: (h) => openHost(h.uri, {}) });
    status.manifests(first);
    if (http.listen) {
      server = await startStatusServer(status, http.listen, log, { allowedHosts: http.allowedHosts });
      log.info('listening', { host: server.host, port: server.port, url: `http://${server.host.includes(':') ? `[${server.host}]` : server.host}:${server.port}/` });
    }
    lease = await store.acquireLease({ command: `virtform watch ${dir}` }, timing, {
      timeoutMs: Infinity, signal: abort.signal,
      onHeld: (e) => log.info('standby: waiting for the writer lease', { holder: e.message }),
    });
    const held = lease;
    status.leading(held);
    // Requests (reconcile --plan, restart, …) are not carried out by the fleet watch yet: refused at once, not left waiting.
    requestRefuser = setInterval(() => {
      void refuseRequests(store!, `${held.holder}@${held.epoch}`, 'the writer lease is held by a fleet watch (Host manifests), which carries out no requests yet')
        .catch((e: unknown) => log.warn('refusing queued requests failed', { error: errorMessage(e) }));
    }, 1000);
    const fleetStatus = status;
    held.keepAlive({ onLost: (why) => {
      log.error('writer lease lost: no further change is made; stopping', { reason: why });
      status?.stopping();
      abort.abort();
    } });
    await watchFleet({
      load, store, parts: fleetParts(), logger: log, signal: abort.signal, domainType: o.domainType,
      open: (uri, opts) => openHost(uri, { domainType: opts.domainType }),
      resyncMs: o.resync * 1000,
      onLoad: (r) => fleetStatus.manifests(r),
      onCycleStart: () => fleetStatus.cycleStarted(),
      onCycle: (r) => fleetStatus.cycleFinished(r),
      onCycleError: (e) => fleetStatus.cycleFailed(e),
      retry: { baseMs: 1000, maxMs: (o.reconnectMax ?? 30) * 1000 },
      engine: {
        concurrency: o.concurrency, retry: retryPolicy(o), maxDeletions: o.maxDeletions,
        shutdownTimeoutMs: o.shutdownTimeout * 1000, stopTimeoutMs: (o.stopTimeout ?? 30) * 1000,
        guard: () => held.refusal(),
      },
    });
    return EXIT.ok;
  } catch (e) {
    if (abort.signal.aborted) return EXIT.ok;
    log.error('watch failed', { error: errorMessage(e) });
    return EXIT.failure;
  } finally {
    clearInterval(requestRefuser);
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    status?.stopping();
    // safe-catch: cleanup in finally; the watch outcome is already decided and logged
    await server?.close().catch(() => undefined);
    // safe-catch: cleanup in finally; a lease left behind expires and is taken over
    await lease?.release().catch(() => undefined);
    // safe-catch: cleanup in finally; SQLite keeps what was committed
    await store?.close().catch(() => undefined);
  }
}
