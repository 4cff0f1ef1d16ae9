/**
 * `GET /api/v1/events` (text/event-stream): one broadcaster for every viewer. Each new snapshot
 * is serialized ONCE into an `event: snapshot` frame and the same bytes are written to every open
 * stream; a comment heartbeat (`: heartbeat`) every 15 s from one timer keeps proxies from closing
 * idle streams. A viewer costs a socket write per snapshot, never work of its own.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { SnapshotEvent } from './types.js';

export const HEARTBEAT_MS = 15_000;
/** Streams served at once; beyond, 503 (each holds a socket). */
export const MAX_STREAMS = 200;

export class EventBroadcaster {
  readonly #clients = new Set<ServerResponse>();
  readonly #heartbeatMs: number;
  #timer: NodeJS.Timeout | undefined;
  #last: { frame: string; seq: number } | undefined;
  /** Frames serialized (one per snapshot, whatever the number of viewers): tests and the bench read it. */
  framesBuilt = 0;

  constructor(o: { heartbeatMs?: number } = {}) {
    this.#heartbeatMs = o.heartbeatMs ?? HEARTBEAT_MS;
  }

  get clients(): number {
    return this.#clients.size;
  }

  /** Start a stream. The current snapshot's event is sent first (so a viewer knows the seq it starts from). */
  open(req: IncomingMessage, res: ServerResponse, headers: Record<string, string>): void {
    if (this.#clients.size >= MAX_STREAMS) {
      res.writeHead(503, { ...headers, 'content-type': 'text/plain; charset=utf-8', 'retry-after': '30' });
      res.end(`too many event streams (${MAX_STREAMS})\n`);
      return;
    }
    res.writeHead(200, {
      ...headers,
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-store',
      connection: 'keep-alive',
      'x-accel-buffering': 'no',
    });
    res.write(`retry: 2000\n\n`);
    if (this.#last) res.write(this.#last.frame);
    this.#clients.add(res);
    req.socket.setTimeout(0);
    req.socket.setKeepAlive(true);
    const drop = (): void => {
      this.#clients.delete(res);
      if (this.#clients.size === 0) this.#stopTimer();
    };
    res.on('close', drop);
    res.on('error', drop);
    this.#startTimer();
  }

  /** Send a snapshot event to every stream (serialized once). */
  publish(e: SnapshotEvent): void {
    const frame = `event: snapshot\nid: ${e.seq}\ndata: ${JSON.stringify(e)}\n\n`;
    this.framesBuilt += 1;
    this.#last = { frame, seq: e.seq };
    for (const c of this.#clients) c.write(frame);
  }

  /** End every stream (the listener closes). */
  close(): void {
    this.#stopTimer();
    for (const c of this.#clients) c.end();
    this.#clients.clear();
  }

  #startTimer(): void {
    if (this.#timer) return;
    this.#timer = setInterval(() => {
      for (const c of this.#clients) c.write(`: heartbeat ${new Date().toISOString()}\n\n`);
    }, this.#heartbeatMs);
    this.#timer.unref();
  }

  #stopTimer(): void {
    if (this.#timer) clearInterval(this.#timer);
    this.#timer = undefined;
  }
}
