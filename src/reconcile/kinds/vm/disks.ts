/**
 * VMs and the disks they hold open: the live disks of domains with a restart pending (which
 * running domain has a disk open is the core's `runningDiskHolders`), cross-VM adjustments after diff (a VM restarted
 * when its volume or network is replaced; a disk changes hands only after its holder stopped), and
 * disk files deleted under a running VM.
 */
import { posix } from 'node:path';
import { parseResourceKey } from '../../../model/kinds.js';
import type { DomainDetail } from '../../../model/definitions.js';
import { parseDomainXml } from '../../../libvirt/xml/domain.js';
import { addNote, change, withdrawNotes, type ResourceChange } from '../../core/change.js';
import type { HostPort } from '../../ports.js';
import { definitionOf, runningDiskHolders, type Observed } from '../../core/observed.js';
import { ownershipById } from '../../core/ownership.js';
import { usedKeys } from './define.js';
import { pendingRestart } from './facts.js';
import { stopNote } from './restart.js';
import type { DesiredVm } from './types.js';

/**
 * A running VM whose volume or network is replaced is stopped first and started again after.
 * So is one attached to a network virtform starts again after it went down: libvirt does not
 * put a running VM's interfaces back on the bridge of a restarted network.
 */
export function restartDisrupted(vms: DesiredVm[], observed: Observed, changes: ResourceChange[], opts: { gracefulStop?: boolean }): void {
  const disrupted = new Map<string, string>();
  for (const c of changes) {
    if (c.action === 'replace') disrupted.set(c.key, 'is replaced');
    else if (c.kind === 'Network' && c.steps.some((s) => s.op === 'network.ensure' && s.start)) {
      disrupted.set(c.key, 'is started again (its running VMs lost their connection to it)');
    }
  }
  if (disrupted.size === 0) return;
  for (const r of vms) {
    if (!observed.domains.get(r.name)?.active) continue;
    const uses = usedKeys(r.config, r.host).filter((k) => disrupted.has(k));
    if (uses.length === 0) continue;
    let c: ResourceChange | undefined = changes.find((x) => x.key === r.key);
    if (c?.action === 'conflict') continue;
    if (!c) {
      c = change(r, 'update', '', ownershipById(observed, r.kind, r.name, observed.domains.get(r.name)?.uuid, r.key));
      changes.push(c);
    }
    const why = `restarted because ${uses.map((k) => `${k} ${disrupted.get(k)}`).join(', ')}`;
    c.reason = c.reason ? `${c.reason}; ${why}` : why;
    // The restart of restartPolicy: OnChange is this one now.
    c.steps = c.steps.filter((s) => !(s.op === 'vm.stop' && s.restart) && !(s.op === 'vm.start'));
    if (!c.steps.some((s) => s.op === 'vm.stop')) {
      c.steps.unshift({ op: 'vm.stop', graceful: opts.gracefulStop ?? true });
      addNote(c, 'stop', stopNote(opts.gracefulStop ?? true));
    }
    if (r.state === 'running') c.steps.push({ op: 'vm.start' });
    // Restarted anyway: nothing is left for the next boot.
    withdrawNotes(c, 'next-boot', 'restart');
  }
}

/** Why a VM's restart or start waits for another VM to release a disk (for notices), by VM name. */
export const HANDOVER_WAITS = new WeakMap<Observed, Map<string, string>>();

/**
 * The live disks of running domains whose record has a restart pending (their persistent
 * definition no longer says what they have open), for `Observed.liveDisks` (`runningDiskHolders`
 * in the core): from the live XML the definitions' read already fetched (`liveXml`, read for exact
 * drift), no second call. Only a host that gives no live XML (the fake host) is asked, one call each.
 */
export async function readLiveDisks(
  host: HostPort, observed: Observed, wanted: Map<string, { name: string }>, definitions: Map<string, DomainDetail>,
): Promise<void> {
  const map = new Map<string, string[]>();
  await Promise.all([...wanted].map(async ([key, w]) => {
    if (pendingRestart(observed, key, w.name) === undefined) return;
    // An unparsed definition (the no-op fast path) is parsed: its live XML is read here.
    const d = definitions.get(key) ?? definitionOf(observed, 'VirtualMachine', key);
    if (!d) return;
    const paths = d.liveXml !== undefined
      ? parseDomainXml(d.liveXml).disks.map((x) => x.path)
      : (await host.getRunningDomain(w.name))?.disks.map((x) => x.path);
    if (paths) map.set(w.name, paths);
  }));
  if (map.size > 0) observed.liveDisks = map;
}

/**
 * A disk changes hands only after its holder let go of it: a VM's start (a start, or the start of
 * a restart) that opens a disk another running domain has open waits for that domain's stop or
 * delete in the same plan (a plan edge, not timing: QEMU's image lock would refuse the start).
 * When the holder is not stopped by this plan (it keeps running: restartPolicy Never, or not
 * virtform's), a running VM is not restarted (its restart stays pending, and happens at a later
 * run once the disk is free) and a stopped one is not started, with a note saying why.
 */
export function orderDiskHandover(vms: DesiredVm[], observed: Observed, changes: ResourceChange[]): void {
  // A running VM whose definition the no-op fast path left unparsed holds exactly the disks it
  // declares (its comparison, disks included, found no difference): it can block another VM only
  // on a path another VM declares too, so only such a one is parsed.
  const declared = new Map<string, number>();
  for (const r of vms) for (const p of new Set(r.config.disks.map((d) => d.path))) declared.set(p, (declared.get(p) ?? 0) + 1);
  const byKey = new Map(vms.map((r) => [r.key, r]));
  const holders = runningDiskHolders(observed, (key) => {
    const r = byKey.get(key);
    return !r || observed.liveDisks?.has(r.name) === true || r.config.disks.some((d) => (declared.get(d.path) ?? 0) > 1);
  });
  if (holders.size === 0) return;
  const waits = new Map<string, string>();
  for (const r of vms) {
    const blockers = new Map<string, string>();
    for (const d of r.config.disks) for (const h of holders.get(d.path) ?? []) if (h !== r.name && !blockers.has(h)) blockers.set(h, d.path);
    if (blockers.size === 0) continue;
    const at = changes.findIndex((x) => x.key === r.key);
    const c = at >= 0 ? changes[at] : undefined;
    const releasing: string[] = [];
    const keeping: [string, string][] = [];
    for (const [h, path] of blockers) {
      const hc = changes.find((x) => x.kind === 'VirtualMachine' && x.name === h && x.action !== 'conflict' && !x.held);
      if (hc && hc.steps.some((s) => s.op === 'vm.stop' || s.op === 'vm.delete')) releasing.push(hc.key);
      else keeping.push([h, path]);
    }
    const why = keeping.map(([h, path]) => `${path} is in use by running VM ${h}`).join(', ');
    if (keeping.length > 0) waits.set(r.name, `waits until ${why.replace(/ is in use by running VM /g, ' is released by VM ')} (stopped, or restarted without it)`);
    if (!c || c.action === 'conflict' || !c.steps.some((s) => s.op === 'vm.start')) continue;
    if (releasing.length > 0) c.waitFor = [...(c.waitFor ?? []), { op: 'vm.start', keys: releasing }];
    // Stopped for a replaced volume or restarted network: that stop is needed whatever happens.
    const forced = c.steps.some((s) => s.op === 'vm.stop' && !s.restart);
    if (keeping.length === 0 || forced) continue;
    const wasRunning = observed.domains.get(r.name)?.active ?? false;
    if (wasRunning) {
      // Not stopped at all: stopping it would leave it down (its start would fail on the image lock).
      c.steps = c.steps.filter((s) => s.op !== 'vm.stop' && s.op !== 'vm.start');
      withdrawNotes(c, 'restart', 'stop');
      c.notes.push(`not restarted now: ${why}; the restart is pending and happens once it is released`);
    } else {
      c.steps = c.steps.filter((s) => s.op !== 'vm.start');
      c.notes.push(`not started: ${why}; it starts once that VM has released it (stopped, or restarted without it)`);
    }
    if (c.steps.length === 0 && wasRunning) changes.splice(at, 1);
  }
  // The restart's stop waits too, unless the holder waits for this VM in turn (two VMs swapping
  // disks: both stop first): should the holder's stop fail, this VM keeps running.
  const startWaits = (c: ResourceChange): string[] => (c.waitFor ?? []).filter((w) => w.op === 'vm.start').flatMap((w) => w.keys);
  for (const c of changes) {
    if (c.kind !== 'VirtualMachine' || !c.steps.some((s) => s.op === 'vm.stop' && s.restart)) continue;
    const keys = startWaits(c).filter((k) => !startWaits(changes.find((x) => x.key === k) ?? c).includes(c.key));
    if (keys.length > 0) c.waitFor = [...(c.waitFor ?? []), { op: 'vm.stop', keys }];
  }
  if (waits.size > 0) HANDOVER_WAITS.set(observed, waits);
}

/** The plain words for disk files deleted under a running VM. */
export function deletedText(paths: string[]): string {
  return `restart required: ${paths.join(', ')} ${paths.length > 1 ? 'were' : 'was'} deleted outside virtform while the VM runs; ` +
    'the guest keeps writing into the deleted file, so everything it wrote since the deletion lives only there and will be lost at its next stop ' +
    '(recreating the file is a data-loss step: reconcile --allow-data-loss; the VM then boots from the new, empty file at its next start)';
}

/**
 * Disk files of a running VM that are gone from their pool's listing (seen through libvirt alone:
 * the pool's directory re-read, no /proc): QEMU still has them open.
 */
export function deletedOpenDisks(observed: Observed, name: string, paths: string[]): string[] {
  if (!observed.domains.get(name)?.active) return [];
  const listed = new Map<string, { has(name: string): boolean }>();
  for (const [key, d] of observed.definitions) {
    const pool = d as { name?: unknown; path?: unknown };
    if (parseResourceKey(key).kind !== 'StoragePool' || typeof pool.path !== 'string' || typeof pool.name !== 'string') continue;
    const names = observed.volumes.get(pool.name);
    if (names) listed.set(pool.path, names);
  }
  return paths.filter((p) => listed.get(posix.dirname(p))?.has(posix.basename(p)) === false);
}

export function deletedDiskNotes(observed: Observed, r: DesiredVm): string[] {
  const gone = deletedOpenDisks(observed, r.name, r.config.disks.map((d) => d.path));
  return gone.length > 0 ? [deletedText(gone)] : [];
}
