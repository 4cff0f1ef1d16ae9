/**
 * Hot-plug (issue 24) on the real libvirtd, with a TCG domain that has no OS (SeaBIOS finds nothing
 * to boot): QEMU attaches devices without the guest, but no guest answers an unplug request, which
 * is the case of a detach the guest does not complete. The guest side (a booted tiny guest whose
 * kernel completes detaches): test/integration/guest/hotplug-guest.test.ts (make test-e2e).
 *
 *  - a virtio disk and a NIC added to a running VM: `[live]`, attached live and in the persistent
 *    definition (virsh dumpxml and dumpxml --inactive), the domain not restarted (same id), then
 *    "No changes.";
 *  - a disk removed from a running VM whose guest does not release it: reported, the definition
 *    without it, the live domain with it, restart required with the reason (status --json);
 *  - `virtform restart` then boots it without the disk and clears the mark;
 *  - a sata disk stays `[restart]`.
 */
import { describe, expect, it } from 'vitest';
import { useSuite } from '../../support/suite.js';
import { virsh } from '../../support/virsh.js';

const S = useSuite('hotplug', { manifestDir: 'm' });
const P = S.base;
const VM = `${P}-vm`;
const POOL = S.poolPath();
const disk = (v: string): string => `${POOL}/${P}-${v}.img`;

function manifests(o: { disks: { v: string; bus?: string }[]; nets: string[] }): Record<string, string> {
  return {
    'base.yaml': `apiVersion: virtform.dev/v1
kind: StoragePool
metadata: {name: ${P}-pool}
spec: {path: ${POOL}}
${['root', 'd1', 'd2', 'd3'].map((v) => `---
apiVersion: virtform.dev/v1
kind: Volume
metadata: {name: ${P}-${v}}
spec: {pool: ${P}-pool, capacity: 8MiB, format: raw}
`).join('')}---
apiVersion: virtform.dev/v1
kind: Network
metadata: {name: ${P}-a}
spec: {mode: isolated, cidr: ${S.cidr(0)}, autostart: false}
---
apiVersion: virtform.dev/v1
kind: Network
metadata: {name: ${P}-b}
spec: {mode: isolated, cidr: ${S.cidr(1)}, autostart: false}
`,
    'vm.yaml': `apiVersion: virtform.dev/v1
kind: VirtualMachine
metadata: {name: ${VM}}
spec:
  vcpus: 1
  memory: 32MiB
  domainType: qemu
  disks: [${o.disks.map((d) => `{volume: ${P}-${d.v}${d.bus ? `, bus: ${d.bus}` : ''}}`).join(', ')}]
  nics: [${o.nets.map((n) => `{network: ${P}-${n}}`).join(', ')}]
`,
  };
}

/** target → source file of the live (running) or inactive definition. */
function disks(inactive: boolean): Record<string, string> {
  const out: Record<string, string> = {};
  for (const line of virsh('domblklist', VM, ...(inactive ? ['--inactive'] : [])).split('\n')) {
    const [t, src] = line.trim().split(/\s+/);
    if (t && src) out[t] = src;
  }
  return out;
}
const nets = (inactive: boolean): string[] => virsh('domiflist', VM, ...(inactive ? ['--inactive'] : [])).split('\n')
  .map((l) => l.trim().split(/\s+/)).filter((x) => x.length >= 5).map((x) => x[2]!);
const domId = (): string => virsh('domid', VM).trim();
const timed = async <T>(f: () => Promise<T>): Promise<[T, number]> => {
  const t0 = Date.now();
  const r = await f();
  return [r, Date.now() - t0];
};

interface Row { name: string; restartRequired: { fields: string[]; notes?: string[] } | null }
async function restartRequired(): Promise<Row['restartRequired']> {
  const st = await S.cli(['status', S.mdir, '--json']);
  expect(st.code, st.stderr).toBe(0);
  return (JSON.parse(st.stdout) as { resources: Row[] }).resources.find((r) => r.name === VM)!.restartRequired;
}

describe.sequential('hot-plug on a running TCG domain (no OS)', () => {
  it('a virtio disk and a NIC added: [live], attached live and in the definition, not restarted', async () => {
    await S.reconcileOk(manifests({ disks: [{ v: 'root' }], nets: ['a'] }));
    const id = domId();
    S.write(manifests({ disks: [{ v: 'root' }, { v: 'd1' }, { v: 'd2' }], nets: ['a', 'b'] }));
    const dry = await S.dryRun();
    expect(dry.code, dry.stdout + dry.stderr).toBe(3);
    expect(dry.stdout).toContain(`+ spec.disks[1].path: "${disk('d1')}" [live]`);
    expect(dry.stdout).toContain(`+ spec.nics[1].network: "${P}-b" [live]`);
    expect(dry.stdout).not.toContain('[restart]');
    const [r, ms] = await timed(() => S.reconcileOk());
    expect(r.stdout).toMatch(/attach devices to running domain/);
    // eslint-disable-next-line no-console
    console.log(`[hotplug] attach of 2 disks + 1 NIC to a running TCG domain: reconcile ${ms} ms`);
    expect(domId()).toBe(id);
    expect(disks(false)).toEqual({ vda: disk('root'), vdb: disk('d1'), vdc: disk('d2') });
    expect(disks(true)).toEqual(disks(false));
    expect(nets(false)).toEqual([`${P}-a`, `${P}-b`]);
    expect(nets(true)).toEqual(nets(false));
    expect(await restartRequired()).toBeNull();
    const again = await S.dryRun();
    expect(again.code, again.stdout).toBe(0);
  }, 120_000);

  it('the middle disk removed, the guest does not release it: reported, restart required with the reason; the others keep their targets', async () => {
    S.write(manifests({ disks: [{ v: 'root' }, { v: 'd2' }], nets: ['a', 'b'] }));
    const dry = await S.dryRun();
    expect(dry.stdout).toMatch(/- spec\.disks\[vdb\]: .*\[live\]/);
    expect(dry.stdout).not.toContain('spec.disks[1].target');
    const [r, ms] = await timed(() => S.reconcileOk(undefined, ['--detach-timeout', '2']));
    // eslint-disable-next-line no-console
    console.log(`[hotplug] detach not completed (no OS): reconcile ${ms} ms with --detach-timeout 2`);
    expect(r.stdout).toMatch(new RegExp(`detach not completed by the guest within 2 s: disk vdb \\(${disk('d1')}\\) stays attached`));
    expect(disks(true)).toEqual({ vda: disk('root'), vdc: disk('d2') });
    expect(disks(false)).toEqual({ vda: disk('root'), vdb: disk('d1'), vdc: disk('d2') });
    const rr = await restartRequired();
    expect(rr?.fields).toContain('spec.disks');
    expect(rr?.notes?.join('\n')).toMatch(/detach not completed by the guest/);
    // Not requested again and again: a notice, no change.
    const again = await S.dryRun();
    expect(again.code, again.stdout).toBe(0);
    expect(again.stdout).toMatch(/restart required for spec\.disks .*detach not completed by the guest/);
  }, 120_000);

  it('virtform restart boots it with the definition: the disk gone, the mark cleared, the others still on their targets', async () => {
    const id = domId();
    const [r, ms] = await timed(() => S.cli(['restart', VM, '--force']));
    expect(r.code, r.stdout + r.stderr).toBe(0);
    // eslint-disable-next-line no-console
    console.log(`[hotplug] virtform restart --force: ${ms} ms`);
    expect(r.stdout).toContain(`Restarted ${VM}`);
    expect(domId()).not.toBe(id);
    expect(disks(false)).toEqual({ vda: disk('root'), vdc: disk('d2') });
    expect(await restartRequired()).toBeNull();
    expect((await S.dryRun()).code).toBe(0);
  }, 120_000);

  it('a NIC removed is detached by its MAC (the definition at once); a sata disk added stays [restart]', async () => {
    S.write(manifests({ disks: [{ v: 'root' }, { v: 'd2' }, { v: 'd3', bus: 'sata' }], nets: ['a'] }));
    const dry = await S.dryRun();
    expect(dry.stdout).toContain(`+ spec.disks[2].path: "${disk('d3')}" [restart]`);
    expect(dry.stdout).toMatch(/- spec\.nics\[52:54:00:[0-9a-f:]+\]: .*\[live\]/);
    await S.reconcileOk(undefined, ['--detach-timeout', '1']);
    expect(nets(true)).toEqual([`${P}-a`]);
    expect(disks(true)).toEqual({ vda: disk('root'), vdc: disk('d2'), sda: disk('d3') });
    expect(disks(false)).toEqual({ vda: disk('root'), vdc: disk('d2') });
  }, 120_000);
});
