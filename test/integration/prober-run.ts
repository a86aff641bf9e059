/**
 * Runs the prober capability in the test process as one operator replica that leads: informers
 * for NetworkProbers, injected pods and the certificate Secret; the webhook server and the peer
 * endpoint on the testbed host's bridge address (the API server and the real nodes' pods reach
 * it); self-managed certificates; the status controller. The MutatingWebhookConfiguration is the
 * chart's own (`helm template`), pointed at this process with `webhook.url` and scoped to the
 * test's namespaces by a label, so tests of other files never meet it.
 */
import { execFile } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { loadAll } from 'js-yaml';
import { Registry } from 'prom-client';
import { type ControlPlane, freePort } from '../../testbed/controlplane.ts';
import type { StoreHandler } from '../../src/kube/cache.ts';
import { KubeClient } from '../../src/kube/client.ts';
import { realClock } from '../../src/kube/clock.ts';
import { Controller } from '../../src/kube/controller.ts';
import { EventRecorder } from '../../src/kube/events.ts';
import { Informer } from '../../src/kube/informer.ts';
import { type KubeObject, Resources } from '../../src/kube/resources.ts';
import { type SecretObject, WebhookCertificates } from '../../src/kube/webhook/certificates.ts';
import { WebhookServer } from '../../src/kube/webhook/server.ts';
import { type NetworkProber, NetworkProberApi } from '../../src/prober/api.ts';
import { DEFAULT_AGENT_RESOURCES } from '../../src/prober/inject.ts';
import { INJECTED_SELECTOR, type SlimPod, slimPod } from '../../src/prober/members.ts';
import { type CacheSource, ProberRuntime } from '../../src/prober/runtime.ts';
import { installCrds } from './crds.ts';
import { adminKubeConfig, eventually, newNamespace, testbed } from './testbed.ts';

const run = promisify(execFile);
const chart = join(import.meta.dirname, '..', '..', 'deploy', 'helm', 'crowsnest');

/** Namespaces labelled so are sent to the test's webhook configuration (and no others). */
export const SCOPE_LABEL = 'prober-test.crowsnest.dev/scope';

export interface ProberUnderTest {
  readonly operatorNamespace: string;
  readonly configurationName: string;
  readonly secretName: string;
  readonly certDir: string;
  readonly webhookServer: WebhookServer;
  readonly runtime: ProberRuntime;
  readonly registry: Registry;
  /** The value of {@link SCOPE_LABEL} this run's configuration selects. */
  readonly scope: string;
  /** A namespace the webhook serves (labelled with the scope). */
  newNamespace(prefix: string): Promise<string>;
  /** Stops serving; deletes the webhook configuration unless `keepConfiguration`. */
  stop(options?: { readonly keepConfiguration?: boolean }): Promise<void>;
}

export interface StartProberOptions {
  /** Default: the crowsnest image in the testbed's registry, else a name that is never pulled. */
  readonly agentImage?: string;
  /** Webhook configuration `timeoutSeconds` (chart value). Default 2. */
  readonly timeoutSeconds?: number;
}

/** An Informer as the prober reads it (the manager's InformerView has this shape). */
function source<T extends KubeObject>(informer: Informer<T>): CacheSource<T> {
  return {
    store: informer.store,
    addEventHandler: (handler: StoreHandler<T>) => {
      for (const obj of informer.store.list()) handler.onAdd?.(obj);
      return informer.store.subscribe(handler);
    },
  };
}

export async function startProber(options: StartProberOptions = {}): Promise<ProberUnderTest> {
  const plane = await testbed();
  await installCrds();
  const hostIp = plane.network?.hostIp ?? '127.0.0.1';
  const operatorNamespace = await newNamespace('prober-op');
  const scope = operatorNamespace;
  const release = `p${operatorNamespace.slice(-6)}`;
  const secretName = `${release}-crowsnest-webhook-cert`;
  const configurationName = `${release}-crowsnest-prober`;
  const certDir = await mkdtemp(join(tmpdir(), 'prober-certs-'));
  const client = new KubeClient(await adminKubeConfig());
  const registry = new Registry();
  const stop = new AbortController();
  const [webhookPort, peerPort] = [await freePort(), await freePort()];

  const probers = new Informer<NetworkProber>({ client, type: NetworkProberApi.type, registry, name: 'networkprobers' });
  const pods = new Informer<SlimPod>({ client, type: Resources.pods, labelSelector: INJECTED_SELECTOR, transform: slimPod, registry, name: 'pods/prober' });
  const secrets = new Informer<SecretObject>({ client, type: Resources.secrets, namespace: operatorNamespace, fieldSelector: `metadata.name=${secretName}`, registry, name: 'secrets/webhook' });
  const recorder = new EventRecorder({ client, reportingInstance: 'prober-test', registry });
  const certificates = new WebhookCertificates({
    client, secrets: source(secrets), namespace: operatorNamespace, secretName, hosts: [hostIp, '127.0.0.1'], certDir,
    configurations: [{ kind: 'MutatingWebhookConfiguration', name: configurationName }], clock: realClock,
  });
  const runtime = new ProberRuntime({ client, probers: source(probers), pods: source(pods), clock: realClock, registry, recorder }, {
    namespace: operatorNamespace, certDir, peerPort, peerHost: hostIp, peersUrl: `https://${hostIp}:${peerPort}`,
    agentImage: options.agentImage ?? plane.images['crowsnest'] ?? 'registry.invalid/crowsnest:never-pulled', agentResources: DEFAULT_AGENT_RESOURCES,
  });
  const webhookServer = new WebhookServer({
    host: hostIp, port: webhookPort, certFile: join(certDir, 'tls.crt'), keyFile: join(certDir, 'tls.key'), handlers: [runtime.webhook], registry,
    certificatePollIntervalMs: 1_000,
  });
  const controller = new Controller<string>({ name: 'prober', reconcile: runtime.reconciler.reconcile, workers: 2, registry });
  const handlers = runtime.controllerHandlers(controller);

  const running: Array<Promise<unknown>> = [
    probers.run(stop.signal), pods.run(stop.signal), secrets.run(stop.signal),
    certificates.serve(stop.signal), certificates.lead(stop.signal),
  ];
  await webhookServer.start();
  running.push(runtime.serve(stop.signal));
  await Promise.all([probers.waitForSync(stop.signal), pods.waitForSync(stop.signal), secrets.waitForSync(stop.signal)]);
  const detach = [source(probers).addEventHandler(handlers.probers), source(pods).addEventHandler(handlers.pods)];
  running.push(controller.run(stop.signal), runtime.lead(stop.signal, (key) => controller.enqueue(key)));

  // The chart's webhook configuration, pointed here and scoped to this run's namespaces.
  const { stdout } = await run(join(plane.binDir, 'helm'), [
    'template', release, chart, '--namespace', operatorNamespace, '--kube-version', 'v1.35.4', '--show-only', 'templates/prober.yaml',
    '--set', `webhook.url=https://${hostIp}:${webhookPort}`, '--set', `webhook.timeoutSeconds=${options.timeoutSeconds ?? 2}`,
    '--set-json', `prober.namespaceSelectorExpressions=[{"key":"${SCOPE_LABEL}","operator":"In","values":["${scope}"]}]`,
  ]);
  const configuration = (loadAll(stdout) as Array<KubeObject | null>).find((doc) => doc?.kind === 'MutatingWebhookConfiguration');
  if (!configuration) throw new Error('the chart rendered no MutatingWebhookConfiguration');
  const created = await plane.request('POST', '/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations', configuration);
  if (created.status !== 201) throw new Error(`creating ${configurationName}: ${created.status} ${created.body}`);

  const under: ProberUnderTest = {
    operatorNamespace, configurationName, secretName, certDir, webhookServer, runtime, registry, scope,
    newNamespace: async (prefix) => {
      const namespace = await newNamespace(prefix);
      const res = await plane.request('PATCH', `/api/v1/namespaces/${namespace}`, { metadata: { labels: { [SCOPE_LABEL]: scope } } }, { 'content-type': 'application/merge-patch+json' });
      if (res.status !== 200) throw new Error(`labelling ${namespace}: ${res.status} ${res.body}`);
      await plane.waitForDefaultServiceAccount(namespace);
      return namespace;
    },
    stop: async ({ keepConfiguration = false } = {}) => {
      if (!keepConfiguration) await plane.request('DELETE', `/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations/${configurationName}`);
      stop.abort();
      for (const remove of detach) remove();
      await webhookServer.stop();
      await Promise.allSettled(running);
      await recorder.flush().catch(() => {});
      await client.close();
      await rm(certDir, { recursive: true, force: true });
    },
  };
  try {
    await waitUntilInjecting(plane, under);
  } catch (err) {
    await under.stop();
    throw err;
  }
  return under;
}

/**
 * Waits for the Secret, the certificate files, the caBundle and the API server's view of the
 * configuration: a dry-run create of a pod a probe NetworkProber selects comes back injected.
 */
async function waitUntilInjecting(plane: ControlPlane, prober: ProberUnderTest): Promise<void> {
  const namespace = await prober.newNamespace('prober-probe');
  const created = await plane.request('POST', `/apis/crowsnest.dev/v1alpha1/namespaces/${namespace}/networkprobers`, {
    apiVersion: 'crowsnest.dev/v1alpha1', kind: 'NetworkProber', metadata: { name: 'probe' }, spec: { podSelector: { matchLabels: { probe: 'yes' } } },
  });
  if (created.status !== 201) throw new Error(`probe NetworkProber: ${created.status} ${created.body}`);
  let n = 0;
  await eventually('the API server to inject through the prober webhook', async () => {
    const res = await plane.request('POST', `/api/v1/namespaces/${namespace}/pods?dryRun=All`, {
      apiVersion: 'v1', kind: 'Pod', metadata: { name: `probe-${n++}`, labels: { probe: 'yes' } }, spec: { containers: [{ name: 'c', image: 'registry.invalid/x:1' }] },
    });
    return res.status === 201 && (JSON.parse(res.body) as { spec: { initContainers?: Array<{ name: string }> } }).spec.initContainers?.some((c) => c.name === 'net-prober') === true;
  }, 60_000);
  await plane.request('DELETE', `/api/v1/namespaces/${namespace}`);
}
