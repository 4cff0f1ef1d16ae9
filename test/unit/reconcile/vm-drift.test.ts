/**
 * VirtualMachine deep drift, stable MACs, live/restart changes, the restart-required mark and
 * growing attached volumes, on the FakeHost (which behaves like libvirt's QEMU driver under TCG:
 * a new random MAC for every MAC-less NIC at every define, a new domain id per start, vCPU unplug
 * refused, volumes of running domains write-locked).
 */
import { beforeEach, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { useHarness } from '../../support/harness.js';
import { scenario } from '../../support/scenario.js';
import { renderPlan } from '../../../src/cli/render.js';
import type { DomainDef } from '../../../src/reconcile/ports.js';
import { resourceRef, LOCAL_HOST } from '../../../src/model/kinds.js';

const P = 'vftest-vmd';
const VM = `${P}-vm`;
const plain = { color: false };

interface VmOpts {
  vcpus?: number; maxVcpus?: number; memory?: string; maxMemory?: string; description?: string;
  /** YAML of spec.disks / spec.nics. */
  disks?: string; nics?: string; state?: string; restartPolicy?: string; dataCapacity?: string; adopt?: boolean;
}

/** A pool with a root and a data volume, two networks. */
const base = (o: VmOpts = {}) => scenario().pool(`${P}-pool`, { path: '/srv/pools/vmd' })
  .volume(`${P}-root`, { capacity: '64MiB' }).volume(`${P}-data`, { capacity: o.dataCapacity ?? '32MiB', format: 'raw' })
  .network(`${P}-a`, { cidr: '10.241.0.0/24' }).network(`${P}-b`, { cidr: '10.242.0.0/24' });
const files = (o: VmOpts = {}) => base(o).vm(VM, {
  vcpus: o.vcpus ?? 1, memory: o.memory ?? '64MiB', maxVcpus: o.maxVcpus, maxMemory: o.maxMemory,
  description: o.description, state: o.state, restartPolicy: o.restartPolicy,
  disks: parse(o.disks ?? `[{volume: ${P}-root, boot: 1}, {volume: ${P}-data}]`),
  nics: parse(o.nics ?? `[{network: ${P}-a}, {network: ${P}-b, model: e1000}]`),
}, o.adopt ? 'adopt' : undefined);

const fx = useHarness();
const run = async (o: VmOpts = {}) => fx.reconcile(files(o));
const plan = async (o: VmOpts = {}) => fx.plan(files(o));
const vm = () => fx.host.domains.get(VM)!;
const macs = () => vm().def.nics.map((n) => n.mac);
const edit = (f: (d: DomainDef) => DomainDef): void => {
  vm().def = f(vm().def);
};

beforeEach(async () => {
  expect((await run()).outcome).toBe('succeeded');
});

describe('deep drift: the persistent definition against the manifest', () => {
  const cases: [string, (d: DomainDef) => DomainDef, RegExp][] = [
    ['setvcpus --config', (d) => ({ ...d, vcpus: 2, maxVcpus: 2 }), /~ spec\.vcpus: 2 → 1 \(drift\) \[restart\]/],
    ['setmem --config', (d) => ({ ...d, memoryKiB: 32768 }), /~ spec\.memory: 32MiB → 64MiB \(drift\) \[live\]/],
    ['setmaxmem --config', (d) => ({ ...d, maxMemoryKiB: 131072 }), /~ spec\.maxMemory: 128MiB → 64MiB \(drift\) \[restart\]/],
    ['desc --config', (d) => ({ ...d, description: 'changed by hand' }), /~ spec\.description: "changed by hand" → \(none\)|- spec\.description: "changed by hand" \(drift\)/],
    ['detach-disk --config', (d) => ({ ...d, disks: d.disks.slice(0, 1) }), /\+ spec\.disks\[1\]\.volume: "vftest-vmd-data" \(drift\) \[live\]/],
    ['attach-disk --config', (d) => ({ ...d, disks: [...d.disks, { path: '/tmp/x.img', format: 'raw', bus: 'virtio', target: 'vdc' }] }), /- spec\.disks\[vdc\]: .*\(drift\) \[live\]/],
    ['disk bus', (d) => ({ ...d, disks: d.disks.map((x, i) => (i === 1 ? { ...x, bus: 'sata', target: 'sda' } : x)) }), /~ spec\.disks\[1\]\.bus: "sata" → "virtio" \(drift\) \[restart\]/],
    ['boot order', (d) => ({ ...d, disks: d.disks.map((x, i) => ({ ...x, bootOrder: i === 1 ? 1 : undefined })) }), /spec\.disks\[1\]\.boot: 1 \(drift\) \[restart\]/],
    ['disk source', (d) => ({ ...d, disks: d.disks.map((x, i) => (i === 1 ? { ...x, path: '/tmp/other.img' } : x)) }), /~ spec\.disks\[1\]\.path: "\/tmp\/other\.img" → "\/srv\/pools\/vmd\/vftest-vmd-data\.img" \(drift\) \[restart\]/],
    ['NIC model', (d) => ({ ...d, nics: d.nics.map((n, i) => (i === 0 ? { ...n, model: 'rtl8139' } : n)) }), /~ spec\.nics\[0\]\.model: "rtl8139" → "virtio" \(drift\) \[restart\]/],
    ['NIC MAC', (d) => ({ ...d, nics: d.nics.map((n, i) => (i === 0 ? { ...n, mac: '52:54:00:de:ad:01' } : n)) }), /~ spec\.nics\[0\]\.mac: "52:54:00:de:ad:01" → "52:54:00:[0-9a-f:]{8}" \(drift\) \[restart\]/],
    ['NIC network', (d) => ({ ...d, nics: d.nics.map((n, i) => (i === 1 ? { ...n, network: `${P}-a` } : n)) }), /~ spec\.nics\[1\]\.network: "vftest-vmd-a" → "vftest-vmd-b" \(drift\) \[restart\]/],
    ['detach-interface --config', (d) => ({ ...d, nics: d.nics.slice(1) }), /\+ spec\.nics\[0\]\.network: "vftest-vmd-a" \(drift\) \[live\]/],
    ['attach-interface --config', (d) => ({ ...d, nics: [...d.nics, { network: `${P}-a`, model: 'rtl8139', mac: '52:54:00:de:ad:02' }] }), /- spec\.nics\[52:54:00:de:ad:02\]: .*\(drift\) \[live\]/],
  ];
  for (const [what, mutate, line] of cases) {
    it(`${what}: shown as drift, redefined, read back equal, then converged`, async () => {
      const before = structuredClone(vm().def);
      edit(mutate);
      const p = await plan();
      const c = p.changes.find((x) => x.name === VM);
      expect(c, renderPlan(p, plain)).toBeDefined();
      expect(c!.drift).toBe(true);
      expect(c!.reason).toMatch(/drift/);
      expect(c!.steps.map((s) => s.op)).toContain('vm.define');
      expect(renderPlan(p, plain)).toMatch(line);
      expect((await run()).outcome).toBe('succeeded');
      const after = vm().def;
      expect({ ...after, marker: undefined, uuid: undefined }).toEqual({ ...before, marker: undefined, uuid: undefined });
      expect((await plan()).changes).toEqual([]);
    });
  }

  it('no change and no call beyond the reads when the definition matches', async () => {
    const m = fx.host.mutationCount();
    const r = await run();
    expect(r.plan.changes).toEqual([]);
    expect(fx.host.mutationCount()).toBe(m);
  });
});

describe('stable MACs for NICs declared without one', () => {
  it('keeps the generated MACs across a vCPU edit, a NIC added and a disk added', async () => {
    const first = macs();
    expect(first.every((m) => /^52:54:00:/.test(m ?? ''))).toBe(true);
    await run({ vcpus: 2 });
    expect(macs()).toEqual(first);
    await run({ vcpus: 2, nics: `[{network: ${P}-a}, {network: ${P}-b, model: e1000}, {network: ${P}-a}]` });
    expect(macs().slice(0, 2)).toEqual(first);
    expect(macs()[2]).toMatch(/^52:54:00:/);
    expect(new Set(macs()).size).toBe(3);
    const three = macs();
    await run({ vcpus: 2, nics: `[{network: ${P}-a}, {network: ${P}-b, model: e1000}, {network: ${P}-a}]`, disks: `[{volume: ${P}-root, boot: 1}]` });
    expect(macs()).toEqual(three);
    // recorded, for plan and status
    const rec = await fx.store.resources.get(resourceRef('VirtualMachine', VM));
    expect((rec!.details.facts as { nics: { mac: string }[] }).nics.map((n) => n.mac)).toEqual(three);
  });

  it('removing nics[0] removes that NIC (by MAC), the other keeps its MAC and model', async () => {
    const [a, b] = macs();
    const p = await plan({ nics: `[{network: ${P}-b, model: e1000}]` });
    const c = p.changes.find((x) => x.name === VM)!;
    expect(c.fields.map((f) => f.field)).toEqual([`spec.nics[${a}]`]);
    expect(renderPlan(p, plain)).toContain(`- spec.nics[${a}]: {"network":"vftest-vmd-a","model":"virtio","mac":"${a}"} [live]`);
    await run({ nics: `[{network: ${P}-b, model: e1000}]` });
    expect(vm().def.nics).toEqual([{ network: `${P}-b`, model: 'e1000', mac: b }]);
  });

  it('a NIC whose MAC was changed by hand gets the recorded one back', async () => {
    const [a] = macs();
    edit((d) => ({ ...d, nics: d.nics.map((n, i) => (i === 0 ? { ...n, mac: '52:54:00:de:ad:03' } : n)) }));
    await run();
    expect(macs()[0]).toBe(a);
  });
});

describe('live or restart, per change of a running VM', () => {
  it('plugs vCPUs within maxVcpus live and changes memory within maxMemory live', async () => {
    await run({ maxVcpus: 4, maxMemory: '256MiB' }); // the maxima themselves need a restart
    fx.host.domains.get(VM)!.active = false;
    await fx.host.startDomain(VM); // restarted: the live definition has the maxima
    const p = await plan({ maxVcpus: 4, maxMemory: '256MiB', vcpus: 3, memory: '128MiB', description: 'hello' });
    const text = renderPlan(p, plain);
    expect(text).toContain('~ spec.vcpus: 1 → 3 [live]');
    expect(text).toContain('~ spec.memory: 64MiB → 128MiB [live]');
    expect(text).toContain('+ spec.description: "hello" [live]');
    expect(text).not.toMatch(/restart required/);
    fx.host.calls = [];
    expect((await run({ maxVcpus: 4, maxMemory: '256MiB', vcpus: 3, memory: '128MiB', description: 'hello' })).outcome).toBe('succeeded');
    expect(fx.host.calls).toEqual(expect.arrayContaining([`setDomainVcpus:${VM}`, `setDomainMemory:${VM}`, `setDomainDescription:${VM}`]));
    expect(vm().live).toMatchObject({ vcpus: 3, memoryKiB: 131072, description: 'hello' });
    expect(vm().def).toMatchObject({ vcpus: 3, memoryKiB: 131072, description: 'hello', maxVcpus: 4 });
    const rec = await fx.store.resources.get(resourceRef('VirtualMachine', VM));
    expect(rec!.details.facts).not.toHaveProperty('restartRequired');
  });

  it('marks what needs a restart, keeps the mark in the record and the plan until the domain restarts', async () => {
    const id = fx.host.domains.get(VM)!.id;
    const p = await plan({ vcpus: 2 });
    const text = renderPlan(p, plain);
    expect(text).toContain('~ spec.vcpus: 1 → 2 [restart]');
    expect(text).toContain('~ spec.maxVcpus: 1 → 2 [restart]');
    expect(text).toMatch(/note: restart required for spec\.vcpus \(running with 1, defined 2\), spec\.maxVcpus \(running with 1, defined 2\)/);
    expect((await run({ vcpus: 2 })).outcome).toBe('succeeded');
    expect(vm().live!.vcpus).toBe(1);
    expect(vm().def.vcpus).toBe(2);
    const rec = await fx.store.resources.get(resourceRef('VirtualMachine', VM));
    expect(rec!.details.facts).toMatchObject({ restartRequired: { fields: ['spec.vcpus', 'spec.maxVcpus'], domainId: id, running: { 'spec.vcpus': 1 }, defined: { 'spec.vcpus': 2 } } });
    const again = await plan({ vcpus: 2 });
    expect(again.noop).toBe(true);
    expect(again.notices).toEqual([`VirtualMachine/${VM}: restart required for spec.vcpus (running with 1, defined 2), spec.maxVcpus (running with 1, defined 2)`]);
    expect(renderPlan(again, plain)).not.toContain('No changes. Infrastructure matches');
    // the guest is restarted outside virtform (destroy + start): a new domain id, the mark is gone
    await fx.host.stopDomain(VM);
    await fx.host.startDomain(VM);
    const after = await plan({ vcpus: 2 });
    expect(after.notices).toEqual([]);
    expect(renderPlan(after, plain)).toBe('No changes. Infrastructure matches the manifests.\n');
  });

  it('a vCPU unplug is a restart change (QEMU refuses it without the guest)', async () => {
    await run({ vcpus: 2, maxVcpus: 4 });
    await fx.host.stopDomain(VM);
    await fx.host.startDomain(VM);
    const text = renderPlan(await plan({ vcpus: 1, maxVcpus: 4 }), plain);
    expect(text).toContain('~ spec.vcpus: 2 → 1 [restart]');
    expect((await run({ vcpus: 1, maxVcpus: 4 })).outcome).toBe('succeeded');
    expect(vm().live!.vcpus).toBe(2);
  });

  it('restartPolicy OnChange restarts the VM gracefully after a restart-requiring change', async () => {
    const id = vm().id;
    const p = await plan({ vcpus: 2, restartPolicy: 'OnChange' });
    const c = p.changes.find((x) => x.name === VM)!;
    expect(c.steps.map((s) => s.op)).toEqual(['vm.define', 'vm.stop', 'vm.start']);
    expect(c.steps[1]).toMatchObject({ graceful: true });
    expect(renderPlan(p, plain)).toMatch(/shut down \(ACPI\) and forced off/);
    expect((await run({ vcpus: 2, restartPolicy: 'OnChange' })).outcome).toBe('succeeded');
    expect(vm().id).not.toBe(id);
    expect(vm().live!.vcpus).toBe(2);
    expect((await fx.store.resources.get(resourceRef('VirtualMachine', VM)))!.details.facts).not.toHaveProperty('restartRequired');
    expect((await plan({ vcpus: 2, restartPolicy: 'OnChange' })).notices).toEqual([]);
  });

  it('a domain of the older shape (no balloon) is planned once as a restart change', async () => {
    // as an older virtform left it: no balloon, nothing recorded about one
    vm().balloon = 'none';
    const rec = (await fx.store.resources.get(resourceRef('VirtualMachine', VM)))!;
    const { balloon: _b, ...facts } = rec.details.facts as Record<string, unknown>;
    await fx.store.resources.upsert({ host: LOCAL_HOST, kind: 'VirtualMachine', name: VM, details: { ...rec.details, facts } });
    const p = await plan();
    expect(renderPlan(p, plain)).toContain('~ domain.memballoon: "none" → "virtio" [restart]');
    expect(p.changes[0]!.drift).toBe(false); // not drift: an older virtform defined it so
    await run();
    expect((await plan()).changes).toEqual([]);
  });
});

describe('a plan that forces a running VM off says so', () => {
  it('notes it on a prune of the running VM', async () => {
    const p = await plan();
    expect(p.changes).toEqual([]);
    const pruned = await fx.plan(base());
    const c = pruned.changes.find((x) => x.name === VM)!;
    expect(c.action).toBe('delete');
    // Deleting a running VM shuts it down first (ACPI, up to --shutdown-timeout), then forces it off.
    expect(renderPlan(pruned, plain)).toContain('note: the running VM is shut down (ACPI) and forced off if it is still running after --shutdown-timeout');
    expect(c.steps).toEqual([{ op: 'vm.delete', graceful: true }]);
    const forced = await fx.plan(undefined, { gracefulStop: false });
    expect(renderPlan(forced, plain)).toContain('note: the running VM is forced off (no graceful shutdown)');
    expect(forced.changes.find((x) => x.name === VM)!.steps).toEqual([{ op: 'vm.delete', graceful: false }]);
  });
});

describe('adopting an existing domain', () => {
  it('redefines it with the manifest config, keeps its UUID and adds the marker', async () => {
    const uuid = vm().uuid;
    await fx.store.resources.delete(resourceRef('VirtualMachine', VM)); // now foreign
    edit((d) => ({ ...d, vcpus: 3, maxVcpus: 3, marker: { kind: 'VirtualMachine', name: 'someone-else', specHash: 'x' } }));
    expect((await plan()).changes.find((x) => x.name === VM)!.action).toBe('conflict');
    const p = await plan({ adopt: true });
    const c = p.changes.find((x) => x.name === VM)!;
    expect(c.adopt).toBe(true);
    expect(c.fields).toContainEqual(expect.objectContaining({ field: 'spec.vcpus', before: 3, after: 1 }));
    expect((await run({ adopt: true })).outcome).toBe('succeeded');
    expect(vm().uuid).toBe(uuid);
    expect(vm().def.vcpus).toBe(1);
    expect(vm().def.marker).toMatchObject({ kind: 'VirtualMachine', name: VM });
    expect((await plan({ adopt: true })).changes).toEqual([]);
  });
});

describe('growing a volume attached to a running VM', () => {
  it('grows it through the domain (block resize), not the volume API', async () => {
    fx.host.calls = [];
    const r = await run({ dataCapacity: '48MiB' });
    expect(r.outcome, JSON.stringify([...r.applied!.failed])).toBe('succeeded');
    expect(fx.host.calls).toContain(`resizeDomainDisk:${VM}`);
    expect(fx.host.calls).not.toContain(`resizeVolume:${P}-data.img`);
    expect(fx.host.volumes.get(`${P}-pool`)!.get(`${P}-data.img`)!.capacityBytes).toBe(48 * 1024 * 1024);
  });

  it('with state: stopped in the same edit, stops the VM first, then resizes the volume', async () => {
    const order: string[] = [];
    const r = await fx.reconcile(files({ dataCapacity: '48MiB', state: 'stopped' }), {
      onEvent: (e) => { if (e.type === 'start') order.push(`${e.step.key}:${e.step.op.op}`); },
    });
    expect(r.outcome, JSON.stringify([...r.applied!.failed])).toBe('succeeded');
    expect(order.indexOf(`VirtualMachine/${VM}:vm.stop`)).toBeLessThan(order.indexOf(`Volume/${P}-data:volume.resize`));
    expect(fx.host.calls).toContain(`resizeVolume:${P}-data.img`);
    expect(fx.host.volumes.get(`${P}-pool`)!.get(`${P}-data.img`)!.capacityBytes).toBe(48 * 1024 * 1024);
  });
});
