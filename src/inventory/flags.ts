/**
 * The flags of `crowsnest inventory collect`, resolved from (highest first) flags, `CROWSNEST_*`
 * environment variables, the config directory (one file per key, as a mounted ConfigMap — the
 * seed's `/etc/config`), and defaults.
 *
 * The seed's spellings keep working: `-external <kubeconfig>`, `-config <dir>`, `-debug`,
 * `-dry-run` (see {@link rewriteSeedFlags}), `INFRALIGHT_ACCESS_KEY` / `INFRALIGHT_SECRET_KEY`,
 * `CLUSTER_ID`, `PATH_REPORTS` / `PATH_REPORT`, and the config keys `endpoint`, `addTypes`,
 * `removeTypes`, `namespaces`, `ignoreNamespaces`.
 *
 * Cheap to import (`crowsnest inventory collect --help` loads it): no runtime, no collector.
 */
import { flag, FlagResolver, OptionError, readConfigDirectory, type Flag, type FlagValue } from '../flags.ts';
import {
  asString,
  oneOf,
  parseBool,
  parseByteSize,
  parseList,
  parseNamespace,
  parseNonNegativeDurationMs,
  parseNonNegativeInteger,
  parsePositiveDurationMs,
  parsePositiveInteger,
  parsePositiveNumber,
  parseReportDir,
} from '../flag-values.ts';
import { checkLabelSelector } from '../kube/objects/label-selector.ts';
import type { CollectOptions } from './collect.ts';
import { DEFAULT_TYPE_SELECTORS, parseTypeSelectors } from './types.ts';
import { snapshotFormats, type SnapshotFormat } from './snapshot-format.ts';

export const DEFAULT_CONFIG_DIR = '/etc/config';
const CLUSTER_ID_PATTERN = /^[a-z0-9-_]+$/;
/**
 * Longest cluster id: it is part of every report file name (whose limit is 255 bytes), and at 63
 * characters it also fits a label value.
 */
export const MAX_CLUSTER_ID_LENGTH = 63;
/** Largest `--page-size`: a bigger page only costs memory, and the API server refuses absurd ones. */
export const MAX_PAGE_SIZE = 100_000;

// ---------------------------------------------------------------------------------------------
// Value parsers

function parseEndpoint(value: FlagValue): string {
  const text = asString(value).trim();
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw new Error('must be an http:// or https:// URL');
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new Error('must be an http:// or https:// URL');
  if (url.username || url.password) {
    throw new Error('credentials in the URL are not sent; use CROWSNEST_ACCESS_KEY/CROWSNEST_SECRET_KEY');
  }
  return text;
}

/** `https://user:pw@host/` → `https://***@host/`, for error messages. */
function hideUserinfo(text: string): string {
  return text.trim().replace(/^([a-z][a-z0-9+.-]*:\/\/)[^/?#]*@/i, '$1***@');
}

/** Whether `endpoint` is plain http:// to anything but loopback (where nobody else can listen in). */
function sendsInClear(endpoint: string): boolean {
  const url = new URL(endpoint);
  if (url.protocol !== 'http:') return false;
  const host = url.hostname.toLowerCase();
  const loopback = host === 'localhost' || host.endsWith('.localhost') || host === '[::1]' || /^127\.\d+\.\d+\.\d+$/.test(host);
  return !loopback;
}

function parseLabelSelector(value: FlagValue): string {
  const text = asString(value).trim();
  checkLabelSelector(text);
  return text;
}

function parsePageSize(value: FlagValue): number {
  const size = parsePositiveInteger(value);
  if (size > MAX_PAGE_SIZE) throw new Error(`must be at most ${MAX_PAGE_SIZE}`);
  return size;
}

const parseFormat = (value: FlagValue): SnapshotFormat => oneOf(snapshotFormats)(asString(value).trim());

const parseTypeList = (value: FlagValue): string[] => parseTypeSelectors(parseList(value));

const parseNamespaceList = (value: FlagValue): string[] => parseList(value).map((ns) => parseNamespace(ns));

function parseOutput(value: FlagValue): 'text' | 'json' {
  const text = asString(value);
  if (text !== 'text' && text !== 'json') throw new Error('must be text or json');
  return text;
}

// ---------------------------------------------------------------------------------------------
// Flags

/** Flags of `inventory collect`, in help order; `configKey` is a flag's file name in the config directory. */
export const inventoryCollectFlags = {
  config: flag({ name: 'config', valueName: '<dir>', description: 'config directory, one file per key (a mounted ConfigMap); keys are the camelCase flag names, e.g. addTypes, or k8s-collector\'s collector.* keys', default: DEFAULT_CONFIG_DIR, parse: asString }),
  endpoint: flag({ name: 'endpoint', valueName: '<url>', description: 'send the snapshot to this endpoint as k8s-collector did (login at <url>/sink/login, gzip JSON {"objects":[…]} to <url>/sink/send, 204 = success) instead of only writing it to the report directory', defaultText: 'none', configKey: 'endpoint', parse: parseEndpoint, showValue: hideUserinfo }),
  loginEndpoint: flag({ name: 'login-endpoint', valueName: '<url>', description: 'log in at <url>/account/access_keys/login instead (k8s-collector\'s later loginEndpoint)', defaultText: '--endpoint', configKey: 'loginEndpoint', parse: parseEndpoint, showValue: hideUserinfo }),
  customResourcesClusterRole: flag({ name: 'custom-resources-cluster-role', valueName: '<name>', description: 'before listing, set this ClusterRole\'s rules to get/list on exactly the custom resource types found (the chart\'s way to read them without "*" on "*")', defaultText: 'none', configKey: 'customResourcesClusterRole', parse: (v) => asString(v).trim() || undefined }),
  resources: flag({ name: 'resources', valueName: '<list>', description: 'resource types to collect instead of the default set: "pods", "deployments.apps", "apps/*", "customresources", "*"', defaultText: 'workloads, networking, storage, RBAC, config, CRDs and custom resources', configKey: 'resources', configAliases: ['collector.resources'], parse: parseTypeList }),
  addTypes: flag({ name: 'add-types', valueName: '<list>', description: 'types added to the set, e.g. "secrets,events"', default: '', defaultText: 'none', configKey: 'addTypes', parse: parseTypeList }),
  removeTypes: flag({ name: 'remove-types', valueName: '<list>', description: 'types removed from the set (wins over additions)', default: '', defaultText: 'none', configKey: 'removeTypes', parse: parseTypeList }),
  namespaces: flag({ name: 'namespaces', valueName: '<list>', description: 'collect namespaced objects from these namespaces only', defaultText: 'all', configKey: 'namespaces', configAliases: ['collector.watchNamespace'], parse: parseNamespaceList }),
  ignoreNamespaces: flag({ name: 'ignore-namespaces', valueName: '<list>', description: 'skip objects in these namespaces', default: '', defaultText: 'none', configKey: 'ignoreNamespaces', configAliases: ['collector.ignoreNamespaces'], parse: parseNamespaceList }),
  labelSelector: flag({ name: 'label-selector', valueName: '<selector>', description: 'collect only objects matching this label selector, e.g. "team=web,tier!=test"', defaultText: 'everything', configKey: 'labelSelector', parse: parseLabelSelector }),
  pageSize: flag({ name: 'page-size', valueName: '<n>', description: 'objects per list request (limit + continue)', default: '500', configKey: 'pageSize', parse: parsePageSize }),
  concurrency: flag({ name: 'concurrency', valueName: '<n>', description: 'resource types listed at once', default: '4', configKey: 'concurrency', parse: parsePositiveInteger }),
  qps: flag({ name: 'qps', valueName: '<n>', description: 'API requests per second, sustained', default: '50', configKey: 'qps', parse: parsePositiveNumber }),
  burst: flag({ name: 'burst', valueName: '<n>', description: 'API requests allowed at once above --qps', default: '100', configKey: 'burst', parse: parsePositiveInteger }),
  redact: flag({ name: 'redact', valueName: '[bool]', description: 'replace Secret values, decode Helm releases to metadata only, drop managedFields and last-applied annotations', default: true, configKey: 'redact', negatable: true, parse: parseBool }),
  secretDigest: flag({ name: 'secret-digest', valueName: '[bool]', description: 'redact Secret values to "sha256:<hex>" of the value instead of a fixed marker (lets you see that a value changed)', default: false, configKey: 'secretDigest', negatable: true, parse: parseBool }),
  reportDir: flag({ name: 'report-dir', valueName: '<dir>', description: 'report directory: snapshots, run summaries, and the fallback when the endpoint is down', default: './reports', configKey: 'reportDir', env: ['PATH_REPORTS', 'PATH_REPORT'], parse: parseReportDir }),
  format: flag({ name: 'format', valueName: '<format>', description: `snapshot file format: ${snapshotFormats.join(' (one object per line) or ')} ({"objects":[…]})`, default: 'ndjson', configKey: 'format', parse: parseFormat }),
  gzip: flag({ name: 'gzip', valueName: '[bool]', description: 'gzip snapshot files', default: true, configKey: 'gzip', negatable: true, parse: parseBool }),
  keepLast: flag({ name: 'keep-last', valueName: '<n>', description: 'runs of this cluster kept in the report directory (a run = its snapshot and/or summary file); 0 keeps all', default: '96', defaultText: '96 (one day at every 15 minutes)', configKey: 'keepLast', parse: parseNonNegativeInteger }),
  maxAge: flag({ name: 'max-age', valueName: '<duration>', description: 'delete runs (snapshot and summary) older than this, e.g. 168h; 0 keeps them regardless of age', default: '0', configKey: 'maxAge', parse: parseNonNegativeDurationMs }),
  maxUndelivered: flag({ name: 'max-undelivered', valueName: '<n>', description: 'snapshots the endpoint never got that are kept for re-sending (--keep-last and --max-age never delete them); beyond this many the oldest are deleted, with a warning; 0 keeps all', default: '0', configKey: 'maxUndelivered', parse: parseNonNegativeInteger }),
  chunkSize: flag({ name: 'chunk-size', valueName: '<bytes>', description: 'uncompressed JSON per endpoint request, e.g. 4Mi; a larger object is sent alone', default: '4Mi', configKey: 'chunkSize', parse: parseByteSize }),
  maxObjectSize: flag({ name: 'max-object-size', valueName: '<bytes>', description: 'drop (and report) objects larger than this; 0 = no limit', default: '0', configKey: 'maxObjectSize', parse: (v) => (asString(v).trim() === '0' ? 0 : parseByteSize(v)) }),
  timeout: flag({ name: 'timeout', valueName: '<duration>', description: 'timeout of each endpoint request', default: '30s', configKey: 'timeout', parse: parsePositiveDurationMs }),
  uploadAttempts: flag({ name: 'upload-attempts', valueName: '<n>', description: 'attempts per endpoint request on network errors, 429 and 5xx, with backoff', default: '6', configKey: 'uploadAttempts', parse: parsePositiveInteger }),
  dryRun: flag({ name: 'dry-run', valueName: '[bool]', description: 'print the collected JSON to stdout; write and send nothing', default: false, parse: parseBool }),
  debug: flag({ name: 'debug', valueName: '[bool]', description: 'debug logging (same as --log-level debug)', default: false, parse: parseBool }),
  output: flag({ name: 'output', valueName: '<format>', description: 'run summary format on stdout: text or json', default: 'text', parse: parseOutput }),
};

/** Flags of `inventory diff`: how to print, nothing else (no environment). */
export const inventoryDiffFlags = {
  output: flag({ name: 'output', short: 'o', valueName: '<format>', description: 'output format', default: 'text', choices: ['text', 'json'], env: false, parse: oneOf(['text', 'json'] as const) }),
};

/** The flags of `inventory collect` as the CLI declares them, in help order. */
export const inventoryCollectFlagList: readonly Flag<unknown>[] = Object.values(inventoryCollectFlags);

// ---------------------------------------------------------------------------------------------
// Resolution

/** Every option of one `inventory collect` run, validated. */
export interface InventoryCollectOptions
  extends Pick<CollectOptions, 'clusterId' | 'selectors' | 'namespaces' | 'ignoreNamespaces' | 'labelSelector' | 'pageSize' | 'concurrency' | 'qps' | 'burst' | 'redaction' | 'customResourcesClusterRole' | 'maxObjectBytes'> {
  /** The config directory read, when there was one. */
  readonly configDir?: string;
  readonly endpoint?: string;
  /** Where to log in instead of `<endpoint>/sink/login`. */
  readonly loginEndpoint?: string;
  readonly accessKey?: string;
  readonly secretKey?: string;
  readonly reportDir: string;
  readonly format: SnapshotFormat;
  readonly gzip: boolean;
  readonly retention: { readonly keepLast: number; readonly maxAgeMs: number; readonly maxUndelivered: number };
  readonly chunkBytes: number;
  readonly timeoutMs: number;
  readonly uploadAttempts: number;
  readonly dryRun: boolean;
  readonly debug: boolean;
  readonly output: 'text' | 'json';
  /** Things the user should know (unknown config keys, redaction off), for the log. */
  readonly warnings: readonly string[];
}

export interface InventorySources {
  /** Flag values by long name; `undefined` = not given. */
  readonly flags: Readonly<Record<string, FlagValue | undefined>>;
  readonly env: Readonly<Record<string, string | undefined>>;
  /** The positional cluster id, when given. */
  readonly clusterIdArgument?: string;
  /** Reads the config directory; injected for tests. Default: the file system. */
  readonly readConfigDir?: (dir: string) => Record<string, string> | undefined;
}

/**
 * Resolves and validates every option.
 * @throws OptionError naming the flag, env variable or config file that is wrong.
 */
export function resolveInventoryCollectOptions(sources: InventorySources): InventoryCollectOptions {
  const warnings: string[] = [];
  // The config directory is named by a flag itself (flag > env > default), read before the rest.
  const explicitConfig = new FlagResolver(sources).lookup(inventoryCollectFlags.config);
  const configDir = explicitConfig !== undefined ? asString(explicitConfig.value) : DEFAULT_CONFIG_DIR;
  const read = sources.readConfigDir ?? readConfigDirectory;
  let config: Record<string, string> | undefined;
  try {
    config = read(configDir);
  } catch (err) {
    throw new OptionError('--config', `cannot read config directory ${configDir}: ${err instanceof Error ? err.message : String(err)}`);
  }
  if (config === undefined && explicitConfig !== undefined) {
    throw new OptionError('--config', `config directory ${configDir} does not exist`);
  }
  const knownKeys = new Set(inventoryCollectFlagList.flatMap((f) => (f.configKey ? [f.configKey] : [])));
  const aliasKeys = new Set(inventoryCollectFlagList.flatMap((f) => f.configAliases ?? []));
  for (const key of Object.keys(config ?? {})) {
    if (COLLECTOR_MEANINGLESS_KEYS[key]) warnings.push(`config directory ${configDir}: k8s-collector's key "${key}" has no meaning here: ${COLLECTOR_MEANINGLESS_KEYS[key]}`);
    else if (!knownKeys.has(key) && !aliasKeys.has(key) && key !== COLLECTOR_PAGE_SIZE && !COLLECTOR_RESOURCE_KEY.test(key)) warnings.push(`config directory ${configDir}: unknown key "${key}" ignored (known: ${[...knownKeys].join(', ')})`);
  }
  const collectorTypes = collectorResourceSwitches(config ?? {}, configDir);
  if (config !== undefined) config = withCollectorChunkSize(config, configDir);
  const flags = new FlagResolver({ flags: sources.flags, env: sources.env, ...(config !== undefined ? { config: { dir: configDir, values: config } } : {}) });

  const dryRun = flags.get(inventoryCollectFlags.dryRun);
  // Our name wins over the seed's, as for the keys; an empty variable counts as unset.
  const clusterIdRaw = sources.clusterIdArgument || sources.env['CROWSNEST_CLUSTER_ID'] || sources.env['CLUSTER_ID'];
  let clusterId: string;
  if (clusterIdRaw === undefined || clusterIdRaw === '') {
    if (!dryRun) throw new OptionError('clusterId', 'a cluster id is required: pass it as the argument or set CLUSTER_ID (lowercase letters, digits, "-" and "_")');
    clusterId = 'dry-run';
  } else if (!CLUSTER_ID_PATTERN.test(clusterIdRaw)) {
    throw new OptionError('clusterId', `invalid cluster id "${clusterIdRaw}": use only lowercase letters, digits, "-" and "_" (^[a-z0-9-_]+$)`);
  } else if (clusterIdRaw.length > MAX_CLUSTER_ID_LENGTH) {
    throw new OptionError('clusterId', `invalid cluster id "${clusterIdRaw.slice(0, 20)}…": ${clusterIdRaw.length} characters, at most ${MAX_CLUSTER_ID_LENGTH} allowed`);
  } else {
    clusterId = clusterIdRaw;
  }

  const endpoint = flags.get(inventoryCollectFlags.endpoint);
  const loginEndpoint = flags.get(inventoryCollectFlags.loginEndpoint);
  const base = flags.get(inventoryCollectFlags.resources) ?? [...DEFAULT_TYPE_SELECTORS];
  const redactEnabled = flags.get(inventoryCollectFlags.redact);
  if (!redactEnabled) warnings.push('redaction is off (--no-redact): Secret values and Helm release values will be written as they are');
  const namespaces = flags.get(inventoryCollectFlags.namespaces);
  const accessKey = sources.env['CROWSNEST_ACCESS_KEY'] || sources.env['INFRALIGHT_ACCESS_KEY'];
  const secretKey = sources.env['CROWSNEST_SECRET_KEY'] || sources.env['INFRALIGHT_SECRET_KEY'];
  if (endpoint !== undefined && !dryRun && Boolean(accessKey) !== Boolean(secretKey)) {
    const [set, unset] = accessKey ? ['access', 'secret'] : ['secret', 'access'];
    throw new OptionError(
      `CROWSNEST_${unset.toUpperCase()}_KEY`,
      `the ${set} key is set but the ${unset} key is not: the endpoint's login needs both ` +
        `(CROWSNEST_${unset.toUpperCase()}_KEY or INFRALIGHT_${unset.toUpperCase()}_KEY)`,
    );
  }
  const loginAt = loginEndpoint ?? endpoint;
  if (loginAt !== undefined && !dryRun && accessKey && sendsInClear(loginAt)) {
    const url = new URL(loginAt);
    warnings.push(
      `--${loginEndpoint ? 'login-endpoint' : 'endpoint'} ${url.protocol}//${url.host} is plain http:// to a host that is not this machine: ` +
        'the access and secret keys are sent unencrypted; use https://',
    );
  }
  if (loginEndpoint !== undefined && !accessKey) warnings.push('--login-endpoint is set but no keys are: there is nothing to log in with, so no login happens');

  return {
    clusterId,
    ...(config !== undefined ? { configDir } : {}),
    ...(endpoint !== undefined ? { endpoint } : {}),
    ...optionalKey('loginEndpoint', loginEndpoint),
    ...optionalKey('accessKey', accessKey),
    ...optionalKey('secretKey', secretKey),
    selectors: {
      base,
      add: [...flags.get(inventoryCollectFlags.addTypes), ...collectorTypes.add],
      remove: [...flags.get(inventoryCollectFlags.removeTypes), ...collectorTypes.remove],
    },
    ...(namespaces !== undefined && namespaces.length > 0 ? { namespaces } : {}),
    ignoreNamespaces: flags.get(inventoryCollectFlags.ignoreNamespaces),
    ...optionalKey('labelSelector', flags.get(inventoryCollectFlags.labelSelector)),
    pageSize: flags.get(inventoryCollectFlags.pageSize),
    concurrency: flags.get(inventoryCollectFlags.concurrency),
    qps: flags.get(inventoryCollectFlags.qps),
    burst: flags.get(inventoryCollectFlags.burst),
    redaction: { enabled: redactEnabled, secretValueDigest: flags.get(inventoryCollectFlags.secretDigest) },
    ...optionalKey('customResourcesClusterRole', flags.get(inventoryCollectFlags.customResourcesClusterRole)),
    reportDir: flags.get(inventoryCollectFlags.reportDir),
    format: flags.get(inventoryCollectFlags.format),
    gzip: flags.get(inventoryCollectFlags.gzip),
    retention: {
      keepLast: flags.get(inventoryCollectFlags.keepLast),
      maxAgeMs: flags.get(inventoryCollectFlags.maxAge),
      maxUndelivered: flags.get(inventoryCollectFlags.maxUndelivered),
    },
    chunkBytes: flags.get(inventoryCollectFlags.chunkSize),
    maxObjectBytes: flags.get(inventoryCollectFlags.maxObjectSize),
    timeoutMs: flags.get(inventoryCollectFlags.timeout),
    uploadAttempts: flags.get(inventoryCollectFlags.uploadAttempts),
    dryRun,
    debug: flags.get(inventoryCollectFlags.debug),
    output: flags.get(inventoryCollectFlags.output),
    warnings,
  };
}

function optionalKey<K extends string>(key: K, value: string | undefined): Partial<Record<K, string>> {
  return value ? ({ [key]: value } as Record<K, string>) : {};
}

/** k8s-collector's per-type switches, `collector.resources.<type>` = true | false. */
const COLLECTOR_RESOURCE_KEY = /^collector\.resources\.(.+)$/;

/** Its type names that are not the lowercased resource name. */
const COLLECTOR_TYPE_NAMES: Readonly<Record<string, string>> = {
  argoApplications: 'applications.argoproj.io',
  podMetrics: 'pods.metrics.k8s.io',
};

/** k8s-collector's keys with nothing to do here, and why (a warning says so, never silence). */
const OVERRIDE_UNIQUE_CLUSTER_ID =
  'it asked the tool\'s later /integrations/k8s/<cluster>/fetching API to accept a cluster whose kube-system uid is registered under another id (that API answered 409 otherwise); Crowsnest speaks the {"objects":[…]} protocol, which has no such check';
const COLLECTOR_MEANINGLESS_KEYS: Readonly<Record<string, string>> = {
  'collector.OverrideUniqueClusterId': OVERRIDE_UNIQUE_CLUSTER_ID,
  'collector.overrideUniqueClusterId': OVERRIDE_UNIQUE_CLUSTER_ID,
  'collector.MaxGoRoutines': 'it set how many chunks the tool sent at once; Crowsnest sends them one after the other, in order, each retried on its own (--upload-attempts)',
};

/** k8s-collector's `collector.PageSize`: the most KB of objects in one request, our chunkSize. */
const COLLECTOR_PAGE_SIZE = 'collector.PageSize';

/**
 * `collector.PageSize` (KB per request in the tool) as our `chunkSize` in KiB, unless the config
 * directory sets `chunkSize` itself. A value that is not a whole number is refused naming the
 * file (the tool silently used its default of 500).
 */
function withCollectorChunkSize(config: Readonly<Record<string, string>>, configDir: string): Record<string, string> {
  const raw = config[COLLECTOR_PAGE_SIZE]?.trim();
  if (raw === undefined || raw === '' || config['chunkSize'] !== undefined) return { ...config };
  const from = `${configDir}/${COLLECTOR_PAGE_SIZE}`;
  if (!/^\d+$/.test(raw) || Number(raw) < 1) throw new OptionError(from, `invalid value "${raw}" in ${from}: expected a whole number of KB per request (k8s-collector's page size, our --chunk-size)`);
  return { ...config, chunkSize: `${raw}Ki` };
}

/** Go's `strconv.ParseBool` spellings, as the tool parsed its switches. */
const GO_TRUE = new Set(['1', 't', 'T', 'TRUE', 'true', 'True']);
const GO_FALSE = new Set(['0', 'f', 'F', 'FALSE', 'false', 'False']);

/**
 * k8s-collector's `collector.resources.<type>` switches as type additions (true) and removals
 * (false), e.g. `collector.resources.replicationControllers: "false"` removes
 * replicationcontrollers. The tool fell back to its default on a value it could not parse; we
 * refuse it, naming the file.
 * @throws OptionError for a value that is not a Go boolean, or a type name we cannot read.
 */
export function collectorResourceSwitches(config: Readonly<Record<string, string>>, configDir: string): { add: string[]; remove: string[] } {
  const add: string[] = [];
  const remove: string[] = [];
  for (const [key, raw] of Object.entries(config)) {
    const name = COLLECTOR_RESOURCE_KEY.exec(key)?.[1];
    if (name === undefined) continue;
    const from = `${configDir}/${key}`;
    const value = raw.trim();
    if (value === '') continue;
    const on = GO_TRUE.has(value) ? true : GO_FALSE.has(value) ? false : undefined;
    if (on === undefined) throw new OptionError(from, `invalid value "${value}" in ${from}: expected true or false (k8s-collector's per-type switch)`);
    let type: string;
    try {
      [type = ''] = parseTypeSelectors([COLLECTOR_TYPE_NAMES[name] ?? name.toLowerCase()]);
    } catch (err) {
      throw new OptionError(from, `${from}: ${err instanceof Error ? err.message : String(err)}`);
    }
    (on ? add : remove).push(type);
  }
  return { add, remove };
}

/**
 * The seed's single-dash long flags, rewritten to ours before commander parses (commander
 * would read `-external` as the short flags `-e -x -t …`).
 */
export function rewriteSeedFlags(argv: readonly string[]): string[] {
  const map: Readonly<Record<string, string>> = { '-external': '--kubeconfig', '-config': '--config', '-debug': '--debug', '-dry-run': '--dry-run' };
  // Go's boolean flags never take the next word as their value (`-debug mycluster` is the switch
  // and the cluster id): spelled `--debug=true`, commander cannot take it either.
  const switches = new Set(['-debug', '-dry-run']);
  return argv.map((arg) => {
    const [name = '', value] = arg.split(/=(.*)/s, 2);
    const replacement = map[name];
    if (!replacement) return arg;
    if (value !== undefined) return `${replacement}=${value}`;
    return switches.has(name) ? `${replacement}=true` : replacement;
  });
}
