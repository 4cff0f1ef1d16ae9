/**
 * Why a resource is stalled: the watcher does not retry it until an input changes. Typed, so that
 * status and its conditions decide on `reason` and never on the text; `stallText` gives the text
 * logs, `/status` and the status table show (`invalid: define domain x: ...`).
 */
import type { LibvirtErrorId } from '../reconcile/ports.js';

export type Stall =
  /** A change would destroy data; the watcher never consents (`reconcile --allow-data-loss` does). */
  | { reason: 'held'; detail: string }
  /** The mass-deletion brake (`--max-deletions`) refused the plan. */
  | { reason: 'braked'; detail: string }
  /** The host refused the request as invalid (HostError code `invalid`): retrying gives the same answer. */
  | { reason: 'invalid'; detail: string; libvirt?: LibvirtErrorId }
  /** An object of the same name virtform does not own (the plan's conflict). */
  | { reason: 'conflict'; detail: string };

export type StallReason = Stall['reason'];

export function stallText(s: Stall): string {
  return `${s.reason}: ${s.detail}`;
}

/** The `Stalled` condition's reason for each kind of stall. */
export const STALL_CONDITION_REASON: Readonly<Record<StallReason, string>> = {
  held: 'HeldForDataLoss',
  braked: 'Braked',
  invalid: 'InvalidDefinition',
  conflict: 'Conflict',
};
