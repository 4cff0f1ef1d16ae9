/**
 * The restart-required mark: what a running domain has that its persistent definition changed
 * (taken at the next boot), how the plan and status word it, and how a stop is announced.
 */
import { canonicalJson } from '../../core/resource.js';
import type { FieldChange } from '../../core/change.js';
import type { HostPort } from '../../ports.js';
import { bootDifferences, LIVE_ONLY } from './fields.js';
import type { RestartRequired, VmFacts } from './types.js';

function show(v: unknown): string {
  return typeof v === 'string' ? JSON.stringify(v) : v === undefined ? '(none)' : typeof v === 'object' ? JSON.stringify(v) : String(v);
}

/** `restart required for spec.vcpus (running with 1, defined 2), spec.disks[1].bus (…)`. */
export function restartText(rr: RestartRequired): string {
  const parts = rr.fields.map((f) => {
    const unit = /memoryKiB$/i.test(f);
    const v = (x: unknown): string => (unit && typeof x === 'number' ? `${x / 1024}MiB` : show(x));
    const field = f.replace(/memoryKiB$/, 'memory').replace(/MemoryKiB$/, 'Memory').replace(/\.bootOrder$/, '.boot');
    return `${field} (running with ${v(rr.running[f])}, defined ${v(rr.defined[f])})`;
  });
  return `restart required for ${parts.join(', ')}${rr.notes?.length ? ` (${rr.notes.join('; ')})` : ''}`;
}

/** Merge restart-requiring lines into the mark still pending on the same running domain. */
export function mergeRestart(pending: RestartRequired | undefined, lines: FieldChange[]): RestartRequired | undefined {
  const running: Record<string, unknown> = { ...(pending?.running ?? {}) };
  const defined: Record<string, unknown> = { ...(pending?.defined ?? {}) };
  for (const f of lines) {
    if (!(f.field in running)) running[f.field] = f.before;
    defined[f.field] = f.after;
  }
  const fields = Object.keys(defined).filter((k) => canonicalJson(running[k]) !== canonicalJson(defined[k]));
  if (fields.length === 0) return undefined;
  return {
    fields,
    running: Object.fromEntries(fields.map((k) => [k, running[k]])),
    defined: Object.fromEntries(fields.map((k) => [k, defined[k]])),
    ...(pending?.since ? { since: pending.since } : {}),
    ...(pending?.domainId !== undefined ? { domainId: pending.domainId } : {}),
  };
}

/**
 * What the running domain has that its persistent definition changed (taken at the next boot):
 * the running (live) definition against the persistent one, for everything that is not applied
 * live. null when nothing is left (or the domain is not running).
 */
export async function restartState(
  host: HostPort, name: string, previous: RestartRequired | undefined,
  seed?: { facts: VmFacts | undefined; current: string | undefined },
): Promise<RestartRequired | null> {
  const [live, defined] = await Promise.all([host.getRunningDomain(name), host.getDomain(name)]);
  if (!live || !defined) return null;
  // Per row of the field table that the running domain takes only at its start.
  const differ = bootDifferences({ live, defined, ...(seed ? { seed } : {}) });
  const same = previous && previous.domainId === live.id;
  // A live change the guest did not take (read back after it) stays until the domain restarts,
  // unless the definition moved to what the guest runs with.
  const kept = same && previous.notes?.length ? (['spec.memoryKiB'] as const).filter((f) =>
    previous.fields.includes(f) && previous.running[f] !== defined.memoryKiB && previous.defined[f] === defined.memoryKiB) : [];
  if (differ.length === 0 && kept.length === 0) return null;
  // Hot-plug (issue 24): why a device is still attached live (a detach the guest did not
  // complete) stays said while the running domain still has devices its definition lacks.
  const detachNotes = same && differ.some(([f]) => f === LIVE_ONLY || f === 'spec.disks' || f === 'spec.nics') ? (previous.notes ?? []).filter((n) => n.startsWith(DETACH_NOTE)) : [];
  const notes = [...new Set([...(kept.length > 0 ? previous!.notes ?? [] : []), ...detachNotes])];
  return {
    fields: [...differ.map(([f]) => f), ...kept],
    running: { ...Object.fromEntries(differ.map(([f, a]) => [f, a])), ...Object.fromEntries(kept.map((f) => [f, previous!.running[f]])) },
    defined: { ...Object.fromEntries(differ.map(([f, , b]) => [f, b])), ...Object.fromEntries(kept.map((f) => [f, previous!.defined[f]])) },
    since: same && previous.since ? previous.since : new Date().toISOString(),
    domainId: live.id,
    ...(notes.length > 0 ? { notes } : {}),
  };
}

export function stopNote(graceful: boolean): string {
  return graceful
    ? 'the running VM is shut down (ACPI) and forced off if it is still running after --shutdown-timeout'
    : 'the running VM is forced off (no graceful shutdown)';
}

/** How the note of a detach the guest did not complete starts (kept by {@link restartState} while the device stays). */
export const DETACH_NOTE = 'detach not completed by the guest';
