/**
 * Benchmark of the libvirt RPC client against virsh, measured in one run on this host.
 *
 *   npx tsx bench/rpc.bench.ts [--out FILE] [--domains N] [--calls N]
 *
 * 1. Per-call cost: connectGetVersion sequentially and with 32 calls in flight on one connection
 *    (qemu:///system), against `virsh -c qemu:///system version` run in a loop (one process and
 *    connection per call: what a shell script pays) and against one virsh process running the
 *    command many times (`version; version; ...`: virsh's per-call cost on one connection).
 * 2. List-all with 1,000 domains:
 *    - test+unix:///default: 1,000 domains defined on ONE connection of this process (test-driver
 *      state is per connection, so virsh cannot see them), then list-all timed.
 *    - qemu:///system: 1,000 inactive domains `vftest-bench-N` defined, list-all timed with the
 *      client and with `virsh list --all --name` (and `virsh list --all`, which also fetches each
 *      state), then all removed.
 * Prints a Markdown table and writes it to --out (default bench/results/rpc.md).
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { dirname } from 'node:path';
import { LibvirtClient } from '../src/libvirt/index.js';

const args = process.argv.slice(2);
const arg = (name: string, dflt: string) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 && args[i + 1] ? args[i + 1]! : dflt;
};
const OUT = arg('out', 'bench/results/rpc.md');
const N_DOMAINS = Number(arg('domains', '1000'));
const N_CALLS = Number(arg('calls', '5000'));
const SYSTEM = 'qemu:///system';
const TEST = 'test+unix:///default';
const BENCH_PREFIX = 'vftest-bench-';

const now = () => performance.now();
const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
};
const fmt = (n: number, d = 1) => n.toLocaleString('en-US', { maximumFractionDigits: d, minimumFractionDigits: d });
const log = (...a: unknown[]) => console.error('[bench]', ...a);

function virsh(uri: string, ...a: string[]): string {
  return execFileSync('virsh', ['-q', '-c', uri, ...a], { encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 });
}

/** Runs `n` async tasks with at most `window` in flight. */
async function pool<T>(n: number, window: number, task: (i: number) => Promise<T>): Promise<T[]> {
  const out = new Array<T>(n);
  let next = 0;
  const worker = async () => {
    while (next < n) {
      const i = next++;
      out[i] = await task(i);
    }
  };
  await Promise.all(Array.from({ length: Math.min(window, n) }, worker));
  return out;
}

interface Row {
  what: string;
  ours: string;
  virsh: string;
  ratio: string;
}
const rows: Row[] = [];
const notes: string[] = [];

async function perCall(): Promise<void> {
  const c = await LibvirtClient.connect(SYSTEM);
  try {
    for (let i = 0; i < 200; i++) await c.connectGetVersion(); // warm-up
    // The host may be busy (other work on the same daemon): the four measurements are
    // interleaved over ROUNDS rounds and each reported figure is the median of its rounds, so
    // the ratios compare numbers taken under the same conditions.
    const ROUNDS = 5;
    const per = Math.max(1, Math.floor(N_CALLS / ROUNDS));
    const loops = 6;
    const batch = 200;
    // After the first, each `version` command makes one RPC (connect-get-version; virsh answers
    // the type and library version from its cache / locally): virsh's per-RPC cost on one connection.
    const script = Array(batch).fill('version').join(' ; ');
    virsh(SYSTEM, 'version');
    const seq: number[] = [];
    const par: number[] = [];
    const vLoop: number[] = [];
    const vBatch: number[] = [];
    for (let round = 0; round < ROUNDS; round++) {
      let t = now();
      for (let i = 0; i < per; i++) await c.connectGetVersion();
      seq.push((per / (now() - t)) * 1000);

      t = now();
      await pool(per, 32, () => c.connectGetVersion());
      par.push((per / (now() - t)) * 1000);

      // virsh: one process (and connection) per call.
      t = now();
      for (let i = 0; i < loops; i++) virsh(SYSTEM, 'version');
      vLoop.push((loops / (now() - t)) * 1000);

      // virsh: one process, many calls on its connection.
      t = now();
      virsh(SYSTEM, script);
      vBatch.push((batch / (now() - t)) * 1000);
    }
    const seqRate = median(seq);
    const parRate = median(par);
    const virshLoopRate = median(vLoop);
    const virshLoopMs = 1000 / virshLoopRate;
    const virshBatchRate = median(vBatch);
    const seqMs = (per / seqRate) * 1000;
    const range = (xs: number[], d = 0) => `${fmt(Math.min(...xs), d)}–${fmt(Math.max(...xs), d)}`;
    notes.push(
      `Per-call figures are medians of ${ROUNDS} interleaved rounds (${per} client calls each); ranges: ` +
        `client sequential ${range(seq)}/s, client 32 in flight ${range(par)}/s, ` +
        `virsh one-process ${range(vBatch)}/s, virsh process-per-call ${range(vLoop, 1)}/s.`,
    );

    rows.push({
      what: 'connectGetVersion, sequential (one connection)',
      ours: `${fmt(seqRate, 0)} calls/s (${fmt((seqMs * 1000) / per, 0)} µs/call)`,
      virsh: `${fmt(virshLoopRate, 1)} calls/s (\`virsh version\` loop, ${fmt(virshLoopMs, 1)} ms/process)`,
      ratio: `${fmt(seqRate / virshLoopRate, 0)}×`,
    });
    rows.push({
      what: 'connectGetVersion, 32 in flight (one connection)',
      ours: `${fmt(parRate, 0)} calls/s`,
      virsh: `${fmt(virshLoopRate, 1)} calls/s (\`virsh version\` loop)`,
      ratio: `${fmt(parRate / virshLoopRate, 0)}×`,
    });
    rows.push({
      what: 'connectGetVersion, sequential, vs one virsh process running `version` repeatedly',
      ours: `${fmt(seqRate, 0)} calls/s`,
      virsh: `${fmt(virshBatchRate, 0)} calls/s (\`version\` ×${batch} in one virsh process, one RPC each)`,
      ratio: `${fmt(seqRate / virshBatchRate, 2)}×`,
    });
    notes.push(`32-in-flight speed-up over sequential on one connection: ${fmt(parRate / seqRate, 2)}×.`);
  } finally {
    await c.close();
  }
}

const benchDomXml = (type: string, name: string) =>
  `<domain type='${type}'><name>${name}</name><memory unit='MiB'>16</memory><vcpu>1</vcpu>` +
  `<os><type arch='x86_64'>hvm</type></os></domain>`;

async function listAllTestDriver(): Promise<void> {
  const c = await LibvirtClient.connect(TEST);
  try {
    let t = now();
    await pool(N_DOMAINS, 32, (i) => c.domainDefineXml(benchDomXml('test', `${BENCH_PREFIX}${i}`)));
    const defineMs = now() - t;
    const samples: number[] = [];
    let count = 0;
    for (let i = 0; i < 7; i++) {
      t = now();
      count = (await c.connectListAllDomains(0)).length;
      samples.push(now() - t);
    }
    rows.push({
      what: `list-all-domains, ${count} domains, test+unix:///default (defined on one connection)`,
      ours: `${fmt(median(samples), 2)} ms (median of 7)`,
      virsh: 'n/a: test-driver state is per connection, virsh cannot see them',
      ratio: '—',
    });
    notes.push(
      `Defining ${N_DOMAINS} domains on test+unix:///default, 32 in flight: ${fmt(defineMs, 0)} ms ` +
        `(${fmt((N_DOMAINS / defineMs) * 1000, 0)} defines/s).`,
    );
  } finally {
    await c.close(); // test-driver state goes with the connection
  }
}

async function listAllSystem(): Promise<void> {
  const c = await LibvirtClient.connect(SYSTEM);
  const type = (await c.connectGetCapabilities()).includes("<domain type='kvm'") ? 'kvm' : 'qemu';
  const before = (await c.connectListAllDomains(0)).length;
  try {
    let t = now();
    await pool(N_DOMAINS, 32, (i) => c.domainDefineXml(benchDomXml(type, `${BENCH_PREFIX}${i}`)));
    const defineMs = now() - t;
    notes.push(
      `Defining ${N_DOMAINS} inactive domains on qemu:///system, 32 in flight: ${fmt(defineMs, 0)} ms ` +
        `(${fmt((N_DOMAINS / defineMs) * 1000, 0)} defines/s).`,
    );

    const ours: number[] = [];
    let count = 0;
    for (let i = 0; i < 7; i++) {
      t = now();
      count = (await c.connectListAllDomains(0)).length;
      ours.push(now() - t);
    }
    const names: number[] = [];
    const full: number[] = [];
    let virshCount = 0;
    for (let i = 0; i < 5; i++) {
      t = now();
      virshCount = virsh(SYSTEM, 'list', '--all', '--name').split('\n').filter(Boolean).length;
      names.push(now() - t);
      t = now();
      virsh(SYSTEM, 'list', '--all');
      full.push(now() - t);
    }
    // virsh's own connection cost, to separate process start-up from the listing.
    const bare: number[] = [];
    for (let i = 0; i < 5; i++) {
      t = now();
      virsh(SYSTEM, 'uri');
      bare.push(now() - t);
    }
    if (virshCount !== count) notes.push(`Note: virsh saw ${virshCount} domains, the client ${count} (other activity on the host).`);
    const net = (x: number) => fmt(Math.max(0.01, x - median(bare)) / median(ours), 1);
    rows.push({
      what: `list-all-domains, ${count} domains (${count - before} vftest-bench), qemu:///system`,
      ours: `${fmt(median(ours), 2)} ms (median of 7, open connection)`,
      virsh: `${fmt(median(names), 1)} ms (\`virsh list --all --name\`, median of 5, incl. process + connect)`,
      ratio: `${fmt(median(names) / median(ours), 0)}× (${net(median(names))}× net of virsh start-up)`,
    });
    rows.push({
      what: `same, virsh also fetching each state (\`virsh list --all\`)`,
      ours: `${fmt(median(ours), 2)} ms`,
      virsh: `${fmt(median(full), 1)} ms`,
      ratio: `${fmt(median(full) / median(ours), 0)}× (${net(median(full))}× net of virsh start-up)`,
    });
    notes.push(`virsh start-up (process + connect + \`uri\`, no listing): ${fmt(median(bare), 1)} ms (median of 5).`);
  } finally {
    const t = now();
    const doms = (await c.connectListAllDomains(0)).filter((d) => d.name.startsWith(BENCH_PREFIX));
    await pool(doms.length, 32, (i) => c.domainUndefine(doms[i]!).catch(() => undefined));
    const left = (await c.connectListAllDomains(0)).filter((d) => d.name.startsWith(BENCH_PREFIX)).length;
    notes.push(`Removed ${doms.length} vftest-bench domains in ${fmt(now() - t, 0)} ms; ${left} left.`);
    await c.close();
  }
}

async function main(): Promise<void> {
  log(`per-call (${N_CALLS} client calls per mode)…`);
  await perCall();
  log(`list-all with ${N_DOMAINS} domains on ${TEST}…`);
  await listAllTestDriver();
  log(`list-all with ${N_DOMAINS} domains on ${SYSTEM}…`);
  await listAllSystem();

  const lib = virsh(SYSTEM, 'version').match(/Using library: (.+)/)?.[1] ?? '?';
  const md = [
    '# libvirt RPC client benchmark',
    '',
    `Run ${new Date().toISOString()} on ${cpus().length} CPU(s), Node ${process.version}, ${lib}; all numbers from this one run.`,
    '',
    '| measurement | virtform RPC client | virsh | ratio (client faster by) |',
    '| --- | --- | --- | --- |',
    ...rows.map((r) => `| ${r.what} | ${r.ours} | ${r.virsh} | ${r.ratio} |`),
    '',
    ...notes.map((n) => `- ${n}`),
    '',
    'Comparison chosen: virsh is what a script would otherwise call, so a `virsh` process per call is the',
    'baseline for per-call cost; the batched `version; version; …` row and the `virsh uri` figure separate',
    "virsh's process and connection start-up from its per-RPC cost. The 1,000-domain listing is compared on",
    'qemu:///system, where both see the same domains; on the test driver only the client is timed.',
    '',
  ].join('\n');
  console.log(md);
  mkdirSync(dirname(OUT), { recursive: true });
  writeFileSync(OUT, md);
  log(`written to ${OUT}`);
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
