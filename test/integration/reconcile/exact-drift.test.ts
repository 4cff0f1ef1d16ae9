/**
 * Exact drift on qemu:///system (issue 18): the whole definition of a domain, network and pool is
 * compared with its baseline (libvirt's XML after virtform's last write), not a list of fields.
 * Changes outside the modelled fields (an added watchdog, a `<filesystem>` sharing the host's `/`,
 * `<on_reboot>`, a NIC's `<link state='down'/>`, a disk's `<readonly/>`, the owner marker
 * removed, a second DHCP range), autostart flips, a device attached live only, and objects made
 * transient (`undefine` while running) are seen by a dry-run as drift, named by XML path,
 * corrected by one reconcile, and `status` never says converged meanwhile.
 * Objects are vftest-exactdrift-*; the VM runs without an OS (TCG, blank disk).
 */
import { describe, expect, it } from 'vitest';
import { join } from 'node:path';
import { writeFileSync } from 'node:fs';
import { writeManifests } from '../../support/manifests.js';
import { runCli, virsh } from '../../support/real-host.js';
import { useSuite } from '../../support/suite.js';

const N = useSuite('exactdrift', {
  setup: async () => {
    writeManifests(N.mdir, MANIFESTS);
    await reconcileOk();
    // A no-op run records the no-op fast path's checks (issue 22): every change below is made to
    // definitions whose bytes the fast path would otherwise skip; each must still be seen.
    await reconcileOk();
  },
});
const P = N.base;
const VM = `${P}-vm`;
const NET = `${P}-net`;
const POOL = `${P}-pool`;
const POOL_DIR = `/var/lib/virtform-test/${P}-pool`;

const MANIFESTS = {
  'all.yaml': `apiVersion: virtform.dev/v1
kind: StoragePool
metadata: {name: ${POOL}}
spec: {path: ${POOL_DIR}, autostart: true}
---
apiVersion: virtform.dev/v1
kind: Volume
metadata: {name: ${P}-root}
spec: {pool: ${POOL}, capacity: 16MiB}
---
apiVersion: virtform.dev/v1
kind: Network
metadata: {name: ${NET}}
spec: {mode: isolated, cidr: 10.249.0.0/24, autostart: true, dhcp: {start: 10.249.0.100, end: 10.249.0.150}}
---
apiVersion: virtform.dev/v1
kind: VirtualMachine
metadata: {name: ${VM}}
spec:
  vcpus: 1
  memory: 64MiB
  state: running
  autostart: true
  disks: [{volume: ${P}-root, boot: 1}]
  nics: [{network: ${NET}}]
`,
};

const cli = (...args: string[]) => runCli([...args, '--db', N.db, '--shutdown-timeout', '0']);

async function reconcileOk(): Promise<void> {
  const r = await cli('reconcile', N.mdir, '--domain-type', 'qemu');
  expect(r.code, `${r.stdout}\n${r.stderr}`).toBe(0);
}
async function dryRun(): Promise<{ code: number | null; out: string }> {
  const r = await cli('reconcile', N.mdir, '--dry-run', '--detailed-exitcode', '--no-color');
  return { code: r.code, out: `${r.stdout}\n${r.stderr}` };
}
async function statuses(): Promise<Map<string, { status: string; reason: string | null }>> {
  const r = await runCli(['status', N.mdir, '--db', N.db, '--json']);
  const rows = (JSON.parse(r.stdout) as { resources: { kind: string; name: string; status: string; reason: string | null }[] }).resources;
  return new Map(rows.map((x) => [`${x.kind}/${x.name}`, { status: x.status, reason: x.reason }]));
}
function defineEdited(kind: 'domain' | 'net', xml: string): void {
  const f = join(N.work, `${kind}.xml`);
  writeFileSync(f, xml);
  virsh(kind === 'domain' ? 'define' : 'net-define', f);
}
const macOf = (xml: string): string => /<mac address='([^']+)'/.exec(xml)![1]!;
const uuidOf = (xml: string): string => /<uuid>([^<]+)<\/uuid>/.exec(xml)![1]!;

describe('exact drift: the whole definition is compared with its baseline', () => {
  it('sees changes outside the modelled fields and autostart flips, names them by XML path, and corrects them', async () => {
    const before = virsh('dumpxml', '--inactive', VM);
    const mac = macOf(before);
    const edited = before
      .replace('<on_reboot>restart</on_reboot>', '<on_reboot>destroy</on_reboot>')
      .replace(/(<disk type='file' device='disk'>[\s\S]*?)(<\/disk>)/, '$1<readonly/>$2')
      .replace(/(<interface type='network'>[\s\S]*?)(<\/interface>)/, "$1<link state='down'/>$2")
      .replace(/<vf:owner[^>]*\/>/, '')
      .replace('</devices>', "<watchdog model='i6300esb' action='reset'/><filesystem type='mount' accessmode='passthrough'><source dir='/'/><target dir='hostroot'/></filesystem></devices>");
    defineEdited('domain', edited);
    virsh('net-update', NET, 'add', 'ip-dhcp-range', "<range start='10.249.0.200' end='10.249.0.210'/>", '--config');
    virsh('autostart', '--disable', VM);
    virsh('net-autostart', '--disable', NET);
    virsh('pool-autostart', '--disable', POOL);

    const plan = await dryRun();
    expect(plan.code, plan.out).toBe(3);
    for (const line of [
      /devices\/watchdog added \(drift\)/,
      /devices\/filesystem\[target=hostroot\] added \(drift\)/,
      /on_reboot changed \(drift\)/,
      new RegExp(`devices/interface\\[mac=${mac}\\]/link added \\(drift\\)`),
      /devices\/disk\[target=vda\]\/readonly added \(drift\)/,
      /metadata(\/vf:owner)? removed \(drift\)/,
      /ip\/dhcp\/range\[2\] added \(drift\)/,
    ]) expect(plan.out).toMatch(line);
    expect(plan.out.match(/spec\.autostart: false → true \(drift\)/g)?.length, plan.out).toBe(3);

    // Status tells the plan's story: none of the three is converged.
    const st = await statuses();
    for (const k of [`VirtualMachine/${VM}`, `Network/${NET}`, `StoragePool/${POOL}`]) expect(st.get(k)?.status, k).toBe('drifted');

    await reconcileOk();
    const again = await dryRun();
    expect(again.code, again.out).toBe(0);
    const after = virsh('dumpxml', '--inactive', VM);
    for (const gone of ['<watchdog', '<filesystem', '<readonly/>', '<link ', '<on_reboot>destroy']) expect(after).not.toContain(gone);
    expect(after).toContain('<vf:owner');
    expect(macOf(after)).toBe(mac);
    expect(uuidOf(after)).toBe(uuidOf(before));
    expect(virsh('net-dumpxml', '--inactive', NET)).not.toContain('10.249.0.200');
    expect(virsh('dominfo', VM)).toMatch(/Autostart:\s+enable/);
    expect(virsh('net-info', NET)).toMatch(/Autostart:\s+yes/);
    expect(virsh('pool-info', POOL)).toMatch(/Autostart:\s+yes/);
  });

  it('sees a device attached to the running domain only (--live) and marks the VM for a restart', async () => {
    virsh('attach-interface', VM, 'network', NET, '--model', 'virtio', '--live');
    const live = virsh('dumpxml', VM);
    const macs = [...live.matchAll(/<mac address='([^']+)'/g)].map((m) => m[1]);
    const extra = macs.find((m) => !virsh('dumpxml', '--inactive', VM).includes(m!))!;
    const plan = await dryRun();
    expect(plan.code, plan.out).toBe(3);
    expect(plan.out).toMatch(new RegExp(`devices/interface\\[mac=${extra}\\] live only \\(drift\\)`));
    await reconcileOk();
    const again = await dryRun();
    expect(again.code, again.out).toBe(0);
    expect(again.out).toMatch(/restart required for .*devices \(live only\) \(running with "devices\/interface/);
  });

  it('defines again a running VM, an active network and an active pool made transient outside virtform', async () => {
    const dom = virsh('dumpxml', '--inactive', VM);
    const net = virsh('net-dumpxml', '--inactive', NET);
    const pool = virsh('pool-dumpxml', '--inactive', POOL);
    virsh('undefine', VM);
    virsh('net-undefine', NET);
    // libvirt refuses to undefine an active pool: the same pool started transient (pool-create).
    virsh('pool-destroy', POOL);
    virsh('pool-undefine', POOL);
    writeFileSync(join(N.work, 'pool.xml'), pool);
    virsh('pool-create', join(N.work, 'pool.xml'));
    expect(virsh('pool-info', POOL)).toMatch(/Persistent:\s+no/);
    expect(virsh('dominfo', VM)).toMatch(/Persistent:\s+no/);

    const plan = await dryRun();
    expect(plan.code, plan.out).toBe(3);
    expect(plan.out.match(/definition removed outside virtform \(drift\)/g)?.length, plan.out).toBe(3);
    const st = await statuses();
    for (const k of [`VirtualMachine/${VM}`, `Network/${NET}`, `StoragePool/${POOL}`]) expect(st.get(k)?.status, k).not.toBe('converged');

    // autostart: true works again (libvirt refuses it on a transient object).
    await reconcileOk();
    const again = await dryRun();
    expect(again.code, again.out).toBe(0);
    expect(virsh('dominfo', VM)).toMatch(/Persistent:\s+yes/);
    expect(virsh('net-info', NET)).toMatch(/Persistent:\s+yes/);
    expect(virsh('pool-info', POOL)).toMatch(/Persistent:\s+yes/);
    const after = virsh('dumpxml', '--inactive', VM);
    expect(uuidOf(after)).toBe(uuidOf(dom));
    expect(macOf(after)).toBe(macOf(dom));
    expect(uuidOf(virsh('net-dumpxml', '--inactive', NET))).toBe(uuidOf(net));
    expect(uuidOf(virsh('pool-dumpxml', '--inactive', POOL))).toBe(uuidOf(pool));
    expect(virsh('dominfo', VM)).toMatch(/Autostart:\s+enable/);
  });
});
