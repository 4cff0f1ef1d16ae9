/**
 * A VM's change: the real persistent definition against the manifest (field by field along the
 * field table, `fields.ts`), against what virtform applied last for drift, exact drift against the
 * baseline, devices attached live only, the seed, and then the steps: define, live changes, seed,
 * restart (restartPolicy) or the restart-required note, start/stop.
 */
import type { DomainCapabilities } from '../../../model/definitions.js';
import { canonicalJson, hashConfig } from '../../core/resource.js';
import { resourceKey } from '../../../model/kinds.js';
import {
  addNote, change, conflictOrAdopt, createReason, exactDrift, fieldChanges, interruptedOr, isMissingDrift, liveOnlyDevices, recordedConfig,
  type DiffContext, type FieldChange, type NoteTopic, type ResourceChange,
} from '../../core/change.js';
import { definitionLiveXml, definitionOf, definitionXml, runningDiskHolders, unchangedDefinition } from '../../core/observed.js';
import { ownershipById } from '../../core/ownership.js';
import type { ExactSpec } from '../../core/kind.js';
import { bootedSeed, factsOf, pendingRestart, shortDigest } from './facts.js';
import { compareVm, hotPlug, LIVE_ONLY, linesOf, liveOp, vmField, vmMatch, type HotPlug } from './fields.js';
import { resolveTargets } from './define.js';
import { buildDomainXml, parseDomainXml } from '../../../libvirt/xml/domain.js';
import { domainAdoptionDifferences } from '../../../libvirt/xml/domain-adopt.js';
import type { DomainDetail } from '../../../model/definitions.js';
import { domainDef } from './define.js';
import { diskView, matchNics } from './match.js';
import { mergeRestart, restartText, stopNote } from './restart.js';
import { planSeed, seedNameTaken, seedOp, seedVolumeMissing, shortLine } from './seed.js';
import type { DesiredVm, RestartRequired, VmConfig, VmFacts, VmOp } from './types.js';

/**
 * Why the host cannot run what a VM declares (its domain capabilities for the domain type in use),
 * else undefined; `notes` gets what it can run with a caveat.
 */
export function capabilityProblem(r: DesiredVm, caps: DomainCapabilities, notes: string[]): string | undefined {
  const c = r.config;
  const problems: string[] = [];
  const type = caps.domainType || 'this';
  if (c.cpu && !caps.cpuModes.includes(c.cpu.mode)) {
    problems.push(`spec.cpu.mode ${c.cpu.mode} is not offered by the host for ${type} domains` +
      `${caps.domainType === 'qemu' && c.cpu.mode === 'host-passthrough' ? ' (TCG emulates the CPU: there is no host CPU to pass through)' : ''}` +
      `; it offers ${caps.cpuModes.join(', ') || 'none'}`);
  } else if (c.cpu?.mode === 'custom' && c.cpu.model !== undefined) {
    const m = caps.cpuModels.find((x) => x.name === c.cpu!.model);
    if (!m) {
      const usable = caps.cpuModels.filter((x) => x.usable).map((x) => x.name);
      problems.push(`spec.cpu.model ${c.cpu.model} is not a CPU model the host knows for ${type} domains; usable models: ${usable.join(', ') || 'none'}`);
    } else if (!m.usable) {
      notes.push(`CPU model ${m.name} is listed as not usable on this host (the host CPU lacks some of its features): QEMU runs it without them`);
    }
  }
  if (c.graphics && !caps.graphicsTypes.includes(c.graphics.type)) {
    problems.push(`spec.graphics.type ${c.graphics.type} is not offered by the host's QEMU; it offers ${caps.graphicsTypes.filter((t) => t === 'vnc' || t === 'spice').join(', ') || 'no graphics'}`);
  }
  return problems.length ? `VirtualMachine ${r.name}: ${problems.join('; ')}` : undefined;
}

/**
 * Exact drift of domains. Nothing is ignored: measured on libvirt 9.0 / QEMU 7.2, the inactive
 * XML does not change when a domain starts or stops, its network restarts, or libvirtd restarts
 * (PCI addresses, the machine type and the default devices are written at define time).
 * What the field-level comparison explains: vCPUs, memory, description, `<os>`, `<cpu>`,
 * graphics, the balloon, the guest agent channel, and disks and NICs themselves with their
 * source, driver, target, boot order, model and MAC (not e.g. a disk's `<readonly/>` or a NIC's
 * `<link>`).
 */
export const VM_EXACT: ExactSpec = {
  object: 'domain',
  ignore: [],
  modelled: [
    /^(vcpu|vcpus|memory|currentMemory|description)$/,
    /^os(\/|$)/,
    /^cpu(\/|$)/,
    /^devices\/(graphics|memballoon)(\[|\/|$)/,
    /^devices\/channel\[target=org\.qemu\.guest_agent\.0\](\/|$)/,
    /^devices\/disk\[[^\]]*\](\/(source|driver|target|boot|address))?$/,
    /^devices\/interface\[[^\]]*\](\/(source|model|mac|address))?$/,
  ],
};

export function diffVm(r: DesiredVm, { observed, opts }: DiffContext): ResourceChange | undefined {
  const key = r.key;
  const own = ownershipById(observed, r.kind, r.name, observed.domains.get(r.name)?.uuid, key);
  const obs = observed.domains.get(r.name);
  const record = observed.records.get(key);
  // The no-op fast path: the definition and everything its comparison depends on are the ones an
  // earlier run compared without a difference (field lines and exact drift: none), so it is not
  // parsed nor compared again (`core/checks.ts`); the runtime (state, autostart, seed) still is.
  // The record's spec hash, or the same VM with its seed declared as the seedVolume it built (a
  // round trip through `export`): that switch alone changes nothing (`sameBuiltSeed`).
  const recordedCfg = own.state === 'owned' && record?.specHash !== r.specHash ? recordedConfig<VmConfig>(observed, key) : undefined;
  // Also the same VM when the manifest declares explicitly what the record resolved (a MAC virtform
  // chose, the domain type the domain has: an exported manifest, issue 24; `sameAsRecorded`).
  const specMatches = record?.specHash === r.specHash || (!!record?.specHash && (sameBuiltSeed(r, recordedCfg, record.specHash)
    || sameAsRecorded(r, recordedCfg, record.specHash, factsOf(observed, key), () => definitionOf(observed, 'VirtualMachine', key)?.type)));
  const unchanged = own.state === 'owned' && own.via === 'record' && specMatches && unchangedDefinition(observed, key);
  const cur = unchanged ? undefined : definitionOf(observed, 'VirtualMachine', key);
  const wantRunning = r.state === 'running';
  const graceful = opts.gracefulStop ?? true;
  const conflict = conflictOrAdopt(r, own) ?? seedNameTaken(r, observed, own, own.state === 'owned' ? recordedConfig<VmConfig>(observed, key) : undefined);
  if (conflict) return conflict;
  const noSeed = seedVolumeMissing(r, observed);
  if (noSeed) return change(r, 'conflict', noSeed, own);
  // What the definition asks of the hypervisor, checked before it is defined (libvirt would
  // define it and refuse it only at start).
  const capsNotes: string[] = [];
  const unmet = observed.domainCapabilities ? capabilityProblem(r, observed.domainCapabilities, capsNotes) : undefined;
  if (own.state === 'absent' || !obs) {
    if (unmet) return change(r, 'conflict', unmet, own);
    return change(r, 'create', createReason(record), own, {
      notes: capsNotes,
      drift: isMissingDrift(record),
      fields: fieldChanges(undefined, { ...r.config, state: r.state, autostart: r.autostart }).map(shortLine),
      steps: [
        { op: 'vm.define', define: true, autostart: r.autostart },
        ...(r.config.cloudInit && r.config.cloudInit.existing === undefined ? [seedOp(r.config.cloudInit)] : []),
        ...(r.state === 'running' ? [{ op: 'vm.start' as const }] : []),
      ],
    });
  }
  const adopting = own.state === 'foreign';
  const facts = adopting ? undefined : factsOf(observed, key);
  const running = obs.active;
  const pending = adopting ? undefined : pendingRestart(observed, key, r.name);
  const pendingFields = new Set(pending?.fields ?? []);

  // The real definition against the manifest; against what virtform applied last for drift.
  const fields: FieldChange[] = [];
  // Fields applied live (their `vm.live` operands), when the domain runs and stays running.
  const liveFields: string[] = [];
  let drift = false;
  // Hot-plug (issue 24): what is attached to and detached from the running domain.
  let hot: HotPlug = {};
  if (cur) {
    // Disk targets as assigned once (recorded, else the definition's), not by list position.
    const liveTargets = running && cur.liveXml ? parseDomainXml(cur.liveXml).disks.map((x) => x.target) : [];
    const want = resolveTargets(r.config, cur, facts?.disks, liveTargets);
    const match = matchNics(want.nics, cur.nics, facts?.nics);
    // Which of our disks another running domain has open: asked only when a disk is added (what
    // hot-plug needs it for), so the no-op fast path leaves the other running VMs unparsed otherwise.
    const curPaths = new Set(cur.disks.map((d) => d.path));
    const heldElsewhere = r.config.disks.some((d) => !curPaths.has(d.path))
      ? new Set([...runningDiskHolders(observed)].filter(([, names]) => names.some((n) => n !== r.name)).map(([p]) => p))
      : new Set<string>();
    const diffs = compareVm(cur, want, match, pendingFields, { runs: running && wantRunning, heldElsewhere });
    fields.push(...linesOf(diffs));
    liveFields.push(...diffs.filter((d) => d.effect === 'live').map((d) => d.field));
    if (running && wantRunning && diffs.some((d) => d.effect === 'live' && (d.field === 'disks' || d.field === 'nics'))) {
      const all = hotPlug({ cur: diskView(cur, want), want, pending: pendingFields, match: vmMatch(cur, want, match), heldElsewhere, runs: true });
      const live = new Set(liveFields);
      hot = { ...(live.has('disks') && all.disks ? { disks: all.disks } : {}), ...(live.has('nics') && all.nics ? { nics: all.nics } : {}) };
    }
    const recorded = adopting ? undefined : recordedConfig<VmConfig>(observed, key) ?? (specMatches ? r.config : undefined);
    const prev = recorded === r.config ? want : recorded ? resolveTargets(recorded, cur, facts?.disks, liveTargets) : undefined;
    // A line is drift when the host also differs there from what virtform applied last.
    const sinceApplied = new Set<string>();
    if (prev && fields.length > 0) {
      const applied = prev === want ? diffs : compareVm(cur, prev, matchNics(prev.nics, cur.nics, facts?.nics));
      for (const d of applied) {
        // A domain defined by an older virtform lacks what it did not define yet (a balloon, the guest agent channel): not drift.
        if (vmField(d.field)?.olderVirtform?.(facts)) continue;
        for (const f of d.changes) sinceApplied.add(f.field);
      }
    }
    for (const f of fields) if (sinceApplied.has(f.field)) f.drift = drift = true;
    // Adopting: what the definition virtform writes would change beyond the fields (video,
    // controllers, inputs, features, machine type, …), named under the adopt step (issue 24).
    if (adopting) fields.push(...adoptionLines(r, cur, want, match.macs, definitionXml(observed, key), fields));
  }
  // Exact drift: the whole definition against its baseline (a definition made transient has none to compare).
  const transient = obs.persistent === false;
  const exact = cur && !adopting && !transient ? exactDrift(observed, key, VM_EXACT, fields.length > 0) : [];
  for (const f of exact) f.effect = 'restart';
  fields.push(...exact);
  drift ||= exact.length > 0 || (transient && !adopting);
  // Devices of the running domain its definition lacks (attached live only): a restart drops
  // them; until then the restart-required mark names them (a detach could need the guest).
  const liveOnly = running && !adopting && !transient ? liveOnlyDevices(definitionLiveXml(observed, key), definitionXml(observed, key)) : [];
  const liveOnlyKnown = canonicalJson(pending?.running[LIVE_ONLY]) === canonicalJson(liveOnly.map((f) => f.field).join(', '));
  const liveOnlyNew = liveOnly.length > 0 && !liveOnlyKnown ? liveOnly : [];
  for (const f of liveOnlyNew) f.effect = 'restart';
  fields.push(...liveOnlyNew);
  drift ||= liveOnlyNew.length > 0;
  const seed = planSeed(r, observed, facts, adopting ? undefined : recordedConfig<VmConfig>(observed, key));
  drift ||= seed.drift;
  const specChanged = !adopting && !specMatches;
  const redefine = fields.length > 0 || adopting || specChanged || !(cur || unchanged) || transient;
  if (redefine && unmet) return change(r, 'conflict', unmet, own);

  // Converged: definition, state and autostart match (a pending restart is a notice, not a change).
  const restartNow = r.restartPolicy === 'OnChange' && running && wantRunning;
  if (!redefine && obs.autostart === r.autostart && running === wantRunning && !(restartNow && pending) && !seed.op) return undefined;

  const reasons: string[] = [];
  const notes: string[] = redefine ? [...capsNotes] : [];
  const topical: { notes: string[]; noteTopics?: { topic: NoteTopic; text: string }[] } = { notes };
  const steps: VmOp[] = [];
  const lines: FieldChange[] = [];
  if (running && !wantRunning) {
    steps.push({ op: 'vm.stop', graceful });
    lines.push({ field: 'spec.state', before: 'running', after: 'stopped' });
    reasons.push('desired stopped');
  }
  const live = running && wantRunning ? fields.filter((f) => f.effect === 'live') : [];
  const restart = running && wantRunning ? [...fields, ...seed.lines].filter((f) => f.effect !== 'live') : [];
  let restartRequired: RestartRequired | undefined;
  if (redefine || obs.autostart !== r.autostart) {
    lines.push(...fields);
    if (redefine) {
      const why = adopting ? 'adopting existing domain (metadata.adopt)'
        : transient ? 'definition removed outside virtform (drift): the running domain is defined again'
        : liveOnlyNew.length > 0 && fields.length === liveOnlyNew.length ? 'devices attached to the running domain outside virtform (drift): dropped at its next boot'
        : drift ? 'definition changed outside virtform (drift)'
        : fields.length > 0 ? interruptedOr(own, 'definition changed')
        : !cur && !unchanged ? interruptedOr(own, 'definition unreadable') : 'recording the declared config';
      reasons.push(why);
      // What the plan expects to be left for the next boot. A line that is drift was most likely
      // changed in the persistent definition only (`virsh … --config`): the running domain still
      // has the value asked for. apply records the real difference, running against defined.
      // The seed's lines are one entry, spec.cloudInit (booted against uploaded seed), added below.
      const forBoot = restart.filter((f) => !f.drift && !f.field.startsWith('spec.cloudInit.'));
      if (running && wantRunning && forBoot.length > 0) restartRequired = mergeRestart(pending, forBoot);
    }
    // Hot-plug first (attached and detached live and in the definition), then the definition
    // written whole (it reads the MACs the attach chose back from the host).
    const detach = { disks: hot.disks?.detach ?? [], nics: hot.nics?.detach ?? [] };
    const attach = { disks: hot.disks?.attach ?? [], nics: hot.nics?.attach ?? [] };
    if (detach.disks.length + detach.nics.length > 0) steps.push({ op: 'vm.detach', ...detach });
    if (attach.disks.length + attach.nics.length > 0) steps.push({ op: 'vm.attach', ...attach });
    // Adopting a definition that is already what virtform would define: only the owner marker is
    // written (the addresses, and everything libvirt filled in, stay as they are).
    const markerOnly = adopting && fields.length === 0 && steps.every((s) => s.op !== 'vm.attach' && s.op !== 'vm.detach');
    steps.push({
      op: 'vm.define', define: redefine,
      autostart: obs.autostart !== r.autostart || redefine ? r.autostart : undefined,
      ...(markerOnly ? { markerOnly: true } : {}),
    });
    if (markerOnly) notes.push('the definition is what virtform would define: adopting writes only virtform\'s owner marker into it');
    else if (adopting) notes.push('adopting defines the domain anew from the manifest: what the lines above name is rewritten, and libvirt assigns the device addresses again');
    if (obs.autostart !== r.autostart) {
      // Flipped on the host while the manifest stayed as applied: drift.
      const flipped = !adopting && !!record && record.specHash === r.specHash && !transient;
      lines.push({ field: 'spec.autostart', before: obs.autostart, after: r.autostart, ...(flipped ? { drift: true } : {}) });
      if (flipped) {
        drift = true;
        if (!redefine) reasons.push('autostart changed outside virtform (drift)');
      }
    }
  }
  if (seed.op) {
    // After the definition (a running domain keeps the seed file it opened), before a (re)start.
    steps.push(seed.op);
    lines.push(...seed.lines.map(shortLine));
    for (const n of seed.notes) addNote(topical, 'next-boot', n);
    if (seed.reason) reasons.push(seed.reason);
    if (seed.overwrites) addNote(topical, 'next-boot', `writes the seed built from spec.cloudInit over ${seed.overwrites.pool}/${seed.overwrites.volume}, the seedVolume virtform did not build (needs --allow-data-loss)`);
    const booted = bootedSeed(facts, obs.id);
    if (running && wantRunning && booted !== r.config.cloudInit?.seed) {
      restartRequired = mergeRestart(restartRequired ?? pending, [{ field: 'spec.cloudInit', before: shortDigest(booted), after: shortDigest(r.config.cloudInit?.seed) }]);
    }
  }
  else for (const n of seed.notes) notes.push(n);
  const setters = liveFields.filter((f) => f !== 'disks' && f !== 'nics');
  if (live.length > 0 && setters.length > 0) {
    const op = liveOp(setters, r.config);
    steps.push(op);
  }
  const mark = running && wantRunning ? restartRequired ?? pending : undefined;
  if (restartNow && restart.length > 0 && !mark) {
    steps.push({ op: 'vm.stop', graceful: true, restart: true }, { op: 'vm.start' });
    reasons.push('restart required (restartPolicy: OnChange)');
  } else if (mark && restartNow) {
    steps.push({ op: 'vm.stop', graceful: true, restart: true }, { op: 'vm.start' });
    reasons.push('restart required (restartPolicy: OnChange)');
    addNote(topical, 'restart', `restarts the VM to apply: ${restartText(mark).replace(/^restart required for /, '')}`);
  } else if (mark) {
    addNote(topical, 'next-boot', `${restartText(mark)}; takes effect on next boot (restartPolicy: Never)`);
  }
  if (!running && wantRunning) {
    steps.push({ op: 'vm.start' });
    lines.push({ field: 'spec.state', before: 'stopped', after: 'running' });
    reasons.push(record?.desiredState === 'running' ? 'domain is stopped (drift)' : 'desired running');
    drift ||= record?.desiredState === 'running';
  }
  if (liveOnlyNew.length > 0 && !steps.some((s) => s.op === 'vm.stop')) {
    addNote(topical, 'next-boot', `${liveOnlyNew.map((f) => f.field).join(', ')}: attached to the running domain only; dropped at its next boot (restartPolicy: Never)`);
  }
  const stop = steps.find((s): s is Extract<VmOp, { op: 'vm.stop' }> => s.op === 'vm.stop');
  if (stop) addNote(topical, 'stop', stopNote(stop.graceful));
  if (steps.length === 0) return undefined;
  const overwrites = seed.op?.op === 'vm.seed' && seed.overwrites ? seed.overwrites : undefined;
  return change(r, 'update', reasons.join('; ') || 'autostart differs', own, {
    fields: lines, ...topical, steps, adopt: adopting, drift,
    // Held by the data rule without --allow-data-loss: a seed virtform did not build is written over.
    ...(overwrites ? {
      dataLoss: [{
        volume: resourceKey('Volume', overwrites.volume, r.host), path: r.config.cloudInit?.path,
        why: [`the VM's seedVolume until now (not built by virtform): the seed built from spec.cloudInit is written over it`],
      }],
    } : {}),
  });
}

/**
 * Whether the desired VM is the recorded one (`specHash`) with only its seed declared differently:
 * as `seedVolume` naming the very volume virtform built from content before (pool and volume the
 * same; the CD-ROM is the same element). Such a VM needs no change at all (no seed step, no
 * redefinition): the export of a VM virtform converged round-trips to "No changes.".
 */
export function sameBuiltSeed(r: DesiredVm, recorded: VmConfig | undefined, specHash: string): boolean {
  const want = r.config.cloudInit;
  const had = recorded?.cloudInit;
  if (!want || want.existing === undefined || !had || had.existing !== undefined) return false;
  if (want.pool !== had.pool || want.volume !== had.volume) return false;
  return hashConfig({ ...r.config, cloudInit: had }) === specHash;
}

/**
 * Whether the desired VM is the recorded one with only what the record resolved declared
 * explicitly (issue 24: a manifest `virtform export` wrote, from libvirt alone): a NIC's MAC that
 * virtform chose itself (recorded as not declared), `spec.domainType` naming the type the domain
 * has, and the seed as the `seedVolume` virtform built ({@link sameBuiltSeed}). Such a VM needs no
 * change at all: the round trip of an export is "No changes.".
 */
export function sameAsRecorded(
  r: DesiredVm, recorded: VmConfig | undefined, specHash: string, facts: VmFacts | undefined, domainType: () => string | undefined,
): boolean {
  if (!recorded) return false;
  const cfg: VmConfig = { ...r.config };
  if (recorded.nics.length === cfg.nics.length) {
    cfg.nics = cfg.nics.map((n, i) => {
      const was = recorded.nics[i]!;
      const chosen = facts?.nics?.find((x) => !x.declared && x.mac.toLowerCase() === n.mac);
      return n.mac && !was.mac && chosen && chosen.network === n.network ? { ...n, mac: undefined } : n;
    });
  }
  if (cfg.domainType !== undefined && recorded.domainType === undefined && cfg.domainType === domainType()) delete cfg.domainType;
  const want = cfg.cloudInit;
  const had = recorded.cloudInit;
  if (want && want.existing !== undefined && had && had.existing === undefined && want.pool === had.pool && want.volume === had.volume) cfg.cloudInit = had;
  return hashConfig(cfg) === specHash;
}

/**
 * The plan lines of what adopting would rewrite in a foreign domain's definition beyond the
 * field-level lines: the definition virtform would define (the manifest, with the disk targets
 * and MACs the domain has) against the one on the host, after libvirt's normalization
 * (`domain-adopt.ts`). Each is `[restart]`: the running domain keeps what it has until it boots.
 */
function adoptionLines(
  r: DesiredVm, cur: DomainDetail, want: VmConfig, macs: (string | undefined)[], currentXml: string | undefined, fields: FieldChange[],
): FieldChange[] {
  if (currentXml === undefined) return [];
  const type = r.config.domainType ?? (cur.type === 'kvm' || cur.type === 'qemu' ? cur.type : 'kvm');
  let built: string;
  try {
    built = buildDomainXml(domainDef({ ...r, config: want }, type, cur.uuid, macs));
  } catch (e) {
    // Reported, not dropped: the define would fail the same way.
    return [{ field: 'definition', before: undefined, after: `cannot be built: ${(e as Error).message}`, effect: 'restart' }];
  }
  const disksOrNics = fields.some((f) => /^spec\.(disks|nics)\b/.test(f.field));
  return domainAdoptionDifferences(currentXml, built, { disksOrNics }).map((d) => ({
    field: d.path, before: d.before, after: d.after, xml: d.change, effect: 'restart' as const,
  }));
}
