/**
 * Guard's flags (`crowsnest operator --guard-*`), resolved into its {@link GuardOptions}.
 */
import { flag, type FlagResolver } from '../flags.ts';
import { parseHttpsUrl, parseObjectName, parsePort, parsePositiveDurationMs } from '../flag-values.ts';
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
  };
}
