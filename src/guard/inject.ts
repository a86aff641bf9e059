/**
 * The pure half of guard's injection webhook: whether a pod being created gets the health sidecar,
 * and the pod with it. No API calls here; the handler (webhook.ts) reads the GuardPolicies from
 * the informer cache and hands them in. The rules every injector shares (own namespace only,
 * idempotent, hostNetwork/Windows/port clashes skipped with a warning, native sidecar, restricted
 * securityContext) live in kube/webhook/sidecar-injection.ts; here is what is guard's:
 *
 * - A pod gets the sidecar when a GuardPolicy of its namespace selects it (`spec.targets.podSelector`)
 *   **and** has a detector that reads the sidecar's signals (`health` or `undeclaredPort`): a
 *   policy that only counts restarts or logs costs its pods nothing. Several such policies: the
 *   first by name is named in {@link GUARD_POLICY_ANNOTATION}, with a warning.
 * - The sidecar is told the declared ports of its siblings (app containers and other native
 *   sidecars; plain init containers have exited before it probes) in
 *   {@link SIDECAR_ENV.declaredPorts}. It is a hint for probing only: the operator judges
 *   undeclared ports against the pod spec it caches, not against this environment.
 * - Its readiness probe only says its metrics server listens: a native sidecar's readiness is part
 *   of the pod's, so one that depended on the operator or on the app would take healthy pods out
 *   of their Services whenever the operator is down — or hide a failing app behind its sidecar.
 * - Its token is a projected ServiceAccount token for {@link TOKEN_AUDIENCE} only, short-lived,
 *   which the operator reviews and binds to this pod.
 */
import type { KubeObject } from '../kube/objects/resources.ts';
import type { LabelSelector } from '../kube/objects/selector.ts';
import {
  fieldRefEnv, IN_POD_NODE_OPTIONS, type PodContainer, podObstacle, type PodObject, type PodObstacle, projectedTokenVolume, type ResourceRequirements,
  restrictedSecurityContext, selectingPolicies, withNativeSidecar,
} from '../kube/webhook/sidecar-injection.ts';
import {
  type DeclaredPort, DEFAULT_SIDECAR_METRICS_PORT, GUARD_POLICY_ANNOTATION, SIDECAR_CONTAINER, SIDECAR_ENV, SIDECAR_METRICS_PORT_NAME, TOKEN_AUDIENCE,
  TOKEN_EXPIRATION_SECONDS, TOKEN_FILE, TOKEN_MOUNT_PATH, TOKEN_VOLUME,
} from './contract.ts';
import { SIDECAR_TUNING_ENV } from './sidecar/config.ts';

/**
 * What injection reads of a GuardPolicy (guard-core's api.ts defines the whole type; any
 * GuardPolicy is one of these).
 */
export interface SelectingGuardPolicy extends KubeObject {
  readonly spec?: {
    readonly targets?: { readonly podSelector?: LabelSelector };
    readonly detectors?: { readonly health?: object; readonly undeclaredPort?: object };
  };
}

/** What the operator decides for every injected sidecar. */
export interface SidecarInjectionSettings {
  /** The sidecar's image: the operator's own. */
  readonly image: string;
  /** `https://host:port` of the operator's guard endpoint, as pods reach it. */
  readonly signalsUrl: string;
  /** PEM bundle the sidecars trust for it. */
  readonly caBundle: string;
  /** Default {@link DEFAULT_SIDECAR_RESOURCES}. */
  readonly resources?: ResourceRequirements;
  /** Port of the sidecar's /metrics and /readyz. Default {@link DEFAULT_SIDECAR_METRICS_PORT}. */
  readonly metricsPort?: number;
  /** Default `IfNotPresent`. */
  readonly imagePullPolicy?: 'Always' | 'IfNotPresent' | 'Never';
  /** Mean interval between probes of one port, a Go duration (`10s`); default the sidecar's. */
  readonly probePeriod?: string;
  /** A probe taking longer fails (`timeout`), a Go duration; default the sidecar's. */
  readonly probeTimeout?: string;
}

/**
 * Requests and limits of the sidecar: Node's own floor is ~44 MiB RSS here, the sidecar adds a few
 * MiB (its RSS is `process_resident_memory_bytes` on its /metrics). A small CPU request: it probes
 * a few ports every ten seconds. No CPU limit: throttling would show up as probe timeouts.
 */
export const DEFAULT_SIDECAR_RESOURCES: ResourceRequirements = { requests: { cpu: '5m', memory: '64Mi' }, limits: { memory: '128Mi' } };

/** Why a pod is let through unchanged; the `result` label of `crowsnest_guard_sidecar_admissions_total`. */
export type SidecarSkipReason = 'not_selected' | 'sidecar_not_needed' | PodObstacle;

export type SidecarInjectionDecision =
  | { readonly kind: 'inject'; readonly pod: PodObject; readonly policy: string; readonly warnings: readonly string[] }
  | { readonly kind: 'skip'; readonly reason: SidecarSkipReason; readonly warnings: readonly string[] };

/** Whether a policy's detectors read what the sidecar reports. */
export function needsSidecar(policy: SelectingGuardPolicy): boolean {
  return policy.spec?.detectors?.health !== undefined || policy.spec?.detectors?.undeclaredPort !== undefined;
}

/**
 * Decides for `pod`, created in `namespace`, given the GuardPolicies of the namespace (others are
 * ignored). Returns the pod to store, or why it stays as it is. Never changes `pod`.
 */
export function decideSidecarInjection(pod: PodObject, namespace: string, policies: readonly SelectingGuardPolicy[], settings: SidecarInjectionSettings): SidecarInjectionDecision {
  const warnings: string[] = [];
  const selecting = selectingPolicies(policies, namespace, pod.metadata?.labels, (p) => p.spec?.targets?.podSelector);
  if (selecting.length === 0) return skip('not_selected');
  const needing = selecting.filter(needsSidecar);
  const policy = needing[0];
  if (!policy) return skip('sidecar_not_needed');
  const policyName = policy.metadata?.name ?? '';
  if (needing.length > 1) {
    warnings.push(`pod is selected by ${needing.length} GuardPolicies with health or undeclaredPort detectors (${needing.map((p) => p.metadata?.name).join(', ')}); its health sidecar is ${policyName}'s`);
  }
  const metricsPort = settings.metricsPort ?? DEFAULT_SIDECAR_METRICS_PORT;
  const obstacle = podObstacle(pod, {
    container: SIDECAR_CONTAINER, ports: [metricsPort], injector: `GuardPolicy ${policyName}`, what: 'health sidecar',
    portHint: 'the sidecar\'s metrics port is the chart value guard.sidecar.metricsPort', injected: (p) => p.metadata?.annotations?.[GUARD_POLICY_ANNOTATION] !== undefined,
  }, warnings);
  if (obstacle) return skip(obstacle.reason, obstacle.warning);

  const sidecar = sidecarContainer(policyName, declaredPorts(pod), settings);
  const injected = withNativeSidecar(pod, sidecar, projectedTokenVolume(TOKEN_VOLUME, TOKEN_AUDIENCE, TOKEN_EXPIRATION_SECONDS), {
    annotations: { [GUARD_POLICY_ANNOTATION]: policyName },
  });
  return { kind: 'inject', pod: injected, policy: policyName, warnings };

  function skip(reason: SidecarSkipReason, warning?: string): SidecarInjectionDecision {
    return { kind: 'skip', reason, warnings: warning ? [...warnings, warning] : warnings };
  }
}

/** The ports the pod's long-running containers declare: app containers and native sidecars. */
export function declaredPorts(pod: PodObject): DeclaredPort[] {
  const running: PodContainer[] = [...(pod.spec?.initContainers ?? []).filter((c) => c['restartPolicy'] === 'Always'), ...(pod.spec?.containers ?? [])];
  return running.flatMap((container) => (container.ports ?? [])
    .filter((p) => typeof p.containerPort === 'number')
    .map((p) => ({
      container: container.name ?? '', port: p.containerPort!, protocol: (p.protocol ?? 'TCP') as DeclaredPort['protocol'], ...(p.name ? { name: p.name } : {}),
    })));
}

/** The sidecar container (see the module comment for the choices). */
export function sidecarContainer(policyName: string, ports: readonly DeclaredPort[], settings: SidecarInjectionSettings): Record<string, unknown> {
  const metricsPort = settings.metricsPort ?? DEFAULT_SIDECAR_METRICS_PORT;
  return {
    name: SIDECAR_CONTAINER,
    image: settings.image,
    imagePullPolicy: settings.imagePullPolicy ?? 'IfNotPresent',
    args: ['sidecar'],
    restartPolicy: 'Always',
    env: [
      fieldRefEnv(SIDECAR_ENV.podName, 'metadata.name'),
      fieldRefEnv(SIDECAR_ENV.podNamespace, 'metadata.namespace'),
      fieldRefEnv(SIDECAR_ENV.podIp, 'status.podIP'),
      fieldRefEnv(SIDECAR_ENV.nodeName, 'spec.nodeName'),
      { name: SIDECAR_ENV.policyName, value: policyName },
      { name: SIDECAR_ENV.signalsUrl, value: settings.signalsUrl },
      { name: SIDECAR_ENV.caBundle, value: settings.caBundle },
      { name: SIDECAR_ENV.tokenFile, value: TOKEN_FILE },
      { name: SIDECAR_ENV.declaredPorts, value: JSON.stringify(ports) },
      { name: SIDECAR_ENV.metricsPort, value: String(metricsPort) },
      ...(settings.probePeriod ? [{ name: SIDECAR_TUNING_ENV.probePeriod, value: settings.probePeriod }] : []),
      ...(settings.probeTimeout ? [{ name: SIDECAR_TUNING_ENV.probeTimeout, value: settings.probeTimeout }] : []),
      { name: 'NODE_OPTIONS', value: IN_POD_NODE_OPTIONS },
    ],
    ports: [{ name: SIDECAR_METRICS_PORT_NAME, containerPort: metricsPort, protocol: 'TCP' }],
    resources: structuredClone(settings.resources ?? DEFAULT_SIDECAR_RESOURCES),
    securityContext: restrictedSecurityContext(),
    readinessProbe: { httpGet: { path: '/readyz', port: SIDECAR_METRICS_PORT_NAME }, periodSeconds: 10, timeoutSeconds: 2, failureThreshold: 3 },
    volumeMounts: [{ name: TOKEN_VOLUME, mountPath: TOKEN_MOUNT_PATH, readOnly: true }],
    terminationMessagePolicy: 'FallbackToLogsOnError',
  };
}
