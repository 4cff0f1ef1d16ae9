/**
 * Volume `spec.fileName` (issue 24, helper volfile; the real daemon:
 * test/integration/export/volfile.test.ts): validation (file:line:col, nothing loaded), the file
 * name used wherever a volume's file is derived (create, a VM's disk, a clone's backing file and
 * its format), a changed fileName is a replace held by the data rule, and export's names for
 * files not named `<name>.qcow2|.img`.
 */
import { rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { formatManifestError, loadManifests } from '../../../src/manifest/index.js';
import { volumeNames } from '../../../src/reconcile/kinds/volume/export.js';
import { volumeFileName } from '../../../src/reconcile/kinds/volume/index.js';
import type { VolumeDetail } from '../../../src/model/definitions.js';
import { useHarness } from '../../support/harness.js';
import { scenario } from '../../support/scenario.js';
import { renderPlan } from '../../../src/cli/render.js';
import { makeTempDir } from '../../support/temp-dirs.js';

const H = 'apiVersion: virtform.dev/v1\n';
const pool = (name = 'p', path = `/srv/pools/${name}`): string => `${H}kind: StoragePool\nmetadata: {name: ${name}}\nspec: {path: ${path}}\n`;
const vol = (name: string, spec: string): string => `${H}kind: Volume\nmetadata: {name: ${name}}\nspec: {pool: p, capacity: 1GiB${spec}}\n`;

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});
async function errorsOf(docs: string[]): Promise<string[]> {
  const dir = makeTempDir('vftest-volfile-');
  dirs.push(dir);
  writeFileSync(join(dir, 'all.yaml'), docs.join('---\n'));
  const r = await loadManifests(dir);
  return r.ok ? [] : r.errors.map((e) => formatManifestError(e).replaceAll(dir, '<dir>'));
}

describe('spec.fileName validation', () => {
  it('a file name as kcli and terraform make them loads', async () => {
    expect(await errorsOf([pool(), vol('a', ', fileName: kcli-vm_0.img'), vol('b', ', fileName: ubuntu-qcow2'), vol('c', ', fileName: Vm-Disk.QCOW2')])).toEqual([]);
  });

  it.each([
    ['a "/"', '"../etc/x"'], ['a "/" inside', 'sub/x.img'], ['"."', '"."'], ['".."', '".."'], ['a leading "-"', '"-x.img"'],
    ['a leading "."', '.hidden'], ['a NUL', '"x\\0.img"'], ['a space', '"my disk.img"'], ['256 bytes', 'a'.repeat(256)], ['empty', '""'],
  ])('%s is refused at its line and column, nothing loaded', async (_what, value) => {
    const errs = await errorsOf([pool(), vol('a', `, fileName: ${value}`)]);
    expect(errs).toHaveLength(1);
    expect(errs[0]).toMatch(/^<dir>\/all\.yaml:\d+:\d+: .*spec\.fileName.*must be a file name in the pool/);
  });

  it('255 bytes is accepted', async () => {
    expect(await errorsOf([pool(), vol('a', `, fileName: ${'a'.repeat(255)}`)])).toEqual([]);
  });

  it('two Volumes naming the same file in one pool: an error at the second; in two pools: fine', async () => {
    const errs = await errorsOf([pool(), vol('a', ', fileName: disk.img'), vol('b', ', fileName: disk.img')]);
    expect(errs).toHaveLength(1);
    expect(errs[0]).toMatch(/spec\.fileName.*file "disk\.img" in pool "p" is already the file of Volume "a" \(<dir>\/all\.yaml:\d+\): two Volumes cannot name the same file/);
    const apart = `${H}kind: Volume\nmetadata: {name: b}\nspec: {pool: q, capacity: 1GiB, fileName: disk.img}\n`;
    expect(await errorsOf([pool(), pool('q'), vol('a', ', fileName: disk.img'), apart])).toEqual([]);
  });

  it('a fileName that is another Volume\'s default file name: an error', async () => {
    const errs = await errorsOf([pool(), vol('a', ''), vol('b', ', fileName: a.qcow2')]);
    expect(errs.join('\n')).toMatch(/file "a\.qcow2" in pool "p" is already the file of Volume "a"/);
    // The raw default is `<name>.img`.
    const raw = await errorsOf([pool(), vol('b', ', fileName: a.img'), vol('a', ', format: raw')]);
    expect(raw.join('\n')).toMatch(/metadata\.name.*file "a\.img" in pool "p" is already the file of Volume "b"/);
  });

  it('a Volume naming a VM\'s cloud-init seed file (<vm>-cidata.iso, or its seedVolume): an error on the VM', async () => {
    const vm = (ci: string): string => `${H}kind: VirtualMachine\nmetadata: {name: vm}\nspec:\n  vcpus: 1\n  memory: 128MiB\n  disks: [{volume: root}]\n  cloudInit: {${ci}}\n`;
    const built = await errorsOf([pool(), vol('root', ''), vol('iso', ', format: raw, fileName: vm-cidata.iso'), vm('userData: "#cloud-config\\n"')]);
    expect(built).toHaveLength(1);
    expect(built[0]).toMatch(/spec\.cloudInit.*the cloud-init seed's file "vm-cidata\.iso" in pool "p" is the file of Volume "iso"/);
    const existing = await errorsOf([pool(), vol('root', ''), vol('iso', ', format: raw, fileName: commoninit.iso'), vm('seedVolume: commoninit.iso')]);
    expect(existing).toHaveLength(1);
    expect(existing[0]).toMatch(/spec\.cloudInit\.seedVolume.*"commoninit\.iso" in pool "p" is the file of Volume "iso"/);
  });
});

describe('spec.fileName on the host (FakeHost)', () => {
  const fx = useHarness();
  const P = 'vftest-volfile-u';
  const base = (fileName = `${P}_0.img`) => scenario().pool(`${P}-pool`, { path: '/srv/pools/vf' })
    .volume(`${P}-base`, { format: 'raw', capacity: '1MiB', fileName: `${P}-base-raw` })
    .volume(`${P}-root`, { capacity: '2MiB', backingVolume: `${P}-base`, fileName })
    .vm(`${P}-vm`, { disks: [{ volume: `${P}-root` }] });

  it('the file is created under its fileName; the VM\'s disk and the clone\'s backing file (raw: the base\'s declared format) use it', async () => {
    const created: { name: string; backing?: { path: string; format: string } }[] = [];
    const create = fx.host.createVolume.bind(fx.host);
    fx.host.createVolume = async (def) => {
      created.push(def);
      return create(def);
    };
    const r = await fx.reconcile(base());
    expect(r.outcome).toBe('succeeded');
    const files = [...fx.host.volumes.get(`${P}-pool`)!.keys()].sort();
    expect(files).toEqual([`${P}-base-raw`, `${P}_0.img`]);
    const root = fx.host.volumes.get(`${P}-pool`)!.get(`${P}_0.img`)!;
    expect(root).toMatchObject({ path: `/srv/pools/vf/${P}_0.img`, format: 'qcow2', backingPath: `/srv/pools/vf/${P}-base-raw` });
    // The base's declared format: its file name has no extension to tell it.
    expect(created.find((d) => d.name === `${P}_0.img`)!.backing).toEqual({ path: `/srv/pools/vf/${P}-base-raw`, format: 'raw' });
    expect(fx.host.domains.get(`${P}-vm`)!.def.disks[0]!.path).toBe(`/srv/pools/vf/${P}_0.img`);
    expect((await fx.plan(base())).changes).toEqual([]);
  });

  it('a changed fileName replaces the volume (old file deleted): held without --allow-data-loss', async () => {
    await fx.reconcile(base());
    const p = await fx.plan(base(`${P}-root.disk`));
    const c = p.changes.find((x) => x.name === `${P}-root`)!;
    expect(c.action, renderPlan(p, { color: false })).toBe('replace');
    expect(c.reason).toContain(`file name changes (${P}_0.img → ${P}-root.disk, spec.fileName)`);
    expect(p.held.get(c.key)).toBeDefined();
    const held = await fx.reconcile(base(`${P}-root.disk`));
    expect(held.outcome).not.toBe('succeeded');
    expect(fx.host.volumes.get(`${P}-pool`)!.has(`${P}_0.img`)).toBe(true);
    expect((await fx.reconcile(base(`${P}-root.disk`), { allowDataLoss: true })).outcome).toBe('succeeded');
    expect(fx.host.volumes.get(`${P}-pool`)!.has(`${P}_0.img`)).toBe(false);
    expect(fx.host.domains.get(`${P}-vm`)!.def.disks[0]!.path).toBe(`/srv/pools/vf/${P}-root.disk`);
  });

  it('volumeFileName: the declared file name, else <name>.qcow2 / <name>.img', () => {
    expect(volumeFileName('a', 'qcow2', 'x_0.img')).toBe('x_0.img');
    expect(volumeFileName('a', 'raw')).toBe('a.img');
  });
});

describe('export: resource names of volume files', () => {
  const v = (pool: string, name: string, format = 'qcow2'): VolumeDetail => ({ pool, name, format, path: `/p/${pool}/${name}`, key: `/p/${pool}/${name}`, capacityBytes: 1 } as VolumeDetail);

  it('<name>.qcow2 / <name>.img keep <name>; other files get a derived name and their fileName, unique within the export', () => {
    const vols = [
      v('p', 'web.qcow2'), v('p', 'kcli_vm_0.img'), v('p', 'ubuntu-qcow2'), v('p', 'Web.QCOW2'), v('q', 'web.qcow2'),
      v('p', 'commoninit.iso', 'iso'), v('p', 'data.img', 'raw'), v('p', 'x.vmdk', 'vmdk'), v('p', 'my disk.img'), v('p', '_0.img', 'raw'),
    ];
    const names = volumeNames(vols);
    const of = (pool: string, name: string) => names({ pool, name });
    expect(of('p', 'web.qcow2')).toEqual({ name: 'web' });
    expect(of('p', 'data.img')).toEqual({ name: 'data' });
    expect(of('p', 'kcli_vm_0.img')).toEqual({ name: 'kcli-vm-0', fileName: 'kcli_vm_0.img' });
    expect(of('p', 'ubuntu-qcow2')).toEqual({ name: 'ubuntu-qcow2', fileName: 'ubuntu-qcow2' });
    expect(of('p', 'commoninit.iso')).toEqual({ name: 'commoninit', fileName: 'commoninit.iso' });
    expect(of('p', '_0.img')).toEqual({ name: '0', fileName: '_0.img' });
    // Same resource name from two files: the extension is kept, then -2, -3 (pool, then file order).
    expect(of('p', 'Web.QCOW2')).toEqual({ name: 'web-qcow2', fileName: 'Web.QCOW2' });
    expect(of('q', 'web.qcow2')).toEqual({ name: 'web-qcow2-2', fileName: 'web.qcow2' });
    // Another format, or a file spec.fileName cannot take: no name (export warns).
    expect(of('p', 'x.vmdk')).toBeUndefined();
    expect(of('p', 'my disk.img')).toBeUndefined();
    const all = vols.map((x) => names(x)?.name).filter(Boolean);
    expect(new Set(all).size).toBe(all.length);
  });

  it('a derived name differs from the host\'s other objects\' names (kcli\'s seed `<vm>.ISO` beside domain `<vm>`)', () => {
    const names = volumeNames([v('p', 'kvm.ISO', 'iso'), v('p', 'kvm_0.img'), v('p', 'net')], ['kvm', 'net']);
    expect(names({ pool: 'p', name: 'kvm.ISO' })).toEqual({ name: 'kvm-iso', fileName: 'kvm.ISO' });
    expect(names({ pool: 'p', name: 'kvm_0.img' })).toEqual({ name: 'kvm-0', fileName: 'kvm_0.img' });
    expect(names({ pool: 'p', name: 'net' })).toEqual({ name: 'net-2', fileName: 'net' });
  });

  it('a long file name is cut to 63 characters, its numbered twin too', () => {
    const long = 'a'.repeat(70);
    const names = volumeNames([v('p', `${long}.img`, 'raw'), v('p', `${long}.qcow2`)]);
    expect(names({ pool: 'p', name: `${long}.img` })).toEqual({ name: 'a'.repeat(63), fileName: `${long}.img` });
    expect(names({ pool: 'p', name: `${long}.qcow2` })!.name).toBe(`${'a'.repeat(61)}-2`); // the kept extension is cut off too

  });
});
