/**
 * The data-loss hold: no data is destroyed without consent.
 *
 * A pass after diff. A step that destroys a volume's contents (the delete of a prune or of a
 * replace) is data loss when the volume holds something that cannot be made again from the
 * manifests: it holds an imported image (`source`), it is attached to a VM (the declared or the
 * recorded config of any VM, or a VM's definition on the host, references it), or other volumes
 * are built on it (`backingVolume`). Blank volumes never attached to any VM and backing nothing
 * are derived data and go without asking.
 *
 * Without consent (`reconcile --allow-data-loss`) such a change is held, and so is everything that
 * depends on it: what is built on it (a clone on a held base, a VM restarted for a held disk), what
 * uses a held volume and is deleted with it (the VM of a held disk: deleting it first would make the
 * disk look unattached, and so derived, to the next run), and what a held change needs and is torn
 * down (its pool; the network of a held VM). The
 * plan lists held changes apart from conflicts (`plan.held`); apply runs none of their steps.
 */
import { parseResourceKey, type ResourceKind } from '../model/kinds.js';
import type { DomainDetail, VolumeDetail } from '../model/definitions.js';
import type { Desired } from './desired.js';
import { dependenciesOf } from './desired.js';
import type { Observed } from './observe.js';
import { recordedConfig, type DataLoss, type ResourceChange } from './change.js';
import { isTeardown } from './diff.js';
import { kindOf } from './kinds/index.js';
import type { VmConfig } from './kinds/vm.js';
import type { DesiredVolume, VolumeConfig } from './kinds/volume.js';
import { redactUrl } from './images.js';

const kindOfKey = (key: string): ResourceKind => parseResourceKey(key).kind;

export interface SafetyOptions {
  /** Consent to data loss: classify, but hold nothing. */
  allowDataLoss?: boolean;
}

/** Known configs of every VM and volume: declared, and recorded (for what is pruned or changed). */
function knownConfigs(desired: Desired, observed: Observed): { vms: Map<string, VmConfig[]>; volumes: Map<string, VolumeConfig[]> } {
  const vms = new Map<string, VmConfig[]>();
  const volumes = new Map<string, VolumeConfig[]>();
  const add = <C>(m: Map<string, C[]>, key: string, c: C | undefined): void => {
    if (c) m.set(key, [...(m.get(key) ?? []), c]);
  };
  for (const r of desired.resources) {
    if (r.kind === 'VirtualMachine') add(vms, r.key, r.config);
    else if (r.kind === 'Volume') add(volumes, r.key, r.config);
  }
  for (const [key, rec] of observed.records) {
    if (rec.kind === 'VirtualMachine') add(vms, key, recordedConfig<VmConfig>(observed, key));
    else if (rec.kind === 'Volume') add(volumes, key, recordedConfig<VolumeConfig>(observed, key));
  }
  return { vms, volumes };
}

/** What destroying the volume of change `c` would lose; undefined when it is derived data (or not a volume). */
export function dataLossOf(c: ResourceChange, desired: Desired, observed: Observed, known = knownConfigs(desired, observed)): DataLoss | undefined {
  if (c.kind !== 'Volume' || c.release) return undefined;
  const del = c.steps.find((s) => s.op === 'volume.delete');
  if (!del || del.op !== 'volume.delete') return undefined;
  const desiredCfg = c.desired?.kind === 'Volume' ? c.desired.config : undefined;
  const cfg = (c.previous as VolumeConfig | undefined) ?? recordedConfig<VolumeConfig>(observed, c.key) ?? desiredCfg;
  const detail = observed.definitions.get(c.key) as VolumeDetail | undefined;
  const path = detail?.path ?? cfg?.path;
  const why: string[] = [];

  // The image is named by where the manifest takes it from (a URL without its credentials), else by its digest.
  const image = c.desired?.kind === 'Volume' ? (c.desired as DesiredVolume).image : undefined;
  const sha = cfg?.sourceSha256 && !cfg.sourceSha256.startsWith('path:') ? ` (sha256 ${cfg.sourceSha256.slice(0, 12)}…)` : '';
  const source = image && (c.previous === undefined || (c.previous as VolumeConfig).sourceSha256 === image.sha256)
    ? (image.kind === 'url' ? redactUrl(image.url) : image.path) + sha
    : cfg?.sourcePath ?? (sha ? `image${sha}` : undefined);
  if (source) why.push(`holds imported image ${source}`);
  // An adopted volume was made by someone else: whatever it holds is theirs, not derived data.
  if (c.adopt) why.push('adopted: its contents were not made by virtform');

  const users = new Set<string>();
  for (const [vm, configs] of known.vms) {
    if (configs.some((v) => (v.disks ?? []).some((d) => d.volume === c.name || (path !== undefined && d.path === path)))) users.add(vm);
  }
  for (const [key, d] of observed.definitions) {
    if (kindOfKey(key) !== 'VirtualMachine' || path === undefined) continue;
    if (((d as DomainDetail).disks ?? []).some((disk) => disk.path === path)) users.add(key);
  }
  // A managed VM whose definition cannot be read may use it: not derived data.
  for (const key of observed.unreadable?.keys() ?? []) if (kindOfKey(key) === 'VirtualMachine') users.add(`${key} (its definition cannot be read, it may use it)`);
  for (const u of [...users].sort()) why.push(`attached to ${u}`);

  const clones = new Set<string>();
  for (const [key, configs] of known.volumes) {
    if (key === c.key) continue;
    if (configs.some((v) => v.backingVolume === c.name || (path !== undefined && v.backingPath === path))) clones.add(key);
  }
  for (const [key, d] of observed.definitions) {
    if (key === c.key || kindOfKey(key) !== 'Volume' || path === undefined) continue;
    if ((d as VolumeDetail).backingPath === path) clones.add(key);
  }
  for (const k of [...clones].sort()) why.push(`backs ${k}`);

  if (why.length === 0) return undefined;
  return { volume: c.key, path, sizeBytes: detail?.capacityBytes, why };
}

function describe(loss: DataLoss): string {
  return `${loss.volume}${loss.path ? ` (${loss.path})` : ''}: ${loss.why.join(', ')}`;
}

/** Resource keys a change's resource needs: by its desired config and by the config recorded for it. */
function needs(c: ResourceChange, desired: Desired, observed: Observed): string[] {
  const r = desired.byKey.get(c.key);
  const recorded = c.previous ?? recordedConfig(observed, c.key);
  return [...new Set([...(r ? dependenciesOf(r) : []), ...kindOf(c.kind).recordedDependencies(recorded)])];
}

/**
 * Classify every change (`c.dataLoss`) and, without consent, hold the destructive ones and what
 * depends on them (`c.held`). Returns the held resource keys with the reason of each.
 */
export function holdDataLoss(desired: Desired, observed: Observed, changes: ResourceChange[], opts: SafetyOptions = {}): Map<string, string> {
  const held = new Map<string, string>();
  const known = knownConfigs(desired, observed);
  for (const c of changes) {
    if (c.action === 'conflict') continue;
    // What the kind's diff already named (a deleted file still open by a running VM), else the delete's loss.
    const loss = c.dataLoss?.[0] ?? dataLossOf(c, desired, observed, known);
    if (!loss) continue;
    c.dataLoss = [loss];
    if (!opts.allowDataLoss) held.set(c.key, `would destroy the contents of ${describe(loss)}`);
  }
  if (held.size === 0) return held;

  const live = changes.filter((c) => c.action !== 'conflict' && c.steps.length > 0);
  const needsOf = new Map(live.map((c) => [c.key, needs(c, desired, observed)]));
  let grew = true;
  while (grew) {
    grew = false;
    for (const c of live) {
      if (held.has(c.key)) continue;
      // Built on something held; or, for a teardown, using a held volume (the VM of a held disk, the
      // clone of a held base: gone first, they would leave the volume looking derived to the next run).
      const tearsDownOnly = c.steps.every((s) => isTeardown(s.op));
      const dep = needsOf.get(c.key)!.find((d) => held.has(d) && (!tearsDownOnly || kindOfKey(d) === 'Volume'));
      if (dep) {
        held.set(c.key, `depends on ${dep}, which is held`);
        grew = true;
        continue;
      }
      // Torn down while something held still needs it.
      if (c.steps.some((s) => isTeardown(s.op))) {
        const user = [...held.keys()].find((h) => (needsOf.get(h) ?? []).includes(c.key));
        if (user) {
          held.set(c.key, `${user}, which uses it, is held`);
          grew = true;
        }
      }
    }
  }
  for (const c of changes) {
    const why = held.get(c.key);
    if (why) c.held = why;
  }
  return held;
}

/** `--max-deletions`: a number, `all` (no brake), or undefined (the default). */
export type MaxDeletions = number | 'all' | undefined;

/** The default limit: max(5, ceil(10% of the resources the state DB records)). */
export function defaultMaxDeletions(owned: number): number {
  return Math.max(5, Math.ceil(owned * 0.1));
}

/**
 * The mass-deletion brake: a plan whose runnable steps delete more objects than allowed is refused
 * as a whole (a repository push that lost most manifests, a moved folder, a partial checkout).
 * Counted: deletes of objects that exist and replaces (a replace deletes, then recreates); not
 * counted: releases (nothing is deleted), forgetting records of objects already gone or not ours,
 * and changes that are held or blocked (they do not run). The limit is `max` (`--max-deletions N`),
 * or by default max(5, ceil(10% of owned)); `all` disables it. `--allow-empty` does not lift it: a
 * full teardown beyond the limit is `--allow-empty --max-deletions all`.
 */
export function brakeDeletions(
  _desired: Desired, observed: Observed, changes: ResourceChange[], skip: { held: Map<string, string>; blocked: Map<string, string> },
  max: MaxDeletions,
): import('./plan.js').DeletionBrake {
  const deletions = changes
    .filter((c) => !skip.held.has(c.key) && !skip.blocked.has(c.key) && !c.release)
    .filter((c) => c.action === 'replace' || (c.action === 'delete' && c.steps.some((s) => s.op !== 'record.forget')))
    .map((c) => c.key);
  const owned = observed.records.size;
  if (max === 'all') return { deletions, max: null, source: 'all', owned, braked: false };
  const limit = max ?? defaultMaxDeletions(owned);
  return { deletions, max: limit, source: max === undefined ? 'default' : 'flag', owned, braked: deletions.length > limit };
}
