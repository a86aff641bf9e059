/**
 * Guard's settings as `crowsnest operator` resolves them (flags `--guard-*`, ./flags.ts).
 */
import type { ResourceRequirements } from '../flag-values.ts';

export interface GuardOptions {
  /** The operator's namespace (`$POD_NAMESPACE`): guard never acts on pods there. */
  readonly namespace: string;
  /** Port of the guard endpoint (HTTPS, every replica) the sidecars and log agents report to. */
  readonly port: number;
  /** How in-pod parts reach the endpoint: `https://<service>.<namespace>.svc:<port>` by default. */
  readonly url: string;
  /** The node log agent's ServiceAccount, `namespace/name`: the only one whose log batches are taken. */
  readonly logAgentServiceAccount: string;
  /** Milliseconds between two reports a sidecar or log agent is asked to keep. */
  readonly reportIntervalMs: number;
  /** The health sidecar's injection; undefined: no injection (`--guard-sidecar-injection=false`). */
  readonly sidecar?: GuardSidecarOptions;
}

export interface GuardSidecarOptions {
  /** The injection's MutatingWebhookConfiguration, whose caBundle the operator keeps. */
  readonly webhookConfiguration: string;
  /** The sidecar's image; without one, pods are admitted without it (and a warning says why). */
  readonly image: string | undefined;
  readonly resources: ResourceRequirements;
}
