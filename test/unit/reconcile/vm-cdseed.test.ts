/**
 * spec.disks[].device: cdrom and spec.cloudInit.seedVolume on the FakeHost (issue 24, helper
 * cdseed; the real daemon: test/integration/reconcile/cdrom-seed.test.ts): a cdrom disk is defined
 * read-only beside the seed's CD-ROM and converges; a cdrom defined as a disk is a device line;
 * the seedVolume form of a seed virtform built plans nothing and mutates nothing; a missing
 * seedVolume is a conflict; a seedVolume is never uploaded to; switching to content over it is
 * held without --allow-data-loss.
 */
import { describe, expect, it } from 'vitest';
import { useHarness } from '../../support/harness.js';
import { scenario } from '../../support/scenario.js';
import { renderPlan } from '../../../src/cli/render.js';

const P = 'vftest-cdseed-u';
const VM = `${P}-vm`;
const POOL = `${P}-pool`;
const SEED = `${VM}-cidata.iso`;
const plain = { color: false };

const base = () => scenario().pool(POOL, { path: '/srv/pools/cd' }).volume(`${P}-root`).volume(`${P}-iso`, { format: 'raw' });
const withCdrom = (cdrom: Record<string, unknown> = {}) => base().vm(VM, {
  state: 'running',
  disks: [{ volume: `${P}-root`, boot: 1 }, { volume: `${P}-iso`, device: 'cdrom', ...cdrom }],
  cloudInit: { userData: '#cloud-config\n' },
});
const seeded = (cloudInit: Record<string, unknown>) => base().vm(VM, { state: 'running', disks: [{ volume: `${P}-root`, boot: 1 }], cloudInit: { pool: POOL, ...cloudInit } });

const fx = useHarness();

describe('cdrom disks', () => {
  it('a cdrom defaults to ide, is defined as a CD-ROM disk beside the seed, with its own target, and converges', async () => {
    const r = await fx.reconcile(withCdrom());
    expect(r.outcome).toBe('succeeded');
    const def = fx.host.domains.get(VM)!.def;
    const iso = def.disks.find((d) => d.device === 'cdrom')!;
    expect(iso).toMatchObject({ bus: 'ide', device: 'cdrom', format: 'raw' });
    expect(def.cdroms![0]!.target).not.toBe(iso.target);
    expect((await fx.plan(withCdrom())).changes).toEqual([]);
  });

  it('a cdrom where the manifest wants a disk is a spec.disks[i].device line, [restart], not hot-plugged', async () => {
    await fx.reconcile(withCdrom({ bus: 'sata' }));
    const asDisk = base().vm(VM, {
      state: 'running', disks: [{ volume: `${P}-root`, boot: 1 }, { volume: `${P}-iso`, bus: 'sata' }], cloudInit: { userData: '#cloud-config\n' },
    });
    const p = await fx.plan(asDisk);
    const c = p.changes.find((x) => x.name === VM)!;
    const line = c.fields.find((f) => f.field === 'spec.disks[1].device');
    expect(line, renderPlan(p, plain)).toMatchObject({ before: 'cdrom', after: undefined, effect: 'restart' });
    expect(c.steps.map((s) => s.op)).not.toContain('vm.attach');
  });
});

describe('spec.cloudInit.seedVolume', () => {
  it('the seedVolume form of a seed virtform built: no change, no host call that mutates', async () => {
    await fx.reconcile(seeded({ userData: '#cloud-config\n' }));
    const before = fx.host.mutationCount();
    const p = await fx.plan(seeded({ seedVolume: SEED }));
    expect(p.changes, renderPlan(p, plain)).toEqual([]);
    const r = await fx.reconcile(seeded({ seedVolume: SEED }));
    expect(r.outcome).toBe('noop');
    expect(fx.host.mutationCount()).toBe(before);
  });

  it('a seedVolume that is not in its pool: a conflict naming it', async () => {
    const p = await fx.plan(seeded({ seedVolume: 'nope.iso' }));
    const c = p.changes.find((x) => x.name === VM)!;
    expect(c.action).toBe('conflict');
    expect(c.reason).toContain(`${POOL}/nope.iso (spec.cloudInit.seedVolume) does not exist`);
  });

  it('an existing volume is attached, never uploaded to; content over it is held without --allow-data-loss', async () => {
    await fx.reconcile(base());
    await fx.host.createVolume({ pool: POOL, name: SEED, capacityBytes: 4096, format: 'raw' });
    const r = await fx.reconcile(seeded({ seedVolume: SEED }));
    expect(r.outcome).toBe('succeeded');
    expect(fx.host.domains.get(VM)!.def.cdroms).toEqual([expect.objectContaining({ path: `/srv/pools/cd/${SEED}`, bus: 'ide' })]);
    expect(fx.host.contents.get(`/srv/pools/cd/${SEED}`)).toBeUndefined();
    fx.host.failures.delete(`deleteVolume:${SEED}`);
    const p = await fx.plan(seeded({ userData: '#cloud-config\n' }));
    const c = p.changes.find((x) => x.name === VM)!;
    expect(p.held.get(c.key), renderPlan(p, plain)).toContain('would destroy the contents');
    const ok = await fx.reconcile(seeded({ userData: '#cloud-config\n' }), { allowDataLoss: true });
    expect(ok.outcome).toBe('succeeded');
    expect(fx.host.contents.get(`/srv/pools/cd/${SEED}`)).toBeDefined();
  });

  it('interrupted while switching to content (defined, seed not built): still held, not a conflict; built with consent', async () => {
    await fx.reconcile(base());
    await fx.host.createVolume({ pool: POOL, name: SEED, capacityBytes: 4096, format: 'raw' });
    expect((await fx.reconcile(seeded({ seedVolume: SEED }))).outcome).toBe('succeeded');
    fx.host.failNext('deleteVolume', SEED, 20);
    const failed = await fx.reconcile(seeded({ userData: '#cloud-config\n' }), { allowDataLoss: true });
    expect(failed.outcome).not.toBe('succeeded');
    expect(fx.host.contents.get(`/srv/pools/cd/${SEED}`)).toBeUndefined();
    fx.host.failures.delete(`deleteVolume:${SEED}`);
    const p = await fx.plan(seeded({ userData: '#cloud-config\n' }));
    const c = p.changes.find((x) => x.name === VM)!;
    expect(c.action, renderPlan(p, plain)).toBe('update');
    expect(p.held.get(c.key), renderPlan(p, plain)).toContain('would destroy the contents');
    expect((await fx.reconcile(seeded({ userData: '#cloud-config\n' }), { allowDataLoss: true })).outcome).toBe('succeeded');
    expect(fx.host.contents.get(`/srv/pools/cd/${SEED}`)).toBeDefined();
    expect((await fx.plan(seeded({ userData: '#cloud-config\n' }))).changes).toEqual([]);
  });
});
