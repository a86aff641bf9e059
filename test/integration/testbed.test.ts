/**
 * The testbed is a real cluster: RBAC is enforced, ServiceAccount tokens are issued by
 * TokenRequest, and kwok nodes run what the scheduler places on them.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { asToken, eventually, newNamespace, serviceAccountToken, testbed } from './testbed.ts';

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

  it('shows its kwok nodes Ready and runs the pods of a Deployment created with kubectl', async () => {
    const plane = await testbed();
    const namespace = await newNamespace('deploy');
    const nodes = JSON.parse(await plane.kubectl(['get', 'nodes', '-o', 'json'])) as { items: Array<{ status: { conditions: Array<{ type: string; status: string }> } }> };
    assert.equal(nodes.items.length, 3);
    for (const node of nodes.items) assert.ok(node.status.conditions.some((c) => c.type === 'Ready' && c.status === 'True'));

    await plane.waitForDefaultServiceAccount(namespace);
    await plane.kubectl(['-n', namespace, 'create', 'deployment', 'web', '--image=nginx', '--replicas=3']);
    await eventually('3 pods Running on kwok nodes', async () => {
      const pods = JSON.parse(await plane.kubectl(['-n', namespace, 'get', 'pods', '-o', 'json'])) as { items: Array<{ spec: { nodeName?: string }; status: { phase?: string } }> };
      return pods.items.length === 3 && pods.items.every((p) => p.status.phase === 'Running' && p.spec.nodeName?.startsWith('kwok-node-'));
    }, 60_000);
  });
});
