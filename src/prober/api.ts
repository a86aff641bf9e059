/**
 * The NetworkProber API (`crowsnest.dev/v1alpha1`, namespaced): which pods of its namespace get the
 * RTT agent, how the agent probes, and what the operator reports back. A manifest of
 * k8s-network-prober-operator works after changing only its `apiVersion`: the seed's fields keep
 * their names, and its ports written as strings (`httpPort: "8081"`) are accepted beside integers.
 *
 * The CRD in deploy/helm/crowsnest/crds/ is generated from this file (`make crds`).
 */
import { type ApiObject, type ApiSpec, type ApiStatus, defineApi } from '../kube/api/define.ts';
import {
  celIsDuration, conditions, duration, durationMs, labelSelector, portNumber, portValue, resourceRequirements, Type, withRules,
} from '../kube/api/schema.ts';

/** Defaults chosen to be unlikely in an application container: the agent shares the pod's network. */
export const DEFAULT_HTTP_PORT = 19080;
export const DEFAULT_PROMETHEUS_PORT = 19090;

const spec = withRules(Type.Object({
  podSelector: labelSelector({
    description: 'Pods of this namespace that get the prober agent. matchLabels and matchExpressions are both honoured; {} selects every pod of the namespace.',
  }),
  httpPort: Type.Optional(portNumber({ description: 'Port the agent answers probes on (GET /ping), 1-65535; an integer or a string of digits.', default: DEFAULT_HTTP_PORT })),
  httpPrometheusPort: Type.Optional(portNumber({ description: 'Port of the agent\'s /metrics (port name np-prometheus), 1-65535; an integer or a string of digits.', default: DEFAULT_PROMETHEUS_PORT })),
  pollingPeriod: Type.Optional(duration({ description: 'Time between two probes of the same peer (jittered), e.g. "10s".', min: '1s', max: '1h', default: '10s' })),
  timeout: Type.Optional(duration({ description: 'How long one probe may take before it counts as failed; shorter than pollingPeriod.', min: '10ms', max: '1m', default: '1s' })),
  neighbours: Type.Optional(Type.Integer({
    description: 'Peers each agent probes at most, chosen so that every pod is probed by someone: the cost grows as pods x neighbours, not pods squared.',
    minimum: 1, maximum: 1000, default: 10,
  })),
  agentImage: Type.Optional(withRules(Type.String({ description: 'Image of the agent container. Default: the operator\'s own image.', minLength: 1, maxLength: 1024 }), [{
    rule: "!self.matches('\\\\s')",
    message: 'must be an image reference without spaces, such as registry.example/crowsnest:0.1.0',
    check: (self) => !/\s/.test(self),
  }])),
  resources: Type.Optional(resourceRequirements({ description: 'CPU and memory of the agent container. Default: set by the operator.' })),
}, { description: 'What to probe and how.' }), [
  {
    rule: '!has(self.httpPort) || !has(self.httpPrometheusPort) || string(self.httpPort) != string(self.httpPrometheusPort)',
    message: 'httpPort and httpPrometheusPort must be different ports',
    fieldPath: '.httpPrometheusPort',
    check: (self) => self.httpPort === undefined || self.httpPrometheusPort === undefined || String(self.httpPort) !== String(self.httpPrometheusPort),
  },
  {
    rule: `!has(self.timeout) || !has(self.pollingPeriod) || !${celIsDuration('self.timeout')} || !${celIsDuration('self.pollingPeriod')} || duration(self.timeout) < duration(self.pollingPeriod)`,
    message: 'timeout must be shorter than pollingPeriod',
    fieldPath: '.timeout',
    check: (self) => self.timeout === undefined || self.pollingPeriod === undefined || !(durationMs(self.timeout) >= durationMs(self.pollingPeriod)),
  },
]);

/** The condition types of a NetworkProber's status. */
export const NetworkProberConditions = {
  /** True while the selected pods carry the agent and it probes. */
  ready: 'Ready',
  /** True while some probed pairs cannot reach each other. */
  degraded: 'Degraded',
} as const;

const count = (description: string) => Type.Optional(Type.Integer({ description, minimum: 0, format: 'int64' }));

const status = Type.Object({
  observedGeneration: count('The .metadata.generation this status was computed from.'),
  conditions: Type.Optional(conditions({ description: 'Ready: agents injected and probing. Degraded: some pairs of agents cannot reach each other.' })),
  injectedPods: count('Pods currently running the agent.'),
  reachablePairs: count('Probed pairs of pods whose last probe succeeded.'),
  unreachablePairs: count('Probed pairs of pods whose last probe failed.'),
}, { description: 'What the operator observed.' });

export const NetworkProberApi = defineApi({
  version: 'v1alpha1',
  kind: 'NetworkProber',
  plural: 'networkprobers',
  shortNames: ['np'],
  scope: 'Namespaced',
  description: 'Injects an agent into the selected pods of its namespace that measures the round-trip time between them and exports it as Prometheus histograms.',
  spec,
  status,
  printerColumns: [
    { name: 'Ready', type: 'string', jsonPath: '.status.conditions[?(@.type=="Ready")].status' },
    { name: 'Injected', type: 'integer', jsonPath: '.status.injectedPods', description: 'Pods running the agent.' },
    { name: 'Reachable', type: 'integer', jsonPath: '.status.reachablePairs', description: 'Pairs of pods that reach each other.' },
    { name: 'Unreachable', type: 'integer', jsonPath: '.status.unreachablePairs', description: 'Pairs of pods whose probes fail.' },
    { name: 'Period', type: 'string', jsonPath: '.spec.pollingPeriod', priority: 1 },
    { name: 'Age', type: 'date', jsonPath: '.metadata.creationTimestamp' },
  ],
});

export type NetworkProber = ApiObject<typeof NetworkProberApi>;
export type NetworkProberSpec = ApiSpec<typeof NetworkProberApi>;
export type NetworkProberStatus = ApiStatus<typeof NetworkProberApi>;

/** The agent's ports as numbers, whichever way the spec wrote them (defaults applied). */
export function proberPorts(spec: NetworkProberSpec): { readonly http: number; readonly prometheus: number } {
  return { http: portValue(spec.httpPort ?? DEFAULT_HTTP_PORT), prometheus: portValue(spec.httpPrometheusPort ?? DEFAULT_PROMETHEUS_PORT) };
}
