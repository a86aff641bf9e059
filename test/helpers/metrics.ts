import type { Registry } from 'prom-client';

/** Value of one series from the registry, e.g. metricValue(r, 'workqueue_depth', { name: 'q' }). */
export async function metricValue(registry: Registry, metricName: string, labels: Record<string, string>): Promise<number | undefined> {
  for (const metric of await registry.getMetricsAsJSON()) {
    for (const sample of metric.values) {
      const name = (sample as { metricName?: string }).metricName ?? metric.name;
      if (name !== metricName) continue;
      if (Object.entries(labels).every(([k, v]) => String(sample.labels[k]) === v)) return sample.value;
    }
  }
  return undefined;
}
