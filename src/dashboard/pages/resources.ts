/** The resources table: filters (a plain GET form), sortable columns, server-side pages; every link works without JavaScript. */
import { CONDITION_TYPES } from '../../model/conditions.js';
import type { ResourceItem, ResourcePage, ResourceQuery, SortField } from '../types.js';
import { href, html, type SafeHtml } from './html.js';
import { badge, pagination, resourceLink } from './parts.js';

/** The query as link parameters (defaults left out, so links stay short). */
export function queryParams(q: ResourceQuery, defaults: { sort: SortField; order: 'asc' | 'desc'; pageSize: number }): Record<string, string | number | undefined> {
  return {
    kind: q.kind, host: q.host, label: q.label?.length ? q.label.join(',') : undefined, condition: q.condition, q: q.q,
    sort: q.sort === defaults.sort ? undefined : q.sort,
    order: q.order === defaults.order ? undefined : q.order,
    pageSize: q.pageSize === defaults.pageSize ? undefined : q.pageSize,
  };
}

const COLUMNS: { field?: SortField; label: string }[] = [
  { field: 'name', label: 'Name' }, { field: 'kind', label: 'Kind' }, { field: 'host', label: 'Host' }, { field: 'status', label: 'Status' },
  { label: 'Desired' }, { label: 'Observed' }, { label: 'Reason' }, { label: 'Labels' },
];

/** One row; `data-key` lets the script patch only the rows that changed. */
export function resourceRow(r: ResourceItem): SafeHtml {
  const labels = Object.entries(r.labels);
  return html`<tr data-key="${r.key}" data-state="${r.status}"><th scope="row">${resourceLink(r.key, r.name)}</th><td>${r.kind}</td><td>${r.host}</td><td>${badge(r.status)}</td><td>${r.desired}</td><td>${r.observed}</td><td class="reason">${r.reason ?? ''}</td><td>${labels.length ? html`<ul class="labels">${labels.map(([k, v]) => html`<li>${k}=${v}</li>`)}</ul>` : ''}</td></tr>
`;
}

/** The rows alone (the `tbody`'s content). */
export function resourceRows(p: ResourcePage): SafeHtml {
  if (p.items.length === 0) return html`<tr class="empty"><td colspan="${COLUMNS.length}">No resource matches these filters.</td></tr>`;
  return html`${p.items.map(resourceRow)}`;
}

function select(name: string, label: string, current: string | undefined, options: { value: string; count?: number }[]): SafeHtml {
  return html`<div class="field"><label for="f-${name}">${label}</label>
<select id="f-${name}" name="${name}">
<option value="">All</option>
${options.map((o) => html`<option value="${o.value}"${o.value === current ? html` selected` : ''}>${o.value}${o.count !== undefined ? ` (${o.count})` : ''}</option>`)}
</select></div>`;
}

export function resourcesMain(p: ResourcePage, q: ResourceQuery, defaults: { sort: SortField; order: 'asc' | 'desc'; pageSize: number }): SafeHtml {
  const params = queryParams(q, defaults);
  const first = p.total === 0 ? 0 : (p.page - 1) * p.pageSize + 1;
  const last = Math.min(p.total, p.page * p.pageSize);
  const conditions = CONDITION_TYPES.map((t) => ({ value: t, count: p.facets.conditions.find((c) => c.value === t)?.count ?? 0 }));
  const header = (c: (typeof COLUMNS)[number]): SafeHtml => {
    if (!c.field) return html`<th scope="col">${c.label}</th>`;
    const active = q.sort === c.field;
    const next = active && q.order === 'asc' ? 'desc' : 'asc';
    const link = href('/resources', { ...params, sort: c.field === defaults.sort ? undefined : c.field, order: next === defaults.order ? undefined : next, page: undefined });
    return html`<th scope="col"${active ? html` aria-sort="${q.order === 'asc' ? 'ascending' : 'descending'}"` : ''}><a href="${link}" data-sort="${c.field}">${c.label}<span class="sort-mark" aria-hidden="true">${active ? (q.order === 'asc' ? ' ▲' : ' ▼') : ''}</span><span class="visually-hidden">${active ? `, sorted ${q.order === 'asc' ? 'ascending' : 'descending'}; ` : ', '}sort ${next === 'asc' ? 'ascending' : 'descending'}</span></a></th>`;
  };
  return html`<h1>Resources</h1>
<form class="filters" method="get" action="/resources" role="search" aria-label="Filter resources">
${select('kind', 'Kind', q.kind, p.facets.kinds)}
${select('host', 'Host', q.host, p.facets.hosts)}
${select('condition', 'Condition', q.condition, conditions)}
<div class="field"><label for="f-label">Label</label><input id="f-label" name="label" type="text" value="${q.label?.join(',') ?? ''}" placeholder="key=value" list="label-values" aria-describedby="f-label-hint"><span id="f-label-hint" class="hint">key=value or key; several with commas</span>
<datalist id="label-values">${p.facets.labels.map((l) => html`<option value="${l.value}"></option>`)}</datalist></div>
<div class="field"><label for="f-q">Search</label><input id="f-q" name="q" type="search" value="${q.q ?? ''}"></div>
${q.sort !== defaults.sort ? html`<input type="hidden" name="sort" value="${q.sort}">` : ''}
${q.order !== defaults.order ? html`<input type="hidden" name="order" value="${q.order}">` : ''}
${q.pageSize !== defaults.pageSize ? html`<input type="hidden" name="pageSize" value="${q.pageSize}">` : ''}
<div class="buttons"><button type="submit">Apply filters</button> <a href="/resources">Clear</a></div>
</form>
<p class="summary" id="resources-summary" data-live-region="summary">${p.total === 0 ? 'No resources' : html`Showing ${first}–${last} of <span id="resources-total">${p.total}</span>`}${p.total === 1 ? ' resource' : p.total ? ' resources' : ''}.</p>
<div class="table-wrap">
<table class="grid resources" aria-describedby="resources-summary">
<caption class="visually-hidden">Managed resources</caption>
<thead><tr>${COLUMNS.map(header)}</tr></thead>
<tbody id="resource-rows" data-live-region="rows" data-rows="key">
${resourceRows(p)}</tbody>
</table>
</div>
<div data-live-region="pages">${pagination('/resources', params, p.page, p.pageSize, p.total, 'Resource pages')}</div>`;
}
