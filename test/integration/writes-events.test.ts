/**
 * The runtime's writes (`src/kube/objects/writes.ts`) against a real apiserver: server-side apply under a
 * capability's field manager (idempotent, owner references honoured by the garbage collector), deletes
 * guarded by uid and resourceVersion, and the Event recorder's series aggregation.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { KubeClient } from '../../src/kube/client/client.ts';
import { EventRecorder } from '../../src/kube/objects/events.ts';
import { FIELD_MANAGERS, managedLabels } from '../../src/kube/objects/labels.ts';
import { Resources, type KubeObject } from '../../src/kube/objects/resources.ts';
import { createObject as create, deleteObject, serverSideApply } from '../../src/kube/objects/writes.ts';
import { adminKubeConfig, eventually, newNamespace, testbed } from './testbed.ts';

interface ConfigMap extends KubeObject {
  apiVersion: 'v1';
  kind: 'ConfigMap';
  data?: Record<string, string>;
}

async function adminClient(t: { after(fn: () => Promise<void>): void }): Promise<KubeClient> {
  const client = new KubeClient(await adminKubeConfig());
  t.after(() => client.close());
  return client;
}

/** The field manager these tests write as. */
const FIELD_MANAGER = FIELD_MANAGERS.operator;
const createObject = (client: KubeClient, type: typeof Resources.configMaps, obj: ConfigMap) => create(client, type, obj, { fieldManager: FIELD_MANAGER });

const configMap = (namespace: string, name: string, extra: Partial<ConfigMap> = {}): ConfigMap => ({
  apiVersion: 'v1',
  kind: 'ConfigMap',
  ...extra,
  metadata: { name, namespace, ...extra.metadata },
});

describe('writes and events on a real apiserver', () => {
  it('applies as the capability\'s field manager; re-applying the same content writes nothing', async (t) => {
    const client = await adminClient(t);
    const namespace = await newNamespace('apply');
    const desired = configMap(namespace, 'settings', { metadata: { labels: managedLabels() }, data: { a: '1' } });
    const first = await serverSideApply(client, Resources.configMaps, desired, { fieldManager: FIELD_MANAGER });
    const second = await serverSideApply(client, Resources.configMaps, desired, { fieldManager: FIELD_MANAGER });
    assert.equal(second.metadata?.resourceVersion, first.metadata?.resourceVersion, 'a no-op apply does not bump resourceVersion');
    assert.equal(first.metadata?.labels?.['app.kubernetes.io/managed-by'], 'crowsnest');

    const plane = await testbed();
    const raw = JSON.parse((await plane.request('GET', `/api/v1/namespaces/${namespace}/configmaps/settings?showManagedFields=true`)).body) as { metadata: { managedFields: Array<{ manager: string; operation: string }> } };
    assert.ok(raw.metadata.managedFields.some((f) => f.manager === FIELD_MANAGER && f.operation === 'Apply'));
  });

  it('owner references let the garbage collector delete what we created when the owner goes', async (t) => {
    const client = await adminClient(t);
    const plane = await testbed();
    const namespace = await newNamespace('owner');
    const owner = await createObject(client, Resources.configMaps, configMap(namespace, 'owner'));
    await createObject(client, Resources.configMaps, configMap(namespace, 'child', {
      metadata: {
        labels: managedLabels(),
        ownerReferences: [{ apiVersion: 'v1', kind: 'ConfigMap', name: 'owner', uid: owner.metadata!.uid!, controller: true, blockOwnerDeletion: false }],
      },
    }));
    assert.equal((await plane.request('DELETE', `/api/v1/namespaces/${namespace}/configmaps/owner`)).status, 200);
    await eventually('the garbage collector removes the child', async () => (await plane.request('GET', `/api/v1/namespaces/${namespace}/configmaps/child`)).status === 404, 60_000);
  });

  it('never creates over an existing object, nor deletes one replaced under the same name or changed since it was seen', async (t) => {
    const client = await adminClient(t);
    const plane = await testbed();
    const namespace = await newNamespace('guarded-delete');
    const theirs = await createObject(client, Resources.configMaps, configMap(namespace, 'theirs', { data: { owner: 'someone else' } }));
    await assert.rejects(createObject(client, Resources.configMaps, configMap(namespace, 'theirs', { metadata: { labels: managedLabels() } })), { status: 409 });
    assert.deepEqual(JSON.parse((await plane.request('GET', `/api/v1/namespaces/${namespace}/configmaps/theirs`)).body).data, theirs.data);

    const ours = await createObject(client, Resources.configMaps, configMap(namespace, 'ours', { metadata: { labels: managedLabels() } }));
    const ref = (seen: ConfigMap) => ({ namespace, name: 'ours', uid: seen.metadata!.uid!, resourceVersion: seen.metadata!.resourceVersion! });
    // Someone deletes and recreates it: our stale copy carries the old uid.
    await plane.request('DELETE', `/api/v1/namespaces/${namespace}/configmaps/ours`);
    const recreated = await createObject(client, Resources.configMaps, configMap(namespace, 'ours', { metadata: { labels: managedLabels() } }));
    assert.equal(await deleteObject(client, Resources.configMaps, ref(ours)), false);
    // Same uid, but changed since we saw it: a stale resourceVersion.
    await plane.request('PATCH', `/api/v1/namespaces/${namespace}/configmaps/ours`, { data: { changed: 'yes' } }, { 'content-type': 'application/merge-patch+json' });
    assert.equal(await deleteObject(client, Resources.configMaps, ref(recreated)), false);
    assert.equal((await plane.request('GET', `/api/v1/namespaces/${namespace}/configmaps/ours`)).status, 200);

    const current = JSON.parse((await plane.request('GET', `/api/v1/namespaces/${namespace}/configmaps/ours`)).body) as ConfigMap;
    assert.equal(await deleteObject(client, Resources.configMaps, ref(current)), true);
    assert.equal((await plane.request('GET', `/api/v1/namespaces/${namespace}/configmaps/ours`)).status, 404);
  });

  it('records Events about an object and folds repeats into one Event series', async (t) => {
    const client = await adminClient(t);
    const plane = await testbed();
    const namespace = await newNamespace('events');
    const cm = await createObject(client, Resources.configMaps, configMap(namespace, 'subject'));
    const recorder = new EventRecorder({ client, reportingInstance: 'test-instance' });
    const regarding = { apiVersion: 'v1', kind: 'ConfigMap', namespace, name: 'subject', uid: cm.metadata!.uid! };
    recorder.event(regarding, 'Warning', 'ExampleConflict', 'Reconcile', 'a Role of that name is not managed by crowsnest');
    await recorder.flush();
    recorder.event(regarding, 'Warning', 'ExampleConflict', 'Reconcile', 'a Role of that name is not managed by crowsnest');
    recorder.event(regarding, 'Warning', 'ExampleConflict', 'Reconcile', 'a Role of that name is not managed by crowsnest');
    await recorder.flush();

    const events = JSON.parse((await plane.request('GET', `/apis/events.k8s.io/v1/namespaces/${namespace}/events`)).body) as {
      items: Array<{ reason: string; note: string; regarding: { uid: string }; reportingController: string; series?: { count: number } }>;
    };
    assert.equal(events.items.length, 1, 'one Event, not three');
    const event = events.items[0]!;
    assert.equal(event.reason, 'ExampleConflict');
    assert.equal(event.regarding.uid, cm.metadata!.uid);
    assert.equal(event.reportingController, 'crowsnest.dev/operator');
    assert.equal(event.series?.count, 3);
    // kubectl shows it on the object, which is where a user looks.
    assert.match(await plane.kubectl(['-n', namespace, 'describe', 'configmap', 'subject']), /ExampleConflict/);
  });
});
