/**
 * What every capability that injects a sidecar into pods shares (the prober's agent, guard's
 * health sidecar): which policy objects of the pod's namespace select it, the pods a sidecar would
 * hurt, the native-sidecar container's fixed parts, and the admission handler around a pure
 * decision. The capability keeps its own names, ports, environment and metric.
 *
 * Rules, each the same for every injector (tests in the capabilities):
 * - Only a policy of the pod's own namespace selects it, by its full LabelSelector (matchExpressions
 *   too), and a policy being deleted selects nothing; several: the first by name, with a warning.
 * - Idempotent: a pod that has a container of the sidecar's name already is left alone (the
 *   webhook's reinvocation, a copy of an injected pod, or the user's own container of that name,
 *   then with a warning).
 * - hostNetwork pods (every such pod of a node would bind the sidecar's ports on the node itself),
 *   Windows pods (our image is Linux) and pods that declare one of the sidecar's ports are skipped
 *   with a warning.
 * - The sidecar is a native sidecar (an init container with `restartPolicy: Always`, appended after
 *   the pod's own): it starts before the app containers and does not keep a Job's pod running.
 * - It runs as a non-root user with the restricted Pod Security profile's securityContext.
 * - Pods of kube-system, kube-node-lease, kube-public and the operator's namespace are let through
 *   whatever the webhook configuration's namespaceSelector says: a wrong selector must not inject
 *   into the control plane.
 * - Served with failurePolicy Ignore: an operator that is down or slow admits pods without the
 *   sidecar rather than not at all.
 */
import { Counter, type Registry } from 'prom-client';
import { type Logger, silentLogger } from '../logger-type.ts';
import type { KubeObject } from '../objects/resources.ts';
import { type LabelSelector, matchesLabelSelector } from '../objects/selector.ts';
import { allow, mutate, type AdmissionRequest, type AdmissionResult } from './review.ts';
import type { AdmissionHandler } from './server.ts';

/** CPU and memory of a container, as the Pod API writes them. */
export interface ResourceRequirements {
  readonly requests?: Readonly<Record<string, string | number>>;
  readonly limits?: Readonly<Record<string, string | number>>;
}

export interface PodContainer {
  name?: string;
  ports?: Array<{ containerPort?: number; hostPort?: number; name?: string; protocol?: string }>;
  [key: string]: unknown;
}

/** The parts of a Pod an injecting webhook reads or writes. */
export interface PodObject extends KubeObject {
  spec?: {
    initContainers?: PodContainer[];
    containers?: PodContainer[];
    ephemeralContainers?: PodContainer[];
    volumes?: Array<{ name?: string; [key: string]: unknown }>;
    hostNetwork?: boolean;
    os?: { name?: string };
    [key: string]: unknown;
  };
}

/**
 * NODE_OPTIONS of every injected Crowsnest process: V8 sized for a small, steady heap — a 1 MiB
 * young generation instead of 16 MiB (the in-pod processes allocate little per probe), and an
 * old-space cap well under the memory limit so V8 collects before the kernel's OOM killer acts.
 */
export const IN_POD_NODE_OPTIONS = '--max-semi-space-size=1 --max-old-space-size=48';

/** The unprivileged user of our image (distroless' `nonroot`). */
export const SIDECAR_UID = 65532;
const PRIVILEGED_PORT_LIMIT = 1024;

/** Namespaces never injected, whatever the webhook configuration sends. */
export const ALWAYS_EXCLUDED_NAMESPACES = ['kube-system', 'kube-node-lease', 'kube-public'] as const;

/** The policies of `namespace` selecting a pod with `labels`, in name order; policies being deleted select nothing. */
export function selectingPolicies<P extends KubeObject>(
  policies: readonly P[], namespace: string, labels: Readonly<Record<string, string>> | undefined, selectorOf: (policy: P) => LabelSelector | undefined,
): P[] {
  return policies
    .filter((p) => p.metadata?.namespace === namespace && !p.metadata?.deletionTimestamp && matchesLabelSelector(selectorOf(p), labels))
    .sort((a, b) => (a.metadata?.name ?? '').localeCompare(b.metadata?.name ?? ''));
}

/** Every container of the pod: init, app and ephemeral. */
export function podContainers(pod: PodObject): PodContainer[] {
  const spec = pod.spec ?? {};
  return [...(spec.initContainers ?? []), ...(spec.containers ?? []), ...(spec.ephemeralContainers ?? [])];
}

/** Why a pod is let through without the sidecar, when the pod (not the policy) is the reason. */
export type PodObstacle = 'already_injected' | 'container_name_taken' | 'host_network' | 'port_taken' | 'windows';

/** The sidecar a policy would inject, as far as the pod's obstacles go. */
export interface SidecarPlan {
  /** Its container name. */
  readonly container: string;
  /** The TCP ports it listens on. */
  readonly ports: readonly number[];
  /** Whether a container named {@link container} is ours (an injected pod seen again). */
  readonly injected: (pod: PodObject) => boolean;
  /** Who injects, for messages: `NetworkProber mesh`, `GuardPolicy web`. */
  readonly injector: string;
  /** What is injected, for messages: `agent`, `health sidecar`. */
  readonly what: string;
  /** How a user frees a port the pod declares, for the port_taken warning. */
  readonly portHint: string;
}

/** Why `pod` cannot take the sidecar (with a warning for the user), or undefined when it can; warnings about the plan itself go to `warnings`. */
export function podObstacle(pod: PodObject, plan: SidecarPlan, warnings: string[]): { readonly reason: PodObstacle; readonly warning?: string } | undefined {
  const containers = podContainers(pod);
  if (containers.some((c) => c.name === plan.container)) {
    if (plan.injected(pod)) return { reason: 'already_injected' };
    return { reason: 'container_name_taken', warning: `the pod has a container named ${plan.container} already; ${plan.injector} cannot inject its ${plan.what}` };
  }
  if (pod.spec?.hostNetwork) {
    return { reason: 'host_network', warning: `${plan.injector} does not inject hostNetwork pods: every such pod on a node would bind the ${plan.what}'s ports on the node itself` };
  }
  if (pod.spec?.os?.name === 'windows') return { reason: 'windows', warning: `${plan.injector} does not inject Windows pods (the ${plan.what} is a Linux image)` };
  for (const port of plan.ports) {
    const owner = containers.find((c) => c.ports?.some((p) => p.containerPort === port && (p.protocol ?? 'TCP') === 'TCP'));
    if (owner) return { reason: 'port_taken', warning: `container ${owner.name} declares port ${port}, which ${plan.injector} gives its ${plan.what}: ${plan.portHint}` };
  }
  if (Math.min(...plan.ports) < PRIVILEGED_PORT_LIMIT) {
    warnings.push(`${plan.injector} uses a port below ${PRIVILEGED_PORT_LIMIT}; the ${plan.what} runs as a non-root user and may not be allowed to bind it`);
  }
  return undefined;
}

/**
 * `pod` with `sidecar` appended as a native sidecar, `volume` added unless there, and the metadata
 * merged; `pod` is not changed. Only the objects on the changed paths are new (the pod, its
 * metadata and the two maps, its spec and the two arrays); everything else is `pod`'s own, shared:
 * the answer's JSON Patch is computed against `pod`, and shared members are equal by identity, so
 * the diff visits only what changed. (A deep copy of the pod and a diff through all of it were most
 * of a review's CPU.) Treat the result as read-only, like `pod`.
 */
export function withNativeSidecar(
  pod: PodObject, sidecar: Record<string, unknown>, volume: { readonly name: string; readonly [key: string]: unknown },
  metadata: { readonly annotations?: Readonly<Record<string, string>>; readonly labels?: Readonly<Record<string, string>> },
): PodObject {
  const spec = pod.spec ?? {};
  const volumes = spec.volumes ?? [];
  return {
    ...pod,
    metadata: {
      ...pod.metadata,
      ...(metadata.annotations ? { annotations: { ...pod.metadata?.annotations, ...metadata.annotations } } : {}),
      ...(metadata.labels ? { labels: { ...pod.metadata?.labels, ...metadata.labels } } : {}),
    },
    spec: {
      ...spec,
      initContainers: [...(spec.initContainers ?? []), { ...sidecar, restartPolicy: 'Always' }],
      ...(volumes.some((v) => v.name === volume.name) ? {} : { volumes: [...volumes, volume] }),
    },
  };
}

/** An environment variable from the downward API (`metadata.name`, `status.podIP`, ...). */
export function fieldRefEnv(name: string, fieldPath: string): Record<string, unknown> {
  return { name, valueFrom: { fieldRef: { apiVersion: 'v1', fieldPath } } };
}

/** The restricted Pod Security profile's container securityContext, as user `uid`, with a read-only root. */
export function restrictedSecurityContext(uid = SIDECAR_UID): Record<string, unknown> {
  return {
    runAsNonRoot: true,
    runAsUser: uid,
    runAsGroup: uid,
    allowPrivilegeEscalation: false,
    readOnlyRootFilesystem: true,
    capabilities: { drop: ['ALL'] },
    seccompProfile: { type: 'RuntimeDefault' },
  };
}

/** A ServiceAccount token for `audience` only, short-lived, refreshed by the kubelet, as file `token`. */
export function projectedTokenVolume(name: string, audience: string, expirationSeconds: number): { readonly name: string; readonly [key: string]: unknown } {
  return {
    name,
    // No defaultMode: the kubelet makes the file 0644, or 0600 owned by the user when every
    // container of the pod runs as the same one.
    projected: { sources: [{ serviceAccountToken: { audience, expirationSeconds, path: 'token' } }] },
  };
}

// ---------------------------------------------------------------------------------------------
// The admission handler

/** A capability's decision for one pod. */
export type InjectionOutcome<R extends string> =
  | { readonly kind: 'inject'; readonly pod: PodObject; readonly policy: string; readonly warnings: readonly string[] }
  | { readonly kind: 'skip'; readonly reason: R; readonly warnings: readonly string[] };

/** What the operator gives an injector's webhook. */
export interface InjectorWebhookOptions<P extends KubeObject, S> {
  /** The capability's policies of a namespace, from the informer cache (never a LIST per request). */
  readonly policiesIn: (namespace: string) => readonly P[];
  /** The injection settings, or why there are none yet (then pods are let through with a warning). */
  readonly settings: () => S | string;
  /** Besides {@link ALWAYS_EXCLUDED_NAMESPACES}: the operator's own namespace. */
  readonly excludedNamespaces: readonly string[];
  readonly registry?: Registry;
  readonly logger?: Logger;
}

/** What the capability adds. */
export interface PodInjectionWebhookOptions<P extends KubeObject, S, R extends string> extends InjectorWebhookOptions<P, S> {
  /** Handler name (metric label, logs), e.g. `prober-inject`. */
  readonly name: string;
  readonly path: string;
  /** The pure decision (called only when the namespace has policies). */
  readonly decide: (pod: PodObject, namespace: string, policies: readonly P[], settings: S) => InjectionOutcome<R>;
  /** `crowsnest_<capability>_admissions_total{result}` and its help. */
  readonly metric: { readonly name: string; readonly help: string };
  /** What a pod admitted without settings is told: `the NetworkProber agent was not injected`. */
  readonly notInjected: string;
}

/** Results every injecting webhook counts besides `injected` and the capability's skip reasons. */
export type AdmissionFlowOutcome = 'injected' | 'not_selected' | 'excluded_namespace' | 'not_ready' | 'not_a_pod_create';

/** The admission handler for pod CREATE around a capability's pure decision. */
export function podInjectionWebhook<P extends KubeObject, S, R extends string>(options: PodInjectionWebhookOptions<P, S, R>): AdmissionHandler {
  const logger = options.logger ?? silentLogger;
  const admissions = options.registry ? admissionCounter(options.registry, options.metric) : undefined;
  const excluded = new Set<string>([...ALWAYS_EXCLUDED_NAMESPACES, ...options.excludedNamespaces]);
  const count = (result: AdmissionFlowOutcome | R): void => admissions?.inc({ result });
  return {
    name: options.name,
    path: options.path,
    failurePolicy: 'Ignore',
    review: (request: AdmissionRequest): AdmissionResult => {
      if (request.operation !== 'CREATE' || request.resource.resource !== 'pods' || request.resource.group !== '' || request.subResource) {
        count('not_a_pod_create');
        return allow();
      }
      const namespace = request.namespace ?? request.object?.metadata?.namespace ?? '';
      if (excluded.has(namespace)) {
        count('excluded_namespace');
        return allow();
      }
      const pod = request.object as PodObject | null | undefined;
      if (!pod) return allow();
      const policies = options.policiesIn(namespace);
      if (policies.length === 0) {
        count('not_selected');
        return allow();
      }
      const settings = options.settings();
      if (typeof settings === 'string') {
        count('not_ready');
        logger.warn({ namespace, reason: settings }, `pod admitted: ${options.notInjected}`);
        return allow([`crowsnest: ${options.notInjected}: ${settings}`]);
      }
      const decision = options.decide(pod, namespace, policies, settings);
      if (decision.kind === 'skip') {
        count(decision.reason);
        return allow(decision.warnings);
      }
      count('injected');
      logger.debug({ namespace, pod: pod.metadata?.name ?? pod.metadata?.generateName, policy: decision.policy }, `${options.name}: injecting`);
      return mutate(decision.pod as KubeObject, decision.warnings);
    },
  };
}

function admissionCounter(registry: Registry, metric: { readonly name: string; readonly help: string }): Counter<'result'> {
  const existing = registry.getSingleMetric(metric.name);
  if (existing) return existing as Counter<'result'>;
  return new Counter({ name: metric.name, help: metric.help, labelNames: ['result'], registers: [registry] });
}
