/**
 * Injected agents running for real: pods on both real nodes get the agent from the webhook, learn
 * their peers from the peer endpoint with their projected token, probe each other, and their
 * /metrics are scraped from the pods' IPs. The NetworkProber's status counts the pairs from the
 * agents' reports; a pod made unreachable turns it Degraded, naming the pair.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { fetchFromHost, type RealPod, runPod } from '../../testbed/realpods.ts';
import { parseSamples, type Sample, samplesOf } from '../helpers/exposition.ts';
import { crowsnestImage } from './prober-image.ts';
import { type ProberUnderTest, startProber } from './prober-run.ts';
import { eventually, testbed } from './testbed.ts';

const run = promisify(execFile);
const METRICS_PORT = 19090;

interface Status {
  injectedPods?: number;
  reachablePairs?: number;
  unreachablePairs?: number;
  conditions?: Array<{ type: string; status: string; reason: string; message: string }>;
}

async function scrape(ip: string): Promise<Sample[]> {
  const res = await fetchFromHost(ip, METRICS_PORT, '/metrics');
  assert.equal(res.status, 200);
  return parseSamples(res.body);
}

async function proberStatus(namespace: string, name: string): Promise<Status> {
  const plane = await testbed();
  return (JSON.parse((await plane.request('GET', `/apis/crowsnest.dev/v1alpha1/namespaces/${namespace}/networkprobers/${name}`)).body) as { status?: Status }).status ?? {};
}

const condition = (status: Status, type: string) => status.conditions?.find((c) => c.type === type);

describe('prober agents in real pods on the real nodes', () => {
  let prober: ProberUnderTest;
  let namespace: string;
  const pods: RealPod[] = [];

  before(async () => {
    const plane = await testbed();
    prober = await startProber({ agentImage: await crowsnestImage(plane) });
    namespace = await prober.newNamespace('prober-mesh');
    const created = await plane.request('POST', `/apis/crowsnest.dev/v1alpha1/namespaces/${namespace}/networkprobers`, {
      apiVersion: 'crowsnest.dev/v1alpha1', kind: 'NetworkProber', metadata: { name: 'mesh' },
      spec: { podSelector: { matchLabels: { app: 'mesh' } }, pollingPeriod: '1s', timeout: '500ms', neighbours: 3 },
    });
    assert.equal(created.status, 201, created.body);
    const started = await Promise.all(['a', 'b', 'c', 'd'].map((suffix, i) => runPod(plane, {
      namespace, name: `mesh-${suffix}`, image: plane.images['test']!, command: ['sleep', '3600'], node: `crowsnest-real-${i % 2}`, labels: { app: 'mesh' }, timeoutMs: 120_000,
    })));
    pods.push(...started);
  });
  after(async () => {
    await prober?.stop();
  });

  it('runs the agent as a ready native sidecar, non-root, beside the app', async () => {
    const plane = await testbed();
    const pod = JSON.parse((await plane.request('GET', `/api/v1/namespaces/${namespace}/pods/mesh-a`)).body) as {
      status: { initContainerStatuses?: Array<{ name: string; ready: boolean; started?: boolean }>; conditions?: Array<{ type: string; status: string }> };
    };
    const agent = pod.status.initContainerStatuses?.find((s) => s.name === 'net-prober');
    assert.equal(agent?.ready, true, JSON.stringify(pod.status.initContainerStatuses));
    assert.equal(pod.status.conditions?.find((c) => c.type === 'Ready')?.status, 'True');
  });

  it('agents on both nodes measure their peers by HTTP and TCP, scraped from the pods\' IPs', async () => {
    const nodes = new Map(pods.map((p) => [p.metadata.name, p.spec.nodeName!]));
    await eventually('every agent measured its three peers by both methods', async () => {
      for (const pod of pods) {
        const samples = await scrape(pod.status.podIP!).catch(() => []);
        const measured = samplesOf(samples, 'crowsnest_prober_rtt_seconds_count').filter((s) => s.value >= 2);
        if (measured.length < 6) return false;
      }
      return true;
    }, 90_000);
    const crossNode: string[] = [];
    for (const pod of pods) {
      const samples = await scrape(pod.status.podIP!);
      const counts = samplesOf(samples, 'crowsnest_prober_rtt_seconds_count');
      assert.deepEqual(new Set(counts.map((s) => s.labels['method'])), new Set(['http', 'tcp']));
      for (const s of counts) {
        assert.equal(s.labels['source_pod'], pod.metadata.name);
        assert.equal(s.labels['source_node'], pod.spec.nodeName);
        assert.equal(s.labels['dest_node'], nodes.get(s.labels['dest_pod']!), 'dest_node is the peer\'s node');
        if (s.labels['dest_node'] !== pod.spec.nodeName) crossNode.push(`${s.labels['source_pod']}→${s.labels['dest_pod']}`);
      }
      const seed = samplesOf(samples, 'netprober_interpod_latency_s_count');
      assert.equal(seed.length, 3, 'the seed\'s histogram, one series per peer');
      assert.equal(samplesOf(samples, 'crowsnest_prober_errors_total').length, 0, 'no failed probe');
      const rss = samplesOf(samples, 'process_resident_memory_bytes')[0]!.value;
      assert.ok(rss < 128 * 2 ** 20, `agent RSS ${rss} under its 128Mi limit`);
      const median = samplesOf(samples, 'crowsnest_prober_rtt_seconds_bucket', { method: 'http', le: '0.0512' });
      assert.ok(median.every((b) => b.value >= 1), 'RTTs on these nodes are well under 51 ms');
    }
    assert.ok(crossNode.length >= 4, `pairs across nodes: ${crossNode.join(', ')}`);
  });

  it('reports the pairs in the NetworkProber\'s status: Ready, 4 pods, 12 reachable pairs', async () => {
    await eventually('status: 4 pods, 12 reachable pairs, Ready', async () => {
      const s = await proberStatus(namespace, 'mesh');
      return s.injectedPods === 4 && s.reachablePairs === 12 && s.unreachablePairs === 0 && condition(s, 'Ready')?.status === 'True';
    }, 60_000);
    assert.equal(condition(await proberStatus(namespace, 'mesh'), 'Degraded')?.status, 'False');
  });

  it('a pod that stops answering is counted by reason and makes the prober Degraded, naming it; it recovers', async () => {
    const plane = await testbed();
    const target = pods.find((p) => p.metadata.name === 'mesh-d')!;
    const rule = ['FORWARD', '-d', `${target.status.podIP}/32`, '-p', 'tcp', '--dport', '19080', '-j', 'DROP'];
    const netnses = plane.network!.nodes.map((n) => n.netns);
    for (const netns of netnses) await run('ip', ['netns', 'exec', netns, 'iptables', '-I', ...rule]);
    try {
      await eventually('Degraded, naming mesh-d', async () => {
        const s = await proberStatus(namespace, 'mesh');
        const degraded = condition(s, 'Degraded');
        return degraded?.status === 'True' && degraded.reason === 'PairsUnreachable' && /→ mesh-d \(timeout\)/.test(degraded.message) && (s.unreachablePairs ?? 0) >= 1;
      }, 60_000);
      const timeouts = await Promise.all(pods.filter((p) => p !== target).map(async (p) => samplesOf(await scrape(p.status.podIP!), 'crowsnest_prober_errors_total', { dest_pod: 'mesh-d', reason: 'timeout' })));
      assert.ok(timeouts.flat().some((s) => s.value >= 1), 'errors_total{reason="timeout"} at mesh-d\'s probers');
      const events = JSON.parse((await plane.request('GET', `/apis/events.k8s.io/v1/namespaces/${namespace}/events`)).body) as { items: Array<{ reason: string; type: string }> };
      assert.ok(events.items.some((e) => e.reason === 'PairsUnreachable' && e.type === 'Warning'));
    } finally {
      for (const netns of netnses) await run('ip', ['netns', 'exec', netns, 'iptables', '-D', ...rule]).catch(() => {});
    }
    await eventually('recovered: not Degraded', async () => condition(await proberStatus(namespace, 'mesh'), 'Degraded')?.status === 'False', 60_000);
  });

  it('a pod that is deleted leaves its probers\' metrics within seconds, and the status', async () => {
    const plane = await testbed();
    const gone = pods.find((p) => p.metadata.name === 'mesh-c')!;
    const res = await plane.request('DELETE', `/api/v1/namespaces/${namespace}/pods/mesh-c`);
    assert.equal(res.status, 200, res.body);
    const started = Date.now();
    await eventually('no agent has series about mesh-c', async () => {
      for (const pod of pods.filter((p) => p !== gone)) {
        const samples = await scrape(pod.status.podIP!);
        if (samples.some((s) => s.labels['dest_pod'] === 'mesh-c' || s.labels['dest_pod_name'] === 'mesh-c')) return false;
      }
      return true;
    }, 30_000);
    const seconds = (Date.now() - started) / 1000;
    assert.ok(seconds < 15, `peers updated ${seconds.toFixed(1)} s after the delete`);
    await eventually('status: 3 pods', async () => (await proberStatus(namespace, 'mesh')).injectedPods === 3, 30_000);
  });
});
