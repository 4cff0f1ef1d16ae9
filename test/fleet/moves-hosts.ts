/**
 * The two hosts of a cold-move suite: the test hosts named in VFTEST_MOVES_HOSTS (`a,b`: hosts
 * already up, e.g. a developer's own), else a fleet of two started for the suite
 * (test/support/fleet.ts, `vffl<letter>1-2`). Files are read inside each host's mount namespace.
 */
import { afterAll, beforeAll } from 'vitest';
import { join } from 'node:path';
import { ROOT } from '../support/cli.js';
import { fleetUp, type Fleet } from '../support/fleet.js';
import { testHost, type TestHost } from '../support/test-host.js';

export interface MoveHosts {
  /** Host id (`a`, `b`) → its test host. */
  readonly by: Record<string, TestHost>;
  /** Host id → URI. */
  readonly uris: Record<string, string>;
  /** sha256 of a file, read inside host `id`, or null when it does not exist. */
  sha256(id: string, path: string): string | null;
  exists(id: string, path: string): boolean;
  sh(id: string, script: string): string;
  virsh(id: string, ...args: string[]): string;
  /** Domains on host `id` whose names start with `prefix`. */
  domains(id: string, prefix: string): string[];
  /** Files under the pool directory `dir` of host `id`. */
  files(id: string, dir: string): string[];
  cleanup(prefix: string): void;
}

export function useMoveHosts(letter: string, prefix: string): MoveHosts {
  const by: Record<string, TestHost> = {};
  let fleet: Fleet | undefined;
  const host = (id: string): TestHost => {
    const h = by[id];
    if (!h) throw new Error(`no move host ${id}`);
    return h;
  };
  const sh = (id: string, script: string): string => host(id).execOk(['bash', '-c', script], { timeoutMs: 300_000 });
  const cleanup = (p: string): void => {
    for (const h of Object.values(by)) {
      // Snapshots first: a domain with snapshots cannot be undefined.
      h.exec(['bash', '-c', `for d in $(virsh -c qemu:///system list --all --name | grep '^${p}'); do for s in $(virsh -c qemu:///system snapshot-list "$d" --name); do virsh -c qemu:///system snapshot-delete "$d" "$s" >/dev/null; done; done`]);
      h.exec(['bash', join(ROOT, 'scripts/cleanup-test-objects.sh'), p], { timeoutMs: 120_000 });
    }
  };
  beforeAll(async () => {
    const named = process.env.VFTEST_MOVES_HOSTS?.split(',').map((x) => x.trim()).filter(Boolean);
    if (named && named.length >= 2) {
      by.a = testHost(named[0]!);
      by.b = testHost(named[1]!);
    } else {
      fleet = await fleetUp(letter, 2);
      by.a = fleet.hosts[0]!;
      by.b = fleet.hosts[1]!;
    }
    cleanup(prefix);
  }, 300_000);
  afterAll(() => {
    if (Object.keys(by).length > 0) cleanup(prefix);
    fleet?.down();
  }, 300_000);
  return {
    by,
    get uris() { return Object.fromEntries(Object.entries(by).map(([id, h]) => [id, h.uri])); },
    sha256(id, path) {
      const out = sh(id, `[ -e '${path}' ] && sha256sum '${path}' || true`).trim();
      return out ? out.split(/\s+/)[0]! : null;
    },
    exists: (id, path) => sh(id, `[ -e '${path}' ] && echo yes || true`).trim() === 'yes',
    sh,
    virsh: (id, ...args) => host(id).virsh(...args),
    domains: (id, p) => host(id).virsh('list', '--all', '--name').split('\n').map((l) => l.trim()).filter((l) => l.startsWith(p)).sort(),
    files: (id, dir) => sh(id, `ls -1 '${dir}' 2>/dev/null || true`).split('\n').map((l) => l.trim()).filter(Boolean).sort(),
    cleanup,
  };
}
