/**
 * The manifest input of every command, kept apart from common.ts so that `validate` loads the
 * manifest layer only (no state DB driver, no libvirt client, no engine): the policy file, and
 * manifest errors as text and as `--json`.
 */
import { loadPolicy, formatManifestError, type ManifestError, type Policy } from '../manifest/index.js';

/** One manifest error as the `--json` outputs print it: every key present, null when unknown. */
export interface JsonManifestError {
  file: string;
  line: number;
  col: number;
  kind: string | null;
  name: string | null;
  field: string | null;
  message: string;
}

export function manifestErrorsJson(errors: readonly ManifestError[]): JsonManifestError[] {
  return errors.map((e) => ({
    file: e.file, line: e.line, col: e.col, kind: e.kind ?? null, name: e.name ?? null, field: e.field ?? null, message: e.message,
  }));
}

export function formatErrors(errors: readonly ManifestError[]): string[] {
  return errors.map(formatManifestError);
}

export type LoadedPolicy = { ok: true; policy: Policy | undefined } | { ok: false; errors: ManifestError[]; text: string };

/**
 * The policy of `--policy FILE` (which must exist), else `/etc/virtform/policy.yaml` when it exists
 * (`$VIRTFORM_POLICY` overrides that default path), else none. A broken policy is invalid input (exit 2).
 */
export async function resolvePolicy(file: string | undefined): Promise<LoadedPolicy> {
  const r = await loadPolicy(file, process.env.VIRTFORM_POLICY || undefined);
  if (r.ok) return r;
  return { ok: false, errors: r.errors, text: `${r.errors.map(formatManifestError).join('\n')}\ninvalid policy file; nothing was changed` };
}

