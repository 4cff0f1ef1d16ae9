/**
 * The fleet's scheduler in memory (no libvirt, no store): how long `schedule()` takes.
 *
 *   npx tsx bench/schedule.bench.ts --out bench/results/schedule.md [--reps 11]
 *
 * The fleet: H hosts in 5 zones (labels zone, ssd on every other host; 64-256 GiB, 32-96 vCPUs,
 * a known `default` pool), N VMs of 10 apps (1-8 GiB, 1-4 vCPUs, 10-80 GiB disks), each spread
 * by zone among its app (DoNotSchedule, maxSkew 1); one VM in four also has a hostSelector
 * (ssd=true), one in fifty a pin. Rows:
 *   - place: N new VMs;
 *   - sticky rerun: the same, each recorded where the first run put it (what every later run does);
 *   - rebalance: the rerun with 10 empty hosts added and --rebalance --max-moves 10.
 * Median of --reps runs each (after one warm-up), at 1,000 × 50 (the figure), at a quarter
 * and four times that work (VMs × hosts), to show how it grows, and 2,000 onto 50 hosts, which
 * cannot hold them all (the unschedulable ones each carry a reason per host).
 */
import { schedule, type PlacementHost, type PlacementRequest } from '../src/placement/index.js';
import { cpus, loadavg } from 'node:os';
import { flags, machineBlock, median, ms, table, writeReport } from './lib.js';

const f = flags();
const REPS = Number(f.reps ?? 11);
const GiB = 1024 ** 3;

function fleet(nHosts: number, nVms: number): { hosts: PlacementHost[]; vms: PlacementRequest[] } {
  const hosts: PlacementHost[] = Array.from({ length: nHosts }, (_, i) => ({
    id: `host-${String(i).padStart(3, '0')}`,
    labels: { zone: `z${i % 5}`, ...(i % 2 ? { ssd: 'true' } : {}) },
    schedulable: true, drain: false, reachable: true,
    capacity: { memory: (64 + (i % 4) * 64) * GiB, vcpus: 32 + (i % 3) * 32, disk: { default: 4096 * GiB } },
    reserved: { memory: 4 * GiB, vcpus: 2 }, overcommit: { cpu: 2, memory: 1 },
  }));
  const vms: PlacementRequest[] = Array.from({ length: nVms }, (_, i) => ({
    name: `vm-${String(i).padStart(5, '0')}`,
    labels: { app: `app${i % 10}` },
    memory: (1 + (i % 8)) * GiB, vcpus: 1 + (i % 4), disk: { default: (10 + (i % 8) * 10) * GiB },
    placement: {
      ...(i % 4 === 0 ? { hostSelector: { matchLabels: { ssd: 'true' } } } : {}),
      spreadBy: { hostLabel: 'zone', vmLabel: 'app' },
    },
    ...(i % 50 === 7 ? { pin: hosts[i % nHosts]!.id } : {}),
  }));
  return { hosts, vms };
}

/** Median wall time and median CPU time (user + system of this process: less sensitive to a loaded machine), ms. */
function time(fn: () => unknown): { wall: number; cpu: number } {
  fn();
  const wall: number[] = [];
  const cpu: number[] = [];
  for (let r = 0; r < REPS; r++) {
    const c = process.cpuUsage();
    const t = performance.now();
    fn();
    wall.push(performance.now() - t);
    const d = process.cpuUsage(c);
    cpu.push((d.user + d.system) / 1000);
  }
  return { wall: median(wall), cpu: median(cpu) };
}
const both = (t: { wall: number; cpu: number }): string => `${ms(t.wall)} (cpu ${ms(t.cpu)})`;

const rows: (string | number)[][] = [];
let headline = '';
const loadBefore = loadavg()[0]!.toFixed(1);
for (const [nVms, nHosts] of [[500, 25], [1000, 50], [2000, 100], [2000, 50]] as const) {
  const { hosts, vms } = fleet(nHosts, nVms);
  const first = schedule(hosts, vms);
  const placed = first.placements.size;
  const recorded = vms.map((v) => ({ ...v, current: first.placements.get(v.name)?.host }));
  const more: PlacementHost[] = [...hosts, ...Array.from({ length: 10 }, (_, i) => ({ ...hosts[i]!, id: `new-${i}` }))];
  const moves = schedule(more, recorded, { rebalance: true, maxMoves: 10 }).moves.length;
  const tPlace = time(() => schedule(hosts, vms));
  const tSticky = time(() => schedule(hosts, recorded));
  const tRebalance = time(() => schedule(more, recorded, { rebalance: true, maxMoves: 10 }));
  if (nVms === 1000 && nHosts === 50) headline = `${ms(tPlace.wall)} ms wall, ${ms(tPlace.cpu)} ms of CPU`;
  rows.push([`${nVms.toLocaleString('en')} × ${nHosts}`, `${placed} placed, ${first.unschedulable.size} unschedulable`, both(tPlace), both(tSticky), `${both(tRebalance)}, ${moves} moves`]);
  process.stderr.write(`${nVms}x${nHosts}: place ${both(tPlace)} ms, sticky ${both(tSticky)} ms, rebalance ${both(tRebalance)} ms\n`);
}

writeReport(f.out, `# Scheduler: placing VMs onto hosts in memory

\`npx tsx bench/schedule.bench.ts --reps ${REPS}\`: \`schedule()\` of src/placement/ alone (pure: no libvirt, no store).
Median of ${REPS} runs after a warm-up, wall time and (in parentheses) the process's CPU time, which a
loaded machine inflates less (load average ${loadBefore} at the start, ${loadavg()[0]!.toFixed(1)} at the end, on ${cpus().length} cores).
**1,000 VMs onto 50 hosts: ${headline}.**

Fleet: hosts in 5 zones (64-256 GiB, 32-96 vCPUs, 4 GiB and 2 vCPUs reserved, vCPU overcommit 2, a
known \`default\` pool; every other host labelled ssd=true); VMs of 10 apps (1-8 GiB, 1-4 vCPUs,
10-80 GiB of disk), each spread by zone among its app (DoNotSchedule, maxSkew 1), one in four with
a hostSelector (ssd=true), one in fifty pinned.

${table(['VMs × hosts', 'result', 'place ms', 'sticky rerun ms', 'rebalance: +10 empty hosts, --max-moves 10, ms'], rows)}

- **place**: every VM new: each is run through every host's filters and ranked: O(VMs × hosts), the
  spread counts kept per domain as VMs land, so a check is O(1) per host and constraint; each row
  of the first three is 4× the work of the one before.
- **sticky rerun**: every VM recorded where the first run put it: no filtering at all, so this is what a
  steady-state run pays.
- **rebalance**: the sticky rerun plus up to 10 proposed moves (each: the candidates of the fullest
  zone or most allocated host, each through the filters).

${machineBlock()}
`);
