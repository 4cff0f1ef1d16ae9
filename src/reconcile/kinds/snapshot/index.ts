/**
 * Snapshot: an internal snapshot of a VirtualMachine's qcow2 disks (and, with `memory: true`, of
 * its running memory), taken with virDomainSnapshotCreateXML. Identity: the domain's UUID and the
 * snapshot's creation time (libvirt gives snapshots no UUID).
 *
 * Taken once, after its VM exists (a dependency: the plan orders it after the VM's define and
 * start), and never changed: a manifest that differs from the snapshot taken (another VM,
 * description or memory) is a conflict; the snapshot is left as it is, since it is data and cannot
 * be taken again as it was. Removing the manifest deletes it (virDomainSnapshotDelete), which the
 * data rule (`data.ts`) holds without `--allow-data-loss`; so is a VM deletion that would take
 * snapshots with it. A snapshot deleted outside virtform is taken again (drift: a new one, of
 * the VM as it is now; the plan says so).
 *
 * Internal snapshots only: libvirt 9.0 cannot revert external ones (docs/snapshots.md). So every
 * writable disk must be qcow2 and the VM must not boot UEFI (a raw pflash NVRAM): refused when
 * the manifests are validated, and again here against the VM's real definition (an adopted VM).
 * libvirt takes an internal snapshot of a running VM only with its memory: `memory: false` needs
 * the VM stopped when it is taken, `memory: true` needs it running (checked against what the VM's
 * own change in the same plan leaves it as, in `afterDiff`).
 *
 * Restoring is imperative (`virtform snapshot revert`, src/cli/commands/snapshot.ts): desired state
 * stays in the manifests.
 */
import { resourceKey } from '../../../model/kinds.js';
import type { SnapshotDetail } from '../../../model/definitions.js';
import { desiredBase } from '../../core/resource.js';
import {
  change, conflictOrAdopt, createReason, fieldChanges, interruptedOr, isMissingDrift, recordedConfig, recordedFacts,
  type FieldChange, type ResourceChange,
} from '../../core/change.js';
import { ownershipById } from '../../core/ownership.js';
import { definitionOf, type Observed } from '../../core/observed.js';
import type { KindHandler, Locator } from '../../core/kind.js';
import { HostError } from '../../ports.js';
import { LISTED, snapshotDataLoss } from './data.js';
import type { DesiredSnapshot, SnapshotConfig, SnapshotFacts, SnapshotOp } from './types.js';

export type * from './types.js';

const vmKeyOf = (vm: string, host: string): string => resourceKey('VirtualMachine', vm, host);

/** The VM a snapshot resource is of: recorded (where it was taken), else declared, else named by an interrupted step. */
function vmOf(observed: Observed, key: string, where: Locator): string | undefined {
  const recorded = recordedConfig<SnapshotConfig>(observed, key)?.vm ?? recordedFacts(observed, key).vm;
  if (typeof recorded === 'string') return recorded;
  const declared = (where.config as Partial<SnapshotConfig> | undefined)?.vm;
  if (typeof declared === 'string') return declared;
  const fromJournal = where.intents?.find((i) => typeof i.vm === 'string')?.vm;
  return typeof fromJournal === 'string' ? fromJournal : undefined;
}

/** Identity of a taken snapshot: its domain's UUID and its creation time. */
function identityOf(observed: Observed, d: SnapshotDetail | undefined): string | undefined {
  const dom = d ? observed.domains.get(d.domain) : undefined;
  return d && dom ? `${dom.uuid}@${d.creationTime}` : undefined;
}

/** ISO time of a snapshot's creation time (seconds). */
export function takenAt(seconds: number): string {
  return new Date(seconds * 1000).toISOString().replace(/\.000Z$/, 'Z');
}

/** What a snapshot holds, for the plan and status: `disks and memory` or `disks`. */
export function holds(memory: string | boolean): string {
  return memory === true || memory === 'internal' ? 'disks and memory' : 'disks';
}

/** Why a VM's definition cannot be snapshotted internally (a raw writable disk, UEFI NVRAM), else undefined. */
function unsnapshottable(observed: Observed, vm: string, host: string): string | undefined {
  const def = definitionOf(observed, 'VirtualMachine', vmKeyOf(vm, host));
  if (!def) return undefined;
  const raw = def.disks.filter((d) => d.format === 'raw');
  if (raw.length > 0) {
    return `VirtualMachine ${vm} has a raw writable disk (${raw.map((d) => `${d.target} ${d.path}`).join(', ')}): an internal snapshot needs every writable disk to be qcow2`;
  }
  if (def.boot?.firmware === 'efi') return `VirtualMachine ${vm} boots UEFI firmware: its NVRAM is a raw pflash file, which libvirt cannot snapshot internally`;
  return undefined;
}

/** The snapshot as taken, in the config's terms (what a manifest is compared with). */
function takenConfig(d: SnapshotDetail): SnapshotConfig {
  return { vm: d.domain, ...(d.description ? { description: d.description } : {}), memory: d.memory === 'internal' };
}

/** Whether the VM runs once its own change in this plan (if any) has run: started, stopped, deleted. */
function runningAfter(vmChange: ResourceChange | undefined, activeNow: boolean): boolean | 'deleted' {
  let running: boolean | 'deleted' = activeNow;
  for (const s of vmChange?.action === 'conflict' ? [] : vmChange?.steps ?? []) {
    if (s.op === 'vm.start') running = true;
    else if (s.op === 'vm.stop') running = false;
    else if (s.op === 'vm.delete') running = 'deleted';
  }
  return running;
}

export const snapshotKind: KindHandler<DesiredSnapshot, SnapshotOp> = {
  kind: 'Snapshot',
  ops: {
    'snapshot.create': { label: 'take snapshot', teardown: false },
    'snapshot.delete': { label: 'delete snapshot', teardown: true },
  },
  fields: [
    { field: 'vm', manifest: 'spec.vm', effect: 'replace' },
    { field: 'description', manifest: 'spec.description', effect: 'replace' },
    { field: 'memory', manifest: 'spec.memory', effect: 'replace' },
  ],

  build(state, ctx) {
    return (state.snapshots ?? []).map((m) => {
      const config: SnapshotConfig = {
        vm: m.spec.vm, ...(m.spec.description ? { description: m.spec.description } : {}), memory: m.spec.memory === true,
      };
      return desiredBase('Snapshot', m, ctx.host, config);
    });
  },
  dependencies: (r) => [vmKeyOf(r.config.vm, r.host)],
  recordedDependencies: (previous) => {
    const vm = (previous as Partial<SnapshotConfig> | undefined)?.vm;
    return typeof vm === 'string' ? [resourceKey('VirtualMachine', vm)] : [];
  },

  identity: (observed, name) => identityOf(observed, definitionOf(observed, 'Snapshot', resourceKey('Snapshot', name, observed.host))),

  async readDefinitions(host, observed, wanted) {
    // The snapshots of each domain some Snapshot resource names: one listing per domain.
    const vmByKey = new Map<string, string>();
    for (const [key, w] of wanted) {
      const vm = vmOf(observed, key, w.where);
      if (vm !== undefined) vmByKey.set(key, vm);
    }
    const domains = [...new Set(vmByKey.values())].map((vm) => observed.domains.get(vm)).filter((d) => d !== undefined);
    const out = new Map<string, SnapshotDetail>();
    if (domains.length === 0) return out;
    const listed = await host.listDomainSnapshots(domains);
    LISTED.set(observed, listed);
    for (const [key, vm] of vmByKey) {
      const name = wanted.get(key)!.name;
      const d = listed.get(vm)?.find((s) => s.name === name);
      if (d) out.set(key, d);
    }
    return out;
  },

  diff(r, { observed }) {
    const key = r.key;
    const taken = definitionOf(observed, 'Snapshot', key);
    const own = ownershipById(observed, r.kind, r.name, identityOf(observed, taken), key);
    const conflict = conflictOrAdopt(r, own);
    if (conflict) return conflict;
    const record = observed.records.get(key);
    if (own.state === 'absent' || !taken) {
      const problem = unsnapshottable(observed, r.config.vm, r.host);
      if (problem) return change(r, 'conflict', problem, own);
      const gone = isMissingDrift(record);
      const was = recordedFacts(observed, key) as Partial<SnapshotFacts>;
      return change(r, 'create', gone ? 'recorded but missing on the host (deleted outside virtform, drift): taken again, of the VM as it is now' : createReason(record), own, {
        drift: gone,
        fields: fieldChanges(undefined, r.config),
        notes: [
          `${holds(r.config.memory)} of VirtualMachine ${r.config.vm}${r.config.memory ? ' (running)' : ' (stopped)'}`,
          ...(gone && typeof was.creationTime === 'number' ? [`the snapshot taken ${takenAt(was.creationTime)} is gone: its contents cannot be brought back`] : []),
        ],
        steps: [{ op: 'snapshot.create', vm: r.config.vm }],
      });
    }
    // Taken: never changed. A manifest that differs is reported, and the snapshot left as it is.
    const now = takenConfig(taken);
    const differs: FieldChange[] = fieldChanges(now, r.config);
    if (differs.length > 0) {
      return change(r, 'conflict', `a snapshot is taken once and never changed: ${differs.map((f) => f.field).join(', ')} ` +
        `differ${differs.length === 1 ? 's' : ''} from the snapshot taken ${takenAt(taken.creationTime)}; it is left as it is ` +
        '(to take another, declare a Snapshot with a new name; to delete this one, remove its manifest and reconcile with --allow-data-loss)', own, { fields: differs });
    }
    const adopting = own.state === 'foreign';
    const unrecorded = own.state === 'owned' && (own.via === 'journal' || record?.specHash !== r.specHash);
    if (!adopting && !unrecorded) return undefined;
    return change(r, 'update', adopting ? 'adopting existing snapshot (metadata.adopt)' : interruptedOr(own, 'the host already has this snapshot: recording it'), own, {
      adopt: adopting, steps: [{ op: 'snapshot.create', vm: r.config.vm }],
    });
  },

  /**
   * The VM's state when the snapshot is taken, after the VM's own change in this plan: a snapshot
   * with memory needs it running, one without needs it stopped (libvirt's internal snapshot of a
   * running VM always includes its memory); a stop in the plan runs before the snapshot.
   */
  afterDiff(snapshots, observed, changes) {
    for (const r of snapshots) {
      const i = changes.findIndex((c) => c.key === r.key);
      const c = changes[i];
      if (!c || !c.steps.some((s) => s.op === 'snapshot.create') || c.action === 'update') continue;
      const vmKey = vmKeyOf(r.config.vm, r.host);
      const vmChange = changes.find((x) => x.key === vmKey);
      const running = runningAfter(vmChange, observed.domains.get(r.config.vm)?.active === true);
      if (running === 'deleted') continue; // the VM goes: what depends on it is ordered and held by the plan
      if (r.config.memory && !running) {
        changes[i] = { ...c, action: 'conflict', steps: [], reason: `VirtualMachine ${r.config.vm} is not running (and this plan does not start it): ` +
          'a stopped VM has no memory to save; start it (spec.state: running) or set spec.memory: false for a snapshot of its disks' };
      } else if (!r.config.memory && running) {
        changes[i] = { ...c, action: 'conflict', steps: [], reason: `VirtualMachine ${r.config.vm} is running: libvirt takes an internal snapshot of a running VM ` +
          'only with its memory; set spec.memory: true, or take it while the VM is stopped (spec.state: stopped)' };
      } else if (vmChange?.steps.some((s) => s.op === 'vm.stop')) {
        // Taken after the VM's stop (a teardown step: not ordered by the dependency alone).
        changes[i] = { ...c, waitFor: [...(c.waitFor ?? []), { op: 'snapshot.create', keys: [vmKey] }] };
      }
    }
  },

  dataLoss: snapshotDataLoss,

  deleteSteps: (_name, where) => {
    const vm = (where.config as Partial<SnapshotConfig> | undefined)?.vm
      ?? where.intents?.find((i) => typeof i.vm === 'string')?.vm;
    return typeof vm === 'string' ? [{ op: 'snapshot.delete', vm }] : undefined;
  },

  intent: (op) => ({ vm: op.vm }),

  async execute(op, ctx): Promise<void> {
    const { host, step } = ctx;
    switch (op.op) {
      case 'snapshot.create': {
        const d = ctx.desired!;
        // Taken by an interrupted step (or adopted): recorded, not taken again.
        let taken = await host.getDomainSnapshot(op.vm, step.name);
        let tookMs: number | undefined;
        if (!taken) {
          const dom = await host.getDomain(op.vm);
          if (!dom) throw new HostError('not-found', `VirtualMachine ${op.vm} does not exist: snapshot ${step.name} cannot be taken`);
          if (d.config.memory && !dom.active) {
            throw new HostError('invalid', `VirtualMachine ${op.vm} is not running: its memory cannot be saved (spec.memory: true needs a running VM)`);
          }
          if (!d.config.memory && dom.active) {
            throw new HostError('invalid', `VirtualMachine ${op.vm} is running: libvirt takes an internal snapshot of a running VM only with its memory (set spec.memory: true, or stop the VM)`);
          }
          const started = Date.now();
          taken = await host.createDomainSnapshot({ domain: op.vm, name: step.name, ...(d.config.description ? { description: d.config.description } : {}), memory: d.config.memory });
          tookMs = Date.now() - started;
        }
        const dom = await host.getDomain(op.vm);
        ctx.boundary();
        const facts: SnapshotFacts = {
          vm: op.vm, creationTime: taken.creationTime, state: taken.state, memory: taken.memory, disks: taken.disks,
          ...(tookMs !== undefined ? { tookMs } : {}),
        };
        await ctx.record({
          uuid: dom ? `${dom.uuid}@${taken.creationTime}` : null, observedStatus: 'taken', desiredState: 'taken', config: true,
          facts: facts as unknown as Record<string, unknown>,
        });
        return;
      }
      case 'snapshot.delete':
        await host.deleteDomainSnapshot(op.vm, step.name);
        ctx.boundary();
        await ctx.forgetIfUndeclared();
        return;
    }
  },

  desiredStatus: () => 'taken',
  defaultDesiredStatus: 'taken',
  // The listing status reads has domains only: a snapshot of an existing VM shows as taken; the plan's
  // own comparison (status runs one) reports a snapshot deleted outside virtform as drift.
  observedStatus: (view, r) => (r.uuid && view.snapshot.domains.some((d) => d.name === (r.config as Partial<SnapshotConfig> | undefined)?.vm) ? 'taken' : 'absent'),
  statusNote(_view, r) {
    const f = r.facts as Partial<SnapshotFacts> | undefined;
    if (!f || typeof f.creationTime !== 'number') return undefined;
    const at = takenAt(f.creationTime);
    return {
      flag: `taken ${at}`,
      text: `snapshot of VirtualMachine ${f.vm ?? '?'} taken ${at}: ${holds(f.memory ?? 'no')} (the VM was ${f.state === 'shutoff' ? 'stopped' : f.state ?? '?'})`,
      data: f,
    };
  },
};
