/**
 * VirtualMachine against the real libvirtd (qemu:///system, TCG domains without an OS): the drift
 * hunt for every VM field (changed with `virsh … --config` or a redefinition, seen by a dry-run as
 * drift, corrected by reconcile, read back equal to the manifest), stable MACs, NIC removal by
 * MAC, live and restart changes, the restart-required mark, and growing a volume attached to a
 * running VM.
 */
import { describe, expect, it } from 'vitest';
import { parseDomainXml } from '../../../src/libvirt/xml/index.js';
import { redefineDomain, virsh } from '../../support/virsh.js';
import { useSuite } from '../../support/suite.js';
import { scenario, type Scenario } from '../../support/scenario.js';
import { parse } from 'yaml';
import type { VmDisk, VmNic } from '../../../src/manifest/types.generated.js';

const N = useSuite('vmdrift', {
  setup: async () => {
    await reconcileOk();
    macs = definition().nics.map((n) => n.mac);
  },
});
const P = N.base;
const VM = `${P}-vm`;
const POOL_DIR = `/var/lib/virtform-test/${P}-pool`;

interface Opts { vcpus?: number; memory?: string; maxMemory?: string; nics?: string; disks?: string; dataCapacity?: string; state?: string; extraVolume?: boolean }
function files(o: Opts = {}): Scenario {
  return scenario().in('base.yaml')
    .pool(`${P}-pool`, { path: POOL_DIR })
    .volume(`${P}-root`)
    .volume(`${P}-data`, { capacity: o.dataCapacity ?? '16MiB', format: 'raw' })
    .volume(`${P}-extra`, { format: 'raw' })
    .network(`${P}-a`, { cidr: N.cidr(0), autostart: false })
    .network(`${P}-b`, { cidr: N.cidr(1), autostart: false })
    .in('vm.yaml')
    .vm(VM, {
      vcpus: o.vcpus ?? 1, maxVcpus: 2, memory: o.memory ?? '64MiB', maxMemory: o.maxMemory ?? '128MiB', state: o.state ?? 'running',
      disks: parse(o.disks ?? `[{volume: ${P}-root, boot: 1}, {volume: ${P}-data}]`) as VmDisk[],
      nics: parse(o.nics ?? `[{network: ${P}-a}, {network: ${P}-b, model: e1000}]`) as VmNic[],
    });
}

const cli = (args: string[]) => N.cli(args);
async function reconcileOk(o: Opts = {}): Promise<string> {
  return (await N.reconcileOk(files(o), ['--domain-type', 'qemu'])).stdout;
}
async function dryRun(o: Opts = {}): Promise<{ code: number | null; stdout: string }> {
  const r = await N.dryRun(files(o));
  return { code: r.code, stdout: r.stdout + r.stderr };
}
const definition = () => parseDomainXml(virsh('dumpxml', '--inactive', VM));
const liveXml = () => parseDomainXml(virsh('dumpxml', VM));
/** Redefine the persistent definition with `edit` applied to its XML (what `virsh edit` does). */
const redefine = (edit: (xml: string) => string): void => redefineDomain(VM, edit, N.work);
/** What the manifest says, as it reads back from the definition. */
const manifestView = (macs: string[]) => ({
  vcpus: 1, maxVcpus: 2, memoryKiB: 65536, maxMemoryKiB: 131072, balloon: 'virtio', description: undefined,
  disks: [
    { path: `${POOL_DIR}/${P}-root.qcow2`, target: 'vda', bus: 'virtio', bootOrder: 1, format: 'qcow2' },
    { path: `${POOL_DIR}/${P}-data.img`, target: 'vdb', bus: 'virtio', format: 'raw' },
  ],
  nics: [
    { network: `${P}-a`, mac: macs[0], model: 'virtio', type: 'network' },
    { network: `${P}-b`, mac: macs[1], model: 'e1000', type: 'network' },
  ],
});
const view = (d: ReturnType<typeof definition>) => ({
  vcpus: d.vcpus, maxVcpus: d.maxVcpus, memoryKiB: d.memoryKiB, maxMemoryKiB: d.maxMemoryKiB, balloon: d.balloon,
  description: d.description, disks: d.disks, nics: d.nics,
});

let macs: string[] = [];

describe('VM drift hunt on qemu:///system', () => {
  it('starts converged: the definition reads back as the manifest, a dry-run has nothing to do', async () => {
    expect(macs.every((m) => /^52:54:00:/.test(m))).toBe(true);
    expect(view(definition())).toEqual(manifestView(macs));
    const dry = await dryRun();
    expect(dry.code, dry.stdout).toBe(0);
    expect(dry.stdout).toContain('No changes.');
  });

  const xmlNic = (xml: string, i: number, f: (nic: string) => string): string => {
    let n = -1;
    return xml.replace(/<interface[\s\S]*?<\/interface>/g, (m) => (++n === i ? f(m) : m));
  };
  const xmlDisk = (xml: string, target: string, f: (disk: string) => string): string =>
    xml.replace(/<disk[\s\S]*?<\/disk>/g, (m) => (m.includes(`dev='${target}'`) ? f(m) : m));

  const hunt: [string, () => void, RegExp][] = [
    ['virsh setvcpus --config', () => virsh('setvcpus', VM, '2', '--config'), /~ spec\.vcpus: 2 → 1 \(drift\)/],
    ['virsh setmem --config', () => virsh('setmem', VM, '49152', '--config'), /~ spec\.memory: 48MiB → 64MiB \(drift\)/],
    ['virsh setmaxmem --config', () => virsh('setmaxmem', VM, '262144', '--config'), /~ spec\.maxMemory: 256MiB → 128MiB \(drift\)/],
    ['virsh desc --config', () => virsh('desc', VM, '--config', 'set by hand'), /spec\.description: "set by hand".*\(drift\)/],
    ['virsh detach-disk --config', () => virsh('detach-disk', VM, 'vdb', '--config'), /\+ spec\.disks\[1\]\.path: .*\(drift\)/],
    ['virsh attach-disk --config', () => virsh('attach-disk', VM, `${POOL_DIR}/${P}-extra.img`, 'vdc', '--config', '--subdriver', 'raw'), /- spec\.disks\[vdc\]: .*\(drift\)/],
    ['disk bus (redefined)', () => redefine((x) => xmlDisk(x, 'vdb', (d) => d.replace(/<target dev='vdb' bus='virtio'\/>/, "<target dev='sdb' bus='sata'/>").replace(/<address [^>]*\/>/, ''))), /~ spec\.disks\[1\]\.bus: "sata" → "virtio" \(drift\)/],
    ['boot order (redefined)', () => redefine((x) => xmlDisk(xmlDisk(x, 'vda', (d) => d.replace(/\s*<boot order='1'\/>/, '')), 'vdb', (d) => d.replace(/<\/disk>/, "<boot order='1'/></disk>"))), /spec\.disks\[\d\]\.boot: .*\(drift\)/],
    ['disk source (redefined)', () => redefine((x) => x.replace(`${POOL_DIR}/${P}-data.img`, `${POOL_DIR}/${P}-extra.img`)), /~ spec\.disks\[1\]\.path: ".*-extra\.img" → ".*-data\.img" \(drift\)/],
    ['NIC model (redefined)', () => redefine((x) => xmlNic(x, 0, (n) => n.replace(/<model type='virtio'\/>/, "<model type='rtl8139'/>"))), /~ spec\.nics\[0\]\.model: "rtl8139" → "virtio" \(drift\)/],
    ['NIC MAC (redefined)', () => redefine((x) => x.replace(macs[0]!, '52:54:00:de:ad:01')), /~ spec\.nics\[0\]\.mac: "52:54:00:de:ad:01" → ".*" \(drift\)/],
    ['NIC network (redefined)', () => redefine((x) => xmlNic(x, 1, (n) => n.replace(`network='${P}-b'`, `network='${P}-a'`))), new RegExp(`~ spec\\.nics\\[1\\]\\.network: "${P}-a" → "${P}-b" \\(drift\\)`)],
    ['virsh detach-interface --config', () => virsh('detach-interface', VM, 'network', '--mac', macs[1]!, '--config'), new RegExp(`\\+ spec\\.nics\\[1\\]\\.network: "${P}-b" \\(drift\\)`)],
    ['virsh attach-interface --config', () => virsh('attach-interface', VM, 'network', `${P}-a`, '--config'), /- spec\.nics\[52:54:00:[0-9a-f:]+\]: .*"model":"rtl8139".*\(drift\)/],
  ];
  for (const [what, mutate, line] of hunt) {
    it(`${what}: dry-run exit 3 with the field as drift, reconcile, read-back equals the manifest`, async () => {
      mutate();
      const dry = await dryRun();
      expect(dry.code, dry.stdout).toBe(3);
      expect(dry.stdout).toMatch(line);
      await reconcileOk();
      expect(view(definition())).toEqual(manifestView(macs));
      const again = await dryRun();
      expect(again.code, again.stdout).toBe(0);
    });
  }
});

describe('MACs, live and restart changes, restart-required', () => {
  it('keeps the generated MACs across a vCPU edit, a NIC added and a disk added; removes a NIC by MAC', async () => {
    await reconcileOk({ vcpus: 2 });
    expect(definition().nics.map((n) => n.mac)).toEqual(macs);
    await reconcileOk({ vcpus: 2, nics: `[{network: ${P}-a}, {network: ${P}-b, model: e1000}, {network: ${P}-b}]` });
    const three = definition().nics.map((n) => n.mac);
    expect(three.slice(0, 2)).toEqual(macs);
    await reconcileOk({ vcpus: 2, nics: `[{network: ${P}-a}, {network: ${P}-b, model: e1000}, {network: ${P}-b}]`, disks: `[{volume: ${P}-root, boot: 1}, {volume: ${P}-data}, {volume: ${P}-extra}]` });
    expect(definition().nics.map((n) => n.mac)).toEqual(three);
    // remove nics[0]: shown as that NIC going, the others keep MAC and model
    const dry = await dryRun({ vcpus: 2, nics: `[{network: ${P}-b, model: e1000}, {network: ${P}-b}]`, disks: `[{volume: ${P}-root, boot: 1}, {volume: ${P}-data}, {volume: ${P}-extra}]` });
    expect(dry.stdout).toContain(`- spec.nics[${macs[0]}]: {"network":"${P}-a","model":"virtio","mac":"${macs[0]}"}`);
    expect(dry.stdout, dry.stdout).not.toMatch(/spec\.nics\[0\]\.model/);
    await reconcileOk({ vcpus: 2, nics: `[{network: ${P}-b, model: e1000}, {network: ${P}-b}]`, disks: `[{volume: ${P}-root, boot: 1}, {volume: ${P}-data}, {volume: ${P}-extra}]` });
    expect(definition().nics.map((n) => [n.mac, n.model])).toEqual([[three[1], 'e1000'], [three[2], 'virtio']]);
    await reconcileOk(); // back to the manifest of the drift hunt (a NIC on a again: a fresh MAC)
    macs = definition().nics.map((n) => n.mac);
  });

  it('plans vCPU plug and memory within the maxima [live] and applies them to the running domain', async () => {
    // start from a domain booted with the current definition (the maxima are in it)
    virsh('destroy', VM);
    virsh('start', VM);
    const dry = await dryRun({ vcpus: 2, memory: '96MiB' });
    expect(dry.code).toBe(3);
    expect(dry.stdout, dry.stdout).toContain('~ spec.vcpus: 1 → 2 [live]');
    expect(dry.stdout).toContain('~ spec.memory: 64MiB → 96MiB [live]');
    expect(dry.stdout).not.toMatch(/restart required/);
    await reconcileOk({ vcpus: 2, memory: '96MiB' });
    expect(virsh('vcpucount', VM, '--live', '--current').trim()).toBe('2');
    expect(definition()).toMatchObject({ vcpus: 2, memoryKiB: 98304 });
    // Read back (issue 18): this guest boots nothing, so no balloon driver takes the new target;
    // the balloon stays where it was, and the VM is marked restart required with both values.
    const status = await cli(['status', '--json']);
    type Rr = { fields: string[]; running: Record<string, unknown>; defined: Record<string, unknown> } | null;
    const row = (JSON.parse(status.stdout) as { resources: { kind: string; name: string; restartRequired: Rr }[] }).resources.find((r) => r.name === VM);
    expect(row?.restartRequired?.fields).toEqual(['spec.memoryKiB']);
    expect(row?.restartRequired?.defined['spec.memoryKiB']).toBe(98304);
    expect(row?.restartRequired?.running['spec.memoryKiB']).not.toBe(98304);
    const plan = await dryRun({ vcpus: 2, memory: '96MiB' });
    expect(plan.stdout).toMatch(/restart required for spec\.memory \(running with \d+MiB, defined 96MiB\) \(the guest did not apply the memory change/);
  });

  it('marks a restart change [restart], keeps restart required in status and plans until virsh destroy + start', async () => {
    const dry = await dryRun({ vcpus: 1, memory: '96MiB', maxMemory: '192MiB' });
    expect(dry.stdout).toContain('~ spec.vcpus: 2 → 1 [restart]');
    expect(dry.stdout).toContain('~ spec.maxMemory: 128MiB → 192MiB [restart]');
    await reconcileOk({ vcpus: 1, memory: '96MiB', maxMemory: '192MiB' });
    expect(liveXml().vcpus).toBe(2);
    expect(definition().vcpus).toBe(1);
    const again = await dryRun({ vcpus: 1, memory: '96MiB', maxMemory: '192MiB' });
    expect(again.code).toBe(0);
    expect(again.stdout).toContain(`VirtualMachine/${VM}: restart required for spec.vcpus (running with 2, defined 1), spec.maxMemory (running with 128MiB, defined 192MiB)`);
    const status = await cli(['status']);
    expect(status.stdout).toMatch(/converged \(restart required\)/); // STATUS is derived from the host; the flag beside it
    const json = JSON.parse((await cli(['status', '--json'])).stdout) as { resources: { name: string; restartRequired: { fields: string[] } | null }[] };
    // The memory the guest did not take (previous case) is still pending on the same running domain.
    expect(json.resources.find((r) => r.name === VM)?.restartRequired?.fields).toEqual(['spec.vcpus', 'spec.maxMemoryKiB', 'spec.memoryKiB']);
    virsh('destroy', VM);
    virsh('start', VM);
    const after = await dryRun({ vcpus: 1, memory: '96MiB', maxMemory: '192MiB' });
    expect(after.code).toBe(0);
    expect(after.stdout).toContain('No changes.');
    const cleared = JSON.parse((await cli(['status', '--json'])).stdout) as { resources: { name: string; restartRequired: unknown }[] };
    expect(cleared.resources.find((r) => r.name === VM)?.restartRequired).toBeNull();
  });

  it('grows a volume attached to the running VM through the domain', async () => {
    await reconcileOk({ vcpus: 1, memory: '96MiB', maxMemory: '192MiB', dataCapacity: '32MiB' });
    expect(virsh('vol-info', '--bytes', '--pool', `${P}-pool`, `${P}-data.img`)).toMatch(/Capacity:\s+33554432 bytes/);
    expect(virsh('domblkinfo', VM, 'vdb')).toMatch(/Capacity:\s+33554432/);
    // and with state: stopped in the same edit: stopped first, then the volume grows
    const out = await reconcileOk({ vcpus: 1, memory: '96MiB', maxMemory: '192MiB', dataCapacity: '48MiB', state: 'stopped' });
    expect(out.indexOf(`stop domain VirtualMachine/${VM}`)).toBeLessThan(out.indexOf(`resize volume Volume/${P}-data`));
    expect(virsh('vol-info', '--bytes', '--pool', `${P}-pool`, `${P}-data.img`)).toMatch(/Capacity:\s+50331648 bytes/);
    expect(virsh('domstate', VM).trim()).toBe('shut off');
  });
});

