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
import { counts, FLEET_FLAGS, hostOf, poolName, webDisk, webFleet, webVol, webName } from './support.js';

const S = useSuite('flplace');
const F = useFleet('a', 3, { labels: (i) => ({ zone: 'abc'[i]!, disk: i < 2 ? 'ssd' : 'hdd' }), capacity: { memory: '1GiB', vcpus: 8 } });

/**
 * The lines of the plan starting at the first line matching `head`, with the more indented lines
 * under it (a placed VM's `--explain` lines, an unschedulable VM's reason per host).
 */
function blockOf(out: string, head: RegExp): string {
  const lines = out.split('\n');
  const start = lines.findIndex((l) => head.test(l));
  if (start < 0) return '';
  const indent = (l: string): number => l.length - l.trimStart().length;
  const block = [lines[start]!];
  for (const l of lines.slice(start + 1)) {
    if (l.trim() === '' || indent(l) <= indent(lines[start]!)) break;
    block.push(l);
  }
  return block.join('\n');
}
const placedHead = (vm: string): RegExp => new RegExp(`^\\s*\\+ VirtualMachine/${vm} → host`);
const unschedulableHead = (vm: string): RegExp => new RegExp(`Unschedulable: ${vm}:`);

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
        expect(vols.includes(`${poolName(S)}/${webVol(S, i)}`), `${webDisk(S, i)} on ${h.id}`).toBe(h.id === host);
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
    expect(explain.code, explain.stdout + explain.stderr).toBe(3); // changes pending
    const sel = blockOf(explain.stdout, placedHead(S.name('sel')));
    expect(sel, explain.stdout).toMatch(/→ host h2\b/);
    expect(sel).toMatch(/h1: rejected by selector/);
    expect(sel).toMatch(/h3: rejected by selector/);
    expect(sel).toMatch(/h2: chosen/);
    const big = blockOf(explain.stdout, unschedulableHead(S.name('big')));
    for (const h of ['h1', 'h2', 'h3']) expect(big, explain.stdout).toMatch(new RegExp(`${h}: rejected by memory`));
    const picky = blockOf(explain.stdout, unschedulableHead(S.name('picky')));
    expect(picky, explain.stdout).toMatch(/h1: rejected by memory/);
    expect(picky).toMatch(/h2: rejected by memory/);
    expect(picky).toMatch(/h3: rejected by selector/);
    const wide = blockOf(explain.stdout, unschedulableHead(S.name('wide')));
    for (const h of ['h1', 'h2', 'h3']) expect(wide, explain.stdout).toMatch(new RegExp(`${h}: rejected by vcpus`));

    // the same in --json: each rejected host with its filter
    const json = await S.cli(['reconcile', S.mdir, '--dry-run', '--json', '--explain', ...FLEET_FLAGS]);
    expect(json.stdout).toMatch(/"filter":\s*"selector"/);
    expect(json.stdout).toMatch(/"filter":\s*"memory"/);

    // the apply: everything that fits converges, the unschedulable VMs are defined nowhere
    const r = await S.cli(['reconcile', S.mdir, ...FLEET_FLAGS]);
    expect(r.code, r.stdout + r.stderr).toBe(1); // not everything converged
    expect(r.stdout).toMatch(unschedulableHead(S.name('big')));
    expect(r.stderr).toMatch(/did not fully converge.*unschedulable/);
    const placed = F.placement(S.prefix);
    expect(hostOf(placed, S.name('sel'))).toBe('h2');
    for (const vm of ['big', 'picky', 'wide']) expect(hostOf(placed, S.name(vm)), vm).toBeUndefined();
    expect(Object.values(placed).flat().length).toBe(8); // 6 web, pinned, sel
    // a rerun has nothing to do but report the unschedulable VMs again
    const dry = await S.dryRun(m, FLEET_FLAGS);
    expect(dry.code, dry.stdout + dry.stderr).toBe(0);
    expect(dry.stdout).toContain('No changes');
    expect(dry.stdout).toMatch(unschedulableHead(S.name('big')));
  });
});
