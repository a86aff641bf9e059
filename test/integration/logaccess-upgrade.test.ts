/**
 * Upgrading from a version that wrote every object as field manager `crowsnest`: the logaccess
 * controller takes over such a Role under its own manager (`crowsnest-logaccess`), with no field
 * left owned by the old name — so a label the old version set and the new one does not is
 * removed, instead of staying forever — and no two managers owning the same fields.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Registry } from 'prom-client';
import { KubeClient } from '../../src/kube/client/client.ts';
import { EventRecorder } from '../../src/kube/objects/events.ts';
import { silentLogger } from '../../src/kube/logger-type.ts';
import { runLogAccess } from './logaccess-run.ts';
import { adminKubeConfig, eventually, newNamespace, testbed } from './testbed.ts';

interface Role {
  metadata: { labels?: Record<string, string>; managedFields?: Array<{ manager: string; operation: string }> };
  rules?: Array<{ resources?: string[]; resourceNames?: string[] }>;
}

describe('logaccess upgrade from the shared field manager', () => {
  it('takes over a Role applied as "crowsnest": the old-only label goes, only crowsnest-logaccess owns it', async () => {
    const plane = await testbed();
    const namespace = await newNamespace('logaccess-upgrade');
    await plane.waitForDefaultServiceAccount(namespace);
    const deployment = await plane.request('POST', `/apis/apps/v1/namespaces/${namespace}/deployments`, {
      apiVersion: 'apps/v1', kind: 'Deployment', metadata: { name: 'web' },
      spec: { replicas: 1, selector: { matchLabels: { app: 'web' } }, template: { metadata: { labels: { app: 'web', 'podlogreader-affiliate': 'enable' } }, spec: { containers: [{ name: 'app', image: 'registry.invalid/app:1' }] } } },
    });
    assert.equal(deployment.status, 201, deployment.body);
    const uid = (JSON.parse(deployment.body) as { metadata: { uid: string } }).metadata.uid;

    // The Role as the previous version left it: created, then applied, as "crowsnest", with a
    // label the current version does not set and a pod that no longer exists.
    const rolePath = `/apis/rbac.authorization.k8s.io/v1/namespaces/${namespace}/roles`;
    const legacy = {
      apiVersion: 'rbac.authorization.k8s.io/v1', kind: 'Role',
      metadata: {
        name: 'podlogreader-web',
        labels: { 'app.kubernetes.io/managed-by': 'crowsnest', 'app.kubernetes.io/part-of': 'crowsnest', 'logaccess.crowsnest.dev/workload-kind': 'Deployment', 'logaccess.crowsnest.dev/legacy': 'yes' },
        ownerReferences: [{ apiVersion: 'apps/v1', kind: 'Deployment', name: 'web', uid, controller: true, blockOwnerDeletion: false }],
      },
      rules: [{ apiGroups: [''], resources: ['pods/log'], verbs: ['get', 'list', 'watch'], resourceNames: ['web-gone'] }],
    };
    assert.equal((await plane.request('POST', `${rolePath}?fieldManager=crowsnest`, legacy)).status, 201);
    assert.equal((await plane.request('PATCH', `${rolePath}/podlogreader-web?fieldManager=crowsnest&force=true`, legacy, { 'content-type': 'application/apply-patch+yaml' })).status, 200);

    const client = new KubeClient(await adminKubeConfig());
    const recorder = new EventRecorder({ client, reportingInstance: 'test' });
    const abort = new AbortController();
    const running = runLogAccess(
      { client, logger: silentLogger, registry: new Registry(), recorder, workers: 2 },
      { namePrefix: 'podlogreader-', allowPodList: true, createServiceAccountAndRoleBinding: false, adoptPodlogreader: true },
      abort.signal,
    );
    try {
      const read = async (): Promise<Role> => JSON.parse((await plane.request('GET', `${rolePath}/podlogreader-web`)).body) as Role;
      await eventually('the Role to name the current pod', async () => {
        const names = (await read()).rules?.find((r) => r.resources?.includes('pods/log'))?.resourceNames ?? [];
        return names.length === 1 && names[0] !== 'web-gone';
      }, 30_000);
      const role = await read();
      assert.equal(role.metadata.labels?.['logaccess.crowsnest.dev/legacy'], undefined, 'the label only the old version set is gone');
      assert.equal(role.metadata.labels?.['app.kubernetes.io/managed-by'], 'crowsnest');
      assert.deepEqual(role.metadata.managedFields?.map((m) => [m.manager, m.operation]), [['crowsnest-logaccess', 'Apply']]);
    } finally {
      abort.abort();
      await running;
      await recorder.flush();
      await client.close();
    }
  });
});
