/**
 * Pods as guard's cache keeps them: identity, labels, owner, node, the declared ports (for the
 * undeclared-port threat signal), where the pod may be scheduled (for the node taint's rail:
 * nodeSelector, required node affinity, the tolerations that matter; placement.ts) and the
 * container statuses its detectors read (restart counts, last termination, waiting reason).
 * Everything else of the pod is dropped at the informer, so a cluster-wide pod cache stays small.
 */
import type { DeclaredPort } from './contract.ts';
import { type PodPlacement, podPlacement, type RawPodPlacement } from './placement.ts';
import type { KubeObject, OwnerReference } from '../kube/objects/resources.ts';

export interface Termination {
  readonly reason?: string;
  readonly exitCode?: number;
  /** RFC 3339. */
  readonly finishedAt?: string;
  readonly containerID?: string;
}

export interface SlimContainerStatus {
  readonly name: string;
  readonly restartCount: number;
  readonly ready: boolean;
  readonly waitingReason?: string;
  /** RFC 3339: when the running container started (a restart, for a crashing one). */
  readonly startedAt?: string;
  readonly terminated?: Termination;
  readonly lastTerminated?: Termination;
}

export interface GuardPod extends KubeObject {
  metadata: {
    name: string; namespace: string; uid: string; resourceVersion?: string; creationTimestamp?: string; deletionTimestamp?: string;
    labels?: Record<string, string>; annotations?: Record<string, string>; ownerReferences?: OwnerReference[];
  };
  spec: { nodeName?: string; ports: DeclaredPort[] } & PodPlacement;
  status: { phase?: string; podIP?: string; containers: SlimContainerStatus[] };
}

interface RawTermination { reason?: string; exitCode?: number; finishedAt?: string; containerID?: string }
interface RawContainerStatus {
  name?: string; restartCount?: number; ready?: boolean;
  state?: { waiting?: { reason?: string }; running?: { startedAt?: string }; terminated?: RawTermination };
  lastState?: { terminated?: RawTermination };
}
interface RawContainer { name?: string; ports?: Array<{ containerPort?: number; protocol?: string; name?: string }> }
interface RawPod extends KubeObject {
  spec?: { nodeName?: string; containers?: RawContainer[]; initContainers?: RawContainer[] } & RawPodPlacement;
  status?: { phase?: string; podIP?: string; containerStatuses?: RawContainerStatus[]; initContainerStatuses?: RawContainerStatus[] };
}

/** Guard's own annotations only: the quarantine record (everything else may be large). */
const KEPT_ANNOTATIONS = /^guard\.crowsnest\.dev\//;

function termination(t: RawTermination | undefined): Termination | undefined {
  if (!t) return undefined;
  return {
    ...(t.reason ? { reason: t.reason } : {}), ...(t.exitCode !== undefined ? { exitCode: t.exitCode } : {}),
    ...(t.finishedAt ? { finishedAt: t.finishedAt } : {}), ...(t.containerID ? { containerID: t.containerID } : {}),
  };
}

/** The cache transform (see the module comment). */
export function guardPod(obj: KubeObject): KubeObject {
  const pod = obj as RawPod;
  const m = pod.metadata ?? {};
  const annotations = Object.fromEntries(Object.entries(m.annotations ?? {}).filter(([k]) => KEPT_ANNOTATIONS.test(k)));
  const ports: DeclaredPort[] = [];
  for (const container of [...(pod.spec?.initContainers ?? []), ...(pod.spec?.containers ?? [])]) {
    for (const p of container.ports ?? []) {
      if (!p.containerPort) continue;
      const protocol = p.protocol === 'UDP' || p.protocol === 'SCTP' ? p.protocol : 'TCP';
      ports.push({ container: container.name ?? '', port: p.containerPort, protocol, ...(p.name ? { name: p.name } : {}) });
    }
  }
  const statuses = [...(pod.status?.initContainerStatuses ?? []), ...(pod.status?.containerStatuses ?? [])];
  const slim: GuardPod = {
    apiVersion: pod.apiVersion, kind: pod.kind,
    metadata: {
      name: m.name ?? '', namespace: m.namespace ?? '', uid: m.uid ?? '',
      ...(m.resourceVersion ? { resourceVersion: m.resourceVersion } : {}),
      ...(m.creationTimestamp ? { creationTimestamp: m.creationTimestamp } : {}),
      ...(m.deletionTimestamp ? { deletionTimestamp: m.deletionTimestamp } : {}),
      ...(m.labels ? { labels: m.labels } : {}),
      // Present (if only `{}`) whenever the pod has annotations: quarantine adds the annotation map
      // only to a pod without one, and adding it to a pod with one would replace all of them.
      ...(m.annotations ? { annotations } : {}),
      ...(m.ownerReferences ? { ownerReferences: m.ownerReferences } : {}),
    },
    spec: { ...(pod.spec?.nodeName ? { nodeName: pod.spec.nodeName } : {}), ports, ...podPlacement(pod.spec) },
    status: {
      ...(pod.status?.phase ? { phase: pod.status.phase } : {}),
      ...(pod.status?.podIP ? { podIP: pod.status.podIP } : {}),
      containers: statuses.map((s) => {
        const terminated = termination(s.state?.terminated);
        const lastTerminated = termination(s.lastState?.terminated);
        return {
          name: s.name ?? '', restartCount: s.restartCount ?? 0, ready: s.ready ?? false,
          ...(s.state?.waiting?.reason ? { waitingReason: s.state.waiting.reason } : {}),
          ...(s.state?.running?.startedAt ? { startedAt: s.state.running.startedAt } : {}),
          ...(terminated ? { terminated } : {}),
          ...(lastTerminated ? { lastTerminated } : {}),
        };
      }),
    },
  };
  return slim;
}

/** The pod's controlling owner reference, if any. */
export function controllerOf(pod: GuardPod): OwnerReference | undefined {
  return pod.metadata.ownerReferences?.find((ref) => ref.controller);
}
