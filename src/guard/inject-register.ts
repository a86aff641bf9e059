/**
 * Guard's sidecar injection registered with the operator's manager, on every replica: the
 * GuardPolicy cache (the manager shares it with guard's controller) and the admission handler
 * on the webhook server. The CA bundle handed to sidecars is the webhook server's `ca.crt` — the
 * same CA that signs the operator's serving certificate, which guard's endpoint presents.
 */
import { join } from 'node:path';
import { type Clock, realClock } from '../kube/clock.ts';
import { INDEX_NAMESPACE, type IndexFunc, namespaceIndex } from '../kube/runtime/cache.ts';
import type { Manager } from '../kube/runtime/manager.ts';
import type { AdmissionHandler } from '../kube/webhook/server.ts';
import type { ResourceRequirements } from '../kube/webhook/sidecar-injection.ts';
import { WatchedPemFile } from '../kube/webhook/watched-pem.ts';
import { type GuardPolicy, GuardPolicyApi } from './api.ts';
import type { SidecarInjectionSettings } from './inject.ts';
import { guardWebhook } from './webhook.ts';

export interface SidecarInjectionOptions {
  /** The operator's namespace: never injected. */
  readonly namespace: string;
  /** The webhook server's certificate directory (`--webhook-cert-dir`), holding `ca.crt`. */
  readonly certDir: string;
  /** The sidecar's image (the operator's own); without one, pods are admitted without it, with a warning. */
  readonly image: string | undefined;
  /** `https://host:port` of guard's endpoint as pods reach it. */
  readonly signalsUrl: string;
  readonly metricsPort?: number;
  readonly resources?: ResourceRequirements;
  readonly imagePullPolicy?: SidecarInjectionSettings['imagePullPolicy'];
  /** Go durations; default the sidecar's (10s, 2s). */
  readonly probePeriod?: string;
  readonly probeTimeout?: string;
}

const byNamespace = { [INDEX_NAMESPACE]: namespaceIndex } as Record<string, IndexFunc<GuardPolicy>>;

/** Registers the injection webhook; returns its handler. */
export function registerSidecarInjection(manager: Manager, options: SidecarInjectionOptions, clock: Clock = realClock): AdmissionHandler {
  const logger = manager.logger.child?.({ webhook: 'guard-inject' }) ?? manager.logger;
  const policies = manager.informer<GuardPolicy>({ type: GuardPolicyApi.type, indexers: byNamespace });
  const caFile = join(options.certDir, 'ca.crt');
  const caBundle = new WatchedPemFile(caFile);
  if (!options.image) logger.warn({}, 'no sidecar image: pods are admitted without guard\'s health sidecar');
  const { namespace: _, certDir: __, image, ...settings } = options;
  const handler = guardWebhook({
    policiesIn: (namespace) => policies.store.byIndex(INDEX_NAMESPACE, namespace),
    settings: () => {
      if (!image) return 'the operator has no sidecar image';
      const bundle = caBundle.read(clock.now());
      if (!bundle) return `the operator has no CA bundle (${caFile}) to give the sidecar yet`;
      return { ...settings, image, caBundle: bundle };
    },
    excludedNamespaces: [options.namespace],
    registry: manager.registry,
    logger,
  });
  manager.addWebhook(handler);
  return handler;
}
