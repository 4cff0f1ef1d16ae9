/**
 * `virtform watch` as a real process against the real libvirtd on qemu:///system: edits converge
 * without a command, a destroyed VM comes back, invalid edits change nothing, a libvirtd restart
 * is survived, SIGTERM exits 0 and releases the lock, /metrics parses and moves.
 * Every object is named vftest-watch-*; the network is isolated and the VM boots no OS.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { writeManifests } from '../../support/manifests.js';
import { expectReadbackMatches, mergeSnapshots, waitForReadbackMatch, type Snapshot } from '../../support/readback.js';
import { openStateStore } from '../../../src/state/index.js';
import { parsePrometheus, sampleValue, writeFilesInPlace } from '../../unit/watch/helpers.js';
import { LIBVIRTD_ARGS, signalLibvirtd } from '../../support/libvirtd.js';
import { runCli, startWatch, waitFor, type Watcher } from '../../support/cli.js';
import { suiteNames } from '../../support/names.js';
import { lab } from '../../support/suite.js';
import { dhcpHosts as netHosts, domState, tryVirsh, URI, virsh } from '../../support/virsh.js';

const N = suiteNames('watch');
const P = N.base;
const VM = `${P}-vm`;
const NET = `${P}-net`;

function manifests(opts: { hosts?: string[]; broken?: boolean } = {}): Record<string, string> {
  return lab(N, { dhcpHosts: (opts.hosts ?? ['11']).map(Number), mac: 11, memory: opts.broken ? 'plenty' : undefined }).files();
}

/** The MAC of DHCP host `h` (a decimal string, as the IP's last octet). */
const mac = (h: string): string => N.mac(Number(h));

let work: string;
let mdir: string;
let db: string;
let w: Watcher;
/** Issue #12: the watcher converges asynchronously, so the read-back oracle waits (20 s at most) for libvirt to equal the manifests. */
let snap: Snapshot | undefined;
async function converged(label: string): Promise<void> {
  snap = mergeSnapshots(snap, await waitForReadbackMatch(mdir, URI, snap, label), 'last');
}

const http = (path: string): Promise<{ status: number; body: string }> => w.http(path);
const count = (msg: string, pred?: (l: Record<string, unknown>) => boolean): number => w.count(msg, pred);
const dhcpHosts = (): string[] => netHosts(NET);

async function metrics(): Promise<ReturnType<typeof parsePrometheus>> {
  return parsePrometheus((await http('/metrics')).body);
}

beforeAll(async () => {
  N.cleanup();
  work = N.tempDir();
  mdir = join(work, 'manifests');
  db = join(work, 'state.db');
  writeManifests(mdir, manifests());
  w = await startWatch([mdir, '--uri', URI, '--db', db, '--debounce', '200', '--retry-delay', '200', '--max-attempts', '4', '--reconnect-max', '1']);
}, 120_000);

afterEach((ctx) => {
  // On failure, show what the watcher was doing.
  if (ctx.task.result?.state === 'fail') process.stderr.write(`--- last watcher log lines ---\n${w?.tail()}\n`);
});

afterAll(async () => {
  if (w && w.exitCode === undefined) w.child.kill('SIGKILL');
  if (!tryVirsh('version')) spawnSync('libvirtd', [...LIBVIRTD_ARGS]);
  N.cleanup();
  rmSync(work, { recursive: true, force: true });
}, 60_000);

describe('virtform watch on qemu:///system', () => {
  it('converged the folder initially and logs JSON lines', async () => {
    expect(w.logs.every((l) => l.msg !== 'non-json' && typeof l.ts === 'string' && typeof l.level === 'string')).toBe(true);
    expect(domState(VM)).toBe('running');
    expect(dhcpHosts()).toEqual([mac('11')]);
    const m = await metrics();
    expect(sampleValue(m, 'virtform_reconcile_runs_total', { outcome: 'succeeded' })).toBeGreaterThanOrEqual(1);
    expect(sampleValue(m, 'virtform_connected')).toBe(1);
    await converged('initial');
  });

  it('converges a manifest edit without a manual command', async () => {
    const before = parsePrometheus((await http('/metrics')).body);
    writeFilesInPlace(mdir, manifests({ hosts: ['11', '12'] }));
    await waitFor(() => dhcpHosts().includes(mac('12')), 'the new DHCP host', 20_000);
    await converged('DHCP host added');
    const after = await metrics();
    expect(sampleValue(after, 'virtform_triggers_total', { source: 'file' })).toBeGreaterThan(sampleValue(before, 'virtform_triggers_total', { source: 'file' }));
    expect(sampleValue(after, 'virtform_apply_steps_total', { op: 'network.ensure', outcome: 'succeeded' }))
      .toBeGreaterThan(sampleValue(before, 'virtform_apply_steps_total', { op: 'network.ensure', outcome: 'succeeded' }));
  });

  it('starts a VM destroyed outside virtform again within seconds', async () => {
    const drift = sampleValue(await metrics(), 'virtform_drift_corrections_total');
    virsh('destroy', VM);
    const t0 = Date.now();
    await waitFor(() => domState(VM) === 'running', 'the VM to run again', 20_000);
    const m = await metrics();
    expect(Date.now() - t0).toBeLessThan(20_000);
    expect(sampleValue(m, 'virtform_triggers_total', { source: 'event' })).toBeGreaterThanOrEqual(1);
    await waitFor(async () => sampleValue(await metrics(), 'virtform_drift_corrections_total') > drift, 'drift counted');
    await converged('destroyed VM started again');
  });

  it('an invalid edit changes nothing; a later fix converges', async () => {
    // The error this edit introduces (an edit in place, as an editor or `git pull` does).
    const invalidRuns = () => count('manifest error', (l) => typeof l.file === 'string' && Number(l.line) > 0 && /vm\.yaml:\d+:\d+: .*memory/.test(String(l.text)));
    const before = invalidRuns();
    const steps = count('step done');
    const files = manifests({ hosts: ['11', '12', '13'], broken: true });
    writeFilesInPlace(mdir, files);
    await waitFor(() => invalidRuns() > before, 'the manifest error log', 20_000);
    const err = w.logs.filter((l) => l.msg === 'manifest error').at(-1)!;
    expect(String(err.text)).toMatch(/vm\.yaml:\d+:\d+: .*memory/);
    const status = JSON.parse((await http('/status')).body) as { manifests: { valid: boolean; errors: string[] }; runs: { last: { outcome: string } } };
    expect(status.manifests.valid).toBe(false);
    expect(status.runs.last.outcome).toBe('invalid');
    expect(sampleValue(await metrics(), 'virtform_manifest_errors')).toBeGreaterThan(0);
    expect(dhcpHosts()).not.toContain(mac('13')); // valid parts of a broken folder are not applied
    expect(count('step done')).toBe(steps);

    writeFilesInPlace(mdir, manifests({ hosts: ['11', '12', '13'] }));
    await waitFor(() => dhcpHosts().includes(mac('13')), 'the fix to converge', 20_000);
    expect(sampleValue(await metrics(), 'virtform_manifest_errors')).toBe(0);
    await converged('fixed edit');
  });

  it('survives a libvirtd restart: readyz 503 then 200, and a later edit still converges', async () => {
    const reconnects = sampleValue(await metrics(), 'virtform_triggers_total', { source: 'reconnect' });
    signalLibvirtd('SIGKILL');
    await waitFor(async () => (await http('/readyz')).status === 503, 'readyz 503', 15_000);
    await new Promise((r) => setTimeout(r, 1500)); // a few reconnect attempts fail meanwhile
    const started = spawnSync('libvirtd', [...LIBVIRTD_ARGS]);
    expect(started.status).toBe(0);
    await waitFor(async () => (await http('/readyz')).status === 200, 'readyz 200 after the restart', 40_000);
    const m = await metrics();
    expect(sampleValue(m, 'virtform_triggers_total', { source: 'reconnect' })).toBe(reconnects + 1);
    expect(count('connection failed')).toBeGreaterThanOrEqual(1);
    writeFilesInPlace(mdir, manifests({ hosts: ['11', '12', '13', '14'] }));
    await waitFor(() => dhcpHosts().includes(mac('14')), 'an edit after the restart', 30_000);
    // events are registered again on the new connection (the VM may have died with the daemon: the
    // resync after the reconnect starts it again first)
    await waitFor(() => domState(VM) === 'running', 'the VM to run after the restart', 20_000);
    await new Promise((r) => setTimeout(r, 500));
    virsh('destroy', VM);
    await waitFor(() => domState(VM) === 'running', 'the VM to run again after the restart', 20_000);
    await converged('after the libvirtd restart');
  });

  it('/metrics parses and its libvirt call counters move', async () => {
    const a = await metrics();
    const calls = (s: typeof a): number => s.filter((x) => x.name === 'virtform_libvirt_calls_total').reduce((n, x) => n + x.value, 0);
    const runs = (s: typeof a): number => s.filter((x) => x.name === 'virtform_reconcile_runs_total').reduce((n, x) => n + x.value, 0);
    writeFilesInPlace(mdir, manifests({ hosts: ['11', '12', '13', '14', '15'] }));
    await waitFor(() => dhcpHosts().includes(mac('15')), 'the edit', 20_000);
    await waitFor(async () => runs(await metrics()) > runs(a), 'a run to be counted');
    const b = await metrics();
    expect(calls(b)).toBeGreaterThan(calls(a));
    expect(sampleValue(b, 'virtform_reconcile_duration_seconds_count')).toBeGreaterThan(sampleValue(a, 'virtform_reconcile_duration_seconds_count'));
    await waitFor(async () => sampleValue(await metrics(), 'virtform_resources', { kind: 'VirtualMachine', state: 'running' }) === 1, 'the VM gauge');
    await converged('edit counted in /metrics');
  });

  it('SIGTERM exits 0 and releases the writer lock', async () => {
    expect(await w.stop('SIGTERM')).toBe(0);
    expect(count('stopped')).toBe(1);
    const store = await openStateStore(db);
    try {
      const lock = await store.acquireLease({ command: 'integration test' });
      await lock.release();
    } finally {
      await store.close();
    }
    const r = await runCli(['reconcile', mdir, '--uri', URI, '--db', db]);
    expect(r.code, r.stderr).toBe(0);
    await expectReadbackMatches(mdir, URI, snap, 'reconcile after the watcher stopped');
  });
});
