/**
 * The fleet's parts owned by other modules: the scheduler (src/placement/) and the fleet's desired
 * state (Host definitions; buildFleetDesired and placementRequests, hostkind's). Until hostkind's
 * branch is merged, no manifest declares a Host, so the fleet path is never taken.
 */
import { schedule } from '../placement/index.js';
import type { DesiredState } from '../manifest/index.js';
import type { HostDefinition } from './contract.js';
import type { FleetParts } from './run.js';

const pending = (what: string) => (): never => {
  throw new Error(`internal error: ${what} is not available in this build`);
};

export function fleetParts(): FleetParts {
  return { schedule, requests: pending('placementRequests'), desired: pending('buildFleetDesired') };
}

/** The Host manifests of a loaded state ([]: one implicit host, `--uri`). */
export function fleetHosts(state: DesiredState | undefined): HostDefinition[] {
  return (state as { hosts?: HostDefinition[] } | undefined)?.hosts ?? [];
}
