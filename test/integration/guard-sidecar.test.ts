/**
 * Guard's health sidecar for real: the chart's MutatingWebhookConfiguration sends pod CREATEs of
 * namespaces labelled `sidecar-injection: enabled` to the injection handler, registered with a
 * Manager as the operator registers it (src/guard/inject-register.ts, and the self-managed
 * certificate keeping the configuration's caBundle, src/operator/webhook-certificates.ts), in
 * this process, beside guard itself (its endpoint and controller, src/guard/register.ts); a pod
 * it injected runs on a real node with the sidecar beside a busybox app, and the sidecar's reports
 * reach guard's endpoint (HTTPS with the CA the webhook handed out, the pod's projected token
 * checked by a real TokenReview) and open incidents in the GuardPolicy's status (dry run: no
 * action is taken).
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { loadAll } from 'js-yaml';
import { Registry } from 'prom-client';
import { freePort } from '../../testbed/controlplane.ts';
import { KubeClient } from '../../src/kube/client/client.ts';
import { silentLogger } from '../../src/kube/logger-type.ts';
import { EventRecorder } from '../../src/kube/objects/events.ts';
import type { KubeObject } from '../../src/kube/objects/resources.ts';
import { Manager } from '../../src/kube/runtime/manager.ts';
import type { GuardPolicy } from '../../src/guard/api.ts';
import { registerSidecarInjection } from '../../src/guard/inject-register.ts';
import { registerGuard } from '../../src/guard/register.ts';
import { registerWebhookCertificates } from '../../src/operator/webhook-certificates.ts';
import { parseSamples, samplesOf } from '../helpers/exposition.ts';
import { installCrds } from './crds.ts';
import { crowsnestImage } from './prober-image.ts';
import { adminKubeConfig, eventually, execInPod, fetchFromHost, getObject, newNamespace, ON_KWOK_NODES, runPod, testbed, waitForPod } from './testbed.ts';

const run = promisify(execFile);
const chart = join(import.meta.dirname, '..', '..', 'deploy', 'helm', 'crowsnest');
const SCOPE_LABEL = 'guard-sidecar-test.crowsnest.dev/scope';

type Incident = NonNullable<NonNullable<GuardPolicy['status']>['incidents']>[number];

interface Container { name: string; restartPolicy?: string; env?: Array<{ name: string; value?: string }> }
interface Pod {
  metadata: { name: string; annotations?: Record<string, string> };
  spec: { initContainers?: Container[]; containers: Container[] };
}

describe('guard health sidecar: injected by the API server\'s call, running in a real pod', () => {
  let stop: AbortController;
  let running: Promise<unknown>;
  let client: KubeClient;
  let certDir = '';
  let configurationName = '';
  let labelled = '';
  let unlabelled = '';

  before(async () => {
    const plane = await testbed();
    await installCrds();
    const hostIp = plane.network?.hostIp ?? '127.0.0.1';
    const operatorNamespace = await newNamespace('guard-op');
    certDir = await mkdtemp(join(tmpdir(), 'guard-certs-'));
    const release = `g${operatorNamespace.slice(-6)}`;
    configurationName = `${release}-crowsnest-guard-sidecar`;

    // What the operator registers for guard's injection, in this process.
    client = new KubeClient(await adminKubeConfig());
    const registry = new Registry();
    const webhookPort = await freePort();
    const manager = new Manager({
      client, recorder: new EventRecorder({ client, reportingInstance: 'guard-sidecar-test', registry }), registry, logger: silentLogger,
      webhookServer: { host: hostIp, port: webhookPort, certDir, certificatePollIntervalMs: 1_000 },
    });
    // Guard with its endpoint on the host's bridge address (pods reach it there), asking for a
    // report a second; then its sidecar injection, as guard's catalog entry registers both.
    const guardPort = await freePort();
    const signalsUrl = `https://${hostIp}:${guardPort}`;
    registerGuard(manager, {
      namespace: operatorNamespace, port: guardPort, url: signalsUrl, logAgentServiceAccount: `${operatorNamespace}/logs-agent`, reportIntervalMs: 1_000,
    }, certDir, undefined, hostIp);
    registerSidecarInjection(manager, { namespace: operatorNamespace, certDir, image: await crowsnestImage(plane), signalsUrl, probePeriod: '1s', probeTimeout: '500ms' });
    // As src/operator/run.ts does for every capability's webhook configuration: the operator's
    // self-managed certificate, and the caBundle of guard's configuration kept equal to its CA.
    registerWebhookCertificates(manager, {
      mode: 'self', namespace: operatorNamespace, secret: `${release}-webhook-cert`, hosts: [hostIp, '127.0.0.1'], certDir, configurations: [configurationName],
    });
    stop = new AbortController();
    running = manager.run(stop.signal);
    let failure: unknown;
    running.catch((err: unknown) => (failure = err));
    await eventually('the webhook server to listen', () => {
      if (failure) throw failure;
      return manager.runningWebhookServer !== undefined;
    }, 30_000);

    // The chart's configuration, pointed here and scoped to this file's namespaces; no caBundle.
    const { stdout } = await run(join(plane.binDir, 'helm'), [
      'template', release, chart, '--namespace', operatorNamespace, '--kube-version', 'v1.35.4', '--show-only', 'templates/guard-sidecar.yaml',
      '--set', 'guard.enabled=true', '--set', `webhook.url=https://${hostIp}:${webhookPort}`,
      '--set-json', `guard.sidecar.namespaceSelectorExpressions=[{"key":"${SCOPE_LABEL}","operator":"In","values":["${operatorNamespace}"]}]`,
    ]);
    const configuration = (loadAll(stdout) as Array<KubeObject & { webhooks: Array<{ clientConfig: Record<string, unknown> }> } | null>).find((d) => d?.kind === 'MutatingWebhookConfiguration');
    assert.ok(configuration, 'the chart renders guard\'s MutatingWebhookConfiguration');
    assert.equal(configuration.metadata?.name, configurationName);
    assert.equal(configuration.webhooks[0]!.clientConfig['caBundle'], undefined);
    const created = await plane.request('POST', '/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations', configuration);
    assert.equal(created.status, 201, created.body);

    const scoped = async (prefix: string, labels: Record<string, string>): Promise<string> => {
      const namespace = await newNamespace(prefix);
      const res = await plane.request('PATCH', `/api/v1/namespaces/${namespace}`, { metadata: { labels: { [SCOPE_LABEL]: operatorNamespace, ...labels } } }, { 'content-type': 'application/merge-patch+json' });
      assert.equal(res.status, 200, res.body);
      await plane.waitForDefaultServiceAccount(namespace);
      const policy = await plane.request('POST', `/apis/crowsnest.dev/v1alpha1/namespaces/${namespace}/guardpolicies`, {
        apiVersion: 'crowsnest.dev/v1alpha1', kind: 'GuardPolicy', metadata: { name: 'web' },
        spec: { targets: { podSelector: { matchLabels: { app: 'web' } } }, detectors: { health: { failures: 3, window: '2m' }, undeclaredPort: {} }, dryRun: true },
      });
      assert.equal(policy.status, 201, policy.body);
      return namespace;
    };
    labelled = await scoped('guard-on', { 'sidecar-injection': 'enabled' });
    unlabelled = await scoped('guard-off', {});
  });

  after(async () => {
    const plane = await testbed();
    if (configurationName) await plane.request('DELETE', `/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations/${configurationName}`);
    for (const namespace of [labelled, unlabelled]) if (namespace) await plane.request('DELETE', `/api/v1/namespaces/${namespace}`);
    stop?.abort();
    await running?.catch(() => {});
    await client?.close();
    await rm(certDir, { recursive: true, force: true });
  });

  const dryRunCreate = async (namespace: string, name: string, labels: Record<string, string>): Promise<Pod> => {
    const plane = await testbed();
    const res = await plane.request('POST', `/api/v1/namespaces/${namespace}/pods?dryRun=All`, {
      apiVersion: 'v1', kind: 'Pod', metadata: { name, labels }, spec: { ...ON_KWOK_NODES, containers: [{ name: 'app', image: 'registry.invalid/app:1', ports: [{ containerPort: 8080 }] }] },
    });
    assert.equal(res.status, 201, res.body);
    return JSON.parse(res.body) as Pod;
  };
  const sidecarOf = (pod: Pod): Container | undefined => pod.spec.initContainers?.find((c) => c.name === 'crowsnest-guard');

  it('the operator keeps the caBundle of guard\'s configuration, and the API server has the webhook inject a selected pod in a labelled namespace, and only there', async () => {
    const plane = await testbed();
    const ca = (await readFile(join(certDir, 'ca.crt'), 'utf8'));
    await eventually('the caBundle of guard\'s configuration is the operator\'s CA', async () => {
      const res = await plane.request('GET', `/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations/${configurationName}`);
      const bundle = (JSON.parse(res.body) as { webhooks?: Array<{ clientConfig?: { caBundle?: string } }> }).webhooks?.[0]?.clientConfig?.caBundle;
      return bundle !== undefined && Buffer.from(bundle, 'base64').toString() === ca;
    }, 30_000);
    let n = 0;
    let injected: Pod | undefined;
    // The informer and the API server's view of the new configuration take a moment.
    await eventually('a pod CREATE in the labelled namespace comes back with the sidecar', async () => {
      injected = await dryRunCreate(labelled, `web-${n++}`, { app: 'web' });
      return sidecarOf(injected) !== undefined;
    }, 30_000);
    const sidecar = sidecarOf(injected!)!;
    assert.equal(sidecar.restartPolicy, 'Always', 'a native sidecar');
    assert.equal(injected!.metadata.annotations?.['guard.crowsnest.dev/policy'], 'web');
    assert.equal(sidecar.env?.find((e) => e.name === 'CROWSNEST_GUARD_DECLARED_PORTS')?.value, '[{"container":"app","port":8080,"protocol":"TCP"}]');
    assert.equal(sidecarOf(await dryRunCreate(unlabelled, 'web-x', { app: 'web' })), undefined, 'a namespace without sidecar-injection: enabled is not sent to the webhook');
    assert.equal(sidecarOf(await dryRunCreate(labelled, 'db-x', { app: 'db' })), undefined, 'a pod no GuardPolicy selects is left alone');
  });

  it('in real pods, reports declared ports healthy to guard; an app that stops listening is a health incident, a port a shell opens a threat incident', async () => {
    const plane = await testbed();
    // Guard keeps one open incident per pod: one pod for each signal, on both real nodes.
    const [failing, threat] = ['web-failing', 'web-threat'];
    // busybox httpd in the background (a shell may kill it), the container kept alive by sleep.
    const command = ['/bin/sh', '-c', 'mkdir -p /tmp/www && echo shop > /tmp/www/index.html && httpd -p 8080 -h /tmp/www && exec sleep 3600'];
    const ready = (p: unknown): boolean => (p as { status: { conditions?: Array<{ type: string; status: string }> } }).status.conditions?.some((c) => c.type === 'Ready' && c.status === 'True') === true;
    const pods = await Promise.all([failing, threat].map(async (name, i) => {
      await runPod(plane, {
        namespace: labelled, name, image: plane.images['test']!, node: `crowsnest-real-${i}`, labels: { app: 'web' }, timeoutMs: 120_000, command,
        spec: { containers: [{ name: 'main', image: plane.images['test']!, command, ports: [{ name: 'http', containerPort: 8080 }] }] },
      });
      return await waitForPod(plane, labelled, name, ready, 'Ready (its sidecar ready)', 60_000);
    }));
    const scrape = async (i: number) => parseSamples((await fetchFromHost(pods[i]!.status.podIP!, 19091, '/metrics')).body);
    const incidents = async (name: string) => (await getObject<GuardPolicy>(`/apis/crowsnest.dev/v1alpha1/namespaces/${labelled}/guardpolicies/web`))?.status?.incidents?.filter((i) => i.pod === name) ?? [];

    for (const i of [0, 1]) {
      await eventually('passing HTTP probes of main:8080, reported to guard', async () => {
        const samples = await scrape(i);
        return samplesOf(samples, 'crowsnest_guard_sidecar_port_up', { container: 'main', port: '8080', method: 'http' })[0]?.value === 1
          && (samplesOf(samples, 'crowsnest_guard_sidecar_reports_total', { result: 'accepted' })[0]?.value ?? 0) >= 1;
      }, 60_000);
    }
    assert.deepEqual([...await incidents(failing), ...await incidents(threat)], [], 'healthy pods with only their declared ports open have no incident');

    const [stopped, opened] = await Promise.all([
      execInPod(plane, labelled, failing, ['killall', 'httpd']),
      execInPod(plane, labelled, threat, ['/bin/sh', '-c', 'nc -l -p 7777 </dev/null >/dev/null 2>&1 &']),
    ]);
    assert.equal(stopped.exitCode, 0, stopped.stderr);
    assert.equal(opened.exitCode, 0, opened.stderr);
    let health: Incident | undefined;
    let undeclared: Incident | undefined;
    await eventually('a health incident and a threat incident', async () => {
      health = (await incidents(failing)).find((i) => i.detector === 'health');
      undeclared = (await incidents(threat)).find((i) => i.detector === 'undeclaredPort');
      return health !== undefined && undeclared !== undefined;
    }, 30_000);
    assert.equal(health!.reason, 'HealthChecksFailing');
    assert.match(undeclared!.evidence.join('\n'), /TCP [^ ]*:7777/, JSON.stringify(undeclared));

    const failingSamples = await scrape(0);
    const refused = samplesOf(failingSamples, 'crowsnest_guard_sidecar_probe_failures_total', { container: 'main', port: '8080', reason: 'refused' });
    assert.ok(refused.reduce((sum, s) => sum + s.value, 0) >= 3, JSON.stringify(refused));
    assert.equal(samplesOf(failingSamples, 'crowsnest_guard_sidecar_listening_sockets', { protocol: 'TCP', port: '8080' }).length, 0, 'the stopped app\'s socket is gone');
    assert.equal(samplesOf(await scrape(1), 'crowsnest_guard_sidecar_listening_sockets', { protocol: 'TCP', port: '7777' })[0]?.value, 1, 'the shell\'s listener is in the metrics');
  });
});
