/**
 * The Helm chart on the testbed: rendering it with the testbed's helm, and acting with nothing
 * but the token of one of its ServiceAccounts, so RBAC and the chart's admission policies decide
 * as they would in a cluster where the chart is installed.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readFile, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { KubeConfig } from '@kubernetes/client-node';
import { asToken, eventually, requestToken, testbed } from './testbed.ts';

const run = promisify(execFile);
export const repo = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
export const chart = join(repo, 'deploy', 'helm', 'crowsnest');

/** `helm template <release> <chart> --namespace <namespace> <args…>`, for the testbed's Kubernetes version. */
export async function helmTemplate(release: string, namespace: string, args: readonly string[] = []): Promise<string> {
  const plane = await testbed();
  const { stdout } = await run(join(plane.binDir, 'helm'), ['template', release, chart, '--namespace', namespace, '--kube-version', 'v1.35.4', ...args], { maxBuffer: 16 * 1024 * 1024 });
  return stdout;
}

/** A kubeconfig file in `dir` that authenticates with a fresh token of `serviceAccount` only. */
export async function serviceAccountKubeconfig(dir: string, namespace: string, serviceAccount: string): Promise<string> {
  const plane = await testbed();
  const token = await requestToken(namespace, serviceAccount, 3600);
  const kubeconfig = join(dir, 'kubeconfig');
  await writeFile(kubeconfig, JSON.stringify({
    apiVersion: 'v1', kind: 'Config', 'current-context': 'sa',
    clusters: [{ name: 'testbed', cluster: { server: plane.server, 'certificate-authority-data': (await readFile(plane.pki.caCert)).toString('base64') } }],
    users: [{ name: 'sa', user: { token } }],
    contexts: [{ name: 'sa', context: { cluster: 'testbed', user: 'sa' } }],
  }));
  return kubeconfig;
}

/** The operator's identity as the chart installs it: its ServiceAccount's token, and a KubeConfig holding it. */
export interface ChartOperator {
  readonly release: string;
  readonly namespace: string;
  readonly serviceAccount: string;
  readonly token: string;
  readonly kubeConfig: KubeConfig;
}

/**
 * Installs the chart's operator ServiceAccount, RBAC and admission policy (for `release` in
 * `namespace`, with the given `--set` values) and returns the operator's identity once the
 * policy is in effect: the API server picks new policies up within about a second.
 */
export async function installChartOperator(release: string, namespace: string, values: readonly string[] = []): Promise<ChartOperator> {
  const plane = await testbed();
  const manifests = await helmTemplate(release, namespace, [
    ...values.flatMap((value) => ['--set', value]),
    '--show-only', 'templates/operator-serviceaccount.yaml',
    '--show-only', 'templates/operator-rbac.yaml',
  ]);
  await plane.kubectl(['apply', '-f', '-'], { input: manifests });
  const serviceAccount = `${release}-crowsnest-operator`;
  const token = await requestToken(namespace, serviceAccount, 3600);
  // In effect once the operator may no longer create a Role that is not one of ours.
  await eventually('the operator write policy is in effect', async () => {
    const res = await asToken(token, 'POST', `/apis/rbac.authorization.k8s.io/v1/namespaces/${namespace}/roles?dryRun=All`, { metadata: { name: 'not-ours' }, rules: [] });
    return res.status === 422 && /ValidatingAdmissionPolicy/.test(res.body);
  }, 20_000);
  const kubeConfig = new KubeConfig();
  kubeConfig.loadFromOptions({
    clusters: [{ name: 'testbed', server: plane.server, caData: (await readFile(plane.pki.caCert)).toString('base64') }],
    users: [{ name: serviceAccount, token }],
    contexts: [{ name: 'operator', cluster: 'testbed', user: serviceAccount }],
    currentContext: 'operator',
  });
  return { release, namespace, serviceAccount, token, kubeConfig };
}

/** Asserts the answer is a denial by the admission policy named `policy` (not RBAC, not validation). */
export function assertDeniedBy(res: { status: number; body: string }, policy: string, what: string): void {
  assert.ok(res.status >= 400 && res.status < 500, `${what}: expected a denial, got ${res.status} ${res.body.slice(0, 300)}`);
  assert.match(res.body, new RegExp(`ValidatingAdmissionPolicy '${policy}' with binding '${policy}' denied request`), `${what}: ${res.body.slice(0, 500)}`);
}
