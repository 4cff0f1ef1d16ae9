/**
 * SIGTERM with a step that does not end (issue 19, "Streams fail, never hang"): a URL import whose
 * server sends its headers and a few bytes, then nothing. On SIGTERM the run starts no new step,
 * gives the step in flight --stop-timeout seconds, then abandons it: its journal entry is closed
 * as interrupted (failed), the process exits 1 at once, and the rerun finishes the import.
 * Before --stop-timeout, the run waited for the download timeout (here 120 s) after SIGTERM.
 */
import { createHash } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, describe, expect, it } from 'vitest';
import { writeManifests } from '../../support/manifests.js';
import { openJournal, runCli, spawnCli, TEST_POOL_ROOT, virsh } from '../../support/real-host.js';
import { useSuite } from '../../support/suite.js';

const N = useSuite('stoptimeout', {
  setup: async () => {
    server = createServer((req, res) => {
      requests += 1;
      res.writeHead(200, { 'content-length': IMAGE.length });
      if (stall) res.write(IMAGE.subarray(0, 1000)); // then nothing, until the client goes away
      else res.end(IMAGE);
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  },
});
const P = N.base;
const IMAGE = Buffer.concat([Buffer.from('virtform stop-timeout image\n'), Buffer.alloc(2 * 1024 ** 2 - 28, 0x33)]);
let server: Server;
let base: string;
let stall = true;
let requests = 0;

afterAll(async () => {
  server.closeAllConnections();
  await new Promise<void>((r) => server.close(() => r()));
});

describe('SIGTERM with a step that does not end', () => {
  it('abandons it after --stop-timeout: exit 1 at once, its journal entry closed as interrupted; the rerun finishes it', async () => {
    const sha = createHash('sha256').update(IMAGE).digest('hex');
    const dir = writeManifests(join(N.work, 'm'), {
      'm.yaml': `apiVersion: virtform.dev/v1\nkind: StoragePool\nmetadata: {name: ${P}-pool}\nspec: {path: ${TEST_POOL_ROOT}/${P}-pool}\n---\n` +
        `apiVersion: virtform.dev/v1\nkind: Volume\nmetadata: {name: ${P}-img}\nspec: {pool: ${P}-pool, format: raw, source: {url: "${base}/img.raw", sha256: "${sha}"}}\n`,
    });
    const db = join(N.work, 'state.db');
    const child = spawnCli(['reconcile', dir, '--db', db, '--stop-timeout', '1', '--download-timeout', '120', '--max-attempts', '1']);
    for (let i = 0; i < 300 && requests === 0; i++) await new Promise((r) => setTimeout(r, 50));
    expect(requests, child.stdoutSoFar()).toBe(1);
    const t0 = Date.now();
    process.kill(child.pid, 'SIGTERM');
    const r = await child.done;
    const ms = Date.now() - t0;
    const text = `${r.stdout}\n${r.stderr}`;
    expect(r.code, text).toBe(1);
    expect(ms, text).toBeLessThan(8000);
    expect(r.stderr).toMatch(/SIGTERM: finishing the steps in flight \(up to 1 s, --stop-timeout\)/);
    expect(r.stdout).toMatch(new RegExp(`Volume/${P}-img[^\\n]*interrupted: still running 1 s after the stop was requested`));
    expect(r.stdout).toMatch(/Apply interrupted: /);
    // The journal: nothing left open; the abandoned step's entry failed as interrupted.
    expect(openJournal(db)).toEqual([]);
    const d = new Database(db, { readonly: true });
    const rows = d.prepare("select status, error from journal where kind = 'Volume'").all() as { status: string; error: string }[];
    d.close();
    expect(rows.map((x) => [x.status, x.error.slice(0, 12)])).toEqual([['failed', 'interrupted:']]);

    // The rerun finishes it.
    stall = false;
    const again = await runCli(['reconcile', dir, '--db', db]);
    expect(again.code, again.stdout + again.stderr).toBe(0);
    expect(virsh('vol-list', '--pool', `${P}-pool`)).toContain(`${P}-img.img`);
    const dry = await runCli(['reconcile', dir, '--db', db, '--dry-run', '--detailed-exitcode']);
    expect(dry.code, dry.stdout).toBe(0);
  }, 60_000);
});
