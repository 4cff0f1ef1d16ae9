/**
 * Ordering across VMs, the domain type as desired state, and a running VM on a deleted file,
 * against the real libvirtd (TCG domains without an OS; issue 18, findings 6, 7 and 8):
 * - a disk moved from running VM A to running VM B (restartPolicy: OnChange) never leaves B down:
 *   while A keeps it open B is not restarted (its restart stays pending), and once A restarts
 *   without it B's start waits for A's stop (a plan edge);
 * - a renamed VM that keeps its volumes starts after the old domain is deleted (a plan edge);
 * - a VM made with --domain-type qemu stays qemu on later runs without the flag; a declared
 *   spec.domainType that differs is a [restart] change even with another --domain-type;
 * - a running VM's disk file deleted outside virtform is not silently recreated: the plan holds
 *   the recreation for --allow-data-loss and says the VM needs a restart (status: RestartRequired).
 */
import { describe, expect, it } from 'vitest';
import { rmSync } from 'node:fs';
import { parseDomainXml } from '../../../src/libvirt/xml/index.js';
import { writeManifests } from '../../support/manifests.js';
import { runCli, virsh } from '../../support/real-host.js';
import { useSuite } from '../../support/suite.js';

const N = useSuite('vmo');
const P = N.base;
const POOL_DIR = `/var/lib/virtform-test/${P}-pool`;

interface Vm { name: string; disks: string[]; policy?: 'Never' | 'OnChange'; domainType?: string; description?: string; state?: string }
function files(vms: Vm[], volumes = ['ra', 'rb', 'x', 'e']): Record<string, string> {
  const vols = volumes.map((v) => `---
apiVersion: virtform.dev/v1
kind: Volume
metadata: {name: ${P}-${v}}
spec: {pool: ${P}-pool, capacity: 16MiB, format: raw}
`).join('');
  return {
    'base.yaml': `apiVersion: virtform.dev/v1
kind: StoragePool
metadata: {name: ${P}-pool}
spec: {path: ${POOL_DIR}}
${vols}`,
    'vms.yaml': vms.map((v) => `---
apiVersion: virtform.dev/v1
kind: VirtualMachine
metadata: {name: ${P}-${v.name}}
spec:
  vcpus: 1
  memory: 32MiB
  state: ${v.state ?? 'running'}
  restartPolicy: ${v.policy ?? 'Never'}
${v.domainType ? `  domainType: ${v.domainType}\n` : ''}${v.description ? `  description: ${v.description}\n` : ''}  disks: [${v.disks.map((d) => `{volume: ${P}-${d}}`).join(', ')}]
`).join(''),
  };
}

const cli = (args: string[]) => runCli([...args, '--db', N.db, ...(args[0] === 'reconcile' ? ['--shutdown-timeout', '0'] : [])]);
async function apply(vms: Vm[], flags: string[] = ['--domain-type', 'qemu']): Promise<string> {
  writeManifests(N.mdir, files(vms));
  const r = await cli(['reconcile', N.mdir, ...flags]);
  expect(r.code, `${r.stdout}\n${r.stderr}`).toBe(0);
  return r.stdout + r.stderr;
}
async function dryRun(vms: Vm[], flags: string[] = []): Promise<{ code: number | null; out: string }> {
  writeManifests(N.mdir, files(vms));
  const r = await cli(['reconcile', N.mdir, '--dry-run', '--detailed-exitcode', ...flags]);
  return { code: r.code, out: r.stdout + r.stderr };
}
const state = (vm: string): string => virsh('domstate', `${P}-${vm}`).trim();
const liveDisks = (vm: string): string[] => parseDomainXml(virsh('dumpxml', `${P}-${vm}`)).disks.map((d) => d.path);
const typeOf = (vm: string): string => parseDomainXml(virsh('dumpxml', '--inactive', `${P}-${vm}`)).type;
const path = (v: string): string => `${POOL_DIR}/${P}-${v}.img`;

describe('a disk changes hands only after its holder let go of it', () => {
  it('moved from running A (restartPolicy: Never) to running B (OnChange): B is not stopped; it restarts with the disk once A restarts without it', async () => {
    await apply([{ name: 'a', disks: ['ra', 'x'] }, { name: 'b', disks: ['rb'], policy: 'OnChange' }]);
    expect(liveDisks('a')).toContain(path('x'));

    const out = await apply([{ name: 'a', disks: ['ra'] }, { name: 'b', disks: ['rb', 'x'], policy: 'OnChange' }]);
    // Before: B was stopped, its start failed on A's image lock, and it was left shut off.
    expect(state('b')).toBe('running');
    expect(state('a')).toBe('running');
    expect(out).toMatch(/not restarted now: .*vftest-vmo-x\.img is in use by running VM vftest-vmo-a/);
    expect(liveDisks('a')).toContain(path('x'));

    // A keeps it: nothing virtform can do, and no "drift" either.
    const again = await dryRun([{ name: 'a', disks: ['ra'] }, { name: 'b', disks: ['rb', 'x'], policy: 'OnChange' }]);
    expect(again.out).not.toMatch(/drift/);
    expect(again.out).toMatch(/VirtualMachine\/vftest-vmo-b: restart required .*waits until .*vftest-vmo-x\.img is released by VM vftest-vmo-a/);

    // A restarts without the disk (OnChange): B's start waits for A's stop, in the plan.
    const both = [{ name: 'a', disks: ['ra'], policy: 'OnChange' as const }, { name: 'b', disks: ['rb', 'x'], policy: 'OnChange' as const }];
    writeManifests(N.mdir, files(both));
    const plan = JSON.parse((await cli(['reconcile', N.mdir, '--dry-run', '--json'])).stdout) as { plan: { steps: { id: number; resource: string; op: string; deps: number[] }[] } };
    const steps = plan.plan.steps;
    const stopA = steps.find((s) => s.resource === `VirtualMachine/${P}-a` && s.op === 'vm.stop');
    const startB = steps.find((s) => s.resource === `VirtualMachine/${P}-b` && s.op === 'vm.start');
    expect(stopA && startB, JSON.stringify(steps)).toBeTruthy();
    expect(startB!.deps).toContain(stopA!.id);
    await apply(both);
    expect(state('a')).toBe('running');
    expect(state('b')).toBe('running');
    expect(liveDisks('b')).toContain(path('x'));
    expect(liveDisks('a')).not.toContain(path('x'));
    expect((await dryRun(both)).code).toBe(0);
  });

  it('a renamed VM that keeps its volumes starts after the old domain is deleted', async () => {
    const renamed = [{ name: 'a', disks: ['ra'], policy: 'OnChange' as const }, { name: 'c', disks: ['rb', 'x'] }];
    writeManifests(N.mdir, files(renamed));
    const r = await cli(['reconcile', N.mdir, '--dry-run', '--json']);
    const steps = (JSON.parse(r.stdout) as { plan: { steps: { id: number; resource: string; op: string; deps: number[] }[] } }).plan.steps;
    const del = steps.find((s) => s.resource === `VirtualMachine/${P}-b` && s.op === 'vm.delete');
    const start = steps.find((s) => s.resource === `VirtualMachine/${P}-c` && s.op === 'vm.start');
    expect(del && start, JSON.stringify(steps)).toBeTruthy();
    // Before: no edge, the new domain's start raced the old one's delete (QEMU's image lock).
    expect(start!.deps).toContain(del!.id);
    await apply(renamed);
    expect(state('c')).toBe('running');
    expect(liveDisks('c')).toEqual([path('rb'), path('x')]);
  });
});

describe('spec.domainType', () => {
  const d = (extra: Partial<Vm> = {}): Vm[] => [
    { name: 'a', disks: ['ra'], policy: 'OnChange' }, { name: 'c', disks: ['rb', 'x'] }, { name: 'd', disks: [], state: 'stopped', ...extra },
  ];
  it('an undeclared type is kept: a run without --domain-type does not flip a qemu VM to kvm', async () => {
    await apply(d());
    expect(typeOf('d')).toBe('qemu');
    // A spec change, applied without the flag (auto: kvm is offered on this host).
    await apply(d({ description: 'changed' }), []);
    expect(typeOf('d')).toBe('qemu');
    expect((await dryRun(d({ description: 'changed' }), ['--domain-type', 'kvm'])).code).toBe(0);
  });

  it('a declared type that differs is a change, whatever --domain-type says; [restart] on a running VM', async () => {
    const dry = await dryRun(d({ description: 'changed', domainType: 'kvm' }), ['--domain-type', 'qemu']);
    expect(dry.code, dry.out).toBe(3);
    expect(dry.out).toMatch(/spec\.domainType.*"?qemu"?.*→.*"?kvm"?/);
    await apply(d({ description: 'changed', domainType: 'kvm' }));
    expect(typeOf('d')).toBe('kvm');
    expect((await dryRun(d({ description: 'changed', domainType: 'kvm' }), ['--domain-type', 'qemu'])).code).toBe(0);
    // On a running VM (restartPolicy: Never): shown as [restart].
    const running = [{ name: 'a', disks: ['ra'], policy: 'OnChange' as const }, { name: 'c', disks: ['rb', 'x'], domainType: 'kvm' }, d({ description: 'changed', domainType: 'kvm' })[2]!];
    const r = await dryRun(running);
    expect(r.code, r.out).toBe(3);
    expect(r.out).toMatch(/spec\.domainType.*\[restart\]/);
  });
});

describe('a running VM on a deleted file', () => {
  const vms: Vm[] = [{ name: 'a', disks: ['ra'], policy: 'OnChange' }, { name: 'c', disks: ['rb', 'x'] }, { name: 'e', disks: ['e'] }];
  it('is not recreated empty and called converged: held for --allow-data-loss, and the VM needs a restart', async () => {
    await apply(vms);
    expect(state('e')).toBe('running');
    rmSync(path('e'));
    const dry = await dryRun(vms);
    expect(dry.code, dry.out).toBe(3);
    expect(dry.out).toMatch(/guest's writes since the deletion live only in the deleted file and will be lost at its next stop/);
    expect(dry.out).toMatch(/held/i);
    writeManifests(N.mdir, files(vms));
    const held = await cli(['reconcile', N.mdir, '--domain-type', 'qemu']);
    // Held changes: exit 1, nothing else to apply.
    expect(held.code, held.stdout + held.stderr).toBe(1);
    expect(held.stdout + held.stderr).toMatch(/held/i);
    // Not recreated without consent.
    expect(virsh('vol-list', `${P}-pool`)).not.toContain(`${P}-e.img`);
    const st = await cli(['status', N.mdir, '--json']);
    const row = (JSON.parse(st.stdout) as { resources: { kind: string; name: string; conditions: { type: string; status: string; message: string }[] }[] })
      .resources.find((x) => x.kind === 'VirtualMachine' && x.name === `${P}-e`);
    const rr = row?.conditions.find((c) => c.type === 'RestartRequired');
    expect(rr?.status, JSON.stringify(row)).toBe('True');
    expect(rr?.message).toMatch(/deleted outside virtform while the VM runs/);
    // With consent: made again (the VM keeps running on the deleted file until its next start).
    writeManifests(N.mdir, files(vms));
    const ok = await cli(['reconcile', N.mdir, '--allow-data-loss', '--domain-type', 'qemu']);
    expect(ok.code, ok.stdout + ok.stderr).toBe(0);
    expect(virsh('vol-list', `${P}-pool`)).toContain(`${P}-e.img`);
  });
});
