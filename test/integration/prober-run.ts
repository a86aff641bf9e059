/**
 * Runs the prober capability in the test process as one operator replica without leader election,
 * registered with a Manager exactly as `crowsnest operator` registers it (src/prober/register.ts,
 * and the webhook certificate as src/operator/run.ts does): informers for NetworkProbers, injected
 * pods and the certificate Secret; the webhook server on
 * the testbed host's bridge address and the peer endpoint (the API server and the real nodes'
 * pods reach both); self-managed certificates; the status controller. The MutatingWebhookConfiguration is the
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
import { KubeClient } from '../../src/kube/client/client.ts';
import { EventRecorder } from '../../src/kube/objects/events.ts';
import { silentLogger } from '../../src/kube/logger-type.ts';
import { Manager } from '../../src/kube/runtime/manager.ts';
import type { KubeObject } from '../../src/kube/objects/resources.ts';
import type { WebhookServer } from '../../src/kube/webhook/server.ts';
import { DEFAULT_AGENT_RESOURCES } from '../../src/prober/inject.ts';
import { registerWebhookCertificates } from '../../src/operator/webhook-certificates.ts';
import { registerProber } from '../../src/prober/register.ts';
import type { ProberRuntime } from '../../src/prober/runtime.ts';
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
  const recorder = new EventRecorder({ client, reportingInstance: 'prober-test', registry });

  // What `crowsnest operator --controllers=prober` registers, in this process.
  const manager = new Manager({
    client, recorder, registry, logger: silentLogger, workers: 2,
    webhookServer: { host: hostIp, port: webhookPort, certDir, certificatePollIntervalMs: 1_000 },
  });
  const runtime = registerProber(manager, {
    namespace: operatorNamespace, webhookConfiguration: configurationName, peerPort, peersUrl: `https://${hostIp}:${peerPort}`,
    agentImage: options.agentImage ?? plane.images['crowsnest'] ?? 'registry.invalid/crowsnest:never-pulled', agentResources: DEFAULT_AGENT_RESOURCES,
  }, certDir);
  // The operator registers the certificate for every capability's configuration (src/operator/run.ts).
  registerWebhookCertificates(manager, {
    mode: 'self', namespace: operatorNamespace, secret: secretName, hosts: [hostIp, '127.0.0.1'], certDir, configurations: [configurationName],
  });
  const running = manager.run(stop.signal);
  let failure: unknown;
  running.catch((err: unknown) => (failure = err));
  await eventually('the prober\'s webhook server to listen', () => {
    if (failure) throw failure;
    return manager.runningWebhookServer !== undefined;
  }, 30_000);
  const webhookServer = manager.runningWebhookServer!;

  const configuration = await chartWebhookConfiguration(plane, {
    release, namespace: operatorNamespace, url: `https://${hostIp}:${webhookPort}`, scope, timeoutSeconds: options.timeoutSeconds ?? 2,
  });
  const created = await plane.request('POST', '/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations', configuration);
  if (created.status !== 201) throw new Error(`creating ${configurationName}: ${created.status} ${created.body}`);

  const under: ProberUnderTest = {
    operatorNamespace, configurationName, secretName, certDir, webhookServer, runtime, registry, scope,
    newNamespace: (prefix) => newScopedNamespace(plane, prefix, scope),
    stop: async ({ keepConfiguration = false } = {}) => {
      if (!keepConfiguration) await plane.request('DELETE', `/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations/${configurationName}`);
      stop.abort();
      await running.catch(() => {});
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
 * The chart's prober MutatingWebhookConfiguration (`helm template`), pointed at `url` and scoped to
 * the namespaces labelled {@link SCOPE_LABEL}=`scope`, so tests of other files never meet it.
 */
export async function chartWebhookConfiguration(
  plane: ControlPlane, options: { readonly release: string; readonly namespace: string; readonly url: string; readonly scope: string; readonly timeoutSeconds: number },
): Promise<KubeObject> {
  const { stdout } = await run(join(plane.binDir, 'helm'), [
    'template', options.release, chart, '--namespace', options.namespace, '--kube-version', 'v1.35.4', '--show-only', 'templates/prober.yaml',
    '--set', `webhook.url=${options.url}`, '--set', `webhook.timeoutSeconds=${options.timeoutSeconds}`,
    '--set-json', `prober.namespaceSelectorExpressions=[{"key":"${SCOPE_LABEL}","operator":"In","values":["${options.scope}"]}]`,
  ]);
  const configuration = (loadAll(stdout) as Array<KubeObject | null>).find((doc) => doc?.kind === 'MutatingWebhookConfiguration');
  if (!configuration) throw new Error('the chart rendered no MutatingWebhookConfiguration');
  return configuration;
}

/** A new namespace labelled {@link SCOPE_LABEL}=`scope`, with its default ServiceAccount. */
export async function newScopedNamespace(plane: ControlPlane, prefix: string, scope: string): Promise<string> {
  const namespace = await newNamespace(prefix);
  const res = await plane.request('PATCH', `/api/v1/namespaces/${namespace}`, { metadata: { labels: { [SCOPE_LABEL]: scope } } }, { 'content-type': 'application/merge-patch+json' });
  if (res.status !== 200) throw new Error(`labelling ${namespace}: ${res.status} ${res.body}`);
  await plane.waitForDefaultServiceAccount(namespace);
  return namespace;
}

/**
 * Waits for the Secret, the certificate files, the caBundle and the API server's view of the
 * configuration: a dry-run create of a pod a probe NetworkProber selects comes back injected.
 */
export async function waitUntilInjecting(plane: ControlPlane, prober: Pick<ProberUnderTest, 'newNamespace'>): Promise<void> {
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
