/**
 * `virtform export`'s selection (`src/reconcile/export.ts`, issue 24): named objects and what they
 * need, `--all` (no owner marker; pools and volumes carry none: all but those only virtform's VMs
 * use), `--include-managed`, and the errors of bad names.
 */
import { describe, expect, it } from 'vitest';
import { selectExports, type ExportedObject } from '../../../src/reconcile/export.js';

type Kind = ExportedObject['kind'];
const obj = (kind: Kind, name: string, managed: ExportedObject['managed'], needs: [Kind, string][] = [], libvirtName = name): ExportedObject => ({
  kind, name, libvirtName, managed, file: `${name}.yaml`, object: `${kind} ${name}`, comments: [], warnings: [],
  needs: needs.map(([k, n]) => ({ kind: k, name: n })), doc: { kind, metadata: { name } },
});

// A host: virtform's VM `ours` on volume `ours-root` in pool `p`; a foreign VM `theirs` on `their-root`
// (a clone of `base`, which `ours-root` is a clone of too) in pool `p`; an unused volume `spare`; a network each.
const host = (): ExportedObject[] => [
  obj('StoragePool', 'p', 'unknown'),
  obj('Volume', 'base', 'unknown', [['StoragePool', 'p']], 'base.qcow2'),
  obj('Volume', 'ours-root', 'unknown', [['StoragePool', 'p'], ['Volume', 'base']]),
  obj('Volume', 'their-root', 'unknown', [['StoragePool', 'p'], ['Volume', 'base']]),
  obj('Volume', 'spare', 'unknown', [['StoragePool', 'p']]),
  obj('Network', 'ournet', true),
  obj('Network', 'theirnet', false),
  obj('VirtualMachine', 'ours', true, [['Volume', 'ours-root'], ['Network', 'ournet']]),
  obj('VirtualMachine', 'theirs', false, [['Volume', 'their-root'], ['Network', 'theirnet']]),
];
const keys = (r: ReturnType<typeof selectExports>): string[] => (r.ok ? r.objects.map((o) => `${o.kind}/${o.name}`).sort() : r.errors);

describe('selectExports', () => {
  it('a named VM brings its volumes, their backing volume and pool, and its network', () => {
    expect(keys(selectExports(host(), { names: ['theirs'], all: false, includeManaged: false }))).toEqual([
      'Network/theirnet', 'StoragePool/p', 'VirtualMachine/theirs', 'Volume/base', 'Volume/their-root',
    ]);
  });

  it('a volume is found by its file name too; Kind/NAME picks one kind', () => {
    expect(keys(selectExports(host(), { names: ['base.qcow2'], all: false, includeManaged: false }))).toEqual(['StoragePool/p', 'Volume/base']);
    expect(keys(selectExports(host(), { names: ['Network/ournet'], all: false, includeManaged: false }))).toEqual(['Network/ournet']);
  });

  it('--all: everything without the owner marker; pools and volumes unless only virtform\'s VMs use them', () => {
    expect(keys(selectExports(host(), { names: [], all: true, includeManaged: false }))).toEqual([
      'Network/theirnet', 'StoragePool/p', 'VirtualMachine/theirs', 'Volume/base', 'Volume/spare', 'Volume/their-root',
    ]);
  });

  it('--include-managed: every object', () => {
    const r = selectExports(host(), { names: [], all: false, includeManaged: true });
    expect(r.ok && r.objects.length).toBe(host().length);
  });

  it('an unknown name, an unknown kind and a name several kinds share are errors naming them', () => {
    const h = [...host(), obj('Network', 'theirs', false)];
    expect(keys(selectExports(h, { names: ['nope', 'Disk/x', 'theirs'], all: false, includeManaged: false }))).toEqual([
      'nope: no pool, volume, network or domain of that name on the host',
      'Disk/x: Disk is not a kind',
      'theirs: several objects have that name (VirtualMachine/theirs, Network/theirs): name one as Kind/NAME',
    ]);
  });

  it('what a chosen object needs but the host lacks is a warning on it', () => {
    const h = host().filter((o) => o.name !== 'theirnet');
    const r = selectExports(h, { names: ['theirs'], all: false, includeManaged: false });
    expect(r.ok && r.objects.find((o) => o.name === 'theirs')?.warnings).toEqual([
      'needs Network/theirnet, which is not on the host (or not readable): its manifest is not exported',
    ]);
  });
});
