/**
 * Stand-ins for the shared contracts of issue 21 (COMMON.md) until their owners' branches land:
 * Host definitions (`src/model/hosts.ts`, hostkind) and the scheduler (`src/placement/`, sched).
 * Only the names of the contracts; replaced by re-exports of the real modules when merged.
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

export interface PlacementHost {
  id: HostId; labels: Record<string, string>; schedulable: boolean; drain: boolean;
  reachable: boolean; capacity: { memory: number; vcpus: number; disk: Record<string, number> };
  reserved: { memory: number; vcpus: number }; overcommit: { cpu: number; memory: number };
}
export interface PlacementSpec {
  hostSelector?: LabelSelector;
  spreadBy?: { hostLabel: string; vmLabel?: string; maxSkew?: number; whenUnsatisfiable?: 'DoNotSchedule' | 'ScheduleAnyway' };
}
export interface PlacementRequest {
  name: string; labels: Record<string, string>; memory: number; vcpus: number;
  disk: Record<string, number>; pin?: HostId; placement?: PlacementSpec; group?: string;
  current?: HostId;
}
export type Filter = 'pin' | 'unschedulable' | 'drain' | 'unreachable' | 'selector' | 'memory' | 'vcpus' | 'disk' | 'spread' | 'group';
export interface Rejection { host: HostId; filter: Filter; detail: string }
export interface Placement {
  vm: string; host: HostId; why: 'pinned' | 'sticky' | 'scheduled' | 'group';
  summary: string; rejected: Rejection[]; score?: Record<string, number>;
}
export interface Move { vm: string; from: HostId; to: HostId; cause: 'pin' | 'drain' | 'rebalance'; reason: string }
export interface Unschedulable { vm: string; reasons: Rejection[]; summary: string }
export interface ScheduleResult { placements: Map<string, Placement>; moves: Move[]; unschedulable: Map<string, Unschedulable> }
