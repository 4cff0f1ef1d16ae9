/**
 * `virtform restart`'s stage (src/reconcile/restart.ts) on the FakeHost: a pending [restart] change
 * is taken by the restart (new domain id, the mark cleared), steps journaled; refusals change
 * nothing; --all-pending picks the VMs with a mark; a suspended DB restarts nothing. The CLI and
 * the real daemon: test/integration/cli/restart.test.ts (make test-e2e).
 */
import { describe, expect, it } from 'vitest';
import { useHarness } from '../../support/harness.js';
import { scenario } from '../../support/scenario.js';
import { restartGuests, restartRefusals } from '../../../src/reconcile/restart.js';
import { resourceRef } from '../../../src/model/kinds.js';

const P = 'vftest-rst';
const files = (vcpus: number, o: { disabled?: boolean } = {}) => {
  const s = scenario().pool(`${P}-pool`, { path: '/srv/pools/rst' });
  for (const v of ['a', 'b', 's', 'off']) s.volume(`${P}-${v}-root`, { capacity: '16MiB', format: 'raw' });
  return s
    .vm(`${P}-a`, { memory: '32MiB', vcpus, maxVcpus: vcpus, disks: [{ volume: `${P}-a-root` }] })
    .vm(`${P}-b`, { memory: '32MiB', vcpus: 1, disks: [{ volume: `${P}-b-root` }] })
    .vm(`${P}-s`, { memory: '32MiB', state: 'stopped', disks: [{ volume: `${P}-s-root` }] })
    .vm(`${P}-off`, { memory: '32MiB', disks: [{ volume: `${P}-off-root` }] }, o.disabled ? { reconcile: 'disabled' } : undefined);
};
const fx = useHarness({ dirPrefix: 'vftest-rst-' });
const id = (n: string): number | undefined => fx.host.domains.get(`${P}-${n}`)?.id;
const mark = async (n: string) => ((await fx.store.resources.get(resourceRef('VirtualMachine', `${P}-${n}`)))!.details.facts as { restartRequired?: unknown }).restartRequired;

describe('the restart stage', () => {
  it('restarts a VM with a pending mark: the definition taken, the mark cleared; --all-pending finds it; nothing pending: nothing', async () => {
    await fx.reconcile(files(1));
    await fx.reconcile(files(2));
    expect(await mark('a')).toBeDefined();
    const before = { a: id('a'), b: id('b') };
    const all = await restartGuests({ host: fx.host, store: fx.store, names: [], allPending: true, graceful: false });
    expect(all.outcome).toBe('succeeded');
    if (all.outcome !== 'succeeded') return;
    expect(all.targets.map((t) => t.name)).toEqual([`${P}-a`]);
    expect(all.targets[0]!.pending).toMatch(/restart required for spec\.vcpus \(running with 1, defined 2\)/);
    expect(all.plan.steps.map((s) => s.op.op)).toEqual(['vm.stop', 'vm.start']);
    expect(id('a')).not.toBe(before.a);
    expect(id('b')).toBe(before.b);
    expect(fx.host.domains.get(`${P}-a`)!.live?.vcpus ?? fx.host.domains.get(`${P}-a`)!.def.vcpus).toBe(2);
    expect(await mark('a')).toBeUndefined();
    expect((await restartGuests({ host: fx.host, store: fx.store, names: [], allPending: true, graceful: true })).outcome).toBe('nothing');
    expect((await fx.plan(files(2))).changes).toEqual([]);
  });

  it('refuses unknown, unmanaged, declared stopped and disabled VMs, changing nothing; a suspended DB restarts nothing', async () => {
    await fx.reconcile(files(1));
    await fx.reconcile(files(1, { disabled: true }));
    await fx.host.defineDomain({ name: `${P}-foreign`, type: 'qemu', vcpus: 1, memoryKiB: 32768, disks: [], nics: [], marker: { kind: 'VirtualMachine', name: 'x', specHash: 'x' } } as never);
    const refusals = await restartRefusals(fx.host, fx.store, [`${P}-nosuch`, `${P}-foreign`, `${P}-s`, `${P}-off`, `${P}-a`]);
    expect(refusals.map((r) => [r.name, r.reason.split(' (')[0]!.split(':')[0]])).toEqual([
      [`${P}-nosuch`, 'no such VM'],
      [`${P}-foreign`, 'not managed by virtform'],
      [`${P}-s`, 'it is declared stopped'],
      [`${P}-off`, 'its manifest says metadata.reconcile'],
    ]);
    const before = id('a');
    const r = await restartGuests({ host: fx.host, store: fx.store, names: [`${P}-a`, `${P}-s`], graceful: true });
    expect(r.outcome).toBe('refused');
    expect(id('a')).toBe(before);
    await fx.store.controls.suspend({ by: 'test', reason: null });
    const s = await restartGuests({ host: fx.host, store: fx.store, names: [`${P}-a`], graceful: true });
    expect(s.outcome).toBe('suspended');
    expect(id('a')).toBe(before);
  });
});
