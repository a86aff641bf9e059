import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  ApiException,
  createConfiguration,
  KubeConfig,
  KubernetesObjectApi,
  Observable,
  ResponseContext,
  ServerConfiguration,
  type HttpLibrary,
  type KubernetesObject,
  type RequestContext,
  type V1ConfigMap,
} from '@kubernetes/client-node';
import {
  applyObject,
  controllerOf,
  deleteIfManaged,
  isControlledBy,
  objectApiFor,
  ownerReference,
  withManagedLabels,
  type ObjectApi,
} from './apply.ts';
import { LABEL_MANAGED_BY, LABEL_PART_OF } from './labels.ts';

interface SentRequest {
  readonly method: string;
  readonly url: URL;
  readonly headers: Readonly<Record<string, string>>;
  readonly body: unknown;
}

const CORE_V1_RESOURCES = {
  kind: 'APIResourceList',
  groupVersion: 'v1',
  resources: [{ name: 'configmaps', singularName: 'configmap', namespaced: true, kind: 'ConfigMap', verbs: ['patch', 'delete'] }],
};

/**
 * A KubernetesObjectApi whose HTTP layer records requests instead of sending them: answers
 * discovery of core/v1, echoes the body of a PATCH, and answers DELETE with `deleteStatus`.
 */
function recordingObjectApi(deleteStatus = 200): { api: KubernetesObjectApi; sent: SentRequest[] } {
  const sent: SentRequest[] = [];
  const json = (status: number, body: unknown): ResponseContext =>
    new ResponseContext(status, { 'content-type': 'application/json' }, {
      text: async () => JSON.stringify(body),
      binary: async () => Buffer.from(JSON.stringify(body)),
      stream: () => null,
    });
  const httpApi: HttpLibrary = {
    send(request: RequestContext) {
      const url = new URL(request.getUrl());
      const rawBody = request.getBody();
      const body = typeof rawBody === 'string' ? JSON.parse(rawBody) : undefined;
      sent.push({ method: request.getHttpMethod().toString(), url, headers: request.getHeaders(), body });
      if (url.pathname === '/api/v1') return new Observable(Promise.resolve(json(200, CORE_V1_RESOURCES)));
      if (request.getHttpMethod().toString() === 'PATCH') {
        return new Observable(Promise.resolve(json(200, { ...body, metadata: { ...body.metadata, uid: 'uid-1', resourceVersion: '7' } })));
      }
      return new Observable(Promise.resolve(json(deleteStatus, { kind: 'Status', apiVersion: 'v1', code: deleteStatus })));
    },
  };
  const configuration = createConfiguration({ baseServer: new ServerConfiguration('https://k8s.test', {}), httpApi });
  return { api: new KubernetesObjectApi(configuration), sent };
}

function configMap(overrides: Partial<V1ConfigMap['metadata']> = {}): V1ConfigMap {
  return {
    apiVersion: 'v1',
    kind: 'ConfigMap',
    metadata: { name: 'settings', namespace: 'team-a', ...overrides },
    data: { mode: 'strict' },
  };
}

describe('applyObject', () => {
  it('sends a server-side apply patch with our field manager, forcing conflicts, and returns the stored object', async () => {
    const { api, sent } = recordingObjectApi();
    const stored = await applyObject(api, configMap());
    const patch = sent.find((r) => r.method === 'PATCH');
    assert.ok(patch, 'a PATCH was sent');
    assert.equal(patch.url.pathname, '/api/v1/namespaces/team-a/configmaps/settings');
    assert.equal(patch.headers['Content-Type'], 'application/apply-patch+yaml');
    assert.equal(patch.url.searchParams.get('fieldManager'), 'crowsnest');
    assert.equal(patch.url.searchParams.get('force'), 'true');
    assert.equal(patch.url.searchParams.has('dryRun'), false);
    assert.deepEqual(patch.body, configMap());
    assert.equal(stored.metadata?.uid, 'uid-1');
    assert.deepEqual(stored.data, { mode: 'strict' });
  });

  it('passes dryRun=All, a custom field manager and force=false through', async () => {
    const { api, sent } = recordingObjectApi();
    await applyObject(api, configMap(), { dryRun: true, fieldManager: 'crowsnest-guard', force: false });
    const patch = sent.find((r) => r.method === 'PATCH');
    assert.equal(patch?.url.searchParams.get('dryRun'), 'All');
    assert.equal(patch?.url.searchParams.get('fieldManager'), 'crowsnest-guard');
    assert.equal(patch?.url.searchParams.get('force'), 'false');
  });

  it('drops managedFields, which the API server refuses in an apply, without touching the caller object', async () => {
    const { api, sent } = recordingObjectApi();
    const desired = configMap({ managedFields: [{ manager: 'kubectl', operation: 'Apply' }] });
    const before = structuredClone(desired);
    await applyObject(api, desired);
    const patch = sent.find((r) => r.method === 'PATCH');
    assert.equal((patch?.body as KubernetesObject).metadata?.managedFields, undefined);
    assert.deepEqual(desired, before);
  });

  it('refuses an object without apiVersion, kind or name before sending anything', async () => {
    const { api, sent } = recordingObjectApi();
    await assert.rejects(applyObject(api, { apiVersion: 'v1', kind: 'ConfigMap', metadata: {} }), /needs apiVersion, kind and metadata.name/);
    assert.deepEqual(sent, []);
  });

  it('builds one client per kubeconfig, so API discovery is not repeated for every write', () => {
    const kc = new KubeConfig();
    kc.loadFromOptions({
      clusters: [{ name: 'c', server: 'https://k8s.test', skipTLSVerify: true }],
      users: [{ name: 'u', token: 't' }],
      contexts: [{ name: 'ctx', cluster: 'c', user: 'u' }],
      currentContext: 'ctx',
    });
    assert.equal(objectApiFor(kc), objectApiFor(kc));
    const { api } = recordingObjectApi();
    assert.equal(objectApiFor(api), api);
  });
});

describe('owner references', () => {
  const owner = { apiVersion: 'crowsnest.dev/v1alpha1', kind: 'LogAccess', metadata: { name: 'web', uid: 'owner-uid' } };

  it('references the owner as controller that blocks foreground deletion by default', () => {
    assert.deepEqual(ownerReference(owner), {
      apiVersion: 'crowsnest.dev/v1alpha1',
      kind: 'LogAccess',
      name: 'web',
      uid: 'owner-uid',
      controller: true,
      blockOwnerDeletion: true,
    });
  });

  it('can reference a non-controlling owner', () => {
    const ref = ownerReference(owner, { controller: false, blockOwnerDeletion: false });
    assert.equal(ref.controller, false);
    assert.equal(ref.blockOwnerDeletion, false);
  });

  it('refuses an owner that was never stored (no uid)', () => {
    assert.throws(() => ownerReference({ ...owner, metadata: { name: 'web' } }), /metadata.uid/);
  });

  const cases: ReadonlyArray<{ name: string; refs: KubernetesObject['metadata']; controller: string | undefined }> = [
    { name: 'no owner references', refs: {}, controller: undefined },
    { name: 'only non-controlling owners', refs: { ownerReferences: [{ apiVersion: 'v1', kind: 'X', name: 'x', uid: 'u1' }] }, controller: undefined },
    {
      name: 'a controlling owner among others',
      refs: {
        ownerReferences: [
          { apiVersion: 'v1', kind: 'X', name: 'x', uid: 'u1', controller: false },
          { apiVersion: 'v1', kind: 'Y', name: 'y', uid: 'u2', controller: true },
        ],
      },
      controller: 'u2',
    },
  ];
  for (const c of cases) {
    it(`finds the controller of an object with ${c.name}`, () => {
      const obj: KubernetesObject = { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'cm', ...c.refs } };
      assert.equal(controllerOf(obj)?.uid, c.controller);
      assert.equal(isControlledBy(obj, 'u2'), c.controller === 'u2');
      assert.equal(isControlledBy(obj, 'u1'), false, 'a non-controlling owner does not control');
    });
  }
});

describe('withManagedLabels', () => {
  it('adds managed-by and part-of, keeps other labels, and leaves the input alone', () => {
    const obj = configMap({ labels: { app: 'web', [LABEL_MANAGED_BY]: 'helm' } });
    const labelled = withManagedLabels(obj);
    assert.deepEqual(labelled.metadata?.labels, { app: 'web', [LABEL_MANAGED_BY]: 'crowsnest', [LABEL_PART_OF]: 'crowsnest' });
    assert.equal(obj.metadata?.labels?.[LABEL_MANAGED_BY], 'helm');
    assert.deepEqual(labelled.data, obj.data);
  });
});

describe('deleteIfManaged', () => {
  /** An ObjectApi that records delete calls and answers them with `outcome`. */
  function fakeApi(outcome: unknown = undefined): { api: ObjectApi; deletes: unknown[][] } {
    const deletes: unknown[][] = [];
    const api: ObjectApi = {
      patch: () => Promise.reject(new Error('not expected')),
      delete: async (...args: unknown[]) => {
        deletes.push(args);
        if (outcome) throw outcome;
        return { kind: 'Status' };
      },
    };
    return { api, deletes };
  }
  const apiError = (code: number, reason: string) => new ApiException(code, reason, JSON.stringify({ kind: 'Status', code, reason }), {});
  const managed: KubernetesObject = {
    apiVersion: 'rbac.authorization.k8s.io/v1',
    kind: 'Role',
    metadata: { name: 'log-reader', namespace: 'team-a', uid: 'role-uid', resourceVersion: '42', labels: { [LABEL_MANAGED_BY]: 'crowsnest' } },
  };

  it('deletes an object read from the API on the condition that its uid is unchanged', async () => {
    const { api, deletes } = fakeApi();
    assert.equal(await deleteIfManaged(api, managed), 'deleted');
    const [spec, , dryRun, , , , body] = deletes[0] ?? [];
    assert.deepEqual(spec, { apiVersion: 'rbac.authorization.k8s.io/v1', kind: 'Role', metadata: { name: 'log-reader', namespace: 'team-a' } });
    assert.equal(dryRun, undefined);
    assert.deepEqual(body, { preconditions: { uid: 'role-uid', resourceVersion: undefined }, propagationPolicy: 'Background' });
  });

  it('adds a resourceVersion precondition only when asked to', async () => {
    const { api, deletes } = fakeApi();
    await deleteIfManaged(api, managed, { resourceVersion: '42', dryRun: true, propagationPolicy: 'Foreground' });
    const [, , dryRun, , , , body] = deletes[0] ?? [];
    assert.equal(dryRun, 'All');
    assert.deepEqual(body, { preconditions: { uid: 'role-uid', resourceVersion: '42' }, propagationPolicy: 'Foreground' });
  });

  it('leaves an object without our managed-by label alone without calling the API', async () => {
    const { api, deletes } = fakeApi();
    const foreign = { ...managed, metadata: { ...managed.metadata, labels: { [LABEL_MANAGED_BY]: 'helm' } } };
    assert.equal(await deleteIfManaged(api, foreign), 'not-managed');
    assert.deepEqual(deletes, []);
  });

  it('refuses a bare reference without any precondition', async () => {
    const { api, deletes } = fakeApi();
    const ref = { apiVersion: 'v1', kind: 'ConfigMap', namespace: 'team-a', name: 'settings' };
    await assert.rejects(deleteIfManaged(api, ref), /needs a uid or resourceVersion precondition/);
    assert.equal(await deleteIfManaged(api, ref, { uid: 'cm-uid' }), 'deleted');
    assert.deepEqual((deletes[0]?.[6] as { preconditions: unknown }).preconditions, { uid: 'cm-uid', resourceVersion: undefined });
  });

  const outcomes: ReadonlyArray<{ name: string; error: unknown; outcome: string }> = [
    { name: 'reports an object already gone as not-found', error: apiError(404, 'NotFound'), outcome: 'not-found' },
    { name: 'reports a replaced object (failed precondition, 409) as precondition-failed', error: apiError(409, 'Conflict'), outcome: 'precondition-failed' },
  ];
  for (const c of outcomes) {
    it(c.name, async () => {
      const { api } = fakeApi(c.error);
      assert.equal(await deleteIfManaged(api, managed), c.outcome);
    });
  }

  it('rethrows other API errors', async () => {
    const { api } = fakeApi(apiError(403, 'Forbidden'));
    await assert.rejects(deleteIfManaged(api, managed), (err: unknown) => err instanceof ApiException && err.code === 403);
  });

  it('sends the preconditions in the DELETE body on the wire', async () => {
    const { api, sent } = recordingObjectApi();
    await deleteIfManaged(api, { apiVersion: 'v1', kind: 'ConfigMap', namespace: 'team-a', name: 'settings' }, { uid: 'cm-uid' });
    const del = sent.find((r) => r.method === 'DELETE');
    assert.equal(del?.url.pathname, '/api/v1/namespaces/team-a/configmaps/settings');
    assert.deepEqual(del?.body, { preconditions: { uid: 'cm-uid' }, propagationPolicy: 'Background' });
  });
});
