/**
 * Rebalancing as a reviewable plan (namespace hosts vffld1-4, zones a-d): 6 VMs spread over three
 * hosts, then a fourth host joins. A plain reconcile moves nothing; `--dry-run --rebalance`
 * proposes at most `--max-moves` cold moves, each with its reason, and changes nothing; an apply
 * with `--rebalance --max-moves 1` moves exactly one VM, with its disk. Objects: vftest-flrebal-*.
 */
import { describe, expect, it } from 'vitest';
import { useFleet } from '../support/fleet.js';
import { openJournal } from '../support/real-host.js';
import { useSuite } from '../support/suite.js';
import { counts, FLEET_FLAGS, hostOf, poolName, webFleet, webVol, webName } from './support.js';

const S = useSuite('flrebal');
const F = useFleet('d', 4, { labels: (i) => ({ zone: 'abcd'[i]! }), capacity: { memory: '2GiB', vcpus: 8 } });

/** The plan's move lines: `  move: VM: move h1 → h4 (rebalance: why) [proposed]`. */
const moveLines = (out: string): string[] => out.split('\n').filter((l) => /^\s*move: \S+: move h\d → h\d \(/.test(l));

describe('rebalance after a host joins', () => {
  it('proposes at most --max-moves moves with their reasons; only an apply with --rebalance moves, one VM with its disk', async () => {
    const three = webFleet(S, F, { hostIds: ['h1', 'h2', 'h3'] });
    await S.reconcileOk(three, FLEET_FLAGS);
    const placed = F.placement(S.prefix);
    expect(counts(placed)).toEqual({ h1: 2, h2: 2, h3: 2, h4: 0 });

    // h4 joins: its pool is created, no VM moves without --rebalance
    const four = webFleet(S, F);
    const joined = await S.reconcileOk(four, FLEET_FLAGS);
    expect(moveLines(joined.stdout)).toEqual([]);
    expect(F.placement(S.prefix)).toEqual(placed);
    expect(F.objects('h4', S.prefix).pools).toEqual([poolName(S)]);
    const plain = await S.dryRun(four, FLEET_FLAGS);
    expect(plain.code, plain.stdout).toBe(0);

    // the proposal: within the budget, each move with its reason, nothing changed
    const one = await S.dryRun(four, [...FLEET_FLAGS, '--rebalance', '--max-moves', '1']);
    expect(one.code, one.stdout + one.stderr).toBe(3); // changes pending
    expect(moveLines(one.stdout), one.stdout).toHaveLength(1);
    expect(moveLines(one.stdout)[0]).toMatch(/→.*\bh4\b/);
    expect(moveLines(one.stdout)[0]).toMatch(/\(rebalance: spread by zone.*skew 2 > maxSkew 1\)/);
    const two = await S.dryRun(four, [...FLEET_FLAGS, '--rebalance', '--max-moves', '2']);
    expect(moveLines(two.stdout).length, two.stdout).toBeGreaterThanOrEqual(1);
    expect(moveLines(two.stdout).length, two.stdout).toBeLessThanOrEqual(2);
    expect(F.placement(S.prefix)).toEqual(placed);

    // the apply moves exactly one VM, to h4, with its disk
    const moved = moveLines(one.stdout)[0]!.match(new RegExp(`${S.prefix}web-\\d+`))![0];
    const from = hostOf(placed, moved)!;
    const i = Number(moved.slice(`${S.prefix}web-`.length));
    const sha = F.volumeSha256(from, poolName(S), webVol(S, i));
    await S.reconcileOk(four, [...FLEET_FLAGS, '--rebalance', '--max-moves', '1']);
    const after = F.placement(S.prefix);
    expect(after.h4).toEqual([moved]);
    expect(Object.values(after).flat().sort()).toEqual(Array.from({ length: 6 }, (_, k) => webName(S, k + 1)).sort());
    expect(F.volumeSha256('h4', poolName(S), webVol(S, i))).toBe(sha);
    expect(F.objects(from, S.prefix).volumes).not.toContain(`${poolName(S)}/${webVol(S, i)}`);

    // decisions are sticky: without --rebalance nothing more moves
    const rest = await S.dryRun(four, FLEET_FLAGS);
    expect(rest.code, rest.stdout + rest.stderr).toBe(0);
    expect(openJournal(S.db)).toEqual([]);
  });
});
