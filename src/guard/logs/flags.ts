/**
 * The flags of `crowsnest logs-agent`, the node log agent the chart runs as a DaemonSet. Each is
 * also settable as `CROWSNEST_<FLAG>`; the chart sets the node name from the downward API and the
 * rest from `guard.logsAgent` values.
 *
 * Cheap to import (`crowsnest logs-agent --help` loads it): no agent, no runtime.
 */
import { flag, FlagResolver, OptionError, type Flag, type FlagSources, type FlagValue } from '../../flags.ts';
import { asString, parseByteSize, parseHttpsUrl, parseNonEmpty } from '../../flag-values.ts';
import { TOKEN_FILE } from '../contract.ts';

function parseBindAddress(value: FlagValue): string {
  const text = asString(value).trim();
  if (text === '0') return text;
  if (!/^(\[[0-9a-fA-F:.]+\]|[^:\s]*):\d{1,5}$/.test(text) || Number(text.slice(text.lastIndexOf(':') + 1)) > 65_535) throw new Error('must be host:port, :port, or 0 (off)');
  return text;
}

export const logsAgentFlags = {
  guardUrl: flag({ name: 'guard-url', valueName: '<url>', description: "the operator's guard endpoint, https://host:port (batches go to POST /v1/guard/logs)", parse: parseHttpsUrl }),
  guardCaFile: flag({ name: 'guard-ca-file', valueName: '<file>', description: 'PEM bundle trusted for the guard endpoint (else CROWSNEST_GUARD_CA holds the PEM itself)', parse: parseNonEmpty }),
  guardTokenFile: flag({ name: 'guard-token-file', valueName: '<file>', description: 'projected ServiceAccount token (audience crowsnest.dev/guard), read again for every batch', default: TOKEN_FILE, parse: parseNonEmpty }),
  nodeName: flag({ name: 'node-name', valueName: '<node>', description: 'the node this agent runs on (the downward API spec.nodeName)', parse: parseNonEmpty }),
  podLogsDir: flag({ name: 'pod-logs-dir', valueName: '<dir>', description: "the kubelet's pod log directory as mounted", default: '/var/log/pods', parse: parseNonEmpty }),
  stateDir: flag({ name: 'state-dir', valueName: '<dir>', description: 'where cursors and the pending batch are kept; must outlive the pod (a hostPath)', default: '/var/lib/crowsnest/logs-agent', parse: parseNonEmpty }),
  batchSize: flag({ name: 'batch-size', valueName: '<bytes>', description: 'log bytes read per batch, over all containers; more is read in the next batch, sent at once', default: '8Mi', parse: parseByteSize }),
  metricsBindAddress: flag({ name: 'metrics-bind-address', valueName: '<addr>', description: 'serve /metrics, /healthz and /readyz on this address; 0 turns it off', default: ':19092', parse: parseBindAddress }),
  logApiBindAddress: flag({
    name: 'log-api-bind-address', valueName: '<addr>',
    description: 'serve the log API for people (HTTPS, GET /v1/namespaces/<ns>/pods/<pod>/log, for callers the API server allows get pods/log) on this address; 0 turns it off',
    default: '0', parse: parseBindAddress,
  }),
  logApiTlsCertFile: flag({ name: 'log-api-tls-cert-file', valueName: '<file>', description: "the log API's serving certificate (PEM)", parse: parseNonEmpty }),
  logApiTlsKeyFile: flag({ name: 'log-api-tls-key-file', valueName: '<file>', description: "the log API's private key (PEM)", parse: parseNonEmpty }),
};

export const logsAgentFlagList: readonly Flag<unknown>[] = Object.values(logsAgentFlags);

export interface LogsAgentCliOptions {
  readonly guardUrl: string;
  /** PEM, from the file or the environment. */
  readonly guardCa: { readonly file: string } | { readonly pem: string };
  readonly tokenFile: string;
  readonly nodeName: string;
  readonly podLogsDir: string;
  readonly stateDir: string;
  readonly batchBytes: number;
  readonly metricsBindAddress: string;
  /** The log API, when it is served. */
  readonly logApi?: { readonly bindAddress: string; readonly certFile: string; readonly keyFile: string };
}

/** @throws OptionError naming the flag that is missing or wrong. */
export function resolveLogsAgentOptions(sources: FlagSources): LogsAgentCliOptions {
  const flags = new FlagResolver(sources);
  const guardUrl = flags.get(logsAgentFlags.guardUrl);
  if (!guardUrl) throw new OptionError('--guard-url', '--guard-url (or CROWSNEST_GUARD_URL) is required: where batches go');
  const nodeName = flags.get(logsAgentFlags.nodeName);
  if (!nodeName) throw new OptionError('--node-name', '--node-name (or CROWSNEST_NODE_NAME, from the downward API) is required: the operator checks it against the token');
  const caFile = flags.get(logsAgentFlags.guardCaFile);
  const caPem = sources.env['CROWSNEST_GUARD_CA'];
  if (!caFile && !caPem) throw new OptionError('--guard-ca-file', '--guard-ca-file (or CROWSNEST_GUARD_CA with the PEM) is required: the agent trusts no other CA for its token');
  const logApiBindAddress = flags.get(logsAgentFlags.logApiBindAddress);
  let logApi: LogsAgentCliOptions['logApi'];
  if (logApiBindAddress !== '0') {
    const certFile = flags.get(logsAgentFlags.logApiTlsCertFile);
    const keyFile = flags.get(logsAgentFlags.logApiTlsKeyFile);
    if (!certFile || !keyFile) throw new OptionError(certFile ? '--log-api-tls-key-file' : '--log-api-tls-cert-file', 'the log API is served over HTTPS only: --log-api-tls-cert-file and --log-api-tls-key-file are required with --log-api-bind-address');
    logApi = { bindAddress: logApiBindAddress, certFile, keyFile };
  }
  return {
    ...(logApi ? { logApi } : {}),
    guardUrl, nodeName,
    guardCa: caFile ? { file: caFile } : { pem: caPem! },
    tokenFile: flags.get(logsAgentFlags.guardTokenFile),
    podLogsDir: flags.get(logsAgentFlags.podLogsDir),
    stateDir: flags.get(logsAgentFlags.stateDir),
    batchBytes: flags.get(logsAgentFlags.batchSize),
    metricsBindAddress: flags.get(logsAgentFlags.metricsBindAddress),
  };
}
