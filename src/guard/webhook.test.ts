import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Registry } from 'prom-client';
import type { AdmissionRequest } from '../kube/webhook/review.ts';
import type { SelectingGuardPolicy, SidecarInjectionSettings } from './inject.ts';
import { guardWebhook } from './webhook.ts';

const settings: SidecarInjectionSettings = { image: 'img', signalsUrl: 'https://op:9445', caBundle: 'PEM' };
const policies: SelectingGuardPolicy[] = [
  { apiVersion: 'crowsnest.dev/v1alpha1', kind: 'GuardPolicy', metadata: { name: 'web', namespace: 'shop' }, spec: { targets: { podSelector: { matchLabels: { app: 'web' } } }, detectors: { health: {} } } },
];

function create(namespace: string, labels: Record<string, string>, overrides: Partial<AdmissionRequest> = {}): AdmissionRequest {
  return {
    uid: 'u', kind: { group: '', version: 'v1', kind: 'Pod' }, resource: { group: '', version: 'v1', resource: 'pods' }, namespace, operation: 'CREATE',
    userInfo: {}, object: { apiVersion: 'v1', kind: 'Pod', metadata: { generateName: 'web-', labels }, spec: { containers: [{ name: 'app', image: 'a' }] } } as never, ...overrides,
  };
}

describe('guardWebhook', () => {
  const registry = new Registry();
  const calls: string[] = [];
  const handler = guardWebhook({
    policiesIn: (namespace) => {
      calls.push(namespace);
      return policies.filter((p) => p.metadata?.namespace === namespace);
    },
    settings: () => settings, excludedNamespaces: ['crowsnest-system'], registry,
  });
  const signal = new AbortController().signal;

  it('injects a selected pod, fails open, and counts it', async () => {
    const result = await handler.review(create('shop', { app: 'web' }), signal);
    assert.equal(result.kind, 'mutate');
    const pod = (result as unknown as { object: { spec: { initContainers: Array<{ name: string }> } } }).object;
    assert.deepEqual(pod.spec.initContainers.map((c) => c.name), ['crowsnest-guard']);
    assert.equal(handler.failurePolicy, 'Ignore');
    assert.equal(handler.path, '/mutate-pods-guard');
  });

  it('lets other pods, other operations and excluded namespaces through unchanged, without reading the cache for them', async () => {
    calls.length = 0;
    assert.deepEqual(await handler.review(create('shop', { app: 'db' }), signal), { kind: 'allow' });
    assert.deepEqual(await handler.review(create('billing', { app: 'web' }), signal), { kind: 'allow' });
    assert.deepEqual(await handler.review(create('shop', { app: 'web' }, { operation: 'UPDATE' }), signal), { kind: 'allow' });
    for (const namespace of ['kube-system', 'kube-node-lease', 'kube-public', 'crowsnest-system']) {
      assert.deepEqual(await handler.review(create(namespace, { app: 'web' }), signal), { kind: 'allow' }, namespace);
    }
    assert.deepEqual(calls, ['shop', 'billing']);
    const counts = Object.fromEntries((await registry.getSingleMetric('crowsnest_guard_sidecar_admissions_total')!.get()).values.map((v) => [v.labels['result'], v.value]));
    assert.deepEqual(counts, { injected: 1, not_selected: 2, not_a_pod_create: 1, excluded_namespace: 4 });
  });

  it('lets the pod through with a warning while it has no CA bundle to give the sidecar', async () => {
    const notReady = guardWebhook({ policiesIn: () => policies, settings: () => 'no CA bundle yet', excludedNamespaces: [] });
    assert.deepEqual(await notReady.review(create('shop', { app: 'web' }), signal), { kind: 'allow', warnings: ['crowsnest: the guard health sidecar was not injected: no CA bundle yet'] });
  });
});
