/** The hosts as the scheduler sees them: a Host manifest's capacity where it sets one, else what the host reports. */
import type { NodeInfo } from '../reconcile/ports.js';
import type { HostDefinition, PlacementHost } from './contract.js';

/**
 * Effective capacity of one Host: `spec.capacity`'s fields override the node info field by field
 * (disk pool by pool). An unreachable host (no node info) offers only what its manifest declares.
 */
export function placementHost(def: HostDefinition, node: NodeInfo | undefined): PlacementHost {
  const c = def.capacity ?? {};
  return {
    id: def.id,
    labels: { ...def.labels },
    schedulable: def.schedulable,
    drain: def.drain,
    reachable: node !== undefined,
    capacity: {
      memory: c.memory ?? node?.memory ?? 0,
      vcpus: c.vcpus ?? node?.cpus ?? 0,
      disk: { ...(node?.disk ?? {}), ...(c.disk ?? {}) },
    },
    reserved: { ...def.reserved },
    overcommit: { ...def.overcommit },
  };
}
