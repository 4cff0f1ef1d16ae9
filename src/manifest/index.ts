/**
 * virtform manifest layer: load a folder of YAML manifests, validate all of it (JSON Schemas in
 * `schemas/` plus cross-manifest rules) and return the desired state or every error at once.
 */
export type {
  ResourceKind,
  SourceLocation,
  ManifestMetadata,
  VolumeMetadata,
  Manifest,
  StoragePoolManifest,
  VolumeManifest,
  NetworkManifest,
  VirtualMachineManifest,
  SnapshotManifest,
  AnyManifest,
  DesiredState,
  ImportRules,
  HostManifest,
  HostDefinition,
  ManifestKind,
} from './model.js';
export { API_VERSION, RESOURCE_KINDS, MANIFEST_KINDS } from './model.js';
export type {
  StoragePoolSpec,
  VolumeSpec,
  NetworkSpec,
  VirtualMachineSpec,
  SnapshotSpec,
  Dhcp,
  DhcpHost,
  VmDisk,
  VmNic,
  Labels,
  Size,
  ManifestSpecs,
  HostSpec,
  VmPlacement,
  LabelSelector as ManifestLabelSelector,
} from './types.generated.js';
export type { ManifestError } from './errors.js';
export { formatManifestError } from './errors.js';
export type { LoadResult, LoadOptions } from './loader.js';
export { loadManifests, digestManifests, digestState, manifestsByKind, NAME_RE } from './loader.js';
export { ManifestCache, type CacheLoadStats } from './cache.js';
export { checkFleet, libvirtUriProblem, vmVolumes, vmNetworks, vmOwnPools, backingChain, scopeOf, volumeGroups, stateOnHost, vmPlacementFacts, type HostEntry, type VmPlacementFacts } from './hosts.js';
export { diskBus } from './semantics.js';
export { parseSize, formatSize, roundUpToKiB, ManifestSizeError } from './size.js';
export { SCHEMA_DIR } from './schema.js';
export { loadPolicy, checkPolicy, POLICY_FIELDS, DEFAULT_POLICY_PATH, type Policy, type PolicyField, type PolicyCategory, type CachedImageSize } from './policy.js';
export { MAX_FILE_BYTES, MAX_DEPTH, MAX_ALIAS_COUNT, MAX_EXPANDED_NODES } from './yaml-source.js';
