import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Registry } from 'prom-client';
import { unreachableClient } from '../client/unreachable-client.ts';
import { done } from './controller.ts';
import { EventRecorder } from '../objects/events.ts';
import { type CacheTransform, Manager } from './manager.ts';
import { type KubeObject, metadataOnly, Resources } from '../objects/resources.ts';
import { allow } from '../webhook/review.ts';

async function manager(options: Partial<ConstructorParameters<typeof Manager>[0]> = {}): Promise<Manager> {
  const client = await unreachableClient();
  return new Manager({ client, registry: new Registry(), recorder: new EventRecorder({ client, reportingInstance: 'test' }), ...options });
}

const SLIM: CacheTransform = { name: 'slim', apply: (obj) => metadataOnly(obj) };

describe('Manager informers', () => {
  it('hands out one informer for the same objects cached the same way, to every capability that asks', async () => {
    const m = await manager();
    const a = m.informer({ type: Resources.pods, labelSelector: 'app=web', transform: SLIM });
    const b = m.informer({ type: Resources.pods, labelSelector: 'app=web', transform: SLIM });
    assert.equal(a, b);
    assert.equal(a.name, 'pods{app=web}/slim');
  });

  it('keeps apart informers that differ in namespace, selector, metadata-only or transform', async () => {
    const m = await manager();
    const base = { type: Resources.pods, labelSelector: 'app=web' } as const;
    const informers = [
      m.informer(base),
      m.informer({ ...base, namespace: 'shop' }),
      m.informer({ ...base, labelSelector: 'app=api' }),
      m.informer({ ...base, fieldSelector: 'spec.nodeName=n1' }),
      m.informer({ ...base, metadataOnly: true }),
      m.informer({ ...base, transform: SLIM }),
      m.informer({ type: Resources.configMaps, labelSelector: 'app=web' }),
    ];
    assert.equal(new Set(informers).size, informers.length);
    assert.deepEqual(informers.map((i) => i.name), [
      'pods{app=web}', 'pods{app=web}@shop', 'pods{app=api}', 'pods{app=web;spec.nodeName=n1}', 'pods{app=web}:metadata', 'pods{app=web}/slim', 'configmaps{app=web}',
    ]);
  });

  it('refuses two different transforms under one name (the second capability would read what the first kept)', async () => {
    const m = await manager();
    m.informer({ type: Resources.pods, transform: SLIM });
    assert.throws(() => m.informer({ type: Resources.pods, transform: { name: 'slim', apply: (o) => o } }), /two transforms are named slim/);
  });

  it("merges the capabilities' indexes into the shared cache", async () => {
    const m = await manager();
    const byNode = (o: KubeObject): string[] => { const node = (o as { spec?: { nodeName?: string } }).spec?.nodeName; return node ? [node] : []; };
    const a = m.informer({ type: Resources.pods, indexers: { node: byNode } });
    m.informer({ type: Resources.pods, indexers: { node: byNode, app: () => [] } });
    assert.deepEqual(a.store.byIndex('node', 'n1'), []);
    assert.deepEqual(a.store.byIndex('app', 'x'), []);
    assert.throws(() => m.informer({ type: Resources.pods, indexers: { node: () => [] } }), /index node already exists with another function/);
  });
});

describe('Manager readiness and registration', () => {
  it('is not ready until every informer synced, and says which it waits for', async () => {
    const m = await manager();
    m.informer({ type: Resources.pods });
    m.informer({ type: Resources.roles, labelSelector: 'a=b' });
    const [synced] = m.readinessChecks();
    assert.equal(synced?.name, 'informers-synced');
    assert.throws(() => synced!.check(), /waiting for caches: pods, roles\{a=b\}/);
  });

  it('gates readiness on the webhook certificate only when a capability registered a webhook', async () => {
    const without = await manager({ webhookServer: { port: 0, certDir: '/nonexistent' } });
    assert.deepEqual(without.readinessChecks().map((c) => c.name), ['informers-synced']);
    const withWebhook = await manager({ webhookServer: { port: 0, certDir: '/nonexistent' } });
    withWebhook.addWebhook({ name: 'test', path: '/mutate', failurePolicy: 'Ignore', review: () => allow() });
    assert.deepEqual(withWebhook.readinessChecks().map((c) => c.name), ['informers-synced', 'webhook-certificate']);
    assert.throws(() => withWebhook.readinessChecks()[1]!.check(), /webhook server not started/);
  });

  it('refuses a webhook without webhook server settings', async () => {
    const m = await manager();
    assert.throws(() => m.addWebhook({ name: 'test', path: '/mutate', failurePolicy: 'Ignore', review: () => allow() }), /no webhook server settings/);
  });

  it('has a leader-election liveness check only with leader election', async () => {
    assert.deepEqual((await manager()).livenessChecks().map((c) => c.name), []);
    const elected = await manager({ leaderElection: { namespace: 'ns', name: 'l', identity: 'me', leaseDurationMs: 15_000, renewDeadlineMs: 10_000, retryPeriodMs: 2_000 } });
    assert.deepEqual(elected.livenessChecks().map((c) => c.name), ['leader-election']);
    assert.doesNotThrow(() => elected.livenessChecks()[0]!.check(), 'a replica that does not lead is healthy');
  });

  it('refuses registrations once it runs, and never starts a controller before the caches synced', async () => {
    const m = await manager();
    m.informer({ type: Resources.pods });
    let reconciles = 0;
    const controller = m.addController({ name: 'c', reconcile: async () => { reconciles++; return done; } });
    controller.enqueue('k');
    const stop = new AbortController();
    const running = m.run(stop.signal);
    await new Promise((resolve) => setTimeout(resolve, 50));
    assert.throws(() => m.informer({ type: Resources.configMaps }), /must be registered before the manager runs/);
    assert.throws(() => m.addController({ name: 'd', reconcile: async () => done }), /must be registered before the manager runs/);
    assert.equal(reconciles, 0, 'the cache never synced (no API server), so the controller never ran');
    stop.abort();
    assert.deepEqual(await running, { led: true, leadershipLost: false, drained: true });
    await assert.rejects(m.run(stop.signal), /may be called only once/);
  });

  it('refuses two controllers of one name', async () => {
    const m = await manager();
    m.addController({ name: 'c', reconcile: async () => done });
    assert.throws(() => m.addController({ name: 'c', reconcile: async () => done }), /two controllers are named c/);
  });
});
