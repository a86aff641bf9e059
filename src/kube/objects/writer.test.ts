import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { FakeWriter } from './fake-writer.ts';
import { FIELD_MANAGERS } from './labels.ts';
import { type KubeObject, Resources } from './resources.ts';
import { kubeObjectWriter } from './writer.ts';
import type { KubeRequester } from './writes.ts';

interface Call { readonly method: string; readonly path: string; readonly query: Record<string, unknown>; readonly body: unknown; readonly signal: boolean }

/** A requester that records each call and answers with the body it was sent (or `{}`). */
function recording(): { requester: KubeRequester; calls: Call[] } {
  const calls: Call[] = [];
  const requester: KubeRequester = {
    json: async <T>(path: string, init: Parameters<KubeRequester['json']>[1] = {}) => {
      calls.push({ method: init.method ?? 'GET', path, query: { ...init.query }, body: init.body, signal: init.signal !== undefined });
      return (init.body ?? { metadata: { uid: 'u', resourceVersion: '1', finalizers: [] } }) as T;
    },
  };
  return { requester, calls };
}

const role: KubeObject = { apiVersion: 'rbac.authorization.k8s.io/v1', kind: 'Role', metadata: { namespace: 'ns', name: 'r', uid: 'u' } };

describe('kubeObjectWriter', () => {
  it("records every write under the capability's field manager, with dryRun and signal passed on", async () => {
    const { requester, calls } = recording();
    const writer = kubeObjectWriter(requester, FIELD_MANAGERS.logaccess);
    const signal = new AbortController().signal;
    await writer.create(Resources.roles, role, { dryRun: true, signal });
    await writer.apply(Resources.roles, role);
    await writer.addFinalizer(Resources.roles, role, 'crowsnest.dev/cleanup');
    assert.deepEqual(calls.map((c) => [c.method, c.path, c.query['fieldManager'], c.query['dryRun'], c.signal]), [
      ['POST', '/apis/rbac.authorization.k8s.io/v1/namespaces/ns/roles', 'crowsnest-logaccess', 'All', true],
      ['PATCH', '/apis/rbac.authorization.k8s.io/v1/namespaces/ns/roles/r', 'crowsnest-logaccess', undefined, false],
      ['PATCH', '/apis/rbac.authorization.k8s.io/v1/namespaces/ns/roles/r', 'crowsnest-logaccess', undefined, false],
    ]);
    assert.equal(calls[1]!.query['force'], true, 'server-side apply forces ownership of what it sets');
  });

  it('deletes with the uid as a precondition and no field manager (deletes record none)', async () => {
    const { requester, calls } = recording();
    await kubeObjectWriter(requester, FIELD_MANAGERS.prober).delete(Resources.roles, { namespace: 'ns', name: 'r', uid: 'u' });
    assert.equal(calls[0]!.method, 'DELETE');
    assert.equal(calls[0]!.query['fieldManager'], undefined);
    assert.deepEqual((calls[0]!.body as { preconditions: unknown }).preconditions, { uid: 'u' });
  });
});

describe('FakeWriter', () => {
  it('answers like the API server where controllers rely on it: 409 on a taken name, uid preconditions, growing resourceVersions', async () => {
    const writer = new FakeWriter({ objects: [[Resources.roles, role]] });
    await assert.rejects(writer.create(Resources.roles, role), /409 AlreadyExists/);
    const got = await writer.createOrGet(Resources.roles, role);
    assert.equal(got.created, false);
    await assert.rejects(writer.apply(Resources.roles, { ...role, metadata: { ...role.metadata, uid: 'other' } }), /409 Conflict: Precondition failed/);
    const applied = await writer.apply(Resources.roles, role);
    assert.ok(Number(applied.metadata?.resourceVersion) > 1000);
    assert.equal(await writer.delete(Resources.roles, { namespace: 'ns', name: 'r', uid: 'other' }), false);
    assert.equal(await writer.delete(Resources.roles, { namespace: 'ns', name: 'r', uid: 'u' }), true);
    assert.deepEqual(writer.summary(), ['create roles ns/r', 'create roles ns/r', 'get roles ns/r', 'apply roles ns/r', 'apply roles ns/r', 'delete roles ns/r', 'delete roles ns/r']);
  });
});
