/**
 * spec.cpu, spec.graphics and spec.guestAgent against the real libvirtd (qemu:///system, TCG
 * domains without a disk or OS): what virtform defines reads back from libvirt's persistent
 * definition; a running VM gets a VNC port (autoport) that is not a difference; a cpu mode changed
 * with `virsh define` is drift, corrected; under TCG host-passthrough is a plan conflict naming the
 * VM and the modes the host offers (libvirt itself would define it and refuse it only at start);
 * a VM defined without the guest agent channel (as by a virtform from before it) is planned as a
 * [restart] change and gets the channel. The read-back oracle checks every converged state.
 */
import { describe, expect, it } from 'vitest';
import Database from 'better-sqlite3';
import { parseDomainXml } from '../../../src/libvirt/xml/index.js';
import { redefineDomain, virsh } from '../../support/virsh.js';
import { scenario, type Scenario } from '../../support/scenario.js';
import { parse } from 'yaml';
import { expectReadbackMatches } from '../../support/readback.js';
import { useSuite } from '../../support/suite.js';

const N = useSuite('hw');
const P = N.base;
const VM = `${P}-vm`;

/** The VM with `spec` (YAML lines) added to its spec. */
const files = (spec: string, state = 'running'): Scenario =>
  scenario().in('vm.yaml').vm(VM, { state, ...(parse(spec) as Record<string, unknown> | null ?? {}) });

const cli = (args: string[]) => N.cli(args);
async function reconcileOk(spec: string, state?: string): Promise<string> {
  const r = await N.reconcileOk(files(spec, state), ['--domain-type', 'qemu']);
  await expectReadbackMatches(N.mdir, 'qemu:///system', undefined, 'vm-hardware');
  return r.stdout;
}
async function dryRun(spec: string, state?: string): Promise<{ code: number | null; out: string }> {
  const r = await N.dryRun(files(spec, state), ['--domain-type', 'qemu']);
  return { code: r.code, out: r.stdout + r.stderr };
}
const definition = () => parseDomainXml(virsh('dumpxml', '--inactive', VM));
const redefine = (edit: (xml: string) => string): void => redefineDomain(VM, edit, N.work);

describe.sequential('VM cpu, graphics and guest agent on qemu:///system', () => {
  it('defines them; libvirt reads them back; a running VM has a VNC port and the plan is empty', async () => {
    await reconcileOk('cpu: {mode: host-model}\ngraphics: {type: vnc, listen: 127.0.0.1}');
    const d = definition();
    expect(d.cpu).toEqual({ mode: 'host-model' });
    expect(d.graphics).toEqual([{ type: 'vnc', listen: '127.0.0.1' }]);
    expect(d.guestAgent).toBe(true);
    const live = parseDomainXml(virsh('dumpxml', VM));
    expect(live.graphics[0]!.port).toBeGreaterThanOrEqual(5900);
    expect(virsh('domdisplay', VM).trim()).toMatch(/^vnc:\/\/127\.0\.0\.1:\d+$/);
    // status --json shows the port of the running VM's VNC server
    const st = await cli(['status', '--json']);
    const rows = (JSON.parse(st.stdout) as { resources: { kind: string; name: string; graphics?: unknown }[] }).resources;
    expect(rows.find((x) => x.name === VM)?.graphics).toEqual([{ type: 'vnc', listen: '127.0.0.1', port: live.graphics[0]!.port }]);
    const dry = await dryRun('cpu: {mode: host-model}\ngraphics: {type: vnc, listen: 127.0.0.1}');
    expect(dry.code, dry.out).toBe(0);
    expect(dry.out).toContain('No changes.');
  });

  it('a cpu mode changed with virsh define is drift, put back by reconcile', async () => {
    const spec = 'cpu: {mode: host-model}\ngraphics: {type: vnc, listen: 127.0.0.1}';
    redefine((x) => x.replace(/<cpu mode='host-model'[^>]*\/>/, "<cpu mode='maximum'/>"));
    expect(definition().cpu).toEqual({ mode: 'maximum' });
    const dry = await dryRun(spec);
    expect(dry.code, dry.out).toBe(3);
    expect(dry.out).toContain('~ spec.cpu: {"mode":"maximum"} → {"mode":"host-model"} (drift) [restart]');
    await reconcileOk(spec);
    expect(definition().cpu).toEqual({ mode: 'host-model' });
    expect((await dryRun(spec)).code).toBe(0);
  });

  it('graphics listen changed by hand is drift too; graphics spice and a custom model are defined as declared', async () => {
    redefine((x) => x.replace(/listen='127\.0\.0\.1'/, "listen='0.0.0.0'").replace(/address='127\.0\.0\.1'/, "address='0.0.0.0'"));
    const dry = await dryRun('cpu: {mode: host-model}\ngraphics: {type: vnc, listen: 127.0.0.1}');
    expect(dry.out).toContain('~ spec.graphics: {"type":"vnc","listen":"0.0.0.0"} → {"type":"vnc","listen":"127.0.0.1"} (drift) [restart]');
    const out = await reconcileOk('cpu: {mode: custom, model: Westmere}\ngraphics: {type: spice}', 'stopped');
    expect(out).toMatch(/spec\.cpu/);
    expect(definition().cpu).toEqual({ mode: 'custom', model: 'Westmere' });
    expect(definition().graphics).toEqual([{ type: 'spice', listen: '127.0.0.1' }]);
  });

  it('TCG: host-passthrough is a plan conflict naming the VM and the offered modes; the definition is left alone', async () => {
    const dry = await dryRun('cpu: {mode: host-passthrough}', 'stopped');
    expect(dry.code, dry.out).toBe(3); // --detailed-exitcode: not converged
    expect(dry.out).toContain('1 in conflict');
    expect(dry.out).toContain(`VirtualMachine ${VM}: spec.cpu.mode host-passthrough is not offered by the host for qemu domains`);
    expect(dry.out).toMatch(/it offers maximum, host-model, custom/);
    N.write(files('cpu: {mode: host-passthrough}', 'stopped'));
    const r = await cli(['reconcile', N.mdir, '--domain-type', 'qemu']);
    expect(r.code).toBe(1);
    expect(definition().cpu).toEqual({ mode: 'custom', model: 'Westmere' });
  });

  it('a VM without the guest agent channel (defined by an older virtform): a [restart] change, not drift; it gets the channel', async () => {
    await reconcileOk('', 'running');
    redefine((x) => x.replace(/<channel type='unix'>[\s\S]*?<\/channel>/, ''));
    virsh('destroy', VM);
    virsh('start', VM);
    expect(definition().guestAgent).toBe(false);
    // As that virtform's record: no guest agent fact.
    const sql = new Database(N.db);
    const row = sql.prepare('SELECT details FROM resources WHERE kind = ? AND name = ?').get('VirtualMachine', VM) as { details: string };
    const details = JSON.parse(row.details) as { facts?: Record<string, unknown> };
    delete details.facts?.guestAgent;
    sql.prepare('UPDATE resources SET details = ? WHERE kind = ? AND name = ?').run(JSON.stringify(details), 'VirtualMachine', VM);
    sql.close();
    const dry = await dryRun('');
    expect(dry.code, dry.out).toBe(3);
    expect(dry.out).toContain('~ spec.guestAgent: false → true [restart]');
    expect(dry.out).not.toContain('(drift)');
    expect(dry.out).toContain('restart required for spec.guestAgent (running with false, defined true); takes effect on next boot');
    await reconcileOk('');
    expect(definition().guestAgent).toBe(true);
    expect(parseDomainXml(virsh('dumpxml', VM)).guestAgent).toBe(false); // running without it until the next boot
    const st = await cli(['status', '--json']);
    expect(st.stdout).toContain('restart required for spec.guestAgent');
  });
});
