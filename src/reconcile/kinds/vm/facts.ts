/** What a VM's record says (facts), its pending restart mark, and the seed it booted with. */
import type { Observed } from '../../core/observed.js';
import type { RestartRequired, VmFacts } from './types.js';

/** `sha256:0123456789ab…`: what plans and notes show of a seed digest. */
export const shortDigest = (d: unknown): unknown => (typeof d === 'string' && /^sha256:[0-9a-f]{64}$/.test(d) ? `${d.slice(0, 19)}…` : d);

/** The restart-required mark of a record, if the domain is still the one it was set on. */
export function pendingRestart(observed: Observed, key: string, name: string): RestartRequired | undefined {
  const rr = factsOf(observed, key)?.restartRequired;
  const d = observed.domains.get(name);
  return rr && d?.active && rr.domainId === d.id ? rr : undefined;
}

export function factsOf(observed: Observed, key: string): VmFacts | undefined {
  const r = observed.records.get(key);
  const f = (r && 'facts' in r ? r.facts : undefined) ?? r?.details?.facts;
  return f && typeof f === 'object' ? (f as VmFacts) : undefined;
}

/** The seed digest the running domain `domainId` was started with, as far as virtform knows. */
export function bootedSeed(facts: VmFacts | undefined, domainId: number | undefined): string | undefined {
  const b = facts?.seedBooted;
  if (b && b.domainId === domainId) return b.sha256;
  // Started before the last upload was recorded (or outside virtform): it opened what was uploaded then.
  return facts?.seed?.sha256;
}
