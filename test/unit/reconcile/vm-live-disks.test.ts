/**
 * The live disks of a running VM with a restart pending (its persistent definition no longer has a
 * disk it still holds open) come from the live XML the definitions' read already fetched for exact
 * drift: observe asks the host once per domain, not twice. Only a host that gives no live XML (the
 * plain fake host) is asked with getRunningDomain.
 */
import { describe, expect, it } from 'vitest';
import { FakeHost } from '../../support/fake-host.js';
import { useHarness } from '../../support/harness.js';
import { scenario } from '../../support/scenario.js';
import { buildDomainXml } from '../../../src/libvirt/xml/index.js';
import type { DomainDetail } from '../../../src/model/definitions.js';

const P = 'vftest-vld';

/** A pool with three raw volumes (ra, rb, x) and the VMs. */
function files(vms: { name: string; disks: string[] }[]) {
  const s = scenario().pool(`${P}-pool`, { path: '/srv/pools/vld' });
  for (const v of ['ra', 'rb', 'x']) s.volume(`${P}-${v}`, { format: 'raw' });
  for (const v of vms) s.vm(`${P}-${v.name}`, { memory: '32MiB', restartPolicy: 'Never', disks: v.disks.map((d) => ({ volume: `${P}-${d}` })) });
  return s;
}

/** Like the libvirt adapter: the definitions' read of a running domain carries its live XML. */
function withLiveXml(host: FakeHost): FakeHost {
  const base = host.definitions;
  Object.defineProperty(host, 'definitions', {
    value: {
      ...base,
      domains: async (list: Parameters<typeof base.domains>[0], u?: Map<string, string>) => {
        const out = await base.domains(list, u);
        for (const [name, d] of out) {
          const o = host.domains.get(name);
          if (o?.active) out.set(name, { ...(d as DomainDetail), liveXml: buildDomainXml(o.live ?? o.def) });
        }
        return out;
      },
    },
  });
  return host;
}

const fx = useHarness({ dirPrefix: 'vftest-vld-', manifestDir: 'm' });

/**
 * VM a drops disk x while running: it is detached live (hot-plug), but a's guest does not complete
 * the detach (no ACPI unplug: it keeps x open until its next boot); VM b then wants x.
 */
async function handover(host: FakeHost): Promise<{ calls: string[]; notes: string[] }> {
  fx.host = host;
  expect((await fx.reconcile(files([{ name: 'a', disks: ['ra', 'x'] }]))).outcome).toBe('succeeded');
  host.detachIgnored.add(`${P}-a`);
  expect((await fx.reconcile(files([{ name: 'a', disks: ['ra'] }]), { detachTimeoutMs: 0 })).outcome).toBe('succeeded');
  host.calls.length = 0;
  const plan = await fx.plan(files([{ name: 'a', disks: ['ra'] }, { name: 'b', disks: ['rb', 'x'] }]), { gracefulStop: false });
  const b = plan.changes.find((c) => c.name === `${P}-b`)!;
  return { calls: [...host.calls], notes: b.notes };
}

describe('live disks of a VM with a restart pending', () => {
  it('come from the live XML the definitions read: no getRunningDomain call in observe', async () => {
    const { calls, notes } = await handover(withLiveXml(new FakeHost()));
    // The disk a still holds is known: b is not started on it.
    expect(notes.join('\n')).toMatch(/not started: \/srv\/pools\/vld\/vftest-vld-x\.img is in use by running VM vftest-vld-a/);
    expect(calls.filter((c) => c.startsWith('getRunningDomain:'))).toEqual([]);
    expect(calls.filter((c) => c === `describeDomain:${P}-a`)).toHaveLength(1);
  });

  it('a host without live XML is asked once, for that VM only', async () => {
    const { calls, notes } = await handover(new FakeHost());
    expect(notes.join('\n')).toMatch(/not started: \/srv\/pools\/vld\/vftest-vld-x\.img is in use by running VM vftest-vld-a/);
    expect(calls.filter((c) => c.startsWith('getRunningDomain:'))).toEqual([`getRunningDomain:${P}-a`]);
  });
});
