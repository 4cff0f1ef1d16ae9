import {
  EXIT, dataDirOf, errorMessage, loadCacheFile, whoAmI, leaseTiming, loadDesired, manifestErrorsJson, notAManifestFolder, openStore, resolvePolicy, useColor, verifyHostIdentity,
  type JsonManifestError, type LeaseFlags,
} from '../common.js';
import type { MaxDeletions } from '../../reconcile/safety.js';
import type { Suspension } from '../../state/index.js';
import { openHost, type LibvirtHostOptions } from '../../reconcile/adapters/libvirt-host.js';
import { reconcile } from '../../reconcile/engine.js';
import { faultWrapperFromEnv } from '../../reconcile/faults.js';
import { LeaseHeldError, defaultDbPath, type Lease, type StateStore } from '../../state/index.js';
import { brakeLines, planToJson, renderApplyEvent, renderPlan, summaryLine } from '../render.js';
import type { HostPort } from '../../reconcile/ports.js';
import { imageCacheFor } from '../../reconcile/images.js';
import { ProgressLine } from '../progress.js';
import { waitAfterApply, type WaitReport } from '../wait.js';
import { buildDesired, type Desired } from '../../reconcile/desired.js';
import { gitDesired, gitInput, type GitDesired, type GitFlags } from '../git.js';
import { redactUrl } from '../../git/index.js';
import { formatManifestError } from '../../manifest/index.js';
import { kindOf } from '../../reconcile/kinds/index.js';
import type { DesiredState, LoadCacheStats } from '../../manifest/index.js';
import { fleetHosts } from '../../fleet/parts.js';
import { engineFlagOptions, fleetRefusal, reconcileFleet } from './reconcile-fleet.js';
import { readFile, rename, writeFile } from 'node:fs/promises';
import { resolve as resolvePath } from 'node:path';
import {
  StalePlanError, applySavedPlan, consentText, manifestDifferences, parseSavedPlan, savedPlanDocument, type SavedPlan,
} from '../../reconcile/saved-plan.js';
import { leaseOrQueue } from '../lease-or-queue.js';
import type { RequestRecord } from '../../state/index.js';

export interface ReconcileFlags extends GitFlags, LeaseFlags {
  uri: string;
  /** auto (default) | kvm | qemu */
  domainType?: LibvirtHostOptions['domainType'];
  db?: string;
  /** `--data-dir`: the folder of the image and git caches. */
  dataDir?: string;
  dryRun?: boolean;
  detailedExitcode?: boolean;
  json?: boolean;
  allowEmpty?: boolean;
  /** Consent to steps that destroy data; without it they are held (exit 1). */
  allowDataLoss?: boolean;
  /** The mass-deletion brake: a number, `all`, or undefined (default max(5, 10% of owned)). */
  maxDeletions?: MaxDeletions;
  /** Apply even though the state DB is suspended (`virtform suspend`). */
  ignoreSuspend?: boolean;
  /** Policy file (default /etc/virtform/policy.yaml when it exists). */
  policy?: string;
  concurrency: number;
  maxAttempts: number;
  retryDelay: number;
  shutdownTimeout: number;
  /** `--move-bandwidth`, bytes per second. */
  moveBandwidth?: number;
  /** Seconds the steps in flight may still run after SIGTERM/SIGINT (default 30). */
  stopTimeout?: number;
  /** Seconds without connection, answer or data before an image download fails (default 30). */
  downloadTimeout?: number;
  color?: boolean;
  /** After a successful apply, wait for the addresses of the VMs declared running (src/cli/wait.ts). */
  wait?: boolean;
  /** Seconds (default 300). */
  waitTimeout?: number;
  /** --wait-for: wait for these VMs only (implies --wait). */
  waitFor?: string[];
  /** Seconds to wait for the writer lease while another process holds it (default 0: exit 1 at once). */
  lockTimeout?: number;
  /** Allow plain qemu+tcp to a non-loopback address (every host of the run). */
  insecure?: boolean;
  /** `--uri` was given (flag or VIRTFORM_URI): refused with Host manifests. */
  uriGiven?: boolean;
  /** Host manifests: each rejected host with its filter, the winner's score parts. */
  explain?: boolean;
  /** Host manifests: propose/make rebalancing moves (at most `maxMoves`). */
  rebalance?: boolean;
  maxMoves?: number;
  /** `--out FILE` with `--dry-run`: write the saved plan (src/reconcile/saved-plan.ts). */
  out?: string;
  /** `--plan FILE`: apply exactly the saved plan's steps, or refuse (exit 1) naming what changed. */
  plan?: string;
  /** `--no-queue` (false): with --plan, exit 1 naming the holder instead of queueing for a watcher. */
  queue?: boolean;
  /** `--queue-timeout` seconds: with --plan, how long to wait for a watcher to carry the plan out. */
  queueTimeout?: number;
}

export async function runReconcile(dirArg: string | undefined, o: ReconcileFlags): Promise<number> {
  const stopped = { bySignal: false };
  const code = await reconcileCommand(dirArg, o, stopped);
  // After a signal, steps abandoned at the stop timeout may still hold the event loop (a download
  // or a call that does not return): the journal and the DB are closed, so end the process now.
  if (stopped.bySignal) process.exit(code);
  return code;
}

async function reconcileCommand(dirArg: string | undefined, o: ReconcileFlags, stopped: { bySignal: boolean }): Promise<number> {
  const out = (s: string): void => void process.stdout.write(s);
  const err = (s: string): void => void process.stderr.write(s);
  const style = { color: !o.json && useColor(o.color) };

  // Invalid input: the text on stderr; with --json also one document on stdout listing every error.
  const invalid = (errors: JsonManifestError[]): number => {
    if (o.json) out(`${JSON.stringify({ dryRun: o.dryRun === true, outcome: 'invalid', errors }, null, 2)}\n`);
    return EXIT.invalid;
  };
  const wholeInput = (message: string): JsonManifestError[] =>
    [{ file: dirArg ?? o.git ?? '', line: 1, col: 1, kind: null, name: null, field: null, message }];

  if (o.waitFor) o.wait = true;
  // Saved plans: --out with --dry-run only; --plan applies (consent comes from the plan).
  const usage = savedPlanUsage(o);
  if (usage) {
    err(`virtform: ${usage}\n`);
    return invalid(wholeInput(usage));
  }
  let saved: SavedPlan | undefined;
  if (o.plan) {
    let text: string;
    try {
      text = await readFile(o.plan, 'utf8');
    } catch (e) {
      const m = `cannot read the plan ${o.plan}: ${errorMessage(e)}`;
      err(`virtform: ${m}; nothing was changed\n`);
      return invalid(wholeInput(m));
    }
    const parsed = parseSavedPlan(text, o.plan);
    if (!parsed.ok) {
      err(`virtform: ${parsed.message}; nothing was changed\n`);
      if (parsed.code === 2) return invalid(wholeInput(parsed.message));
      if (o.json) out(`${JSON.stringify({ dryRun: false, outcome: 'refused', plan: o.plan, reasons: [parsed.message] }, null, 2)}\n`);
      return EXIT.failure;
    }
    saved = parsed.plan;
    if (!dirArg && !o.git) {
      if (saved.source.git) {
        const m = `${o.plan} was made from --git ${saved.source.git.url}: give --git ${saved.source.git.url} again to apply it`;
        err(`virtform: ${m}\n`);
        return invalid(wholeInput(m));
      }
      dirArg = saved.source.dir;
    }
    o.allowEmpty = saved.consent.allowEmpty;
    err(`virtform: applying the plan ${o.plan} (made ${saved.createdAt}${saved.createdBy ? ` by ${saved.createdBy}` : ''}, ` +
      `${saved.steps.length} step(s)); consent from the plan: ${consentText(saved.consent)}\n`);
  }
  if (o.wait && o.dryRun) {
    const m = '--wait cannot be combined with --dry-run (a dry-run starts nothing to wait for)';
    err(`virtform: ${m}\n`);
    return invalid(wholeInput(m));
  }
  const lease = leaseTiming(o);
  if (!lease.ok) {
    err(`virtform: ${lease.message}\n`);
    return invalid(wholeInput(lease.message));
  }
  // DIR or --git URL (both, or neither, is exit 2).
  const source = gitInput(dirArg, o, { dirRequired: true, allowEmpty: o.allowEmpty });
  if ('errors' in source) {
    for (const e of source.errors) err(`virtform: ${e}\n`);
    return invalid(source.errors.flatMap(wholeInput));
  }
  const policy = await resolvePolicy(o.policy);
  if (!policy.ok) {
    err(`${policy.text}\n`);
    return invalid(manifestErrorsJson(policy.errors));
  }
  // Plan-time limits read the virtual size of URL images already in the image cache (beside the DB).
  const planCache = imageCacheFor(dataDirOf(o.db, o.dataDir));
  const cachedImageSize = async (sha256: string): Promise<number | undefined> => (await planCache.cached(sha256))?.header.virtualSize;
  const gitSpec = 'spec' in source ? { ...source.spec, policy: policy.policy, cachedImageSize } : undefined;
  const dir = dirArg ?? '';
  const refuseStale = (reasons: string[]): number => {
    err(`virtform: refused: the plan ${o.plan} no longer matches; nothing was changed:\n${reasons.map((r) => `  - ${r}`).join('\n')}\n` +
      'Make a new plan (reconcile --dry-run --out) and review it.\n');
    if (o.json) out(`${JSON.stringify({ dryRun: false, outcome: 'refused', plan: o.plan, reasons }, null, 2)}\n`);
    return EXIT.failure;
  };
  let loaded: { ok: true; desired: Desired; state?: DesiredState } | undefined;
  /** What the load took from the load cache (a folder's load; not --git). */
  let loadCache: LoadCacheStats | undefined;
  if (!gitSpec) {
    const notFolder = await notAManifestFolder(dir, 'reconcile');
    if (notFolder) {
      err(`virtform: ${notFolder}; nothing was changed\n`);
      return invalid(wholeInput(notFolder));
    }
    const folder = await loadDesired(dir, policy.policy, {
      cachedImageSize, cache: { file: loadCacheFile(dataDirOf(o.db, o.dataDir)), write: !o.dryRun },
    });
    if (!folder.ok) {
      err(`${folder.text}\n${folder.errors.length} error(s) in ${dir}; nothing was changed\n`);
      return invalid(manifestErrorsJson(folder.errors));
    }
    if (folder.desired.empty && !o.allowEmpty) {
      err(`virtform: no manifests found in ${dir}; refusing to continue, since that would delete everything virtform manages.\n` +
        `Check the path, or pass --allow-empty to tear the whole environment down.\n`);
      return invalid(wholeInput('no manifests found; refusing to continue, since that would delete everything virtform manages (--allow-empty tears the whole environment down)'));
    }
    loaded = folder;
    loadCache = folder.cache;
    if (fleetHosts(folder.state).length > 0 && (o.plan || o.out)) {
      const m = 'saved plans (--out, --plan) are not supported with Host manifests (a fleet) yet; plan and apply the fleet with reconcile';
      err(`virtform: ${m}; nothing was changed\n`);
      return invalid(wholeInput(m));
    }
    if (saved) {
      const reasons = manifestDifferences(saved, folder.desired);
      if (reasons.length > 0) return refuseStale(reasons);
    }
  }

  let store: StateStore;
  try {
    store = await openStore(o.db, { create: !o.dryRun, dataDir: o.dataDir });
  } catch (e) {
    // StateDbOpenError: the message names the DB path and the reason.
    err(`virtform: ${errorMessage(e)}\n`);
    return EXIT.failure;
  }
  if (store.path === ':memory:') {
    err(`virtform: state DB ${o.db ?? defaultDbPath()} does not exist: planning against an empty state ` +
      `(a dry-run creates nothing; the first apply creates it)\n`);
  }
  let writer: Lease | undefined;
  let host: HostPort | undefined;
  // First SIGINT/SIGTERM: start no new step, let the steps in flight finish for up to
  // --stop-timeout seconds; then apply abandons them (their journal entries closed as
  // interrupted: the next run finishes them) and the run ends (exit 1). Should the process still
  // not end a few seconds later (a call that does not return), it exits anyway. A second signal:
  // release the lock and exit at once (the journal keeps the open entry; the next run finishes it).
  const abort = new AbortController();
  const stopTimeoutMs = (o.stopTimeout ?? 30) * 1000;
  const releaseOnSignal = (signal: NodeJS.Signals): void => {
    if (!abort.signal.aborted) {
      abort.abort();
      stopped.bySignal = true;
      err(`virtform: ${signal}: finishing the steps in flight (up to ${o.stopTimeout ?? 30} s, --stop-timeout), starting no new ones (again to stop at once)\n`);
      process.once(signal, releaseOnSignal);
      setTimeout(() => {
        writer?.releaseSync();
        err(`virtform: still running ${(stopTimeoutMs + STOP_GRACE_MS) / 1000} s after ${signal}: exiting; the next run finishes what is left\n`);
        process.exit(signal === 'SIGINT' ? 130 : 143);
      }, stopTimeoutMs + STOP_GRACE_MS).unref();
      return;
    }
    writer?.releaseSync();
    err(`virtform: interrupted by ${signal}; the journal records the step in flight and the next run finishes it\n`);
    process.exit(signal === 'SIGINT' ? 130 : 143);
  };
  let git: Extract<GitDesired, { ok: true }> | undefined;
  let gitRead: GitDesired | undefined;
  try {
    if (!o.dryRun && saved && !gitSpec) {
      process.once('SIGINT', releaseOnSignal);
      process.once('SIGTERM', releaseOnSignal);
      // The writer lease, or (held by a watcher) a request it carries out; --no-queue: exit 1 naming the holder.
      const got = await leaseOrQueue(store, {
        command: `virtform reconcile --plan ${o.plan}`, timing: lease.timing, lockTimeoutMs: (o.lockTimeout ?? 0) * 1000,
        noQueue: o.queue === false, ...(o.queueTimeout !== undefined ? { queueTimeoutMs: o.queueTimeout * 1000 } : {}),
        type: 'plan', args: { plan: saved as unknown as Record<string, unknown>, dir: resolvePath(dir), file: o.plan! }, signal: abort.signal, err,
      });
      if ('refused' in got) {
        err(`virtform: ${got.refused}\n`);
        if (o.json) out(`${JSON.stringify({ dryRun: false, outcome: 'not-queued', plan: o.plan, error: got.refused }, null, 2)}\n`);
        return EXIT.failure;
      }
      if ('request' in got) return reportRequest(got.request, o, { out, err, style });
      writer = got.lease;
      writer.keepAlive({
        onLost: (why) => err(`virtform: ${why}: no further change is made to libvirt; the next holder finishes what is left\n`),
      });
    } else if (!o.dryRun) {
      process.once('SIGINT', releaseOnSignal);
      process.once('SIGTERM', releaseOnSignal);
      // The writer lease: held by another process, exit 1 naming it (or wait up to --lock-timeout).
      writer = await store.acquireLease({ command: `virtform reconcile ${gitSpec ? `--git ${redactUrl(gitSpec.url)}` : dir}` }, lease.timing, {
        timeoutMs: (o.lockTimeout ?? 0) * 1000,
        signal: abort.signal,
        onHeld: (e) => err(`virtform: waiting up to ${o.lockTimeout} s (--lock-timeout) for the writer lease: ${e.message.replace(/; --lock-timeout.*$/, '')}\n`),
      });
      // Renewed in the background; lost, no further libvirt change is made (apply's guard) and the run ends (exit 1).
      writer.keepAlive({
        onLost: (why) => err(`virtform: ${why}: no further change is made to libvirt; the next holder finishes what is left\n`),
      });
    }
    if (gitSpec) {
      // With the writer lock (apply) the persistent cache; a dry-run reads a throw-away copy.
      gitRead = await gitDesired(gitSpec, { store, dbPath: o.db, dataDir: o.dataDir, mode: o.dryRun ? 'read' : 'apply' });
      if (!gitRead.ok) {
        if (gitRead.errors.length) err(`${gitRead.errors.map(formatManifestError).join('\n')}\n`);
        err(`virtform: ${gitRead.message}\n`);
        if (gitRead.code === 2) return invalid(gitRead.errors.length ? manifestErrorsJson(gitRead.errors) : wholeInput(gitRead.message));
        if (o.json) out(`${JSON.stringify({ dryRun: o.dryRun === true, outcome: 'error', error: gitRead.message, git: gitRead.sync.status() }, null, 2)}\n`);
        return EXIT.failure;
      }
      git = gitRead;
      loaded = { ok: true, desired: buildDesired(git.state), state: git.state };
      if (fleetHosts(git.state).length > 0 && (o.plan || o.out)) {
        const m = 'saved plans (--out, --plan) are not supported with Host manifests (a fleet) yet; plan and apply the fleet with reconcile';
        err(`virtform: ${m}; nothing was changed\n`);
        return invalid(wholeInput(m));
      }
      if (saved) {
        const reasons = manifestDifferences(saved, loaded.desired);
        if (reasons.length > 0) return refuseStale(reasons);
      }
      err(`virtform: ${git.repo.displayUrl} ${git.repo.spec.path ? `(path ${git.repo.spec.path}) ` : ''}at ${git.commit.slice(0, 12)}${o.dryRun ? ' (dry-run: nothing recorded)' : ''}\n`);
    }
    if (!loaded) throw new Error('no manifests loaded');
    if (o.waitFor) {
      const running = new Set(loaded.desired.resources.filter((d) => kindOf(d.kind).guest?.declaredRunning(d)).map((d) => d.name));
      const unknown = o.waitFor.filter((n) => !running.has(n));
      if (unknown.length > 0) {
        const m = `--wait-for: ${unknown.join(', ')} ${unknown.length > 1 ? 'are' : 'is'} not a VirtualMachine declared running; nothing was changed`;
        err(`virtform: ${m}\n`);
        return invalid(wholeInput(m));
      }
    }
    const fleet = fleetHosts(loaded.state);
    if (fleet.length > 0) {
      const refusal = fleetRefusal(fleet, o);
      if (refusal) {
        err(`virtform: ${refusal}; nothing was changed\n`);
        return invalid(wholeInput(refusal));
      }
      return await reconcileFleet(loaded.state!, o, {
        store, out, err, style, abort, stopTimeoutMs, writer, git,
      });
    }
    host = await openHost(o.uri, { domainType: o.domainType });
    // Refuses (HostMismatchError, exit 1) a DB that holds the records of another host.
    await verifyHostIdentity(store, host, { record: !o.dryRun });
    const effectiveHost = faultWrapperFromEnv()?.(host) ?? host;
    const progress = new ProgressLine({ write: err, isTTY: process.stderr.isTTY === true }, o.json === true);

    const run = saved
      ? (opts: Parameters<typeof reconcile>[0]) => applySavedPlan(saved, opts.desired, { ...opts, store }, {
        onResume: (left) => err(`virtform: resuming the plan ${o.plan}: an earlier apply of it stopped half-way; ${left} of its ${saved.steps.length} step(s) left\n`),
      })
      : reconcile;
    let result: Awaited<ReturnType<typeof reconcile>>;
    try {
      result = await run({
      host: effectiveHost,
      store,
      desired: loaded.desired,
      ...engineFlagOptions(o, { dataDir: store.dataDir, writer, err }),
      signal: abort.signal,
      stopTimeoutMs,
      onPlan: (plan) => {
        if (!o.json) out(renderPlan(plan, style));
        if (!o.json && !o.dryRun && !plan.noop) out('\n');
      },
      onEvent: (e) => {
        if (progress.handle(e)) return;
        const line = renderApplyEvent(e, style);
        progress.clear();
        if (line) (o.json ? err : out)(`${line}\n`);
      },
    });
    } catch (e) {
      if (e instanceof StalePlanError) return refuseStale(e.reasons);
      throw e;
    }

    if (git && !o.dryRun) {
      await git.sync.recordRun(git.commit, result.outcome === 'noop' ? 'succeeded' : result.outcome, result.revisionId);
    }
    let wait: { ok: boolean; report: WaitReport } | undefined;
    const printJson = (): void => {
      if (!o.json) return;
      out(`${JSON.stringify({
        runId: result.runId, dryRun: o.dryRun === true, outcome: result.outcome, plan: planToJson(result.plan),
        ...(git ? { git: git.sync.status() } : {}),
        ...(o.wait ? { wait: wait?.report ?? null } : {}),
        held: Object.fromEntries(result.held),
        suspension: result.suspension ?? null,
        mutations: result.mutations, durationMs: result.durationMs, definitions: result.definitions,
        ...(loadCache ? { manifestCache: { files: loadCache.files, cached: loadCache.cached, digest: loadCache.digest, written: loadCache.written, ignored: loadCache.ignored ?? null } } : {}),
        steps: result.applied?.outcomes.map((s) => ({
          resource: s.step.key, host: s.step.host, op: s.step.op.op, status: s.status, attempts: s.attempts, ms: s.ms, error: s.error ?? null,
        })) ?? [],
      }, null, 2)}\n`);
    };
    if (result.suspension) {
      err(`virtform: ${suspendedText(store.path, result.suspension)}; ${o.dryRun ? 'a reconcile would apply nothing'
        : result.outcome === 'suspended' ? 'nothing was applied' : 'applying anyway (--ignore-suspend)'}` +
        `${result.outcome === 'suspended' || o.dryRun ? ' (`virtform resume` lifts it; --ignore-suspend applies once anyway)' : ''}\n`);
    }
    if (o.dryRun) {
      if (git && !o.json) out(`Git: would apply ${git.commit.slice(0, 7)} (${git.repo.displayUrl})\n`);
      if (o.out) {
        const doc = savedPlanDocument({
          plan: result.plan, observed: result.observedHosts, desired: loaded.desired, uri: o.uri, createdBy: whoAmI(),
          consent: { allowDataLoss: o.allowDataLoss === true, maxDeletions: o.maxDeletions ?? null, ignoreSuspend: o.ignoreSuspend === true, allowEmpty: o.allowEmpty === true },
          source: gitSpec ? { git: { url: redactUrl(gitSpec.url), ...(gitSpec.ref ? { ref: String(gitSpec.ref) } : {}), ...(gitSpec.path ? { path: gitSpec.path } : {}) } } : { dir: resolvePath(dir) },
        });
        await writePlanFile(o.out, doc);
        err(`virtform: plan saved to ${o.out} (${doc.steps.length} step(s); consent: ${consentText(doc.consent)}); apply it with: virtform reconcile --plan ${o.out}\n`);
        if (o.json) out(`${JSON.stringify(doc, null, 2)}\n`);
        return o.detailedExitcode && !result.plan.noop ? EXIT.changes : EXIT.ok;
      }
      printJson();
      return o.detailedExitcode && !result.plan.noop ? EXIT.changes : EXIT.ok;
    }
    if (result.outcome === 'suspended') {
      printJson();
      return EXIT.failure;
    }
    if (result.outcome === 'braked') {
      // The plan (text) already shows the refusal; stderr gets it too, so scripts' logs have it.
      err(`virtform: refused by the mass-deletion brake; nothing was applied\n${brakeLines(result.plan, { color: false }).join('\n')}\n`);
      printJson();
      return EXIT.failure;
    }
    if (!o.json && !result.plan.noop) {
      const ok = result.applied!.outcomes.filter((s) => s.status === 'succeeded').length;
      const verdict = result.outcome === 'interrupted' ? 'interrupted' : result.outcome === 'failed' ? 'finished with errors'
        : result.outcome === 'held' ? 'incomplete' : 'complete';
      const held = result.held.size > 0 ? `, ${result.held.size} held` : '';
      out(`\nApply ${verdict}: ${ok} step(s) succeeded, ` +
        `${result.applied!.failed.size} resource(s) failed, ${result.applied!.skipped.size} skipped, ` +
        `${result.plan.blocked.size} blocked${held} (${(result.durationMs / 1000).toFixed(1)}s).\n`);
      if (result.plan.blocked.size > 0 || result.held.size > 0) out(`${summaryLine(result.plan)}\n`);
      if (result.held.size > 0) out('Held changes were not made: they would destroy data. To consent, run again with --allow-data-loss.\n');
    }
    if (git && !o.json) out(`Git: ${git.sync.status().summary}\n`);
    // --wait: only after a successful (or converged) apply; the writer lock is not needed for it.
    const applied = result.outcome === 'succeeded' || result.outcome === 'noop';
    if (o.wait && applied) {
      await writer?.release();
      writer = undefined;
      wait = await waitAfterApply([{ port: host, declared: loaded.desired.resources, records: await store.resources.list() }], { timeoutSeconds: o.waitTimeout ?? 300, signal: abort.signal, ...(o.waitFor ? { only: o.waitFor } : {}) }, {
        out, err, json: o.json === true, progress: o.json ? process.stderr : process.stdout,
      });
    } else if (o.wait) {
      err(`virtform: --wait: not waiting for addresses, the apply did not succeed (${result.outcome})\n`);
    }

    printJson();
    if (wait && !wait.ok) return EXIT.failure;
    return result.outcome === 'failed' || result.outcome === 'interrupted' || result.outcome === 'held' ? EXIT.failure : EXIT.ok;
  } catch (e) {
    if (e instanceof LeaseHeldError) {
      err(`virtform: ${e.message}\n`);
      return EXIT.failure;
    }
    if (abort.signal.aborted && e === abort.signal.reason) {
      err(`virtform: interrupted while waiting for the writer lease; nothing was changed\n`);
      return EXIT.failure;
    }
    err(`virtform: ${errorMessage(e)}\n`);
    return EXIT.failure;
  } finally {
    process.off('SIGINT', releaseOnSignal);
    process.off('SIGTERM', releaseOnSignal);
    gitRead?.repo.dispose();
    // safe-catch: cleanup in finally; the run's own outcome is already decided and reported
    await host?.close().catch(() => undefined);
    // safe-catch: cleanup in finally; a lease left behind expires and is taken over
    await writer?.release().catch(() => undefined);
    // safe-catch: cleanup in finally; SQLite keeps what was committed
    await store.close().catch(() => undefined);
  }
}

/** Flags that do not go together with saved plans (exit 2), or undefined. */
function savedPlanUsage(o: ReconcileFlags): string | undefined {
  if (o.out && !o.dryRun) return '--out writes a saved plan and needs --dry-run (reconcile --dry-run --out PLAN)';
  if (o.plan && o.dryRun) return '--plan applies a saved plan and cannot be combined with --dry-run (the plan is the dry-run)';
  if (o.plan && o.out) return '--plan and --out cannot be combined';
  if (!o.plan && (o.queue === false || o.queueTimeout !== undefined)) return '--no-queue and --queue-timeout go with --plan';
  if (o.plan) {
    const given = [
      ...(o.allowDataLoss ? ['--allow-data-loss'] : []), ...(o.maxDeletions !== undefined ? ['--max-deletions'] : []),
      ...(o.ignoreSuspend ? ['--ignore-suspend'] : []), ...(o.allowEmpty ? ['--allow-empty'] : []),
      ...(o.rebalance ? ['--rebalance'] : []),
    ];
    if (given.length > 0) return `${given.join(', ')}: with --plan the consent flags are the plan's (given when it was made); make a new plan with them`;
  }
  return undefined;
}

/** Written whole or not at all (a temporary file renamed over it). */
async function writePlanFile(file: string, doc: SavedPlan): Promise<void> {
  const tmp = `${file}.tmp-${process.pid}`;
  await writeFile(tmp, `${JSON.stringify(doc, null, 2)}\n`, { mode: 0o644 });
  await rename(tmp, file);
}

/** What a watcher did with the plan it was asked to apply (the request's outcome): printed, and the exit code. */
function reportRequest(r: RequestRecord, o: ReconcileFlags, io: { out: (s: string) => void; err: (s: string) => void; style: { color: boolean } }): number {
  const outcome = r.outcome ?? { ok: false, exitCode: 1, message: `request ${r.id} ended ${r.status}` };
  if (o.json) {
    io.out(`${JSON.stringify({ dryRun: false, request: { id: r.id, status: r.status, claimedBy: r.claimedBy }, ...(outcome.result ?? { outcome: r.status, error: outcome.message }) }, null, 2)}\n`);
  } else {
    if (outcome.output) io.out(outcome.output.endsWith('\n') ? outcome.output : `${outcome.output}\n`);
  }
  io.err(`virtform: request ${r.id} ${r.status} (by the watcher ${r.claimedBy ?? '?'}): ${outcome.message}\n`);
  if (o.wait) io.err('virtform: --wait: not waiting for addresses (the plan was applied by the watcher)\n');
  return outcome.exitCode;
}

/** After the stop timeout, how long closing the journal, the connection and the DB may take before the process exits anyway. */
export const STOP_GRACE_MS = 5000;

export function suspendedText(db: string, s: Suspension): string {
  return `state DB ${db} is suspended since ${s.since}, by ${s.by}${s.reason ? ` (${s.reason})` : ''}`;
}
