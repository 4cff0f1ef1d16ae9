/**
 * SIGKILL the apply process at random journal boundaries, over many rounds, then rerun without the
 * hook: every rerun converges (exit 0, then `--dry-run --detailed-exitcode` exits 0), nothing is
 * orphaned (`orphans()` against the declared set), the journal has no open operation left, and the
 * read-back oracle (test/support/readback.ts, issue #12) finds libvirt equal to the manifests, with
 * every generated MAC and clone/base pair seen before the rerun unchanged.
 *
 * Seeded: VIRTFORM_FAULT_SEED (printed; random by default), VIRTFORM_FAULT_ROUNDS (default 50).
 * Between rounds the manifests sometimes change (a VM added/removed, memory, vcpus, state, or the
 * whole folder emptied and later restored) so deletes, updates and stops get crashed too. Writes bench/results/faults.md.
 *
 * A second, shorter series (VIRTFORM_FAULT_GIT_ROUNDS, default 8) takes the manifests from a git
 * source: each round commits the variant to a local bare repository and SIGKILLs `reconcile --git`
 * at a random journal boundary (after the commit was checked out and moved into the applied
 * checkout, before its run was recorded); the rerun must converge and record the commit as applied.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { openHost } from '../../src/reconcile/adapters/libvirt-host.js';
import { planOnly } from '../../src/reconcile/engine.js';
import { openStateStore } from '../../src/state/index.js';
import { openJournal, orphans, runCli, TEST_POOL_ROOT } from '../support/real-host.js';
import { desiredFrom, writeManifests } from '../support/manifests.js';
import { failures, formatDifferences, mergeSnapshots, readback, type Difference, type Snapshot } from '../support/readback.js';
import { TestRepo } from '../support/git.js';
import {
  declaredFrom, describeVariant, ensureLibvirtd, faultManifests, isConnectionTrouble, prng, randInt, RESULTS, whileLibvirtdFlaps, type Variant,
} from './support.js';
import { useSuite } from '../support/suite.js';
import { suiteNames } from '../support/names.js';

const N = useSuite('faultk', {
  before: () => ensureLibvirtd(),
  setup: () => {
    NPG.cleanup();
    started = Date.now();
    console.log(`[faults] crash rounds: seed=${SEED} rounds=${ROUNDS} (override with VIRTFORM_FAULT_SEED / VIRTFORM_FAULT_ROUNDS)`);
  },
});
const P = N.base;
const POOL_PATH = `${TEST_POOL_ROOT}/${P}-pool`;
const SEED = Number(process.env.VIRTFORM_FAULT_SEED ?? Math.floor(Math.random() * 2 ** 31));
const ROUNDS = Number(process.env.VIRTFORM_FAULT_ROUNDS ?? 50);
const GIT_ROUNDS = Number(process.env.VIRTFORM_FAULT_GIT_ROUNDS ?? 8);
const NPG = suiteNames('faultg');
const PG = NPG.base;
const URI = 'qemu:///system';
const COMMON = ['--uri', 'qemu:///system', '--shutdown-timeout', '0', '--max-attempts', '2', '--retry-delay', '50', '--allow-empty', '--allow-data-loss', '--max-deletions', 'all'];

interface Round {
  round: number;
  variant: string;
  changed: boolean;
  steps: number;
  concurrency: number;
  crashAt: number;
  crash: string;
  boundary: string;
  recoveryExit: number | null;
  recoveryMs: number;
  dryRunExit: number | null;
  orphans: string[];
  openJournal: number;
  /** Read-back oracle (issue #12): differences between libvirt and the manifests after the rerun, known bugs apart. */
  readback: Difference[];
  /** Known-bug ids the readback saw this round. */
  knownBugs: string[];
  readbackMs: number;
  /** The readback right after the crash (its snapshot only). */
  crashReadbackMs: number;
  /** Times libvirtd was found down (restarted by another suite) and a step was retried. */
  disturbed: number;
}

const rounds: Round[] = [];
const gitRounds: (Round & { commit: string; recorded: string | null })[] = [];
let started = 0;

async function stepsPending(dir: string, db: string): Promise<number> {
  const host = await openHost('qemu:///system');
  const store = await openStateStore(db);
  try {
    return (await planOnly(host, store, await desiredFrom(dir), true, { allowDataLoss: true })).plan.steps.length;
  } finally {
    await store.close();
    await host.close();
  }
}

function mutate(v: Variant, rnd: () => number): Variant {
  if (v.empty) return { ...v, empty: false };
  if (rnd() < 0.1) return { ...v, empty: true }; // tear everything down (deletes get crashed too)
  const n = { ...v };
  switch (randInt(rnd, 0, 3)) {
    case 0: n.vms = v.vms === 4 ? 3 : 4; break;
    case 1: n.vm1Memory = v.vm1Memory === '64MiB' ? '96MiB' : '64MiB'; break;
    case 2: n.vm2State = v.vm2State === 'running' ? 'stopped' : 'running'; break;
    default: n.vm3Vcpus = v.vm3Vcpus === 1 ? 2 : 1;
  }
  return n;
}

function report(): void {
  const crashed = rounds.filter((r) => r.crash === 'SIGKILL').length;
  const ok = rounds.filter((r) => r.recoveryExit === 0 && r.dryRunExit === 0 && r.orphans.length === 0 && r.openJournal === 0 && r.readback.length === 0).length;
  const rbMs = rounds.map((r) => r.readbackMs).sort((a, b) => a - b);
  const rows = rounds.map((r) =>
    `| ${r.round} | ${r.variant}${r.changed ? ' (changed)' : ''} | ${r.steps} | ${r.concurrency} | ${r.crashAt} | ${r.crash} | ${r.boundary.replace(/\|/g, '/')} | ` +
    `${r.recoveryExit} | ${(r.recoveryMs / 1000).toFixed(1)} | ${r.dryRunExit} | ${r.orphans.length ? r.orphans.join(', ') : 'none'} | ${r.openJournal} | ` +
    `${r.readback.length ? r.readback.map((x) => `${x.resource} ${x.field}`.replace(/\|/g, '/')).join(', ') : 'none'} | ${r.knownBugs.join(', ') || '-'} | ${r.disturbed} |`);
  mkdirSync(RESULTS, { recursive: true });
  // A run of the git series alone (-t "git source") writes its own file and leaves the full report alone.
  writeFileSync(join(RESULTS, rounds.length ? 'faults.md' : 'faults-git.md'), `# Fault suite: SIGKILL at random journal boundaries

Seed ${SEED} (rerun: \`VIRTFORM_FAULT_SEED=${SEED} VIRTFORM_FAULT_ROUNDS=${ROUNDS} npx vitest run -c vitest.faults.config.ts test/faults/crash-rounds.test.ts\`),
${rounds.length} rounds in ${((Date.now() - started) / 1000).toFixed(0)} s on qemu:///system, ${new Date().toISOString()}.
Manifests: 1 pool, qcow2 base + a CoW clone root per VM + 2 raw data volumes, 1 isolated network, 3-4 VMs (12-14 resources).

- crashed by SIGKILL: ${crashed}/${rounds.length}
- rounds disturbed by libvirtd restarts from other suites (steps retried once it answered again): ${rounds.filter((r) => r.disturbed > 0).length}
- converged afterwards (exit 0, dry-run --detailed-exitcode 0, no orphans, no open journal entry, read-back oracle: libvirt equals the manifests, known bugs apart): **${ok}/${rounds.length}**
- rounds where a known bug (test/support/readback.ts KNOWN_BUGS) showed: ${rounds.filter((r) => r.knownBugs.length).length} (${[...new Set(rounds.flatMap((r) => r.knownBugs))].join(', ') || 'none'})
- readback per round (after the rerun): median ${(rbMs[Math.floor(rbMs.length / 2)] ?? 0).toFixed(0)} ms, max ${(rbMs.at(-1) ?? 0).toFixed(0)} ms; ` +
  `all readbacks (two per round) ${((rounds.reduce((n, r) => n + r.readbackMs + r.crashReadbackMs, 0)) / 1000).toFixed(1)} s

| round | variant | steps pending | concurrency | crash at | crash run | boundary label | rerun exit | rerun s | dry-run exit | orphans | open journal | readback differences | known bugs | libvirtd restarts seen |
| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |
${rows.join('\n')}
${gitRounds.length ? `
## Against a git source (\`reconcile --git file://… --path env\`)

${gitRounds.length} rounds: each commits the round's variant and SIGKILLs the apply at a random journal boundary; the rerun (same --git) converges and records the commit as applied.
Converged: **${gitRounds.filter((r) => r.recoveryExit === 0 && r.dryRunExit === 0 && r.orphans.length === 0 && r.openJournal === 0 && r.readback.length === 0 && r.recorded === r.commit).length}/${gitRounds.length}**.

| round | variant | commit | steps pending | crash at | crash run | boundary label | rerun exit | rerun s | dry-run exit | orphans | open journal | readback differences | applied commit recorded |
| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |
${gitRounds.map((r) => `| ${r.round} | ${r.variant} | ${r.commit.slice(0, 7)} | ${r.steps} | ${r.crashAt} | ${r.crash} | ${r.boundary.replace(/\|/g, '/')} | ${r.recoveryExit} | ${(r.recoveryMs / 1000).toFixed(1)} | ${r.dryRunExit} | ${r.orphans.length ? r.orphans.join(', ') : 'none'} | ${r.openJournal} | ${r.readback.length ? r.readback.map((x) => `${x.resource} ${x.field}`).join(', ') : 'none'} | ${r.recorded === r.commit ? 'yes' : `no (${r.recorded?.slice(0, 7) ?? 'none'})`} |`).join('\n')}
` : ''}`);
}

afterAll(() => {
  if (rounds.length || gitRounds.length) report();
  NPG.cleanup();
});

describe('SIGKILL at random journal boundaries', () => {
  it(`converges with no orphans after every crash (${ROUNDS} rounds)`, async () => {
    const rnd = prng(SEED);
    const dir = join(N.work, 'm');
    const db = join(N.work, 'state.db');
    let variant: Variant = { vms: 4, vm1Memory: '64MiB', vm2State: 'stopped', vm3Vcpus: 1 };
    /** Generated MACs and clone/base inodes as last read back (issue #12: they must not change under the same domain/clone). */
    let seen: Snapshot | undefined;
    for (let round = 1; round <= ROUNDS; round++) {
      let changed = round > 1 && rnd() < 0.5;
      if (changed) variant = mutate(variant, rnd);
      writeManifests(dir, faultManifests(P, POOL_PATH, variant));
      const note = { disturbed: 0 };
      const trouble = (x: { code: number | null; stdout: string; stderr: string }): boolean =>
        x.code !== 0 && isConnectionTrouble(x.stderr + x.stdout);
      const pending = (): Promise<number> => whileLibvirtdFlaps(() => stepsPending(dir, db), () => false, note);
      let steps = await pending();
      for (let i = 0; steps === 0 && i < 4; i++) {
        variant = mutate(variant, rnd);
        changed = true;
        writeManifests(dir, faultManifests(P, POOL_PATH, variant));
        steps = await pending();
      }
      const crashAt = randInt(rnd, 1, Math.max(1, 2 * steps));
      const concurrency = randInt(rnd, 1, 4);
      const crash = await runCli(['reconcile', dir, '--db', db, '--concurrency', String(concurrency), ...COMMON], { VIRTFORM_TEST_CRASH_AT: String(crashAt) });
      const boundary = /\[test\] crashing at boundary \d+: (.*)/.exec(crash.stderr)?.[1] ?? '';
      let crashOutcome = crash.signal === 'SIGKILL' ? 'SIGKILL' : `exit ${crash.code}`;
      if (trouble(crash)) {
        note.disturbed += 1;
        crashOutcome += ' (libvirtd went away)';
        await ensureLibvirtd(60_000);
      }

      // What the crash left (not converged): only its MACs and clone/base pairs are kept, first sighting winning.
      const crashed = await whileLibvirtdFlaps(() => readback(dir, URI, seen), () => false, note);
      const prev = mergeSnapshots(seen, crashed.snapshot, 'first');

      const t = performance.now();
      const rerun = await whileLibvirtdFlaps(() => runCli(['reconcile', dir, '--db', db, ...COMMON]), trouble, note);
      const recoveryMs = performance.now() - t;
      const dry = await whileLibvirtdFlaps(
        () => runCli(['reconcile', dir, '--db', db, '--dry-run', '--detailed-exitcode', ...COMMON]), trouble, note);
      const declared = await declaredFrom(dir);
      const left = await whileLibvirtdFlaps(() => orphans(N.prefix, declared), () => false, note);
      const open = openJournal(db);
      const rb = await whileLibvirtdFlaps(() => readback(dir, URI, prev), () => false, note);
      const failing = failures(rb, `round ${round}`);
      seen = mergeSnapshots(prev, rb.snapshot, 'last');
      const r: Round = {
        round, variant: describeVariant(variant), changed, steps, concurrency, crashAt, crash: crashOutcome, boundary,
        recoveryExit: rerun.code, recoveryMs, dryRunExit: dry.code, orphans: left, openJournal: open.length,
        readback: failing, knownBugs: [...new Set(rb.known.map((k) => k.bug.id))], readbackMs: rb.ms, crashReadbackMs: crashed.ms, disturbed: note.disturbed,
      };
      rounds.push(r);
      console.log(`[faults] round ${round}: ${r.variant} steps=${steps} c=${concurrency} crashAt=${crashAt} -> ${crashOutcome} [${boundary}]; ` +
        `rerun ${rerun.code} (${(recoveryMs / 1000).toFixed(1)} s), dry-run ${dry.code}, orphans ${left.length}, open journal ${open.length}, ` +
        `readback ${failing.length} difference(s)${r.knownBugs.length ? ` + known ${r.knownBugs.join(',')}` : ''} (${rb.ms.toFixed(0)} ms; after the crash ${crashed.ms.toFixed(0)} ms)${note.disturbed ? `, libvirtd down ${note.disturbed}x (retried)` : ''}`);

      // A crash run either dies at the boundary or (when fewer boundaries occur than planned) completes.
      if (!crashOutcome.includes('libvirtd went away')) {
        expect(['SIGKILL', 'exit 0'], `round ${round} crash run: ${crash.stderr.slice(-2000)}`).toContain(crashOutcome);
      }
      expect(rerun.code, `round ${round} rerun:\n${rerun.stdout.slice(-3000)}\n${rerun.stderr.slice(-3000)}`).toBe(0);
      expect(dry.code, `round ${round} dry-run after rerun:\n${dry.stdout.slice(-3000)}\n${dry.stderr.slice(-2000)}\nrerun was:\n${rerun.stdout.slice(-3000)}`).toBe(0);
      expect(left, `round ${round} orphans`).toEqual([]);
      expect(open, `round ${round} open journal`).toEqual([]);
      expect(failing, `round ${round} readback:\n${formatDifferences(failing)}`).toEqual([]);
    }
    expect(rounds.filter((r) => r.crash === 'SIGKILL').length).toBeGreaterThanOrEqual(Math.ceil(ROUNDS * 0.8) - rounds.filter((r) => r.disturbed > 0).length);
  });
});

describe('SIGKILL at random journal boundaries, manifests from a git source', () => {
  it(`converges and records the applied commit after every crash (${GIT_ROUNDS} rounds)`, async () => {
    const rnd = prng(SEED ^ 0x5eed);
    const repo = new TestRepo(join(N.work, 'git-repo'));
    const dir = join(repo.work, 'env');
    const db = join(N.work, 'git-state.db');
    const poolPath = `${TEST_POOL_ROOT}/${PG}-pool`;
    const gitArgs = ['--git', repo.url, '--branch', 'main', '--path', 'env'];
    let variant: Variant = { vms: 3, vm1Memory: '64MiB', vm2State: 'stopped', vm3Vcpus: 1 };
    let seen: Snapshot | undefined;
    for (let round = 1; round <= GIT_ROUNDS; round++) {
      let changed = round > 1;
      if (changed) variant = mutate(variant, rnd);
      if (variant.empty) variant = mutate(variant, rnd); // an empty commit is refused without --allow-empty in the repo: keep content
      const note = { disturbed: 0 };
      const trouble = (x: { code: number | null; stdout: string; stderr: string }): boolean => x.code !== 0 && isConnectionTrouble(x.stderr + x.stdout);
      const commitVariant = (): string => repo.commit(faultManifests(PG, poolPath, variant, '10.232.9.0/24'), { folder: 'env', message: describeVariant(variant) });
      let commit = commitVariant();
      let steps = await whileLibvirtdFlaps(() => stepsPending(dir, db), () => false, note);
      for (let i = 0; steps === 0 && i < 4; i++) {
        variant = mutate(variant, rnd);
        if (variant.empty) variant = mutate(variant, rnd);
        changed = true;
        commit = commitVariant();
        steps = await whileLibvirtdFlaps(() => stepsPending(dir, db), () => false, note);
      }
      const crashAt = randInt(rnd, 1, Math.max(1, 2 * steps));
      const concurrency = randInt(rnd, 1, 4);
      const crash = await runCli(['reconcile', ...gitArgs, '--db', db, '--concurrency', String(concurrency), ...COMMON], { VIRTFORM_TEST_CRASH_AT: String(crashAt) });
      const boundary = /\[test\] crashing at boundary \d+: (.*)/.exec(crash.stderr)?.[1] ?? '';
      let crashOutcome = crash.signal === 'SIGKILL' ? 'SIGKILL' : `exit ${crash.code}`;
      if (trouble(crash)) {
        note.disturbed += 1;
        crashOutcome += ' (libvirtd went away)';
        await ensureLibvirtd(60_000);
      }
      const crashed = await whileLibvirtdFlaps(() => readback(dir, URI, seen), () => false, note);
      const prev = mergeSnapshots(seen, crashed.snapshot, 'first');
      const t = performance.now();
      const rerun = await whileLibvirtdFlaps(() => runCli(['reconcile', ...gitArgs, '--db', db, ...COMMON]), trouble, note);
      const recoveryMs = performance.now() - t;
      const dry = await whileLibvirtdFlaps(() => runCli(['reconcile', ...gitArgs, '--db', db, '--dry-run', '--detailed-exitcode', ...COMMON]), trouble, note);
      const declared = await declaredFrom(dir);
      const left = await whileLibvirtdFlaps(() => orphans(NPG.prefix, declared), () => false, note);
      const open = openJournal(db);
      const rb = await whileLibvirtdFlaps(() => readback(dir, URI, prev), () => false, note);
      const failing = failures(rb, `git round ${round}`);
      seen = mergeSnapshots(prev, rb.snapshot, 'last');
      const store = await openStateStore(db);
      const recorded = (await store.gitSources.list())[0]?.appliedCommit ?? null;
      await store.close();
      gitRounds.push({
        round, variant: describeVariant(variant), changed, steps, concurrency, crashAt, crash: crashOutcome, boundary,
        recoveryExit: rerun.code, recoveryMs, dryRunExit: dry.code, orphans: left, openJournal: open.length,
        readback: failing, knownBugs: [...new Set(rb.known.map((k) => k.bug.id))], readbackMs: rb.ms, crashReadbackMs: crashed.ms, disturbed: note.disturbed,
        commit, recorded,
      });
      console.log(`[faults] git round ${round}: ${describeVariant(variant)} commit=${commit.slice(0, 7)} steps=${steps} crashAt=${crashAt} -> ${crashOutcome} [${boundary}]; ` +
        `rerun ${rerun.code}, dry-run ${dry.code}, orphans ${left.length}, open journal ${open.length}, readback ${failing.length}, applied recorded ${recorded?.slice(0, 7)}`);
      if (!crashOutcome.includes('libvirtd went away')) {
        expect(['SIGKILL', 'exit 0'], `git round ${round} crash run: ${crash.stderr.slice(-2000)}`).toContain(crashOutcome);
      }
      expect(rerun.code, `git round ${round} rerun:\n${rerun.stdout.slice(-3000)}\n${rerun.stderr.slice(-3000)}`).toBe(0);
      expect(dry.code, `git round ${round} dry-run:\n${dry.stdout.slice(-3000)}\n${dry.stderr.slice(-2000)}`).toBe(0);
      expect(left, `git round ${round} orphans`).toEqual([]);
      expect(open, `git round ${round} open journal`).toEqual([]);
      expect(failing, `git round ${round} readback:\n${formatDifferences(failing)}`).toEqual([]);
      expect(recorded, `git round ${round}: applied commit recorded`).toBe(commit);
    }
  });
});
