/** Public manifest types. Spec types are generated from the JSON Schemas (types.generated.ts). */
import type {
  HostMetadata,
  HostSpec,
  ManifestMetadata,
  NetworkSpec,
  SnapshotSpec,
  StoragePoolSpec,
  VirtualMachineSpec,
  VolumeMetadata,
  VolumeSpec,
} from './types.generated.js';

import type { LocalImageInfo } from './image.js';
export type { LocalImageInfo };
export type { ResourceKind } from '../model/kinds.js';
import type { ResourceKind } from '../model/kinds.js';
import type { HostDefinition } from '../model/hosts.js';
export type { HostDefinition };

export { RESOURCE_KINDS } from '../model/kinds.js';

export const API_VERSION = 'virtform.dev/v1';

/** Where a manifest document starts: file as given/joined (dir + relative path), 1-based line/col. */
export interface SourceLocation {
  file: string;
  line: number;
  col: number;
}

export type { ManifestMetadata, VolumeMetadata };

export interface Manifest<K extends ResourceKind, S, M extends ManifestMetadata = ManifestMetadata> {
  apiVersion: 'virtform.dev/v1';
  kind: K;
  metadata: M;
  spec: S;
  source: SourceLocation;
}

export type StoragePoolManifest = Manifest<'StoragePool', StoragePoolSpec>;
export type VolumeManifest = Manifest<'Volume', VolumeSpec, VolumeMetadata> & {
  /** A local `spec.source` file as the loader found it (content digest and header); not written in YAML. */
  image?: LocalImageInfo;
  /** What the policy allows an imported image (set by the loader when a policy is given); not written in YAML. */
  importRules?: ImportRules;
};

/** The policy as it applies to one imported image, checked where the bytes come from (download, upload). */
export interface ImportRules {
  /** `urlHosts`: every redirect target's host must be one of them. */
  urlHosts?: string[];
  /** The policy file, for messages. */
  policyFile?: string;
  /** Largest virtual size the limits leave for an image declared without capacity, and which limit says so. */
  maxVirtualSize?: { bytes: number; why: string };
}
export type NetworkManifest = Manifest<'Network', NetworkSpec>;
export type VirtualMachineManifest = Manifest<'VirtualMachine', VirtualMachineSpec>;
export type SnapshotManifest = Manifest<'Snapshot', SnapshotSpec>;
export type AnyManifest = StoragePoolManifest | VolumeManifest | NetworkManifest | VirtualMachineManifest | SnapshotManifest;

/**
 * A `kind: Host` manifest (a host of the fleet). Not a resource kind: no libvirt object; it is kept
 * out of `manifests` and normalized into {@link DesiredState.hosts}.
 */
export interface HostManifest {
  apiVersion: 'virtform.dev/v1';
  kind: 'Host';
  metadata: HostMetadata;
  spec: HostSpec;
  source: SourceLocation;
}

/** The kinds a manifest may declare: the resource kinds and Host. */
export const MANIFEST_KINDS: readonly (ResourceKind | 'Host')[] = ['StoragePool', 'Volume', 'Network', 'VirtualMachine', 'Snapshot', 'Host'];
export type ManifestKind = ResourceKind | 'Host';

export interface DesiredState {
  /** The directory (or single file) that was loaded, as given. */
  dir: string;
  /** Files read, sorted. */
  files: string[];
  /** All manifests, in file order (files sorted, then document order). */
  manifests: AnyManifest[];
  pools: StoragePoolManifest[];
  volumes: VolumeManifest[];
  networks: NetworkManifest[];
  vms: VirtualMachineManifest[];
  /** Snapshots of VMs (kind Snapshot). */
  snapshots: SnapshotManifest[];
  /**
   * The Host manifests, normalized, sorted by id. Empty: one implicit host (`--uri`), exactly the
   * behaviour before fleets. A Host changes the digest only when there is one.
   */
  hosts: HostDefinition[];
  /** sha256 hex over the normalized manifests (stable under file order, whitespace and comments). */
  digest: string;
  /** HEAD commit when `dir` is inside a git work tree, else undefined. */
  gitCommit?: string;
  /** Whether files under `dir` differ from HEAD (tracked changes or untracked files); undefined outside git. */
  gitDirty?: boolean;
}
