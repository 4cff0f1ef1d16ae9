/**
 * A minimal Prometheus registry (text exposition format 0.0.4), written by hand: counters, gauges
 * and histograms with labels. Only what the watcher needs; no dependency.
 */

export type Labels = Record<string, string>;

function escapeLabelValue(v: string): string {
  return v.replace(/\\/g, '\\\\').replace(/\n/g, '\\n').replace(/"/g, '\\"');
}

function escapeHelp(v: string): string {
  return v.replace(/\\/g, '\\\\').replace(/\n/g, '\\n');
}

function labelKey(labels: Labels): string {
  return Object.keys(labels)
    .sort()
    .map((k) => `${k}="${escapeLabelValue(labels[k]!)}"`)
    .join(',');
}

function formatValue(v: number): string {
  if (Number.isNaN(v)) return 'NaN';
  if (v === Infinity) return '+Inf';
  if (v === -Infinity) return '-Inf';
  return String(v);
}

function series(name: string, key: string, value: number): string {
  return `${name}${key ? `{${key}}` : ''} ${formatValue(value)}`;
}

const NAME_RE = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;

interface Metric {
  readonly name: string;
  render(): string[];
}

abstract class Base implements Metric {
  constructor(readonly name: string, readonly help: string, readonly type: 'counter' | 'gauge' | 'histogram') {
    if (!NAME_RE.test(name)) throw new Error(`invalid metric name ${name}`);
  }
  protected header(): string[] {
    return [`# HELP ${this.name} ${escapeHelp(this.help)}`, `# TYPE ${this.name} ${this.type}`];
  }
  abstract render(): string[];
}

export class Counter extends Base {
  readonly #values = new Map<string, number>();
  constructor(name: string, help: string) {
    super(name, help, 'counter');
  }
  inc(labels: Labels = {}, by = 1): void {
    if (by < 0) throw new Error('a counter only goes up');
    const k = labelKey(labels);
    this.#values.set(k, (this.#values.get(k) ?? 0) + by);
  }
  get(labels: Labels = {}): number {
    return this.#values.get(labelKey(labels)) ?? 0;
  }
  /** Sum over all label sets. */
  total(): number {
    let s = 0;
    for (const v of this.#values.values()) s += v;
    return s;
  }
  render(): string[] {
    return [...this.header(), ...[...this.#values].map(([k, v]) => series(this.name, k, v))];
  }
}

export class Gauge extends Base {
  #values = new Map<string, number>();
  constructor(name: string, help: string) {
    super(name, help, 'gauge');
  }
  set(labels: Labels, value: number): void;
  set(value: number): void;
  set(a: Labels | number, b?: number): void {
    if (typeof a === 'number') this.#values.set('', a);
    else this.#values.set(labelKey(a), b ?? 0);
  }
  get(labels: Labels = {}): number | undefined {
    return this.#values.get(labelKey(labels));
  }
  /** Replace every series at once (for gauges computed from a snapshot, e.g. resources by state). */
  replace(entries: { labels: Labels; value: number }[]): void {
    const next = new Map<string, number>();
    for (const e of entries) next.set(labelKey(e.labels), e.value);
    this.#values = next;
  }
  render(): string[] {
    return [...this.header(), ...[...this.#values].map(([k, v]) => series(this.name, k, v))];
  }
}

export const DEFAULT_DURATION_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300];

export class Histogram extends Base {
  readonly #series = new Map<string, { counts: number[]; sum: number; count: number; labels: Labels }>();
  constructor(name: string, help: string, readonly buckets: number[] = DEFAULT_DURATION_BUCKETS) {
    super(name, help, 'histogram');
    for (let i = 1; i < buckets.length; i++) if (!(buckets[i]! > buckets[i - 1]!)) throw new Error('buckets must increase');
  }
  observe(value: number, labels: Labels = {}): void {
    const k = labelKey(labels);
    let s = this.#series.get(k);
    if (!s) {
      s = { counts: this.buckets.map(() => 0), sum: 0, count: 0, labels };
      this.#series.set(k, s);
    }
    for (let i = 0; i < this.buckets.length; i++) if (value <= this.buckets[i]!) s.counts[i]! += 1;
    s.sum += value;
    s.count += 1;
  }
  count(labels: Labels = {}): number {
    return this.#series.get(labelKey(labels))?.count ?? 0;
  }
  render(): string[] {
    const out = this.header();
    for (const s of this.#series.values()) {
      this.buckets.forEach((b, i) => {
        out.push(series(`${this.name}_bucket`, labelKey({ ...s.labels, le: formatValue(b) }), s.counts[i]!));
      });
      out.push(series(`${this.name}_bucket`, labelKey({ ...s.labels, le: '+Inf' }), s.count));
      out.push(series(`${this.name}_sum`, labelKey(s.labels), s.sum));
      out.push(series(`${this.name}_count`, labelKey(s.labels), s.count));
    }
    return out;
  }
}

export class Registry {
  readonly #metrics: Metric[] = [];
  register<M extends Metric>(m: M): M {
    if (this.#metrics.some((x) => x.name === m.name)) throw new Error(`metric ${m.name} registered twice`);
    this.#metrics.push(m);
    return m;
  }
  counter(name: string, help: string): Counter {
    return this.register(new Counter(name, help));
  }
  gauge(name: string, help: string): Gauge {
    return this.register(new Gauge(name, help));
  }
  histogram(name: string, help: string, buckets?: number[]): Histogram {
    return this.register(new Histogram(name, help, buckets));
  }
  /** The exposition text, newline-terminated. */
  render(): string {
    return `${this.#metrics.flatMap((m) => m.render()).join('\n')}\n`;
  }
}

/** The watcher's metrics. */
export class WatchMetrics {
  readonly registry = new Registry();
  readonly up = this.registry.gauge('virtform_up', '1 while the watcher process is running');
  readonly connected = this.registry.gauge('virtform_connected', '1 while connected to libvirtd');
  readonly runs = this.registry.counter('virtform_reconcile_runs_total', 'Reconcile runs by outcome (noop, succeeded, failed, invalid, error)');
  readonly runDuration = this.registry.histogram('virtform_reconcile_duration_seconds', 'Duration of reconcile runs');
  readonly steps = this.registry.counter('virtform_apply_steps_total', 'Apply steps by operation and outcome');
  readonly resources = this.registry.gauge('virtform_resources', 'Resources in the state DB by kind and last observed state');
  readonly driftCorrections = this.registry.counter('virtform_drift_corrections_total', 'Succeeded steps that corrected drift on the host');
  readonly calls = this.registry.counter('virtform_libvirt_calls_total', 'Calls made to libvirtd by procedure');
  readonly callErrors = this.registry.counter('virtform_libvirt_call_errors_total', 'Failed calls to libvirtd by procedure');
  readonly callDuration = this.registry.histogram(
    'virtform_libvirt_call_duration_seconds', 'Latency of calls to libvirtd',
    [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
  );
  readonly manifestErrors = this.registry.gauge('virtform_manifest_errors', 'Errors in the manifest folder at the last load (0 when valid)');
  readonly triggers = this.registry.counter('virtform_triggers_total', 'Reconcile triggers by source (file, event, resync, reconnect, initial)');
  readonly reconnects = this.registry.counter('virtform_reconnect_attempts_total', 'Attempts to (re)connect to libvirtd');

  constructor() {
    this.up.set(1);
    this.connected.set(0);
    this.manifestErrors.set(0);
  }

  render(): string {
    return this.registry.render();
  }
}
