/**
 * Placement across a fleet of three real libvirt hosts (namespace hosts vffla1-3, zones a, b, c,
 * 1 GiB and 8 vCPUs each by their Host manifests), through the CLI as users run it: 6 VMs spread
 * by zone land 2/2/2 and stay put on rerun; a pinned VM lands where pinned; `--explain` names the
 * filter that rejected each host; a VM too big for any host is Unschedulable, with the reason per
 * host, while the rest converge. Objects: vftest-flplace-*.
 */
import { describe, expect, it } from 'vitest';
import { useFleet } from '../support/fleet.js';
import { useSuite } from '../support/suite.js';
import { counts, FLEET_FLAGS, hostOf, poolName, webDisk, webFleet, webName } from './support.js';

const S = useSuite('flplace');
const F = useFleet('a', 3, { labels: (i) => ({ zone: 'abc'[i]!, disk: i < 2 ? 'ssd' : 'hdd' }), capacity: { memory: '1GiB', vcpus: 8 } });

/** The plan's lines about VM `name` (its placement line and, with --explain, the lines under it). */
function blockOf(out: string, name: string): string {
  const lines = out.split('\n');
  const start = lines.findIndex((l) => l.includes(name));
  if (start < 0) return '';
  const block = [lines[start]!];
  for (const l of lines.slice(start + 1)) {
    if (/^\S/.test(l)) break; // the next top-level line
    block.push(l);
  }
  return block.join('\n');
}

describe('placement on three hosts', () => {
  it('6 VMs spread by zone land 2/2/2, each plan line says where and why, and they stay put on rerun', async () => {
    const m = webFleet(S, F);
    const r = await S.reconcileOk(m, FLEET_FLAGS);
    const placed = F.placement(S.prefix);
    expect(counts(placed), r.stdout).toEqual({ h1: 2, h2: 2, h3: 2 });
    for (let i = 1; i <= 6; i++) {
      const host = hostOf(placed, webName(S, i))!;
      // every plan line of a created VM names its host and the reason (issue: `→ host h2 (fits: …; spread by zone …)`)
      expect(r.stdout).toMatch(new RegExp(`VirtualMachine/${webName(S, i)}\\b.*→ host ${host}\\b.*spread by zone`));
      // the volume lives with the VM that uses it, and nowhere else
      for (const h of F.hosts) {
        const vols = F.objects(h.id, S.prefix).volumes;
        expect(vols.includes(`${poolName(S)}/${webDisk(S, i)}`), `${webDisk(S, i)} on ${h.id}`).toBe(h.id === host);
      }
    }
    // the pool has no `hosts`: it is on every host
    for (const h of F.hosts) expect(F.objects(h.id, S.prefix).pools).toEqual([poolName(S)]);

    const dry = await S.dryRun(m, FLEET_FLAGS);
    expect(dry.code, dry.stdout + dry.stderr).toBe(0);
    expect(dry.stdout).toContain('No changes.');
    const again = await S.reconcileOk(m, FLEET_FLAGS);
    expect(again.stdout).toContain('No changes.');
    expect(F.placement(S.prefix)).toEqual(placed);
  });

  it('a pinned VM lands where pinned, even where spreading would not put it', async () => {
    const before = F.placement(S.prefix);
    const m = webFleet(S, F).in('pinned.yaml')
      .vm(S.name('pinned'), { state: 'stopped', domainType: 'qemu', host: 'h2', placement: { spreadBy: { hostLabel: 'zone' } } }, { labels: { app: 'web' } });
    const r = await S.reconcileOk(m, FLEET_FLAGS);
    expect(r.stdout).toMatch(new RegExp(`VirtualMachine/${S.name('pinned')}\\b.*→ host h2\\b`));
    const after = F.placement(S.prefix);
    expect(hostOf(after, S.name('pinned'))).toBe('h2');
    // the others stayed where they were
    for (const [h, d] of Object.entries(before)) expect(after[h]!.filter((x) => x !== S.name('pinned'))).toEqual(d);
  });

  it('--explain names the filter that rejected each host; a VM too big for any host is Unschedulable while the rest converge', async () => {
    const m = webFleet(S, F).in('pinned.yaml')
      .vm(S.name('pinned'), { state: 'stopped', domainType: 'qemu', host: 'h2', placement: { spreadBy: { hostLabel: 'zone' } } }, { labels: { app: 'web' } })
      .in('more.yaml')
      // only zone b matches: h1 and h3 are rejected by the selector
      .vm(S.name('sel'), { state: 'stopped', domainType: 'qemu', placement: { hostSelector: { matchLabels: { zone: 'b' } } } })
      // bigger than any host's 1 GiB: rejected by memory everywhere
      .vm(S.name('big'), { state: 'stopped', domainType: 'qemu', memory: '2GiB' })
      // ssd hosts are h1 and h2, neither has 1000 MiB free (2-3 VMs of 64 MiB each); h3 is hdd
      .vm(S.name('picky'), { state: 'stopped', domainType: 'qemu', memory: '1000MiB', placement: { hostSelector: { matchLabels: { disk: 'ssd' } } } })
      // needs more vCPUs than any host has
      .vm(S.name('wide'), { state: 'stopped', domainType: 'qemu', vcpus: 12 });

    const explain = await S.dryRun(m, [...FLEET_FLAGS, '--explain']);
    expect(explain.code, explain.stdout + explain.stderr).toBe(2); // changes pending
    const sel = blockOf(explain.stdout, S.name('sel'));
    expect(sel, explain.stdout).toMatch(/→ host h2\b/);
    expect(sel).toMatch(/h1\b.*selector/);
    expect(sel).toMatch(/h3\b.*selector/);
    const big = blockOf(explain.stdout, S.name('big'));
    expect(big, explain.stdout).toMatch(/Unschedulable/);
    for (const h of ['h1', 'h2', 'h3']) expect(big).toMatch(new RegExp(`${h}\\b.*memory`));
    const picky = blockOf(explain.stdout, S.name('picky'));
    expect(picky, explain.stdout).toMatch(/Unschedulable/);
    expect(picky).toMatch(/h1\b.*memory/);
    expect(picky).toMatch(/h2\b.*memory/);
    expect(picky).toMatch(/h3\b.*selector/);
    const wide = blockOf(explain.stdout, S.name('wide'));
    for (const h of ['h1', 'h2', 'h3']) expect(wide, explain.stdout).toMatch(new RegExp(`${h}\\b.*vcpus`));

    // the same in --json: each rejected host with its filter
    const json = await S.cli(['reconcile', S.mdir, '--dry-run', '--json', '--explain', ...FLEET_FLAGS]);
    expect(json.stdout).toMatch(/"filter":\s*"selector"/);
    expect(json.stdout).toMatch(/"filter":\s*"memory"/);

    // the apply: everything that fits converges, the unschedulable VMs are defined nowhere
    const r = await S.cli(['reconcile', S.mdir, ...FLEET_FLAGS]);
    expect(r.stdout + r.stderr).toMatch(/Unschedulable/);
    const placed = F.placement(S.prefix);
    expect(hostOf(placed, S.name('sel'))).toBe('h2');
    for (const vm of ['big', 'picky', 'wide']) expect(hostOf(placed, S.name(vm)), vm).toBeUndefined();
    expect(Object.values(placed).flat().length).toBe(8); // 6 web, pinned, sel
    // a rerun has nothing to do but report the unschedulable VMs again
    const dry = await S.dryRun(m, FLEET_FLAGS);
    expect(dry.stdout).toMatch(/Unschedulable/);
    expect(dry.stdout).not.toMatch(/^\s*[+~-] .*VirtualMachine\/\S*(web|sel|pinned)/m);
  });
});
