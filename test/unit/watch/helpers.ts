/** Shared helpers for the watch tests: polling, a Prometheus text parser, a gated FakeHost. */
import { mkdirSync, readdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { FakeHost } from '../../support/fake-host.js';
import type { HostSnapshot } from '../../../src/reconcile/ports.js';

export async function waitFor(cond: () => boolean | Promise<boolean>, what: string, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await cond()) return;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

export interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

const NAME = '[a-zA-Z_:][a-zA-Z0-9_:]*';
const LABEL = `[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\\\\n]|\\\\[\\\\n"])*"`;
const SAMPLE_RE = new RegExp(`^(${NAME})(?:\\{((?:${LABEL})(?:,${LABEL})*)?\\})? (-?[0-9.eE+-]+|[+-]Inf|[Nn]a[Nn])(?: -?[0-9]+)?$`);
const HELP_RE = new RegExp(`^# HELP (${NAME}) .*$`);
const TYPE_RE = new RegExp(`^# TYPE (${NAME}) (counter|gauge|histogram|summary|untyped)$`);

/**
 * Parse Prometheus text exposition (0.0.4) strictly: every line must be a HELP/TYPE comment or a
 * sample `name{labels} value`; a sample's family must have been TYPEd before it; histogram
 * buckets must be cumulative with `+Inf` equal to `_count`. Throws on the first bad line.
 */
export function parsePrometheus(text: string): Sample[] {
  if (!text.endsWith('\n')) throw new Error('exposition must end with a newline');
  const types = new Map<string, string>();
  const samples: Sample[] = [];
  text.slice(0, -1).split('\n').forEach((line, i) => {
    const bad = (why: string): never => {
      throw new Error(`line ${i + 1}: ${why}: ${JSON.stringify(line)}`);
    };
    if (line === '') return; // empty lines are ignored by the format (prom-client separates families with one)
    if (line.startsWith('#')) {
      const t = TYPE_RE.exec(line);
      if (t) {
        if (types.has(t[1]!)) bad('family typed twice');
        types.set(t[1]!, t[2]!);
      } else if (!HELP_RE.test(line)) bad('not a valid comment');
      return;
    }
    const m = SAMPLE_RE.exec(line);
    if (!m) bad('not a valid sample');
    const name = m![1]!;
    const family = types.has(name) ? name : name.replace(/_(bucket|sum|count)$/, '');
    const type = types.get(family);
    if (!type) bad('sample before its # TYPE');
    if (family !== name && type !== 'histogram' && type !== 'summary') bad('suffix on a non-histogram');
    const labels: Record<string, string> = {};
    for (const lm of (m![2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) {
      labels[lm[1]!] = lm[2]!.replace(/\\n/g, '\n').replace(/\\"/g, '"').replace(/\\\\/g, '\\');
    }
    const v = m![3]!;
    const nan = /^nan$/i.test(v); // Prometheus parses floats like Go's ParseFloat: NaN in any case
    const value = v === '+Inf' ? Infinity : v === '-Inf' ? -Infinity : nan ? NaN : Number(v);
    if (!nan && Number.isNaN(value)) bad('value is not a number');
    if (type === 'counter' && value < 0) bad('negative counter');
    samples.push({ name, labels, value });
  });
  // Histograms: cumulative buckets, +Inf == _count.
  for (const [family, type] of types) {
    if (type !== 'histogram') continue;
    const groups = new Map<string, Sample[]>();
    for (const s of samples.filter((x) => x.name === `${family}_bucket`)) {
      const { le, ...rest } = s.labels;
      if (le === undefined) throw new Error(`${family}_bucket without le`);
      const k = JSON.stringify(Object.entries(rest).sort());
      groups.set(k, [...(groups.get(k) ?? []), s]);
    }
    for (const [k, buckets] of groups) {
      let prev = -Infinity;
      let prevCount = 0;
      for (const b of buckets) {
        const le = b.labels.le === '+Inf' ? Infinity : Number(b.labels.le);
        if (!(le > prev)) throw new Error(`${family}: buckets not increasing`);
        if (b.value < prevCount) throw new Error(`${family}: bucket counts not cumulative`);
        prev = le;
        prevCount = b.value;
      }
      if (prev !== Infinity) throw new Error(`${family}: no +Inf bucket`);
      const count = samples.find((s) => s.name === `${family}_count` && JSON.stringify(Object.entries(s.labels).sort()) === k);
      if (!count || count.value !== prevCount) throw new Error(`${family}: +Inf bucket != _count`);
    }
  }
  return samples;
}

/** Value of one sample (labels must match exactly); 0 when absent. */
export function sampleValue(samples: Sample[], name: string, labels: Record<string, string> = {}): number {
  const want = JSON.stringify(Object.entries(labels).sort());
  return samples.find((s) => s.name === name && JSON.stringify(Object.entries(s.labels).sort()) === want)?.value ?? 0;
}

/** FakeHost whose snapshot() can be held at a gate, and which counts concurrent snapshots (= runs). */
export class GatedHost extends FakeHost {
  hold = false;
  waiting = 0;
  inSnapshot = 0;
  maxInSnapshot = 0;
  snapshots = 0;
  #release: (() => void)[] = [];

  override async snapshot(): Promise<HostSnapshot> {
    this.snapshots += 1;
    this.inSnapshot += 1;
    this.maxInSnapshot = Math.max(this.maxInSnapshot, this.inSnapshot);
    try {
      if (this.hold) {
        this.waiting += 1;
        await new Promise<void>((r) => this.#release.push(r));
        this.waiting -= 1;
      }
      return await super.snapshot();
    } finally {
      this.inSnapshot -= 1;
    }
  }

  open(): void {
    this.hold = false;
    const r = this.#release;
    this.#release = [];
    for (const f of r) f();
  }
}

/**
 * Rewrite a manifest folder in place, the way `git pull` does: each file is written to a temp name
 * and renamed over the old one; files not in `files` are removed. The folder itself stays.
 */
export function writeFilesInPlace(dir: string, files: Record<string, string>): void {
  mkdirSync(dir, { recursive: true });
  for (const [name, text] of Object.entries(files)) {
    const tmp = join(dir, `.${name}.tmp-${process.pid}`);
    writeFileSync(tmp, text);
    renameSync(tmp, join(dir, name));
  }
  for (const f of readdirSync(dir)) if (!(f in files) && /\.ya?ml$/.test(f)) rmSync(join(dir, f));
}
