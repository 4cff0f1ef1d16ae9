/**
 * Hot-plug with a booted guest (issue 24; make test-e2e): the tiny guest (scripts/build-tiny-guest.sh:
 * a Debian kernel whose initramfs loads virtio_pci, virtio_blk and virtio_net; ACPI PCI hotplug is
 * built into the kernel) under TCG, driven by manifests on qemu:///system.
 *
 *  - three virtio disks attached live to the running guest: `[live]`, in the live and persistent
 *    definitions, no restart (same domain id);
 *  - the middle one removed: the guest completes the unplug (the live XML loses it within the
 *    detach timeout), the others keep vdb/vdd, no restart required;
 *  - a second NIC attached and detached live, the guest completing the detach;
 *  - a detach the guest cannot complete (the domain paused: no vCPU runs the ACPI handler):
 *    reported, restart required with the reason; `virtform restart` applies it and clears it.
 *
 * The timings (attach, detach round trips through `reconcile`) are printed `[hotplug-guest] …` and
 * copied into bench/results/hotplug.md. Everything is named vftest-hotguest-*.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { writeManifests } from '../../support/manifests.js';
import { runCli } from '../../support/cli.js';
import { useSuite } from '../../support/suite.js';
import { virsh } from '../../support/virsh.js';
import { assertSubnetFree, GUEST_VIRT, TINY_CMDLINE, tinyGuestFiles, type TinyGuestFiles } from '../../support/guest.js';

const N = useSuite('hotguest', {
  manifestDir: 'm',
  setup: () => {
    files = tinyGuestFiles(P);
    assertSubnetFree(N.subnet(0));
    assertSubnetFree(N.subnet(1));
  },
  setupTimeoutMs: 300_000,
});
const P = N.base;
const VM = `${P}-vm`;
const POOL = N.poolPath();
let files: TinyGuestFiles | undefined;
const disk = (v: string): string => `${POOL}/${P}-${v}.img`;

function manifests(o: { disks: string[]; nets: string[] }): Record<string, string> {
  const net = (n: string, i: number) => `---
apiVersion: virtform.dev/v1
kind: Network
metadata: {name: ${P}-${n}}
spec: {mode: isolated, cidr: ${N.cidr(i)}, dhcp: {start: ${N.subnet(i)}.100, end: ${N.subnet(i)}.199}, autostart: false}
`;
  return {
    'base.yaml': `apiVersion: virtform.dev/v1
kind: StoragePool
metadata: {name: ${P}-pool}
spec: {path: ${POOL}}
${['d1', 'd2', 'd3', 'd4'].map((v) => `---
apiVersion: virtform.dev/v1
kind: Volume
metadata: {name: ${P}-${v}}
spec: {pool: ${P}-pool, capacity: 8MiB, format: raw}
`).join('')}${net('a', 0)}${net('b', 1)}`,
    'vm.yaml': `apiVersion: virtform.dev/v1
kind: VirtualMachine
metadata: {name: ${VM}}
spec:
  vcpus: 1
  memory: 128MiB
  domainType: ${GUEST_VIRT}
  boot:
    kernel: ${files!.kernel}
    initrd: ${files!.initrd}
    cmdline: "${TINY_CMDLINE}"
  disks: [${o.disks.map((d) => `{volume: ${P}-${d}}`).join(', ')}]
  nics: [${o.nets.map((n, i) => `{network: ${P}-${n}, mac: "${N.mac(1, i)}"}`).join(', ')}]
`,
  };
}

const cli = (args: string[], timeoutMs?: number) => runCli([...args, '--db', N.db], {}, timeoutMs);
function disks(inactive: boolean): Record<string, string> {
  const out: Record<string, string> = {};
  for (const line of virsh('domblklist', VM, ...(inactive ? ['--inactive'] : [])).split('\n')) {
    const [t, src] = line.trim().split(/\s+/);
    if (t && src && src !== '-') out[t] = src;
  }
  return out;
}
const nets = (inactive: boolean): string[] => virsh('domiflist', VM, ...(inactive ? ['--inactive'] : [])).split('\n')
  .map((l) => l.trim().split(/\s+/)).filter((x) => x.length >= 5).map((x) => x[2]!);
const domId = (): string => virsh('domid', VM).trim();
/** Applies `m`: the step lines (stderr with --json), the whole reconcile's time, and the hot-plug steps' own times (--json). */
async function apply(m: { disks: string[]; nets: string[] }, extra: string[] = []): Promise<{ out: string; ms: number; steps: string }> {
  writeManifests(N.mdir, manifests(m));
  const t0 = Date.now();
  const r = await cli(['reconcile', N.mdir, '--json', ...extra], 300_000);
  const ms = Date.now() - t0;
  expect(r.code, r.stdout + r.stderr).toBe(0);
  const doc = JSON.parse(r.stdout) as { steps: { op: string; ms: number }[] };
  const steps = doc.steps.filter((x) => x.op === 'vm.attach' || x.op === 'vm.detach' || x.op === 'vm.define').map((x) => `${x.op} ${x.ms} ms`).join(', ');
  return { out: r.stderr, ms, steps };
}
interface Row { name: string; restartRequired: { fields: string[]; notes?: string[] } | null }
async function restartRequired(): Promise<Row['restartRequired']> {
  const st = await cli(['status', N.mdir, '--json']);
  expect(st.code, st.stderr).toBe(0);
  return (JSON.parse(st.stdout) as { resources: Row[] }).resources.find((r) => r.name === VM)!.restartRequired;
}
const log = (s: string): void => {
  // eslint-disable-next-line no-console
  console.log(`[hotplug-guest] ${GUEST_VIRT}: ${s}`);
};

afterAll(() => {
  files?.remove();
});

describe.sequential(`hot-plug with a booted tiny guest (${GUEST_VIRT})`, () => {
  it('boots the guest (its DHCP lease: the kernel and the virtio drivers are up)', async () => {
    writeManifests(N.mdir, manifests({ disks: ['d1'], nets: ['a'] }));
    const t0 = Date.now();
    const r = await cli(['reconcile', N.mdir, '--wait', '--wait-timeout', '400'], 460_000);
    expect(r.code, r.stdout + r.stderr).toBe(0);
    log(`boot to the DHCP lease ${Date.now() - t0} ms`);
  }, 500_000);

  it('three virtio disks attached live: [live], live and persistent, not restarted', async () => {
    const id = domId();
    writeManifests(N.mdir, manifests({ disks: ['d1', 'd2', 'd3', 'd4'], nets: ['a'] }));
    const dry = await cli(['reconcile', N.mdir, '--dry-run']);
    expect(dry.stdout).toContain(`+ spec.disks[1].path: "${disk('d2')}" [live]`);
    expect(dry.stdout).not.toContain('[restart]');
    const { ms, steps } = await apply({ disks: ['d1', 'd2', 'd3', 'd4'], nets: ['a'] });
    log(`attach of 3 disks: reconcile ${ms} ms (${steps})`);
    expect(domId()).toBe(id);
    expect(disks(false)).toEqual({ vda: disk('d1'), vdb: disk('d2'), vdc: disk('d3'), vdd: disk('d4') });
    expect(disks(true)).toEqual(disks(false));
    expect(await restartRequired()).toBeNull();
  }, 300_000);

  it('the middle disk removed: the guest completes the unplug, the others keep their targets, no restart required', async () => {
    const id = domId();
    const { out, ms, steps } = await apply({ disks: ['d1', 'd2', 'd4'], nets: ['a'] }, ['--detach-timeout', '60']);
    log(`detach of 1 disk completed by the guest: reconcile ${ms} ms (${steps})`);
    expect(out).not.toMatch(/detach not completed/);
    expect(domId()).toBe(id);
    expect(disks(false)).toEqual({ vda: disk('d1'), vdb: disk('d2'), vdd: disk('d4') });
    expect(disks(true)).toEqual(disks(false));
    expect(await restartRequired()).toBeNull();
    expect((await cli(['reconcile', N.mdir, '--dry-run', '--detailed-exitcode'])).code).toBe(0);
  }, 300_000);

  it('a second NIC attached, then detached, live (the guest completing the detach)', async () => {
    const id = domId();
    const a = await apply({ disks: ['d1', 'd2', 'd4'], nets: ['a', 'b'] });
    log(`attach of 1 NIC: reconcile ${a.ms} ms (${a.steps})`);
    expect(nets(false)).toEqual([`${P}-a`, `${P}-b`]);
    expect(nets(true)).toEqual(nets(false));
    const d = await apply({ disks: ['d1', 'd2', 'd4'], nets: ['a'] }, ['--detach-timeout', '60']);
    log(`detach of 1 NIC completed by the guest: reconcile ${d.ms} ms (${d.steps})`);
    expect(d.out).not.toMatch(/detach not completed/);
    expect(nets(false)).toEqual([`${P}-a`]);
    expect(nets(true)).toEqual([`${P}-a`]);
    expect(domId()).toBe(id);
    expect(await restartRequired()).toBeNull();
  }, 300_000);

  it('a detach the guest cannot complete (paused): reported, restart required with the reason; virtform restart applies it', async () => {
    virsh('suspend', VM);
    const { out, ms, steps } = await apply({ disks: ['d1', 'd4'], nets: ['a'] }, ['--detach-timeout', '3']);
    log(`detach not completed (paused guest), --detach-timeout 3: reconcile ${ms} ms (${steps})`);
    expect(out).toMatch(new RegExp(`detach not completed by the guest within 3 s: disk vdb \\(${disk('d2')}\\)`));
    expect(disks(true)).toEqual({ vda: disk('d1'), vdd: disk('d4') });
    expect(disks(false)).toHaveProperty('vdb');
    const rr = await restartRequired();
    expect(rr?.fields).toContain('spec.disks');
    expect(rr?.notes?.join('\n')).toMatch(/detach not completed by the guest/);
    const id = domId();
    const t0 = Date.now();
    const r = await cli(['restart', VM, '--force']);
    expect(r.code, r.stdout + r.stderr).toBe(0);
    log(`virtform restart --force ${Date.now() - t0} ms`);
    expect(domId()).not.toBe(id);
    expect(disks(false)).toEqual({ vda: disk('d1'), vdd: disk('d4') });
    expect(await restartRequired()).toBeNull();
  }, 300_000);
});
