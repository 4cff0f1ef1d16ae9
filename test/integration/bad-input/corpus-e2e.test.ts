/**
 * End-to-end proof for the broken-manifest corpus (test/fixtures/manifests/broken/<case>/):
 * `virtform reconcile <case>` against a libvirt URI whose socket does not exist must
 *   - exit 2 (invalid input),
 *   - print every expected error as file:line:col,
 *   - create no state DB file (not even its folder),
 *   - never try to connect to libvirt (the connect function is spied on; and the bogus socket would
 *     turn any attempt into a connection error, which the control case below shows).
 *
 * Every case runs in-process through the CLI's own `runReconcile` (stdout/stderr captured) — one
 * CLI spawn costs ~0.8 s on this host, so the whole corpus via spawns would take 1.5 min. A sample
 * of cases also runs through the real CLI binary to prove the in-process path is the same.
 */
import { existsSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { join, relative } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { runReconcile, type ReconcileFlags } from '../../../src/cli/commands/reconcile.js';
import { LibvirtClient } from '../../../src/libvirt/index.js';
import { capture, ensureBuilt, ROOT, runCli } from '../../support/cli.js';
import { suiteNames } from '../../support/names.js';

const BROKEN = join(ROOT, 'test/fixtures/manifests/broken');
const BOGUS_URI = 'qemu+unix:///system?socket=/tmp/vftest-nonexistent.sock';

interface Expected { file: string; line: number; col: number; kind?: string; name?: string; field?: string; messageIncludes: string }

const cases = readdirSync(BROKEN, { withFileTypes: true }).filter((d) => d.isDirectory()).map((d) => d.name).sort();
const expectedOf = (name: string): Expected[] =>
  JSON.parse(readFileSync(join(BROKEN, name, 'expected.json'), 'utf8')) as Expected[];

const flags = (db: string): ReconcileFlags => ({
  uri: BOGUS_URI, db, concurrency: 4, maxAttempts: 3, retryDelay: 250, shutdownTimeout: 60, color: false,
});

/** Run the CLI's reconcile command in this process, capturing what it writes. */
const runInProcess = (dir: string, o: ReconcileFlags): Promise<{ code: number; stdout: string; stderr: string }> => capture(() => runReconcile(dir, o));

let work: string;
beforeAll(() => {
  work = suiteNames('corpus').tempDir();
});
afterAll(() => rmSync(work, { recursive: true, force: true }));
afterEach(() => vi.restoreAllMocks());

describe('broken manifest corpus, end to end (no DB, no libvirt)', () => {
  it('the corpus is there (60+ cases)', () => {
    expect(cases.length).toBeGreaterThanOrEqual(60);
  });

  it('control: the same bogus URI with a VALID manifest folder is a connection error (exit 1)', async () => {
    const connect = vi.spyOn(LibvirtClient, 'connect');
    const db = join(work, 'control', 'state.db');
    const r = await runInProcess(join(ROOT, 'manifests/examples'), { ...flags(db), dryRun: true });
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('cannot connect to libvirt');
    expect(r.stderr).toContain('vftest-nonexistent.sock');
    expect(connect).toHaveBeenCalledTimes(1);
  });

  const timings: number[] = [];
  afterAll(() => {
    const total = timings.reduce((a, b) => a + b, 0);
    console.log(`[bad-input] ${timings.length} runs (${cases.length} cases x apply/dry-run) in-process: ${total.toFixed(0)} ms total, ` +
      `${(total / Math.max(1, timings.length)).toFixed(1)} ms per run`);
  });

  it.each(cases)('%s: exit 2, file:line:col printed, no DB, no connection', async (name) => {
    const dir = join(BROKEN, name);
    const expected = expectedOf(name);
    const caseWork = join(work, name);
    const db = join(caseWork, 'state.db');
    const connect = vi.spyOn(LibvirtClient, 'connect');
    for (const dryRun of [false, true]) {
      const t = performance.now();
      const r = await runInProcess(dir, { ...flags(db), dryRun });
      timings.push(performance.now() - t);
      expect(r.code, `${name} (dryRun=${dryRun}) stderr:\n${r.stderr}`).toBe(2);
      expect(r.stderr).not.toContain('cannot connect');
      expect(r.stderr).toContain('nothing was changed');
      for (const x of expected) {
        expect(r.stderr, `${name}: ${x.file}:${x.line}:${x.col}`).toContain(`${join(dir, x.file)}:${x.line}:${x.col}: `);
        if (x.field) expect(r.stderr).toContain(x.field);
        expect(r.stderr.replaceAll(`${dir}/`, ''), `${name}: message`).toContain(x.messageIncludes);
      }
      expect(r.stderr).toContain(`${expected.length} error(s) in ${dir}`);
    }
    expect(connect).not.toHaveBeenCalled();
    expect(existsSync(db), 'state DB created').toBe(false);
    expect(existsSync(caseWork), 'state DB folder created').toBe(false);
  });

  it('a sample of cases through the real CLI binary: exit 2, file:line:col, no DB file', async () => {
    ensureBuilt();
    const sample = cases.filter((_, i) => i % Math.ceil(cases.length / 6) === 0);
    const t = performance.now();
    for (const name of sample) {
      const dir = join(BROKEN, name);
      const db = join(work, `cli-${name}`, 'state.db');
      const r = await runCli(['reconcile', relative(ROOT, dir), '--uri', BOGUS_URI, '--db', db]);
      expect(r.code, `${name}: ${r.stderr}`).toBe(2);
      expect(r.stderr).not.toContain('cannot connect');
      for (const x of expectedOf(name)) expect(r.stderr).toContain(`${relative(ROOT, join(dir, x.file))}:${x.line}:${x.col}: `);
      expect(existsSync(db)).toBe(false);
    }
    console.log(`[bad-input] ${sample.length} cases via the CLI binary: ${(performance.now() - t).toFixed(0)} ms ` +
      `(${((performance.now() - t) / sample.length).toFixed(0)} ms per spawn)`);
  });
});
