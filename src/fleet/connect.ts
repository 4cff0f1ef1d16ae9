/**
 * Connect every Host of the manifests at once. One host's failure (refused transport, connection,
 * node info) is kept for that host and never stops the others: the run goes on without it.
 */
import type { HostId } from '../model/kinds.js';
import type { HostIdentity, HostPort, NodeInfo } from '../reconcile/ports.js';
import type { HostDefinition } from './contract.js';
import { transportRefusal } from './transport.js';

export interface ConnectedHost {
  def: HostDefinition;
  port: HostPort;
  identity: HostIdentity;
  node: NodeInfo;
}

export interface FleetConnections {
  /** Reachable hosts by id (in the manifests' order). */
  connected: Map<HostId, ConnectedHost>;
  /** Hosts that could not be reached this run, with why. */
  unreachable: Map<HostId, string>;
}

export type OpenHost = (uri: string, opts: { domainType?: HostDefinition['domainType'] }) => Promise<HostPort>;

/**
 * A Host whose plain-tcp URI is refused (no `--insecure`, no `spec.insecure`) is invalid input, not
 * an unreachable host: the caller refuses the run (exit 2) before connecting anything.
 */
export function refusedTransports(hosts: readonly HostDefinition[], insecure: boolean): { host: HostId; message: string }[] {
  return hosts.flatMap((h) => {
    const why = transportRefusal(h.uri, { insecure: insecure || h.insecure });
    return why ? [{ host: h.id, message: `Host ${h.id}: ${why}` }] : [];
  });
}

export async function connectFleet(
  hosts: readonly HostDefinition[], open: OpenHost, opts: { domainType?: HostDefinition['domainType'] } = {},
): Promise<FleetConnections> {
  const results = await Promise.all(hosts.map(async (def) => {
    let port: HostPort | undefined;
    try {
      // A Host's spec.domainType comes before --domain-type (the VM's own field before both).
      port = await open(def.uri, { domainType: def.domainType ?? opts.domainType });
      const [identity, node] = await Promise.all([port.hostIdentity(), port.nodeInfo()]);
      return { def, ok: { def, port, identity, node } as ConnectedHost };
    } catch (e) {
      // safe-catch: a host half-connected is closed; its failure is what is reported
      await port?.close().catch(() => undefined);
      return { def, error: e instanceof Error ? e.message : String(e) };
    }
  }));
  const connected = new Map<HostId, ConnectedHost>();
  const unreachable = new Map<HostId, string>();
  for (const r of results) {
    if (r.ok) connected.set(r.def.id, r.ok);
    else unreachable.set(r.def.id, r.error ?? 'unreachable');
  }
  return { connected, unreachable };
}

export async function closeFleet(c: FleetConnections): Promise<void> {
  // safe-catch: closing is best effort; a host already gone has nothing to close
  await Promise.all([...c.connected.values()].map((h) => h.port.close().catch(() => undefined)));
}
