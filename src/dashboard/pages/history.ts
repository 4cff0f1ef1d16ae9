/** Run history (newest first, failures expandable) and one run's detail (failures, per-step timings). */
import type { RunDetail, RunPage, RunSummary } from '../types.js';
import { href, html, type SafeHtml } from './html.js';
import { facts, pagination } from './parts.js';
import { duration, shortCommit, time } from './format.js';

const outcomeTone = (o: string): string => (o === 'failed' ? 'bad' : o === 'succeeded' || o === 'converged' || o === 'ok' ? 'ok' : 'muted');

function outcome(o: string): SafeHtml {
  return html`<span class="badge ${outcomeTone(o)}">${o}</span>`;
}

function counts(r: RunSummary): string {
  const c = r.counts;
  const parts = [['create', c.create], ['change', c.change], ['replace', c.replace], ['delete', c.delete], ['conflict', c.conflict], ['held', c.held], ['failed', c.failed]]
    .filter(([, n]) => (n as number) > 0).map(([k, n]) => `${n} ${k}`);
  return parts.length ? parts.join(', ') : 'no change';
}

function failureList(d: RunDetail): SafeHtml {
  return html`<ul class="failures">${d.failures.map((f) => html`<li><a href="/resources/${encodeURIComponent(f.resource)}">${f.resource}</a>${f.code ? html` <code>${f.code}</code>` : ''}: <span class="error-text">${f.error}</span></li>`)}</ul>`;
}

/** `failed`: the detail of the runs on this page that have failures (their failures are shown expandable). */
export function historyMain(p: RunPage, failed: ReadonlyMap<string, RunDetail>, pageSizeDefault: number): SafeHtml {
  return html`<h1>History</h1>
<p>The last ${p.retention} runs are kept (<code>--history-runs</code>). ${p.total} ${p.total === 1 ? 'run' : 'runs'} recorded.</p>
<div class="table-wrap" data-live-region="runs">
<table class="grid runs"><caption class="visually-hidden">Runs, newest first</caption>
<thead><tr><th scope="col">Run</th><th scope="col">Finished</th><th scope="col">Trigger</th><th scope="col">Commit</th><th scope="col">Outcome</th><th scope="col">Duration</th><th scope="col">Changes</th></tr></thead>
<tbody data-rows="key">
${p.items.length === 0 ? html`<tr class="empty"><td colspan="7">No run recorded yet.</td></tr>` : p.items.map((r) => {
    const d = failed.get(r.id);
    return html`<tr data-key="${r.id}"><th scope="row"><a href="/history/${encodeURIComponent(r.id)}">${r.id}</a></th><td><time datetime="${r.finishedAt}">${time(r.finishedAt)}</time></td><td>${r.trigger}</td><td>${r.commit ? html`<code title="${r.commit}">${shortCommit(r.commit)}</code>` : '–'}</td><td>${outcome(r.outcome)}</td><td>${duration(r.durationMs)}</td><td>${counts(r)}${d && d.failures.length ? html`<details class="run-failures"><summary>${d.failures.length} ${d.failures.length === 1 ? 'failure' : 'failures'}</summary>${failureList(d)}</details>` : ''}</td></tr>
`;
  })}</tbody></table>
</div>
<div data-live-region="pages">${pagination('/history', { pageSize: p.pageSize === pageSizeDefault ? undefined : p.pageSize }, p.page, p.pageSize, p.total, 'History pages')}</div>`;
}

export function runMain(d: RunDetail): SafeHtml {
  const steps = [...d.steps].sort((a, b) => b.ms - a.ms);
  return html`<nav aria-label="Breadcrumb" class="crumbs"><ol><li><a href="/history">History</a></li><li aria-current="page">Run ${d.id}</li></ol></nav>
<h1>Run ${d.id}</h1>
<div class="card">${facts([
    ['Outcome', outcome(d.outcome)],
    ['Trigger', d.trigger],
    ['Started', html`<time datetime="${d.startedAt}">${time(d.startedAt)}</time>`],
    ['Finished', html`<time datetime="${d.finishedAt}">${time(d.finishedAt)}</time>`],
    ['Duration', duration(d.durationMs)],
    ['Commit', d.commitInfo ? html`<code title="${d.commitInfo.commit}">${shortCommit(d.commitInfo.commit)}</code>${d.commitInfo.message ? ` ${d.commitInfo.message.split('\n')[0]}` : ''}${d.commitInfo.author ? ` (${d.commitInfo.author})` : ''}` : d.commit ? html`<code>${shortCommit(d.commit)}</code>` : '–'],
    ['Changes', counts(d)],
  ])}</div>
<section aria-labelledby="fail-h">
<h2 id="fail-h">Failures</h2>
${d.failures.length ? failureList(d) : html`<p>None.</p>`}
</section>
<section aria-labelledby="steps-h">
<h2 id="steps-h">Steps, slowest first</h2>
${steps.length ? html`<div class="table-wrap"><table class="grid"><caption class="visually-hidden">Step timings</caption>
<thead><tr><th scope="col">Resource</th><th scope="col">Host</th><th scope="col">Step</th><th scope="col">Outcome</th><th scope="col" class="num">Time</th></tr></thead>
<tbody>${steps.map((s) => html`<tr><td>${s.kind}/${s.name}</td><td>${s.host}</td><td><code>${s.op}</code></td><td>${s.outcome}</td><td class="num">${duration(s.ms)}</td></tr>
`)}</tbody></table></div>` : html`<p>No step ran.</p>`}
</section>
<p><a href="${href('/history')}">Back to the history</a></p>`;
}
