/**
 * spec.cloudInit on the FakeHost: the NoCloud seed is built, stored as the volume
 * `<vm>-cidata.iso` in the pool (uploaded, mode 0600) and attached as a read-only IDE CD-ROM
 * before the VM starts; a changed seed is rebuilt (a new file), the plan shows only digests and
 * the instance-id rule; a running VM is marked restart required for it; the seed goes with the VM
 * (no --allow-data-loss: it is derived) and with spec.cloudInit; a seed deleted outside virtform
 * is drift and rebuilt; no secret reaches the plan JSON, the journal or the DB file.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { join } from 'node:path';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { FakeHost } from '../../support/fake-host.js';
import { desiredFrom, tempDir, writeManifests } from '../../support/manifests.js';
import { openStateStore, type StateStore } from '../../../src/state/index.js';
import { reconcile, planOnly } from '../../../src/reconcile/engine.js';
import { planToJson, renderPlan } from '../../../src/cli/render.js';
import { loadManifests } from '../../../src/manifest/index.js';
import { readIso, requireTools } from '../cloudinit/iso-reader.js';
import { resourceRef } from '../../../src/model/kinds.js';

const FAST_RETRY = { maxAttempts: 2, baseDelayMs: 1, maxDelayMs: 2 };
const P = 'vftest-cloudinit-u';
const VM = `${P}-vm`;
const SEED = `${VM}-cidata.iso`;
const SEED_PATH = `/srv/pools/ci/${SEED}`;
const SECRET = 'hunter2-very-secret-password';
const plain = { color: false };

interface Opts { userData?: string; cloudInit?: string | null; state?: string; disks?: boolean; restartPolicy?: string }
function files(o: Opts = {}): Record<string, string> {
  const ci = o.cloudInit === null ? '' : o.cloudInit ?? `
  cloudInit:
    userData: |
      #cloud-config
      #vf-marker: ${o.userData ?? 'one'}
      password: ${SECRET}
    metaData: {local-hostname: tiny}
    networkConfig: {version: 2, ethernets: {eth0: {dhcp4: true}}}
    sshAuthorizedKeys: ["ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIExample user@host"]`;
  return {
    'm.yaml': `apiVersion: virtform.dev/v1
kind: StoragePool
metadata: {name: ${P}-pool}
spec: {path: /srv/pools/ci}
---
apiVersion: virtform.dev/v1
kind: Volume
metadata: {name: ${P}-root}
spec: {pool: ${P}-pool, capacity: 16MiB}
---
apiVersion: virtform.dev/v1
kind: VirtualMachine
metadata: {name: ${VM}}
spec:
  vcpus: 1
  memory: 64MiB
  state: ${o.state ?? 'running'}${o.restartPolicy ? `\n  restartPolicy: ${o.restartPolicy}` : ''}
  disks: ${o.disks === false ? '[]' : `[{volume: ${P}-root, boot: 1}]`}${ci}
`,
  };
}

let work: string;
let mdir: string;
let dbPath: string;
let host: FakeHost;
let store: StateStore;
const desired = async (o: Opts = {}) => {
  writeManifests(mdir, files(o));
  return desiredFrom(mdir);
};
const run = async (o: Opts = {}, extra: { allowDataLoss?: boolean; allowEmpty?: boolean } = {}) =>
  reconcile({ host, store, desired: await desired(o), retry: FAST_RETRY, gracefulStop: false, ...extra });
const plan = async (o: Opts = {}) => (await planOnly(host, store, await desired(o))).plan;
const seedBytes = () => host.contents.get(SEED_PATH);
const sha = (b: Uint8Array | undefined) => (b ? createHash('sha256').update(b).digest('hex') : undefined);

beforeEach(async () => {
  work = tempDir();
  mdir = join(work, 'manifests');
  dbPath = join(work, 'state.db');
  host = new FakeHost();
  store = await openStateStore(dbPath);
});
afterEach(async () => {
  await store.close();
  rmSync(work, { recursive: true, force: true });
});

describe('spec.cloudInit: the seed volume', () => {
  it('is built, uploaded and attached (IDE CD-ROM) after define and before start; converged after', async () => {
    requireTools();
    const p = await plan();
    const ops = p.steps.filter((s) => s.name === VM).map((s) => s.op.op);
    expect(ops).toEqual(['vm.define', 'vm.seed', 'vm.start']);
    const seedStep = p.steps.find((s) => s.op.op === 'vm.seed')!;
    const poolStep = p.steps.find((s) => s.op.op.startsWith('pool.') && s.name === `${P}-pool`)!;
    expect(seedStep.deps.length).toBeGreaterThan(0);
    expect(poolStep.id).toBeLessThan(seedStep.id);
    const r = await run();
    expect(r.outcome).toBe('succeeded');
    const d = host.domains.get(VM)!.def;
    expect(d.cdroms).toEqual([{ path: SEED_PATH, bus: 'ide', target: 'hda' }]);
    const iso = readIso(seedBytes()!);
    expect(iso.volumeId).toBe('cidata');
    expect(iso.names).toEqual(['meta-data', 'network-config', 'user-data']);
    const meta = iso.contents.get('meta-data')!.toString();
    expect(meta).toMatch(/^instance-id: iid-[0-9a-f]{16}$/m);
    expect(meta).toContain('local-hostname: tiny');
    expect(meta).toContain('public-keys:\n  - ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIExample user@host');
    expect(iso.contents.get('user-data')!.toString()).toContain(`password: ${SECRET}`);
    expect(iso.contents.get('network-config')!.toString()).toContain('dhcp4: true');
    const rec = await store.resources.get(resourceRef('VirtualMachine', VM));
    expect((rec!.details.facts as { seed: unknown }).seed).toEqual({ pool: `${P}-pool`, volume: SEED, sha256: `sha256:${sha(seedBytes())}` });
    expect((await plan()).changes).toEqual([]);
  });

  it('a changed user-data: new seed bytes, digests only in the plan, instance-id changed note, restart required', async () => {
    await run();
    const before = sha(seedBytes());
    const p = await plan({ userData: 'two' });
    const text = renderPlan(p, plain);
    const json = JSON.stringify(planToJson(p));
    expect(text).toMatch(/~ spec\.cloudInit\.seed: "sha256:[0-9a-f]{12}…" → "sha256:[0-9a-f]{12}…" \[restart\]/);
    expect(text).toMatch(/~ spec\.cloudInit\.userData: "sha256:[0-9a-f]{12}…" → "sha256:[0-9a-f]{12}…" \[restart\]/);
    expect(text).toMatch(/~ spec\.cloudInit\.instanceId: "iid-[0-9a-f]{16}" → "iid-[0-9a-f]{16}"/);
    expect(text).toContain('cloud-init will run again at next boot (instance-id changed)');
    expect(text).toMatch(/restart required for spec\.cloudInit \(running with "sha256:[0-9a-f]{12}…", defined "sha256:[0-9a-f]{12}…"\)/);
    for (const out of [text, json]) {
      expect(out).not.toContain(SECRET);
      expect(out).not.toContain('vf-marker');
    }
    expect(p.steps.filter((s) => s.name === VM).map((s) => s.op.op)).toEqual(['vm.define', 'vm.seed']);
    expect((await run({ userData: 'two' })).outcome).toBe('succeeded');
    expect(sha(seedBytes())).not.toBe(before);
    expect(seedBytes()!.toString('latin1')).toContain('#vf-marker: two');
    const rec = await store.resources.get(resourceRef('VirtualMachine', VM));
    const rr = (rec!.details.facts as { restartRequired?: { fields: string[] } }).restartRequired;
    expect(rr?.fields).toEqual(['spec.cloudInit']);
    expect((await plan({ userData: 'two' })).changes).toEqual([]);
    // The secret is nowhere in the state DB file (records, journal, events).
    await store.close();
    expect(readFileSync(dbPath).includes(SECRET)).toBe(false);
    store = await openStateStore(dbPath);
  });

  it('restartPolicy OnChange: a changed seed restarts the VM after the upload, and the mark clears', async () => {
    await run({ restartPolicy: 'OnChange' });
    const p = await plan({ userData: 'two', restartPolicy: 'OnChange' });
    expect(p.steps.filter((s) => s.name === VM).map((s) => s.op.op)).toEqual(['vm.define', 'vm.seed', 'vm.stop', 'vm.start']);
    await run({ userData: 'two', restartPolicy: 'OnChange' });
    const rec = await store.resources.get(resourceRef('VirtualMachine', VM));
    expect((rec!.details.facts as { restartRequired?: unknown }).restartRequired).toBeUndefined();
  });

  it('instance-id set in metaData stays: the plan says cloud-init does not re-run per-instance modules', async () => {
    const ci = (u: string) => `\n  cloudInit:\n    userData: "#vf-marker: ${u}"\n    metaData: {instance-id: fixed-1}`;
    await run({ cloudInit: ci('a') });
    const text = renderPlan(await plan({ cloudInit: ci('b') }), plain);
    expect(text).toContain('instance-id unchanged (set in metaData)');
    expect(text).not.toContain('instanceId');
  });

  it('a seed volume deleted outside virtform is drift and rebuilt', async () => {
    await run();
    const bytes = sha(seedBytes());
    await host.deleteVolume(`${P}-pool`, SEED);
    const p = await plan();
    const c = p.changes.find((x) => x.name === VM)!;
    expect(c.drift).toBe(true);
    expect(c.reason).toContain(`cloud-init seed volume ${P}-pool/${SEED} is missing (drift)`);
    await run();
    expect(sha(seedBytes())).toBe(bytes);
    expect((await plan()).changes).toEqual([]);
  });

  it('spec.cloudInit removed: the CD-ROM leaves the definition, then the seed volume is deleted', async () => {
    await run();
    const p = await plan({ cloudInit: null });
    expect(p.steps.filter((s) => s.name === VM).map((s) => s.op.op)).toEqual(['vm.define', 'vm.unseed']);
    await run({ cloudInit: null });
    expect(host.domains.get(VM)!.def.cdroms ?? []).toEqual([]);
    expect(host.volumes.get(`${P}-pool`)!.has(SEED)).toBe(false);
    expect((await plan({ cloudInit: null })).changes).toEqual([]);
  });

  it('deleting the VM deletes its seed without --allow-data-loss (derived data)', async () => {
    await run({ state: 'stopped' });
    // The VM's manifest removed; its disk's volume stays declared.
    writeManifests(mdir, { 'm.yaml': files({})['m.yaml']!.split('---\napiVersion: virtform.dev/v1\nkind: VirtualMachine')[0]! });
    const without = await desiredFrom(mdir);
    const p = (await planOnly(host, store, without)).plan;
    const vmChange = p.changes.find((x) => x.name === VM)!;
    expect(p.held.get(vmChange.key), renderPlan(p, plain)).toBeUndefined();
    expect(vmChange.steps).toEqual([{ op: 'vm.delete', graceful: true, seed: { pool: `${P}-pool`, volume: SEED } }]);
    const r = await reconcile({ host, store, desired: without, retry: FAST_RETRY, gracefulStop: false });
    expect(r.outcome).toBe('succeeded');
    expect(host.domains.has(VM)).toBe(false);
    expect([...host.volumes.get(`${P}-pool`)!.keys()]).toEqual([`${P}-root.qcow2`]);
  });
});

describe('spec.cloudInit: validation', () => {
  const load = async (vm: string, extra: Record<string, string> = {}) => {
    writeManifests(mdir, { 'vm.yaml': `apiVersion: virtform.dev/v1\nkind: VirtualMachine\nmetadata: {name: v}\nspec:\n  vcpus: 1\n  memory: 64MiB\n${vm}`, ...extra });
    const r = await loadManifests(mdir);
    return r.ok ? [] : r.errors.map((e) => `${e.line}:${e.col} ${e.field}: ${e.message}`);
  };
  it('no pool and no disk: invalid, at spec.cloudInit', async () => {
    expect(await load('  cloudInit: {userData: x}\n')).toEqual([expect.stringMatching(/^7:3 spec\.cloudInit: the seed needs a pool/)]);
  });
  it('userData and userDataFile together; a missing userDataFile; bad network-config; a key with a newline', async () => {
    expect(await load('  cloudInit: {pool: p, userData: x, userDataFile: u.yaml}\n')).toEqual(expect.arrayContaining([expect.stringMatching(/spec\.cloudInit\.userDataFile: userData and userDataFile are mutually exclusive/)]));
    expect(await load('  cloudInit: {pool: p, userDataFile: nope.yaml}\n')).toEqual(expect.arrayContaining([expect.stringMatching(/spec\.cloudInit\.userDataFile: user-data file ".*nope\.yaml" does not exist/)]));
    expect(await load('  cloudInit: {pool: p, networkConfig: {ethernets: {}}}\n')).toEqual(expect.arrayContaining([expect.stringMatching(/spec\.cloudInit\.networkConfig: needs `version: 1` or `version: 2`/)]));
    expect(await load('  cloudInit:\n    pool: p\n    sshAuthorizedKeys: ["a\\nb"]\n')).toEqual(expect.arrayContaining([expect.stringMatching(/^9:25 spec\.cloudInit\.sshAuthorizedKeys\[0\]: must be one non-empty line/)]));
  });
  it('userDataFile is read relative to the manifest; the text builds the seed', async () => {
    writeManifests(mdir, {});
    const pool = `apiVersion: virtform.dev/v1\nkind: StoragePool\nmetadata: {name: p}\nspec: {path: /srv/p}\n---\n`;
    writeManifests(mdir, { 'vm.yaml': `${pool}apiVersion: virtform.dev/v1\nkind: VirtualMachine\nmetadata: {name: v}\nspec:\n  vcpus: 1\n  memory: 64MiB\n  cloudInit: {pool: p, userDataFile: user-data.yaml}\n` });
    writeFileSync(join(mdir, 'user-data.yaml'), '#cloud-config\n#vf-marker: from-file\n');
    const d = await desiredFrom(mdir);
    const vm = d.resources.find((r) => r.name === 'v')!;
    expect(JSON.stringify(vm.config)).not.toContain('from-file');
    expect((vm.config as { cloudInit: { userData: string } }).cloudInit.userData).toBe(`sha256:${createHash('sha256').update('#cloud-config\n#vf-marker: from-file\n').digest('hex')}`);
  });
});
