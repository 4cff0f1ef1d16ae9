/** A resource's detail: where it is declared, its state and conditions, desired vs observed fields, addresses, journal and events. */
import type { NicAddress, ResourceDetail } from '../types.js';
import { href, html, type SafeHtml } from './html.js';
import { badge, conditionsTable, facts, valueText } from './parts.js';
import { time } from './format.js';

function addresses(list: readonly NicAddress[]): SafeHtml {
  if (list.length === 0) return html`<p>No address known (not a VM, not running, or no lease yet).</p>`;
  return html`<table class="grid"><caption class="visually-hidden">Addresses</caption><thead><tr><th scope="col">MAC</th><th scope="col">Network</th><th scope="col">Addresses</th></tr></thead>
<tbody>${list.map((n) => html`<tr><td><code>${n.mac}</code></td><td>${n.network ?? '–'}</td><td>${n.addresses.length ? n.addresses.join(', ') : '–'}</td></tr>`)}</tbody></table>`;
}

export function resourceMain(d: ResourceDetail): SafeHtml {
  const r = d.item;
  const labels = Object.entries(r.labels);
  const differing = d.fields.filter((f) => f.differs).length;
  return html`<nav aria-label="Breadcrumb" class="crumbs"><ol><li><a href="/resources">Resources</a></li><li><a href="${href('/resources', { kind: r.kind })}">${r.kind}</a></li><li aria-current="page">${r.name}</li></ol></nav>
<h1><span class="kind">${r.kind}</span> ${r.name}</h1>
<div data-live-region="summary" class="card">
${facts([
    ['Status', html`<span id="resource-state" data-state="${r.status}">${badge(r.status)}</span>`],
    ['Reason', r.reason ?? undefined],
    ['Host', html`<a href="${href('/resources', { host: r.host })}">${r.host}</a>`],
    ['Manifest', d.manifest ? html`<code id="manifest-location">${d.manifest.file}:${d.manifest.line}:${d.manifest.col}</code>` : html`<span id="manifest-location">not declared (the next run deletes it)</span>`],
    ['Desired', r.desired],
    ['Observed', r.observed],
    ['Labels', labels.length ? html`<ul class="labels">${labels.map(([k, v]) => html`<li>${k}=${v}</li>`)}</ul>` : '–'],
    ['Record updated', r.updatedAt ? html`<time datetime="${r.updatedAt}">${time(r.updatedAt)}</time>` : '–'],
  ])}
</div>
<section aria-labelledby="cond-h" data-live-region="conditions">
<h2 id="cond-h">Conditions</h2>
${conditionsTable(d.conditions, `Conditions of ${r.key}`)}
</section>
<section aria-labelledby="fields-h" data-live-region="fields">
<h2 id="fields-h">Desired and observed</h2>
${d.fields.length ? html`<p>${differing === 0 ? 'No field differs.' : `${differing} ${differing === 1 ? 'field differs' : 'fields differ'}.`}</p>
<div class="table-wrap"><table class="grid fields"><caption class="visually-hidden">Fields, desired and observed</caption>
<thead><tr><th scope="col">Field</th><th scope="col">Desired</th><th scope="col">Observed</th><th scope="col">Differs</th></tr></thead>
<tbody>${d.fields.map((f) => html`<tr${f.differs ? html` class="differs"` : ''}><th scope="row"><code>${f.path}</code></th><td><code>${valueText(f.desired)}</code></td><td><code>${valueText(f.observed)}</code></td><td>${f.differs ? html`<strong>yes</strong>` : 'no'}</td></tr>
`)}</tbody></table></div>` : html`<p>No field comparison for this resource.</p>`}
<details><summary>Desired configuration (JSON)</summary><pre>${JSON.stringify(d.desired, null, 2) ?? 'null'}</pre></details>
<details><summary>Observed (JSON)</summary><pre>${JSON.stringify(d.observed, null, 2) ?? 'null'}</pre></details>
</section>
<section aria-labelledby="addr-h" data-live-region="addresses">
<h2 id="addr-h">Addresses</h2>
${addresses(d.addresses)}
</section>
<section aria-labelledby="journal-h" data-live-region="journal">
<h2 id="journal-h">Journal (recent steps)</h2>
${d.journal.length ? html`<div class="table-wrap"><table class="grid"><caption class="visually-hidden">Recent steps of ${r.key}</caption>
<thead><tr><th scope="col">Step</th><th scope="col">Status</th><th scope="col">Started</th><th scope="col">Finished</th><th scope="col">Run</th><th scope="col">Error</th></tr></thead>
<tbody>${d.journal.map((j) => html`<tr><td><code>${j.op}</code></td><td>${j.status}</td><td><time datetime="${j.startedAt}">${time(j.startedAt)}</time></td><td>${j.finishedAt ? time(j.finishedAt) : '–'}</td><td>${j.runId ? html`<a href="/history/${encodeURIComponent(j.runId)}">${j.runId}</a>` : '–'}</td><td class="error-text">${j.error ?? ''}</td></tr>
`)}</tbody></table></div>` : html`<p>No step recorded.</p>`}
</section>
<section aria-labelledby="events-h" data-live-region="events">
<h2 id="events-h">Events</h2>
${d.events.length ? html`<ul class="events">${d.events.map((e) => html`<li><time datetime="${e.time}">${time(e.time)}</time> <code>${e.type}</code> ${e.message}</li>`)}</ul>` : html`<p>No event recorded.</p>`}
</section>`;
}
