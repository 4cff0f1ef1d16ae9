/** Human and machine renderings of plans, apply progress and status. */
import { hostOfKey } from '../model/kinds.js';
import type { Plan } from '../reconcile/plan.js';
import type { FieldChange, ResourceChange } from '../reconcile/diff.js';
import type { ApplyEvent } from '../reconcile/apply.js';
import { stepLabel } from '../reconcile/apply.js';
import { kindOf } from '../reconcile/kinds/index.js';
import type { ChangeEffect } from '../reconcile/core/kind.js';
import { printable as safe } from '../util/printable.js';

export interface Style {
  color: boolean;
}

const CODES = { red: 31, green: 32, yellow: 33, cyan: 36, dim: 2, bold: 1 } as const;
export function paint(style: Style, code: keyof typeof CODES, text: string): string {
  return style.color ? `\x1b[${CODES[code]}m${text}\x1b[0m` : text;
}

const SYMBOL: Record<ResourceChange['action'], string> = {
  create: '+', update: '~', replace: '-/+', delete: '-', conflict: '!',
};
const COLOR: Record<ResourceChange['action'], keyof typeof CODES> = {
  create: 'green', update: 'yellow', replace: 'yellow', delete: 'red', conflict: 'red',
};
const VERB: Record<ResourceChange['action'], string> = {
  create: 'will be created', update: 'will be updated in place', replace: 'must be replaced',
  delete: 'will be deleted', conflict: 'conflicts and will not be touched',
};

const BYTE_FIELDS = /\.capacity$/;
const KIB_FIELDS = /\.(memory|maxMemory)$/;

/** Internal config keys → the manifest's field names. */
const FIELD_NAMES: [RegExp, string][] = [
  [/\.capacityBytes$/, '.capacity'],
  [/\.memoryKiB$/, '.memory'],
  [/\.maxMemoryKiB$/, '.maxMemory'],
  [/\.dhcpHosts/, '.dhcp.hosts'],
  [/\.dhcpRange\./, '.dhcp.'],
  [/\.sourcePath$/, '.source'],
  [/\.sourceSha256$/, '.source'],
  [/\.bootOrder$/, '.boot'],
  [/^spec\.deletionPolicy$/, 'metadata.deletionPolicy'],
];

/** Values virtform derives from others (file names, paths, disk targets): shown only when they change. */
const DERIVED = /\.(volName|path|backingPath|ipv4\.\w+|disks\[\d+\]\.(path|format|target))$/;

export function displayField(field: string): string {
  return FIELD_NAMES.reduce((f, [re, to]) => f.replace(re, to), field);
}

export function formatBytes(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB'];
  let v = n;
  let i = 0;
  while (v >= 1024 && i < units.length - 1 && v % 1024 === 0) {
    v /= 1024;
    i += 1;
  }
  return `${v}${units[i]}`;
}

function value(field: string, v: unknown): string {
  if (v === undefined) return '(none)';
  if (typeof v === 'number' && BYTE_FIELDS.test(field)) return formatBytes(v);
  if (typeof v === 'number' && KIB_FIELDS.test(field)) return formatBytes(v * 1024);
  return safe(JSON.stringify(v) ?? String(v));
}

/** The effect of a replace's field from its kind's field spec (`[replace]` where it recreates the object). */
function replaceEffect(c: ResourceChange, f: FieldChange): ChangeEffect | undefined {
  const name = /^spec\.(\w+)/.exec(f.field)?.[1];
  const spec = (kindOf(c.kind).fields as readonly { field: string; effect: ChangeEffect | ((b: unknown, a: unknown) => ChangeEffect) }[])
    .find((x) => x.field === name);
  if (!spec) return undefined;
  return typeof spec.effect === 'string' ? spec.effect : spec.effect(f.before, f.after);
}

function fieldLine(style: Style, c: ResourceChange, raw: FieldChange): string {
  const f = { ...raw, field: displayField(raw.field) };
  const effect = c.action === 'update' ? raw.effect : c.action === 'replace' ? replaceEffect(c, raw) : undefined;
  const marks = `${raw.drift ? ` ${paint(style, 'yellow', '(drift)')}` : ''}${effect ? ` ${paint(style, 'cyan', `[${effect}]`)}` : ''}`;
  // Exact drift: the XML path and what happened to it on the host (`devices/watchdog added (drift)`), then its content.
  if (raw.xml) {
    const shown = raw.xml === 'removed' || raw.xml === 'added by adoption' ? raw.after : raw.before;
    const detail = raw.xml === 'changed' || raw.xml === 'rewritten by adoption' ? `: ${String(raw.before)} → ${String(raw.after)}` : shown ? `: ${String(shown)}` : '';
    return `      ${paint(style, 'yellow', '~')} ${raw.field} ${raw.xml}${marks}${detail}`;
  }
  if (c.action === 'create' || f.before === undefined) return `      ${paint(style, 'green', '+')} ${f.field}: ${value(f.field, f.after)}${marks}`;
  if (f.after === undefined) return `      ${paint(style, 'red', '-')} ${f.field}: ${value(f.field, f.before)}${marks}`;
  return `      ${paint(style, 'yellow', '~')} ${f.field}: ${value(f.field, f.before)} → ${value(f.field, f.after)}${marks}`;
}

/** The plan's suspended resources (metadata.reconcile: disabled), one line each. */
function suspendedLines(plan: Plan, style: Style): string[] {
  return [...(plan.suspended ?? new Map<string, string>())].map(([key]) =>
    `  ${paint(style, 'cyan', 'suspended:')} ${key} (metadata.reconcile: disabled): not changed, not pruned`);
}

/** The mass-deletion brake's refusal: what would have been deleted, and how to let it through. */
export function brakeLines(plan: Plan, style: Style): string[] {
  const b = plan.brake;
  if (!b?.braked) return [];
  const why = b.source === 'flag' ? `--max-deletions ${b.max}` : `the default limit max(5, 10% of ${b.owned} owned) = ${b.max}`;
  const what = b.wipe
    ? `every ${b.wipe.kind} virtform owns (${b.wipe.owned}), which the default brake refuses`
    : `more than ${why}`;
  return [
    paint(style, 'red', `! braked: this plan deletes ${b.deletions.length} resources (replaces and held changes count), ${what}. Nothing is applied.`),
    ...b.deletions.map((k) => `    - ${k}`),
    `  If this is intended, run again with --max-deletions ${b.deletions.length} (or --max-deletions all).`,
  ];
}

/** What a caller adds to a change's lines (the fleet: `→ host h2 (fits: …)` after the head, `--explain` lines under it). */
export interface PlanAnnotations {
  suffix?(key: string): string | undefined;
  lines?(key: string): string[];
}

export function renderPlan(plan: Plan, style: Style, annotate?: PlanAnnotations): string {
  const lines: string[] = [];
  const notices = [...suspendedLines(plan, style), ...(plan.notices ?? []).map((n) => `  ${paint(style, 'cyan', 'note:')} ${safe(n)}`)];
  if (plan.noop) {
    if (notices.length === 0) return 'No changes. Infrastructure matches the manifests.\n';
    return `No changes to apply; the manifests are applied, but:\n${notices.join('\n')}\n`;
  }
  lines.push('virtform will perform the following actions:', '');
  for (const c of plan.changes) {
    const blocked = plan.blocked.get(c.key);
    const held = plan.held.get(c.key);
    const suffix = annotate?.suffix?.(c.key);
    const head = `${SYMBOL[c.action].padStart(3)} ${c.kind}/${c.name}${suffix ? ` ${suffix}` : ''}`;
    const what = c.release?.policy === 'Suspended'
      ? `will be released (its manifest was removed while metadata.reconcile: disabled): ${safe(c.release.kept)}`
      : c.release
      ? `will be released (deletionPolicy: ${c.release.policy}): ${safe(c.release.kept)}`
      : `${VERB[c.action]}: ${safe(c.reason)}`;
    lines.push(`  ${paint(style, 'dim', `# ${c.kind}/${c.name} ${what}`)}`);
    lines.push(`${paint(style, c.release ? 'cyan' : COLOR[c.action], head)}`);
    for (const l of annotate?.lines?.(c.key) ?? []) lines.push(`      ${l}`);
    if (blocked && c.action !== 'conflict') lines.push(`      ${paint(style, 'red', '!')} blocked: ${safe(blocked)}`);
    for (const loss of c.dataLoss ?? []) {
      const size = loss.sizeBytes !== undefined ? ` (${formatBytes(loss.sizeBytes)})` : '';
      const consent = held ? '' : ' [consented: --allow-data-loss]';
      lines.push(`      ${paint(style, 'red', '!')} data loss${consent}: ${loss.volume}${loss.path ? ` file ${safe(loss.path)}` : ''}${size}: ${safe(loss.why.join('; '))}`);
    }
    if (held) lines.push(`      ${paint(style, 'red', '!')} held: ${c.dataLoss?.length ? 'needs --allow-data-loss' : safe(held)}`);
    for (const f of c.fields) {
      if (c.action === 'create' && !kindOf(c.kind).createShowsAllFields && DERIVED.test(f.field)) continue;
      lines.push(fieldLine(style, c, f));
    }
    for (const n of c.notes) lines.push(`      ${paint(style, 'cyan', 'note:')} ${safe(n)}`);
    if (c.release) lines.push(`      ${paint(style, 'cyan', 'note:')} nothing is deleted; virtform forgets it (a manifest with metadata.adopt: true takes it back)`);
    lines.push('');
  }
  const direct = plan.changes.filter((c) => plan.held.has(c.key) && c.dataLoss?.length).length;
  if (plan.held.size > 0) {
    lines.push(paint(style, 'red', `${plan.held.size} change(s) held: ${direct} would destroy data (marked "data loss"), ` +
      `the others depend on them. None of their steps run.`));
    lines.push('To consent to the data loss, run again with --allow-data-loss.', '');
  }
  const dependents = [...plan.blocked].filter(([k]) => !plan.changes.some((c) => c.key === k && c.action === 'conflict'));
  for (const [key, reason] of dependents) {
    if (!plan.changes.some((c) => c.key === key)) lines.push(`  ${paint(style, 'red', '!')} ${key}: ${safe(reason)}`);
  }
  if (dependents.length > 0) lines.push('');
  if (notices.length > 0) lines.push(...notices, '');
  const brake = brakeLines(plan, style);
  if (brake.length > 0) lines.push(...brake, '');
  lines.push(summaryLine(plan));
  return `${lines.join('\n')}\n`;
}

export function summaryLine(plan: Plan): string {
  const s = plan.summary;
  const deletes = s.release > 0 ? `${s.delete - s.release} to delete, ${s.release} to release` : `${s.delete} to delete`;
  const moves = (s.move ?? 0) > 0 ? `, ${s.move} to move` : '';
  const base = `Plan: ${s.create} to create, ${s.change} to change, ${s.replace} to replace, ${deletes}${moves}.`;
  const extra = [
    ...(s.conflict > 0 ? [`${s.conflict} in conflict.`] : []),
    ...(s.held > 0 ? [`${s.held} held (data loss; needs --allow-data-loss).`] : []),
    ...((plan.suspended?.size ?? 0) > 0 ? [`${plan.suspended.size} suspended.`] : []),
    ...(plan.brake?.braked ? [plan.brake.wipe ? `BRAKED: deletes every ${plan.brake.wipe.kind} owned (${plan.brake.wipe.owned}) (--max-deletions).` : `BRAKED: ${plan.brake.deletions.length} deletions > ${plan.brake.max} allowed (--max-deletions).`] : []),
  ];
  return [base, ...extra].join(' ');
}

export function planToJson(plan: Plan): Record<string, unknown> {
  return {
    noop: plan.noop,
    summary: plan.summary,
    changes: plan.changes.map((c) => ({
      kind: c.kind, name: c.name, host: c.host ?? hostOfKey(c.key), action: c.action, reason: c.reason, fields: c.fields, notes: c.notes,
      ownership: c.ownership, blocked: plan.blocked.get(c.key) ?? null,
      held: plan.held.get(c.key) ?? null, dataLoss: c.dataLoss ?? [], release: c.release ?? null,
      steps: c.steps,
    })),
    blocked: Object.fromEntries(plan.blocked),
    held: Object.fromEntries(plan.held),
    suspended: Object.fromEntries(plan.suspended ?? new Map()),
    brake: plan.brake ?? null,
    notices: plan.notices ?? [],
    steps: plan.steps.map((s) => ({ id: s.id, resource: s.key, host: s.host, op: s.op.op, deps: s.deps })),
  };
}

export function renderApplyEvent(e: ApplyEvent, style: Style): string | undefined {
  if (e.type === 'progress') return undefined; // drawn by the CLI's progress line
  if (e.type === 'start') return style.color ? `${paint(style, 'dim', '…')} ${stepLabel(e.step)}` : undefined;
  if (e.type === 'retry') {
    return `${paint(style, 'yellow', '↻')} ${stepLabel(e.step)}: attempt ${e.attempt} failed (${safe(e.error)}); retrying in ${e.delayMs} ms`;
  }
  if (e.type === 'note') return `${paint(style, 'yellow', '!')} ${stepLabel(e.step)}: ${e.text}`;
  const o = e.outcome;
  const secs = `${(o.ms / 1000).toFixed(2)}s`;
  if (o.status === 'succeeded') return `${paint(style, 'green', '✓')} ${stepLabel(o.step)} (${secs})`;
  if (o.status === 'skipped') return `${paint(style, 'yellow', '↷')} ${stepLabel(o.step)}: ${safe(o.error ?? 'skipped')}`;
  return `${paint(style, 'red', '✗')} ${stepLabel(o.step)} failed after ${o.attempts} attempt(s) (${secs}): ${safe(o.error ?? '')}`;
}
