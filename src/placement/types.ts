/**
 * The scheduler's contract (issue 21, "Scheduler" in the fleet's shared contracts): what the fleet
 * hands `schedule()` and what it gets back. Pure data, JSON-friendly apart from the result's Maps
 * (see `resultJson` in explain.ts).
 */
import type { HostId } from '../model/kinds.js';

export type { HostId };

/**
 * `spec.hostSelector` of a VM placement (and of pools/networks). Structurally the same as
 * `LabelSelector` of src/model/hosts.ts (the Host contract): either satisfies the other.
 */
export interface LabelSelector { matchLabels?: Record<string, string> }

/** One host as the scheduler sees it; `capacity` is effective (the Host's override, else node info), bytes and counts. */
export interface PlacementHost {
  id: HostId;
  labels: Record<string, string>;
  schedulable: boolean;
  drain: boolean;
  reachable: boolean;
  capacity: { memory: number; vcpus: number; disk: Record<string, number> };
  reserved: { memory: number; vcpus: number };
  overcommit: { cpu: number; memory: number };
}

export interface SpreadBy {
  /** The host label whose values are the domains (zone, rack). */
  hostLabel: string;
  /** VMs sharing this VM's value of this label are spread; omitted: all VMs with the same `spreadBy`. */
  vmLabel?: string;
  /** Default 1. */
  maxSkew?: number;
  /** Default DoNotSchedule. */
  whenUnsatisfiable?: 'DoNotSchedule' | 'ScheduleAnyway';
}

export interface PlacementSpec { hostSelector?: LabelSelector; spreadBy?: SpreadBy }

export interface PlacementRequest {
  name: string;
  labels: Record<string, string>;
  /** Bytes. */
  memory: number;
  vcpus: number;
  /** Bytes per pool name (the VM's volumes; a volume shared by a group is counted on one member only). */
  disk: Record<string, number>;
  /** spec.host */
  pin?: HostId;
  placement?: PlacementSpec;
  /** VMs sharing a volume share a group id and are placed on one host. */
  group?: string;
  /** Where it is recorded now: sticky. */
  current?: HostId;
}

export type Filter = 'pin' | 'unschedulable' | 'drain' | 'unreachable' | 'selector' | 'memory' | 'vcpus' | 'disk' | 'spread' | 'group';

export interface Rejection { host: HostId; filter: Filter; detail: string }

/** Score parts of a host for a VM (lower `skew` is better, higher `leastAllocated`, lower `vms`). */
export type Score = Record<string, number>;

export interface Placement {
  vm: string;
  host: HostId;
  why: 'pinned' | 'sticky' | 'scheduled' | 'group';
  /** e.g. "fits: 3.1GiB free, 6 vCPUs free; spread by zone for app=web: a 1, b 1, c 0 → c" */
  summary: string;
  /** Each host that did not pass the filters, with the first filter that rejected it. */
  rejected: Rejection[];
  /** The winner's score parts (scheduled placements only). */
  score?: Score;
  /** The hosts that passed the filters but scored lower, best first. */
  others?: { host: HostId; score: Score }[];
  /**
   * Set when the VM had to leave its host (drain, pin change) but stays because no host fits, or
   * the move cannot be made now (its host is unreachable): the plan shows it, nothing moves.
   */
  warning?: string;
}

export interface Move { vm: string; from: HostId; to: HostId; cause: 'pin' | 'drain' | 'rebalance'; reason: string }

export interface Unschedulable { vm: string; reasons: Rejection[]; summary: string }

export interface ScheduleResult {
  placements: Map<string, Placement>;
  moves: Move[];
  unschedulable: Map<string, Unschedulable>;
}

export interface ScheduleOptions {
  /** Propose cold moves that reduce spread skew, overload or allocation imbalance (`--rebalance`). */
  rebalance?: boolean;
  /** At most this many rebalance moves (`--max-moves`, default 1); drains and pin changes are not counted. */
  maxMoves?: number;
}
