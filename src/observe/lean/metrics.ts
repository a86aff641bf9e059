/**
 * Counters, gauges and histograms in the Prometheus text format (0.0.4), for the in-pod agents
 * (the prober's agent, guard's health sidecar) only.
 *
 * Why not prom-client, which the operator uses: loading it adds ~16 MiB to a process whose whole
 * budget is about that (Node's own floor here is ~44 MiB RSS), for features the agent does not
 * use (summaries, default metrics, aggregation across workers). What the agent needs is a few
 * labelled series, removed when a peer leaves, rendered on each scrape: below.
 */

type Labels<L extends string> = Readonly<Record<L, string>>;

interface MetricOptions<L extends string> {
  /** `crowsnest_<subsystem>_<name>_<unit>`. */
  readonly name: string;
  readonly help: string;
  readonly labelNames: readonly L[];
}

const NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const LABEL = /^[a-zA-Z_][a-zA-Z0-9_]*$/;

abstract class Metric<L extends string> {
  readonly name: string;
  readonly help: string;
  readonly labelNames: readonly L[];
  abstract readonly type: 'counter' | 'gauge' | 'histogram';

  constructor(options: MetricOptions<L>) {
    if (!NAME.test(options.name)) throw new Error(`invalid metric name ${options.name}`);
    for (const label of options.labelNames) if (!LABEL.test(label) || label === 'le') throw new Error(`invalid label name ${label} of ${options.name}`);
    this.name = options.name;
    this.help = options.help;
    this.labelNames = options.labelNames;
  }

  /** Names of the series this metric exposes (a histogram's _bucket, _sum, _count). */
  abstract seriesNames(): string[];
  abstract render(): string;
  /** Drops every series whose labels include all of `match` (e.g. `{ dest_pod: 'web-1' }`). */
  abstract remove(match: Partial<Labels<L>>): void;

  protected key(labels: Labels<L>): string {
    return this.labelNames.map((name) => labels[name] ?? '').join('\u0000');
  }

  protected labelsText(labels: Labels<L>, extra = ''): string {
    const parts = this.labelNames.map((name) => `${name}="${escapeLabelValue(labels[name] ?? '')}"`);
    if (extra) parts.push(extra);
    return parts.length ? `{${parts.join(',')}}` : '';
  }

  protected header(): string {
    return `# HELP ${this.name} ${this.help.replace(/\\/g, '\\\\').replace(/\n/g, '\\n')}\n# TYPE ${this.name} ${this.type}\n`;
  }
}

function matches<L extends string>(labels: Labels<L>, match: Partial<Labels<L>>): boolean {
  return Object.entries(match).every(([name, value]) => labels[name as L] === value);
}

class SimpleMetric<L extends string> extends Metric<L> {
  readonly type: 'counter' | 'gauge';
  protected readonly series = new Map<string, { labels: Labels<L>; value: number }>();

  constructor(type: 'counter' | 'gauge', options: MetricOptions<L>) {
    super(options);
    this.type = type;
  }

  seriesNames(): string[] {
    return [this.name];
  }

  render(): string {
    let text = this.header();
    for (const { labels, value } of this.series.values()) text += `${this.name}${this.labelsText(labels)} ${formatNumber(value)}\n`;
    return text;
  }

  remove(match: Partial<Labels<L>>): void {
    for (const [key, entry] of this.series) if (matches(entry.labels, match)) this.series.delete(key);
  }

  /** The current value of one series (0 when it does not exist). */
  get(labels: Labels<L>): number {
    return this.series.get(this.key(labels))?.value ?? 0;
  }
}

export class Counter<L extends string = never> extends SimpleMetric<L> {
  constructor(options: MetricOptions<L>) {
    if (!options.name.endsWith('_total')) throw new Error(`counter ${options.name} must end in _total`);
    super('counter', options);
  }

  inc(labels: Labels<L>, by = 1): void {
    if (by < 0) throw new Error(`counter ${this.name} cannot decrease`);
    const key = this.key(labels);
    const entry = this.series.get(key);
    if (entry) entry.value += by;
    else this.series.set(key, { labels: { ...labels }, value: by });
  }
}

export class Gauge<L extends string = never> extends SimpleMetric<L> {
  constructor(options: MetricOptions<L>) {
    super('gauge', options);
  }

  set(labels: Labels<L>, value: number): void {
    const key = this.key(labels);
    const entry = this.series.get(key);
    if (entry) entry.value = value;
    else this.series.set(key, { labels: { ...labels }, value });
  }
}

interface HistogramSeries<L extends string> {
  readonly labels: Labels<L>;
  /** Per bucket, not cumulative: the count of observations ≤ its bound and > the previous one. */
  readonly counts: number[];
  sum: number;
  count: number;
}

export class Histogram<L extends string = never> extends Metric<L> {
  readonly type = 'histogram' as const;
  readonly buckets: readonly number[];
  private readonly series = new Map<string, HistogramSeries<L>>();

  constructor(options: MetricOptions<L> & { readonly buckets: readonly number[] }) {
    super(options);
    const sorted = [...options.buckets].sort((a, b) => a - b);
    if (sorted.length === 0 || sorted.some((b, i) => i > 0 && b === sorted[i - 1])) throw new Error(`histogram ${options.name} needs distinct buckets`);
    this.buckets = sorted;
  }

  seriesNames(): string[] {
    return [`${this.name}_bucket`, `${this.name}_sum`, `${this.name}_count`];
  }

  observe(labels: Labels<L>, value: number): void {
    const key = this.key(labels);
    let entry = this.series.get(key);
    if (!entry) {
      entry = { labels: { ...labels }, counts: new Array<number>(this.buckets.length + 1).fill(0), sum: 0, count: 0 };
      this.series.set(key, entry);
    }
    let index = this.buckets.findIndex((bound) => value <= bound);
    if (index === -1) index = this.buckets.length;
    entry.counts[index]!++;
    entry.sum += value;
    entry.count++;
  }

  /** Observation count of one series (0 when it does not exist). */
  count(labels: Labels<L>): number {
    return this.series.get(this.key(labels))?.count ?? 0;
  }

  render(): string {
    let text = this.header();
    for (const entry of this.series.values()) {
      let cumulative = 0;
      for (const [i, bound] of this.buckets.entries()) {
        cumulative += entry.counts[i]!;
        text += `${this.name}_bucket${this.labelsText(entry.labels, `le="${formatNumber(bound)}"`)} ${cumulative}\n`;
      }
      text += `${this.name}_bucket${this.labelsText(entry.labels, 'le="+Inf"')} ${entry.count}\n`;
      text += `${this.name}_sum${this.labelsText(entry.labels)} ${formatNumber(entry.sum)}\n`;
      text += `${this.name}_count${this.labelsText(entry.labels)} ${entry.count}\n`;
    }
    return text;
  }

  remove(match: Partial<Labels<L>>): void {
    for (const [key, entry] of this.series) if (matches(entry.labels, match)) this.series.delete(key);
  }
}

/** A label-less series read when scraped (process memory, CPU time). */
export class Sampled extends Metric<never> {
  readonly type: 'counter' | 'gauge';
  private readonly sample: () => number;

  constructor(type: 'counter' | 'gauge', options: { readonly name: string; readonly help: string }, sample: () => number) {
    super({ ...options, labelNames: [] });
    this.type = type;
    this.sample = sample;
  }

  seriesNames(): string[] {
    return [this.name];
  }

  render(): string {
    return `${this.header()}${this.name} ${formatNumber(this.sample())}\n`;
  }

  remove(): void {}
}

/** `count` bucket bounds starting at `start`, each `factor` times the previous. */
export function exponentialBuckets(start: number, factor: number, count: number): number[] {
  return Array.from({ length: count }, (_, i) => start * factor ** i);
}

export class MetricRegistry {
  private readonly metrics: Array<Metric<string>> = [];

  register<M extends Metric<string>>(metric: M): M {
    if (this.metrics.some((m) => m.name === metric.name)) throw new Error(`metric ${metric.name} registered twice`);
    this.metrics.push(metric);
    return metric;
  }

  /** Every series name a scrape can show (histograms' `_bucket`, `_sum`, `_count`). */
  seriesNames(): string[] {
    return this.metrics.flatMap((m) => m.seriesNames());
  }

  /** The text exposition format, `text/plain; version=0.0.4`. */
  render(): string {
    return this.metrics.map((m) => m.render()).join('');
  }
}

export const CONTENT_TYPE = 'text/plain; version=0.0.4; charset=utf-8';

/**
 * The process's own cost under the names Prometheus clients use: `process_resident_memory_bytes`,
 * `process_cpu_seconds_total`, `process_start_time_seconds`.
 */
export function registerProcessMetrics(registry: MetricRegistry, startTimeSeconds = Date.now() / 1000): void {
  registry.register(new Sampled('gauge', { name: 'process_resident_memory_bytes', help: 'Resident memory size in bytes.' }, () => process.memoryUsage.rss()));
  registry.register(new Sampled('counter', { name: 'process_cpu_seconds_total', help: 'User and system CPU time spent in seconds.' }, () => {
    const { user, system } = process.cpuUsage();
    return (user + system) / 1e6;
  }));
  registry.register(new Sampled('gauge', { name: 'process_start_time_seconds', help: 'Start time of the process since the Unix epoch in seconds.' }, () => startTimeSeconds));
}

/**
 * An in-pod agent's metrics port: `/metrics` renders `registry`; `/readyz` and `/healthz` answer
 * 200 unless `notReady()` gives a reason (then 503 with it); anything else 404.
 */
export function metricsEndpoint(registry: MetricRegistry, notReady: () => string | undefined = () => undefined): (request: { readonly path: string }) => { status: number; contentType?: string; body: string } {
  return (request) => {
    switch (request.path) {
      case '/metrics':
        return { status: 200, contentType: CONTENT_TYPE, body: registry.render() };
      case '/readyz':
      case '/healthz': {
        const reason = notReady();
        return reason === undefined ? { status: 200, body: 'ok\n' } : { status: 503, body: `${reason}\n` };
      }
      default:
        return { status: 404, body: 'not found\n' };
    }
  };
}

function escapeLabelValue(value: string): string {
  return value.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n');
}

function formatNumber(value: number): string {
  if (Number.isNaN(value)) return 'NaN';
  if (value === Number.POSITIVE_INFINITY) return '+Inf';
  if (value === Number.NEGATIVE_INFINITY) return '-Inf';
  return String(value);
}
