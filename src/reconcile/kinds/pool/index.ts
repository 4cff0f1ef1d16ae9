/**
 * StoragePool: a libvirt `dir` pool. Identity: its libvirt UUID. The path is immutable (a new
 * path replaces the pool); autostart and the active state are reconciled live.
 *
 * Directories: starting the pool creates its directory (and the parents it needs) only when it
 * does not exist, and records the ones created (`createdPaths`, apart from the record). Deleting
 * the pool removes only those, deepest first, and only when empty: a directory that existed before
 * (or was made by a version of virtform that did not record it) is kept, and so is one with files
 * virtform did not put there; the output says so.
 */
import { posix } from 'node:path';
import { resourceKey } from '../../../model/kinds.js';
import type { PoolDef, PoolDetail } from '../../../model/definitions.js';
import { desiredBase, type DesiredBase } from '../../core/resource.js';
import {
  appliedConfig, change, compareConfigs, runtimeDifferences, conflictOrAdopt, createReason, exactDrift, fieldChanges, interruptedOr, isMissingDrift, recordedConfig,
  type FieldChange,
} from '../../core/change.js';
import { ownershipById } from '../../core/ownership.js';
import { listedState, readListed, uuidToDefine } from '../common.js';
import type { ExactSpec, KindHandler } from '../../core/kind.js';
import { definitionOf, type Observed } from '../../core/observed.js';

export interface PoolConfig {
  path: string;
}
export type DesiredPool = DesiredBase<'StoragePool', PoolConfig> & { autostart: boolean };

export type PoolOp =
  | { op: 'pool.ensure'; define: boolean; start: boolean; autostart?: boolean }
  | { op: 'pool.delete' };

export function poolDef(r: DesiredPool, uuid?: string): PoolDef {
  return { name: r.name, uuid, path: r.config.path, marker: { kind: r.kind, name: r.name, specHash: r.specHash } };
}

const inside = (a: string, b: string): boolean => a === b || a.startsWith(b.endsWith('/') ? b : `${b}/`);

/** Another pool on the host whose directory is, contains, or lies inside this one's. */
function nestedPool(r: DesiredPool, observed: Observed): string | undefined {
  for (const name of observed.pools.keys()) {
    if (name === r.name) continue;
    const other = definitionOf(observed, 'StoragePool', resourceKey('StoragePool', name, r.host));
    if (!other?.path) continue;
    const theirs = posix.normalize(other.path);
    if (inside(r.config.path, theirs) || inside(theirs, r.config.path)) {
      return `path ${r.config.path} ${r.config.path === theirs ? 'is the directory of' : inside(r.config.path, theirs) ? 'lies inside the directory of' : 'contains the directory of'} pool ${name} (${theirs}) on the host`;
    }
  }
  return undefined;
}

/**
 * Exact drift of pools: what libvirt updates on its own as files come and go (capacity,
 * allocation, available) is ignored; the target path is explained by the field-level comparison.
 */
export const POOL_EXACT: ExactSpec = {
  object: 'pool',
  ignore: [/^(capacity|allocation|available)$/],
  modelled: [/^target\/path$/],
};

export const poolKind: KindHandler<DesiredPool, PoolOp> = {
  kind: 'StoragePool',
  exact: POOL_EXACT,
  ops: {
    'pool.ensure': { label: 'ensure pool', teardown: false },
    'pool.delete': { label: 'delete pool', teardown: true },
  },
  fields: [{ field: 'path', manifest: 'spec.path', effect: 'replace' }],

  lookups(state) {
    const pools = new Map(state.pools.map((p) => [p.metadata.name, p]));
    // Asked for every volume: each pool's path is normalized once.
    const paths = new Map<string, string>();
    const poolPath = (name: string): string => {
      let path = paths.get(name);
      if (path === undefined) paths.set(name, (path = posix.normalize(pools.get(name)?.spec.path ?? `/nonexistent/${name}`)));
      return path;
    };
    return { poolPath };
  },

  build(state, ctx) {
    return state.pools.map((p) => {
      const config: PoolConfig = { path: posix.normalize(p.spec.path) };
      return { ...desiredBase('StoragePool', p, ctx.host, config), autostart: p.spec.autostart ?? true };
    });
  },
  dependencies: () => [],
  recordedDependencies: () => [],

  identity: (observed, name) => observed.pools.get(name)?.uuid,
  poolsToList: ({ desired, recordName, journal }) => [desired?.name ?? recordName ?? journal?.name].filter((n): n is string => !!n),

  createShowsAllFields: true,
  readsAllListed: (snapshot) => snapshot.pools.map((o) => o.name),
  readDefinitions: (host, observed, wanted) => readListed(observed.pools, wanted, (l, u) => host.definitions.pools(l, u), (observed.unreadable ??= new Map())),

  diff(r, { observed }) {
    const key = r.key;
    const own = ownershipById(observed, r.kind, r.name, observed.pools.get(r.name)?.uuid, key);
    const conflict = conflictOrAdopt(r, own);
    if (conflict) return conflict;
    const obs = observed.pools.get(r.name);
    const actual = definitionOf(observed, 'StoragePool', key);
    const record = observed.records.get(key);
    if (own.state === 'absent' || !obs || !actual) {
      const clash = nestedPool(r, observed);
      if (clash) return change(r, 'conflict', clash, own);
      return change(r, 'create', createReason(record), own, {
        drift: isMissingDrift(record),
        fields: fieldChanges(undefined, { ...r.config, autostart: r.autostart }),
        steps: [{ op: 'pool.ensure', define: true, start: true, autostart: r.autostart }],
      });
    }
    const prev = recordedConfig<PoolConfig>(observed, key);
    const adopting = own.state === 'foreign';
    // The pool's real target path, not the recorded one, is compared with the manifest.
    const differences = compareConfigs(poolKind.fields, r.config, { path: posix.normalize(actual.path) }, appliedConfig(observed, r));
    if (differences.length > 0) {
      const clash = nestedPool(r, observed);
      if (clash) return change(r, 'conflict', clash, own);
      const drift = differences.every((d) => d.drift);
      return change(r, 'replace', drift
        ? 'the pool\'s path was changed outside virtform (drift): it is redefined at the declared path'
        : 'spec.path is immutable for a directory pool', own, {
        fields: differences.flatMap((d) => d.changes), previous: prev, drift, adopt: adopting,
        notes: ['volume files stay where they are; volumes of the pool are checked again once it is active'],
        steps: [{ op: 'pool.delete' }, { op: 'pool.ensure', define: true, start: true, autostart: r.autostart }],
      });
    }
    const fields: FieldChange[] = [];
    const reasons: string[] = [];
    // Made by an interrupted run, or applied with another spec that the host already matches: record it.
    const unrecorded = own.state === 'owned' && (own.via === 'journal' || record?.specHash !== r.specHash);
    // Exact drift: the whole definition against its baseline; a transient pool has no definition left.
    const transient = obs.persistent === false;
    const exact = !adopting && !transient ? exactDrift(observed, key, POOL_EXACT, false) : [];
    fields.push(...exact);
    if (adopting) reasons.push('adopting existing pool (metadata.adopt)');
    else if (transient) reasons.push('definition removed outside virtform (drift): the active pool is defined again');
    else if (exact.length > 0) reasons.push('definition changed outside virtform (drift): written again');
    else if (unrecorded) reasons.push(interruptedOr(own, 'the host already matches the manifest: recording it'));
    const drift = runtimeDifferences('pool', obs, r.autostart, fields, reasons, !adopting && !transient && record?.specHash === r.specHash)
      || exact.length > 0 || (transient && !adopting);
    // Adopting: a pool carries no owner marker (its XML has no place for one), so its definition is
    // kept as it is (permissions, owner, … included) and only recorded (issue 24).
    const define = (own.state === 'owned' && own.via === 'journal') || transient || exact.length > 0;
    if (fields.length === 0 && !define && !unrecorded && !adopting) return undefined;
    return change(r, 'update', reasons.join('; ') || 'autostart differs', own, {
      fields, adopt: adopting, drift,
      ...(adopting ? { notes: ['adopting records the pool: its definition is kept as it is'] } : {}),
      steps: [{
        op: 'pool.ensure', define, start: !obs.active,
        autostart: obs.autostart !== r.autostart || define ? r.autostart : undefined,
      }],
    });
  },
  deleteSteps: () => [{ op: 'pool.delete' }],

  intent: (_op, d) => (d ? { path: d.config.path } : {}),
  async execute(op, ctx): Promise<void> {
    const { host, step } = ctx;
    switch (op.op) {
      case 'pool.ensure': {
        const d = ctx.desired!;
        if (op.define) {
          const uuid = await uuidToDefine(ctx, ctx.observed.pools.get(d.name)?.uuid, () => host.getPool(d.name));
          await host.definePool(poolDef(d, uuid));
        }
        // Make the directory (and parents) when missing, recording what was made before anything
        // else can fail: a crash after this still leaves the record of what to remove.
        const made = op.define || op.start ? await host.buildPool(d.name) : [];
        if (made.length > 0) await ctx.createdPaths.add(made);
        await host.startPool(d.name);
        if (op.autostart !== undefined) await host.setPoolAutostart(d.name, op.autostart);
        const detail = op.define ? await host.getPool(d.name) : undefined;
        ctx.boundary();
        await ctx.record({
          uuid: detail?.uuid ?? ctx.observed.pools.get(d.name)?.uuid ?? null,
          observedStatus: 'active', desiredState: 'active', config: true,
        });
        return;
      }
      case 'pool.delete': {
        const path = definitionOf(ctx.observed, 'StoragePool', step.key);
        await host.deletePool(step.name, { deleteDir: false });
        ctx.boundary();
        const created = await ctx.createdPaths.list();
        if (created.length > 0) {
          const { removed, kept } = await host.removeDirs(created);
          for (const k of kept) ctx.note?.(`kept directory ${k.path}: ${k.why}`);
          await ctx.createdPaths.remove([...removed, ...kept.map((k) => k.path)]);
        }
        if (path?.path && !created.includes(posix.normalize(path.path))) {
          ctx.note?.(`kept directory ${path.path}: virtform did not create it`);
        }
        await ctx.forgetIfUndeclared();
        return;
      }
    }
  },

  desiredStatus: () => 'active',
  defaultDesiredStatus: 'active',
  observedStatus: (view, r) => listedState(view.snapshot, (s) => s.pools, r.name),
};
