/**
 * Guard against real pods on the real nodes: containers that really crash and really get
 * OOM-killed by the kernel, a real ReplicaSet controller making replacements, a real
 * NetworkPolicy enforcer cutting a quarantined pod off. Guard runs in this process as one operator
 * replica (registered with a Manager as `crowsnest operator --controllers=guard` registers it).
 *
 * The cases share the testbed's time: their workloads start together, and each policy uses short
 * windows and no cooldown.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { Registry } from 'prom-client';
import type { ControlPlane } from '../../testbed/controlplane.ts';
import type { GuardPolicy } from '../../src/guard/api.ts';
import { QUARANTINE_ANNOTATION, QUARANTINE_LABEL } from '../../src/guard/contract.ts';
import { registerGuard } from '../../src/guard/register.ts';
import { KubeClient } from '../../src/kube/client/client.ts';
import { silentLogger } from '../../src/kube/logger-type.ts';
import { EventRecorder } from '../../src/kube/objects/events.ts';
import { Manager } from '../../src/kube/runtime/manager.ts';
import { installCrds } from './crds.ts';
import { adminKubeConfig, eventually, execInPod, getObject, httpServerCommand, listObjects, newNamespace, runPod, testbed } from './testbed.ts';

const PORT = 8080;
const BODY = 'guarded';
/** How long a NetworkPolicy change may take to be enforced. */
const ENFORCED_WITHIN_MS = 30_000;

interface Pod {
  metadata: { name: string; namespace: string; uid: string; labels?: Record<string, string>; annotations?: Record<string, string>; ownerReferences?: Array<{ kind: string; name: string; controller?: boolean }>; deletionTimestamp?: string };
  status: { phase?: string; podIP?: string; containerStatuses?: Array<{ name: string; restartCount: number; lastState?: { terminated?: { reason?: string } } }> };
}

/** A Deployment whose pods serve HTTP from one container while another crashes every second. */
function crashingDeployment(name: string, replicas: number, image: string): Record<string, unknown> {
  return {
    apiVersion: 'apps/v1', kind: 'Deployment', metadata: { name },
    spec: {
      replicas,
      selector: { matchLabels: { app: name } },
      template: {
        metadata: { labels: { app: name, tier: 'web' } },
        spec: {
          terminationGracePeriodSeconds: 1,
          containers: [
            { name: 'web', image, command: httpServerCommand(PORT, BODY), ports: [{ containerPort: PORT }] },
            { name: 'main', image, command: ['/bin/sh', '-c', 'sleep 1; echo crashing; exit 1'] },
          ],
        },
      },
    },
  };
}

function policy(name: string, spec: Record<string, unknown>): Record<string, unknown> {
  return { apiVersion: 'crowsnest.dev/v1alpha1', kind: 'GuardPolicy', metadata: { name }, spec };
}

async function create(plane: ControlPlane, path: string, body: Record<string, unknown>): Promise<void> {
  const res = await plane.request('POST', path, body);
  assert.equal(res.status, 201, res.body);
}

/** True when `client` gets the page of the pod at `ip` (HTTP/1.0 through busybox nc, 2 s timeout). */
async function reaches(plane: ControlPlane, namespace: string, client: string, ip: string): Promise<boolean> {
  const res = await execInPod(plane, namespace, client, ['sh', '-c', `printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 2 ${ip} ${PORT}`]);
  return /^HTTP\/1\.[01] 200 /.test(res.stdout) && res.stdout.endsWith(BODY);
}

describe('guard on real pods', () => {
  let plane: ControlPlane;
  let namespace = '';
  let client: KubeClient;
  let recorder: EventRecorder;
  const stop = new AbortController();
  let running: Promise<unknown> | undefined;
  const registry = new Registry();

  before(async () => {
    plane = await testbed();
    await installCrds();
    namespace = await newNamespace('guard');
    const image = plane.images['test']!;
    // Everything starts at once: the crash loops, the OOM kills and the client pod overlap.
    await Promise.all([
      create(plane, `/apis/apps/v1/namespaces/${namespace}/deployments`, crashingDeployment('web', 3, image)),
      create(plane, `/apis/apps/v1/namespaces/${namespace}/deployments`, crashingDeployment('dry', 1, image)),
      create(plane, `/api/v1/namespaces/${namespace}/pods`, {
        apiVersion: 'v1', kind: 'Pod', metadata: { name: 'hog', labels: { app: 'hog' } },
        spec: {
          terminationGracePeriodSeconds: 1,
          // tail keeps the last "line" of /dev/zero (which has no newline) in memory: 64 MiB against a 16 MiB limit.
          containers: [{ name: 'main', image, command: ['/bin/sh', '-c', 'head -c 67108864 /dev/zero | tail'], resources: { limits: { memory: '16Mi' } } }],
        },
      }),
    ]);
    await runPod(plane, { namespace, name: 'client', image, command: ['/bin/sh', '-c', 'exec sleep 3600'], labels: { role: 'client' } });

    client = new KubeClient(await adminKubeConfig());
    recorder = new EventRecorder({ client, reportingInstance: 'guard-test', registry });
    const manager = new Manager({ client, recorder, registry, logger: silentLogger, workers: 2 });
    registerGuard(manager, { namespace: 'crowsnest-system', port: 0, url: 'https://unused:9445', reportIntervalMs: 10_000 });
    running = manager.run(stop.signal);
  });

  after(async () => {
    stop.abort();
    await running?.catch(() => {});
    await recorder?.flush().catch(() => {});
    await client?.close();
    if (namespace) await plane.request('DELETE', `/api/v1/namespaces/${namespace}`);
  });

  const pods = (selector: string) => listObjects<Pod>(`/api/v1/namespaces/${namespace}/pods?labelSelector=${encodeURIComponent(selector)}`);
  const guardPolicy = (name: string) => getObject<GuardPolicy>(`/apis/crowsnest.dev/v1alpha1/namespaces/${namespace}/guardpolicies/${name}`);

  it('quarantines one crash-looping pod of three (the rail), the ReplicaSet replaces it, and isolation cuts it off', { timeout: 180_000 }, async () => {
    // Before: every pod of the group serves the client, though its other container crashes.
    await eventually('the three web pods to serve', async () => {
      const serving = (await pods('app=web')).filter((p) => p.status.podIP);
      return serving.length === 3 && (await Promise.all(serving.map((p) => reaches(plane, namespace, 'client', p.status.podIP!)))).every(Boolean);
    }, 60_000);
    const before = new Map((await pods('app=web')).map((p) => [p.metadata.uid, p]));

    await create(plane, `/apis/crowsnest.dev/v1alpha1/namespaces/${namespace}/guardpolicies`, policy('web', {
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
    assert.deepEqual(incident.actions.map((a) => `${a.action}:${a.outcome}`), ['Event:Taken', 'Quarantine:Taken', 'Isolate:Taken']);
    assert.ok(status.conditions?.some((c) => c.type === 'Degraded' && c.status === 'True'));

    // Every action is an Event on the pod.
    await recorder.flush();
    const events = await listObjects<{ reason: string; note: string }>(`/apis/events.k8s.io/v1/namespaces/${namespace}/events?fieldSelector=${encodeURIComponent(`regarding.name=${pod.metadata.name}`)}`);
    for (const reason of ['IncidentOpened', 'QuarantineTaken', 'IsolateTaken']) assert.ok(events.some((e) => e.reason === reason), `an Event ${reason} on the pod (got ${events.map((e) => e.reason).join(', ')})`);
  });

  it('in dry run records what it would do and changes nothing', { timeout: 120_000 }, async () => {
    const [before] = await pods('app=dry');
    assert.ok(before);
    await create(plane, `/apis/crowsnest.dev/v1alpha1/namespaces/${namespace}/guardpolicies`, policy('dry', {
      targets: { podSelector: { matchLabels: { app: 'dry' } } },
      detectors: { crashLoop: { restarts: 2, window: '2m' } },
      actions: ['Event', 'Quarantine', 'Isolate'],
      cooldown: '0s',
      dryRun: true,
    }));
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
    assert.ok(after?.metadata.ownerReferences?.some((r) => r.controller && r.kind === 'ReplicaSet'), 'still owned by its ReplicaSet');
    assert.equal(after?.metadata.annotations?.[QUARANTINE_ANNOTATION], undefined);
    const isolations = await listObjects(`/apis/networking.k8s.io/v1/namespaces/${namespace}/networkpolicies?labelSelector=${encodeURIComponent(`${QUARANTINE_LABEL}=${incident!.id}`)}`);
    assert.equal(isolations.length, 0, 'no NetworkPolicy');
    assert.equal((await pods('app=dry')).length, 1, 'no replacement made');
  });

  it('opens an incident for a container the kernel OOM-kills', { timeout: 120_000 }, async () => {
    await create(plane, `/apis/crowsnest.dev/v1alpha1/namespaces/${namespace}/guardpolicies`, policy('hog', {
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
    assert.ok(hog?.status.containerStatuses?.some((c) => c.lastState?.terminated?.reason === 'OOMKilled'), 'the kubelet says OOMKilled');
  });
});
