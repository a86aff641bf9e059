/**
 * Guard registered with the operator's manager: the caches it reads (GuardPolicies, pods of every
 * namespace slimmed to what the detectors need, PodDisruptionBudgets), and on the leader the guard
 * controller, fed by policy and pod changes and by the reports of the sidecars and log agents.
 */
import { join } from 'node:path';
import { TOKEN_AUDIENCE } from './contract.ts';
import { GuardEndpoint } from './endpoint.ts';
import { TokenReviewer } from '../kube/auth/token-review.ts';
import { INDEX_NAMESPACE, type IndexFunc, namespaceIndex, type StoreHandler } from '../kube/runtime/cache.ts';
import { type Clock, realClock } from '../kube/clock.ts';
import { FIELD_MANAGERS } from '../kube/objects/labels.ts';
import { Resources } from '../kube/objects/resources.ts';
import { generationChanged, StatusWriter } from '../kube/objects/status.ts';
import type { Manager } from '../kube/runtime/manager.ts';
import { type GuardPolicy, GuardPolicyApi, type GuardPolicyStatus } from './api.ts';
import { GuardController, POD_DISRUPTION_BUDGETS, type PodDisruptionBudgetLike } from './controller.ts';
import type { GuardOptions } from './options.ts';
import { type GuardPod, guardPod } from './pods.ts';
import { GuardSignals } from './signals.ts';
import { guardNode, type NodeLike } from './taint.ts';

export const GUARD_CONTROLLER = 'guard';

/** Pod changes are folded into one reconcile of their policy per this long (a rollout is many events). */
export const POD_CHANGE_BATCH_MS = 500;

const byNamespace = { [INDEX_NAMESPACE]: namespaceIndex };

export interface GuardRuntime {
  readonly controller: GuardController;
  readonly signals: GuardSignals;
  readonly endpoint: GuardEndpoint;
}

const INDEX_NODE = 'guard-node';

/**
 * Registers guard; `certDir` is the directory of the serving certificate its endpoint shares with
 * the webhook server (`--webhook-cert-dir`).
 */
export function registerGuard(manager: Manager, options: GuardOptions, certDir: string, clock: Clock = realClock, endpointHost?: string): GuardRuntime {
  const logger = manager.logger.child?.({ controller: GUARD_CONTROLLER }) ?? manager.logger;
  const policies = manager.informer<GuardPolicy>({ type: GuardPolicyApi.type, indexers: byNamespace as Record<string, IndexFunc<GuardPolicy>> });
  const pods = manager.informer<GuardPod>({
    type: Resources.pods,
    transform: { name: 'guard-pod', apply: guardPod },
    indexers: { ...byNamespace, [INDEX_NODE]: (pod: GuardPod) => (pod.spec.nodeName ? [pod.spec.nodeName] : []) } as unknown as Record<string, IndexFunc<GuardPod>>,
  });
  const budgets = manager.informer<PodDisruptionBudgetLike>({ type: POD_DISRUPTION_BUDGETS, indexers: byNamespace as Record<string, IndexFunc<PodDisruptionBudgetLike>> });
  // Nodes for the Preventive step's taint: only what its rails and its expiry read (a node's image list is large).
  const nodes = manager.informer<NodeLike>({ type: Resources.nodes, transform: { name: 'guard-node', apply: guardNode } });
  const signals = new GuardSignals();
  const controller = new GuardController({
    policy: (namespace, name) => policies.store.getByName(namespace, name),
    // Guard never acts in the operator's own namespace.
    podsIn: (namespace) => (namespace === options.namespace ? [] : pods.store.byIndex(INDEX_NAMESPACE, namespace)),
    budgetsIn: (namespace) => budgets.store.byIndex(INDEX_NAMESPACE, namespace),
    nodes: () => nodes.store.list(),
    api: manager.client,
    writer: manager.writer(FIELD_MANAGERS.guard),
    statusWriter: new StatusWriter<GuardPolicyStatus>({ client: manager.client, type: GuardPolicyApi.type, fieldManager: FIELD_MANAGERS.guard }),
    signals,
    recorder: manager.recorder,
    clock,
    registry: manager.registry,
    logger,
  });
  const handle = manager.addController<string>({ name: GUARD_CONTROLLER, reconcile: controller.reconcile });
  handle.watch(policies, policyHandler((key) => handle.enqueue(key)));
  handle.watch(pods, podHandler((pod) => GuardController.policiesFor(pod, policies.store.byIndex(INDEX_NAMESPACE, pod.metadata.namespace)), (key) => handle.enqueueAfter(key, POD_CHANGE_BATCH_MS)));

  let leading = false;
  const endpoint = new GuardEndpoint({
    ...(endpointHost !== undefined ? { host: endpointHost } : {}),
    port: options.port,
    certFile: join(certDir, 'tls.crt'),
    keyFile: join(certDir, 'tls.key'),
    reviewer: new TokenReviewer({ client: manager.client, clock, audience: TOKEN_AUDIENCE }),
    pod: (namespace, name) => pods.store.getByName(namespace, name),
    podsOnNode: (node) => pods.store.byIndex(INDEX_NODE, node),
    policiesIn: (namespace) => policies.store.byIndex(INDEX_NAMESPACE, namespace),
    signals,
    logAgentServiceAccount: options.logAgentServiceAccount,
    reportIntervalMs: options.reportIntervalMs,
    isLeading: () => leading,
    onReport: (key) => handle.enqueue(key),
    clock,
    logger,
    registry: manager.registry,
  });
  manager.addRunnable({
    name: 'guard-endpoint', needLeaderElection: false,
    start: async (signal) => {
      await endpoint.start();
      try {
        await aborted(signal);
      } finally {
        await endpoint.stop();
      }
    },
  });
  manager.addReadinessCheck(endpoint.readinessCheck());
  // Reports are kept by the leader only (it holds the detection state).
  manager.addRunnable({
    name: 'guard-reports', needLeaderElection: true,
    start: async (signal) => {
      leading = true;
      try {
        await aborted(signal);
      } finally {
        leading = false;
      }
    },
  });
  return { controller, signals, endpoint };
}

function aborted(signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) resolve();
    else signal.addEventListener('abort', () => resolve(), { once: true });
  });
}

/** GuardPolicy changes: created, spec edited (not our status writes), deleted. */
export function policyHandler(enqueue: (key: string) => void): StoreHandler<GuardPolicy> {
  const key = (p: GuardPolicy): string => `${p.metadata?.namespace ?? ''}/${p.metadata?.name ?? ''}`;
  return {
    onAdd: (p) => enqueue(key(p)),
    onUpdate: (old, current) => {
      if (generationChanged(old, current) || Boolean(old.metadata?.deletionTimestamp) !== Boolean(current.metadata?.deletionTimestamp)) enqueue(key(current));
    },
    onDelete: (p) => enqueue(key(p)),
  };
}

/** Pod changes: the policies that select the pod (before or after the change) or quarantined it. */
export function podHandler(policiesFor: (pod: GuardPod) => readonly string[], enqueue: (key: string) => void): StoreHandler<GuardPod> {
  const changed = (...versions: GuardPod[]): void => {
    for (const key of new Set(versions.flatMap(policiesFor))) enqueue(key);
  };
  return {
    onAdd: (pod) => changed(pod),
    onUpdate: (old, current) => changed(old, current),
    onDelete: (pod) => changed(pod),
  };
}
