/** What the fleet's stages hand each other and the CLI. */
import type { HostId } from '../model/kinds.js';
import type { Move, Placement, Unschedulable } from './contract.js';

import type { HostRemovalConflict } from '../model/hosts.js';

/** What the fleet adds to a plan (known before the plan is made). */
export interface FleetPlanInfo {
  /** Placements of VMs this run creates or moves, by resource key. */
  annotations: Map<string, Placement>;
  moves: Move[];
  unschedulable: Map<string, Unschedulable>;
  unreachable: Map<HostId, string>;
  /** Hosts without a Host manifest that virtform owns objects on: a conflict, nothing of theirs is touched. */
  orphanHosts: HostRemovalConflict[];
}
