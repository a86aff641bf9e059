/**
 * The write path's guarantees on a real API server: per-capability field managers and the upgrade
 * from the single `crowsnest` manager earlier versions used (no orphaned fields, no two managers
 * sharing fields), finalizers added and removed under concurrency, and dry runs that persist
 * nothing.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { KubeClient, type RequestInit } from '../../src/kube/client/client.ts';
import { FIELD_MANAGERS, LEGACY_FIELD_MANAGER } from '../../src/kube/objects/labels.ts';
import { type KubeObject, Resources } from '../../src/kube/objects/resources.ts';
import {
  addFinalizer, createObject, deleteObject, type KubeRequester, migrateFieldManager, removeFinalizer, serverSideApply,
} from '../../src/kube/objects/writes.ts';
import { adminKubeConfig, newNamespace, testbed } from './testbed.ts';

interface ConfigMap extends KubeObject {
  data?: Record<string, string>;
}
interface ManagedFields {
  manager: string;
  operation: string;
  fieldsV1?: Record<string, unknown>;
}

async function adminClient(t: { after(fn: () => Promise<void>): void }): Promise<KubeClient> {
  const client = new KubeClient(await adminKubeConfig());
  t.after(() => client.close());
  return client;
}

const manager = FIELD_MANAGERS.logaccess;

/** What a version with the shared manager left behind: created, then applied, as `crowsnest`. */
async function legacyObject(namespace: string, name: string): Promise<void> {
  const plane = await testbed();
  const path = `/api/v1/namespaces/${namespace}/configmaps`;
  const body = { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name, labels: { 'app.kubernetes.io/managed-by': 'crowsnest', 'old-label': 'x' } }, data: { rule: 'v1' } };
  assert.equal((await plane.request('POST', `${path}?fieldManager=${LEGACY_FIELD_MANAGER}`, body)).status, 201);
  const applied = await plane.request('PATCH', `${path}/${name}?fieldManager=${LEGACY_FIELD_MANAGER}&force=true`, body, { 'content-type': 'application/apply-patch+yaml' });
  assert.equal(applied.status, 200, applied.body);
}

/** The desired object of the new version: it no longer sets `old-label`, and changes the data. */
const desired = (namespace: string, name: string): ConfigMap => ({
  apiVersion: 'v1', kind: 'ConfigMap',
  metadata: { name, namespace, labels: { 'app.kubernetes.io/managed-by': 'crowsnest' } },
  data: { rule: 'v2' },
});

interface Stored {
  metadata: { managedFields: ManagedFields[]; labels?: Record<string, string>; finalizers?: string[] };
  data?: Record<string, string>;
}

async function read(namespace: string, name: string): Promise<Stored> {
  const plane = await testbed();
  return JSON.parse((await plane.request('GET', `/api/v1/namespaces/${namespace}/configmaps/${name}`)).body) as Stored;
}

describe('field managers on a real API server', () => {
  it('upgrade: an object applied as "crowsnest" is handed to the capability\'s manager, so fields it no longer sets go', async (t) => {
    const client = await adminClient(t);
    const namespace = await newNamespace('managers');

    // Without the move (the hazard): the old manager keeps owning old-label, which stays forever.
    await legacyObject(namespace, 'unmigrated');
    await serverSideApply(client, Resources.configMaps, desired(namespace, 'unmigrated'), { fieldManager: manager });
    const orphaned = await read(namespace, 'unmigrated');
    assert.equal(orphaned.metadata.labels?.['old-label'], 'x', 'control: the shared-manager field survives an apply by the new manager');
    assert.ok(orphaned.metadata.managedFields.some((m) => m.manager === LEGACY_FIELD_MANAGER));

    // With it, as the logaccess controller does before its first apply to such an object.
    await legacyObject(namespace, 'migrated');
    assert.equal(await migrateFieldManager(client, Resources.configMaps, { namespace, name: 'migrated' }, LEGACY_FIELD_MANAGER, { fieldManager: manager }), true);
    const handed = await read(namespace, 'migrated');
    assert.deepEqual(handed.metadata.labels, { 'app.kubernetes.io/managed-by': 'crowsnest', 'old-label': 'x' }, 'the move itself changes no field');
    assert.deepEqual(handed.metadata.managedFields.map((m) => [m.manager, m.operation]), [[manager, 'Apply']], 'create and apply of the old manager folded into one apply entry');
    await serverSideApply(client, Resources.configMaps, desired(namespace, 'migrated'), { fieldManager: manager });
    const after = await read(namespace, 'migrated');
    assert.deepEqual(after.metadata.labels, { 'app.kubernetes.io/managed-by': 'crowsnest' });
    assert.deepEqual(after.data, { rule: 'v2' });
    assert.ok(after.metadata.managedFields.every((m) => m.manager === manager), JSON.stringify(after.metadata.managedFields));
    // Nothing left to move, and a second move writes nothing.
    assert.equal(await migrateFieldManager(client, Resources.configMaps, { namespace, name: 'migrated' }, LEGACY_FIELD_MANAGER, { fieldManager: manager }), false);
  });

  it('two capabilities applying to one object keep each other\'s fields', async (t) => {
    const client = await adminClient(t);
    const namespace = await newNamespace('two-managers');
    const cm = (labels: Record<string, string>): ConfigMap => ({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'shared', namespace, labels } });
    await serverSideApply(client, Resources.configMaps, cm({ 'prober.crowsnest.dev/x': '1' }), { fieldManager: FIELD_MANAGERS.prober });
    await serverSideApply(client, Resources.configMaps, cm({ 'guard.crowsnest.dev/y': '1' }), { fieldManager: FIELD_MANAGERS.guard });
    await serverSideApply(client, Resources.configMaps, cm({ 'prober.crowsnest.dev/x': '2' }), { fieldManager: FIELD_MANAGERS.prober });
    assert.deepEqual((await read(namespace, 'shared')).metadata.labels, { 'prober.crowsnest.dev/x': '2', 'guard.crowsnest.dev/y': '1' });
  });

  it('an apply carrying another object\'s uid is refused, not applied to the replacement', async (t) => {
    const client = await adminClient(t);
    const plane = await testbed();
    const namespace = await newNamespace('apply-uid');
    const first = await createObject(client, Resources.configMaps, desired(namespace, 'replaced'), { fieldManager: manager });
    await plane.request('DELETE', `/api/v1/namespaces/${namespace}/configmaps/replaced`);
    await createObject(client, Resources.configMaps, { ...desired(namespace, 'replaced'), data: { theirs: 'yes' } }, { fieldManager: FIELD_MANAGERS.guard });
    const stale = { ...desired(namespace, 'replaced'), metadata: { ...desired(namespace, 'replaced').metadata, uid: first.metadata!.uid! } };
    await assert.rejects(serverSideApply(client, Resources.configMaps, stale, { fieldManager: manager }), (err: { status?: number }) => err.status === 409 || err.status === 422);
    assert.deepEqual((await read(namespace, 'replaced')).data, { theirs: 'yes' });
  });
});

describe('finalizers on a real API server', () => {
  it('add is idempotent, survives a concurrent change, holds deletion until removed', async (t) => {
    const client = await adminClient(t);
    const plane = await testbed();
    // Cluster-scoped, the case owner references cannot clean up.
    const name = `crowsnest-finalizer-${(await newNamespace('fin')).split('-').pop()}`;
    const requests: string[] = [];
    const counted: KubeRequester = { json: <T>(path: string, init: RequestInit = {}) => { requests.push(`${init.method ?? 'GET'} ${path}`); return client.json<T>(path, init); } };
    const type = { group: 'rbac.authorization.k8s.io', version: 'v1', resource: 'clusterroles', kind: 'ClusterRole', namespaced: false };
    const path = `/apis/rbac.authorization.k8s.io/v1/clusterroles/${name}`;
    const role = await createObject(client, type, { apiVersion: 'rbac.authorization.k8s.io/v1', kind: 'ClusterRole', metadata: { name }, rules: [] } as KubeObject, { fieldManager: FIELD_MANAGERS.operator });
    t.after(async () => {
      await plane.request('PATCH', path, { metadata: { finalizers: null } }, { 'content-type': 'application/merge-patch+json' });
      await plane.request('DELETE', path);
    });

    // Someone else adds a finalizer after we read the object: our add (stale resourceVersion) must keep theirs.
    const theirs = await plane.request('PATCH', path, { metadata: { finalizers: ['example.com/theirs'] } }, { 'content-type': 'application/merge-patch+json' });
    assert.equal(theirs.status, 200);
    const added = await addFinalizer(counted, type, role, 'crowsnest.dev/cleanup', { fieldManager: FIELD_MANAGERS.operator });
    assert.deepEqual(added.metadata?.finalizers, ['example.com/theirs', 'crowsnest.dev/cleanup']);
    assert.deepEqual(requests, [`PATCH ${path}`, `GET ${path}`, `PATCH ${path}`], 'a conflict, a fresh read, a retry');

    requests.length = 0;
    await addFinalizer(counted, type, added, 'crowsnest.dev/cleanup', { fieldManager: FIELD_MANAGERS.operator });
    assert.deepEqual(requests, [], 'adding it again sends nothing');

    assert.equal((await plane.request('DELETE', path)).status, 200);
    const deleting = JSON.parse((await plane.request('GET', path)).body) as KubeObject;
    assert.ok(deleting.metadata?.deletionTimestamp, 'held by the finalizers');
    await removeFinalizer(client, type, deleting, 'crowsnest.dev/cleanup', { fieldManager: FIELD_MANAGERS.operator });
    const remaining = JSON.parse((await plane.request('GET', path)).body) as KubeObject;
    assert.deepEqual(remaining.metadata?.finalizers, ['example.com/theirs']);
    const gone = await plane.request('PATCH', path, { metadata: { finalizers: null } }, { 'content-type': 'application/merge-patch+json' });
    assert.equal(gone.status, 200);
    assert.equal((await plane.request('GET', path)).status, 404);
    assert.equal(await removeFinalizer(client, type, remaining, 'crowsnest.dev/cleanup', { fieldManager: FIELD_MANAGERS.operator }), remaining, 'nothing to remove: no request, no error');
  });
});

describe('dry runs on a real API server', () => {
  it('create, apply, delete and finalizers with dryRun persist nothing', async (t) => {
    const client = await adminClient(t);
    const plane = await testbed();
    const namespace = await newNamespace('dry-run');
    const dry = { fieldManager: manager, dryRun: true } as const;
    const made = await createObject(client, Resources.configMaps, desired(namespace, 'dry'), dry);
    assert.equal(made.metadata?.name, 'dry');
    assert.equal((await plane.request('GET', `/api/v1/namespaces/${namespace}/configmaps/dry`)).status, 404);
    await serverSideApply(client, Resources.configMaps, desired(namespace, 'dry'), dry);
    assert.equal((await plane.request('GET', `/api/v1/namespaces/${namespace}/configmaps/dry`)).status, 404);

    const real = await createObject(client, Resources.configMaps, desired(namespace, 'real'), { fieldManager: manager });
    await addFinalizer(client, Resources.configMaps, real, 'crowsnest.dev/test', dry);
    assert.equal((await read(namespace, 'real')).metadata?.finalizers, undefined);
    assert.equal(await deleteObject(client, Resources.configMaps, { namespace, name: 'real', uid: real.metadata!.uid! }, { dryRun: true }), true);
    assert.equal((await plane.request('GET', `/api/v1/namespaces/${namespace}/configmaps/real`)).status, 200);
  });
});
