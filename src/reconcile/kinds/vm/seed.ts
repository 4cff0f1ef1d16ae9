/**
 * The cloud-init seed: built from spec.cloudInit at build time (the image travels on the desired
 * VM, `DesiredVm.seedImage`), planned apart from the definition, and whose volume it is.
 */
import { createHash } from 'node:crypto';
import { posix } from 'node:path';
import { buildNoCloudSeed, type Seed } from '../../../cloudinit/index.js';
import type { VirtualMachineSpec } from '../../../manifest/types.generated.js';
import { canonicalJson } from '../../core/resource.js';
import { change, type FieldChange, type ResourceChange } from '../../core/change.js';
import type { Observed } from '../../core/observed.js';
import type { Ownership } from '../../core/ownership.js';
import type { BuildContext } from '../../core/kind.js';
import { diskTarget } from './define.js';
import { factsOf, shortDigest } from './facts.js';
import type { BuiltSeedConfig, DesiredVm, ExistingSeedConfig, VmCloudInit, VmConfig, VmFacts, VmOp } from './types.js';

const digest = (data: Uint8Array | string): string => `sha256:${createHash('sha256').update(data).digest('hex')}`;

/**
 * spec.cloudInit → the seed image and its config (digests). instance-id, when metaData does not
 * set it, is `iid-` and the first 16 hex digits of a sha256 over everything else in the seed: a
 * change of user-data, meta-data, network-config or keys gives a new instance-id, and cloud-init
 * then runs its per-instance modules again at the next boot; the same content keeps it.
 */
export function cloudInitConfig(
  name: string, ci: NonNullable<VirtualMachineSpec['cloudInit']>, disks: VmConfig['disks'], ctx: BuildContext,
): { config: BuiltSeedConfig; image: Seed } {
  const pool = ci.pool!; // the manifest layer filled in the default (the first disk's pool)
  const volume = `${name}-cidata.iso`;
  const userMeta = (ci.metaData ?? {}) as Record<string, unknown>;
  const networkConfig = ci.networkConfig as Record<string, unknown> | string | undefined;
  const rest = { name, userData: ci.userData ?? '', metaData: { ...userMeta, 'instance-id': undefined }, networkConfig: networkConfig ?? null, keys: ci.sshAuthorizedKeys ?? null };
  const instanceId = typeof userMeta['instance-id'] === 'string'
    ? userMeta['instance-id']
    : `iid-${createHash('sha256').update(canonicalJson(rest)).digest('hex').slice(0, 16)}`;
  const image = buildNoCloudSeed({
    vmName: name, userData: ci.userData, metaData: { ...userMeta, 'instance-id': instanceId }, networkConfig, sshAuthorizedKeys: ci.sshAuthorizedKeys,
  });
  const file = (n: string): string | undefined => image.files.find((f) => f.name === n)?.text;
  const nc = file('network-config');
  return {
    image,
    config: {
      pool, volume, path: posix.join(ctx.poolPath(pool), volume),
      target: seedTarget(disks),
      seed: `sha256:${image.sha256}`, userData: digest(file('user-data') ?? ''), metaData: digest(file('meta-data') ?? ''),
      ...(nc !== undefined ? { networkConfig: digest(nc) } : {}),
      instanceId,
    },
  };
}

/** The seed CD-ROM's IDE target as built: the first after the VM's IDE disks and cdroms (resolved against the definition later). */
export const seedTarget = (disks: VmConfig['disks']): string => diskTarget('ide', disks.filter((d) => d.bus === 'ide').length);

/** spec.cloudInit.seedVolume → the seed's config: an existing volume, attached as it is (no digests: virtform never reads it). */
export function existingSeedConfig(volume: string, pool: string, disks: VmConfig['disks'], ctx: BuildContext): ExistingSeedConfig {
  return { pool, volume, path: posix.join(ctx.poolPath(pool), volume), target: seedTarget(disks), existing: existingText(pool, volume) };
}
export const existingText = (pool: string, volume: string): string => `existing volume ${pool}/${volume} (not built by virtform)`;

/** The `vm.seed` step of a seed virtform builds (`replace`: consented to write over a volume it did not build). */
export const seedOp = (ci: BuiltSeedConfig, replace?: boolean): VmOp => ({ op: 'vm.seed', pool: ci.pool, volume: ci.volume, sha256: ci.seed, ...(replace ? { replace: true } : {}) });

/** A plan line with digests shortened (`sha256:0123456789ab…`). */
export function shortLine(f: FieldChange): FieldChange {
  return { ...f, before: shortDigest(f.before), after: shortDigest(f.after) };
}

export interface SeedPlan {
  op?: VmOp;
  lines: FieldChange[];
  notes: string[];
  reason?: string;
  drift: boolean;
  /** The seed volume this step writes over that virtform did not build (a seedVolume before): held without --allow-data-loss. */
  overwrites?: { pool: string; volume: string };
}

/** A seedVolume the recorded config declared, now neither declared nor attached: kept, never deleted (virtform did not build it). */
function keptNote(prev: VmConfig | undefined, want: VmCloudInit | undefined): string | undefined {
  const old = prev?.cloudInit;
  if (!old || old.existing === undefined || (want && want.pool === old.pool && want.volume === old.volume)) return undefined;
  return `the seed volume ${old.pool}/${old.volume} (spec.cloudInit.seedVolume before, not built by virtform) is no longer attached; it is kept`;
}

/**
 * A declared seedVolume missing from its pool (or its pool not there): the VM's change is a
 * conflict naming it (virtform cannot build a seed it never reads); nothing is deleted.
 */
export function seedVolumeMissing(r: DesiredVm, observed: Observed): string | undefined {
  const ci = r.config.cloudInit;
  if (!ci || ci.existing === undefined) return undefined;
  const listing = observed.volumes.get(ci.pool);
  if (listing?.has(ci.volume)) return undefined;
  return `the cloud-init seed volume ${ci.pool}/${ci.volume} (spec.cloudInit.seedVolume) does not exist` +
    `${listing ? '' : ` (pool ${ci.pool} is not there or not active)`}: virtform cannot build it (it attaches a seedVolume as it is); ` +
    'create that volume, or declare the seed\'s content (userData, metaData, ...) instead';
}

/**
 * Whether the seed volume needs building: none uploaded yet, another content or place than the
 * one uploaded last, or the volume gone from its pool's listing (drift). Its lines show digests
 * only; `[restart]`: cloud-init reads the seed at boot. A seedVolume is never built: only a seed
 * virtform built elsewhere before is deleted (no longer declared).
 */
export function planSeed(r: DesiredVm, observed: Observed, facts: VmFacts | undefined, prev: VmConfig | undefined): SeedPlan {
  const want = r.config.cloudInit;
  const have = facts?.seed;
  const out: SeedPlan = { lines: [], notes: [], drift: false };
  const kept = keptNote(prev, want);
  if (kept) out.notes.push(kept);
  if (!want) {
    if (!have) return out;
    out.op = { op: 'vm.unseed', pool: have.pool, volume: have.volume };
    out.lines.push({ field: 'spec.cloudInit.seed', before: have.sha256, after: undefined, effect: 'restart' });
    out.reason = 'cloud-init seed no longer declared';
    return out;
  }
  if (want.existing !== undefined) {
    // The seed virtform built at that very place (a round trip through export): nothing to do.
    if (!have || (have.pool === want.pool && have.volume === want.volume)) return out;
    out.op = { op: 'vm.unseed', pool: have.pool, volume: have.volume };
    out.lines.push({ field: 'spec.cloudInit.seed', before: have.sha256, after: want.existing, effect: 'restart' });
    out.reason = `cloud-init seed is now the ${want.existing}; the seed virtform built (${have.pool}/${have.volume}) is deleted`;
    return out;
  }
  const listing = observed.volumes.get(want.pool);
  const missing = listing !== undefined && !listing.has(want.volume);
  const moved = !!have && (have.pool !== want.pool || have.volume !== want.volume);
  if (have && have.sha256 === want.seed && !moved && !missing) return out;
  const old = prev?.cloudInit;
  // Written over the volume the VM had as its seedVolume (virtform did not build it): consent needed.
  const overwrites = !!old && old.existing !== undefined && old.pool === want.pool && old.volume === want.volume && !missing &&
    !seedIsOurs(observed, r.key, want.pool, want.volume);
  if (overwrites) {
    out.overwrites = { pool: want.pool, volume: want.volume };
    out.notes.length = 0;
  }
  out.op = seedOp(want, overwrites);
  out.lines.push({ field: 'spec.cloudInit.seed', before: have?.sha256 ?? old?.existing, after: want.seed, effect: 'restart' });
  if (have && have.sha256 === want.seed && !moved) {
    out.drift = true;
    out.lines[0]!.drift = true;
    out.reason = `cloud-init seed volume ${want.pool}/${want.volume} is missing (drift)`;
    return out;
  }
  out.reason = !have ? (old?.existing !== undefined ? 'cloud-init seed to build (instead of the existing seedVolume)' : 'cloud-init seed to build')
    : moved ? 'cloud-init seed moves' : 'cloud-init seed changed';
  const before = prev?.cloudInit;
  if (before && before.existing === undefined) {
    for (const k of ['userData', 'metaData', 'networkConfig', 'instanceId'] as const) {
      if (before[k] !== want[k]) out.lines.push({ field: `spec.cloudInit.${k}`, before: before[k], after: want[k], effect: 'restart' });
    }
    if (before.instanceId !== want.instanceId) out.notes.push('cloud-init will run again at next boot (instance-id changed)');
    else if (have && have.sha256 !== want.seed) out.notes.push('instance-id unchanged (set in metaData): cloud-init reads the new seed at next boot without running its per-instance modules again');
  }
  return out;
}

/** Seed volumes created by this run (keyed by its observation): a retry may write over them. */
const SEEDS_MADE = new WeakMap<Observed, Set<string>>();
export function seedsMade(observed: Observed): Set<string> {
  let s = SEEDS_MADE.get(observed);
  if (!s) SEEDS_MADE.set(observed, (s = new Set()));
  return s;
}

/** Whether the seed volume `pool/volume` is virtform's: recorded as the VM's seed, or named by an interrupted step of the VM. */
export function seedIsOurs(observed: Observed, key: string, pool: string, volume: string): boolean {
  const seed = factsOf(observed, key)?.seed;
  if (seed && seed.pool === pool && seed.volume === volume) return true;
  return (observed.openJournal.get(key) ?? []).some((j) => j.intent.pool === pool && j.intent.volume === volume);
}

/**
 * The seed's fixed name (`<vm>-cidata.iso`) taken by a volume virtform did not create: a conflict
 * (the seed would overwrite it, and deleting the VM would delete it) unless the VM is adopted.
 */
export function seedNameTaken(r: DesiredVm, observed: Observed, own: Ownership, prev: VmConfig | undefined): ResourceChange | undefined {
  const ci = r.config.cloudInit;
  // A seedVolume is an existing volume by definition.
  if (!ci || r.adopt || ci.existing !== undefined) return undefined;
  const existing = observed.volumes.get(ci.pool)?.get(ci.volume);
  if (!existing || seedIsOurs(observed, r.key, ci.pool, ci.volume)) return undefined;
  // The VM's own seedVolume until now: written over with consent (the data rule holds it), not a conflict.
  const old = prev?.cloudInit;
  if (old?.existing !== undefined && old.pool === ci.pool && old.volume === ci.volume) return undefined;
  return change(r, 'conflict', `the cloud-init seed's volume ${ci.pool}/${ci.volume} already exists and virtform did not create it (${existing.key}); remove or rename it, or adopt the VM (metadata.adopt: true)`, own);
}

/** The seed volumes a VM's record or journal names (a delete removes them all). */
export function recordedSeeds(op: Extract<VmOp, { op: 'vm.delete' }>, facts: VmFacts | undefined): { pool: string; volume: string }[] {
  const all = [op.seed, facts?.seed].filter((x): x is { pool: string; volume: string } => !!x);
  return all.filter((x, i) => all.findIndex((y) => y.pool === x.pool && y.volume === x.volume) === i);
}

export async function* once(data: Uint8Array): AsyncIterable<Uint8Array> {
  yield data;
}
