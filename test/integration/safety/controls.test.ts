/**
 * Issue #14 on the real libvirtd (qemu:///system), through the CLI: the mass-deletion brake, the
 * host policy, `metadata.reconcile: disabled`, `virtform suspend`/`resume` with a running watcher
 * (and its restart), and conditions moving with the host. Everything is named vftest-controls-*;
 * the network is isolated and the VMs boot no OS.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { existsSync, mkdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { writeManifests } from '../../support/manifests.js';
import { inventory } from '../../support/real-host.js';
import { runCli, sleep, spawnWatch, waitFor, type CliResult, type Watcher } from '../../support/cli.js';
import { suiteNames } from '../../support/names.js';
import { domState as domstate, URI, virsh } from '../../support/virsh.js';

const N = suiteNames('controls');
const P = N.base;
const POOL_DIR = N.poolPath();
const VM = `${P}-vm`;

let work: string;
beforeAll(() => {
  N.cleanup();
  work = N.tempDir();
});
afterAll(() => {
  N.cleanup();
  rmSync(work, { recursive: true, force: true });
});

function expectCode(r: CliResult, code: number): void {
  expect(r.code, `stdout:\n${r.stdout}\nstderr:\n${r.stderr}`).toBe(code);
}

const base = (o: { volumes?: number; vm?: boolean; vmDisabled?: boolean } = {}): Record<string, string> => {
  const docs = [`apiVersion: virtform.dev/v1
kind: StoragePool
metadata: {name: ${P}-pool}
spec: {path: ${POOL_DIR}, autostart: false}`];
  for (let i = 0; i < (o.volumes ?? 0); i++) {
    docs.push(`apiVersion: virtform.dev/v1
kind: Volume
metadata: {name: ${P}-v${i}}
spec: {pool: ${P}-pool, capacity: 8MiB, format: qcow2}`);
  }
  docs.push(`apiVersion: virtform.dev/v1
kind: Network
metadata: {name: ${P}-net}
spec: {mode: isolated, cidr: ${N.cidr()}, autostart: false}`);
  if (o.vm) {
    docs.push(`apiVersion: virtform.dev/v1
kind: VirtualMachine
metadata: {name: ${VM}${o.vmDisabled ? ', reconcile: disabled' : ''}}
spec: {vcpus: 1, memory: 64MiB, state: running, nics: [{network: ${P}-net}]}`);
  }
  return { 'all.yaml': `${docs.join('\n---\n')}\n` };
};


describe('mass-deletion brake', () => {
  it('a plan deleting all manifests is braked (exit 1, nothing deleted, list printed); --max-deletions all lets it through', async () => {
    const db = join(work, 'brake.db');
    const mdir = writeManifests(join(work, 'brake'), base({ volumes: 6 }));
    expectCode(await runCli(['reconcile', mdir, '--uri', URI, '--db', db]), 0);
    const before = inventory(N.prefix);
    expect(before.volumes).toHaveLength(6);

    const empty = writeManifests(join(work, 'brake-empty'), {});
    const dry = await runCli(['reconcile', empty, '--uri', URI, '--db', db, '--allow-empty', '--dry-run', '--json']);
    expectCode(dry, 0);
    const plan = JSON.parse(dry.stdout) as { plan: { brake: { braked: boolean; deletions: string[]; max: number } } };
    expect(plan.plan.brake).toMatchObject({ braked: true, max: 5 });
    expect(plan.plan.brake.deletions).toHaveLength(8);
    const dryText = await runCli(['reconcile', empty, '--uri', URI, '--db', db, '--allow-empty', '--dry-run']);
    expect(dryText.stdout).toContain('! braked: this plan deletes 8 resources');

    const braked = await runCli(['reconcile', empty, '--uri', URI, '--db', db, '--allow-empty', '--allow-data-loss']);
    expectCode(braked, 1);
    expect(braked.stderr).toContain('refused by the mass-deletion brake; nothing was applied');
    for (const k of [`StoragePool/${P}-pool`, `Network/${P}-net`, ...Array.from({ length: 6 }, (_, i) => `Volume/${P}-v${i}`)]) {
      expect(braked.stdout).toContain(`    - ${k}`);
      expect(braked.stderr).toContain(`    - ${k}`);
    }
    expect(inventory(N.prefix)).toEqual(before);

    // A limit that is too low is braked too; one that is high enough, or all, lets it through.
    expectCode(await runCli(['reconcile', empty, '--uri', URI, '--db', db, '--allow-empty', '--allow-data-loss', '--max-deletions', '7']), 1);
    expectCode(await runCli(['reconcile', empty, '--uri', URI, '--db', db, '--allow-empty', '--allow-data-loss', '--max-deletions', 'x']), 2);
    expectCode(await runCli(['reconcile', empty, '--uri', URI, '--db', db, '--allow-empty', '--allow-data-loss', '--max-deletions', 'all']), 0);
    const after = inventory(N.prefix);
    expect([...after.pools, ...after.networks, ...after.volumes]).toEqual([]);
  });
});

describe('policy', () => {
  const policyFile = (): string => {
    const f = join(work, 'policy.yaml');
    mkdirSync(join(work, 'images'), { recursive: true });
    writeFileSync(f, `apiVersion: virtform.dev/v1
kind: Policy
allowedRoots:
  poolPaths: [/var/lib/virtform-test]
  imageSources: [${work}/images]
limits:
  vm: {vcpus: 4}
`);
    return f;
  };
  const volume = (source: string): string => `---
apiVersion: virtform.dev/v1
kind: Volume
metadata: {name: ${P}-img}
spec: {pool: ${P}-pool, capacity: 64MiB, format: raw, source: ${source}}
`;

  async function refused(name: string, files: Record<string, string>, expectText: RegExp): Promise<void> {
    const policy = policyFile();
    const mdir = writeManifests(join(work, name), files);
    const db = join(work, `${name}.db`);
    const v = await runCli(['validate', mdir, '--policy', policy]);
    expectCode(v, 2);
    expect(v.stderr).toMatch(expectText);
    const r = await runCli(['reconcile', mdir, '--uri', URI, '--db', db, '--policy', policy]);
    expectCode(r, 2);
    expect(r.stderr).toMatch(expectText);
    expect(r.stderr).toContain('nothing was changed');
    expect(existsSync(db)).toBe(false);
    const inv = inventory(N.prefix);
    expect([...inv.pools, ...inv.networks, ...inv.volumes]).toEqual([]);
  }

  it('a pool in /etc is exit 2 for validate and reconcile, with file:line:col and field, and changes nothing', async () => {
    const files = base();
    files['all.yaml'] = files['all.yaml']!.replace(POOL_DIR, `/etc/${P}-pool`);
    await refused('pol-etc', files,
      /all\.yaml:4:\d+: StoragePool\/vftest-controls-pool: spec\.path: pool path "\/etc\/vftest-controls-pool" is outside the allowed roots: allowedRoots\.poolPaths allows \/var\/lib\/virtform-test/);
    expect(existsSync(`/etc/${P}-pool`)).toBe(false);
  });

  it('a volume source /etc/shadow is exit 2 and the file is never read', async () => {
    const files = base();
    files['all.yaml'] += volume('/etc/shadow');
    await refused('pol-shadow', files, /Volume\/vftest-controls-img: spec\.source: image source "\/etc\/shadow" is outside the allowed roots/);
  });

  it('a symlink under the allowed root pointing outside it is exit 2 (real path checked)', async () => {
    policyFile();
    const link = join(work, 'images', 'innocent.img');
    rmSync(link, { force: true });
    symlinkSync('/etc/passwd', link);
    const files = base();
    files['all.yaml'] += volume(link);
    await refused('pol-link', files, /spec\.source: image source ".*innocent\.img" \(resolves to "\/etc\/passwd"\) is outside the allowed roots/);
  });

  it('a broken policy file is exit 2 naming it; a manifest inside the policy is valid', async () => {
    const bad = join(work, 'bad-policy.yaml');
    writeFileSync(bad, 'apiVersion: virtform.dev/v1\nkind: Policy\nlimits: {vm: {cpus: 2}}\n');
    const mdir = writeManifests(join(work, 'pol-ok'), base());
    const r = await runCli(['validate', mdir, '--policy', bad]);
    expectCode(r, 2);
    expect(r.stderr).toContain(`${bad}:3:15: Policy: limits.vm.cpus: unknown field "cpus"`);
    expectCode(await runCli(['reconcile', mdir, '--uri', URI, '--db', join(work, 'x.db'), '--policy', bad, '--dry-run']), 2);
    expectCode(await runCli(['validate', mdir, '--policy', join(work, 'missing.yaml')]), 2);
    const ok = await runCli(['validate', mdir, '--policy', policyFile()]);
    expectCode(ok, 0);
    expect(ok.stdout).toContain('(policy ');
  });
});

describe('metadata.reconcile: disabled and conditions', () => {
  const db = (): string => join(work, 'vm.db');
  const mdir = (): string => join(work, 'vm');
  type Row = { kind: string; name: string; status: string; conditions: { type: string; status: string; reason: string; lastTransitionTime: string }[] };
  async function vmRow(): Promise<Row> {
    const r = await runCli(['status', mdir(), '--uri', URI, '--db', db(), '--json']);
    expectCode(r, 0);
    return (JSON.parse(r.stdout) as { resources: Row[] }).resources.find((x) => x.kind === 'VirtualMachine' && x.name === VM)!;
  }
  const cond = (row: Row, type: string) => row.conditions.find((c) => c.type === type)!;

  it('conditions: Ready → Drifted after virsh destroy → Ready after reconcile; lastTransitionTime changes only on transitions', async () => {
    writeManifests(mdir(), base({ vm: true }));
    expectCode(await runCli(['reconcile', mdir(), '--uri', URI, '--db', db()]), 0);
    const r0 = await vmRow();
    expect(cond(r0, 'Ready')).toMatchObject({ status: 'True', reason: 'Converged' });
    expect(cond(r0, 'Drifted').status).toBe('False');
    const r1 = await vmRow();
    expect(cond(r1, 'Ready').lastTransitionTime).toBe(cond(r0, 'Ready').lastTransitionTime);

    virsh('destroy', VM);
    const r2 = await vmRow();
    expect(r2.status).toBe('drifted');
    expect(cond(r2, 'Ready')).toMatchObject({ status: 'False', reason: 'Drifted' });
    expect(cond(r2, 'Drifted')).toMatchObject({ status: 'True' });
    expect(cond(r2, 'Ready').lastTransitionTime > cond(r0, 'Ready').lastTransitionTime).toBe(true);
    expect(cond(r2, 'Suspended').lastTransitionTime).toBe(cond(r0, 'Suspended').lastTransitionTime);
    const r3 = await vmRow();
    expect(cond(r3, 'Drifted').lastTransitionTime).toBe(cond(r2, 'Drifted').lastTransitionTime);
    const table = await runCli(['status', mdir(), '--uri', URI, '--db', db()]);
    expect(table.stdout).toContain('CONDITIONS');
    expect(table.stdout).toMatch(new RegExp(`VirtualMachine/${VM} .*Drifted`));

    expectCode(await runCli(['reconcile', mdir(), '--uri', URI, '--db', db()]), 0);
    const r4 = await vmRow();
    expect(cond(r4, 'Ready')).toMatchObject({ status: 'True', reason: 'Converged' });
    expect(cond(r4, 'Drifted').status).toBe('False');
    expect(cond(r4, 'Ready').lastTransitionTime > cond(r2, 'Ready').lastTransitionTime).toBe(true);
  });

  it('a VM with metadata.reconcile: disabled is left alone while destroyed outside; shown as suspended; enabled again it is started', async () => {
    writeManifests(mdir(), base({ vm: true, vmDisabled: true }));
    expectCode(await runCli(['reconcile', mdir(), '--uri', URI, '--db', db()]), 0); // records the mark
    virsh('destroy', VM);
    const r = await runCli(['reconcile', mdir(), '--uri', URI, '--db', db()]);
    expectCode(r, 0);
    expect(r.stdout).toContain(`suspended: VirtualMachine/${VM} (metadata.reconcile: disabled): not changed, not pruned`);
    expect(domstate(VM)).toBe('shut off');
    const row = await vmRow();
    expect(row.status).toBe('suspended');
    expect(cond(row, 'Suspended')).toMatchObject({ status: 'True', reason: 'ManifestDisabled' });

    writeManifests(mdir(), base({ vm: true }));
    expectCode(await runCli(['reconcile', mdir(), '--uri', URI, '--db', db()]), 0);
    expect(domstate(VM)).toBe('running');
  });

  it('removing the manifest of a disabled VM releases it: the domain is kept, the record dropped', async () => {
    writeManifests(mdir(), base({ vm: true, vmDisabled: true }));
    expectCode(await runCli(['reconcile', mdir(), '--uri', URI, '--db', db()]), 0);
    writeManifests(mdir(), base());
    const r = await runCli(['reconcile', mdir(), '--uri', URI, '--db', db()]);
    expectCode(r, 0);
    expect(r.stdout).toContain(`VirtualMachine/${VM} will be released (its manifest was removed while metadata.reconcile: disabled)`);
    expect(domstate(VM)).toBe('running');
    const st = JSON.parse((await runCli(['status', '--uri', URI, '--db', db(), '--json'])).stdout) as { resources: Row[] };
    expect(st.resources.some((x) => x.name === VM)).toBe(false);
    virsh('destroy', VM);
    virsh('undefine', VM);
    writeManifests(mdir(), {});
    expectCode(await runCli(['reconcile', mdir(), '--uri', URI, '--db', db(), '--allow-empty', '--allow-data-loss']), 0);
  });
});

describe('virtform suspend / resume', () => {
  let w: Watcher | undefined;
  const mdir = (): string => join(work, 'watch');
  const db = (): string => join(work, 'watch.db');

  function startWatch(): void {
    w = spawnWatch([mdir(), '--uri', URI, '--db', db(), '--no-listen', '--debounce', '100', '--retry-delay', '100']);
  }
  async function stopWatch(): Promise<void> {
    if (!w || w.exitCode !== undefined) return;
    expect(await w.stop('SIGTERM')).toBe(0);
  }
  const runs = (outcome: string): number => w!.count('reconcile finished', (l) => l.outcome === outcome);

  afterEach(async (ctx) => {
    if (ctx.task.result?.state === 'fail') process.stderr.write(`--- watcher log ---\n${w?.tail(30)}\n`);
  });
  afterAll(async () => {
    if (w && w.exitCode === undefined) w.child.kill('SIGKILL');
    await runCli(['resume', '--db', db()]);
    writeManifests(mdir(), {});
    await runCli(['reconcile', mdir(), '--uri', URI, '--db', db(), '--allow-empty', '--allow-data-loss', '--max-deletions', 'all']);
  });

  it('pauses a running watcher\'s applies while observing goes on, survives a watcher restart, resume continues; reconcile refuses meanwhile', async () => {
    writeManifests(mdir(), base({ vm: true }));
    startWatch();
    await waitFor(() => domstate(VM) === 'running', 'the VM to run', 60_000);

    const s = await runCli(['suspend', '--db', db(), '--reason', 'maintenance window']);
    expectCode(s, 0);
    expect(s.stdout).toMatch(/Suspended: state DB .* is suspended since .*, by .*@.* \(pid \d+\) \(maintenance window\)/);
    await waitFor(() => w!.count('suspended: applies paused, observing goes on') > 0, 'the watcher to see the suspension', 10_000);

    virsh('destroy', VM);
    // The lifecycle event makes a run: it observes and plans the start, and applies nothing.
    await waitFor(() => runs('suspended') >= 2, 'a suspended run after the destroy', 20_000);
    const last = w!.logs.filter((l) => l.msg === 'reconcile finished' && l.outcome === 'suspended').at(-1)!;
    expect((last.plan as { change: number }).change).toBeGreaterThanOrEqual(1);
    await sleep(1500);
    expect(domstate(VM)).toBe('shut off');

    // status says who suspended it and since when
    const st = await runCli(['status', '--uri', URI, '--db', db()]);
    expect(st.stdout).toMatch(/Applies paused: state DB .* is suspended since .*, by .*\(maintenance window\)/);
    const js = JSON.parse((await runCli(['status', '--uri', URI, '--db', db(), '--json'])).stdout) as {
      suspended: { by: string } | null; resources: { name: string; conditions: { type: string; status: string; reason: string }[] }[];
    };
    expect(js.suspended?.by).toMatch(/@/);
    expect(js.resources.find((r) => r.name === VM)!.conditions.find((c) => c.type === 'Suspended')).toMatchObject({ status: 'True', reason: 'DatabaseSuspended' });

    // reconcile refuses while suspended (exit 1), even though the watcher holds the lock it would fail on anyway:
    // so stop the watcher first, and check reconcile, then the watcher's restart.
    await stopWatch();
    const refused = await runCli(['reconcile', mdir(), '--uri', URI, '--db', db()]);
    expectCode(refused, 1);
    expect(refused.stderr).toContain('is suspended since');
    expect(refused.stderr).toContain('nothing was applied');
    expect(domstate(VM)).toBe('shut off');

    startWatch();
    await waitFor(() => runs('suspended') >= 1, 'the restarted watcher\'s first run (suspended)', 60_000);
    await sleep(1000);
    expect(domstate(VM)).toBe('shut off');

    const r = await runCli(['resume', '--db', db()]);
    expectCode(r, 0);
    expect(r.stdout).toContain('Resumed:');
    await waitFor(() => domstate(VM) === 'running', 'the VM started after resume', 30_000);
    expect(w!.count('resumed: applies continue')).toBeGreaterThan(0);
    await stopWatch();

    // --ignore-suspend applies once on a suspended DB
    expectCode(await runCli(['suspend', '--db', db()]), 0);
    virsh('destroy', VM);
    expectCode(await runCli(['reconcile', mdir(), '--uri', URI, '--db', db(), '--ignore-suspend']), 0);
    expect(domstate(VM)).toBe('running');
    expectCode(await runCli(['resume', '--db', db()]), 0);
  });
});
