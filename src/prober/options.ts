/**
 * The prober's settings as `crowsnest operator` resolves them (flags `--prober-*`), resolved by
 * ./flags.ts.
 */
import type { ResourceRequirements } from './inject.ts';

export interface ProberOptions {
  /** The operator's namespace (`$POD_NAMESPACE`): never injected. */
  readonly namespace: string;
  /** The MutatingWebhookConfiguration whose caBundle the operator keeps (self-managed certificates). */
  readonly webhookConfiguration: string;
  /** Port of the agents' peer endpoint (HTTPS) on every replica. */
  readonly peerPort: number;
  /** How agents reach the peer endpoint: `https://<service>.<namespace>.svc:<peerPort>` by default. */
  readonly peersUrl: string;
  /** The agent's image; without one, pods are admitted without the agent (and a warning says why). */
  readonly agentImage: string | undefined;
  /** The agent's resources when a NetworkProber sets none. */
  readonly agentResources: ResourceRequirements;
}
