/**
 * One host down never stops the others: with h2's libvirtd SIGKILLed before the run, the other two
 * converge, the run exits 1 naming h2 and why, h2's resources are HostUnreachable in the state DB
 * and nothing of h2's is re-created elsewhere; after h2's libvirtd is started again the rerun
 * converges with no orphan anywhere; likewise when h2's libvirtd dies mid-apply. Objects: vftest-flrundown-*. Hosts: test/fleet/fleetrun-support.ts.
 */
import { rmSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { sleep, spawnCli } from '../support/cli.js';
import { openStateStore } from '../../src/state/index.js';
import { answers } from '../support/fleet.js';
import { useSuite } from '../support/suite.js';
import { fleetrunFleet } from './fleetrun-support.js';
import { counts, FLEET_FLAGS, webFleet, webName } from './support.js';

const S = useSuite('flrundown');
const F = fleetrunFleet({ labels: (i) => ({ zone: 'abc'[i]! }), capacity: { memory: '1GiB', vcpus: 8 } });

describe('one host down', () => {
  it('the others converge (exit 1 naming the host), its resources are HostUnreachable, the rerun after its restart converges with no orphan', async () => {
    S.cleanup();
    F.cleanup(S.prefix);
    try {
      await S.reconcileOk(webFleet(S, F, { count: 3 }), FLEET_FLAGS); // spread by zone: one on each host
      const before = F.placement(S.prefix);
      expect(counts(before)).toEqual({ h1: 1, h2: 1, h3: 1 });
      const onH2 = before.h2![0]!;

      F.kill('h2');
      expect(answers(F.host('h2').uri)).toBe(false);
      // three more VMs while h2 is down (no spread: they fit on h1 and h3; the first three keep their
      // recorded hosts, h2's included)
      const m = webFleet(S, F, { count: 6, placement: undefined });
      S.write(m);
      const r = await S.cli(['reconcile', S.mdir, ...FLEET_FLAGS]);
      expect(r.code, r.stdout + r.stderr).toBe(1);
      expect(r.stderr).toMatch(/host h2 unreachable: cannot connect to libvirt at qemu\+tcp:\/\/[\d.]+\/system/);
      expect(r.stderr).not.toMatch(/\n\s+at .+\(.*:\d+:\d+\)/); // no stack trace
      expect(r.stdout).toMatch(/HostUnreachable: host h2/);
      const during = { h1: F.domains('h1', S.prefix), h3: F.domains('h3', S.prefix) };
      expect(during.h1.length + during.h3.length, r.stdout + r.stderr).toBe(5);
      expect([...during.h1, ...during.h3]).not.toContain(onH2); // never re-created elsewhere
      const st = await openStateStore(S.db);
      try {
        const conds = await st.conditions.list();
        expect(conds.get(`h2/VirtualMachine/${onH2}`)?.find((c) => c.type === 'HostUnreachable')).toMatchObject({ status: 'True', message: expect.stringMatching(/^host h2: /) });
        expect(conds.get(`h1/VirtualMachine/${during.h1[0]}`)?.find((c) => c.type === 'HostUnreachable')?.status).toBe('False');
      } finally {
        await st.close();
      }

      await F.restart('h2');
      const again = await S.reconcileOk(m, FLEET_FLAGS);
      expect(again.stderr).not.toMatch(/unreachable/);
      const after = F.placement(S.prefix);
      expect(after.h2).toEqual([onH2]);
      expect(Object.values(after).flat().sort()).toEqual(Array.from({ length: 6 }, (_, i) => webName(S, i + 1)).sort());
      const dry = await S.dryRun(m, FLEET_FLAGS);
      expect(dry.code, dry.stdout + dry.stderr).toBe(0);
      expect(dry.stdout).toContain('No changes.');
      const st2 = await openStateStore(S.db);
      try {
        expect((await st2.conditions.list()).get(`h2/VirtualMachine/${onH2}`)?.find((c) => c.type === 'HostUnreachable')?.status).toBe('False');
      } finally {
        await st2.close();
      }
    } finally {
      if (!answers(F.host('h2').uri)) await F.restart('h2');
    }
  });

  it('a host whose libvirtd dies mid-apply: its remaining steps fail, the others converge (exit 1); the rerun after its restart converges with no orphan', async () => {
    S.cleanup();
    F.cleanup(S.prefix);
    rmSync(S.db, { force: true });
    try {
      const m = webFleet(S, F, { count: 6 });
      S.write(m);
      // one step at a time, so h2's later steps are still pending when its libvirtd dies
      const run = spawnCli(['reconcile', S.mdir, '--db', S.db, '--concurrency', '1', '--max-attempts', '1', ...FLEET_FLAGS]);
      const deadline = Date.now() + 60_000;
      while (!/^✓ .* h2\/StoragePool\//m.test(run.stdoutSoFar()) && Date.now() < deadline) await sleep(5);
      F.kill('h2');
      const r = await run.done;
      expect(r.code, r.stdout + r.stderr).toBe(1);
      expect(r.stdout).toMatch(/^[✗↷] .* h2\/(Volume|VirtualMachine)\//m);
      expect(r.stdout).not.toMatch(/^[✗↷] .* h[13]\//m);
      expect(r.stderr).not.toMatch(/\n\s+at .+\(.*:\d+:\d+\)/);
      expect(F.domains('h1', S.prefix)).toHaveLength(2);
      expect(F.domains('h3', S.prefix)).toHaveLength(2);

      await F.restart('h2');
      await S.reconcileOk(m, FLEET_FLAGS);
      expect(counts(F.placement(S.prefix))).toEqual({ h1: 2, h2: 2, h3: 2 });
      for (const h of F.hosts) {
        const o = F.objects(h.id, S.prefix);
        // every volume belongs to a VM of that host: nothing left over anywhere
        expect(o.volumes.map((v) => v.split('/')[1]!.replace(/\.img$/, '')).sort()).toEqual(o.domains.map((d) => `${d}-disk`).sort());
      }
      const dry = await S.dryRun(m, FLEET_FLAGS);
      expect(dry.code, dry.stdout + dry.stderr).toBe(0);
    } finally {
      if (!answers(F.host('h2').uri)) await F.restart('h2');
    }
  });
});
