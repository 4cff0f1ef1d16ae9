/**
 * Ordering across VMs on the FakeHost (which refuses a start on a disk another running domain has
 * open, as QEMU's image lock does): a disk changes hands only after its holder stopped (plan
 * edges), two VMs swapping disks plan without a cycle, and a VM is never stopped for a restart
 * that cannot complete. Also spec.domainType precedence.
 */
import { describe, expect, it } from 'vitest';
import { FAST_RETRY, useHarness } from '../../support/harness.js';
import { scenario } from '../../support/scenario.js';

const P = 'vftest-vmo';

interface Vm { name: string; disks: string[]; policy?: string; domainType?: string }
/** A pool with four raw volumes (x, y, ra, rb) and the VMs. */
function files(vms: Vm[]) {
  const s = scenario().pool(`${P}-pool`, { path: '/srv/pools/vmo' });
  for (const v of ['x', 'y', 'ra', 'rb']) s.volume(`${P}-${v}`, { format: 'raw' });
  for (const v of vms) {
    s.vm(`${P}-${v.name}`, {
      memory: '32MiB', restartPolicy: v.policy ?? 'Never', domainType: v.domainType, disks: v.disks.map((d) => ({ volume: `${P}-${d}` })),
    });
  }
  return s;
}

const fx = useHarness({ dirPrefix: 'vftest-vmo-', manifestDir: 'm' });
const desired = async (vms: Vm[]) => fx.desired(files(vms));
const apply = async (vms: Vm[]) => fx.reconcile(files(vms));
const running = (vm: string): boolean => fx.host.domains.get(`${P}-${vm}`)?.active === true;
const liveDisks = async (vm: string): Promise<string[]> => (await fx.host.getRunningDomain(`${P}-${vm}`))!.disks.map((d) => d.path);

describe('a disk changes hands only after its holder let go of it', () => {
  it('two running OnChange VMs swapping disks: no cycle, each start after the other stop, both running with the swapped disks', async () => {
    await apply([{ name: 'a', disks: ['ra', 'x'], policy: 'OnChange' }, { name: 'b', disks: ['rb', 'y'], policy: 'OnChange' }]);
    const swapped = [{ name: 'a', disks: ['ra', 'y'], policy: 'OnChange' }, { name: 'b', disks: ['rb', 'x'], policy: 'OnChange' }];
    const { plan } = await fx.planResult(await desired(swapped), { gracefulStop: false });
    const step = (vm: string, op: string) => plan.steps.find((s) => s.key === `VirtualMachine/${P}-${vm}` && s.op.op === op)!;
    expect(step('a', 'vm.start').deps).toContain(step('b', 'vm.stop').id);
    expect(step('b', 'vm.start').deps).toContain(step('a', 'vm.stop').id);
    const r = await apply(swapped);
    expect(r.outcome).toBe('succeeded');
    expect(running('a') && running('b')).toBe(true);
    expect(await liveDisks('a')).toContain('/srv/pools/vmo/vftest-vmo-y.img');
    expect(await liveDisks('b')).toContain('/srv/pools/vmo/vftest-vmo-x.img');
  });

  it('moved between two running OnChange VMs: the holder detaches it live (hot-plug); the taker restarts with it once the holder let go, never in the same plan', async () => {
    await apply([{ name: 'a', disks: ['ra', 'x'], policy: 'OnChange' }, { name: 'b', disks: ['rb'], policy: 'OnChange' }]);
    const moved = [{ name: 'a', disks: ['ra'], policy: 'OnChange' }, { name: 'b', disks: ['rb', 'x'], policy: 'OnChange' }];
    const { plan } = await fx.planResult(await desired(moved), { gracefulStop: false });
    const ops = (vm: string) => plan.steps.filter((s) => s.key === `VirtualMachine/${P}-${vm}`).map((s) => s.op.op);
    // a is not restarted: x is detached from it live. b does not hot-plug a disk another running VM holds.
    expect(ops('a')).toEqual(['vm.detach', 'vm.define']);
    expect(ops('b')).toEqual(['vm.define']);
    expect(plan.changes.find((c) => c.name === `${P}-b`)!.notes.join('\n')).toMatch(/not restarted now: .*vftest-vmo-x\.img is in use by running VM vftest-vmo-a/);
    const r = await apply(moved);
    expect(r.outcome).toBe('succeeded');
    expect(running('a') && running('b')).toBe(true);
    expect(await liveDisks('a')).not.toContain('/srv/pools/vmo/vftest-vmo-x.img');
    // The holder let go: b's pending restart takes it (restartPolicy: OnChange).
    const again = await apply(moved);
    expect(again.outcome).toBe('succeeded');
    expect(again.plan.steps.filter((s) => s.name === `${P}-b`).map((s) => s.op.op)).toEqual(['vm.stop', 'vm.start']);
    expect(running('a') && running('b')).toBe(true);
    expect(await liveDisks('b')).toContain('/srv/pools/vmo/vftest-vmo-x.img');
  });

  it('the holder keeps it open (its guest does not complete the detach): the VM that wants the disk is not stopped, its restart pends', async () => {
    await apply([{ name: 'a', disks: ['ra', 'x'] }, { name: 'b', disks: ['rb'], policy: 'OnChange' }]);
    fx.host.detachIgnored.add(`${P}-a`);
    const moved = [{ name: 'a', disks: ['ra'] }, { name: 'b', disks: ['rb', 'x'], policy: 'OnChange' }];
    const r = await fx.reconcile(files(moved), { detachTimeoutMs: 0 });
    expect(r.outcome).toBe('succeeded');
    expect(running('b')).toBe(true);
    expect(await liveDisks('a')).toContain('/srv/pools/vmo/vftest-vmo-x.img');
    const { plan } = await fx.planResult(await desired(moved), { gracefulStop: false });
    expect(plan.steps).toEqual([]);
    expect(plan.notices.join('\n')).toMatch(/vftest-vmo-a: restart required .*detach not completed by the guest .*disk vdb \(\/srv\/pools\/vmo\/vftest-vmo-x\.img\)/);
    expect(plan.notices.join('\n')).toMatch(/vftest-vmo-b: restart required .*waits until .*vftest-vmo-x\.img is released by VM vftest-vmo-a/);
  });
});

describe('spec.domainType', () => {
  it('an existing domain keeps its type when the host would pick another; a declared type wins', async () => {
    await apply([{ name: 'a', disks: ['ra'] }]);
    expect(fx.host.domains.get(`${P}-a`)!.def.type).toBe('qemu');
    fx.host.type = 'kvm'; // as --domain-type kvm (or auto on a KVM host) would answer
    await apply([{ name: 'a', disks: ['ra', 'x'] }, { name: 'n', disks: ['y'] }]);
    expect(fx.host.domains.get(`${P}-a`)!.def.type).toBe('qemu');
    expect(fx.host.domains.get(`${P}-n`)!.def.type).toBe('kvm');
    const { plan } = await fx.planResult(await desired([{ name: 'a', disks: ['ra', 'x'], domainType: 'kvm' }, { name: 'n', disks: ['y'] }]), { gracefulStop: false });
    const line = plan.changes.find((c) => c.name === `${P}-a`)?.fields.find((f) => f.field === 'spec.domainType');
    expect(line).toMatchObject({ before: 'qemu', after: 'kvm', effect: 'restart' });
  });
});
