/**
 * guard's node log agent as the chart runs it: the chart's DaemonSet (our image, the projected
 * token, the hostPath state directory) on both real nodes, tailing a real pod's CRI log that the
 * node's containerd writes, and sending batches to a test receiver over HTTPS (the operator's
 * receiving side is guard-core's; this one keeps each batch id once, as the contract asks).
 *
 * The agent is SIGKILLed mid-stream (its pod deleted without grace; the DaemonSet makes a new one
 * on the same node, which finds its cursors and pending batch in the hostPath) and the receiver
 * refuses with 503 for a while: the receiver still counts every line exactly once. One line of
 * 40 000 bytes is split by containerd into partial records and counts once. The agents' log API
 * then serves that pod's log to a ServiceAccount allowed `get pods/log` on it, and to no other.
 *
 * Testbed specifics: the nodes' kubelets keep pod logs in `<testbed>/nodes/<node>/pod-logs`
 * (not /var/log/pods), so the DaemonSet's pod-logs hostPath is `<testbed>/nodes` and the agent is
 * pointed at its node's subdirectory; kwok nodes (which run nothing) are left out by leaving out
 * the chart's tolerate-everything toleration.
 */
import assert from 'node:assert/strict';
import { request as httpsRequest } from 'node:https';
import { after, before, describe, it } from 'node:test';
import { issueCertificateAuthority, issueServingCertificate } from '../../src/kube/webhook/x509.ts';
import { type RunningLogReceiver, startLogReceiver } from '../helpers/guard-log-receiver.ts';
import { installLogsAgent } from './logs-agent-chart.ts';
import { crowsnestImage } from './prober-image.ts';
import type { RealPod } from '../../testbed/realpods.ts';
import { eventually, execInPod, newNamespace, runPod, serviceAccountToken, testbed } from './testbed.ts';

const RELEASE = 'glogs';
const NODE = 'crowsnest-real-0';
/** Lines of each kind the app writes: N matching (`ERROR`), N not. */
const N = 150;
/** The name in the log API's serving certificate (clients connect to an agent's pod IP with it). */
const LOG_API_NAME = 'logs-api.crowsnest.test';
const LOG_API_PORT = 19093;

/** GET from the log API of the agent at `ip`, trusting `ca`. */
function logApi(ip: string, ca: string, path: string, token?: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = httpsRequest({ host: ip, port: LOG_API_PORT, path, ca, servername: LOG_API_NAME, headers: token ? { authorization: `Bearer ${token}` } : {}, timeout: 10_000 }, (res) => {
      let body = '';
      res.on('data', (chunk: Buffer) => (body += chunk.toString()));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('timeout', () => req.destroy(new Error('no answer')));
    req.on('error', reject);
    req.end();
  });
}

describe('guard logs-agent: a DaemonSet on the real nodes counts a real pod\'s log lines exactly once', () => {
  let receiver: RunningLogReceiver;
  let namespace: string;
  let logApiCa = '';
  let talkerUid = '';

  before(async () => {
    const plane = await testbed();
    const image = await crowsnestImage(plane);
    receiver = await startLogReceiver(plane.network!.hostIp);
    receiver.receiver.sendAfterMs = 300;
    namespace = await newNamespace('guard-logs');
    // The chart mounts ca.crt of the operator's webhook Secret; here it is the receiver's CA.
    const secret = await plane.request('POST', `/api/v1/namespaces/${namespace}/secrets`, {
      apiVersion: 'v1', kind: 'Secret', metadata: { name: `${RELEASE}-crowsnest-webhook-cert` }, data: { 'ca.crt': Buffer.from(receiver.caPem).toString('base64') },
    });
    assert.equal(secret.status, 201, secret.body);
    const now = Date.now();
    const ca = issueCertificateAuthority({ commonName: 'log-api-test-ca', notBeforeMs: now - 60_000, notAfterMs: now + 3_600_000 });
    const serving = issueServingCertificate({ commonName: LOG_API_NAME, hosts: [LOG_API_NAME], notBeforeMs: now - 60_000, notAfterMs: now + 3_600_000 }, ca);
    logApiCa = ca.certPem;
    const tls = await plane.request('POST', `/api/v1/namespaces/${namespace}/secrets`, {
      apiVersion: 'v1', kind: 'Secret', type: 'kubernetes.io/tls', metadata: { name: 'log-api-tls' },
      data: { 'tls.crt': Buffer.from(serving.certPem).toString('base64'), 'tls.key': Buffer.from(serving.keyPem).toString('base64') },
    });
    assert.equal(tls.status, 201, tls.body);
    await installLogsAgent(plane, {
      release: RELEASE, namespace, image, guardUrl: receiver.url,
      values: ['--set', 'guard.logsAgent.batchSize=64Ki', '--set', 'guard.logsAgent.logApi.enabled=true', '--set', 'guard.logsAgent.logApi.tlsSecret=log-api-tls'],
    });
  });

  after(async () => {
    const plane = await testbed();
    if (namespace) {
      await plane.request('DELETE', `/api/v1/namespaces/${namespace}`);
      await plane.request('DELETE', `/apis/rbac.authorization.k8s.io/v1/clusterrolebindings/${namespace}-auth-delegator`);
    }
    await receiver?.close();
  });

  const agentPod = async (): Promise<RealPod | undefined> => {
    const plane = await testbed();
    const res = await plane.request('GET', `/api/v1/namespaces/${namespace}/pods?labelSelector=${encodeURIComponent('app.kubernetes.io/component=logs-agent')}&fieldSelector=spec.nodeName=${NODE}`);
    return (JSON.parse(res.body) as { items: Array<RealPod & { metadata: { deletionTimestamp?: string } }> }).items.find((p) => !p.metadata.deletionTimestamp && p.status.phase === 'Running');
  };

  it('survives a SIGKILL and a refusing operator mid-stream: N matched of 2N+1 lines, each counted once', async () => {
    const plane = await testbed();
    const app = await runPod(plane, {
      namespace, name: 'talker', image: plane.images['test']!, node: NODE, timeoutMs: 120_000,
      command: ['/bin/sh', '-c', [
        'while [ ! -f /tmp/go ]; do sleep 0.1; done',
        'printf "ERROR a long line: "; head -c 40000 /dev/zero | tr "\\0" x; echo',
        `i=0; while [ $i -lt ${N} ]; do echo "line $i ERROR"; echo "line $i fine"; i=$((i+1)); sleep 0.03; done`,
        'exec sleep 3600',
      ].join('\n')],
    });
    talkerUid = app.metadata.uid;
    await eventually('the agent runs on the app\'s node', async () => (await agentPod()) !== undefined, 120_000);
    receiver.receiver.watches = [{ namespace, pod: 'talker', podUid: app.metadata.uid, containers: [], policy: 'errors', pattern: 'ERROR' }];
    // The answer carrying the watch, then one more batch: the agent holds the watch from then on.
    const seen = receiver.receiver.received;
    await eventually('the agent took up the watch', async () => receiver.receiver.received >= seen + 2, 30_000);
    const started = await execInPod(plane, namespace, 'talker', ['touch', '/tmp/go']);
    assert.equal(started.exitCode, 0, started.stderr);

    const counted = () => receiver.receiver.total({ podUid: app.metadata.uid });
    await eventually('a third of the lines counted', async () => counted().matched >= N / 3, 30_000);
    const killed = await agentPod();
    const deleted = await plane.request('DELETE', `/api/v1/namespaces/${namespace}/pods/${killed!.metadata.name}?gracePeriodSeconds=0`);
    assert.equal(deleted.status, 200, deleted.body);
    await eventually('a new agent pod on the node', async () => {
      const pod = await agentPod();
      return pod !== undefined && pod.metadata.uid !== killed!.metadata.uid;
    }, 60_000);
    receiver.failWith = 503;
    await new Promise((resolve) => setTimeout(resolve, 2_000));
    receiver.failWith = undefined;

    await eventually(`all ${N + 1} matching lines counted`, async () => counted().matched >= N + 1, 60_000);
    // A few more batches: nothing counted twice arrives late.
    const received = receiver.receiver.received;
    await eventually('three more batches', async () => receiver.receiver.received >= received + 3, 15_000);
    assert.deepEqual(counted(), { lines: 2 * N + 1, matched: N + 1 });
    const samples = receiver.receiver.kept.flatMap((b) => b.counts.flatMap((c) => c.samples));
    assert.ok(samples.some((s) => s.startsWith('ERROR a long line: xxx') && Buffer.byteLength(s) <= 512), 'the long line is one sample, cut to 512 bytes');

    // The agents' tokens are for the guard endpoint's audience and name their node, which the
    // operator checks against the batch's node.
    const claims = [...receiver.tokens].map((token) => JSON.parse(Buffer.from(token.split('.')[1]!, 'base64url').toString()) as { aud: string[]; 'kubernetes.io'?: { node?: { name: string } } });
    assert.ok(claims.every((c) => c.aud.includes('crowsnest.dev/guard')));
    const nodes = new Set(receiver.receiver.kept.map((b) => b.node));
    assert.ok(nodes.has(NODE));
    for (const node of nodes) assert.ok(claims.some((c) => c['kubernetes.io']?.node?.name === node), `a token names node ${node}`);
    // What the operator will rely on: a TokenReview for the guard audience names the node in the
    // user's extra (authentication.kubernetes.io/node-name), as GUARD-NOTES asks to verify.
    const token = [...receiver.tokens].at(-1)!;
    const review = await plane.request('POST', '/apis/authentication.k8s.io/v1/tokenreviews', { apiVersion: 'authentication.k8s.io/v1', kind: 'TokenReview', spec: { token, audiences: ['crowsnest.dev/guard'] } });
    const status = (JSON.parse(review.body) as { status: { authenticated?: boolean; user?: { username?: string; extra?: Record<string, string[]> } } }).status;
    assert.equal(status.authenticated, true, review.body);
    assert.equal(status.user?.username, `system:serviceaccount:${namespace}:${RELEASE}-crowsnest-logs-agent`);
    assert.ok(nodes.has(status.user?.extra?.['authentication.kubernetes.io/node-name']?.[0] ?? ''), JSON.stringify(status.user?.extra));
  });

  it('serves the pod\'s log to a ServiceAccount allowed get pods/log on it, and to nobody else', async () => {
    const plane = await testbed();
    assert.ok(talkerUid, 'the first test ran the app');
    const reader = await serviceAccountToken(namespace, 'reader');
    const stranger = await serviceAccountToken(namespace, 'stranger');
    for (const [path, body] of [
      [`/apis/rbac.authorization.k8s.io/v1/namespaces/${namespace}/roles`, { metadata: { name: 'talker-log' }, rules: [{ apiGroups: [''], resources: ['pods/log'], verbs: ['get'], resourceNames: ['talker'] }] }],
      [`/apis/rbac.authorization.k8s.io/v1/namespaces/${namespace}/rolebindings`, { metadata: { name: 'talker-log' }, roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name: 'talker-log' }, subjects: [{ kind: 'ServiceAccount', name: 'reader', namespace }] }],
    ] as const) {
      const created = await plane.request('POST', path, body);
      assert.equal(created.status, 201, created.body);
    }
    const ip = (await agentPod())!.status.podIP!;
    const path = `/v1/namespaces/${namespace}/pods/talker/log`;
    let answer = { status: 0, body: '' };
    await eventually('the reader gets the log (RBAC caches settle)', async () => {
      answer = await logApi(ip, logApiCa, path, reader);
      return answer.status === 200;
    }, 30_000);
    const lines = answer.body.trimEnd().split('\n');
    assert.equal(lines.length, 2 * N + 1);
    assert.match(lines[0]!, /^ERROR a long line: x{40000}$/, 'containerd\'s partial records joined');
    assert.deepEqual(lines.slice(-2), [`line ${N - 1} ERROR`, `line ${N - 1} fine`]);
    assert.deepEqual(await logApi(ip, logApiCa, `${path}?tailLines=1`, reader), { status: 200, body: `line ${N - 1} fine\n` });
    const refused = await logApi(ip, logApiCa, path, stranger);
    assert.equal(refused.status, 403);
    assert.match(refused.body, new RegExp(`system:serviceaccount:${namespace}:stranger may not get pods/log talker in namespace ${namespace}`));
    assert.equal((await logApi(ip, logApiCa, path)).status, 401);
    assert.equal((await logApi(ip, logApiCa, path, 'not-a-token')).status, 401);
  });
});
