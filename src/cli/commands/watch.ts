/**
 * `virtform watch DIR`: the long-running GitOps controller. Logs are JSON lines on stderr.
 * Exit codes: 0 after a graceful stop (SIGINT/SIGTERM, also as a standby waiting for the writer
 * lease), 1 runtime failure (listener could not bind, the state DB holds the records of another
 * libvirt host), 2 invalid input (bad flags, bad lease durations, empty folder without --allow-empty).
 */
import {
  EXIT, errorMessage, formatErrors, leaseTiming, notAManifestFolder, openStore, resolvePolicy, retryPolicy, verifyHostIdentity, type LeaseFlags,
} from '../common.js';
import type { MaxDeletions } from '../../reconcile/safety.js';
import { openHost, type LibvirtHostOptions } from '../../reconcile/adapters/libvirt-host.js';
import { faultWrapperFromEnv } from '../../reconcile/faults.js';
import { STOP_GRACE_MS } from './reconcile.js';
import { loadManifests } from '../../manifest/index.js';
import { HostMismatchError, LeaseHeldError, takeoverBoundMs, type StateStore } from '../../state/index.js';
import { GitRepository, GitSync } from '../../git/index.js';
import { GitRepositorySource } from '../../watch/sources/git-repository.js';
import { gitCacheRoot, gitInput, type GitFlags } from '../git.js';
import {
  EmptyManifestsError, WatchController, isLogLevel, jsonLogger, startStatusServer,
  type StatusServer,
} from '../../watch/index.js';
import { dashboardFor, httpSetup, listenUrl, type HttpFlags, type HttpSetup } from '../http-options.js';
import type { Dashboard } from '../../dashboard/data.js';

export interface WatchFlags extends GitFlags, LeaseFlags, HttpFlags {
  uri: string;
  /** auto (default) | kvm | qemu */
  domainType?: LibvirtHostOptions['domainType'];
  db?: string;
  /** `--data-dir`: the folder of the image and git caches. */
  dataDir?: string;
  resync: number;
  /** false with --no-incremental: every run a full read. */
  incremental?: boolean;
  debounce: number;
  listen: string | false;
  /** --allowed-host: more Host header names the HTTP listener answers. */
  allowedHost?: string[];
  logLevel: string;
  concurrency: number;
  maxAttempts: number;
  retryDelay: number;
  shutdownTimeout: number;
  /** Seconds the steps in flight may still run after SIGTERM/SIGINT (default 30). */
  stopTimeout?: number;
  allowEmpty?: boolean;
  reconnectMax?: number;
  requeueMax?: number;
  maxDeletions?: MaxDeletions;
  policy?: string;
  /** Allow plain qemu+tcp to a non-loopback address (every Host). */
  insecure?: boolean;
  /** `--uri` was given (flag or VIRTFORM_URI): refused with Host manifests. */
  uriGiven?: boolean;
}

export async function runWatch(dirArg: string | undefined, o: WatchFlags): Promise<number> {
  if (!isLogLevel(o.logLevel)) {
    process.stderr.write(`virtform: --log-level must be one of debug, info, warn, error\n`);
    return EXIT.invalid;
  }
  const log = jsonLogger({ level: o.logLevel });
  let http: HttpSetup;
  try {
    http = httpSetup(o);
  } catch (e) {
    log.error(errorMessage(e));
    return EXIT.invalid;
  }

  const lease = leaseTiming(o);
  if (!lease.ok) {
    log.error(lease.message);
    return EXIT.invalid;
  }
  // DIR or --git URL (both, or neither, is exit 2).
  const source = gitInput(dirArg, o, { dirRequired: true, allowEmpty: o.allowEmpty });
  if ('errors' in source) {
    for (const e of source.errors) log.error(e);
    return EXIT.invalid;
  }
  const gitSpec = 'spec' in source ? source.spec : undefined;
  const dir = dirArg ?? '';
  if (!gitSpec) {
    const notFolder = await notAManifestFolder(dir, 'watch');
    if (notFolder) {
      log.error(notFolder, { dir });
      return EXIT.invalid;
    }
  }

  const policy = await resolvePolicy(o.policy);
  if (!policy.ok) {
    log.error('invalid policy file', { errors: formatErrors(policy.errors) });
    return EXIT.invalid;
  }

  // A folder with Host manifests: the fleet loop (one implicit host otherwise, as before).
  if (!gitSpec) {
    const first = await loadManifests(dir, { policy: policy.policy });
    if (first.ok && first.desired.hosts.length > 0) {
      if (o.uriGiven) {
        log.error('--uri (or VIRTFORM_URI) cannot be used with Host manifests: the manifests name the hosts');
        return EXIT.invalid;
      }
      return (await import('./watch-fleet.js')).runFleetWatch(dir, o, policy.policy, lease.timing, log, http);
    }
  }

  let store: StateStore | undefined;
  let controller: WatchController | undefined;
  let server: StatusServer | undefined;
  let dashboard: Dashboard | undefined;
  let wrongHost!: (e: HostMismatchError) => void;
  const hostMismatch = new Promise<HostMismatchError>((resolve) => (wrongHost = resolve));
  try {
    store = await openStore(o.db, { dataDir: o.dataDir });
    const git = gitSpec
      ? new GitRepositorySource({
        sync: new GitSync(new GitRepository({ ...gitSpec, policy: policy.policy }, { cacheRoot: gitCacheRoot(o.db, o.dataDir) }), store),
        intervalMs: (o.gitInterval ?? 60) * 1000,
        logger: log,
      })
      : undefined;
    controller = new WatchController({
      dir,
      git,
      store,
      // Every (re)connection first checks that libvirt is still the host the DB describes; another
      // host ends the watch (exit 1) before anything is observed or applied.
      connect: async () => {
        const h = await openHost(o.uri, { domainType: o.domainType });
        try {
          await verifyHostIdentity(store!, h, { record: true });
        } catch (e) {
          // safe-catch: closing before rethrowing the identity error, which is what is reported
          await h.close().catch(() => undefined);
          if (e instanceof HostMismatchError) wrongHost(e);
          throw e;
        }
        return h;
      },
      uri: o.uri,
      wrapHost: faultWrapperFromEnv(),
      allowEmpty: o.allowEmpty,
      maxDeletions: o.maxDeletions,
      policy: policy.policy,
      debounceMs: o.debounce,
      resyncMs: o.resync * 1000,
      incremental: o.incremental !== false,
      reconnect: { initialDelayMs: 500, maxDelayMs: (o.reconnectMax ?? 30) * 1000 },
      requeue: { initialDelayMs: 1000, maxDelayMs: (o.requeueMax ?? 60) * 1000 },
      concurrency: o.concurrency,
      retry: retryPolicy(o),
      shutdownTimeoutMs: o.shutdownTimeout * 1000,
      stopTimeoutMs: (o.stopTimeout ?? 30) * 1000,
      lockCommand: `virtform watch ${git ? `--git ${git.label}` : dir}`,
      lease: lease.timing,
      logger: log,
      historyRuns: http.historyRuns,
    });

    // Signals: the first one stops gracefully (the run in flight starts no new step; its steps in
    // flight get --stop-timeout seconds, then are abandoned with their journal entries closed as
    // interrupted); should the process still not end a few seconds later, it exits anyway. A
    // second signal exits at once.
    let signalled: NodeJS.Signals | undefined;
    let onSignal!: (s: NodeJS.Signals) => void;
    const stopRequested = new Promise<NodeJS.Signals>((resolve) => {
      onSignal = (s) => {
        if (signalled) {
          log.warn('second signal: exiting without waiting for the run in flight', { signal: s });
          controller?.releaseLeaseSync();
          process.exit(s === 'SIGINT' ? 130 : 143);
        }
        signalled = s;
        const graceMs = (o.stopTimeout ?? 30) * 1000 + STOP_GRACE_MS;
        setTimeout(() => {
          log.warn('still stopping after the stop timeout: exiting', { signal: s, afterMs: graceMs });
          controller?.releaseLeaseSync();
          process.exit(s === 'SIGINT' ? 130 : 143);
        }, graceMs).unref();
        resolve(s);
      };
    });
    process.on('SIGINT', onSignal);
    process.on('SIGTERM', onSignal);
    // The process lives until it is stopped, not as long as some handle happens to be open (the
    // folder's file watches do not hold it: src/watch/sources/manifest-folder.ts).
    const keepAlive = setInterval(() => undefined, 1 << 30);
    try {
      log.info('starting', {
        ...(git ? { git: git.sync.repo.displayUrl, ref: git.sync.status().ref, path: git.sync.repo.spec.path, gitIntervalMs: git.intervalMs, cache: git.sync.repo.cacheDir } : { dir }),
        uri: o.uri, db: store.path, pid: process.pid,
        // How long a standby may take to take over when the leader dies or freezes.
        takeoverBoundMs: takeoverBoundMs(lease.timing),
      });
      // The listener first: a standby (waiting in start() while another process holds the writer
      // lease) answers /healthz, /readyz (503, saying who leads) and /status too.
      if (http.listen) {
        dashboard = dashboardFor(controller, store, http.historyRuns, (e) => log.warn('dashboard: building the snapshot failed', { error: errorMessage(e) }));
        server = await startStatusServer(controller, http.listen, log, { allowedHosts: http.allowedHosts, token: http.token, tls: http.tls, dashboard });
        log.info('listening', { host: server.host, port: server.port, url: listenUrl(server.host, server.port, http.tls !== undefined), auth: http.token !== undefined, tls: http.tls !== undefined });
      }
      // A standby (another process holds the writer lease) waits in start(): a signal stops it there.
      const starting = controller.start();
      const early = await Promise.race([starting.then(() => undefined), stopRequested]);
      if (early) {
        log.info('shutdown requested', { signal: early });
        await controller.stop();
        // safe-catch: start() ends with the abort reason: the stop was asked for
        await starting.catch(() => undefined);
        return EXIT.ok;
      }
      const stop = await Promise.race([stopRequested, hostMismatch]);
      if (stop instanceof HostMismatchError) {
        log.error(stop.message, { db: store.path, uri: o.uri });
        await controller.stop();
        return EXIT.failure;
      }
      log.info('shutdown requested', { signal: stop });
      await controller.stop();
      return EXIT.ok;
    } finally {
      clearInterval(keepAlive);
      process.off('SIGINT', onSignal);
      process.off('SIGTERM', onSignal);
    }
  } catch (e) {
    if (e instanceof EmptyManifestsError) {
      log.error(e.message, { dir: gitSpec ? undefined : dir });
      return EXIT.invalid;
    }
    if (e instanceof LeaseHeldError) {
      log.error(e.message);
      return EXIT.failure;
    }
    log.error('watch failed', { error: errorMessage(e) });
    return EXIT.failure;
  } finally {
    // safe-catch: cleanup in finally; the watch outcome is already decided and logged
    await server?.close().catch(() => undefined);
    dashboard?.close();
    // safe-catch: cleanup in finally; the watch outcome is already decided and logged
    await controller?.stop().catch(() => undefined);
    // safe-catch: cleanup in finally; SQLite keeps what was committed
    await store?.close().catch(() => undefined);
  }
}
