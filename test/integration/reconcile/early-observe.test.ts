/**
 * The dry-run's early connection on qemu:///system (issue 22, src/cli/commands/reconcile.ts and
 * `prefetching` in src/reconcile/observe.ts): when every manifest file comes from the load cache
 * (the files loaded before, byte for byte), a dry-run connects to libvirt and starts observe's
 * first calls while the rest of its load, the desired state's build and the state DB's opening
 * run. The plan is the one made without it, a load that still fails (its cross-file checks: here a
 * policy's limit) exits 2 having changed nothing and closes the connection it opened, a cold load
 * with an error never connects (the bad-input rule), and an applying run never connects early.
 * Runs in-process (the connect function spied on, as test/integration/bad-input/corpus-e2e.test.ts).
 * Objects are vftest-earlyobs-*.
 */
import { copyFileSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { runReconcile, type ReconcileFlags } from '../../../src/cli/commands/reconcile.js';
import { LibvirtClient } from '../../../src/libvirt/index.js';
import { capture } from '../../support/cli.js';
import { writeManifests } from '../../support/manifests.js';
import { virsh } from '../../support/real-host.js';
import { useSuite } from '../../support/suite.js';

const N = useSuite('earlyobs', { setup: () => void writeManifests(N.mdir, manifests()) });
const P = N.base;
const POOL = `${P}-pool`;
const NET = `${P}-net`;
const URI = 'qemu:///system';
const BOGUS_URI = 'qemu+unix:///system?socket=/tmp/vftest-earlyobs-nonexistent.sock';

const manifests = (): Record<string, string> => ({
  'a.yaml': `apiVersion: virtform.dev/v1
kind: StoragePool
metadata: {name: ${POOL}}
spec: {path: /var/lib/virtform-test/${POOL}}
---
apiVersion: virtform.dev/v1
kind: Network
metadata: {name: ${NET}}
spec: {mode: isolated, cidr: ${N.cidr()}}
`,
  'vm.yaml': `apiVersion: virtform.dev/v1
kind: Volume
metadata: {name: ${P}-root}
spec: {pool: ${POOL}, capacity: 16MiB, format: qcow2}
---
apiVersion: virtform.dev/v1
kind: VirtualMachine
metadata: {name: ${P}-vm}
spec:
  vcpus: 1
  memory: 64MiB
  state: stopped
  disks: [{volume: ${P}-root}]
  nics: [{network: ${NET}}]
`,
});

const flags = (extra: Partial<ReconcileFlags> = {}): ReconcileFlags => ({
  uri: URI, db: N.db, concurrency: 4, maxAttempts: 3, retryDelay: 250, shutdownTimeout: 0, color: false, domainType: 'qemu', ...extra,
});
const run = (extra: Partial<ReconcileFlags> = {}) => capture(() => runReconcile(N.mdir, flags(extra)));

/** A policy whose VM memory limit refuses the 64MiB VM: the load's cross-file step fails (exit 2). */
function refusingPolicy(): string {
  const f = join(N.work, 'policy.yaml');
  writeFileSync(f, 'apiVersion: virtform.dev/v1\nkind: Policy\nlimits:\n  vm: {memory: 32MiB}\n');
  return f;
}

afterEach(() => vi.restoreAllMocks());

describe('a dry-run whose manifest files all come from the load cache connects early', () => {
  it('converges; then a dry-run connects once, early, and plans what a run without the cache plans', async () => {
    const applied = await run();
    expect(applied.code, applied.stderr).toBe(0);

    const connect = vi.spyOn(LibvirtClient, 'connect');
    const close = vi.spyOn(LibvirtClient.prototype, 'close');
    const early = await run({ dryRun: true, json: true });
    expect(early.code, early.stderr).toBe(0);
    expect(connect).toHaveBeenCalledTimes(1);
    expect(close).toHaveBeenCalledTimes(1);
    const j = JSON.parse(early.stdout) as { outcome: string; plan: unknown; manifestCache: { files: number; cached: number }; definitions: unknown };
    expect(j.outcome).toBe('noop');
    expect(j.manifestCache).toMatchObject({ files: 2, cached: 2 });

    const empty = join(N.work, 'no-cache');
    mkdirSync(empty, { recursive: true });
    const cold = await run({ dryRun: true, json: true, dataDir: empty });
    expect(cold.code, cold.stderr).toBe(0);
    const c = JSON.parse(cold.stdout) as typeof j;
    expect(c.manifestCache.cached).toBe(0);
    expect(c.plan).toEqual(j.plan);
    expect(c.definitions).toEqual(j.definitions);
    expect(connect).toHaveBeenCalledTimes(2);

    // The text output: the same "No changes." as ever.
    const text = await run({ dryRun: true });
    expect(text.code, text.stderr).toBe(0);
    expect(text.stdout).toContain('No changes.');
  }, 120_000);

  it('a drift on the host is planned the same with the early calls as without them', async () => {
    const empty = join(N.work, 'no-cache-drift');
    mkdirSync(empty, { recursive: true });
    virsh('setmaxmem', `${P}-vm`, '96M', '--config');
    try {
      const early = await run({ dryRun: true, json: true, detailedExitcode: true });
      const cold = await run({ dryRun: true, json: true, detailedExitcode: true, dataDir: empty });
      expect(early.code, early.stderr).toBe(3);
      expect(cold.code).toBe(3);
      const e = JSON.parse(early.stdout) as { manifestCache: { cached: number }; plan: unknown };
      expect(e.manifestCache.cached).toBe(2);
      expect(e.plan).toEqual((JSON.parse(cold.stdout) as { plan: unknown }).plan);
    } finally {
      const fixed = await run();
      expect(fixed.code, fixed.stderr).toBe(0);
    }
  }, 120_000);

  it('a cached load that fails its cross-file checks: exit 2, nothing changed, the early connection closed', async () => {
    const policy = refusingPolicy();
    const connect = vi.spyOn(LibvirtClient, 'connect');
    const close = vi.spyOn(LibvirtClient.prototype, 'close');
    const r = await run({ dryRun: true, policy });
    expect(r.code, r.stderr).toBe(2);
    expect(r.stderr).toContain('limits.vm.memory');
    expect(r.stderr).toContain('nothing was changed');
    // The connection was opened while the load still ran (the proof that it is early), and closed.
    expect(connect).toHaveBeenCalledTimes(1);
    expect(close).toHaveBeenCalledTimes(1);
  }, 60_000);

  it('never early without the cache (a cold load with an error opens no connection), nor for an applying run', async () => {
    const policy = refusingPolicy();
    const empty = join(N.work, 'no-cache-2');
    mkdirSync(empty, { recursive: true });
    const connect = vi.spyOn(LibvirtClient, 'connect');
    const cold = await run({ dryRun: true, policy, dataDir: empty });
    expect(cold.code, cold.stderr).toBe(2);
    const apply = await run({ policy });
    expect(apply.code, apply.stderr).toBe(2);
    expect(connect).not.toHaveBeenCalled();
  }, 60_000);

  it('an early connection that fails is the run\'s connection error (exit 1), as without it', async () => {
    // The bogus URI's own state DB: the cache is the data dir's (next to it), so write one there first.
    const db = join(N.work, 'bogus', 'state.db');
    mkdirSync(join(N.work, 'bogus'), { recursive: true });
    copyFileSync(join(N.work, 'manifest-cache.json'), join(N.work, 'bogus', 'manifest-cache.json'));
    const connect = vi.spyOn(LibvirtClient, 'connect');
    const r = await run({ dryRun: true, json: true, uri: BOGUS_URI, db });
    expect(r.code, r.stderr).toBe(1);
    expect(r.stderr).toContain('cannot connect to libvirt');
    expect(connect).toHaveBeenCalledTimes(1);
  }, 60_000);
});
