/**
 * Guard's node taint against the real API server and scheduler: the taint's `timeAdded` is what
 * the API server keeps and what every later guard reads its end from, and a group whose pods the
 * scheduler can put on one node only never has that node tainted.
 *
 * Two nodes of this file's own (`<namespace>-a`, `-b`) are played by kwok, tainted so that only
 * this file's pods, which tolerate that, land there: the shared real and kwok nodes are never
 * tainted here. Incidents come from the undeclared-port detector, fed straight into the guard's
 * signals as a sidecar's report would; each "guard" is a fresh GuardController (as after an
 * operator restart or a change of leader: nothing in memory) reconciling on demand, over what the
 * API server serves now, slimmed by guard's own cache transforms.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { type GuardPolicy, GuardPolicyApi, type GuardPolicyStatus } from '../../src/guard/api.ts';
import { GuardController } from '../../src/guard/controller.ts';
import { type GuardPod, guardPod } from '../../src/guard/pods.ts';
import { GuardSignals } from '../../src/guard/signals.ts';
import { GUARD_TAINT_KEY, guardNode, guardTaintOf, type NodeLike, type NodeTaint, taintValue } from '../../src/guard/taint.ts';
import { KubeClient } from '../../src/kube/client/client.ts';
import { realClock } from '../../src/kube/clock.ts';
import { formatConditionTime } from '../../src/kube/objects/conditions.ts';
import { FIELD_MANAGERS } from '../../src/kube/objects/labels.ts';
import type { KubeObject } from '../../src/kube/objects/resources.ts';
import { StatusWriter } from '../../src/kube/objects/status.ts';
import { kubeObjectWriter } from '../../src/kube/objects/writer.ts';
import type { ControlPlane } from '../../testbed/controlplane.ts';
import { installCrds } from './crds.ts';
import { guardPolicyManifest } from './guard-run.ts';
import { adminKubeConfig, createObject, eventually, getObject, listObjects, newNamespace, testbed } from './testbed.ts';

const KWOK_NODE_ANNOTATION = 'kwok.x-k8s.io/node';
const POOL_KEY = 'test.crowsnest.dev/guard-taint';
/** A port no test pod declares: a sidecar reporting it listening opens an incident. */
const UNDECLARED_PORT = 9999;

interface Pod { metadata: { name: string; uid: string }; spec: { nodeName?: string } }

describe('guard\'s node taint on the API server', () => {
  let plane: ControlPlane;
  let client: KubeClient;
  let namespace = '';
  let nodeA = '';
  let nodeB = '';
  const createdNodes: string[] = [];
  const stop = new AbortController();

  const node = async (name: string): Promise<NodeLike> => (await getObject<NodeLike>(`/api/v1/nodes/${name}`))!;
  const policyPath = (name: string) => `/apis/crowsnest.dev/v1alpha1/namespaces/${namespace}/guardpolicies/${name}`;
  const ours = async (nodeName: string, policy: string): Promise<NodeTaint | undefined> => guardTaintOf(await node(nodeName), taintValue(namespace, policy));

  /** Tolerates this file's node taint: the only pods that may land on its nodes. */
  const poolToleration = () => ({ key: POOL_KEY, operator: 'Equal', value: namespace, effect: 'NoSchedule' });

  function policy(name: string, ttl: string): Record<string, unknown> {
    return guardPolicyManifest(name, {
      targets: { podSelector: { matchLabels: { app: name } }, groupBy: ['app'] },
      detectors: { undeclaredPort: {} },
      actions: ['Event', 'Preventive'],
      preventive: { restartSimilar: false, taintNode: { incidents: 2, window: '10m', ttl } },
      cooldown: '0s',
    });
  }

  function pod(name: string, app: string, spec: Record<string, unknown>): Record<string, unknown> {
    return {
      apiVersion: 'v1', kind: 'Pod', metadata: { name, labels: { app } },
      spec: { terminationGracePeriodSeconds: 0, tolerations: [poolToleration()], containers: [{ name: 'main', image: 'fake' }], ...spec },
    };
  }

  /**
   * A guard that has never seen anything: a new controller and new signals. Each reconcile reads
   * the policy, the namespace's pods and the nodes from the API server first.
   */
  function freshGuard(): { signals: GuardSignals; reconcile: (policy: string) => Promise<void> } {
    let policyNow: GuardPolicy | undefined;
    let pods: GuardPod[] = [];
    let nodes: NodeLike[] = [];
    const signals = new GuardSignals();
    const controller = new GuardController({
      policy: () => policyNow,
      podsIn: () => pods,
      budgetsIn: () => [],
      nodes: () => nodes,
      api: client,
      writer: kubeObjectWriter(client, FIELD_MANAGERS.guard),
      statusWriter: new StatusWriter<GuardPolicyStatus>({ client, type: GuardPolicyApi.type, fieldManager: FIELD_MANAGERS.guard }),
      signals,
      clock: realClock,
    });
    return {
      signals,
      reconcile: async (name) => {
        policyNow = await getObject<GuardPolicy>(policyPath(name));
        pods = (await listObjects<KubeObject>(`/api/v1/namespaces/${namespace}/pods`)).map((p) => guardPod(p) as GuardPod);
        nodes = (await listObjects<KubeObject>('/api/v1/nodes')).map((n) => guardNode(n) as unknown as NodeLike);
        await controller.reconcile(`${namespace}/${name}`, stop.signal);
      },
    };
  }

  /** Reports the pods of `app` listening on an undeclared port, then reconciles its policy. */
  async function incidentsFor(guard: ReturnType<typeof freshGuard>, app: string): Promise<void> {
    for (const [i, p] of (await listObjects<Pod>(`/api/v1/namespaces/${namespace}/pods?labelSelector=app%3D${app}`)).entries()) {
      guard.signals.recordHealth(p.metadata.uid, i, [], [{ protocol: 'TCP', address: '0.0.0.0', port: UNDECLARED_PORT }], Date.now());
    }
    await guard.reconcile(app);
  }

  async function preventiveSteps(name: string): Promise<string[]> {
    const status = (await getObject<GuardPolicy>(policyPath(name)))?.status;
    return (status?.incidents ?? []).flatMap((i) => i.actions.filter((a) => a.action === 'Preventive').map((a) => `${i.pod} ${a.outcome}: ${a.message}`));
  }

  /** Adds `taints` to node `name` as another writer would (testing its resourceVersion). */
  async function addTaints(name: string, ...taints: NodeTaint[]): Promise<void> {
    const current = await node(name);
    const res = await plane.request('PATCH', `/api/v1/nodes/${name}`, [
      { op: 'test', path: '/metadata/resourceVersion', value: current.metadata.resourceVersion },
      { op: 'add', path: '/spec/taints', value: [...(current.spec?.taints ?? []), ...taints] },
    ], { 'content-type': 'application/json-patch+json' });
    assert.equal(res.status, 200, res.body);
  }

  async function scheduledOn(name: string): Promise<string> {
    let nodeName = '';
    await eventually(`pod ${name} scheduled`, async () => {
      nodeName = (await getObject<Pod>(`/api/v1/namespaces/${namespace}/pods/${name}`))?.spec.nodeName ?? '';
      return nodeName !== '';
    }, 30_000);
    return nodeName;
  }

  before(async () => {
    plane = await testbed();
    await installCrds();
    namespace = await newNamespace('guard-taint');
    await plane.waitForDefaultServiceAccount(namespace);
    client = new KubeClient(await adminKubeConfig());
    [nodeA, nodeB] = [`${namespace}-a`, `${namespace}-b`];
    for (const name of [nodeA, nodeB]) {
      await createObject('/api/v1/nodes', {
        apiVersion: 'v1', kind: 'Node',
        metadata: { name, annotations: { [KWOK_NODE_ANNOTATION]: 'fake' }, labels: { 'kubernetes.io/hostname': name, [POOL_KEY]: namespace } },
        spec: { taints: [{ key: POOL_KEY, value: namespace, effect: 'NoSchedule' }] },
        status: { allocatable: { cpu: '8', memory: '16Gi', pods: '110' }, capacity: { cpu: '8', memory: '16Gi', pods: '110' } },
      });
      createdNodes.push(name);
    }
    // Until kwok reports them Ready, the node lifecycle controller keeps them tainted not-ready.
    await eventually('kwok reports both nodes Ready, untainted but for this file\'s taint', async () => {
      const ready = await Promise.all([nodeA, nodeB].map(async (n) => {
        const seen = await node(n);
        return seen.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True') && (seen.spec?.taints ?? []).every((t) => t.key === POOL_KEY);
      }));
      return ready.every(Boolean);
    }, 30_000);
    for (const name of ['pinned', 'spread']) await createObject(`/apis/crowsnest.dev/v1alpha1/namespaces/${namespace}/guardpolicies`, policy(name, '10m'));
    // Pinned by nodeSelector: the scheduler can only put these on node A.
    const pinned = { nodeSelector: { 'kubernetes.io/hostname': nodeA } };
    // Placed on node A, but both of this file's nodes admit them.
    const spread = { nodeName: nodeA, nodeSelector: { [POOL_KEY]: namespace } };
    await Promise.all([
      createObject(`/api/v1/namespaces/${namespace}/pods`, pod('pinned-0', 'pinned', pinned)),
      createObject(`/api/v1/namespaces/${namespace}/pods`, pod('pinned-1', 'pinned', pinned)),
      createObject(`/api/v1/namespaces/${namespace}/pods`, pod('spread-0', 'spread', spread)),
      createObject(`/api/v1/namespaces/${namespace}/pods`, pod('spread-1', 'spread', spread)),
    ]);
  });

  after(async () => {
    stop.abort();
    if (namespace) {
      for (const name of ['pinned', 'spread', 'expired', 'unstamped']) {
        await plane.request('PATCH', policyPath(name), { metadata: { finalizers: null } }, { 'content-type': 'application/merge-patch+json' });
      }
      await plane.request('DELETE', `/api/v1/namespaces/${namespace}`);
    }
    // Deleting this file's nodes takes their taints, and the pods kwok played there, along.
    for (const name of createdNodes) await plane.request('DELETE', `/api/v1/nodes/${name}`);
    await client?.close();
  });

  it('never taints the node a group is pinned to, though other Ready nodes remain', { timeout: 30_000 }, async () => {
    assert.deepEqual(await Promise.all(['pinned-0', 'pinned-1'].map(scheduledOn)), [nodeA, nodeA], 'the scheduler had no other node for them');
    await incidentsFor(freshGuard(), 'pinned');
    // The first incident is below the threshold; the second would taint node A but for the rail.
    const steps = await preventiveSteps('pinned');
    assert.equal(steps.length, 2, steps.join('\n'));
    const refused = `Skipped: node ${nodeA} is not tainted: no other Ready node would admit pods of group app=pinned (nodeSelector kubernetes.io/hostname=${nodeA}; 1 toleration)`;
    assert.ok(steps.some((s) => s.endsWith(refused)), steps.join('\n'));
    assert.equal(await ours(nodeA, 'pinned'), undefined);
  });

  it('taints the node a movable group fails on with timeAdded, which the API server keeps; the scheduler places the next pod elsewhere', { timeout: 30_000 }, async () => {
    const before = Math.floor(Date.now() / 1000) * 1000;
    const guard = freshGuard();
    await incidentsFor(guard, 'spread');
    const after = Date.now();
    // Read before any later pass could stamp it: the timeAdded is the one the taint was added with.
    const taint = await ours(nodeA, 'spread');
    // The taint step added the policy's finalizer, so the status written after it met a newer
    // policy (a conflict, left to the next pass): the next pass writes what this guard remembers.
    await guard.reconcile('spread');
    const taken = (await preventiveSteps('spread')).find((s) => s.includes(' Taken: '));
    assert.ok(taint?.timeAdded, `the stored taint has a timeAdded: ${JSON.stringify(taint)}`);
    const added = Date.parse(taint.timeAdded);
    assert.ok(added >= before && added <= after, `${taint.timeAdded} is when guard added it`);
    assert.match(taken ?? '', new RegExp(`Taken: tainted node ${nodeA} ${GUARD_TAINT_KEY}=${taintValue(namespace, 'spread')}:NoSchedule until ${formatConditionTime(added + 600_000)}: `));
    // It would prefer node A; the taint, which it does not tolerate, sends it to B.
    await createObject(`/api/v1/namespaces/${namespace}/pods`, pod('spread-2', 'spread', {
      nodeSelector: { [POOL_KEY]: namespace },
      affinity: { nodeAffinity: { preferredDuringSchedulingIgnoredDuringExecution: [{ weight: 100, preference: { matchFields: [{ key: 'metadata.name', operator: 'In', values: [nodeA] }] } }] } },
    }));
    assert.equal(await scheduledOn('spread-2'), nodeB);
  });

  it('a fresh guard keeps a taint whose time is not up, timeAdded untouched, and ends it once it is', { timeout: 30_000 }, async () => {
    const spread = (await ours(nodeA, 'spread'))!;
    await freshGuard().reconcile('spread');
    assert.deepEqual(await ours(nodeA, 'spread'), spread, 'ten minutes left: kept as it was');

    // An earlier leader tainted node B 50s ago, with a ttl of 1m; another's taint there has its own timeAdded.
    await createObject(`/apis/crowsnest.dev/v1alpha1/namespaces/${namespace}/guardpolicies`, policy('expired', '1m'));
    const foreign: NodeTaint = { key: 'example.com/maintenance', value: 'soon', effect: 'PreferNoSchedule', timeAdded: '2020-01-01T00:00:00Z' };
    const expiring: NodeTaint = { key: GUARD_TAINT_KEY, value: taintValue(namespace, 'expired'), effect: 'NoSchedule', timeAdded: formatConditionTime(Date.now() - 50_000) };
    await addTaints(nodeB, foreign, expiring);
    await freshGuard().reconcile('expired');
    assert.deepEqual(await ours(nodeB, 'expired'), expiring, 'seconds left: kept as it was');

    await new Promise((resolve) => setTimeout(resolve, Date.parse(expiring.timeAdded!) + 60_000 - Date.now() + 100));
    await freshGuard().reconcile('expired');
    assert.deepEqual((await node(nodeB)).spec?.taints?.filter((t) => t.key !== POOL_KEY), [foreign], 'its ttl ended: removed by a guard that never saw it added; the other taint as it was');
    assert.deepEqual(await ours(nodeA, 'spread'), spread, 'the other policy\'s taint, a ttl of 10m, stays');
  });

  it('a fresh guard gives a taint of ours found without timeAdded one, now', { timeout: 30_000 }, async () => {
    await createObject(`/apis/crowsnest.dev/v1alpha1/namespaces/${namespace}/guardpolicies`, policy('unstamped', '1m'));
    await addTaints(nodeB, { key: GUARD_TAINT_KEY, value: taintValue(namespace, 'unstamped'), effect: 'NoSchedule' });
    const before = Math.floor(Date.now() / 1000) * 1000;
    await freshGuard().reconcile('unstamped');
    const stamped = await ours(nodeB, 'unstamped');
    assert.ok(stamped?.timeAdded && Date.parse(stamped.timeAdded) >= before && Date.parse(stamped.timeAdded) <= Date.now(), `stamped now: ${JSON.stringify(stamped)}`);
  });
});
