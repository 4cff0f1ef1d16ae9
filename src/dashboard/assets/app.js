// virtform dashboard: progressive enhancement of the server-rendered pages (everything works
// without this script; it adds live updates and in-place table navigation).
//
// Live updates: an EventSource on /api/v1/events. On each `snapshot` event the page fetches its
// own URL with `fragment=1` (the content of <main>, rendered from the new snapshot) and patches
// only what changed: each `[data-live-region]` whose HTML differs, and inside a `[data-rows]` tbody
// only the rows (by `data-key`) whose HTML differs. Unchanged rows are never touched, so nothing
// flickers at 1,000 resources; the element that had focus is focused again after its row was
// replaced, and the scroll position stays (rows are replaced in place, in one task).
//
// What the page received and patched is kept in `window.vfLive` ({events, patches}) and announced
// as a `vf:patched` DOM event (detail: {seq, runId, phase, changedKeys, states}), where `states`
// gives the state each changed resource shows after the patch: the browser tests read the page's
// own event stream there.
(function () {
  'use strict';
  var live = { events: [], patches: [], connected: false, errors: 0 };
  window.vfLive = live;
  var FRAGMENT = 'fragment';

  function status(text, on) {
    var el = document.getElementById('live-status');
    if (!el) return;
    if (el.textContent !== text) el.textContent = text;
    el.classList.toggle('on', on === true);
    el.classList.toggle('off', on === false);
  }

  function fragmentUrl(href) {
    var u = new URL(href, location.href);
    u.searchParams.set(FRAGMENT, '1');
    return u.pathname + u.search;
  }

  function parse(text) {
    var t = document.createElement('template');
    t.innerHTML = text;
    return t.content;
  }

  // A way to find the focused element again inside a replacement of `root`.
  function focusKey(root) {
    var a = document.activeElement;
    if (!a || a === document.body || !root.contains(a)) return null;
    if (a.id) return '#' + CSS.escape(a.id);
    if (a.getAttribute('data-sort')) return '[data-sort="' + CSS.escape(a.getAttribute('data-sort')) + '"]';
    var h = a.getAttribute('href');
    if (h) return a.tagName.toLowerCase() + '[href="' + CSS.escape(h) + '"]';
    if (a.getAttribute('name')) return a.tagName.toLowerCase() + '[name="' + CSS.escape(a.getAttribute('name')) + '"]';
    if (a.tagName === 'SUMMARY') return 'summary';
    return null;
  }

  function refocus(root, key) {
    if (!key) return;
    var el = root.matches && root.matches(key) ? root : root.querySelector(key);
    if (el && typeof el.focus === 'function') el.focus({ preventScroll: true });
  }

  // Keeps <details> open across a replacement.
  function keepOpen(oldNode, newNode) {
    var olds = oldNode.querySelectorAll('details');
    var news = newNode.querySelectorAll('details');
    for (var i = 0; i < olds.length && i < news.length; i++) if (olds[i].open) news[i].open = true;
  }

  function replace(oldNode, newNode, flash) {
    var key = focusKey(oldNode);
    keepOpen(oldNode, newNode);
    oldNode.replaceWith(newNode);
    refocus(newNode, key);
    if (flash && newNode.classList) {
      newNode.classList.add('flash');
      setTimeout(function () { newNode.classList.remove('flash'); }, 1300);
    }
  }

  // Row-level patch of one tbody: returns the keys of the rows replaced, inserted or removed.
  function patchRows(oldBody, newBody, flash) {
    var changed = [];
    var oldRows = new Map();
    Array.prototype.forEach.call(oldBody.children, function (r) { oldRows.set(r.getAttribute('data-key') || r.outerHTML, r); });
    var wanted = Array.prototype.slice.call(newBody.children);
    var seen = new Set();
    var pos = 0;
    wanted.forEach(function (nr) {
      var k = nr.getAttribute('data-key') || nr.outerHTML;
      seen.add(k);
      var or = oldRows.get(k);
      var node;
      if (or && or.outerHTML === nr.outerHTML) node = or;
      else if (or) {
        replace(or, nr, flash);
        node = nr;
        changed.push(k);
      } else {
        node = nr;
        changed.push(k);
      }
      var at = oldBody.children[pos];
      if (at !== node) oldBody.insertBefore(node, at || null);
      pos++;
    });
    oldRows.forEach(function (r, k) {
      if (!seen.has(k)) {
        var fk = focusKey(r);
        r.remove();
        changed.push(k);
        if (fk) document.getElementById('main').focus({ preventScroll: true });
      }
    });
    return changed;
  }

  // Patches `main` from a fragment: regions by name, rows by key. Returns what changed.
  function patch(fragment, flash) {
    var main = document.getElementById('main');
    var regions = 0;
    var rows = [];
    fragment.querySelectorAll('[data-live-region]').forEach(function (nr) {
      var name = nr.getAttribute('data-live-region');
      var or = main.querySelector('[data-live-region="' + CSS.escape(name) + '"]');
      if (!or || or.outerHTML === nr.outerHTML) return;
      var oldBodies = or.matches('[data-rows]') ? [or] : Array.prototype.slice.call(or.querySelectorAll('tbody[data-rows]'));
      var newBodies = nr.matches('[data-rows]') ? [nr] : Array.prototype.slice.call(nr.querySelectorAll('tbody[data-rows]'));
      if (oldBodies.length === 1 && newBodies.length === 1 && stripRows(or) === stripRows(nr)) {
        rows = rows.concat(patchRows(oldBodies[0], newBodies[0], flash));
      } else {
        replace(or, nr, false);
        regions++;
      }
    });
    return { regions: regions, rows: rows };
  }

  // The region's HTML without its rows (is only the rows' content different?).
  function stripRows(node) {
    var c = node.cloneNode(true);
    (c.matches('[data-rows]') ? [c] : Array.prototype.slice.call(c.querySelectorAll('tbody[data-rows]'))).forEach(function (b) { b.textContent = ''; });
    return c.outerHTML;
  }

  // The state each key shows on the page now (a table row or the detail page's state).
  function statesOf(keys) {
    var out = {};
    keys.forEach(function (k) {
      var row = document.querySelector('tr[data-key="' + CSS.escape(k) + '"]');
      if (row && row.getAttribute('data-state')) out[k] = row.getAttribute('data-state');
    });
    var st = document.getElementById('resource-state');
    var here = document.body.getAttribute('data-resource-key');
    if (st && here) out[here] = st.getAttribute('data-state');
    return out;
  }

  var inflight = null;
  var again = null;

  function refresh(ev) {
    if (inflight) { again = ev || again; return inflight; }
    var started = performance.now();
    inflight = fetch(fragmentUrl(location.href), { credentials: 'same-origin', cache: 'no-store', headers: { accept: 'text/html' } })
      .then(function (r) {
        if (r.status === 401 || r.status === 403) { location.href = '/login'; throw new Error('session expired'); }
        if (!r.ok) throw new Error('HTTP ' + r.status);
        return r.text();
      })
      .then(function (text) {
        var result = patch(parse(text), true);
        var rec = {
          seq: ev ? ev.seq : null, runId: ev ? ev.runId : null, phase: ev ? ev.phase : null,
          changedKeys: ev ? ev.changedKeys : [], patchedRows: result.rows, patchedRegions: result.regions,
          states: statesOf((ev ? ev.changedKeys : []).concat(result.rows)), ms: Math.round(performance.now() - started),
        };
        live.patches.push(rec);
        if (live.patches.length > 500) live.patches.shift();
        if (ev) document.body.setAttribute('data-live-seq', String(ev.seq));
        document.dispatchEvent(new CustomEvent('vf:patched', { detail: rec }));
      })
      .catch(function (e) {
        live.errors++;
        status('Live update failed (' + e.message + '); retrying on the next change.', false);
      })
      .then(function () {
        inflight = null;
        if (again) { var next = again; again = null; refresh(next); }
      });
    return inflight;
  }
  live.refresh = refresh;

  function connect() {
    if (!window.EventSource) { status('Live updates need EventSource; reload to refresh.', false); return; }
    var es = new EventSource('/api/v1/events', { withCredentials: true });
    var opened = false;
    es.addEventListener('open', function () {
      live.connected = true;
      status('Live: following changes', true);
      // After a reconnect the page may have missed snapshots: fetch once.
      if (opened) refresh(null);
      opened = true;
    });
    es.addEventListener('error', function () {
      live.connected = false;
      status('Live updates interrupted; reconnecting…', false);
    });
    es.addEventListener('snapshot', function (m) {
      var ev;
      try { ev = JSON.parse(m.data); } catch (e) { return; }
      live.events.push(ev);
      if (live.events.length > 500) live.events.shift();
      document.dispatchEvent(new CustomEvent('vf:snapshot', { detail: ev }));
      var seen = Number(document.body.getAttribute('data-seq') || '-1');
      if (typeof ev.seq === 'number' && ev.seq <= seen) return;
      refresh(ev);
    });
    live.source = es;
  }

  // In-place navigation of the resources table: sort links, page links and the filter form fetch
  // the fragment and patch it (the URL is pushed, so back/forward and reload work as links do).
  // The path and query whose content <main> shows now.
  var shown = location.pathname + location.search;

  function navigate(url, focusSel, push) {
    return fetch(fragmentUrl(url), { credentials: 'same-origin', cache: 'no-store' })
      .then(function (r) { if (!r.ok) throw new Error('HTTP ' + r.status); return r.text(); })
      .then(function (text) {
        var frag = parse(text);
        var main = document.getElementById('main');
        main.replaceChildren(frag);
        var u = new URL(url, location.href);
        u.searchParams.delete(FRAGMENT);
        if (push !== false) history.pushState({ vf: true }, '', u.pathname + u.search);
        shown = u.pathname + u.search;
        var f = focusSel && main.querySelector(focusSel);
        if (f) f.focus({ preventScroll: true });
        else main.focus({ preventScroll: true });
        document.dispatchEvent(new CustomEvent('vf:navigated', { detail: { url: u.pathname + u.search } }));
      })
      .catch(function () { location.href = url; });
  }

  function enhanceNavigation() {
    if (document.body.getAttribute('data-section') !== 'resources' || !document.getElementById('resource-rows')) return;
    var main = document.getElementById('main');
    main.addEventListener('click', function (e) {
      if (e.defaultPrevented || e.button !== 0 || e.metaKey || e.ctrlKey || e.shiftKey || e.altKey) return;
      var a = e.target.closest && e.target.closest('a[data-sort], .pages a');
      if (!a) return;
      e.preventDefault();
      var sort = a.getAttribute('data-sort');
      navigate(a.href, sort ? 'a[data-sort="' + CSS.escape(sort) + '"]' : '#resources-summary');
    });
    main.addEventListener('submit', function (e) {
      var form = e.target;
      if (!form.matches || !form.matches('form.filters')) return;
      e.preventDefault();
      var params = new URLSearchParams(new FormData(form));
      Array.from(params.keys()).forEach(function (k) { if (params.get(k) === '') params.delete(k); });
      var qs = params.toString();
      navigate('/resources' + (qs ? '?' + qs : ''), 'form.filters button[type="submit"]');
    });
    // A fragment link (the skip link to #main) also fires popstate: the content shown is still the
    // URL's, so nothing is fetched and focus stays where the browser put it. Only a change of path
    // or query (back/forward over pushed URLs) fetches.
    window.addEventListener('popstate', function () {
      if (location.pathname + location.search === shown) return;
      navigate(location.href, null, false);
    });
  }

  function start() {
    var main = document.getElementById('main');
    // The first frame with the table (the page bench reads this mark).
    if (document.getElementById('resource-rows')) {
      requestAnimationFrame(function () { setTimeout(function () { performance.mark('vf-table-rendered'); }, 0); });
    }
    enhanceNavigation();
    if (document.body.getAttribute('data-live') === 'on' && main) connect();
    document.body.setAttribute('data-enhanced', 'true');
  }
  if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', start);
  else start();
})();
