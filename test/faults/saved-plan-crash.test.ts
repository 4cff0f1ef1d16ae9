/**
 * Saved plans in the crash matrix (issue 24, savedplan): `reconcile --plan PLAN` SIGKILLed at every
 * journal boundary of its apply (VIRTFORM_TEST_CRASH_AT=k, k = 1, 2, … until the apply ends before
 * the k-th boundary). After each crash, applying the same plan again either finishes it (exit 0:
 * the rerun resumes the plan, the steps left being the plan's) or refuses it with a clear reason
 * (exit 1, "no longer matches", nothing changed by the refusal; an ordinary reconcile then
 * converges). Either way: the dry-run afterwards has no change, nothing is orphaned and the journal
 * has no open entry. Each case starts from the same state (lab A converged) and plans A → B anew.
 * Writes bench/results/saved-plan-crash.md.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { openJournal, orphans, type CliResult } from '../support/real-host.js';
import { useSuite } from '../support/suite.js';
import { declaredFrom, ensureLibvirtd, RESULTS } from './support.js';

const S = useSuite('plancrash', { before: () => ensureLibvirtd() });
const P = S.base;
const POOL = `${P}-pool`;
const CONSENT = ['--allow-data-loss', '--max-deletions', 'all'];
const FAST = ['--shutdown-timeout', '0', '--max-attempts', '2', '--retry-delay', '50'];

const doc = (kind: string, name: string, spec: string): string => `apiVersion: virtform.dev/v1\nkind: ${kind}\nmetadata: {name: ${name}}\nspec: ${spec}\n`;
/** A: one VM (stopped) with a data disk. B: it runs with more memory and no data disk (the volume deleted, with consent), a second VM, volume and network. */
function lab(target: boolean): Record<string, string> {
  const docs = [
    doc('StoragePool', POOL, `{path: ${S.poolPath()}}`),
    doc('Network', `${P}-net`, `{mode: isolated, cidr: ${S.cidr(0)}, autostart: false}`),
    doc('Volume', `${P}-root1`, `{pool: ${POOL}, capacity: 16MiB, format: qcow2}`),
  ];
  if (!target) {
    docs.push(doc('Volume', `${P}-data`, `{pool: ${POOL}, capacity: 8MiB, format: qcow2}`));
    docs.push(doc('VirtualMachine', `${P}-vm1`, `{vcpus: 1, memory: 64MiB, state: stopped, disks: [{volume: ${P}-root1}, {volume: ${P}-data}], nics: [{network: ${P}-net}]}`));
  } else {
    docs.push(doc('Network', `${P}-net2`, `{mode: isolated, cidr: ${S.cidr(1)}, autostart: false}`));
    docs.push(doc('Volume', `${P}-root2`, `{pool: ${POOL}, capacity: 16MiB, format: qcow2}`));
    docs.push(doc('VirtualMachine', `${P}-vm1`, `{vcpus: 1, memory: 96MiB, state: running, disks: [{volume: ${P}-root1}], nics: [{network: ${P}-net}]}`));
    docs.push(doc('VirtualMachine', `${P}-vm2`, `{vcpus: 1, memory: 64MiB, state: stopped, disks: [{volume: ${P}-root2}], nics: [{network: ${P}-net2}]}`));
  }
  return { 'lab.yaml': docs.join('---\n') };
}

interface Case {
  k: number;
  steps: number;
  boundary: string;
  crash: string;
  rerun: 'finished' | 'resumed' | 'refused' | `exit ${number}`;
  reason: string;
  converge: number | null;
  dryRun: number | null;
  orphans: string[];
  open: number;
}
const cases: Case[] = [];

function expectCode(r: CliResult, code: number): void {
  expect(r.code, `stdout:\n${r.stdout}\nstderr:\n${r.stderr}`).toBe(code);
}

afterAll(() => {
  if (cases.length === 0) return;
  mkdirSync(RESULTS, { recursive: true });
  const rows = cases.map((c) => `| ${c.k} | ${c.steps} | ${c.boundary.replace(/\|/g, '/')} | ${c.crash} | ${c.rerun} | ${c.reason.replace(/\|/g, "/") || '-'} | ` +
    `${c.converge ?? '-'} | ${c.dryRun} | ${c.orphans.join(', ') || 'none'} | ${c.open} |`);
  writeFileSync(join(RESULTS, 'saved-plan-crash.md'), `# Saved plans in the crash matrix

\`reconcile --plan PLAN\` SIGKILLed at every journal boundary of its apply, then the same plan applied again
(test/faults/saved-plan-crash.test.ts, ${new Date().toISOString()}, qemu:///system of a test host).
Plan: lab A → B (a VM changed and started, a volume deleted with the plan's consent, a VM, a volume and a network created).

- cases: ${cases.length}; the rerun of the same plan finished it: ${cases.filter((c) => c.rerun === 'resumed' || c.rerun === 'finished').length}, refused it with a reason: ${cases.filter((c) => c.rerun === 'refused').length}
- converged afterwards (dry-run no change, no orphan, no open journal entry): **${cases.filter((c) => c.dryRun === 0 && c.orphans.length === 0 && c.open === 0).length}/${cases.length}**

| crash at | plan steps | boundary | crash run | rerun of the plan | refusal reason | reconcile after a refusal | dry-run exit | orphans | open journal |
| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |
${rows.join('\n')}
`);
});

describe('saved plan: SIGKILL at every boundary of its apply', () => {
  it('a rerun of the same plan finishes it, or refuses with a reason; the host converges either way', async () => {
    const plan = join(S.work, 'plan.json');
    for (let k = 1; k <= 60; k++) {
      // Lab A, converged; then B planned (a new plan each case: what A's objects are like now).
      S.write(lab(false));
      expectCode(await S.cli(['reconcile', S.mdir, ...CONSENT, ...FAST]), 0);
      S.write(lab(true));
      expectCode(await S.cli(['reconcile', S.mdir, '--dry-run', '--out', plan, ...CONSENT]), 0);
      const steps = (JSON.parse((await import('node:fs')).readFileSync(plan, 'utf8')) as { steps: unknown[] }).steps.length;
      expect(steps).toBeGreaterThan(5);

      const crash = await S.cli(['reconcile', '--plan', plan, ...FAST], { VIRTFORM_TEST_CRASH_AT: String(k) });
      if (crash.signal !== 'SIGKILL') {
        // Past the last boundary: the apply ran to its end.
        expectCode(crash, 0);
        expect(k, 'at least a few boundaries were crashed').toBeGreaterThan(steps);
        break;
      }
      const boundary = /\[test\] crashing at boundary \d+: (.*)/.exec(crash.stderr)?.[1] ?? '';
      const rerun = await S.cli(['reconcile', '--plan', plan, ...FAST]);
      let outcome: Case['rerun'];
      let reason = '';
      let converge: number | null = null;
      if (rerun.code === 0) {
        outcome = /resuming the plan/.test(rerun.stderr) ? 'resumed' : 'finished';
      } else {
        outcome = rerun.code === 1 && /refused: the plan .* no longer matches; nothing was changed/.test(rerun.stderr) ? 'refused' : `exit ${rerun.code ?? -1}`;
        reason = /nothing was changed:\n((?:  - .*\n)+)/.exec(rerun.stderr)?.[1]?.replace(/\n {2}- /g, '; ').replace(/^ {2}- /, '').trim() ?? '';
        expect(outcome, `rerun of the plan after a crash at ${k} (${boundary}):\n${rerun.stderr}`).toBe('refused');
        expect(reason.length).toBeGreaterThan(0);
        const again = await S.cli(['reconcile', S.mdir, ...CONSENT, ...FAST]);
        converge = again.code;
        expectCode(again, 0);
      }
      const dry = await S.cli(['reconcile', S.mdir, '--dry-run', '--detailed-exitcode', ...CONSENT]);
      const left = orphans(S.prefix, await declaredFrom(S.mdir));
      const open = openJournal(S.db).length;
      cases.push({ k, steps, boundary, crash: 'SIGKILL', rerun: outcome, reason, converge, dryRun: dry.code, orphans: left, open });
      expectCode(dry, 0);
      expect(left, `orphans after a crash at ${k}`).toEqual([]);
      expect(open, `open journal entries after a crash at ${k}`).toBe(0);
    }
    expect(cases.length).toBeGreaterThan(3);
  });
});
