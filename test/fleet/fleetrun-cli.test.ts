/**
 * `virtform reconcile` over three real libvirt hosts with Host manifests (capacity set: the
 * namespace hosts all report this machine): 6 VMs spread by zone land 2/2/2 and a rerun changes
 * nothing; `--uri` with Host manifests is exit 2; a pinned VM lands where pinned and a VM too big
 * for any host is Unschedulable (reason per host, in --json too) while the rest converge (exit 1);
 * from one host (`--uri`) to a fleet, nothing is recreated. Stopped VMs with 1 MiB volumes: nothing
 * boots. Objects: vftest-flrun-*. Hosts: test/fleet/fleetrun-support.ts.
 */
import { rmSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { openStateStore } from '../../src/state/index.js';
import { spawnCli } from '../support/cli.js';
import { scenario } from '../support/scenario.js';
import { useSuite } from '../support/suite.js';
import { fleetrunFleet } from './fleetrun-support.js';
import { counts, FLEET_FLAGS, hostOf, poolName, webDisk, webFleet, webName } from './support.js';

const S = useSuite('flrun');
const F = fleetrunFleet({ labels: (i) => ({ zone: 'abc'[i]! }), capacity: { memory: '1GiB', vcpus: 8 } });

describe('reconcile over a fleet of Host manifests', () => {
  it('--uri together with Host manifests is refused (exit 2, saying why); nothing is created', async () => {
    S.cleanup();
    F.cleanup(S.prefix);
    S.write(webFleet(S, F, { count: 1 }));
    const r = await S.cli(['reconcile', S.mdir, '--uri', F.host('h1').uri, '--insecure']);
    expect(r.code, r.stdout + r.stderr).toBe(2);
    expect(r.stderr).toMatch(/--uri .*cannot be used with Host manifests.*h1, h2, h3/);
    for (const h of F.hosts) expect(F.domains(h.id, S.prefix)).toEqual([]);
  });

  it('6 VMs spread by zone land 2/2/2, each plan line says where and why; a rerun changes nothing', async () => {
    const m = webFleet(S, F);
    const r = await S.reconcileOk(m, FLEET_FLAGS);
    const placed = F.placement(S.prefix);
    expect(counts(placed), r.stdout).toEqual({ h1: 2, h2: 2, h3: 2 });
    for (let i = 1; i <= 6; i++) {
      const host = hostOf(placed, webName(S, i))!;
      expect(r.stdout).toMatch(new RegExp(`\\+ VirtualMachine/${webName(S, i)} → host ${host} \\(fits: .*spread by zone`));
      // the volume lives with its VM, and nowhere else (a raw volume's file is `<name>.img`)
      for (const h of F.hosts) {
        const has = F.objects(h.id, S.prefix).volumes.some((v) => v.startsWith(`${poolName(S)}/${webDisk(S, i)}.`));
        expect(has, `${webDisk(S, i)} on ${h.id}`).toBe(h.id === host);
      }
    }
    // every Host is in the hosts table with its URI (status finds hosts without the manifests)
    const st = await openStateStore(S.db);
    try {
      expect((await st.hosts.list()).map((h) => [h.id, h.uri])).toEqual(F.hosts.map((h) => [h.id, h.uri]));
    } finally {
      await st.close();
    }
    const again = await S.reconcileOk(m, FLEET_FLAGS);
    expect(again.stdout).toContain('No changes.');
    expect(F.placement(S.prefix)).toEqual(placed);
  });

  it('a pinned VM lands where pinned; a VM too big for any host is Unschedulable with the reason per host while the rest converge (exit 1)', async () => {
    const m = webFleet(S, F).in('more.yaml')
      .vm(S.name('pinned'), { state: 'stopped', domainType: 'qemu', host: 'h3' })
      .vm(S.name('big'), { state: 'stopped', domainType: 'qemu', memory: '2GiB' });
    const dry = await S.dryRun(m, [...FLEET_FLAGS, '--explain']);
    expect(dry.code, dry.stdout + dry.stderr).toBe(3); // changes pending, and the unschedulable VM is no error of a plan
    expect(dry.stdout).toMatch(new RegExp(`\\+ VirtualMachine/${S.name('pinned')} → host h3 \\(pinned`));
    expect(dry.stdout).toMatch(new RegExp(`Unschedulable: ${S.name('big')}: no valid host`));
    for (const h of ['h1', 'h2', 'h3']) expect(dry.stdout).toMatch(new RegExp(`${h}: rejected by memory`));

    const json = await S.cli(['reconcile', S.mdir, '--dry-run', '--json', ...FLEET_FLAGS]);
    const doc = JSON.parse(json.stdout) as { fleet: { unschedulable: { vm: string; reasons: { host: string; filter: string }[] }[]; placements: { vm: string; host: string }[] } };
    expect(doc.fleet.unschedulable.map((u) => [u.vm, u.reasons.map((x) => x.filter)])).toEqual([[S.name('big'), ['memory', 'memory', 'memory']]]);
    expect(doc.fleet.placements).toContainEqual(expect.objectContaining({ vm: S.name('pinned'), host: 'h3' }));

    const r = await S.cli(['reconcile', S.mdir, ...FLEET_FLAGS]);
    expect(r.code, r.stdout + r.stderr).toBe(1);
    expect(r.stderr).toMatch(new RegExp(`VM ${S.name('big')} unschedulable`));
    const placed = F.placement(S.prefix);
    expect(hostOf(placed, S.name('pinned'))).toBe('h3');
    expect(hostOf(placed, S.name('big'))).toBeUndefined();
    expect(Object.values(placed).flat()).toHaveLength(7);
    const st = await openStateStore(S.db);
    try {
      const c = (await st.conditions.list()).get(`-/VirtualMachine/${S.name('big')}`)?.find((x) => x.type === 'Unschedulable');
      expect(c).toMatchObject({ status: 'True', message: expect.stringMatching(/h1: memory/) });
    } finally {
      await st.close();
    }
  });

  it('from one host to a fleet: the objects made with --uri are bound to the Host with that identity, nothing is recreated', async () => {
    S.cleanup();
    F.cleanup(S.prefix);
    const single = webFleet(S, F, { count: 2, placement: undefined });
    // one host, no Host manifest: the hosts.yaml file is left out
    const files = Object.fromEntries(Object.entries(single.files()).filter(([f]) => f !== 'hosts.yaml'));
    rmSync(S.db, { force: true }); // a state DB of one host only
    S.write(files);
    const one = await S.cli(['reconcile', S.mdir, '--uri', F.host('h1').uri, '--insecure', ...FLEET_FLAGS]);
    expect(one.code, one.stdout + one.stderr).toBe(0);
    const uuids = F.domains('h1', S.prefix).map((d) => F.virsh('h1', 'domuuid', d).trim());
    expect(uuids).toHaveLength(2);

    S.write(single);
    // The dry-run before the first fleet apply shows what the apply does: the records bound to h1
    // (planned on a scratch copy of the DB), no conflict on h1; the DB itself is left as it was.
    const dry = await S.cli(['reconcile', S.mdir, '--dry-run', ...FLEET_FLAGS]);
    expect(dry.code, dry.stdout + dry.stderr).toBe(0);
    expect(dry.stdout).not.toMatch(/conflicts and will not be touched|on host h1|→ host|will be deleted/);
    expect(dry.stdout).toMatch(/bound: \d+ record\(s\) of the host of the earlier --uri runs become Host h1's when this is applied/);
    const planLine = (out: string): string | undefined => /^Plan: .*$/m.exec(out)?.[0];
    const r = await S.cli(['reconcile', S.mdir, ...FLEET_FLAGS]);
    expect(r.code, r.stdout + r.stderr).toBe(0);
    expect(planLine(r.stdout)).toBe(planLine(dry.stdout));
    expect(r.stdout).toMatch(/bound: \d+ record\(s\) of the host of the earlier --uri runs are now Host h1's/);
    // only the pool is new on h2 and h3 (a StoragePool without hosts is on every host); nothing on h1 changes
    expect(r.stdout).not.toMatch(/on host h1|→ host|will be deleted/);
    expect(F.domains('h1', S.prefix).map((d) => F.virsh('h1', 'domuuid', d).trim())).toEqual(uuids);
    expect(F.domains('h2', S.prefix)).toEqual([]);
    expect(F.domains('h3', S.prefix)).toEqual([]);
  });

  it('after a Host is added: no move without --rebalance; --dry-run --rebalance proposes at most --max-moves with the reason; the apply moves that one VM', async () => {
    S.cleanup();
    F.cleanup(S.prefix);
    rmSync(S.db, { force: true });
    await S.reconcileOk(webFleet(S, F, { count: 4, hostIds: ['h1', 'h2'], placement: undefined }), FLEET_FLAGS);
    expect(counts(F.placement(S.prefix))).toEqual({ h1: 2, h2: 2, h3: 0 });

    const m = webFleet(S, F, { count: 4, placement: undefined });
    const plain = await S.dryRun(m, FLEET_FLAGS);
    expect(plain.stdout).not.toMatch(/move:/);
    const proposed = await S.dryRun(m, [...FLEET_FLAGS, '--rebalance']);
    const moves = proposed.stdout.split('\n').filter((l) => /^\s+move: /.test(l));
    expect(moves, proposed.stdout).toHaveLength(1);
    expect(moves[0]).toMatch(/→ h3 \(rebalance: .+\) \[proposed\]/);
    expect(counts(F.placement(S.prefix))).toEqual({ h1: 2, h2: 2, h3: 0 });

    // an apply without --rebalance moves nothing (only the pool is new on h3)
    await S.reconcileOk(m, FLEET_FLAGS);
    expect(counts(F.placement(S.prefix))).toEqual({ h1: 2, h2: 2, h3: 0 });
    const r = await S.reconcileOk(m, [...FLEET_FLAGS, '--rebalance', '--max-moves', '1']);
    const after = counts(F.placement(S.prefix));
    expect(after.h3, r.stdout).toBe(1);
    expect(after.h1! + after.h2!).toBe(3);
    // placement is sticky again: a rerun without --rebalance changes nothing
    expect((await S.reconcileOk(m, FLEET_FLAGS)).stdout).toContain('No changes.');
  });

  it('--wait over a fleet: each host\'s running VMs waited for at once, named with their host on a timeout; a VM destroyed on one host ends the wait at once; --wait-for an unknown VM is exit 2', async () => {
    S.cleanup();
    F.cleanup(S.prefix);
    rmSync(S.db, { force: true });
    const net = S.name('net');
    const m = scenario().in('hosts.yaml').doc(F.hostManifests({ ids: ['h1', 'h2'] }))
      .in('storage.yaml').pool(poolName(S), { path: S.poolPath(), autostart: false })
      .volume(webDisk(S, 1), { capacity: '1MiB', format: 'raw' }).volume(webDisk(S, 2), { capacity: '1MiB', format: 'raw' })
      .in('network.yaml').network(net, { cidr: S.cidr(), dhcp: { start: S.ip(100), end: S.ip(199) }, autostart: false })
      .in('vms.yaml');
    for (const i of [1, 2]) {
      m.vm(webName(S, i), {
        memory: '64MiB', state: 'running', domainType: 'qemu', host: `h${i}`,
        disks: [{ volume: webDisk(S, i), bus: 'virtio' }], nics: [{ network: net, mac: S.mac(i) }],
      });
    }
    S.write(m);
    const unknown = await S.cli(['reconcile', S.mdir, '--wait-for', S.name('nope'), ...FLEET_FLAGS]);
    expect(unknown.code, unknown.stderr).toBe(2);
    expect(unknown.stderr).toContain('is not a VirtualMachine declared running; nothing was changed');
    expect(F.domains('h1', S.prefix)).toEqual([]);

    // VMs that boot nothing never get a lease: the timeout names each VM with its NIC and host.
    const t = await S.cli(['reconcile', S.mdir, '--wait', '--wait-timeout', '4', ...FLEET_FLAGS]);
    expect(t.code, t.stdout + t.stderr).toBe(1);
    expect(t.stdout).toContain(`Waiting up to 4s for the addresses of 2 VM(s): ${webName(S, 1)} (host h1), ${webName(S, 2)} (host h2)`);
    expect(t.stderr).toContain(`virtform: timed out after 4s waiting for an address: ${webName(S, 1)} (${S.mac(1)} on ${net}; host h1); ${webName(S, 2)} (${S.mac(2)} on ${net}; host h2)`);

    const c = spawnCli(['reconcile', S.mdir, '--db', S.db, '--wait', '--wait-timeout', '120', ...FLEET_FLAGS]);
    const deadline = Date.now() + 60_000;
    while (!c.stdoutSoFar().includes('Waiting up to') && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
    await new Promise((r) => setTimeout(r, 700));
    const t0 = Date.now();
    F.virsh('h2', 'destroy', webName(S, 2));
    const r = await c.done;
    expect(r.code, r.stdout + r.stderr).toBe(1);
    expect(Date.now() - t0).toBeLessThan(10_000);
    expect(r.stderr).toContain(`VM ${webName(S, 2)} is shut off (destroyed); it will not get an address`);
    F.cleanup(S.prefix);
  }, 300_000);
});
