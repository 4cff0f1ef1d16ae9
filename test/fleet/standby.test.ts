/**
 * The standby controller on PostgreSQL (issue 21): several `virtform watch` processes on one state
 * DB, as if on several machines. Each "machine" is a pid namespace of its own (`unshare --pid`):
 * a process there cannot see the others' pids, exactly as on another machine, while all of them
 * share this test host's libvirtd (qemu:///system) and the run's private PostgreSQL cluster.
 *
 * - Exactly one applies: every write to the state DB is counted by the writing session's
 *   `application_name` (PGAPPNAME, one per watcher) by statement triggers the test installs; the
 *   standby writes nothing.
 * - SIGKILL of the leader, a few times: the standby takes over within the bound `watch --help`
 *   prints (--lease-duration + --retry-period), never before the dead leader's lease expired (it
 *   is on another machine), and converges a change made after the kill.
 * - SIGSTOP of a leader inside its apply (a step waiting to retry), past its lease: the standby
 *   takes over (not before the expiry); after SIGCONT the old leader makes no libvirt change (the
 *   network its pending step would define never appears) and no state DB write (its trigger count
 *   does not move), logs that it was deposed, and stands by (/readyz 503, /status role standby).
 * - `virtform status` (text and --json) and every watcher's /status name the leader.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openStateStore, readLease, type LeaseRow, type StateStore } from '../../src/state/index.js';
import { tempDir, writeManifests } from '../support/manifests.js';
import { cleanupPrefix, ensureBuilt, runCli, TEST_POOL_ROOT } from '../support/real-host.js';
import { sleep, spawnWatch, waitFor, type Watcher } from '../support/cli.js';
import { testDbLocation } from '../support/postgres.js';
import { suiteNames } from '../support/names.js';
import { virshOk } from '../support/virsh.js';

const N = suiteNames('standby');
const P = N.base;
/** Short lease timings: the bound is 4 + 0.5 = 4.5 s. */
const LEASE = { duration: 4, renewDeadline: 3, retry: 0.5 };
const LEASE_ARGS = ['--lease-duration', String(LEASE.duration), '--renew-deadline', String(LEASE.renewDeadline), '--retry-period', String(LEASE.retry)];
/** Scheduling slack on this shared 2-core machine, on top of the printed bound. */
const SLACK_MS = 750;
/** The pending step of the SIGSTOP case fails once, then waits ~2 s (half jittered) before its retry. */
const STUCK = `${P}-stuck`;
const COMMON = [
  '--uri', 'qemu:///system', '--allow-empty', '--max-deletions', 'all', '--debounce', '100', '--resync', '3600',
  '--max-attempts', '3', '--retry-delay', '2000', ...LEASE_ARGS,
];
const ENV = { VIRTFORM_TEST_FAIL: `defineNetwork:${STUCK}:1` };

const net = (name: string, n: number): string => `apiVersion: virtform.dev/v1
kind: Network
metadata: {name: ${name}}
spec: {mode: isolated, cidr: ${N.cidr(n)}}
`;

let work: string;
let dir: string;
let db: string;
let reader: StateStore;
let audit: pg.Client;
let boundMs = 0;
const watchers: Watcher[] = [];

/** Declare exactly these networks (name → subnet index). */
function declare(nets: Record<string, number>): void {
  writeFileSync(join(dir, 'env.yaml'), Object.entries(nets).map(([name, n]) => net(name, n)).join('---\n'));
}

interface Proc {
  w: Watcher;
  /** PGAPPNAME: the audit rows' writer. */
  app: string;
  /** The node process, for signals (its pid in this namespace). */
  pid: number;
  /** Its pid as it sees it, and as the lease row records it (1 in a pid namespace of its own). */
  ownPid: number;
}

/**
 * A watcher; `isolated`: on a "machine" of its own, a new pid namespace (else in this test host's,
 * where it can see the isolated ones' pids but they cannot see its). Its PGAPPNAME names its writes.
 */
async function startOn(app: string, isolated: boolean): Promise<Proc> {
  const w = spawnWatch([dir, '--db', db, ...COMMON, '--listen', '127.0.0.1:0'], {
    env: { ...ENV, PGAPPNAME: app }, ...(isolated ? { wrap: ['unshare', '--pid', '--fork', '--kill-child', '--'] } : {}),
  });
  watchers.push(w);
  let pid = isolated ? 0 : w.child.pid!;
  // Isolated, the node process is unshare's child (pid 1 in its namespace).
  await waitFor(() => {
    try {
      pid ||= Number(readFileSync(`/proc/${w.child.pid}/task/${w.child.pid}/children`, 'utf8').trim().split(/\s+/)[0]);
    } catch { /* safe-catch: not forked yet */ }
    return pid > 0;
  }, `${app}: the watcher process`);
  await w.waitForLog('listening');
  return { w, app, pid, ownPid: isolated ? 1 : pid };
}

async function lease(): Promise<LeaseRow> {
  const row = await readLease(reader.leaseDeps());
  if (!row) throw new Error('no lease row');
  return row;
}

async function writesBy(app: string): Promise<number> {
  const r = await audit.query<{ n: string }>('select count(*) as n from vftest_audit where app = $1', [app]);
  return Number(r.rows[0]!.n);
}

/** Statement triggers on every table of the state DB but `leases`: who wrote (application_name), where, when. */
async function installAudit(): Promise<void> {
  await audit.query(`create table if not exists vftest_audit (id bigserial primary key, at timestamptz not null default clock_timestamp(),
    app text not null, tbl text not null, op text not null)`);
  await audit.query(`create or replace function vftest_audit() returns trigger language plpgsql as $$
    begin insert into vftest_audit (app, tbl, op) values (current_setting('application_name'), tg_table_name, tg_op); return null; end $$`);
  const tables = await audit.query<{ t: string }>(`select tablename as t from pg_tables where schemaname = 'public'
    and tablename not in ('leases', 'vftest_audit') and tablename not like 'kysely%'`);
  expect(tables.rows.map((r) => r.t)).toEqual(expect.arrayContaining(['resources', 'journal', 'revisions']));
  for (const { t } of tables.rows) {
    await audit.query(`create or replace trigger vftest_audit after insert or update or delete on "${t}" for each statement execute function vftest_audit()`);
  }
}

const ready = async (p: Proc): Promise<boolean> => (await p.w.http('/readyz')).status === 200;
const statusOf = async (p: Proc): Promise<{ lease: { role: string; holder: string | null; leader: { holder: string; pid: number; held: boolean; epoch: number } | null } }> =>
  JSON.parse((await p.w.http('/status')).body) as never;

beforeAll(async () => {
  ensureBuilt();
  cleanupPrefix(P);
  work = tempDir(`${P}-`);
  dir = writeManifests(join(work, 'm'), {});
  declare({ [`${P}-a`]: 0 });
  db = await testDbLocation(work);
  expect(db, 'the fleet config starts a private PostgreSQL (VIRTFORM_TEST_PG_URL)').toMatch(/^postgres:\/\//);
  reader = await openStateStore(db); // migrates the DB: the audit triggers go on its tables
  audit = new pg.Client({ connectionString: db });
  await audit.connect();
  await installAudit();
});

afterAll(async () => {
  for (const w of watchers) if (w.exitCode === undefined) w.child.kill('SIGKILL');
  await audit?.end().catch(() => undefined);
  await reader?.close();
  if (db) {
    const down = await runCli(['reconcile', writeManifests(join(work, 'empty'), {}), '--db', db, '--uri', 'qemu:///system', '--allow-empty', '--max-deletions', 'all', '--lock-timeout', '30']);
    expect(down.code, down.stdout + down.stderr).toBe(0);
  }
  cleanupPrefix(P);
  expect(TEST_POOL_ROOT).toBeTruthy();
});

describe('two watchers on one PostgreSQL: one applies, the standby takes over', () => {
  let leader: Proc;
  let standby: Proc;

  it('watch --help prints the takeover bound: --lease-duration + --retry-period', async () => {
    const help = await runCli(['watch', '--help']);
    expect(help.code).toBe(0);
    const text = help.stdout.replace(/\s+/g, ' ');
    expect(text).toContain('a standby takes over within --lease-duration + --retry-period seconds (17 s with the defaults)');
    boundMs = (LEASE.duration + LEASE.retry) * 1000;
  });

  it('exactly one applies: the standby writes nothing, says who leads, and /readyz is 503', async () => {
    // The leader in this pid namespace, the standby in one of its own: the standby cannot see the
    // leader's pid (as on another machine), so it must not take it for dead.
    leader = await startOn('vftest-w1', false);
    await waitFor(() => ready(leader), 'the first watcher ready', 60_000);
    expect(virshOk('net-info', `${P}-a`)).toBe(true);
    standby = await startOn('vftest-w2', true);
    await standby.w.waitForLog('standby: another process holds the writer lease; retrying');

    const before = await writesBy(standby.app);
    declare({ [`${P}-a`]: 0, [`${P}-b`]: 1 });
    await waitFor(() => virshOk('net-info', `${P}-b`), 'the leader applies the edit', 30_000);
    await sleep(1000);
    expect(await writesBy(leader.app)).toBeGreaterThan(0);
    expect(await writesBy(standby.app)).toBe(before);
    expect(standby.w.count('reconcile started')).toBe(0);

    const row = await lease();
    expect(row).toMatchObject({ pid: leader.ownPid, epoch: 1 });
    const r = await standby.w.http('/readyz');
    expect(r.status).toBe(503);
    expect(r.body).toMatch(/not ready \(standby: /);
    const s = await statusOf(standby);
    expect(s.lease).toMatchObject({ role: 'standby', holder: null, leader: { holder: row.holder, held: true, epoch: 1 } });
    expect((await statusOf(leader)).lease).toMatchObject({ role: 'leader', holder: row.holder, leader: { holder: row.holder, held: true } });

    const text = await runCli(['status', '--db', db, '--offline']);
    expect(text.code, text.stderr).toBe(0);
    const line = text.stdout.split('\n').find((l) => l.startsWith('leader: '));
    expect(line).toMatch(new RegExp(`^leader: ${row.holder} \\(pid ${leader.ownPid} on ${row.hostname}, epoch 1, renewed \\d+s ago, expires in \\d+s\\)$`));
    const json = await runCli(['status', '--db', db, '--offline', '--json']);
    expect(JSON.parse(json.stdout).lease).toMatchObject({ held: true, holder: row.holder, pid: leader.ownPid, hostname: row.hostname, epoch: 1 });
  });

  it('leader SIGKILLed: the standby takes over within the printed bound (not before the lease expired) and converges a change made after the kill', async () => {
    const takeovers: number[] = [];
    const converged: number[] = [];
    for (let round = 0; round < 3; round++) {
      const before = await lease();
      const killedAt = Date.now();
      process.kill(leader.pid, 'SIGKILL');
      const leftMs = before.expiresAt - before.now; // what was left of its lease, by the database's clock
      declare({ [`${P}-a`]: 0, [`${P}-b`]: 1, [`${P}-k${round}`]: 2 + round });
      let after = before;
      await waitFor(async () => (after = await lease()).epoch > before.epoch, 'the takeover', 30_000);
      const takeover = Date.now() - killedAt;
      await waitFor(() => virshOk('net-info', `${P}-k${round}`), 'the new leader converges the change', 60_000);
      const converge = Date.now() - killedAt;
      console.log(`[standby] SIGKILL round ${round + 1}: lease had ${leftMs} ms left; takeover after ${takeover} ms, converged after ${converge} ms (bound ${boundMs} ms)`);
      expect(after.holder).not.toBe(before.holder);
      expect(after.epoch).toBe(before.epoch + 1);
      // Another machine: never before the dead leader's lease expired (its pid means nothing here).
      expect(takeover).toBeGreaterThanOrEqual(leftMs - 100);
      expect(takeover).toBeLessThanOrEqual(boundMs + SLACK_MS);
      takeovers.push(takeover);
      converged.push(converge);
      await waitFor(() => ready(standby), 'the new leader ready', 30_000);
      expect(standby.w.count('writer lease acquired')).toBe(1);
      // The next round: the new leader is killed, a new standby on another machine takes over.
      leader = standby;
      // Alternately in this pid namespace and in one of its own: the dead leader's pid is either
      // invisible to it (it must wait for the expiry) or another machine's (same).
      standby = await startOn(`vftest-w${3 + round}`, round % 2 === 1);
      await standby.w.waitForLog('standby: another process holds the writer lease; retrying');
    }
    const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
    console.log(`[standby] SIGKILL takeover median ${median(takeovers)} ms (${takeovers.join(', ')}), convergence median ${median(converged)} ms; printed bound ${boundMs} ms`);
  });

  it('leader SIGSTOPped inside its apply past its lease: the standby takes over; after SIGCONT the old leader applies nothing, says it was deposed and stands by', async () => {
    // The leader's step defining STUCK fails once and waits ~2 s to retry: frozen while it waits.
    declare({ [`${P}-a`]: 0, [`${P}-b`]: 1, [STUCK]: 8 });
    await leader.w.waitForLog('step retry', (l) => String(l.resource).includes(STUCK), 30_000);
    process.kill(leader.pid, 'SIGSTOP');
    const stoppedAt = Date.now();
    const before = await lease();
    const leftMs = before.expiresAt - before.now;
    const writesAtStop = await writesBy(leader.app);
    // Meanwhile the manifests change: STUCK goes, `after` comes.
    declare({ [`${P}-a`]: 0, [`${P}-b`]: 1, [`${P}-after`]: 9 });
    let after = before;
    await waitFor(async () => (after = await lease()).epoch > before.epoch, 'the takeover', 30_000);
    const takeover = Date.now() - stoppedAt;
    await waitFor(() => virshOk('net-info', `${P}-after`), 'the new leader converges', 60_000);
    console.log(`[standby] SIGSTOP: lease had ${leftMs} ms left; takeover after ${takeover} ms (bound ${boundMs} ms)`);
    expect(takeover).toBeGreaterThanOrEqual(leftMs - 100);
    expect(takeover).toBeLessThanOrEqual(boundMs + SLACK_MS);
    expect(after.holder).not.toBe(before.holder);
    expect(await writesBy(leader.app)).toBe(writesAtStop);

    process.kill(leader.pid, 'SIGCONT');
    const deposed = await leader.w.waitForLog('deposed: another process took the writer lease over; this watcher applies nothing more and stands by', undefined, 15_000);
    expect(deposed).toMatchObject({ epoch: before.epoch, leader: after.holder, leaderEpoch: after.epoch });
    await leader.w.waitForLog('standby: another process holds the writer lease; retrying', (l) => l.holder === after.holder, 15_000);
    await sleep(4000); // past the frozen step's retry time: were it not refused, it would define STUCK now
    expect(virshOk('net-info', STUCK), 'the deposed leader defined the network of its pending step').toBe(false);
    expect(await writesBy(leader.app), 'the deposed leader wrote to the state DB').toBe(writesAtStop);
    expect(await lease()).toMatchObject({ holder: after.holder, epoch: after.epoch });
    const r = await leader.w.http('/readyz');
    expect(r.status).toBe(503);
    expect(r.body).toMatch(/standby: /);
    expect((await statusOf(leader)).lease).toMatchObject({ role: 'standby', holder: null, leader: { holder: after.holder, held: true, epoch: after.epoch } });
    expect(await ready(standby)).toBe(true);
    // What the deposed leader's run did instead: its step was not started (lease lost), nothing more.
    console.log(`[standby] deposed leader after SIGCONT:\n${leader.w.tail(12)}`);
    expect(leader.w.count('step done', (l) => String(l.resource).includes(STUCK))).toBe(0);

    // status names the new leader.
    const text = await runCli(['status', '--db', db, '--offline']);
    expect(text.stdout).toMatch(new RegExp(`^leader: ${after.holder} \\(pid ${after.pid} on ${after.hostname}, epoch ${after.epoch}, `, 'm'));
    for (const w of watchers) if (w.exitCode === undefined) w.child.kill('SIGKILL');
  });
});
