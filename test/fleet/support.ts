/**
 * What the fleet proof suites share: a set of small stopped VMs, each with a raw volume of its own
 * in a pool that exists on every host (no `hosts` on the StoragePool: all of them), spread by the
 * hosts' `zone` label, and the run's common flags. The VMs boot nothing (TCG, stopped), so a fleet
 * of namespace hosts on one machine holds them easily; Host manifests come from test/support/fleet.ts.
 */
import type { Fleet } from '../support/fleet.js';
import type { SuiteNames } from '../support/names.js';
import { scenario, type Scenario } from '../support/scenario.js';

/** Flags of every reconcile of these suites (no --uri: the Host manifests say where). */
export const FLEET_FLAGS = ['--retry-delay', '100'];

type HostSpec = (h: Fleet['hosts'][number]) => Record<string, unknown>;

export interface WebOptions {
  /** How many VMs `<base>-web-1..count` (default 6). */
  count?: number;
  /** Only these VMs (1-based numbers), e.g. after some were removed. */
  only?: number[];
  /** Host ids whose Host manifests are written (default all of the fleet). */
  hostIds?: string[];
  /** spec of each Host manifest beyond the fleet's defaults. */
  hostSpec?: HostSpec;
  /** The VMs' memory (default 64MiB). */
  memory?: string;
  /** The VMs' placement (default spread by the hosts' zone). */
  placement?: Record<string, unknown> | undefined;
  /** Each VM's volume (default 1MiB raw). */
  volume?: (i: number) => Record<string, unknown>;
}

/** `<base>-web-<i>` */
export const webName = (n: SuiteNames, i: number): string => n.name(`web-${i}`);
/** `<base>-web-<i>-disk` */
export const webDisk = (n: SuiteNames, i: number): string => n.name(`web-${i}-disk`);
/** The libvirt name (and file name) of `<base>-web-<i>-disk`: a raw volume is `<name>.img`. */
export const webVol = (n: SuiteNames, i: number): string => `${webDisk(n, i)}.img`;
/** `<base>-pool` */
export const poolName = (n: SuiteNames): string => n.name('pool');

/** Host manifests, the pool on every host, and the web VMs with their volumes. */
export function webFleet(n: SuiteNames, fleet: Fleet, o: WebOptions = {}): Scenario {
  const s = scenario().in('hosts.yaml').doc(fleet.hostManifests({ ids: o.hostIds, spec: o.hostSpec }))
    .in('storage.yaml').pool(poolName(n), { path: n.poolPath(), autostart: false });
  const numbers = o.only ?? Array.from({ length: o.count ?? 6 }, (_, i) => i + 1);
  for (const i of numbers) s.volume(webDisk(n, i), { capacity: '1MiB', format: 'raw', ...o.volume?.(i) });
  s.in('vms.yaml');
  const placement = 'placement' in o ? o.placement : { spreadBy: { hostLabel: 'zone' } };
  for (const i of numbers) {
    s.vm(webName(n, i), {
      memory: o.memory ?? '64MiB', state: 'stopped', domainType: 'qemu',
      disks: [{ volume: webDisk(n, i), bus: 'virtio' }],
      placement,
    }, { labels: { app: 'web' } });
  }
  return s;
}

/** Host id → how many domains it holds, from a placement (host id → domains). */
export function counts(placement: Record<string, string[]>): Record<string, number> {
  return Object.fromEntries(Object.entries(placement).map(([h, d]) => [h, d.length]));
}

/** Which host holds domain `name` (undefined: none); throws when two do. */
export function hostOf(placement: Record<string, string[]>, name: string): string | undefined {
  const on = Object.entries(placement).filter(([, d]) => d.includes(name)).map(([h]) => h);
  if (on.length > 1) throw new Error(`${name} is defined on several hosts: ${on.join(', ')}`);
  return on[0];
}
