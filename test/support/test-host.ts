/**
 * A private libvirt host for a test (scripts/test-host.sh): its own libvirtd in its own network and
 * mount namespace, reachable from the test (root namespace) at `qemu+tcp://10.251.INDEX.2/system`.
 * Suites use names starting `vfci` and INDEX 240-249, so they never meet the hosts people start
 * for development (INDEX 1-200). Root only.
 *
 *   const h = testHostUp('vfci1');          // the first free INDEX of 240-249
 *   h.exec(['mount', '-t', 'tmpfs', ...]);  // inside its namespaces
 *   await runCli([..., '--uri', h.uri, '--insecure']);   // plain tcp to a non-loopback address needs it
 *   testHostDown(h.name);                   // also: testHostsCleanup('vfci1') before a run
 */
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { ROOT } from './real-host.js';

const SCRIPT = join(ROOT, 'scripts/test-host.sh');
/** INDEX range of the test suites' hosts. */
export const SUITE_INDEXES = [240, 241, 242, 243, 244, 245, 246, 247, 248, 249];

export interface ExecResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

export interface TestHost {
  name: string;
  index: number;
  addr: string;
  /** qemu+tcp://ADDR/system (the CLI needs --insecure for it, or `spec.insecure: true` on a Host) */
  uri: string;
  /** Runs a command inside the host's namespaces (there qemu:///system is this host). */
  exec(cmd: string[], opts?: { timeoutMs?: number }): ExecResult;
  /** Like exec; throws with its stderr when it fails. */
  execOk(cmd: string[], opts?: { timeoutMs?: number }): string;
  /** virsh -c qemu:///system inside the host. */
  virsh(...args: string[]): string;
}

function script(args: string[], timeoutMs = 120_000): ExecResult {
  const r = spawnSync('bash', [SCRIPT, ...args], { encoding: 'utf8', timeout: timeoutMs });
  return { code: r.status, stdout: r.stdout ?? '', stderr: `${r.stderr ?? ''}${r.error ? String(r.error) : ''}` };
}

/** Hosts that are up: name, address, state. */
export function testHostList(): { name: string; addr: string; up: boolean }[] {
  return script(['list']).stdout.split('\n').filter(Boolean).map((l) => {
    const [name, addr, state] = l.split(/\s+/);
    return { name: name!, addr: addr ?? '', up: state === 'up' };
  });
}

/** Starts host `name` (idempotent) on `index`, or the first INDEX of 240-249 no other host has. */
export function testHostUp(name: string, index?: number): TestHost {
  if (!/^vfci[a-z0-9]{0,4}$/.test(name)) throw new Error(`test host names start with vfci (1-8 of [a-z0-9]): ${name}`);
  let idx = index;
  if (idx === undefined) {
    const taken = new Set(testHostList().filter((h) => h.name !== name).map((h) => Number(h.addr.split('.')[2])));
    idx = SUITE_INDEXES.find((i) => !taken.has(i));
    if (idx === undefined) throw new Error('no free test host INDEX in 240-249');
  }
  const r = script(['up', name, String(idx)], 180_000);
  if (r.code !== 0) throw new Error(`test-host.sh up ${name} ${idx} failed (${r.code}): ${r.stderr || r.stdout}`);
  return testHost(name);
}

/** The handle of a host that is up. */
export function testHost(name: string): TestHost {
  const addr = script(['addr', name]).stdout.trim();
  if (!/^10\.251\.\d+\.2$/.test(addr)) throw new Error(`test host ${name} is not up`);
  const exec = (cmd: string[], opts: { timeoutMs?: number } = {}): ExecResult => script(['exec', name, '--', ...cmd], opts.timeoutMs ?? 120_000);
  const execOk = (cmd: string[], opts: { timeoutMs?: number } = {}): string => {
    const r = exec(cmd, opts);
    if (r.code !== 0) throw new Error(`in test host ${name}: ${cmd.join(' ')} failed (${r.code}): ${r.stderr.trim()}`);
    return r.stdout;
  };
  return {
    name, addr, index: Number(addr.split('.')[2]), uri: `qemu+tcp://${addr}/system`,
    exec, execOk,
    virsh: (...args: string[]) => execOk(['virsh', '-q', '-c', 'qemu:///system', ...args]),
  };
}

/** Stops host `name` and removes its namespace and state (idempotent; fine when it is not up). */
export function testHostDown(name: string): void {
  script(['down', name], 60_000);
}

/** Stops every host whose name starts with `prefix` (a run killed before its afterAll left it up). */
export function testHostsCleanup(prefix: string): void {
  if (!prefix.startsWith('vfci')) throw new Error(`test hosts of the suites start with vfci, got ${prefix}`);
  for (const h of testHostList()) if (h.name.startsWith(prefix)) testHostDown(h.name);
}
