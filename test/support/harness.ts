/**
 * One harness for engine tests on fake hosts: a temp dir, a manifest folder, a state store (real
 * SQLite file), a FakeHost per host id, reconcile/plan helpers with fast retries, and cleanup.
 *
 *   const h = useHarness();                       // beforeEach: fresh dir, store, hosts; afterEach: closed, removed
 *   await h.reconcile(scenario().pool('p'));      // writes the manifests, loads them, applies with FAST_RETRY
 *   expect((await h.plan()).changes).toEqual([]); // plans what the folder holds now
 *
 * A test file that needs its own set-up calls `openHarness()` and `close()` itself.
 */
import { afterEach, beforeEach } from 'vitest';
import { join } from 'node:path';
import { rmSync } from 'node:fs';
import { FakeHost } from './fake-host.js';
import { desiredFrom, tempDir, writeManifests } from './manifests.js';
import { filesOf, type Manifests } from './scenario.js';
import { openStateStore, type StateStore } from '../../src/state/index.js';
import { planOnly, reconcile, type PlanOptions, type ReconcileOptions, type ReconcileResult } from '../../src/reconcile/engine.js';
import type { Desired } from '../../src/reconcile/desired.js';
import { LOCAL_HOST } from '../../src/model/kinds.js';

export type RetryPolicy = NonNullable<ReconcileOptions['retry']>;
export type Plan = ReconcileResult['plan'];
/** What a run is given: manifests (written to the folder first) or a desired state already built. */
export type Input = Manifests | Desired;
/** Options of one reconcile beyond host, store and desired state. */
export type RunOptions = Partial<Omit<ReconcileOptions, 'host' | 'store' | 'desired'>>;

/** Retries for tests: two attempts, no real waiting. The one definition; a test that counts attempts spreads it. */
export const FAST_RETRY: RetryPolicy = { maxAttempts: 2, baseDelayMs: 1, maxDelayMs: 2 };

export interface HarnessOptions<H extends FakeHost = FakeHost> {
  /** Retry policy of `reconcile` (default FAST_RETRY). */
  retry?: RetryPolicy;
  /** Prefix of the temp dir's name (default `vftest-`). */
  dirPrefix?: string;
  /** The folder's name under the temp dir (default `manifests`). */
  manifestDir?: string;
  /** Makes the fake host of a host id (default `new FakeHost()`). */
  newHost?: (id: string) => H;
  /** Manifests written before each test. */
  manifests?: Manifests;
}

export class Harness<H extends FakeHost = FakeHost> {
  /** The temp dir of the current test (removed after it). */
  work = '';
  /** The manifest folder. */
  mdir = '';
  /** The state DB file. */
  dbPath = '';
  store!: StateStore;
  /** A fake host per host id; `host` is the implicit local one. */
  readonly hosts = new Map<string, H>();

  constructor(readonly opts: HarnessOptions<H> = {}) {}

  get host(): H {
    return this.hostFor(LOCAL_HOST);
  }

  set host(h: H) {
    this.hosts.set(LOCAL_HOST, h);
  }

  /** The fake host of host id `id` (made on first use). */
  hostFor(id: string): H {
    let h = this.hosts.get(id);
    if (!h) {
      h = this.opts.newHost ? this.opts.newHost(id) : (new FakeHost() as H);
      this.hosts.set(id, h);
    }
    return h;
  }

  async setup(): Promise<this> {
    this.work = tempDir(this.opts.dirPrefix);
    this.mdir = join(this.work, this.opts.manifestDir ?? 'manifests');
    this.dbPath = join(this.work, 'state.db');
    this.hosts.clear();
    this.store = await openStateStore(this.dbPath);
    if (this.opts.manifests) this.write(this.opts.manifests);
    return this;
  }

  async close(): Promise<void> {
    await this.store?.close();
    if (this.work) rmSync(this.work, { recursive: true, force: true });
    this.work = '';
  }

  /** Close the store and open the same DB file again (what a second CLI run does). */
  async reopen(): Promise<StateStore> {
    await this.store.close();
    this.store = await openStateStore(this.dbPath);
    return this.store;
  }

  /** Start again in the same temp dir: an empty state DB and new fake hosts (for a test that loops over set-ups). */
  async fresh(): Promise<void> {
    await this.store.close();
    rmSync(this.dbPath, { force: true });
    this.hosts.clear();
    this.store = await openStateStore(this.dbPath);
  }

  /** Replace the manifest folder with these manifests; returns its path. */
  write(m: Manifests): string {
    return writeManifests(this.mdir, filesOf(m));
  }

  /** The desired state of these manifests (written first), or of the folder as it is. */
  async desired(m?: Manifests): Promise<Desired> {
    if (m !== undefined) this.write(m);
    return desiredFrom(this.mdir);
  }

  /** Reconcile these manifests (or the folder as it is, or a desired state) on the local fake host. */
  async reconcile(m?: Input, opts: RunOptions = {}): Promise<ReconcileResult> {
    return reconcile({
      host: this.host, store: this.store, desired: await this.toDesired(m),
      retry: this.opts.retry ?? FAST_RETRY, gracefulStop: false, ...opts,
    });
  }

  /** A dry run (`reconcile --dry-run`): the plan, nothing applied. */
  async dryRun(m?: Input, opts: RunOptions = {}): Promise<ReconcileResult> {
    return this.reconcile(m, { ...opts, dryRun: true });
  }

  /** `planOnly` of these manifests: the plan and what was observed. */
  async planResult(m?: Input, opts: PlanOptions & { gracefulStop?: boolean } = {}): ReturnType<typeof planOnly> {
    const { gracefulStop = true, ...rest } = opts;
    return planOnly(this.host, this.store, await this.toDesired(m), gracefulStop, rest);
  }

  async plan(m?: Input, opts: PlanOptions & { gracefulStop?: boolean } = {}): Promise<Plan> {
    return (await this.planResult(m, opts)).plan;
  }

  private async toDesired(m: Input | undefined): Promise<Desired> {
    if (m !== undefined && isDesired(m)) return m;
    return this.desired(m);
  }
}

function isDesired(m: Input): m is Desired {
  return typeof m === 'object' && m !== null && 'byKey' in m && 'resources' in m;
}

/** A harness set up before, and closed after, each test of the calling file or describe block. */
export function useHarness<H extends FakeHost = FakeHost>(opts: HarnessOptions<H> = {}): Harness<H> {
  const h = new Harness<H>(opts);
  beforeEach(async () => {
    await h.setup();
  });
  afterEach(async () => {
    await h.close();
  });
  return h;
}

/** A harness of one's own (set up now); call `close()` after. */
export async function openHarness<H extends FakeHost = FakeHost>(opts: HarnessOptions<H> = {}): Promise<Harness<H>> {
  return new Harness<H>(opts).setup();
}
