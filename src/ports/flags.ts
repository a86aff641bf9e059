/**
 * The flags of `crowsnest ports scan` and `crowsnest ports collect`, and their resolution:
 * flag > environment (`CROWSNEST_*`; `PATH_REPORTS`/`PATH_REPORT` for the report directory and
 * `POD_NAMESPACE` for the namespace, as the seed and the chart set them) > default.
 *
 * Cheap to import (`crowsnest ports --help` loads it): no scanner, no runtime.
 */
import { flag, FlagResolver, type Flag, type FlagSources, type FlagValue } from '../flags.ts';
import { asString, oneOf, parseBool, parseNamespace, parsePositiveDurationMs, parsePositiveInteger, parseReportDir } from '../flag-values.ts';
import { checkLabelSelector } from '../kube/objects/label-selector.ts';
import { version } from '../version.ts';
import { scanOutputs, type ScanOutput } from './format.ts';

// ---------------------------------------------------------------------------------------------
// ports scan

function parseProcRoot(value: FlagValue): string {
  if (typeof value !== 'string' || value.trim() === '') throw new Error('must not be empty');
  return value;
}

function parseNetPid(value: FlagValue): number {
  const text = String(value);
  if (!/^\d+$/.test(text) || Number(text) < 1 || !Number.isSafeInteger(Number(text))) {
    throw new Error('must be a process id (a whole number of at least 1)');
  }
  return Number(text);
}

/**
 * Flags of `ports scan`. It runs inside the scan pods `ports collect` creates, so it reads no
 * environment: what it scans is what its command line says.
 */
export const portsScanFlags = {
  proc: flag({ name: 'proc', valueName: '<dir>', description: 'proc file system to read', defaultText: '/proc', env: false, parse: parseProcRoot }),
  netPid: flag({
    name: 'net-pid',
    valueName: '<pid>',
    description:
      "read the sockets of the network namespace of process <pid> (<dir>/<pid>/net) instead of crowsnest's " +
      "own (<dir>/net); 1 is the host's from a pod with hostPID: true but without hostNetwork",
    env: false,
    parse: parseNetPid,
  }),
  output: flag({ name: 'output', short: 'o', valueName: '<format>', description: 'output format', default: 'table', choices: scanOutputs, env: false, parse: oneOf<ScanOutput>(scanOutputs) }),
};

/** The flags of `ports scan` as the CLI declares them, in help order. */
export const portsScanFlagList: readonly Flag<unknown>[] = Object.values(portsScanFlags);

export interface PortsScanCliOptions {
  /** `undefined` leaves the default to the scanner. */
  readonly procRoot: string | undefined;
  readonly netPid: number | undefined;
  readonly output: ScanOutput;
}

/** @throws OptionError naming the offending flag. */
export function resolvePortsScanOptions(sources: FlagSources): PortsScanCliOptions {
  const flags = new FlagResolver(sources);
  return { procRoot: flags.get(portsScanFlags.proc), netPid: flags.get(portsScanFlags.netPid), output: flags.get(portsScanFlags.output) };
}

// ---------------------------------------------------------------------------------------------
// ports collect

const DEFAULT_IMAGE = `ghcr.io/crowsnest/crowsnest:${version}`;
const PULL_POLICIES = ['Always', 'IfNotPresent', 'Never'] as const;
type PullPolicy = (typeof PULL_POLICIES)[number];

function parsePullPolicy(value: FlagValue): PullPolicy {
  const found = PULL_POLICIES.find((policy) => policy === value);
  if (found === undefined) throw new Error('must be Always, IfNotPresent or Never');
  return found;
}

function parseNodeSelector(value: FlagValue): string {
  const text = asString(value);
  checkLabelSelector(text);
  return text.trim();
}

function parseKeepLast(value: FlagValue): number {
  const text = asString(value);
  if (!/^\d+$/.test(text)) throw new Error('must be a whole number (0 keeps all)');
  return Number(text);
}

/** Flags of `ports collect`, in help order. */
export const portsCollectFlags = {
  namespace: flag({ name: 'namespace', valueName: '<ns>', description: 'namespace for the scan pods', default: 'default', env: ['POD_NAMESPACE'], parse: parseNamespace }),
  image: flag({ name: 'image', valueName: '<image>', description: 'crowsnest image the scan pods run', default: DEFAULT_IMAGE, parse: asString }),
  imagePullPolicy: flag({ name: 'image-pull-policy', valueName: '<policy>', description: 'Always, IfNotPresent or Never', defaultText: 'the cluster default', parse: parsePullPolicy }),
  processInfo: flag({
    name: 'process-info',
    valueName: '[bool]',
    description: 'scan as root with CAP_SYS_PTRACE and CAP_DAC_READ_SEARCH, to name the process of each port',
    default: true,
    parse: parseBool,
    negatable: true,
    negatedDescription: 'scan as non-root without capabilities: ports without their processes',
  }),
  concurrency: flag({ name: 'concurrency', valueName: '<n>', description: 'nodes scanned at once', default: '10', parse: parsePositiveInteger }),
  timeout: flag({ name: 'timeout', valueName: '<duration>', description: 'per node, from pod creation to result', default: '2m', parse: parsePositiveDurationMs }),
  nodeSelector: flag({ name: 'node-selector', valueName: '<selector>', description: 'only nodes with these labels, e.g. "node-role.kubernetes.io/worker"', parse: parseNodeSelector }),
  priorityClassName: flag({ name: 'priority-class-name', valueName: '<name>', description: 'priority class of the scan pods', parse: asString }),
  reportDir: flag({ name: 'report-dir', valueName: '<dir>', description: 'where reports go', default: './reports', env: ['PATH_REPORTS', 'PATH_REPORT'], parse: parseReportDir }),
  keepLast: flag({ name: 'keep-last', valueName: '<n>', description: 'reports kept; 0 keeps all', default: '30', parse: parseKeepLast }),
  output: flag({ name: 'output', short: 'o', valueName: '<format>', description: 'what to print: text (the changes) or json (the report)', default: 'text', choices: ['text', 'json'], env: false, parse: oneOf(['text', 'json'] as const) }),
  reportFormat: flag({
    name: 'report-format', valueName: '<format>',
    description: `reports written: crowsnest (JSON + text), or node-collector: also k8s-node-collector's file (named DD-Mon-HH:MM, "Ports opened in Node: <node>" then its ports) for scripts that parse it`,
    default: 'crowsnest', choices: ['crowsnest', 'node-collector'], parse: oneOf(['crowsnest', 'node-collector'] as const),
  }),
};

/** The flags of `ports collect` as the CLI declares them, in help order. */
export const portsCollectFlagList: readonly Flag<unknown>[] = Object.values(portsCollectFlags);

export interface PortsCollectCliOptions {
  readonly namespace: string;
  readonly image: string;
  readonly imagePullPolicy?: PullPolicy;
  readonly processInfo: boolean;
  readonly concurrency: number;
  readonly nodeTimeoutMs: number;
  readonly nodeSelector?: string;
  readonly reportDir: string;
  readonly keepLast: number;
  readonly priorityClassName?: string;
  readonly output: 'text' | 'json';
  readonly reportFormat: 'crowsnest' | 'node-collector';
}

/** @throws OptionError naming the offending flag. */
export function resolvePortsCollectOptions(sources: FlagSources): PortsCollectCliOptions {
  const flags = new FlagResolver(sources);
  const imagePullPolicy = flags.get(portsCollectFlags.imagePullPolicy);
  const nodeSelector = flags.get(portsCollectFlags.nodeSelector);
  const priorityClassName = flags.get(portsCollectFlags.priorityClassName);
  return {
    namespace: flags.get(portsCollectFlags.namespace),
    image: flags.get(portsCollectFlags.image),
    ...(imagePullPolicy ? { imagePullPolicy } : {}),
    processInfo: flags.get(portsCollectFlags.processInfo),
    concurrency: flags.get(portsCollectFlags.concurrency),
    nodeTimeoutMs: flags.get(portsCollectFlags.timeout),
    ...(nodeSelector ? { nodeSelector } : {}),
    reportDir: flags.get(portsCollectFlags.reportDir),
    keepLast: flags.get(portsCollectFlags.keepLast),
    ...(priorityClassName ? { priorityClassName } : {}),
    output: flags.get(portsCollectFlags.output),
    reportFormat: flags.get(portsCollectFlags.reportFormat),
  };
}
