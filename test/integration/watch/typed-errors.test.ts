/**
 * Typed errors against the real libvirtd (qemu:///system):
 * - a HostError carries libvirt's code and domain as the daemon sent them in the RPC error (no
 *   domain: VIR_ERR_NO_DOMAIN from the QEMU driver; starting a running domain:
 *   VIR_ERR_OPERATION_INVALID), never recovered from the message text;
 * - the watcher stalls on the typed cause of a failure: a definition libvirt's schema refuses
 *   (`invalid`, with the daemon's code and domain) and an image file gone between validation and
 *   import (an `invalid` the Volume kind raises itself, no libvirt call: the old message-keyed Proxy over
 *   the host never saw it, and the watcher requeued it forever) are both stalled, not requeued.
 * Objects are the suite's names (test/support/names.ts); the VMs are diskless TCG domains that boot no OS.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import { rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { tempDir, writeManifests } from '../../support/manifests.js';
import { cleanupPrefix, virsh } from '../../support/real-host.js';
import { openStateStore, type StateStore } from '../../../src/state/index.js';
import { openHost } from '../../../src/reconcile/adapters/libvirt-host.js';
import { HostError, type HostPort } from '../../../src/reconcile/ports.js';
import { WatchController, jsonLogger } from '../../../src/watch/index.js';
import {
  VIR_ERR_NO_DOMAIN, VIR_ERR_OPERATION_INVALID, VIR_ERR_XML_INVALID_SCHEMA, VIR_FROM_DOMAIN, VIR_FROM_QEMU, VIR_FROM_XML,
} from '../../../src/libvirt/index.js';
import { waitFor } from '../../unit/watch/helpers.js';
import { removingOnCall } from '../../support/vanishing-file.js';
import { suiteNames } from '../../support/names.js';

const URI = 'qemu:///system';
const N = suiteNames('typed');
const P = N.prefix;
const POOL_PATH = `/var/lib/virtform-test/${P}pool`;

let work: string;
let host: HostPort & { close(): Promise<void> };

async function hostError(p: Promise<unknown>): Promise<HostError> {
  const e = await p.then(() => undefined, (x: unknown) => x);
  expect(e).toBeInstanceOf(HostError);
  return e as HostError;
}

beforeAll(async () => {
  cleanupPrefix(P);
  work = tempDir(P);
  host = await openHost(URI);
}, 60_000);
afterAll(async () => {
  await host?.close();
  cleanupPrefix(P);
  rmSync(work, { recursive: true, force: true });
}, 60_000);

describe.sequential('typed errors from the real daemon', () => {
  it('a HostError carries the daemon\'s code and domain: no domain, and an operation on a domain that is not running', async () => {
    const none = await hostError(host.startDomain(`${P}none`));
    expect(none.code).toBe('not-found');
    expect(none.libvirt).toEqual({ code: VIR_ERR_NO_DOMAIN, domain: VIR_FROM_QEMU });

    const xml = join(work, 'dom.xml');
    writeFileSync(xml, `<domain type='qemu'><name>${P}off</name><memory unit='MiB'>32</memory><vcpu>1</vcpu><os><type arch='x86_64'>hvm</type></os></domain>`);
    virsh('define', xml);
    const off = await hostError(host.resizeDomainDisk(`${P}off`, '/nonexistent.img', 1 << 20));
    expect(off.code).toBe('operation-failed');
    expect(off.libvirt).toEqual({ code: VIR_ERR_OPERATION_INVALID, domain: VIR_FROM_DOMAIN });
    expect(off.message).toMatch(/domain is not running/);
  }, 60_000);

  it('the watcher stalls on typed causes: a definition the schema refuses (with libvirt\'s code) and an image gone before its import', async () => {
    const image = join(work, 'gone.qcow2');
    execFileSync('qemu-img', ['create', '-q', '-f', 'qcow2', image, '64M']);
    const mdir = join(work, 'manifests');
    writeManifests(mdir, {
      'vm.yaml': `apiVersion: virtform.dev/v1
kind: VirtualMachine
metadata: {name: ${P}vm}
spec:
  vcpus: 1
  memory: 64MiB
  state: stopped
  guestAgent: false
  extraDevices: ["<watchdog model='i6300esb' action='reset' bogus='1'/>"]
`,
      'storage.yaml': `apiVersion: virtform.dev/v1
kind: StoragePool
metadata: {name: ${P}pool}
spec: {path: ${POOL_PATH}, autostart: false}
---
apiVersion: virtform.dev/v1
kind: Volume
metadata: {name: ${P}img}
spec: {pool: ${P}pool, format: qcow2, source: ${image}}
`,
    });
    const store: StateStore = await openStateStore(join(work, 'state.db'));
    const logs: Record<string, unknown>[] = [];
    const c = new WatchController({
      dir: mdir, store, connect: () => openHost(URI, { domainType: 'qemu' }),
      // The image goes away after the manifests were validated, at the run's first host call
      // (observe): the Volume kind finds it missing when it imports it.
      wrapHost: removingOnCall(image),
      debounceMs: 100, eventDebounceMs: 20, resyncMs: 0, gracefulStop: false,
      retry: { maxAttempts: 1, baseDelayMs: 1, maxDelayMs: 2 },
      requeue: { initialDelayMs: 60_000 },
      logger: jsonLogger({ level: 'debug', write: (l) => void logs.push(JSON.parse(l) as Record<string, unknown>) }),
    });
    try {
      await c.start();
      await waitFor(() => c.ready, 'the initial reconcile', 60_000).catch((e: unknown) => {
        throw new Error(`${String(e)}: ${JSON.stringify(logs.slice(-15))}`);
      });
      await c.idle();
      const status = await c.status();
      const stalled = Object.fromEntries(status.stalled.map((s) => [s.resource, s.reason]));
      expect(stalled[`VirtualMachine/${P}vm`], JSON.stringify(status.runs.last)).toMatch(/^invalid: .*(schema|bogus|Invalid attribute)/i);
      expect(stalled[`Volume/${P}img`], JSON.stringify(status.runs.last)).toMatch(/^invalid: source image .* does not exist any more/);
      // Stalled, not requeued: both failures are typed `invalid`.
      expect(status.runs.last?.requeue).toBeUndefined();
      expect(status.requeue.pending).toBeUndefined();
      expect(status.runs.last?.failures.map((f) => [f.resource, f.code]).sort()).toEqual([[`Volume/${P}img`, 'invalid'], [`VirtualMachine/${P}vm`, 'invalid']].sort());
      expect(status.resources.find((r) => r.name === `${P}vm`)?.conditions.find((x) => x.type === 'Stalled')).toMatchObject({ status: 'True', reason: 'InvalidDefinition' });
      // The daemon's own code and domain for the refused definition.
      const runner = c.stalls;
      expect(runner.get(`VirtualMachine/${P}vm`)).toMatchObject({ reason: 'invalid', libvirt: { code: VIR_ERR_XML_INVALID_SCHEMA, domain: VIR_FROM_XML } });
      expect(runner.get(`Volume/${P}img`)).toEqual({ reason: 'invalid', detail: expect.stringMatching(/does not exist any more/) });
    } finally {
      await c.stop();
      await store.close();
    }
  }, 120_000);
});
