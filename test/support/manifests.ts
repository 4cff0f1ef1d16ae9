/** Write manifest folders for tests and load them the way the CLI does. */
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { loadManifests } from '../../src/manifest/index.js';
import { buildDesired, type Desired } from '../../src/reconcile/desired.js';
import { makeTempDir } from './temp-dirs.js';

/** A fresh temp directory, removed after the test file (test/support/temp-dirs.ts). */
export function tempDir(prefix = 'vftest-'): string {
  return makeTempDir(prefix);
}

export function writeManifests(dir: string, files: Record<string, string>): string {
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  for (const [name, text] of Object.entries(files)) writeFileSync(join(dir, name), text);
  return dir;
}

export async function desiredFrom(dir: string): Promise<Desired> {
  const r = await loadManifests(dir);
  if (!r.ok) throw new Error(`manifests invalid:\n${r.errors.map((e) => `${e.file}:${e.line}:${e.col} ${e.field ?? ''} ${e.message}`).join('\n')}`);
  return buildDesired(r.desired);
}

/** A small but complete environment: 1 pool, 3 volumes (one a clone), 1 network, 2 VMs. */
export function labManifests(opts: {
  prefix?: string; poolPath: string; cidr?: string; vm1State?: 'running' | 'stopped'; vm1Memory?: string;
  rootFormat?: 'qcow2' | 'raw'; dataCapacity?: string; extraHosts?: string; withVm2?: boolean;
  vm2Memory?: string; baseCapacity?: string;
}): Record<string, string> {
  const p = opts.prefix ?? 'vftest-eng';
  const rootSpec = opts.rootFormat === 'raw'
    ? `{pool: ${p}-pool, capacity: 64MiB, format: raw}`
    : `{pool: ${p}-pool, capacity: 64MiB, format: qcow2, backingVolume: ${p}-base}`;
  return {
    'storage.yaml': `apiVersion: virtform.dev/v1
kind: StoragePool
metadata: {name: ${p}-pool}
spec: {path: ${opts.poolPath}, autostart: true}
---
apiVersion: virtform.dev/v1
kind: Volume
metadata: {name: ${p}-base}
spec: {pool: ${p}-pool, capacity: ${opts.baseCapacity ?? '64MiB'}, format: qcow2}
---
apiVersion: virtform.dev/v1
kind: Volume
metadata: {name: ${p}-root}
spec: ${rootSpec}
---
apiVersion: virtform.dev/v1
kind: Volume
metadata: {name: ${p}-data}
spec: {pool: ${p}-pool, capacity: ${opts.dataCapacity ?? '32MiB'}, format: raw}
`,
    'network.yaml': `apiVersion: virtform.dev/v1
kind: Network
metadata: {name: ${p}-net}
spec:
  mode: isolated
  cidr: ${opts.cidr ?? '10.231.0.0/24'}
  dhcp:
    start: ${(opts.cidr ?? '10.231.0.0/24').replace(/\.0\/24$/, '.100')}
    end: ${(opts.cidr ?? '10.231.0.0/24').replace(/\.0\/24$/, '.199')}
    hosts:
      - {mac: "52:54:00:aa:00:01", ip: ${(opts.cidr ?? '10.231.0.0/24').replace(/\.0\/24$/, '.11')}}${opts.extraHosts ?? ''}
  autostart: false
`,
    'vms.yaml': `apiVersion: virtform.dev/v1
kind: VirtualMachine
metadata: {name: ${p}-vm1, labels: {role: web}}
spec:
  vcpus: 1
  memory: ${opts.vm1Memory ?? '64MiB'}
  state: ${opts.vm1State ?? 'running'}
  disks: [{volume: ${p}-root, bus: virtio, boot: 1}, {volume: ${p}-data}]
  nics: [{network: ${p}-net, mac: "52:54:00:aa:00:01"}]
${opts.withVm2 === false ? '' : `---
apiVersion: virtform.dev/v1
kind: VirtualMachine
metadata: {name: ${p}-vm2}
spec:
  vcpus: 1
  memory: ${opts.vm2Memory ?? '64MiB'}
  state: stopped
  disks: []
  nics: [{network: ${p}-net}]
`}`,
  };
}

/**
 * A stopped VM `<prefix>-ci` without disks whose cloud-init user-data holds a secret (`userData`,
 * the #cloud-config lines after its first): what the dashboard must never show or send.
 */
export function secretSeedVm(prefix: string, labels: string, userData: string): string {
  return `apiVersion: virtform.dev/v1
kind: VirtualMachine
metadata: {name: ${prefix}-ci, labels: {${labels}}}
spec:
  vcpus: 1
  memory: 64MiB
  state: stopped
  disks: []
  nics: []
  cloudInit:
    pool: ${prefix}-pool
    userData: |
      #cloud-config
      ${userData}
`;
}
