import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { KubeApiError, type RequestInit } from '../client/client.ts';
import { FIELD_MANAGERS } from './labels.ts';
import { type KubeObject, Resources } from './resources.ts';
import {
  addFinalizer, createOrGet, createObject, deleteObject, hasFieldManager, keepFieldManagers, type KubeRequester,
  type ManagedFieldsEntry, migrateFieldManager, removeFinalizer, serverSideApply, transferFieldOwnership,
} from './writes.ts';

interface Call {
  readonly path: string;
  readonly init: RequestInit;
}

/** A requester answering from a script of results (objects, or errors to throw), recording each call. */
function scripted(...answers: Array<unknown>): KubeRequester & { calls: Call[] } {
  const calls: Call[] = [];
  return {
    calls,
    json: async <T>(path: string, init: RequestInit = {}): Promise<T> => {
      calls.push({ path, init });
      if (answers.length === 0) throw new Error(`unexpected request ${init.method ?? 'GET'} ${path}`);
      const answer = answers.shift();
      if (answer instanceof Error) throw answer;
      return answer as T;
    },
  };
}

function apiError(status: number, reason: string, method = 'POST'): KubeApiError {
  return new KubeApiError({ method, path: '/x', status, body: JSON.stringify({ kind: 'Status', code: status, reason, message: `${reason} (test)` }) });
}

const manager = FIELD_MANAGERS.logaccess;
const cm = (finalizers?: string[], extra: Partial<KubeObject['metadata']> = {}): KubeObject => ({
  apiVersion: 'v1', kind: 'ConfigMap',
  metadata: { name: 'c', namespace: 'ns', uid: 'u1', resourceVersion: '10', ...(finalizers ? { finalizers } : {}), ...extra },
});

describe('createOrGet', () => {
  it('returns the created object', async () => {
    const client = scripted(cm());
    const result = await createOrGet(client, Resources.configMaps, cm(), { fieldManager: manager });
    assert.deepEqual(result, { created: true, object: cm() });
  });

  it('reads the object holding the name after 409 AlreadyExists', async () => {
    const theirs = cm(undefined, { uid: 'someone-else' });
    const client = scripted(apiError(409, 'AlreadyExists'), theirs);
    assert.deepEqual(await createOrGet(client, Resources.configMaps, cm(), { fieldManager: manager }), { created: false, existing: theirs });
    assert.equal(client.calls[1]!.path, '/api/v1/namespaces/ns/configmaps/c');
  });

  it('throws the read error when the name is taken and the read fails: never "not managed by crowsnest"', async () => {
    const unavailable = apiError(503, 'ServiceUnavailable', 'GET');
    const client = scripted(apiError(409, 'AlreadyExists'), unavailable);
    await assert.rejects(createOrGet(client, Resources.configMaps, cm(), { fieldManager: manager }), (err) => err === unavailable);
  });

  it('throws other create errors without reading', async () => {
    const client = scripted(apiError(403, 'Forbidden'));
    await assert.rejects(createOrGet(client, Resources.configMaps, cm(), { fieldManager: manager }), { status: 403 });
    assert.equal(client.calls.length, 1);
  });
});

describe('write options reach the request', () => {
  const signal = new AbortController().signal;
  const options = { fieldManager: manager, dryRun: true, signal } as const;
  /** name, call, field manager sent, dryRun in the DeleteOptions body (instead of the query). */
  const cases: Array<[string, (c: KubeRequester) => Promise<unknown>, string | undefined, string[]?]> = [
    ['createObject', (c) => createObject(c, Resources.configMaps, cm(), options), manager],
    ['serverSideApply', (c) => serverSideApply(c, Resources.configMaps, cm(), options), manager],
    ['deleteObject', (c) => deleteObject(c, Resources.configMaps, { namespace: 'ns', name: 'c', uid: 'u1' }, options), undefined, ['All']],
    ['addFinalizer', (c) => addFinalizer(c, Resources.configMaps, cm(), 'crowsnest.dev/test', options), manager],
    ['removeFinalizer', (c) => removeFinalizer(c, Resources.configMaps, cm(['crowsnest.dev/test']), 'crowsnest.dev/test', options), manager],
  ];
  for (const [name, write, fieldManager, bodyDryRun] of cases) {
    it(`${name}: dryRun=All, the signal, and the field manager`, async () => {
      const client = scripted(cm());
      await write(client);
      const { init } = client.calls[0]!;
      if (bodyDryRun) assert.deepEqual((init.body as { dryRun?: string[] }).dryRun, bodyDryRun);
      else assert.equal(init.query?.['dryRun'], 'All');
      assert.equal(init.query?.['fieldManager'], fieldManager);
      assert.equal(init.signal, signal);
    });
  }

  it('without dryRun no dryRun parameter is sent', async () => {
    const client = scripted(cm());
    await serverSideApply(client, Resources.configMaps, cm(), { fieldManager: manager });
    assert.equal(client.calls[0]!.init.query?.['dryRun'], undefined);
    assert.equal(client.calls[0]!.init.query?.['force'], true);
  });
});

describe('finalizers', () => {
  const F = 'crowsnest.dev/webhook-configuration';

  it('adding a finalizer already there sends nothing', async () => {
    const client = scripted();
    const obj = cm([F]);
    assert.equal(await addFinalizer(client, Resources.configMaps, obj, F, { fieldManager: manager }), obj);
    assert.equal(client.calls.length, 0);
  });

  it('adds with the uid and resourceVersion as preconditions, keeping the other finalizers', async () => {
    const client = scripted(cm(['other.io/x', F]));
    await addFinalizer(client, Resources.configMaps, cm(['other.io/x']), F, { fieldManager: manager });
    assert.equal(client.calls[0]!.init.contentType, 'application/merge-patch+json');
    assert.deepEqual(client.calls[0]!.init.body, { metadata: { uid: 'u1', resourceVersion: '10', finalizers: ['other.io/x', F] } });
  });

  it('after a conflict reads again and keeps what someone else added meanwhile', async () => {
    const fresh = cm(['other.io/added-meanwhile'], { resourceVersion: '11' });
    const client = scripted(apiError(409, 'Conflict', 'PATCH'), fresh, cm(['other.io/added-meanwhile', F], { resourceVersion: '12' }));
    const result = await addFinalizer(client, Resources.configMaps, cm(), F, { fieldManager: manager });
    assert.deepEqual(result.metadata?.finalizers, ['other.io/added-meanwhile', F]);
    assert.deepEqual(client.calls[2]!.init.body, { metadata: { uid: 'u1', resourceVersion: '11', finalizers: ['other.io/added-meanwhile', F] } });
  });

  it('after a conflict, finds it already added (by another replica) and stops', async () => {
    const client = scripted(apiError(409, 'Conflict', 'PATCH'), cm([F], { resourceVersion: '11' }));
    await addFinalizer(client, Resources.configMaps, cm(), F, { fieldManager: manager });
    assert.equal(client.calls.length, 2);
  });

  it('gives up after five conflicts with the conflict error', async () => {
    const answers: unknown[] = [];
    for (let i = 0; i < 5; i++) answers.push(apiError(409, 'Conflict', 'PATCH'), cm());
    const client = scripted(...answers);
    await assert.rejects(addFinalizer(client, Resources.configMaps, cm(), F, { fieldManager: manager }), { status: 409 });
    assert.equal(client.calls.filter((c) => c.init.method === 'PATCH').length, 5);
  });

  it('adds nothing to an object being deleted', async () => {
    const client = scripted();
    await addFinalizer(client, Resources.configMaps, cm([], { deletionTimestamp: '2026-01-01T00:00:00Z' }), F, { fieldManager: manager });
    assert.equal(client.calls.length, 0);
  });

  it('removing a finalizer that is not there sends nothing; removing from a gone object is done', async () => {
    const none = scripted();
    await removeFinalizer(none, Resources.configMaps, cm(['other.io/x']), F, { fieldManager: manager });
    assert.equal(none.calls.length, 0);
    const gone = scripted(apiError(404, 'NotFound', 'PATCH'));
    assert.equal(await removeFinalizer(gone, Resources.configMaps, cm([F]), F, { fieldManager: manager }), undefined);
  });

  it('does not touch an object replaced under the same name', async () => {
    const client = scripted(apiError(409, 'Conflict', 'PATCH'), cm([F], { uid: 'u2' }));
    assert.equal(await removeFinalizer(client, Resources.configMaps, cm([F]), F, { fieldManager: manager }), undefined);
    assert.equal(client.calls.length, 2);
  });

  it('refuses a finalizer outside crowsnest.dev/', async () => {
    await assert.rejects(addFinalizer(scripted(), Resources.configMaps, cm(), 'cleanup', { fieldManager: manager }), /crowsnest\.dev\//);
  });
});

describe('field manager migration', () => {
  const legacyApply: ManagedFieldsEntry = { manager: 'crowsnest', operation: 'Apply', apiVersion: 'v1', time: '2026-01-01T00:00:00Z', fieldsType: 'FieldsV1', fieldsV1: { 'f:metadata': { 'f:labels': { 'f:old': {} } } } };
  const newApply: ManagedFieldsEntry = { manager, operation: 'Apply', apiVersion: 'v1', time: '2026-02-01T00:00:00Z', fieldsType: 'FieldsV1', fieldsV1: { 'f:metadata': { 'f:labels': { 'f:new': {} } } } };
  const kubectl: ManagedFieldsEntry = { manager: 'kubectl', operation: 'Update', apiVersion: 'v1', fieldsV1: { 'f:data': {} } };

  it('turns the old manager\'s apply entry into the new manager\'s', () => {
    assert.deepEqual(transferFieldOwnership([legacyApply, kubectl], 'crowsnest', manager), [{ ...legacyApply, manager }, kubectl]);
  });

  it('merges into the new manager\'s apply entry: the union of both field sets', () => {
    assert.deepEqual(transferFieldOwnership([legacyApply, newApply], 'crowsnest', manager), [
      { ...legacyApply, manager, time: newApply.time, fieldsV1: { 'f:metadata': { 'f:labels': { 'f:old': {}, 'f:new': {} } } } },
    ]);
  });

  it('folds the old manager\'s create (an Update entry) into the apply entry too, so apply can drop those fields', () => {
    const legacyCreate: ManagedFieldsEntry = { ...legacyApply, operation: 'Update', fieldsV1: { 'f:data': { 'f:x': {} } } };
    assert.deepEqual(transferFieldOwnership([legacyCreate, legacyApply], 'crowsnest', manager), [
      { ...legacyCreate, manager, operation: 'Apply', fieldsV1: { 'f:data': { 'f:x': {} }, 'f:metadata': { 'f:labels': { 'f:old': {} } } } },
    ]);
  });

  it('leaves the new manager\'s own updates (its finalizers) and the status subresource alone', () => {
    const ownUpdate: ManagedFieldsEntry = { manager, operation: 'Update', apiVersion: 'v1', fieldsV1: { 'f:metadata': { 'f:finalizers': {} } } };
    const legacyStatus: ManagedFieldsEntry = { ...legacyApply, subresource: 'status' };
    assert.deepEqual(transferFieldOwnership([ownUpdate, legacyStatus, legacyApply], 'crowsnest', manager), [ownUpdate, legacyStatus, { ...legacyApply, manager }]);
  });

  it('nothing to move: undefined, and migrateFieldManager writes nothing', async () => {
    assert.equal(transferFieldOwnership([newApply, kubectl], 'crowsnest', manager), undefined);
    const client = scripted({ ...cm(), metadata: { ...cm().metadata, managedFields: [newApply] } });
    assert.equal(await migrateFieldManager(client, Resources.configMaps, { namespace: 'ns', name: 'c' }, 'crowsnest', { fieldManager: manager }), false);
    assert.equal(client.calls.length, 1);
  });

  it('migrateFieldManager patches managedFields guarded by the resourceVersion it read', async () => {
    const client = scripted({ ...cm(), metadata: { ...cm().metadata, managedFields: [legacyApply] } }, {});
    assert.equal(await migrateFieldManager(client, Resources.configMaps, { namespace: 'ns', name: 'c', uid: 'u1' }, 'crowsnest', { fieldManager: manager }), true);
    assert.deepEqual(client.calls[1]!.init.body, [
      { op: 'test', path: '/metadata/resourceVersion', value: '10' },
      { op: 'replace', path: '/metadata/managedFields', value: [{ ...legacyApply, manager }] },
    ]);
  });

  it('the cache keeps manager names without field sets', () => {
    const obj = keepFieldManagers({ ...cm(), metadata: { ...cm().metadata, managedFields: [legacyApply, kubectl] } });
    assert.deepEqual(obj.metadata?.managedFields, [{ manager: 'crowsnest', operation: 'Apply' }, { manager: 'kubectl', operation: 'Update' }]);
    assert.equal(hasFieldManager(obj, 'crowsnest'), true);
    assert.equal(hasFieldManager(obj, manager), false);
  });
});
