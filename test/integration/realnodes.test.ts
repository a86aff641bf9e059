/**
 * The testbed's real nodes: pods run for real (kubelet + containerd + runc + CNI), Services work
 * from pods and from the host (kube-proxy), pods resolve cluster names and only those (CoreDNS),
 * pods reach the API server through the `kubernetes` Service, and no testbed address is routed
 * out of the machine. kwok nodes stay for scale, tainted: only pods that opt in land there.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { describe, it } from 'node:test';
import { KWOK_TAINT } from '../../testbed/controlplane.ts';
import { TESTBED_RANGES } from '../../testbed/network.ts';
import { execInPod as execPod, fetchFromHost, httpServerCommand, podLog, runPod, waitForPod } from '../../testbed/realpods.ts';
import { eventually, KWOK_NODE_SELECTOR, KWOK_TOLERATION, newNamespace, testbed } from './testbed.ts';

const run = promisify(execFile);

interface NodeItem {
  metadata: { name: string; labels?: Record<string, string> };
  spec: { podCIDR?: string; taints?: Array<{ key: string; value?: string; effect: string }> };
  status: { addresses?: Array<{ type: string; address: string }>; conditions?: Array<{ type: string; status: string }>; nodeInfo?: { kubeletVersion: string; containerRuntimeVersion: string } };
}

async function nodes(): Promise<NodeItem[]> {
  const plane = await testbed();
  return (JSON.parse((await plane.request('GET', '/api/v1/nodes')).body) as { items: NodeItem[] }).items;
}

// Each case has a namespace and pods of its own, or only reads: they run at once.
describe('real nodes', { concurrency: true }, () => {
  it('registers crowsnest-real-0 and -1 Ready, with node IPs and pod CIDRs in 198.18.0.0/16, next to tainted kwok nodes', async () => {
    const plane = await testbed();
    const all = await nodes();
    const real = all.filter((n) => n.metadata.name.startsWith('crowsnest-real-')).sort((a, b) => a.metadata.name.localeCompare(b.metadata.name));
    assert.deepEqual(real.map((n) => n.metadata.name), ['crowsnest-real-0', 'crowsnest-real-1']);
    const version = JSON.parse((await plane.request('GET', '/version')).body) as { gitVersion: string };
    for (const [i, node] of real.entries()) {
      assert.ok(node.status.conditions?.some((c) => c.type === 'Ready' && c.status === 'True'), `${node.metadata.name} Ready`);
      const ip = node.status.addresses?.find((a) => a.type === 'InternalIP')?.address;
      assert.equal(ip, plane.network!.nodes[i]!.ip);
      assert.match(ip!, /^198\.18\./);
      assert.equal(node.spec.podCIDR, plane.network!.nodes[i]!.podCidr);
      assert.equal(node.status.nodeInfo?.kubeletVersion, version.gitVersion, 'kubelet built from the control plane\'s module');
      assert.match(node.status.nodeInfo?.containerRuntimeVersion ?? '', /^containerd:\/\//);
      assert.equal(node.spec.taints, undefined, 'real nodes take ordinary pods');
    }
    const kwok = all.filter((n) => n.metadata.labels?.['type'] === 'kwok');
    assert.equal(kwok.length, 3);
    for (const node of kwok) assert.deepEqual(node.spec.taints?.map((t) => ({ key: t.key, value: t.value, effect: t.effect })), [KWOK_TAINT]);
  });

  it('runs an ordinary pod on a real node: its log through the API server, its IP reachable from the host', async () => {
    const plane = await testbed();
    const namespace = await newNamespace('realpod');
    await plane.waitForDefaultServiceAccount(namespace);
    const pod = await runPod(plane, {
      namespace, name: 'web', image: plane.images['test']!,
      command: ['/bin/sh', '-c', `echo "hello from $(hostname)"; ${httpServerCommand(8080, 'served by a real pod').slice(2).join(' ')}`],
    });
    assert.match(pod.spec.nodeName ?? '', /^crowsnest-real-[01]$/, 'scheduled on a real node without any toleration');
    assert.match(pod.status.podIP ?? '', /^198\.18\./);
    assert.equal(await podLog(plane, namespace, 'web'), 'hello from web\n');
    assert.deepEqual(await fetchFromHost(pod.status.podIP!, 8080), { status: 200, body: 'served by a real pod' });
  });

  it('puts a pod that tolerates the kwok taint and selects type=kwok on a kwok node', async () => {
    const plane = await testbed();
    const namespace = await newNamespace('kwokpod');
    await plane.waitForDefaultServiceAccount(namespace);
    const created = await plane.request('POST', `/api/v1/namespaces/${namespace}/pods`, {
      metadata: { name: 'fake' },
      spec: { tolerations: [KWOK_TOLERATION], nodeSelector: KWOK_NODE_SELECTOR, containers: [{ name: 'c', image: 'registry.invalid/never-pulled:1' }] },
    });
    assert.equal(created.status, 201, created.body);
    const pod = await waitForPod(plane, namespace, 'fake', (p) => p.status.phase === 'Running', 'Running on kwok');
    assert.match(pod.spec.nodeName ?? '', /^kwok-node-/);
  });

  it('connects pods across nodes through a Service, by ClusterIP from the host and by DNS name from a pod', async () => {
    const plane = await testbed();
    const namespace = await newNamespace('service');
    await plane.waitForDefaultServiceAccount(namespace);
    const server = await runPod(plane, { namespace, name: 'server', node: 'crowsnest-real-1', image: plane.images['test']!, command: httpServerCommand(8080, 'through the Service'), labels: { role: 'server' } });
    const service = await plane.request('POST', `/api/v1/namespaces/${namespace}/services`, {
      metadata: { name: 'web' },
      spec: { selector: { role: 'server' }, ports: [{ port: 80, targetPort: 8080 }] },
    });
    assert.equal(service.status, 201, service.body);
    const clusterIp = (JSON.parse(service.body) as { spec: { clusterIP: string } }).spec.clusterIP;
    assert.match(clusterIp, /^198\.19\./);

    // From the host: routed to node 0, whose kube-proxy sends it on to the pod on node 1.
    let answer = { status: 0, body: '' };
    await eventually('the ClusterIP answers from the host', async () => {
      answer = await fetchFromHost(clusterIp, 80).catch(() => ({ status: 0, body: '' }));
      return answer.status === 200;
    }, 30_000);
    assert.equal(answer.body, 'through the Service');

    // From a pod on the other node, by name (CoreDNS), then by the pod's own IP.
    const client = await runPod(plane, { namespace, name: 'client', node: 'crowsnest-real-0', image: plane.images['test']!, command: ['sleep', '3600'] });
    assert.equal(client.spec.nodeName, 'crowsnest-real-0');
    assert.equal(await httpGetInPod(namespace, 'client', `web.${namespace}.svc.cluster.local`, 80), 'through the Service');
    assert.equal(await httpGetInPod(namespace, 'client', 'web', 80), 'through the Service', 'the search path of the pod\'s namespace');
    assert.equal(await httpGetInPod(namespace, 'client', server.status.podIP!, 8080), 'through the Service');
  });

  it('answers cluster names only: a name outside the cluster is refused by cluster DNS, not forwarded', async () => {
    const plane = await testbed();
    const namespace = await newNamespace('dns');
    await plane.waitForDefaultServiceAccount(namespace);
    await runPod(plane, { namespace, name: 'client', image: plane.images['test']!, command: ['sleep', '3600'] });
    const resolvConf = await execInPod(namespace, 'client', ['cat', '/etc/resolv.conf']);
    assert.match(resolvConf, new RegExp(`^nameserver ${plane.network!.dnsServiceIp.replaceAll('.', '\\.')}$`, 'm'));
    assert.equal(resolvConf.match(/^nameserver /gm)?.length, 1, 'the cluster DNS is the only nameserver');
    const found = await execInPod(namespace, 'client', ['nslookup', 'kubernetes.default.svc.cluster.local']);
    assert.match(found, new RegExp(`Address:? *${plane.network!.kubernetesServiceIp.replaceAll('.', '\\.')}`));
    const refused = await execInPod(namespace, 'client', ['nslookup', 'example.com.'], { allowFailure: true });
    assert.match(refused, /REFUSED|can't find|NXDOMAIN/i);
    assert.doesNotMatch(refused, /Address:? *\d+\.\d+\.\d+\.\d+\s*$/m, 'no address for a name outside the cluster');
  });

  it('never pulls from outside: an image named on docker.io fails to resolve on the node (cluster DNS only, no route out)', async () => {
    const plane = await testbed();
    const namespace = await newNamespace('pull');
    await plane.waitForDefaultServiceAccount(namespace);
    const created = await plane.request('POST', `/api/v1/namespaces/${namespace}/pods`, {
      metadata: { name: 'outside' }, spec: { containers: [{ name: 'main', image: 'busybox:1.36' }] },
    });
    assert.equal(created.status, 201, created.body);
    const pod = await waitForPod(plane, namespace, 'outside', (p) => /ErrImagePull|ImagePullBackOff/.test(p.status.containerStatuses?.[0]?.state['waiting']?.reason ?? ''), 'failing to pull');
    const events = JSON.parse((await plane.request('GET', `/api/v1/namespaces/${namespace}/events?fieldSelector=involvedObject.name%3Doutside`)).body) as { items: Array<{ reason: string; message: string }> };
    const failed = events.items.find((e) => e.reason === 'Failed' && e.message.includes('docker.io'))?.message ?? JSON.stringify(pod.status);
    // The node's resolver is the cluster DNS, which refuses names outside the cluster.
    assert.match(failed, /registry-1\.docker\.io.*(no such host|server misbehaving|refused|unreachable)/);
  });

  it('reaches the API server from a pod through the kubernetes Service (an HTTPS server answers on its ClusterIP)', async () => {
    const plane = await testbed();
    const namespace = await newNamespace('apiserver');
    await plane.waitForDefaultServiceAccount(namespace);
    await runPod(plane, { namespace, name: 'client', image: plane.images['test']!, command: ['sleep', '3600'] });
    assert.equal(await execInPod(namespace, 'client', ['sh', '-c', 'echo "$KUBERNETES_SERVICE_HOST:$KUBERNETES_SERVICE_PORT"']), `${plane.network!.kubernetesServiceIp}:443\n`);
    // Plain HTTP to a Go TLS server gets this exact answer: the kube-apiserver behind the Service.
    const answer = await execInPod(namespace, 'client', ['sh', '-c', 'printf "GET /version HTTP/1.0\\r\\n\\r\\n" | nc -w 5 kubernetes.default.svc.cluster.local 443'], { allowFailure: true });
    assert.match(answer, /Client sent an HTTP request to an HTTPS server/);
  });

  it('routes no address of 198.18.0.0/16 or 198.19.0.0/16 out of the machine\'s own interfaces', async () => {
    const plane = await testbed();
    assert.deepEqual([...TESTBED_RANGES], ['198.18.0.0/16', '198.19.0.0/16']);
    const ownInterfaces = (await run('ip', ['-o', 'link', 'show'])).stdout.split('\n')
      .map((line) => /^\d+: ([^:@]+)/.exec(line)?.[1]).filter((name): name is string => !!name && !name.startsWith('crowsnest') && name !== 'lo');
    const samples = ['198.18.0.1', '198.18.77.9', '198.18.200.1', '198.18.255.254', '198.19.0.1', '198.19.128.5', '198.19.255.254',
      plane.network!.hostIp, plane.network!.nodes[0]!.ip, plane.network!.nodes[1]!.podGateway, plane.network!.kubernetesServiceIp];
    for (const address of samples) {
      const route = await run('ip', ['-o', 'route', 'get', address]).then((r) => r.stdout, (err: { stderr?: string }) => `unroutable: ${err.stderr ?? ''}`);
      const dev = /\bdev (\S+)/.exec(route)?.[1];
      assert.ok(dev === undefined || dev === 'lo' || dev.startsWith('crowsnest'), `${address} is routed via ${dev} (${route.trim()})`);
      assert.ok(!dev || !ownInterfaces.includes(dev), `${address} leaves through ${dev}`);
    }
    // Inside a node: nothing but the testbed's own addresses has a route (no default route).
    const inNode = (await run('ip', ['-n', plane.network!.nodes[0]!.netns, 'route', 'show'])).stdout;
    assert.doesNotMatch(inNode, /^default/m);
  });
});

/**
 * The body of `GET /` from `host:port`, asked from inside a pod with busybox nc (the test image's
 * busybox wget crashes with SIGSEGV here, even for an IP address).
 */
async function httpGetInPod(namespace: string, pod: string, host: string, port: number): Promise<string> {
  const response = await execInPod(namespace, pod, ['sh', '-c', `printf 'GET / HTTP/1.0\\r\\nHost: ${host}\\r\\n\\r\\n' | nc -w 5 ${host} ${port}`]);
  assert.match(response, /^HTTP\/1\.[01] 200 /, response);
  return response.slice(response.indexOf('\r\n\r\n') + 4);
}

/** stdout of `command` in the pod's container `main`; with `allowFailure`, stdout and stderr whatever the exit code. */
async function execInPod(namespace: string, pod: string, command: readonly string[], options: { allowFailure?: boolean } = {}): Promise<string> {
  const result = await execPod(await testbed(), namespace, pod, command);
  if (options.allowFailure) return result.stdout + result.stderr;
  assert.equal(result.exitCode, 0, `${command.join(' ')} exited ${result.exitCode}: ${result.stderr}`);
  return result.stdout;
}
