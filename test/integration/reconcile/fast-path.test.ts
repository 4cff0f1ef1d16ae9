/**
 * The no-op fast path on qemu:///system (issue 22): after a run that compared every definition
 * and changed nothing, a dry-run of the unchanged host parses and compares no VM or volume
 * definition (their bytes and the comparison's inputs hash to what that run recorded), and still
 * sees every change: a definition edited with virsh (any byte: full comparison, drift named by
 * XML path), a volume resized with virsh, a device attached to the running domain only (its
 * inactive bytes unchanged), a manifest edit. Counts come from `reconcile --json`'s `definitions`.
 * Objects are vftest-fastpath-*; VM `a` is stopped, VM `b` runs without an OS (TCG, blank disk).
 */
import { describe, expect, it } from 'vitest';
import { join } from 'node:path';
import { readFileSync, writeFileSync } from 'node:fs';
import { writeManifests } from '../../support/manifests.js';
import { runCli, virsh } from '../../support/real-host.js';
import { useSuite } from '../../support/suite.js';

const N = useSuite('fastpath', {
  setup: async () => {
    writeManifests(N.mdir, MANIFESTS);
  },
});
const P = N.base;
const POOL = `${P}-pool`;
const NET = `${P}-net`;

const manifests = (memory: string): Record<string, string> => ({
  'all.yaml': `apiVersion: virtform.dev/v1
kind: StoragePool
metadata: {name: ${POOL}}
spec: {path: /var/lib/virtform-test/${POOL}}
---
apiVersion: virtform.dev/v1
kind: Network
metadata: {name: ${NET}}
spec: {mode: isolated, cidr: ${N.cidr()}}
${['a', 'b'].map((v) => `---
apiVersion: virtform.dev/v1
kind: Volume
metadata: {name: ${P}-${v}-root}
spec: {pool: ${POOL}, capacity: 16MiB, format: qcow2}
---
apiVersion: virtform.dev/v1
kind: VirtualMachine
metadata: {name: ${P}-${v}}
spec:
  vcpus: 1
  memory: ${memory}
  state: ${v === 'a' ? 'stopped' : 'running'}
  disks: [{volume: ${P}-${v}-root, boot: 1}]
  nics: [{network: ${NET}}]
`).join('')}`,
});
const MANIFESTS = manifests('64MiB');

interface Counts { read: number; parsed: number; unchanged: number }
interface RunJson { outcome: string; definitions: Counts & { byKind: Record<string, Counts> } }

const cli = (...args: string[]) => runCli([...args, '--db', N.db, '--shutdown-timeout', '0', '--domain-type', 'qemu']);

async function run(dry: boolean): Promise<{ code: number | null; json: RunJson; out: string }> {
  const r = await cli('reconcile', N.mdir, '--json', ...(dry ? ['--dry-run', '--detailed-exitcode'] : []));
  expect(r.code === 0 || (dry && r.code === 3), `${r.stdout}\n${r.stderr}`).toBe(true);
  return { code: r.code, json: JSON.parse(r.stdout) as RunJson, out: r.stdout };
}
async function dryText(): Promise<{ code: number | null; out: string }> {
  const r = await cli('reconcile', N.mdir, '--dry-run', '--detailed-exitcode', '--no-color');
  return { code: r.code, out: `${r.stdout}\n${r.stderr}` };
}
const vmCounts = (j: RunJson): Counts => j.definitions.byKind.VirtualMachine!;
const volCounts = (j: RunJson): Counts => j.definitions.byKind.Volume!;

describe('the no-op fast path: unchanged definitions are neither parsed nor compared, changed ones are', () => {
  it('parses every definition until a run has compared them without a difference, then none of an unchanged host', async () => {
    const applied = await run(false);
    expect(applied.json.outcome).toBe('succeeded');
    // Apply records no check (nothing was compared after its writes), and a dry-run writes nothing.
    const first = await run(true);
    expect(first.json.outcome).toBe('noop');
    expect(vmCounts(first.json)).toEqual({ read: 2, parsed: 2, unchanged: 0 });
    expect((await run(true)).json.definitions.unchanged).toBe(0);
    // A run that compares everything and changes nothing records the checks.
    const noop = await run(false);
    expect(noop.json.outcome).toBe('noop');
    expect(noop.json.definitions.unchanged).toBe(0);
    const fast = await run(true);
    expect(fast.code).toBe(0);
    expect(fast.json.outcome).toBe('noop');
    expect(vmCounts(fast.json)).toEqual({ read: 2, parsed: 0, unchanged: 2 });
    expect(volCounts(fast.json)).toEqual({ read: 2, parsed: 0, unchanged: 2 });
    expect((await dryText()).out).toContain('No changes.');
  });

  it('compares in full a definition edited with virsh and names its drift; the other stays unparsed', async () => {
    const vm = `${P}-a`;
    const edited = virsh('dumpxml', '--inactive', vm).replace('</devices>', "<watchdog model='i6300esb' action='reset'/></devices>");
    writeFileSync(join(N.work, 'a.xml'), edited);
    virsh('define', join(N.work, 'a.xml'));
    const plan = await dryText();
    expect(plan.code, plan.out).toBe(3);
    expect(plan.out).toMatch(/devices\/watchdog added \(drift\)/);
    const j = (await run(true)).json;
    expect(vmCounts(j)).toEqual({ read: 2, parsed: 1, unchanged: 1 });
    expect(volCounts(j)).toEqual({ read: 2, parsed: 0, unchanged: 2 });
    // Corrected by one reconcile; the next no-op run records it again, then nothing is parsed.
    await run(false);
    expect(virsh('dumpxml', '--inactive', vm)).not.toContain('<watchdog');
    expect((await run(true)).json.outcome).toBe('noop');
    await run(false);
    expect(vmCounts((await run(true)).json)).toEqual({ read: 2, parsed: 0, unchanged: 2 });
  });

  it('still sees a device attached to the running domain only (its definition unchanged and unparsed)', async () => {
    virsh('attach-interface', `${P}-b`, 'network', NET, '--model', 'virtio', '--live');
    const plan = await dryText();
    expect(plan.code, plan.out).toBe(3);
    expect(plan.out).toMatch(/devices\/interface\[mac=[0-9a-f:]+\] live only \(drift\)/);
    expect(vmCounts((await run(true)).json)).toEqual({ read: 2, parsed: 0, unchanged: 2 });
  });

  it('compares in full after a manifest edit (another spec hash), and a volume resized with virsh', async () => {
    writeManifests(N.mdir, manifests('96MiB'));
    const plan = await dryText();
    expect(plan.code, plan.out).toBe(3);
    expect(plan.out.match(/spec\.memory/g)?.length, plan.out).toBeGreaterThanOrEqual(2);
    writeManifests(N.mdir, MANIFESTS);
    expect(readFileSync(join(N.mdir, 'all.yaml'), 'utf8')).toContain('64MiB');

    const vol = virsh('vol-list', '--pool', POOL).split('\n').map((l) => l.trim().split(/\s+/)[0]!).find((n) => n.startsWith(`${P}-a-root`))!;
    virsh('vol-resize', '--pool', POOL, vol, '32M');
    const grown = await dryText();
    expect(grown.code, grown.out).toBe(3);
    expect(grown.out).toMatch(new RegExp(`Volume/${P}-a-root[\\s\\S]*capacity was changed outside virtform|capacity[^\\n]*drift`));
    // (Its plan would shrink the file: the data rule then reads every volume's definition.)
    expect(volCounts((await run(true)).json).parsed).toBeGreaterThanOrEqual(1);
  });
});
