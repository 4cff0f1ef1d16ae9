/**
 * Desired state: manifests normalized into exactly what the host should look like.
 *
 * Sizes become bytes, references become paths, defaults are filled in, each by its kind's module
 * (`kinds/`). Each resource carries `config` (the part that is its object's definition, hashed
 * into `specHash`) apart from runtime fields (running/stopped, autostart) compared live.
 */
import { manifestsByKind, type DesiredState } from '../manifest/index.js';
import { LOCAL_HOST, RESOURCE_KINDS, resourceKey, type HostId } from '../model/kinds.js';
import { hashConfig } from './core/resource.js';
import { KINDS, kindOf, type Desired, type DesiredResource } from './kinds/index.js';
import type { BuildContext } from './core/kind.js';

export { canonicalJson, hashConfig } from './core/resource.js';
export { resourceKey };
export type {
  Desired, DesiredResource, DesiredPool, DesiredVolume, DesiredNetwork, DesiredVm, PoolConfig, VolumeConfig, NetworkConfig, VmConfig,
} from './kinds/index.js';

/** Kinds in build-up order (pools → volumes → networks → VMs). */
export const KIND_ORDER = RESOURCE_KINDS;

/**
 * Cross-kind lookups for the kind modules, each answered by the kind that knows (`lookups`).
 * Assumes references were validated.
 */
export function buildContext(state: DesiredState, host: string, domainType?: 'kvm' | 'qemu'): BuildContext {
  const missing = (what: string) => (name: string): never => {
    throw new Error(`internal error: no kind answers the ${what} of ${name}`);
  };
  const ctx: BuildContext = {
    host, ...(domainType ? { domainType } : {}),
    poolPath: missing('pool path'), volumePath: missing('volume path'), volumeFormat: missing('volume format'),
  };
  for (const k of RESOURCE_KINDS) Object.assign(ctx, KINDS[k].lookups?.(state, ctx));
  return ctx;
}

/**
 * Normalize validated manifests into desired resources. Assumes references were validated.
 * `host`: where resources that name no host are placed. No manifest names a host yet, so today
 * everything lands on it (the implicit local host); with fleets, placement (after observe) decides
 * for the placeable kinds, and the per-host results are joined by {@link mergeDesired}.
 */
export function buildDesired(state: DesiredState, host: HostId = LOCAL_HOST): Desired {
  const ctx = buildContext(state, host);
  const resources: DesiredResource[] = RESOURCE_KINDS.flatMap((k) => KINDS[k].build(state, ctx) as DesiredResource[]);
  return desiredOf(state, resources);
}

/** The desired state of `resources`, built from `state`. */
function desiredOf(state: DesiredState, resources: DesiredResource[]): Desired {
  return {
    resources,
    byKey: new Map(resources.map((r) => [r.key, r])),
    // Read when first asked (a run's record, not a dry-run): the load computes it lazily too.
    get digest() {
      return state.digest;
    },
    gitCommit: state.gitCommit,
    gitDirty: state.gitDirty,
    empty: resources.length === 0,
  };
}

/** The previous build {@link rebuildDesired} starts from: the state it was built from, the result, the host. */
export interface DesiredBuild {
  state: DesiredState;
  desired: Desired;
  host: HostId;
}

/**
 * `buildDesired(state, host)` after a load that changed few manifests (the watch's incremental
 * step), built again only where it can differ from `prev`: the same result as `buildDesired`
 * (test/unit/reconcile/rebuild-desired.test.ts compares them), the unchanged resources the same
 * objects as in `prev.desired`. A manifest is unchanged when it is the same object as in
 * `prev.state` (the watch's ManifestCache hands over the previous object for a manifest equal to
 * it). What a kind's `build` may depend on (core/kind.ts): the manifest and the context's lookups;
 * the lookups come from the kinds that answer them, so when a manifest of such a kind changed (or
 * the host, or there are Host manifests) everything is built again. Otherwise a kind whose
 * manifests are all the same objects in the same order keeps its resources, and a kind with some
 * changed builds only those (one resource per manifest, by key).
 */
export function rebuildDesired(state: DesiredState, prev: DesiredBuild | undefined, host: HostId = LOCAL_HOST): Desired {
  if (!prev || prev.host !== host || state.hosts.length > 0 || prev.state.hosts.length > 0) return buildDesired(state, host);
  const byKind = (s: DesiredState): Map<string, DesiredState['manifests']> => {
    const m = new Map<string, DesiredState['manifests']>(RESOURCE_KINDS.map((k) => [k, []]));
    for (const x of s.manifests) m.get(x.kind)?.push(x);
    return m;
  };
  const now = byKind(state);
  const before = byKind(prev.state);
  const same = (a: readonly unknown[], b: readonly unknown[]): boolean => a.length === b.length && a.every((x, i) => x === b[i]);
  if (RESOURCE_KINDS.some((k) => KINDS[k].lookups !== undefined && !same(now.get(k)!, before.get(k)!))) return buildDesired(state, host);
  const built = new Map<string, DesiredResource[]>(RESOURCE_KINDS.map((k) => [k, []]));
  for (const r of prev.desired.resources) built.get(r.kind)?.push(r);
  let ctx: BuildContext | undefined;
  const resources: DesiredResource[] = [];
  for (const k of RESOURCE_KINDS) {
    const ms = now.get(k)!;
    const was = before.get(k)!;
    const kept = built.get(k)!;
    if (kept.length !== was.length) return buildDesired(state, host); // not one resource per manifest: no reuse
    if (same(ms, was)) {
      resources.push(...kept);
      continue;
    }
    const keep = new Map<object, DesiredResource>(was.map((m, i) => [m, kept[i]!]));
    const changed = ms.filter((m) => !keep.has(m));
    ctx ??= buildContext(state, host);
    const sub = { ...stateShell(state), manifests: changed, ...manifestsByKind(changed) } as DesiredState;
    const fresh = new Map((KINDS[k].build(sub, ctx) as DesiredResource[]).map((r) => [r.key, r]));
    for (const m of ms) {
      const r = keep.get(m) ?? fresh.get(resourceKey(k, m.metadata.name, host));
      if (!r) return buildDesired(state, host);
      resources.push(r);
    }
  }
  return desiredOf(state, resources);
}

/** The state's fields but the manifests and the digest (a getter over every manifest: not evaluated). */
function stateShell(state: DesiredState): Pick<DesiredState, 'dir' | 'files' | 'hosts' | 'gitCommit' | 'gitDirty'> {
  return { dir: state.dir, files: state.files, hosts: state.hosts, gitCommit: state.gitCommit, gitDirty: state.gitDirty };
}

/**
 * One desired state from the desired states of several hosts (each built with its host): what a
 * run over several hosts plans. Keys name the host, so the same name on two hosts stays two
 * resources; the same key twice is an internal error.
 */
export function mergeDesired(parts: readonly Desired[]): Desired {
  const resources = parts.flatMap((p) => p.resources);
  const byKey = new Map<string, DesiredResource>();
  for (const r of resources) {
    if (byKey.has(r.key)) throw new Error(`internal error: ${r.key} is declared twice`);
    byKey.set(r.key, r);
  }
  const digests = parts.map((p) => p.digest);
  return {
    resources, byKey,
    digest: digests.length === 1 ? digests[0]! : hashConfig(digests),
    gitCommit: parts[0]?.gitCommit, gitDirty: parts.some((p) => p.gitDirty === true),
    empty: resources.length === 0,
  };
}

/**
 * Keys of the resources a resource depends on (for ordering and for skipping dependents). Kept per
 * resource object (desired resources are never changed after building; the watch's incremental
 * step hands the unchanged ones over from run to run, so their dependencies are not computed again).
 */
export function dependenciesOf(r: DesiredResource): readonly string[] {
  let deps = dependencyMemo.get(r);
  if (!deps) dependencyMemo.set(r, (deps = Object.freeze(kindOf(r.kind).dependencies(r))));
  return deps;
}

const dependencyMemo = new WeakMap<DesiredResource, readonly string[]>();
