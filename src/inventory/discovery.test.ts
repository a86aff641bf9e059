/**
 * Discovery's own decisions (which types are collectable, which groups failed, which types CRDs
 * serve) against a scripted HTTP server that answers the discovery documents. What a real API
 * server serves is exercised by the inventory integration tests on the testbed.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { describe, it } from 'node:test';
import { KubeConfig } from '@kubernetes/client-node';
import { KubeClient } from '../kube/client/client.ts';
import { FakeClock, type TimerHandle } from '../kube/clock.ts';
import { discoverTypes } from './discovery.ts';

/** A fake clock that fires each delay as soon as it is asked for, and records the delays asked. */
class ImpatientClock extends FakeClock {
  readonly delaysMs: number[] = [];

  override setTimer(callback: () => void, delayMs: number): TimerHandle {
    this.delaysMs.push(delayMs);
    const handle = super.setTimer(callback, delayMs);
    setImmediate(() => this.advance(delayMs));
    return handle;
  }
}

type Route = { status?: number; body: unknown } | ((attempt: number) => { status?: number; body: unknown });

async function withServer(routes: Record<string, Route>, test: (client: KubeClient, hits: Map<string, number>) => Promise<void>): Promise<void> {
  const hits = new Map<string, number>();
  const server = createServer((req, res) => {
    const path = new URL(req.url ?? '/', 'http://x').pathname;
    const attempt = (hits.get(path) ?? 0) + 1;
    hits.set(path, attempt);
    const route = routes[path];
    const { status = 200, body } = route === undefined ? { status: 404, body: { kind: 'Status', code: 404, reason: 'NotFound' } } : typeof route === 'function' ? route(attempt) : route;
    if (body === 'hang-up') {
      res.socket?.destroy();
      return;
    }
    res.writeHead(status, { 'content-type': 'application/json' });
    res.end(JSON.stringify(body));
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const kc = new KubeConfig();
  kc.loadFromOptions({
    clusters: [{ name: 'c', server: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, skipTLSVerify: true }],
    users: [{ name: 'u', token: 't' }], contexts: [{ name: 'x', cluster: 'c', user: 'u' }], currentContext: 'x',
  });
  const client = new KubeClient(kc);
  try {
    await test(client, hits);
  } finally {
    await client.close();
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  }
}

const core = {
  groupVersion: 'v1',
  resources: [
    { name: 'pods', namespaced: true, kind: 'Pod', verbs: ['create', 'get', 'list', 'watch'] },
    { name: 'pods/log', namespaced: true, kind: 'Pod', verbs: ['get'] },
    { name: 'bindings', namespaced: true, kind: 'Binding', verbs: ['create'] },
    { name: 'nodes', namespaced: false, kind: 'Node', verbs: ['get', 'list'] },
  ],
};
const groups = {
  groups: [
    { name: 'apps', preferredVersion: { groupVersion: 'apps/v1', version: 'v1' } },
    { name: 'metrics.k8s.io', preferredVersion: { groupVersion: 'metrics.k8s.io/v1beta1', version: 'v1beta1' } },
    { name: 'example.com', preferredVersion: { groupVersion: 'example.com/v1', version: 'v1' } },
  ],
};
const apps = { groupVersion: 'apps/v1', resources: [{ name: 'deployments', namespaced: true, kind: 'Deployment', verbs: ['list'] }, { name: 'deployments/scale', namespaced: true, kind: 'Scale', verbs: ['get'] }] };
const example = { groupVersion: 'example.com/v1', resources: [{ name: 'widgets', namespaced: true, kind: 'Widget', verbs: ['list', 'watch'] }] };
const crds = { kind: 'PartialObjectMetadataList', metadata: {}, items: [{ metadata: { name: 'widgets.example.com' } }] };

describe('discoverTypes', () => {
  it('lists each group at its preferred version, skipping subresources and types that cannot be listed, and marks the types CRDs serve', async () => {
    await withServer({
      '/apis': { body: groups }, '/api/v1': { body: core }, '/apis/apps/v1': { body: apps }, '/apis/example.com/v1': { body: example },
      '/apis/metrics.k8s.io/v1beta1': { status: 503, body: { kind: 'Status', code: 503, reason: 'ServiceUnavailable', message: 'the server is currently unable to handle the request' } },
      '/apis/apiextensions.k8s.io/v1/customresourcedefinitions': { body: crds },
    }, async (client) => {
      const result = await discoverTypes(client);
      assert.deepEqual(result.types.map((t) => `${t.group || 'core'}/${t.version}/${t.resource}${t.custom ? ' (CRD)' : ''}`), [
        'core/v1/pods', 'core/v1/nodes', 'apps/v1/deployments', 'example.com/v1/widgets (CRD)',
      ]);
      assert.deepEqual(result.failedGroups.map((g) => g.groupVersion), ['metrics.k8s.io/v1beta1'], 'a broken aggregated API is skipped and reported, the rest collected');
      assert.match(result.failedGroups[0]!.reason, /503/);
      assert.equal(result.customResourcesUnknown, undefined);
    });
  });

  it('says when it cannot tell CRD types from built-in ones (listing CRDs refused), and still discovers', async () => {
    await withServer({
      '/apis': { body: { groups: [] } }, '/api/v1': { body: core },
      '/apis/apiextensions.k8s.io/v1/customresourcedefinitions': { status: 403, body: { kind: 'Status', code: 403, reason: 'Forbidden', message: 'cannot list customresourcedefinitions' } },
    }, async (client) => {
      const result = await discoverTypes(client);
      assert.equal(result.types.length, 2);
      assert.match(result.customResourcesUnknown ?? '', /listing CustomResourceDefinitions failed: .*403/);
    });
  });

  it('retries a group whose connection dropped, and fails the run only when the core group cannot be read', async () => {
    await withServer({
      '/apis': { body: { groups: groups.groups.slice(0, 1) } }, '/api/v1': { body: core },
      '/apis/apps/v1': (attempt) => (attempt === 1 ? { body: 'hang-up' } : { body: apps }),
      '/apis/apiextensions.k8s.io/v1/customresourcedefinitions': { body: crds },
    }, async (client, hits) => {
      const clock = new ImpatientClock();
      const result = await discoverTypes(client, undefined, clock);
      assert.deepEqual(result.failedGroups, []);
      assert.ok(result.types.some((t) => t.resource === 'deployments'));
      assert.equal(hits.get('/apis/apps/v1'), 2);
      assert.equal(clock.delaysMs.length, 1, 'one wait before the second attempt');
    });
    await withServer({
      '/apis': { body: { groups: [] } },
      '/api/v1': { status: 500, body: { kind: 'Status', code: 500, reason: 'InternalError', message: 'etcd is down' } },
    }, async (client, hits) => {
      const clock = new ImpatientClock();
      await assert.rejects(discoverTypes(client, undefined, clock), /500/);
      assert.equal(hits.get('/api/v1'), 5, 'five attempts');
      // 500 ms doubling, each with up to 20 % jitter on top: 7.5 s to 9 s in all.
      assert.equal(clock.delaysMs.length, 4);
      for (const [i, delayMs] of clock.delaysMs.entries()) {
        assert.ok(delayMs >= 500 * 2 ** i && delayMs <= 1.2 * 500 * 2 ** i, `wait ${i + 1}: ${delayMs} ms`);
      }
    });
  });
});
