/**
 * Per-suite names, subnets and MACs for tests on the real libvirtd, so suites can run side by side
 * (vitest runs files in parallel) without clobbering each other's objects.
 *
 * Every suite that creates libvirt objects or directories under /var/lib/virtform-test has an id
 * in SUITES (lower-case letters and digits, no dash) and names everything `vftest-<id>-…`. Since
 * no id contains a dash, the prefix `vftest-<id>-` of one suite is never a prefix of another's
 * (today's `vftest-url` was a prefix of `vftest-url-crash`, so cleaning one up removed the other):
 * `N.cleanup()` removes exactly this suite's objects. The number of an id gives the suite its own
 * /24s (`10.20n.<number>.0/24`, n = 0..9) and MACs (`52:54:00:<number>:<n>:<host>`), so two suites'
 * networks never overlap (libvirt refuses to start a network whose subnet another one routes).
 * The global sweep (test/support/global-setup.ts) removes everything `vftest*` before and after a run.
 */
import { execFileSync } from 'node:child_process';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { makeTempDir } from './temp-dirs.js';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
export const TEST_POOL_ROOT = '/var/lib/virtform-test';

/**
 * The registry: suite id → its number (1..255, never reused: the number is the suite's subnet and
 * MAC byte). Add a line for a new suite file; a duplicate id or number fails at load.
 */
export const SUITES = {
  // test/integration
  fleetbind: 110, // issue 21 (hostkind): test/integration/reconcile/fleet-bind.test.ts
  bad: 1, corpus: 2, console: 3, gitcli: 4, hostid: 5,
  addrg: 6, addrp: 7, boot: 8, nocloud: 9, cloudinit: 10, bal: 11, tiny: 12,
  restart: 13, rpc: 14, strm: 15, xml: 16, rpctd: 43,
  crash: 17, drift: 18, exactdrift: 19, xdev: 20, contract: 21, prop: 22, pooldirs: 23, eng: 24, rec: 44,
  rob: 25, safety: 26, stoptimeout: 27, td: 28, urlpolicy: 29, url: 30, vmdrift: 31, hw: 32, vmo: 33,
  urlcrash: 45, lvd: 46, lease: 47, upg: 48, typed: 49, controls: 34, data: 35, sbxva: 36, sbxgit: 37, sbxout: 38, addr: 39, status: 40, git: 41, watch: 42,
  // test/integration/guide/walkthrough.test.ts (README's walkthrough, run as written)
  guidewt: 171,
  // README's "On a remote host" over qemu+ssh: test/fleet/remote-guide.test.ts
  sshwalk: 173,
  // issue 22 (incwatch): test/integration/watch/incremental.test.ts
  incw: 140,
  // test/guest
  guestdeb: 60,
  // issue 24, helper restart: hot-plug and virtform restart (test/integration/reconcile/hotplug.test.ts,
  // test/integration/cli/restart.test.ts, test/integration/guest/hotplug-guest.test.ts)
  hotplug: 160, vmrestart: 161, hotguest: 162,
  // issue 24, helper cdseed: cdrom disks and spec.cloudInit.seedVolume (test/integration/reconcile/cdrom-seed.test.ts)
  cdseed: 175,
  // test/fleet/transport.test.ts (ssh and TLS)
  transport: 100,
  // test/faults
  faultd: 80, faults: 81, faultk: 82, faultg: 83, faultl: 84, faulttcp: 85, propf: 86,
  // test/fleet (the proof suites; their hosts: test/support/fleet.ts)
  flplace: 95, flkill: 96, flmove: 97, flrebal: 98,
  // test/fleet (fleetrun)
  flrun: 115, flrundown: 116,
  // test/fleet/moves*.test.ts (cold moves at the engine level)
  moves: 90, movescrash: 91,
  // test/fleet (standby)
  standby: 105,
  // test/fleet/status.test.ts (fleetstatus)
  flstatus: 125,
  // test/fleet/fleetwatch.test.ts (fleet watch's HTTP endpoints)
  flwatch: 117,
  // issue 23 (helper dashsrv): test/integration/dashboard/server.test.ts, test/integration/dashboard/netns-auth.test.ts
  dashsrv: 145, dashnet: 146,
  // issue 24 (helper snaps): test/integration/reconcile/snapshot.test.ts, test/faults/snapshot-crash.test.ts,
  // test/integration/guest/snapshot-memory.test.ts
  snapshot: 165, snapcrash: 166, snapmem: 167,
  // savedplan (issue 24): test/integration/reconcile/saved-plan.test.ts, saved-plan-queue.test.ts; test/faults/saved-plan-crash.test.ts
  savplan: 155, planq: 156, plancrash: 157,
  // issue 23 (dashui): test/dashboard/dashboard.test.ts (the dashboard in chromium on a real watch), scripts/dashboard-screenshots.ts
  dashui: 150, dashshot: 151,
  // issue 22 (fastcli): test/integration/cli/fast-start.test.ts (the bundled CLI: what each command loads)
  faststart: 130,
  // issue 22 (digest): test/integration/reconcile/fast-path.test.ts
  fastpath: 135,
  // issue 22 (helper noopfast): test/integration/reconcile/load-cache.test.ts
  loadcache: 190,
  // issue 22 (helper watchfast): test/integration/watch/incremental-deps.test.ts
  wfdeps: 185,
  // issue 24 (helper export): test/integration/export/virsh-adopt.test.ts, test/integration/export/round-trip.test.ts
  expvirsh: 180, expround: 181,
  // issue 24 (helper volfile): Volume spec.fileName, export of kcli / terraform volume names (test/integration/export/volfile.test.ts)
  expfile: 195,
  // the watcher's exit after its manifest folder was replaced: test/integration/watch/folder-replaced-exit.test.ts
  wexit: 208,
} as const satisfies Record<string, number>;

export type SuiteId = keyof typeof SUITES;

/** Why the registry is wrong, or [] (checked at load and by test/unit/support/names.test.ts). */
export function registryProblems(suites: Record<string, number> = SUITES): string[] {
  const problems: string[] = [];
  const byNumber = new Map<number, string>();
  for (const [id, n] of Object.entries(suites)) {
    if (!/^[a-z0-9]+$/.test(id)) problems.push(`suite id ${id}: only a-z and 0-9 (a dash would let one prefix extend another)`);
    if (!Number.isInteger(n) || n < 1 || n > 255) problems.push(`suite ${id}: number ${n} not in 1..255`);
    const other = byNumber.get(n);
    if (other) problems.push(`suites ${other} and ${id} share the number ${n}`);
    byNumber.set(n, id);
  }
  const prefixes = Object.keys(suites).map((id) => `vftest-${id}-`);
  for (const a of prefixes) for (const b of prefixes) if (a !== b && b.startsWith(a)) problems.push(`${a} is a prefix of ${b}`);
  return problems;
}

const problems = registryProblems();
if (problems.length > 0) throw new Error(`test/support/names.ts: ${problems.join('; ')}`);

const hex = (n: number): string => n.toString(16).padStart(2, '0');

export interface SuiteNames {
  readonly id: SuiteId;
  /** `vftest-<id>`: objects are `${base}-something`. */
  readonly base: string;
  /** `vftest-<id>-`: what this suite's objects start with, and nothing else's. */
  readonly prefix: string;
  /** `vftest-<id>-<part>` */
  name(part: string): string;
  /** `/var/lib/virtform-test/vftest-<id>-<part>` (a pool directory). */
  poolPath(part?: string): string;
  /** The first three octets of the suite's n-th /24, e.g. `10.200.42`. */
  subnet(n?: number): string;
  /** The suite's n-th /24, e.g. `10.200.42.0/24`. */
  cidr(n?: number): string;
  /** An address in the n-th /24. */
  ip(host: number, n?: number): string;
  /** A MAC of this suite: `52:54:00:<number>:<n>:<host>`. */
  mac(host: number, n?: number): string;
  /** Removes this suite's libvirt objects and pool directories (scripts/cleanup-test-objects.sh). */
  cleanup(): void;
  /** A fresh temp directory `/tmp/vftest-<id>-XXXXXX`, removed after the test file (test/support/temp-dirs.ts). */
  tempDir(): string;
}

/** The names of one suite; call once per test file. */
export function suiteNames(id: SuiteId): SuiteNames {
  const number = SUITES[id];
  const base = `vftest-${id}`;
  const prefix = `${base}-`;
  const subnet = (n = 0): string => {
    if (!Number.isInteger(n) || n < 0 || n > 9) throw new Error(`subnet ${n}: a suite has subnets 0..9`);
    return `10.${200 + n}.${number}`;
  };
  return {
    id, base, prefix,
    name: (part) => `${prefix}${part}`,
    poolPath: (part = 'pool') => join(TEST_POOL_ROOT, `${prefix}${part}`),
    subnet,
    cidr: (n = 0) => `${subnet(n)}.0/24`,
    ip: (host, n = 0) => `${subnet(n)}.${host}`,
    mac: (host, n = 0) => `52:54:00:${hex(number)}:${hex(n)}:${hex(host)}`,
    cleanup: () => {
      execFileSync('bash', [join(ROOT, 'scripts/cleanup-test-objects.sh'), prefix], { stdio: 'ignore' });
    },
    tempDir: () => makeTempDir(prefix),
  };
}
