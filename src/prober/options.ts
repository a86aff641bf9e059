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

const QUANTITY = /^[+]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][-+]?[0-9]+|[KMGTPE]i?|[mkMGTPE]|[numkMGTPE]?)?$/;

/**
 * `{"requests":{"cpu":"10m","memory":"64Mi"},"limits":{"memory":"128Mi"}}`, checked: only
 * `requests` and `limits`, each a map of resource names to Kubernetes quantities.
 */
export function parseResourceRequirements(text: string): ResourceRequirements {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw new Error(`must be JSON like {"requests":{"cpu":"10m","memory":"64Mi"},"limits":{"memory":"128Mi"}}`);
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new Error('must be a JSON object with requests and/or limits');
  const result: Record<string, Record<string, string>> = {};
  for (const [section, entries] of Object.entries(value)) {
    if (section !== 'requests' && section !== 'limits') throw new Error(`unknown key ${JSON.stringify(section)}: only requests and limits`);
    if (typeof entries !== 'object' || entries === null || Array.isArray(entries)) throw new Error(`${section} must be an object of resource: quantity`);
    const quantities: Record<string, string> = {};
    for (const [resource, quantity] of Object.entries(entries as Record<string, unknown>)) {
      const spelled = typeof quantity === 'number' ? String(quantity) : quantity;
      if (typeof spelled !== 'string' || !QUANTITY.test(spelled)) throw new Error(`${section}.${resource}: ${JSON.stringify(quantity)} is not a Kubernetes quantity (e.g. 10m, 64Mi)`);
      quantities[resource] = spelled;
    }
    result[section] = quantities;
  }
  return result;
}
