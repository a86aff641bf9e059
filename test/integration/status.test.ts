/**
 * Status on a real API server with the NetworkProber CRD: the status writer applies through
 * `/status` only, leaves `metadata.generation` alone, sends nothing for a status the object
 * already has, and an informer that enqueues on `generationChanged` is not woken by those writes
 * but is by a spec change.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Registry } from 'prom-client';
import { KubeClient, type RequestInit } from '../../src/kube/client/client.ts';
import { type Condition, setStatusCondition } from '../../src/kube/objects/conditions.ts';
import { Informer } from '../../src/kube/runtime/informer.ts';
import { FIELD_MANAGERS } from '../../src/kube/objects/labels.ts';
import { generationChanged, StatusWriter } from '../../src/kube/objects/status.ts';
import type { KubeRequester } from '../../src/kube/objects/writes.ts';
import { type NetworkProber, NetworkProberApi, type NetworkProberStatus } from '../../src/prober/api.ts';
import { installCrds } from './crds.ts';
import { adminKubeConfig, eventually, newNamespace, testbed } from './testbed.ts';

/** Counts the requests that go through it. */
function counting(client: KubeClient): KubeRequester & { requests: Array<{ path: string; method: string }> } {
  const requests: Array<{ path: string; method: string }> = [];
  return {
    requests,
    json: <T>(path: string, init: RequestInit = {}): Promise<T> => {
      requests.push({ path, method: init.method ?? 'GET' });
      return client.json<T>(path, init);
    },
  };
}

describe('status writes on a real API server', () => {
  it('writes through /status only when changed; generation stays; our writes do not pass the generation predicate', async (t) => {
    await installCrds();
    const plane = await testbed();
    const namespace = await newNamespace('status');
    const client = new KubeClient(await adminKubeConfig());
    t.after(() => client.close());
    const base = `/apis/crowsnest.dev/v1alpha1/namespaces/${namespace}/networkprobers`;
    const created = await client.json<NetworkProber>(base, { method: 'POST', body: { apiVersion: 'crowsnest.dev/v1alpha1', kind: 'NetworkProber', metadata: { name: 'web' }, spec: { podSelector: { matchLabels: { app: 'web' } } } } });
    assert.equal(created.metadata.generation, 1);

    // An informer as a controller would run it, counting the updates that pass the predicate.
    const informer = new Informer<NetworkProber>({ client, type: NetworkProberApi.type, namespace, registry: new Registry() });
    const passed: string[] = [];
    let updates = 0;
    informer.on({ onUpdate: (old, current) => {
      updates++;
      if (generationChanged(old, current)) passed.push(current.metadata.resourceVersion!);
    } });
    const stop = new AbortController();
    const running = informer.run(stop.signal);
    t.after(async () => {
      stop.abort();
      await running;
    });
    await informer.waitForSync(stop.signal);

    const requester = counting(client);
    const writer = new StatusWriter<NetworkProberStatus>({ client: requester, type: NetworkProberApi.type, fieldManager: FIELD_MANAGERS.prober });
    const clock = { now: () => Date.parse('2026-03-01T10:00:00Z') };
    let conditions: Condition[] = setStatusCondition(undefined, { type: 'Ready', status: 'False', reason: 'NoPodsSelected', message: 'no pod matches podSelector', observedGeneration: 1 }, clock).conditions;
    conditions = setStatusCondition(conditions, { type: 'Degraded', status: 'False', reason: 'AllPairsReachable', observedGeneration: 1 }, clock).conditions;
    const status: NetworkProberStatus = { observedGeneration: 1, conditions, injectedPods: 0, reachablePairs: 0, unreachablePairs: 0 };

    const first = await writer.write(created, status);
    assert.equal(first.written, true);
    assert.deepEqual(requester.requests, [{ path: `${base}/web/status`, method: 'PATCH' }]);
    const stored = JSON.parse((await plane.request('GET', `${base}/web`)).body) as NetworkProber;
    assert.deepEqual(stored.status, status);
    assert.equal(stored.metadata.generation, 1, 'a status write does not bump the generation');
    assert.deepEqual(stored.spec.podSelector, { matchLabels: { app: 'web' } });
    // Field ownership: the status belongs to the prober's manager, on the status subresource.
    const managers = (stored.metadata.managedFields as Array<{ manager: string; subresource?: string }>).filter((m) => m.subresource === 'status');
    assert.deepEqual(managers.map((m) => m.manager), ['crowsnest-prober']);

    // The same status again: from the cache before it saw our write, and from the stored object.
    assert.deepEqual(await writer.write(created, status), { written: false });
    assert.deepEqual(await writer.write(stored, structuredClone(status)), { written: false });
    assert.equal(requester.requests.length, 1, 'an unchanged status sends nothing');

    await eventually('the informer to see the status write', () => informer.store.getByName(namespace, 'web')?.status !== undefined);
    assert.ok(updates >= 1);
    assert.equal(passed.length, 0, 'our status write woke the controller');

    // A spec change is what the predicate lets through; the next status write again keeps the generation.
    const edited = await client.json<NetworkProber>(`${base}/web`, { method: 'PATCH', contentType: 'application/merge-patch+json', body: { spec: { pollingPeriod: '30s' } } });
    assert.equal(edited.metadata.generation, 2);
    await eventually('the predicate to pass the spec change', () => passed.includes(edited.metadata.resourceVersion!));
    const ready = setStatusCondition(conditions, { type: 'Ready', status: 'True', reason: 'AgentsProbing', observedGeneration: 2 }, { now: () => Date.parse('2026-03-01T10:05:00Z') }).conditions;
    const second = await writer.write(edited, { ...status, observedGeneration: 2, conditions: ready, injectedPods: 2, reachablePairs: 2 });
    assert.equal(second.written, true);
    assert.equal(second.written && second.object.metadata.generation, 2);
    assert.equal(requester.requests.length, 2);
    const passedBefore = passed.length;
    await eventually('the informer to see the second status write', () => informer.store.getByName(namespace, 'web')?.status?.injectedPods === 2);
    assert.equal(passed.length, passedBefore);
    assert.match(await plane.kubectl(['-n', namespace, 'get', 'networkprobers', 'web']), /web\s+True\s+2\s+2\s+0/);
  });

  it('refuses a status computed from an older version: replaced under the same name, or changed since read (409)', async (t) => {
    await installCrds();
    const namespace = await newNamespace('status-uid');
    const client = new KubeClient(await adminKubeConfig());
    t.after(() => client.close());
    const base = `/apis/crowsnest.dev/v1alpha1/namespaces/${namespace}/networkprobers`;
    const body = { apiVersion: 'crowsnest.dev/v1alpha1', kind: 'NetworkProber', metadata: { name: 'web' }, spec: { podSelector: {} } };
    const old = await client.json<NetworkProber>(base, { method: 'POST', body });
    await client.json(`${base}/web`, { method: 'DELETE' });
    const replacement = await client.json<NetworkProber>(base, { method: 'POST', body });
    const writer = new StatusWriter<NetworkProberStatus>({ client, type: NetworkProberApi.type, fieldManager: FIELD_MANAGERS.prober });
    await assert.rejects(writer.write(old, { injectedPods: 1 }), { status: 409 });
    await client.json(`${base}/web`, { method: 'PATCH', contentType: 'application/merge-patch+json', body: { spec: { neighbours: 3 } } });
    await assert.rejects(writer.write(replacement, { injectedPods: 1 }), { status: 409 });
    const stored = await client.json<NetworkProber>(`${base}/web`);
    assert.equal(stored.status, undefined);
    assert.equal((await writer.write(stored, { injectedPods: 1 })).written, true);
  });
});
