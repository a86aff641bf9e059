/**
 * What quarantine, release and isolation write, as pure functions of what was read.
 *
 * Quarantine takes a pod out of its owner without deleting it: the labels its owner selects on
 * are removed (the ReplicaSet/StatefulSet controller makes a replacement, Services drop the
 * endpoint), the controller's owner reference goes (so the owner neither re-adopts nor deletes
 * it), {@link QUARANTINE_LABEL} (the incident id) and {@link QUARANTINE_ANNOTATION} (why, when,
 * and the labels removed) are added. It is one JSON patch guarded by `test` operations on the
 * pod's uid and resourceVersion: it applies to the pod exactly as guard judged it or not at all
 * (409/422), and changes no field guard did not decide on. Guard never writes `replicas`.
 *
 * Isolation is one NetworkPolicy per incident selecting the incident's quarantine label, denying
 * all ingress and egress (both policy types, no rules), owned by the GuardPolicy.
 */
import { QUARANTINE_ANNOTATION, QUARANTINE_LABEL, type QuarantineRecord } from './contract.ts';
import type { GuardPod } from './pods.ts';
import { managedLabels } from '../kube/objects/labels.ts';
import type { KubeObject } from '../kube/objects/resources.ts';
import type { LabelSelector } from '../kube/objects/selector.ts';

export type JsonPatchOperation =
  | { readonly op: 'test' | 'add' | 'replace'; readonly path: string; readonly value: unknown }
  | { readonly op: 'remove'; readonly path: string };

function pointer(...segments: string[]): string {
  return `/${segments.map((s) => s.replaceAll('~', '~0').replaceAll('/', '~1')).join('/')}`;
}

/**
 * The labels to remove from `pod`: those its owner's selector names (matchLabels keys and
 * matchExpressions keys), or, for a pod without an owner, the keys the policy selects on, so
 * Services stop sending it traffic either way. Only labels the pod has.
 */
export function labelsToRemove(pod: GuardPod, ownerSelector: LabelSelector | undefined, policySelector: LabelSelector): Record<string, string> {
  const selector = ownerSelector ?? policySelector;
  const keys = new Set([...Object.keys(selector.matchLabels ?? {}), ...(selector.matchExpressions ?? []).map((r) => r.key)]);
  const labels = pod.metadata.labels ?? {};
  return Object.fromEntries(Object.entries(labels).filter(([key]) => keys.has(key)));
}

/** The guarded JSON patch that quarantines `pod` (see the module comment). */
export function quarantinePatch(pod: GuardPod, record: QuarantineRecord): JsonPatchOperation[] {
  const ops: JsonPatchOperation[] = [
    { op: 'test', path: '/metadata/uid', value: pod.metadata.uid },
    { op: 'test', path: '/metadata/resourceVersion', value: pod.metadata.resourceVersion ?? '' },
  ];
  for (const key of Object.keys(record.removedLabels)) ops.push({ op: 'remove', path: pointer('metadata', 'labels', key) });
  if (!pod.metadata.labels) ops.push({ op: 'add', path: '/metadata/labels', value: {} });
  ops.push({ op: 'add', path: pointer('metadata', 'labels', QUARANTINE_LABEL), value: record.incident });
  if (!pod.metadata.annotations) ops.push({ op: 'add', path: '/metadata/annotations', value: {} });
  ops.push({ op: 'add', path: pointer('metadata', 'annotations', QUARANTINE_ANNOTATION), value: JSON.stringify(record) });
  const refs = pod.metadata.ownerReferences ?? [];
  const kept = refs.filter((ref) => !ref.controller);
  if (kept.length !== refs.length) {
    ops.push(kept.length > 0 ? { op: 'replace', path: '/metadata/ownerReferences', value: kept } : { op: 'remove', path: '/metadata/ownerReferences' });
  }
  return ops;
}

/** The quarantine record on `pod`, if it carries a readable one. */
export function quarantineRecordOf(pod: Pick<GuardPod, 'metadata'>): QuarantineRecord | undefined {
  const text = pod.metadata.annotations?.[QUARANTINE_ANNOTATION];
  if (!text) return undefined;
  try {
    const value = JSON.parse(text) as Partial<QuarantineRecord>;
    if (typeof value.incident !== 'string' || typeof value.policy !== 'string' || typeof value.at !== 'string') return undefined;
    return {
      incident: value.incident, policy: value.policy, detector: String(value.detector ?? ''), at: value.at,
      ...(typeof value.until === 'string' ? { until: value.until } : {}),
      removedLabels: typeof value.removedLabels === 'object' && value.removedLabels ? value.removedLabels : {},
    };
  } catch {
    return undefined;
  }
}

/**
 * The guarded JSON patch that releases a quarantined pod: its removed labels back (unless the pod
 * has a label of that key again, set by someone else), the quarantine label and annotation gone.
 * The owner adopts it again by its selector (and scales one pod away if it now has one too many).
 */
export function releasePatch(pod: GuardPod, record: QuarantineRecord): JsonPatchOperation[] {
  const ops: JsonPatchOperation[] = [
    { op: 'test', path: '/metadata/uid', value: pod.metadata.uid },
    { op: 'test', path: '/metadata/resourceVersion', value: pod.metadata.resourceVersion ?? '' },
  ];
  const labels = pod.metadata.labels ?? {};
  if (QUARANTINE_LABEL in labels) ops.push({ op: 'remove', path: pointer('metadata', 'labels', QUARANTINE_LABEL) });
  for (const [key, value] of Object.entries(record.removedLabels)) {
    if (!(key in labels)) ops.push({ op: 'add', path: pointer('metadata', 'labels', key), value });
  }
  if (pod.metadata.annotations && QUARANTINE_ANNOTATION in pod.metadata.annotations) {
    ops.push({ op: 'remove', path: pointer('metadata', 'annotations', QUARANTINE_ANNOTATION) });
  }
  return ops;
}

/** Name of the NetworkPolicy isolating an incident's pod. */
export function isolationPolicyName(incident: string): string {
  return `crowsnest-guard-isolate-${incident}`.slice(0, 253);
}

/** The NetworkPolicy that cuts the incident's quarantined pod off (owned by the GuardPolicy). */
export function isolationPolicy(owner: { readonly name: string; readonly namespace: string; readonly uid: string; readonly apiVersion: string; readonly kind: string }, incident: string): KubeObject & { spec: Record<string, unknown> } {
  return {
    apiVersion: 'networking.k8s.io/v1',
    kind: 'NetworkPolicy',
    metadata: {
      name: isolationPolicyName(incident),
      namespace: owner.namespace,
      labels: { ...managedLabels(), [QUARANTINE_LABEL]: incident },
      ownerReferences: [{ apiVersion: owner.apiVersion, kind: owner.kind, name: owner.name, uid: owner.uid, controller: true, blockOwnerDeletion: false }],
    },
    spec: {
      podSelector: { matchLabels: { [QUARANTINE_LABEL]: incident } },
      policyTypes: ['Ingress', 'Egress'],
    },
  };
}
