/** The overview page: revisions, the last run, counts by condition, hosts with their capacity. */
import { CONDITION_TYPES } from '../../model/conditions.js';
import type { CommitInfo, HostCapacity, Overview } from '../types.js';
import { href, html, type SafeHtml } from './html.js';
import { badge, meter, facts, tone } from './parts.js';
import { duration, shortCommit, time } from './format.js';

function commit(label: string, c: CommitInfo | null, id: string): SafeHtml {
  if (!c) return html`<div class="commit" id="${id}"><h3>${label}</h3><p class="muted-text">No commit (a folder source, or nothing ${label.toLowerCase()} yet).</p></div>`;
  return html`<div class="commit" id="${id}" data-commit="${c.commit}"><h3>${label}</h3>${facts([
    ['Commit', html`<code title="${c.commit}">${shortCommit(c.commit)}</code>`],
    ['Author', c.author ?? '–'],
    ['Message', c.message ? c.message.split('\n')[0]! : '–'],
    ['Time', c.time ? html`<time datetime="${c.time}">${time(c.time)}</time>` : '–'],
  ])}</div>`;
}

function host(h: HostCapacity): SafeHtml {
  return html`<li class="host card" data-host="${h.id}">
<h3>${h.id} ${h.connected ? html`<span class="badge ok">Connected</span>` : html`<span class="badge bad">Unreachable</span>`}</h3>
<p class="uri"><code>${h.uri}</code> · ${h.vms} managed ${h.vms === 1 ? 'VM' : 'VMs'}</p>
${h.error ? html`<p class="error-text">${h.error}</p>` : ''}
${meter('Memory', h.memory.used, h.memory.total, 'bytes')}
${meter('vCPUs', h.vcpus.used, h.vcpus.total, 'count')}
${h.disk.map((d) => meter(`Disk (pool ${d.pool})`, d.used, d.total, 'bytes'))}
</li>`;
}

export function overviewMain(o: Overview): SafeHtml {
  const differ = o.revision.fetched && o.revision.applied && o.revision.fetched.commit !== o.revision.applied.commit;
  return html`<h1>Overview</h1>
${o.suspended ? html`<p class="notice bad-notice" data-live-region="suspended">Reconciliation is suspended (<code>virtform suspend</code>): nothing is changed until <code>virtform resume</code>.</p>` : ''}
${o.manifestErrors.length ? html`<section class="notice bad-notice" aria-labelledby="errors-h" data-live-region="manifest-errors"><h2 id="errors-h">Manifest errors</h2><p>The last good manifests stay applied.</p><ul>${o.manifestErrors.map((e) => html`<li><code>${e}</code></li>`)}</ul></section>` : ''}
<div class="cols">
<section aria-labelledby="rev-h" class="card" data-live-region="revision">
<h2 id="rev-h">Revision</h2>
${commit('Applied', o.revision.applied, 'applied-commit')}
${differ ? commit('Fetched', o.revision.fetched, 'fetched-commit') : o.revision.fetched ? html`<p class="muted-text">Fetched commit: the same.</p>` : ''}
</section>
<section aria-labelledby="run-h" class="card" data-live-region="last-run">
<h2 id="run-h">Last run</h2>
${o.lastRun ? facts([
    ['Outcome', html`<span class="badge ${o.lastRun.outcome === 'succeeded' || o.lastRun.outcome === 'converged' ? 'ok' : o.lastRun.outcome === 'failed' ? 'bad' : 'muted'}" id="last-run-outcome">${o.lastRun.outcome}</span>`],
    ['Duration', duration(o.lastRun.durationMs)],
    ['Finished', html`<time datetime="${o.lastRun.finishedAt}">${time(o.lastRun.finishedAt)}</time>`],
    ['Run', html`<a href="${href(`/history/${encodeURIComponent(o.lastRun.id)}`)}">${o.lastRun.id}</a>`],
  ]) : html`<p>No run finished yet.</p>`}
${o.running ? html`<p>${badge('Reconciling')} A run is in progress.</p>` : ''}
</section>
</div>
<section aria-labelledby="cond-h" class="card" data-live-region="counts">
<h2 id="cond-h">Resources by condition</h2>
<p>${o.total} managed ${o.total === 1 ? 'resource' : 'resources'}. <a href="/resources">All resources</a></p>
<ul class="counts">
${CONDITION_TYPES.map((t) => html`<li class="${o.counts[t] ? tone(t) : 'muted'}" data-condition="${t}"><a href="${href('/resources', { condition: t })}"><span class="n">${o.counts[t] ?? 0}</span> <span class="t">${t}</span></a></li>
`)}</ul>
</section>
<section aria-labelledby="hosts-h" data-live-region="hosts">
<h2 id="hosts-h">Hosts</h2>
${o.hosts.length ? html`<ul class="hosts">${o.hosts.map(host)}</ul>` : html`<p>No host known yet.</p>`}
</section>
<p class="generated">Snapshot <span data-live-region="seq">${o.seq}</span>, generated <time datetime="${o.generatedAt}">${time(o.generatedAt)}</time>.</p>`;
}
