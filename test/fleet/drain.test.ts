/**
 * A drained host's VMs move cold to the other hosts with their disks (namespace hosts vfflc1-3):
 * the plan shows each move and why, the bytes of every volume read on the target equal what they
 * were on the source (sha256 of the files, both ends), the source keeps nothing of the moved VMs,
 * and a rerun plans "No changes.". Objects: vftest-flmove-*.
 */
import { createHash, randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { useFleet } from '../support/fleet.js';
import { openJournal } from '../support/real-host.js';
import { useSuite } from '../support/suite.js';
import { counts, FLEET_FLAGS, hostOf, poolName, webFleet, webVol, webName } from './support.js';

const S = useSuite('flmove');
const F = useFleet('c', 3, { labels: (i) => ({ zone: 'abc'[i]! }), capacity: { memory: '2GiB', vcpus: 8 } });

/** A 3 MiB raw image: random, a 1 MiB hole of zeros, random (a sparse copy must keep every byte). */
function image(path: string): string {
  const bytes = Buffer.concat([randomBytes(1 << 20), Buffer.alloc(1 << 20), randomBytes(1 << 20)]);
  writeFileSync(path, bytes);
  return createHash('sha256').update(bytes).digest('hex');
}

describe('drain', () => {
  it("a drained host's VMs move with their disks: sha256 equal on both ends, nothing left on the source", async () => {
    const images = [1, 2].map((i) => join(S.work, `image-${i}.raw`));
    const imageSha = images.map(image);
    const volume = (i: number): Record<string, unknown> => ({ capacity: '3MiB', format: 'raw', source: images[i - 1] });
    // first every VM on h1: the others take no new VMs yet
    const onH1 = webFleet(S, F, { count: 2, placement: undefined, volume, hostSpec: (h) => (h.id === 'h1' ? {} : { schedulable: false }) });
    await S.reconcileOk(onH1, FLEET_FLAGS);
    expect(counts(F.placement(S.prefix))).toEqual({ h1: 2, h2: 0, h3: 0 });
    const before = [1, 2].map((i) => F.volumeSha256('h1', poolName(S), webVol(S, i)));
    expect(before).toEqual(imageSha);

    // drain h1
    const drained = webFleet(S, F, { count: 2, placement: undefined, volume, hostSpec: (h) => (h.id === 'h1' ? { drain: true } : {}) });
    const plan = await S.dryRun(drained, FLEET_FLAGS);
    expect(plan.code, plan.stdout + plan.stderr).toBe(3); // changes pending
    for (const i of [1, 2]) expect(plan.stdout).toMatch(new RegExp(`${webName(S, i)}\\b.*h1\\b.*→.*h[23]\\b`));
    expect(plan.stdout).toMatch(/drain/i);
    expect(counts(F.placement(S.prefix))).toEqual({ h1: 2, h2: 0, h3: 0 }); // a dry run moves nothing

    await S.reconcileOk(drained, FLEET_FLAGS);
    const placed = F.placement(S.prefix);
    expect(placed.h1).toEqual([]);
    expect(F.objects('h1', S.prefix).volumes).toEqual([]);
    expect(F.objects('h1', S.prefix).files).toEqual([]);
    for (const i of [1, 2]) {
      const to = hostOf(placed, webName(S, i));
      expect(to === 'h2' || to === 'h3', `${webName(S, i)} on ${to}`).toBe(true);
      expect(F.volumeSha256(to!, poolName(S), webVol(S, i))).toBe(before[i - 1]);
      // the moved VM uses the copy on its new host
      const path = F.virsh(to!, 'vol-path', '--pool', poolName(S), webVol(S, i)).trim();
      expect(F.virsh(to!, 'dumpxml', webName(S, i))).toContain(`file='${path}'`);
      expect(F.virsh(to!, 'domstate', webName(S, i)).trim()).toBe('shut off');
    }
    const dry = await S.dryRun(drained, FLEET_FLAGS);
    expect(dry.code, dry.stdout + dry.stderr).toBe(0);
    expect(openJournal(S.db)).toEqual([]);
  });
});
