/**
 * `virtform restart` (issue 24) on the real libvirtd (TCG domains without an OS):
 *
 *  - a pending [restart] change (spec.vcpus, restartPolicy Never) is applied by the restart and
 *    the restart-required mark clears; `--all-pending` restarts exactly the VMs with a mark;
 *  - refusals change nothing: an unknown VM, a domain virtform does not manage, a VM declared
 *    stopped, one with metadata.reconcile: disabled (exit 2, the reason named); a suspended state
 *    DB and a writer lease held by another process (exit 1, the holder named);
 *  - crash-safe: killed between the stop and the start (the journal boundary after the stop), the
 *    VM is stopped; the next reconcile starts it again (declared running) and the mark is gone.
 */
import { describe, expect, it } from 'vitest';
import { join } from 'node:path';
import { writeFileSync } from 'node:fs';
import { useSuite } from '../../support/suite.js';
import { spawnWatch } from '../../support/cli.js';
import { virsh } from '../../support/virsh.js';
import { openStateStore } from '../../../src/state/index.js';

const S = useSuite('vmrestart', { manifestDir: 'm' });
const P = S.base;
const POOL = S.poolPath();
const A = `${P}-a`;
const B = `${P}-b`;
const STOPPED = `${P}-stopped`;
const OFF = `${P}-off`;

function manifests(vcpus: { a: number; b: number }, o: { disabled?: boolean } = {}): Record<string, string> {
  const vm = (name: string, v: number, extra = '', meta = '') => `---
apiVersion: virtform.dev/v1
kind: VirtualMachine
metadata: {name: ${name}${meta}}
spec: {vcpus: ${v}, maxVcpus: ${v}, memory: 32MiB, domainType: qemu, disks: [{volume: ${name}-root}]${extra}}
`;
  return {
    'base.yaml': `apiVersion: virtform.dev/v1
kind: StoragePool
metadata: {name: ${P}-pool}
spec: {path: ${POOL}}
${[A, B, STOPPED, OFF].map((v) => `---
apiVersion: virtform.dev/v1
kind: Volume
metadata: {name: ${v}-root}
spec: {pool: ${P}-pool, capacity: 8MiB, format: raw}
`).join('')}`,
    'vms.yaml': vm(A, vcpus.a) + vm(B, vcpus.b) + vm(STOPPED, 1, ', state: stopped') + vm(OFF, 1, '', o.disabled ? ', reconcile: disabled' : ''),
  };
}

const vcpusLive = (name: string): number => Number(/CPU\(s\):\s+(\d+)/.exec(virsh('dominfo', name))![1]);
const domId = (name: string): string => virsh('domid', name).trim();
interface Row { name: string; restartRequired: { fields: string[] } | null }
async function marks(): Promise<Record<string, string[] | null>> {
  const st = await S.cli(['status', S.mdir, '--json']);
  expect(st.code, st.stderr).toBe(0);
  return Object.fromEntries((JSON.parse(st.stdout) as { resources: Row[] }).resources
    .filter((r) => r.name === A || r.name === B).map((r) => [r.name, r.restartRequired?.fields ?? null]));
}

describe.sequential('virtform restart', () => {
  it('applies a pending [restart] change and clears the mark; --json', async () => {
    await S.reconcileOk(manifests({ a: 1, b: 1 }));
    await S.reconcileOk(manifests({ a: 2, b: 2 }));
    expect(await marks()).toEqual({ [A]: ['spec.vcpus', 'spec.maxVcpus'], [B]: ['spec.vcpus', 'spec.maxVcpus'] });
    expect(vcpusLive(A)).toBe(1);
    const id = domId(A);
    const r = await S.cli(['restart', A, '--shutdown-timeout', '1', '--json']);
    expect(r.code, r.stdout + r.stderr).toBe(0);
    const doc = JSON.parse(r.stdout) as { outcome: string; vms: { name: string; restarted: boolean; pending: string | null }[]; steps: { op: string }[] };
    expect(doc.outcome).toBe('succeeded');
    expect(doc.vms).toMatchObject([{ name: A, restarted: true }]);
    expect(doc.vms[0]!.pending).toMatch(/restart required for spec\.vcpus \(running with 1, defined 2\)/);
    expect(doc.steps.map((s) => s.op)).toEqual(['vm.stop', 'vm.start']);
    expect(domId(A)).not.toBe(id);
    expect(vcpusLive(A)).toBe(2);
    expect(await marks()).toEqual({ [A]: null, [B]: ['spec.vcpus', 'spec.maxVcpus'] });
    expect((await S.dryRun()).code).toBe(0);
  }, 120_000);

  it('--all-pending restarts the VMs with a mark, and only those', async () => {
    const idA = domId(A);
    const r = await S.cli(['restart', '--all-pending', '--force']);
    expect(r.code, r.stdout + r.stderr).toBe(0);
    expect(r.stdout).toContain(`Restarted ${B}`);
    expect(r.stdout).not.toContain(A + ' ');
    expect(domId(A)).toBe(idA);
    expect(vcpusLive(B)).toBe(2);
    expect(await marks()).toEqual({ [A]: null, [B]: null });
    const none = await S.cli(['restart', '--all-pending']);
    expect(none.code).toBe(0);
    expect(none.stdout).toContain('No VM has a restart pending.');
  }, 120_000);

  it('refusals change nothing: unknown, unmanaged, declared stopped, reconcile disabled (exit 2); no VM named (exit 2)', async () => {
    const ids = [domId(A), domId(B)];
    const xml = join(S.work, 'foreign.xml');
    writeFileSync(xml, `<domain type='qemu'><name>${P}-foreign</name><memory unit='MiB'>32</memory><os><type arch='x86_64'>hvm</type></os></domain>`);
    virsh('define', xml);
    await S.reconcileOk(manifests({ a: 2, b: 2 }, { disabled: true }));
    const cases: [string[], RegExp][] = [
      [[`${P}-nosuch`], /cannot restart vftest-vmrestart-nosuch: no such VM/],
      [[`${P}-foreign`], /cannot restart vftest-vmrestart-foreign: not managed by virtform/],
      [[STOPPED], /cannot restart vftest-vmrestart-stopped: it is declared stopped/],
      [[OFF], /cannot restart vftest-vmrestart-off: its manifest says metadata\.reconcile: disabled/],
      [[A, `${P}-nosuch`], /nothing was restarted/],
      [[], /name the VMs to restart, or --all-pending/],
    ];
    for (const [args, msg] of cases) {
      const r = await S.cli(['restart', ...args]);
      expect(r.code, `${args.join(' ')}: ${r.stderr}`).toBe(2);
      expect(r.stderr).toMatch(msg);
    }
    expect([domId(A), domId(B)]).toEqual(ids);
    expect(virsh('domstate', STOPPED).trim()).toBe('shut off');
  }, 120_000);

  it('a suspended state DB and a held writer lease: exit 1, nothing restarted', async () => {
    const ids = [domId(A)];
    expect((await S.cli(['suspend', '--reason', 'maintenance'])).code).toBe(0);
    const s = await S.cli(['restart', A]);
    expect(s.code).toBe(1);
    expect(s.stderr).toMatch(/is suspended since .*maintenance.*nothing was restarted/);
    expect((await S.cli(['resume'])).code).toBe(0);
    const store = await openStateStore(S.db);
    const held = await store.acquireLease({ command: 'virtform watch (test holder)' });
    try {
      const r = await S.cli(['restart', A, '--no-queue']);
      expect(r.code).toBe(1);
      expect(r.stderr).toMatch(/virtform watch \(test holder\)/);
      expect(r.stderr).toMatch(/not queued \(--no-queue\): nothing was restarted/);
    } finally {
      await held.release();
      await store.close();
    }
    expect([domId(A)]).toEqual(ids);
  }, 120_000);

  it('while a watcher holds the writer lease: queued, carried out by the watcher, its outcome printed; --no-queue exits 1 naming it', async () => {
    await S.reconcileOk(manifests({ a: 1, b: 2 }, { disabled: true }));
    expect(await marks()).toMatchObject({ [A]: ['spec.vcpus', 'spec.maxVcpus'] });
    const id = domId(A);
    const w = spawnWatch([S.mdir, '--db', S.db, '--no-listen', '--debounce', '100', '--retry-delay', '100', '--shutdown-timeout', '0']);
    try {
      await w.waitForLog('reconcile finished', () => true, 60_000);
      const refused = await S.cli(['restart', A, '--no-queue']);
      expect(refused.code).toBe(1);
      expect(refused.stderr).toContain(`is locked by pid ${w.child.pid}`);
      expect(domId(A)).toBe(id);
      const r = await S.cli(['restart', A, '--force', '--json'], {}, 120_000);
      expect(r.code, r.stdout + r.stderr).toBe(0);
      expect(r.stderr).toMatch(/queued as request \d+/);
      const doc = JSON.parse(r.stdout) as { request: { status: string }; outcome: string; vms: { name: string; restarted: boolean }[] };
      expect(doc.request.status).toBe('succeeded');
      expect(doc.outcome).toBe('succeeded');
      expect(doc.vms).toMatchObject([{ name: A, restarted: true }]);
      expect(domId(A)).not.toBe(id);
      expect(vcpusLive(A)).toBe(1);
    } finally {
      await w.stop('SIGTERM');
    }
    expect(await marks()).toMatchObject({ [A]: null });
    // Back to a pending mark for the crash test below.
    await S.reconcileOk(manifests({ a: 2, b: 2 }, { disabled: true }));
  }, 180_000);

  it('killed between the stop and the start: the VM is stopped; the next reconcile starts it, the mark is gone', async () => {
    expect(await marks()).toMatchObject({ [A]: ['spec.vcpus', 'spec.maxVcpus'] });
    // Boundaries: vm.stop begin (1), vm.stop called (2): killed right after the domain stopped.
    const r = await S.cli(['restart', A, '--force'], { VIRTFORM_TEST_CRASH_AT: '2' });
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/crashing at boundary 2: VirtualMachine\/vftest-vmrestart-a:vm\.stop:called/);
    expect(virsh('domstate', A).trim()).toBe('shut off');
    const dry = await S.dryRun();
    expect(dry.stdout).toMatch(new RegExp(`VirtualMachine/${A}`));
    await S.reconcileOk();
    expect(virsh('domstate', A).trim()).toBe('running');
    expect(vcpusLive(A)).toBe(2);
    expect(await marks()).toMatchObject({ [A]: null });
    expect((await S.dryRun()).code).toBe(0);
  }, 120_000);
});
