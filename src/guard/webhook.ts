/**
 * Guard's pod-mutating admission handler: on pod CREATE, the GuardPolicies of the pod's namespace
 * come from the manager's informer cache (never a LIST per request) and
 * {@link decideSidecarInjection} decides. Served on every replica, failurePolicy Ignore: with the
 * operator down or slow, pods are created without the sidecar rather than not at all. The
 * namespaces it is called for are those labelled `sidecar-injection: enabled` (the policy
 * framework's label; the chart's MutatingWebhookConfiguration selects them), never the control
 * plane's nor the operator's, whatever that configuration says.
 */
import type { AdmissionHandler } from '../kube/webhook/server.ts';
import { type AdmissionFlowOutcome, type InjectorWebhookOptions, podInjectionWebhook } from '../kube/webhook/sidecar-injection.ts';
import { decideSidecarInjection, type SelectingGuardPolicy, type SidecarInjectionSettings, type SidecarSkipReason } from './inject.ts';

export const GUARD_WEBHOOK_NAME = 'guard-inject';
export const GUARD_WEBHOOK_PATH = '/mutate-pods-guard';

/** The GuardPolicies of a namespace come from the manager's cache; see {@link InjectorWebhookOptions}. */
export type GuardWebhookOptions = InjectorWebhookOptions<SelectingGuardPolicy, SidecarInjectionSettings>;

/** Outcomes of `crowsnest_guard_sidecar_admissions_total{result}`. */
export type GuardAdmissionOutcome = AdmissionFlowOutcome | SidecarSkipReason;

export function guardWebhook(options: GuardWebhookOptions): AdmissionHandler {
  return podInjectionWebhook({
    ...options,
    name: GUARD_WEBHOOK_NAME,
    path: GUARD_WEBHOOK_PATH,
    decide: decideSidecarInjection,
    metric: {
      name: 'crowsnest_guard_sidecar_admissions_total',
      help: 'Pod creations guard\'s webhook decided on, by result: injected, or why not (not_selected, sidecar_not_needed, already_injected, host_network, port_taken, ...).',
    },
    notInjected: 'the guard health sidecar was not injected',
  });
}
