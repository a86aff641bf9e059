/**
 * Options of `crowsnest inventory collect`, resolved from (highest first) flags, `CROWSNEST_*`
 * environment variables, the config directory (one file per key, as a mounted ConfigMap — the
 * seed's `/etc/config`), and defaults.
 *
 * The seed's spellings keep working: `-external <kubeconfig>`, `-config <dir>`, `-debug`,
 * `-dry-run` (see {@link rewriteSeedFlags}), `INFRALIGHT_ACCESS_KEY` / `INFRALIGHT_SECRET_KEY`,
 * `CLUSTER_ID`, and the config keys `endpoint`, `addTypes`, `removeTypes`, `namespaces`,
 * `ignoreNamespaces`.
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import {
  asString,
  envVarFor,
  OptionError,
  parseBool,
  parseNamespace,
  parseNonNegativeDurationMs,
  parsePositiveDurationMs,
  parsePositiveInteger,
  parseReportDir,
  type FlagDefinition,
} from './options.ts';
import { checkLabelSelector } from '../kube/label-selector.ts';
import type { RedactionOptions } from '../inventory/redact.ts';
import { DEFAULT_TYPE_SELECTORS, parseTypeSelectors, type TypeSelectors } from '../inventory/types.ts';
import { snapshotFormats, type SnapshotFormat } from '../inventory/snapshot-format.ts';

/** A flag of `inventory collect`; `configKey` is its file name in the config directory. */
export interface InventoryFlag extends FlagDefinition {
  readonly configKey?: string;
  /** Further environment variables read after `CROWSNEST_<NAME>`, e.g. the seed's names. */
  readonly envAliases?: readonly string[];
}

export const DEFAULT_CONFIG_DIR = '/etc/config';
const CLUSTER_ID_PATTERN = /^[a-z0-9-_]+$/;
/**
 * Longest cluster id: it is part of every report file name (whose limit is 255 bytes), and at 63
 * characters it also fits a label value.
 */
export const MAX_CLUSTER_ID_LENGTH = 63;
/** Largest `--page-size`: a bigger page only costs memory, and the API server refuses absurd ones. */
export const MAX_PAGE_SIZE = 100_000;

export const inventoryCollectFlags: readonly InventoryFlag[] = [
  { name: 'config', valueName: '<dir>', description: 'config directory, one file per key (a mounted ConfigMap); keys are the camelCase flag names, e.g. addTypes', defaultText: DEFAULT_CONFIG_DIR },
  { name: 'endpoint', valueName: '<url>', description: 'send the snapshot to this endpoint as k8s-collector did (login at <url>/sink/login, gzip JSON {"objects":[…]} to <url>/sink/send, 204 = success) instead of only writing it to the report directory', defaultText: 'none', configKey: 'endpoint' },
  { name: 'login-endpoint', valueName: '<url>', description: 'log in at <url>/account/access_keys/login instead (k8s-collector\'s later loginEndpoint)', defaultText: '--endpoint', configKey: 'loginEndpoint' },
  { name: 'custom-resources-cluster-role', valueName: '<name>', description: 'before listing, set this ClusterRole\'s rules to get/list on exactly the custom resource types found (the chart\'s way to read them without "*" on "*")', defaultText: 'none', configKey: 'customResourcesClusterRole' },
  { name: 'resources', valueName: '<list>', description: 'resource types to collect instead of the default set: "pods", "deployments.apps", "apps/*", "customresources", "*"', defaultText: 'workloads, networking, storage, RBAC, config, CRDs and custom resources', configKey: 'resources' },
  { name: 'add-types', valueName: '<list>', description: 'types added to the set, e.g. "secrets,events"', defaultText: 'none', configKey: 'addTypes' },
  { name: 'remove-types', valueName: '<list>', description: 'types removed from the set (wins over additions)', defaultText: 'none', configKey: 'removeTypes' },
  { name: 'namespaces', valueName: '<list>', description: 'collect namespaced objects from these namespaces only', defaultText: 'all', configKey: 'namespaces' },
  { name: 'ignore-namespaces', valueName: '<list>', description: 'skip objects in these namespaces', defaultText: 'none', configKey: 'ignoreNamespaces' },
  { name: 'label-selector', valueName: '<selector>', description: 'collect only objects matching this label selector, e.g. "team=web,tier!=test"', defaultText: 'everything', configKey: 'labelSelector' },
  { name: 'page-size', valueName: '<n>', description: 'objects per list request (limit + continue)', defaultText: '500', configKey: 'pageSize' },
  { name: 'concurrency', valueName: '<n>', description: 'resource types listed at once', defaultText: '4', configKey: 'concurrency' },
  { name: 'qps', valueName: '<n>', description: 'API requests per second, sustained', defaultText: '50', configKey: 'qps' },
  { name: 'burst', valueName: '<n>', description: 'API requests allowed at once above --qps', defaultText: '100', configKey: 'burst' },
  { name: 'redact', valueName: '[bool]', description: 'replace Secret values, decode Helm releases to metadata only, drop managedFields and last-applied annotations', defaultText: 'true', configKey: 'redact', negatable: true },
  { name: 'secret-digest', valueName: '[bool]', description: 'redact Secret values to "sha256:<hex>" of the value instead of a fixed marker (lets you see that a value changed)', defaultText: 'false', configKey: 'secretDigest', negatable: true },
  { name: 'report-dir', valueName: '<dir>', description: 'report directory: snapshots, run summaries, and the fallback when the endpoint is down', defaultText: '$PATH_REPORTS, else ./reports', configKey: 'reportDir', envAliases: ['PATH_REPORTS', 'PATH_REPORT'] },
  { name: 'format', valueName: '<format>', description: `snapshot file format: ${snapshotFormats.join(' (one object per line) or ')} ({"objects":[…]})`, defaultText: 'ndjson', configKey: 'format' },
  { name: 'gzip', valueName: '[bool]', description: 'gzip snapshot files', defaultText: 'true', configKey: 'gzip', negatable: true },
  { name: 'keep-last', valueName: '<n>', description: 'runs of this cluster kept in the report directory (a run = its snapshot and/or summary file); 0 keeps all', defaultText: '96 (one day at every 15 minutes)', configKey: 'keepLast' },
  { name: 'max-age', valueName: '<duration>', description: 'delete runs (snapshot and summary) older than this, e.g. 168h; 0 keeps them regardless of age', defaultText: '0', configKey: 'maxAge' },
  { name: 'max-undelivered', valueName: '<n>', description: 'snapshots the endpoint never got that are kept for re-sending (--keep-last and --max-age never delete them); beyond this many the oldest are deleted, with a warning; 0 keeps all', defaultText: '0', configKey: 'maxUndelivered' },
  { name: 'chunk-size', valueName: '<bytes>', description: 'uncompressed JSON per endpoint request, e.g. 4Mi; a larger object is sent alone', defaultText: '4Mi', configKey: 'chunkSize' },
  { name: 'max-object-size', valueName: '<bytes>', description: 'drop (and report) objects larger than this; 0 = no limit', defaultText: '0', configKey: 'maxObjectSize' },
  { name: 'timeout', valueName: '<duration>', description: 'timeout of each endpoint request', defaultText: '30s', configKey: 'timeout' },
  { name: 'upload-attempts', valueName: '<n>', description: 'attempts per endpoint request on network errors, 429 and 5xx, with backoff', defaultText: '6', configKey: 'uploadAttempts' },
  { name: 'dry-run', valueName: '[bool]', description: 'print the collected JSON to stdout; write and send nothing', defaultText: 'false', negatable: false },
  { name: 'debug', valueName: '[bool]', description: 'debug logging (same as --log-level debug)', defaultText: 'false' },
  { name: 'output', valueName: '<format>', description: 'run summary format on stdout: text or json', defaultText: 'text' },
];

/** Every option of one `inventory collect` run, validated. */
export interface InventoryCollectOptions {
  readonly clusterId: string;
  /** The config directory read, when there was one. */
  readonly configDir?: string;
  readonly endpoint?: string;
  /** Where to log in instead of `<endpoint>/sink/login`. */
  readonly loginEndpoint?: string;
  readonly accessKey?: string;
  readonly secretKey?: string;
  readonly selectors: TypeSelectors;
  readonly namespaces?: readonly string[];
  readonly ignoreNamespaces: readonly string[];
  readonly labelSelector?: string;
  readonly pageSize: number;
  readonly concurrency: number;
  readonly qps: number;
  readonly burst: number;
  readonly redaction: RedactionOptions;
  readonly customResourcesClusterRole?: string;
  readonly reportDir: string;
  readonly format: SnapshotFormat;
  readonly gzip: boolean;
  readonly retention: { readonly keepLast: number; readonly maxAgeMs: number; readonly maxUndelivered: number };
  readonly chunkBytes: number;
  readonly maxObjectBytes: number;
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
  readonly flags: Readonly<Record<string, string | boolean | undefined>>;
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
  const configFlag = sources.flags['config'];
  const configEnv = sources.env[envVarFor('config')];
  const explicitConfig = typeof configFlag === 'string' ? configFlag : configEnv || undefined;
  const configDir = explicitConfig ?? DEFAULT_CONFIG_DIR;
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
  const knownKeys = new Set(inventoryCollectFlags.flatMap((flag) => (flag.configKey ? [flag.configKey] : [])));
  for (const key of Object.keys(config ?? {})) {
    if (!knownKeys.has(key)) warnings.push(`config directory ${configDir}: unknown key "${key}" ignored (known: ${[...knownKeys].join(', ')})`);
  }

  const lookup = (name: string): { value: string | boolean; from: string } | undefined => {
    const flag = inventoryCollectFlags.find((f) => f.name === name);
    const fromFlag = sources.flags[name];
    if (fromFlag !== undefined) return { value: fromFlag, from: `--${name}` };
    for (const envVar of [envVarFor(name), ...(flag?.envAliases ?? [])]) {
      const value = sources.env[envVar];
      if (value !== undefined && value !== '') return { value, from: envVar };
    }
    if (flag?.configKey && config?.[flag.configKey] !== undefined) {
      return { value: config[flag.configKey] as string, from: `${join(configDir, flag.configKey)}` };
    }
    return undefined;
  };
  /** `show` renders a bad value for the error message (the endpoint hides credentials). */
  const get = <T>(name: string, parse: (value: string | boolean) => T, fallback: T, show: (text: string) => string = (text) => text): T => {
    const raw = lookup(name);
    if (raw === undefined) return fallback;
    try {
      return parse(raw.value);
    } catch (err) {
      const reason = err instanceof Error ? err.message : String(err);
      const where = raw.from.startsWith('--') ? '' : ` (from ${raw.from})`;
      throw new OptionError(`--${name}`, `invalid value "${show(String(raw.value).trim())}" for --${name}${where}: ${reason}`);
    }
  };

  const dryRun = get('dry-run', parseBool, false);
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

  const endpoint = get('endpoint', parseEndpoint, undefined, hideUserinfo);
  const loginEndpoint = get('login-endpoint', parseEndpoint, undefined, hideUserinfo);
  const base = get('resources', (v) => parseTypeSelectors(parseList(v)), [...DEFAULT_TYPE_SELECTORS]);
  const redactEnabled = get('redact', parseBool, true);
  if (!redactEnabled) warnings.push('redaction is off (--no-redact): Secret values and Helm release values will be written as they are');
  const namespaces = get('namespaces', (v) => parseList(v).map((ns) => parseNamespace(ns)), undefined);
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
      add: get('add-types', (v) => parseTypeSelectors(parseList(v)), []),
      remove: get('remove-types', (v) => parseTypeSelectors(parseList(v)), []),
    },
    ...(namespaces !== undefined && namespaces.length > 0 ? { namespaces } : {}),
    ignoreNamespaces: get('ignore-namespaces', (v) => parseList(v).map((ns) => parseNamespace(ns)), []),
    ...optionalKey('labelSelector', get('label-selector', parseLabelSelector, undefined)),
    pageSize: get('page-size', parsePageSize, 500),
    concurrency: get('concurrency', parsePositiveInteger, 4),
    qps: get('qps', parsePositiveNumber, 50),
    burst: get('burst', parsePositiveInteger, 100),
    redaction: { enabled: redactEnabled, secretValueDigest: get('secret-digest', parseBool, false) },
    ...optionalKey('customResourcesClusterRole', get('custom-resources-cluster-role', (v) => asString(v).trim() || undefined, undefined)),
    reportDir: get('report-dir', parseReportDir, './reports'),
    format: get('format', parseFormat, 'ndjson'),
    gzip: get('gzip', parseBool, true),
    retention: {
      keepLast: get('keep-last', parseNonNegativeInteger, 96),
      maxAgeMs: get('max-age', parseNonNegativeDurationMs, 0),
      maxUndelivered: get('max-undelivered', parseNonNegativeInteger, 0),
    },
    chunkBytes: get('chunk-size', parseByteSize, 4 * MI),
    maxObjectBytes: get('max-object-size', (v) => (asString(v).trim() === '0' ? 0 : parseByteSize(v)), 0),
    timeoutMs: get('timeout', parsePositiveDurationMs, 30_000),
    uploadAttempts: get('upload-attempts', parsePositiveInteger, 6),
    dryRun,
    debug: get('debug', parseBool, false),
    output: get('output', (v) => {
      const text = asString(v);
      if (text !== 'text' && text !== 'json') throw new Error('must be text or json');
      return text;
    }, 'text' as const),
    warnings,
  };
}

function optionalKey<K extends string>(key: K, value: string | undefined): Partial<Record<K, string>> {
  return value ? ({ [key]: value } as Record<K, string>) : {};
}

/**
 * The seed's single-dash long flags, rewritten to ours before commander parses (commander
 * would read `-external` as the short flags `-e -x -t …`).
 */
export function rewriteSeedFlags(argv: readonly string[]): string[] {
  const map: Readonly<Record<string, string>> = { '-external': '--kubeconfig', '-config': '--config', '-debug': '--debug', '-dry-run': '--dry-run' };
  return argv.map((arg) => {
    const [name = '', value] = arg.split(/=(.*)/s, 2);
    const replacement = map[name];
    if (!replacement) return arg;
    return value !== undefined ? `${replacement}=${value}` : replacement;
  });
}

/**
 * Reads a config directory: each regular file is a key, its content the value (trimmed). Hidden
 * entries are skipped — a mounted ConfigMap keeps its real files under `..data`.
 * @returns `undefined` when the directory does not exist.
 */
export function readConfigDirectory(dir: string): Record<string, string> | undefined {
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
  const values: Record<string, string> = {};
  for (const name of names) {
    if (name.startsWith('.')) continue;
    const path = join(dir, name);
    // statSync follows the ConfigMap's symlinks; one can dangle for a moment while the kubelet
    // swaps `..data`, so a key that vanished is skipped rather than failing the run.
    const info = statSync(path, { throwIfNoEntry: false });
    if (!info?.isFile()) continue;
    values[name] = readFileSync(path, 'utf8').trim();
  }
  return values;
}

/**
 * A list value: comma- or newline-separated, `#` comments and YAML-style `- ` bullets allowed,
 * so a ConfigMap value can be written either way.
 */
export function parseList(value: string | boolean): string[] {
  return asString(value)
    .split(/[\n,]/)
    .map((item) => item.replace(/#.*$/, '').trim().replace(/^-\s*/, '').trim())
    .filter((item) => item !== '');
}

function parseEndpoint(value: string | boolean): string {
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
  return text.replace(/^([a-z][a-z0-9+.-]*:\/\/)[^/?#]*@/i, '$1***@');
}

/** Whether `endpoint` is plain http:// to anything but loopback (where nobody else can listen in). */
function sendsInClear(endpoint: string): boolean {
  const url = new URL(endpoint);
  if (url.protocol !== 'http:') return false;
  const host = url.hostname.toLowerCase();
  const loopback = host === 'localhost' || host.endsWith('.localhost') || host === '[::1]' || /^127\.\d+\.\d+\.\d+$/.test(host);
  return !loopback;
}

function parseLabelSelector(value: string | boolean): string {
  const text = asString(value).trim();
  checkLabelSelector(text);
  return text;
}

function parsePageSize(value: string | boolean): number {
  const size = parsePositiveInteger(value);
  if (size > MAX_PAGE_SIZE) throw new Error(`must be at most ${MAX_PAGE_SIZE}`);
  return size;
}

function parseFormat(value: string | boolean): SnapshotFormat {
  const text = asString(value).trim();
  const found = snapshotFormats.find((format) => format === text);
  if (!found) throw new Error(`must be one of ${snapshotFormats.join(', ')}`);
  return found;
}

function parsePositiveNumber(value: string | boolean): number {
  const number = Number(asString(value).trim());
  if (!(number > 0) || !Number.isFinite(number)) throw new Error('must be a number greater than zero');
  return number;
}

function parseNonNegativeInteger(value: string | boolean): number {
  const text = asString(value).trim();
  if (!/^\d+$/.test(text)) throw new Error('must be a whole number (0 or more)');
  return Number(text);
}

const KI = 1024;
const MI = KI * KI;
const SIZE_UNITS: Readonly<Record<string, number>> = { '': 1, k: 1000, K: 1000, M: 1e6, G: 1e9, Ki: KI, Mi: MI, Gi: MI * KI };

/** `4Mi`, `500Ki`, `1M`, `65536` — Kubernetes quantity suffixes, positive whole bytes. */
export function parseByteSize(value: string | boolean): number {
  const match = /^(\d+(?:\.\d+)?)\s*([kKMG]i?|)$/.exec(asString(value).trim());
  const unit = match ? SIZE_UNITS[match[2] as string] : undefined;
  if (!match || unit === undefined) throw new Error('must be a size in bytes like 65536, 512Ki or 4Mi');
  const bytes = Math.floor(Number(match[1]) * unit);
  if (bytes < 1) throw new Error('must be at least 1 byte');
  return bytes;
}
