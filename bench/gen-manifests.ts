/**
 * A manifest folder of N stopped VMs, each with its own qcow2 volume, in one pool and on one
 * network (2N + 2 resources): the set the whole-process benches load (issue 22: 1,000 VMs and 1,000
 * volumes in two files). Files hold at most 1,000 documents each (the loader refuses files over
 * 1 MiB), so 1,000 VMs are two files — `base.yaml` (pool, network, volumes) and `vms-0000.yaml` —
 * and larger sets add files of the same size.
 *
 *   npx tsx bench/gen-manifests.ts DIR [VMS]    # VMS defaults to 1000
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

const PER_FILE = 1000;

const pad = (i: number): string => String(i).padStart(5, '0');

function volume(prefix: string, i: number): string {
  return `apiVersion: virtform.dev/v1
kind: Volume
metadata:
  name: ${prefix}-v${pad(i)}
  labels: {app: bench, tier: data}
spec:
  pool: ${prefix}-pool
  capacity: 1GiB
  format: qcow2
`;
}

function vm(prefix: string, i: number): string {
  const mac = `52:54:00:${((i >> 16) & 0xff).toString(16).padStart(2, '0')}:${((i >> 8) & 0xff).toString(16).padStart(2, '0')}:${(i & 0xff).toString(16).padStart(2, '0')}`;
  return `apiVersion: virtform.dev/v1
kind: VirtualMachine
metadata:
  name: ${prefix}-d${pad(i)}
  labels: {app: bench, role: worker}
spec:
  vcpus: 1
  memory: 64MiB
  state: stopped
  description: bench VM ${i}
  disks:
    - {volume: ${prefix}-v${pad(i)}, bus: virtio, boot: 1}
  nics:
    - {network: ${prefix}-net, mac: "${mac}", model: virtio}
`;
}

/** The files (name → text) of a set with `vms` VMs, objects named `${prefix}-…`. */
export function manifestFiles(vms: number, prefix = 'vfbench'): Record<string, string> {
  const files: Record<string, string> = {};
  const base = [
    `apiVersion: virtform.dev/v1\nkind: StoragePool\nmetadata: {name: ${prefix}-pool}\nspec: {path: /var/lib/virtform-bench/${prefix}-pool}\n`,
    `apiVersion: virtform.dev/v1\nkind: Network\nmetadata: {name: ${prefix}-net}\nspec: {mode: isolated, cidr: 10.231.0.0/16}\n`,
  ];
  for (let start = 0; start < vms; start += PER_FILE) {
    const vols: string[] = start === 0 ? [...base] : [];
    const doms: string[] = [];
    for (let i = start; i < Math.min(vms, start + PER_FILE); i++) {
      vols.push(volume(prefix, i));
      doms.push(vm(prefix, i));
    }
    files[start === 0 ? 'base.yaml' : `volumes-${pad(start)}.yaml`] = vols.join('---\n');
    files[`vms-${pad(start)}.yaml`] = doms.join('---\n');
  }
  return files;
}

/** Write the set into `dir` (created); returns the number of resources. */
export function writeManifests(dir: string, vms: number, prefix?: string): number {
  mkdirSync(dir, { recursive: true });
  for (const [name, text] of Object.entries(manifestFiles(vms, prefix))) writeFileSync(join(dir, name), text);
  return 2 * vms + 2;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const dir = process.argv[2];
  if (!dir) {
    process.stderr.write('usage: npx tsx bench/gen-manifests.ts DIR [VMS]\n');
    process.exit(2);
  }
  const n = writeManifests(dir, Number(process.argv[3] ?? 1000));
  process.stdout.write(`${dir}: ${n} resources\n`);
}
