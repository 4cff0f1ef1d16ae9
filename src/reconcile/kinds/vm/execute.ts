/** How each VM step runs on the host (idempotent), and the read-back after a live change. */
import { HostError, type HostPort } from '../../ports.js';
import { onHost, parseResourceKey } from '../../../model/kinds.js';
import { definitionOf } from '../../core/observed.js';
import { uuidToDefine } from '../common.js';
import type { ExecContext } from '../../core/kind.js';
import { domainDef, domainTypeFor, freshMac, resolveTargets, usedKeys } from './define.js';
import { bootedSeed, factsOf } from './facts.js';
import { applyLive } from './fields.js';
import { matchNics } from './match.js';
import { DETACH_NOTE, restartState } from './restart.js';
import { once, recordedSeeds, seedIsOurs, seedsMade } from './seed.js';
import type { DesiredVm, HotDisk, RestartRequired, SeedFact, VmFacts, VmOp } from './types.js';
import type { DomainDetail } from '../../../model/definitions.js';

export async function executeVm(op: VmOp, ctx: ExecContext<DesiredVm>): Promise<void> {
  const { host, step } = ctx;
  const observedDomain = ctx.observed.domains.get(step.name);
  const facts = (ctx.replacing ? undefined : factsOf(ctx.observed, step.key)) ?? {};
  switch (op.op) {
    case 'vm.define': {
      const d = ctx.desired!;
      if (!op.define) {
        if (op.autostart !== undefined) await host.setDomainAutostart(d.name, op.autostart);
        ctx.boundary();
        await ctx.record({ uuid: observedDomain?.uuid ?? null, observedStatus: observedDomain?.active ? 'running' : 'stopped', desiredState: d.state });
        return;
      }
      if (step.change.move?.role === 'target') await checkMovedDisks(ctx, step.change.move.from);
      // The definition a redefinition starts from (its MACs are kept): the one observed, or on a
      // retry the current one (the failed attempt may have defined it already).
      // After a hot-plug step of this change, the definition as it made it (the MACs it chose).
      const hotplugged = step.change.steps.some((s) => s.op === 'vm.attach' || s.op === 'vm.detach');
      const current = ctx.attempt === 1 && !hotplugged ? definitionOf(ctx.observed, 'VirtualMachine', step.key) : (await host.getDomain(d.name)) ?? undefined;
      let uuid = await uuidToDefine(ctx, observedDomain?.uuid, async () => current ?? null);
      // Disk targets as assigned once (recorded, else the definition's), as the diff resolved them.
      const liveNow = observedDomain?.active ? await host.getRunningDomain(d.name) : null;
      const config = resolveTargets(d.config, current, facts.disks, liveNow?.disks.map((x) => x.target) ?? []);
      const { macs } = matchNics(config.nics, current?.nics ?? [], facts.nics);
      const taken = new Set([...macs, ...(current?.nics ?? []).map((n) => n.mac.toLowerCase())].filter((m): m is string => !!m));
      const resolved = macs.map((m) => {
        if (m) return m;
        const fresh = freshMac(taken);
        taken.add(fresh);
        return fresh;
      });
      // Adopting a definition that is already virtform's (the plan said so): the owner marker only.
      if (op.markerOnly && host.setDomainMarker && current) await host.setDomainMarker(d.name, { kind: d.kind, name: d.name, specHash: d.specHash });
      else uuid = (await host.defineDomain(domainDef({ ...d, config }, await domainTypeFor(host, d, current, !!observedDomain), uuid, resolved))).uuid;
      if (op.autostart !== undefined) await host.setDomainAutostart(d.name, op.autostart);
      ctx.boundary();
      const next: VmFacts = {
        balloon: 'virtio',
        guestAgent: d.config.guestAgent ?? true,
        nics: d.config.nics.map((n, i) => ({ network: n.network, model: n.model, mac: resolved[i]!, declared: !!n.mac })),
        disks: config.disks.map((x) => ({ path: x.path, target: x.target })),
      };
      const ci = d.config.cloudInit;
      const seedVolume = ci?.existing !== undefined ? { pool: ci.pool, volume: ci.volume } : facts.seedVolume;
      // The mark as an earlier step of this change left it (a detach the guest did not complete).
      const previous = hotplugged && ctx.facts ? ((await ctx.facts()) as VmFacts).restartRequired : facts.restartRequired;
      await ctx.record({
        uuid: uuid ?? null, observedStatus: observedDomain?.active ? 'running' : 'stopped',
        desiredState: d.state, config: true,
        facts: { ...next, seedVolume: seedVolume ?? null, restartRequired: observedDomain?.active ? await restartState(host, d.name, previous, { facts, current: facts.seed?.sha256 }) : null },
      });
      return;
    }
    case 'vm.live': {
      const balloonBefore = op.memoryKiB !== undefined ? await host.domainBalloonKiB(step.name) : null;
      // The live setters of the field table, in its order.
      await applyLive(host, step.name, op);
      ctx.boundary();
      // Read back what the guest did with it: the balloon's actual size, the vCPUs its agent sees online.
      const unapplied = await liveReadBack(host, step.name, op, balloonBefore);
      const rr = await restartState(host, step.name, facts.restartRequired, { facts, current: facts.seed?.sha256 });
      await ctx.record({ observedStatus: 'running', desiredState: ctx.desired!.state, facts: { restartRequired: withUnapplied(rr, unapplied, facts.restartRequired), liveCheck: unapplied.check } });
      return;
    }
    case 'vm.detach':
      await detachDevices(op, ctx, facts);
      return;
    case 'vm.attach':
      await attachDevices(op, ctx, facts);
      return;
    case 'vm.seed': {
      const d = ctx.desired!;
      const image = d.seedImage;
      if (!image || `sha256:${image.sha256}` !== op.sha256) throw new Error(`internal error: no seed image ${op.sha256} for ${step.key}`);
      // A new file every time (never written in place): a running domain keeps reading the seed it
      // opened at its start, a half-written seed is never what a booting guest finds. An existing
      // file of that name is deleted only when it is virtform's (recorded, named by an interrupted
      // step, or made by this run): one that appeared since the plan was made is not overwritten.
      const made = seedsMade(ctx.observed);
      const at = `${op.pool}/${op.volume}`;
      if (await host.getVolume(op.pool, op.volume)) {
        // `replace`: the VM's seedVolume until now, written over with --allow-data-loss (the plan held it otherwise).
        if (!d.adopt && !op.replace && !made.has(at) && !seedIsOurs(ctx.observed, step.key, op.pool, op.volume)) {
          throw new HostError('already-exists', `a volume ${op.volume} that virtform did not create exists in pool ${op.pool}: the cloud-init seed is not written over it`);
        }
        await host.deleteVolume(op.pool, op.volume);
      }
      made.add(at);
      await host.createVolume({ pool: op.pool, name: op.volume, capacityBytes: image.iso.length, format: 'raw', mode: 0o600 });
      await host.uploadVolume(op.pool, op.volume, once(image.iso), { sparse: false });
      const old = facts.seed;
      if (old && (old.pool !== op.pool || old.volume !== op.volume)) await host.deleteVolume(old.pool, old.volume);
      const live = await host.getRunningDomain(step.name);
      // Built now: the seedVolume it replaces (if any) is no longer the VM's.
      const seedFacts = { seed: { pool: op.pool, volume: op.volume, sha256: op.sha256 } satisfies SeedFact, seedVolume: null };
      const rr = live ? await restartState(host, step.name, facts.restartRequired, { facts, current: op.sha256 }) : null;
      ctx.boundary();
      await ctx.record({
        observedStatus: live ? 'running' : 'stopped', desiredState: d.state,
        facts: {
          ...seedFacts,
          // What the running domain booted with stays known once the volume holds another seed.
          seedBooted: live ? { sha256: bootedSeed(facts, live.id), domainId: live.id } : null,
          restartRequired: rr,
        },
      });
      return;
    }
    case 'vm.unseed': {
      await host.deleteVolume(op.pool, op.volume);
      const live = await host.getRunningDomain(step.name);
      const rr = live ? await restartState(host, step.name, facts.restartRequired, { facts, current: undefined }) : null;
      ctx.boundary();
      await ctx.record({
        observedStatus: live ? 'running' : 'stopped', desiredState: ctx.desired!.state,
        facts: { seed: null, seedBooted: live ? { sha256: bootedSeed(facts, live.id), domainId: live.id } : null, restartRequired: rr },
      });
      return;
    }
    case 'vm.start': {
      const atMs = Date.now();
      await host.startDomain(step.name);
      const ci = ctx.desired!.config.cloudInit;
      const id = (await host.getRunningDomain(step.name))?.id;
      ctx.boundary();
      // Started (again): nothing is left for the next boot; it opened the seed on the volume now.
      // When (and as which libvirt domain id): DHCP leases from before are not its addresses.
      await ctx.record({
        observedStatus: 'running', desiredState: ctx.desired!.state,
        facts: {
          restartRequired: null, seedBooted: ci && id !== undefined ? { sha256: ci.seed, domainId: id } : null,
          startedAt: id !== undefined ? { atMs, domainId: id } : null,
        },
      });
      return;
    }
    case 'vm.stop':
      await host.stopDomain(step.name, { graceful: op.graceful, timeoutMs: ctx.shutdownTimeoutMs });
      ctx.boundary();
      await ctx.record({ observedStatus: 'stopped', desiredState: ctx.desired?.state ?? 'stopped' });
      return;
    case 'vm.delete':
      await host.stopDomain(step.name, { graceful: op.graceful ?? false, timeoutMs: ctx.shutdownTimeoutMs });
      // Its seed is derived data: gone with the VM (never a data-loss hold). Before the domain, so
      // that a run interrupted in between still finds the domain, and this step runs again.
      for (const x of recordedSeeds(op, factsOf(ctx.observed, step.key))) await host.deleteVolume(x.pool, x.volume);
      await host.undefineDomain(step.name);
      ctx.boundary();
      await ctx.forgetIfUndeclared();
      return;
  }
}

/** How long the guest gets to apply a live memory change (its balloon driver moves in steps). */
const BALLOON_WAIT_MS = 10_000;
/** ... and how long a balloon that has not moved at all is waited for (no balloon driver in the guest). */
const BALLOON_STILL_MS = 3_000;

interface Unapplied {
  /** Fields the guest did not take, with what it runs with and what was asked. */
  fields: { field: string; running: number; defined: number; note: string }[];
  /** What could be checked: `memory verified`, `vCPUs not verified (no guest agent answered)`, … */
  check: string[];
  /** libvirt's id of the running domain (set when something was not applied). */
  domainId?: number;
}

/**
 * After a live change: the balloon's `actual` memory after a bounded wait (it must reach the
 * target: a guest without a balloon driver keeps its memory), and the vCPUs the guest agent sees
 * online (only when an agent answers: "not verified" otherwise).
 */
async function liveReadBack(host: HostPort, name: string, op: Extract<VmOp, { op: 'vm.live' }>, before: number | null): Promise<Unapplied> {
  const out: Unapplied = { fields: [], check: [] };
  if (op.memoryKiB !== undefined) {
    const target = op.memoryKiB;
    const close = (v: number): boolean => Math.abs(v - target) <= Math.max(1024, target / 100);
    const started = Date.now();
    let actual = await host.domainBalloonKiB(name);
    while (actual !== null && !close(actual) && Date.now() - started < BALLOON_WAIT_MS) {
      if (actual === before && Date.now() - started >= BALLOON_STILL_MS) break;
      await new Promise((r) => setTimeout(r, 250));
      actual = await host.domainBalloonKiB(name);
    }
    if (actual === null) out.check.push('memory not verified (no balloon stats)');
    else if (close(actual)) out.check.push('memory verified');
    else {
      out.check.push('memory not applied by the guest');
      out.fields.push({
        field: 'spec.memoryKiB', running: actual, defined: target,
        note: `the guest did not apply the memory change (its balloon stays at ${actual / 1024}MiB: no balloon driver in the guest?)`,
      });
    }
  }
  if (op.vcpus !== undefined) {
    const online = await host.guestOnlineVcpus(name);
    if (online === null) out.check.push('vCPUs not verified (no guest agent answered)');
    else if (online >= op.vcpus) out.check.push('vCPUs verified');
    else {
      out.check.push('vCPUs not onlined by the guest');
      out.fields.push({ field: 'spec.vcpus', running: online, defined: op.vcpus, note: `the guest has ${online} vCPUs online of ${op.vcpus}` });
    }
  }
  if (out.fields.length > 0) out.domainId = (await host.getRunningDomain(name))?.id;
  return out;
}

/** The restart-required mark with the live changes the guest did not take. */
function withUnapplied(rr: RestartRequired | null, u: Unapplied, previous: RestartRequired | undefined): RestartRequired | null {
  if (u.fields.length === 0) return rr;
  const base: RestartRequired = rr ?? { fields: [], running: {}, defined: {}, since: new Date().toISOString() };
  const out: RestartRequired = { ...base, fields: [...base.fields], running: { ...base.running }, defined: { ...base.defined }, notes: [...(base.notes ?? [])] };
  for (const f of u.fields) {
    if (!out.fields.includes(f.field)) out.fields.push(f.field);
    out.running[f.field] = f.running;
    out.defined[f.field] = f.defined;
    out.notes!.push(f.note);
  }
  out.domainId ??= u.domainId ?? previous?.domainId;
  return out;
}

/**
 * A cold move's target define (and so the source's undefine, ordered after it) runs only once every
 * volume the VM moved with is copied AND verified here: a volume the VM also has recorded on its
 * source host must carry a verified `move` fact in this host's record. Whatever the plan says, a
 * VM is never defined on an empty or partial copy of its disk (the source keeps everything).
 */
async function checkMovedDisks(ctx: ExecContext<DesiredVm>, from: string): Promise<void> {
  if (!ctx.factsOf) return;
  const d = ctx.desired!;
  for (const key of usedKeys(d.config, ctx.step.host)) {
    if (parseResourceKey(key).kind !== 'Volume') continue;
    if ((await ctx.factsOf(onHost(key, from))) === undefined) continue; // not on the source: not moving with it
    const move = (await ctx.factsOf(key))?.move as { verified?: unknown } | undefined;
    if (move?.verified !== true) {
      throw new HostError('invalid', `${key} has no verified copy from host ${from} here: VirtualMachine ${d.name} is not defined on it (the source keeps the VM and its data)`);
    }
  }
}

// --- hot-plug (issue 24; helper restart) -----------------------------------------------------

/** How long the guest gets to complete a live detach (ACPI unplug) by default (`--detach-timeout`). */
export const DETACH_TIMEOUT_MS = 30_000;

const hasDisk = (d: DomainDetail | null | undefined, x: HotDisk): boolean => !!d?.disks.some((y) => y.target === x.target && y.path === x.path);
const hasNic = (d: DomainDetail | null | undefined, mac: string): boolean => !!d?.nics.some((y) => y.mac.toLowerCase() === mac);

/**
 * Attach disks and NICs to the running domain and to its definition, each where it is missing
 * (idempotent: a retry or a run after a crash attaches only what is not there). A NIC without a
 * known MAC gets one chosen now (a retry finds the one a failed attempt attached).
 */
async function attachDevices(op: Extract<VmOp, { op: 'vm.attach' }>, ctx: ExecContext<DesiredVm>, facts: VmFacts): Promise<void> {
  const { host, step } = ctx;
  const [live, persistent] = await Promise.all([host.getRunningDomain(step.name), host.getDomain(step.name)]);
  for (const x of op.disks) {
    const busy = live?.disks.find((y) => y.target === x.target && y.path !== x.path);
    if (busy) {
      throw new HostError('invalid', `disk target ${x.target} of the running domain is still held by ${busy.path} (a detach the guest has not completed): ` +
        `${x.path} is not attached; restart the VM (virtform restart ${step.name})`);
    }
    await host.attachDomainDevice(step.name, { disk: x }, { live: !!live && !hasDisk(live, x), config: !hasDisk(persistent, x) });
  }
  const before = new Set((definitionOf(ctx.observed, 'VirtualMachine', step.key)?.nics ?? []).map((n) => n.mac.toLowerCase()));
  const taken = new Set([...(live?.nics ?? []), ...(persistent?.nics ?? [])].map((n) => n.mac.toLowerCase()));
  const claimed = new Set<string>();
  for (const n of op.nics) {
    // Attached by an earlier attempt of this step: in the definition now, not when observed.
    const earlier = n.mac ? undefined : persistent?.nics.find((y) => y.network === n.network && y.model === n.model
      && !before.has(y.mac.toLowerCase()) && !claimed.has(y.mac.toLowerCase()))?.mac.toLowerCase();
    const mac = n.mac ?? earlier ?? freshMac(taken);
    taken.add(mac);
    claimed.add(mac);
    await host.attachDomainDevice(step.name, { nic: { network: n.network, model: n.model, mac } }, { live: !!live && !hasNic(live, mac), config: !hasNic(persistent, mac) });
  }
  ctx.boundary();
  const rr = live ? await restartState(host, step.name, facts.restartRequired, { facts, current: facts.seed?.sha256 }) : null;
  await ctx.record({ observedStatus: live ? 'running' : 'stopped', desiredState: ctx.desired!.state, facts: { restartRequired: rr } });
}

/**
 * Detach disks and NICs from the definition (at once) and from the running domain (a request the
 * guest completes: ACPI unplug), then wait up to the detach timeout for the running domain to lose
 * them. One the guest did not release is reported (a note under the step) and kept in the
 * restart-required mark with the reason, never assumed gone.
 */
async function detachDevices(op: Extract<VmOp, { op: 'vm.detach' }>, ctx: ExecContext<DesiredVm>, facts: VmFacts): Promise<void> {
  const { host, step } = ctx;
  const [live, persistent] = await Promise.all([host.getRunningDomain(step.name), host.getDomain(step.name)]);
  const requested: { what: string; gone(d: DomainDetail): boolean }[] = [];
  const started = Date.now();
  for (const x of op.disks) {
    const where = { live: hasDisk(live, x), config: hasDisk(persistent, x) };
    if (where.live || where.config) await host.detachDomainDevice(step.name, { disk: x }, where);
    if (where.live) requested.push({ what: `disk ${x.target} (${x.path})`, gone: (d) => !hasDisk(d, x) });
  }
  for (const n of op.nics) {
    const mac = n.mac.toLowerCase();
    const where = { live: hasNic(live, mac), config: hasNic(persistent, mac) };
    if (where.live || where.config) await host.detachDomainDevice(step.name, { nic: { ...n, mac } }, where);
    if (where.live) requested.push({ what: `NIC ${mac} (network ${n.network})`, gone: (d) => !hasNic(d, mac) });
  }
  ctx.boundary();
  const timeoutMs = ctx.detachTimeoutMs ?? DETACH_TIMEOUT_MS;
  let left = requested;
  for (;;) {
    const now = left.length > 0 ? await host.getRunningDomain(step.name) : null;
    left = now ? left.filter((r) => !r.gone(now)) : [];
    if (left.length === 0 || Date.now() - started >= timeoutMs) break;
    await new Promise((r) => setTimeout(r, 250));
  }
  const notes = left.map((r) => `${DETACH_NOTE} within ${Math.round(timeoutMs / 1000)} s: ${r.what} stays attached to the running domain until it stops ` +
    '(its definition no longer has it; the guest ignored or has not yet handled the unplug request: no OS running, paused, or refused)');
  for (const n of notes) ctx.note?.(n);
  let rr = live ? await restartState(host, step.name, facts.restartRequired, { facts, current: facts.seed?.sha256 }) : null;
  if (notes.length > 0 && rr) rr = { ...rr, notes: [...new Set([...(rr.notes ?? []), ...notes])] };
  await ctx.record({ observedStatus: live ? 'running' : 'stopped', desiredState: ctx.desired!.state, facts: { restartRequired: rr } });
}
