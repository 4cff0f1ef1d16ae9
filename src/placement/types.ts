/**
 * The scheduler's contract (issue 21, "Scheduler" in the fleet's shared contracts): what the fleet
 * hands `schedule()` and what it gets back. Pure data, JSON-friendly apart from the result's Maps
 * (see `resultJson` in explain.ts).
 */
import type { HostId, LabelSelector, PlacementRequest, PlacementSpec } from '../model/hosts.js';

/**
 * A VM's `spec.placement`, its label selector and what the scheduler needs of a VM are the Host
 * model's (src/model/hosts.ts: `placementRequests` builds them from the manifests).
 */
export type { HostId, LabelSelector, PlacementRequest, PlacementSpec };

/** `spec.placement.spreadBy`. */
export type SpreadBy = NonNullable<PlacementSpec['spreadBy']>;

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
  /** How many hosts passed the filters (the winner included). */
  fitting?: number;
  /** The best few (at most 5) of the hosts that passed the filters but ranked lower, best first. */
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
