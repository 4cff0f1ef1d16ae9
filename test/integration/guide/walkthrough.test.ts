/**
 * README's "Your first manifests", run as written against the real libvirtd: its YAML block is the
 * manifest folder (names `guide-…` moved to this suite's `vftest-guidewt-…`, the pool path under
 * /var/lib/virtform-test, the subnet to the suite's), its `sh` blocks are the commands (the CLI
 * for `virtform`, the suite's folder for `guide/`, plus `--db` and `--shutdown-timeout 0`), and the
 * edits and outputs its prose names in backticks are made and asserted. A README edit that makes
 * the walkthrough wrong fails here.
 */
import { describe, expect, it } from 'vitest';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { runCli } from '../../support/cli.js';
import { useSuite } from '../../support/suite.js';
import { virsh, tryVirsh } from '../../support/virsh.js';
import { codeBlocks, quoted, readme, section, shellCommands } from '../../support/readme.js';

const S = useSuite('guidewt');
const sec = section(readme(), 'Your first manifests');
const blocks = codeBlocks(sec.text, sec.line);
const yaml = blocks.find((b) => b.lang === 'yaml')!;
const shells = blocks.filter((b) => b.lang === 'sh');

/** The walkthrough's names, paths and subnet, moved onto this suite's. */
function mapped(text: string): string {
  return text
    .replaceAll('/var/lib/virtform/guide-pool', S.poolPath('pool'))
    .replaceAll('10.213.0.', `${S.subnet()}.`)
    .replaceAll('guide-', S.prefix);
}

/** Runs one README command line: `virtform …` with `guide/` as the suite's folder. */
async function run(argv: string[]): Promise<{ code: number | null; out: string }> {
  expect(argv[0]).toBe('virtform');
  const args = argv.slice(1).map((a) => (a === 'guide/' ? S.mdir : a === 'EMPTY_DIR' ? join(S.work, 'empty') : a));
  // validate reads no DB; every other command gets the suite's.
  const r = args[0] === 'validate' ? await runCli(args) : await S.cli(args);
  return { code: r.code, out: `${r.stdout}\n${r.stderr}` };
}

const file = (): string => join(S.mdir, 'lab.yaml');
/** The README paragraph that starts with `from` (what an assertion takes its quoted phrases from). */
const prose = (from: string): string => {
  const start = sec.text.indexOf(from);
  if (start < 0) throw new Error(`README's walkthrough has no paragraph starting "${from}"`);
  const end = sec.text.indexOf('\n\n', start);
  return sec.text.slice(start, end < 0 ? undefined : end);
};

describe("README: Your first manifests (run as written)", () => {
  it('the section has its YAML block and two shell blocks', () => {
    expect(yaml.text).toContain('kind: VirtualMachine');
    expect(shells).toHaveLength(2);
  });

  it('write, validate, plan, apply, status; then "No changes."', async () => {
    mkdirSync(S.mdir, { recursive: true });
    writeFileSync(file(), mapped(yaml.text));
    const [validate, dry, apply, status] = shellCommands(shells[0]!);
    const v = await run(validate!.argv);
    expect(v.code, v.out).toBe(0);
    const plan = await run(dry!.argv);
    expect(plan.code).toBe(0);
    const planLine = quoted(prose('The plan lists')).find((q) => q.startsWith('Plan:'))!;
    expect(plan.out).toContain(planLine);
    const applied = await run(apply!.argv);
    expect(applied.code, applied.out).toBe(0);
    const st = await run(status!.argv);
    expect(st.code, st.out).toBe(0);
    // The table's rows (a resource key, then a space), not the notes under it (`VirtualMachine/x: waiting for an address …`).
    const rows = st.out.split('\n').filter((l) => /^(StoragePool|Volume|Network|VirtualMachine)\/[^\s:]+\s/.test(l));
    expect(rows).toHaveLength(4);
    for (const row of rows) expect(row).toMatch(/\bconverged\b/);
    const again = await run(dry!.argv);
    expect(again.out).toContain('No changes.');
  });

  it('the memory and vCPU edit: the plan lines the README quotes, restart required, the guest that did not take the memory', async () => {
    const p = prose('Change the manifest:');
    const [memory, vcpus] = [/`memory: (\S+)`/.exec(p)![1]!, /`vcpus: (\d+)`/.exec(p)![1]!];
    writeFileSync(file(), readFileSync(file(), 'utf8').replace(/memory: \S+\n/, `memory: ${memory}\n`).replace(/vcpus: \d+\n/, `vcpus: ${vcpus}\n`));
    const dry = shellCommands(shells[0]!)[1]!;
    const plan = await run(dry.argv);
    for (const line of quoted(p).filter((q) => q.startsWith('~ '))) expect(plan.out).toContain(line);
    const applied = await run(shellCommands(shells[0]!)[2]!.argv);
    expect(applied.code, applied.out).toBe(0);
    const after = prose('Applying it redefines');
    const st = await run(shellCommands(shells[0]!)[3]!.argv);
    expect(st.out).toContain(quoted(after).find((q) => q.includes('restart required'))!);
    expect(st.out).toContain(quoted(after).find((q) => q.includes('memory change'))!);

    // "Change something outside virtform, say `virsh destroy guide-vm`": drift, corrected.
    const outside = quoted(after).find((q) => q.startsWith('virsh '))!;
    virsh(...mapped(outside).split(/\s+/).slice(1));
    const drifted = await run(dry.argv);
    expect(drifted.out).toContain(quoted(after).find((q) => q.includes('(drift)'))!);
    expect((await run(shellCommands(shells[0]!)[2]!.argv)).code).toBe(0);
    expect(tryVirsh('domstate', S.name('vm'))).toBe('running');
  });

  it('removing the volume and the VM: held without consent (exit 1, nothing deleted), deleted with --allow-data-loss', async () => {
    const docs = readFileSync(file(), 'utf8').split(/^---\n/m).filter((d) => !/^kind: (Volume|VirtualMachine)$/m.test(d));
    writeFileSync(file(), docs.join('---\n'));
    const [held, consent] = shellCommands(shells[1]!);
    const r = await run(held!.argv);
    expect(r.code, r.out).toBe(1);
    expect(r.out).toContain(held!.comment.replace(/^exit 1: /, ''));
    for (const q of quoted(prose('Remove the volume')).filter((x) => x.startsWith('! '))) expect(r.out).toContain(q.replace(/\s+/g, ' '));
    expect(tryVirsh('domstate', S.name('vm'))).toBe('running');
    expect(tryVirsh('vol-list', S.name('pool'))).toContain(S.name('vm-root'));
    const c = await run(consent!.argv);
    expect(c.code, c.out).toBe(0);
    expect(tryVirsh('domstate', S.name('vm'))).toBe('');
    expect(tryVirsh('vol-list', S.name('pool'))).not.toContain(S.name('vm-root'));
  });

  it('an empty folder is refused; the teardown the README gives removes the rest', async () => {
    mkdirSync(join(S.work, 'empty'), { recursive: true });
    expect((await run(['virtform', 'reconcile', 'EMPTY_DIR'])).code).toBe(2);
    const teardown = quoted(prose('An empty folder is refused')).find((q) => q.startsWith('virtform reconcile'))!;
    const r = await run(teardown.split(/\s+/));
    expect(r.code, r.out).toBe(0);
    expect(tryVirsh('net-info', S.name('net'))).toBe('');
    expect(tryVirsh('pool-info', S.name('pool'))).toBe('');
  });
});
