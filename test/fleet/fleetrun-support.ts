/**
 * The fleet of the fleetrun suites: test/support/fleet.ts's `useFleet` (hosts vfflr1-3, INDEX
 * 230-239, started and stopped by the suite) unless `FLEETRUN_HOSTS` names test hosts that are
 * already up (`FLEETRUN_HOSTS=fleetrun,fleetrub,fleetruc`, started by `scripts/test-host.sh up`):
 * then those, left up. Both give the same handle.
 */
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ROOT } from '../support/cli.js';
import { useFleet, type Fleet, type FleetHost, type FleetOptions, type HostObjects } from '../support/fleet.js';
import { testHost } from '../support/test-host.js';
import { virshAt } from '../support/virsh.js';

const names = (out: string): string[] => out.split('\n').map((l) => l.trim()).filter(Boolean);

function existingFleet(hostNames: string[], opts: FleetOptions): Fleet {
  let hosts: FleetHost[] | undefined;
  const all = (): FleetHost[] => (hosts ??= hostNames.map((n, i) => ({ ...testHost(n), id: `h${i + 1}`, labels: opts.labels?.(i) ?? {} })));
  const host = (id: string): FleetHost => {
    const h = all().find((x) => x.id === id);
    if (!h) throw new Error(`no host ${id}`);
    return h;
  };
  const virsh = (id: string, ...args: string[]): string => virshAt(host(id).uri, ...args);
  const domains = (id: string, prefix: string): string[] => names(virsh(id, 'list', '--all', '--name')).filter((d) => d.startsWith(prefix)).sort();
  const pidFile = (id: string): string => join('/run/virtform-test-hosts', host(id).name, 'libvirtd.pid');
  const libvirtdPid = (id: string): number => Number(readFileSync(pidFile(id), 'utf8').trim());
  const objects = (id: string, prefix: string): HostObjects => {
    const withPrefix = (l: string[]): string[] => l.filter((x) => x.startsWith(prefix)).sort();
    const pools = withPrefix(names(virsh(id, 'pool-list', '--all', '--name')));
    const volumes: string[] = [];
    for (const p of pools) {
      if (!virsh(id, 'pool-info', p).includes('running')) continue;
      virsh(id, 'pool-refresh', p);
      for (const line of names(virsh(id, 'vol-list', p))) volumes.push(`${p}/${line.split(/\s+/)[0]}`);
    }
    return {
      domains: domains(id, prefix), runningDomains: withPrefix(names(virsh(id, 'list', '--name'))),
      networks: withPrefix(names(virsh(id, 'net-list', '--all', '--name'))), pools, volumes: volumes.sort(), files: [],
    };
  };
  return {
    get hosts() { return all(); },
    host,
    hostManifests(o = {}) {
      const chosen = o.ids ? o.ids.map(host) : all();
      return chosen.map((h) => {
        const labels = o.labels?.(h) ?? h.labels;
        const spec: Record<string, unknown> = { uri: h.uri, insecure: true, ...(opts.capacity ? { capacity: opts.capacity } : {}), ...o.spec?.(h) };
        return ['apiVersion: virtform.dev/v1', 'kind: Host',
          `metadata: {name: ${h.id}${Object.keys(labels).length ? `, labels: ${JSON.stringify(labels)}` : ''}}`, 'spec:',
          ...Object.entries(spec).map(([k, v]) => `  ${k}: ${JSON.stringify(v)}`), ''].join('\n');
      }).join('---\n');
    },
    virsh, objects, domains,
    placement: (prefix) => Object.fromEntries(all().map((h) => [h.id, domains(h.id, prefix)])),
    volumeSha256: (id, pool, volume) => host(id).execOk(['sha256sum', virsh(id, 'vol-path', '--pool', pool, volume).trim()]).split(/\s+/)[0]!,
    libvirtdPid,
    kill: (id) => process.kill(libvirtdPid(id), 'SIGKILL'),
    async restart(id) {
      const h = host(id);
      const r = spawnSync('bash', [join(ROOT, 'scripts/test-host.sh'), 'up', h.name, String(h.index)], { encoding: 'utf8', timeout: 180_000 });
      if (r.status !== 0) throw new Error(`restart ${h.name}: ${r.stderr}`);
    },
    cleanup(prefix) {
      for (const h of all()) h.exec(['bash', join(ROOT, 'scripts/cleanup-test-objects.sh'), prefix], { timeoutMs: 120_000 });
    },
    down: () => undefined,
  };
}

/** The suite's three hosts (see the header). */
export function fleetrunFleet(opts: FleetOptions): Fleet {
  const given = process.env.FLEETRUN_HOSTS?.split(',').map((s) => s.trim()).filter(Boolean);
  return given && given.length > 0 ? existingFleet(given, opts) : useFleet('r', 3, opts);
}
