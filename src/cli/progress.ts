/**
 * Progress of long steps (image downloads and uploads): on a terminal one line on stderr,
 * redrawn in place (bytes, rate, ETA); with `--json`, JSON lines on stderr; otherwise nothing.
 */
import type { ApplyEvent } from '../reconcile/apply.js';
import type { ImageProgress } from '../reconcile/images.js';

function mib(n: number): string {
  return n >= 1024 ** 3 ? `${(n / 1024 ** 3).toFixed(2)} GiB` : `${(n / 1024 ** 2).toFixed(1)} MiB`;
}

export interface ProgressSink {
  write(s: string): void;
  isTTY: boolean;
}

export class ProgressLine {
  private readonly started = new Map<string, { at: number; bytes: number }>();
  private readonly lastJson = new Map<string, number>();
  private drawn = false;

  constructor(private readonly sink: ProgressSink, private readonly json: boolean, private readonly now: () => number = Date.now) {}

  /** Take a progress event; true when it was one. */
  handle(e: ApplyEvent): boolean {
    if (e.type !== 'progress') return false;
    this.show(e.step.key, e.progress);
    return true;
  }

  show(resource: string, p: ImageProgress): void {
    const id = `${resource}:${p.phase}`;
    const t = this.now();
    let s = this.started.get(id);
    if (!s) this.started.set(id, (s = { at: t, bytes: p.bytes }));
    const secs = (t - s.at) / 1000;
    const rate = secs > 0 ? (p.bytes - s.bytes) / secs : undefined;
    const eta = rate && p.total !== undefined && rate > 0 ? Math.max(0, (p.total - p.bytes) / rate) : undefined;
    const done = p.total !== undefined && p.bytes >= p.total;
    if (this.json) {
      const last = this.lastJson.get(id) ?? 0;
      if (!done && t - last < 1000) return;
      this.lastJson.set(id, t);
      this.sink.write(`${JSON.stringify({
        event: 'progress', resource, phase: p.phase, bytes: p.bytes, total: p.total ?? null,
        bytesPerSecond: rate !== undefined ? Math.round(rate) : null, etaSeconds: eta !== undefined ? Math.round(eta) : null,
      })}\n`);
      return;
    }
    if (!this.sink.isTTY) return;
    const verb = { download: 'downloading', upload: 'uploading', copy: 'copying', verify: 'verifying' }[p.phase];
    const of = p.total !== undefined ? ` / ${mib(p.total)}` : '';
    const r = rate !== undefined ? `  ${mib(rate)}/s` : '';
    const e = eta !== undefined ? `  ETA ${Math.ceil(eta)}s` : '';
    this.sink.write(`\r\x1b[K  ${resource}: ${verb} ${mib(p.bytes)}${of}${r}${e}`);
    this.drawn = true;
  }

  /** Clear the line before other output. */
  clear(): void {
    if (this.drawn) this.sink.write('\r\x1b[K');
    this.drawn = false;
  }
}
