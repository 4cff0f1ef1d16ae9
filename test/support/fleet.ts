/**
 * A fleet of real libvirt hosts for one suite (`make test-fleet`): N namespace hosts started by
 * scripts/test-host.sh (names `vffl<letter><n>`, INDEX 230-239), their `kind: Host` manifests, virsh
 * on each, SIGKILL and restart of a host's libvirtd by its pid file, the inventory of every vftest
 * object on every host (for "no orphan anywhere"), and teardown by name and pid, also after a
 * failed run (vitest.fleet.config.ts sweeps the `vffl*` hosts no live process owns before and
 * after the run: test/support/fleet-global-setup.ts, fleetSweep in test-host.ts).
 *
 *   const F = useFleet('a', 3, { labels: (i) => ({ zone: 'abc'[i]! }), capacity: { memory: '2GiB', vcpus: 4 } });
 *   S.write({ 'hosts.yaml': F.hostManifests(), 'vms.yaml': ... });  // Host h1..h3 at qemu+tcp://10.251.23x.2/system
 *   F.domains('h2', S.prefix);                                      // vftest domains on h2
 *   F.kill('h2'); await F.restart('h2');
 *
 * Suite letters in use (one letter per file, so files never stop each other's hosts): a placement,
 * b host-down, c drain, d rebalance (the proof suites), m moves, r fleetrun, s status.
 *
 * All namespace hosts are the same machine and report the same node info, so suites set
 * `capacity` on their Host manifests. Hosts are reached over plain qemu+tcp to a non-loopback
 * address, so their manifests say `insecure: true`.
 */
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { afterAll, beforeAll } from 'vitest';
import { join } from 'node:path';
import { ROOT } from './cli.js';
import { TEST_POOL_ROOT } from './names.js';
import { FLEET_INDEXES, markOwner, type TestHost, testHostDown, testHostList, testHostUpAsync } from './test-host.js';
import { virshAt } from './virsh.js';

const STATE_ROOT = '/run/virtform-test-hosts';

export interface FleetHost extends TestHost {
  /** The Host manifest's name: `h1`, `h2`, … */
  readonly id: string;
  /** The host's labels in its Host manifest. */
  readonly labels: Record<string, string>;
}

/** Every vftest object of one host (names sorted; volumes `pool/volume`, files absolute paths). */
export interface HostObjects {
  domains: string[];
  runningDomains: string[];
  networks: string[];
  pools: string[];
  volumes: string[];
  files: string[];
}

export interface FleetOptions {
  /** Labels of the i-th host (0-based), besides none by default. */
  labels?: (i: number) => Record<string, string>;
  /** `spec.capacity` of every Host manifest (all namespace hosts report the same machine). */
  capacity?: Record<string, unknown>;
}

export interface Fleet {
  readonly hosts: FleetHost[];
  host(id: string): FleetHost;
  /** Host manifests (YAML) of `ids` (default all), each with `spec` merged over the defaults. */
  hostManifests(opts?: { ids?: string[]; spec?: (h: FleetHost) => Record<string, unknown>; labels?: (h: FleetHost) => Record<string, string> }): string;
  /** `virsh -q -c <its uri> ...args` from here (throws with virsh's stderr). */
  virsh(id: string, ...args: string[]): string;
  /** The vftest objects on host `id` whose names start with `prefix`. */
  objects(id: string, prefix: string): HostObjects;
  /** The domains on `id` starting with `prefix`. */
  domains(id: string, prefix: string): string[];
  /** Host id → its domains starting with `prefix`. */
  placement(prefix: string): Record<string, string[]>;
  /** sha256 of a volume's bytes on host `id` (read inside the host's mount namespace). */
  volumeSha256(id: string, pool: string, volume: string): string;
  /** The pid of host `id`'s libvirtd (its pid file). */
  libvirtdPid(id: string): number;
  /** SIGKILLs host `id`'s libvirtd by its pid. */
  kill(id: string): void;
  /** Starts host `id`'s libvirtd again (after kill) and waits until it answers. */
  restart(id: string): Promise<void>;
  /** Removes the objects starting with `prefix` from every host (and their pool directories). */
  cleanup(prefix: string): void;
  /** Stops every host of the fleet. */
  down(): void;
}

const hostLetter = /^[a-z]$/;

/** Host names of suite `letter`: vffl<letter>1, vffl<letter>2, … */
export const fleetHostName = (letter: string, n: number): string => `vffl${letter}${n}`;

function names(out: string): string[] {
  return out.split('\n').map((l) => l.trim()).filter(Boolean);
}

function yamlValue(v: unknown): string {
  return JSON.stringify(v);
}

/** Starts the fleet's hosts (in parallel) on free INDEXes of 230-239. */
export async function fleetUp(letter: string, n: number, opts: FleetOptions = {}): Promise<Fleet> {
  if (!hostLetter.test(letter)) throw new Error(`fleet suite letter must be one of a-z: ${letter}`);
  const mine = (name: string): boolean => name.startsWith(`vffl${letter}`);
  const taken = new Set(testHostList().filter((h) => !mine(h.name)).map((h) => Number(h.addr.split('.')[2])));
  const free = FLEET_INDEXES.filter((i) => !taken.has(i));
  if (free.length < n) throw new Error(`fleet ${letter}: ${n} hosts wanted, only ${free.length} free INDEXes of 230-239`);
  const started = await Promise.all(Array.from({ length: n }, async (_, i) => {
    const t = await testHostUpAsync(fleetHostName(letter, i + 1), free[i]!);
    markOwner(t.name); // the sweep leaves hosts of a live process alone
    return t;
  }));
  const hosts: FleetHost[] = started.map((t, i) => ({ ...t, id: `h${i + 1}`, labels: opts.labels?.(i) ?? {} }));
  const host = (id: string): FleetHost => {
    const h = hosts.find((x) => x.id === id);
    if (!h) throw new Error(`no host ${id} in the fleet (${hosts.map((x) => x.id).join(', ')})`);
    return h;
  };
  const virsh = (id: string, ...args: string[]): string => virshAt(host(id).uri, ...args);
  const objects = (id: string, prefix: string): HostObjects => {
    const h = host(id);
    const withPrefix = (l: string[]): string[] => l.filter((x) => x.startsWith(prefix)).sort();
    const pools = withPrefix(names(virsh(id, 'pool-list', '--all', '--name')));
    const volumes: string[] = [];
    for (const p of pools) {
      if (!virsh(id, 'pool-info', p).includes('running')) continue;
      virsh(id, 'pool-refresh', p);
      for (const line of names(virsh(id, 'vol-list', p))) volumes.push(`${p}/${line.split(/\s+/)[0]}`);
    }
    const files = names(h.execOk(['find', TEST_POOL_ROOT, '-mindepth', '2', '-maxdepth', '2', '-path', `${TEST_POOL_ROOT}/${prefix}*`]));
    return {
      domains: withPrefix(names(virsh(id, 'list', '--all', '--name'))),
      runningDomains: withPrefix(names(virsh(id, 'list', '--name'))),
      networks: withPrefix(names(virsh(id, 'net-list', '--all', '--name'))),
      pools,
      volumes: volumes.sort(),
      files: files.sort(),
    };
  };
  const domains = (id: string, prefix: string): string[] => names(virsh(id, 'list', '--all', '--name')).filter((d) => d.startsWith(prefix)).sort();
  const pidFile = (id: string): string => join(STATE_ROOT, host(id).name, 'libvirtd.pid');
  const libvirtdPid = (id: string): number => {
    const pid = Number(readFileSync(pidFile(id), 'utf8').trim());
    if (!Number.isInteger(pid) || pid <= 1) throw new Error(`host ${id}: no libvirtd pid in ${pidFile(id)}`);
    return pid;
  };
  return {
    hosts,
    host,
    hostManifests(o = {}) {
      const chosen = o.ids ? o.ids.map(host) : hosts;
      return chosen.map((h) => {
        const labels = o.labels?.(h) ?? h.labels;
        const spec: Record<string, unknown> = { uri: h.uri, insecure: true, ...(opts.capacity ? { capacity: opts.capacity } : {}), ...o.spec?.(h) };
        return [
          'apiVersion: virtform.dev/v1',
          'kind: Host',
          `metadata: {name: ${h.id}${Object.keys(labels).length ? `, labels: ${yamlValue(labels)}` : ''}}`,
          'spec:',
          ...Object.entries(spec).map(([k, v]) => `  ${k}: ${yamlValue(v)}`),
          '',
        ].join('\n');
      }).join('---\n');
    },
    virsh,
    objects,
    domains,
    placement(prefix) {
      return Object.fromEntries(hosts.map((h) => [h.id, domains(h.id, prefix)]));
    },
    volumeSha256(id, pool, volume) {
      const path = virsh(id, 'vol-path', '--pool', pool, volume).trim();
      return host(id).execOk(['sha256sum', path]).split(/\s+/)[0]!;
    },
    libvirtdPid,
    kill(id) {
      process.kill(libvirtdPid(id), 'SIGKILL');
    },
    async restart(id) {
      const h = host(id);
      await testHostUpAsync(h.name, h.index); // starts its daemons again when libvirtd is not alive
    },
    cleanup(prefix) {
      for (const h of hosts) {
        // inside the host: its pool directories are in its own mount namespace
        h.exec(['bash', join(ROOT, 'scripts/cleanup-test-objects.sh'), prefix], { timeoutMs: 120_000 });
      }
    },
    down() {
      for (const h of hosts) testHostDown(h.name);
    },
  };
}

/** Stops every host of suite `letter` (a killed run may have left them up). */
export function fleetHostsDown(letter: string): void {
  for (const h of testHostList()) if (h.name.startsWith(`vffl${letter}`)) testHostDown(h.name);
}

/**
 * The suite's fleet: started in beforeAll (after stopping leftovers of the same letter), stopped
 * in afterAll (also after a failure). The returned object is usable once beforeAll ran.
 */
export function useFleet(letter: string, n: number, opts: FleetOptions = {}): Fleet {
  let fleet: Fleet | undefined;
  const get = (): Fleet => {
    if (!fleet) throw new Error('the fleet is not up (use it inside tests or after beforeAll)');
    return fleet;
  };
  beforeAll(async () => {
    fleetHostsDown(letter);
    fleet = await fleetUp(letter, n, opts);
  }, 300_000);
  afterAll(() => {
    if (fleet) fleet.down();
    else fleetHostsDown(letter);
  }, 120_000);
  return {
    get hosts() { return get().hosts; },
    host: (id) => get().host(id),
    hostManifests: (o) => get().hostManifests(o),
    virsh: (id, ...args) => get().virsh(id, ...args),
    objects: (id, prefix) => get().objects(id, prefix),
    domains: (id, prefix) => get().domains(id, prefix),
    placement: (prefix) => get().placement(prefix),
    volumeSha256: (id, pool, volume) => get().volumeSha256(id, pool, volume),
    libvirtdPid: (id) => get().libvirtdPid(id),
    kill: (id) => get().kill(id),
    restart: (id) => get().restart(id),
    cleanup: (prefix) => get().cleanup(prefix),
    down: () => get().down(),
  };
}

/** Is a host's libvirtd answering? */
export function answers(uri: string): boolean {
  return spawnSync('virsh', ['-q', '-c', uri, 'version'], { stdio: 'ignore', timeout: 10_000 }).status === 0;
}
