/**
 * Guard's detection latency (`make bench BENCH=guard`): crash loops on the 2 real nodes of a
 * fresh testbed, failure → incident → quarantined. Guard runs in this process (registered with a
 * Manager as the operator registers it); a Deployment's containers exit a second after they start,
 * and a policy quarantines every pod that restarts once (no cooldown, no quarantine cap), so the
 * ReplicaSet's replacements keep failing and each one is an incident.
 *
 * Two figures per incident:
 * - kubelet → incident: guard's own histogram, crowsnest_guard_detection_latency_seconds (from the
 *   kubelet's container state change, second resolution, to the incident opening);
 * - restart visible → quarantined: this process polls the pods every 100 ms and takes the time
 *   from the first poll that shows a restart to the first that shows the quarantine label
 *   (the whole path: informer event, reconcile, status, Event, quarantine patch, watch back).
 */
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { load } from 'js-yaml';
import { Registry } from 'prom-client';
import { ControlPlane } from '../../testbed/controlplane.ts';
import { QUARANTINE_LABEL } from '../../src/guard/contract.ts';
import { registerGuard } from '../../src/guard/register.ts';
import { KubeClient } from '../../src/kube/client/client.ts';
import { KubeConfig } from '@kubernetes/client-node';
import { silentLogger } from '../../src/kube/logger-type.ts';
import { EventRecorder } from '../../src/kube/objects/events.ts';
import { Manager } from '../../src/kube/runtime/manager.ts';
import { CRD_DIR } from '../../src/operator/apis.ts';
import { issueCertificateAuthority, issueServingCertificate } from '../../src/kube/webhook/x509.ts';

const repo = join(import.meta.dirname, '..', '..');
const NAMESPACE = 'bench-guard';
const POLL_MS = 100;

export interface GuardBenchResult {
  /** restart visible in the API → quarantine label visible, per incident (ms). */
  readonly toQuarantineMs: number[];
  /** guard's histogram: kubelet's state change → incident. */
  readonly detection: { count: number; sumSeconds: number; buckets: Array<{ le: number; count: number }> };
}

interface Pod { metadata: { uid: string; labels?: Record<string, string> }; status: { containerStatuses?: Array<{ restartCount: number }> } }

/** The p-quantile (0–1) of `values`, nearest rank. */
export function quantile(values: readonly number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(p * sorted.length) - 1))]!;
}

export async function benchGuard(incidents: number, log: (line: string) => void): Promise<GuardBenchResult> {
  const plane = await ControlPlane.start({ kwokNodes: 0, realNodes: 2 });
  const stop = new AbortController();
  let running: Promise<unknown> | undefined;
  let client: KubeClient | undefined;
  // Guard's endpoint (unused here: no sidecar, no log agent) needs a serving certificate to start.
  const certDir = await mkdtemp(join(tmpdir(), 'bench-guard-'));
  const ca = issueCertificateAuthority({ commonName: 'bench-guard-ca', notBeforeMs: Date.now() - 60_000, notAfterMs: Date.now() + 3_600_000 });
  const serving = issueServingCertificate({ commonName: 'guard', hosts: ['127.0.0.1'], notBeforeMs: Date.now() - 60_000, notAfterMs: Date.now() + 3_600_000 }, ca);
  await writeFile(join(certDir, 'tls.crt'), serving.certPem);
  await writeFile(join(certDir, 'tls.key'), serving.keyPem);
  try {
    for (const file of await readdir(join(repo, CRD_DIR))) {
      const res = await plane.request('POST', '/apis/apiextensions.k8s.io/v1/customresourcedefinitions', load(await readFile(join(repo, CRD_DIR, file), 'utf8')));
      if (res.status !== 201) throw new Error(`installing ${file}: ${res.status} ${res.body}`);
    }
    await waitFor(async () => (await plane.request('GET', '/apis/crowsnest.dev/v1alpha1/guardpolicies?limit=1')).status === 200, 30_000, 'the GuardPolicy CRD served');
    if ((await plane.request('POST', '/api/v1/namespaces', { metadata: { name: NAMESPACE } })).status !== 201) throw new Error('namespace');
    await plane.waitForDefaultServiceAccount(NAMESPACE);

    const kc = new KubeConfig();
    kc.loadFromFile(plane.kubeconfigPath);
    client = new KubeClient(kc);
    const registry = new Registry();
    const manager = new Manager({ client, recorder: new EventRecorder({ client, reportingInstance: 'bench-guard', registry }), registry, logger: silentLogger, workers: 2 });
    registerGuard(manager, { namespace: 'crowsnest-system', port: 0, url: 'https://unused:9445', logAgentServiceAccount: 'crowsnest-system/logs-agent', reportIntervalMs: 10_000 }, certDir, undefined, '127.0.0.1');
    running = manager.run(stop.signal);
    running.catch((err: unknown) => log(`manager: ${String(err)}`));

    const created = await plane.request('POST', `/apis/crowsnest.dev/v1alpha1/namespaces/${NAMESPACE}/guardpolicies`, {
      apiVersion: 'crowsnest.dev/v1alpha1', kind: 'GuardPolicy', metadata: { name: 'crash' },
      spec: {
        targets: { podSelector: { matchLabels: { app: 'crash' } } }, detectors: { crashLoop: { restarts: 1, window: '10m' } },
        actions: ['Event', 'Quarantine'], quarantine: { maxQuarantined: '100%', ttl: '1h' }, cooldown: '0s',
      },
    });
    if (created.status !== 201) throw new Error(`policy: ${created.status} ${created.body}`);
    const image = plane.images['test']!;
    const deployment = await plane.request('POST', `/apis/apps/v1/namespaces/${NAMESPACE}/deployments`, {
      apiVersion: 'apps/v1', kind: 'Deployment', metadata: { name: 'crash' },
      spec: {
        replicas: 4, selector: { matchLabels: { app: 'crash' } },
        template: { metadata: { labels: { app: 'crash' } }, spec: { terminationGracePeriodSeconds: 0, containers: [{ name: 'main', image, command: ['/bin/sh', '-c', 'sleep 1; exit 1'] }] } },
      },
    });
    if (deployment.status !== 201) throw new Error(`deployment: ${deployment.status} ${deployment.body}`);

    const restartedAt = new Map<string, number>();
    const toQuarantineMs: number[] = [];
    const done = new Set<string>();
    const deadline = Date.now() + 60_000 + incidents * 15_000;
    while (toQuarantineMs.length < incidents) {
      if (Date.now() > deadline) throw new Error(`only ${toQuarantineMs.length} of ${incidents} incidents in time`);
      const res = await plane.request('GET', `/api/v1/namespaces/${NAMESPACE}/pods`);
      const now = performance.now();
      for (const pod of (JSON.parse(res.body) as { items: Pod[] }).items) {
        const uid = pod.metadata.uid;
        if (done.has(uid)) continue;
        if (pod.metadata.labels?.[QUARANTINE_LABEL] !== undefined) {
          done.add(uid);
          const from = restartedAt.get(uid);
          // Quarantined before a poll saw its restart: no measure of this one.
          if (from !== undefined) {
            toQuarantineMs.push(now - from);
            log(`incident ${toQuarantineMs.length} (of ${incidents} wanted): ${(now - from).toFixed(0)} ms`);
          }
        } else if (!restartedAt.has(uid) && (pod.status.containerStatuses ?? []).some((c) => c.restartCount > 0)) {
          restartedAt.set(uid, now);
        }
      }
      await new Promise((resolve) => setTimeout(resolve, POLL_MS));
    }
    const values = ((await registry.getSingleMetric('crowsnest_guard_detection_latency_seconds')?.get())?.values ?? []) as Array<{ metricName?: string; value: number; labels: Record<string, string | number> }>;
    const buckets = values.filter((v) => v.metricName?.endsWith('_bucket') && v.labels['le'] !== '+Inf').map((v) => ({ le: Number(v.labels['le']), count: v.value }));
    return {
      toQuarantineMs,
      detection: { count: values.find((v) => v.metricName?.endsWith('_count'))?.value ?? 0, sumSeconds: values.find((v) => v.metricName?.endsWith('_sum'))?.value ?? 0, buckets },
    };
  } finally {
    stop.abort();
    await running?.catch(() => {});
    await client?.close();
    // The testbed's components are unreferenced children: with nothing else pending, the loop
    // would end while stop() waits for their exit events, leaving run.ts's await unsettled.
    const keepAlive = setInterval(() => {}, 1_000);
    try {
      await plane.stop();
    } finally {
      clearInterval(keepAlive);
    }
    await rm(certDir, { recursive: true, force: true });
  }
}

async function waitFor(condition: () => Promise<boolean>, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
}
