/**
 * The prober registered with the operator's manager: the caches it reads (NetworkProbers and
 * the pods it injected), the admission webhook and the peer endpoint on every replica, and on the
 * leader the status controller and the keeping of agents' reports. The webhook certificate (and
 * the caBundle of the prober's webhook configuration, which its catalog entry names) is the
 * operator's: src/operator/webhook-certificates.ts.
 */
import { INDEX_NAMESPACE, type IndexFunc, namespaceIndex } from '../kube/runtime/cache.ts';
import type { Clock } from '../kube/clock.ts';
import { realClock } from '../kube/clock.ts';
import type { Manager } from '../kube/runtime/manager.ts';
import { Resources } from '../kube/objects/resources.ts';
import { type NetworkProber, NetworkProberApi } from './api.ts';
import { INJECTED_SELECTOR, type SlimPod, slimPod } from './members.ts';
import type { ProberOptions } from './options.ts';
import { ProberRuntime } from './runtime.ts';

export const PROBER_CONTROLLER = 'prober';

const byNamespace = { [INDEX_NAMESPACE]: namespaceIndex } as Record<string, IndexFunc<NetworkProber>>;

/** Registers the prober; `certDir` is the webhook server's certificate directory (`--webhook-cert-dir`). */
export function registerProber(manager: Manager, options: ProberOptions, certDir: string, clock: Clock = realClock): ProberRuntime {
  const logger = manager.logger.child?.({ controller: PROBER_CONTROLLER }) ?? manager.logger;
  const probers = manager.informer<NetworkProber>({ type: NetworkProberApi.type, indexers: byNamespace });
  const pods = manager.informer<SlimPod>({
    type: Resources.pods,
    labelSelector: INJECTED_SELECTOR,
    transform: { name: 'prober-slim-pod', apply: slimPod },
    indexers: byNamespace as unknown as Record<string, IndexFunc<SlimPod>>,
  });
  if (!options.agentImage) logger.warn({}, 'no agent image (--prober-agent-image): pods are admitted without the agent');

  const runtime = new ProberRuntime(
    { client: manager.client, probers, pods, clock, registry: manager.registry, recorder: manager.recorder, logger },
    {
      namespace: options.namespace, certDir, peerPort: options.peerPort, peersUrl: options.peersUrl,
      ...(options.agentImage ? { agentImage: options.agentImage } : {}),
      agentResources: options.agentResources,
    },
  );
  manager.addWebhook(runtime.webhook);
  manager.addRunnable({ name: 'prober-peer-endpoint', needLeaderElection: false, start: (signal) => runtime.serve(signal) });
  manager.addReadinessCheck(runtime.peerServer.readinessCheck());

  const controller = manager.addController<string>({ name: PROBER_CONTROLLER, reconcile: runtime.reconciler.reconcile });
  const handlers = runtime.controllerHandlers(controller);
  controller.watch(probers, handlers.probers);
  controller.watch(pods, handlers.pods);
  manager.addRunnable({ name: 'prober-reports', needLeaderElection: true, start: (signal) => runtime.lead(signal, (key) => controller.enqueue(key)) });

  return runtime;
}
