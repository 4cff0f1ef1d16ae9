/**
 * Saved plans (issue 24): `reconcile --dry-run --out PLAN` writes the plan as a JSON document;
 * `reconcile --plan PLAN` applies exactly its steps, or refuses naming what changed.
 *
 * The document (`format: virtform-plan/1`) holds digests only, never secrets: the digest of the
 * manifests and each declared resource's spec hash (configs carry only digests of cloud-init
 * text), the revision (git commit of the folder or of `--git`), the consent flags given at plan
 * time, the set of objects observed on the host (names only), for every resource the plan touches
 * the digest of its definition as read from the host, the changes (as `--json` prints them, URL
 * credentials redacted) and the steps, each with the digest of its operation. `digest` covers the
 * whole document: an edited file is refused.
 *
 * Applying re-plans against the host with the plan's consent flags and, before any step runs
 * (the engine's `checkPlan` hook, under the writer lease), compares: the manifests' digest, the set
 * of objects, each touched object's definition, and finally the steps. Any difference refuses the
 * run with every reason (`StalePlanError`); the same steps are then applied by the ordinary apply,
 * journaled as any run: a run killed half-way is finished by applying the same plan again only
 * while the plan still describes the host (otherwise it is refused and a new plan is needed).
 */
import { createHash } from 'node:crypto';
import { hostOfKey, LOCAL_HOST, parseResourceKey } from '../model/kinds.js';
import { flattenXml } from '../libvirt/xml/compare.js';
import { kindOf } from './kinds/index.js';
import { canonicalJson } from './core/resource.js';
import type { ObservedHosts, Observed } from './core/observed.js';
import type { Desired } from './desired.js';
import type { Plan } from './plan.js';
import type { MaxDeletions } from './safety.js';
import { reconcile, type ReconcileOptions, type ReconcileResult } from './engine.js';

export const PLAN_FORMAT = 'virtform-plan/1';

/** Consent given at plan time: applied from the plan, never from the applying command's flags. */
export interface PlanConsent {
  allowDataLoss: boolean;
  /** `--max-deletions`: a number, `all`, or null (the default brake). */
  maxDeletions: number | 'all' | null;
  ignoreSuspend: boolean;
  allowEmpty: boolean;
}

export interface SavedStep {
  id: number;
  resource: string;
  host: string;
  op: string;
  deps: number[];
  /** sha256 of the operation's canonical JSON (its arguments: digests, sizes, names). */
  digest: string;
}

export interface SavedPlan {
  format: typeof PLAN_FORMAT;
  createdAt: string;
  createdBy?: string;
  /** Where the manifests came from: the folder (absolute path), or the git source. */
  source: { dir?: string; git?: { url: string; ref?: string; path?: string } };
  /** The libvirt URI planned against (the plan applies to the host recorded in the state DB). */
  uri?: string;
  manifests: {
    digest: string;
    /** The git commit of the folder (a git checkout) or of `--git`; null otherwise. */
    revision: { gitCommit: string | null; gitDirty: boolean };
    /** Spec hash of each declared resource, by key. */
    resources: Record<string, string>;
  };
  consent: PlanConsent;
  /** Objects seen on the host when planning (`domain/x`, `network/x`, `pool/x`, `volume/pool/x`; other hosts prefixed `host/`). */
  observed: { objects: string[]; digest: string };
  /** Digest of the definition of every resource the plan touches, as read from the host ('absent': no object). */
  baselines: Record<string, string>;
  /** The object of each touched resource that existed when planning, by key (`domain/x`, …): what its steps may remove. */
  touchedObjects: Record<string, string>;
  noop: boolean;
  summary: Plan['summary'];
  changes: Record<string, unknown>[];
  held: Record<string, string>;
  blocked: Record<string, string>;
  brake: { braked: boolean; deletions: string[]; max: number | null } | null;
  steps: SavedStep[];
  /** sha256 of the canonical JSON of every other field. */
  digest: string;
}

/** The plan no longer describes the host or the manifests: nothing was applied. */
export class StalePlanError extends Error {
  override readonly name = 'StalePlanError';
  constructor(readonly reasons: string[]) {
    super(`the saved plan is stale; nothing was applied:\n${reasons.map((r) => `  - ${r}`).join('\n')}`);
  }
}

const sha256 = (s: string): string => createHash('sha256').update(s).digest('hex');

/** Credentials out of URLs in plan values (`https://user:pass@h/x?token=…`). */
function redact(value: unknown): unknown {
  if (typeof value === 'string') {
    return value
      .replace(/\b([a-z][a-z0-9+.-]*:\/\/)[^/@\s]*@/gi, '$1***@')
      .replace(/([?&](?:token|key|sig|signature|password|secret|access_token|x-amz-[a-z-]+)=)[^&\s]*/gi, '$1***');
  }
  if (Array.isArray(value)) return value.map(redact);
  if (value && typeof value === 'object') return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, redact(v)]));
  return value;
}

/** The objects of one host's observation, named by libvirt type (not by kind: unmanaged ones too). */
function objectsOf(o: Observed): string[] {
  const host = o.host ?? LOCAL_HOST;
  const pre = host === LOCAL_HOST ? '' : `${host}/`;
  const out: string[] = [];
  for (const n of o.domains.keys()) out.push(`${pre}domain/${n}`);
  for (const n of o.networks.keys()) out.push(`${pre}network/${n}`);
  for (const n of o.pools.keys()) out.push(`${pre}pool/${n}`);
  for (const [pool, vols] of o.volumes) for (const n of vols.keys()) out.push(`${pre}volume/${pool}/${n}`);
  return out;
}

/** The object label (as in {@link observedObjects}) of a resource's definition, where observe read one. */
function objectLabel(hosts: ObservedHosts, key: string): string | undefined {
  const o = hosts.get(hostOfKey(key));
  const d = o?.definitions.get(key) as Record<string, unknown> | undefined;
  if (!o || !d || typeof d.name !== 'string') return undefined;
  const pre = (o.host ?? LOCAL_HOST) === LOCAL_HOST ? '' : `${o.host}/`;
  const name = d.name;
  if (typeof d.pool === 'string') return `${pre}volume/${d.pool}/${name}`;
  if (Array.isArray(d.disks) && o.domains.has(name)) return `${pre}domain/${name}`;
  if ('mode' in d && o.networks.has(name)) return `${pre}network/${name}`;
  if (o.pools.has(name)) return `${pre}pool/${name}`;
  return undefined;
}

export function observedObjects(hosts: ObservedHosts): string[] {
  return [...hosts.values()].flatMap(objectsOf).sort();
}

/** The digest of a resource's definition as observe read it ('absent' when it has none). */
export function definitionDigest(hosts: ObservedHosts, key: string): string {
  const o = hosts.get(hostOfKey(key));
  const d = o?.definitions.get(key);
  if (d === undefined) return o?.unreadable?.has(key) ? `unreadable:${sha256(o.unreadable.get(key)!)}` : 'absent';
  const xml = 'xml' in d && typeof d.xml === 'string' ? d.xml : undefined;
  // The XML where the kind keeps it (exact drift's), without what libvirt changes on its own (the
  // kind's `exact.ignore`: a pool's capacity and allocation); else the parsed definition. A
  // domain's run state too (running or not).
  const active = 'active' in d ? { active: d.active } : {};
  if (xml === undefined) return sha256(canonicalJson(d));
  const ignore = kindOf(parseResourceKey(key).kind).exact?.ignore ?? [];
  const ignored = (p: string): boolean => {
    const parts = p.split('/');
    return parts.some((_, i) => ignore.some((re) => re.test(parts.slice(0, i + 1).join('/'))));
  };
  const elements = [...flattenXml(xml)].filter(([p]) => !ignored(p)).map(([p, e]) => `${p}\u0000${e.sig}`).sort();
  return sha256(canonicalJson({ elements, ...active }));
}

function stepsOf(plan: Plan): SavedStep[] {
  return plan.steps.map((s) => ({ id: s.id, resource: s.key, host: s.host, op: s.op.op, deps: [...s.deps], digest: sha256(canonicalJson(s.op)) }));
}

/** The keys a plan touches: every change (held, blocked and released ones too). */
function touched(plan: Plan): string[] {
  return [...new Set(plan.changes.map((c) => c.key))].sort();
}

function withDigest(doc: Omit<SavedPlan, 'digest'>): SavedPlan {
  return { ...doc, digest: sha256(canonicalJson(doc)) };
}

export interface SavedPlanInput {
  plan: Plan;
  observed: ObservedHosts;
  desired: Desired;
  consent: PlanConsent;
  source: SavedPlan['source'];
  uri?: string;
  createdBy?: string;
  now?: Date;
}

/** The saved-plan document of a dry-run. */
export function savedPlanDocument(i: SavedPlanInput): SavedPlan {
  const p = i.plan;
  const objects = observedObjects(i.observed);
  return withDigest({
    format: PLAN_FORMAT,
    createdAt: (i.now ?? new Date()).toISOString(),
    ...(i.createdBy ? { createdBy: i.createdBy } : {}),
    source: i.source,
    ...(i.uri ? { uri: i.uri } : {}),
    manifests: {
      digest: i.desired.digest,
      revision: { gitCommit: i.desired.gitCommit ?? null, gitDirty: i.desired.gitDirty ?? false },
      resources: Object.fromEntries(i.desired.resources.map((r) => [r.key, r.specHash]).sort(([a], [b]) => (a! < b! ? -1 : 1))),
    },
    consent: i.consent,
    observed: { objects, digest: sha256(objects.join('\n')) },
    baselines: Object.fromEntries(touched(p).map((k) => [k, definitionDigest(i.observed, k)])),
    touchedObjects: Object.fromEntries(touched(p).flatMap((k) => {
      const label = objectLabel(i.observed, k);
      return label ? [[k, label]] : [];
    })),
    noop: p.noop,
    summary: p.summary,
    changes: p.changes.map((c) => redact({
      resource: c.key, host: c.host ?? hostOfKey(c.key), action: c.action, reason: c.reason, fields: c.fields, notes: c.notes,
      ownership: c.ownership, drift: c.drift, held: p.held.get(c.key) ?? null, blocked: p.blocked.get(c.key) ?? null,
      dataLoss: c.dataLoss ?? [], release: c.release ?? null,
    }) as Record<string, unknown>),
    held: Object.fromEntries(p.held),
    blocked: Object.fromEntries(p.blocked),
    brake: p.brake ? { braked: p.brake.braked, deletions: p.brake.deletions, max: p.brake.max } : null,
    steps: stepsOf(p),
  });
}

/** Why a plan file cannot be used: `code` 2 (not a plan file at all) or 1 (another format, or edited). */
export type ParsedPlan = { ok: true; plan: SavedPlan } | { ok: false; code: 1 | 2; message: string };

export function parseSavedPlan(text: string, file: string): ParsedPlan {
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (e) {
    return { ok: false, code: 2, message: `${file} is not a saved plan: not JSON (${e instanceof Error ? e.message : String(e)})` };
  }
  if (!doc || typeof doc !== 'object' || Array.isArray(doc)) return { ok: false, code: 2, message: `${file} is not a saved plan: not a JSON object` };
  const d = doc as Record<string, unknown>;
  if (typeof d.format !== 'string') return { ok: false, code: 2, message: `${file} is not a saved plan: no "format" field` };
  if (d.format !== PLAN_FORMAT) {
    return { ok: false, code: 1, message: `${file} is a plan of format ${JSON.stringify(d.format)}; this virtform applies ${PLAN_FORMAT} only (make a new plan: reconcile --dry-run --out)` };
  }
  const { digest, ...rest } = d;
  const missing = ['manifests', 'consent', 'observed', 'baselines', 'touchedObjects', 'steps', 'source'].filter((k) => !(k in rest));
  if (missing.length > 0) return { ok: false, code: 1, message: `${file} is damaged: missing ${missing.join(', ')}` };
  if (typeof digest !== 'string' || digest !== sha256(canonicalJson(rest))) {
    return { ok: false, code: 1, message: `${file} was edited after it was made: its digest does not match its content (make a new plan: reconcile --dry-run --out)` };
  }
  return { ok: true, plan: d as unknown as SavedPlan };
}

/** What differs between the plan's manifests and these: nothing (empty) or the reasons. */
export function manifestDifferences(saved: SavedPlan, desired: Desired): string[] {
  if (saved.manifests.digest === desired.digest) return [];
  const now = new Map(desired.resources.map((r) => [r.key, r.specHash]));
  const was = new Map(Object.entries(saved.manifests.resources));
  const lines: string[] = [];
  for (const [k, h] of was) {
    if (!now.has(k)) lines.push(`${k} removed`);
    else if (now.get(k) !== h) lines.push(`${k} changed`);
  }
  for (const k of now.keys()) if (!was.has(k)) lines.push(`${k} added`);
  const rev = saved.manifests.revision.gitCommit && desired.gitCommit && saved.manifests.revision.gitCommit !== desired.gitCommit
    ? `; git ${saved.manifests.revision.gitCommit.slice(0, 12)} → ${desired.gitCommit.slice(0, 12)}` : '';
  return [`the manifests changed since the plan (digest ${saved.manifests.digest.slice(0, 12)} → ${desired.digest.slice(0, 12)}${rev})` +
    `${lines.length ? `: ${lines.join(', ')}` : ' (no declared resource changed: files, comments or order)'}`];
}

/**
 * What differs between the saved plan and a plan made now of the same manifests with the same
 * consent: the objects on the host, the definitions of the touched objects, the steps.
 */
export function planDifferences(saved: SavedPlan, plan: Plan, observed: ObservedHosts, o: { resuming?: boolean } = {}): string[] {
  const reasons: string[] = [];
  const now = new Set(observedObjects(observed));
  const was = new Set(saved.observed.objects);
  // Resuming (an earlier apply of this plan stopped half-way): the objects of the plan's own
  // resources may have come or gone, and their definitions changed; nothing else may.
  const ownNow = new Set(o.resuming ? Object.keys(saved.baselines).flatMap((k) => objectLabel(observed, k) ?? []) : []);
  const ownWas = new Set(o.resuming ? Object.values(saved.touchedObjects) : []);
  const added = [...now].filter((x) => !was.has(x) && !ownNow.has(x));
  const removed = [...was].filter((x) => !now.has(x) && !ownWas.has(x));
  if (added.length) reasons.push(`object${added.length > 1 ? 's' : ''} added on the host since the plan: ${added.join(', ')}`);
  if (removed.length) reasons.push(`object${removed.length > 1 ? 's' : ''} removed from the host since the plan: ${removed.join(', ')}`);
  const changed: string[] = [];
  for (const [key, digest] of o.resuming ? [] : Object.entries(saved.baselines)) {
    const current = definitionDigest(observed, key);
    if (current !== digest) changed.push(`${key}${digest === 'absent' ? ' (created)' : current === 'absent' ? ' (gone)' : ''}`);
  }
  if (changed.length) reasons.push(`the definition of ${changed.join(', ')} changed on the host since the plan`);
  // Resuming, a step is the plan's when it is the same operation on the same resource (its
  // arguments may say what is left of it: a network defined but not started); forgetting the
  // record of a resource the plan deletes (gone from the host already) is the rest of that delete.
  const key = (s: SavedStep): string => `${s.host}|${s.resource}|${s.op}${o.resuming ? '' : `|${s.digest}`}`;
  const steps = stepsOf(plan);
  const planned = saved.steps.map(key).sort();
  const current = steps.map(key).sort();
  const deleted = new Set(saved.steps.filter((s) => /\.delete$/.test(s.op)).map((s) => `${s.host}|${s.resource}`));
  // Resuming: the steps left must be steps of the plan (each at most as often).
  const left = [...planned];
  const subset = current.every((k) => {
    const i = left.indexOf(k);
    if (i >= 0) left.splice(i, 1);
    const [host, resource, op] = k.split('|');
    return i >= 0 || (op === 'record.forget' && deleted.has(`${host}|${resource}`));
  });
  if (o.resuming ? !subset : planned.join('\n') !== current.join('\n')) {
    const p = new Set(planned);
    const c = new Set(current);
    const label = (k: string): string => {
      const [, resource, op] = k.split('|');
      return `${op} ${resource}`;
    };
    const gone = planned.filter((k) => !c.has(k)).map(label);
    const extra = current.filter((k) => !p.has(k)).map(label);
    reasons.push(`the steps differ from the plan's${gone.length ? `; no longer planned: ${gone.join(', ')}` : ''}` +
      `${extra.length ? `; now also planned: ${extra.join(', ')}` : ''}${!gone.length && !extra.length ? ' (as many times each)' : ''}`);
  }
  return reasons;
}

/** The consent flags as the engine takes them. */
export function consentOptions(c: PlanConsent): { allowDataLoss: boolean; maxDeletions: MaxDeletions; ignoreSuspend: boolean } {
  return { allowDataLoss: c.allowDataLoss, maxDeletions: c.maxDeletions ?? undefined, ignoreSuspend: c.ignoreSuspend };
}

/** One line showing the consent a plan carries (`consent from the plan: --allow-data-loss, --max-deletions 3`). */
export function consentText(c: PlanConsent): string {
  const flags = [
    ...(c.allowDataLoss ? ['--allow-data-loss'] : []),
    ...(c.maxDeletions !== null ? [`--max-deletions ${c.maxDeletions}`] : []),
    ...(c.ignoreSuspend ? ['--ignore-suspend'] : []),
    ...(c.allowEmpty ? ['--allow-empty'] : []),
  ];
  return flags.length ? flags.join(' ') : 'none';
}

/**
 * Apply a saved plan: refused (`StalePlanError`, nothing applied or recorded) when the manifests,
 * the objects on the host, a touched object's definition or the steps differ from the plan's;
 * else the engine's run with the plan's consent flags (the same steps, journaled as any run).
 */
export async function applySavedPlan(
  saved: SavedPlan, desired: Desired,
  opts: Omit<ReconcileOptions, 'desired' | 'dryRun' | 'allowDataLoss' | 'maxDeletions' | 'ignoreSuspend' | 'checkPlan' | 'store'> & { store: SavedPlanStore },
  hooks: { onResume?: (left: number) => void } = {},
): Promise<ReconcileResult> {
  const manifests = manifestDifferences(saved, desired);
  if (manifests.length > 0) throw new StalePlanError(manifests);
  if (desired.empty && !saved.consent.allowEmpty) throw new StalePlanError(['the manifests are empty and the plan was not made with --allow-empty']);
  const id = saved.digest.slice(0, 16);
  const history = (await opts.store.events.recent(2000)).map((e) => e.message);
  const applied = history.find((m) => m.startsWith(`${PLAN_EVENT} ${id} applied`));
  if (applied) throw new StalePlanError([`this plan was applied already (${applied.slice(`${PLAN_EVENT} ${id} applied: `.length)})`]);
  const resuming = history.some((m) => m.startsWith(`${PLAN_EVENT} ${id} started`));
  const result = await reconcile({
    ...opts,
    desired,
    ...consentOptions(saved.consent),
    checkPlan: async (plan, observed) => {
      const reasons = planDifferences(saved, plan, observed, { resuming });
      if (reasons.length > 0) throw new StalePlanError(resuming ? [...reasons, 'an earlier apply of this plan stopped half-way; what it left is not what the plan describes'] : reasons);
      if (resuming) hooks.onResume?.(plan.steps.length);
      if (!resuming) await opts.store.events.append({ level: 'info', message: `${PLAN_EVENT} ${id} started: ${saved.steps.length} step(s)` });
    },
  });
  if (result.outcome === 'succeeded' || result.outcome === 'noop') {
    await opts.store.events.append({ level: 'info', message: `${PLAN_EVENT} ${id} applied: run ${result.runId}, ${new Date().toISOString()}` });
  }
  return result;
}

/** The events that say a saved plan's apply started and finished (a rerun after a crash resumes it). */
const PLAN_EVENT = 'saved plan';

/** The store a saved plan's apply needs: the engine's, and the events it reads back. */
export type SavedPlanStore = ReconcileOptions['store'] & { events: ReconcileOptions['store']['events'] & { recent(limit?: number): Promise<{ message: string }[]> } };
