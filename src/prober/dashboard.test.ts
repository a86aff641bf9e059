/**
 * The chart's Grafana dashboard asks only for series the agent exports: every PromQL expression
 * in it (panels and variables) is read, and each metric name must be one the agent's registry
 * writes, each grouping label one of the agent's labels or of the scrape target's.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { AgentMetrics } from './agent/agent-metrics.ts';

const DASHBOARD = join(import.meta.dirname, '..', '..', 'deploy', 'helm', 'crowsnest', 'files', 'prober-dashboard.json');
/** Labels Prometheus adds to every series it scrapes from a pod (PodMonitor). */
const TARGET_LABELS = ['namespace', 'pod', 'container', 'instance', 'job', 'endpoint'];
const KEYWORDS = new Set(['by', 'without', 'on', 'ignoring', 'group_left', 'group_right', 'bool', 'and', 'or', 'unless', 'offset', 'inf', 'nan']);

interface Dashboard {
  panels: Array<{ title: string; targets?: Array<{ expr: string }> }>;
  templating: { list: Array<{ name: string; type: string; query?: { query: string } | string }> };
}

/** The metric names and the grouping labels of a PromQL expression. */
export function promqlNames(expr: string): { metrics: string[]; groupingLabels: string[] } {
  let text = expr.replace(/"(?:[^"\\]|\\.)*"/g, '""');
  const selectorLabels = [...text.matchAll(/\{([^}]*)\}/g)].flatMap(([, inner]) => [...inner!.matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)\s*(?:=~|!~|!=|=)/g)].map((m) => m[1]!));
  text = text.replace(/\{[^}]*\}/g, ' ').replace(/\[[^\]]*\]/g, ' ');
  const groupingLabels = [...text.matchAll(/\b(?:by|without|on|ignoring)\s*\(([^)]*)\)/g)].flatMap(([, inner]) => inner!.split(',').map((l) => l.trim()).filter(Boolean));
  text = text.replace(/\b(by|without|on|ignoring)\s*\([^)]*\)/g, ' ');
  // label_values(metric, label): the second argument is a label.
  text = text.replace(/(label_values\([^,()]*),\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*\)/g, (_m, head: string, label: string) => {
    groupingLabels.push(label);
    return `${head})`;
  });
  const metrics = [...text.matchAll(/(?<![\w$.])([a-zA-Z_:][a-zA-Z0-9_:]*)(?![a-zA-Z0-9_:]|\s*\()/g)].map((m) => m[1]!).filter((n) => !KEYWORDS.has(n.toLowerCase()) && !/^\d/.test(n));
  return { metrics, groupingLabels: [...groupingLabels, ...selectorLabels] };
}

describe('Grafana dashboard of the prober', () => {
  const dashboard = JSON.parse(readFileSync(DASHBOARD, 'utf8')) as Dashboard;
  const expressions = [
    ...dashboard.panels.flatMap((p) => (p.targets ?? []).map((t) => ({ where: `panel "${p.title}"`, expr: t.expr }))),
    ...dashboard.templating.list.filter((v) => v.type === 'query').map((v) => ({ where: `variable ${v.name}`, expr: typeof v.query === 'string' ? v.query : v.query!.query })),
  ];
  const agent = new AgentMetrics({ pod: 'p', node: 'n' });
  const exported = new Set(agent.registry.seriesNames());
  const agentLabels = new Set(['source_pod', 'dest_pod', 'source_node', 'dest_node', 'method', 'reason', 'result', 'le', 'dest_pod_name', 'dest_ip', ...TARGET_LABELS]);

  it('has expressions to check, among them a latency heatmap and an error rate', () => {
    assert.ok(expressions.length >= 8);
    assert.ok(dashboard.panels.some((p) => (p as { type?: string }).type === 'heatmap'));
    assert.ok(expressions.some((e) => e.expr.includes('crowsnest_prober_errors_total')));
  });

  for (const { where, expr } of expressions) {
    it(`${where}: every metric and label exists`, () => {
      const { metrics, groupingLabels } = promqlNames(expr);
      assert.ok(metrics.length > 0, `no metric found in ${expr}`);
      for (const metric of metrics) assert.ok(exported.has(metric), `${metric} is not exported by the agent (${where}: ${expr})`);
      for (const label of groupingLabels) assert.ok(agentLabels.has(label), `label ${label} is neither the agent's nor a scrape target's (${where})`);
    });
  }

  it('catches a misspelt metric or label (the check itself)', () => {
    assert.deepEqual(promqlNames('histogram_quantile(0.99, sum by (le, source_node) (rate(crowsnest_prober_rtt_second_bucket{method="http"}[5m])))'),
      { metrics: ['crowsnest_prober_rtt_second_bucket'], groupingLabels: ['le', 'source_node', 'method'] });
    assert.deepEqual(promqlNames('time() - crowsnest_prober_peer_sync_last_success_timestamp_seconds{namespace=~"$namespace"}').metrics, ['crowsnest_prober_peer_sync_last_success_timestamp_seconds']);
    assert.deepEqual(promqlNames('label_values(crowsnest_prober_rtt_seconds_count{namespace=~"$namespace"}, dest_node)'), { metrics: ['crowsnest_prober_rtt_seconds_count'], groupingLabels: ['dest_node', 'namespace'] });
    assert.ok(!exported.has('crowsnest_prober_rtt_second_bucket'));
  });
});
