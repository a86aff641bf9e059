import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { KubeApiError, type RequestInit } from '../client/client.ts';
import { FIELD_MANAGERS } from './labels.ts';
import type { ResourceType } from './resources.ts';
import { canonicalJson, generationChanged, StatusWriter, type WithStatus } from './status.ts';
import type { KubeRequester } from './writes.ts';

const probers: ResourceType = { group: 'crowsnest.dev', version: 'v1alpha1', resource: 'networkprobers', kind: 'NetworkProber', namespaced: true };

interface Status {
  observedGeneration?: number;
  injectedPods?: number;
}

function recording(answer: (path: string, init: RequestInit) => unknown): KubeRequester & { calls: Array<{ path: string; init: RequestInit }> } {
  const calls: Array<{ path: string; init: RequestInit }> = [];
  return {
    calls,
    json: async <T>(path: string, init: RequestInit = {}): Promise<T> => {
      calls.push({ path, init });
      const result = answer(path, init);
      if (result instanceof Error) throw result;
      return result as T;
    },
  };
}

const prober = (status?: Status, resourceVersion = '5'): WithStatus<Status> => ({
  apiVersion: 'crowsnest.dev/v1alpha1', kind: 'NetworkProber',
  metadata: { name: 'p', namespace: 'team-a', uid: 'u1', resourceVersion, generation: 2 },
  ...(status ? { status } : {}),
});

describe('StatusWriter', () => {
  it('applies to /status as the capability\'s manager, with the resourceVersion read as precondition', async () => {
    const client = recording((_p, init) => ({ ...prober((init.body as { status: Status }).status, '6') }));
    const writer = new StatusWriter<Status>({ client, type: probers, fieldManager: FIELD_MANAGERS.prober });
    const result = await writer.write(prober(), { observedGeneration: 2, injectedPods: 3 });
    assert.equal(result.written, true);
    const { path, init } = client.calls[0]!;
    assert.equal(path, '/apis/crowsnest.dev/v1alpha1/namespaces/team-a/networkprobers/p/status');
    assert.equal(init.method, 'PATCH');
    assert.equal(init.contentType, 'application/apply-patch+yaml');
    assert.deepEqual(init.query, { fieldManager: 'crowsnest-prober', force: true, dryRun: undefined });
    assert.deepEqual(init.body, {
      apiVersion: 'crowsnest.dev/v1alpha1', kind: 'NetworkProber',
      metadata: { name: 'p', namespace: 'team-a', uid: 'u1', resourceVersion: '5' }, status: { observedGeneration: 2, injectedPods: 3 },
    });
  });

  it('sends nothing when the object already has that status (key order does not matter)', async () => {
    const client = recording(() => assert.fail('no request expected'));
    const writer = new StatusWriter<Status>({ client, type: probers, fieldManager: FIELD_MANAGERS.prober });
    assert.deepEqual(await writer.write(prober({ injectedPods: 3, observedGeneration: 2 }), { observedGeneration: 2, injectedPods: 3 }), { written: false });
  });

  it('sends nothing a second time while the cache still shows the older status', async () => {
    const client = recording(() => prober({ observedGeneration: 2, injectedPods: 3 }, '6'));
    const writer = new StatusWriter<Status>({ client, type: probers, fieldManager: FIELD_MANAGERS.prober });
    const stale = prober({ observedGeneration: 1 }, '5');
    await writer.write(stale, { observedGeneration: 2, injectedPods: 3 });
    assert.deepEqual(await writer.write(stale, { observedGeneration: 2, injectedPods: 3 }), { written: false });
    assert.equal(client.calls.length, 1);
  });

  it('writes again when a newer version shows another status (someone changed it)', async () => {
    const client = recording(() => prober({ observedGeneration: 2, injectedPods: 3 }, '6'));
    const writer = new StatusWriter<Status>({ client, type: probers, fieldManager: FIELD_MANAGERS.prober });
    await writer.write(prober(undefined, '5'), { observedGeneration: 2, injectedPods: 3 });
    await writer.write(prober({ observedGeneration: 2, injectedPods: 99 }, '7'), { observedGeneration: 2, injectedPods: 3 });
    assert.equal(client.calls.length, 2);
  });

  it('a dry run is sent with dryRun=All and not remembered', async () => {
    const client = recording(() => prober({ injectedPods: 1 }, '5'));
    const writer = new StatusWriter<Status>({ client, type: probers, fieldManager: FIELD_MANAGERS.prober });
    await writer.write(prober(), { injectedPods: 1 }, { dryRun: true });
    assert.equal(client.calls[0]!.init.query?.['dryRun'], 'All');
    await writer.write(prober(), { injectedPods: 1 });
    assert.equal(client.calls.length, 2);
  });

  it('passes the API server\'s error on (the object is gone)', async () => {
    const gone = new KubeApiError({ method: 'PATCH', path: '/x', status: 404, body: '{"kind":"Status","reason":"NotFound"}' });
    const writer = new StatusWriter<Status>({ client: recording(() => gone), type: probers, fieldManager: FIELD_MANAGERS.prober });
    await assert.rejects(writer.write(prober(), { injectedPods: 1 }), (err) => err === gone);
  });
});

describe('generationChanged', () => {
  const at = (generation: number | undefined, deletionTimestamp?: string) => ({ metadata: { name: 'p', ...(generation !== undefined ? { generation } : {}), ...(deletionTimestamp ? { deletionTimestamp } : {}) } });
  it('is false for a status-only update (generation unchanged)', () => assert.equal(generationChanged(at(2), at(2)), false));
  it('is true for a spec change', () => assert.equal(generationChanged(at(2), at(3)), true));
  it('is true when deletion starts', () => assert.equal(generationChanged(at(2), at(2, '2026-01-01T00:00:00Z')), true));
  it('is true for objects without a generation', () => assert.equal(generationChanged(at(undefined), at(undefined)), true));
});

describe('canonicalJson', () => {
  it('ignores key order and undefined members, not array order', () => {
    assert.equal(canonicalJson({ b: 1, a: { d: [2, 1], c: undefined } }), canonicalJson({ a: { d: [2, 1] }, b: 1 }));
    assert.notEqual(canonicalJson({ a: [1, 2] }), canonicalJson({ a: [2, 1] }));
  });
});
