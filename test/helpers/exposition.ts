/**
 * A reader of the Prometheus text format for tests and benchmarks: scrapes of our agents, and the
 * API server's /metrics (admission latency histograms).
 */

export interface Sample {
  readonly name: string;
  readonly labels: Readonly<Record<string, string>>;
  readonly value: number;
}

/** Every sample line of `text` (comments and blank lines skipped); throws on a line that is neither. */
export function parseSamples(text: string): Sample[] {
  const samples: Sample[] = [];
  for (const line of text.split('\n')) {
    if (!line || line.startsWith('#')) continue;
    const match = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)(?: \d+)?$/.exec(line);
    if (!match) throw new Error(`not a sample line: ${line}`);
    const labels: Record<string, string> = {};
    for (const [, key, value] of (match[2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) {
      labels[key!] = value!.replace(/\\(["\\n])/g, (_, c: string) => (c === 'n' ? '\n' : c));
    }
    samples.push({ name: match[1]!, labels, value: Number(match[3]) });
  }
  return samples;
}

/** Samples as `name{k=v,...}` (labels sorted, `le` as a number) → value: two writers' output compares equal. */
export function sampleMap(text: string): Map<string, number> {
  return new Map(parseSamples(text).map((s) => {
    const labels = Object.entries(s.labels).map(([k, v]) => `${k}=${k === 'le' ? String(Number(v)) : v}`).sort();
    return [`${s.name}{${labels.join(',')}}`, s.value];
  }));
}

/** Samples named `name` whose labels include `match`. */
export function samplesOf(samples: readonly Sample[], name: string, match: Readonly<Record<string, string>> = {}): Sample[] {
  return samples.filter((s) => s.name === name && Object.entries(match).every(([k, v]) => s.labels[k] === v));
}

/**
 * A quantile from cumulative histogram buckets (`le` → count), interpolated linearly inside the
 * bucket, as PromQL's histogram_quantile does.
 */
export function histogramQuantile(q: number, buckets: ReadonlyArray<{ readonly le: number; readonly count: number }>): number {
  const sorted = [...buckets].sort((a, b) => a.le - b.le);
  const total = sorted.at(-1)?.count ?? 0;
  if (total === 0) return Number.NaN;
  const rank = q * total;
  let previous = { le: 0, count: 0 };
  for (const bucket of sorted) {
    if (bucket.count >= rank) {
      if (bucket.le === Number.POSITIVE_INFINITY) return previous.le;
      const inBucket = bucket.count - previous.count;
      return previous.le + (bucket.le - previous.le) * (inBucket === 0 ? 0 : (rank - previous.count) / inBucket);
    }
    previous = bucket;
  }
  return previous.le;
}
