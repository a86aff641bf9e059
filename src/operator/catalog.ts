/**
 * The capabilities `crowsnest operator` can run, in start order. Kept free of heavy imports so the
 * CLI can list and validate `--controllers` without loading the runtime: each entry loads its code
 * lazily, then registers what it needs (informers, controllers, webhooks, servers, checks) with
 * the manager.
 */
import type { Manager } from '../kube/runtime/manager.ts';
import type { OperatorOptions } from './options.ts';

export interface ControllerDefinition {
  /** Name used in `--controllers`, logs and metric labels. */
  readonly name: string;
  /** One line for `--help`. */
  readonly description: string;
  /**
   * It serves the API server or pods (an admission webhook, an endpoint agents call), so it only
   * works where they reach the operator: the default `--controllers` of an operator run by hand,
   * outside a pod, leaves it out (kubebuilder's operators skip their webhooks locally alike).
   */
  readonly inClusterOnly?: boolean;
  /**
   * The MutatingWebhookConfigurations it serves, whose caBundle the operator keeps equal to its
   * self-managed CA (src/operator/webhook-certificates.ts).
   */
  readonly webhookConfigurations?: (options: OperatorOptions) => readonly string[];
  /**
   * Loads the capability and returns its registration, called once before the manager runs.
   * `options` are the operator's; a capability reads its own section of them.
   */
  readonly load: () => Promise<(manager: Manager, options: OperatorOptions) => void>;
}

/** Every capability, in start order. Capabilities add theirs here as they land. */
export const controllerCatalog: readonly ControllerDefinition[] = [
  {
    name: 'logaccess',
    description: 'a Role allowing pods/log on exactly the pods of each opted-in workload (podlogreader-affiliate: enable)',
    load: async () => {
      const { registerLogAccess } = await import('../logaccess/controller.ts');
      return (manager, options) => registerLogAccess(manager, options.logaccess);
    },
  },
  {
    name: 'prober',
    inClusterOnly: true,
    description: 'NetworkProber: injects an RTT agent into the pods a NetworkProber selects, serves their peers, keeps its status',
    webhookConfigurations: (options) => [options.prober.webhookConfiguration],
    load: async () => {
      const { registerProber } = await import('../prober/register.ts');
      return (manager, options) => void registerProber(manager, options.prober, options.webhookCertDir);
    },
  },
  {
    name: 'guard',
    inClusterOnly: true,
    webhookConfigurations: (options) => (options.guard.sidecar ? [options.guard.sidecar.webhookConfiguration] : []),
    description: 'GuardPolicy: detects crash loops, OOM kills, failing health checks, error logs, anomalies and undeclared ports in the pods a policy selects, and answers with Events, quarantine, isolation, preventive restarts or eviction, within guard rails',
    load: async () => {
      const [{ registerGuard }, { registerSidecarInjection }] = await Promise.all([import('../guard/register.ts'), import('../guard/inject-register.ts')]);
      return (manager, options) => {
        registerGuard(manager, options.guard, options.webhookCertDir);
        const sidecar = options.guard.sidecar;
        if (sidecar) {
          registerSidecarInjection(manager, {
            namespace: options.guard.namespace, certDir: options.webhookCertDir, image: sidecar.image, signalsUrl: options.guard.url, resources: sidecar.resources,
          });
        }
      };
    },
  },
];
