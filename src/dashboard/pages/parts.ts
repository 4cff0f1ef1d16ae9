/** Pieces several pages share: condition badges, a resource link, capacity meters, definition lists, pagination. */
import type { ResourceState } from '../types.js';
import type { Condition } from '../../model/conditions.js';
import { href, html, keySegment, type Interpolation, type SafeHtml } from './html.js';
import { bytes, percent, time } from './format.js';

/** The CSS class of a state: its tone (ok, busy, warn, bad, muted). */
export function tone(state: string): 'ok' | 'busy' | 'warn' | 'bad' | 'muted' {
  switch (state) {
    case 'Ready': return 'ok';
    case 'Reconciling': return 'busy';
    case 'Drifted': case 'RestartRequired': case 'Unschedulable': return 'warn';
    case 'Stalled': case 'HeldForDataLoss': case 'HostUnreachable': case 'NotReady': return 'bad';
    default: return 'muted';
  }
}

/** A state badge: the word itself is the information (colour only repeats it). */
export function badge(state: ResourceState | string): SafeHtml {
  return html`<span class="badge ${tone(state)}">${state}</span>`;
}

export function resourcePath(key: string): string {
  return `/resources/${keySegment(key)}`;
}

export function resourceLink(key: string, text: Interpolation = key): SafeHtml {
  return html`<a href="${resourcePath(key)}">${text}</a>`;
}

/** A capacity bar: a `<meter>` (its value read by assistive technology) with the numbers beside it as text. */
export function meter(label: string, used: number, total: number, unit: 'bytes' | 'count'): SafeHtml {
  const show = (n: number): string => (unit === 'bytes' ? bytes(n) : String(n));
  const p = percent(used, total);
  return html`<div class="cap"><span class="cap-label">${label}</span><meter min="0" max="${total > 0 ? total : 1}" low="${total * 0.75}" high="${total * 0.9}" optimum="0" value="${Math.min(used, total > 0 ? total : used)}" aria-label="${label}: ${show(used)} of ${show(total)} used">${p}%</meter><span class="cap-text">${show(used)} / ${show(total)} <span class="pct">(${p}%)</span></span></div>`;
}

/** The conditions of a resource as a table: type, status, reason, message, last transition. */
export function conditionsTable(conditions: readonly Condition[], caption = 'Conditions'): SafeHtml {
  if (conditions.length === 0) return html`<p>No conditions recorded.</p>`;
  return html`<table class="grid conditions">
<caption>${caption}</caption>
<thead><tr><th scope="col">Type</th><th scope="col">Status</th><th scope="col">Reason</th><th scope="col">Message</th><th scope="col">Last transition</th></tr></thead>
<tbody>
${conditions.map((c) => html`<tr data-condition="${c.type}" class="${c.status === 'True' ? 'on' : 'off'}"><th scope="row">${c.type}</th><td>${c.status === 'True' ? badge(c.type === 'Ready' ? 'Ready' : c.type) : html`<span class="muted-text">False</span>`}</td><td><code>${c.reason}</code></td><td>${c.message}</td><td><time datetime="${c.lastTransitionTime}">${time(c.lastTransitionTime)}</time></td></tr>
`)}</tbody>
</table>`;
}

/** A `<dl>` of label → value pairs (rows with an undefined value are left out). */
export function facts(rows: [string, Interpolation][]): SafeHtml {
  return html`<dl class="facts">${rows.filter(([, v]) => v !== undefined).map(([k, v]) => html`<div><dt>${k}</dt><dd>${v}</dd></div>`)}</dl>`;
}

/** Previous / page N of M / next, as links keeping the other query parameters. */
export function pagination(path: string, query: Record<string, string | number | undefined>, page: number, pageSize: number, total: number, label: string): SafeHtml {
  const pages = Math.max(1, Math.ceil(total / pageSize));
  if (pages <= 1) return html``;
  const link = (p: number, text: string, rel: string): SafeHtml =>
    html`<a href="${href(path, { ...query, page: p === 1 ? undefined : p })}" rel="${rel}">${text}</a>`;
  return html`<nav class="pages" aria-label="${label}">
<ul>
<li>${page > 1 ? link(1, 'First', 'first') : html`<span class="disabled">First</span>`}</li>
<li>${page > 1 ? link(page - 1, 'Previous', 'prev') : html`<span class="disabled">Previous</span>`}</li>
<li aria-current="page">Page ${page} of ${pages}</li>
<li>${page < pages ? link(page + 1, 'Next', 'next') : html`<span class="disabled">Next</span>`}</li>
<li>${page < pages ? link(pages, 'Last', 'last') : html`<span class="disabled">Last</span>`}</li>
</ul>
</nav>`;
}

/** A value of the desired or observed config as text: strings as they are, the rest as JSON. */
export function valueText(v: unknown): string {
  if (v === undefined) return '–';
  if (typeof v === 'string') return v;
  return JSON.stringify(v, null, 1).replace(/\n\s*/g, ' ');
}
