/**
 * The fleet's parts owned by other modules: the scheduler (src/placement/) and the fleet's desired
 * state (src/reconcile/fleet-desired.ts: buildFleetDesired, placementRequests).
 */
import { schedule } from '../placement/index.js';
import type { DesiredState } from '../manifest/index.js';
import { buildFleetDesired, placementRequests } from '../reconcile/fleet-desired.js';
import type { HostDefinition } from './contract.js';
import type { FleetParts } from './run.js';

export function fleetParts(): FleetParts {
  return { schedule, requests: placementRequests, desired: buildFleetDesired };
}

/** The Host manifests of a loaded state ([]: one implicit host, `--uri`). */
export function fleetHosts(state: DesiredState | undefined): HostDefinition[] {
  return state?.hosts ?? [];
}
