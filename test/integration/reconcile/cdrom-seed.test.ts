/**
 * spec.disks[].device: cdrom and spec.cloudInit.seedVolume against the real libvirtd (issue 24,
 * helper cdseed; TCG domains that boot nothing):
 *   - a cdrom disk is defined read-only (`device='cdrom'`, `<readonly/>`) on its bus beside the
 *     cloud-init seed's IDE CD-ROM, with its own target; converged, the dry-run is "No changes.";
 *   - a cdrom turned into a disk with virsh (or the reverse) is drift: shown and corrected;
 *   - a cdrom's bus change on a running VM is [restart] (never hot-plugged), the seed keeps its target;
 *   - round trip: a VM converged with cloudInit content, its manifest replaced by the seedVolume
 *     form naming the seed virtform built → dry-run "No changes.", apply does nothing, the
 *     definition stays byte-identical, the seed's bytes too;
 *   - a missing seedVolume is a conflict naming it (nothing created);
 *   - an existing seed volume (made with virsh) attached as it is: no seed step, its bytes never
 *     touched, the plan says "existing volume P/V (not built by virtform)"; switching to content
 *     over it is held without --allow-data-loss and written with it; deleting the VM deletes it;
 *   - adopting a domain defined with virsh whose CD-ROM is that volume: adopted, no seed step.
 */
import { createHash } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseDomainXml } from '../../../src/libvirt/xml/index.js';
import { redefineDomain, tryVirsh, virsh } from '../../support/virsh.js';
import { scenario } from '../../support/scenario.js';
import { useSuite } from '../../support/suite.js';

const N = useSuite('cdseed');
const P = N.base;
const POOL = `${P}-pool`;
const POOL_DIR = N.poolPath();
const VM = `${P}-vm`;
const ROOT = `${P}-root`;
const ISO = `${P}-iso`;
const CI = `${P}-ci`;
const SEED = `${CI}-cidata.iso`;
const EXT = `${P}-ext`;
const ADOPT = `${P}-adopt`;
const Q = ['--domain-type', 'qemu'];

const sha = (path: string): string => createHash('sha256').update(readFileSync(path)).digest('hex');
const inactive = (name: string): string => virsh('dumpxml', '--inactive', name);
const def = (name: string) => parseDomainXml(inactive(name));
/** A volume's file: virtform names it `<name>.qcow2` or `<name>.img` (raw). */
const volPath = (v: string): string => join(POOL_DIR, v === ROOT ? `${v}.qcow2` : `${v}.img`);

function storage() {
  return scenario().in('storage.yaml')
    .pool(POOL, { path: POOL_DIR, autostart: false })
    .volume(ROOT, { capacity: '16MiB', format: 'qcow2' })
    .volume(ISO, { capacity: '1MiB', format: 'raw' });
}

type Spec = Record<string, unknown>;
/** The VMs of the folder, by name (each with its own file); undefined: not declared. */
const world: Record<string, { spec: Spec; meta?: Spec } | undefined> = {};
function files(set: Record<string, { spec: Spec; meta?: Spec } | undefined>) {
  Object.assign(world, set);
  let sc = storage();
  for (const [name, v] of Object.entries(world)) if (v) sc = sc.in(`${name}.yaml`).vm(name, v.spec, v.meta);
  return sc;
}
const cdromVm = (cdrom: Spec) => ({
  [VM]: { spec: { state: 'running', disks: [{ volume: ROOT, bus: 'virtio', boot: 1 }, { volume: ISO, device: 'cdrom', ...cdrom }], cloudInit: { userData: '#cloud-config\n' } } },
});
const seedVm = (cloudInit: Spec, state = 'running') => ({ spec: { state, disks: [], cloudInit: { pool: POOL, ...cloudInit } } });
interface JsonPlan { plan: { changes: { name: string; action: string; steps: { op: string }[] }[] } }
const planOf = async () => {
  const r = await N.cli(['reconcile', N.mdir, '--dry-run', '--json', ...Q]);
  return (JSON.parse(r.stdout) as JsonPlan).plan;
};

const out = (r: { stdout: string; stderr: string }): string => r.stdout + r.stderr;

describe.sequential('cdrom disks and an existing cloud-init seed on qemu:///system', () => {
  it('defines a cdrom disk read-only beside the seed CD-ROM, each with its own target; converged: No changes.', async () => {
    await N.reconcileOk(files(cdromVm({ bus: 'sata' })), Q);
    const xml = inactive(VM);
    const d = parseDomainXml(xml);
    expect(d.disks.map((x) => x.path)).toEqual([volPath(ROOT)]);
    const cds = d.cdroms.map((c) => `${c.target}=${c.path.split('/').pop()} (${c.bus})`).sort();
    expect(cds).toEqual([`hda=${VM}-cidata.iso (ide)`, `sda=${volPath(ISO).split('/').pop()} (sata)`]);
    // Both CD-ROMs read-only.
    expect(xml.match(/<disk type='file' device='cdrom'>[\s\S]*?<\/disk>/g)!.every((x) => x.includes('<readonly/>'))).toBe(true);
    const dry = await N.dryRun(undefined, Q);
    expect(dry.code, out(dry)).toBe(0);
    expect(dry.stdout).toContain('No changes.');
  });

  it('a cdrom turned into a disk outside virtform is drift: shown and corrected', async () => {
    redefineDomain(VM, (x) => x.replace(/<disk type='file' device='cdrom'>[\s\S]*?<\/disk>/g,
      (d) => (d.includes('-iso.img') ? d.replace("device='cdrom'", "device='disk'").replace(/<readonly\/>\s*/, '') : d)), N.work);
    expect(def(VM).disks.map((x) => x.path)).toContain(volPath(ISO));
    const dry = await N.dryRun(undefined, Q);
    expect(dry.code, out(dry)).toBe(3);
    expect(dry.stdout).toMatch(/spec\.disks\[1\]\.device/);
    expect(dry.stdout).toMatch(/drift/);
    await N.reconcileOk(undefined, Q);
    const d = def(VM);
    expect(d.disks.map((x) => x.path)).toEqual([volPath(ROOT)]);
    expect(d.cdroms.map((c) => c.path)).toContain(volPath(ISO));
    expect((await N.dryRun(undefined, Q)).code).toBe(0);
  });

  it("a cdrom's bus change on the running VM is [restart], never hot-plugged; the seed keeps its target", async () => {
    const seedBefore = def(VM).cdroms.find((c) => c.path.endsWith('-cidata.iso'))!;
    const dry = await N.dryRun(files(cdromVm({ bus: 'ide' })), Q);
    expect(dry.code, out(dry)).toBe(3);
    expect(dry.stdout).toMatch(/spec\.disks\[1\]\.bus.*\[restart\]|\[restart\][^\n]*spec\.disks\[1\]\.bus/);
    const ops = (await planOf()).changes.find((c) => c.name === VM)!.steps.map((x) => x.op);
    expect(ops).not.toContain('vm.attach');
    expect(ops).not.toContain('vm.detach');
    await N.reconcileOk(undefined, Q);
    const d = def(VM);
    const seed = d.cdroms.find((c) => c.path.endsWith('-cidata.iso'))!;
    const iso = d.cdroms.find((c) => c.path === volPath(ISO))!;
    expect(seed.target).toBe(seedBefore.target);
    expect(iso.bus).toBe('ide');
    expect(iso.target).not.toBe(seed.target);
    expect((await N.dryRun(undefined, Q)).code).toBe(0);
  });

  it('round trip: the seedVolume form of a seed virtform built changes nothing (definition byte-identical)', async () => {
    const built = { [CI]: seedVm({ userData: '#cloud-config\nhostname: ci\n' }) };
    await N.reconcileOk(files(built), Q);
    const xml = inactive(CI);
    const seedSha = sha(join(POOL_DIR, SEED));
    const dry = await N.dryRun(files({ [CI]: seedVm({ seedVolume: SEED }) }), Q);
    expect(dry.code, out(dry)).toBe(0);
    expect(dry.stdout).toMatch(/^No changes/);
    expect(dry.stdout).not.toContain(CI);
    const applied = await N.reconcileOk(undefined, Q);
    expect(applied.stdout).toMatch(/^No changes/);
    expect(applied.stdout).not.toContain(CI);
    expect(inactive(CI)).toBe(xml);
    expect(sha(join(POOL_DIR, SEED))).toBe(seedSha);
    // Twice (the no-op fast path may take it now).
    expect((await N.reconcileOk(undefined, Q)).stdout).not.toContain(CI);
    expect(inactive(CI)).toBe(xml);
    // And back to the content it was built from: nothing either.
    const back = await N.dryRun(files(built), Q);
    expect(back.code, out(back)).toBe(0);
    N.write(files({ [CI]: seedVm({ seedVolume: SEED }) }));
  });

  it('a missing seedVolume is a conflict naming it; nothing is created', async () => {
    N.write(files({ [EXT]: seedVm({ seedVolume: 'nope.iso' }, 'stopped') }));
    const r = await N.cli(['reconcile', N.mdir, ...Q]);
    expect(r.code, out(r)).toBe(1);
    expect(out(r)).toContain(`cloud-init seed volume ${POOL}/nope.iso (spec.cloudInit.seedVolume) does not exist`);
    expect(tryVirsh('dominfo', EXT)).toBe('');
    expect(tryVirsh('vol-info', '--pool', POOL, 'nope.iso')).toBe('');
  });

  it('an existing seed volume is attached as it is, held before being written over, deleted with the VM', async () => {
    // A seed made by another tool, named as virtform would name its own.
    const name = `${EXT}-cidata.iso`;
    const path = join(POOL_DIR, name);
    virsh('vol-create-as', POOL, name, '64KiB', '--format', 'raw');
    const file = join(N.work, 'foreign.bin');
    writeFileSync(file, Buffer.alloc(64 * 1024, 7));
    virsh('vol-upload', '--pool', POOL, name, file);
    const foreign = sha(path);
    const asVolume = { [EXT]: seedVm({ seedVolume: name }) };
    const dry = await N.dryRun(files(asVolume), Q);
    expect(dry.code, out(dry)).toBe(3);
    expect(dry.stdout).toContain(`existing volume ${POOL}/${name} (not built by virtform)`);
    expect(dry.stdout).not.toContain('build and upload cloud-init seed');
    await N.reconcileOk(undefined, Q);
    expect(def(EXT).cdroms).toEqual([expect.objectContaining({ path, bus: 'ide' })]);
    expect(sha(path)).toBe(foreign);
    expect((await N.dryRun(undefined, Q)).code).toBe(0);

    // Content instead: the volume virtform did not build is not written over without consent.
    N.write(files({ [EXT]: seedVm({ userData: '#cloud-config\n' }) }));
    const held = await N.cli(['reconcile', N.mdir, ...Q]);
    expect(held.code, out(held)).toBe(1);
    expect(out(held)).toMatch(/held/);
    expect(sha(path)).toBe(foreign);
    await N.reconcileOk(undefined, [...Q, '--allow-data-loss']);
    expect(sha(path)).not.toBe(foreign);
    expect((await N.dryRun(undefined, Q)).code).toBe(0);

    // Back to seedVolume (the seed virtform built now): nothing to do; removing the VM removes it.
    expect((await N.dryRun(files(asVolume), Q)).code).toBe(0);
    await N.reconcileOk(files({ [EXT]: undefined }), Q);
    expect(tryVirsh('dominfo', EXT)).toBe('');
    expect(tryVirsh('vol-info', '--pool', POOL, name)).toBe('');
  });

  it('adopts a domain defined with virsh whose CD-ROM is an existing seed: no seed step', async () => {
    const name = `${ADOPT}.iso`;
    virsh('vol-create-as', POOL, name, '64KiB', '--format', 'raw');
    const path = join(POOL_DIR, name);
    const before = sha(path);
    const xml = `<domain type='qemu'><name>${ADOPT}</name><memory unit='MiB'>64</memory><vcpu>1</vcpu>
<os><type arch='x86_64' machine='pc'>hvm</type></os>
<devices><disk type='file' device='cdrom'><driver name='qemu' type='raw'/><source file='${path}'/><target dev='hda' bus='ide'/><readonly/></disk></devices></domain>`;
    const f = join(N.work, 'adopt.xml');
    writeFileSync(f, xml);
    virsh('define', f);
    N.write(files({ [ADOPT]: { ...seedVm({ seedVolume: name }, 'stopped'), meta: { adopt: true } } }));
    const c = (await planOf()).changes.find((x) => x.name === ADOPT)!;
    expect(c.action).toBe('update');
    expect(c.steps.map((s) => s.op)).not.toContain('vm.seed');
    await N.reconcileOk(undefined, Q);
    expect(def(ADOPT).cdroms).toEqual([expect.objectContaining({ path, target: 'hda', bus: 'ide' })]);
    expect(sha(path)).toBe(before);
    expect((await N.dryRun(undefined, Q)).code).toBe(0);
  });
});
