/**
 * Guard's flags (`crowsnest operator --guard-*`), resolved into its {@link GuardOptions}.
 */
import { flag, type FlagResolver } from '../flags.ts';
import { parseBool, parseHttpsUrl, parseNonEmpty, parseObjectName, parsePort, parsePositiveDurationMs, parseResourceRequirements } from '../flag-values.ts';
import type { GuardOptions } from './options.ts';

export const guardFlags = {
  port: flag({
    name: 'guard-port',
    valueName: '<port>',
    description: 'guard: port of the HTTPS endpoint health sidecars and log agents report to, on every replica',
    default: '9445',
    parse: parsePort,
  }),
  url: flag({
    name: 'guard-url',
    valueName: '<url>',
    description: 'guard: how sidecars and log agents reach that endpoint',
    defaultText: 'https://<webhook-service>.<namespace>.svc:<guard-port>',
    parse: parseHttpsUrl,
  }),
  logAgentServiceAccount: flag({
    name: 'guard-log-agent-service-account',
    valueName: '<name>',
    description: 'guard: the ServiceAccount (in the operator\'s namespace) of the node log agents, the only one whose log batches are taken',
    default: 'crowsnest-logs-agent',
    parse: parseObjectName,
  }),
  reportInterval: flag({
    name: 'guard-report-interval',
    valueName: '<duration>',
    description: 'guard: how often sidecars and log agents are asked to report',
    default: '10s',
    parse: parsePositiveDurationMs,
  }),
  sidecarInjection: flag({
    name: 'guard-sidecar-injection',
    valueName: '<bool>',
    description: 'guard: inject the health sidecar into the pods a GuardPolicy with a health or undeclaredPort detector selects (namespaces labelled sidecar-injection: enabled)',
    default: 'true',
    parse: parseBool,
  }),
  sidecarWebhookConfiguration: flag({
    name: 'guard-sidecar-webhook-configuration',
    valueName: '<name>',
    description: 'guard: the MutatingWebhookConfiguration of the sidecar injection, whose caBundle the leader keeps (self-managed certificates)',
    default: 'crowsnest-guard-sidecar',
    parse: parseObjectName,
  }),
  sidecarImage: flag({
    name: 'guard-sidecar-image',
    valueName: '<image>',
    description: 'guard: the image of the injected health sidecar (the chart passes its own image); without one, pods are admitted without the sidecar',
    defaultText: 'none',
    parse: parseNonEmpty,
  }),
  sidecarResources: flag({
    name: 'guard-sidecar-resources',
    valueName: '<json>',
    description: 'guard: the health sidecar container\'s requests and limits',
    // The same as guard's DEFAULT_SIDECAR_RESOURCES (a unit test holds them equal); spelled here so
    // --help needs no import of the injector.
    default: '{"requests":{"cpu":"5m","memory":"64Mi"},"limits":{"memory":"128Mi"}}',
    parse: parseResourceRequirements,
  }),
};

/** What the operator resolved before guard's own flags. */
export interface GuardContext {
  readonly namespace: string;
  /** The Service in front of the operator's HTTPS endpoints. */
  readonly webhookService: string;
}

/** @throws OptionError naming the offending flag. */
export function resolveGuardOptions(flags: FlagResolver, context: GuardContext): GuardOptions {
  const port = flags.get(guardFlags.port);
  return {
    namespace: context.namespace,
    port,
    url: flags.get(guardFlags.url, `https://${context.webhookService}.${context.namespace}.svc:${port}`),
    logAgentServiceAccount: `${context.namespace}/${flags.get(guardFlags.logAgentServiceAccount)}`,
    reportIntervalMs: flags.get(guardFlags.reportInterval),
    ...(flags.get(guardFlags.sidecarInjection)
      ? { sidecar: { webhookConfiguration: flags.get(guardFlags.sidecarWebhookConfiguration), image: flags.get(guardFlags.sidecarImage), resources: flags.get(guardFlags.sidecarResources) } }
      : {}),
  };
}
