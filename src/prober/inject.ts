/**
 * The pure half of the webhook: which NetworkProber (if any) selects a pod being created, and the
 * pod with the agent injected. No API calls here; the handler (webhook.ts) reads the probers from
 * the informer cache and hands them in.
 *
 * The agent is a **native sidecar**: an init container with `restartPolicy: Always`, appended
 * after the pod's own init containers. It starts before the app containers, runs beside them,
 * and does not keep a Job's pod from completing (a plain container would).
 *
 * Safety rules, each tested:
 * - Only a NetworkProber of the pod's own namespace can select it (the seed matched across
 *   namespaces).
 * - Idempotent: a pod that has a container named `net-prober` already is left alone (reinvocation,
 *   a re-created copy of an injected pod, or the user's own container of that name).
 * - Pods the agent would hurt are skipped with a warning: hostNetwork (every such pod on a node
 *   would bind the same ports), a port the pod declares already, Windows pods.
 * - The readiness probe only says the agent's servers listen: a native sidecar's readiness is
 *   part of the pod's, so a probe that depended on the operator being reachable would take the
 *   user's pods out of their Services whenever the operator is down.
 * - No CPU limit by default: CFS throttling inflates the latencies the agent measures (a known
 *   pain of Goldpinger deployments). Memory is limited.
 */
import {
  fieldRefEnv, IN_POD_NODE_OPTIONS, podObstacle, type PodObject, projectedTokenVolume, type ResourceRequirements, restrictedSecurityContext, selectingPolicies, withNativeSidecar,
} from '../kube/webhook/sidecar-injection.ts';
import type { NetworkProber } from './api.ts';
import { proberPorts } from './api.ts';
import {
  AGENT_CONTAINER, AGENT_LOG_LEVEL_ANNOTATION, ENV, METRICS_PORT_NAME, PING_PORT_NAME, PROBER_ANNOTATION, SEED_INJECTED_ANNOTATION, SEED_INJECTED_VALUE,
  TOKEN_AUDIENCE, TOKEN_EXPIRATION_SECONDS, TOKEN_FILE, TOKEN_MOUNT_PATH, TOKEN_VOLUME,
} from './contract.ts';
import { INJECTED_LABEL, INJECTED_LABEL_VALUE } from './members.ts';

export type { PodObject, ResourceRequirements };

/** What the operator decides for every injected agent. */
export interface InjectionSettings {
  /** The agent image when the NetworkProber names none: the operator's own. */
  readonly defaultImage: string;
  /** `https://host:port` of the peer endpoint, as the agents reach it. */
  readonly peersUrl: string;
  /** PEM bundle the agents trust for the peer endpoint. */
  readonly caBundle: string;
  /** When the NetworkProber sets none. */
  readonly defaultResources: ResourceRequirements;
  /** Default `IfNotPresent`. */
  readonly imagePullPolicy?: 'Always' | 'IfNotPresent' | 'Never';
}

/** Requests and limits of an agent probing about ten peers: it measured ~59 MiB RSS with 100 (see the README's benchmarks). */
export const DEFAULT_AGENT_RESOURCES: ResourceRequirements = { requests: { cpu: '10m', memory: '64Mi' }, limits: { memory: '128Mi' } };

/** V8 sized for a small, steady heap (see {@link IN_POD_NODE_OPTIONS}). */
export const AGENT_NODE_OPTIONS = IN_POD_NODE_OPTIONS;

/** What to do with a pod being created. */
export type InjectionDecision =
  | { readonly kind: 'inject'; readonly pod: PodObject; readonly prober: NetworkProber; readonly warnings: readonly string[] }
  | { readonly kind: 'skip'; readonly reason: SkipReason; readonly warnings: readonly string[] };

/** Why a pod is let through unchanged; the `reason` label of `crowsnest_prober_admissions_total`. */
export type SkipReason = 'not_selected' | 'already_injected' | 'container_name_taken' | 'host_network' | 'port_taken' | 'windows';

/**
 * The NetworkProbers of `namespace` that select a pod with `labels`, in name order (the first
 * one's agent is injected). Probers being deleted select nothing.
 */
export function selectingProbers(probers: readonly NetworkProber[], namespace: string, labels: Readonly<Record<string, string>> | undefined): NetworkProber[] {
  return selectingPolicies(probers, namespace, labels, (p) => p.spec?.podSelector);
}

/**
 * Decides for `pod`, created in `namespace`, given the NetworkProbers of the cluster (or of the
 * namespace). Returns the pod to store, or why it stays as it is. Never changes `pod`.
 */
export function decideInjection(pod: PodObject, namespace: string, probers: readonly NetworkProber[], settings: InjectionSettings): InjectionDecision {
  const warnings: string[] = [];
  const selecting = selectingProbers(probers, namespace, pod.metadata?.labels);
  const prober = selecting[0];
  if (!prober) return skip('not_selected');
  const proberName = prober.metadata?.name ?? '';
  if (selecting.length > 1) {
    warnings.push(`pod is selected by ${selecting.length} NetworkProbers (${selecting.map((p) => p.metadata?.name).join(', ')}); it gets the agent of ${proberName} only`);
  }

  const ports = proberPorts(prober.spec);
  const obstacle = podObstacle(pod, {
    container: AGENT_CONTAINER, ports: [ports.http, ports.prometheus], injector: `NetworkProber ${proberName}`, what: 'agent',
    portHint: 'set httpPort/httpPrometheusPort to free ports', injected: (p) => p.metadata?.annotations?.[SEED_INJECTED_ANNOTATION] === SEED_INJECTED_VALUE,
  }, warnings);
  if (obstacle) return skip(obstacle.reason, obstacle.warning);

  const agent = agentContainer(prober, ports, settings);
  if (pod.metadata?.annotations?.[AGENT_LOG_LEVEL_ANNOTATION] === 'debug') (agent['env'] as unknown[]).push({ name: 'CROWSNEST_LOG_LEVEL', value: 'debug' });
  const injected = withNativeSidecar(pod, agent, projectedTokenVolume(TOKEN_VOLUME, TOKEN_AUDIENCE, TOKEN_EXPIRATION_SECONDS), {
    annotations: { [SEED_INJECTED_ANNOTATION]: SEED_INJECTED_VALUE, [PROBER_ANNOTATION]: proberName },
    labels: { [INJECTED_LABEL]: INJECTED_LABEL_VALUE },
  });
  return { kind: 'inject', pod: injected, prober, warnings };

  function skip(reason: SkipReason, warning?: string): InjectionDecision {
    return { kind: 'skip', reason, warnings: warning ? [...warnings, warning] : warnings };
  }
}

/** The agent container (see the module comment for the choices). */
export function agentContainer(prober: NetworkProber, ports: { readonly http: number; readonly prometheus: number }, settings: InjectionSettings): Record<string, unknown> {
  return {
    name: AGENT_CONTAINER,
    image: prober.spec.agentImage ?? settings.defaultImage,
    imagePullPolicy: settings.imagePullPolicy ?? 'IfNotPresent',
    args: ['agent'],
    restartPolicy: 'Always',
    env: [
      { name: ENV.httpPort, value: String(ports.http) },
      { name: ENV.prometheusPort, value: String(ports.prometheus) },
      fieldRefEnv(ENV.podName, 'metadata.name'),
      fieldRefEnv(ENV.podNamespace, 'metadata.namespace'),
      fieldRefEnv(ENV.podIp, 'status.podIP'),
      fieldRefEnv(ENV.nodeName, 'spec.nodeName'),
      { name: ENV.proberName, value: prober.metadata?.name ?? '' },
      { name: ENV.peersUrl, value: settings.peersUrl },
      { name: ENV.caBundle, value: settings.caBundle },
      { name: ENV.tokenFile, value: TOKEN_FILE },
      { name: 'NODE_OPTIONS', value: AGENT_NODE_OPTIONS },
    ],
    ports: [
      { name: PING_PORT_NAME, containerPort: ports.http, protocol: 'TCP' },
      { name: METRICS_PORT_NAME, containerPort: ports.prometheus, protocol: 'TCP' },
    ],
    resources: structuredClone(prober.spec.resources ?? settings.defaultResources),
    securityContext: restrictedSecurityContext(),
    readinessProbe: { httpGet: { path: '/readyz', port: METRICS_PORT_NAME }, periodSeconds: 10, timeoutSeconds: 2, failureThreshold: 3 },
    volumeMounts: [{ name: TOKEN_VOLUME, mountPath: TOKEN_MOUNT_PATH, readOnly: true }],
    terminationMessagePolicy: 'FallbackToLogsOnError',
  };
}
