/**
 * The desired state of a fleet (Host manifests): every resource on its host.
 *
 * - A StoragePool or Network exists on each host its `spec.hosts`/`spec.hostSelector` selects
 *   (default: every host).
 * - A VirtualMachine is on the host placement decided (`placeOf`); one placement left undecided
 *   (unschedulable) leaves it out, and the rest proceed.
 * - A Volume lives with the VMs using it, or on its `spec.host`; a backing volume is on every host
 *   where a clone of it is (a URL image: downloaded once into the image cache, uploaded to each).
 *
 * Which manifests belong on a host is the manifest layer's (`stateOnHost`); each host's part is
 * built by the kinds like a single host's, with the lookups of the whole state (paths do not
 * depend on the host) and the Host's `spec.domainType`. With no Host manifest this is
 * {@link buildDesired} on the implicit host.
 */
import { stateOnHost, vmPlacementFacts, volumeGroups, type DesiredState } from '../manifest/index.js';
import type { HostId, PlacementRequest } from '../model/hosts.js';
import { RESOURCE_KINDS } from '../model/kinds.js';
import { buildContext, buildDesired, mergeDesired } from './desired.js';
import { KINDS, kindOf, type Desired, type DesiredResource } from './kinds/index.js';

export type { PlacementRequest };

/** Every resource of a fleet on its host; VMs where `placeOf` says, left out when it says none. */
export function buildFleetDesired(state: DesiredState, placeOf: (vm: string) => HostId | undefined): Desired {
  const hosts = state.hosts ?? [];
  if (hosts.length === 0) return buildDesired(state);
  // VMs sharing a volume must be on one host: two copies of a disk would silently diverge.
  const groupHost = new Map<string, { vm: string; host: HostId }>();
  for (const [vm, group] of volumeGroups(state.vms)) {
    const h = placeOf(vm);
    if (h === undefined) continue;
    const first = groupHost.get(group);
    if (first && first.host !== h) {
      throw new Error(`internal error: VirtualMachines ${first.vm} and ${vm} share a volume but are placed on ${first.host} and ${h}`);
    }
    if (!first) groupHost.set(group, { vm, host: h });
  }
  const parts: Desired[] = hosts.map((h) => {
    const part = stateOnHost(state, h.id, placeOf);
    const domainType = h.domainType === 'kvm' || h.domainType === 'qemu' ? h.domainType : undefined;
    const ctx = buildContext(state, h.id, domainType);
    const resources = RESOURCE_KINDS.flatMap((k) => KINDS[k].build(part, ctx) as DesiredResource[]);
    return { resources, byKey: new Map(resources.map((r) => [r.key, r])), digest: state.digest, empty: resources.length === 0 };
  });
  // One manifest set: the digest and revision are the state's, whatever the number of hosts.
  return { ...mergeDesired(parts), digest: state.digest, gitCommit: state.gitCommit, gitDirty: state.gitDirty };
}

/**
 * What the scheduler needs of each VM, in manifest order: memory in bytes and vCPUs (the kind's
 * `demands`), disk bytes per pool (the `footprint`s of the volumes it uses), labels, pin, placement
 * spec and group (VMs sharing a volume). `current` is left to the caller, which read the records.
 */
export function placementRequests(state: DesiredState): PlacementRequest[] {
  const desired = buildDesired(state);
  const facts = new Map(vmPlacementFacts(state).map((f) => [f.name, f]));
  const out: PlacementRequest[] = [];
  for (const r of desired.resources) {
    const demands = kindOf(r.kind).demands?.(r);
    const f = facts.get(r.name);
    if (!demands || !f) continue;
    const disk: Record<string, number> = {};
    for (const key of demands.uses) {
      const used = desired.byKey.get(key);
      const fp = used ? kindOf(used.kind).footprint?.(used) : undefined;
      if (fp) disk[fp.pool] = (disk[fp.pool] ?? 0) + fp.bytes;
    }
    out.push({ ...f, memory: demands.memory, vcpus: demands.vcpus, disk });
  }
  return out;
}
