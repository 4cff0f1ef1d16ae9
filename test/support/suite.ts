/**
 * The set-up every suite on the real libvirtd repeats, once: its names (test/support/names.ts),
 * its objects removed before and after the file (also after a failure), the CLI built, a temp
 * dir with a manifest folder and a state DB, and the CLI run against them.
 *
 *   const S = useSuite('drift');                 // beforeAll / afterAll of this file
 *   await S.reconcileOk(scenario().pool(S.name('pool'), { path: S.poolPath() }));
 *   expect((await S.dryRun()).code).toBe(0);     // exit 0 with --detailed-exitcode: "No changes."
 */
import { afterAll, beforeAll, expect } from 'vitest';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { ensureBuilt, runCli, type CliResult } from './cli.js';
import { writeManifests } from './manifests.js';
import { suiteNames, type SuiteId, type SuiteNames } from './names.js';
import { filesOf, scenario, type Manifests, type Scenario } from './scenario.js';

export interface Suite extends SuiteNames {
  /** The file's temp dir (removed after the file). */
  readonly work: string;
  /** The manifest folder, `<work>/<manifestDir>`. */
  readonly mdir: string;
  /** The state DB, `<work>/state.db`. */
  readonly db: string;
  /** Writes the manifest folder (replacing what was there); returns it. */
  write(m: Manifests): string;
  /** Runs the CLI with `--db <db>` (and `--shutdown-timeout 0` for reconcile and watch, see spawnCli). */
  cli(args: string[], env?: Record<string, string>, timeoutMs?: number): Promise<CliResult>;
  /** Writes `m` when given, runs `reconcile <mdir> ...extra` and expects exit 0 (the output in the message). */
  reconcileOk(m?: Manifests, extra?: string[], env?: Record<string, string>): Promise<CliResult>;
  /** Writes `m` when given and runs `reconcile <mdir> --dry-run --detailed-exitcode ...extra`. */
  dryRun(m?: Manifests, extra?: string[], env?: Record<string, string>): Promise<CliResult>;
}

export interface SuiteOptions {
  /** The manifest folder's name under the temp dir (default `manifests`). */
  manifestDir?: string;
  /** Runs first in beforeAll, before the cleanup (e.g. waiting for libvirtd). */
  before?: () => void | Promise<void>;
  /** Runs at the end of beforeAll (e.g. the first apply). */
  setup?: (s: Suite) => void | Promise<void>;
  /** The beforeAll timeout (ms). */
  setupTimeoutMs?: number;
}

/** Registers the file's beforeAll/afterAll and returns its suite; call once, at the top level of a test file. */
export function useSuite(id: SuiteId, opts: SuiteOptions = {}): Suite {
  const names = suiteNames(id);
  let work = '';
  const mdir = (): string => join(work, opts.manifestDir ?? 'manifests');
  const db = (): string => join(work, 'state.db');
  const cli = (args: string[], env: Record<string, string> = {}, timeoutMs?: number): Promise<CliResult> => runCli([...args, '--db', db()], env, timeoutMs);
  const write = (m: Manifests): string => writeManifests(mdir(), filesOf(m));
  const s: Suite = {
    ...names,
    get work() { return work; },
    get mdir() { return mdir(); },
    get db() { return db(); },
    write,
    cli,
    async reconcileOk(m, extra = [], env = {}) {
      if (m) write(m);
      const r = await cli(['reconcile', mdir(), ...extra], env);
      expect(r.code, `${r.stdout}\n${r.stderr}`).toBe(0);
      return r;
    },
    async dryRun(m, extra = [], env = {}) {
      if (m) write(m);
      return cli(['reconcile', mdir(), '--dry-run', '--detailed-exitcode', ...extra], env);
    },
  };
  beforeAll(async () => {
    await opts.before?.();
    names.cleanup();
    ensureBuilt();
    work = names.tempDir();
    await opts.setup?.(s);
  }, opts.setupTimeoutMs ?? 120_000);
  afterAll(() => {
    names.cleanup();
    if (work) rmSync(work, { recursive: true, force: true });
  }, 60_000);
  return s;
}

export interface LabOptions {
  /** The VM's state (default running). */
  state?: string;
  /** The VM's memory (default 64MiB). */
  memory?: string;
  /** The root volume's capacity (default 16MiB). */
  rootCapacity?: string;
  /** Static DHCP hosts by last octet (MAC `n.mac(h)`, IP `n.ip(h)`); none: no DHCP. */
  dhcpHosts?: number[];
  /** The VM NIC's MAC as `n.mac(h)` (default: libvirt picks one). */
  mac?: number;
  /** The file the VM goes to (default `vm.yaml`; the pool and volume go to `storage.yaml`, the network to `network.yaml`). */
  vmFile?: string;
  /** More of the VM's spec (replaces the defaults). */
  vm?: Record<string, unknown>;
}

/**
 * The small lab many suites start from: a pool `<base>-pool` at the suite's pool path, a qcow2
 * `<base>-root`, an isolated network `<base>-net` on the suite's first /24 and a VM `<base>-vm`
 * (1 vCPU, 64MiB, booting nothing) with the root disk and one NIC; nothing autostarts.
 */
export function lab(n: SuiteNames, o: LabOptions = {}): Scenario {
  const P = n.base;
  const dhcp = o.dhcpHosts
    ? { start: n.ip(100), end: n.ip(199), hosts: o.dhcpHosts.map((h) => ({ mac: n.mac(h), ip: n.ip(h) })) }
    : undefined;
  return scenario().in('storage.yaml')
    .pool(`${P}-pool`, { path: n.poolPath(), autostart: false })
    .volume(`${P}-root`, { capacity: o.rootCapacity ?? '16MiB', format: 'qcow2' })
    .in('network.yaml')
    .network(`${P}-net`, { cidr: n.cidr(), dhcp, autostart: false })
    .in(o.vmFile ?? 'vm.yaml')
    .vm(`${P}-vm`, {
      memory: o.memory ?? '64MiB', state: o.state ?? 'running',
      disks: [{ volume: `${P}-root`, bus: 'virtio', boot: 1 }],
      nics: [{ network: `${P}-net`, mac: o.mac === undefined ? undefined : n.mac(o.mac) }],
      ...o.vm,
    });
}
