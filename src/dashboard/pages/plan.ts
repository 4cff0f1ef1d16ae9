/** The plan of the last run: the `reconcile --dry-run` text, with its time. */
import type { PlanView } from '../types.js';
import { html, type SafeHtml } from './html.js';
import { time } from './format.js';

export function planMain(p: PlanView): SafeHtml {
  return html`<h1>Plan</h1>
<div data-live-region="plan">
${p.runId === null ? html`<p>No run yet: the plan appears after the first run.</p>` : html`<p>The plan of run <a href="/history/${encodeURIComponent(p.runId)}">${p.runId}</a>${p.time ? html`, <time datetime="${p.time}">${time(p.time)}</time>` : ''}. The same text as <code>virtform reconcile --dry-run</code>: <code>[live]</code> changes apply to the running VM, <code>[restart]</code> ones at its next boot.</p>
<pre class="plan" tabindex="0" aria-label="Plan text">${p.text}</pre>`}
${p.steps.length ? html`<details><summary>${p.steps.length} ${p.steps.length === 1 ? 'step' : 'steps'} as a table</summary>
<table class="grid"><caption class="visually-hidden">Plan steps</caption><thead><tr><th scope="col">Resource</th><th scope="col">Step</th><th scope="col">Marks</th><th scope="col">Why</th></tr></thead>
<tbody>${p.steps.map((s) => html`<tr><td>${s.key}</td><td>${s.label}</td><td>${s.marks.map((m) => html`<code>[${m}]</code> `)}</td><td>${s.reason}</td></tr>`)}</tbody></table></details>` : ''}
</div>`;
}
