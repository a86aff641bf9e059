/**
 * The pod-mutating admission handler: on pod CREATE, the NetworkProbers of the pod's namespace
 * come from the informer cache (never a LIST per request, as the seed did) and
 * {@link decideInjection} decides. Served on every replica with failurePolicy Ignore: if the
 * operator is down or slow, pods are created without the agent rather than not at all.
 *
 * Pods of excluded namespaces (kube-system, kube-node-lease, the operator's own) are let through
 * here too, whatever the webhook configuration's namespaceSelector says: a wrong selector must
 * not inject into the control plane. The handler around the decision is every injector's
 * (kube/webhook/sidecar-injection.ts).
 */
import type { Registry } from 'prom-client';
import type { Logger } from '../kube/logger-type.ts';
import type { AdmissionHandler } from '../kube/webhook/server.ts';
import { type AdmissionFlowOutcome, podInjectionWebhook } from '../kube/webhook/sidecar-injection.ts';
import type { NetworkProber } from './api.ts';
import { decideInjection, type InjectionSettings, type SkipReason } from './inject.ts';

export const WEBHOOK_NAME = 'prober-inject';
export const WEBHOOK_PATH = '/mutate-pods';

export interface ProberWebhookOptions {
  /** The NetworkProbers of a namespace, from the cache. */
  readonly probersIn: (namespace: string) => readonly NetworkProber[];
  /** The settings, or why there are none yet (then pods are let through with a warning). */
  readonly settings: () => InjectionSettings | string;
  /** Besides kube-system, kube-node-lease and kube-public: the operator's own namespace. */
  readonly excludedNamespaces: readonly string[];
  readonly registry?: Registry;
  readonly logger?: Logger;
}

/** Outcomes of `crowsnest_prober_admissions_total{result}`. */
export type AdmissionOutcome = AdmissionFlowOutcome | SkipReason;

export function proberWebhook(options: ProberWebhookOptions): AdmissionHandler {
  return podInjectionWebhook({
    name: WEBHOOK_NAME,
    path: WEBHOOK_PATH,
    policiesIn: options.probersIn,
    settings: options.settings,
    decide: (pod, namespace, probers, settings: InjectionSettings) => {
      const decision = decideInjection(pod, namespace, probers, settings);
      return decision.kind === 'skip' ? decision : { kind: 'inject', pod: decision.pod, policy: decision.prober.metadata?.name ?? '', warnings: decision.warnings };
    },
    excludedNamespaces: options.excludedNamespaces,
    metric: {
      name: 'crowsnest_prober_admissions_total',
      help: 'Pod creations the prober webhook decided on, by result: injected, or why not (not_selected, already_injected, port_taken, ...).',
    },
    notInjected: 'the NetworkProber agent was not injected',
    ...(options.registry ? { registry: options.registry } : {}),
    ...(options.logger ? { logger: options.logger } : {}),
  });
}
