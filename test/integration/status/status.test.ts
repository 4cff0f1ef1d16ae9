/**
 * `virtform status` against the real libvirtd on qemu:///system (issue #12): after `virsh destroy`
 * the STATUS column says drifted (observed stopped, desired running), not the last apply's
 * "running"; a reconcile brings it back to converged. Objects are vftest-status-*; the network is
 * isolated and the VM boots no OS.
 */
import { describe, expect, it } from 'vitest';
import { runCli, virsh } from '../../support/real-host.js';
import { lab, useSuite } from '../../support/suite.js';

const N = useSuite('status', {
  manifestDir: 'm',
  setup: async () => {
    await N.reconcileOk(files);
  },
  setupTimeoutMs: 120_000,
});
const P = N.base;
const VM = `${P}-vm`;

const files = lab(N);

interface Row { kind: string; name: string; desired: string; observed: string; status: string; recordedStatus: string }
async function statusJson(): Promise<{ code: number | null; rows: Row[] }> {
  const r = await runCli(['status', N.mdir, '--db', N.db, '--json']);
  return { code: r.code, rows: (JSON.parse(r.stdout) as { resources: Row[] }).resources };
}

describe('virtform status on qemu:///system', () => {
  it('after virsh destroy: observed stopped and STATUS drifted; a reconcile converges it again', async () => {
    const before = await statusJson();
    expect(before.code).toBe(0);
    expect(before.rows.map((r) => r.status)).toEqual(['converged', 'converged', 'converged', 'converged']);

    virsh('destroy', VM);
    const after = await statusJson();
    expect(after.code).toBe(0);
    expect(after.rows.find((r) => r.name === VM)).toMatchObject({ desired: 'running', observed: 'stopped', status: 'drifted', recordedStatus: 'running' });
    const table = await runCli(['status', N.mdir, '--db', N.db]);
    expect(table.code).toBe(0);
    const line = table.stdout.split('\n').find((l) => l.startsWith(`VirtualMachine/${VM} `))!;
    expect(line.split(/\s{2,}/).slice(0, 4)).toEqual([`VirtualMachine/${VM}`, 'running', 'stopped', 'drifted']);

    expect((await runCli(['reconcile', N.mdir, '--db', N.db, '--shutdown-timeout', '0'])).code).toBe(0);
    expect((await statusJson()).rows.find((r) => r.name === VM)).toMatchObject({ observed: 'running', status: 'converged' });
  });
});
