/**
 * Guard's health sidecar for real: the chart's MutatingWebhookConfiguration sends pod CREATEs of
 * namespaces labelled `sidecar-injection: enabled` to the injection handler, registered with a
 * Manager as the operator registers it (src/guard/inject-register.ts, and the self-managed
 * certificate keeping the configuration's caBundle, src/operator/webhook-certificates.ts), in
 * this process; a pod it
 * injected runs on a real node with the sidecar beside a busybox app, and the sidecar's reports
 * go to a test receiver standing in for guard's endpoint (HTTPS with the CA the webhook handed
 * out; the Bearer token is the pod's projected token, whose claims the receiver reads).
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { createServer, type Server } from 'node:https';
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
import type { HealthReport } from '../../src/guard/contract.ts';
import { registerSidecarInjection } from '../../src/guard/inject-register.ts';
import { registerWebhookCertificates } from '../../src/operator/webhook-certificates.ts';
import { parseSamples, samplesOf } from '../helpers/exposition.ts';
import { installCrds } from './crds.ts';
import { crowsnestImage } from './prober-image.ts';
import { adminKubeConfig, eventually, execInPod, fetchFromHost, newNamespace, ON_KWOK_NODES, runPod, testbed, waitForPod } from './testbed.ts';

const run = promisify(execFile);
const chart = join(import.meta.dirname, '..', '..', 'deploy', 'helm', 'crowsnest');
const SCOPE_LABEL = 'guard-sidecar-test.crowsnest.dev/scope';

interface Container { name: string; restartPolicy?: string; env?: Array<{ name: string; value?: string }> }
interface Pod {
  metadata: { name: string; annotations?: Record<string, string> };
  spec: { initContainers?: Container[]; containers: Container[] };
}

/** What a report says and who sent it (the projected token's claims, not checked: a test receiver). */
interface Received {
  readonly pod: string;
  readonly audience: readonly string[];
  readonly report: HealthReport;
}

/** Stands in for guard's endpoint (guard-core's): keeps every report, asks for one a second. */
class Receiver {
  readonly received: Received[] = [];
  readonly server: Server;

  constructor(cert: string, key: string) {
    this.server = createServer({ cert, key }, (req, res) => {
      let body = '';
      req.on('data', (c: Buffer) => { body += c.toString(); });
      req.on('end', () => {
        const token = (req.headers.authorization ?? '').replace(/^Bearer /, '');
        const claims = JSON.parse(Buffer.from(token.split('.')[1] ?? '', 'base64url').toString() || '{}') as { aud?: string[]; 'kubernetes.io'?: { pod?: { name?: string } } };
        this.received.push({ pod: claims['kubernetes.io']?.pod?.name ?? '', audience: claims.aud ?? [], report: JSON.parse(body) as HealthReport });
        const text = JSON.stringify({ reportAfterMs: 1_000 });
        res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) }).end(text);
      });
    });
  }

  of(pod: string): Received[] {
    return this.received.filter((r) => r.pod === pod);
  }
}

describe('guard health sidecar: injected by the API server\'s call, running in a real pod', () => {
  let stop: AbortController;
  let running: Promise<unknown>;
  let client: KubeClient;
  let receiver: Receiver;
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
    const receiverPort = await freePort();
    registerSidecarInjection(manager, {
      namespace: operatorNamespace, certDir, image: await crowsnestImage(plane), signalsUrl: `https://${hostIp}:${receiverPort}`, probePeriod: '1s', probeTimeout: '500ms',
    });
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
    // The receiver presents the operator's serving certificate, as guard's endpoint does.
    await eventually('the certificate files', async () => (await readdir(certDir)).includes('tls.key') && (await readdir(certDir)).includes('tls.crt'), 30_000);
    receiver = new Receiver(await readFile(join(certDir, 'tls.crt'), 'utf8'), await readFile(join(certDir, 'tls.key'), 'utf8'));
    receiver.server.listen(receiverPort, hostIp);
    await once(receiver.server, 'listening');

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
        spec: { targets: { podSelector: { matchLabels: { app: 'web' } } }, detectors: { health: { failures: 3, window: '2m' }, undeclaredPort: {} } },
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
    receiver?.server.close();
    receiver?.server.closeAllConnections();
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

  it('in a real pod, reports a declared port healthy, then failing when the app stops listening, and a port a shell opens', async () => {
    const plane = await testbed();
    const name = 'web-real';
    // busybox httpd in the background (killed later by a shell), the container kept alive by sleep.
    const command = ['/bin/sh', '-c', 'mkdir -p /tmp/www && echo shop > /tmp/www/index.html && httpd -p 8080 -h /tmp/www && exec sleep 3600'];
    await runPod(plane, {
      namespace: labelled, name, image: plane.images['test']!, node: 'crowsnest-real-0', labels: { app: 'web' }, timeoutMs: 120_000, command,
      spec: { containers: [{ name: 'main', image: plane.images['test']!, command, ports: [{ name: 'http', containerPort: 8080 }] }] },
    });
    const pod = await waitForPod(plane, labelled, name, (p) => (p as unknown as { status: { conditions?: Array<{ type: string; status: string }> } }).status.conditions?.some((c) => c.type === 'Ready' && c.status === 'True') === true, 'Ready (its sidecar ready)', 60_000);
    const port = (r: Received) => r.report.ports.find((p) => p.container === 'main' && p.port === 8080);

    await eventually('a report of passing HTTP probes of main:8080', () => receiver.of(name).some((r) => (port(r)?.probes ?? 0) >= 1 && port(r)?.failures === 0 && port(r)?.method === 'http'), 60_000);
    const first = receiver.of(name)[0]!;
    assert.deepEqual(first.audience, ['crowsnest.dev/guard'], 'the sidecar reports with its guard-only projected token');
    assert.ok(first.report.listening.some((s) => s.protocol === 'TCP' && s.port === 8080), JSON.stringify(first.report.listening));

    const stopped = await execInPod(plane, labelled, name, ['killall', 'httpd']);
    assert.equal(stopped.exitCode, 0, stopped.stderr);
    await eventually('a report of main:8080 refused', () => receiver.of(name).some((r) => (port(r)?.failures ?? 0) >= 1 && port(r)?.lastFailure === 'refused'), 30_000);

    const opened = await execInPod(plane, labelled, name, ['/bin/sh', '-c', 'nc -l -p 7777 </dev/null >/dev/null 2>&1 &']);
    assert.equal(opened.exitCode, 0, opened.stderr);
    await eventually('the undeclared listener in a report', () => receiver.of(name).some((r) => r.report.listening.some((s) => s.protocol === 'TCP' && s.port === 7777)), 30_000);
    const latest = receiver.of(name).at(-1)!;
    assert.ok(latest.report.listening.every((s) => s.port !== 8080), 'the stopped app\'s socket is gone');
    const samples = parseSamples((await fetchFromHost(pod.status.podIP!, 19091, '/metrics')).body);
    assert.equal(samplesOf(samples, 'crowsnest_guard_sidecar_listening_sockets', { protocol: 'TCP', port: '7777' })[0]?.value, 1, 'and in its metrics');
    assert.ok((samplesOf(samples, 'crowsnest_guard_sidecar_probe_failures_total', { container: 'main', port: '8080', reason: 'refused' })[0]?.value ?? 0) >= 1);
  });
});
