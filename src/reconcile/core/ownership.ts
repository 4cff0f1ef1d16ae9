/**
 * Ownership: which host objects virtform may change or delete.
 *
 * The state DB is authoritative: an object is owned when the DB records it under the same
 * identity (libvirt UUID for pools, networks and domains; the volume key, i.e. its file path, for
 * volumes: each kind's module says how to find it). An object named in an operation still open in
 * the journal (an earlier run was interrupted between calling libvirt and recording the result) is
 * owned too: that is how a rerun finishes or cleans half-done work instead of failing with
 * "already exists" or leaving an orphan. Anything else is foreign: never changed, never deleted; a
 * manifest naming it is a conflict unless it sets `metadata.adopt: true`.
 */
import { resourceKey, type ResourceKind } from '../../model/kinds.js';
import type { Observed } from './observed.js';

export type Ownership =
  | { state: 'absent' }
  | { state: 'owned'; via: 'record' | 'journal'; id: string }
  | { state: 'foreign'; id: string; reason: string };

const ABSENT: Ownership = Object.freeze({ state: 'absent' });

/**
 * Ownership of the object whose libvirt identity is `id` (its kind's `identity` hook; undefined:
 * absent). Pure: the caller (a kind, or the registry's `ownershipOf`) finds the identity.
 * `key` is `resourceKey(kind, name)`, passed by callers that have it already.
 */
export function ownershipById(
  observed: Observed,
  kind: ResourceKind,
  name: string,
  id: string | undefined,
  key = resourceKey(kind, name),
): Ownership {
  if (id === undefined) return ABSENT;
  const record = observed.records.get(key);
  if (record?.uuid && record.uuid === id) return { state: 'owned', via: 'record', id };
  if ((observed.openJournal.get(key) ?? []).length > 0) return { state: 'owned', via: 'journal', id };
  const reason = record?.uuid
    ? `a ${kind} named ${name} exists but is not the one virtform created (uuid ${id}, recorded ${record.uuid})`
    : `a ${kind} named ${name} already exists and is not managed by virtform`;
  return { state: 'foreign', id, reason };
}
