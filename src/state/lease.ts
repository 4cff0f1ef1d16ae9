/**
 * The writer lease: one row of `leases` (migration 0009) names the one process that may change the
 * hosts of this state DB. It replaces the lock of migration 0001 (which never expired, so a dead
 * controller on another machine blocked every other one forever).
 *
 * - **One statement, the database's clock.** Acquiring is one `INSERT … ON CONFLICT DO UPDATE …
 *   WHERE <free> RETURNING epoch`, renewing one `UPDATE … WHERE holder = me AND epoch = mine`; both
 *   compute `expires_at` from the database's own clock (milliseconds since 1970), so the clocks of
 *   the machines running virtform never matter.
 * - **Epoch: the fencing token.** Every acquisition by a new holder adds 1 (a release keeps the row
 *   and its epoch). {@link Lease.fence} runs inside the store's write transactions: on PostgreSQL it
 *   reads the row `FOR SHARE`, so a takeover (an UPDATE of that row) waits for the writes in flight
 *   and every write transaction that starts after it sees the new epoch and fails. An `epoch =`
 *   test alone would race with a takeover under READ COMMITTED. SQLite serializes writers anyway.
 * - **Takeover.** A lease is free once released or expired by the database's clock. A holder on
 *   this machine whose pid is gone is taken over at once: a rerun after a crash must not wait for
 *   the expiry. A holder on another machine only after expiry, never earlier. "This machine" is
 *   not the host name alone (containers and cloned VMs share names, and a pid is only meaningful
 *   in its own pid namespace): the row records {@link machineIdentity} (kernel boot id and pid
 *   namespace), and the pid is tested only when the host name and that identity both match.
 * - **Stepping down.** Before each libvirt mutation the holder asks {@link Lease.refusal}: its last
 *   successful renewal must be younger than the renew deadline on the local monotonic clock
 *   (`performance.now()`, which NTP does not step). The deadline (10 s) is shorter than the lease
 *   (15 s), so a holder stops changing libvirt before anyone else may start. libvirt calls cannot
 *   be fenced: the one call in flight when the deadline passes may still land.
 */
import { randomBytes } from 'node:crypto';
import { readFileSync, readlinkSync } from 'node:fs';
import { hostname as osHostname } from 'node:os';
import { performance } from 'node:perf_hooks';
import { sql, type Kysely, type RawBuilder } from 'kysely';
import type { StateDatabase } from './schema.js';
import type { FenceQuery } from './fence.js';

/** Name of the writer lease row in `leases`. */
export const WRITER_LEASE = 'writer';

/** Durations of the lease, in ms. Defaults close to Kubernetes leader election. */
export interface LeaseTiming {
  /** How long a lease lasts after its last renewal, by the database's clock (default 15 s). */
  leaseMs: number;
  /** The holder steps down when its last successful renewal is older than this, by its own monotonic clock (default 10 s). */
  renewDeadlineMs: number;
  /** Interval between renewals, and between attempts to acquire a held lease (default 2 s). */
  retryMs: number;
}

export const DEFAULT_LEASE_TIMING: Readonly<LeaseTiming> = Object.freeze({ leaseMs: 15_000, renewDeadlineMs: 10_000, retryMs: 2_000 });

/** Why these durations cannot work (retry < renew deadline < lease, all > 0), or undefined. */
export function leaseTimingProblem(t: LeaseTiming): string | undefined {
  const s = (ms: number): string => `${ms / 1000} s`;
  if (!(t.retryMs > 0) || !(t.renewDeadlineMs > 0) || !(t.leaseMs > 0)) return 'lease durations must be positive';
  if (t.renewDeadlineMs >= t.leaseMs) {
    return `the renew deadline (${s(t.renewDeadlineMs)}) must be shorter than the lease duration (${s(t.leaseMs)}): a holder must stop before another may start`;
  }
  if (t.retryMs >= t.renewDeadlineMs) {
    return `the retry period (${s(t.retryMs)}) must be shorter than the renew deadline (${s(t.renewDeadlineMs)}): a holder must get to renew before it steps down`;
  }
  return undefined;
}

export type LeaseDialect = 'sqlite' | 'postgres';

/**
 * How long a standby may take to take over after the holder died or froze, in ms: the holder's
 * lease lasts `leaseMs` after its last renewal (by the database's clock), and a standby tries again
 * every `retryMs`. Measured from the holder's last successful renewal, so also from its death.
 */
export function takeoverBoundMs(t: LeaseTiming): number {
  return t.leaseMs + t.retryMs;
}

/** Text of {@link takeoverBoundMs}, e.g. `17 s (--lease-duration 15 + --retry-period 2)`. */
export function takeoverBoundText(t: LeaseTiming): string {
  return `${takeoverBoundMs(t) / 1000} s (--lease-duration ${t.leaseMs / 1000} + --retry-period ${t.retryMs / 1000})`;
}

let machine: string | null | undefined;

/**
 * What makes a pid meaningful: the kernel's boot id (random per boot, so different on every
 * machine and VM, even clones sharing /etc/machine-id) and this process's pid namespace (a
 * container's pids are not the host's). Two processes with the same identity (and host name) can
 * test each other's pids; null where it cannot be read (then a dead holder is taken over only
 * after its lease expires).
 */
export function machineIdentity(): string | null {
  if (machine !== undefined) return machine;
  try {
    const boot = readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim();
    const pidns = /\[(\d+)\]/.exec(readlinkSync('/proc/self/ns/pid'))?.[1];
    machine = boot && pidns ? `boot:${boot} pidns:${pidns}` : null;
  } catch { // safe-catch: no procfs (not Linux): no identity, so no early takeover of a dead pid
    machine = null;
  }
  return machine;
}

/**
 * Whether the holder `seen` ran where this process runs (same host name and machine identity), so
 * that its pid can be tested here. A row without an identity (written by an older virtform) never is.
 */
export function sameMachine(seen: { hostname: string; machine: string | null }, me: { hostname: string; machine: string | null }): boolean {
  return seen.hostname === me.hostname && seen.machine !== null && seen.machine === me.machine;
}

/** What a lease needs of its store. */
export interface LeaseDeps {
  db: Kysely<StateDatabase>;
  dialect: LeaseDialect;
  /** The DB, for messages: a file path or a URL without password. */
  label: string;
  /** Release synchronously (signal handlers; SQLite only). */
  releaseSync?: (row: { name: string; holder: string; epoch: number }) => void;
  /** Monotonic clock in ms (tests). Default `performance.now()`. */
  monotonic?: () => number;
}

export interface LeaseOwner {
  /** Recorded in the row (shown to whoever finds the lease held). */
  command: string;
  /** Overrides for tests; default this process and this host. */
  pid?: number;
  hostname?: string;
  /** Default {@link machineIdentity}; null: none. */
  machine?: string | null;
  /** Lease row name (default {@link WRITER_LEASE}). */
  name?: string;
}

/** What identifies a held lease. */
export interface LeaseInfo {
  name: string;
  holder: string;
  pid: number;
  hostname: string;
  /** {@link machineIdentity} of the holder; null when unknown (an older virtform). */
  machine: string | null;
  command: string;
  epoch: number;
  /** ms since 1970, database clock. */
  acquiredAt: number;
}

/** The lease row as read, with the database's clock at the time of the read. */
export interface LeaseRow extends LeaseInfo {
  renewedAt: number;
  expiresAt: number;
  /** The database's clock when the row was read. */
  now: number;
}

/** True unless the pid certainly does not exist (ESRCH). EPERM means it exists but is not ours. */
export function isPidAlive(pid: number): boolean {
  if (!Number.isInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code !== 'ESRCH';
  }
}

const iso = (ms: number): string => new Date(ms).toISOString();
const secs = (ms: number): string => `${(ms / 1000).toFixed(1)} s`;

/** Thrown while another live process holds the lease. The message names the holder. */
export class LeaseHeldError extends Error {
  override readonly name = 'LeaseHeldError';
  /** The holder's unique id (`hostname/pid/random`). */
  readonly holder: string;
  readonly holderPid: number;
  readonly holderHost: string;
  readonly holderCommand: string;
  /** ISO time of the holder's acquisition (database clock). */
  readonly acquiredAt: string;
  readonly epoch: number;
  /** How long until the lease expires unless renewed (ms, database clock). */
  readonly expiresInMs: number;
  constructor(row: LeaseRow, label: string, waitedMs?: number) {
    const left = Math.max(0, row.expiresAt - row.now);
    super(
      `state DB ${label} is locked by pid ${row.pid} on host ${row.hostname} (command: ${row.command}) since ${iso(row.acquiredAt)}; ` +
        `another virtform process is writing (its lease, epoch ${row.epoch}, expires in ${secs(left)} unless renewed)` +
        (waitedMs !== undefined ? `; waited ${secs(waitedMs)} (--lock-timeout)` : '; --lock-timeout SECONDS waits for it'),
    );
    this.holder = row.holder;
    this.holderPid = row.pid;
    this.holderHost = row.hostname;
    this.holderCommand = row.command;
    this.acquiredAt = iso(row.acquiredAt);
    this.epoch = row.epoch;
    this.expiresInMs = left;
  }
}

/**
 * This process no longer holds the lease: it was taken over (a fenced write finds another epoch),
 * or its last renewal is older than the renew deadline (it stepped down). Nothing more may change.
 */
export class LeaseLostError extends Error {
  override readonly name = 'LeaseLostError';
}

/** The database's clock in ms since 1970, as an SQL expression of the dialect. */
export function dbNowMs(dialect: LeaseDialect): RawBuilder<number> {
  return dialect === 'postgres'
    ? sql<number>`(floor(extract(epoch from statement_timestamp()) * 1000))::bigint`
    : sql<number>`cast(round((julianday('now') - 2440587.5) * 86400000.0) as integer)`;
}

/** The lease row (undefined: never taken), with the database's clock. */
export async function readLease(deps: Pick<LeaseDeps, 'db' | 'dialect'>, name = WRITER_LEASE): Promise<LeaseRow | undefined> {
  const r = await deps.db
    .selectFrom('leases')
    .select(['name', 'holder', 'pid', 'hostname', 'machine', 'command', 'epoch', 'acquired_at', 'renewed_at', 'expires_at', dbNowMs(deps.dialect).as('now')])
    .where('name', '=', name)
    .executeTakeFirst();
  if (!r) return undefined;
  return {
    name: r.name, holder: r.holder, pid: Number(r.pid), hostname: r.hostname, machine: r.machine ?? null, command: r.command, epoch: Number(r.epoch),
    acquiredAt: Number(r.acquired_at), renewedAt: Number(r.renewed_at), expiresAt: Number(r.expires_at), now: Number(r.now),
  };
}

/**
 * Acquire the lease now, or throw {@link LeaseHeldError} naming the holder. The row is read first
 * only to learn whether its holder is a dead pid on this machine (taken over at once); the
 * acquisition itself is the one conditional statement, so of two racing processes exactly one
 * gets it.
 */
export async function tryAcquireLease(deps: LeaseDeps, owner: LeaseOwner, timing: LeaseTiming = DEFAULT_LEASE_TIMING): Promise<Lease> {
  const problem = leaseTimingProblem(timing);
  if (problem) throw new Error(problem);
  const name = owner.name ?? WRITER_LEASE;
  const pid = owner.pid ?? process.pid;
  const host = owner.hostname ?? osHostname();
  const machineId = owner.machine !== undefined ? owner.machine : machineIdentity();
  const holder = `${host}/${pid}/${randomBytes(4).toString('hex')}`;
  const mono = deps.monotonic ?? (() => performance.now());
  const now = dbNowMs(deps.dialect);
  for (let attempt = 0; attempt < 5; attempt++) {
    const seen = await readLease(deps, name);
    let dead: LeaseRow | undefined;
    if (seen && seen.expiresAt > seen.now) {
      if (sameMachine(seen, { hostname: host, machine: machineId }) && seen.pid !== pid && !isPidAlive(seen.pid)) dead = seen;
      else throw new LeaseHeldError(seen, deps.label);
    }
    const started = mono();
    const row = await deps.db
      .insertInto('leases')
      .values({
        name, holder, pid, hostname: host, machine: machineId, command: owner.command, epoch: 1,
        acquired_at: now, renewed_at: now, expires_at: sql<number>`${now} + ${timing.leaseMs}`,
      })
      .onConflict((oc) => oc.column('name').doUpdateSet({
        holder: (eb) => eb.ref('excluded.holder'),
        pid: (eb) => eb.ref('excluded.pid'),
        hostname: (eb) => eb.ref('excluded.hostname'),
        machine: (eb) => eb.ref('excluded.machine'),
        command: (eb) => eb.ref('excluded.command'),
        epoch: sql<number>`leases.epoch + 1`,
        acquired_at: (eb) => eb.ref('excluded.acquired_at'),
        renewed_at: (eb) => eb.ref('excluded.renewed_at'),
        expires_at: (eb) => eb.ref('excluded.expires_at'),
      }).where((eb) => eb.or([
        // free: released or expired by the database's clock
        eb('leases.expires_at', '<=', eb.ref('excluded.acquired_at')),
        // a dead pid on this machine: exactly the holder and epoch seen dead, nobody newer
        ...(dead ? [eb.and([eb('leases.holder', '=', dead.holder), eb('leases.epoch', '=', dead.epoch)])] : []),
      ])))
      .returning(['epoch', 'acquired_at'])
      .executeTakeFirst();
    if (row) {
      return new Lease(deps, { name, holder, pid, hostname: host, machine: machineId, command: owner.command, epoch: Number(row.epoch), acquiredAt: Number(row.acquired_at) }, timing, started);
    }
    // Someone else got it between our read and our statement: read again (held, or free again).
  }
  throw new Error(`could not acquire the writer lease of ${deps.label}: the lease row kept changing`);
}

export interface WaitOptions {
  /** How long to wait for a held lease (ms); 0: do not wait (the default). Infinity: until `signal`. */
  timeoutMs?: number;
  signal?: AbortSignal;
  /** Called when the lease is found held by a holder not seen before (to say that we wait). */
  onHeld?: (e: LeaseHeldError) => void;
}

/**
 * Acquire the lease, retrying every `timing.retryMs` while it is held, for up to `timeoutMs`.
 * Throws the last {@link LeaseHeldError} (saying how long it waited) when the time is up, or an
 * AbortError when `signal` aborts.
 */
export async function acquireLease(deps: LeaseDeps, owner: LeaseOwner, timing: LeaseTiming = DEFAULT_LEASE_TIMING, wait: WaitOptions = {}): Promise<Lease> {
  const mono = deps.monotonic ?? (() => performance.now());
  const timeoutMs = wait.timeoutMs ?? 0;
  const start = mono();
  let lastHolder: string | undefined;
  for (;;) {
    wait.signal?.throwIfAborted();
    try {
      return await tryAcquireLease(deps, owner, timing);
    } catch (e) {
      if (!(e instanceof LeaseHeldError) || timeoutMs <= 0) throw e;
      const waited = mono() - start;
      if (waited >= timeoutMs) throw new LeaseHeldError((await readLease(deps, owner.name)) ?? rowOf(e), deps.label, waited);
      const holderKey = `${e.holderHost}/${e.holderPid}/${e.epoch}`;
      if (holderKey !== lastHolder) {
        lastHolder = holderKey;
        wait.onHeld?.(e);
      }
      await abortableSleep(Math.min(timing.retryMs, timeoutMs - waited), wait.signal);
    }
  }
}

function rowOf(e: LeaseHeldError): LeaseRow {
  const at = Date.parse(e.acquiredAt);
  return { name: WRITER_LEASE, holder: e.holder, pid: e.holderPid, hostname: e.holderHost, machine: null, command: e.holderCommand, epoch: e.epoch, acquiredAt: at, renewedAt: at, expiresAt: 0, now: 0 };
}

function abortableSleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason);
    const done = (): void => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    };
    const timer = setTimeout(done, ms);
    const onAbort = (): void => {
      clearTimeout(timer);
      reject(signal!.reason);
    };
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}


/** A lease this process holds. See the module comment. */
export class Lease {
  readonly name: string;
  /** Unique per acquisition: `hostname/pid/random`. */
  readonly holder: string;
  readonly pid: number;
  readonly hostname: string;
  readonly machine: string | null;
  readonly command: string;
  /** The fencing token. */
  readonly epoch: number;
  /** ISO time of the acquisition (database clock). */
  readonly acquiredAt: string;
  readonly timing: Readonly<LeaseTiming>;
  readonly #deps: LeaseDeps;
  readonly #mono: () => number;
  /** Monotonic time at which the last successful renewal (or the acquisition) was sent. */
  #renewedAt: number;
  #lost: string | undefined;
  #released = false;
  #timer: NodeJS.Timeout | undefined;
  #renewing: Promise<boolean> | undefined;
  readonly #onLost: ((reason: string) => void)[] = [];
  readonly #onReleased: (() => void)[] = [];

  /** Use {@link tryAcquireLease} / {@link acquireLease}. */
  constructor(deps: LeaseDeps, info: LeaseInfo, timing: LeaseTiming, sentAt: number) {
    this.#deps = deps;
    this.#mono = deps.monotonic ?? (() => performance.now());
    this.name = info.name;
    this.holder = info.holder;
    this.pid = info.pid;
    this.hostname = info.hostname;
    this.machine = info.machine;
    this.command = info.command;
    this.epoch = info.epoch;
    this.acquiredAt = iso(info.acquiredAt);
    this.timing = { ...timing };
    this.#renewedAt = sentAt;
  }

  /** Held: not released, not lost, and renewed within the renew deadline. */
  get held(): boolean {
    return this.refusal() === undefined;
  }

  /** Why this process lost the lease (undefined while it holds it). */
  get lostReason(): string | undefined {
    return this.#lost;
  }

  /**
   * Why this process may not change anything now, or undefined. Cheap (no I/O): called before
   * every libvirt mutation. Past the renew deadline the holder steps down for good (lost).
   */
  refusal(): string | undefined {
    if (this.#lost) return this.#lost;
    if (this.#released) return `the writer lease of state DB ${this.#deps.label} was released`;
    const age = this.#mono() - this.#renewedAt;
    if (age >= this.timing.renewDeadlineMs) {
      this.#lose(`lost the writer lease of state DB ${this.#deps.label} (epoch ${this.epoch}): not renewed for ${secs(age)}, ` +
        `longer than the renew deadline (${secs(this.timing.renewDeadlineMs)}); stepped down`);
      return this.#lost;
    }
    return undefined;
  }

  /** Throw {@link LeaseLostError} unless held (see {@link refusal}). */
  check(): void {
    const why = this.refusal();
    if (why) throw new LeaseLostError(why);
  }

  /**
   * Renew now (one statement: `expires_at` = the database's clock + the lease duration, only while
   * this holder and epoch are in the row). False (and the lease is lost) when the row names
   * someone else; a database error is thrown and the lease stays held until its deadline.
   */
  async renew(): Promise<boolean> {
    if (this.refusal()) return false;
    const now = dbNowMs(this.#deps.dialect);
    const sent = this.#mono();
    const r = await this.#deps.db
      .updateTable('leases')
      .set({ renewed_at: now, expires_at: sql<number>`${now} + ${this.timing.leaseMs}` })
      .where('name', '=', this.name)
      .where('holder', '=', this.holder)
      .where('epoch', '=', this.epoch)
      .executeTakeFirst();
    if (Number(r.numUpdatedRows) === 1) {
      // Only forward: a slow renewal that ends after a faster later one does not move it back.
      if (!this.#lost && sent > this.#renewedAt) this.#renewedAt = sent;
      return !this.#lost;
    }
    this.#lose(await this.#takenOverText());
    return false;
  }

  /**
   * Renew every `retryMs` in the background until released or lost; `onLost` hears of a loss once
   * (taken over, or no successful renewal within the renew deadline), `onError` of each failed
   * renewal. The timer does not keep the process alive.
   */
  keepAlive(handlers: { onLost?: (reason: string) => void; onError?: (e: unknown) => void } = {}): void {
    if (handlers.onLost) this.onLost(handlers.onLost);
    if (this.#timer || this.#released || this.#lost) return;
    this.#timer = setInterval(() => {
      if (this.refusal()) return; // lost: #lose stopped the timer
      this.#renewing ??= this.renew()
        .catch((e: unknown) => {
          handlers.onError?.(e);
          return false;
        })
        .finally(() => {
          this.#renewing = undefined;
        });
    }, this.timing.retryMs);
    this.#timer.unref();
  }

  /** Called once when the lease is lost (at once when it already is). */
  onLost(cb: (reason: string) => void): void {
    if (this.#lost) cb(this.#lost);
    else this.#onLost.push(cb);
  }

  /** Called once when the lease is released (a lost lease still fences until then). */
  onReleased(cb: () => void): void {
    if (this.#released) cb();
    else this.#onReleased.push(cb);
  }

  /**
   * The fence (src/state/fence.ts runs it before the first write of each of the store's write
   * transactions, on the writing connection): the row is read `FOR SHARE` on PostgreSQL (a
   * takeover's UPDATE waits until this transaction ends) and must still name this holder and
   * epoch; otherwise {@link LeaseLostError}, and the transaction rolls back. On PostgreSQL the
   * transaction may then stay idle for at most the renew deadline (`idle_in_transaction_session_timeout`).
   */
  async fence(query: FenceQuery): Promise<void> {
    if (this.#deps.dialect === 'postgres') {
      // The row lock below blocks a takeover until this transaction ends: a holder frozen inside
      // it (SIGSTOP, a paused VM) must not block its successor for longer than it may hold on to
      // its lease. PostgreSQL ends a transaction left idle that long (and the session with it).
      await query(`set local idle_in_transaction_session_timeout = ${Math.max(1, Math.round(this.timing.renewDeadlineMs))}`, []);
    }
    const rows = await query(
      this.#deps.dialect === 'postgres'
        ? 'select holder, epoch, pid, hostname from leases where name = $1 for share'
        : 'select holder, epoch, pid, hostname from leases where name = ?',
      [this.name],
    );
    const row = rows[0] as { holder: string; epoch: number | string; pid: number; hostname: string } | undefined;
    if (row && row.holder === this.holder && Number(row.epoch) === this.epoch) return;
    const why = row
      ? `the writer lease of state DB ${this.#deps.label} was taken over by pid ${row.pid} on host ${row.hostname} (epoch ${Number(row.epoch)}, ours ${this.epoch})`
      : `the writer lease of state DB ${this.#deps.label} is gone`;
    this.#lose(`${why}; write refused, stepped down`);
    throw new LeaseLostError(`${why}; write refused`);
  }

  /** Give the lease up (it stays in the row with its epoch, expired now). Idempotent. */
  async release(): Promise<void> {
    if (this.#released) return;
    this.#stopRenewing();
    this.#released = true;
    for (const cb of this.#onReleased.splice(0)) cb();
    await this.#deps.db
      .updateTable('leases')
      .set({ expires_at: dbNowMs(this.#deps.dialect) })
      .where('name', '=', this.name)
      .where('holder', '=', this.holder)
      .where('epoch', '=', this.epoch)
      .execute();
  }

  /** Synchronous release, for signal and exit handlers (SQLite; on PostgreSQL the lease expires). */
  releaseSync(): void {
    if (this.#released) return;
    this.#stopRenewing();
    this.#released = true;
    for (const cb of this.#onReleased.splice(0)) cb();
    this.#deps.releaseSync?.({ name: this.name, holder: this.holder, epoch: this.epoch });
  }

  async #takenOverText(): Promise<string> {
    // safe-catch: only the message's detail (who took it over) is lost; the loss itself is certain
    const row = await readLease(this.#deps, this.name).catch(() => undefined);
    return row && row.holder !== this.holder
      ? `the writer lease of state DB ${this.#deps.label} was taken over by pid ${row.pid} on host ${row.hostname} (epoch ${row.epoch}, ours ${this.epoch}); stepped down`
      : `the writer lease of state DB ${this.#deps.label} (epoch ${this.epoch}) is no longer ours; stepped down`;
  }

  #lose(reason: string): void {
    if (this.#lost || this.#released) return;
    this.#lost = reason;
    this.#stopRenewing();
    for (const cb of this.#onLost.splice(0)) cb(reason);
  }

  #stopRenewing(): void {
    clearInterval(this.#timer);
    this.#timer = undefined;
  }
}
