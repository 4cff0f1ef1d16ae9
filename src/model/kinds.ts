/**
 * The resource kinds virtform manages and how a resource is named.
 *
 * One definition, imported by `manifest/`, `libvirt/xml/` and `reconcile/` (none mirrors it).
 * A resource is identified by a typed {@link ResourceRef} `{kind, name, host}`; maps key it by
 * {@link refKey}. `host` names the libvirt host the resource lives on: today every resource lives
 * on the one implicit host {@link LOCAL_HOST}, whose keys print as `Kind/name` (as plans always
 * showed them); other hosts' keys print as `host/Kind/name`.
 */

export type ResourceKind = 'StoragePool' | 'Volume' | 'Network' | 'VirtualMachine' | 'Snapshot';

/** Every kind, in build-up order: pools → volumes → networks → VMs → snapshots of VMs (teardown runs the other way). */
export const RESOURCE_KINDS: readonly ResourceKind[] = ['StoragePool', 'Volume', 'Network', 'VirtualMachine', 'Snapshot'];

/**
 * The id of a libvirt host in virtform's keys (`hosts.id` in the state DB). One host is the
 * implicit {@link LOCAL_HOST} of `--uri`; the fleet names others.
 */
export type HostId = string;

/** The implicit host of a single-host setup. */
export const LOCAL_HOST: HostId = 'local';

export interface ResourceRef {
  kind: ResourceKind;
  name: string;
  host: HostId;
}

/**
 * A resource whose host may not be decided yet: a manifest of a placeable kind that names no
 * host. Placement (after observe, in the fleet) turns it into a {@link ResourceRef}; today every
 * such resource is placed on {@link LOCAL_HOST} (`buildDesired`'s default host).
 */
export interface UnplacedRef {
  kind: ResourceKind;
  name: string;
  host?: HostId;
}

/**
 * The host of something that may name none: an unplaced resource, an observation or a row
 * written before hosts were set. Absent is `fallback` (the local host).
 */
export function hostOf(x: { host?: HostId | null }, fallback: HostId = LOCAL_HOST): HostId {
  return x.host ?? fallback;
}

export function isResourceKind(value: unknown): value is ResourceKind {
  return typeof value === 'string' && (RESOURCE_KINDS as readonly string[]).includes(value);
}

/** Map key and display form of a resource: `Kind/name` on the local host, else `host/Kind/name`. */
export function resourceKey(kind: ResourceKind | string, name: string, host: string = LOCAL_HOST): string {
  return host === LOCAL_HOST ? `${kind}/${name}` : `${host}/${kind}/${name}`;
}

export function refKey(ref: ResourceRef): string {
  return resourceKey(ref.kind, ref.name, ref.host);
}

/** Order of hosts in plans and status: the local host first, then the others by id. */
export function compareHosts(a: HostId, b: HostId): number {
  return a === b ? 0 : a === LOCAL_HOST ? -1 : b === LOCAL_HOST ? 1 : a.localeCompare(b);
}

/** The same resource key on another host (dependencies never cross hosts: a key names a resource of its own host). */
export function onHost(key: string, host: HostId): string {
  const { kind, name } = parseResourceKey(key);
  return resourceKey(kind, name, host);
}

/** The host a resource key names (`Kind/name` is the local host). */
export function hostOfKey(key: string): HostId {
  return parseResourceKey(key).host;
}

/** Inverse of {@link resourceKey}. Names never contain `/` (manifest names are `[a-z0-9-]`). */
export function parseResourceKey(key: string): ResourceRef {
  const parts = key.split('/');
  const [host, kind, name] = parts.length >= 3 ? [parts[0]!, parts[1]!, parts.slice(2).join('/')] : [LOCAL_HOST, parts[0]!, parts[1] ?? ''];
  if (!isResourceKind(kind)) throw new Error(`internal error: not a resource key: ${key}`);
  return { kind, name, host };
}

/** A {@link ResourceRef}; the host defaults to {@link LOCAL_HOST}. */
export function resourceRef(kind: ResourceKind, name: string, host: string = LOCAL_HOST): ResourceRef {
  return { kind, name, host };
}
