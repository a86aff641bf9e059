/**
 * Guard's Evict and Preventive steps and its anomaly detector against the testbed's real API
 * server and real pods on the real nodes: a real PodDisruptionBudget whose controller counts
 * healthy pods and an Eviction API that answers 429, real readiness probes that hold the
 * preventive restart back, a real Deployment rollout, and containers that really exit. Guard runs
 * in this process with the chart's RBAC only (guard-run.ts).
 *
 * Every case's workloads and policies start together in `before`, and the cases run concurrently:
 * the file costs about as long as its slowest case.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { ControlPlane } from '../../testbed/controlplane.ts';
import type { GuardPolicy } from '../../src/guard/api.ts';
import { heldRetryDelayMs } from '../../src/guard/ladder.ts';
import { issueCertificateAuthority } from '../../src/kube/webhook/x509.ts';
import { installCrds } from './crds.ts';
import { type GuardUnderTest, guardPolicyManifest, runGuard } from './guard-run.ts';
import { createObject, eventually, execInPod, getObject, listObjects, newNamespace, testbed } from './testbed.ts';

type Incident = NonNullable<NonNullable<GuardPolicy['status']>['incidents']>[number];

interface Pod {
  metadata: { name: string; uid: string; labels?: Record<string, string>; deletionTimestamp?: string };
  status: { phase?: string; conditions?: Array<{ type: string; status: string }> };
}

const SLEEP = ['/bin/sh', '-c', 'exec sleep 3600'];
const CRASH = ['/bin/sh', '-c', 'sleep 1; echo crashing; exit 1'];
/** Ready unless /tmp/unready exists: the test takes a pod out of readiness by exec. */
const READY_UNLESS_MARKED = { exec: { command: ['/bin/sh', '-c', '! test -e /tmp/unready'] }, periodSeconds: 1, failureThreshold: 1 };
const HOUR_MS = 3_600_000;

function deployment(name: string, replicas: number, image: string, labels: Record<string, string>, container: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    apiVersion: 'apps/v1', kind: 'Deployment', metadata: { name },
    spec: {
      replicas, selector: { matchLabels: { app: name } },
      strategy: { type: 'RollingUpdate', rollingUpdate: { maxSurge: 1, maxUnavailable: 0 } },
      template: { metadata: { labels: { app: name, ...labels } }, spec: { terminationGracePeriodSeconds: 1, containers: [{ name: 'main', image, command: SLEEP, ...container }] } },
    },
  };
}

function pod(name: string, image: string, labels: Record<string, string>, command: readonly string[]): Record<string, unknown> {
  return { apiVersion: 'v1', kind: 'Pod', metadata: { name, labels }, spec: { terminationGracePeriodSeconds: 1, containers: [{ name: 'main', image, command }] } };
}

const isReady = (p: Pod) => p.status.conditions?.some((c) => c.type === 'Ready' && c.status === 'True') ?? false;

describe('guard\'s actions and anomaly detector on real pods', { concurrency: true }, () => {
  let plane: ControlPlane;
  let namespace = '';
  let run: GuardUnderTest | undefined;

  const create = (path: string, body: Record<string, unknown>): Promise<void> =>
    createObject(`/${path.startsWith('api/') ? '' : 'apis/'}${path.replace('{ns}', namespace)}`, body);
  const pods = (selector: string) => listObjects<Pod>(`/api/v1/namespaces/${namespace}/pods?labelSelector=${encodeURIComponent(selector)}`);
  const incidentsOf = async (name: string): Promise<Incident[]> =>
    (await getObject<GuardPolicy>(`/apis/crowsnest.dev/v1alpha1/namespaces/${namespace}/guardpolicies/${name}`))?.status?.incidents ?? [];
  const evictions = async (name: string, result: 'evicted' | 'refused'): Promise<number> => {
    const values = (await run!.registry.getSingleMetric('crowsnest_guard_evictions_total')?.get())?.values ?? [];
    return values.find((v) => v.labels['policy'] === name && v.labels['result'] === result)?.value ?? 0;
  };
  const steps = (incident: Incident | undefined, action: string) => (incident?.actions ?? []).filter((a) => a.action === action);
  /**
   * Creates policy `name` (a crash loop at one restart opens an incident; no cooldown) taking
   * `action`, and waits until the incident of pod `pod` records it.
   */
  const firstRecord = async (name: string, targets: Record<string, unknown>, action: 'Evict' | 'Preventive', pod: string): Promise<Incident> => {
    await create('crowsnest.dev/v1alpha1/namespaces/{ns}/guardpolicies', guardPolicyManifest(name, {
      targets, detectors: { crashLoop: { restarts: 1, window: '5m' } }, actions: ['Event', action], cooldown: '0s',
    }));
    let incident: Incident | undefined;
    await eventually(`policy ${name}'s incident on ${pod} to record ${action}`, async () => {
      incident = (await incidentsOf(name)).find((i) => i.pod === pod);
      return steps(incident, action).length > 0;
    }, 90_000);
    return incident!;
  };

  before(async () => {
    plane = await testbed();
    await installCrds();
    namespace = await newNamespace('guard-actions');
    const image = plane.images['test']!;
    run = await runGuard(namespace, { ca: issueCertificateAuthority({ commonName: 'guard-actions-ca', notBeforeMs: Date.now() - 60_000, notAfterMs: Date.now() + HOUR_MS }) });
    // The anomaly policy watches its group from the start, so its baseline holds the quiet pods' zeros.
    await create('crowsnest.dev/v1alpha1/namespaces/{ns}/guardpolicies', guardPolicyManifest('anomaly', {
      targets: { podSelector: { matchLabels: { tier: 'anomaly' } }, groupBy: ['tier'] },
      detectors: { anomaly: { signal: 'restarts', zScore: 1.5, halfLife: '10m', minSamples: 4 } },
      actions: ['Event'],
    }));
    await Promise.all([
      // Evict: one crash-looping pod and one healthy one under a budget that wants both.
      create('api/v1/namespaces/{ns}/pods', pod('evict-crash', image, { app: 'evict' }, CRASH)),
      create('api/v1/namespaces/{ns}/pods', pod('evict-steady', image, { app: 'evict' }, SLEEP)),
      create('policy/v1/namespaces/{ns}/poddisruptionbudgets', { apiVersion: 'policy/v1', kind: 'PodDisruptionBudget', metadata: { name: 'evict' }, spec: { minAvailable: 2, selector: { matchLabels: { app: 'evict' } } } }),
      // Preventive: a crash-looping pod and two similar ones whose readiness the test controls.
      create('api/v1/namespaces/{ns}/pods', pod('prev-crash', image, { tier: 'prev' }, CRASH)),
      create('apps/v1/namespaces/{ns}/deployments', deployment('prev', 2, image, { tier: 'prev' }, { readinessProbe: READY_UNLESS_MARKED })),
      // Preventive during someone else's rollout.
      create('api/v1/namespaces/{ns}/pods', pod('roll-crash', image, { tier: 'roll' }, CRASH)),
      create('apps/v1/namespaces/{ns}/deployments', deployment('roll', 2, image, { tier: 'roll' })),
      // Anomaly: three quiet pods (the one whose container keeps exiting joins them in its case).
      create('apps/v1/namespaces/{ns}/deployments', deployment('calm', 3, image, { tier: 'anomaly' })),
    ]);
  });

  after(async () => {
    await run?.stop();
    if (namespace) await plane.request('DELETE', `/api/v1/namespaces/${namespace}`);
  });

  it('Evict: the Eviction API refuses (429, the PDB allows no disruption); guard records it, retries with backoff, and evicts once the budget allows, once', { timeout: 150_000 }, async () => {
    const [crashing] = await pods('app=evict').then((list) => list.filter((p) => p.metadata.name === 'evict-crash'));
    assert.ok(crashing);
    const incident = await firstRecord('evict', { podSelector: { matchLabels: { app: 'evict' } } }, 'Evict', 'evict-crash');
    const [refusal] = steps(incident, 'Evict');
    assert.equal(refusal!.outcome, 'Skipped');
    assert.match(refusal!.message, /^the Eviction API refused: .*(disruption budget|TooManyRequests|429).* \(a PodDisruptionBudget allows no disruption now\); held: tried again with backoff while the incident is open$/);
    // Refused again at least once (a retry, not a dropped step), and nothing recorded for it.
    await eventually('a second refusal', async () => (await evictions('evict', 'refused')) >= 2, 30_000);
    assert.equal(steps((await incidentsOf('evict')).find((i) => i.id === incident.id), 'Evict').length, 1, 'a refusal is recorded once');
    assert.equal((await getObject<Pod>(`/api/v1/namespaces/${namespace}/pods/evict-crash`))?.metadata.uid, crashing.metadata.uid, 'not evicted while the budget holds');

    // The budget allows it: the healthy pod alone is enough.
    const patched = await plane.request('PATCH', `/apis/policy/v1/namespaces/${namespace}/poddisruptionbudgets/evict`, { spec: { minAvailable: 1 } }, { 'content-type': 'application/merge-patch+json' });
    assert.equal(patched.status, 200, patched.body);
    await eventually('the crash-looping pod evicted', async () => {
      const now = await getObject<Pod>(`/api/v1/namespaces/${namespace}/pods/evict-crash`);
      return now === undefined || now.metadata.uid !== crashing.metadata.uid || now.metadata.deletionTimestamp !== undefined;
    }, 90_000);
    await eventually('the eviction recorded taken', async () => steps((await incidentsOf('evict')).find((i) => i.id === incident.id), 'Evict').some((a) => a.outcome === 'Taken'), 20_000);
    const evict = steps((await incidentsOf('evict')).find((i) => i.id === incident.id), 'Evict');
    assert.deepEqual(evict.map((a) => a.outcome), ['Skipped', 'Taken']);
    assert.equal(await evictions('evict', 'evicted'), 1, 'evicted once');
    // No hot loop: the refusals fit the doubling waits between the first refusal and the eviction (second-resolution times, one second of slack).
    const heldMs = Date.parse(evict[1]!.at) - Date.parse(evict[0]!.at) + 1_000;
    let allowed = 1;
    for (let waited = heldRetryDelayMs(1); waited <= heldMs; waited += heldRetryDelayMs(allowed + 1)) allowed++;
    const refused = await evictions('evict', 'refused');
    assert.ok(refused <= allowed, `${refused} refused evictions in ${heldMs} ms; backoff allows at most ${allowed}`);
    assert.equal((await pods('app=evict')).filter((p) => !p.metadata.deletionTimestamp).map((p) => p.metadata.name).join(), 'evict-steady', 'the healthy pod is left');
  });

  it('Preventive: restarts one similar pod, only once the rest of the group is ready; one per incident', { timeout: 150_000 }, async () => {
    await eventually('the two similar pods ready', async () => (await pods('app=prev')).filter(isReady).length === 2, 60_000);
    const similar = (await pods('app=prev')).sort((a, b) => a.metadata.name.localeCompare(b.metadata.name));
    const [unready, other] = similar;
    assert.ok(unready && other);
    const marked = await execInPod(plane, namespace, unready.metadata.name, ['touch', '/tmp/unready']);
    assert.equal(marked.exitCode, 0, marked.stderr);
    await eventually(`${unready.metadata.name} not ready`, async () => !isReady((await getObject<Pod>(`/api/v1/namespaces/${namespace}/pods/${unready.metadata.name}`))!), 30_000);

    const incident = await firstRecord('prev', { podSelector: { matchLabels: { tier: 'prev' } }, groupBy: ['tier'] }, 'Preventive', 'prev-crash');
    assert.deepEqual(steps(incident, 'Preventive').map((a) => a.outcome), ['Skipped']);
    assert.match(steps(incident, 'Preventive')[0]!.message, new RegExp(`^similar pods not ready \\(${unready.metadata.name}\\): restarting another now could take the group down; held: `));
    assert.deepEqual((await pods('app=prev')).map((p) => p.metadata.uid).sort(), similar.map((p) => p.metadata.uid).sort(), 'nothing restarted while a pod is not ready');

    // Ready again: the held restart goes ahead, one pod.
    const unmarked = await execInPod(plane, namespace, unready.metadata.name, ['rm', '/tmp/unready']);
    assert.equal(unmarked.exitCode, 0, unmarked.stderr);
    await eventually('one similar pod restarted', async () => (await pods('app=prev')).some((p) => !similar.some((s) => s.metadata.uid === p.metadata.uid)), 90_000);
    let taken: Incident['actions'] = [];
    await eventually('the restart recorded', async () => {
      taken = steps((await incidentsOf('prev')).find((i) => i.id === incident.id), 'Preventive');
      return taken.length > 1;
    }, 20_000);
    assert.deepEqual(taken.map((a) => a.outcome), ['Skipped', 'Taken']);
    const restarted = /^restarted similar pod (\S+) \(evicted/.exec(taken[1]!.message)?.[1];
    assert.ok(similar.some((p) => p.metadata.name === restarted), `the restarted pod is one of the two (${taken[1]!.message})`);
    // Its replacement becomes ready; the other pod is never restarted for this incident.
    await eventually('the group ready again', async () => (await pods('app=prev')).filter((p) => !p.metadata.deletionTimestamp && isReady(p)).length === 2, 60_000);
    const survivor = similar.find((p) => p.metadata.name !== restarted)!;
    await new Promise((resolve) => setTimeout(resolve, heldRetryDelayMs(2)));
    assert.ok((await pods('app=prev')).some((p) => p.metadata.uid === survivor.metadata.uid && !p.metadata.deletionTimestamp), 'one restart per incident');
    assert.equal(steps((await incidentsOf('prev')).find((i) => i.id === incident.id), 'Preventive').length, 2);
    assert.equal(await evictions('prev', 'evicted'), 1);
  });

  it('Preventive: names a Deployment rollout in progress and restarts nothing meanwhile', { timeout: 150_000 }, async () => {
    await eventually('the roll pods ready', async () => (await pods('app=roll')).filter(isReady).length === 2, 60_000);
    const old = await pods('app=roll');
    // A rollout that cannot finish: the new revision never becomes ready, and maxUnavailable 0 keeps the old pods.
    const patched = await plane.request('PATCH', `/apis/apps/v1/namespaces/${namespace}/deployments/roll`, {
      spec: { template: { spec: { containers: [{ name: 'main', readinessProbe: { exec: { command: ['/bin/false'] }, periodSeconds: 1 } }] } } },
    }, { 'content-type': 'application/strategic-merge-patch+json' });
    assert.equal(patched.status, 200, patched.body);
    await eventually('a pod of the new revision', async () => new Set((await pods('app=roll')).map((p) => p.metadata.labels?.['pod-template-hash'])).size === 2, 60_000);

    const incident = await firstRecord('roll', { podSelector: { matchLabels: { tier: 'roll' } }, groupBy: ['tier'] }, 'Preventive', 'roll-crash');
    const [held] = steps(incident, 'Preventive');
    assert.equal(held!.outcome, 'Skipped');
    assert.match(held!.message, /^Deployment roll is being rolled out by someone else \(its pods carry 2 revisions: \w+: [12], \w+: [12]\): the rollout restarts them already; guard restarts none until it is done; held: /);
    await new Promise((resolve) => setTimeout(resolve, heldRetryDelayMs(1) + 1_000));
    const now = await pods('app=roll');
    for (const p of old) assert.ok(now.some((n) => n.metadata.uid === p.metadata.uid && !n.metadata.deletionTimestamp), `old pod ${p.metadata.name} not restarted by guard`);
    assert.equal(await evictions('roll', 'evicted'), 0);
  });

  it('anomaly: a pod whose container keeps exiting stands out from its group\'s restart baseline (EWMA, z-score)', { timeout: 120_000 }, async () => {
    // The quiet pods first (their ReplicaSet made them; running or not, they restart 0 times a minute), so the
    // baseline has their zeros before the first restart: alone, a pod's own rates would be its baseline.
    await eventually('the three quiet pods', async () => (await pods('app=calm')).length === 3, 60_000);
    await create('api/v1/namespaces/{ns}/pods', pod('jumpy', plane.images['test']!, { tier: 'anomaly' }, CRASH));
    let incident: Incident | undefined;
    await eventually('an anomaly incident', async () => {
      incident = (await incidentsOf('anomaly'))[0];
      return incident !== undefined;
    }, 90_000);
    assert.equal(incident!.detector, 'anomaly');
    assert.equal(incident!.reason, 'RateAnomaly');
    assert.equal(incident!.pod, 'jumpy', 'the pod that restarts, not one of the quiet ones');
    assert.equal(incident!.group, 'tier=anomaly');
    assert.match(incident!.evidence[0]!, /^restarts at [1-9]\d*\/min, z-score \d+\.\d \(threshold 1\.5\) against group tier=anomaly \([1-4] pods\): mean \d+\.\d\d\/min, deviation \d+\.\d\d, ([4-9]|\d\d+) samples$/);
    const score = Number(/z-score (\S+)/.exec(incident!.evidence[0]!)![1]);
    assert.ok(score >= 1.5, `z-score ${score} reaches the threshold`);
    const jumpy = await getObject<{ status: { containerStatuses?: Array<{ restartCount: number }> } }>(`/api/v1/namespaces/${namespace}/pods/jumpy`);
    assert.ok((jumpy?.status.containerStatuses?.[0]?.restartCount ?? 0) >= 1, 'the kubelet counted real restarts');
    assert.ok((await incidentsOf('anomaly')).every((i) => i.pod === 'jumpy'), 'no quiet pod is anomalous');
  });
});
