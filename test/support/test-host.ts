/**
 * A private libvirt host for a test (scripts/test-host.sh): its own libvirtd in its own network and
 * mount namespace, reachable from the test (root namespace) at `qemu+tcp://10.251.INDEX.2/system`.
 * Suites use names starting `vfci` and INDEX 240-249, the fleet suites (test/support/fleet.ts)
 * `vffl` and INDEX 230-239, so they never meet the hosts people start for development (INDEX
 * 1-200). Root only.
 *
 *   const h = testHostUp('vfci1');          // the first free INDEX of 240-249
 *   h.exec(['mount', '-t', 'tmpfs', ...]);  // inside its namespaces
 *   await runCli([..., '--uri', h.uri, '--insecure']);   // plain tcp to a non-loopback address needs it
 *   testHostDown(h.name);                   // also: testHostsCleanup('vfci1') before a run
 */
import { spawn, spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ROOT } from './real-host.js';

const SCRIPT = join(ROOT, 'scripts/test-host.sh');
/** scripts/test-host.sh's state folder: one folder per host, with its pid files. */
const STATE_ROOT = '/run/virtform-test-hosts';
/** INDEX range of the test suites' hosts. */
export const SUITE_INDEXES = [240, 241, 242, 243, 244, 245, 246, 247, 248, 249];
/** INDEX range of the fleet suites' hosts (`vffl*`, test/support/fleet.ts). */
export const FLEET_INDEXES = [230, 231, 232, 233, 234, 235, 236, 237, 238, 239];
/** Names of the suites' hosts: `vfci*` (one-host suites) or `vffl*` (the fleet suites). */
const SUITE_HOST_NAME = /^(vfci|vffl)[a-z0-9]{0,4}$/;

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

/** The INDEX to start `name` on: `index`, or the first of its range (240-249 or 230-239) no other host has. */
function upIndex(name: string, index?: number): number {
  if (!SUITE_HOST_NAME.test(name)) throw new Error(`test host names start with vfci or vffl (1-8 of [a-z0-9]): ${name}`);
  if (index !== undefined) return index;
  const range = name.startsWith('vffl') ? FLEET_INDEXES : SUITE_INDEXES;
  const taken = new Set(testHostList().filter((h) => h.name !== name).map((h) => Number(h.addr.split('.')[2])));
  const idx = range.find((i) => !taken.has(i));
  if (idx === undefined) throw new Error(`no free test host INDEX in ${range[0]}-${range[range.length - 1]}`);
  return idx;
}

/** Like testHostUp, without blocking the event loop: hosts started together start in parallel. */
export async function testHostUpAsync(name: string, index: number): Promise<TestHost> {
  const idx = upIndex(name, index);
  const r = await new Promise<ExecResult>((res) => {
    const child = spawn('bash', [SCRIPT, 'up', name, String(idx)], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    const timer = setTimeout(() => child.kill('SIGKILL'), 180_000);
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('close', (code) => {
      clearTimeout(timer);
      res({ code, stdout, stderr });
    });
  });
  if (r.code !== 0) throw new Error(`test-host.sh up ${name} ${idx} failed (${r.code}): ${r.stderr || r.stdout}`);
  return testHost(name);
}

/** Starts host `name` (idempotent) on `index`, or the first INDEX of its range no other host has. */
export function testHostUp(name: string, index?: number): TestHost {
  const idx = upIndex(name, index);
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
  if (!prefix.startsWith('vfci') && !prefix.startsWith('vffl')) throw new Error(`test hosts of the suites start with vfci or vffl, got ${prefix}`);
  for (const h of testHostList()) if (h.name.startsWith(prefix)) testHostDown(h.name);
}

/** Who started host `name`: the pid of the test process (test/support/fleet-global-setup.ts). */
const ownerFile = (name: string): string => join(STATE_ROOT, name, 'owner.pid');

/** Records this process as the owner of host `name` (a fleet suite's host). */
export function markOwner(name: string): void {
  writeFileSync(ownerFile(name), String(process.pid));
}

function alive(pid: number): boolean {
  try {
    return !/^\d+ \(.*\) Z/.test(readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return false; // safe-catch: no such process
  }
}

/** Is `name` a host started by a process that is still alive (another test run on this machine)? */
function ownedByLiveProcess(name: string): boolean {
  try {
    const pid = Number(readFileSync(ownerFile(name), 'utf8').trim());
    return pid > 1 && pid !== process.pid && alive(pid);
  } catch {
    return false; // safe-catch: no owner recorded: nobody holds it
  }
}

/**
 * Stops every `vffl*` host no live process owns: the leftovers of a killed or failed run, and
 * hosts started by hand. A host another test run on this machine started (its owner pid alive) is
 * left alone, so two runs never tear down each other's hosts.
 */
export function fleetSweep(): string[] {
  const down: string[] = [];
  for (const h of testHostList()) {
    if (!h.name.startsWith('vffl') || ownedByLiveProcess(h.name)) continue;
    testHostDown(h.name);
    down.push(h.name);
  }
  return down;
}
