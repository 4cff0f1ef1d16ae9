/**
 * The shared contracts of issue 21 the fleet codes against, in one place: Host definitions
 * (`src/model/hosts.ts`) and the scheduler's types (`src/placement/`).
 */
export type { HostDefinition, LabelSelector } from '../model/hosts.js';
export type {
  Filter, Move, Placement, PlacementHost, PlacementRequest, PlacementSpec, Rejection, ScheduleResult, Unschedulable,
} from '../placement/index.js';
