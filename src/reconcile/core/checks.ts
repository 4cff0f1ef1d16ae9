/**
 * The no-op fast path (issue 22): a definition whose raw bytes hash to the value recorded when an
 * earlier run compared it WITHOUT a difference, under the same comparison inputs, cannot compare
 * differently now: it is neither parsed nor compared (`Observed.unparsed`, `unchangedDefinition`).
 *
 * What is recorded (`store.definitionChecks`, migration 0013) is written only after a run that
 * really parsed and compared the definition and planned no change for the resource; a dry-run
 * writes nothing. The inputs digest covers everything else a kind's comparison of the definition
 * reads: the desired spec hash (the config is hashed into it), the record (identity, spec hash,
 * desired state, last error, facts: a VM's MACs and pending restart), the exact-drift baseline
 * (hash and versions) and libvirt's version now, and {@link COMPARE_REVISION}. Any byte of the
 * definition or any of these that differs: the full comparison runs, as without the fast path.
 */
import { hash } from 'node:crypto';
import type { BaselineEntry, DefinitionCheck } from '../../state/index.js';
import { canonicalJson, type AnyDesired } from './resource.js';

/**
 * Bump when what a definition compares as changes in a way its bytes do not show: a parser of
 * `src/libvirt/xml/`, a kind's field table or comparison. Every recorded check is then stale,
 * and the next run compares everything once.
 */
export const COMPARE_REVISION = 2;

/** What of a record the comparison of its definition reads (an index entry or a full record). */
export interface CheckedRecord {
  uuid: string | null;
  specHash: string | null;
  desiredState: string | null;
  lastError: string | null;
  facts?: Record<string, unknown>;
  details?: { facts?: unknown };
}

/**
 * Digest of a definition comparison's inputs other than the definition itself: the sha256 of the
 * scalar inputs' JSON followed by the facts' canonical JSON (the only input that is an object:
 * the same facts in another key order give the same digest). Revision 2 of the form (revision 1
 * canonicalized the whole array and kept a second, plain JSON of it to recognize repeats; this is
 * half its CPU cold, measured in bench/results/process.md).
 */
export function checkInputs(
  desired: AnyDesired, record: CheckedRecord, baseline: BaselineEntry | undefined, version: string | undefined,
): string {
  // A watch's runs hand out the same frozen record and baseline objects while the state DB's
  // tables are unchanged (the store's change tokens) and the same desired object while its
  // manifest is unchanged: the digest computed for these very objects is the answer, without
  // building the text again (most of the observe stage's own time at 2,002 resources otherwise).
  const same = byObjects.get(desired);
  if (same && same.record === record && same.baseline === baseline && same.version === version && same.specHash === desired.specHash
    && same.suspended === desired.suspended && same.adopt === desired.adopt) return same.digest;
  const digest = inputsDigest(desired, record, baseline, version);
  if (Object.isFrozen(record) && (baseline === undefined || Object.isFrozen(baseline))) {
    byObjects.set(desired, { record, baseline, version, specHash: desired.specHash, suspended: desired.suspended, adopt: desired.adopt, digest });
  }
  return digest;
}

/** The last digest {@link checkInputs} gave for each desired object, with the (frozen) objects it was computed from. */
const byObjects = new WeakMap<AnyDesired, {
  record: CheckedRecord; baseline: BaselineEntry | undefined; version: string | undefined;
  specHash: string; suspended: boolean | undefined; adopt: boolean | undefined; digest: string;
}>();

function inputsDigest(
  desired: AnyDesired, record: CheckedRecord, baseline: BaselineEntry | undefined, version: string | undefined,
): string {
  const facts = record.facts ?? record.details?.facts ?? null;
  const scalars = [
    COMPARE_REVISION, version ?? null, baseline?.sha256 ?? null, baseline?.version ?? null,
    desired.kind, desired.specHash, desired.suspended ?? false, desired.adopt ?? false,
    record.uuid, record.specHash, record.desiredState, record.lastError,
  ];
  const text = `${JSON.stringify(scalars)}\n${facts === null ? 'null' : canonicalJson(facts)}`;
  // Every run of a watch asks this of every declared, recorded resource, mostly with the inputs of
  // the run before: the digest computed last time for this resource is reused for the same text.
  const kept = lastInputs.get(desired.key);
  if (kept?.text === text) return kept.digest;
  const digest = hash('sha256', text);
  if (lastInputs.size >= LAST_INPUTS_MAX) lastInputs.clear();
  lastInputs.set(desired.key, { text, digest });
  return digest;
}

/** The last digest {@link checkInputs} computed for each resource key, with the text it hashed. */
const lastInputs = new Map<string, { text: string; digest: string }>();
/** Bound of {@link lastInputs} (resources no longer declared are dropped with everything at that size). */
const LAST_INPUTS_MAX = 100_000;

/**
 * The sha256 a definition's bytes must hash to for its parse and comparison to be skipped, or
 * undefined: no check recorded, another input, an open journal entry (an interrupted write), a
 * suspended resource.
 */
export function knownDigest(
  check: DefinitionCheck | undefined, desired: AnyDesired | undefined, record: CheckedRecord | undefined, openJournal: boolean,
  baseline: BaselineEntry | undefined, version: string | undefined,
): string | undefined {
  if (!check || !desired || !record || openJournal || desired.suspended) return undefined;
  return check.inputs === checkInputs(desired, record, baseline, version) ? check.sha256 : undefined;
}
