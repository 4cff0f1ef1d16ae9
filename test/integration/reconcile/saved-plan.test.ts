/**
 * Saved plans (issue 24, savedplan) on the real libvirtd, through the CLI: `reconcile --dry-run
 * --out PLAN` then `reconcile --plan PLAN` applies exactly the planned steps; every refusal (the
 * manifests edited, an object defined with virsh, a touched object's definition changed with
 * virsh, the plan file edited, another format) exits 1 naming the change and changes nothing; no
 * secret in the plan file (a user-data marker); consent flags recorded and honoured, and refused
 * on the applying command. (A watcher holding the lease: saved-plan-queue.test.ts.)
 */
import { describe, expect, it } from 'vitest';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { inventory, virsh, type CliResult } from '../../support/real-host.js';
import { useSuite } from '../../support/suite.js';

const S = useSuite('savplan');
const P = S.base;
const POOL = `${P}-pool`;
const VM = `${P}-vm`;
const MARKER = 'vf-secret-marker-7f3c2a';

function expectCode(r: CliResult, code: number): void {
  expect(r.code, `stdout:\n${r.stdout}\nstderr:\n${r.stderr}`).toBe(code);
}

const doc = (kind: string, name: string, spec: string): string => `apiVersion: virtform.dev/v1\nkind: ${kind}\nmetadata: {name: ${name}}\nspec: ${spec}\n`;

function lab(o: { memory?: string; data?: boolean; description?: string } = {}): Record<string, string> {
  const docs = [
    doc('StoragePool', POOL, `{path: ${S.poolPath()}}`),
    doc('Network', `${P}-net`, `{mode: isolated, cidr: ${S.cidr()}, autostart: false}`),
    doc('Volume', `${P}-root`, `{pool: ${POOL}, capacity: 16MiB, format: qcow2}`),
    ...(o.data ? [doc('Volume', `${P}-data`, `{pool: ${POOL}, capacity: 8MiB, format: qcow2}`)] : []),
    `apiVersion: virtform.dev/v1
kind: VirtualMachine
metadata: {name: ${VM}}
spec:
  vcpus: 1
  memory: ${o.memory ?? '64MiB'}
  state: stopped
  disks: [{volume: ${P}-root}${o.data ? `, {volume: ${P}-data}` : ''}]
  nics: [{network: ${P}-net}]
  cloudInit:
    userData: "#cloud-config\\npassword: ${MARKER}\\n"
    metaData: {local-hostname: savplan}
`,
  ];
  return { 'lab.yaml': docs.join('---\n') };
}

interface PlanDoc {
  format: string;
  digest: string;
  source: { dir?: string };
  consent: { allowDataLoss: boolean; maxDeletions: number | 'all' | null; ignoreSuspend: boolean; allowEmpty: boolean };
  manifests: { digest: string; revision: { gitCommit: string | null } };
  observed: { objects: string[] };
  baselines: Record<string, string>;
  steps: { resource: string; op: string; host: string }[];
  held: Record<string, string>;
}
interface ApplyJson { outcome: string; steps: { resource: string; op: string; status: string }[] }

const planFile = (name: string): string => join(S.work, `${name}.plan.json`);
const readPlan = (f: string): PlanDoc => JSON.parse(readFileSync(f, 'utf8')) as PlanDoc;
const sortSteps = (steps: { resource: string; op: string }[]): string[] => steps.map((s) => `${s.op} ${s.resource}`).sort();
/** What the host has of this suite, and the VM's inactive definition: must not move on a refusal. */
const snapshot = (): string => JSON.stringify({ inv: inventory(S.prefix), xml: virsh('dumpxml', '--inactive', VM) });

async function plan(name: string, extra: string[] = []): Promise<{ file: string; doc: PlanDoc; r: CliResult }> {
  const file = planFile(name);
  const r = await S.cli(['reconcile', S.mdir, '--dry-run', '--out', file, ...extra]);
  expectCode(r, 0);
  return { file, doc: readPlan(file), r };
}

describe('saved plans on the real daemon', () => {
  it('plan then apply: exactly the planned steps; the plan file is the --json document and holds no secret', async () => {
    S.write(lab());
    const file = planFile('create');
    const json = await S.cli(['reconcile', S.mdir, '--dry-run', '--out', file, '--json']);
    expectCode(json, 0);
    const text = readFileSync(file, 'utf8');
    expect(JSON.parse(json.stdout)).toEqual(JSON.parse(text));
    expect(json.stderr).toContain(`plan saved to ${file}`);
    const doc = readPlan(file);
    expect(doc.format).toBe('virtform-plan/1');
    expect(doc.source.dir).toBe(S.mdir);
    expect(doc.consent).toEqual({ allowDataLoss: false, maxDeletions: null, ignoreSuspend: false, allowEmpty: false });
    expect(doc.steps.length).toBeGreaterThan(4);
    expect(doc.baselines[`VirtualMachine/${VM}`]).toBe('absent');
    // No secret: the user-data text never reaches the plan (digests only).
    expect(text).not.toContain(MARKER);
    expect(inventory(S.prefix).domains).toEqual([]); // a dry-run changes nothing

    // Applied from the plan alone (DIR recorded in it): exactly its steps.
    const apply = await S.cli(['reconcile', '--plan', file, '--json']);
    expectCode(apply, 0);
    expect(apply.stderr).toMatch(/applying the plan .* consent from the plan: none/);
    const applied = JSON.parse(apply.stdout) as ApplyJson;
    expect(applied.outcome).toBe('succeeded');
    expect(sortSteps(applied.steps)).toEqual(sortSteps(doc.steps));
    expect(applied.steps.every((s) => s.status === 'succeeded')).toBe(true);
    expect(inventory(S.prefix).domains).toEqual([VM]);
    expectCode(await S.dryRun(), 0); // converged

    // The same plan again: refused, nothing done (it was applied already).
    const again = await S.cli(['reconcile', '--plan', file]);
    expectCode(again, 1);
    expect(again.stderr).toMatch(/refused: the plan .* no longer matches; nothing was changed:\n  - this plan was applied already \(run [0-9a-f-]+, /);
  });

  it('refusals: manifests edited, object added with virsh, touched object changed with virsh, file edited, other format — exit 1 naming it, nothing changed', async () => {
    S.write(lab({ memory: '96MiB' }));
    const { file, doc } = await plan('memory');
    expect(sortSteps(doc.steps)).toEqual([`vm.define VirtualMachine/${VM}`]);
    expect(Object.keys(doc.baselines)).toEqual([`VirtualMachine/${VM}`]);
    const before = snapshot();

    // 1. The manifests changed since the plan.
    S.write(lab({ memory: '128MiB' }));
    const edited = await S.cli(['reconcile', '--plan', file]);
    expectCode(edited, 1);
    expect(edited.stderr).toMatch(/the manifests changed since the plan \(digest \w+ → \w+\): VirtualMachine\/vftest-savplan-vm changed/);
    expect(snapshot()).toBe(before);
    S.write(lab({ memory: '96MiB' }));

    // 2. An object added with virsh (not virtform's, not in the plan's set of objects).
    const extra = `${P}-extra`;
    const xml = join(S.work, 'extra.xml');
    writeFileSync(xml, `<network><name>${extra}</name><bridge name='vfsp-x0'/><ip address='${S.subnet(1)}.1' netmask='255.255.255.0'/></network>`);
    virsh('net-define', xml);
    const added = await S.cli(['reconcile', '--plan', file, '--json']);
    expectCode(added, 1);
    expect(added.stderr).toContain(`object added on the host since the plan: network/${extra}`);
    expect(JSON.parse(added.stdout)).toMatchObject({ outcome: 'refused', reasons: [expect.stringContaining(`network/${extra}`)] });
    virsh('net-undefine', extra);
    expect(snapshot()).toBe(before);

    // 3. The plan file edited (a step changed; the digest no longer matches), and another format.
    const tampered = planFile('tampered');
    const t = readPlan(file);
    t.steps[0]!.op = 'vm.delete';
    writeFileSync(tampered, JSON.stringify(t));
    const tamperedRun = await S.cli(['reconcile', '--plan', tampered]);
    expectCode(tamperedRun, 1);
    expect(tamperedRun.stderr).toMatch(/was edited after it was made: its digest does not match its content/);
    const v2 = planFile('v2');
    writeFileSync(v2, JSON.stringify({ ...readPlan(file), format: 'virtform-plan/2' }));
    const wrongFormat = await S.cli(['reconcile', '--plan', v2]);
    expectCode(wrongFormat, 1);
    expect(wrongFormat.stderr).toContain('is a plan of format "virtform-plan/2"; this virtform applies virtform-plan/1 only');
    const junk = planFile('junk');
    writeFileSync(junk, 'not json');
    expectCode(await S.cli(['reconcile', '--plan', junk]), 2);
    expectCode(await S.cli(['reconcile', '--plan', join(S.work, 'missing.json')]), 2);
    expect(snapshot()).toBe(before);

    // 4. The touched object's definition changed with virsh since the plan.
    virsh('desc', VM, '--config', '--new-desc', 'edited by hand');
    const touched = snapshot();
    const changed = await S.cli(['reconcile', '--plan', file]);
    expectCode(changed, 1);
    expect(changed.stderr).toContain(`the definition of VirtualMachine/${VM} changed on the host since the plan`);
    expect(snapshot()).toBe(touched);

    // A new plan of the same change applies.
    const fresh = await plan('memory2');
    const ok = await S.cli(['reconcile', '--plan', fresh.file]);
    expectCode(ok, 0);
    expect(virsh('dumpxml', '--inactive', VM)).toContain(`<memory unit='KiB'>${96 * 1024}</memory>`);
  });

  it('consent flags: recorded in the plan, shown and honoured when applying; refused on the applying command', async () => {
    await S.reconcileOk(lab({ data: true }));
    // The data disk leaves the VM and its manifest goes: deleting it destroys data (held without consent).
    S.write(lab({ data: false }));
    const held = await plan('held');
    expect(held.doc.consent.allowDataLoss).toBe(false);
    expect(Object.keys(held.doc.held)).toContain(`Volume/${P}-data`);
    expect(held.doc.steps.map((s) => s.resource)).not.toContain(`Volume/${P}-data`);
    const heldRun = await S.cli(['reconcile', '--plan', held.file]);
    expectCode(heldRun, 1); // held: nothing destroyed without consent
    expect(inventory(S.prefix).volumes).toContain(`${POOL}/${P}-data.qcow2`);

    const consent = await plan('consent', ['--allow-data-loss', '--max-deletions', '3']);
    expect(consent.doc.consent).toEqual({ allowDataLoss: true, maxDeletions: 3, ignoreSuspend: false, allowEmpty: false });
    expect(sortSteps(consent.doc.steps)).toEqual([`vm.define VirtualMachine/${VM}`, `volume.delete Volume/${P}-data`]);
    expect(consent.r.stderr).toContain('consent: --allow-data-loss --max-deletions 3');
    // Consent flags on the applying command: refused (they come from the plan).
    const flags = await S.cli(['reconcile', '--plan', consent.file, '--allow-data-loss']);
    expectCode(flags, 2);
    expect(flags.stderr).toContain('with --plan the consent flags are the plan\'s');
    const apply = await S.cli(['reconcile', '--plan', consent.file]);
    expectCode(apply, 0);
    expect(apply.stderr).toContain('consent from the plan: --allow-data-loss --max-deletions 3');
    expect(inventory(S.prefix).volumes).not.toContain(`${POOL}/${P}-data.qcow2`);
    expectCode(await S.dryRun(), 0);
    // Usage errors: exit 2, nothing done.
    expectCode(await S.cli(['reconcile', S.mdir, '--out', planFile('x')]), 2);
    expectCode(await S.cli(['reconcile', '--plan', consent.file, '--dry-run']), 2);
    expectCode(await S.cli(['reconcile', S.mdir, '--no-queue']), 2);
    // Host manifests (a fleet): saved plans are refused clearly (exit 2), nothing planned or written.
    const fleet = join(S.work, 'fleet');
    mkdirSync(fleet, { recursive: true });
    writeFileSync(join(fleet, 'hosts.yaml'), `apiVersion: virtform.dev/v1\nkind: Host\nmetadata: {name: h1}\nspec: {uri: 'qemu:///system'}\n---\n${doc('StoragePool', `${P}-fpool`, `{path: ${S.poolPath('fpool')}}`)}`);
    const fleetPlan = await S.cli(['reconcile', fleet, '--dry-run', '--out', planFile('fleet')]);
    expectCode(fleetPlan, 2);
    expect(fleetPlan.stderr).toContain('saved plans (--out, --plan) are not supported with Host manifests (a fleet) yet');
    expect(existsSync(planFile('fleet'))).toBe(false);
  });
});
