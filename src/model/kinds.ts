/**
 * The resource kinds virtform manages and how a resource is named.
 *
 * One definition, imported by `manifest/`, `libvirt/xml/` and `reconcile/` (none mirrors it).
 * A resource is identified by a typed {@link ResourceRef} `{kind, name, host}`; maps key it by
 * {@link refKey}. `host` names the libvirt host the resource lives on: today every resource lives
 * on the one implicit host {@link LOCAL_HOST}, whose keys print as `Kind/name` (as plans always
 * showed them); other hosts' keys print as `host/Kind/name`.
 */

export type ResourceKind = 'StoragePool' | 'Volume' | 'Network' | 'VirtualMachine';

/** Every kind, in build-up order: pools → volumes → networks → VMs (teardown runs the other way). */
export const RESOURCE_KINDS: readonly ResourceKind[] = ['StoragePool', 'Volume', 'Network', 'VirtualMachine'];

/** The implicit host of a single-host setup. */
export const LOCAL_HOST = 'local';

export interface ResourceRef {
  kind: ResourceKind;
  name: string;
  host: string;
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
