/// <reference lib="dom" />
/**
 * The dashboard of a real `virtform watch --git` on the real libvirtd (issue 23), in Debian's
 * chromium driven by playwright-core:
 *
 * - the overview shows the applied commit (hash, author, message) of the git source;
 * - a VM destroyed outside virtform (`virsh destroy`) turns Reconciling, then Ready, on an open
 *   resources page without a reload: asserted from the page's own event stream (the script's
 *   `vf:patched` records: the state each changed row shows after each snapshot event), not by
 *   polling the DOM; the focused link and the scroll position stay through those updates;
 * - a filter (kind, condition) narrows the table, server-side; on a fleet watch (two Host manifests
 *   on this libvirtd, reached by two URIs) the host filter narrows it to one host's resources, and
 *   the overview shows both hosts with their capacity bars;
 * - the detail view shows the manifest location (file:line:col) and the conditions;
 * - every page: no WCAG 2 A/AA violation (axe-core, injected from node_modules), no CSP violation,
 *   no script error; keyboard navigation through the main menu.
 * Objects are vftest-dashui-*; the VM boots no OS.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import type { BrowserContext, Page } from 'playwright-core';
import { mkdirSync, writeFileSync } from 'node:fs';
import { startWatch, waitFor, type Watcher } from '../support/cli.js';
import { suiteNames } from '../support/names.js';
import { lab } from '../support/suite.js';
import { domState, URI, virsh } from '../support/virsh.js';
import { TestRepo } from '../support/git.js';
import { startChromium, watchProblems, type RunningBrowser } from './browser.js';
import { axeViolations, describeViolations } from './axe.js';

const N = suiteNames('dashui');
const P = N.base;
const VM = `${P}-vm`;
const VM_KEY = `VirtualMachine/${VM}`;

let work: string;
let repo: TestRepo;
let head: string;
let w: Watcher;
let b: RunningBrowser;
let ctx: BrowserContext;
let base: string;

interface Patched { seq: number | null; phase: string | null; changedKeys: string[]; patchedRows: string[]; states: Record<string, string> }

beforeAll(async () => {
  N.cleanup();
  work = N.tempDir();
  repo = new TestRepo(join(work, 'repos', 'lab'));
  head = repo.commit(lab(N, { vmFile: 'vms.yaml' }).files(), { folder: 'env', message: 'lab: one VM <on> a "network"\n\nbody line' });
  w = await startWatch(['--git', repo.url, '--branch', 'main', '--path', 'env', '--git-interval', '1', '--uri', URI, '--db', join(work, 'state.db'),
    '--retry-delay', '200', '--max-attempts', '4', '--resync', '300'], 120_000);
  base = `http://127.0.0.1:${w.port}`;
  b = await startChromium();
  ctx = await b.context();
}, 240_000);

afterEach((t) => {
  if (t.task.result?.state === 'fail') process.stderr.write(`--- last watcher log lines ---\n${w?.tail()}\n`);
});

afterAll(async () => {
  await b?.close();
  if (w && w.exitCode === undefined) w.child.kill('SIGKILL');
  N.cleanup();
  if (work) rmSync(work, { recursive: true, force: true });
}, 60_000);

async function open(path: string): Promise<{ page: Page; problems: string[] }> {
  const page = await ctx.newPage();
  const problems = await watchProblems(page);
  const r = await page.goto(base + path);
  expect(r!.status(), `${path}: ${await r!.text()}`).toBe(200);
  await page.waitForFunction(() => document.body.getAttribute('data-enhanced') === 'true');
  return { page, problems: problems.list };
}

describe('the dashboard of virtform watch --git, in chromium', () => {
  it('the overview shows the applied commit with its author and message', async () => {
    await waitFor(async () => JSON.parse((await w.http('/status')).body).git?.appliedCommit === head, 'the commit applied', 60_000);
    const { page, problems } = await open('/');
    // The snapshot may predate the run's end by one event: the page's live update brings it.
    await page.waitForFunction((c) => document.querySelector('#applied-commit')?.getAttribute('data-commit') === c, head, { timeout: 20_000 });
    const text = (await page.locator('#applied-commit').textContent())!;
    expect(text).toContain(head.slice(0, 10));
    expect(text).toContain('vftest');
    expect(text).toContain('lab: one VM <on> a "network"');
    expect(text).not.toContain('body line');
    expect(await page.locator('.hosts .host').count()).toBeGreaterThan(0);
    expect(problems).toEqual([]);
    await page.close();
  });

  it('a VM destroyed outside virtform turns Reconciling then Ready without a reload; focus and scroll stay', async () => {
    await waitFor(() => domState(VM) === 'running', 'the VM running', 60_000);
    const { page, problems } = await open('/resources?pageSize=500');
    await page.waitForFunction(() => (window as unknown as { vfLive: { connected: boolean } }).vfLive.connected);
    const row = page.locator(`tr[data-key="${VM_KEY}"]`);
    expect(await row.getAttribute('data-state')).toBe('Ready');
    // Every patch the page makes, as it makes it (pushed from the page, not polled).
    const seen: Patched[] = [];
    await page.exposeFunction('__vfTestPatched', (p: Patched) => seen.push(p));
    await page.evaluate(() => document.addEventListener('vf:patched', (e) => (window as unknown as { __vfTestPatched(d: unknown): void }).__vfTestPatched((e as CustomEvent).detail)));
    await page.setViewportSize({ width: 1366, height: 300 });
    await page.locator(`tr[data-key="${VM_KEY}"] a`).focus();
    await page.evaluate(() => window.scrollTo(0, 60));
    const scrollBefore = await page.evaluate(() => window.scrollY);
    const navBefore = await page.evaluate(() => performance.getEntriesByType('navigation').length + ':' + (performance.timeOrigin));
    virsh('destroy', VM);
    const stateOf = (p: Patched): string | undefined => p.states[VM_KEY];
    await waitFor(() => seen.some((p) => stateOf(p) === 'Ready' && seen.slice(0, seen.indexOf(p)).some((q) => stateOf(q) === 'Reconciling')), 'Reconciling then Ready in the page\'s event stream', 60_000)
      .catch((e: unknown) => {
        throw new Error(`${(e as Error).message}; the page patched: ${JSON.stringify(seen)}`);
      });
    const states = seen.map(stateOf).filter((s) => s !== undefined);
    expect(states.indexOf('Reconciling')).toBeGreaterThanOrEqual(0);
    expect(states.lastIndexOf('Ready')).toBeGreaterThan(states.indexOf('Reconciling'));
    expect(domState(VM)).toBe('running');
    // No reload: the same document; the focused link is the VM's; the scroll position is where it was.
    expect(await page.evaluate(() => performance.getEntriesByType('navigation').length + ':' + (performance.timeOrigin))).toBe(navBefore);
    expect(await page.evaluate(() => document.activeElement?.closest('tr')?.getAttribute('data-key'))).toBe(VM_KEY);
    expect(await page.evaluate(() => window.scrollY)).toBe(scrollBefore);
    process.stderr.write(`[dashui] patches after virsh destroy: ${JSON.stringify(seen.map((p) => ({ seq: p.seq, phase: p.phase, state: stateOf(p), rows: p.patchedRows.length })))}\n`);
    expect(problems).toEqual([]);
    await page.close();
  });

  it('a filter narrows the table (server-side): by kind, by host, by condition', async () => {
    const { page } = await open('/resources');
    const all = Number(await page.locator('#resources-total').textContent());
    expect(all).toBe(4);
    await page.selectOption('#f-kind', 'VirtualMachine');
    await Promise.all([page.waitForEvent('framenavigated').catch(() => undefined), page.evaluate(() => new Promise((r) => { document.addEventListener('vf:navigated', r, { once: true }); (document.querySelector('form.filters button[type=submit]') as HTMLButtonElement).click(); }))]);
    expect(new URL(page.url()).searchParams.get('kind')).toBe('VirtualMachine');
    expect(await page.locator('#resource-rows tr').count()).toBe(1);
    expect(await page.locator('#resources-total').textContent()).toBe('1');
    // Host: the one host of --uri is `local`; any other host matches nothing.
    const hostOptions = await page.locator('#f-host option').allTextContents();
    expect(hostOptions.some((o) => o.startsWith('local'))).toBe(true);
    await page.goto(`${base}/resources?host=local`);
    expect(Number(await page.locator('#resources-total').textContent())).toBe(all);
    await page.goto(`${base}/resources?host=elsewhere`);
    expect(await page.locator('#resource-rows tr.empty').count()).toBe(1);
    await page.goto(`${base}/resources?condition=Ready&kind=Network`);
    expect(await page.locator('#resource-rows tr').count()).toBe(1);
    expect(await page.locator('#resource-rows tr').getAttribute('data-key')).toBe(`Network/${P}-net`);
    await page.close();
  });

  it('the detail view shows the manifest location and the conditions', async () => {
    const { page, problems } = await open(`/resources/${encodeURIComponent(VM_KEY)}`);
    expect(await page.locator('#manifest-location').textContent()).toMatch(/(^|\/)env\/vms\.yaml:\d+:\d+$/);
    const types = await page.locator('table.conditions tbody tr th').allTextContents();
    expect(types).toEqual(expect.arrayContaining(['Ready', 'Reconciling', 'Stalled', 'Drifted', 'RestartRequired', 'Suspended', 'HeldForDataLoss']));
    expect(await page.locator('table.conditions tr[data-condition="Ready"] td').first().textContent()).toBe('Ready');
    expect(problems).toEqual([]);
    await page.close();
  });

  it.each(['/', '/resources', `/resources/${encodeURIComponent(VM_KEY)}`, '/plan', '/history', '/attention', '/login'])('%s: no WCAG 2 AA violation (axe-core), no CSP violation', async (path) => {
    const { page, problems } = await open(path);
    expect(problems).toEqual([]);
    await page.close();
    const axeCtx = await b.context({ bypassCSP: true });
    const ap = await axeCtx.newPage();
    await ap.goto(base + path);
    const v = await axeViolations(ap);
    await axeCtx.close();
    expect(v, describeViolations(v)).toEqual([]);
  });

  it('keyboard: Tab walks skip link → menu; Enter opens a page; the current page is marked', async () => {
    const { page } = await open('/');
    const order: string[] = [];
    for (let i = 0; i < 7; i++) {
      await page.keyboard.press('Tab');
      order.push((await page.evaluate(() => document.activeElement?.textContent?.trim())) ?? '');
    }
    expect(order.slice(0, 7)).toEqual(['Skip to content', 'virtform', 'Overview', 'Resources', 'Plan', 'History', expect.stringMatching(/^Needs attention/)]);
    await page.keyboard.press('Shift+Tab');
    await page.keyboard.press('Shift+Tab');
    await page.keyboard.press('Shift+Tab');
    await Promise.all([page.waitForURL(`${base}/resources`), page.keyboard.press('Enter')]);
    expect(await page.locator('nav[aria-label="Main"] a[aria-current="page"]').textContent()).toBe('Resources');
    // The focus ring is visible (a 3px outline).
    await page.keyboard.press('Tab');
    await page.keyboard.press('Tab');
    const outline = await page.evaluate(() => getComputedStyle(document.activeElement!).outlineStyle + ' ' + getComputedStyle(document.activeElement!).outlineWidth);
    expect(outline).toBe('solid 3px');
    await page.close();
  });
});

/**
 * Two Hosts on this one libvirtd (`qemu:///system`, and the same daemon's socket named in the URI):
 * a fleet watch with a network and a stopped VM pinned to each.
 */
describe('the dashboard of a fleet watch: the host filter', () => {
  let fw: Watcher;
  let fbase: string;
  const SOCKET_URI = 'qemu+unix:///system?socket=/var/run/libvirt/libvirt-sock';
  const manifests = (): string => `apiVersion: virtform.dev/v1
kind: Host
metadata: {name: h1}
spec: {uri: "qemu:///system"}
---
apiVersion: virtform.dev/v1
kind: Host
metadata: {name: h2}
spec: {uri: "${SOCKET_URI}"}
${[1, 2].map((h) => `---
apiVersion: virtform.dev/v1
kind: Network
metadata: {name: ${P}-fnet${h}}
spec: {mode: isolated, cidr: ${N.cidr(h)}, autostart: false, hosts: [h${h}]}
---
apiVersion: virtform.dev/v1
kind: VirtualMachine
metadata: {name: ${P}-fvm${h}, labels: {tier: t${h}}}
spec: {memory: 64MiB, vcpus: 1, state: stopped, host: h${h}, nics: [{network: ${P}-fnet${h}}]}
`).join('')}`;

  beforeAll(async () => {
    const dir = join(work, 'fleet');
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, 'fleet.yaml'), manifests());
    fw = await startWatch([dir, '--db', join(work, 'fleet.db'), '--retry-delay', '200', '--max-attempts', '4', '--resync', '300'], 120_000);
    fbase = `http://127.0.0.1:${fw.port}`;
  }, 180_000);

  afterAll(async () => {
    if (fw && fw.exitCode === undefined) await fw.stop();
  });

  it('the host filter narrows the table to one host; the overview shows both hosts with capacity bars', async () => {
    const page = await ctx.newPage();
    await page.goto(`${fbase}/resources`);
    await page.waitForFunction(() => Number(document.getElementById('resources-total')?.textContent) === 4, undefined, { timeout: 30_000 });
    expect(Number(await page.locator('#resources-total').textContent())).toBe(4);
    expect(await page.locator('#f-host option').allTextContents()).toEqual(['All', 'h1 (2)', 'h2 (2)']);
    await page.selectOption('#f-host', 'h2');
    await page.evaluate(() => new Promise((r) => {
      document.addEventListener('vf:navigated', r, { once: true });
      (document.querySelector('form.filters button[type=submit]') as HTMLButtonElement).click();
    }));
    expect(new URL(page.url()).searchParams.get('host')).toBe('h2');
    expect(await page.locator('#resources-total').textContent()).toBe('2');
    expect(await page.locator('#resource-rows tr').evaluateAll((rows) => rows.map((r) => r.getAttribute('data-key')))).toEqual([
      `h2/Network/${P}-fnet2`, `h2/VirtualMachine/${P}-fvm2`,
    ].sort());
    // The label filter too.
    await page.goto(`${fbase}/resources?label=tier%3Dt1`);
    expect(await page.locator('#resource-rows tr').evaluateAll((rows) => rows.map((r) => r.getAttribute('data-key')))).toEqual([`h1/VirtualMachine/${P}-fvm1`]);
    await page.goto(`${fbase}/`);
    expect(await page.locator('.hosts .host h3').allTextContents()).toEqual([expect.stringMatching(/^h1 /), expect.stringMatching(/^h2 /)]);
    expect(await page.locator('.host[data-host="h2"] meter').count()).toBeGreaterThanOrEqual(2);
    const mem = page.locator('.host[data-host="h1"] meter').first();
    expect(Number(await mem.getAttribute('max'))).toBeGreaterThan(0);
    await page.close();
  });
});
