/**
 * Writes through the runtime against a real apiserver: server-side apply as field manager
 * `crowsnest` (idempotent, owner references honoured by the garbage collector), guarded deletes,
 * and the Event recorder's series aggregation.
 */
import assert from 'node:assert/strict';
import type { KubernetesObject } from '@kubernetes/client-node';
import { describe, it } from 'node:test';
import { applyObject, deleteIfManaged, ownerReference, withManagedLabels } from '../../src/kube/apply.ts';
import { KubeClient } from '../../src/kube/client.ts';
import { EventRecorder } from '../../src/kube/events.ts';
import { FIELD_MANAGER } from '../../src/kube/labels.ts';
import { adminKubeConfig, eventually, newNamespace, testbed } from './testbed.ts';

interface ConfigMap extends KubernetesObject {
  data?: Record<string, string>;
}

describe('apply and events on a real apiserver', () => {
  it('applies as field manager crowsnest; re-applying the same content writes nothing', async () => {
    const kc = await adminKubeConfig();
    const namespace = await newNamespace('apply');
    const desired: ConfigMap = withManagedLabels({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'settings', namespace }, data: { a: '1' } });
    const first = await applyObject(kc, desired);
    const second = await applyObject(kc, desired);
    assert.equal(second.metadata?.resourceVersion, first.metadata?.resourceVersion, 'a no-op apply does not bump resourceVersion');
    assert.equal(first.metadata?.labels?.['app.kubernetes.io/managed-by'], 'crowsnest');

    const plane = await testbed();
    const raw = JSON.parse((await plane.request('GET', `/api/v1/namespaces/${namespace}/configmaps/settings?showManagedFields=true`)).body) as { metadata: { managedFields: Array<{ manager: string; operation: string }> } };
    assert.ok(raw.metadata.managedFields.some((f) => f.manager === FIELD_MANAGER && f.operation === 'Apply'));
  });

  it('owner references let the garbage collector delete what we created when the owner goes', async () => {
    const kc = await adminKubeConfig();
    const plane = await testbed();
    const namespace = await newNamespace('owner');
    const owner = await applyObject<ConfigMap>(kc, { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'owner', namespace } });
    await applyObject<ConfigMap>(kc, withManagedLabels({
      apiVersion: 'v1', kind: 'ConfigMap',
      metadata: { name: 'child', namespace, ownerReferences: [ownerReference({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'owner', uid: owner.metadata!.uid! } })] },
    }));
    assert.equal((await plane.request('DELETE', `/api/v1/namespaces/${namespace}/configmaps/owner`)).status, 200);
    await eventually('the garbage collector removes the child', async () => (await plane.request('GET', `/api/v1/namespaces/${namespace}/configmaps/child`)).status === 404, 60_000);
  });

  it('never deletes an object it does not manage, nor one replaced under the same name', async () => {
    const kc = await adminKubeConfig();
    const plane = await testbed();
    const namespace = await newNamespace('guarded-delete');
    const theirs = await applyObject<ConfigMap>(kc, { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'theirs', namespace } });
    assert.equal(await deleteIfManaged(kc, theirs), 'not-managed');
    assert.equal((await plane.request('GET', `/api/v1/namespaces/${namespace}/configmaps/theirs`)).status, 200);

    const ours = await applyObject<ConfigMap>(kc, withManagedLabels({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'ours', namespace } }));
    // Someone deletes and recreates it: our stale copy carries the old uid.
    await plane.request('DELETE', `/api/v1/namespaces/${namespace}/configmaps/ours`);
    await applyObject<ConfigMap>(kc, withManagedLabels({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'ours', namespace } }));
    assert.equal(await deleteIfManaged(kc, ours), 'precondition-failed');
    assert.equal((await plane.request('GET', `/api/v1/namespaces/${namespace}/configmaps/ours`)).status, 200);
  });

  it('records Events about an object and folds repeats into one Event series', async (t) => {
    const kc = await adminKubeConfig();
    const plane = await testbed();
    const namespace = await newNamespace('events');
    const cm = await applyObject<ConfigMap>(kc, { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'subject', namespace } });
    const client = new KubeClient(kc);
    t.after(() => client.close());
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
