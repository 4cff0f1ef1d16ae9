/**
 * What `status` asks the host: one snapshot (the bulk list calls) plus one volume listing and one
 * definition read per active pool that holds a recorded or declared volume (a running VM's disk
 * file missing from it was deleted under the VM), and the addresses of the running managed
 * VMs (src/status/addresses.ts: one lease read per virtform DHCP network they use, at most three
 * interface queries per running VM on other networks). Read-only.
 */
import type { DesiredResource } from '../reconcile/desired.js';
import { isGuestKind, kindOf } from '../reconcile/kinds/index.js';
import { hostOf, isResourceKind, LOCAL_HOST, type HostId } from '../model/kinds.js';
import { HostError, type HostPort } from '../reconcile/ports.js';
import type { ResourceRecord, RevisionRecord } from '../state/index.js';
import type { HostView } from './build.js';
import { managedNetworks, observeAddresses, recordedNics, recordedStart } from './addresses.js';

/** What `status` asks of a host. */
export type StatusPort = Pick<HostPort, 'snapshot' | 'listVolumes' | 'networkLeases' | 'domainInterfaceAddresses' | 'definitions'> & Partial<Pick<HostPort, 'getRunningDomain'>>;

/** What one host shows, for the records and declared resources of that host (`hostId`; the local host by default). */
export async function observeForStatus(
  host: StatusPort, allRecords: ResourceRecord[], allDeclared?: readonly DesiredResource[], hostId: HostId = LOCAL_HOST,
): Promise<HostView> {
  const records = allRecords.filter((r) => hostOf(r as { host?: HostId }) === hostId);
  const declared = allDeclared?.filter((d) => d.host === hostId);
  const snapshot = await host.snapshot();
  const pools = new Set<string>();
  for (const r of records) if (isResourceKind(r.kind)) for (const p of kindOf(r.kind).statusPools?.(r.details.config) ?? []) pools.add(p);
  for (const d of declared ?? []) for (const p of kindOf(d.kind).statusPools?.(d.config) ?? []) pools.add(p);
  const volumeKeys = new Set<string>();
  const volumeNames = new Set<string>();
  const listed = [];
  for (const p of pools) {
    const o = snapshot.pools.find((x) => x.name === p);
    if (!o?.active) continue;
    listed.push(o);
    for (const v of await host.listVolumes(p)) {
      volumeKeys.add(v.key);
      volumeNames.add(`${p}/${v.name}`);
    }
  }
  // Where those pools are (one definition read each): a file of such a folder missing from the
  // listing is gone (a running VM's disk deleted under it).
  const listedPoolPaths = new Set([...(listed.length > 0 ? (await host.definitions.pools(listed)).values() : [])].map((d) => d.path));
  const vms = records.filter((r) => isGuestKind(r.kind)).map((r) => ({ name: r.name, nics: recordedNics(r), startedAt: recordedStart(r) }));
  const addresses = await observeAddresses(host, snapshot, vms, managedNetworks(records, declared));
  // The port libvirt gave the VNC/SPICE server of each running VM that has graphics (one live
  // definition read per such VM).
  const graphics = new Map<string, { type: string; listen?: string; port?: number }[]>();
  if (host.getRunningDomain) {
    const withGraphics = new Set<string>();
    for (const r of records) if (isResourceKind(r.kind) && kindOf(r.kind).guest?.hasGraphics(r.details.config)) withGraphics.add(r.name);
    for (const d of declared ?? []) if (kindOf(d.kind).guest?.hasGraphics(d.config)) withGraphics.add(d.name);
    for (const name of withGraphics) {
      if (!snapshot.domains.find((x) => x.name === name)?.active) continue;
      // A domain gone since the listing has no graphics; any other failure (the connection) fails the status.
      const live = await host.getRunningDomain(name).catch((e: unknown) => {
        if (e instanceof HostError && e.code === 'not-found') return null;
        throw e;
      });
      if (live && live.graphics.length > 0) graphics.set(name, live.graphics);
    }
  }
  return { snapshot, volumeKeys, volumeNames, listedPoolPaths, addresses, graphics };
}

/** The revisions the records point at, by id. */
export async function revisionsFor(
  store: { revisions: { get(id: number): Promise<RevisionRecord | undefined> } }, records: ResourceRecord[],
): Promise<Map<number, RevisionRecord>> {
  const out = new Map<number, RevisionRecord>();
  for (const id of new Set(records.map((r) => r.lastAppliedRevision).filter((x): x is number => x !== null))) {
    const rev = await store.revisions.get(id);
    if (rev) out.set(id, rev);
  }
  return out;
}
