import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import * as promClient from 'prom-client';
import { sampleMap } from '../../../test/helpers/exposition.ts';
import { Counter, exponentialBuckets, Gauge, Histogram, MetricRegistry } from './metrics.ts';

describe('agent metrics', () => {
  it('renders the same samples prom-client does for the same observations', async () => {
    const buckets = exponentialBuckets(0.00005, 2, 17);
    const ours = new MetricRegistry();
    const histogram = ours.register(new Histogram({ name: 'rtt_seconds', help: 'RTT.', labelNames: ['dest_pod', 'method'], buckets }));
    const counter = ours.register(new Counter({ name: 'errors_total', help: 'Errors.', labelNames: ['reason'] }));
    const gauge = ours.register(new Gauge({ name: 'peers', help: 'Peers.', labelNames: [] }));
    const theirs = new promClient.Registry();
    const h2 = new promClient.Histogram({ name: 'rtt_seconds', help: 'RTT.', labelNames: ['dest_pod', 'method'], buckets, registers: [theirs] });
    const c2 = new promClient.Counter({ name: 'errors_total', help: 'Errors.', labelNames: ['reason'], registers: [theirs] });
    const g2 = new promClient.Gauge({ name: 'peers', help: 'Peers.', registers: [theirs] });
    const values = [0.00004, 0.00005, 0.000051, 0.0012, 0.0031, 0.02, 1.5, 7, 0.0001];
    for (const [i, v] of values.entries()) {
      const labels = { dest_pod: i % 2 ? 'web-"1"\\x' : 'db-0', method: 'http' };
      histogram.observe(labels, v);
      h2.observe(labels, v);
    }
    counter.inc({ reason: 'timeout' });
    counter.inc({ reason: 'timeout' }, 2);
    c2.inc({ reason: 'timeout' }, 3);
    gauge.set({}, 4);
    g2.set(4);
    const mine = sampleMap(ours.render());
    const reference = sampleMap(await theirs.metrics());
    assert.deepEqual([...mine.keys()].sort(), [...reference.keys()].sort());
    for (const [key, value] of reference) assert.ok(Math.abs(mine.get(key)! - value) < 1e-12, `${key}: ${mine.get(key)} vs ${value}`);
  });

  it('writes HELP and TYPE, escapes label values, and lists the series names', () => {
    const registry = new MetricRegistry();
    const counter = registry.register(new Counter({ name: 'crowsnest_x_total', help: 'A line\nand a \\ backslash.', labelNames: ['pod'] }));
    counter.inc({ pod: 'a"b\nc' });
    registry.register(new Histogram({ name: 'h_seconds', help: 'H.', labelNames: [], buckets: [1] }));
    assert.equal(registry.render(), '# HELP crowsnest_x_total A line\\nand a \\\\ backslash.\n# TYPE crowsnest_x_total counter\ncrowsnest_x_total{pod="a\\"b\\nc"} 1\n# HELP h_seconds H.\n# TYPE h_seconds histogram\n');
    assert.deepEqual(registry.seriesNames(), ['crowsnest_x_total', 'h_seconds_bucket', 'h_seconds_sum', 'h_seconds_count']);
  });

  it('removes the series of a peer that left, and only those', () => {
    const registry = new MetricRegistry();
    const histogram = registry.register(new Histogram({ name: 'rtt_seconds', help: 'x', labelNames: ['dest_pod', 'method'], buckets: [0.1] }));
    const counter = registry.register(new Counter({ name: 'errors_total', help: 'x', labelNames: ['dest_pod', 'reason'] }));
    histogram.observe({ dest_pod: 'a', method: 'http' }, 0.01);
    histogram.observe({ dest_pod: 'a', method: 'tcp' }, 0.01);
    histogram.observe({ dest_pod: 'b', method: 'http' }, 0.01);
    counter.inc({ dest_pod: 'a', reason: 'timeout' });
    histogram.remove({ dest_pod: 'a' });
    counter.remove({ dest_pod: 'a' });
    const text = registry.render();
    assert.doesNotMatch(text, /dest_pod="a"/);
    assert.match(text, /rtt_seconds_count\{dest_pod="b",method="http"\} 1/);
  });

  it('refuses names Prometheus would refuse, counters without _total, decreasing counters, duplicates', () => {
    assert.throws(() => new Gauge({ name: 'bad-name', help: 'x', labelNames: [] }), /invalid metric name/);
    assert.throws(() => new Gauge({ name: 'g', help: 'x', labelNames: ['le'] }), /invalid label name/);
    assert.throws(() => new Counter({ name: 'errors', help: 'x', labelNames: [] }), /_total/);
    assert.throws(() => new Counter({ name: 'e_total', help: 'x', labelNames: [] }).inc({}, -1), /cannot decrease/);
    const registry = new MetricRegistry();
    registry.register(new Gauge({ name: 'g', help: 'x', labelNames: [] }));
    assert.throws(() => registry.register(new Gauge({ name: 'g', help: 'x', labelNames: [] })), /twice/);
  });

  it('makes the seed\'s buckets exactly: 10 µs × 2^k, 25 of them', () => {
    const buckets = exponentialBuckets(0.00001, 2, 25);
    assert.equal(buckets.length, 25);
    assert.equal(buckets[0], 0.00001);
    assert.equal(buckets[24], 0.00001 * 2 ** 24);
    assert.equal(String(buckets[3]), '0.00008');
  });
});
