/**
 * Which pods take part in a NetworkProber, read from the operator's cache of injected pods.
 *
 * The webhook labels every pod it injects (`prober.crowsnest.dev/injected: "true"`), so the
 * operator caches those pods only — not every pod of the cluster — and keeps of each just what
 * the peer lists need ({@link slimPod}).
 *
 * A **member** of a NetworkProber is a pod injected for it (annotation), still selected by its
 * current selector, Running, with an IP and not being deleted: the pods on its ring.
 */
import type { KubeObject } from '../kube/objects/resources.ts';
import { matchesLabelSelector } from '../kube/objects/selector.ts';
import type { NetworkProber } from './api.ts';
import { AGENT_CONTAINER, type Peer, PING_PORT_NAME, PROBER_ANNOTATION } from './contract.ts';

/** On every injected pod: the operator's pod cache selects on it. */
export const INJECTED_LABEL = 'prober.crowsnest.dev/injected';
export const INJECTED_LABEL_VALUE = 'true';
export const INJECTED_SELECTOR = `${INJECTED_LABEL}=${INJECTED_LABEL_VALUE}`;

/** A pod as the prober's cache keeps it. */
export interface SlimPod extends KubeObject {
  metadata: { name: string; namespace: string; uid: string; resourceVersion?: string; labels?: Record<string, string>; annotations?: Record<string, string>; deletionTimestamp?: string };
  spec: { nodeName?: string; agentPort?: number };
  status: { phase?: string; podIP?: string };
}

interface FullPod extends KubeObject {
  spec?: { nodeName?: string; initContainers?: Array<{ name?: string; ports?: Array<{ name?: string; containerPort?: number }> }> };
  status?: { phase?: string; podIP?: string };
}

/** The cache transform: identity, labels, our annotation, node, IP, phase and the agent's ping port. */
export function slimPod(obj: KubeObject): KubeObject {
  const pod = obj as FullPod;
  const m = pod.metadata ?? {};
  const proberName = m.annotations?.[PROBER_ANNOTATION];
  const agent = pod.spec?.initContainers?.find((c) => c.name === AGENT_CONTAINER);
  const agentPort = agent?.ports?.find((p) => p.name === PING_PORT_NAME)?.containerPort;
  const slim: SlimPod = {
    apiVersion: pod.apiVersion, kind: pod.kind,
    metadata: {
      name: m.name ?? '', namespace: m.namespace ?? '', uid: m.uid ?? '',
      ...(m.resourceVersion ? { resourceVersion: m.resourceVersion } : {}),
      ...(m.labels ? { labels: m.labels } : {}),
      ...(proberName ? { annotations: { [PROBER_ANNOTATION]: proberName } } : {}),
      ...(m.deletionTimestamp ? { deletionTimestamp: m.deletionTimestamp } : {}),
    },
    spec: { ...(pod.spec?.nodeName ? { nodeName: pod.spec.nodeName } : {}), ...(agentPort ? { agentPort } : {}) },
    status: { ...(pod.status?.phase ? { phase: pod.status.phase } : {}), ...(pod.status?.podIP ? { podIP: pod.status.podIP } : {}) },
  };
  return slim;
}

/** Whether `pod` runs the agent of `prober` now (see the module comment). */
export function isMember(prober: NetworkProber, pod: SlimPod): boolean {
  return pod.metadata.namespace === prober.metadata?.namespace
    && pod.metadata.annotations?.[PROBER_ANNOTATION] === prober.metadata?.name
    && !pod.metadata.deletionTimestamp
    && pod.status.phase === 'Running'
    && Boolean(pod.status.podIP)
    && pod.spec.agentPort !== undefined
    && matchesLabelSelector(prober.spec?.podSelector, pod.metadata.labels);
}

/** The members of `prober` among `pods` (the injected pods of its namespace), as peers. */
export function membersOf(prober: NetworkProber, pods: readonly SlimPod[]): Peer[] {
  return pods.filter((pod) => isMember(prober, pod)).map(asPeer);
}

export function asPeer(pod: SlimPod): Peer {
  return { name: pod.metadata.name, uid: pod.metadata.uid, ip: pod.status.podIP ?? '', node: pod.spec.nodeName ?? '', port: pod.spec.agentPort ?? 0 };
}

/** Injected pods of `prober` that are not members (finished, pending, deselected). */
export function injectedPodsOf(prober: NetworkProber, pods: readonly SlimPod[]): SlimPod[] {
  return pods.filter((pod) => pod.metadata.namespace === prober.metadata?.namespace && pod.metadata.annotations?.[PROBER_ANNOTATION] === prober.metadata?.name);
}
