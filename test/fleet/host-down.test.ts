/**
 * One host's libvirtd SIGKILLed in the middle of a fleet apply (namespace hosts vfflb1-3, zones a,
 * b, c): the other two hosts converge, the run exits 1 naming the host, and a rerun after that
 * libvirtd is restarted converges with no orphan on any host and no open journal entry.
 * Objects: vftest-flkill-*.
 */
import { describe, expect, it } from 'vitest';
import { useFleet } from '../support/fleet.js';
import { sleep, spawnCli } from '../support/cli.js';
import { openJournal } from '../support/real-host.js';
import { useSuite } from '../support/suite.js';
import { counts, FLEET_FLAGS, hostOf, poolName, webFleet, webVol, webName } from './support.js';

const S = useSuite('flkill');
const F = useFleet('b', 3, { labels: (i) => ({ zone: 'abc'[i]! }), capacity: { memory: '4GiB', vcpus: 16 } });
const COUNT = 9; // 3 per host: enough steps on the killed host that the kill lands before they are done

describe('a host lost mid-apply', () => {
  it('the other hosts converge, exit 1; after a restart the rerun converges with no orphan anywhere', async () => {
    const m = webFleet(S, F, { count: COUNT });
    S.write(m);
    // one step at a time, so the victim's steps are still pending when its libvirtd dies
    const run = spawnCli(['reconcile', S.mdir, '--db', S.db, '--concurrency', '1', '--max-attempts', '1', ...FLEET_FLAGS]);
    // kill h2's libvirtd as soon as its pool is made (the first of its steps): its volumes and VMs are still to come
    const deadline = Date.now() + 60_000;
    while (!/^✓ .* h2\/StoragePool\//m.test(run.stdoutSoFar()) && Date.now() < deadline) await sleep(5);
    F.kill('h2');
    const killedAt = run.stdoutSoFar();
    const r = await run.done;
    expect(r.signal, r.stdout + r.stderr).toBeNull();
    expect(r.code, r.stdout + r.stderr).toBe(1);
    // h2's steps still to run failed or were skipped (its connection lost), each naming its host; none of the others'
    expect(r.stdout, `killed when stdout was:\n${killedAt}`).toMatch(/^[✗↷] .* h2\/(Volume|VirtualMachine)\//m);
    expect(r.stdout).not.toMatch(/^[✗↷] .* h[13]\//m);
    expect(r.stderr).not.toMatch(/\n\s+at .+\(.*:\d+:\d+\)/); // no stack trace

    // h1 and h3 converged: their 3 VMs each, with their volumes
    for (const id of ['h1', 'h3']) {
      const o = F.objects(id, S.prefix);
      expect(o.domains.length, `${id} after the kill (killed when stdout was:\n${killedAt})\n${r.stdout}`).toBe(3);
      for (const d of o.domains) {
        const i = Number(d.slice(webName(S, 0).length - 1));
        expect(o.volumes).toContain(`${poolName(S)}/${webVol(S, i)}`);
      }
    }

    await F.restart('h2');
    const again = await S.reconcileOk(m, FLEET_FLAGS);
    const placed = F.placement(S.prefix);
    expect(counts(placed), again.stdout).toEqual({ h1: 3, h2: 3, h3: 3 });
    const dry = await S.dryRun(m, FLEET_FLAGS);
    expect(dry.code, dry.stdout + dry.stderr).toBe(0);

    // no orphan anywhere: each host holds exactly its VMs, their volumes and the pool, each VM on one host
    for (const h of F.hosts) {
      const o = F.objects(h.id, S.prefix);
      const mine = Array.from({ length: COUNT }, (_, k) => k + 1).filter((i) => hostOf(placed, webName(S, i)) === h.id);
      expect(o.domains).toEqual(mine.map((i) => webName(S, i)).sort());
      expect(o.volumes).toEqual(mine.map((i) => `${poolName(S)}/${webVol(S, i)}`).sort());
      expect(o.pools).toEqual([poolName(S)]);
      expect(o.files.map((f) => f.split('/').pop()).sort()).toEqual(mine.map((i) => webVol(S, i)).sort());
    }
    expect(openJournal(S.db)).toEqual([]);
  });
});
