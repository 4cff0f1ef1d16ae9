/** The test fixture layer itself: scenario() builds manifests the loader accepts, with its defaults; the harness applies them. */
import { describe, expect, it } from 'vitest';
import { scenario } from '../../support/scenario.js';
import { FAST_RETRY, useHarness } from '../../support/harness.js';
import { resourceRef } from '../../../src/model/kinds.js';

const P = 'vftest-scn';
const fx = useHarness();

describe('scenario()', () => {
  it('fills the defaults, keeps what is given, and the loader accepts the result', async () => {
    const s = scenario().pool(`${P}-pool`).volume(`${P}-v`, { format: 'raw' }, { deletionPolicy: 'Retain' })
      .network(`${P}-net`).vm(`${P}-vm`, { state: 'stopped', disks: [{ volume: `${P}-v` }] }, 'disabled');
    const d = await fx.desired(s);
    expect(d.resources.map((r) => r.key)).toEqual([
      `StoragePool/${P}-pool`, `Volume/${P}-v`, `Network/${P}-net`, `VirtualMachine/${P}-vm`,
    ]);
    expect(d.byKey.get(`StoragePool/${P}-pool`)!.config).toMatchObject({ path: `/srv/pools/${P}-pool` });
    expect(d.byKey.get(`Volume/${P}-v`)!.config).toMatchObject({ pool: `${P}-pool`, capacityBytes: 16 * 1024 * 1024, format: 'raw' });
    expect(d.byKey.get(`Network/${P}-net`)!.config).toMatchObject({ mode: 'isolated', cidr: '10.231.0.0/24' });
    expect(d.byKey.get(`VirtualMachine/${P}-vm`)!).toMatchObject({ config: { vcpus: 1, memoryKiB: 65536 }, state: 'stopped' });
    expect(d.byKey.get(`VirtualMachine/${P}-vm`)!.suspended).toBe(true);
  });

  it('undefined leaves a default out; in() splits files; a volume without a pool is refused', () => {
    const files = scenario().in('a.yaml').pool('p', { autostart: true }).in('b.yaml').vm('v', { memory: undefined }).files();
    expect(Object.keys(files)).toEqual(['a.yaml', 'b.yaml']);
    expect(files['a.yaml']).toContain('autostart: true');
    expect(files['b.yaml']).not.toContain('memory');
    expect(() => scenario().volume('v')).toThrow(/needs a pool/);
  });
});

describe('useHarness()', () => {
  it('reconciles on a fresh fake host and store, with one try more than none', async () => {
    expect(fx.host.pools.size).toBe(0);
    expect(FAST_RETRY.maxAttempts).toBe(2);
    const r = await fx.reconcile(scenario().pool(`${P}-pool`));
    expect(r.outcome).toBe('succeeded');
    expect([...fx.host.pools.keys()]).toEqual([`${P}-pool`]);
    expect((await fx.plan()).changes).toEqual([]);
    expect(await fx.store.resources.get(resourceRef('StoragePool', `${P}-pool`))).toBeDefined();
  });
});
