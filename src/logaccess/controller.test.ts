/**
 * The logaccess controller with its caches filled by hand and a recording writer, after
 * kubernetes/sample-controller's controller_test.go: each test preloads the caches (and the
 * objects "on the server"), runs one reconcile, and asserts the writes. What Kubernetes decides
 * (RBAC, garbage collection, the workload controllers) is tested on the testbed
 * (test/integration/logaccess.test.ts); here is what the controller decides.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { KubeApiError } from '../kube/client/client.ts';
import { FakeWriter } from '../kube/objects/fake-writer.ts';
import { FixtureInformer } from '../kube/runtime/fixture-informer.ts';
import { FIELD_MANAGERS } from '../kube/objects/labels.ts';
import { type KubeObject, type ResourceType, Resources } from '../kube/objects/resources.ts';
import { type LogAccessInformers, LogAccessController, POD_OWNERS, WORKLOAD_TEMPLATE_LABELS } from './controller.ts';
import { DEFAULT_LOGACCESS_OPTIONS, type LogAccessOptions, type WorkloadKind, WORKLOAD_KINDS } from './desired.ts';

const NS = 'shop';
const OPT_IN = { 'podlogreader-affiliate': 'enable' };
const MANAGED = { 'app.kubernetes.io/managed-by': 'crowsnest', 'app.kubernetes.io/part-of': 'crowsnest' };
const API_VERSION: Readonly<Record<WorkloadKind, string>> = {
  Deployment: 'apps/v1', StatefulSet: 'apps/v1', DaemonSet: 'apps/v1', ReplicaSet: 'apps/v1', Job: 'batch/v1', CronJob: 'batch/v1',
};

interface Owner { readonly kind: string; readonly name: string; readonly uid: string }
/** An object with whatever fields its kind has (spec, rules …). */
type Obj = KubeObject & Record<string, unknown>;

function workload(kind: WorkloadKind, name: string, uid: string, options: { labels?: Record<string, string>; owner?: Owner } = {}): Obj {
  const template = { metadata: { labels: { app: name, ...options.labels } } };
  return {
    apiVersion: API_VERSION[kind], kind,
    metadata: {
      namespace: NS, name, uid, resourceVersion: '1',
      ...(options.owner ? { ownerReferences: [{ apiVersion: 'apps/v1', ...options.owner, controller: true }] } : {}),
    },
    spec: kind === 'CronJob' ? { jobTemplate: { spec: { template } } } : { template },
  };
}

function pod(name: string, owner: Owner | undefined): Obj {
  return {
    apiVersion: 'v1', kind: 'Pod',
    metadata: {
      namespace: NS, name, uid: `uid-${name}`, resourceVersion: '1', labels: { ...OPT_IN, 'pod-template-hash': 'abc' },
      ...(owner ? { ownerReferences: [{ apiVersion: 'apps/v1', ...owner, controller: true, blockOwnerDeletion: true }] } : {}),
    },
    spec: { containers: [{ name: 'app', image: 'app:1', env: [{ name: 'SECRET', value: 'not for the cache' }] }] },
  };
}

/** A Role as the API server returns one we created for `owner`, listing `pods`. */
function ourRole(owner: Owner & { apiVersion?: string }, pods: readonly string[], extra: { managers?: string[] } = {}): Obj {
  return {
    apiVersion: 'rbac.authorization.k8s.io/v1', kind: 'Role',
    metadata: {
      namespace: NS, name: `podlogreader-${owner.name}`, uid: `role-uid-${owner.uid}`, resourceVersion: '7',
      labels: { ...MANAGED, 'logaccess.crowsnest.dev/workload-kind': owner.kind },
      ownerReferences: [{ apiVersion: owner.apiVersion ?? 'apps/v1', kind: owner.kind, name: owner.name, uid: owner.uid, controller: true, blockOwnerDeletion: false }],
      managedFields: (extra.managers ?? [FIELD_MANAGERS.logaccess]).map((manager) => ({ manager, operation: 'Apply' })),
    },
    rules: [
      ...(pods.length > 0 ? [{ apiGroups: [''], resources: ['pods/log'], verbs: ['get', 'list', 'watch'], resourceNames: [...pods].sort() }] : []),
      { apiGroups: [''], resources: ['pods'], verbs: ['list'] },
    ],
  };
}

/** Caches, server and recorder of one test; objects go through the same transforms as in the operator. */
class Fixture {
  readonly pods = new FixtureInformer('pods');
  readonly aliasPods = new FixtureInformer('pods-alias');
  readonly workloads = Object.fromEntries(WORKLOAD_KINDS.map((kind) => [kind, new FixtureInformer(kind)])) as Record<WorkloadKind, FixtureInformer>;
  readonly roles = new FixtureInformer('roles');
  readonly serviceAccounts = new FixtureInformer('serviceaccounts');
  readonly roleBindings = new FixtureInformer('rolebindings');
  readonly writer: FakeWriter;
  readonly events: string[] = [];
  readonly controller: LogAccessController;

  constructor(options: { server?: Array<readonly [ResourceType, KubeObject]>; logaccess?: Partial<LogAccessOptions> } = {}) {
    this.writer = new FakeWriter({ fieldManager: FIELD_MANAGERS.logaccess, objects: options.server ?? [] });
    const informers: LogAccessInformers = {
      pods: [this.pods, this.aliasPods], workloads: this.workloads, roles: this.roles, serviceAccounts: this.serviceAccounts, roleBindings: this.roleBindings,
    };
    this.controller = new LogAccessController({
      informers,
      writer: this.writer,
      recorder: { event: (regarding, type, reason, _action, note) => this.events.push(`${type} ${reason} ${regarding.kind}/${regarding.name}: ${note}`) },
      options: { ...DEFAULT_LOGACCESS_OPTIONS, ...options.logaccess },
    });
  }

  workload(kind: WorkloadKind, name: string, uid: string, options: Parameters<typeof workload>[3] = {}): this {
    this.workloads[kind].add(WORKLOAD_TEMPLATE_LABELS[kind].apply(workload(kind, name, uid, options)));
    return this;
  }

  pod(name: string, owner: Owner | undefined): this {
    this.pods.add(POD_OWNERS.apply(pod(name, owner)));
    return this;
  }

  /** Marks every cache synced and reconciles `key` once. */
  async sync(key: string) {
    for (const informer of [this.pods, this.aliasPods, ...Object.values(this.workloads), this.roles, this.serviceAccounts, this.roleBindings]) informer.sync();
    return await this.controller.reconcile(key);
  }

  /** The last object written to `name`, as sent. */
  sent(name: string): KubeObject & { rules?: Array<{ resources: string[]; resourceNames?: string[] }> } {
    const action = this.writer.actions.findLast((a) => a.name === name && a.object);
    assert.ok(action, `nothing was sent for ${name}`);
    return action.object as KubeObject;
  }
}

const webDeployment: Owner = { kind: 'Deployment', name: 'web', uid: 'dep-uid' };
const webReplicaSet: Owner = { kind: 'ReplicaSet', name: 'web-5d9c', uid: 'rs-uid' };

/** An opted-in Deployment `web` with ReplicaSet `web-5d9c` and the given pods. */
function webWithPods(fixture: Fixture, ...pods: string[]): Fixture {
  fixture.workload('Deployment', 'web', 'dep-uid', { labels: OPT_IN });
  fixture.workload('ReplicaSet', 'web-5d9c', 'rs-uid', { labels: OPT_IN, owner: webDeployment });
  for (const name of pods) fixture.pod(name, webReplicaSet);
  return fixture;
}

describe('logaccess controller', () => {
  it('creates a Role for an opted-in Deployment allowing pods/log on exactly its pods, and says so in an Event', async () => {
    const f = webWithPods(new Fixture(), 'web-5d9c-b', 'web-5d9c-a');
    f.workload('ReplicaSet', 'other-1', 'other-rs-uid', { labels: OPT_IN }).pod('other-1-x', { kind: 'ReplicaSet', name: 'other-1', uid: 'other-rs-uid' });

    assert.deepEqual(await f.sync('Deployment/shop/web'), { kind: 'done' });
    assert.deepEqual(f.writer.summary(), ['create roles shop/podlogreader-web']);
    const role = f.sent('podlogreader-web');
    assert.deepEqual(role.rules, [
      { apiGroups: [''], resources: ['pods/log'], verbs: ['get', 'list', 'watch'], resourceNames: ['web-5d9c-a', 'web-5d9c-b'] },
      { apiGroups: [''], resources: ['pods'], verbs: ['list'] },
    ]);
    assert.deepEqual(role.metadata?.ownerReferences, [{ apiVersion: 'apps/v1', kind: 'Deployment', name: 'web', uid: 'dep-uid', controller: true, blockOwnerDeletion: false }]);
    assert.deepEqual(role.metadata?.labels, { ...MANAGED, 'logaccess.crowsnest.dev/workload-kind': 'Deployment' });
    assert.deepEqual(f.events, ["Normal RoleCreated Deployment/web: created Role podlogreader-web for log access to this Deployment's pods"]);
  });

  it('writes nothing for a workload whose Role already says what it should', async () => {
    const f = webWithPods(new Fixture(), 'web-5d9c-a');
    f.roles.add(ourRole(webDeployment, ['web-5d9c-a']));
    assert.deepEqual(await f.sync('Deployment/shop/web'), { kind: 'done' });
    assert.deepEqual(f.writer.actions, []);
    assert.deepEqual(f.events, []);
  });

  it('applies the Role, guarded by its uid, when a pod came or went', async () => {
    const role = ourRole(webDeployment, ['web-5d9c-gone']);
    const f = webWithPods(new Fixture({ server: [[Resources.roles, role]] }), 'web-5d9c-new');
    f.roles.add(role);
    await f.sync('Deployment/shop/web');
    assert.deepEqual(f.writer.summary(), ['apply roles shop/podlogreader-web']);
    const sent = f.sent('podlogreader-web');
    assert.equal(sent.metadata?.uid, 'role-uid-dep-uid', 'the apply carries the uid: a Role replaced meanwhile is refused, not taken over');
    assert.deepEqual(sent.rules?.find((r) => r.resources.includes('pods/log'))?.resourceNames, ['web-5d9c-new']);
  });

  it('gives a workload without pods a Role with no pods/log rule (an empty resourceNames would mean every pod)', async () => {
    const f = webWithPods(new Fixture());
    await f.sync('Deployment/shop/web');
    assert.deepEqual(f.sent('podlogreader-web').rules, [{ apiGroups: [''], resources: ['pods'], verbs: ['list'] }]);
  });

  it('does nothing to a Role it does not manage, and says why in a Warning Event', async () => {
    const theirs: KubeObject = { apiVersion: 'rbac.authorization.k8s.io/v1', kind: 'Role', metadata: { namespace: NS, name: 'podlogreader-web', uid: 'their-uid', labels: { team: 'payments' } } };
    const f = webWithPods(new Fixture({ server: [[Resources.roles, theirs]] }), 'web-5d9c-a');

    const outcome = await f.sync('Deployment/shop/web');
    // Not in our (label-filtered) cache: the create finds the name taken and reads who holds it.
    assert.deepEqual(f.writer.summary(), ['create roles shop/podlogreader-web', 'get roles shop/podlogreader-web']);
    assert.deepEqual(f.writer.get(Resources.roles, NS, 'podlogreader-web')?.metadata?.labels, { team: 'payments' }, 'their Role is as it was');
    assert.deepEqual(f.events, ['Warning RoleExists Deployment/web: Role podlogreader-web exists and is not managed by crowsnest; it is left unchanged (rename the workload or set --logaccess-name-prefix)']);
    assert.deepEqual(outcome, { kind: 'requeueAfter', delayMs: 300_000 }, 'looked at again later: no event says when their Role goes');
  });

  /** What podlogreader (handler.go) left for Deployment web: a name and the content, nothing else. */
  const podlogreaders = {
    role: { apiVersion: 'rbac.authorization.k8s.io/v1', kind: 'Role', metadata: { namespace: NS, name: 'podlogreader-web', uid: 'plr-role' }, rules: [
      { apiGroups: [''], resources: ['pods'], verbs: ['list'] },
      { apiGroups: [''], resources: ['pods/log'], verbs: ['get', 'list', 'watch'], resourceNames: ['web-old-1'] },
    ] },
    serviceAccount: { apiVersion: 'v1', kind: 'ServiceAccount', metadata: { namespace: NS, name: 'podlogreader-web', uid: 'plr-sa' } },
    roleBinding: { apiVersion: 'rbac.authorization.k8s.io/v1', kind: 'RoleBinding', metadata: { namespace: NS, name: 'podlogreader-web', uid: 'plr-rb' },
      roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name: 'podlogreader-web' }, subjects: [{ kind: 'ServiceAccount', name: 'podlogreader-web', namespace: NS }] },
  } satisfies Record<string, Obj>;

  it('adopts the Role, ServiceAccount and RoleBinding podlogreader made, in place (guarded by their uids), and says so in Events', async () => {
    const f = webWithPods(new Fixture({
      logaccess: { createServiceAccountAndRoleBinding: true },
      server: [[Resources.roles, podlogreaders.role], [Resources.serviceAccounts, podlogreaders.serviceAccount], [Resources.roleBindings, podlogreaders.roleBinding]],
    }), 'web-5d9c-a');
    await f.sync('Deployment/shop/web');
    assert.deepEqual(f.writer.summary().filter((a) => !a.startsWith('create ') && !a.startsWith('get ')), [
      'apply roles shop/podlogreader-web', 'apply serviceaccounts shop/podlogreader-web', 'apply rolebindings shop/podlogreader-web',
    ], 'updated, never deleted and recreated');
    const applied = f.writer.actions.filter((a) => a.verb === 'apply');
    assert.deepEqual(applied.map((a) => a.object?.metadata?.uid), ['plr-role', 'plr-sa', 'plr-rb']);
    assert.deepEqual(f.writer.get(Resources.roles, NS, 'podlogreader-web')?.metadata?.labels, { ...MANAGED, 'logaccess.crowsnest.dev/workload-kind': 'Deployment' });
    assert.deepEqual((f.writer.get(Resources.roles, NS, 'podlogreader-web') as { rules?: unknown }).rules, [
      { apiGroups: [''], resources: ['pods/log'], verbs: ['get', 'list', 'watch'], resourceNames: ['web-5d9c-a'] },
      { apiGroups: [''], resources: ['pods'], verbs: ['list'] },
    ]);
    assert.deepEqual(f.events, [
      'Normal RoleAdopted Deployment/web: adopted Role podlogreader-web, which podlogreader created: crowsnest keeps it from now on',
      'Normal ServiceAccountAdopted Deployment/web: adopted ServiceAccount podlogreader-web, which podlogreader created: crowsnest keeps it from now on (the same ServiceAccount: tokens issued to it keep working)',
      'Normal RoleBindingAdopted Deployment/web: adopted RoleBinding podlogreader-web, which podlogreader created: crowsnest keeps it from now on',
    ]);
  });

  it('does not adopt with --no-logaccess-adopt-podlogreader, nor what podlogreader could not have made as it is', async () => {
    const touched: Obj[] = [
      { ...podlogreaders.role, metadata: { ...podlogreaders.role.metadata, labels: { team: 'payments' } } },
      { ...podlogreaders.role, rules: [...podlogreaders.role.rules, { apiGroups: [''], resources: ['configmaps'], verbs: ['get'] }] },
    ];
    for (const [role, options] of [[podlogreaders.role, { adoptPodlogreader: false }], [touched[0]!, {}], [touched[1]!, {}]] as const) {
      const f = webWithPods(new Fixture({ server: [[Resources.roles, role]], logaccess: options }), 'web-5d9c-a');
      await f.sync('Deployment/shop/web');
      assert.deepEqual(f.writer.summary(), ['create roles shop/podlogreader-web', 'get roles shop/podlogreader-web']);
      assert.match(f.events[0] ?? '', /^Warning RoleExists/);
    }
  });

  it('leaves a Role it keeps for another workload of the same name (a StatefulSet web beside a Deployment web) to that one', async () => {
    const f = webWithPods(new Fixture(), 'web-5d9c-a');
    f.roles.add(ourRole({ kind: 'StatefulSet', name: 'web', uid: 'sts-uid' }, ['web-0']));
    await f.sync('Deployment/shop/web');
    assert.deepEqual(f.writer.actions, []);
    assert.match(f.events[0] ?? '', /^Warning RoleExists Deployment\/web: Role podlogreader-web is kept by crowsnest for StatefulSet web in this namespace/);
  });

  it('replaces the Role when the workload was recreated (new uid): deletes the old one, then creates one owned by the new workload', async () => {
    const old = ourRole({ ...webDeployment, uid: 'old-dep-uid' }, ['web-old-a']);
    const f = webWithPods(new Fixture({ server: [[Resources.roles, old]] }), 'web-5d9c-a');
    f.roles.add(old);

    assert.deepEqual(await f.sync('Deployment/shop/web'), { kind: 'done' });
    assert.deepEqual(f.writer.summary(), ['delete roles shop/podlogreader-web']);
    assert.equal(f.writer.get(Resources.roles, NS, 'podlogreader-web'), undefined, 'deleted with the old uid as precondition');

    // Its delete event reaches the cache and brings the workload back.
    f.roles.remove(old);
    await f.sync('Deployment/shop/web');
    assert.deepEqual(f.writer.summary(), ['delete roles shop/podlogreader-web', 'create roles shop/podlogreader-web']);
    assert.equal(f.sent('podlogreader-web').metadata?.ownerReferences?.[0]?.uid, 'dep-uid');
  });

  it('removes the Role when the workload opts out', async () => {
    const role = ourRole(webDeployment, ['web-5d9c-a']);
    const f = new Fixture({ server: [[Resources.roles, role]] });
    f.workload('Deployment', 'web', 'dep-uid', { labels: {} });
    f.roles.add(role);
    await f.sync('Deployment/shop/web');
    assert.deepEqual(f.writer.summary(), ['delete roles shop/podlogreader-web']);
  });

  it('removes the Role when the workload is gone (before the garbage collector gets to it)', async () => {
    const role = ourRole(webDeployment, ['web-5d9c-a']);
    const f = new Fixture({ server: [[Resources.roles, role]] });
    f.roles.add(role);
    await f.sync('Deployment/shop/web');
    assert.deepEqual(f.writer.summary(), ['delete roles shop/podlogreader-web']);
  });

  it("gives a Deployment's ReplicaSet no Role of its own", async () => {
    const f = webWithPods(new Fixture(), 'web-5d9c-a');
    await f.sync('ReplicaSet/shop/web-5d9c');
    assert.deepEqual(f.writer.actions, []);
  });

  it('hands the fields of the old shared field manager to its own before applying', async () => {
    const role = ourRole(webDeployment, ['web-5d9c-gone'], { managers: ['crowsnest'] });
    const f = webWithPods(new Fixture({ server: [[Resources.roles, role]] }), 'web-5d9c-a');
    f.roles.add(role);
    await f.sync('Deployment/shop/web');
    assert.deepEqual(f.writer.summary(), ['migrate roles shop/podlogreader-web', 'apply roles shop/podlogreader-web']);
  });

  it('lets a failed write go back to the queue (retried with backoff), leaving the Role as it was', async () => {
    const role = ourRole(webDeployment, ['web-5d9c-gone']);
    const f = webWithPods(new Fixture({ server: [[Resources.roles, role]] }), 'web-5d9c-a');
    f.roles.add(role);
    f.writer.failNext('apply', new KubeApiError({ method: 'PATCH', path: '/x', status: 403, body: '{"kind":"Status","reason":"Forbidden","message":"no"}' }));
    await assert.rejects(f.sync('Deployment/shop/web'), /403 Forbidden/);
    assert.deepEqual((f.writer.get(Resources.roles, NS, 'podlogreader-web') as Obj | undefined)?.rules, role.rules as unknown);
  });

  it('with createServiceAccountAndRoleBinding keeps a ServiceAccount and a RoleBinding of the same name beside the Role', async () => {
    const f = webWithPods(new Fixture({ logaccess: { createServiceAccountAndRoleBinding: true } }), 'web-5d9c-a');
    await f.sync('Deployment/shop/web');
    assert.deepEqual(f.writer.summary(), [
      'create roles shop/podlogreader-web', 'create serviceaccounts shop/podlogreader-web', 'create rolebindings shop/podlogreader-web',
    ]);
    assert.deepEqual((f.sent('podlogreader-web') as { subjects?: unknown }).subjects, [{ kind: 'ServiceAccount', name: 'podlogreader-web', namespace: NS }]);
  });

  it('caches pods as identity and controller only (no spec, no labels), sharing the owner reference and namespace among the pods of one ReplicaSet', () => {
    const a = POD_OWNERS.apply(pod('web-5d9c-a', webReplicaSet));
    const b = POD_OWNERS.apply(pod('web-5d9c-b', webReplicaSet));
    assert.deepEqual(a, {
      apiVersion: 'v1', kind: 'Pod',
      metadata: { name: 'web-5d9c-a', namespace: NS, uid: 'uid-web-5d9c-a', resourceVersion: '1', ownerReferences: [{ apiVersion: 'apps/v1', ...webReplicaSet, controller: true }] },
    });
    assert.equal(a.metadata?.ownerReferences, b.metadata?.ownerReferences, 'one shared owner reference');
    assert.ok(Object.isFrozen(a.metadata?.ownerReferences?.[0]), 'shared values are frozen');
    assert.equal(POD_OWNERS.apply(pod('loner', undefined)).metadata?.ownerReferences, undefined);
  });
});

describe('logaccess event handlers (what becomes work)', () => {
  function keysAfter(f: Fixture, change: () => void): string[] {
    const keys: string[] = [];
    for (const informer of [f.pods, f.aliasPods, ...Object.values(f.workloads), f.roles]) informer.sync();
    for (const [informer, handler] of f.controller.eventHandlers((key) => keys.push(key))) informer.addEventHandler(handler);
    keys.length = 0;
    change();
    return keys;
  }

  it('a new pod enqueues the Deployment it belongs to, through its ReplicaSet', () => {
    const f = webWithPods(new Fixture());
    assert.deepEqual(keysAfter(f, () => f.pod('web-5d9c-a', webReplicaSet)), ['Deployment/shop/web']);
  });

  it('a bare pod (no controller) enqueues nothing', () => {
    const f = webWithPods(new Fixture());
    assert.deepEqual(keysAfter(f, () => f.pod('loner', undefined)), []);
  });

  it('a change to a Role it manages (someone edited or deleted it) enqueues the workload to put it back', () => {
    const role = ourRole(webDeployment, ['web-5d9c-a']);
    const f = webWithPods(new Fixture());
    f.roles.add(role);
    assert.deepEqual(keysAfter(f, () => f.roles.add({ ...role, metadata: { ...role.metadata, resourceVersion: '8' }, rules: [] } as Obj)), ['Deployment/shop/web']);
    assert.deepEqual(keysAfter(f, () => f.roles.remove(role)), ['Deployment/shop/web']);
  });

  it('replays what the caches hold when the handlers are attached (a new leader looks at everything once)', () => {
    const f = webWithPods(new Fixture(), 'web-5d9c-a');
    const keys: string[] = [];
    for (const [informer, handler] of f.controller.eventHandlers((key) => keys.push(key))) informer.addEventHandler(handler);
    assert.deepEqual([...new Set(keys)].sort(), ['Deployment/shop/web']);
  });
});
