/**
 * The page shell every dashboard page shares: landmarks (banner, main navigation, main, footer),
 * a skip link, the live-update status line, the stylesheet and the one script (`/assets/app.css`,
 * `/assets/app.js`, served by virtform itself: no inline script or style, so the CSP can say
 * `script-src 'self'; style-src 'self'`).
 */
import { html, type Interpolation, type SafeHtml } from './html.js';

export type Section = 'overview' | 'resources' | 'plan' | 'history' | 'attention' | 'login';

const NAV: { section: Exclude<Section, 'login'>; path: string; label: string }[] = [
  { section: 'overview', path: '/', label: 'Overview' },
  { section: 'resources', path: '/resources', label: 'Resources' },
  { section: 'plan', path: '/plan', label: 'Plan' },
  { section: 'history', path: '/history', label: 'History' },
  { section: 'attention', path: '/attention', label: 'Needs attention' },
];

export interface LayoutOptions {
  title: string;
  section: Section;
  /** Whether the page follows `/api/v1/events` and patches its `[data-live]` regions (not the login page). */
  live?: boolean;
  /** The count shown beside "Needs attention" in the navigation. */
  attentionCount?: number;
  /** Whether a session is in use (auth on): the footer says so. */
  authenticated?: boolean;
  /** The snapshot the page was rendered from (the script skips events not newer). */
  seq?: number;
  /** A resource's detail page: its key (the script reports the state it shows). */
  resourceKey?: string;
}

/** The whole document around `main` (the content of the `<main>` element). */
export function layout(o: LayoutOptions, main: Interpolation): SafeHtml {
  const live = o.live ?? o.section !== 'login';
  return html`<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer">
<title>${o.title} · virtform</title>
<link rel="icon" href="data:,">
<link rel="stylesheet" href="/assets/app.css">
<script src="/assets/app.js" defer></script>
</head>
<body data-section="${o.section}"${live ? html` data-live="on"` : ''}${o.seq !== undefined ? html` data-seq="${o.seq}"` : ''}${o.resourceKey !== undefined ? html` data-resource-key="${o.resourceKey}"` : ''}>
<a class="skip" href="#main">Skip to content</a>
<header class="top">
<p class="brand"><a href="/">virtform</a></p>
${o.section === 'login' ? '' : html`<nav aria-label="Main">
<ul>
${NAV.map((n) => html`<li><a href="${n.path}"${n.section === o.section ? html` aria-current="page"` : ''}>${n.label}${
    n.section === 'attention' && o.attentionCount ? html` <span class="count" data-live-region="nav-attention">${o.attentionCount}</span>` : ''}</a></li>
`)}</ul>
</nav>`}
${live ? html`<p class="live" id="live-status" role="status">Live updates need JavaScript; reload to refresh.</p>` : ''}
</header>
<main id="main" tabindex="-1">
${main}
</main>
<footer class="foot"><p>Read-only view of <code>virtform watch</code>. Changes go through git and the CLI.</p></footer>
</body>
</html>
`;
}
