/**
 * Placement across a fleet of three real libvirt hosts (namespace hosts vffla1-3, zones a, b, c,
 * disks ssd, ssd, hdd; 1 GiB and 8 vCPUs each by their Host manifests), through the CLI as users
 * run it. What test/fleet/fleetrun-cli.test.ts does not already prove (6 VMs 2/2/2, rerun, a plain
 * pin, a VM too big by memory): a pin wins over a spread and moves nobody else; `--explain` names
 * the filter that rejected each host of a placed VM (selector) and of unschedulable ones, with
 * different filters on different hosts (memory where the selector matched, selector elsewhere;
 * vcpus), in `--json` too; the rest converge, exit 1, and a dry run after is "No changes." with
 * the unschedulable VMs still reported. Objects: vftest-flplace-*.
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

describe('placement on three hosts, explained', () => {
  it('a pin wins over a spread; the others stay where they were; the pool is on every host', async () => {
    await S.reconcileOk(webFleet(S, F), FLEET_FLAGS);
    const before = F.placement(S.prefix);
    expect(counts(before)).toEqual({ h1: 2, h2: 2, h3: 2 });
    for (const h of F.hosts) expect(F.objects(h.id, S.prefix).pools).toEqual([poolName(S)]);
    // the spread would put a 7th VM on h1 (ties by name); the pin says h3
    const spreadOnly = await S.dryRun(webFleet(S, F, { count: 7 }), FLEET_FLAGS);
    expect(spreadOnly.stdout).toMatch(new RegExp(`\\+ VirtualMachine/${webName(S, 7)} → host h1\\b`));
    const m = pinned();
    const r = await S.reconcileOk(m, FLEET_FLAGS);
    expect(r.stdout).toMatch(new RegExp(`\\+ VirtualMachine/${S.name('pinned')} → host h3 \\(pinned`));
    const after = F.placement(S.prefix);
    expect(hostOf(after, S.name('pinned'))).toBe('h3');
    for (const [h, d] of Object.entries(before)) expect(after[h]!.filter((x) => x !== S.name('pinned'))).toEqual(d);
    // its volume went with it
    expect(F.objects('h3', S.prefix).volumes).toContain(`${poolName(S)}/${S.name('pinned-disk')}.img`);
  });

  it('--explain names the filter that rejected each host; unschedulable VMs are reported while the rest converge', async () => {
    const m = pinned().in('more.yaml')
      // only zone b matches: h1 and h3 are rejected by the selector
      .vm(S.name('sel'), { state: 'stopped', domainType: 'qemu', placement: { hostSelector: { matchLabels: { zone: 'b' } } } })
      // ssd hosts are h1 and h2, neither has 1000 MiB free (2 VMs of 64 MiB each, 3 on h2 after sel); h3 is hdd
      .vm(S.name('picky'), { state: 'stopped', domainType: 'qemu', memory: '1000MiB', placement: { hostSelector: { matchLabels: { disk: 'ssd' } } } })
      // needs more vCPUs than any host has
      .vm(S.name('wide'), { state: 'stopped', domainType: 'qemu', vcpus: 12 });

    const explain = await S.dryRun(m, [...FLEET_FLAGS, '--explain']);
    expect(explain.code, explain.stdout + explain.stderr).toBe(3); // changes pending
    const sel = blockOf(explain.stdout, placedHead(S.name('sel')));
    expect(sel, explain.stdout).toMatch(/→ host h2\b/);
    expect(sel).toMatch(/explain: h2: chosen \(scheduled\): .*least allocated/);
    expect(sel).toMatch(/explain: h1: rejected by selector/);
    expect(sel).toMatch(/explain: h3: rejected by selector/);
    const picky = blockOf(explain.stdout, unschedulableHead(S.name('picky')));
    expect(picky, explain.stdout).toMatch(/h1: rejected by memory/);
    expect(picky).toMatch(/h2: rejected by memory/);
    expect(picky).toMatch(/h3: rejected by selector/);
    const wide = blockOf(explain.stdout, unschedulableHead(S.name('wide')));
    for (const h of ['h1', 'h2', 'h3']) expect(wide, explain.stdout).toMatch(new RegExp(`${h}: rejected by vcpus`));

    // the same in --json: each rejected host with its filter, for placed and unschedulable VMs
    const json = await S.cli(['reconcile', S.mdir, '--dry-run', '--json', '--explain', ...FLEET_FLAGS]);
    const doc = JSON.parse(json.stdout) as { fleet: {
      explain: { vm: string; host: string; rejected: { host: string; filter: string }[]; score: Record<string, number> | null }[];
      unschedulable: { vm: string; reasons: { host: string; filter: string }[] }[];
    } };
    const selJson = doc.fleet.explain.find((e) => e.vm === S.name('sel'));
    expect(selJson?.host).toBe('h2');
    expect(selJson?.rejected.map((x) => [x.host, x.filter])).toEqual([['h1', 'selector'], ['h3', 'selector']]);
    expect(selJson?.score).not.toBeNull();
    const reasons = Object.fromEntries(doc.fleet.unschedulable.map((u) => [u.vm, Object.fromEntries(u.reasons.map((x) => [x.host, x.filter]))]));
    expect(reasons[S.name('picky')]).toEqual({ h1: 'memory', h2: 'memory', h3: 'selector' });
    expect(reasons[S.name('wide')]).toEqual({ h1: 'vcpus', h2: 'vcpus', h3: 'vcpus' });

    // the apply: everything that fits converges, the unschedulable VMs are defined nowhere, exit 1
    const r = await S.cli(['reconcile', S.mdir, ...FLEET_FLAGS]);
    expect(r.code, r.stdout + r.stderr).toBe(1);
    expect(r.stdout).toMatch(unschedulableHead(S.name('picky')));
    expect(r.stderr).toMatch(/did not fully converge.*unschedulable/);
    const placed = F.placement(S.prefix);
    expect(hostOf(placed, S.name('sel'))).toBe('h2');
    for (const vm of ['picky', 'wide']) expect(hostOf(placed, S.name(vm)), vm).toBeUndefined();
    expect(Object.values(placed).flat().length).toBe(8); // 6 web, pinned, sel
    // a dry run after: nothing to do, the unschedulable VMs still reported with their reasons
    const dry = await S.dryRun(m, FLEET_FLAGS);
    expect(dry.code, dry.stdout + dry.stderr).toBe(0);
    expect(dry.stdout).toContain('No changes');
    expect(blockOf(dry.stdout, unschedulableHead(S.name('wide')))).toMatch(/h3: rejected by vcpus/);
  });
});

/** The 6 web VMs and one more pinned to h3, with the spread of the others, and its own volume. */
function pinned(): ReturnType<typeof webFleet> {
  return webFleet(S, F).in('pinned.yaml')
    .volume(S.name('pinned-disk'), { pool: poolName(S), capacity: '1MiB', format: 'raw' })
    .vm(S.name('pinned'), {
      state: 'stopped', domainType: 'qemu', host: 'h3', placement: { spreadBy: { hostLabel: 'zone' } },
      disks: [{ volume: S.name('pinned-disk'), bus: 'virtio' }],
    }, { labels: { app: 'web' } });
}
