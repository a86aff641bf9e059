/**
 * Guard against real pods on the real nodes: containers that really crash and really get
 * OOM-killed by the kernel, a real ReplicaSet controller making replacements, a real
 * NetworkPolicy enforcer cutting a quarantined pod off. Guard runs in this process as one operator
 * replica (registered with a Manager as `crowsnest operator --controllers=guard` registers it),
 * authenticated as the chart's operator ServiceAccount with only the chart's RBAC.
 *
 * The cases share the testbed's time: their workloads start together, and each policy uses short
 * windows and no cooldown.
 */
import assert from 'node:assert/strict';
import { request as httpsRequest } from 'node:https';
import { after, before, describe, it } from 'node:test';
import type { Registry } from 'prom-client';
import type { ControlPlane } from '../../testbed/controlplane.ts';
import type { GuardPolicy } from '../../src/guard/api.ts';
import { GUARD_POLICY_ANNOTATION, HEALTH_PATH, type HealthReport, type LogAnswer, type LogBatch, LOGS_PATH, QUARANTINE_ANNOTATION, QUARANTINE_LABEL, TOKEN_AUDIENCE } from '../../src/guard/contract.ts';
import type { GuardRuntime } from '../../src/guard/register.ts';
import { hasGuardTaint, type NodeLike, removeTaintPatch, taintValue } from '../../src/guard/taint.ts';
import { issueCertificateAuthority } from '../../src/kube/webhook/x509.ts';
import { main } from '../../src/cli/main.ts';
import type { RequestInit } from '../../src/kube/client/client.ts';
import type { EventRecorder } from '../../src/kube/objects/events.ts';
import { installCrds } from './crds.ts';
import { type GuardUnderTest, guardPolicyManifest, runGuard } from './guard-run.ts';
import { createObject, eventually, execInPod, getObject, httpServerCommand, listObjects, newNamespace, runPod, testbed } from './testbed.ts';

const PORT = 8080;
const REAL_NODES = ['crowsnest-real-0', 'crowsnest-real-1'];
const FAILING_NODE = REAL_NODES[0]!;
const BODY = 'guarded';
/** How long a NetworkPolicy change may take to be enforced. */
const ENFORCED_WITHIN_MS = 30_000;

interface Pod {
  metadata: { name: string; namespace: string; uid: string; labels?: Record<string, string>; annotations?: Record<string, string>; ownerReferences?: Array<{ kind: string; name: string; controller?: boolean }>; deletionTimestamp?: string };
  spec?: { nodeName?: string };
  status: { phase?: string; podIP?: string; containerStatuses?: Array<{ name: string; restartCount: number; state?: { terminated?: { reason?: string } }; lastState?: { terminated?: { reason?: string } } }> };
}

/** A Deployment of `replicas` pods labelled `app: <name>` (plus `labels`) running `podSpec`. */
function deployment(name: string, replicas: number, podSpec: Record<string, unknown>, labels: Record<string, string> = {}): Record<string, unknown> {
  return {
    apiVersion: 'apps/v1', kind: 'Deployment', metadata: { name },
    spec: {
      replicas,
      selector: { matchLabels: { app: name } },
      template: { metadata: { labels: { app: name, ...labels } }, spec: { terminationGracePeriodSeconds: 1, ...podSpec } },
    },
  };
}

/** A Deployment whose pods serve HTTP from one container while another crashes every second. */
function crashingDeployment(name: string, replicas: number, image: string): Record<string, unknown> {
  return deployment(name, replicas, {
    containers: [
      { name: 'web', image, command: httpServerCommand(PORT, BODY), ports: [{ containerPort: PORT }] },
      { name: 'main', image, command: ['/bin/sh', '-c', 'sleep 1; echo crashing; exit 1'] },
    ],
  }, { tier: 'web' });
}

/**
 * A Deployment whose pods crash only on `failingNode` (the downward API tells them where they
 * run), and prefer that node: the group's failures concentrate there.
 */
function nodeFailingDeployment(name: string, replicas: number, image: string, failingNode: string): Record<string, unknown> {
  return deployment(name, replicas, {
    affinity: { nodeAffinity: { preferredDuringSchedulingIgnoredDuringExecution: [{ weight: 100, preference: { matchFields: [{ key: 'metadata.name', operator: 'In', values: [failingNode] }] } }] } },
    containers: [{
      name: 'main', image, env: [{ name: 'NODE_NAME', valueFrom: { fieldRef: { fieldPath: 'spec.nodeName' } } }],
      command: ['/bin/sh', '-c', `if [ "$NODE_NAME" = ${failingNode} ]; then sleep 1; echo "failing on $NODE_NAME"; exit 1; fi; exec sleep 3600`],
    }],
  });
}

const DAY_MS = 86_400_000;
const ca = issueCertificateAuthority({ commonName: 'guard-test-ca', notBeforeMs: Date.now() - 60_000, notAfterMs: Date.now() + DAY_MS });

/** A token for the pod `namespace/name` (uid `uid`) of ServiceAccount `serviceAccount`, bound to it, for guard's audience. */
async function podToken(plane: ControlPlane, namespace: string, serviceAccount: string, name: string, uid: string, audience = TOKEN_AUDIENCE): Promise<string> {
  const res = await plane.request('POST', `/api/v1/namespaces/${namespace}/serviceaccounts/${serviceAccount}/token`, {
    apiVersion: 'authentication.k8s.io/v1', kind: 'TokenRequest',
    spec: { audiences: [audience], expirationSeconds: 600, boundObjectRef: { apiVersion: 'v1', kind: 'Pod', name, uid } },
  });
  assert.equal(res.status, 201, res.body);
  return (JSON.parse(res.body) as { status: { token: string } }).status.token;
}

/** POSTs `body` to the guard endpoint with `token`. */
function report(port: number, path: string, token: string, body: unknown): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = httpsRequest({ host: '127.0.0.1', port, path, method: 'POST', ca: ca.certPem, headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` } }, (res) => {
      let text = '';
      res.on('data', (c: Buffer) => { text += c.toString(); });
      res.on('end', () => resolve({ status: res.statusCode!, body: text }));
    });
    req.on('error', reject);
    req.end(JSON.stringify(body));
  });
}

/** True when `client` gets the page of the pod at `ip` (HTTP/1.0 through busybox nc, 2 s timeout). */
async function reaches(plane: ControlPlane, namespace: string, client: string, ip: string): Promise<boolean> {
  const res = await execInPod(plane, namespace, client, ['sh', '-c', `printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 2 ${ip} ${PORT}`]);
  return /^HTTP\/1\.[01] 200 /.test(res.stdout) && res.stdout.endsWith(BODY);
}

describe('guard on real pods', () => {
  let plane: ControlPlane;
  let namespace = '';
  let run: GuardUnderTest | undefined;
  let recorder: EventRecorder;
  let guard: GuardRuntime;
  let registry: Registry;
  let changePodBeforeQuarantine = false;
  const podsChangedBeforeQuarantine: string[] = [];

  before(async () => {
    plane = await testbed();
    await installCrds();
    namespace = await newNamespace('guard');
    const image = plane.images['test']!;
    // Everything starts at once: the crash loops, the OOM kills and the client pod overlap.
    // The dry-run policy watches its pod from its first crash: a policy created later sees only
    // the restarts after its first look (the status keeps one termination per container), and
    // the kubelet's back-off doubles between them.
    await createObject(`/apis/crowsnest.dev/v1alpha1/namespaces/${namespace}/guardpolicies`, guardPolicyManifest('dry', {
      targets: { podSelector: { matchLabels: { app: 'dry' } } },
      detectors: { crashLoop: { restarts: 2, window: '2m' } },
      actions: ['Event', 'Quarantine', 'Isolate'],
      cooldown: '0s',
      dryRun: true,
    }));
    // The taint case's policy, too, watches its pods from their first crash.
    await createObject(`/apis/crowsnest.dev/v1alpha1/namespaces/${namespace}/guardpolicies`, guardPolicyManifest('taint', {
      targets: { podSelector: { matchLabels: { app: 'taint' } } },
      detectors: { crashLoop: { restarts: 1, window: '2m' } },
      actions: ['Event', 'Preventive', 'Evict'],
      preventive: { restartSimilar: false, taintNode: { incidents: 2, window: '5m', ttl: '5m' } },
      cooldown: '0s',
    }));
    await Promise.all([
      createObject(`/apis/apps/v1/namespaces/${namespace}/deployments`, nodeFailingDeployment('taint', 2, image, FAILING_NODE)),
      createObject(`/apis/apps/v1/namespaces/${namespace}/deployments`, crashingDeployment('web', 3, image)),
      createObject(`/apis/apps/v1/namespaces/${namespace}/deployments`, crashingDeployment('dry', 1, image)),
      createObject(`/api/v1/namespaces/${namespace}/pods`, {
        apiVersion: 'v1', kind: 'Pod', metadata: { name: 'hog', labels: { app: 'hog' } },
        spec: {
          terminationGracePeriodSeconds: 1,
          // tail keeps the last "line" of /dev/zero (which has no newline) in memory: 64 MiB against a 16 MiB limit.
          containers: [{ name: 'main', image, command: ['/bin/sh', '-c', 'head -c 67108864 /dev/zero | tail'], resources: { limits: { memory: '16Mi' } } }],
        },
      }),
    ]);
    const serviceAccount = await plane.request('POST', `/api/v1/namespaces/${namespace}/serviceaccounts`, { metadata: { name: 'logs-agent' } });
    assert.equal(serviceAccount.status, 201, serviceAccount.body);
    const sleeper = ['/bin/sh', '-c', 'exec sleep 3600'];
    await Promise.all([
      runPod(plane, { namespace, name: 'client', image, command: sleeper, labels: { role: 'client' } }),
      // A pod our webhook would have given a sidecar (the annotation), declaring port 8080.
      createObject(`/api/v1/namespaces/${namespace}/pods`, {
        apiVersion: 'v1', kind: 'Pod', metadata: { name: 'threat', labels: { app: 'threat' }, annotations: { [GUARD_POLICY_ANNOTATION]: 'threat' } },
        spec: { nodeName: 'crowsnest-real-0', terminationGracePeriodSeconds: 1, containers: [{ name: 'main', image, command: sleeper, ports: [{ containerPort: PORT }] }] },
      }),
      // A pod of the log agent's ServiceAccount, on the same node.
      createObject(`/api/v1/namespaces/${namespace}/pods`, {
        apiVersion: 'v1', kind: 'Pod', metadata: { name: 'agent', labels: { app: 'agent' } },
        spec: { nodeName: 'crowsnest-real-0', serviceAccountName: 'logs-agent', terminationGracePeriodSeconds: 1, containers: [{ name: 'main', image, command: sleeper }] },
      }),
    ]);

    run = await runGuard(namespace, { ca });
    ({ guard, recorder, registry } = run);
    // A pod that changes between guard's look and its quarantine patch (a crash-looping pod's
    // status changes all the time) fails the patch's resourceVersion test and is read again. When
    // armed, the next quarantine patch meets a pod really changed meanwhile (by the administrator,
    // just before the patch goes out), so that path runs every time, with the chart's RBAC.
    const client = run.client;
    const send = client.json.bind(client);
    client.json = (async (path: string, init: RequestInit = {}) => {
      if (changePodBeforeQuarantine && init.method === 'PATCH' && init.contentType === 'application/json-patch+json' && !init.query?.['dryRun'] && /\/pods\/[^/]+$/.test(path)) {
        changePodBeforeQuarantine = false;
        const changed = await plane.request('PATCH', path, { metadata: { annotations: { 'test.crowsnest.dev/changed-meanwhile': 'true' } } }, { 'content-type': 'application/merge-patch+json' });
        assert.equal(changed.status, 200, changed.body);
        podsChangedBeforeQuarantine.push(path.split('/').at(-1)!);
      }
      return await send(path, init);
    }) as typeof client.json;
  });

  /**
   * The real nodes are shared with every other test: whatever happened, no taint of ours stays,
   * and no finalizer holds the namespace. Deleting the policy while guard runs lets guard do it;
   * then it is done by hand in case guard could not.
   */
  async function restoreNodes(): Promise<void> {
    const path = `/apis/crowsnest.dev/v1alpha1/namespaces/${namespace}/guardpolicies/taint`;
    await plane.request('DELETE', path);
    await eventually('the taint policy gone', async () => (await plane.request('GET', path)).status === 404, 15_000).catch(() => {});
    await plane.request('PATCH', path, { metadata: { finalizers: null } }, { 'content-type': 'application/merge-patch+json' });
    for (const name of REAL_NODES) {
      const node = await getObject<NodeLike>(`/api/v1/nodes/${name}`);
      const patch = node && removeTaintPatch(node, taintValue(namespace, 'taint'));
      if (patch) await plane.request('PATCH', `/api/v1/nodes/${name}`, patch, { 'content-type': 'application/json-patch+json' });
    }
  }

  after(async () => {
    if (namespace) await restoreNodes().catch((err: unknown) => console.log(`# guard test: restoring the nodes failed: ${String(err)}`));
    await run?.stop();
    if (namespace) await plane.request('DELETE', `/api/v1/namespaces/${namespace}`);
  });

  const pods = (selector: string) => listObjects<Pod>(`/api/v1/namespaces/${namespace}/pods?labelSelector=${encodeURIComponent(selector)}`);
  const guardPolicy = (name: string) => getObject<GuardPolicy>(`/apis/crowsnest.dev/v1alpha1/namespaces/${namespace}/guardpolicies/${name}`);

  it('quarantines one crash-looping pod of three (the rail), the ReplicaSet replaces it, and isolation cuts it off', { timeout: 180_000 }, async (t) => {
    // Before: every pod of the group serves the client, though its other container crashes.
    await eventually('the three web pods to serve', async () => {
      const serving = (await pods('app=web')).filter((p) => p.status.podIP);
      return serving.length === 3 && (await Promise.all(serving.map((p) => reaches(plane, namespace, 'client', p.status.podIP!)))).every(Boolean);
    }, 60_000);
    const before = new Map((await pods('app=web')).map((p) => [p.metadata.uid, p]));
    changePodBeforeQuarantine = true;

    await createObject(`/apis/crowsnest.dev/v1alpha1/namespaces/${namespace}/guardpolicies`, guardPolicyManifest('web', {
      targets: { podSelector: { matchLabels: { app: 'web' } } },
      detectors: { crashLoop: { restarts: 2, window: '2m' } },
      actions: ['Event', 'Quarantine', 'Isolate'],
      quarantine: { maxQuarantined: 1, ttl: '1h' },
      cooldown: '0s',
    }));

    let quarantined: Pod | undefined;
    await eventually('one web pod quarantined', async () => {
      quarantined = (await listObjects<Pod>(`/api/v1/namespaces/${namespace}/pods?labelSelector=${encodeURIComponent(QUARANTINE_LABEL)}`))[0];
      return quarantined !== undefined;
    }, 60_000);
    const pod = quarantined!;
    // Read again (GET) and judged again, the changed pod is the one quarantined: the retry did not
    // fail (then the rail would have let another crashing pod be quarantined instead).
    assert.deepEqual(podsChangedBeforeQuarantine, [pod.metadata.name], `the quarantine patch met a pod changed meanwhile, and quarantined it on the retry; incidents: ${JSON.stringify((await guardPolicy('web'))?.status?.incidents?.map((i) => [i.pod, i.actions]))}`);
    assert.ok(before.has(pod.metadata.uid), 'the quarantined pod is one of the crashing ones');
    assert.equal(pod.metadata.labels?.['app'], undefined, 'the owner\'s selector label is removed');
    assert.equal(pod.metadata.labels?.['tier'], 'web', 'labels the owner does not select on stay');
    assert.ok(!pod.metadata.ownerReferences?.some((r) => r.controller), 'the ReplicaSet no longer owns it');
    const record = JSON.parse(pod.metadata.annotations?.[QUARANTINE_ANNOTATION] ?? '{}') as { incident?: string; removedLabels?: Record<string, string> };
    assert.equal(record.incident, pod.metadata.labels?.[QUARANTINE_LABEL]);
    assert.equal(record.removedLabels?.['app'], 'web');
    assert.ok(record.removedLabels?.['pod-template-hash'], 'the ReplicaSet\'s hash label is kept in the record');

    // The real ReplicaSet controller replaces it: three pods carry app=web again, none of them the quarantined one.
    await eventually('the ReplicaSet to make a replacement', async () => {
      const owned = (await pods('app=web')).filter((p) => !p.metadata.deletionTimestamp);
      return owned.length === 3 && owned.every((p) => p.metadata.uid !== pod.metadata.uid) && owned.some((p) => !before.has(p.metadata.uid));
    }, 30_000);
    const deployment = await getObject<{ spec: { replicas: number } }>(`/apis/apps/v1/namespaces/${namespace}/deployments/web`);
    assert.equal(deployment?.spec.replicas, 3, 'guard never writes replicas');

    // Isolated: the quarantined pod no longer answers; a pod the policy did not isolate still does.
    const isolation = await getObject<{ spec: { policyTypes: string[]; podSelector: unknown } }>(`/apis/networking.k8s.io/v1/namespaces/${namespace}/networkpolicies/crowsnest-guard-isolate-${record.incident}`);
    assert.deepEqual(isolation?.spec.policyTypes, ['Ingress', 'Egress']);
    await eventually('the quarantined pod cut off', async () => !(await reaches(plane, namespace, 'client', pod.status.podIP!)), ENFORCED_WITHIN_MS);
    const other = (await pods('app=web')).find((p) => before.has(p.metadata.uid) && p.status.podIP);
    assert.ok(other && await reaches(plane, namespace, 'client', other.status.podIP!), 'a pod that is not isolated still serves');

    // The rail: the other crashing pods opened incidents too, and their quarantine was skipped.
    await eventually('incidents for the other crash-looping pods, quarantine skipped by the rail', async () => {
      const incidents = (await guardPolicy('web'))?.status?.incidents ?? [];
      return incidents.filter((i) => i.actions.some((a) => a.action === 'Quarantine' && a.outcome === 'Skipped' && /maxQuarantined/.test(a.message))).length >= 1;
    }, 60_000);
    const status = (await guardPolicy('web'))!.status!;
    assert.equal(status.quarantinedPods, 1);
    assert.equal((await listObjects<Pod>(`/api/v1/namespaces/${namespace}/pods?labelSelector=${encodeURIComponent(QUARANTINE_LABEL)}`)).length, 1, 'never more than one quarantined');
    const incident = status.incidents!.find((i) => i.id === record.incident)!;
    assert.equal(incident.detector, 'crashLoop');
    assert.equal(incident.pod, pod.metadata.name);
    assert.match(incident.evidence[0]!, /container restarts within 2m \(threshold 2\)/);
    assert.deepEqual(incident.actions.map((a) => `${a.action}:${a.outcome}`), ['Event:Taken', 'Quarantine:Taken', 'Isolate:Taken'], JSON.stringify(incident.actions));
    assert.ok(status.conditions?.some((c) => c.type === 'Degraded' && c.status === 'True'));

    // What it took (not asserted: timing on 2 shared cores), for the benchmark table.
    const latency = ((await registry.getSingleMetric('crowsnest_guard_detection_latency_seconds')?.get())?.values ?? []) as Array<{ metricName?: string; value: number }>;
    const sum = latency.find((v) => v.metricName?.endsWith('_sum'))?.value ?? 0;
    const count = latency.find((v) => v.metricName?.endsWith('_count'))?.value ?? 0;
    const quarantineTaken = incident.actions.find((a) => a.action === 'Quarantine')!.at;
    t.diagnostic(`detection latency (kubelet's last container state change → incident), mean of ${count}: ${count ? (sum / count).toFixed(2) : '-'} s; incident → quarantined: ${(Date.parse(quarantineTaken) - Date.parse(incident.openedAt)) / 1000} s (second resolution)`);

    // Every action is an Event on the pod.
    await recorder.flush();
    const events = await listObjects<{ reason: string; note: string }>(`/apis/events.k8s.io/v1/namespaces/${namespace}/events?fieldSelector=${encodeURIComponent(`regarding.name=${pod.metadata.name}`)}`);
    for (const reason of ['IncidentOpened', 'QuarantineTaken', 'IsolateTaken']) assert.ok(events.some((e) => e.reason === reason), `an Event ${reason} on the pod (got ${events.map((e) => e.reason).join(', ')})`);
  });

  it('crowsnest guard release gives a quarantined pod back to its owner; guard delete deletes one', { timeout: 120_000 }, async () => {
    const quarantinedPods = () => listObjects<Pod>(`/api/v1/namespaces/${namespace}/pods?labelSelector=${encodeURIComponent(QUARANTINE_LABEL)}`);
    const [pod] = await quarantinedPods();
    assert.ok(pod, 'the previous case left one pod quarantined');
    const incident = pod.metadata.labels![QUARANTINE_LABEL]!;
    const cli = async (args: string[]) => {
      let stdout = '';
      let stderr = '';
      const code = await main([...args, '-n', namespace, '--kubeconfig', plane.kubeconfigPath], { stdout: (t) => { stdout += t; }, stderr: (t) => { stderr += t; }, env: {}, stderrIsTTY: false });
      return { code, stdout, stderr };
    };
    const refused = await cli(['guard', 'release', 'client']);
    assert.equal(refused.code, 1);
    assert.match(refused.stderr, /^error: pod .*\/client is not quarantined by guard/);

    const released = await cli(['guard', 'release', pod.metadata.name]);
    assert.equal(released.code, 0, released.stderr);
    assert.match(released.stdout, new RegExp(`released: labels app=web, pod-template-hash=\\S+ restored, its owner adopts it again; NetworkPolicy crowsnest-guard-isolate-${incident} deleted`));
    assert.equal(await getObject(`/apis/networking.k8s.io/v1/namespaces/${namespace}/networkpolicies/crowsnest-guard-isolate-${incident}`), undefined);
    // Adopted again by its ReplicaSet (which then scales one pod away: maybe this one).
    await eventually('the released pod adopted or scaled away, three web pods owned', async () => {
      const back = await getObject<Pod>(`/api/v1/namespaces/${namespace}/pods/${pod.metadata.name}`);
      const adopted = back === undefined || back.metadata.deletionTimestamp !== undefined || Boolean(back.metadata.ownerReferences?.some((r) => r.controller && r.kind === 'ReplicaSet'));
      const owned = (await pods('app=web')).filter((p) => !p.metadata.deletionTimestamp && p.metadata.ownerReferences?.some((r) => r.controller));
      return adopted && owned.length === 3;
    }, 60_000);

    // The rail is free again: the group's crash-looping pods are quarantined one at a time.
    let next: Pod | undefined;
    await eventually('another quarantine, after the release', async () => {
      next = (await quarantinedPods()).find((p) => p.metadata.labels?.[QUARANTINE_LABEL] !== incident && !p.metadata.deletionTimestamp);
      return next !== undefined;
    }, 60_000);
    const deleted = await cli(['guard', 'delete', next!.metadata.name]);
    assert.equal(deleted.code, 0, deleted.stderr);
    assert.match(deleted.stdout, new RegExp(`^pod ${namespace}/${next!.metadata.name} deleted; NetworkPolicy crowsnest-guard-isolate-\\S+ deleted \\(incident \\S+ of GuardPolicy web\\)`));
    await eventually('the deleted pod gone', async () => {
      const gone = await getObject<Pod>(`/api/v1/namespaces/${namespace}/pods/${next!.metadata.name}`);
      return gone === undefined || gone.metadata.uid !== next!.metadata.uid;
    }, 30_000);
    assert.equal((await getObject<{ spec: { replicas: number } }>(`/apis/apps/v1/namespaces/${namespace}/deployments/web`))?.spec.replicas, 3, 'guard never writes replicas');
  });

  it('in dry run records what it would do and changes nothing', { timeout: 120_000 }, async () => {
    const [before] = await pods('app=dry');
    assert.ok(before);
    let incident: NonNullable<NonNullable<GuardPolicy['status']>['incidents']>[number] | undefined;
    await eventually('a dry-run incident', async () => {
      incident = (await guardPolicy('dry'))?.status?.incidents?.[0];
      return incident !== undefined;
    }, 60_000);
    assert.deepEqual(incident!.actions.map((a) => `${a.action}:${a.outcome}`), ['Event:Taken', 'Quarantine:DryRun', 'Isolate:DryRun']);
    assert.match(incident!.actions[1]!.message, /^dry run: would take the pod out of ReplicaSet/);
    const [after] = await pods('app=dry');
    assert.equal(after?.metadata.uid, before.metadata.uid, 'the same pod, still selected by its owner');
    assert.deepEqual(after?.metadata.labels, before.metadata.labels, 'labels unchanged');
    assert.deepEqual(Object.keys(after?.metadata.labels ?? {}).sort(), ['app', 'pod-template-hash', 'tier'], 'the template\'s labels, no quarantine label');
    assert.ok(after?.metadata.ownerReferences?.some((r) => r.controller && r.kind === 'ReplicaSet'), 'still owned by its ReplicaSet');
    assert.equal(after?.metadata.annotations?.[QUARANTINE_ANNOTATION], undefined);
    const isolations = await listObjects(`/apis/networking.k8s.io/v1/namespaces/${namespace}/networkpolicies?labelSelector=${encodeURIComponent(`${QUARANTINE_LABEL}=${incident!.id}`)}`);
    assert.equal(isolations.length, 0, 'no NetworkPolicy');
    assert.equal((await pods('app=dry')).length, 1, 'no replacement made');
  });

  it('opens an incident for a container the kernel OOM-kills', { timeout: 120_000 }, async () => {
    await createObject(`/apis/crowsnest.dev/v1alpha1/namespaces/${namespace}/guardpolicies`, guardPolicyManifest('hog', {
      targets: { podSelector: { matchLabels: { app: 'hog' } } },
      detectors: { oomKilled: { kills: 1, window: '10m' } },
      actions: ['Event'],
    }));
    let incident: NonNullable<NonNullable<GuardPolicy['status']>['incidents']>[number] | undefined;
    await eventually('an OOM incident', async () => {
      incident = (await guardPolicy('hog'))?.status?.incidents?.[0];
      return incident !== undefined;
    }, 60_000);
    assert.equal(incident!.detector, 'oomKilled');
    assert.equal(incident!.reason, 'OOMKilled');
    assert.match(incident!.evidence.join('\n'), /container main OOMKilled/);
    const [hog] = await pods('app=hog');
    // Between the first kill and the first restart the kubelet reports it as the current state (lastState is empty until then).
    assert.ok(hog?.status.containerStatuses?.some((c) => [c.state, c.lastState].some((s) => s?.terminated?.reason === 'OOMKilled')), 'the kubelet says OOMKilled');
  });

  it('takes a sidecar\'s report about its own pod through a real TokenReview: an undeclared listening port is a threat incident', { timeout: 60_000 }, async () => {
    await createObject(`/apis/crowsnest.dev/v1alpha1/namespaces/${namespace}/guardpolicies`, guardPolicyManifest('threat', {
      targets: { podSelector: { matchLabels: { app: 'threat' } } },
      detectors: { undeclaredPort: {} },
    }));
    const [threat] = await pods('app=threat');
    const [agent] = await pods('app=agent');
    assert.ok(threat && agent);
    const token = await podToken(plane, namespace, 'default', 'threat', threat.metadata.uid);
    const health: HealthReport = {
      sequence: 1, ports: [{ container: 'main', port: PORT, method: 'tcp', probes: 3, failures: 0 }],
      listening: [{ protocol: 'TCP', address: '0.0.0.0', port: PORT }, { protocol: 'TCP', address: '0.0.0.0', port: 4444 }, { protocol: 'TCP', address: '127.0.0.1', port: 5555 }],
    };
    // Not the guard audience (the API server's): refused. Another pod's token: refused for lack of a sidecar.
    assert.equal((await report(guard.endpoint.port, HEALTH_PATH, await podToken(plane, namespace, 'default', 'threat', threat.metadata.uid, 'https://kubernetes.default.svc'), health)).status, 401);
    assert.equal((await report(guard.endpoint.port, HEALTH_PATH, await podToken(plane, namespace, 'logs-agent', 'agent', agent.metadata.uid), health)).status, 403);
    const accepted = await report(guard.endpoint.port, HEALTH_PATH, token, health);
    assert.equal(accepted.status, 200, accepted.body);
    assert.deepEqual(JSON.parse(accepted.body), { reportAfterMs: 10_000 });

    let incident: NonNullable<NonNullable<GuardPolicy['status']>['incidents']>[number] | undefined;
    await eventually('a threat incident', async () => {
      incident = (await guardPolicy('threat'))?.status?.incidents?.[0];
      return incident !== undefined;
    }, 30_000);
    assert.equal(incident!.detector, 'undeclaredPort');
    assert.equal(incident!.reason, 'UndeclaredListeningPort');
    assert.equal(incident!.evidence[0], 'listening on TCP 0.0.0.0:4444; declared: TCP/8080', 'the declared port and the loopback listener are not counted');
  });

  it('takes log batches only from the log agent, about pods on its own node, each batch once', { timeout: 60_000 }, async () => {
    await createObject(`/apis/crowsnest.dev/v1alpha1/namespaces/${namespace}/guardpolicies`, guardPolicyManifest('noisy', {
      targets: { podSelector: { matchLabels: { app: 'agent' } } },
      detectors: { errorLogs: { pattern: 'panic', lines: 5, window: '1m' } },
    }));
    const [agent] = await pods('app=agent');
    const [client] = await pods('role=client');
    assert.ok(agent && client);
    const token = await podToken(plane, namespace, 'logs-agent', 'agent', agent.metadata.uid);
    const count = { namespace, pod: 'agent', podUid: agent.metadata.uid, container: 'main', policy: 'noisy', lines: 10, matched: 3, samples: ['panic: boom'] };
    const batch = (batchId: number, node = 'crowsnest-real-0', counts = [count]): LogBatch => ({ node, batchId, counts });

    assert.equal((await report(guard.endpoint.port, LOGS_PATH, token, batch(1, 'crowsnest-real-1'))).status, 403, 'a batch for another node');
    assert.equal((await report(guard.endpoint.port, LOGS_PATH, await podToken(plane, namespace, 'default', 'threat', (await pods('app=threat'))[0]!.metadata.uid), batch(1))).status, 403, 'a token that is not the agent\'s');
    if (client.spec?.nodeName !== 'crowsnest-real-0') {
      const elsewhere = { ...count, pod: client.metadata.name, podUid: client.metadata.uid };
      assert.equal((await report(guard.endpoint.port, LOGS_PATH, token, batch(1, 'crowsnest-real-0', [elsewhere]))).status, 403, 'counts about a pod of another node');
    }
    const first = await report(guard.endpoint.port, LOGS_PATH, token, batch(1));
    assert.equal(first.status, 200, first.body);
    const answer = JSON.parse(first.body) as LogAnswer;
    assert.equal(answer.accepted, true);
    assert.deepEqual(answer.watches, [{ namespace, pod: 'agent', podUid: agent.metadata.uid, containers: [], policy: 'noisy', pattern: '(?i:panic)' }]);
    // The same batch again (an agent restarted before it saw the answer): accepted, not counted.
    assert.equal((await report(guard.endpoint.port, LOGS_PATH, token, batch(1))).status, 200);
    assert.equal(guard.signals.of(agent.metadata.uid)?.errorLines.count(Date.now(), 60_000), 3);
    assert.equal((await report(guard.endpoint.port, LOGS_PATH, token, batch(2))).status, 200);

    let incident: NonNullable<NonNullable<GuardPolicy['status']>['incidents']>[number] | undefined;
    await eventually('an error-log incident', async () => {
      incident = (await guardPolicy('noisy'))?.status?.incidents?.[0];
      return incident !== undefined;
    }, 30_000);
    assert.equal(incident!.detector, 'errorLogs');
    assert.match(incident!.evidence[0]!, /^6 log lines matching \/panic\/ within 1m \(threshold 5\)$/);
    assert.match(incident!.evidence.join('\n'), /main: panic: boom/);
  });

  it('taints the real node where a group\'s failures concentrate: the replacements land on the other real node; deleting the policy removes the taint', { timeout: 90_000 }, async () => {
    const value = taintValue(namespace, 'taint');
    const node = (name: string) => getObject<NodeLike>(`/api/v1/nodes/${name}`);
    await eventually(`${FAILING_NODE} tainted by the policy`, async () => hasGuardTaint((await node(FAILING_NODE))!, value), 60_000);
    assert.ok(!hasGuardTaint((await node(REAL_NODES[1]!))!, value), 'the other real node is left schedulable');
    const incidents = (await guardPolicy('taint'))?.status?.incidents ?? [];
    const taken = incidents.flatMap((i) => i.actions).find((a) => a.action === 'Preventive' && a.outcome === 'Taken');
    assert.match(taken?.message ?? '', new RegExp(`^tainted node ${FAILING_NODE} guard\\.crowsnest\\.dev/failing=${value.replaceAll('.', '\\.')}:NoSchedule until `));

    // Evicted by the ladder's last step, the failing pods come back on the node without the taint, and stay up.
    await eventually(`both pods running on ${REAL_NODES[1]}`, async () => {
      const running = (await pods('app=taint')).filter((p) => !p.metadata.deletionTimestamp);
      return running.length === 2 && running.every((p) => p.spec?.nodeName === REAL_NODES[1] && p.status.phase === 'Running');
    }, 60_000);
    assert.ok(hasGuardTaint((await node(FAILING_NODE))!, value), 'one node at a time: the taint stays until its ttl');

    const path = `/apis/crowsnest.dev/v1alpha1/namespaces/${namespace}/guardpolicies/taint`;
    assert.equal((await plane.request('DELETE', path)).status, 200);
    await eventually('the taint removed, then the policy gone', async () => !hasGuardTaint((await node(FAILING_NODE))!, value) && (await plane.request('GET', path)).status === 404, 20_000);
  });
});
