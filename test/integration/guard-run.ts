/**
 * Runs guard in the test process as one operator replica (registered with a Manager as
 * `crowsnest operator --controllers=guard` registers it), authenticated as the chart's operator
 * ServiceAccount with nothing but the chart's RBAC for it (its operator ServiceAccount, the
 * operator's base roles and guard's ClusterRole, from `helm template`), so a missing permission
 * fails the test that needs it; guard.yaml's admission policy on the operator's pod writes holds
 * too, so a write it refuses fails them as well. Guard's endpoint listens on 127.0.0.1 with a certificate of the
 * caller's CA.
 */
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { KubeConfig } from '@kubernetes/client-node';
import { Registry } from 'prom-client';
import { type GuardRuntime, registerGuard } from '../../src/guard/register.ts';
import { KubeClient } from '../../src/kube/client/client.ts';
import { silentLogger } from '../../src/kube/logger-type.ts';
import { EventRecorder } from '../../src/kube/objects/events.ts';
import { Manager } from '../../src/kube/runtime/manager.ts';
import { type IssuedCertificate, issueServingCertificate } from '../../src/kube/webhook/x509.ts';
import { helmTemplate } from './helm.ts';
import { eventually, requestToken, testbed } from './testbed.ts';

const DAY_MS = 86_400_000;

export interface GuardUnderTest {
  readonly guard: GuardRuntime;
  /** Authenticated as the chart's operator ServiceAccount. */
  readonly client: KubeClient;
  readonly recorder: EventRecorder;
  readonly registry: Registry;
  /** Stops guard and flushes its Events; the namespace stays (the caller deletes it). */
  stop(): Promise<void>;
}

export interface RunGuardOptions {
  /** Signs the endpoint's serving certificate (for 127.0.0.1). */
  readonly ca: IssuedCertificate;
  /** `namespace/name` of the log agent's ServiceAccount. Default: `<namespace>/logs-agent`. */
  readonly logAgentServiceAccount?: string;
  /** What the endpoint tells sidecars and agents. Default 10 s. */
  readonly reportIntervalMs?: number;
}

/** A GuardPolicy named `name` with `spec`, for the namespace it is created in. */
export function guardPolicyManifest(name: string, spec: Record<string, unknown>): Record<string, unknown> {
  return { apiVersion: 'crowsnest.dev/v1alpha1', kind: 'GuardPolicy', metadata: { name }, spec };
}

/** Starts guard with the chart's RBAC installed in `namespace` (its release named after the namespace). */
export async function runGuard(namespace: string, options: RunGuardOptions): Promise<GuardUnderTest> {
  const plane = await testbed();
  const certDir = await mkdtemp(join(tmpdir(), 'guard-certs-'));
  const serving = issueServingCertificate({ commonName: 'guard', hosts: ['127.0.0.1'], notBeforeMs: Date.now() - 60_000, notAfterMs: Date.now() + DAY_MS }, options.ca);
  await writeFile(join(certDir, 'tls.crt'), serving.certPem);
  await writeFile(join(certDir, 'tls.key'), serving.keyPem);

  const release = `g${namespace.slice(-6)}`;
  const rbac = await helmTemplate(release, namespace, [
    '--set', 'guard.enabled=true', '--set', 'logaccess.enabled=false',
    '--show-only', 'templates/operator-serviceaccount.yaml', '--show-only', 'templates/operator-rbac.yaml', '--show-only', 'templates/guard.yaml',
  ]);
  await plane.kubectl(['apply', '-f', '-'], { input: rbac });
  const token = await requestToken(namespace, `${release}-crowsnest-operator`, 3600);
  const operatorConfig = new KubeConfig();
  operatorConfig.loadFromOptions({
    clusters: [{ name: 'testbed', server: plane.server, caData: (await readFile(plane.pki.caCert)).toString('base64') }],
    users: [{ name: 'guard', token }],
    contexts: [{ name: 'guard', cluster: 'testbed', user: 'guard' }],
    currentContext: 'guard',
  });
  const client = new KubeClient(operatorConfig);
  const registry = new Registry();
  const recorder = new EventRecorder({ client, reportingInstance: 'guard-test', registry });
  const manager = new Manager({ client, recorder, registry, logger: silentLogger, workers: 2 });
  const guard = registerGuard(manager, {
    namespace: 'crowsnest-system', port: 0, url: 'https://unused:9445', logAgentServiceAccount: options.logAgentServiceAccount ?? `${namespace}/logs-agent`,
    reportIntervalMs: options.reportIntervalMs ?? 10_000,
  }, certDir, undefined, '127.0.0.1');
  const stopping = new AbortController();
  const running = manager.run(stopping.signal);
  let failure: unknown;
  running.catch((err: unknown) => (failure = err));
  await eventually('the guard endpoint to listen', () => {
    if (failure) throw failure;
    return guard.endpoint.port > 0;
  }, 30_000);
  return {
    guard, client, recorder, registry,
    async stop() {
      stopping.abort();
      await running.catch(() => {});
      await recorder.flush().catch(() => {});
      await client.close();
      await rm(certDir, { recursive: true, force: true });
    },
  };
}
