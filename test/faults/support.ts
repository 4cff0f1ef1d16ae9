/** Helpers for the fault suite: seeded randomness, manifest variants, declared sets, CLI with pid. */
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { ROOT, type Declared } from '../support/real-host.js';
import { desiredFrom } from '../support/manifests.js';
import { LIBVIRTD_ARGS, LIBVIRTD_PIDFILE, libvirtdAlive } from '../support/libvirtd.js';

export { prng } from '../support/prng.js';
import { prng } from '../support/prng.js';

export const randInt = (rnd: () => number, lo: number, hi: number): number => lo + Math.floor(rnd() * (hi - lo + 1));

/** What the libvirt objects of a manifest folder are: names, volume file names, file paths. */
export async function declaredFrom(dir: string): Promise<Declared> {
  const d = await desiredFrom(dir);
  const out: Declared = { domains: [], networks: [], pools: [], volumes: [], files: [] };
  for (const r of d.resources) {
    if (r.kind === 'VirtualMachine') out.domains.push(r.name);
    else if (r.kind === 'Network') out.networks.push(r.name);
    else if (r.kind === 'StoragePool') out.pools.push(r.name);
    else if (r.kind === 'Volume') {
      out.volumes.push(`${r.config.pool}/${r.config.volName}`);
      out.files.push(r.config.path);
    }
  }
  return out;
}

export interface Variant {
  /** No manifests at all (teardown with --allow-empty). */
  empty?: boolean;
  vms: 3 | 4;
  vm1Memory: '64MiB' | '96MiB';
  vm2State: 'running' | 'stopped';
  vm3Vcpus: 1 | 2;
}

export const describeVariant = (v: Variant): string => v.empty ? 'EMPTY (teardown)' : `vms=${v.vms} vm1=${v.vm1Memory} vm2=${v.vm2State} vm3.vcpus=${v.vm3Vcpus}`;

/**
 * 12-14 resources: 1 pool, a qcow2 base + one CoW clone root per VM + 2 raw data volumes,
 * 1 isolated network, 3-4 VMs (no OS; KVM).
 */
export function faultManifests(p: string, poolPath: string, v: Variant, cidr = '10.232.0.0/24'): Record<string, string> {
  if (v.empty) return {};
  const net = cidr.replace(/\.0\/24$/, '');
  const docs: string[] = [
    `kind: StoragePool\nmetadata: {name: ${p}-pool}\nspec: {path: ${poolPath}}`,
    `kind: Volume\nmetadata: {name: ${p}-base}\nspec: {pool: ${p}-pool, capacity: 16MiB, format: qcow2}`,
    `kind: Volume\nmetadata: {name: ${p}-data1}\nspec: {pool: ${p}-pool, capacity: 8MiB, format: raw}`,
    `kind: Volume\nmetadata: {name: ${p}-data2}\nspec: {pool: ${p}-pool, capacity: 8MiB, format: raw}`,
    `kind: Network\nmetadata: {name: ${p}-net}\nspec:\n  mode: isolated\n  cidr: ${cidr}\n  dhcp:\n    start: ${net}.100\n    end: ${net}.199\n` +
      `    hosts:\n      - {mac: "52:54:00:fa:00:01", ip: ${net}.11}`,
  ];
  const vm = (i: number, extra: { memory?: string; state?: string; vcpus?: number; data?: string; mac?: string }): string =>
    `kind: VirtualMachine\nmetadata: {name: ${p}-vm${i}}\nspec:\n  vcpus: ${extra.vcpus ?? 1}\n  memory: ${extra.memory ?? '64MiB'}\n` +
    `  state: ${extra.state ?? 'stopped'}\n  disks: [{volume: ${p}-root${i}, bus: virtio, boot: 1}${extra.data ? `, {volume: ${extra.data}}` : ''}]\n` +
    `  nics: [{network: ${p}-net${extra.mac ? `, mac: "${extra.mac}"` : ''}}]`;
  for (let i = 1; i <= v.vms; i++) {
    docs.push(`kind: Volume\nmetadata: {name: ${p}-root${i}}\nspec: {pool: ${p}-pool, capacity: 16MiB, format: qcow2, backingVolume: ${p}-base}`);
  }
  docs.push(vm(1, { memory: v.vm1Memory, state: 'running', data: `${p}-data1`, mac: '52:54:00:fa:00:01' }));
  docs.push(vm(2, { state: v.vm2State, data: `${p}-data2` }));
  docs.push(vm(3, { vcpus: v.vm3Vcpus }));
  if (v.vms === 4) docs.push(vm(4, { state: 'running' }));
  return { 'env.yaml': docs.map((d) => `apiVersion: virtform.dev/v1\n${d}\n`).join('---\n') };
}

export { spawnCli, type Spawned } from '../support/real-host.js';

export function libvirtdUp(): boolean {
  return spawnSync('virsh', ['-c', 'qemu:///system', 'version'], { stdio: 'ignore', timeout: 10_000 }).status === 0;
}

/** Wait until libvirtd answers (start it once if it is not running at all). */
export async function ensureLibvirtd(timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let started = false;
  while (Date.now() < deadline) {
    if (libvirtdUp()) return;
    if (!started && !libvirtdAlive()) {
      spawnSync('libvirtd', [...LIBVIRTD_ARGS], { stdio: 'ignore' });
      started = true;
    }
    await new Promise((r) => setTimeout(r, 250));
  }
  throw new Error('libvirtd did not come back within 30 s');
}

export const RESULTS = join(ROOT, 'bench/results');

const CONN_RE = /cannot connect to libvirt|ECONNRESET|EPIPE|ECONNREFUSED|Connection refused|failed to connect to the hypervisor|connection to \S+ (failed|closed)|connection (closed|lost)/i;

/** Did this output / error come from libvirtd going away (e.g. another suite restarting it)? */
export function isConnectionTrouble(textOrError: unknown): boolean {
  const t = typeof textOrError === 'string' ? textOrError
    : textOrError instanceof Error ? `${textOrError.message} ${String((textOrError as { stderr?: unknown }).stderr ?? '')}` : String(textOrError);
  return CONN_RE.test(t);
}

/**
 * Run `fn`; when it fails (or its result looks like one) because libvirtd went away, wait for
 * libvirtd and run it again (at most `tries` times). Counts the disturbances in `note`.
 */
export async function whileLibvirtdFlaps<T>(fn: () => Promise<T> | T, troubled: (v: T) => boolean, note: { disturbed: number }, tries = 4): Promise<T> {
  for (let i = 1; ; i++) {
    try {
      const v = await fn();
      if (i >= tries || !troubled(v)) return v;
    } catch (e) {
      if (i >= tries || !isConnectionTrouble(e)) throw e;
    }
    note.disturbed += 1;
    await ensureLibvirtd(60_000);
  }
}
