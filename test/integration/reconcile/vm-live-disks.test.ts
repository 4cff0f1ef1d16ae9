/**
 * Against the real libvirtd (a TCG domain without an OS): the disks a running VM with a restart
 * pending still holds open come from the live XML the definitions' read fetched for exact drift;
 * observe does not read the running domain a second time (getRunningDomain).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { join } from 'node:path';
import { rmSync } from 'node:fs';
import { openHost, type LibvirtHost } from '../../../src/reconcile/adapters/libvirt-host.js';
import type { HostPort } from '../../../src/reconcile/ports.js';
import { openStateStore, type StateStore } from '../../../src/state/index.js';
import { reconcile, planOnly } from '../../../src/reconcile/engine.js';
import { desiredFrom, writeManifests } from '../../support/manifests.js';
import { ensureBuilt, virsh } from '../../support/real-host.js';
import { suiteNames } from '../../support/names.js';

const N = suiteNames('lvd');
const P = N.base;
const POOL_DIR = `/var/lib/virtform-test/${P}-pool`;
const FAST = { maxAttempts: 2, baseDelayMs: 10, maxDelayMs: 20 };

function files(vms: { name: string; disks: string[] }[]): Record<string, string> {
  return {
    'base.yaml': `apiVersion: virtform.dev/v1
kind: StoragePool
metadata: {name: ${P}-pool}
spec: {path: ${POOL_DIR}}
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

let work: string;
let host: LibvirtHost;
let store: StateStore;
async function desired(vms: { name: string; disks: string[] }[]) {
  const dir = join(work, 'm');
  rmSync(dir, { recursive: true, force: true });
  writeManifests(dir, files(vms));
  return desiredFrom(dir);
}

/** The host, counting the calls made through it by name. */
function counting(h: HostPort, calls: string[]): HostPort {
  return new Proxy(h, {
    get(t, p) {
      const v = Reflect.get(t, p, t) as unknown;
      if (typeof v !== 'function') return v;
      return (...args: unknown[]) => {
        calls.push(String(p));
        return (v as (...a: unknown[]) => unknown).apply(t, args);
      };
    },
  });
}

beforeAll(async () => {
  N.cleanup();
  ensureBuilt();
  work = N.tempDir();
  host = await openHost('qemu:///system', { domainType: 'qemu' });
  store = await openStateStore(join(work, 'state.db'));
});
afterAll(async () => {
  await host?.close();
  await store?.close();
  N.cleanup();
  rmSync(work, { recursive: true, force: true });
});

describe('live disks of a running VM with a restart pending', () => {
  it('are read from the live XML observe already has: no getRunningDomain call', async () => {
    expect((await reconcile({ host, store, desired: await desired([{ name: 'a', disks: ['ra', 'x'] }]), retry: FAST, gracefulStop: false })).outcome).toBe('succeeded');
    // Detached live (hot-plug), but no guest completes the unplug (no OS): a keeps x open until its next boot.
    expect((await reconcile({ host, store, desired: await desired([{ name: 'a', disks: ['ra'] }]), retry: FAST, gracefulStop: false, detachTimeoutMs: 1000 })).outcome).toBe('succeeded');
    expect(virsh('domstate', `${P}-a`).trim()).toBe('running');
    const calls: string[] = [];
    const { plan } = await planOnly(counting(host, calls), store, await desired([{ name: 'a', disks: ['ra'] }, { name: 'b', disks: ['rb', 'x'] }]), false);
    const b = plan.changes.find((c) => c.name === `${P}-b`)!;
    expect(b.notes.join('\n')).toContain(`not started: ${POOL_DIR}/${P}-x.img is in use by running VM ${P}-a`);
    expect(calls.filter((c) => c === 'getRunningDomain')).toEqual([]);
  });
});
