/**
 * The prober's flags (`crowsnest operator --prober-*`), resolved into its {@link ProberOptions}.
 */
import { flag, type FlagResolver } from '../flags.ts';
import { parseHttpsUrl, parseNonEmpty, parseObjectName, parsePort, parseResourceRequirements } from '../flag-values.ts';
import type { ProberOptions } from './options.ts';

export const proberFlags = {
  webhookConfiguration: flag({
    name: 'prober-webhook-configuration',
    valueName: '<name>',
    description: 'prober: its MutatingWebhookConfiguration, whose caBundle the leader keeps (self-managed certificates)',
    default: 'crowsnest-prober',
    parse: parseObjectName,
  }),
  peerPort: flag({
    name: 'prober-peer-port',
    valueName: '<port>',
    description: 'prober: port of the HTTPS endpoint agents learn their peers from, on every replica',
    default: '9444',
    parse: parsePort,
  }),
  peersUrl: flag({
    name: 'prober-peers-url',
    valueName: '<url>',
    description: 'prober: how agents reach that endpoint',
    defaultText: 'https://<webhook-service>.<namespace>.svc:<prober-peer-port>',
    parse: parseHttpsUrl,
  }),
  agentImage: flag({
    name: 'prober-agent-image',
    valueName: '<image>',
    description: 'prober: the image of the injected agent when a NetworkProber names none (the chart passes its own image); without one, pods are admitted without the agent',
    defaultText: 'none',
    parse: parseNonEmpty,
  }),
  agentResources: flag({
    name: 'prober-agent-resources',
    valueName: '<json>',
    description: 'prober: the agent container\'s requests and limits when a NetworkProber sets none',
    // The same as the prober's DEFAULT_AGENT_RESOURCES (a unit test holds them equal); spelled here
    // so --help needs no import of the injector.
    default: '{"requests":{"cpu":"10m","memory":"64Mi"},"limits":{"memory":"128Mi"}}',
    parse: parseResourceRequirements,
  }),
};

/** What the operator resolved before the prober's own flags: its namespace and Service. */
export type ProberContext = Pick<ProberOptions, 'namespace'> & {
  /** The Service in front of the webhook server and the peer endpoint. */
  readonly webhookService: string;
};

/** @throws OptionError naming the offending flag. */
export function resolveProberOptions(flags: FlagResolver, context: ProberContext): ProberOptions {
  const peerPort = flags.get(proberFlags.peerPort);
  return {
    namespace: context.namespace,
    webhookConfiguration: flags.get(proberFlags.webhookConfiguration),
    peerPort,
    peersUrl: flags.get(proberFlags.peersUrl, `https://${context.webhookService}.${context.namespace}.svc:${peerPort}`),
    agentImage: flags.get(proberFlags.agentImage),
    agentResources: flags.get(proberFlags.agentResources),
  };
}
