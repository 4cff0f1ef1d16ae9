/**
 * `virtform export` (issue 24): what a kind's exporter reads (the host's objects as libvirt
 * describes them, never the state DB) and what it returns (one manifest per object, or why the
 * object cannot be one), shared by the kinds (`kinds/<kind>/export.ts`) and the stage
 * (`reconcile/export.ts`).
 */
import type { ResourceKind } from '../../model/kinds.js';
import type { NetworkDetail, PoolDetail, VolumeDetail } from '../../model/definitions.js';
import { HostError } from '../ports.js';

/** The host as export reads it: every pool, volume, network and domain, with its definition. */
export interface ExportHost {
  pools: (PoolDetail & { type: string })[];
  volumes: VolumeDetail[];
  networks: (NetworkDetail & { xml: string })[];
  domains: { name: string; uuid: string; active: boolean; autostart: boolean; persistent: boolean; xml: string }[];
}

/** One object of the host, exported. */
export interface ExportedObject {
  kind: ResourceKind;
  /** The resource name (the manifest's metadata.name). */
  name: string;
  /** What it is on the host (`domain web-1`, `volume lab-pool/web-1-root.qcow2`). */
  object: string;
  /** libvirt's name of the object (a volume: its file name), what a user names on the command line. */
  libvirtName: string;
  /** It carries virtform's owner marker (or, for pools and volumes, which carry none: it is unknown). */
  managed: boolean | 'unknown';
  /** The manifest (apiVersion, kind, metadata, spec); absent when the object cannot be one. */
  doc?: Record<string, unknown>;
  /** YAML comment lines written above the manifest (without `# `). */
  comments: string[];
  /** What the manifest does not carry over (printed, in `--json`, and as comments in the file). */
  warnings: string[];
  /** The file `--out DIR` writes it to (`vm-NAME.yaml`, `volume-NAME.yaml`, `network-NAME.yaml`, `pool-NAME.yaml`). */
  file: string;
  /** The spec hash in the object's owner marker (virtform's own objects): the manifest it was defined from hashes to it. */
  markerHash?: string;
  /**
   * Other manifests the definition is equally true to (a VM's `spec.domainType` declared or left
   * to the host): for an object with a marker, the one whose spec hash is the marker's is written.
   */
  alternatives?: Record<string, unknown>[];
  /** Other host objects its manifest covers (`volume POOL/FILE` of a VM's cloud-init seed): not exported on their own. */
  claims?: string[];
  /** The resources it needs (a VM: its volumes and networks; a volume: its pool and backing volume). */
  needs: { kind: ResourceKind; name: string }[];
}

export const API_VERSION = 'virtform.dev/v1';

/** A resource name (`common.schema.json` ResourceName). */
export const RESOURCE_NAME = /^[a-z0-9][a-z0-9-]{0,62}$/;

/**
 * The resource name of a libvirt name: kept when it is one, else lower-cased with every other
 * character turned into `-` (undefined when nothing is left).
 */
export function resourceNameOf(libvirtName: string): string | undefined {
  if (RESOURCE_NAME.test(libvirtName)) return libvirtName;
  const n = libvirtName.toLowerCase().replace(/[^a-z0-9-]+/g, '-').replace(/^-+/, '').replace(/-+$/, '').slice(0, 63).replace(/-+$/, '');
  return RESOURCE_NAME.test(n) ? n : undefined;
}

/** An object gone since the host was listed (another tool removed it meanwhile): left out of the export. */
export async function unlessGone<T>(read: () => Promise<T>): Promise<T | null> {
  try {
    return await read();
  } catch (e) {
    if (e instanceof HostError && e.code === 'not-found') return null;
    throw e;
  }
}
