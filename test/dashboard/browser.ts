/// <reference lib="dom" />
/**
 * Debian's chromium for the dashboard's browser tests, driven by playwright-core (which never
 * downloads a browser of its own): started here as a child process with exactly the flags of the
 * issue and a fresh `--user-data-dir` in a temp dir, reached over the DevTools protocol
 * (`connectOverCDP`), and killed by its pid (the process group it leads) in `close()`, also when a
 * test failed. `scripts/setup-browser.sh` installs it (`make test-dashboard` runs that first).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core';

export const CHROMIUM = '/usr/bin/chromium';

export const CHROMIUM_FLAGS = [
  '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
  '--disable-component-update', '--disable-sync',
];

export interface RunningBrowser {
  readonly pid: number;
  readonly browser: Browser;
  /** A new context (its own cookies), pages at a laptop's 1366×768 unless told otherwise. */
  context(o?: { width?: number; height?: number; bypassCSP?: boolean }): Promise<BrowserContext>;
  /** Kills chromium's process group by its pid and removes the profile (idempotent). */
  close(): Promise<void>;
}

/** The pids whose command line names this profile (`--user-data-dir=…`), from /proc. */
function profilePids(profile: string): number[] {
  const want = `--user-data-dir=${profile}`;
  const out: number[] = [];
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d) || Number(d) === process.pid) continue;
    let cmd: string;
    try {
      cmd = readFileSync(`/proc/${d}/cmdline`, 'utf8');
    } catch {
      continue; // safe-catch: the process exited while listing
    }
    if (cmd.split('\0').includes(want)) out.push(Number(d));
  }
  return out;
}

export async function startChromium(timeoutMs = 30_000): Promise<RunningBrowser> {
  if (!existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} not found: run scripts/setup-browser.sh (make test-dashboard does)`);
  const profile = mkdtempSync(join(tmpdir(), 'vf-chromium-'));
  const child: ChildProcess = spawn(CHROMIUM, [...CHROMIUM_FLAGS, `--user-data-dir=${profile}`, '--remote-debugging-port=0', '--remote-debugging-address=127.0.0.1', 'about:blank'], {
    stdio: ['ignore', 'ignore', 'pipe'], detached: true,
  });
  const pid = child.pid!;
  let stderr = '';
  // Chromium's process group, then every process still running with this profile: some helpers
  // (the utility processes) leave the group, and one seen left would outlive the test.
  const kill = (): void => {
    try {
      process.kill(-pid, 'SIGKILL');
    } catch {
      // safe-catch: ESRCH, the group is already gone
    }
    for (const p of profilePids(profile)) {
      try {
        process.kill(p, 'SIGKILL');
      } catch {
        // safe-catch: ESRCH, it exited meanwhile
      }
    }
  };
  const ws = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`chromium printed no DevTools address within ${timeoutMs} ms:\n${stderr.slice(-2000)}`)), timeoutMs);
    child.stderr!.setEncoding('utf8').on('data', (d: string) => {
      stderr += d;
      const m = /DevTools listening on (ws:\/\/\S+)/.exec(stderr);
      if (m) {
        clearTimeout(timer);
        resolve(m[1]!);
      }
    });
    child.once('exit', (code, sig) => {
      clearTimeout(timer);
      reject(new Error(`chromium exited (${code ?? sig}) before listening:\n${stderr.slice(-2000)}`));
    });
  }).catch((e: unknown) => {
    kill();
    rmSync(profile, { recursive: true, force: true });
    throw e;
  });
  let browser: Browser;
  try {
    browser = await chromium.connectOverCDP(ws);
  } catch (e) {
    kill();
    rmSync(profile, { recursive: true, force: true });
    throw e;
  }
  let closed = false;
  // A test run that exits without afterAll (a crash, a timeout's kill) takes chromium with it.
  process.once('exit', kill);
  return {
    pid,
    browser,
    context: (o = {}) => browser.newContext({ viewport: { width: o.width ?? 1366, height: o.height ?? 768 }, bypassCSP: o.bypassCSP ?? false }),
    async close() {
      if (closed) return;
      closed = true;
      await Promise.race([browser.close().catch(() => undefined), new Promise((r) => setTimeout(r, 2000))]);
      kill();
      process.off('exit', kill);
      await new Promise<void>((r) => (child.exitCode !== null || child.signalCode !== null ? r() : child.once('exit', () => r())));
      kill();
      rmSync(profile, { recursive: true, force: true });
    },
  };
}

/** What a page reported that it should not have: CSP violations, script errors, failed requests, console errors. */
export interface PageProblems {
  readonly list: string[];
}

/** Records a page's CSP violations (from inside the page), uncaught errors and console errors. */
export async function watchProblems(page: Page): Promise<PageProblems> {
  const list: string[] = [];
  await page.exposeFunction('__vfTestCsp', (what: string) => list.push(`CSP: ${what}`));
  await page.addInitScript(() => {
    document.addEventListener('securitypolicyviolation', (e) => {
      (window as unknown as { __vfTestCsp(s: string): void }).__vfTestCsp(`${e.violatedDirective} ${e.blockedURI} ${e.sourceFile}:${e.lineNumber}`);
    });
  });
  page.on('pageerror', (e) => list.push(`pageerror: ${e.message}`));
  page.on('console', (m) => {
    if (m.type() === 'error') list.push(`console: ${m.text()}`);
  });
  return { list };
}
