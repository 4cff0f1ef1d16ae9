/**
 * A memory snapshot (kind Snapshot, `memory: true`) of the running tiny guest under TCG on the real
 * libvirtd, and `virtform snapshot revert` of it: the guest comes back running from its saved
 * memory. Prints the create and revert times and the qcow2 sizes (qemu-img info). Everything is
 * named `vftest-snapmem-*`. The disk-only side: test/integration/reconcile/snapshot.test.ts.
 */
import { execFileSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { useSuite } from '../../support/suite.js';
import { runCli } from '../../support/cli.js';
import { scenario } from '../../support/scenario.js';
import { virsh } from '../../support/virsh.js';
import { TINY_CMDLINE, tinyGuestFiles, type TinyGuestFiles } from '../../support/guest.js';

let files: TinyGuestFiles;
const N = useSuite('snapmem', {
  setup: () => {
    files = tinyGuestFiles(N.base);
  },
  setupTimeoutMs: 300_000,
});
const P = N.base;
const GUEST = `${P}-guest`;
const MEM = `${P}-mem`;

function manifests(o: { memSnapshot?: boolean; state?: string } = {}) {
  const s = scenario().pool(`${P}-pool`, { path: N.poolPath() })
    .volume(`${P}-groot`, { capacity: '16MiB', format: 'qcow2' })
    .vm(GUEST, {
      memory: '128MiB', state: o.state ?? 'running', domainType: 'qemu', disks: [{ volume: `${P}-groot` }],
      boot: { kernel: files.kernel, initrd: files.initrd, cmdline: TINY_CMDLINE },
    });
  if (o.memSnapshot !== false) s.manifest('Snapshot', MEM, { vm: GUEST, description: 'the guest running', memory: true });
  return s;
}

const qemuImg = (path: string): { actualSize: number; snapshots: { name: string; vmStateSize: number }[] } => {
  const j = JSON.parse(execFileSync('qemu-img', ['info', '-U', '--output=json', path], { encoding: 'utf8' })) as {
    'actual-size': number; snapshots?: { name: string; 'vm-state-size': number }[];
  };
  return { actualSize: j['actual-size'], snapshots: (j.snapshots ?? []).map((s) => ({ name: s.name, vmStateSize: s['vm-state-size'] })) };
};
// eslint-disable-next-line no-console
const report = (line: string): void => console.log(`[snapshot] ${line}`);

describe.sequential('a memory snapshot of the running tiny guest (TCG)', () => {
  it('a memory snapshot of the running tiny guest (TCG), and its revert resumes it running', async () => {
    const t0 = Date.now();
    await N.reconcileOk(manifests({ memSnapshot: false }));
    report(`tiny guest defined and started: ${Date.now() - t0} ms`);
    const groot = `${N.poolPath()}/${P}-groot.qcow2`;
    const before = qemuImg(groot);
    const t1 = Date.now();
    const r = await N.reconcileOk(manifests());
    const ms = Date.now() - t1;
    expect(r.stdout).toMatch(/take snapshot/);
    const xml = virsh('snapshot-dumpxml', GUEST, MEM);
    expect(xml).toContain('<state>running</state>');
    expect(xml).toContain("<memory snapshot='internal'/>");
    const after = qemuImg(groot);
    expect(after.snapshots[0]?.vmStateSize ?? 0).toBeGreaterThan(0);
    const facts = JSON.parse(execFileSync('sqlite3', [N.db, `select details from resources where kind = 'Snapshot' and name = '${MEM}'`], { encoding: 'utf8' })) as { facts: { tookMs: number } };
    report(`memory create (running TCG guest, 128MiB): libvirt ${facts.facts.tookMs} ms, reconcile run ${ms} ms; qcow2 actual ${before.actualSize} → ${after.actualSize} bytes; vm-state ${after.snapshots[0]!.vmStateSize} bytes`);
    expect((await N.dryRun()).code).toBe(0);

    // Stopped outside virtform: the revert brings it back running, from the memory it saved.
    virsh('destroy', GUEST);
    const rev = await N.cli(['snapshot', 'revert', MEM, '--allow-data-loss', '--json']);
    expect(rev.code, rev.stdout + rev.stderr).toBe(0);
    const doc = JSON.parse(rev.stdout) as { ms: number; state: string; stateBefore: string; stateAfter: string };
    expect(doc).toMatchObject({ state: 'running', stateBefore: 'stopped', stateAfter: 'running' });
    expect(virsh('domstate', GUEST)).toContain('running');
    report(`memory revert (TCG guest, stopped → running): libvirt ${doc.ms} ms`);
    // Running as declared, definition unchanged: nothing left to correct.
    const clean = await N.dryRun();
    expect(clean.code, clean.stdout).toBe(0);
    virsh('destroy', GUEST);
  }, 300_000);

  it('memory: true on a VM declared stopped is refused at validate, naming why', async () => {
    N.write(manifests({ state: 'stopped' }));
    const v = await runCli(['validate', N.mdir]);
    expect(v.code).toBe(2);
    expect(v.stderr + v.stdout).toMatch(/spec\.memory: VirtualMachine "[^"]+" is declared stopped .*no memory to save/);
  }, 60_000);
});
