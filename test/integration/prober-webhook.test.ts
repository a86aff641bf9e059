/**
 * The prober's injection through a real API server: the chart's MutatingWebhookConfiguration
 * sends pod CREATEs to our webhook (self-managed certificates, caBundle set by the leader), and
 * the stored pods show what was injected. Pods land on kwok nodes (admission happens before
 * scheduling; nothing is pulled). The agents running for real are in prober-agents.test.ts.
 */
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { ON_KWOK_NODES } from '../../testbed/controlplane.ts';
import { issueServingCertificate } from '../../src/kube/webhook/x509.ts';
import { type ProberUnderTest, SCOPE_LABEL, startProber } from './prober-run.ts';
import { eventually, testbed } from './testbed.ts';

interface Container { name: string; image: string; restartPolicy?: string; env?: Array<{ name: string; value?: string }>; ports?: Array<{ name: string; containerPort: number }> }
interface Pod {
  metadata: { name: string; labels?: Record<string, string>; annotations?: Record<string, string> };
  spec: { initContainers?: Container[]; containers: Container[]; volumes?: Array<{ name: string }> };
}

function pod(name: string, labels: Record<string, string>): Record<string, unknown> {
  return { apiVersion: 'v1', kind: 'Pod', metadata: { name, labels }, spec: { ...ON_KWOK_NODES, containers: [{ name: 'app', image: 'registry.invalid/app:1' }] } };
}

async function create(namespace: string, body: Record<string, unknown>): Promise<{ status: number; pod: Pod; body: string }> {
  const plane = await testbed();
  const res = await plane.request('POST', `/api/v1/namespaces/${namespace}/pods`, body);
  return { status: res.status, pod: JSON.parse(res.body) as Pod, body: res.body };
}

async function networkProber(namespace: string, name: string, spec: Record<string, unknown>, apiVersion = 'crowsnest.dev/v1alpha1'): Promise<void> {
  const plane = await testbed();
  const res = await plane.request('POST', `/apis/crowsnest.dev/v1alpha1/namespaces/${namespace}/networkprobers`, { apiVersion, kind: 'NetworkProber', metadata: { name }, spec });
  assert.equal(res.status, 201, res.body);
}

const agentOf = (p: Pod): Container | undefined => p.spec.initContainers?.find((c) => c.name === 'net-prober');

describe('prober webhook on a real API server', () => {
  let prober: ProberUnderTest;
  before(async () => {
    prober = await startProber();
  });
  after(async () => {
    await prober?.stop();
  });

  it('injects the agent into a pod a NetworkProber of its namespace selects, and only there', async () => {
    const shop = await prober.newNamespace('prober-shop');
    const other = await prober.newNamespace('prober-other');
    await networkProber(shop, 'web-mesh', { podSelector: { matchLabels: { app: 'web' }, matchExpressions: [{ key: 'tier', operator: 'NotIn', values: ['batch'] }] } });

    const selected = await create(shop, pod('web-1', { app: 'web' }));
    assert.equal(selected.status, 201, selected.body);
    const agent = agentOf(selected.pod);
    assert.ok(agent, 'net-prober injected');
    assert.equal(agent.restartPolicy, 'Always', 'a native sidecar');
    assert.deepEqual(selected.pod.spec.initContainers?.map((c) => c.name), ['net-prober']);
    assert.equal(selected.pod.metadata.annotations?.['netprober-container-deployed'], 'true');
    assert.equal(selected.pod.metadata.annotations?.['prober.crowsnest.dev/network-prober'], 'web-mesh');
    assert.equal(selected.pod.metadata.labels?.['prober.crowsnest.dev/injected'], 'true');
    assert.ok(selected.pod.spec.volumes?.some((v) => v.name === 'crowsnest-prober-token'));
    assert.match(agent.env?.find((e) => e.name === 'CROWSNEST_PROBER_CA')?.value ?? '', /BEGIN CERTIFICATE/);

    for (const [namespace, name, labels] of [[shop, 'db-1', { app: 'db' }], [shop, 'web-batch', { app: 'web', tier: 'batch' }], [other, 'web-elsewhere', { app: 'web' }]] as const) {
      const res = await create(namespace, pod(name, labels));
      assert.equal(res.status, 201, res.body);
      assert.equal(agentOf(res.pod), undefined, `${namespace}/${name} must not get the agent`);
      assert.equal(res.pod.metadata.annotations?.['netprober-container-deployed'], undefined);
    }
  });

  it('accepts a seed manifest with only its apiVersion changed, and injects with the seed\'s names and ports', async () => {
    const namespace = await prober.newNamespace('prober-seed');
    // k8s-network-prober-operator's sample, apiVersion changed from probes.bigmikes.io/v1alpha1.
    await networkProber(namespace, 'networkprober-sample', {
      podSelector: { matchLabels: { app: 'net-prober' } }, httpPort: '9090', pollingPeriod: '10s', httpPrometheusPort: '1222', agentImage: 'bigmikes/kube-net-prober:test-version-v8',
    });
    const res = await create(namespace, pod('sample', { app: 'net-prober' }));
    assert.equal(res.status, 201, res.body);
    const agent = agentOf(res.pod)!;
    assert.equal(agent.image, 'bigmikes/kube-net-prober:test-version-v8', 'the manifest\'s agentImage is used as given');
    assert.deepEqual(agent.ports, [{ name: 'np-ping', containerPort: 9090, protocol: 'TCP' }, { name: 'np-prometheus', containerPort: 1222, protocol: 'TCP' }]);
    assert.deepEqual(agent.env?.filter((e) => e.name.startsWith('HTTP_')), [{ name: 'HTTP_PORT', value: '9090' }, { name: 'HTTP_PROMETHEUS_PORT', value: '1222' }]);
  });

  it('never injects into kube-system, even labelled into the webhook\'s scope and selected', async () => {
    const plane = await testbed();
    const label = (value: string | null) => plane.request('PATCH', '/api/v1/namespaces/kube-system', { metadata: { labels: { [SCOPE_LABEL]: value } } }, { 'content-type': 'application/merge-patch+json' });
    await networkProber('kube-system', `everything-${prober.scope}`, { podSelector: {} });
    assert.equal((await label(prober.scope)).status, 200);
    try {
      const res = await plane.request('POST', `/api/v1/namespaces/kube-system/pods?dryRun=All`, pod('system-pod', { app: 'web' }));
      assert.equal(res.status, 201, res.body);
      assert.equal(agentOf(JSON.parse(res.body) as Pod), undefined);
    } finally {
      await label(null);
      await plane.request('DELETE', `/apis/crowsnest.dev/v1alpha1/namespaces/kube-system/networkprobers/everything-${prober.scope}`);
    }
  });

  it('does not inject twice when a pod that carries the agent is created again', async () => {
    const namespace = await prober.newNamespace('prober-again');
    await networkProber(namespace, 'mesh', { podSelector: {} });
    const first = await create(namespace, pod('first', { app: 'x' }));
    const copy = structuredClone(first.pod) as Pod & { metadata: Record<string, unknown>; status?: unknown };
    copy.metadata = { name: 'copy', labels: first.pod.metadata.labels, annotations: first.pod.metadata.annotations };
    delete copy.status;
    (copy.spec as Record<string, unknown>)['nodeName'] = undefined;
    const second = await create(namespace, copy as unknown as Record<string, unknown>);
    assert.equal(second.status, 201, second.body);
    assert.equal(second.pod.spec.initContainers?.filter((c) => c.name === 'net-prober').length, 1);
  });

  it('renews the serving certificate while pods are created: every create is admitted and injected', async () => {
    const plane = await testbed();
    const namespace = await prober.newNamespace('prober-rotate');
    await networkProber(namespace, 'mesh', { podSelector: { matchLabels: { app: 'web' } } });
    const before = prober.webhookServer.certificate?.fingerprint;
    assert.ok(before);
    // Put a serving certificate of the same CA near the end of its life into the Secret: every
    // replica serves it, and the leader, seeing two thirds of its lifetime gone, issues a new one.
    const secretPath = `/api/v1/namespaces/${prober.operatorNamespace}/secrets/${prober.secretName}`;
    const data = (JSON.parse((await plane.request('GET', secretPath)).body) as { data: Record<string, string> }).data;
    const text = (key: string): string => Buffer.from(data[key]!, 'base64').toString();
    const hosts = new X509Certificate(text('tls.crt')).subjectAltName!.split(', ').map((h) => h.replace(/^(DNS|IP Address):/, ''));
    const old = issueServingCertificate({ commonName: hosts[0]!, hosts, notBeforeMs: Date.now() - 89 * 86_400_000, notAfterMs: Date.now() + 86_400_000 }, { certPem: text('ca-current.crt'), keyPem: text('ca-current.key') });
    const oldFingerprint = new X509Certificate(old.certPem).fingerprint256;
    const results: Array<{ status: number; injected: boolean }> = [];
    let creating = true;
    const creates = (async () => {
      for (let i = 0; creating || i < 20; i++) {
        const res = await create(namespace, pod(`web-${i}`, { app: 'web' }));
        results.push({ status: res.status, injected: agentOf(res.pod) !== undefined });
      }
    })();
    await new Promise((resolve) => setTimeout(resolve, 300));
    const patched = await plane.request('PATCH', secretPath, { data: { 'tls.crt': Buffer.from(old.certPem).toString('base64'), 'tls.key': Buffer.from(old.keyPem).toString('base64') } }, { 'content-type': 'application/merge-patch+json' });
    assert.equal(patched.status, 200, patched.body);
    await eventually('a renewed certificate is served', () => {
      const fingerprint = prober.webhookServer.certificate?.fingerprint;
      return fingerprint !== undefined && fingerprint !== before && fingerprint !== oldFingerprint;
    }, 30_000);
    await new Promise((resolve) => setTimeout(resolve, 1_000));
    creating = false;
    await creates;
    const served = new X509Certificate(prober.webhookServer.certificate!.cert);
    assert.ok(Date.parse(served.validFrom) > Date.now() - 2 * 3_600_000, `renewed: valid from ${served.validFrom}`);
    assert.ok(served.checkIP((await testbed()).network?.hostIp ?? '127.0.0.1'));
    assert.ok(results.length >= 20, `${results.length} creates`);
    assert.deepEqual(results.filter((r) => r.status !== 201 || !r.injected), [], 'no create failed or went through without the agent');
  });

  it('reports status: NoAgents for a prober whose pods were created before it; injected pods counted', async () => {
    const plane = await testbed();
    const namespace = await prober.newNamespace('prober-status');
    const before = await create(namespace, pod('early', { app: 'web' }));
    assert.equal(agentOf(before.pod), undefined);
    await networkProber(namespace, 'mesh', { podSelector: { matchLabels: { app: 'web' } } });
    type Status = { observedGeneration?: number; injectedPods?: number; conditions?: Array<{ type: string; status: string; reason: string; message: string }> };
    const status = async (): Promise<Status> => ((JSON.parse((await plane.request('GET', `/apis/crowsnest.dev/v1alpha1/namespaces/${namespace}/networkprobers/mesh`)).body) as { status?: Status }).status ?? {});
    await eventually('Ready False, NoAgents', async () => (await status()).conditions?.find((c) => c.type === 'Ready')?.reason === 'NoAgents', 30_000);
    const ready = (await status()).conditions!.find((c) => c.type === 'Ready')!;
    assert.equal(ready.status, 'False');
    assert.match(ready.message, /restart the selected workloads/);
    assert.equal((await status()).observedGeneration, 1);

    for (let i = 0; i < 3; i++) assert.ok(agentOf((await create(namespace, pod(`late-${i}`, { app: 'web' }))).pod));
    // kwok runs them (Running, an IP), but no agent reports from a kwok node.
    await eventually('3 injected pods, agents not reporting', async () => {
      const s = await status();
      return s.injectedPods === 3 && s.conditions?.find((c) => c.type === 'Ready')?.reason === 'AgentsNotReporting';
    }, 60_000);
    const events = JSON.parse((await plane.request('GET', `/apis/events.k8s.io/v1/namespaces/${namespace}/events`)).body) as { items: Array<{ reason: string; regarding: { name: string } }> };
    assert.ok(events.items.some((e) => e.reason === 'AgentsNotReporting' && e.regarding.name === 'mesh'), JSON.stringify(events.items.map((e) => e.reason)));
  });

  it('lets pods through, promptly and without the agent, while the webhook is down', async () => {
    const namespace = await prober.newNamespace('prober-down');
    await networkProber(namespace, 'mesh', { podSelector: {} });
    await prober.webhookServer.stop();
    const started = performance.now();
    const res = await create(namespace, pod('while-down', { app: 'web' }));
    const tookMs = performance.now() - started;
    assert.equal(res.status, 201, res.body);
    assert.equal(agentOf(res.pod), undefined);
    assert.ok(tookMs < 3_000, `created in ${tookMs.toFixed(0)} ms`);
  });
});
