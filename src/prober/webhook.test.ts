import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Registry } from 'prom-client';
import type { AdmissionRequest } from '../kube/webhook/review.ts';
import { storedProber } from './fixtures.ts';
import { DEFAULT_AGENT_RESOURCES, type InjectionSettings } from './inject.ts';
import { proberWebhook } from './webhook.ts';

const settings: InjectionSettings = { defaultImage: 'img', peersUrl: 'https://op:9444', caBundle: 'PEM', defaultResources: DEFAULT_AGENT_RESOURCES };
const probers = [storedProber('mesh', 'shop', { podSelector: { matchLabels: { app: 'web' } } })];

function create(namespace: string, labels: Record<string, string>, overrides: Partial<AdmissionRequest> = {}): AdmissionRequest {
  return {
    uid: 'u', kind: { group: '', version: 'v1', kind: 'Pod' }, resource: { group: '', version: 'v1', resource: 'pods' }, namespace, operation: 'CREATE',
    userInfo: {}, object: { apiVersion: 'v1', kind: 'Pod', metadata: { generateName: 'web-', labels }, spec: { containers: [{ name: 'app', image: 'a' }] } } as never, ...overrides,
  };
}

describe('proberWebhook', () => {
  const registry = new Registry();
  const calls: string[] = [];
  const handler = proberWebhook({
    probersIn: (namespace) => {
      calls.push(namespace);
      return probers.filter((p) => p.metadata?.namespace === namespace);
    },
    settings: () => settings, excludedNamespaces: ['crowsnest-system'], registry,
  });

  it('injects a selected pod (answering the pod as it should be) and counts it', async () => {
    const result = await handler.review(create('shop', { app: 'web' }), new AbortController().signal);
    assert.equal(result.kind, 'mutate');
    const pod = (result as unknown as { object: { spec: { initContainers: Array<{ name: string }> } } }).object;
    assert.deepEqual(pod.spec.initContainers.map((c) => c.name), ['net-prober']);
    assert.deepEqual(handler.failurePolicy, 'Ignore');
  });

  it('lets other pods, other operations and excluded namespaces through unchanged, without reading the cache for them', async () => {
    calls.length = 0;
    const signal = new AbortController().signal;
    assert.deepEqual(await handler.review(create('shop', { app: 'db' }), signal), { kind: 'allow' });
    assert.deepEqual(await handler.review(create('billing', { app: 'web' }), signal), { kind: 'allow' });
    assert.deepEqual(await handler.review(create('shop', { app: 'web' }, { operation: 'UPDATE' }), signal), { kind: 'allow' });
    assert.deepEqual(await handler.review(create('shop', { app: 'web' }, { subResource: 'ephemeralcontainers' }), signal), { kind: 'allow' });
    for (const namespace of ['kube-system', 'kube-node-lease', 'crowsnest-system']) {
      assert.deepEqual(await handler.review(create(namespace, { app: 'web' }), signal), { kind: 'allow' }, namespace);
    }
    assert.deepEqual(calls, ['shop', 'billing']);
    const counts = Object.fromEntries((await registry.getSingleMetric('crowsnest_prober_admissions_total')!.get()).values.map((v) => [v.labels['result'], v.value]));
    assert.deepEqual(counts, { injected: 1, not_selected: 2, not_a_pod_create: 2, excluded_namespace: 3 });
  });

  it('lets the pod through with a warning while it has no CA bundle to give the agent', async () => {
    const notReady = proberWebhook({ probersIn: () => probers, settings: () => 'no CA bundle yet', excludedNamespaces: [] });
    assert.deepEqual(await notReady.review(create('shop', { app: 'web' }), new AbortController().signal), { kind: 'allow', warnings: ['crowsnest: the NetworkProber agent was not injected: no CA bundle yet'] });
  });
});
