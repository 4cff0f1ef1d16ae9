/**
 * Stand-ins for the shared contracts of issue 21 (COMMON.md) until their owners' branches land:
 * Host definitions (`src/model/hosts.ts`, hostkind); the scheduler's types are re-exported from
 * `src/placement/`. Replaced by re-exports of the real modules when merged.
 */
import type { HostId } from '../model/kinds.js';

export interface HostDefinition {
  id: HostId;
  uri: string;
  labels: Record<string, string>;
  schedulable: boolean;
  drain: boolean;
  capacity?: { memory?: number; vcpus?: number; disk?: Record<string, number> };
  reserved: { memory: number; vcpus: number };
  overcommit: { cpu: number; memory: number };
  insecure: boolean;
  domainType?: 'auto' | 'kvm' | 'qemu';
  source?: { file: string; line: number; col: number };
}
export interface LabelSelector { matchLabels?: Record<string, string> }

export type {
  Filter, Move, Placement, PlacementHost, PlacementRequest, PlacementSpec, Rejection, ScheduleResult, Unschedulable,
} from '../placement/index.js';
