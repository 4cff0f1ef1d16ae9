/**
 * The change model: what diff decides for one resource (create, update, replace, delete or
 * conflict), the field-level before → after, the reason, and the steps that carry it out; plus
 * the helpers every kind's diff shares; and the plan step that carries out one operation of a
 * change. Generic over the step operation and the desired resource: the registry
 * (`kinds/index.ts`) instantiates them with the union of the kinds' (`ResourceChange`, `PlanStep`).
 * Kind-specific decisions live in `kinds/<kind>/`.
 */
import type { HostId, ResourceKind } from '../../model/kinds.js';
import { definitionXml, type Observed } from './observed.js';
import type { Ownership } from './ownership.js';
import { canonicalJson, type AnyDesired } from './resource.js';
import { flattenXml, xmlDifferences, type XmlChange } from '../../libvirt/xml/compare.js';

/** How a change of one field takes effect. */
export type ChangeEffect = 'live' | 'restart' | 'replace';

/** One field of a kind's config, as the diff treats it. */
export interface FieldSpec<C> {
  /** Field of the normalized config. */
  field: keyof C & string;
  /** Where the user writes it in a manifest. */
  manifest: string;
  /** Unit of the normalized value, where it has one. */
  unit?: 'bytes' | 'KiB';
  /** How a change takes effect: applied live, on the next boot, or by recreating the object. */
  effect: ChangeEffect | ((before: unknown, after: unknown, whole?: unknown) => ChangeEffect);  /**
   * The plan lines of a difference, `before` the host's (default: the field's value flattened into
   * `spec.<field>.…` lines, sorted); none: no difference.
   */
  lines?(before: unknown, after: unknown): FieldChange[];
}

/**
 * Exact drift of a kind whose objects have an XML definition (domains, networks, pools): after
 * every write apply records libvirt's inactive XML as the object's baseline; diff names what
 * differs from it (`exactDrift` in `change.ts`).
 */
export interface ExactSpec {
  /** Which definition `HostPort.inactiveXml` reads. */
  object: 'domain' | 'network' | 'pool';
  /** XML paths libvirt changes on its own (measured): never drift. */
  ignore: readonly RegExp[];
  /** XML paths the field-level comparison explains (left to its lines when it found a difference). */
  modelled: readonly RegExp[];
}

/**
 * A step operation of any kind (`{op: 'volume.create', …}`); each kind declares its own union
 * (the registry's `StepOp` is the union of all). Its other fields are the kind's.
 */
export interface StepOpBase { op: string; [field: string]: unknown }

/** Forgetting a record (the object is gone or not ours) is the same for every kind. */
export type ForgetOp = { op: 'record.forget' };

export type ChangeAction = 'create' | 'update' | 'replace' | 'delete' | 'conflict';

export interface FieldChange {
  field: string;
  before: unknown;
  after: unknown;
  /** How the change takes effect on the running object (`[live]`/`[restart]` in the plan), where the kind says. */
  effect?: ChangeEffect;
  /** The host's value moved away from what virtform applied (before is the host's real value). */
  drift?: boolean;
  /**
   * Exact drift: `field` is an XML path of the definition (`devices/watchdog`), and the element
   * was added, removed or changed on the host since virtform's last write (its baseline);
   * `live only`: a device of the running domain its definition lacks.
   */
  xml?: XmlChange | 'live only' | 'dropped by adoption' | 'added by adoption' | 'rewritten by adoption';
}

/** What a note a later pass may withdraw is about. */
export type NoteTopic =
  /** The change restarts the running object to apply itself. */
  | 'restart'
  /** The change stops the running object (how: gracefully or forced). */
  | 'stop'
  /** Something takes effect only at the object's next boot. */
  | 'next-boot';

/** Add a note about `topic` to a change (or to the notes and topics of one being built). */
export function addNote(c: { notes: string[]; noteTopics?: { topic: NoteTopic; text: string }[] }, topic: NoteTopic, text: string): void {
  c.notes.push(text);
  (c.noteTopics ??= []).push({ topic, text });
}

/** Remove the notes about any of `topics` from a change. */
export function withdrawNotes(c: { notes: string[]; noteTopics?: { topic: NoteTopic; text: string }[] }, ...topics: NoteTopic[]): void {
  const gone = new Set((c.noteTopics ?? []).filter((n) => topics.includes(n.topic)).map((n) => n.text));
  if (gone.size === 0) return;
  c.notes = c.notes.filter((n) => !gone.has(n));
  c.noteTopics = c.noteTopics!.filter((n) => !gone.has(n.text));
}

export interface ResourceChange<O extends StepOpBase = StepOpBase, R extends AnyDesired = AnyDesired> {
  key: string;
  kind: ResourceKind;
  name: string;
  /** The host of the resource (the key names it; set on every change diff returns). */
  host?: HostId;
  action: ChangeAction;
  reason: string;
  fields: FieldChange[];
  notes: string[];
  /**
   * What some of `notes` are about (each names one note by its text), so that a later pass can
   * withdraw them by topic (`withdrawNotes`): a VM restarted anyway has nothing left for its next
   * boot. Not shown.
   */
  noteTopics?: { topic: NoteTopic; text: string }[];
  steps: O[];
  desired?: R;
  /** Config recorded at the last apply (for deletes and replaces). */
  previous?: unknown;
  ownership: Ownership['state'];
  /** Adopting a foreign object declared with metadata.adopt. */
  adopt?: boolean;
  /** The change corrects drift: the host no longer matches what virtform applied. */
  drift: boolean;
  /**
   * A removed manifest whose object is kept (`metadata.deletionPolicy: Retain`, or policy
   * `Suspended`: the resource was recorded with `metadata.reconcile: disabled`): the record is
   * forgotten and nothing is deleted. `kept` says what stays (e.g. `file /path`).
   */
  release?: { policy: 'Retain' | 'Suspended'; kept: string };
  /** What the change's steps would destroy (filled by the data-loss pass, `safety.ts`). */
  dataLoss?: DataLoss[];
  /** Why the change is held for consent (`reconcile --allow-data-loss`); unset when it may run. */
  held?: string;
  /**
   * Edges to other resources' teardown: this change's steps of operation `op` run after every
   * teardown step (stop, delete) of the resources `keys` in the plan (e.g. a VM starts with a disk
   * only after the VM that holds it has stopped).
   */
  waitFor?: { op: string; keys: string[] }[];
  /**
   * A cold move: the resource is recorded on host `from` and declared on host `to` (same kind and
   * name). Its two changes carry this: `source` (on `from`: stop, then delete once the target is
   * complete) and `target` (on `to`: copy and verify, define, start); `partner` is the other
   * change's key. The source's deletion is part of the move: not held by the data rule, not counted
   * by the mass-deletion brake as a deletion (`plan.brake.moves`).
   */
  move?: MoveInfo;
}

/** See {@link ResourceChange.move}. */
export interface MoveInfo {
  from: HostId;
  to: HostId;
  role: 'source' | 'target';
  partner: string;
  /** Bytes the move copies (data, holes left out) and reads back to verify, where the kind knows (its volumes). */
  bytes?: number;
}

/** One operation of a change, ordered in the plan's graph (`plan.ts`), carried out by apply. */
export interface PlanStep<O extends StepOpBase = StepOpBase, R extends AnyDesired = AnyDesired> {
  id: number;
  key: string;
  kind: ResourceKind;
  name: string;
  /** The host the step runs on (its resource's). */
  host: HostId;
  op: O;
  teardown: boolean;
  deps: number[];
  change: ResourceChange<O, R>;
}

/** Contents a step would destroy: a volume's file, and why it is not derived data. */
export interface DataLoss {
  /** Resource key of the volume. */
  volume: string;
  path?: string;
  /** Virtual size, where the host reported it. */
  sizeBytes?: number;
  /** e.g. `attached to VirtualMachine/x`, `holds imported image /src.qcow2`, `backs Volume/y`. */
  why: string[];
}

export interface DiffOptions {
  /** Stop VMs gracefully (ACPI) before forcing them off. */
  gracefulStop?: boolean;
  /** Consent to steps that destroy data (`--allow-data-loss`); without it they are held. */
  allowDataLoss?: boolean;
}

/** What a kind's diff gets besides its desired resource. */
export interface DiffContext {
  observed: Observed;
  opts: DiffOptions;
}

/** The config recorded in the state DB when virtform last applied the resource. */
export function recordedConfig<C>(observed: Observed, key: string): C | undefined {
  const cfg = observed.records.get(key)?.details?.config;
  return cfg && typeof cfg === 'object' ? (cfg as C) : undefined;
}

/** `details.facts` of a record, from the state index or a full record (observe reads either). */
export function recordedFacts(observed: Observed, key: string): Record<string, unknown> {
  const r = observed.records.get(key);
  const f = (r && 'facts' in r ? r.facts : undefined) ?? r?.details?.facts;
  return f && typeof f === 'object' ? (f as Record<string, unknown>) : {};
}

/**
 * The config virtform applied last: the recorded one, or the desired one when the recorded spec
 * hash is the desired one's (observe reads recorded configs only where the hashes differ).
 */
export function appliedConfig<C>(observed: Observed, r: { key: string; specHash: string; config: C }): C | undefined {
  const record = observed.records.get(r.key);
  if (!record) return undefined;
  return record.specHash === r.specHash ? r.config : recordedConfig<C>(observed, r.key);
}

function flatten(value: unknown, prefix: string, out: Map<string, unknown>): void {
  if (Array.isArray(value)) {
    if (value.length === 0) out.set(prefix, []);
    value.forEach((v, i) => flatten(v, `${prefix}[${i}]`, out));
  } else if (value && typeof value === 'object') {
    for (const [k, v] of Object.entries(value)) if (v !== undefined) flatten(v, prefix ? `${prefix}.${k}` : k, out);
  } else if (value !== undefined) {
    out.set(prefix, value);
  }
}

/** Field-level differences between two configs, as `path: before → after`. */
export function fieldChanges(before: unknown, after: unknown, prefix = 'spec'): FieldChange[] {
  const a = new Map<string, unknown>();
  const b = new Map<string, unknown>();
  flatten(before, prefix, a);
  flatten(after, prefix, b);
  const keys = [...new Set([...a.keys(), ...b.keys()])].sort();
  return keys
    .filter((k) => canonicalJson(a.get(k)) !== canonicalJson(b.get(k)))
    .map((k) => ({ field: k, before: a.get(k), after: b.get(k) }));
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any -- a kind's change carries that kind's ops; the registry's union types them for the stages
export function change<R extends AnyDesired, O extends StepOpBase = any>(
  r: R,
  action: ChangeAction,
  reason: string,
  ownership: Ownership,
  extra: Partial<ResourceChange<O, R>> = {},
): ResourceChange<O, R> {
  return {
    key: r.key, kind: r.kind, name: r.name, host: r.host, action, reason,
    fields: [], notes: [], steps: [], desired: r, ownership: ownership.state, drift: false, ...extra,
  };
}

export function interruptedOr(own: Ownership, otherwise: string): string {
  return own.state === 'owned' && own.via === 'journal' ? 'finishing an operation interrupted in an earlier run' : otherwise;
}

type RecordView = { uuid: string | null; lastError: string | null } | undefined;

/** A recorded object that has gone missing from the host is drift. */
export function isMissingDrift(record: RecordView): boolean {
  return !!record?.uuid;
}

/** Why something recorded must be created: it vanished (drift) or its creation failed before. */
export function createReason(record: RecordView): string {
  if (!record) return 'new';
  if (!record.uuid) return record.lastError ? `retrying after failure: ${record.lastError}` : 'new';
  return 'recorded but missing on the host (drift)';
}

/** A conflict when the object of that name is foreign and the manifest does not adopt it. */
export function conflictOrAdopt<R extends AnyDesired>(r: R, own: Ownership): ResourceChange<never, R> | undefined {
  if (own.state !== 'foreign') return undefined;
  if (r.adopt) return undefined;
  return change(r, 'conflict', `${own.reason}; set metadata.adopt: true to let virtform take it over`, own);
}

/** One field of a config whose host value differs from the desired one. */
export interface ConfigDifference {
  field: string;
  effect: ChangeEffect;
  /** What virtform applied last equals the desired value: the host moved (drift), the manifest did not. */
  drift: boolean;
  changes: FieldChange[];
}

/**
 * Compare a desired config with the host's actual one, field by field along a kind's field spec.
 * `recorded` (the config applied last) tells drift (the host changed) from a manifest edit.
 * `context` is handed to effect functions (what the effect of a change depends on besides its values).
 */
export function compareConfigs<C extends object>(
  spec: readonly FieldSpec<C>[], desired: C, actual: C, recorded: C | undefined, context?: unknown,
): ConfigDifference[] {
  const out: ConfigDifference[] = [];
  for (const f of spec) {
    const before = actual[f.field];
    const after = desired[f.field];
    if (f.lines ? false : canonicalJson(before) === canonicalJson(after)) continue;
    const lines = f.lines ? f.lines(before, after) : fieldChanges({ [f.field]: before }, { [f.field]: after });
    if (f.lines && lines.length === 0) continue;
    const drift = recorded !== undefined && canonicalJson(recorded[f.field]) === canonicalJson(after);
    const effect = typeof f.effect === 'function' ? f.effect(before, after, context) : f.effect;
    const changes = drift ? lines.map((c) => ({ ...c, drift })) : lines;
    out.push({ field: f.field, effect, drift, changes });
  }
  return out;
}

/**
 * The runtime part of a listed object's update (pools, networks): started again when inactive
 * (drift), autostart set when it differs. Appends to `fields` and `reasons`; true when inactive.
 */
export function runtimeDifferences(
  what: string, obs: { active: boolean; autostart: boolean }, autostart: boolean, fields: FieldChange[], reasons: string[],
  /** The manifest is the one applied last (same spec hash): an autostart that differs was flipped on the host. */
  applied = false,
): boolean {
  if (!obs.active) {
    fields.push({ field: 'status', before: 'inactive', after: 'active' });
    reasons.push(`${what} is inactive (drift)`);
  }
  if (obs.autostart !== autostart) {
    fields.push({ field: 'spec.autostart', before: obs.autostart, after: autostart, ...(applied ? { drift: true } : {}) });
    if (applied) reasons.push('autostart changed outside virtform (drift)');
  }
  return !obs.active || (applied && obs.autostart !== autostart);
}

/**
 * Exact drift of one object: its definition now against its baseline (libvirt's inactive XML
 * after virtform's last write), as plan lines named by XML path, each `(drift)`. Differences in
 * what the kind models are left to the field-level lines when those found any (`explained`).
 * Nothing is reported, and the baseline is taken again after this run's apply (without a change),
 * when: there is none yet (a record from before baselines, or an adopted object) and the
 * field-level comparison found no difference; libvirt's or the hypervisor's version changed; a
 * journal entry of an interrupted run names the object (a write may have happened after its
 * baseline); or what differs is all ignored (the next run's hashes are then equal again).
 */
export function exactDrift(observed: Observed, key: string, spec: ExactSpec, explained: boolean): FieldChange[] {
  const e = observed.exact;
  const sha = e?.sha256.get(key);
  if (!e || sha === undefined) return [];
  const base = e.baselines.get(key);
  const again = (): FieldChange[] => {
    e.rebaseline.add(key);
    return [];
  };
  if (observed.openJournal.has(key)) return again();
  if (!base) return observed.records.has(key) && !explained ? again() : [];
  if (base.version !== e.version) return again();
  if (base.sha256 === sha) return [];
  const before = e.xml.get(key);
  const now = definitionXml(observed, key);
  if (before === undefined || now === undefined) return [];
  const diffs = xmlDifferences(before, now, spec.ignore)
    .filter((d) => !(explained && spec.modelled.some((re) => re.test(d.path))));
  if (diffs.length === 0) return explained ? [] : again();
  // `before` of a plan line is the host's value, `after` what virtform applies (the baseline's).
  return diffs.map((d) => ({ field: d.path, before: d.after, after: d.before, drift: true, xml: d.change }));
}

/**
 * Devices of a running domain that its persistent definition lacks (attached live only), as plan
 * lines: `devices/watchdog live only`. Compared by the device's name (tag and identity), not its
 * details: libvirt adds aliases and addresses to the live XML of every device.
 */
export function liveOnlyDevices(liveXml: string | undefined, inactiveXml: string | undefined): FieldChange[] {
  if (liveXml === undefined || inactiveXml === undefined) return [];
  const top = (xml: string): Map<string, string> => {
    const out = new Map<string, string>();
    for (const [p, { sig, parent }] of flattenXml(xml)) if (parent === 'devices') out.set(p, sig);
    return out;
  };
  const defined = top(inactiveXml);
  return [...top(liveXml)].filter(([p]) => !defined.has(p))
    .map(([p, sig]) => ({ field: p, before: sig, after: undefined, drift: true, xml: 'live only' as const }));
}
