/**
 * Helpers for integration tests against the real libvirtd: run the CLI, ask virsh, take an
 * inventory of test objects by name prefix, and check the no-orphan invariant.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { ROOT } from './cli.js';
import { virsh, virshOk } from './virsh.js';
import { TEST_POOL_ROOT } from './names.js';

export { CLI, ROOT, ensureBuilt, runCli, spawnCli, type CliResult, type Spawned } from './cli.js';
export { virsh, virshOk } from './virsh.js';
export { TEST_POOL_ROOT } from './names.js';

const names = (out: string): string[] => out.split('\n').map((s) => s.trim()).filter(Boolean);

export interface Inventory {
  domains: string[];
  runningDomains: string[];
  networks: string[];
  activeNetworks: string[];
  pools: string[];
  /** `pool/volume` for every volume libvirt lists in a prefixed pool. */
  volumes: string[];
  /** Every file under the test pool root whose top directory has the prefix. */
  files: string[];
}

export function inventory(prefix: string): Inventory {
  const withPrefix = (l: string[]): string[] => l.filter((n) => n.startsWith(prefix)).sort();
  const pools = withPrefix(names(virsh('pool-list', '--all', '--name')));
  const volumes: string[] = [];
  for (const p of pools) {
    if (!virshOk('pool-info', p) || !virsh('pool-info', p).includes('running')) continue;
    virshOk('pool-refresh', p);
    for (const line of names(virsh('vol-list', p))) volumes.push(`${p}/${line.split(/\s+/)[0]}`);
  }
  const files: string[] = [];
  if (existsSync(TEST_POOL_ROOT)) {
    for (const top of readdirSync(TEST_POOL_ROOT).filter((d) => d.startsWith(prefix))) {
      const dir = join(TEST_POOL_ROOT, top);
      for (const f of readdirSync(dir)) files.push(join(dir, f));
    }
  }
  return {
    domains: withPrefix(names(virsh('list', '--all', '--name'))),
    runningDomains: withPrefix(names(virsh('list', '--name'))),
    networks: withPrefix(names(virsh('net-list', '--all', '--name'))),
    activeNetworks: withPrefix(names(virsh('net-list', '--name'))),
    pools,
    volumes: volumes.sort(),
    files: files.sort(),
  };
}

/** Open journal entries in a state DB file (operations begun and never finished). */
export function openJournal(dbPath: string): { kind: string; name: string; action: string }[] {
  if (!existsSync(dbPath)) return [];
  const db = new Database(dbPath, { readonly: true, fileMustExist: true });
  try {
    return db.prepare("select kind, name, action from journal where status = 'open'").all() as { kind: string; name: string; action: string }[];
  } finally {
    db.close();
  }
}

export interface Declared {
  domains: string[];
  networks: string[];
  pools: string[];
  /** `pool/volumeFileName` */
  volumes: string[];
  /** absolute paths of declared volume files */
  files: string[];
}

/**
 * The invariant after any completed run: every prefixed libvirt object and every file in the
 * prefixed pool directories is declared. Returns the violations (empty when clean).
 */
export function orphans(prefix: string, declared: Declared): string[] {
  const inv = inventory(prefix);
  const out: string[] = [];
  const check = (what: string, actual: string[], wanted: string[]): void => {
    const ok = new Set(wanted);
    for (const a of actual) if (!ok.has(a)) out.push(`${what} ${a}`);
  };
  check('domain', inv.domains, declared.domains);
  check('network', inv.networks, declared.networks);
  check('pool', inv.pools, declared.pools);
  check('volume', inv.volumes, declared.volumes);
  check('file', inv.files, declared.files);
  return out;
}

export function cleanupPrefix(prefix: string): void {
  execFileSync('bash', [join(ROOT, 'scripts/cleanup-test-objects.sh'), prefix], { stdio: 'ignore' });
}
