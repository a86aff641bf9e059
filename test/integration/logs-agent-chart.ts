/**
 * Installs the chart's guard log agent (ServiceAccount, its auth-delegator binding, the DaemonSet)
 * into a test namespace, adapted to the testbed: the nodes' kubelets keep pod logs in
 * `<testbed>/nodes/<node>/pod-logs` (not /var/log/pods), so the pod-logs hostPath is
 * `<testbed>/nodes` and the agent is pointed at its node's subdirectory; kwok nodes (which run
 * nothing) are left out by leaving out the chart's tolerate-everything toleration; each namespace
 * gets its own state directory and ClusterRoleBinding name (`<namespace>-auth-delegator`).
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { loadAll } from 'js-yaml';
import type { ControlPlane } from '../../testbed/controlplane.ts';
import type { KubeObject } from '../../src/kube/objects/resources.ts';

const run = promisify(execFile);
const chart = join(import.meta.dirname, '..', '..', 'deploy', 'helm', 'crowsnest');

interface DaemonSet extends KubeObject {
  spec: { template: { spec: { containers: Array<{ image: string; env: Array<{ name: string; value?: string }> }> } } };
}

/** Renders and creates the log agent of release `release` sending to `guardUrl`; `values` are more helm arguments. */
export async function installLogsAgent(plane: ControlPlane, options: { release: string; namespace: string; image: string; guardUrl: string; values?: readonly string[] }): Promise<void> {
  const { release, namespace } = options;
  const { stdout } = await run(join(plane.binDir, 'helm'), [
    'template', release, chart, '--namespace', namespace, '--kube-version', 'v1.35.4', '--show-only', 'templates/guard-logs-agent.yaml',
    '--set', 'guard.logsAgent.enabled=true', '--set', `guard.logsAgent.guardUrl=${options.guardUrl}`, '--set-json', 'guard.logsAgent.tolerations=[]',
    '--set', `guard.logsAgent.podLogsHostPath=${join(plane.dir, 'nodes')}`, '--set', `guard.logsAgent.stateHostPath=/var/lib/crowsnest-test/${namespace}`,
    ...(options.values ?? []),
  ]);
  for (const object of loadAll(stdout) as Array<KubeObject | null>) {
    if (!object) continue;
    if (object.kind === 'DaemonSet') {
      const container = (object as DaemonSet).spec.template.spec.containers[0]!;
      container.image = options.image;
      container.env.find((e) => e.name === 'CROWSNEST_POD_LOGS_DIR')!.value = '/var/log/pods/$(CROWSNEST_NODE_NAME)/pod-logs';
    }
    const path = {
      DaemonSet: `/apis/apps/v1/namespaces/${namespace}/daemonsets`,
      ServiceAccount: `/api/v1/namespaces/${namespace}/serviceaccounts`,
      ClusterRoleBinding: '/apis/rbac.authorization.k8s.io/v1/clusterrolebindings',
    }[object.kind!];
    assert.ok(path, `the chart rendered a ${object.kind}`);
    if (object.kind === 'ClusterRoleBinding') object.metadata!.name = `${namespace}-auth-delegator`;
    const created = await plane.request('POST', path, object);
    assert.equal(created.status, 201, created.body);
  }
}
