/** Everything not Ready, most important first, with the reason and what to do. */
import type { AttentionList } from '../types.js';
import { html, type SafeHtml } from './html.js';
import { badge, resourceLink } from './parts.js';
import { time } from './format.js';

export function attentionMain(a: AttentionList): SafeHtml {
  return html`<h1>Needs attention</h1>
<div data-live-region="attention">
${a.items.length === 0 ? html`<p class="all-ready">${badge('Ready')} Everything is Ready.</p>` : html`<p>${a.total} ${a.total === 1 ? 'item' : 'items'}, most important first.</p>
<div class="table-wrap"><table class="grid attention"><caption class="visually-hidden">Resources that are not Ready</caption>
<thead><tr><th scope="col">Resource</th><th scope="col">Condition</th><th scope="col">Reason</th><th scope="col">Since</th><th scope="col">What to do</th></tr></thead>
<tbody data-rows="key">${a.items.map((i) => html`<tr data-key="${i.key}|${i.condition}"><th scope="row">${resourceLink(i.key)}</th><td>${badge(i.condition)}</td><td><code>${i.reason}</code> ${i.message}</td><td><time datetime="${i.since}">${time(i.since)}</time></td><td><code class="action">${i.action}</code></td></tr>
`)}</tbody></table></div>`}
</div>`;
}
