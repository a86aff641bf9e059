import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  DEFAULT_LOGACCESS_OPTIONS,
  desiredRole,
  desiredRoleBinding,
  formatKey,
  isOptedIn,
  isPodlogreaders,
  matchesDesired,
  parseKey,
  workloadOfObject,
  workloadOfPod,
} from './desired.ts';
import type { KubeObject } from '../kube/objects/resources.ts';

const deployment = {
  apiVersion: 'apps/v1', kind: 'Deployment' as const,
  metadata: { name: 'web', namespace: 'shop', uid: 'dep-uid' },
  spec: { template: { metadata: { labels: { app: 'web', 'podlogreader-affiliate': 'enable' } } } },
};

function owned(kind: string, name: string, uid: string, extra: Partial<KubeObject['metadata']> = {}): KubeObject {
  return { metadata: { name: `${name}-child`, namespace: 'shop', ownerReferences: [{ apiVersion: 'apps/v1', kind, name, uid, controller: true }], ...extra } };
}

describe('desiredRole', () => {
  it('allows pods/log only on the named pods, sorted and deduplicated', () => {
    const role = desiredRole(deployment, ['web-b', 'web-a', 'web-b'], DEFAULT_LOGACCESS_OPTIONS);
    assert.equal(role.metadata.name, 'podlogreader-web');
    assert.deepEqual(role.rules, [
      { apiGroups: [''], resources: ['pods/log'], verbs: ['get', 'list', 'watch'], resourceNames: ['web-a', 'web-b'] },
      { apiGroups: [''], resources: ['pods'], verbs: ['list'] },
    ]);
  });

  it('has no pods/log rule at all when the workload has no pods (empty resourceNames would mean every pod)', () => {
    for (const names of [[], ['']]) {
      const role = desiredRole(deployment, names, DEFAULT_LOGACCESS_OPTIONS);
      assert.ok(role.rules!.every((rule) => !rule.resources.includes('pods/log')), JSON.stringify(role.rules));
    }
    assert.deepEqual(desiredRole(deployment, [], { ...DEFAULT_LOGACCESS_OPTIONS, allowPodList: false }).rules, []);
  });

  it('every pods/log rule it ever produces carries resourceNames', () => {
    for (const names of [[], ['a'], ['a', 'b', 'c']]) {
      for (const allowPodList of [true, false]) {
        for (const rule of desiredRole(deployment, names, { ...DEFAULT_LOGACCESS_OPTIONS, allowPodList }).rules!) {
          if (rule.resources.includes('pods/log')) assert.ok((rule.resourceNames?.length ?? 0) > 0);
        }
      }
    }
  });

  it('is owned by the workload, labelled as ours, and named with the configured prefix', () => {
    const role = desiredRole(deployment, ['p'], { ...DEFAULT_LOGACCESS_OPTIONS, namePrefix: 'logs-' });
    assert.equal(role.metadata.name, 'logs-web');
    assert.equal(role.metadata.labels?.['app.kubernetes.io/managed-by'], 'crowsnest');
    assert.equal(role.metadata.labels?.['app.kubernetes.io/part-of'], 'crowsnest');
    assert.deepEqual(role.metadata.ownerReferences, [{ apiVersion: 'apps/v1', kind: 'Deployment', name: 'web', uid: 'dep-uid', controller: true, blockOwnerDeletion: false }]);
  });
});

describe('opt-in', () => {
  it('reads the pod template label (seed spelling or our alias), also of a CronJob job template', () => {
    assert.equal(isOptedIn('Deployment', deployment), true);
    const withTemplateLabels = (labels: Record<string, string>): KubeObject => ({ ...deployment, spec: { template: { metadata: { labels } } } }) as KubeObject;
    assert.equal(isOptedIn('Deployment', withTemplateLabels({ 'logaccess.crowsnest.dev/enabled': 'true' })), true);
    assert.equal(isOptedIn('Deployment', withTemplateLabels({ 'podlogreader-affiliate': 'yes' })), false);
    assert.equal(isOptedIn('Deployment', { ...deployment, metadata: { ...deployment.metadata, deletionTimestamp: '2026-01-01T00:00:00Z' } }), false);
    const cronJob = { metadata: { name: 'c' }, spec: { jobTemplate: { spec: { template: { metadata: { labels: { 'podlogreader-affiliate': 'enable' } } } } } } };
    assert.equal(isOptedIn('CronJob', cronJob), true);
  });
});

describe('owner chain', () => {
  const rsOfDeployment = { metadata: { name: 'web-1', namespace: 'shop', uid: 'rs-uid', ownerReferences: [{ apiVersion: 'apps/v1', kind: 'Deployment', name: 'web', uid: 'dep-uid', controller: true }] } };
  const bareRs = { metadata: { name: 'solo', namespace: 'shop', uid: 'rs2' } };
  const jobOfCronJob = { metadata: { name: 'nightly-1', namespace: 'shop', uid: 'job-uid', ownerReferences: [{ apiVersion: 'batch/v1', kind: 'CronJob', name: 'nightly', uid: 'cj', controller: true }] } };
  const owners = {
    replicaSet: (_ns: string, name: string) => ({ 'web-1': rsOfDeployment, solo: bareRs } as Record<string, KubeObject>)[name],
    job: (_ns: string, name: string) => (name === 'nightly-1' ? jobOfCronJob : undefined),
  };
  const table: Array<[string, KubeObject, string | undefined]> = [
    ['a Deployment pod (through its ReplicaSet)', owned('ReplicaSet', 'web-1', 'rs-uid'), 'Deployment/shop/web'],
    ['a bare ReplicaSet pod', owned('ReplicaSet', 'solo', 'rs2'), 'ReplicaSet/shop/solo'],
    ['a StatefulSet pod', owned('StatefulSet', 'db', 'x'), 'StatefulSet/shop/db'],
    ['a DaemonSet pod', owned('DaemonSet', 'agent', 'x'), 'DaemonSet/shop/agent'],
    ['a CronJob pod (through its Job)', owned('Job', 'nightly-1', 'job-uid'), 'CronJob/shop/nightly'],
    ['a pod whose ReplicaSet is not cached yet', owned('ReplicaSet', 'unknown', 'u'), undefined],
    ['a pod without a controller', { metadata: { name: 'p', namespace: 'shop' } }, undefined],
    ['a pod owned by a kind we do not handle', owned('Rollout', 'r', 'u'), undefined],
  ];
  for (const [name, pod, expected] of table) {
    it(`maps ${name}`, () => {
      const key = workloadOfPod(pod, owners);
      assert.equal(key && formatKey(key), expected);
    });
  }

  it('a ReplicaSet or Job controlled by something else is nobody\'s workload', () => {
    assert.equal(workloadOfObject('ReplicaSet', { metadata: { name: 'x', namespace: 'n', ownerReferences: [{ apiVersion: 'v', kind: 'Rollout', name: 'r', uid: 'u', controller: true }] } }), undefined);
    assert.equal(workloadOfObject('Job', { metadata: { name: 'x', namespace: 'n', ownerReferences: [{ apiVersion: 'v', kind: 'Pipeline', name: 'r', uid: 'u', controller: true }] } }), undefined);
  });

  it('keys round-trip and reject garbage', () => {
    assert.deepEqual(parseKey('StatefulSet/ns/db'), { kind: 'StatefulSet', namespace: 'ns', name: 'db' });
    assert.throws(() => parseKey('Pod/ns/p'));
    assert.throws(() => parseKey('Deployment/ns'));
  });
});

describe('matchesDesired', () => {
  const desired = desiredRole(deployment, ['a'], DEFAULT_LOGACCESS_OPTIONS);
  const asServed = (): KubeObject & Record<string, unknown> => JSON.parse(JSON.stringify({ ...desired, metadata: { ...desired.metadata, resourceVersion: '5', uid: 'role-uid', labels: { ...desired.metadata.labels, extra: 'theirs' } } }));

  it('ignores fields others added, so a settled Role is not written again', () => {
    assert.equal(matchesDesired(asServed(), desired), true);
  });

  it('sees a changed pod list, a tampered rule, a missing label and a foreign owner', () => {
    assert.equal(matchesDesired(asServed(), desiredRole(deployment, ['a', 'b'], DEFAULT_LOGACCESS_OPTIONS)), false);
    const widened = asServed();
    (widened.rules as Array<{ resourceNames?: string[] }>)[0]!.resourceNames = undefined;
    assert.equal(matchesDesired(widened, desired), false, 'a rule widened by someone else is put back');
    const unlabelled = asServed();
    delete unlabelled.metadata!.labels!['app.kubernetes.io/managed-by'];
    assert.equal(matchesDesired(unlabelled, desired), false);
    const foreign = asServed();
    foreign.metadata!.ownerReferences = [{ apiVersion: 'apps/v1', kind: 'Deployment', name: 'web', uid: 'other', controller: true }];
    assert.equal(matchesDesired(foreign, desired), false);
  });

  it('treats rules served as null like an empty list', () => {
    const empty = desiredRole(deployment, [], { ...DEFAULT_LOGACCESS_OPTIONS, allowPodList: false });
    const served = { ...JSON.parse(JSON.stringify(empty)), rules: null };
    assert.equal(matchesDesired(served, empty), true);
  });

  it('compares a RoleBinding by roleRef and subjects', () => {
    const binding = desiredRoleBinding(deployment, DEFAULT_LOGACCESS_OPTIONS);
    const served = JSON.parse(JSON.stringify(binding));
    assert.equal(matchesDesired(served, binding), true);
    served.subjects[0].name = 'someone-else';
    assert.equal(matchesDesired(served, binding), false);
  });
});

describe('isPodlogreaders: only what podlogreader made, exactly as it made it', () => {
  const role = (rules: unknown[], metadata: Record<string, unknown> = {}): KubeObject =>
    ({ apiVersion: 'rbac.authorization.k8s.io/v1', kind: 'Role', metadata: { name: 'podlogreader-web', namespace: 'shop', uid: 'u', resourceVersion: '3', creationTimestamp: 't', managedFields: [], ...metadata }, rules }) as KubeObject;
  const podList = { apiGroups: [''], resources: ['pods'], verbs: ['list'] };
  const podLogs = { apiGroups: [''], resources: ['pods/log'], verbs: ['get', 'list', 'watch'], resourceNames: ['web-1'] };
  const binding = (subjects: unknown, roleRef: unknown = { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name: 'podlogreader-web' }): KubeObject =>
    ({ apiVersion: 'rbac.authorization.k8s.io/v1', kind: 'RoleBinding', metadata: { name: 'podlogreader-web', namespace: 'shop' }, roleRef, subjects }) as KubeObject;
  const cases: Array<[string, KubeObject, boolean]> = [
    ['its Role', role([podList, podLogs]), true],
    ['its Role with no pod names (empty resourceNames: all pods; adopting narrows it)', role([podList, { ...podLogs, resourceNames: undefined }]), true],
    ['a Role of another name', role([podList, podLogs], { name: 'podlogreader-api' }), false],
    ['a Role with a label', role([podList, podLogs], { labels: { team: 'x' } }), false],
    ['a Role with an annotation', role([podList, podLogs], { annotations: { note: 'x' } }), false],
    ['a Role with an owner', role([podList, podLogs], { ownerReferences: [{ kind: 'Deployment', name: 'web', uid: 'd', apiVersion: 'apps/v1' }] }), false],
    ['a Role with another rule', role([podList, podLogs, { apiGroups: [''], resources: ['secrets'], verbs: ['get'] }]), false],
    ['a Role with a wider verb', role([podList, { ...podLogs, verbs: ['get', 'list', 'watch', 'delete'] }]), false],
    ['a Role with pods list on named pods only', role([{ ...podList, resourceNames: ['a'] }, podLogs]), false],
    ['a Role with only one of the rules', role([podLogs]), false],
    ['its ServiceAccount', { apiVersion: 'v1', kind: 'ServiceAccount', metadata: { name: 'podlogreader-web', namespace: 'shop' } }, true],
    ['a ServiceAccount with secrets (its tokens are not podlogreader\'s business)', { apiVersion: 'v1', kind: 'ServiceAccount', metadata: { name: 'podlogreader-web', namespace: 'shop' }, secrets: [{ name: 't' }] } as KubeObject, false],
    ['its RoleBinding', binding([{ kind: 'ServiceAccount', name: 'podlogreader-web', namespace: 'shop' }]), true],
    ['a RoleBinding with another subject', binding([{ kind: 'ServiceAccount', name: 'podlogreader-web', namespace: 'shop' }, { kind: 'User', name: 'eve' }]), false],
    ['a RoleBinding of a ClusterRole', binding([{ kind: 'ServiceAccount', name: 'podlogreader-web', namespace: 'shop' }], { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: 'podlogreader-web' }), false],
  ];
  for (const [name, object, expected] of cases) {
    it(`${expected ? 'recognises' : 'refuses'} ${name}`, () => assert.equal(isPodlogreaders(object, 'web'), expected));
  }
});
