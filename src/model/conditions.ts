/**
 * Resource conditions: the one list of condition types for the whole project, in the style of
 * Kubernetes status conditions. Every resource carries one entry per emitted type, with status
 * `True`/`False`, a CamelCase reason, a one-line message and the time of the last transition of
 * its status (kept in the state DB, so it survives restarts).
 */

/**
 * Condition types. `HostUnreachable` is emitted by a fleet status (src/status/fleet.ts: every row
 * of a status over several hosts carries it); `Unschedulable` is reserved for placement.
 */
export const CONDITION_TYPES = [
  'Ready', 'Reconciling', 'Stalled', 'Drifted', 'RestartRequired', 'Suspended', 'HeldForDataLoss',
  'Unschedulable', 'HostUnreachable',
] as const;

export type ConditionType = (typeof CONDITION_TYPES)[number];

/** The types every status row carries (a fleet status adds `HostUnreachable`). */
export const EMITTED_CONDITION_TYPES: readonly ConditionType[] = [
  'Ready', 'Reconciling', 'Stalled', 'Drifted', 'RestartRequired', 'Suspended', 'HeldForDataLoss',
];

export type ConditionStatus = 'True' | 'False';

export interface Condition {
  type: ConditionType;
  status: ConditionStatus;
  /** CamelCase, machine-readable (`Converged`, `DomainStopped`, `ManifestDisabled`, …). */
  reason: string;
  /** One line for humans. */
  message: string;
  /** ISO-8601: when `status` last changed (not when reason or message did). */
  lastTransitionTime: string;
}

/** A condition as derived, before its transition time is known. */
export type ConditionDraft = Omit<Condition, 'lastTransitionTime'>;

export function isConditionType(v: unknown): v is ConditionType {
  return typeof v === 'string' && (CONDITION_TYPES as readonly string[]).includes(v);
}
