/**
 * The VM's field table is the one list of its fields: every field of a desired VM's config (all of
 * them used by the examples) has a row, and a row drives the diff's effect, the live step and the
 * restart-required mark.
 */
import { describe, expect, it } from 'vitest';
import { join } from 'node:path';
import { desiredFrom } from '../../support/manifests.js';
import { kindOf } from '../../../src/reconcile/kinds/index.js';
import { VM_FIELDS, compareVm, domainDef, matchNics, type DesiredVm } from '../../../src/reconcile/kinds/vm/index.js';
import { liveOp } from '../../../src/reconcile/kinds/vm/fields.js';
import { parseDomainXml, buildDomainXml } from '../../../src/libvirt/xml/index.js';

describe('the VM field table', () => {
  it('has a row for every config field the examples use, and the kind exposes its config rows as `fields`', async () => {
    const desired = await desiredFrom(join(process.cwd(), 'manifests/examples'));
    const vms = desired.resources.filter((r): r is DesiredVm => r.kind === 'VirtualMachine');
    const used = new Set(vms.flatMap((v) => Object.keys(v.config)));
    const rows = new Set<string>(VM_FIELDS.map((f) => f.field));
    expect([...used].filter((k) => !rows.has(k))).toEqual([]);
    const exposed = new Set(kindOf('VirtualMachine').fields.map((f: { field: string }) => f.field));
    expect([...used].filter((k) => !exposed.has(k))).toEqual([]);
  });

  it('a definition that matches the config compares equal; a change gives the row\'s lines and effect', async () => {
    const desired = await desiredFrom(join(process.cwd(), 'manifests/examples'));
    const vm = desired.resources.find((r): r is DesiredVm => r.kind === 'VirtualMachine' && r.config.maxVcpus === undefined && r.config.cloudInit === undefined)!;
    const macs = vm.config.nics.map((n, i) => n.mac ?? `52:54:00:00:00:${String(i).padStart(2, '0')}`);
    const cur = { ...parseDomainXml(buildDomainXml(domainDef(vm, 'qemu', undefined, macs))), active: true, autostart: false };
    const nics = (c: typeof vm.config) => matchNics(c.nics, cur.nics);
    expect(compareVm(cur, vm.config, nics(vm.config))).toEqual([]);
    const more = { ...vm.config, vcpus: vm.config.vcpus + 1, maxVcpus: vm.config.vcpus + 1 };
    const diffs = compareVm(cur, more, nics(more));
    expect(diffs.map((d) => [d.field, d.effect, d.changes.map((c) => c.field)])).toEqual([
      ['vcpus', 'restart', ['spec.vcpus']], ['maxVcpus', 'restart', ['spec.maxVcpus']],
    ]);
    // Within the maximum the vCPUs and the description are set live (their rows' live setters).
    const live = { ...vm.config, description: 'changed', maxVcpus: cur.maxVcpus + 1, vcpus: vm.config.vcpus };
    const grown = { ...cur, maxVcpus: cur.maxVcpus + 1 };
    const d2 = compareVm(grown, { ...live, vcpus: vm.config.vcpus + 1 }, nics(live));
    expect(d2.map((d) => [d.field, d.effect])).toEqual([['vcpus', 'live'], ['description', 'live']]);
    expect(liveOp(d2.map((d) => d.field), { ...live, vcpus: vm.config.vcpus + 1 })).toEqual({ op: 'vm.live', vcpus: vm.config.vcpus + 1, description: 'changed' });
  });
});
