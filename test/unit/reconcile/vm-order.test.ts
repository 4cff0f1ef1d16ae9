/**
 * Ordering across VMs on the FakeHost (which refuses a start on a disk another running domain has
 * open, as QEMU's image lock does): a disk changes hands only after its holder stopped (plan
 * edges), two VMs swapping disks plan without a cycle, and a VM is never stopped for a restart
 * that cannot complete. Also spec.domainType precedence.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { join } from 'node:path';
import { rmSync } from 'node:fs';
import { FakeHost } from '../../support/fake-host.js';
import { desiredFrom, tempDir, writeManifests } from '../../support/manifests.js';
import { openStateStore, type StateStore } from '../../../src/state/index.js';
import { reconcile, planOnly } from '../../../src/reconcile/engine.js';

const FAST_RETRY = { maxAttempts: 2, baseDelayMs: 1, maxDelayMs: 2 };
const P = 'vftest-vmo';

interface Vm { name: string; disks: string[]; policy?: string; domainType?: string }
function files(vms: Vm[]): Record<string, string> {
  return {
    'base.yaml': `apiVersion: virtform.dev/v1
kind: StoragePool
metadata: {name: ${P}-pool}
spec: {path: /srv/pools/vmo}
${['x', 'y', 'ra', 'rb'].map((v) => `---
apiVersion: virtform.dev/v1
kind: Volume
metadata: {name: ${P}-${v}}
spec: {pool: ${P}-pool, capacity: 16MiB, format: raw}
`).join('')}`,
    'vms.yaml': vms.map((v) => `---
apiVersion: virtform.dev/v1
kind: VirtualMachine
metadata: {name: ${P}-${v.name}}
spec:
  vcpus: 1
  memory: 32MiB
  restartPolicy: ${v.policy ?? 'Never'}
${v.domainType ? `  domainType: ${v.domainType}\n` : ''}  disks: [${v.disks.map((d) => `{volume: ${P}-${d}}`).join(', ')}]
`).join(''),
  };
}

let work: string;
let host: FakeHost;
let store: StateStore;
beforeEach(async () => {
  work = tempDir('vftest-vmo-');
  host = new FakeHost();
  store = await openStateStore(join(work, 'state.db'));
});
afterEach(async () => {
  await store.close();
  rmSync(work, { recursive: true, force: true });
});
async function desired(vms: Vm[]) {
  const dir = join(work, 'm');
  rmSync(dir, { recursive: true, force: true });
  return desiredFrom(writeManifests(dir, files(vms)));
}
async function apply(vms: Vm[]) {
  return reconcile({ host, store, desired: await desired(vms), retry: FAST_RETRY, gracefulStop: false });
}
const running = (vm: string): boolean => host.domains.get(`${P}-${vm}`)?.active === true;
const liveDisks = async (vm: string): Promise<string[]> => (await host.getRunningDomain(`${P}-${vm}`))!.disks.map((d) => d.path);

describe('a disk changes hands only after its holder let go of it', () => {
  it('two running OnChange VMs swapping disks: no cycle, each start after the other stop, both running with the swapped disks', async () => {
    await apply([{ name: 'a', disks: ['ra', 'x'], policy: 'OnChange' }, { name: 'b', disks: ['rb', 'y'], policy: 'OnChange' }]);
    const swapped = [{ name: 'a', disks: ['ra', 'y'], policy: 'OnChange' }, { name: 'b', disks: ['rb', 'x'], policy: 'OnChange' }];
    const { plan } = await planOnly(host, store, await desired(swapped), false);
    const step = (vm: string, op: string) => plan.steps.find((s) => s.key === `VirtualMachine/${P}-${vm}` && s.op.op === op)!;
    expect(step('a', 'vm.start').deps).toContain(step('b', 'vm.stop').id);
    expect(step('b', 'vm.start').deps).toContain(step('a', 'vm.stop').id);
    const r = await apply(swapped);
    expect(r.outcome).toBe('succeeded');
    expect(running('a') && running('b')).toBe(true);
    expect(await liveDisks('a')).toContain('/srv/pools/vmo/vftest-vmo-y.img');
    expect(await liveDisks('b')).toContain('/srv/pools/vmo/vftest-vmo-x.img');
  });

  it('moved between two OnChange VMs: the taker stops after the holder stopped; if the holder cannot stop, the taker keeps running', async () => {
    await apply([{ name: 'a', disks: ['ra', 'x'], policy: 'OnChange' }, { name: 'b', disks: ['rb'], policy: 'OnChange' }]);
    const moved = [{ name: 'a', disks: ['ra'], policy: 'OnChange' }, { name: 'b', disks: ['rb', 'x'], policy: 'OnChange' }];
    const { plan } = await planOnly(host, store, await desired(moved), false);
    const step = (vm: string, op: string) => plan.steps.find((s) => s.key === `VirtualMachine/${P}-${vm}` && s.op.op === op)!;
    expect(step('b', 'vm.stop').deps).toContain(step('a', 'vm.stop').id);
    expect(step('b', 'vm.start').deps).toContain(step('a', 'vm.stop').id);
    host.failNext('stopDomain', `${P}-a`, FAST_RETRY.maxAttempts, 'unknown');
    const r = await apply(moved);
    expect(r.outcome).toBe('failed');
    expect(running('a') && running('b')).toBe(true);
    // Once the holder can stop, the move completes.
    const again = await apply(moved);
    expect(again.outcome).toBe('succeeded');
    expect(running('a') && running('b')).toBe(true);
    expect(await liveDisks('b')).toContain('/srv/pools/vmo/vftest-vmo-x.img');
  });

  it('the holder keeps running (restartPolicy: Never): the VM that wants the disk is not stopped, its restart pends', async () => {
    await apply([{ name: 'a', disks: ['ra', 'x'] }, { name: 'b', disks: ['rb'], policy: 'OnChange' }]);
    const moved = [{ name: 'a', disks: ['ra'] }, { name: 'b', disks: ['rb', 'x'], policy: 'OnChange' }];
    const r = await apply(moved);
    expect(r.outcome).toBe('succeeded');
    expect(running('b')).toBe(true);
    const { plan } = await planOnly(host, store, await desired(moved), false);
    expect(plan.steps).toEqual([]);
    expect(plan.notices.join('\n')).toMatch(/vftest-vmo-b: restart required .*waits until .*vftest-vmo-x\.img is released by VM vftest-vmo-a/);
  });
});

describe('spec.domainType', () => {
  it('an existing domain keeps its type when the host would pick another; a declared type wins', async () => {
    await apply([{ name: 'a', disks: ['ra'] }]);
    expect(host.domains.get(`${P}-a`)!.def.type).toBe('qemu');
    host.type = 'kvm'; // as --domain-type kvm (or auto on a KVM host) would answer
    await apply([{ name: 'a', disks: ['ra', 'x'] }, { name: 'n', disks: ['y'] }]);
    expect(host.domains.get(`${P}-a`)!.def.type).toBe('qemu');
    expect(host.domains.get(`${P}-n`)!.def.type).toBe('kvm');
    const { plan } = await planOnly(host, store, await desired([{ name: 'a', disks: ['ra', 'x'], domainType: 'kvm' }, { name: 'n', disks: ['y'] }]), false);
    const line = plan.changes.find((c) => c.name === `${P}-a`)?.fields.find((f) => f.field === 'spec.domainType');
    expect(line).toMatchObject({ before: 'qemu', after: 'kvm', effect: 'restart' });
  });
});
