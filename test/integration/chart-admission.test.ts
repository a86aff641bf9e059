/**
 * The chart's admission policies on the testbed's real API server, attacked with the tokens of
 * the ServiceAccounts they guard (issue 10, items 11 and 12):
 *
 * - the ports collector may create pods in a privileged namespace: the policy must let through
 *   exactly the scan pod `ports collect` builds, and deny every other field of a pod spec;
 * - the operator may create, patch and delete Roles (and ServiceAccounts and RoleBindings) in
 *   every namespace: the policy must confine it to the objects logaccess makes, in the shapes it
 *   makes them, kube-system included;
 * - with guard, the operator may patch and delete every pod: the policy must confine it to what
 *   quarantine, its release and its ttl write (tried with its identity, impersonated).
 *
 * Every denial must come from the policy itself (not from RBAC or object validation), so each
 * escape is otherwise a valid request.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { QUARANTINE_ANNOTATION, QUARANTINE_LABEL, type QuarantineRecord } from '../../src/guard/contract.ts';
import { type GuardPod, guardPod } from '../../src/guard/pods.ts';
import { quarantinePatch, releasePatch } from '../../src/guard/quarantine.ts';
import type { KubeObject } from '../../src/kube/objects/resources.ts';
import { buildScanPod } from '../../src/ports/pod.ts';
import { assertDeniedBy, helmTemplate, installChartOperator, type ChartOperator } from './helm.ts';
import { asToken, eventually, newNamespace, ON_KWOK_NODES, requestToken, testbed } from './testbed.ts';

// biome-ignore lint/suspicious/noExplicitAny: each escape below reaches anywhere into the pod to make it invalid; a typed pod would need a cast on every line
type Pod = Record<string, any>;

describe('ports chart: the scan-pod admission policy is an allow-list of the scan pod', () => {
  let scanNamespace = '';
  let policy = '';
  let token = '';
  const suffix = randomBytes(3).toString('hex');
  const runtimeClass = `crowsnest-test-rc-${suffix}`;
  const priorityClass = `crowsnest-test-pc-${suffix}`;
  const cleanups: (() => Promise<unknown>)[] = [];

  const scanPod = (overrides: { processInfo?: boolean; priorityClassName?: string; imagePullPolicy?: 'Always' } = {}): Pod =>
    structuredClone(buildScanPod({
      namespace: scanNamespace, node: 'kwok-node-0', runId: 'abcd1234', image: 'crowsnest:test',
      processInfo: overrides.processInfo ?? true, activeDeadlineSeconds: 120,
      ...(overrides.priorityClassName ? { priorityClassName: overrides.priorityClassName } : {}),
      ...(overrides.imagePullPolicy ? { imagePullPolicy: overrides.imagePullPolicy } : {}),
    })) as Pod;
  const create = (pod: Pod): Promise<{ status: number; body: string }> =>
    asToken(token, 'POST', `/api/v1/namespaces/${scanNamespace}/pods?dryRun=All`, pod);

  before(async () => {
    const plane = await testbed();
    const namespace = await newNamespace('chart-scan');
    scanNamespace = `${namespace}-ports-scan`;
    const release = `sp-${suffix}`;
    policy = `${release}-crowsnest-ports-scan-pods`;
    const manifests = await helmTemplate(release, namespace, ['--set', 'ports.enabled=true', '--set', 'image.repository=crowsnest', '--set', 'image.tag=test', '--show-only', 'templates/ports.yaml']);
    await plane.kubectl(['apply', '-f', '-'], { input: manifests });
    token = await requestToken(namespace, `${release}-crowsnest-ports`, 3600);
    // What some escapes name must exist, so that only the policy can be what refuses them.
    await plane.kubectl(['apply', '-f', '-'], {
      input: JSON.stringify({
        apiVersion: 'v1', kind: 'List', items: [
          { apiVersion: 'node.k8s.io/v1', kind: 'RuntimeClass', metadata: { name: runtimeClass }, handler: 'runc', overhead: { podFixed: { cpu: '10m' } } },
          { apiVersion: 'scheduling.k8s.io/v1', kind: 'PriorityClass', metadata: { name: priorityClass }, value: 10 },
          { apiVersion: 'v1', kind: 'ServiceAccount', metadata: { name: 'other', namespace: scanNamespace } },
        ],
      }),
    });
    cleanups.push(() => plane.kubectl(['delete', 'runtimeclass', runtimeClass, 'priorityclass', priorityClass, '--ignore-not-found']));
    await eventually('the scan-pod policy is in effect', async () => {
      const pod = scanPod();
      pod.spec.containers[0].env.push({ name: 'NODE_OPTIONS', value: '--import=data:text/javascript,1' });
      return (await create(pod)).status === 422;
    }, 20_000);
  });
  after(async () => {
    for (const cleanup of cleanups.splice(0)) await cleanup().catch(() => {});
  });

  it('allows the scan pod ports collect builds, with and without process info, with a priority class and pull policy', async () => {
    for (const pod of [scanPod(), scanPod({ processInfo: false }), scanPod({ priorityClassName: priorityClass, imagePullPolicy: 'Always' })]) {
      const res = await create(pod);
      assert.equal(res.status, 201, res.body);
    }
  });

  /** Each is the scan pod with one change: a way out of it onto the node, or a field it does not have. */
  const escapes: [string, (pod: Pod) => void][] = [
    // containers
    ['a second container', (p) => p.spec.containers.push({ name: 'shell', image: 'crowsnest:test', args: ['ports', 'scan'] })],
    ['an init container', (p) => (p.spec.initContainers = [{ name: 'init', image: 'crowsnest:test', args: ['ports', 'scan'] }])],
    ['another image', (p) => (p.spec.containers[0].image = 'attacker/shell:latest')],
    ['a command', (p) => (p.spec.containers[0].command = ['/bin/sh', '-c', 'id'])],
    ['other arguments (another /proc)', (p) => (p.spec.containers[0].args = ['ports', 'scan', '--output', 'json', '--proc', '/host/proc', '--net-pid', '1', '--log-level', 'warn'])],
    ['an extra argument', (p) => p.spec.containers[0].args.push('--debug')],
    ['a working directory', (p) => (p.spec.containers[0].workingDir = '/proc/1/root')],
    ['stdin and a tty', (p) => Object.assign(p.spec.containers[0], { stdin: true, tty: true })],
    ['a host port', (p) => (p.spec.containers[0].ports = [{ containerPort: 8080, hostPort: 8080 }])],
    ['a restart policy on the container (a sidecar)', (p) => (p.spec.containers[0].restartPolicy = 'Always')],
    // env
    ['NODE_OPTIONS (runs any code as root with SYS_PTRACE in the host PID namespace)', (p) => p.spec.containers[0].env.push({ name: 'NODE_OPTIONS', value: '--import=data:text/javascript,1' })],
    ['envFrom a ConfigMap', (p) => (p.spec.containers[0].envFrom = [{ configMapRef: { name: 'anything', optional: true } }])],
    ['env from a Secret instead of the node name', (p) => (p.spec.containers[0].env[0] = { name: 'NODE_NAME', valueFrom: { secretKeyRef: { name: 's', key: 'k', optional: true } } })],
    ['NODE_NAME from another field', (p) => (p.spec.containers[0].env[0].valueFrom.fieldRef.fieldPath = 'metadata.name')],
    ['a changed env value', (p) => (p.spec.containers[0].env[1].value = '0')],
    // lifecycle and probes
    ['a postStart exec hook', (p) => (p.spec.containers[0].lifecycle = { postStart: { exec: { command: ['/bin/sh', '-c', 'id'] } } })],
    ['a preStop hook', (p) => (p.spec.containers[0].lifecycle = { preStop: { sleep: { seconds: 1 } } })],
    ['an exec liveness probe', (p) => (p.spec.containers[0].livenessProbe = { exec: { command: ['/bin/sh', '-c', 'id'] } })],
    ['an exec readiness probe', (p) => (p.spec.containers[0].readinessProbe = { exec: { command: ['id'] } })],
    ['an exec startup probe', (p) => (p.spec.containers[0].startupProbe = { exec: { command: ['id'] } })],
    // container security context
    ['privileged', (p) => {
      // (privileged with allowPrivilegeEscalation false is not even a valid pod)
      p.spec.containers[0].securityContext.privileged = true;
      delete p.spec.containers[0].securityContext.allowPrivilegeEscalation;
    }],
    ['privilege escalation', (p) => (p.spec.containers[0].securityContext.allowPrivilegeEscalation = true)],
    ['CAP_SYS_ADMIN', (p) => p.spec.containers[0].securityContext.capabilities.add.push('SYS_ADMIN')],
    ['capabilities not dropped', (p) => delete p.spec.containers[0].securityContext.capabilities.drop],
    ['a writable root file system', (p) => (p.spec.containers[0].securityContext.readOnlyRootFilesystem = false)],
    ['an unconfined seccomp profile on the container', (p) => (p.spec.containers[0].securityContext.seccompProfile = { type: 'Unconfined' })],
    ['an unmasked /proc (in a user namespace, without host PID, as it must be)', (p) => {
      p.spec.containers[0].securityContext.procMount = 'Unmasked';
      Object.assign(p.spec, { hostUsers: false, hostPID: false });
    }],
    ['SELinux options', (p) => (p.spec.containers[0].securityContext.seLinuxOptions = { type: 'spc_t' })],
    ['another user', (p) => (p.spec.containers[0].securityContext.runAsUser = 1000)],
    ['a localhost AppArmor profile', (p) => (p.spec.containers[0].securityContext.appArmorProfile = { type: 'Localhost', localhostProfile: 'x' })],
    // volumes
    ['a hostPath volume of /', (p) => {
      p.spec.volumes = [{ name: 'root', hostPath: { path: '/' } }];
      p.spec.containers[0].volumeMounts = [{ name: 'root', mountPath: '/host' }];
    }],
    ['an emptyDir volume', (p) => (p.spec.volumes = [{ name: 'scratch', emptyDir: {} }])],
    ['a projected ServiceAccount token volume', (p) => (p.spec.volumes = [{ name: 't', projected: { sources: [{ serviceAccountToken: { path: 'token' } }] } }])],
    ['a block device', (p) => {
      p.spec.volumes = [{ name: 'disk', persistentVolumeClaim: { claimName: 'c' } }];
      p.spec.containers[0].volumeDevices = [{ name: 'disk', devicePath: '/dev/xvda' }];
    }],
    // pod: identity and host namespaces
    ['a ServiceAccount token', (p) => (p.spec.automountServiceAccountToken = true)],
    ['another ServiceAccount', (p) => (p.spec.serviceAccountName = 'other')],
    ['the host network', (p) => (p.spec.hostNetwork = true)],
    ['host IPC', (p) => (p.spec.hostIPC = true)],
    ['host users (no user namespace)', (p) => (p.spec.hostUsers = true)],
    ['a shared process namespace instead of the host\'s', (p) => Object.assign(p.spec, { hostPID: false, shareProcessNamespace: true })],
    ['no host PID (another pod entirely)', (p) => delete p.spec.hostPID],
    // pod security context
    ['sysctls', (p) => (p.spec.securityContext.sysctls = [{ name: 'kernel.shm_rmid_forced', value: '1' }])],
    ['an unconfined seccomp profile on the pod', (p) => (p.spec.securityContext.seccompProfile = { type: 'Unconfined' })],
    ['an unconfined AppArmor profile on the pod', (p) => (p.spec.securityContext.appArmorProfile = { type: 'Unconfined' })],
    ['supplemental groups and fsGroup', (p) => Object.assign(p.spec.securityContext, { supplementalGroups: [0], fsGroup: 0 })],
    ['pod-level runAsUser', (p) => (p.spec.securityContext.runAsUser = 0)],
    // scheduling and runtime
    ['a runtime class (admission adds its pod overhead)', (p) => (p.spec.runtimeClassName = runtimeClass)],
    ['node affinity', (p) => (p.spec.affinity = { nodeAffinity: { requiredDuringSchedulingIgnoredDuringExecution: { nodeSelectorTerms: [{ matchExpressions: [{ key: 'a', operator: 'Exists' }] }] } } })],
    ['a node selector', (p) => (p.spec.nodeSelector = { a: 'b' })],
    ['host aliases', (p) => (p.spec.hostAliases = [{ ip: '10.0.0.1', hostnames: ['kubernetes.default.svc'] }])],
    ['a DNS config', (p) => Object.assign(p.spec, { dnsPolicy: 'None', dnsConfig: { nameservers: ['10.0.0.1'] } })],
    ['another toleration', (p) => p.spec.tolerations.push({ key: 'x', operator: 'Exists' })],
    ['no deadline', (p) => delete p.spec.activeDeadlineSeconds],
    ['a restart policy of Always', (p) => (p.spec.restartPolicy = 'Always')],
    ['scheduling gates (instead of a node)', (p) => {
      delete p.spec.nodeName;
      p.spec.schedulingGates = [{ name: 'x' }];
    }],
    ['resource claims', (p) => (p.spec.resourceClaims = [{ name: 'c', resourceClaimName: 'x' }])],
    ['hugepages', (p) => (p.spec.containers[0].resources.limits['hugepages-2Mi'] = '2Mi')],
    ['an OS', (p) => (p.spec.os = { name: 'linux' })],
    // metadata
    ['the deprecated AppArmor annotation (unconfined)', (p) => (p.metadata.annotations['container.apparmor.security.beta.kubernetes.io/scan'] = 'unconfined')],
    ['another annotation', (p) => (p.metadata.annotations['example.com/x'] = 'y')],
    ['a finalizer', (p) => (p.metadata.finalizers = ['example.com/keep'])],
    ['another label', (p) => (p.metadata.labels['app'] = 'web')],
    ['a changed label value', (p) => (p.metadata.labels['app.kubernetes.io/managed-by'] = 'someone-else')],
  ];
  for (const [what, change] of escapes) {
    it(`denies ${what}`, async () => {
      const pod = scanPod();
      change(pod);
      assertDeniedBy(await create(pod), policy, what);
    });
  }

  it('denies changing a pod or adding an ephemeral container, even if RBAC allowed it', async () => {
    const plane = await testbed();
    // A scan pod created by an administrator (the policy only guards the collector's identity),
    // and RBAC widened by mistake: the policy still holds.
    const created = await plane.request('POST', `/api/v1/namespaces/${scanNamespace}/pods`, scanPod());
    assert.equal(created.status, 201, created.body);
    const name = (JSON.parse(created.body) as Pod).metadata.name as string;
    cleanups.push(() => plane.request('DELETE', `/api/v1/namespaces/${scanNamespace}/pods/${name}?gracePeriodSeconds=0`));
    const collector = `system:serviceaccount:${scanNamespace.replace(/-ports-scan$/, '')}:${policy.replace(/-scan-pods$/, '')}`;
    await plane.kubectl(['-n', scanNamespace, 'create', 'role', 'too-wide', '--verb=patch,update', '--resource=pods,pods/ephemeralcontainers']);
    await plane.kubectl(['-n', scanNamespace, 'create', 'rolebinding', 'too-wide', '--role=too-wide', `--user=${collector}`]);
    await eventually('the widened RBAC is in effect', async () => (await patchMerge(token, `/api/v1/namespaces/${scanNamespace}/pods/${name}`, {})).status !== 403, 10_000);
    assertDeniedBy(await patchMerge(token, `/api/v1/namespaces/${scanNamespace}/pods/${name}`, { metadata: { labels: { extra: 'x' } } }), policy, 'a label change');
    assertDeniedBy(await patchMerge(token, `/api/v1/namespaces/${scanNamespace}/pods/${name}/ephemeralcontainers`, {
      spec: { ephemeralContainers: [{ name: 'debug', image: 'attacker/shell:latest', command: ['/bin/sh'], stdin: true, tty: true }] },
    }), policy, 'an ephemeral container');
  });
});

/** A JSON merge patch (dry run) with a token. */
async function patchMerge(token: string, path: string, body: unknown): Promise<{ status: number; body: string }> {
  const plane = await testbed();
  // asToken sends JSON; a merge patch needs its own content type, so this goes through fetch.
  const { readFile } = await import('node:fs/promises');
  const { request } = await import('node:https');
  const ca = await readFile(plane.pki.caCert);
  return await new Promise((resolve, reject) => {
    const req = request({
      host: plane.host, port: plane.ports.apiserver, path: `${path}?dryRun=All`, method: 'PATCH', ca,
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/merge-patch+json', accept: 'application/json' },
    }, (res) => {
      let text = '';
      res.on('data', (c: Buffer) => (text += c.toString()));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: text }));
    });
    req.on('error', reject);
    req.end(JSON.stringify(body));
  });
}

describe('operator chart: its ServiceAccount may write only what logaccess writes (tried in kube-system)', () => {
  let operator: ChartOperator;
  let policy = '';
  const suffix = randomBytes(3).toString('hex');
  const victim = `victim-${suffix}`;
  const ns = 'kube-system';
  const rbac = `/apis/rbac.authorization.k8s.io/v1/namespaces/${ns}`;
  const owner = { apiVersion: 'apps/v1', kind: 'Deployment', name: 'web', uid: '0b5bd7b6-6c1d-4a0c-9d6e-000000000001', controller: true, blockOwnerDeletion: false };
  const ours = (name: string): Record<string, unknown> => ({
    name, namespace: ns,
    labels: { 'app.kubernetes.io/managed-by': 'crowsnest', 'app.kubernetes.io/part-of': 'crowsnest', 'logaccess.crowsnest.dev/workload-kind': 'Deployment' },
    ownerReferences: [owner],
  });
  const logRule = { apiGroups: [''], resources: ['pods/log'], verbs: ['get', 'list', 'watch'], resourceNames: ['web-1'] };
  const listRule = { apiGroups: [''], resources: ['pods'], verbs: ['list'] };
  const as = (method: string, path: string, body?: unknown): Promise<{ status: number; body: string }> => asToken(operator.token, method, path, body);

  before(async () => {
    const plane = await testbed();
    const namespace = await newNamespace('chart-op');
    operator = await installChartOperator(`op-${suffix}`, namespace, ['logaccess.createServiceAccountAndRoleBinding=true']);
    policy = `op-${suffix}-crowsnest-operator-writes`;
    // Someone else's objects in kube-system, and near-misses of ours.
    // Rules the operator holds itself, so RBAC's escalation check lets changes to them through to admission.
    await plane.kubectl(['-n', ns, 'create', 'role', victim, '--verb=list', '--resource=pods']);
    await plane.kubectl(['-n', ns, 'create', 'rolebinding', victim, `--role=${victim}`, '--serviceaccount=kube-system:default']);
    await plane.kubectl(['-n', ns, 'create', 'role', `podlogreader-${victim}`, '--verb=list', '--resource=pods']);
    // A Role the operator could have made, for bindings to point at (RBAC lets it bind what it holds).
    await plane.kubectl(['-n', ns, 'create', 'role', `podlogreader-b-${suffix}`, '--verb=get,list,watch', '--resource=pods/log', '--resource-name=web-1']);
    // Exactly what podlogreader made for a Deployment (adoptable), and the same with a label (someone else's).
    for (const [name, labels] of [[`podlogreader-plr-${suffix}`, undefined], [`podlogreader-plrl-${suffix}`, { team: 'x' }]] as const) {
      const made = await plane.request('POST', `${rbac}/roles`, { metadata: { name, namespace: ns, ...(labels ? { labels } : {}) }, rules: [listRule, logRule] });
      assert.equal(made.status, 201, made.body);
    }
  });
  after(async () => {
    const plane = await testbed();
    await plane.kubectl(['-n', ns, 'delete', 'role', victim, `podlogreader-${victim}`, `podlogreader-b-${suffix}`, `podlogreader-plr-${suffix}`, `podlogreader-plrl-${suffix}`, '--ignore-not-found']).catch(() => {});
    await plane.kubectl(['-n', ns, 'delete', 'rolebinding', victim, '--ignore-not-found']).catch(() => {});
  });

  it('may create, in kube-system too, a Role of the shape logaccess writes (dry run)', async () => {
    const res = await as('POST', `${rbac}/roles?dryRun=All`, { metadata: ours(`podlogreader-ok-${suffix}`), rules: [logRule, listRule] });
    assert.equal(res.status, 201, res.body);
  });

  it('may adopt, in place, a Role exactly as podlogreader made it, into the shape logaccess writes (dry run)', async () => {
    const res = await patchMerge(operator.token, `${rbac}/roles/podlogreader-plr-${suffix}`, { metadata: ours(`podlogreader-plr-${suffix}`), rules: [logRule, listRule] });
    assert.equal(res.status, 200, res.body);
  });

  const attacks: [string, string, string, unknown?][] = [
    ['adopts a podlogreader-shaped Role someone labelled (not as podlogreader made it)', 'PATCH-MERGE', `${rbac}/roles/podlogreader-plrl-${suffix}`, { metadata: ours(`podlogreader-plrl-${suffix}`), rules: [logRule, listRule] }],
    ['adopts podlogreader\'s Role but widens it (pods/log on every pod)', 'PATCH-MERGE', `${rbac}/roles/podlogreader-plr-${suffix}`, { metadata: ours(`podlogreader-plr-${suffix}`), rules: [{ ...logRule, resourceNames: null }, listRule] }],
    ['rewrites podlogreader\'s Role without adopting it', 'PATCH-MERGE', `${rbac}/roles/podlogreader-plr-${suffix}`, { rules: [listRule] }],
    // (rules the operator holds itself: anything else RBAC refuses as an escalation first)
    ['rewrites someone else\'s Role', 'PATCH-MERGE', `${rbac}/roles/${victim}`, { rules: [{ apiGroups: [''], resources: ['pods/log'], verbs: ['get'] }] }],
    ['deletes someone else\'s Role', 'DELETE', `${rbac}/roles/${victim}`],
    ['takes someone else\'s Role over by adding our label', 'PATCH-MERGE', `${rbac}/roles/${victim}`, { metadata: { labels: { 'app.kubernetes.io/managed-by': 'crowsnest' } } }],
    ['deletes a Role with our prefix that is not ours', 'DELETE', `${rbac}/roles/podlogreader-${victim}`],
    ['deletes someone else\'s RoleBinding', 'DELETE', `${rbac}/rolebindings/${victim}`],
    ['deletes a ServiceAccount', 'DELETE', `/api/v1/namespaces/${ns}/serviceaccounts/default`],
    ['creates an unlabelled Role', 'POST', `${rbac}/roles`, { metadata: { name: `podlogreader-x-${suffix}`, namespace: ns }, rules: [logRule] }],
    ['creates a labelled Role without the prefix', 'POST', `${rbac}/roles`, { metadata: { ...ours(`x-${suffix}`) }, rules: [logRule] }],
    ['creates a Role with no owner', 'POST', `${rbac}/roles`, { metadata: { ...ours(`podlogreader-x-${suffix}`), ownerReferences: undefined }, rules: [logRule] }],
    ['creates a Role for every pod\'s log (no resourceNames)', 'POST', `${rbac}/roles`, { metadata: ours(`podlogreader-all-${suffix}`), rules: [{ ...logRule, resourceNames: undefined }] }],
    ['creates a Role that may also watch pods', 'POST', `${rbac}/roles`, { metadata: ours(`podlogreader-w-${suffix}`), rules: [{ apiGroups: [''], resources: ['pods'], verbs: ['list', 'watch'] }] }],
    ['creates a RoleBinding of our Role to another ServiceAccount', 'POST', `${rbac}/rolebindings`, {
      metadata: ours(`podlogreader-b-${suffix}`), roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name: `podlogreader-b-${suffix}` },
      subjects: [{ kind: 'ServiceAccount', name: 'default', namespace: ns }],
    }],
    ['creates a RoleBinding to a Role of another name', 'POST', `${rbac}/rolebindings`, {
      metadata: ours(`podlogreader-c-${suffix}`), roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name: `podlogreader-b-${suffix}` },
      subjects: [{ kind: 'ServiceAccount', name: `podlogreader-c-${suffix}`, namespace: ns }],
    }],
    ['creates a ServiceAccount holding image pull secrets', 'POST', `/api/v1/namespaces/${ns}/serviceaccounts`, { metadata: ours(`podlogreader-s-${suffix}`), imagePullSecrets: [{ name: 'x' }] }],
  ];
  for (const [what, method, path, body] of attacks) {
    it(`may not: it ${what}`, async () => {
      const res = method === 'PATCH-MERGE'
        ? await patchMerge(operator.token, path, body)
        : await as(method, `${path}?dryRun=All`, body);
      assertDeniedBy(res, policy, what);
    });
  }

  it('without ServiceAccount/RoleBinding creation, RBAC grants no create or patch on them', async () => {
    const namespace = await newNamespace('chart-op-min');
    const minimal = await installChartOperator(`opm-${suffix}`, namespace);
    const review = async (verb: string, resource: string, group: string): Promise<boolean> => {
      const res = await asToken(minimal.token, 'POST', '/apis/authorization.k8s.io/v1/selfsubjectaccessreviews', {
        spec: { resourceAttributes: { namespace: ns, verb, resource, group } },
      });
      return (JSON.parse(res.body) as { status: { allowed: boolean } }).status.allowed;
    };
    for (const [verb, resource, group] of [['create', 'serviceaccounts', ''], ['patch', 'serviceaccounts', ''], ['create', 'rolebindings', 'rbac.authorization.k8s.io'], ['patch', 'rolebindings', 'rbac.authorization.k8s.io'], ['get', 'secrets', '']] as const) {
      assert.equal(await review(verb, resource, group), false, `${verb} ${resource}`);
    }
    // What it keeps for cleaning up what an earlier configuration created is bounded by the policy.
    assertDeniedBy(await asToken(minimal.token, 'DELETE', `/api/v1/namespaces/${ns}/serviceaccounts/default?dryRun=All`), `opm-${suffix}-crowsnest-operator-writes`, 'deleting kube-system/default');
  });
});

describe('guard chart: its ServiceAccount may change on pods only what quarantine and its release change', () => {
  const suffix = randomBytes(3).toString('hex');
  let namespace = '';
  let policy = '';
  let operator = '';
  const record = (removedLabels: Record<string, string>): QuarantineRecord => ({
    incident: `crashloop-${suffix}`, policy: 'web', detector: 'crashLoop', at: '2026-01-01T00:00:00Z', until: '2026-01-02T00:00:00Z', removedLabels,
  });
  const podsPath = () => `/api/v1/namespaces/${namespace}/pods`;
  /** The pod as it is now: guard's patches test its resourceVersion, which the node's status updates change. */
  const current = async (name: string): Promise<GuardPod> => {
    const res = await (await testbed()).request('GET', `${podsPath()}/${name}`);
    assert.equal(res.status, 200, res.body);
    return guardPod(JSON.parse(res.body) as KubeObject) as GuardPod;
  };
  /** `method` on `path` (dry run) as `user` (impersonated), the body sent with `contentType`. */
  const as = async (user: string | undefined, method: string, path: string, body?: unknown, contentType = 'application/json-patch+json') =>
    (await testbed()).request(method, `${path}?dryRun=All`, body, { 'content-type': contentType, ...(user ? { 'Impersonate-User': user } : {}) });

  before(async () => {
    const plane = await testbed();
    namespace = await newNamespace('chart-guard');
    const release = `gw-${suffix}`;
    policy = `${release}-crowsnest-operator-guard-pod-writes`;
    operator = `system:serviceaccount:${namespace}:${release}-crowsnest-operator`;
    const manifests = await helmTemplate(release, namespace, [
      '--set', 'guard.enabled=true', '--show-only', 'templates/operator-serviceaccount.yaml', '--show-only', 'templates/guard.yaml',
    ]);
    await plane.kubectl(['apply', '-f', '-'], { input: manifests });
    // A pod as a ReplicaSet would own it (its controller here a ConfigMap: nothing reconciles it),
    // and one guard quarantined already.
    const owner = JSON.parse((await plane.request('POST', `/api/v1/namespaces/${namespace}/configmaps`, { metadata: { name: 'owner' } })).body) as { metadata: { uid: string } };
    const create = async (name: string, metadata: Record<string, unknown>): Promise<void> => {
      const res = await plane.request('POST', podsPath(), { metadata: { name, ...metadata }, spec: { ...ON_KWOK_NODES, containers: [{ name: 'main', image: 'registry.example/app:1' }] } });
      assert.equal(res.status, 201, res.body);
    };
    await create('web', {
      labels: { app: 'web', tier: 'web' }, annotations: { team: 'a' },
      ownerReferences: [{ apiVersion: 'v1', kind: 'ConfigMap', name: 'owner', uid: owner.metadata.uid, controller: true }],
    });
    await create('held', { labels: { tier: 'web', [QUARANTINE_LABEL]: `crashloop-${suffix}` }, annotations: { team: 'a', [QUARANTINE_ANNOTATION]: JSON.stringify(record({ app: 'web' })) } });
    await eventually('the guard pod-write policy is in effect', async () => {
      const res = await as(operator, 'PATCH', `${podsPath()}/web`, [{ op: 'replace', path: '/spec/containers/0/image', value: 'registry.example/app:2' }]);
      return res.status === 422 || (res.status === 403 && res.body.includes(policy));
    }, 20_000);
    // Running, their status settles: the resourceVersion a patch tests stays put.
    await eventually('both pods running on their kwok node', async () => (await current('web')).status.phase === 'Running' && (await current('held')).status.phase === 'Running', 20_000);
  });

  it('lets the operator quarantine a pod with the patch guard makes: its owner\'s labels and controller reference removed, its label and record added', async () => {
    const res = await as(operator, 'PATCH', `${podsPath()}/web`, quarantinePatch(await current('web'), record({ app: 'web' })));
    assert.equal(res.status, 200, res.body);
  });

  it('lets the operator release a quarantined pod (labels back, label and record removed) and delete one', async () => {
    const released = await as(operator, 'PATCH', `${podsPath()}/held`, releasePatch(await current('held'), record({ app: 'web' })));
    assert.equal(released.status, 200, released.body);
    const deleted = await as(operator, 'DELETE', `${podsPath()}/held`);
    assert.equal(deleted.status, 200, deleted.body);
  });

  const image = { op: 'replace', path: '/spec/containers/0/image', value: 'attacker.example/shell:latest' };
  const denials: [string, () => Promise<[string, string, unknown?, string?]>, RegExp][] = [
    ['changes a container\'s image', async () => ['PATCH', 'web', [image]], /may not change a pod's spec \(containers, images/],
    ['changes an image in the same patch as a quarantine', async () => ['PATCH', 'web', [...quarantinePatch(await current('web'), record({ app: 'web' })), image]], /may not change a pod's spec/],
    ['adds another annotation', async () => ['PATCH', 'web', { metadata: { annotations: { 'example.com/other': 'x' } } }, 'application/merge-patch+json'], /may change only the guard\.crowsnest\.dev\/quarantine annotation/],
    ['changes a label\'s value', async () => ['PATCH', 'web', { metadata: { labels: { tier: 'db' } } }, 'application/merge-patch+json'], /labels only to quarantine it/],
    ['removes a label without quarantining the pod', async () => ['PATCH', 'web', { metadata: { labels: { app: null } } }, 'application/merge-patch+json'], /labels only to quarantine it/],
    ['quarantines but removes a label it does not record', async () => ['PATCH', 'web', [...quarantinePatch(await current('web'), record({ app: 'web' })), { op: 'remove', path: '/metadata/labels/tier' }]], /labels only to quarantine it/],
    ['releases but adds a label it never removed', async () => ['PATCH', 'held', [...releasePatch(await current('held'), record({ app: 'web' })), { op: 'add', path: '/metadata/labels/role', value: 'admin' }]], /labels only to quarantine it/],
    ['removes the controller reference without quarantining the pod', async () => ['PATCH', 'web', [{ op: 'remove', path: '/metadata/ownerReferences' }]], /may only remove a pod's controller owner reference, when it quarantines/],
    ['adds a finalizer', async () => ['PATCH', 'web', { metadata: { finalizers: ['example.com/keep'] } }, 'application/merge-patch+json'], /may not change a pod's finalizers/],
    ['deletes a pod it did not quarantine', async () => ['DELETE', 'web'], /may delete only a pod guard quarantined .* web is not/],
  ];
  for (const [what, request, message] of denials) {
    it(`denies the operator a write that ${what}, saying why`, async () => {
      const [method, name, body, contentType] = await request();
      const res = await as(operator, method, `${podsPath()}/${name}`, body, contentType);
      assertDeniedBy(res, policy, what);
      assert.match(res.body, message, what);
    });
  }

  it('leaves everyone else alone: an administrator may change the image', async () => {
    const res = await as(undefined, 'PATCH', `${podsPath()}/web`, [image]);
    assert.equal(res.status, 200, res.body);
  });
});
