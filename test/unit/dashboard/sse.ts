/** A small text/event-stream client for tests: collects `event:`/`data:` frames (node:http / node:https). */
import { request as httpRequest, type IncomingMessage } from 'node:http';
import { request as httpsRequest } from 'node:https';

export interface SseEvent {
  event: string;
  id?: string;
  data: string;
}

export interface SseStream {
  status: number;
  headers: IncomingMessage['headers'];
  events: SseEvent[];
  comments: string[];
  /** Resolves with the first event (already received or to come) that matches. */
  next(match: (e: SseEvent) => boolean, timeoutMs?: number, what?: string): Promise<SseEvent>;
  close(): void;
}

export function openSse(url: string, headers: Record<string, string> = {}, o: { ca?: string | Buffer; insecure?: boolean } = {}): Promise<SseStream> {
  const u = new URL(url);
  const req = (u.protocol === 'https:' ? httpsRequest : httpRequest)(u, {
    headers: { accept: 'text/event-stream', ...headers },
    ...(u.protocol === 'https:' ? { ca: o.ca, rejectUnauthorized: !o.insecure } : {}),
  });
  return new Promise((resolve, reject) => {
    req.on('error', reject);
    req.on('response', (res) => {
      const events: SseEvent[] = [];
      const comments: string[] = [];
      const waiters: { match: (e: SseEvent) => boolean; resolve: (e: SseEvent) => void }[] = [];
      let buf = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => {
        buf += chunk;
        let i: number;
        while ((i = buf.indexOf('\n\n')) >= 0) {
          const frame = buf.slice(0, i);
          buf = buf.slice(i + 2);
          const e: SseEvent = { event: 'message', data: '' };
          let hasData = false;
          for (const line of frame.split('\n')) {
            if (line.startsWith(':')) comments.push(line.slice(1).trim());
            else if (line.startsWith('event: ')) e.event = line.slice(7);
            else if (line.startsWith('id: ')) e.id = line.slice(4);
            else if (line.startsWith('data: ')) {
              e.data += line.slice(6);
              hasData = true;
            }
          }
          if (!hasData) continue;
          events.push(e);
          for (const w of [...waiters]) {
            if (w.match(e)) {
              waiters.splice(waiters.indexOf(w), 1);
              w.resolve(e);
            }
          }
        }
      });
      resolve({
        status: res.statusCode ?? 0,
        headers: res.headers,
        events,
        comments,
        next: (match, timeoutMs = 20_000, what = 'an event') => {
          const seen = events.find(match);
          if (seen) return Promise.resolve(seen);
          return new Promise((res2, rej) => {
            const t = setTimeout(() => rej(new Error(`timed out waiting for ${what}; got ${JSON.stringify(events)}`)), timeoutMs);
            waiters.push({ match, resolve: (e) => { clearTimeout(t); res2(e); } });
          });
        },
        close: () => {
          req.destroy();
        },
      });
    });
    req.end();
  });
}
