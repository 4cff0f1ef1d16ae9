/**
 * libvirt domain lifecycle events, filtered to the domains virtform owns (recorded in the state
 * DB or declared in the last good manifests): a VM stopped, crashed or undefined outside virtform
 * triggers a run. Events within `debounceMs` of the first one join one trigger. The subscription
 * is made again on every new connection (a connect hook of the HostConnection).
 */
import type { DomainLifecycleEvent } from '../../reconcile/ports.js';
import { LOCAL_HOST, type HostId } from '../../model/kinds.js';
import { silentLogger, type Logger } from '../logger.js';
import type { HostConnection } from './connection.js';
import type { Enqueue, Source } from './types.js';

export class LifecycleEventSource implements Source {
  readonly name = 'libvirt-events';
  readonly #log: Logger;
  #owned = new Set<string>();
  #enqueue: Enqueue = () => undefined;
  #timer: NodeJS.Timeout | undefined;
  #stopped = false;

  /** `host`: the id of the connection's host (events of another host's domains are that host's source's). */
  constructor(connection: HostConnection, readonly debounceMs = 100, logger?: Logger, readonly host: HostId = LOCAL_HOST) {
    this.#log = logger ?? silentLogger;
    connection.onConnect((raw) => raw.subscribeDomainEvents((e) => this.#onEvent(e)));
  }

  /** Replace the set of owned domain names (on this source's host) events are accepted for. */
  setOwned(names: Iterable<string>): void {
    this.#owned = new Set(names);
  }

  async start(enqueue: Enqueue): Promise<void> {
    this.#enqueue = enqueue;
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    clearTimeout(this.#timer);
    this.#timer = undefined;
  }

  /** Log lines name the host when it is not the implicit local one (one-host logs stay as they were). */
  #hostField(): { host?: HostId } {
    return this.host === LOCAL_HOST ? {} : { host: this.host };
  }

  #onEvent(e: DomainLifecycleEvent): void {
    if (this.#stopped) return;
    if (!this.#owned.has(e.name)) {
      this.#log.debug('lifecycle event ignored: domain not managed', { ...this.#hostField(), domain: e.name, event: e.event });
      return;
    }
    this.#log.info('lifecycle event', { ...this.#hostField(), domain: e.name, event: e.event, detail: e.detail });
    if (this.#timer) return; // already scheduled: this event joins it
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      this.#enqueue('event');
    }, this.debounceMs);
  }
}
