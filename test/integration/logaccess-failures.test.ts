/**
 * logaccess when the API refuses its writes: the controller retries with backoff, the Role keeps
 * its last good content (never a wider one), and it converges once writes work again. The
 * failure is real: the controller runs with a ServiceAccount token whose ClusterRole lacks
 * `patch` on Roles, so the apiserver answers its updates with 403.
 */
import assert from 'node:assert/strict';
import { KubeConfig } from '@kubernetes/client-node';
import { readFile } from 'node:fs/promises';
import { Registry } from 'prom-client';
import { after, describe, it } from 'node:test';
import { KubeClient } from '../../src/kube/client/client.ts';
import { EventRecorder } from '../../src/kube/objects/events.ts';
import { silentLogger } from '../../src/kube/logger-type.ts';
import { runLogAccess } from './logaccess-run.ts';
import { DEFAULT_LOGACCESS_OPTIONS } from '../../src/logaccess/desired.ts';
import { metricValue } from '../helpers/metrics.ts';
import { adminKubeConfig, eventually, newNamespace, ON_KWOK_NODES, requestToken, testbed } from './testbed.ts';

interface Rule { resources: string[]; resourceNames?: string[] }

const stops: Array<() => Promise<void>> = [];

/** Runs the logaccess controller in this process with default options until `stop()`. */
function startInProcess(kc: KubeConfig): { registry: Registry; stop: () => Promise<void> } {
  const registry = new Registry();
  const client = new KubeClient(kc);
  const controller = new AbortController();
  const done = runLogAccess(
    { client, logger: silentLogger, registry, recorder: new EventRecorder({ client, reportingInstance: 'test' }), workers: 2 },
    DEFAULT_LOGACCESS_OPTIONS,
    controller.signal,
  );
  return {
    registry,
    stop: async () => {
      controller.abort();
      await done;
      await client.close();
    },
  };
}

function rulesFor(allowPatch: boolean): unknown[] {
  return [
    { apiGroups: [''], resources: ['pods'], verbs: ['list', 'watch'] },
    { apiGroups: [''], resources: ['pods/log'], verbs: ['get', 'list', 'watch'] },
    { apiGroups: ['apps'], resources: ['deployments', 'replicasets', 'statefulsets', 'daemonsets'], verbs: ['list', 'watch'] },
    { apiGroups: ['batch'], resources: ['jobs', 'cronjobs'], verbs: ['list', 'watch'] },
    { apiGroups: ['rbac.authorization.k8s.io'], resources: ['roles'], verbs: ['get', 'list', 'watch', 'create', 'delete', ...(allowPatch ? ['patch'] : [])] },
    { apiGroups: ['rbac.authorization.k8s.io'], resources: ['rolebindings'], verbs: ['list', 'watch', 'delete'] },
    { apiGroups: [''], resources: ['serviceaccounts'], verbs: ['list', 'watch', 'delete'] },
    { apiGroups: ['events.k8s.io'], resources: ['events'], verbs: ['create', 'patch'] },
  ];
}

describe('logaccess when writes fail', () => {
  // Inside the describe: a top-level after() runs only when the whole test process ends, and a
  // controller left running that long would fight the controllers of later test files.
  after(async () => {
    for (const stop of stops.splice(0)) await stop();
  });

  it('keeps the last good Role while updates are refused, retries with backoff, and converges once they work', async () => {
    const plane = await testbed();
    const namespace = await newNamespace('la-fail');
    const clusterRole = `logaccess-limited-${namespace}`;
    const put = async (allowPatch: boolean): Promise<void> => {
      const body = { apiVersion: 'rbac.authorization.k8s.io/v1', kind: 'ClusterRole', metadata: { name: clusterRole }, rules: rulesFor(allowPatch) };
      const res = await plane.request('PATCH', `/apis/rbac.authorization.k8s.io/v1/clusterroles/${clusterRole}?fieldManager=test&force=true`, body, { 'content-type': 'application/apply-patch+yaml' });
      assert.equal(res.status === 200 || res.status === 201, true, res.body);
    };
    await put(true);
    assert.equal((await plane.request('POST', `/api/v1/namespaces/${namespace}/serviceaccounts`, { metadata: { name: 'limited' } })).status, 201);
    const binding = await plane.request('POST', '/apis/rbac.authorization.k8s.io/v1/clusterrolebindings', {
      metadata: { name: clusterRole },
      roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: clusterRole },
      subjects: [{ kind: 'ServiceAccount', name: 'limited', namespace }],
    });
    assert.equal(binding.status, 201, binding.body);

    const kc = new KubeConfig();
    kc.loadFromOptions({
      clusters: [{ name: 'testbed', server: plane.server, caData: (await readFile(plane.pki.caCert)).toString('base64') }],
      users: [{ name: 'limited', token: await requestToken(namespace, 'limited', 3600) }],
      contexts: [{ name: 'limited', cluster: 'testbed', user: 'limited' }],
      currentContext: 'limited',
    });
    const { registry, stop } = startInProcess(kc);
    stops.push(async () => {
      await stop();
      await plane.request('DELETE', `/apis/rbac.authorization.k8s.io/v1/clusterrolebindings/${clusterRole}`);
      await plane.request('DELETE', `/apis/rbac.authorization.k8s.io/v1/clusterroles/${clusterRole}`);
    });

    await plane.waitForDefaultServiceAccount(namespace);
    await plane.kubectl(['-n', namespace, 'apply', '-f', '-'], {
      input: JSON.stringify({
        apiVersion: 'apps/v1', kind: 'Deployment', metadata: { name: 'web' },
        spec: { replicas: 2, selector: { matchLabels: { app: 'web' } }, template: { metadata: { labels: { app: 'web', 'podlogreader-affiliate': 'enable' } }, spec: { ...ON_KWOK_NODES, containers: [{ name: 'c', image: 'nginx' }] } } },
      }),
    });
    const podNames = async (): Promise<string[]> =>
      (JSON.parse((await plane.request('GET', `/api/v1/namespaces/${namespace}/pods?labelSelector=app%3Dweb`)).body) as { items: Array<{ metadata: { name: string } }> }).items.map((p) => p.metadata.name).sort();
    const logRule = async (): Promise<Rule | undefined> => {
      const res = await plane.request('GET', `/apis/rbac.authorization.k8s.io/v1/namespaces/${namespace}/roles/podlogreader-web`);
      if (res.status !== 200) return undefined;
      return (JSON.parse(res.body) as { rules?: Rule[] }).rules?.find((r) => r.resources.includes('pods/log'));
    };

    await eventually('the Role names both pods', async () => {
      const pods = await podNames();
      return pods.length === 2 && JSON.stringify((await logRule())?.resourceNames) === JSON.stringify(pods);
    }, 30_000);
    const lastGood = (await logRule())!.resourceNames!;

    // Updates are refused from now on: the new pods are not added, and the Role never loses its
    // resourceNames. (The RBAC authorizer sees the ClusterRole change within milliseconds.)
    await put(false);
    const errorsBefore = (await metricValue(registry, 'crowsnest_reconcile_total', { controller: 'logaccess', result: 'error' })) ?? 0;
    await plane.kubectl(['-n', namespace, 'scale', 'deployment/web', '--replicas=4']);
    await eventually('4 pods exist', async () => (await podNames()).length === 4, 30_000);
    await eventually('the controller has failed and retried', async () => ((await metricValue(registry, 'crowsnest_reconcile_total', { controller: 'logaccess', result: 'error' })) ?? 0) >= errorsBefore + 2, 30_000);
    const during = await logRule();
    assert.deepEqual(during?.resourceNames, lastGood, 'the last good Role stays while writes fail');

    // Writes work again: the retry (with backoff) brings the Role up to date.
    await put(true);
    await eventually('the Role names all 4 pods', async () => {
      const pods = await podNames();
      return pods.length === 4 && JSON.stringify((await logRule())?.resourceNames) === JSON.stringify(pods);
    }, 60_000);
  });
});

describe('logaccess when two workloads want the same Role name', () => {
  const running: Array<() => Promise<void>> = [];
  after(async () => {
    for (const stop of running.splice(0)) await stop();
  });

  it('the first keeps its Role, the second gets a Warning Event, and nobody takes turns', async () => {
    const plane = await testbed();
    const namespace = await newNamespace('la-clash');
    running.push(startInProcess(await adminKubeConfig()).stop);
    await plane.waitForDefaultServiceAccount(namespace);
    const template = { metadata: { labels: { app: 'web', 'podlogreader-affiliate': 'enable' } }, spec: { ...ON_KWOK_NODES, containers: [{ name: 'c', image: 'nginx' }] } };
    await plane.kubectl(['-n', namespace, 'apply', '-f', '-'], {
      input: JSON.stringify({ apiVersion: 'apps/v1', kind: 'Deployment', metadata: { name: 'web' }, spec: { replicas: 1, selector: { matchLabels: { app: 'web' } }, template } }),
    });
    const role = async (): Promise<{ resourceVersion: string; owner: string } | undefined> => {
      const res = await plane.request('GET', `/apis/rbac.authorization.k8s.io/v1/namespaces/${namespace}/roles/podlogreader-web`);
      if (res.status !== 200) return undefined;
      const obj = JSON.parse(res.body) as { metadata: { resourceVersion: string; ownerReferences: Array<{ kind: string }> } };
      return { resourceVersion: obj.metadata.resourceVersion, owner: obj.metadata.ownerReferences[0]!.kind };
    };
    await eventually('the Deployment has its Role', async () => (await role())?.owner === 'Deployment', 30_000);

    await plane.kubectl(['-n', namespace, 'apply', '-f', '-'], {
      input: JSON.stringify({ apiVersion: 'apps/v1', kind: 'StatefulSet', metadata: { name: 'web' }, spec: { replicas: 1, serviceName: 'web', selector: { matchLabels: { app: 'web' } }, template } }),
    });
    await eventually('a Warning Event on the StatefulSet', async () => {
      const events = JSON.parse((await plane.request('GET', `/apis/events.k8s.io/v1/namespaces/${namespace}/events`)).body) as { items: Array<{ reason: string; type: string; regarding: { kind: string }; note: string }> };
      return events.items.some((e) => e.type === 'Warning' && e.reason === 'RoleExists' && e.regarding.kind === 'StatefulSet' && /kept by crowsnest for Deployment web/.test(e.note));
    }, 30_000);
    const settled = await role();
    // Both workloads' pods keep changing status for a while; a flapping Role would change owner
    // or resourceVersion within this window.
    await new Promise((r) => setTimeout(r, 3_000));
    assert.deepEqual(await role(), settled);
    assert.equal(settled?.owner, 'Deployment');
  });
});
