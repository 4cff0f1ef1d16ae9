/**
 * What it costs to find VM addresses, on qemu:///system, as the number of running VMs grows.
 *
 *   npx tsx bench/addresses.bench.ts --out bench/results/addresses.md [--sizes 5,20] [--reps 11]
 *
 * virtform's engine reconciles N running VMs that boot nothing (TCG, 32 MiB, no disk) with one NIC
 * each on one isolated DHCP network, then, converged, times side by side (median of --reps):
 *   - `status`'s host view (observeForStatus: the snapshot, the lease read, the interface queries),
 *   - one poll of `reconcile --wait` (snapshot + one lease read per network),
 *   - the per-VM way (one virDomainInterfaceAddresses(lease) per VM, what a `virsh domifaddr` loop does).
 * with the libvirt calls each makes, by procedure. Objects are vftest-bench-addr-*, removed after.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { openHost } from '../src/reconcile/adapters/libvirt-host.js';
import { reconcile } from '../src/reconcile/engine.js';
import { buildDesired } from '../src/reconcile/desired.js';
import { loadManifests } from '../src/manifest/index.js';
import { openStateStore } from '../src/state/index.js';
import { managedNetworks, observeAddresses, observeForStatus, recordedNics } from '../src/status/index.js';
import type { HostCallInfo, HostPort } from '../src/reconcile/ports.js';
import { flags, machineBlock, median, ms, table, writeReport } from './lib.js';
import { writeFileSync, mkdirSync } from 'node:fs';

const f = flags();
const URI = f.uri ?? 'qemu:///system';
const SIZES = (f.sizes ?? '5,20').split(',').map(Number);
const REPS = Number(f.reps ?? 11);
const P = 'vftest-bench-addr';
const ROOT = resolve(import.meta.dirname, '..');

function manifests(n: number): string {
  const docs = [`apiVersion: virtform.dev/v1
kind: Network
metadata: {name: ${P}-net}
spec: {mode: isolated, cidr: 10.247.0.0/24, dhcp: {start: 10.247.0.10, end: 10.247.0.250}, autostart: false}
`];
  for (let i = 1; i <= n; i++) {
    docs.push(`apiVersion: virtform.dev/v1
kind: VirtualMachine
metadata: {name: ${P}-vm${String(i).padStart(3, '0')}}
spec: {vcpus: 1, memory: 32MiB, state: running, disks: [], nics: [{network: ${P}-net}]}
`);
  }
  return docs.join('---\n');
}

async function measure<T>(host: HostPort, fn: () => Promise<T>): Promise<{ ms: number; calls: Record<string, number>; total: number }> {
  const times: number[] = [];
  let calls: Record<string, number> = {};
  let total = 0;
  for (let r = 0; r < REPS; r++) {
    const seen: HostCallInfo[] = [];
    host.setCallObserver((i) => seen.push(i));
    const t0 = performance.now();
    await fn();
    times.push(performance.now() - t0);
    host.setCallObserver(undefined);
    calls = {};
    for (const s of seen) calls[s.procedure] = (calls[s.procedure] ?? 0) + 1;
    total = seen.length;
  }
  return { ms: median(times), calls, total };
}

const callList = (c: Record<string, number>): string => Object.entries(c).map(([k, v]) => `${k} ×${v}`).join(', ');

async function main(): Promise<void> {
  const cleanup = (): void => void execFileSync('bash', [join(ROOT, 'scripts/cleanup-test-objects.sh'), P], { stdio: 'ignore' });
  cleanup();
  const work = mkdtempSync(join(tmpdir(), `${P}-`));
  const host = await openHost(URI, { domainType: 'qemu' });
  const store = await openStateStore(join(work, 'state.db'));
  const rows: (string | number)[][] = [];
  try {
    for (const n of SIZES) {
      const dir = join(work, `m${n}`);
      mkdirSync(dir, { recursive: true });
      writeFileSync(join(dir, 'all.yaml'), manifests(n));
      const loaded = await loadManifests(dir);
      if (!loaded.ok) throw new Error(JSON.stringify(loaded.errors));
      const desired = buildDesired(loaded.desired);
      const t0 = performance.now();
      const r = await reconcile({ host, store, desired, concurrency: 4, shutdownTimeoutMs: 0 });
      if (r.outcome !== 'succeeded' && r.outcome !== 'noop') throw new Error(`reconcile ${r.outcome}`);
      process.stderr.write(`[addresses] ${n} VMs converged in ${((performance.now() - t0) / 1000).toFixed(1)} s\n`);
      const records = await store.resources.list();
      const managed = managedNetworks(records);
      const vms = records.filter((x) => x.kind === 'VirtualMachine').map((x) => ({ name: x.name, nics: recordedNics(x) }));

      const status = await measure(host, () => observeForStatus(host, records));
      const poll = await measure(host, async () => observeAddresses(host, await host.snapshot(), vms, managed, { waitedOnly: true }));
      const snap = await host.snapshot();
      const mine = snap.domains.filter((d) => d.name.startsWith(`${P}-`) && d.active);
      const perVm = await measure(host, () => Promise.all(mine.map((d) => host.domainInterfaceAddresses(d, 'lease'))));
      rows.push([n, `${status.total} (${callList(status.calls)})`, ms(status.ms), `${poll.total}`, ms(poll.ms), `${perVm.total}`, ms(perVm.ms)]);
    }
  } finally {
    await store.close();
    await host.close();
    cleanup();
    rmSync(work, { recursive: true, force: true });
  }
  writeReport(f.out, `# Addresses: host calls and time vs running VMs

\`npx tsx bench/addresses.bench.ts --sizes ${SIZES.join(',')} --reps ${REPS}\` on ${URI}: N running VMs that boot nothing (TCG), one NIC each on one
isolated virtform DHCP network (no guest asks for an address, so every lookup comes back empty and the work is the lookup itself).
Median of ${REPS} runs. The call counts are the result; the times are noisy: the running TCG VMs load the machine's cores.

${table(['running VMs', 'status: calls', 'status ms', 'wait poll: calls', 'wait poll ms', 'per-VM domifaddr: calls', 'per-VM ms'], rows)}

- **status** = \`observeForStatus\`: the 8 list calls of the snapshot and one \`virNetworkGetDHCPLeases\` for the network, whatever N.
- **wait poll** = one poll of \`reconcile --wait\`: the same snapshot plus the lease read.
- **per-VM** = one \`virDomainInterfaceAddresses(source=lease)\` per VM, pipelined: N calls (libvirt reads the network's lease file for each).

${machineBlock()}
`);
}

main().catch((e) => {
  process.stderr.write(`${e instanceof Error ? e.stack : String(e)}\n`);
  process.exit(1);
});
