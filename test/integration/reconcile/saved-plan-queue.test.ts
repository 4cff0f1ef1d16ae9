/**
 * Saved plans and a running watcher (issue 24, savedplan) on the real libvirtd: while `virtform
 * watch` holds the writer lease, `reconcile --plan PLAN` is queued as a request (table `requests`)
 * which the watcher carries out between its runs, with the same checks, and the command reports
 * its outcome; `--no-queue` exits 1 naming the holder. The plan applied is one the watcher never
 * makes itself: a deletion held for consent (watch never consents), consented in the plan.
 */
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { join } from 'node:path';
import { inventory, virsh, type CliResult } from '../../support/real-host.js';
import { spawnWatch, waitFor, type Watcher } from '../../support/cli.js';
import { useSuite } from '../../support/suite.js';

const S = useSuite('planq');
const P = S.base;
const POOL = `${P}-pool`;
const VM = `${P}-vm`;

function expectCode(r: CliResult, code: number): void {
  expect(r.code, `stdout:\n${r.stdout}\nstderr:\n${r.stderr}`).toBe(code);
}

const doc = (kind: string, name: string, spec: string): string => `apiVersion: virtform.dev/v1\nkind: ${kind}\nmetadata: {name: ${name}}\nspec: ${spec}\n`;
const lab = (data: boolean): Record<string, string> => ({
  'lab.yaml': [
    doc('StoragePool', POOL, `{path: ${S.poolPath()}}`),
    doc('Volume', `${P}-root`, `{pool: ${POOL}, capacity: 16MiB, format: qcow2}`),
    ...(data ? [doc('Volume', `${P}-data`, `{pool: ${POOL}, capacity: 8MiB, format: qcow2}`)] : []),
    doc('VirtualMachine', VM, `{vcpus: 1, memory: 64MiB, state: stopped, disks: [{volume: ${P}-root}${data ? `, {volume: ${P}-data}` : ''}]}`),
  ].join('---\n'),
});

let w: Watcher | undefined;
afterEach((ctx) => {
  if (ctx.task.result?.state === 'fail') process.stderr.write(`--- watcher log ---\n${w?.tail(40)}\n`);
});
afterAll(async () => {
  if (w && w.exitCode === undefined) await w.stop('SIGTERM');
});

describe('reconcile --plan while a watcher holds the writer lease', () => {
  it('is queued, carried out by the watcher with the plan\'s consent, and reports its outcome; --no-queue exits 1 naming the holder', async () => {
    await S.reconcileOk(lab(true));
    w = spawnWatch([S.mdir, '--db', S.db, '--no-listen', '--debounce', '100', '--retry-delay', '100', '--resync', '3']); // resync: a folder replaced whole may be missed by the file watch
    await w.waitForLog('reconcile finished', () => true, 60_000);
    // The data disk leaves: the watcher holds the deletion (it never consents).
    S.write(lab(false));
    await w.waitForLog('changes held: they would destroy data; watch never consents (run reconcile --allow-data-loss)', () => true, 60_000);
    await waitFor(() => w!.count('reconcile finished') + w!.count('reconcile finished with failures') >= 2, 'the run to end', 30_000);
    expect(inventory(S.prefix).volumes).toContain(`${POOL}/${P}-data.qcow2`);

    const file = join(S.work, 'consent.plan.json');
    expectCode(await S.cli(['reconcile', S.mdir, '--dry-run', '--out', file, '--allow-data-loss']), 0);

    // --no-queue: exit 1 naming the holder, nothing done.
    const refused = await S.cli(['reconcile', '--plan', file, '--no-queue']);
    expectCode(refused, 1);
    expect(refused.stderr).toContain(`is locked by pid ${w.child.pid}`);
    expect(refused.stderr).toContain('(command: virtform watch');
    expect(refused.stderr).toContain('not queued (--no-queue): nothing was done');
    expect(inventory(S.prefix).volumes).toContain(`${POOL}/${P}-data.qcow2`);

    // Queued: the watcher applies it (consent from the plan) and the command reports the outcome.
    const queued = await S.cli(['reconcile', '--plan', file, '--json']);
    expectCode(queued, 0);
    expect(queued.stderr).toMatch(/the writer lease is held by pid \d+ .*: queued as request (\d+) for it to run/);
    expect(queued.stderr).toMatch(/request \d+ succeeded \(by the watcher .*\): succeeded: 2 of 2 step\(s\) succeeded/);
    const out = JSON.parse(queued.stdout) as { request: { id: number; status: string }; outcome: string; steps: { resource: string; op: string; status: string }[] };
    expect(out.request.status).toBe('succeeded');
    expect(out.outcome).toBe('succeeded');
    expect(out.steps.map((s) => `${s.op} ${s.resource}`).sort()).toEqual([`vm.define VirtualMachine/${VM}`, `volume.delete Volume/${P}-data`]);
    expect(inventory(S.prefix).volumes).not.toContain(`${POOL}/${P}-data.qcow2`);
    expect(w.count('request finished', (l) => l.ok === true && l.type === 'plan')).toBe(1);

    // The same plan again: the watcher refuses it (applied already), exit 1 naming why.
    const again = await S.cli(['reconcile', '--plan', file]);
    expectCode(again, 1);
    expect(again.stderr).toMatch(/request \d+ failed .*refused: the plan .* no longer matches; nothing was changed: this plan was applied already \(run /);
    // A stale plan: made before a change the watcher applied itself; it refuses it naming the change.
    S.write(lab(true));
    await waitFor(() => inventory(S.prefix).volumes.includes(`${POOL}/${P}-data.qcow2`), 'the watcher to create the volume again', 60_000);
    await w.waitForLog('reconcile finished', (l) => (l.plan as { steps: number } | undefined)?.steps === 0, 60_000);
    const old = join(S.work, 'old.plan.json');
    S.write(lab(false));
    await w.waitForLog('changes held: they would destroy data; watch never consents (run reconcile --allow-data-loss)', () => true, 60_000);
    expectCode(await S.cli(['reconcile', S.mdir, '--dry-run', '--out', old, '--allow-data-loss']), 0);
    expect(inventory(S.prefix).volumes).toContain(`${POOL}/${P}-data.qcow2`);
    virsh('vol-create-as', POOL, 'by-hand.qcow2', '1M', '--format', 'qcow2');
    const stale = await S.cli(['reconcile', '--plan', old]);
    expectCode(stale, 1);
    expect(stale.stderr).toMatch(/request \d+ failed .*refused: .*object added on the host since the plan: volume\/vftest-planq-pool\/by-hand.qcow2/);
    expect(inventory(S.prefix).volumes).toContain(`${POOL}/${P}-data.qcow2`);
    expect(w.exitCode).toBeUndefined();
    expect(await w.stop('SIGTERM')).toBe(0);
  });
});
