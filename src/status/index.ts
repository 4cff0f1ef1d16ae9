/** The status report shared by `virtform status` and the watcher's `/status`. */
export { buildStatus, revisionLabel, type StatusRow, type StatusRevision, type StatusInput, type StatusSummary, type HostView, type ResourceStatus } from './build.js';
export { observeForStatus, revisionsFor, type StatusPort } from './observe.js';
export {
  addressLabel, leaseBeforeStart, managedNetworks, networkHasDhcp, observeAddresses, recordedNics, recordedStart,
  type AddressReport, type AddressTarget, type NicAddress, type NicAddresses, type VmAddresses,
} from './addresses.js';
export { waitForAddresses, type WaitFailure, type WaitOptions, type WaitResult } from './wait.js';
export { deriveConditions, withTransitions } from './build.js';
export { persistConditions, trueConditions } from './conditions.js';
export { STALL_CONDITION_REASON, stallText, type Stall, type StallReason } from './stall.js';
export { leaderLine, leaseStatus, shortDuration, type LeaseStatus } from './leader.js';
export {
  observeFleet, observeHostFacts, parseVersionTag, renderHostTable, statusHosts, summarizeHost, unreachableHost,
  type CapacityUse, type FleetView, type HostFacts, type HostSummary, type PoolUse, type StatusHost,
} from './fleet.js';
