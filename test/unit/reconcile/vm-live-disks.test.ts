/**
 * The live disks of a running VM with a restart pending (its persistent definition no longer has a
 * disk it still holds open) come from the live XML the definitions' read already fetched for exact
 * drift: observe asks the host once per domain, not twice. Only a host that gives no live XML (the
 * plain fake host) is asked with getRunningDomain.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { join } from 'node:path';
import { rmSync } from 'node:fs';
import { FakeHost } from '../../support/fake-host.js';
import { desiredFrom, tempDir, writeManifests } from '../../support/manifests.js';
import { openStateStore, type StateStore } from '../../../src/state/index.js';
import { reconcile, planOnly } from '../../../src/reconcile/engine.js';
import { buildDomainXml } from '../../../src/libvirt/xml/index.js';
import type { DomainDetail } from '../../../src/model/definitions.js';

const FAST_RETRY = { maxAttempts: 2, baseDelayMs: 1, maxDelayMs: 2 };
const P = 'vftest-vld';

function files(vms: { name: string; disks: string[] }[]): Record<string, string> {
  return {
    'base.yaml': `apiVersion: virtform.dev/v1
kind: StoragePool
metadata: {name: ${P}-pool}
spec: {path: /srv/pools/vld}
${['ra', 'rb', 'x'].map((v) => `---
apiVersion: virtform.dev/v1
kind: Volume
metadata: {name: ${P}-${v}}
spec: {pool: ${P}-pool, capacity: 16MiB, format: raw}
`).join('')}`,
    'vms.yaml': vms.map((v) => `---
apiVersion: virtform.dev/v1
kind: VirtualMachine
metadata: {name: ${P}-${v.name}}
spec: {vcpus: 1, memory: 32MiB, restartPolicy: Never, disks: [${v.disks.map((d) => `{volume: ${P}-${d}}`).join(', ')}]}
`).join(''),
  };
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

let work: string;
let store: StateStore;
beforeEach(async () => {
  work = tempDir('vftest-vld-');
  store = await openStateStore(join(work, 'state.db'));
});
afterEach(async () => {
  await store.close();
  rmSync(work, { recursive: true, force: true });
});
async function desired(vms: { name: string; disks: string[] }[]) {
  const dir = join(work, 'm');
  rmSync(dir, { recursive: true, force: true });
  return desiredFrom(writeManifests(dir, files(vms)));
}

/** VM a drops disk x while running (restartPolicy Never: it keeps x open until its next boot); VM b then wants x. */
async function handover(host: FakeHost): Promise<{ calls: string[]; notes: string[] }> {
  expect((await reconcile({ host, store, desired: await desired([{ name: 'a', disks: ['ra', 'x'] }]), retry: FAST_RETRY, gracefulStop: false })).outcome).toBe('succeeded');
  expect((await reconcile({ host, store, desired: await desired([{ name: 'a', disks: ['ra'] }]), retry: FAST_RETRY, gracefulStop: false })).outcome).toBe('succeeded');
  host.calls.length = 0;
  const { plan } = await planOnly(host, store, await desired([{ name: 'a', disks: ['ra'] }, { name: 'b', disks: ['rb', 'x'] }]), false);
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
