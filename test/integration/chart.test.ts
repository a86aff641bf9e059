/**
 * The Helm chart against the testbed: its rendered output is accepted by a real apiserver
 * (server-side dry run), and `crowsnest operator` running with nothing but the chart's
 * ServiceAccount token can do its job (least-privilege RBAC is enough) and nothing more.
 */
import assert from 'node:assert/strict';
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { helmTemplate, repo, serviceAccountKubeconfig } from './helm.ts';
import { eventually, newNamespace, ON_KWOK_NODES, testbed } from './testbed.ts';

const run = promisify(execFile);

const children: ChildProcess[] = [];
const tempDirs: string[] = [];

// The cases share nothing on the API server (a namespace, release and temporary directory each;
// the operator's opted-in Deployment is its own), so they run at once.
describe('helm chart', { concurrency: true }, () => {
  // Inside the describe, so an operator left by a failed test stops before other files run.
  after(async () => {
    for (const child of children) if (child.exitCode === null) child.kill('SIGKILL');
    for (const dir of tempDirs) await rm(dir, { recursive: true, force: true });
  });

  it('renders manifests the apiserver accepts (server-side dry run), with and without ServiceAccount/RoleBinding creation', async () => {
    const plane = await testbed();
    const namespace = await newNamespace('chart-dry');
    for (const flag of ['false', 'true']) {
      const manifests = await helmTemplate(`dry-${flag}`, namespace, ['--set', `logaccess.createServiceAccountAndRoleBinding=${flag}`]);
      assert.match(manifests, /kind: Deployment/);
      const out = await plane.kubectl(['apply', '--dry-run=server', '-f', '-'], { input: manifests });
      assert.match(out, /deployment.apps\/dry-\w+-crowsnest-operator created \(server dry run\)/);
      assert.match(out, /clusterrole.rbac.authorization.k8s.io\/dry-\w+-crowsnest-operator-logaccess created \(server dry run\)/);
    }
  });

  it('without logaccess and prober deploys no operator (it would have no controller to run), nor its ServiceAccount, RBAC or policy', async () => {
    const manifests = await helmTemplate('no-la', 'x', ['--set', 'logaccess.enabled=false', '--set', 'prober.enabled=false', '--set', 'ports.enabled=true']);
    assert.doesNotMatch(manifests, /crowsnest-operator/);
    assert.doesNotMatch(manifests, /MutatingWebhookConfiguration/);
    assert.match(manifests, /kind: CronJob/);
  });

  it('runs the controllers it enables, with the RBAC of those only', async () => {
    const both = await helmTemplate('both', 'x', []);
    assert.match(both, /--controllers=logaccess,prober\n/);
    const proberOnly = await helmTemplate('pr', 'x', ['--set', 'logaccess.enabled=false']);
    assert.match(proberOnly, /--controllers=prober\n/);
    assert.doesNotMatch(proberOnly, /-logaccess\n|--logaccess-name-prefix|kind: ValidatingAdmissionPolicy\n/, 'no logaccess ClusterRole, flags or write policy');
    assert.match(proberOnly, /kind: MutatingWebhookConfiguration/);
    const logaccessOnly = await helmTemplate('la', 'x', ['--set', 'prober.enabled=false']);
    assert.match(logaccessOnly, /--controllers=logaccess\n/);
    assert.doesNotMatch(logaccessOnly, /--prober-|tokenreviews|MutatingWebhookConfiguration/);
    const chosen = await helmTemplate('ch', 'x', ['--set', 'operator.controllers=logaccess']);
    assert.match(chosen, /--controllers=logaccess\n/, 'an explicit list is passed as it is');
  });

  it('keeps one webhook server for every capability with a webhook: the caBundle RBAC names each configuration, guard\'s alone without the prober', async () => {
    const plane = await testbed();
    const namespace = await newNamespace('chart-webhooks');
    const both = await helmTemplate('wh', namespace, ['--set', 'guard.enabled=true']);
    assert.match(both, /resourceNames: \["wh-crowsnest-prober","wh-crowsnest-guard-sidecar"\]/);
    assert.match(both, /name: inject\.guard\.crowsnest\.dev[\s\S]*matchLabels:\n\s+sidecar-injection: enabled/);
    const out = await plane.kubectl(['apply', '--dry-run=server', '-f', '-'], { input: both });
    assert.match(out, /mutatingwebhookconfiguration.admissionregistration.k8s.io\/wh-crowsnest-guard-sidecar created \(server dry run\)/);
    const guardOnly = await helmTemplate('gu', namespace, ['--set', 'guard.enabled=true', '--set', 'prober.enabled=false']);
    assert.match(guardOnly, /resourceNames: \["gu-crowsnest-guard-sidecar"\]/);
    assert.match(guardOnly, /--webhook-cert-mode=self/);
    assert.doesNotMatch(guardOnly, /--prober-|name: peers/);
  });

  it('runs guard only when enabled, with RBAC that writes no workload (no replicas, ever)', async () => {
    assert.doesNotMatch(await helmTemplate('ng', 'x', []), /-guard\n|--guard-/, 'off by default');
    const guarded = await helmTemplate('gd', 'x', ['--set', 'guard.enabled=true']);
    assert.match(guarded, /--controllers=logaccess,prober,guard\n/);
    assert.match(guarded, /--guard-port=9445\n/);
    const role = (guarded.split(/^---$/m).find((doc) => /kind: ClusterRole\n/.test(doc) && /name: gd-crowsnest-operator-guard$/m.test(doc)) ?? '').replace(/^\s*#.*$/gm, '');
    assert.match(role, /resources: \["pods\/eviction"\]\n\s+verbs: \["create"\]/);
    assert.match(role, /resources: \["networkpolicies"\]/);
    assert.match(role, /resources: \["replicasets", "statefulsets", "daemonsets"\]\n\s+verbs: \["get"\]/, 'owners are only read');
    assert.match(role, /resources: \["nodes"\]\n\s+verbs: \["get", "list", "watch", "patch"\]/, 'nodes are patched (guard\'s own taint), never updated or deleted');
    assert.doesNotMatch(role, /deployments|scale|"update"|"\*"/, 'no workload or scale write, no update anywhere');
    const withoutProber = await helmTemplate('gp', 'x', ['--set', 'guard.enabled=true', '--set', 'prober.enabled=false']);
    assert.match(withoutProber, /--controllers=logaccess,guard\n/);
    assert.match(withoutProber, /- \{ name: guard, port: 9445, targetPort: guard, protocol: TCP \}/, 'the report endpoint behind the webhook Service, without the prober');
  });

  it('runs the operator with only the chart ServiceAccount: it leads, keeps Roles, and cannot read Secrets', async () => {
    const plane = await testbed();
    const namespace = await newNamespace('chart-sa');
    const workloads = await newNamespace('chart-apps');
    const release = `sa-${namespace.slice(-6)}`;
    const rbac = await helmTemplate(release, namespace, [
      '--set', 'logaccess.createServiceAccountAndRoleBinding=true',
      '--show-only', 'templates/operator-serviceaccount.yaml',
      '--show-only', 'templates/operator-rbac.yaml',
    ]);
    await plane.kubectl(['apply', '-f', '-'], { input: rbac });
    const serviceAccount = `${release}-crowsnest-operator`;

    const dir = await mkdtemp(join(tmpdir(), 'crowsnest-chart-'));
    tempDirs.push(dir);
    const kubeconfig = await serviceAccountKubeconfig(dir, namespace, serviceAccount);

    const forbidden = await run(join(plane.binDir, 'kubectl'), ['--kubeconfig', kubeconfig, 'get', 'secrets', '-A'], {}).then(() => 'allowed', (err: { stderr?: string }) => err.stderr ?? '');
    assert.match(forbidden, /Forbidden|forbidden/, 'the operator ServiceAccount cannot read Secrets');

    const output: string[] = [];
    const operator = spawn(join(repo, 'bin', 'crowsnest'), [
      'operator', '--kubeconfig', kubeconfig, '--log-format', 'json', '--identity', 'chart-sa',
      '--leader-election-namespace', namespace, '--metrics-bind-address', '0', '--health-probe-bind-address', '0',
      '--create-sa-and-rolebinding',
    ], { stdio: ['ignore', 'pipe', 'pipe'] });
    children.push(operator);
    operator.stdout!.on('data', (c: Buffer) => output.push(c.toString()));
    operator.stderr!.on('data', (c: Buffer) => output.push(c.toString()));

    await plane.waitForDefaultServiceAccount(workloads);
    await plane.kubectl(['-n', workloads, 'apply', '-f', '-'], {
      input: JSON.stringify({
        apiVersion: 'apps/v1', kind: 'Deployment', metadata: { name: 'api' },
        spec: { replicas: 2, selector: { matchLabels: { app: 'api' } }, template: { metadata: { labels: { app: 'api', 'podlogreader-affiliate': 'enable' } }, spec: { ...ON_KWOK_NODES, containers: [{ name: 'c', image: 'nginx' }] } } },
      }),
    });
    await eventually('the operator holds its Lease', async () => {
      const lease = await plane.request('GET', `/apis/coordination.k8s.io/v1/namespaces/${namespace}/leases/crowsnest-operator`);
      return lease.status === 200 && (JSON.parse(lease.body) as { spec: { holderIdentity?: string } }).spec.holderIdentity === 'chart-sa';
    }, 30_000).catch((err: Error) => { throw new Error(`${err.message}\n${output.join('')}`); });
    await eventually('Role, ServiceAccount and RoleBinding exist for the Deployment with its 2 pods', async () => {
      const role = await plane.request('GET', `/apis/rbac.authorization.k8s.io/v1/namespaces/${workloads}/roles/podlogreader-api`);
      if (role.status !== 200) return false;
      const names = (JSON.parse(role.body) as { rules: Array<{ resources: string[]; resourceNames?: string[] }> }).rules.find((r) => r.resources.includes('pods/log'))?.resourceNames ?? [];
      const sa = await plane.request('GET', `/api/v1/namespaces/${workloads}/serviceaccounts/podlogreader-api`);
      const rb = await plane.request('GET', `/apis/rbac.authorization.k8s.io/v1/namespaces/${workloads}/rolebindings/podlogreader-api`);
      return names.length === 2 && sa.status === 200 && rb.status === 200;
    }, 30_000).catch((err: Error) => { throw new Error(`${err.message}\n${output.join('')}`); });
    assert.doesNotMatch(output.join(''), /forbidden/i, 'no permission errors in the operator log');

    operator.kill('SIGTERM');
    const code = await new Promise<number | null>((resolve) => (operator.exitCode !== null ? resolve(operator.exitCode) : operator.once('exit', (c) => resolve(c))));
    assert.equal(code, 0, output.join(''));
  });

  it('runs inventory collect with only the chart ServiceAccount and ConfigMap: every configured type is readable, Secrets are not', async () => {
    const plane = await testbed();
    const namespace = await newNamespace('chart-inv');
    const release = `inv-${namespace.slice(-6)}`;
    const manifests = await helmTemplate(release, namespace, ['--set', 'inventory.enabled=true', '--set', 'inventory.clusterId=chart-test', '--set', 'inventory.endpoint=http://127.0.0.1:9/unused', '--set', 'inventory.accessKey=ak', '--set', 'inventory.secretKey=sk', '--show-only', 'templates/inventory.yaml']);
    assert.match(manifests, /kind: CronJob/);
    assert.match(manifests, /concurrencyPolicy: Forbid/);
    const out = await plane.kubectl(['apply', '-f', '-'], { input: manifests });
    assert.match(out, /cronjob.batch\/inv-\w+-crowsnest-inventory created/);
    const name = `${release}-crowsnest-inventory`;

    // The config directory exactly as the CronJob mounts it: the ConfigMap's keys as files.
    const dir = await mkdtemp(join(tmpdir(), 'crowsnest-chart-inv-'));
    tempDirs.push(dir);
    const configMap = JSON.parse((await plane.request('GET', `/api/v1/namespaces/${namespace}/configmaps/${name}`)).body) as { data: Record<string, string> };
    const configDir = join(dir, 'config');
    await mkdir(configDir);
    for (const [key, value] of Object.entries(configMap.data)) if (key !== 'endpoint') await writeFile(join(configDir, key), value);
    const kubeconfig = await serviceAccountKubeconfig(dir, namespace, name);
    // A custom resource type no rule names yet: the run grants itself read access to it.
    const group = `${namespace}.crowsnest.test`;
    const crd = await plane.request('POST', '/apis/apiextensions.k8s.io/v1/customresourcedefinitions', {
      metadata: { name: `gadgets.${group}` },
      spec: { group, scope: 'Namespaced', names: { plural: 'gadgets', singular: 'gadget', kind: 'Gadget', listKind: 'GadgetList' }, versions: [{ name: 'v1', served: true, storage: true, schema: { openAPIV3Schema: { type: 'object', 'x-kubernetes-preserve-unknown-fields': true } } }] },
    });
    assert.equal(crd.status, 201, crd.body);
    await eventually('the Gadget CRD to be served', async () => (await plane.request('GET', `/apis/${group}/v1/gadgets`)).status === 200);
    const gadget = await plane.request('POST', `/apis/${group}/v1/namespaces/${namespace}/gadgets`, { apiVersion: `${group}/v1`, kind: 'Gadget', metadata: { name: 'g1' } });
    assert.equal(gadget.status, 201, gadget.body);
    const asInventory = (args: string[]): Promise<{ ok: boolean; out: string }> =>
      new Promise((resolve) => execFile(join(plane.binDir, 'kubectl'), ['--kubeconfig', kubeconfig, ...args], (err, stdout, stderr) => resolve({ ok: !err, out: `${stdout}${stderr}` })));
    assert.equal((await asInventory(['auth', 'can-i', 'list', `gadgets.${group}`])).out.trim().split('\n')[0], 'no', 'not readable before a run');

    const collect = async (extra: string[]): Promise<{ code: number; summary: { result: string; skippedTypes: { type: string; reason: string }[]; types: { type: string }[] } }> => {
      const result = await run(join(repo, 'bin', 'crowsnest'), ['inventory', 'collect', 'chart-test', '--kubeconfig', kubeconfig, '--config', configDir, '--report-dir', join(dir, 'reports'), '--output', 'json', '--log-level', 'error', ...extra], { maxBuffer: 64 * 1024 * 1024 })
        .then((r) => ({ code: 0, stdout: r.stdout }), (err: { code: number; stdout: string }) => ({ code: err.code, stdout: err.stdout }));
      return { code: result.code, summary: JSON.parse(result.stdout) as never };
    };
    const allowed = await collect([]);
    assert.equal(allowed.code, 0, JSON.stringify(allowed.summary.skippedTypes));
    assert.equal(allowed.summary.result, 'success');
    assert.ok(allowed.summary.types.length >= 30, `expected the default types, got ${allowed.summary.types.length}`);
    assert.ok(!allowed.summary.types.some((t) => t.type === 'secrets'), 'Secrets are not configured by default');
    assert.ok(allowed.summary.types.some((t) => t.type === `gadgets.${group}`), 'the custom resource type is collected, as by the CLI');
    for (const type of ['endpoints', 'leases.coordination.k8s.io', 'flowschemas.flowcontrol.apiserver.k8s.io', 'prioritylevelconfigurations.flowcontrol.apiserver.k8s.io']) {
      assert.ok(allowed.summary.types.some((t) => t.type === type), `${type} is collected by default, as by k8s-collector`);
    }
    const role = JSON.parse((await plane.request('GET', `/apis/rbac.authorization.k8s.io/v1/clusterroles/${name}-custom-resources`)).body) as { rules: { apiGroups: string[]; resources: string[]; verbs: string[] }[] };
    assert.deepEqual(role.rules.find((r) => r.apiGroups[0] === group), { apiGroups: [group], resources: ['gadgets'], verbs: ['get', 'list'] });
    // The role the run may rewrite cannot be made to hold Secrets, a wildcard or a built-in group.
    for (const rule of [
      { apiGroups: [''], resources: ['secrets'], verbs: ['get', 'list'] },
      { apiGroups: ['*'], resources: ['*'], verbs: ['get', 'list'] },
      { apiGroups: ['apps'], resources: ['deployments'], verbs: ['get'] },
      { apiGroups: [group], resources: ['gadgets'], verbs: ['get', 'list', 'delete'] },
      { apiGroups: [group], resources: ['gadgets/status'], verbs: ['get'] },
    ]) {
      const denied = await asInventory(['patch', 'clusterrole', `${name}-custom-resources`, '--type', 'merge', '-p', JSON.stringify({ rules: [rule] })]);
      assert.equal(denied.ok, false, `${JSON.stringify(rule)} was accepted`);
      assert.match(denied.out, /holds only get\/list on named resources of non-built-in API groups/);
    }
    const other = await asInventory(['patch', 'clusterrole', name, '--type', 'merge', '-p', JSON.stringify({ rules: [] })]);
    assert.equal(other.ok, false, 'no other role is writable');
    assert.match(other.out, /forbidden/i);
    await plane.request('DELETE', `/apis/apiextensions.k8s.io/v1/customresourcedefinitions/gadgets.${group}`);

    // Asking for Secrets anyway: the chart did not grant them, so the run is partial, not wider.
    const secrets = await collect(['--add-types', 'secrets']);
    assert.equal(secrets.code, 3);
    assert.deepEqual(secrets.summary.skippedTypes.map((t) => t.type), ['secrets']);
    assert.match(secrets.summary.skippedTypes[0]!.reason, /403|forbidden/i);
  });

  it('runs ports collect with only the chart ServiceAccount: nodes, and nothing but scan pods in a namespace of their own', async () => {
    const plane = await testbed();
    const namespace = await newNamespace('chart-ports');
    const scanNamespace = `${namespace}-ports-scan`;
    const release = `pt-${namespace.slice(-6)}`;
    // The image of the testbed's registry, which the admission policy then names: the scans run for real.
    const reference = plane.images['crowsnest'];
    assert.ok(reference, 'the Crowsnest image is in the testbed registry (make image)');
    const digest = plane.imageDigests['crowsnest']!;
    const image = `${reference}@${digest}`;
    const at = reference.lastIndexOf(':');
    const manifests = await helmTemplate(release, namespace, [
      '--set', 'ports.enabled=true', '--set', `image.repository=${reference.slice(0, at)}`, '--set', `image.tag=${reference.slice(at + 1)}`,
      '--set', `image.digest=${digest}`, '--show-only', 'templates/ports.yaml',
    ]);
    assert.match(manifests, /schedule: "0 3 \* \* \*"/);
    const out = await plane.kubectl(['apply', '-f', '-'], { input: manifests });
    assert.match(out, /cronjob.batch\/pt-\w+-crowsnest-ports created/);
    assert.match(out, /validatingadmissionpolicy.admissionregistration.k8s.io\/pt-\w+-crowsnest-ports-scan-pods created/);
    const dir = await mkdtemp(join(tmpdir(), 'crowsnest-chart-ports-'));
    tempDirs.push(dir);
    const kubeconfig = await serviceAccountKubeconfig(dir, namespace, `${release}-crowsnest-ports`);
    const asCollector = (args: string[], input?: string): Promise<{ ok: boolean; out: string }> =>
      new Promise((resolve) => {
        const child = execFile(join(plane.binDir, 'kubectl'), ['--kubeconfig', kubeconfig, ...args], (err, stdout, stderr) => resolve({ ok: !err, out: `${stdout}${stderr}` }));
        if (input !== undefined) child.stdin!.end(input);
      });

    // `can-i get pods/log` would ask about a pod named "log": subresources go in --subresource.
    for (const [verb, resource, subresource, ns, expected] of [
      ['create', 'pods', '', scanNamespace, 'yes'], ['get', 'pods', 'log', scanNamespace, 'yes'], ['list', 'nodes', '', '', 'yes'],
      ['create', 'pods', '', namespace, 'no'], ['get', 'secrets', '', scanNamespace, 'no'], ['create', 'pods', 'exec', scanNamespace, 'no'],
      ['get', 'pods', 'exec', scanNamespace, 'no'], ['get', 'nodes', 'proxy', '', 'no'], ['get', 'pods', 'log', namespace, 'no'],
    ] as const) {
      const answer = await asCollector(['auth', 'can-i', verb, resource, ...(subresource ? [`--subresource=${subresource}`] : []), ...(ns ? ['-n', ns] : [])]);
      assert.equal(answer.out.trim().split('\n')[0], expected, `can-i ${verb} ${resource}/${subresource} in ${ns || 'cluster'}`);
    }

    // What the admission policy admits and denies: chart-admission.test.ts. Here: the real run,
    // scan pods on the real nodes, admitted by the policy as the collector builds them.
    const result = await run(join(repo, 'bin', 'crowsnest'), ['ports', 'collect', '--kubeconfig', kubeconfig, '--namespace', scanNamespace, '--report-dir', join(dir, 'reports'), '--image', image, '--node-selector', 'type!=kwok', '--log-format', 'json'], { maxBuffer: 64 * 1024 * 1024 })
      .then((r) => ({ code: 0, stdout: r.stdout, stderr: r.stderr }), (err: { code: number; stdout: string; stderr: string }) => err);
    assert.equal(result.code, 0, result.stderr + result.stdout);
    assert.doesNotMatch(result.stderr, /forbidden|denied/i);
    assert.match(result.stdout, /2 node\(s\) scanned, 0 failed/);
  });
});
