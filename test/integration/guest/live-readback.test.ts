/**
 * Live changes read back with booted guests (issue 18), driven by manifests on qemu:///system: two
 * tiny guests (scripts/build-tiny-guest.sh, whose initramfs loads virtio_balloon) with memory <
 * maxMemory on an isolated DHCP network; one boots with `modprobe.blacklist=virtio_balloon`, which
 * the guest's /init honours, so it has no balloon driver.
 *
 *  - a `[live]` memory change: the guest with the driver applies it (virsh dommemstat `actual` is
 *    the target) and is not restart required; the one without keeps its memory and is marked
 *    restart required naming what it runs with and what was asked;
 *  - a DHCP lease from before the VM's last start is not its address: after the guest is destroyed
 *    and started again by virtform, `status --json` does not show the old (still listed, unexpired)
 *    lease while the new boot has not asked for one yet; `reconcile --wait` then returns with the
 *    renewed lease.
 *
 * Everything is named vftest-bal-*; the network (its own 10.200.x.0/24) has no <forward>.
 * Domain type: TCG unless VFTEST_GUEST_VIRT=kvm.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { writeManifests } from '../../support/manifests.js';
import { runCli } from '../../support/cli.js';
import { useSuite } from '../../support/suite.js';
import { virsh } from '../../support/virsh.js';
import { assertSubnetFree, dhcpLeases, domMemStat, GUEST_VIRT, TINY_CMDLINE, tinyGuestFiles, type TinyGuestFiles } from '../../support/guest.js';

const N = useSuite('bal', {
  manifestDir: 'm', 
  setup: () => {
    files = tinyGuestFiles(P);
    assertSubnetFree(SUBNET);
  },
  setupTimeoutMs: 300_000,
});
const P = N.base;
const NET = `${P}-net`;
const DRV = `${P}-drv`;
const NODRV = `${P}-nodrv`;
const MAC: Record<string, string> = { [DRV]: N.mac(1), [NODRV]: N.mac(2) };
const SUBNET = N.subnet();
const CMDLINE = TINY_CMDLINE;
const MiB = 1024;

let files: TinyGuestFiles | undefined;

function manifests(memory: string): Record<string, string> {
  const vm = (name: string, cmdline: string) => `apiVersion: virtform.dev/v1
kind: VirtualMachine
metadata: {name: ${name}}
spec:
  vcpus: 1
  memory: ${memory}
  maxMemory: 192MiB
  state: running
  boot:
    kernel: ${files!.kernel}
    initrd: ${files!.initrd}
    cmdline: "${cmdline}"
  nics: [{network: ${NET}, mac: "${MAC[name]}"}]
`;
  return {
    'net.yaml': `apiVersion: virtform.dev/v1
kind: Network
metadata: {name: ${NET}}
spec: {mode: isolated, cidr: ${SUBNET}.0/24, dhcp: {start: ${SUBNET}.100, end: ${SUBNET}.199}, autostart: false}
`,
    'vms.yaml': `${vm(DRV, CMDLINE)}---\n${vm(NODRV, `${CMDLINE} modprobe.blacklist=virtio_balloon`)}`,
  };
}

const cli = (args: string[], timeoutMs?: number) => runCli([...args, '--db', N.db], {}, timeoutMs);
interface NicJson { mac: string; addresses: { ip: string; source: string }[] }
interface Row { name: string; restartRequired: { fields: string[]; running: Record<string, number>; defined: Record<string, number> } | null; addresses: NicJson[] | null; addressesReady: boolean | null }
async function statusRow(name: string): Promise<Row> {
  const st = await cli(['status', N.mdir, '--json']);
  expect(st.code, st.stderr).toBe(0);
  return (JSON.parse(st.stdout) as { resources: Row[] }).resources.find((r) => r.name === name)!;
}
/** Polls dommemstat until `actual` is `want` KiB (a balloon driver moves gradually) or the time is up. */
async function balloonActual(name: string, want: number, ms: number): Promise<number | undefined> {
  const end = Date.now() + ms;
  let actual = domMemStat(name).actual;
  while (actual !== want && Date.now() < end) {
    await new Promise((r) => setTimeout(r, 500));
    actual = domMemStat(name).actual;
  }
  return actual;
}

afterAll(() => {
  files?.remove();
});

describe.sequential(`live changes read back with booted tiny guests (${GUEST_VIRT})`, () => {
  it('boots both guests to their DHCP lease; the balloon driver takes the boot target, the blacklisted guest keeps maxMemory', async () => {
    writeManifests(N.mdir, manifests('128MiB'));
    const t0 = Date.now();
    const r = await cli(['reconcile', N.mdir, '--domain-type', GUEST_VIRT, '--wait', '--wait-timeout', '400', '--json'], 460_000);
    expect(r.code, r.stderr + r.stdout).toBe(0);
    expect((JSON.parse(r.stdout) as { wait: { outcome: string } }).wait.outcome).toBe('ready');
    // The guest asks for its lease after /init loaded its modules: the driver is there by now.
    const drv = await balloonActual(DRV, 128 * MiB, 30_000);
    // eslint-disable-next-line no-console
    console.log(`[live-readback] ${GUEST_VIRT}: two guests to their leases ${Date.now() - t0} ms; balloon ${DRV} ${drv} KiB, ${NODRV} ${domMemStat(NODRV).actual} KiB`);
    expect(drv).toBe(128 * MiB);
    expect(domMemStat(NODRV).actual).toBe(192 * MiB);
  }, 500_000);

  it('a [live] memory change: applied by the guest with a balloon driver, restart required naming both values without one', async () => {
    writeManifests(N.mdir, manifests('96MiB'));
    const t0 = Date.now();
    const r = await cli(['reconcile', N.mdir, '--shutdown-timeout', '0']);
    const ms = Date.now() - t0;
    expect(r.code, r.stderr + r.stdout).toBe(0);
    // Both guests get the same live change (one plan line each).
    expect(r.stdout.split('spec.memory: 128MiB → 96MiB [live]').length - 1, r.stdout).toBe(2);
    // With the driver: the balloon is at the target when reconcile returns (it waited for it).
    const drvActual = domMemStat(DRV).actual;
    const nodrvActual = domMemStat(NODRV).actual;
    // eslint-disable-next-line no-console
    console.log(`[live-readback] reconcile with two live memory changes ${ms} ms; actual ${DRV} ${drvActual} KiB, ${NODRV} ${nodrvActual} KiB`);
    expect(drvActual).toBe(96 * MiB);
    expect((await statusRow(DRV)).restartRequired).toBeNull();
    // Without: the balloon stays at maxMemory; restart required with what it runs and what was asked.
    expect(nodrvActual).toBe(192 * MiB);
    const rr = (await statusRow(NODRV)).restartRequired;
    expect(rr?.fields).toEqual(['spec.memoryKiB']);
    expect(rr?.running['spec.memoryKiB']).toBe(192 * MiB);
    expect(rr?.defined['spec.memoryKiB']).toBe(96 * MiB);
    const dry = await cli(['reconcile', N.mdir, '--dry-run', '--detailed-exitcode']);
    expect(dry.code, dry.stdout + dry.stderr).toBe(0);
    expect(dry.stdout).toContain(`VirtualMachine/${NODRV}: restart required for spec.memory (running with 192MiB, defined 96MiB)`);
    expect(dry.stdout).not.toContain(`VirtualMachine/${DRV}: restart required`);
  }, 180_000);

  it('a lease from before the VM\'s last start is not its address; the new boot\'s lease is', async () => {
    const old = dhcpLeases(NET).find((l) => l.mac === MAC[DRV]);
    expect(old, virsh('net-dhcp-leases', NET)).toBeDefined();
    expect((await statusRow(DRV)).addressesReady).toBe(true);
    virsh('destroy', DRV);
    // Give the clock a second: lease starts and start times are whole seconds.
    await new Promise((r) => setTimeout(r, 1500));
    const start = await cli(['reconcile', N.mdir, '--domain-type', GUEST_VIRT, '--shutdown-timeout', '0']);
    expect(start.code, start.stderr + start.stdout).toBe(0);
    const row = await statusRow(DRV);
    // Deterministic only while the new boot has not asked for a lease yet (its /init looks for a
    // seed ~10 s first, after a TCG boot): the old lease must still be the one libvirt lists.
    const listed = dhcpLeases(NET).find((l) => l.mac === MAC[DRV]);
    expect(listed, 'the guest renewed its lease before status ran: the check is void').toEqual(old);
    expect(row.addressesReady).toBe(false);
    expect(row.addresses?.[0]?.addresses.filter((a) => a.source === 'lease')).toEqual([]);

    const t0 = Date.now();
    const w = await cli(['reconcile', N.mdir, '--domain-type', GUEST_VIRT, '--wait', '--wait-timeout', '300', '--json'], 360_000);
    expect(w.code, w.stderr + w.stdout).toBe(0);
    const fresh = dhcpLeases(NET).find((l) => l.mac === MAC[DRV])!;
    // eslint-disable-next-line no-console
    console.log(`[live-readback] restart -> new lease ${Date.now() - t0} ms (old expiry ${old!.expiry}, new ${fresh.expiry})`);
    expect(fresh.expiry > old!.expiry).toBe(true);
    const after = await statusRow(DRV);
    expect(after.addressesReady).toBe(true);
    expect(after.addresses?.[0]?.addresses).toEqual([expect.objectContaining({ ip: fresh.ip, source: 'lease' })]);
  }, 420_000);
});
