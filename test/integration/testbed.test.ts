/**
 * The testbed is a real cluster: RBAC is enforced, ServiceAccount tokens are issued by
 * TokenRequest, and kwok nodes run what the scheduler places on them (pods that opt in: the kwok
 * nodes are tainted; realnodes.test.ts covers the real nodes). A test can stand in for
 * the kubelet of a kwok node: serve a container's log and end its pod with an exit code.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { asToken, eventually, finishPod, newNamespace, ON_KWOK_NODES, serveContainerLogs, serviceAccountToken, testbed } from './testbed.ts';

describe('testbed control plane', () => {
  it('issues a ServiceAccount token through TokenRequest that authenticates as that ServiceAccount', async () => {
    const namespace = await newNamespace('tokenrequest');
    const token = await serviceAccountToken(namespace, 'reader');
    assert.match(token, /^[\w-]+\.[\w-]+\.[\w-]+$/, 'a signed JWT');
    const plane = await testbed();
    const tokenReview = await plane.request('POST', '/apis/authentication.k8s.io/v1/tokenreviews', {
      apiVersion: 'authentication.k8s.io/v1',
      kind: 'TokenReview',
      spec: { token },
    });
    const status = (JSON.parse(tokenReview.body) as { status: { authenticated: boolean; user: { username: string } } }).status;
    assert.equal(status.authenticated, true);
    assert.equal(status.user.username, `system:serviceaccount:${namespace}:reader`);
  });

  it('enforces RBAC: a token without permissions gets 403 until a RoleBinding grants the verb', async () => {
    const plane = await testbed();
    const namespace = await newNamespace('rbac');
    const token = await serviceAccountToken(namespace, 'nobody');

    const denied = await asToken(token, 'GET', `/api/v1/namespaces/${namespace}/pods`);
    assert.equal(denied.status, 403, denied.body);
    const message = (JSON.parse(denied.body) as { message: string }).message;
    assert.match(message, new RegExp(`User "system:serviceaccount:${namespace}:nobody" cannot list resource "pods"`), 'authenticated, then denied');

    const role = await plane.request('POST', `/apis/rbac.authorization.k8s.io/v1/namespaces/${namespace}/roles`, {
      metadata: { name: 'pod-lister' },
      rules: [{ apiGroups: [''], resources: ['pods'], verbs: ['list'] }],
    });
    assert.equal(role.status, 201, role.body);
    const binding = await plane.request('POST', `/apis/rbac.authorization.k8s.io/v1/namespaces/${namespace}/rolebindings`, {
      metadata: { name: 'pod-lister' },
      roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name: 'pod-lister' },
      subjects: [{ kind: 'ServiceAccount', name: 'nobody', namespace }],
    });
    assert.equal(binding.status, 201, binding.body);
    await eventually('the RoleBinding takes effect', async () => (await asToken(token, 'GET', `/api/v1/namespaces/${namespace}/pods`)).status === 200, 10_000);
    assert.equal((await asToken(token, 'GET', `/api/v1/namespaces/${namespace}/secrets`)).status, 403, 'still no secrets');
  });

  it('shows its kwok nodes Ready and tainted, and runs there the pods of a Deployment that opts into kwok', async () => {
    const plane = await testbed();
    const namespace = await newNamespace('deploy');
    const nodes = JSON.parse(await plane.kubectl(['get', 'nodes', '-l', 'type=kwok', '-o', 'json'])) as { items: Array<{ spec: { taints?: unknown[] }; status: { conditions: Array<{ type: string; status: string }> } }> };
    assert.equal(nodes.items.length, 3);
    for (const node of nodes.items) {
      assert.ok(node.status.conditions.some((c) => c.type === 'Ready' && c.status === 'True'));
      assert.deepEqual(node.spec.taints, [{ key: 'kwok.x-k8s.io/node', value: 'fake', effect: 'NoSchedule' }]);
    }

    await plane.waitForDefaultServiceAccount(namespace);
    await plane.kubectl(['-n', namespace, 'apply', '-f', '-'], {
      input: JSON.stringify({
        apiVersion: 'apps/v1', kind: 'Deployment', metadata: { name: 'web' },
        spec: { replicas: 3, selector: { matchLabels: { app: 'web' } }, template: { metadata: { labels: { app: 'web' } }, spec: { ...ON_KWOK_NODES, containers: [{ name: 'c', image: 'nginx' }] } } },
      }),
    });
    await eventually('3 pods Running on kwok nodes', async () => {
      const pods = JSON.parse(await plane.kubectl(['-n', namespace, 'get', 'pods', '-o', 'json'])) as { items: Array<{ spec: { nodeName?: string }; status: { phase?: string } }> };
      return pods.items.length === 3 && pods.items.every((p) => p.status.phase === 'Running' && p.spec.nodeName?.startsWith('kwok-node-'));
    }, 60_000);
  });
});

interface Pod {
  spec: { nodeName?: string };
  status: {
    phase?: string;
    conditions?: Array<{ type: string; status: string; reason?: string }>;
    containerStatuses?: Array<{ name: string; ready: boolean; state: { running?: unknown; terminated?: { exitCode: number; reason?: string; startedAt?: string; finishedAt?: string } } }>;
  };
}

describe('testbed pods whose work the test does (serveContainerLogs, finishPod)', () => {
  /**
   * A namespace with a ServiceAccount that may do what the ports collector does with its pods
   * (create, read, read the log of, delete), and a token for it: logs and status are read as
   * that ordinary client, not as admin.
   */
  async function collectorNamespace(prefix: string): Promise<{ namespace: string; token: string }> {
    const plane = await testbed();
    const namespace = await newNamespace(prefix);
    await plane.waitForDefaultServiceAccount(namespace);
    const token = await serviceAccountToken(namespace, 'collector');
    const role = await plane.request('POST', `/apis/rbac.authorization.k8s.io/v1/namespaces/${namespace}/roles`, {
      metadata: { name: 'collector' },
      rules: [
        { apiGroups: [''], resources: ['pods'], verbs: ['create', 'get', 'list', 'watch', 'delete'] },
        { apiGroups: [''], resources: ['pods/log'], verbs: ['get'] },
      ],
    });
    assert.equal(role.status, 201, role.body);
    const binding = await plane.request('POST', `/apis/rbac.authorization.k8s.io/v1/namespaces/${namespace}/rolebindings`, {
      metadata: { name: 'collector' },
      roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name: 'collector' },
      subjects: [{ kind: 'ServiceAccount', name: 'collector', namespace }],
    });
    assert.equal(binding.status, 201, binding.body);
    await eventually('the collector RoleBinding takes effect', async () => (await asToken(token, 'GET', `/api/v1/namespaces/${namespace}/pods`)).status === 200, 10_000);
    return { namespace, token };
  }

  /** A pod like the ones `crowsnest ports collect` creates: one per node, bound to it, never restarted. */
  async function createScanPod(token: string, namespace: string, name: string, nodeName: string): Promise<void> {
    const res = await asToken(token, 'POST', `/api/v1/namespaces/${namespace}/pods`, {
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: { name, labels: { app: 'crowsnest-ports-scan' } },
      spec: {
        nodeName,
        restartPolicy: 'Never',
        hostPID: true,
        containers: [{ name: 'scan', image: 'crowsnest:test', command: ['crowsnest', 'ports', 'scan', '--output', 'json'] }],
      },
    });
    assert.equal(res.status, 201, res.body);
    await eventually(`pod ${name} Running on ${nodeName}`, async () => (await getPod(token, namespace, name)).status.phase === 'Running');
  }

  async function getPod(token: string, namespace: string, name: string): Promise<Pod> {
    const res = await asToken(token, 'GET', `/api/v1/namespaces/${namespace}/pods/${name}`);
    assert.equal(res.status, 200, res.body);
    return JSON.parse(res.body) as Pod;
  }

  it('serves the log the test wrote through apiserver → kwok, and ends the pod Succeeded with exit code 0 until it is deleted', async () => {
    const plane = await testbed();
    const { namespace, token } = await collectorNamespace('scanpod-ok');
    await createScanPod(token, namespace, 'scan-kwok-node-1', 'kwok-node-1');
    const running = await getPod(token, namespace, 'scan-kwok-node-1');
    assert.equal(running.status.containerStatuses?.[0]?.ready, true);

    const text = `${JSON.stringify({ node: 'kwok-node-1', listeners: [{ protocol: 'tcp', address: '0.0.0.0', port: 22, process: 'sshd' }] })}\n`;
    await serveContainerLogs(plane, { namespace, pod: 'scan-kwok-node-1', container: 'scan', text });
    await finishPod(plane, { namespace, pod: 'scan-kwok-node-1', exitCode: 0 });

    // The collector's order: wait for the pod to terminate, then read its log, then delete it.
    const pod = await getPod(token, namespace, 'scan-kwok-node-1');
    assert.equal(pod.status.phase, 'Succeeded');
    assert.equal(pod.spec.nodeName, 'kwok-node-1');
    const status = pod.status.containerStatuses?.[0];
    assert.equal(status?.name, 'scan');
    assert.equal(status?.ready, false);
    assert.equal(status?.state.running, undefined);
    assert.deepEqual({ exitCode: status?.state.terminated?.exitCode, reason: status?.state.terminated?.reason }, { exitCode: 0, reason: 'Completed' });
    assert.ok(status?.state.terminated?.startedAt && status.state.terminated.finishedAt, 'startedAt and finishedAt set');
    const ready = pod.status.conditions?.find((c) => c.type === 'Ready');
    assert.deepEqual({ status: ready?.status, reason: ready?.reason }, { status: 'False', reason: 'PodCompleted' });

    const log = await asToken(token, 'GET', `/api/v1/namespaces/${namespace}/pods/scan-kwok-node-1/log?container=scan`);
    assert.equal(log.status, 200, log.body);
    assert.equal(log.body, text, 'the exact text, no timestamps or stream prefixes');
    assert.deepEqual(JSON.parse(log.body.trim()), { node: 'kwok-node-1', listeners: [{ protocol: 'tcp', address: '0.0.0.0', port: 22, process: 'sshd' }] });

    // kwok has seen the update by now (it watches pods); it must not start the pod again.
    await new Promise((r) => setTimeout(r, 1_000));
    assert.equal((await getPod(token, namespace, 'scan-kwok-node-1')).status.phase, 'Succeeded', 'still Succeeded a second later');

    const deleted = await asToken(token, 'DELETE', `/api/v1/namespaces/${namespace}/pods/scan-kwok-node-1`);
    assert.equal(deleted.status, 200, deleted.body);
    await eventually('the finished pod is gone', async () => (await asToken(token, 'GET', `/api/v1/namespaces/${namespace}/pods/scan-kwok-node-1`)).status === 404, 10_000);
  });

  it('ends a pod Failed with exit code 1, and serves a log served after the pod terminated', async () => {
    const plane = await testbed();
    const { namespace, token } = await collectorNamespace('scanpod-fail');
    await createScanPod(token, namespace, 'scan-kwok-node-2', 'kwok-node-2');

    await finishPod(plane, { namespace, pod: 'scan-kwok-node-2', exitCode: 1 });
    const pod = await getPod(token, namespace, 'scan-kwok-node-2');
    assert.equal(pod.status.phase, 'Failed');
    const terminated = pod.status.containerStatuses?.[0]?.state.terminated;
    assert.deepEqual({ exitCode: terminated?.exitCode, reason: terminated?.reason }, { exitCode: 1, reason: 'Error' });
    assert.equal(pod.status.conditions?.find((c) => c.type === 'Ready')?.status, 'False');

    // Several lines, the last without a newline: served as written.
    const text = 'scan: reading /proc/net/tcp: permission denied\n\n{"error":"permission denied"}';
    await serveContainerLogs(plane, { namespace, pod: 'scan-kwok-node-2', container: 'scan', text });
    const log = await asToken(token, 'GET', `/api/v1/namespaces/${namespace}/pods/scan-kwok-node-2/log?container=scan`);
    assert.equal(log.status, 200, log.body);
    assert.equal(log.body, text);
    const tail = await asToken(token, 'GET', `/api/v1/namespaces/${namespace}/pods/scan-kwok-node-2/log?container=scan&tailLines=1`);
    assert.equal(tail.body, '{"error":"permission denied"}', 'tailLines counts the lines as written');

    // Serving again replaces the text.
    await serveContainerLogs(plane, { namespace, pod: 'scan-kwok-node-2', container: 'scan', text: 'second\n' });
    assert.equal((await asToken(token, 'GET', `/api/v1/namespaces/${namespace}/pods/scan-kwok-node-2/log?container=scan`)).body, 'second\n');
    assert.equal((await getPod(token, namespace, 'scan-kwok-node-2')).status.phase, 'Failed');
  });
});
