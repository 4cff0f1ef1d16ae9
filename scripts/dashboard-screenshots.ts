/// <reference lib="dom" />
/**
 * Screenshots of the dashboard for the docs (`docs/dashboard-overview.png`,
 * `docs/dashboard-resource.png`): a real `virtform watch --git` over a local git repository with
 * the test lab (a pool, a volume, a network, two VMs; objects `vftest-dashshot-*`) on the real
 * libvirtd, shown in Debian's chromium at a laptop's 1366×768. Root, libvirtd, chromium
 * (scripts/setup-browser.sh); everything it made is removed at the end.
 *
 *   npx tsx scripts/dashboard-screenshots.ts [--out docs]
 */
import { rmSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { startWatch, waitFor, ROOT, type Watcher } from '../test/support/cli.js';
import { suiteNames } from '../test/support/names.js';
import { lab } from '../test/support/suite.js';
import { domState, URI } from '../test/support/virsh.js';
import { TestRepo } from '../test/support/git.js';
import { startChromium, type RunningBrowser } from '../test/dashboard/browser.js';

const args = process.argv.slice(2);
const outAt = args.indexOf('--out');
const out = resolve(ROOT, outAt >= 0 && args[outAt + 1] ? args[outAt + 1]! : 'docs');
const N = suiteNames('dashshot');
const P = N.base;

async function main(): Promise<void> {
  N.cleanup();
  const work = N.tempDir();
  let w: Watcher | undefined;
  let b: RunningBrowser | undefined;
  try {
    const repo = new TestRepo(join(work, 'repos', 'lab'));
    const files = lab(N, { vmFile: 'vms.yaml', dhcpHosts: [11], mac: 11 })
      .vm(`${P}-web`, { memory: '96MiB', state: 'stopped', nics: [{ network: `${P}-net` }] })
      .files();
    const head = repo.commit(files, { folder: 'env', message: 'lab: web VM, 96 MiB, kept stopped' });
    w = await startWatch(['--git', repo.url, '--branch', 'main', '--path', 'env', '--git-interval', '2', '--uri', URI, '--db', join(work, 'state.db')], 120_000);
    await waitFor(async () => JSON.parse((await w!.http('/status')).body).git?.appliedCommit === head, 'the commit applied', 60_000);
    await waitFor(() => domState(`${P}-vm`) === 'running', 'the VM running', 60_000);
    b = await startChromium();
    const ctx = await b.context({ width: 1366, height: 768 });
    const page = await ctx.newPage();
    const base = `http://127.0.0.1:${w.port}`;
    await page.goto(`${base}/`);
    // The applied commit shown, the page following events, and no run in flight (the picture of a quiet controller).
    await page.waitForFunction((c) => document.querySelector('#applied-commit')?.getAttribute('data-commit') === c && (window as unknown as { vfLive: { connected: boolean } }).vfLive.connected
      && !document.querySelector('[data-live-region="last-run"]')?.textContent?.includes('in progress'), head, { timeout: 30_000 });
    await page.screenshot({ path: join(out, 'dashboard-overview.png') });
    await page.goto(`${base}/resources/${encodeURIComponent(`VirtualMachine/${P}-vm`)}`);
    await page.waitForFunction(() => (window as unknown as { vfLive: { connected: boolean } }).vfLive.connected, undefined, { timeout: 30_000 });
    await page.screenshot({ path: join(out, 'dashboard-resource.png') });
    process.stdout.write(`wrote ${join(out, 'dashboard-overview.png')} and ${join(out, 'dashboard-resource.png')}\n`);
  } finally {
    await b?.close();
    if (w && w.exitCode === undefined) await w.stop();
    N.cleanup();
    rmSync(work, { recursive: true, force: true });
  }
}

main().catch((e: unknown) => {
  process.stderr.write(`${e instanceof Error ? e.stack : String(e)}\n`);
  process.exit(1);
});
