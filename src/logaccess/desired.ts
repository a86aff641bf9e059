/**
 * The pure part of logaccess: which workload a pod belongs to, whether a workload opted in, and
 * the Role / ServiceAccount / RoleBinding it should have. No API calls here, so every rule that
 * protects users from a permission widening is unit-tested directly.
 */
import type { KubeObject } from '../kube/objects/resources.ts';
import { managedLabels } from '../kube/objects/labels.ts';
import { controllerRef, controllerReferenceTo } from '../kube/objects/owners.ts';

/** The seed's opt-in label (podlogreader) and its value. */
export const OPT_IN_LABEL = 'podlogreader-affiliate';
export const OPT_IN_VALUE = 'enable';
/** Our own spelling of the opt-in. */
export const OPT_IN_ALIAS_LABEL = 'logaccess.crowsnest.dev/enabled';
export const OPT_IN_ALIAS_VALUE = 'true';
/** Marks the objects this capability manages, and says for which kind of workload. */
export const LABEL_WORKLOAD_KIND = 'logaccess.crowsnest.dev/workload-kind';

export type WorkloadKind = 'Deployment' | 'StatefulSet' | 'DaemonSet' | 'Job' | 'CronJob' | 'ReplicaSet';
export const WORKLOAD_KINDS: readonly WorkloadKind[] = ['Deployment', 'StatefulSet', 'DaemonSet', 'Job', 'CronJob', 'ReplicaSet'];

/** A workload as the work queue names it: `Kind/namespace/name`. */
export interface WorkloadKey {
  readonly kind: WorkloadKind;
  readonly namespace: string;
  readonly name: string;
}

export function formatKey(key: WorkloadKey): string {
  return `${key.kind}/${key.namespace}/${key.name}`;
}

export function parseKey(text: string): WorkloadKey {
  const [kind, namespace, name, ...rest] = text.split('/');
  if (!kind || !namespace || !name || rest.length > 0 || !WORKLOAD_KINDS.includes(kind as WorkloadKind)) {
    throw new Error(`not a workload key: ${text}`);
  }
  return { kind: kind as WorkloadKind, namespace, name };
}

export interface LogAccessOptions {
  /** Prefix of the Role / ServiceAccount / RoleBinding name. Default `podlogreader-` (the seed's). */
  readonly namePrefix: string;
  /**
   * Also allow `list pods` in the namespace, as the seed did. It shows the names, labels and
   * specs (including env values) of every pod in the namespace, not only the workload's.
   */
  readonly allowPodList: boolean;
  /** Also keep a ServiceAccount and a RoleBinding of the same name. */
  readonly createServiceAccountAndRoleBinding: boolean;
  /**
   * Take over the Role / ServiceAccount / RoleBinding podlogreader made for a Deployment when it
   * is provably podlogreader's (see {@link isPodlogreaders}); otherwise an object holding the
   * name is left alone.
   */
  readonly adoptPodlogreader: boolean;
}

export const DEFAULT_LOGACCESS_OPTIONS: LogAccessOptions = {
  namePrefix: 'podlogreader-',
  allowPodList: true,
  createServiceAccountAndRoleBinding: false,
  adoptPodlogreader: true,
};

/** podlogreader's fixed name prefix: `podlogreader-<deployment>`. */
export const PODLOGREADER_PREFIX = 'podlogreader-';

/**
 * Whether `existing` is an object podlogreader (zipizap/podlogreader, handler.go) made for the
 * Deployment `deploymentName`, and nothing else has touched its shape: podlogreader wrote
 * nothing but a name and the content below, so any label, annotation, owner, finalizer or other
 * content says someone else made or changed it, and it stays theirs.
 * - Role: exactly `pods` list and `pods/log` get/list/watch on named pods (or on none).
 * - RoleBinding: the Role of its own name, bound to the ServiceAccount of its own name only.
 * - ServiceAccount: no content at all (no secrets, pull secrets or token settings).
 */
export function isPodlogreaders(existing: KubeObject, deploymentName: string): boolean {
  const m = existing.metadata ?? {};
  const name = PODLOGREADER_PREFIX + deploymentName;
  if (m.name !== name || !m.namespace) return false;
  if (Object.keys(m.labels ?? {}).length || Object.keys(m.annotations ?? {}).length || m.ownerReferences?.length || m.finalizers?.length || m.deletionTimestamp) return false;
  const object = existing as KubeObject & Record<string, unknown>;
  const content = Object.keys(object).filter((key) => !['apiVersion', 'kind', 'metadata'].includes(key));
  switch (existing.kind) {
    case 'Role': {
      if (content.some((key) => key !== 'rules')) return false;
      const rules = (object['rules'] ?? []) as PolicyRule[];
      const is = (rule: PolicyRule, resource: string, verbs: readonly string[]): boolean =>
        sameJson(rule.apiGroups, ['']) && sameJson(rule.resources, [resource]) && sameJson(rule.verbs, verbs) && !('nonResourceURLs' in rule);
      const podList = rules.filter((rule) => is(rule, 'pods', ['list']) && !rule.resourceNames?.length);
      const podLogs = rules.filter((rule) => is(rule, 'pods/log', ['get', 'list', 'watch']));
      return rules.length === 2 && podList.length === 1 && podLogs.length === 1;
    }
    case 'RoleBinding':
      return content.every((key) => key === 'roleRef' || key === 'subjects') &&
        sameJson(object['roleRef'], { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name }) &&
        sameJson(normalize(object['subjects']), [{ kind: 'ServiceAccount', name, namespace: m.namespace }]);
    case 'ServiceAccount':
      return content.length === 0;
    default:
      return false;
  }
}

export function hasOptInLabel(labels: Readonly<Record<string, string>> | undefined): boolean {
  return labels?.[OPT_IN_LABEL] === OPT_IN_VALUE || labels?.[OPT_IN_ALIAS_LABEL] === OPT_IN_ALIAS_VALUE;
}

interface PodTemplateHolder extends KubeObject {
  spec?: {
    template?: { metadata?: { labels?: Record<string, string> } };
    jobTemplate?: { spec?: { template?: { metadata?: { labels?: Record<string, string> } } } };
  };
}

/** The pod template labels of a workload object of `kind`. */
export function podTemplateLabels(kind: WorkloadKind, workload: KubeObject): Record<string, string> | undefined {
  const spec = (workload as PodTemplateHolder).spec;
  return kind === 'CronJob' ? spec?.jobTemplate?.spec?.template?.metadata?.labels : spec?.template?.metadata?.labels;
}

/** The `spec` of a workload reduced to its pod template labels: all the cache needs to decide opt-in. */
export function templateLabelsOnly(kind: WorkloadKind, workload: KubeObject): { spec: PodTemplateHolder['spec'] } {
  const labels = podTemplateLabels(kind, workload);
  const template = { metadata: { labels: labels ?? {} } };
  return { spec: kind === 'CronJob' ? { jobTemplate: { spec: { template } } } : { template } };
}

/** True when the workload's pod template carries an opt-in label and it is not being deleted. */
export function isOptedIn(kind: WorkloadKind, workload: KubeObject): boolean {
  return !workload.metadata?.deletionTimestamp && hasOptInLabel(podTemplateLabels(kind, workload));
}

/** How the owner chain is resolved: the ReplicaSet or Job a pod points to, if known. */
export interface OwnerLookup {
  replicaSet(namespace: string, name: string): KubeObject | undefined;
  job(namespace: string, name: string): KubeObject | undefined;
}

/**
 * The workload a pod belongs to, following controller owner references one step past a
 * ReplicaSet (to its Deployment) or a Job (to its CronJob). Undefined for a pod without a
 * controller, one owned by a kind we do not handle, or one whose ReplicaSet/Job is not known yet
 * (its own event will enqueue the workload once it is).
 */
export function workloadOfPod(pod: KubeObject, owners: OwnerLookup): WorkloadKey | undefined {
  const namespace = pod.metadata?.namespace;
  const owner = controllerRef(pod);
  if (!namespace || !owner) return undefined;
  switch (owner.kind) {
    case 'StatefulSet':
    case 'DaemonSet':
      return { kind: owner.kind, namespace, name: owner.name };
    case 'ReplicaSet': {
      const rs = owners.replicaSet(namespace, owner.name);
      return rs ? workloadOfObject('ReplicaSet', rs) : undefined;
    }
    case 'Job': {
      const job = owners.job(namespace, owner.name);
      return job ? workloadOfObject('Job', job) : undefined;
    }
    default:
      return undefined;
  }
}

/** ReplicaSets and Jobs are the steps between a pod and its Deployment or CronJob. */
const PARENT_KIND: Readonly<Partial<Record<WorkloadKind, WorkloadKind>>> = { ReplicaSet: 'Deployment', Job: 'CronJob' };

/**
 * The workload an object of `kind` stands for: a ReplicaSet its Deployment and a Job its
 * CronJob, or themselves when they have no controller; any other workload itself. Undefined
 * for a ReplicaSet or Job controlled by a kind we do not handle.
 */
export function workloadOfObject(kind: WorkloadKind, obj: KubeObject): WorkloadKey | undefined {
  const namespace = obj.metadata?.namespace;
  const name = obj.metadata?.name;
  if (!namespace || !name) return undefined;
  const parentKind = PARENT_KIND[kind];
  const owner = controllerRef(obj);
  if (!parentKind || !owner) return { kind, namespace, name };
  return owner.kind === parentKind ? { kind: parentKind, namespace, name: owner.name } : undefined;
}

export interface PolicyRule {
  readonly apiGroups: readonly string[];
  readonly resources: readonly string[];
  readonly verbs: readonly string[];
  readonly resourceNames?: readonly string[];
}

export interface Role extends KubeObject {
  rules?: PolicyRule[];
}

/** What every object we write for a workload carries. */
function objectMeta(name: string, workload: KubeObject & { apiVersion: string; kind: WorkloadKind }): KubeObject['metadata'] {
  return {
    name,
    namespace: workload.metadata!.namespace!,
    labels: { ...managedLabels(), [LABEL_WORKLOAD_KIND]: workload.kind },
    // The garbage collector removes our objects with the workload; they need not block its
    // foreground deletion (that would need `update` on the workload's finalizers).
    ownerReferences: [controllerReferenceTo(workload, { blockOwnerDeletion: false })],
  };
}

/**
 * The Role for a workload and its current pods. The `pods/log` rule exists only with at least one
 * pod name: in RBAC an absent or empty `resourceNames` means *every* pod, so a workload without
 * pods gets no log access at all rather than access to all logs.
 */
export function desiredRole(
  workload: KubeObject & { apiVersion: string; kind: WorkloadKind },
  podNames: readonly string[],
  options: LogAccessOptions,
): Role & { metadata: NonNullable<Role['metadata']> } {
  const rules: PolicyRule[] = [];
  const names = [...new Set(podNames.filter((n) => n.length > 0))].sort();
  if (names.length > 0) rules.push({ apiGroups: [''], resources: ['pods/log'], verbs: ['get', 'list', 'watch'], resourceNames: names });
  if (options.allowPodList) rules.push({ apiGroups: [''], resources: ['pods'], verbs: ['list'] });
  return {
    apiVersion: 'rbac.authorization.k8s.io/v1',
    kind: 'Role',
    metadata: objectMeta(options.namePrefix + workload.metadata!.name!, workload)!,
    rules,
  };
}

export function desiredServiceAccount(workload: KubeObject & { apiVersion: string; kind: WorkloadKind }, options: LogAccessOptions): KubeObject & { metadata: NonNullable<KubeObject['metadata']> } {
  return { apiVersion: 'v1', kind: 'ServiceAccount', metadata: objectMeta(options.namePrefix + workload.metadata!.name!, workload)! };
}

export function desiredRoleBinding(workload: KubeObject & { apiVersion: string; kind: WorkloadKind }, options: LogAccessOptions): KubeObject & { metadata: NonNullable<KubeObject['metadata']>; roleRef: unknown; subjects: unknown[] } {
  const name = options.namePrefix + workload.metadata!.name!;
  return {
    apiVersion: 'rbac.authorization.k8s.io/v1',
    kind: 'RoleBinding',
    metadata: objectMeta(name, workload)!,
    roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name },
    subjects: [{ kind: 'ServiceAccount', name, namespace: workload.metadata!.namespace! }],
  };
}

/**
 * Whether a cached object already says what `desired` says, in the fields we own: our labels,
 * our owner reference, and the kind-specific content (`rules`, `roleRef`, `subjects`). Fields
 * others added are ignored, so another controller's label does not make us write.
 */
export function matchesDesired(cachedObject: KubeObject, desiredObject: KubeObject): boolean {
  const cached = cachedObject as KubeObject & Record<string, unknown>;
  const desired = desiredObject as KubeObject & Record<string, unknown>;
  for (const [key, value] of Object.entries(desired.metadata?.labels ?? {})) if (cached.metadata?.labels?.[key] !== value) return false;
  const wantedOwner = desired.metadata?.ownerReferences?.[0];
  const owner = cached.metadata?.ownerReferences?.find((ref) => ref.uid === wantedOwner?.uid);
  if (owner?.controller !== true) return false;
  for (const field of ['rules', 'roleRef', 'subjects'] as const) {
    if (!(field in desired)) continue;
    // The API server may return an empty rule list as null.
    const have = field === 'rules' ? (cached[field] ?? []) : cached[field];
    if (!sameJson(normalize(have), normalize(desired[field]))) return false;
  }
  return true;
}

/** RBAC rules come back with empty optional lists omitted; compare them the same way. */
function normalize(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(normalize);
  if (value && typeof value === 'object') {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value)) {
      if (v === undefined || (Array.isArray(v) && v.length === 0 && k !== 'rules')) continue;
      out[k] = normalize(v);
    }
    return out;
  }
  return value;
}

function sameJson(a: unknown, b: unknown): boolean {
  return JSON.stringify(sortKeys(a)) === JSON.stringify(sortKeys(b));
}

function sortKeys(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(sortKeys);
  if (value && typeof value === 'object') return Object.fromEntries(Object.entries(value).sort(([a], [b]) => a.localeCompare(b)).map(([k, v]) => [k, sortKeys(v)]));
  return value;
}
