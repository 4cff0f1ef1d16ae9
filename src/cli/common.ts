/** Shared CLI plumbing: exit codes, manifest loading, state store and host connections. */
import { existsSync } from 'node:fs';
import { hostname, userInfo } from 'node:os';
import { stat } from 'node:fs/promises';
import {
  LOAD_CACHE_FILE, loadManifests, loadManifestsCached, formatManifestError,
  type DesiredState, type LoadCacheStats, type LoadOptions, type ManifestError, type Policy,
} from '../manifest/index.js';
import { buildDesired, type Desired } from '../reconcile/desired.js';
import type { RetryPolicy } from '../reconcile/apply.js';
import type { HostPort } from '../reconcile/ports.js';
import { DEFAULT_LEASE_TIMING, defaultDbPath, isPostgresLocation, leaseTimingProblem, openStateStore, type HostBinding, type LeaseTiming, type StateStore } from '../state/index.js';
import { dirname, join, resolve } from 'node:path';

export { EXIT } from './exit.js';
export { formatErrors, manifestErrorsJson, resolvePolicy, type JsonManifestError, type LoadedPolicy } from './manifest-input.js';

/** The retry policy of the --max-attempts and --retry-delay flags. */
export function retryPolicy(o: { maxAttempts: number; retryDelay: number }): RetryPolicy {
  return { maxAttempts: o.maxAttempts, baseDelayMs: o.retryDelay, maxDelayMs: Math.max(o.retryDelay * 20, 1) };
}

/** The lease flags every command that takes the writer lease has (seconds, as given). */
export interface LeaseFlags {
  leaseDuration?: number;
  renewDeadline?: number;
  retryPeriod?: number;
}

/** The lease durations of the flags (defaults: DEFAULT_LEASE_TIMING), or why they cannot work (exit 2). */
export function leaseTiming(o: LeaseFlags): { ok: true; timing: LeaseTiming } | { ok: false; message: string } {
  const timing: LeaseTiming = {
    leaseMs: (o.leaseDuration ?? DEFAULT_LEASE_TIMING.leaseMs / 1000) * 1000,
    renewDeadlineMs: (o.renewDeadline ?? DEFAULT_LEASE_TIMING.renewDeadlineMs / 1000) * 1000,
    retryMs: (o.retryPeriod ?? DEFAULT_LEASE_TIMING.retryMs / 1000) * 1000,
  };
  const problem = leaseTimingProblem(timing);
  return problem ? { ok: false, message: `${problem} (--lease-duration, --renew-deadline, --retry-period)` } : { ok: true, timing };
}

export function errorMessage(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

/**
 * `reconcile` and `watch` converge the host to the WHOLE folder: given one file of it, everything
 * the other files declare would be planned for deletion. Returns the refusal message when `dir`
 * exists and is not a directory (a missing path is left to the loader, which reports it).
 */
export async function notAManifestFolder(dir: string, command: 'reconcile' | 'watch'): Promise<string | undefined> {
  // safe-catch: a path that cannot be stat-ed is left to the loader, which reports it
  const st = await stat(dir).catch(() => undefined);
  if (st === undefined || st.isDirectory()) return undefined;
  return `${dir} is not a folder: \`virtform ${command}\` takes the whole manifest folder ` +
    `(given one file, everything the other manifests declare would be deleted); ` +
    `pass the folder, or check a single file with \`virtform validate ${dir}\``;
}

export type LoadedDesired =
  | { ok: true; desired: Desired; manifestCount: number; state: DesiredState; cache?: LoadCacheStats }
  | { ok: false; errors: ManifestError[]; text: string };

/** Where the load cache of a data dir is (src/manifest/load-cache.ts). */
export function loadCacheFile(dataDir: string): string {
  return join(dataDir, LOAD_CACHE_FILE);
}

/**
 * Load and validate a manifest folder (against the policy, when one is given). With `cache`, the
 * load cache of that file (`src/manifest/load-cache.ts`): unchanged files are not parsed again; it
 * is written only with `cache.write` (never by a dry-run). Nothing else is written anywhere.
 */
export async function loadDesired(
  dir: string, policy?: Policy, opts: Omit<LoadOptions, 'policy'> & { cache?: { file: string; write: boolean } } = {},
): Promise<LoadedDesired> {
  const { cache, ...load } = opts;
  let stats: LoadCacheStats | undefined;
  let result;
  if (cache) {
    const { cacheStats, ...r } = await loadManifestsCached(dir, { ...load, policy }, cache);
    stats = cacheStats;
    result = r as Awaited<ReturnType<typeof loadManifests>>;
  } else result = await loadManifests(dir, { ...load, policy });
  if (!result.ok) {
    return { ok: false, errors: result.errors, text: result.errors.map(formatManifestError).join('\n') };
  }
  return {
    ok: true, desired: buildDesired(result.desired), manifestCount: result.desired.manifests.length, state: result.desired,
    ...(stats ? { cache: stats } : {}),
  };
}

export interface OpenStoreOptions {
  /**
   * false (dry-runs): never create the DB file or its folders. A DB that does not exist opens as
   * an EMPTY in-memory state (migrated schema, `store.path === ':memory:'`), so the plan is the one
   * a first apply would make and nothing is written. Default true.
   */
  create?: boolean;
  /** Open an existing DB only (`status`): throws StateDbMissingError, creates no file or folder. */
  mustExist?: boolean;
  /** `--data-dir` (default: {@link dataDirOf}). */
  dataDir?: string;
}

/**
 * The folder of the local caches (`images/`, `git/`): `--data-dir` (or VIRTFORM_DATA_DIR) when
 * given; else the SQLite DB's folder (as always); with a PostgreSQL `--db`, the folder the default
 * SQLite DB would be in (`/var/lib/virtform` as root, else the XDG data dir).
 */
export function dataDirOf(dbPath: string | undefined, dataDir?: string): string {
  if (dataDir) return resolve(dataDir);
  const db = dbPath ?? defaultDbPath();
  return dirname(resolve(isPostgresLocation(db) ? defaultDbPath() : db));
}

/** Open the state DB of `--db` (default {@link defaultDbPath}); throws StateDbOpenError naming path and reason. */
export async function openStore(dbPath: string | undefined, opts: OpenStoreOptions = {}): Promise<StateStore> {
  const path = dbPath ?? defaultDbPath();
  const dataDir = dataDirOf(dbPath, opts.dataDir);
  if (isPostgresLocation(path)) return openStateStore(path, { dataDir });
  if (opts.create === false && !opts.mustExist && !existsSync(path)) return openStateStore(':memory:', { dataDir });
  return openStateStore(path, { mustExist: opts.mustExist, dataDir });
}

/**
 * Every command that connects to libvirt and uses a state DB calls this before it reads the DB
 * against the host: it checks that the connection reaches the host the DB's records describe
 * (driver + libvirt host UUID) and, with `record` (apply, watch), records the host identity on
 * first use and refreshes it after. Throws HostMismatchError (it names both hosts; exit 1) when the
 * DB holds records of another host. Dry-runs pass `record: false` and write nothing.
 */
export async function verifyHostIdentity(store: StateStore, host: Pick<HostPort, 'hostIdentity'>, opts: { record: boolean }): Promise<HostBinding> {
  return store.hosts.bind(await host.hostIdentity(), { record: opts.record });
}

export function useColor(flag: boolean | undefined, stream: NodeJS.WriteStream = process.stdout): boolean {
  return flag !== false && stream.isTTY === true && !process.env.NO_COLOR;
}

/** `user@host (pid N)`; under sudo the invoking user. */
export function whoAmI(): string {
  let user = process.env.SUDO_USER;
  if (!user) {
    try {
      user = userInfo().username;
    } catch { // safe-catch: no passwd entry for this uid: the uid names the user instead
      user = `uid ${process.getuid?.() ?? '?'}`;
    }
  }
  return `${user}@${hostname()} (pid ${process.pid})`;
}
