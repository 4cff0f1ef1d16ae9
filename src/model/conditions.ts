/**
 * Resource conditions: the one list of condition types for the whole project, in the style of
 * Kubernetes status conditions. Every resource carries one entry per emitted type, with status
 * `True`/`False`, a CamelCase reason, a one-line message and the time of the last transition of
 * its status (kept in the state DB, so it survives restarts).
 */

/**
 * Condition types. `Unschedulable` and `HostUnreachable` are reserved (multi-host placement and
 * per-host reachability): defined here so nothing else invents them, not emitted yet.
 */
export const CONDITION_TYPES = [
  'Ready', 'Reconciling', 'Stalled', 'Drifted', 'RestartRequired', 'Suspended', 'HeldForDataLoss',
  'Unschedulable', 'HostUnreachable',
] as const;

export type ConditionType = (typeof CONDITION_TYPES)[number];

/** The types derived and shown today (the reserved ones are left out). */
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
