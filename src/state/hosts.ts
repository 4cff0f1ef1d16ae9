/**
 * Host identity: which libvirt host the records of a state DB describe. A DB that holds records of
 * one host, used against another, would report every object as drift (missing, or unmanaged) and
 * plan to recreate them; `StateStore.hosts.bind` refuses that with {@link HostMismatchError}.
 */

/** Single implicit host of today's one-host CLI; default of the `host` columns (migration 0002). */
export const DEFAULT_HOST_ID = 'local';

/** Who a libvirt connection talks to; {@link sameHost} says when two are the same host. */
export interface HostIdentity {
  /** Connection URI as given. */
  uri: string;
  hostname: string;
  /** `<host><uuid>` of the capabilities XML; null when the driver reports none (the test driver). */
  uuid: string | null;
  /** Driver part of the URI scheme: `qemu`, `test`, ... */
  driver: string;
}

export interface HostRecord extends HostIdentity {
  id: string;
  firstSeen: string;
  lastSeen: string;
}

/** What {@link StateStore.hosts.bind} found. */
export type HostBinding =
  /** No identity was recorded yet; `recorded` says whether this call recorded it. */
  | { status: 'first-use'; recorded: boolean }
  /** The recorded identity is this host. */
  | { status: 'same'; host: HostRecord }
  /** Another host was recorded, but the DB holds no record of it: the DB now describes this one. */
  | { status: 'rebound'; previous: HostRecord; recorded: boolean };

/**
 * The tables whose rows name a host (`host` column): what {@link StateStore.hosts.rekey} moves. A
 * migration adding a per-host table adds it here (the rekey contract test checks every table with
 * a `host` column is listed).
 */
export const HOST_KEYED_TABLES = ['resources', 'journal', 'events', 'conditions', 'baselines', 'created_paths', 'volume_references', 'definition_checks'] as const;
export type HostKeyedTable = typeof HOST_KEYED_TABLES[number];

/** What {@link StateStore.hosts.rekey} did. */
export type HostRekey =
  /** Nothing recorded for the implicit host: nothing to bind. */
  | { status: 'nothing' }
  /** The recorded identity is another host than this Host's: nothing changed. */
  | { status: 'other-host'; recorded: HostRecord }
  /** The target Host already has records of its own: nothing changed (never merged). */
  | { status: 'target-in-use'; recorded: HostRecord; held: number }
  /** The records of `from` are now the records of `to` (`moved`: rows per table), in one transaction. */
  | { status: 'rekeyed'; previous: HostRecord; moved: Record<HostKeyedTable, number> };

/**
 * Same driver, and the same libvirt host UUID or (when the UUID changed) the same hostname.
 *
 * The hostname fallback is needed: where SMBIOS gives no system UUID (many VMs, this development
 * host among them) libvirtd makes up a temporary host UUID at every start (libvirtd.conf,
 * `host_uuid_source`), so the UUID alone would refuse the very host after each libvirtd restart
 * (measured here: aca42082-... became 9003b537-... across one restart). A host with both a new
 * UUID and a new hostname, or another driver (qemu vs test), is another host.
 */
export function sameHost(a: Pick<HostIdentity, 'uuid' | 'driver' | 'hostname'>, b: Pick<HostIdentity, 'uuid' | 'driver' | 'hostname'>): boolean {
  if (a.driver !== b.driver) return false;
  if ((a.uuid ?? '').toLowerCase() === (b.uuid ?? '').toLowerCase()) return true;
  return a.hostname !== '' && a.hostname === b.hostname;
}

export function describeHost(h: HostIdentity): string {
  return `${h.uri} (driver ${h.driver}, host UUID ${h.uuid ?? 'none'}, hostname ${h.hostname || '?'})`;
}

/** The DB holds records of another host than the one connected to. */
export class HostMismatchError extends Error {
  constructor(
    readonly dbPath: string,
    readonly recorded: HostRecord,
    readonly actual: HostIdentity,
    readonly held: { resources: number; openJournal: number },
  ) {
    super(
      `state DB ${dbPath} holds the records of host ${describeHost(recorded)}, ` +
      `but the connection is to a different host: ${describeHost(actual)}. ` +
      `Refusing to continue: against another host every one of its ${held.resources} resource record(s) would read as drift. ` +
      `Use this DB with ${recorded.uri}, or give --db a separate file for ${actual.uri}.`,
    );
    this.name = 'HostMismatchError';
  }
}
