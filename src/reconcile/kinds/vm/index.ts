/**
 * VirtualMachine: a libvirt domain. Identity: its libvirt UUID (kept across redefinitions).
 *
 * Diff compares the desired config with the domain's real persistent definition (read by observe
 * from the inactive XML): vCPUs and their maximum, memory and its maximum, description, the memory
 * balloon, the CPU mode and model (undeclared: libvirt's default), graphics type and listen address
 * (not the port libvirt picks), the guest agent channel, disks (path, format, bus, target, boot
 * order), NICs (network, model, MAC) and the extra devices (`spec.extraDevices`: the unmodelled
 * devices read back, each declared fragment matched by one of them whatever libvirt added, see
 * `libvirt/xml/extra-devices.ts`). A declared CPU mode or model, or a graphics type, that the
 * host's domain capabilities do not offer is a conflict in the plan (libvirt would define it and
 * refuse it only at start). A field
 * that differs from what virtform applied last is drift. Disks are matched by source path, then
 * target; NICs by MAC (declared, or the one virtform chose and recorded, or the current one), never
 * by list position. A NIC declared without a MAC keeps the MAC it got once.
 *
 * On a running VM, a change is applied live where libvirt and QEMU take it (measured under TCG:
 * plugging vCPUs up to the maximum, memory up to the maximum through the balloon, the
 * description), always also to the persistent definition; anything else takes effect at the next
 * boot: the record keeps a restart-required mark until the domain has been restarted (its libvirt
 * domain id changes at every start), or virtform restarts it (`restartPolicy: OnChange`). state
 * (running/stopped) and autostart are reconciled live. A running VM whose volume or network is
 * replaced is stopped first and started again after.
 *
 * The module: `types.ts` (config, facts, ops), `build.ts` (manifests → desired VMs), `define.ts`
 * (the DomainDef), `match.ts` (disks and NICs), `fields.ts` (the one field table), `facts.ts`,
 * `restart.ts` (the restart-required mark), `seed.ts` (cloud-init), `diff.ts`, `disks.ts` (disks
 * held open, cross-VM adjustments), `execute.ts`; this file assembles the handler.
 */
import { posix } from 'node:path';
import { listedState, readListed } from '../common.js';
import type { KindHandler } from '../../core/kind.js';
import type { ObservedDomain } from '../../ports.js';
import type { DomainDetail } from '../../../model/definitions.js';
import { buildVms } from './build.js';
import { usedKeys } from './define.js';
import { VM_EXACT, diffVm } from './diff.js';
import { HANDOVER_WAITS, deletedDiskNotes, deletedText, orderDiskHandover, readLiveDisks, restartDisrupted } from './disks.js';
import { executeVm } from './execute.js';
import { moveVm, observeVmMove } from './move.js';
import { pendingRestart } from './facts.js';
import { VM_CONFIG_FIELDS } from './fields.js';
import { restartText, stopNote } from './restart.js';
import type { DesiredVm, RestartRequired, VmConfig, VmFacts, VmOp } from './types.js';
import { resourceKey } from '../../../model/kinds.js';

export type * from './types.js';
export { diskTarget, domainDef, freshMac } from './define.js';
export { capabilityProblem, VM_EXACT } from './diff.js';
export { deletedOpenDisks } from './disks.js';
export { factsOf, pendingRestart, shortDigest } from './facts.js';
export { compareVm, isDefaultCpu, VM_FIELDS } from './fields.js';
export { matchNics, type NicMatch } from './match.js';
export { restartText } from './restart.js';

export const vmKind: KindHandler<DesiredVm, VmOp> = {
  kind: 'VirtualMachine',
  exact: VM_EXACT,
  // A plan deleting every VM virtform owns (two or more) is refused by default.
  brakeOnWipe: true,
  guest: {
    declaredRunning: (r) => r.state === 'running', hasGraphics: (c) => !!(c as { graphics?: unknown } | undefined)?.graphics,
    // `virtform restart` (issue 24; helper restart): stop (graceful or forced), start; the mark clears at the start.
    restart: {
      pending(facts, domain) {
        const rr = (facts as VmFacts | undefined)?.restartRequired;
        return rr && domain?.active && rr.domainId === domain.id ? restartText(rr) : undefined;
      },
      steps: (graceful) => [{ op: 'vm.stop', graceful, restart: true }, { op: 'vm.start' }],
      desired(rec) {
        const config = rec.details.config as VmConfig | undefined;
        if (!config || typeof config !== 'object') return undefined;
        return {
          kind: 'VirtualMachine', name: rec.name, host: rec.host, key: resourceKey('VirtualMachine', rec.name, rec.host), adopt: false, labels: {},
          config, specHash: rec.specHash ?? '', autostart: false, state: 'running', restartPolicy: 'Never',
        };
      },
    },
  },
  ops: {
    'vm.define': { label: 'define domain', teardown: false },
    'vm.live': { label: 'change running domain', teardown: false },
    // Hot-plug (issue 24): a detach is a teardown (a removed disk's volume goes after it).
    'vm.detach': { label: 'detach devices from running domain', teardown: true },
    'vm.attach': { label: 'attach devices to running domain', teardown: false },
    'vm.seed': { label: 'build and upload cloud-init seed', teardown: false },
    'vm.unseed': { label: 'delete cloud-init seed', teardown: false },
    'vm.start': { label: 'start domain', teardown: false },
    // A cold move's source is stopped before its disks are copied (move.ts).
    'vm.stop': { label: 'stop domain', teardown: true, move: 'quiesce' },
    'vm.delete': { label: 'delete domain', teardown: true },
  },
  fields: VM_CONFIG_FIELDS,

  build: buildVms,
  dependencies: (r) => usedKeys(r.config, r.host),
  demands: (r) => ({
    memory: r.config.memoryKiB * 1024, vcpus: r.config.vcpus,
    uses: usedKeys({ disks: r.config.disks, nics: [], ...(r.config.boot ? { boot: r.config.boot } : {}) }, r.host),
  }),
  recordedDependencies: (previous) => (previous ? usedKeys(previous as VmConfig) : []),
  poolsToList: ({ desired, journal }) => [
    ...(desired?.config.cloudInit ? [desired.config.cloudInit.pool] : []),
    ...(journal && typeof journal.intent.pool === 'string' ? [journal.intent.pool] : []),
  ],

  identity: (observed, name) => observed.domains.get(name)?.uuid,

  async readDefinitions(host, observed, wanted) {
    const defs = await readListed<ObservedDomain, DomainDetail>(observed.domains, wanted, (l, u, fast) => host.definitions.domains(l, u, fast), (observed.unreadable ??= new Map()), observed);
    // After the definitions: the live disks of domains with a restart pending come from the live XML read with them.
    await readLiveDisks(host, observed, wanted, defs);
    return defs;
  },

  needsDomainCapabilities: (r) => r.config.cpu !== undefined || r.config.graphics !== undefined,

  diff: diffVm,

  /**
   * Cross-VM adjustments: a running VM whose volume or network is replaced or restarted is
   * restarted too; a disk changes hands only after the VM holding it has stopped.
   */
  afterDiff(vms, observed, changes, opts) {
    restartDisrupted(vms, observed, changes, opts);
    orderDiskHandover(vms, observed, changes);
    for (const r of vms) {
      const c = changes.find((x) => x.key === r.key);
      if (c) c.notes.push(...deletedDiskNotes(observed, r));
    }
  },

  /** A restart-required mark still pending on the running domain, when nothing else changes. */
  notices(r, { observed }) {
    const rr = pendingRestart(observed, r.key, r.name);
    const waits = HANDOVER_WAITS.get(observed)?.get(r.name);
    return [
      ...(rr ? [`${r.key}: ${restartText(rr)}${waits ? `; ${waits}` : ''}`] : []),
      ...deletedDiskNotes(observed, r).map((n) => `${r.key}: ${n}`),
    ];
  },
  deleteSteps: (_name, where, opts) => {
    const ci = (where.config as Partial<VmConfig> | undefined)?.cloudInit;
    const fromJournal = where.intents?.find((i) => typeof i.pool === 'string' && typeof i.volume === 'string');
    const seed = ci ? { pool: ci.pool, volume: ci.volume } : fromJournal ? { pool: String(fromJournal.pool), volume: String(fromJournal.volume) } : undefined;
    return [{ op: 'vm.delete', graceful: opts?.gracefulStop ?? true, ...(seed ? { seed } : {}) }];
  },
  deleteNotes: (name, observed, opts) => (observed.domains.get(name)?.active ? [stopNote(opts?.gracefulStop ?? true)] : []),

  /** A seed step names its volume, so that a run after an interruption can find (and delete) it. */
  move: moveVm,
  observeMove: observeVmMove,

  intent: (op) => (op.op === 'vm.seed' || op.op === 'vm.unseed' ? { pool: op.pool, volume: op.volume } : op.op === 'vm.delete' && op.seed ? { ...op.seed } : {}),
  execute: executeVm,

  desiredStatus: (r) => r.state,
  defaultDesiredStatus: 'running',
  observedStatus: (view, r) => listedState(view.snapshot, (s) => s.domains, r.name, 'running', 'stopped'),
  statusNote(view, r) {
    const rr = (r.facts as { restartRequired?: RestartRequired } | undefined)?.restartRequired;
    // A disk file deleted under the running VM (its pool's listing lacks it): restart required, data at stake.
    const dom = view?.snapshot.domains.find((x) => x.name === r.name);
    const disks = ((r.config as Partial<VmConfig> | undefined)?.disks ?? []).map((d) => d.path);
    const gone = view?.listedPoolPaths && dom?.active
      ? disks.filter((p) => view.listedPoolPaths!.has(posix.dirname(p)) && !view.volumeKeys.has(p)) : [];
    if (gone.length > 0) {
      const data: RestartRequired = {
        fields: ['spec.disks'], running: { 'spec.disks': gone.map((p) => `${p} (deleted, still open)`).join(', ') },
        defined: { 'spec.disks': gone.join(', ') }, domainId: dom!.id,
      };
      return { flag: 'restart required', text: deletedText(gone), data };
    }
    if (!rr) return undefined;
    // The mark holds while the domain it was set on still runs (same libvirt domain id); offline: as recorded.
    const d = view?.snapshot.domains.find((x) => x.name === r.name);
    if (view && !(d?.active && d.id === rr.domainId)) return undefined;
    return { flag: 'restart required', text: restartText(rr), data: rr };
  },
};
