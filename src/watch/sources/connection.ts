/**
 * The host connection, as a source: it connects in the background, retries a failed connect with
 * capped exponential backoff, and after a lost connection connects again. Each successful connect
 * enqueues a run (`initial` the first time, `reconnect` after that), once the connect hooks (e.g.
 * the lifecycle-event subscription) have run on the new connection; a hook that fails fails the
 * connect attempt.
 */
import type { HostCallInfo, HostPort } from '../../reconcile/ports.js';
import { Backoff, type BackoffPolicy } from '../../util/backoff.js';
import type { CallClock } from '../call-clock.js';
import { silentLogger, type Logger } from '../logger.js';
import type { WatchMetrics } from '../metrics.js';
import { errText, type Enqueue, type Source } from './types.js';

export type ConnectionState = 'connecting' | 'connected' | 'disconnected' | 'closed';

export interface ConnectionInfo {
  state: ConnectionState;
  since: string;
  attempts: number;
  lastError?: string;
  nextRetryMs?: number;
}

/** Runs on every new connection before it is used; may return a cleanup run on disconnect/stop. */
export type ConnectHook = (raw: HostPort) => Promise<(() => Promise<void>) | void>;

export interface HostConnectionOptions {
  connect: () => Promise<HostPort>;
  /** Decorates each new connection before the engine uses it (fault injection in tests). */
  wrapHost?: (host: HostPort) => HostPort;
  /** Reconnect backoff: first delay, cap and growth factor (defaults 500 ms, 30 s, 2; no jitter). */
  reconnect?: { initialDelayMs?: number; maxDelayMs?: number; factor?: number };
  metrics: WatchMetrics;
  logger?: Logger;
  /** Keeps each call's interval (a run's time waiting on libvirt). */
  clock?: CallClock;
}

export class HostConnection implements Source {
  readonly name = 'connection';
  readonly #o: HostConnectionOptions;
  readonly #log: Logger;
  readonly #policy: BackoffPolicy;
  readonly #hooks: ConnectHook[] = [];
  #cleanups: (() => Promise<void>)[] = [];
  #enqueue: Enqueue = () => undefined;
  #raw: HostPort | undefined;
  #host: HostPort | undefined;
  #info: ConnectionInfo = { state: 'connecting', since: new Date().toISOString(), attempts: 0 };
  #everConnected = false;
  #loop: Promise<void> | undefined;
  #sleep: { timer: NodeJS.Timeout; resolve: () => void } | undefined;
  #stopped = false;

  constructor(o: HostConnectionOptions) {
    this.#o = o;
    this.#log = o.logger ?? silentLogger;
    this.#policy = {
      baseMs: o.reconnect?.initialDelayMs ?? 500,
      maxMs: o.reconnect?.maxDelayMs ?? 30_000,
      factor: o.reconnect?.factor ?? 2,
      jitter: 0,
    };
  }

  /** Register a hook run on every new connection (register before start). */
  onConnect(hook: ConnectHook): void {
    this.#hooks.push(hook);
  }

  /** The connection the engine uses (decorated by wrapHost), while connected. */
  get host(): HostPort | undefined {
    return this.#info.state === 'connected' ? this.#host : undefined;
  }

  /** The undecorated connection, while connected (for read-only status queries). */
  get raw(): HostPort | undefined {
    return this.#info.state === 'connected' ? this.#raw : undefined;
  }

  get state(): ConnectionState {
    return this.#info.state;
  }

  get info(): ConnectionInfo {
    return { ...this.#info };
  }

  async start(enqueue: Enqueue): Promise<void> {
    this.#enqueue = enqueue;
    this.#loop = this.#connectLoop();
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    if (this.#sleep) {
      clearTimeout(this.#sleep.timer);
      this.#sleep.resolve();
    }
    // safe-catch: stopping: the connect loop reports its errors through the state it sets
    await this.#loop?.catch(() => undefined);
    await this.#cleanup();
    const raw = this.#raw;
    this.#host = this.#raw = undefined;
    raw?.setCallObserver(undefined);
    // safe-catch: closing on stop; the connection is being dropped anyway
    await raw?.close().catch(() => undefined);
    this.#set('closed');
  }

  #set(state: ConnectionState, extra: Partial<ConnectionInfo> = {}): void {
    if (state !== this.#info.state) this.#info = { state, since: new Date().toISOString(), attempts: this.#info.attempts };
    Object.assign(this.#info, extra);
    this.#o.metrics.connected.set(state === 'connected' ? 1 : 0);
  }

  async #cleanup(): Promise<void> {
    const cleanups = this.#cleanups;
    this.#cleanups = [];
    // safe-catch: unsubscribing from a connection that is going away
    for (const c of cleanups) await c().catch(() => undefined);
  }

  #sleepFor(ms: number): Promise<void> {
    return new Promise<void>((resolve) => {
      const timer = setTimeout(() => {
        this.#sleep = undefined;
        resolve();
      }, ms);
      this.#sleep = { timer, resolve };
    });
  }

  async #connectLoop(): Promise<void> {
    const backoff = new Backoff(this.#policy);
    this.#set(this.#everConnected ? 'disconnected' : 'connecting', { attempts: 0 });
    while (!this.#stopped) {
      const attempt = backoff.attempt + 1;
      this.#info.attempts = attempt;
      this.#o.metrics.reconnects.inc();
      let raw: HostPort | undefined;
      try {
        raw = await this.#o.connect();
        if (this.#stopped) {
          // safe-catch: closing a connection that is being dropped (the reason is reported as lastError)
          await raw.close().catch(() => undefined);
          return;
        }
        const conn = raw;
        raw.setCallObserver((info) => this.#observeCall(info));
        raw.onDisconnect((err) => this.#onDisconnect(conn, err));
        for (const hook of this.#hooks) {
          const cleanup = await hook(raw);
          if (cleanup) this.#cleanups.push(cleanup);
        }
        this.#raw = raw;
        this.#host = this.#o.wrapHost ? this.#o.wrapHost(raw) : raw;
        this.#set('connected', { lastError: undefined, nextRetryMs: undefined });
        this.#log.info(this.#everConnected ? 'reconnected' : 'connected', { attempts: attempt });
        const source = this.#everConnected ? 'reconnect' : 'initial';
        this.#everConnected = true;
        this.#enqueue(source);
        return;
      } catch (e) {
        await this.#cleanup();
        // safe-catch: closing a connection that is being dropped (the reason is reported as lastError)
        if (raw) await raw.close().catch(() => undefined);
        if (this.#stopped) return;
        const delay = backoff.next();
        this.#info.lastError = errText(e);
        this.#info.nextRetryMs = delay;
        this.#log.warn('connection failed', { attempt, error: errText(e), retryInMs: delay });
        await this.#sleepFor(delay);
      }
    }
  }

  #onDisconnect(conn: HostPort, err: Error): void {
    if (this.#stopped || conn !== this.#raw) return;
    this.#log.warn('disconnected from libvirtd', { error: errText(err) });
    conn.setCallObserver(undefined);
    this.#host = this.#raw = undefined;
    void this.#cleanup();
    // safe-catch: closing a connection that is being dropped (the reason is reported as lastError)
    void conn.close().catch(() => undefined);
    this.#set('disconnected', { lastError: errText(err) });
    this.#loop = this.#connectLoop();
  }

  #observeCall(info: HostCallInfo): void {
    const labels = { procedure: info.procedure };
    const m = this.#o.metrics;
    m.calls.inc(labels);
    if (info.error) m.callErrors.inc(labels);
    m.callDuration.observe(labels, info.ms / 1000);
    this.#o.clock?.record(info.ms);
  }
}
