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
  /**
   * From one host to a fleet: the Host whose libvirt identity is the implicit host's (the earlier
   * `--uri` runs) and how many of its records are bound to it (`rekey`), nothing recreated.
   * `shown`: the plan shows them bound (an apply, or a dry-run on a scratch copy of a SQLite DB);
   * false on a PostgreSQL dry-run, which cannot show it and says so.
   */
  bound?: BoundHost[];
}

export interface BoundHost {
  host: HostId;
  /** Resource records moved (or, in a dry-run, that the apply will move). */
  resources: number;
  shown: boolean;
}
