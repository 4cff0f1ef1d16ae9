/** Shared CLI plumbing: exit codes, manifest loading, state store and host connections. */
import { loadManifests, formatManifestError, type ManifestError } from '../manifest/index.js';
import { buildDesired, type Desired } from '../reconcile/desired.js';
import type { RetryPolicy } from '../reconcile/apply.js';
import { defaultDbPath, openStateStore, type StateStore } from '../state/index.js';

export const EXIT = { ok: 0, failure: 1, invalid: 2, changes: 3 } as const;

/** The retry policy of the --max-attempts and --retry-delay flags. */
export function retryPolicy(o: { maxAttempts: number; retryDelay: number }): RetryPolicy {
  return { maxAttempts: o.maxAttempts, baseDelayMs: o.retryDelay, maxDelayMs: Math.max(o.retryDelay * 20, 1) };
}

export function errorMessage(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

export type LoadedDesired =
  | { ok: true; desired: Desired; manifestCount: number }
  | { ok: false; errors: ManifestError[]; text: string };

/** Load and validate a manifest folder; nothing is written anywhere. */
export async function loadDesired(dir: string): Promise<LoadedDesired> {
  const result = await loadManifests(dir);
  if (!result.ok) {
    return { ok: false, errors: result.errors, text: result.errors.map(formatManifestError).join('\n') };
  }
  return { ok: true, desired: buildDesired(result.desired), manifestCount: result.desired.manifests.length };
}

/** `mustExist`: open an existing DB only (throws StateDbMissingError, creates no file or folder). */
export async function openStore(dbPath: string | undefined, opts: { mustExist?: boolean } = {}): Promise<StateStore> {
  return openStateStore(dbPath ?? defaultDbPath(), { mustExist: opts.mustExist });
}

export function useColor(flag: boolean | undefined, stream: NodeJS.WriteStream = process.stdout): boolean {
  return flag !== false && stream.isTTY === true && !process.env.NO_COLOR;
}
