/**
 * How placements read in the plan, `--explain` and `--json`. Pure text from the scheduler's result.
 */
import { printable } from '../util/printable.js';
import type { Move, Placement, Rejection, Score, ScheduleResult, Unschedulable } from './types.js';

/** `→ host h2 (fits: 3.1GiB free, 6 vCPUs free; spread by zone for app=web: a 1, b 1, c 0 → c)` */
export function placementLine(p: Placement): string {
  return `→ host ${printable(p.host)} (${printable(p.summary)})${p.warning !== undefined ? ` [${printable(p.warning)}]` : ''}`;
}

/** "skew 0, least allocated 72.5, VMs 2" */
export function scoreText(s: Score): string {
  const names: Record<string, string> = { skew: 'skew', leastAllocated: 'least allocated', vms: 'VMs' };
  return Object.entries(s).map(([k, v]) => `${names[k] ?? k} ${v}`).join(', ');
}

const rejectionLine = (r: Rejection): string => `${printable(r.host)}: rejected by ${r.filter}: ${printable(r.detail)}`;

/**
 * `--explain`: one line per host: the winner and its score parts, the hosts that fit but ranked
 * lower, and each rejected host with the filter that rejected it.
 */
export function explainLines(p: Placement): string[] {
  const lines: string[] = [];
  if (p.score) {
    lines.push(`${printable(p.host)}: chosen (${p.why}): ${scoreText(p.score)}`);
    for (const o of p.others ?? []) lines.push(`${printable(o.host)}: fits, ranked lower: ${scoreText(o.score)}`);
    const more = (p.fitting ?? 0) - 1 - (p.others ?? []).length;
    if (more > 0) lines.push(`… and ${more} more host${more === 1 ? '' : 's'} fit, ranked lower still`);
    if (p.score.skew !== undefined || (p.others ?? []).length > 0) lines.push('ranking: lower skew, then more free after placing (least allocated), then fewer VMs, then host name');
  } else {
    lines.push(`${printable(p.host)}: ${p.summary}`);
  }
  if (p.warning !== undefined) lines.push(`warning: ${printable(p.warning)}`);
  for (const r of p.rejected) lines.push(rejectionLine(r));
  return lines;
}

/** Nova's "No valid host was found", with the reason per host. */
export function unschedulableLines(u: Unschedulable): string[] {
  return [`${printable(u.vm)}: no valid host was found (${printable(u.summary)})`, ...u.reasons.map((r) => `  ${rejectionLine(r)}`)];
}

export function unschedulableText(u: Unschedulable): string {
  return unschedulableLines(u).join('\n');
}

/**
 * VMs that should leave their host (drain, pin changed) but stay this run, one line each: they
 * have no plan change of their own, so the plan shows these after its changes.
 */
export function stayLines(r: Pick<ScheduleResult, 'placements'>): string[] {
  return [...r.placements.values()].filter((p) => p.warning !== undefined).sort((a, b) => (a.vm < b.vm ? -1 : a.vm > b.vm ? 1 : 0))
    .map((p) => `${printable(p.vm)} stays on ${printable(p.host)}: ${printable(p.warning!)}`);
}

export function moveLine(m: Move): string {
  return `${printable(m.vm)}: move ${printable(m.from)} → ${printable(m.to)} (${m.cause}: ${printable(m.reason)})`;
}

/** The result as plain JSON (Maps become objects keyed by VM name, sorted). */
export interface ScheduleJson {
  placements: Record<string, Placement>;
  moves: Move[];
  unschedulable: Record<string, Unschedulable>;
}

export function resultJson(r: ScheduleResult): ScheduleJson {
  const sorted = <T>(m: Map<string, T>): Record<string, T> =>
    Object.fromEntries([...m.entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
  return { placements: sorted(r.placements), moves: r.moves, unschedulable: sorted(r.unschedulable) };
}
