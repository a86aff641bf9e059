/**
 * NetworkPolicy is enforced on the testbed's real nodes (kube-network-policies, testbed/netpol.ts):
 * real pods on both nodes, real connections between them (busybox nc → httpd), before, during
 * and after a policy. A blocked connection is one whose SYN is dropped: nc gives up after its
 * timeout. Every "blocked" is preceded and followed by the same connection working, so neither a
 * broken network nor a slow pod can pass for enforcement.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { ControlPlane } from '../../testbed/controlplane.ts';
import { NETPOL_METRICS_PORT } from '../../testbed/netpol.ts';
import { eventually, execInPod, httpServerCommand, newNamespace, runPod, testbed } from './testbed.ts';

const PORT = 8080;
const BODY = 'served behind a policy';
/** nc's timeout for one attempt: a dropped SYN fails after this. */
const CONNECT_TIMEOUT_SECONDS = 2;
/** How long a policy change may take to be enforced (the enforcers' informers see it in ms). */
const ENFORCED_WITHIN_MS = 30_000;

/**
 * True when `client` (namespace/name) gets the server's page from `ip`: an HTTP/1.0 GET through
 * busybox nc (the test image's wget crashes here, see realnodes.test.ts).
 */
async function reaches(plane: ControlPlane, namespace: string, client: string, ip: string): Promise<boolean> {
  const res = await execInPod(plane, namespace, client,
    ['sh', '-c', `printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w ${CONNECT_TIMEOUT_SECONDS} ${ip} ${PORT}`]);
  return /^HTTP\/1\.[01] 200 /.test(res.stdout) && res.stdout.endsWith(`\r\n\r\n${BODY}`);
}

async function create(plane: ControlPlane, namespace: string, policy: Record<string, unknown>): Promise<string> {
  const res = await plane.request('POST', `/apis/networking.k8s.io/v1/namespaces/${namespace}/networkpolicies`, policy);
  assert.equal(res.status, 201, res.body);
  return (policy['metadata'] as { name: string }).name;
}

async function remove(plane: ControlPlane, namespace: string, name: string): Promise<void> {
  const res = await plane.request('DELETE', `/apis/networking.k8s.io/v1/namespaces/${namespace}/networkpolicies/${name}`);
  assert.equal(res.status, 200, res.body);
}

describe('NetworkPolicy on the real nodes', () => {
  it('blocks ingress and egress that a policy denies, same node and across nodes, and only in its own namespace', { timeout: 300_000 }, async () => {
    const plane = await testbed();
    const namespace = await newNamespace('netpol');
    const other = await newNamespace('netpol-other');
    const image = plane.images['test']!;
    const sleeper = ['/bin/sh', '-c', 'exec sleep 3600'];
    const [server] = await Promise.all([
      runPod(plane, { namespace, name: 'server', node: 'crowsnest-real-0', image, command: httpServerCommand(PORT, BODY), labels: { role: 'server' } }),
      runPod(plane, { namespace, name: 'near', node: 'crowsnest-real-0', image, command: sleeper, labels: { role: 'client' } }),
      runPod(plane, { namespace, name: 'far', node: 'crowsnest-real-1', image, command: sleeper, labels: { role: 'client' } }),
      runPod(plane, { namespace: other, name: 'outsider', node: 'crowsnest-real-1', image, command: sleeper }),
    ]);
    const ip = server.status.podIP!;
    const clients = [['near', namespace], ['far', namespace]] as const;
    const allReach = async (): Promise<boolean> =>
      (await Promise.all(clients.map(([c, ns]) => reaches(plane, ns, c, ip)))).every(Boolean);
    const noneReach = async (): Promise<boolean> =>
      (await Promise.all(clients.map(([c, ns]) => reaches(plane, ns, c, ip)))).every((ok) => !ok);

    // Before any policy: the server answers a client on its node and one on the other node.
    assert.ok(await reaches(plane, namespace, 'near', ip), 'same-node client reaches the server');
    assert.ok(await reaches(plane, namespace, 'far', ip), 'other-node client reaches the server');
    assert.ok(await reaches(plane, other, 'outsider', ip), 'a pod of another namespace reaches the server');

    // Ingress deny-all on the server: no client gets through, from either node.
    const denyIngress = await create(plane, namespace, {
      metadata: { name: 'server-deny-ingress' },
      spec: { podSelector: { matchLabels: { role: 'server' } }, policyTypes: ['Ingress'] },
    });
    await eventually('both clients blocked by the server\'s ingress deny-all', noneReach, ENFORCED_WITHIN_MS);
    assert.equal(await reaches(plane, other, 'outsider', ip), false, 'nor a pod of another namespace');
    await remove(plane, namespace, denyIngress);
    await eventually('both clients reach the server again once the policy is deleted', allReach, ENFORCED_WITHIN_MS);

    // Egress deny-all on the far client: it is blocked, the near one (not selected) is not.
    const denyEgress = await create(plane, namespace, {
      metadata: { name: 'far-deny-egress' },
      spec: { podSelector: { matchLabels: { 'app': 'far' } }, policyTypes: ['Egress'] },
    });
    await eventually('the far client blocked by its egress deny-all', async () => !(await reaches(plane, namespace, 'far', ip)), ENFORCED_WITHIN_MS);
    assert.ok(await reaches(plane, namespace, 'near', ip), 'the client the egress policy does not select still reaches the server');
    await remove(plane, namespace, denyEgress);
    await eventually('the far client reaches the server again once the policy is deleted', () => reaches(plane, namespace, 'far', ip), ENFORCED_WITHIN_MS);

    // A deny-all (both directions, every pod) in another namespace: it is enforced there (its own
    // pod is cut off, which shows the enforcers have seen it), and changes nothing here.
    const denyAllOther = await create(plane, other, {
      metadata: { name: 'deny-all' },
      spec: { podSelector: {}, policyTypes: ['Ingress', 'Egress'] },
    });
    await eventually('the other namespace\'s pod blocked by its own namespace\'s deny-all', async () => !(await reaches(plane, other, 'outsider', ip)), ENFORCED_WITHIN_MS);
    assert.ok(await allReach(), 'a policy in another namespace changes nothing for this namespace\'s pods');
    await remove(plane, other, denyAllOther);

    // The verdicts were the enforcers': each node's counted drops (node 0 the same-node client's
    // connections, node 1 the far client's, judged as they left it).
    for (const node of plane.network!.nodes) {
      const res = await fetch(`http://${node.ip}:${NETPOL_METRICS_PORT}/metrics`, { signal: AbortSignal.timeout(5_000) });
      assert.equal(res.status, 200);
      const drops = [...(await res.text()).matchAll(/^kube_network_policies_packet_count\{[^}]*verdict="drop"[^}]*\} (\d+)$/gm)]
        .reduce((sum, m) => sum + Number(m[1]), 0);
      assert.ok(drops > 0, `${node.name}'s enforcer counted the packets it dropped`);
    }
    // Its pods would idle on the shared nodes for the rest of the run (timing-sensitive tests follow).
    for (const ns of [namespace, other]) await plane.request('DELETE', `/api/v1/namespaces/${ns}`);
  });
});
