/**
 * Where a pod may be scheduled, as far as the node taint's "never the last node" rail needs it:
 * the scheduler's NodeUnschedulable, TaintToleration and NodeAffinity filters (the pod's
 * tolerations, `nodeSelector` and required node affinity), with the semantics of
 * k8s.io/component-helpers (`scheduling/corev1`, `nodeaffinity`).
 *
 * Not modelled: resources, host ports, pod (anti-)affinity, topology spread. A node that admits a
 * pod here may still be full, so the rail is a floor, not a promise of a place.
 *
 * Whatever this code does not understand (an unknown operator or field, a malformed number) makes
 * the node *not* admit the pod: the rail then counts one node fewer and refuses to taint sooner,
 * never later.
 */
import { matchesLabelSelector } from '../kube/objects/selector.ts';

export interface NodeTaint {
  readonly key: string;
  readonly value?: string;
  readonly effect: string;
  /** RFC 3339, second resolution: when the taint was added (guard's taint ends a ttl after it). */
  readonly timeAdded?: string;
}

/** What guard reads of a Node (its cache keeps only this). */
export interface NodeLike {
  readonly metadata: { readonly name: string; readonly uid?: string; readonly resourceVersion?: string; readonly labels?: Readonly<Record<string, string>> };
  readonly spec?: { readonly unschedulable?: boolean; readonly taints?: readonly NodeTaint[] };
  readonly status?: { readonly conditions?: ReadonlyArray<{ readonly type: string; readonly status: string }> };
}

export interface Toleration {
  /** Empty with operator Exists: every key. */
  readonly key?: string;
  /** `Equal` (the default) or `Exists`. */
  readonly operator?: string;
  readonly value?: string;
  /** Empty: every effect. */
  readonly effect?: string;
}

export interface NodeSelectorRequirement {
  readonly key: string;
  /** In, NotIn, Exists, DoesNotExist, Gt, Lt. */
  readonly operator: string;
  readonly values?: readonly string[];
}

/** Its requirements all hold (ANDed); a term without any matches no node. */
export interface NodeSelectorTerm {
  readonly matchExpressions?: readonly NodeSelectorRequirement[];
  /** Only `metadata.name` (In, NotIn) exists. */
  readonly matchFields?: readonly NodeSelectorRequirement[];
}

/** The fields of a pod spec that decide which nodes may take it, in the pod spec's own shape. */
export interface PodPlacement {
  readonly nodeSelector?: Readonly<Record<string, string>>;
  readonly affinity?: { readonly nodeAffinity: { readonly requiredDuringSchedulingIgnoredDuringExecution: { readonly nodeSelectorTerms: readonly NodeSelectorTerm[] } } };
  readonly tolerations?: readonly Toleration[];
}

/** The taint the scheduler reads a cordoned node (`spec.unschedulable`) as. */
const UNSCHEDULABLE_TAINT: NodeTaint = { key: 'node.kubernetes.io/unschedulable', effect: 'NoSchedule' };

/**
 * Tolerations of these keys are dropped from the cache: every pod gets them (the
 * DefaultTolerationSeconds admission plugin, DaemonSets), and only a node that is not Ready
 * carries their taints, which the rail never counts anyway.
 */
const NOT_READY_KEYS: ReadonlySet<string> = new Set(['node.kubernetes.io/not-ready', 'node.kubernetes.io/unreachable']);

/** The placement fields of a pod spec as the API server serves them. */
export interface RawPodPlacement {
  nodeSelector?: Record<string, string>;
  affinity?: { nodeAffinity?: { requiredDuringSchedulingIgnoredDuringExecution?: { nodeSelectorTerms?: NodeSelectorTerm[] } } };
  tolerations?: Array<Toleration & { tolerationSeconds?: number }>;
}

/**
 * What guard's pod cache keeps of a pod spec for the rail: the nodeSelector, the required node
 * affinity's terms, and the tolerations that can matter to a Ready node (NoSchedule and NoExecute
 * ones, without tolerationSeconds); fields left empty are left out.
 */
export function podPlacement(spec: RawPodPlacement | undefined): PodPlacement {
  const nodeSelector = spec?.nodeSelector && Object.keys(spec.nodeSelector).length > 0 ? spec.nodeSelector : undefined;
  const terms = spec?.affinity?.nodeAffinity?.requiredDuringSchedulingIgnoredDuringExecution?.nodeSelectorTerms;
  const tolerations = (spec?.tolerations ?? [])
    .filter((t) => !NOT_READY_KEYS.has(t.key ?? '') && t.effect !== 'PreferNoSchedule')
    .map((t) => ({ ...(t.key ? { key: t.key } : {}), ...(t.operator ? { operator: t.operator } : {}), ...(t.value ? { value: t.value } : {}), ...(t.effect ? { effect: t.effect } : {}) }));
  return {
    ...(nodeSelector ? { nodeSelector } : {}),
    ...(terms ? { affinity: { nodeAffinity: { requiredDuringSchedulingIgnoredDuringExecution: { nodeSelectorTerms: terms } } } } : {}),
    ...(tolerations.length > 0 ? { tolerations } : {}),
  };
}

export function isReady(node: NodeLike): boolean {
  return node.status?.conditions?.find((c) => c.type === 'Ready')?.status === 'True';
}

/**
 * Whether the scheduler may put a pod placed by `placement` on `node`, which must be Ready: every
 * NoSchedule and NoExecute taint tolerated (a cordoned node counts as tainted
 * `node.kubernetes.io/unschedulable:NoSchedule`), the nodeSelector's labels present, and one of
 * the required node affinity's terms matching.
 */
export function admits(node: NodeLike, placement: PodPlacement): boolean {
  if (!isReady(node)) return false;
  const taints = [...(node.spec?.taints ?? []), ...(node.spec?.unschedulable ? [UNSCHEDULABLE_TAINT] : [])];
  if (taints.some((t) => (t.effect === 'NoSchedule' || t.effect === 'NoExecute') && !(placement.tolerations ?? []).some((tol) => tolerates(tol, t)))) return false;
  const labels = node.metadata.labels ?? {};
  if (!Object.entries(placement.nodeSelector ?? {}).every(([key, value]) => labels[key] === value)) return false;
  const terms = placement.affinity?.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms;
  return terms === undefined || terms.some((term) => matchesTerm(term, node));
}

/** corev1 `Toleration.ToleratesTaint`. */
export function tolerates(toleration: Toleration, taint: NodeTaint): boolean {
  if (toleration.effect && toleration.effect !== taint.effect) return false;
  if (toleration.key && toleration.key !== taint.key) return false;
  switch (toleration.operator ?? 'Equal') {
    case 'Exists':
      return true;
    case 'Equal':
      return (toleration.value ?? '') === (taint.value ?? '');
    default:
      return false;
  }
}

function matchesTerm(term: NodeSelectorTerm, node: NodeLike): boolean {
  const expressions = term.matchExpressions ?? [];
  const fields = term.matchFields ?? [];
  if (expressions.length === 0 && fields.length === 0) return false;
  return expressions.every((r) => matchesExpression(r, node.metadata.labels ?? {})) && fields.every((r) => matchesField(r, node));
}

function matchesExpression(requirement: NodeSelectorRequirement, labels: Readonly<Record<string, string>>): boolean {
  if (requirement.operator !== 'Gt' && requirement.operator !== 'Lt') return matchesLabelSelector({ matchExpressions: [requirement] }, labels);
  // One integer value, compared with the label's value read as an integer; no label, no match.
  const [bound, ...rest] = requirement.values ?? [];
  const have = labels[requirement.key];
  if (bound === undefined || rest.length > 0 || have === undefined || !/^-?\d+$/.test(bound) || !/^-?\d+$/.test(have)) return false;
  return requirement.operator === 'Gt' ? BigInt(have) > BigInt(bound) : BigInt(have) < BigInt(bound);
}

function matchesField(requirement: NodeSelectorRequirement, node: NodeLike): boolean {
  if (requirement.key !== 'metadata.name') return false;
  const values = requirement.values ?? [];
  if (requirement.operator === 'In') return values.includes(node.metadata.name);
  if (requirement.operator === 'NotIn') return !values.includes(node.metadata.name);
  return false;
}
