/**
 * Domain lifecycle events (VIR_DOMAIN_EVENT_ID_LIFECYCLE), registered with
 * connect-domain-event-callback-register-any.
 *
 * A {@link DomainEventSubscription} is an EventEmitter ('event', 'end') and an async iterator:
 *
 * ```ts
 * const sub = await client.domainEventLifecycleRegister();
 * sub.on('event', (ev) => console.log(ev.domain.name, ev.eventName, ev.detailName));
 * for await (const ev of sub) { ... }            // ends on sub.close(); throws if the connection dies
 * await sub.waitFor((ev) => ev.eventName === 'started', 30_000);
 * await sub.close();                              // deregisters
 * ```
 */
import { EventEmitter } from 'node:events';
import { ConnectionError } from './errors.js';
import {
  type Domain,
  type DomainEventName,
  domainEventDetailName,
  domainEventName,
  type RemoteDomainEventCallbackLifecycleMsg,
} from './protocol.js';

export interface DomainLifecycleEvent {
  domain: Domain;
  /** virDomainEventType, e.g. 2 = started, 5 = stopped. */
  event: number;
  /** Lower-case name of `event`: 'defined', 'undefined', 'started', 'suspended', 'resumed', 'stopped', 'shutdown', 'pmsuspended', 'crashed'. */
  eventName: DomainEventName | string;
  /** The event's detail code (e.g. for stopped: 0 shutdown, 1 destroyed, 2 crashed...). */
  detail: number;
  detailName: string;
  /** The server-side callback id it was delivered to. */
  callbackId: number;
  /** When this client received it (ms since epoch). */
  receivedAt: number;
}

/** The event of a decoded `remote_domain_event_callback_lifecycle_msg` (the generated codec reads it). */
export function lifecycleEvent(m: RemoteDomainEventCallbackLifecycleMsg): DomainLifecycleEvent {
  const { dom: domain, event, detail } = m.msg;
  return {
    domain,
    event,
    eventName: domainEventName(event),
    detail,
    detailName: domainEventDetailName(event, detail),
    callbackId: m.callbackID,
    receivedAt: Date.now(),
  };
}

const HISTORY_MAX = 1000;
const QUEUE_MAX = 10_000;

export interface DomainEventSubscriptionEvents {
  event: [DomainLifecycleEvent];
  end: [ConnectionError | undefined];
}

/** One registered lifecycle callback on one connection. */
export class DomainEventSubscription
  extends EventEmitter<DomainEventSubscriptionEvents>
  implements AsyncIterable<DomainLifecycleEvent>
{
  readonly callbackId: number;
  /** The most recent events (up to 1000), oldest first. */
  readonly history: DomainLifecycleEvent[] = [];
  private readonly queue: DomainLifecycleEvent[] = [];
  private readonly waiters: {
    resolve: (r: IteratorResult<DomainLifecycleEvent>) => void;
    reject: (e: Error) => void;
  }[] = [];
  private ended = false;
  private endError: ConnectionError | undefined;
  private readonly deregister: () => Promise<void>;

  constructor(callbackId: number, deregister: () => Promise<void>) {
    super();
    this.callbackId = callbackId;
    this.deregister = deregister;
  }

  get isActive(): boolean {
    return !this.ended;
  }

  /** @internal Called by the client when an event for this callback arrives. */
  push(ev: DomainLifecycleEvent): void {
    if (this.ended) return;
    this.history.push(ev);
    if (this.history.length > HISTORY_MAX) this.history.shift();
    const w = this.waiters.shift();
    if (w) w.resolve({ value: ev, done: false });
    else {
      // Nobody iterating: keep a bounded backlog for a later `for await`.
      this.queue.push(ev);
      if (this.queue.length > QUEUE_MAX) this.queue.shift();
    }
    this.emit('event', ev);
  }

  /** @internal Ends the subscription (connection lost: `err`; deregistered: undefined). */
  end(err?: ConnectionError): void {
    if (this.ended) return;
    this.ended = true;
    this.endError = err;
    for (const w of this.waiters.splice(0)) {
      if (err) w.reject(err);
      else w.resolve({ value: undefined, done: true });
    }
    this.emit('end', err);
  }

  /** Deregisters the callback on the daemon (best effort if the connection is gone) and ends iteration. */
  async close(): Promise<void> {
    if (this.ended) return;
    this.end();
    await this.deregister();
  }

  /**
   * Resolves with the first event matching `pred`: already received ones (from `history`) count
   * unless `onlyNew`. Rejects after `timeoutMs`, or when the subscription ends.
   */
  waitFor(
    pred: (ev: DomainLifecycleEvent) => boolean,
    timeoutMs = 30_000,
    opts: { onlyNew?: boolean } = {},
  ): Promise<DomainLifecycleEvent> {
    if (!opts.onlyNew) {
      const past = this.history.find(pred);
      if (past) return Promise.resolve(past);
    }
    if (this.ended) {
      return Promise.reject(this.endError ?? new Error('event subscription has ended'));
    }
    return new Promise((resolve, reject) => {
      const onEvent = (ev: DomainLifecycleEvent) => {
        if (!pred(ev)) return;
        cleanup();
        resolve(ev);
      };
      const onEnd = (err: ConnectionError | undefined) => {
        cleanup();
        reject(err ?? new Error('event subscription has ended'));
      };
      const timer = setTimeout(() => {
        cleanup();
        reject(new Error(`no matching domain event within ${timeoutMs} ms`));
      }, timeoutMs);
      const cleanup = () => {
        clearTimeout(timer);
        this.off('event', onEvent);
        this.off('end', onEnd);
      };
      this.on('event', onEvent);
      this.on('end', onEnd);
    });
  }

  [Symbol.asyncIterator](): AsyncIterator<DomainLifecycleEvent> {
    return {
      next: () => {
        const ev = this.queue.shift();
        if (ev) return Promise.resolve({ value: ev, done: false });
        if (this.ended) {
          return this.endError ? Promise.reject(this.endError) : Promise.resolve({ value: undefined, done: true });
        }
        return new Promise((resolve, reject) => this.waiters.push({ resolve, reject }));
      },
      return: async () => {
        await this.close();
        return { value: undefined, done: true };
      },
    };
  }
}
