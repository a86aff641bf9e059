/**
 * The logaccess controller against a real control plane: kube-controller-manager runs the
 * workloads, the scheduler places their pods on kwok nodes, the garbage collector follows owner
 * references and the RBAC authorizer decides. Each test works in a namespace of its own; the
 * controller watches the whole cluster, so at most one controller runs at a time (describes run
 * in sequence) and every controller sees the namespaces of earlier tests in their settled state.
 *
 * Throughout, a watch on every `podlogreader-*` Role checks each version the apiserver stores:
 * a pods/log rule without resourceNames (which RBAC reads as "all pods") must never exist, not
 * even for a moment during scaling or a rollout.
 */
import assert from 'node:assert/strict';
import { after, afterEach, before, describe, it } from 'node:test';
import { isDeepStrictEqual } from 'node:util';
import { type KubeConfig, Watch } from '@kubernetes/client-node';
import { Registry } from 'prom-client';
import { KubeClient } from '../../src/kube/client/client.ts';
import { EventRecorder } from '../../src/kube/objects/events.ts';
import { silentLogger } from '../../src/kube/logger-type.ts';
import type { Manager } from '../../src/kube/runtime/manager.ts';
import type { LogAccessOptions } from '../../src/logaccess/desired.ts';
import type { HealthCheck } from '../../src/observe/http.ts';
import { installChartOperator, type ChartOperator } from './helm.ts';
import { runLogAccess } from './logaccess-run.ts';
import { adminKubeConfig, asToken, eventually, getObject, listObjects, newNamespace, ON_KWOK_NODES, requestToken, testbed } from './testbed.ts';

// --- the contract, spelled out literally (not imported) so a wrong constant in the code fails here ---

const PREFIX = 'podlogreader-';
const OPT_IN: Readonly<Record<string, string>> = { 'podlogreader-affiliate': 'enable' };
const OPT_IN_ALIAS: Readonly<Record<string, string>> = { 'logaccess.crowsnest.dev/enabled': 'true' };
const MANAGED_LABELS: Readonly<Record<string, string>> = { 'app.kubernetes.io/managed-by': 'crowsnest', 'app.kubernetes.io/part-of': 'crowsnest' };
const WORKLOAD_KIND_LABEL = 'logaccess.crowsnest.dev/workload-kind';
const DEFAULT_OPTIONS: LogAccessOptions = { namePrefix: PREFIX, allowPodList: true, createServiceAccountAndRoleBinding: false, adoptPodlogreader: true };

/** How long a change may take to show up. Generous: the machine is shared with a long build. */
const SETTLE_MS = 20_000;
const POLL_MS = 100;
/** The testbed starts three kwok nodes; a DaemonSet runs one pod on each. */
const KWOK_NODES = 3;

const RBAC = '/apis/rbac.authorization.k8s.io/v1';

// --- types of what we read back ---------------------------------------------------------------

interface OwnerReference {
  apiVersion: string;
  kind: string;
  name: string;
  uid: string;
  controller?: boolean;
}
interface Metadata {
  name: string;
  namespace?: string;
  uid: string;
  resourceVersion: string;
  labels?: Record<string, string>;
  ownerReferences?: OwnerReference[];
  deletionTimestamp?: string;
}
interface Obj {
  metadata: Metadata;
}
interface PolicyRule {
  apiGroups?: string[];
  resources?: string[];
  verbs: string[];
  resourceNames?: string[];
}
interface Role extends Obj {
  rules?: PolicyRule[] | null;
}
interface RoleBinding extends Obj {
  roleRef: { apiGroup: string; kind: string; name: string };
  subjects?: Array<{ kind: string; name: string; namespace?: string }>;
}
interface EventV1 {
  type: string;
  reason: string;
  note?: string;
  regarding: { kind: string; name: string; uid: string };
}

// --- workloads ----------------------------------------------------------------------------------

type Kind = 'Deployment' | 'StatefulSet' | 'DaemonSet' | 'ReplicaSet' | 'Job' | 'CronJob';

const KIND_API: Readonly<Record<Kind, { apiVersion: string; plural: string }>> = {
  Deployment: { apiVersion: 'apps/v1', plural: 'deployments' },
  StatefulSet: { apiVersion: 'apps/v1', plural: 'statefulsets' },
  DaemonSet: { apiVersion: 'apps/v1', plural: 'daemonsets' },
  ReplicaSet: { apiVersion: 'apps/v1', plural: 'replicasets' },
  Job: { apiVersion: 'batch/v1', plural: 'jobs' },
  CronJob: { apiVersion: 'batch/v1', plural: 'cronjobs' },
};

function workloadPath(namespace: string, kind: Kind, name?: string): string {
  const { apiVersion, plural } = KIND_API[kind];
  return `/apis/${apiVersion}/namespaces/${namespace}/${plural}${name ? `/${name}` : ''}`;
}

interface WorkloadSpec {
  readonly kind: Kind;
  readonly name: string;
  /** Replicas, or parallelism and completions of a Job. Ignored for DaemonSet and CronJob. */
  readonly replicas?: number;
  /** Pod template labels besides `app: <name>`; the opt-in label goes here. */
  readonly labels?: Readonly<Record<string, string>>;
  /** Replaces the default `matchLabels: {app: <name>}`. */
  readonly selector?: unknown;
  /** Replaces the default template label `app: <name>` (for overlapping selectors). */
  readonly appLabel?: string;
}

/** The manifest of a small workload whose pods kwok runs (they tolerate and select the kwok nodes). */
function manifest(spec: WorkloadSpec): Record<string, unknown> {
  const { kind, name, replicas = 1 } = spec;
  const labels = { app: spec.appLabel ?? name, ...spec.labels };
  const selector = spec.selector ?? { matchLabels: { app: spec.appLabel ?? name } };
  const containers = [{ name: 'app', image: 'registry.invalid/app:1' }];
  const template = { metadata: { labels }, spec: { ...ON_KWOK_NODES, containers } };
  const runToCompletion = { metadata: { labels }, spec: { ...ON_KWOK_NODES, containers, restartPolicy: 'Never' } };
  const head = { apiVersion: KIND_API[kind].apiVersion, kind, metadata: { name } };
  switch (kind) {
    case 'Deployment':
    case 'ReplicaSet':
      return { ...head, spec: { replicas, selector, template } };
    case 'StatefulSet':
      // Parallel: kwok makes pods Ready at once anyway, but this avoids one-by-one creation.
      return { ...head, spec: { replicas, selector, template, serviceName: name, podManagementPolicy: 'Parallel' } };
    case 'DaemonSet':
      return { ...head, spec: { selector, template } };
    case 'Job':
      return { ...head, spec: { parallelism: replicas, completions: replicas, template: runToCompletion } };
    case 'CronJob':
      // Suspended: the test creates its Job explicitly (`kubectl create job --from`), so no schedule can race it.
      return { ...head, spec: { schedule: '*/5 * * * *', suspend: true, jobTemplate: { spec: { template: runToCompletion } } } };
  }
}

async function createWorkload(namespace: string, spec: WorkloadSpec): Promise<Obj> {
  return await create(workloadPath(namespace, spec.kind), manifest(spec));
}

// --- admin API helpers --------------------------------------------------------------------------

const get = getObject;
const list = listObjects;

async function create<T = Obj>(path: string, body: unknown): Promise<T> {
  const plane = await testbed();
  const res = await plane.request('POST', path, body);
  if (res.status !== 201) throw new Error(`POST ${path}: ${res.status} ${res.body}`);
  return JSON.parse(res.body) as T;
}

async function kubectl(namespace: string, ...args: string[]): Promise<string> {
  return await (await testbed()).kubectl(['-n', namespace, ...args]);
}

/** A namespace of our own whose default ServiceAccount exists, so pods can be created in it. */
async function workloadNamespace(prefix: string): Promise<string> {
  const namespace = await newNamespace(prefix);
  await (await testbed()).waitForDefaultServiceAccount(namespace);
  return namespace;
}

const roleOf = (namespace: string, workload: string): Promise<Role | undefined> => get<Role>(`${RBAC}/namespaces/${namespace}/roles/${PREFIX}${workload}`);
const serviceAccountOf = (namespace: string, workload: string): Promise<Obj | undefined> => get<Obj>(`/api/v1/namespaces/${namespace}/serviceaccounts/${PREFIX}${workload}`);
const roleBindingOf = (namespace: string, workload: string): Promise<RoleBinding | undefined> => get<RoleBinding>(`${RBAC}/namespaces/${namespace}/rolebindings/${PREFIX}${workload}`);

function controllerOf(obj: Obj): OwnerReference | undefined {
  return obj.metadata.ownerReferences?.find((r) => r.controller === true);
}

/**
 * Sorted names of the pods that belong to a workload, found the way the spec says the controller
 * must find them: by controller ownerReferences (directly, or through a ReplicaSet or Job the
 * workload controls), never by label selector. Terminating pods count while they exist; every
 * caller also waits for the expected pod count, so both readings converge once they are gone.
 */
async function podsOf(namespace: string, kind: Kind, name: string): Promise<string[]> {
  const workload = await get<Obj>(workloadPath(namespace, kind, name));
  if (!workload) return [];
  const owners = new Set([workload.metadata.uid]);
  if (kind === 'Deployment' || kind === 'CronJob') {
    const middle = await list<Obj>(kind === 'Deployment' ? workloadPath(namespace, 'ReplicaSet') : workloadPath(namespace, 'Job'));
    for (const m of middle) if (controllerOf(m)?.uid === workload.metadata.uid) owners.add(m.metadata.uid);
  }
  const pods = await list<Obj>(`/api/v1/namespaces/${namespace}/pods`);
  return pods.filter((p) => owners.has(controllerOf(p)?.uid ?? '')).map((p) => p.metadata.name).sort();
}

// --- what a correct Role looks like --------------------------------------------------------------

/** Rules in a comparable form: verbs sorted (their order means nothing), rules in a stable order. */
function normalizeRules(rules: readonly PolicyRule[] | null | undefined): PolicyRule[] {
  return (rules ?? [])
    .map((r) => ({
      apiGroups: r.apiGroups ?? [],
      resources: r.resources ?? [],
      verbs: [...r.verbs].sort(),
      ...(r.resourceNames !== undefined ? { resourceNames: r.resourceNames } : {}),
    }))
    .sort((a, b) => JSON.stringify(a).localeCompare(JSON.stringify(b)));
}

/** The rules the spec asks for, given the workload's current pods (sorted). */
function expectedRules(pods: readonly string[], allowPodList = true): PolicyRule[] {
  const rules: PolicyRule[] = [];
  if (pods.length > 0) rules.push({ apiGroups: [''], resources: ['pods/log'], verbs: ['get', 'list', 'watch'], resourceNames: [...pods] });
  if (allowPodList) rules.push({ apiGroups: [''], resources: ['pods'], verbs: ['list'] });
  return normalizeRules(rules);
}

/** Why a rule would let its holder read the logs of pods it does not name, or undefined when it cannot. */
function widening(rule: PolicyRule): string | undefined {
  const logs = (rule.resources ?? []).some((r) => r === 'pods/log' || r === 'pods/*' || r === '*');
  if (logs && (rule.resourceNames === undefined || rule.resourceNames.length === 0)) return 'pods/log without resourceNames (all pods)';
  return undefined;
}

/**
 * Polls until `observe` returns equal `actual` and `expected` (compared deeply); on timeout fails
 * with a diff of the last observation, which says precisely what was wrong.
 */
async function settles<T>(what: string, observe: () => Promise<{ actual: T; expected: T }>, timeoutMs = SETTLE_MS): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const seen = await observe();
    if (isDeepStrictEqual(seen.actual, seen.expected)) return seen.actual;
    if (Date.now() >= deadline) {
      const crashed = controllerFailure();
      assert.deepEqual(seen.actual, seen.expected, `${what}: not reached within ${timeoutMs} ms${crashed ? ` (the controller exited: ${crashed})` : ''}`);
    }
    await new Promise((r) => setTimeout(r, POLL_MS));
  }
}

/**
 * Waits until the Role of `kind/name` names exactly its `replicas` current pods and has exactly
 * the spec's rules, then checks its labels and owner. Returns the Role and the pod names.
 */
async function roleFollowsPods(namespace: string, kind: Kind, name: string, replicas: number, allowPodList = true): Promise<{ role: Role; pods: string[] }> {
  let role: Role | undefined;
  let pods: string[] = [];
  await settles(`Role ${namespace}/${PREFIX}${name} lists the ${replicas} pods of ${kind} ${name}`, async () => {
    [role, pods] = await Promise.all([roleOf(namespace, name), podsOf(namespace, kind, name)]);
    return {
      actual: { pods: pods.length, role: role ? normalizeRules(role.rules) : 'no Role' },
      expected: { pods: replicas, role: expectedRules(pods, allowPodList) },
    };
  });
  await assertOursAndOwnedBy(role!, namespace, kind, name);
  return { role: role!, pods };
}

/** Checks the managed labels and the controller ownerReference to the workload on something we created. */
async function assertOursAndOwnedBy(obj: Obj, namespace: string, kind: Kind, name: string): Promise<void> {
  const workload = await get<Obj>(workloadPath(namespace, kind, name));
  assert.ok(workload, `${kind} ${namespace}/${name} exists`);
  const labels = obj.metadata.labels ?? {};
  for (const [k, v] of Object.entries(MANAGED_LABELS)) assert.equal(labels[k], v, `label ${k} on ${obj.metadata.name}`);
  assert.equal(labels[WORKLOAD_KIND_LABEL], kind, `label ${WORKLOAD_KIND_LABEL} on ${obj.metadata.name}`);
  const owner = controllerOf(obj);
  assert.deepEqual(
    owner && { apiVersion: owner.apiVersion, kind: owner.kind, name: owner.name, uid: owner.uid },
    { apiVersion: KIND_API[kind].apiVersion, kind, name, uid: workload.metadata.uid },
    `controller ownerReference of ${obj.metadata.name}`,
  );
}

/** Warning Events (events.k8s.io/v1) with `reason` about the object with `uid`. */
async function warnings(namespace: string, reason: string, uid: string): Promise<EventV1[]> {
  const events = await list<EventV1>(`/apis/events.k8s.io/v1/namespaces/${namespace}/events`);
  return events.filter((e) => e.type === 'Warning' && e.reason === reason && e.regarding.uid === uid);
}

/** The RBAC authorizer's answer to "may ServiceAccount `namespace/sa` get the log of `pod`?". */
async function mayReadLog(namespace: string, serviceAccount: string, pod: string): Promise<boolean> {
  const review = await create<{ status: { allowed: boolean } }>('/apis/authorization.k8s.io/v1/subjectaccessreviews', {
    apiVersion: 'authorization.k8s.io/v1',
    kind: 'SubjectAccessReview',
    spec: {
      user: `system:serviceaccount:${namespace}:${serviceAccount}`,
      groups: ['system:serviceaccounts', `system:serviceaccounts:${namespace}`, 'system:authenticated'],
      resourceAttributes: { namespace, verb: 'get', resource: 'pods', subresource: 'log', name: pod },
    },
  });
  return review.status.allowed;
}

/**
 * Waits until the controller has handled everything that happened before `control` and has
 * nothing left to do: `control` makes a change the controller must write, and waits for that
 * write; its event came after the ones under test in the same watches, so their keys were
 * queued before it. Then the queue is drained (nothing queued, no reconcile running), so every
 * reconcile about those earlier events has finished: a check that something did NOT happen needs
 * no sleep, and cannot pass merely because the controller had not got to it yet.
 */
async function caughtUp(registry: Registry, control: () => Promise<unknown>): Promise<void> {
  await control();
  await settles('the controller has nothing queued and no reconcile running', async () => ({
    actual: { queued: await metricSum(registry, 'workqueue_depth'), running: (await metricSum(registry, 'workqueue_longest_running_processor_seconds')) > 0 },
    expected: { queued: 0, running: false },
  }));
}

/** Sum of every series of `name` in `registry` (0 when it has none yet). */
async function metricSum(registry: Registry, name: string): Promise<number> {
  let sum = 0;
  for (const metric of await registry.getMetricsAsJSON()) {
    for (const sample of metric.values) {
      if (((sample as { metricName?: string }).metricName ?? metric.name) === name) sum += sample.value;
    }
  }
  return sum;
}

// --- a watch on every podlogreader-* Role ---------------------------------------------------------

/**
 * Sees every version of every `podlogreader-*` Role the apiserver stores and records each that
 * would grant pods/log beyond named pods. Polling could miss a version that lived for a
 * millisecond; a watch does not. client-node's Watch ends after 30 s without data, so it is
 * restarted (a new watch replays current Roles as ADDED, which are checked again).
 */
class RoleWidening {
  readonly violations: string[] = [];
  /** `namespace/name` of every podlogreader Role seen, so a test can prove the watch works. */
  readonly seen = new Set<string>();
  private abort: AbortController | undefined;
  private stopped = false;
  private readonly kubeConfig: KubeConfig;

  constructor(kubeConfig: KubeConfig) {
    this.kubeConfig = kubeConfig;
  }

  async start(): Promise<void> {
    this.abort = await new Watch(this.kubeConfig).watch(
      `${RBAC}/roles`,
      {},
      (phase: string, role: Role) => {
        if (phase === 'DELETED' || !role.metadata?.name.startsWith(PREFIX)) return;
        this.seen.add(`${role.metadata.namespace}/${role.metadata.name}`);
        for (const rule of role.rules ?? []) {
          const why = widening(rule);
          if (why) this.violations.push(`${phase} ${role.metadata.namespace}/${role.metadata.name} rv ${role.metadata.resourceVersion}: ${why}: ${JSON.stringify(rule)}`);
        }
      },
      () => {
        if (!this.stopped) void this.start();
      },
    );
  }

  stop(): void {
    this.stopped = true;
    this.abort?.abort();
  }

  /** Fails with what was seen since the last call, and forgets it so the next test starts clean. */
  assertNone(): void {
    const seen = this.violations.splice(0);
    assert.deepEqual(seen, [], 'a podlogreader Role granted pods/log on pods it does not name');
  }
}

// --- running the controller --------------------------------------------------------------------------

interface RunningController {
  readonly registry: Registry;
  /** Readiness checks the controller registered (e.g. informers synced). */
  readonly readiness: HealthCheck[];
  /** Aborts it, waits for it to drain and releases its connections. */
  stop(): Promise<void>;
}

/** Set when a controller's promise settled before we stopped it (a crash the tests should report). */
let earlyExit: string | undefined;
const controllerFailure = (): string | undefined => earlyExit;

/** How long a stopped controller may take to drain before the test says it hangs. */
const DRAIN_MS = 15_000;

/**
 * The operator's identity as the Helm chart installs it (its ServiceAccount, ClusterRoles and
 * write policy), one release per value of createServiceAccountAndRoleBinding: the controller
 * runs with exactly the permissions, and within exactly the admission bounds, it has in a cluster.
 */
const chartOperators = new Map<boolean, Promise<ChartOperator>>();
function chartOperator(createServiceAccountAndRoleBinding: boolean): Promise<ChartOperator> {
  let identity = chartOperators.get(createServiceAccountAndRoleBinding);
  if (!identity) {
    identity = newNamespace('la-chart').then((namespace) =>
      installChartOperator(createServiceAccountAndRoleBinding ? 'la-sa' : 'la', namespace, [`logaccess.createServiceAccountAndRoleBinding=${createServiceAccountAndRoleBinding}`]));
    chartOperators.set(createServiceAccountAndRoleBinding, identity);
  }
  return identity;
}

async function startController(options: LogAccessOptions): Promise<RunningController> {
  const client = new KubeClient((await chartOperator(options.createServiceAccountAndRoleBinding)).kubeConfig);
  const registry = new Registry();
  const recorder = new EventRecorder({ client, reportingInstance: 'test' });
  const readiness: HealthCheck[] = [];
  const abort = new AbortController();
  let stopping = false;
  const deps = { client, logger: silentLogger, registry, recorder, workers: 2, onManager: (manager: Manager) => readiness.push(...manager.readinessChecks()) };
  const finished = runLogAccess(deps, options, abort.signal).then(
    () => {
      if (!stopping) earlyExit = 'resolved before it was stopped';
    },
    (err: unknown) => {
      earlyExit = `rejected: ${err instanceof Error ? err.stack ?? err.message : String(err)}`;
    },
  );
  const running: RunningController = {
    registry,
    readiness,
    async stop() {
      stopping = true;
      abort.abort();
      let timer: NodeJS.Timeout | undefined;
      const hung = new Promise<'hung'>((r) => (timer = setTimeout(() => r('hung'), DRAIN_MS)));
      const outcome = await Promise.race([finished, hung]);
      clearTimeout(timer);
      await recorder.flush();
      await client.close();
      assert.notEqual(outcome, 'hung', `runLogAccess did not resolve within ${DRAIN_MS} ms of abort`);
      const failure = earlyExit;
      earlyExit = undefined;
      assert.equal(failure, undefined, `the controller exited on its own: ${failure}`);
    },
  };
  await eventually('the controller reports ready', async () => {
    if (earlyExit) throw new Error(`the controller exited: ${earlyExit}`);
    try {
      for (const check of readiness) await check.check();
      return true;
    } catch {
      return false;
    }
  }, SETTLE_MS);
  return running;
}

// --- the tests -------------------------------------------------------------------------------------

let roleWatch: RoleWidening;

before(async () => {
  roleWatch = new RoleWidening(await adminKubeConfig());
  await roleWatch.start();
});

after(() => roleWatch.stop());

describe('logaccess with default options (Role only, pods list allowed)', () => {
  let controller: RunningController;
  before(async () => {
    controller = await startController(DEFAULT_OPTIONS);
  });
  after(async () => {
    await controller.stop();
  });
  afterEach(() => roleWatch.assertNone());

  it('creates a Role that allows pods/log on exactly the pods of an opted-in Deployment', async () => {
    const namespace = await workloadNamespace('la-deploy');
    await createWorkload(namespace, { kind: 'Deployment', name: 'web', replicas: 3, labels: OPT_IN });
    const { role, pods } = await roleFollowsPods(namespace, 'Deployment', 'web', 3);
    const logRule = role.rules!.find((r) => r.resources?.includes('pods/log'))!;
    assert.deepEqual(logRule.resourceNames, pods, 'resourceNames are the pod names, sorted');

    // Pods come through the ReplicaSet, but the ReplicaSet has a controller: it gets no Role of its own.
    const roles = await list<Role>(`${RBAC}/namespaces/${namespace}/roles`);
    assert.deepEqual(roles.map((r) => r.metadata.name), [`${PREFIX}web`], 'one Role, named after the Deployment');
    await eventually('the widening watch has seen this Role (its silence elsewhere means something)', () => roleWatch.seen.has(`${namespace}/${PREFIX}web`), SETTLE_MS);
  });

  it('follows scale up and down exactly, and at 0 replicas keeps the Role without any pods/log rule', async () => {
    const namespace = await workloadNamespace('la-scale');
    await createWorkload(namespace, { kind: 'Deployment', name: 'web', replicas: 2, labels: OPT_IN });
    await roleFollowsPods(namespace, 'Deployment', 'web', 2);
    for (const replicas of [5, 1, 0]) {
      await kubectl(namespace, 'scale', 'deployment/web', `--replicas=${replicas}`);
      await roleFollowsPods(namespace, 'Deployment', 'web', replicas);
    }
    const role = await roleOf(namespace, 'web');
    assert.ok(role, 'the Role of a Deployment scaled to 0 is still there');
    assert.equal(role.rules?.some((r) => r.resources?.includes('pods/log')), false, 'no pods/log rule at 0 replicas');
  });

  it('after a rolling restart names only the new pods', async () => {
    const namespace = await workloadNamespace('la-rollout');
    await createWorkload(namespace, { kind: 'Deployment', name: 'web', replicas: 3, labels: OPT_IN });
    const before = new Set((await roleFollowsPods(namespace, 'Deployment', 'web', 3)).pods);
    await kubectl(namespace, 'rollout', 'restart', 'deployment/web');
    await settles('the rollout replaced every pod and the Role names the new ones', async () => {
      const [role, pods] = await Promise.all([roleOf(namespace, 'web'), podsOf(namespace, 'Deployment', 'web')]);
      return {
        actual: { pods: pods.length, oldPodsLeft: pods.filter((p) => before.has(p)), role: role ? normalizeRules(role.rules) : 'no Role' },
        expected: { pods: 3, oldPodsLeft: [], role: expectedRules(pods) },
      };
    });
  });

  it('finds the pods of a Deployment whose selector has only matchExpressions', async () => {
    const namespace = await workloadNamespace('la-exprs');
    await createWorkload(namespace, {
      kind: 'Deployment', name: 'web', replicas: 2, labels: OPT_IN,
      selector: { matchExpressions: [{ key: 'app', operator: 'In', values: ['web'] }] },
    });
    await roleFollowsPods(namespace, 'Deployment', 'web', 2);
  });

  describe('gives every workload kind its Role with its pods', () => {
    /** Kind → pods it runs. A DaemonSet runs one pod per kwok node; the CronJob one Job of one pod. */
    const table: ReadonlyArray<{ kind: Kind; pods: number }> = [
      { kind: 'StatefulSet', pods: 2 },
      { kind: 'DaemonSet', pods: KWOK_NODES },
      { kind: 'Job', pods: 2 },
      { kind: 'CronJob', pods: 1 },
      { kind: 'ReplicaSet', pods: 2 },
    ];
    const namespaces = new Map<Kind, string>();

    // All workloads start together: their pods come up in parallel, each test then only checks.
    before(async () => {
      await Promise.all(table.map(async ({ kind, pods }) => {
        const namespace = await workloadNamespace(`la-${kind.toLowerCase()}`);
        namespaces.set(kind, namespace);
        await createWorkload(namespace, { kind, name: 'worker', replicas: pods, labels: OPT_IN });
        if (kind === 'CronJob') await kubectl(namespace, 'create', 'job', 'worker-manual', '--from=cronjob/worker');
      }));
    });

    for (const { kind, pods } of table) {
      it(`${kind}: a Role listing exactly its pods, labelled with its kind and owned by it`, async () => {
        await roleFollowsPods(namespaces.get(kind)!, kind, 'worker', pods);
      });
    }
  });

  it('never lists the pods of a workload that did not opt in, and ignores a bare Pod carrying the label', async () => {
    const plane = await testbed();
    const namespace = await workloadNamespace('la-others');
    // `other` overlaps web's selector (app=web): a controller that re-lists by selector, as the
    // seed did, would put other's pods into web's Role. Its label value is not "enable".
    await Promise.all([
      createWorkload(namespace, { kind: 'Deployment', name: 'web', replicas: 2, labels: OPT_IN }),
      createWorkload(namespace, {
        kind: 'Deployment', name: 'other', replicas: 2, appLabel: 'web',
        labels: { variant: 'other', 'podlogreader-affiliate': 'disable' },
        selector: { matchLabels: { app: 'web', variant: 'other' } },
      }),
      create(`/api/v1/namespaces/${namespace}/pods`, {
        metadata: { name: 'loner', labels: { app: 'loner', ...OPT_IN } },
        spec: { ...ON_KWOK_NODES, containers: [{ name: 'app', image: 'registry.invalid/app:1' }] },
      }),
    ]);
    await eventually('the pods of other and the bare pod exist', async () => (await podsOf(namespace, 'Deployment', 'other')).length === 2 && (await get(`/api/v1/namespaces/${namespace}/pods/loner`)) !== undefined, SETTLE_MS);
    const { pods } = await roleFollowsPods(namespace, 'Deployment', 'web', 2);
    const others = await podsOf(namespace, 'Deployment', 'other');
    assert.deepEqual(pods.filter((p) => others.includes(p)), [], 'no pod of other in web\'s Role');

    // Nothing must appear for `other` or `loner`. Control: a third pod of web, which must be written.
    await caughtUp(controller.registry, async () => {
      await kubectl(namespace, 'scale', 'deployment/web', '--replicas=3');
      await roleFollowsPods(namespace, 'Deployment', 'web', 3);
    });
    const roles = await list<Role>(`${RBAC}/namespaces/${namespace}/roles`);
    assert.deepEqual(roles.map((r) => r.metadata.name), [`${PREFIX}web`], 'no Role for the non-opted-in Deployment nor the bare Pod');
    assert.equal((await plane.request('GET', `/api/v1/namespaces/${namespace}/pods/loner`)).status, 200, 'the bare pod was there all along');
  });

  it('leaves a Role of the same name that it does not manage untouched, and says why in a Warning Event', async () => {
    const namespace = await workloadNamespace('la-userrole');
    const theirs = await create<Role>(`${RBAC}/namespaces/${namespace}/roles`, {
      metadata: { name: `${PREFIX}web`, labels: { team: 'payments' } },
      rules: [{ apiGroups: [''], resources: ['configmaps'], verbs: ['get'], resourceNames: ['settings'] }],
    });
    const deployment = await createWorkload(namespace, { kind: 'Deployment', name: 'web', replicas: 2, labels: OPT_IN });
    await settles('a Warning Event RoleExists on the Deployment', async () => ({
      actual: (await warnings(namespace, 'RoleExists', deployment.metadata.uid)).map((e) => ({ kind: e.regarding.kind, name: e.regarding.name })).slice(0, 1),
      expected: [{ kind: 'Deployment', name: 'web' }],
    }));
    await eventually('the Deployment has its 2 pods', async () => (await podsOf(namespace, 'Deployment', 'web')).length === 2, SETTLE_MS);
    // The pods' arrival triggers more reconciles; control: a workload created after them gets its Role.
    await caughtUp(controller.registry, async () => {
      await createWorkload(namespace, { kind: 'Deployment', name: 'control', replicas: 1, labels: OPT_IN });
      await roleFollowsPods(namespace, 'Deployment', 'control', 1);
    });
    const now = await roleOf(namespace, 'web');
    assert.equal(now?.metadata.resourceVersion, theirs.metadata.resourceVersion, 'the user\'s Role was not written');
    assert.deepEqual(now?.rules, theirs.rules);
    assert.deepEqual(now?.metadata.labels, theirs.metadata.labels);
  });

  it('accepts the alias label logaccess.crowsnest.dev/enabled: "true" like the seed label', async () => {
    const namespace = await workloadNamespace('la-alias');
    await createWorkload(namespace, { kind: 'Deployment', name: 'web', replicas: 2, labels: OPT_IN_ALIAS });
    await roleFollowsPods(namespace, 'Deployment', 'web', 2);
  });

  // Last in this describe on purpose: it restarts the describe's controller, which then has to
  // rebuild its state for every namespace the tests above left behind, all settled.
  it('after a restart rebuilds its state from the cluster without writing anything, then keeps following', async () => {
    const namespace = await workloadNamespace('la-restart');
    await createWorkload(namespace, { kind: 'Deployment', name: 'web', replicas: 2, labels: OPT_IN });
    await roleFollowsPods(namespace, 'Deployment', 'web', 2);
    const managed = async (): Promise<Record<string, string>> =>
      Object.fromEntries((await list<Role>(`${RBAC}/roles?labelSelector=${encodeURIComponent('app.kubernetes.io/managed-by=crowsnest')}`))
        .filter((r) => r.metadata.name.startsWith(PREFIX))
        .map((r) => [`${r.metadata.namespace}/${r.metadata.name}`, r.metadata.resourceVersion]));
    const beforeRestart = await managed();

    await controller.stop();
    controller = await startController(DEFAULT_OPTIONS);
    const { registry } = controller;
    await settles('the new controller has caught up (managed Roles counted, reconciles run, queue empty)', async () => {
      const [roles, reconciles, depth] = await Promise.all([
        metricSum(registry, 'crowsnest_logaccess_managed_roles'),
        metricSum(registry, 'crowsnest_reconcile_total'),
        metricSum(registry, 'workqueue_depth'),
      ]);
      return {
        actual: { managedRoles: roles, reconciledAtLeastOncePerRole: reconciles >= Object.keys(beforeRestart).length, queueDepth: depth },
        expected: { managedRoles: Object.keys(beforeRestart).length, reconciledAtLeastOncePerRole: true, queueDepth: 0 },
      };
    });
    assert.equal(await metricSum(registry, 'crowsnest_logaccess_writes_total'), 0, 'no API writes for a settled cluster');
    assert.deepEqual(await managed(), beforeRestart, 'no managed Role changed resourceVersion');

    // Still live, and the write counter does count: a change is followed by exactly its one
    // write. A late duplicate of the catch-up (a requeue) would land before this control is done.
    await caughtUp(registry, async () => {
      await kubectl(namespace, 'scale', 'deployment/web', '--replicas=3');
      await roleFollowsPods(namespace, 'Deployment', 'web', 3);
    });
    assert.equal(await metricSum(registry, 'crowsnest_logaccess_writes_total'), 1, 'the scale-up, and only it, was written');
    const { [`${namespace}/${PREFIX}web`]: _scaled, ...others } = beforeRestart;
    const { [`${namespace}/${PREFIX}web`]: _now, ...othersNow } = await managed();
    assert.deepEqual(othersNow, others, 'no other managed Role changed resourceVersion');
  });
});

describe('logaccess with createServiceAccountAndRoleBinding', () => {
  let controller: RunningController;
  before(async () => {
    controller = await startController({ ...DEFAULT_OPTIONS, createServiceAccountAndRoleBinding: true });
  });
  after(async () => {
    await controller.stop();
  });
  afterEach(() => roleWatch.assertNone());

  /** Waits for the ServiceAccount and RoleBinding of `web` and checks they are ours and bind its Role. */
  async function serviceAccountAndBinding(namespace: string): Promise<void> {
    const name = `${PREFIX}web`;
    let sa: Obj | undefined;
    let rb: RoleBinding | undefined;
    await eventually('the ServiceAccount and RoleBinding exist', async () => {
      [sa, rb] = await Promise.all([serviceAccountOf(namespace, 'web'), roleBindingOf(namespace, 'web')]);
      return sa !== undefined && rb !== undefined;
    }, SETTLE_MS);
    await assertOursAndOwnedBy(sa!, namespace, 'Deployment', 'web');
    await assertOursAndOwnedBy(rb!, namespace, 'Deployment', 'web');
    assert.deepEqual(rb!.roleRef, { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name });
    assert.deepEqual(rb!.subjects, [{ kind: 'ServiceAccount', name, namespace }]);
  }

  it('creates a ServiceAccount whose token may read the logs of its workload\'s pods and of no other pod', async () => {
    const namespace = await workloadNamespace('la-rbac');
    await Promise.all([
      createWorkload(namespace, { kind: 'Deployment', name: 'web', replicas: 2, labels: OPT_IN }),
      createWorkload(namespace, { kind: 'Deployment', name: 'other', replicas: 1 }),
    ]);
    const { pods } = await roleFollowsPods(namespace, 'Deployment', 'web', 2);
    await serviceAccountAndBinding(namespace);
    await eventually('the pod of other exists', async () => (await podsOf(namespace, 'Deployment', 'other')).length === 1, SETTLE_MS);
    const [otherPod] = await podsOf(namespace, 'Deployment', 'other');

    const token = await requestToken(namespace, `${PREFIX}web`);
    for (const pod of pods) {
      await eventually(`the authorizer allows get pods/log on ${pod}`, () => mayReadLog(namespace, `${PREFIX}web`, pod), SETTLE_MS);
      // kwok may fail the log request itself (no log file configured); only a 403 would be RBAC.
      const res = await asToken(token, 'GET', `/api/v1/namespaces/${namespace}/pods/${pod}/log`);
      assert.notEqual(res.status, 403, `GET log of ${pod} with the ServiceAccount's token: ${res.body}`);
      console.log(`# allowed log request for ${pod}: HTTP ${res.status} (past RBAC; kwok answers the log itself)`);
    }
    assert.equal(await mayReadLog(namespace, `${PREFIX}web`, otherPod!), false, 'SubjectAccessReview for the pod of another workload');
    const denied = await asToken(token, 'GET', `/api/v1/namespaces/${namespace}/pods/${otherPod}/log`);
    assert.equal(denied.status, 403, `GET log of another workload's pod: ${denied.body}`);
    assert.equal((await asToken(token, 'GET', `/api/v1/namespaces/${namespace}/pods`)).status, 200, 'allowPodList: the token may list pods');
  });

  it('leaves an existing ServiceAccount and RoleBinding of the same name unchanged, and says so in Warning Events', async () => {
    const namespace = await workloadNamespace('la-usersa');
    const name = `${PREFIX}web`;
    const sa = await create(`/api/v1/namespaces/${namespace}/serviceaccounts`, { metadata: { name, labels: { team: 'payments' } } });
    const rb = await create<RoleBinding>(`${RBAC}/namespaces/${namespace}/rolebindings`, {
      metadata: { name, labels: { team: 'payments' } },
      roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: 'view' },
      subjects: [{ kind: 'ServiceAccount', name: 'default', namespace }],
    });
    const deployment = await createWorkload(namespace, { kind: 'Deployment', name: 'web', replicas: 2, labels: OPT_IN });
    await settles('Warning Events ServiceAccountExists and RoleBindingExists on the Deployment', async () => ({
      actual: {
        ServiceAccountExists: (await warnings(namespace, 'ServiceAccountExists', deployment.metadata.uid)).length > 0,
        RoleBindingExists: (await warnings(namespace, 'RoleBindingExists', deployment.metadata.uid)).length > 0,
      },
      expected: { ServiceAccountExists: true, RoleBindingExists: true },
    }));
    // Their ServiceAccount does not stop the Role from being kept.
    await roleFollowsPods(namespace, 'Deployment', 'web', 2);
    // The pods' arrival triggers more reconciles; control: a workload created after them gets its own.
    await caughtUp(controller.registry, async () => {
      await createWorkload(namespace, { kind: 'Deployment', name: 'control', replicas: 1, labels: OPT_IN });
      await roleFollowsPods(namespace, 'Deployment', 'control', 1);
      await eventually('the control has its ServiceAccount', async () => (await serviceAccountOf(namespace, 'control')) !== undefined, SETTLE_MS);
    });
    assert.equal((await serviceAccountOf(namespace, 'web'))?.metadata.resourceVersion, sa.metadata.resourceVersion, 'the user\'s ServiceAccount was not written');
    assert.equal((await roleBindingOf(namespace, 'web'))?.metadata.resourceVersion, rb.metadata.resourceVersion, 'the user\'s RoleBinding was not written');
  });

  it('adopts the Role, ServiceAccount and RoleBinding podlogreader made, in place under the chart\'s write policy: a token issued before keeps working; a look-alike stays untouched', async () => {
    const namespace = await workloadNamespace('la-adopt');
    const name = `${PREFIX}web`;
    // As podlogreader (handler.go) left them for Deployment web before the switch: a name and
    // the content, no labels, no owner. Its pods of then are gone.
    const podlogreaderRules = [
      { apiGroups: [''], resources: ['pods'], verbs: ['list'] },
      { apiGroups: [''], resources: ['pods/log'], verbs: ['get', 'list', 'watch'], resourceNames: ['web-gone-1'] },
    ];
    const role = await create<Role>(`${RBAC}/namespaces/${namespace}/roles`, { metadata: { name }, rules: podlogreaderRules });
    const sa = await create(`/api/v1/namespaces/${namespace}/serviceaccounts`, { metadata: { name } });
    const rb = await create<RoleBinding>(`${RBAC}/namespaces/${namespace}/rolebindings`, {
      metadata: { name }, roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name }, subjects: [{ kind: 'ServiceAccount', name, namespace }],
    });
    const token = await requestToken(namespace, name);
    // The same shape plus one rule: not podlogreader's as it made it, so someone else's.
    const lookAlike = await create<Role>(`${RBAC}/namespaces/${namespace}/roles`, {
      metadata: { name: `${PREFIX}api` }, rules: [...podlogreaderRules, { apiGroups: [''], resources: ['configmaps'], verbs: ['get'] }],
    });

    const deployment = await createWorkload(namespace, { kind: 'Deployment', name: 'web', replicas: 2, labels: OPT_IN });
    const api = await createWorkload(namespace, { kind: 'Deployment', name: 'api', replicas: 1, labels: OPT_IN });
    const { pods } = await roleFollowsPods(namespace, 'Deployment', 'web', 2);
    await serviceAccountAndBinding(namespace);
    assert.equal((await roleOf(namespace, 'web'))?.metadata.uid, role.metadata.uid, 'the same Role, updated in place');
    assert.equal((await serviceAccountOf(namespace, 'web'))?.metadata.uid, sa.metadata.uid, 'the same ServiceAccount: never deleted and recreated');
    assert.equal((await roleBindingOf(namespace, 'web'))?.metadata.uid, rb.metadata.uid);
    await settles('Normal Events RoleAdopted, ServiceAccountAdopted and RoleBindingAdopted on the Deployment', async () => {
      const events = await list<EventV1>(`/apis/events.k8s.io/v1/namespaces/${namespace}/events`);
      return {
        actual: ['RoleAdopted', 'ServiceAccountAdopted', 'RoleBindingAdopted'].map((reason) => events.some((e) => e.type === 'Normal' && e.reason === reason && e.regarding.uid === deployment.metadata.uid)),
        expected: [true, true, true],
      };
    });
    for (const pod of pods) {
      await eventually(`the authorizer allows get pods/log on ${pod}`, () => mayReadLog(namespace, name, pod), SETTLE_MS);
      const res = await asToken(token, 'GET', `/api/v1/namespaces/${namespace}/pods/${pod}/log`);
      assert.notEqual(res.status, 403, `the token issued before the switch reads the log of ${pod}: ${res.body}`);
      assert.notEqual(res.status, 401, `the token issued before the switch still authenticates: ${res.body}`);
    }

    await settles('a Warning Event RoleExists on Deployment api', async () => ({
      actual: (await warnings(namespace, 'RoleExists', api.metadata.uid)).length > 0,
      expected: true,
    }));
    const untouched = await roleOf(namespace, 'api');
    assert.equal(untouched?.metadata.resourceVersion, lookAlike.metadata.resourceVersion, 'the look-alike was not written');
  });

  it('removes the Role, ServiceAccount and RoleBinding when the workload opts out', async () => {
    const plane = await testbed();
    const namespace = await workloadNamespace('la-optout');
    await createWorkload(namespace, { kind: 'Deployment', name: 'web', replicas: 2, labels: OPT_IN });
    await roleFollowsPods(namespace, 'Deployment', 'web', 2);
    await serviceAccountAndBinding(namespace);

    const patch = await plane.request('PATCH', workloadPath(namespace, 'Deployment', 'web'),
      [{ op: 'remove', path: '/spec/template/metadata/labels/podlogreader-affiliate' }],
      { 'content-type': 'application/json-patch+json' });
    assert.equal(patch.status, 200, patch.body);
    await settles('Role, ServiceAccount and RoleBinding are gone, the Deployment stays', async () => {
      const [role, sa, rb, deployment] = await Promise.all([roleOf(namespace, 'web'), serviceAccountOf(namespace, 'web'), roleBindingOf(namespace, 'web'), get(workloadPath(namespace, 'Deployment', 'web'))]);
      return {
        actual: { role: role !== undefined, serviceAccount: sa !== undefined, roleBinding: rb !== undefined, deployment: deployment !== undefined },
        expected: { role: false, serviceAccount: false, roleBinding: false, deployment: true },
      };
    });
  });

  it('removes the Role, ServiceAccount and RoleBinding when the workload is deleted', async () => {
    const plane = await testbed();
    const namespace = await workloadNamespace('la-delete');
    await createWorkload(namespace, { kind: 'Deployment', name: 'web', replicas: 2, labels: OPT_IN });
    await roleFollowsPods(namespace, 'Deployment', 'web', 2);
    await serviceAccountAndBinding(namespace);

    const deleted = await plane.request('DELETE', workloadPath(namespace, 'Deployment', 'web'));
    assert.equal(deleted.status, 200, deleted.body);
    await settles('Role, ServiceAccount and RoleBinding are gone', async () => {
      const [role, sa, rb] = await Promise.all([roleOf(namespace, 'web'), serviceAccountOf(namespace, 'web'), roleBindingOf(namespace, 'web')]);
      return {
        actual: { role: role !== undefined, serviceAccount: sa !== undefined, roleBinding: rb !== undefined },
        expected: { role: false, serviceAccount: false, roleBinding: false },
      };
    });
  });
});
