/**
 * The round trip of `manifests/examples` (issue 24, "Done when"): a host converged from the
 * examples (their names, pool path, subnet and MACs made this suite's), exported whole
 * (`--include-managed`), gives manifests whose `reconcile --dry-run` against the same host and
 * state DB is "No changes.": every field the examples declare is read back from libvirt alone
 * (vCPU and memory maxima, CPU model, domain type, graphics, UEFI with kernel and initrd volumes,
 * extra devices, DHCP hosts, a qcow2 clone's backing volume, an imported volume without its
 * `source`, the cloud-init seeds as `cloudInit.seedVolume`).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cpSync, readFileSync, readdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { runCli } from '../../support/cli.js';
import { suiteNames } from '../../support/names.js';

const N = suiteNames('expround');
const P = N.prefix;
const EXAMPLES = fileURLToPath(new URL('../../../manifests/examples', import.meta.url));
let work: string;
let db: string;
let src: string;

beforeAll(() => {
  N.cleanup();
  work = N.tempDir();
  db = join(work, 'state.db');
  src = join(work, 'examples');
  cpSync(EXAMPLES, src, { recursive: true });
  renameSync(join(src, 'cloud-init', 'tiny-1.user-data'), join(src, 'cloud-init', `${P}tiny-1.user-data`));
  const subnet = N.subnet();
  for (const f of readdirSync(src).filter((x) => x.endsWith('.yaml'))) {
    const text = readFileSync(join(src, f), 'utf8')
      .replaceAll('/var/lib/virtform/pools/lab', N.poolPath())
      .replaceAll('lab-pool', `${P}pool`).replaceAll('lab-net', `${P}net`).replaceAll('base-image', `${P}base`)
      .replace(/\b(web-1|db-1|tiny-1|tiny-uefi)/g, `${P}$1`)
      .replaceAll('10.200.0.', `${subnet}.`)
      .replace(/52:54:00:00:00:(\w\w)/g, (_m, h: string) => N.mac(parseInt(h, 16)));
    writeFileSync(join(src, f), text);
  }
}, 60_000);

afterAll(() => {
  N.cleanup();
  rmSync(work, { recursive: true, force: true });
}, 120_000);

describe.sequential('export round-trips manifests/examples', () => {
  it('converge the examples, export everything, dry-run of the export: "No changes."', async () => {
    const apply = await runCli(['reconcile', src, '--db', db]);
    expect(apply.code, apply.stdout + apply.stderr).toBe(0);
    const settled = await runCli(['reconcile', src, '--db', db, '--dry-run']);
    expect(settled.stdout).toContain('No changes.');

    const out = join(work, 'out');
    const exp = await runCli(['export', '--include-managed', '--out', out, '--json']);
    const j = JSON.parse(exp.stdout) as { objects: { kind: string; name: string; warnings: string[]; exported: boolean }[] };
    const ours = j.objects.filter((o) => o.name.startsWith(P));
    // Every object of the examples, exported without a warning.
    expect(ours.filter((o) => !o.exported || o.warnings.length > 0)).toEqual([]);
    expect(ours.map((o) => `${o.kind}/${o.name}`).sort()).toEqual(expect.arrayContaining([
      `StoragePool/${P}pool`, `Network/${P}net`, `Volume/${P}base`, `Volume/${P}web-1-root`, `Volume/${P}db-1-data`, `Volume/${P}db-1-seed`,
      `Volume/${P}tiny-uefi-kernel`, `Volume/${P}tiny-uefi-initrd`,
      `VirtualMachine/${P}web-1`, `VirtualMachine/${P}db-1`, `VirtualMachine/${P}tiny-1`, `VirtualMachine/${P}tiny-uefi`,
    ]));
    // Only this suite's objects: the test host may hold others.
    for (const f of readdirSync(out)) if (!f.includes(P)) rmSync(join(out, f));
    const seed = readFileSync(join(out, `volume-${P}db-1-seed.yaml`), 'utf8');
    expect(seed).toMatch(/# spec\.source left out/);

    const again = await runCli(['reconcile', out, '--db', db, '--dry-run']);
    expect(again.code, again.stderr).toBe(0);
    expect(again.stdout).toContain('No changes.');
  }, 300_000);
});
