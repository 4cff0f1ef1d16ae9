/**
 * `reconcile --wait`'s output (src/cli/wait.ts) on the FakeHost: the progress line on a terminal
 * only, what is said about NICs not waited for, the addresses, the timeout and not-running
 * messages, and the JSON report.
 */
import { describe, expect, it } from 'vitest';
import { FAST_RETRY, useHarness } from '../../support/harness.js';
import { scenario } from '../../support/scenario.js';
import type { Desired } from '../../../src/reconcile/desired.js';
import { waitAfterApply, type WaitIo } from '../../../src/cli/wait.js';

const P = 'vftest-addr-cli';
const fx = useHarness({ dirPrefix: 'vftest-addr-cli-', manifestDir: 'm', retry: { ...FAST_RETRY, maxAttempts: 1 } });

/** A network with DHCP and one without; VM a on both, VM b on the first. */
const net = () => scenario().network(`${P}-net`, { cidr: '10.234.0.0/24', dhcp: { start: '10.234.0.100', end: '10.234.0.199' } });
const files = (o: { stopped?: boolean } = {}) => net()
  .network(`${P}-plain`, { cidr: '10.234.1.0/24' })
  .vm(`${P}-a`, { disks: [], nics: [{ network: `${P}-net`, mac: '52:54:00:ac:00:01' }, { network: `${P}-plain`, mac: '52:54:00:ac:01:01' }] })
  .vm(`${P}-b`, { state: o.stopped ? 'stopped' : 'running', disks: [], nics: [{ network: `${P}-net`, mac: '52:54:00:ac:00:02' }] });

async function apply(o: { stopped?: boolean } = {}): Promise<Desired> {
  const d = await fx.desired(files(o));
  expect((await fx.reconcile(d)).outcome).toMatch(/succeeded|noop/);
  return d;
}

function io(o: { json?: boolean; tty?: boolean } = {}): WaitIo & { stdout: string[]; stderr: string[]; progress: NodeJS.WriteStream & { written: string[] } } {
  const stdout: string[] = [];
  const stderr: string[] = [];
  const written: string[] = [];
  const progress = { isTTY: o.tty === true, write: (s: string) => written.push(s) > 0, written } as unknown as NodeJS.WriteStream & { written: string[] };
  return { out: (s) => void stdout.push(s), err: (s) => void stderr.push(s), json: o.json === true, progress, stdout, stderr };
}

describe('reconcile --wait output', () => {
  it('ready: says which NIC is not waited for, shows progress on a terminal, prints the addresses', async () => {
    const d = await apply();
    setTimeout(() => fx.host.giveLease(`${P}-net`, '52:54:00:ac:00:01', { ip: '10.234.0.101' }), 30);
    setTimeout(() => fx.host.giveLease(`${P}-net`, '52:54:00:ac:00:02', { ip: '10.234.0.102' }), 600);
    const o = io({ tty: true });
    const r = await waitAfterApply([{ port: fx.host, declared: d.resources, records: await fx.store.resources.list() }], { timeoutSeconds: 10 }, o);
    expect(r.ok).toBe(true);
    const text = o.stdout.join('');
    expect(text).toContain(`Waiting up to 10s for the addresses of 2 VM(s): ${P}-a, ${P}-b`);
    expect(text).toContain(`VirtualMachine/${P}-a: NIC 52:54:00:ac:01:01 on ${P}-plain is not waited for: the network has no DHCP`);
    expect(text).toMatch(new RegExp(`VirtualMachine/${P}-a\\s+52:54:00:ac:00:01\\s+${P}-net\\s+10\\.234\\.0\\.101/24 \\(lease\\)`));
    expect(text).toMatch(new RegExp(`VirtualMachine/${P}-a\\s+52:54:00:ac:01:01\\s+${P}-plain\\s+- \\(no DHCP\\)`));
    expect(text).toMatch(/All 2 VM\(s\) have their addresses/);
    expect(o.progress.written.some((s) => s.includes(`waiting for ${P}-a, ${P}-b`) || s.includes(`waiting for ${P}-b`))).toBe(true);
    expect(o.progress.written.at(-1)).toBe('\r\x1b[K');
    expect(r.report).toMatchObject({ outcome: 'ready', vms: [`${P}-a`, `${P}-b`], waiting: [], notWaited: [{ vm: `${P}-a`, mac: '52:54:00:ac:01:01', network: `${P}-plain` }] });
    expect(r.report.addresses[`${P}-b`]).toEqual([{ mac: '52:54:00:ac:00:02', network: `${P}-net`, dhcp: true, addresses: [{ ip: '10.234.0.102', prefix: 24, family: 'ipv4', source: 'lease', hostname: null }] }]);
  });

  it('not a terminal: no progress line; --json: nothing on stdout, the report carries it all', async () => {
    const d = await apply();
    fx.host.giveLease(`${P}-net`, '52:54:00:ac:00:01');
    fx.host.giveLease(`${P}-net`, '52:54:00:ac:00:02');
    const plain = io();
    expect((await waitAfterApply([{ port: fx.host, declared: d.resources, records: await fx.store.resources.list() }], { timeoutSeconds: 5 }, plain)).ok).toBe(true);
    expect(plain.progress.written).toEqual([]);
    const json = io({ json: true, tty: true });
    const r = await waitAfterApply([{ port: fx.host, declared: d.resources, records: await fx.store.resources.list() }], { timeoutSeconds: 5 }, json);
    expect(json.stdout).toEqual([]);
    expect(r.report.outcome).toBe('ready');
  });

  it('--wait-for: waits for the named VMs only (another without an address does not hold it up)', async () => {
    const d = await apply();
    fx.host.giveLease(`${P}-net`, '52:54:00:ac:00:01');
    const o = io();
    const r = await waitAfterApply([{ port: fx.host, declared: d.resources, records: await fx.store.resources.list() }], { timeoutSeconds: 2, only: [`${P}-a`] }, o);
    expect(r.ok).toBe(true);
    expect(o.stdout.join('')).toContain(`Waiting up to 2s for the addresses of 1 VM(s): ${P}-a`);
    expect(r.report).toMatchObject({ outcome: 'ready', vms: [`${P}-a`], waiting: [] });
    const all = await waitAfterApply([{ port: fx.host, declared: d.resources, records: await fx.store.resources.list() }], { timeoutSeconds: 0.2 }, io());
    expect(all.ok).toBe(false);
  });

  it('timeout: exit status false, stderr names each VM and its NICs without an address', async () => {
    const d = await apply();
    fx.host.giveLease(`${P}-net`, '52:54:00:ac:00:01');
    const o = io();
    const r = await waitAfterApply([{ port: fx.host, declared: d.resources, records: await fx.store.resources.list() }], { timeoutSeconds: 0.2 }, o);
    expect(r.ok).toBe(false);
    expect(o.stderr.join('')).toBe(`virtform: timed out after 0.2s waiting for an address: ${P}-b (52:54:00:ac:00:02 on ${P}-net)\n`);
    expect(o.stdout.join('')).toMatch(new RegExp(`VirtualMachine/${P}-b\\s+52:54:00:ac:00:02\\s+${P}-net\\s+none yet`));
    expect(r.report).toMatchObject({ outcome: 'timeout', waiting: [`${P}-b`] });
  });

  it('a VM declared running found shut off: fails at once with the reason; VMs declared stopped are not waited for', async () => {
    const d = await apply({ stopped: true });
    await fx.host.stopDomain(`${P}-a`);
    const o = io();
    const t0 = Date.now();
    const r = await waitAfterApply([{ port: fx.host, declared: d.resources, records: await fx.store.resources.list() }], { timeoutSeconds: 60 }, o);
    expect(Date.now() - t0).toBeLessThan(1000);
    expect(r.ok).toBe(false);
    expect(r.report.vms).toEqual([`${P}-a`]);
    expect(o.stderr.join('')).toBe(`virtform: VM ${P}-a is shut off; it will not get an address\n`);
  });

  it('nothing declared running: nothing to wait for', async () => {
    const d = await fx.desired(net());
    const o = io();
    const r = await waitAfterApply([{ port: fx.host, declared: d.resources, records: [] }], { timeoutSeconds: 5 }, o);
    expect(r).toMatchObject({ ok: true, report: { outcome: 'nothing-to-wait-for' } });
    expect(o.stdout.join('')).toContain('nothing to wait for');
  });

  it('several hosts (a fleet): waited for at once, VMs named with their host; one VM shut off on one host ends every host\'s wait at once', async () => {
    const d = await apply();
    const records = await fx.store.resources.list();
    const on = (vm: string) => d.resources.filter((r) => r.kind !== 'VirtualMachine' || r.name === vm);
    const sets = [{ host: 'h1', port: fx.host, declared: on(`${P}-a`), records }, { host: 'h2', port: fx.host, declared: on(`${P}-b`), records }];
    fx.host.giveLease(`${P}-net`, '52:54:00:ac:00:01');
    const slow = io();
    const timeout = await waitAfterApply(sets, { timeoutSeconds: 0.3 }, slow);
    expect(timeout.ok).toBe(false);
    expect(slow.stdout.join('')).toContain(`Waiting up to 0.3s for the addresses of 2 VM(s): ${P}-a (host h1), ${P}-b (host h2)`);
    expect(slow.stderr.join('')).toBe(`virtform: timed out after 0.3s waiting for an address: ${P}-b (52:54:00:ac:00:02 on ${P}-net; host h2)\n`);
    expect(timeout.report).toMatchObject({ outcome: 'timeout', vms: [`${P}-a`, `${P}-b`], waiting: [`${P}-b`] });

    // h1's VM never gets an address; h2's stops: the whole wait ends at once, not at the timeout.
    fx.host.leases.set(`${P}-net`, []);
    fx.host.lifecycleEvents = true;
    const t0 = Date.now();
    setTimeout(() => void fx.host.stopDomain(`${P}-b`), 100);
    const o = io();
    const r = await waitAfterApply(sets, { timeoutSeconds: 60 }, o);
    expect(Date.now() - t0).toBeLessThan(5000);
    expect(r.ok).toBe(false);
    expect(r.report.outcome).toBe('not-running');
    expect(o.stderr.join('')).toContain(`virtform: VM ${P}-b is shut off`);
  });
});
