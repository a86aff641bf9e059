/**
 * Command-line options of `crowsnest`: their definitions (as the CLI shows them) and their
 * resolution from flags, environment variables and defaults into typed, validated values.
 *
 * Resolution is a pure function of its inputs (flags, env, host name), so every rule below is
 * unit-tested without spawning the CLI. Precedence for every option: flag > env > default.
 *
 * This module must stay cheap to import: `crowsnest --help` loads it. Only Node built-ins, type-only
 * imports and modules that are themselves cheap (`observe/http.ts` loads `node:http` lazily).
 */
import { hostname } from 'node:os';
import { parseBindAddress } from '../observe/http.ts';
import type { LogFormat, LogLevel } from '../observe/logger.ts';
import { controllerCatalog } from '../operator/catalog.ts';
import type { OperatorOptions } from '../operator/options.ts';
import { parseResourceRequirements, serviceHosts, WEBHOOK_CERT_MODES, type WebhookCertMode } from '../prober/options.ts';

export type { OperatorOptions } from '../operator/options.ts';

// ---------------------------------------------------------------------------------------------
// Errors

/**
 * A flag or environment value the user got wrong. The CLI prints `error: <message>` (one line,
 * no stack) and exits with code 2, the conventional "usage error" status.
 */
export class OptionError extends Error {
  /** The long flag the problem is about, e.g. `--lease-duration`. */
  readonly flag: string;

  constructor(flag: string, message: string) {
    super(message);
    this.name = 'OptionError';
    this.flag = flag;
  }
}

// ---------------------------------------------------------------------------------------------
// Durations

/** Milliseconds per Go duration unit. `µ` (U+00B5) and `μ` (U+03BC) are both accepted, as in Go. */
const MS_PER_UNIT: Readonly<Record<string, number>> = {
  ns: 1e-6,
  us: 1e-3,
  'µs': 1e-3,
  'μs': 1e-3,
  ms: 1,
  s: 1_000,
  m: 60_000,
  h: 3_600_000,
};

const VALID_UNITS = 'ns, us, ms, s, m, h';

/**
 * Parses a Go-style duration (`"15s"`, `"1m30s"`, `"500ms"`, `"1.5h"`, `"-2s"`, `"0"`) into
 * milliseconds, following `time.ParseDuration`: a sequence of decimal numbers each with a unit;
 * a bare `0` is the only number allowed without one.
 *
 * @returns the duration in milliseconds; may be fractional (`"1500us"` → 1.5) or negative.
 * @throws Error naming the input and what is wrong with it.
 */
export function parseDuration(input: string): number {
  let rest = input;
  let sign = 1;
  if (rest.startsWith('-') || rest.startsWith('+')) {
    if (rest[0] === '-') sign = -1;
    rest = rest.slice(1);
  }
  if (rest === '0') return 0;
  if (rest === '') throw new Error(`invalid duration "${input}"`);

  let totalMs = 0;
  // Each iteration consumes one `<number><unit>` term.
  const term = /^(\d*)(?:\.(\d*))?([^\d.]*)/;
  while (rest !== '') {
    const match = term.exec(rest);
    const [consumed = '', whole = '', fraction, unit = ''] = match ?? [];
    if (whole === '' && (fraction === undefined || fraction === '')) {
      throw new Error(`invalid duration "${input}"`);
    }
    if (unit === '') throw new Error(`missing unit in duration "${input}" (valid units: ${VALID_UNITS})`);
    const msPerUnit = MS_PER_UNIT[unit];
    if (msPerUnit === undefined) {
      throw new Error(`unknown unit "${unit}" in duration "${input}" (valid units: ${VALID_UNITS})`);
    }
    totalMs += Number(`${whole || '0'}.${fraction ?? ''}0`) * msPerUnit;
    rest = rest.slice(consumed.length);
  }
  if (!Number.isFinite(totalMs)) throw new Error(`duration "${input}" is too large`);
  return sign * totalMs;
}

// ---------------------------------------------------------------------------------------------
// Controllers

/**
 * Names of the controllers `crowsnest operator` can run, all enabled by default. A capability
 * adds its controller to the catalog (src/operator/catalog.ts) when it lands.
 */
export const knownControllers: readonly string[] = controllerCatalog.map((c) => c.name);

/** The `--controllers` value that enables every known controller. */
const ALL_CONTROLLERS = '*';

/** The default `--controllers` outside a pod: every controller that nothing in the cluster needs to call. */
const BY_HAND_CONTROLLERS = [ALL_CONTROLLERS, ...controllerCatalog.filter((c) => c.inClusterOnly).map((c) => `-${c.name}`)].join(',');

/**
 * Resolves a `--controllers` list with kube-controller-manager semantics: `*` enables every
 * known controller, `name` enables one, `-name` disables one (winning over `*`). Order in the
 * list does not matter. An empty list enables nothing.
 *
 * @param spec comma-separated list, e.g. `"*,-guard"`; blanks around items are ignored.
 * @param known the controller names that exist; defaults to {@link knownControllers}.
 * @returns the enabled controllers, in the order of `known`.
 * @throws Error for unknown names and for a name both enabled and disabled.
 */
export function resolveControllers(spec: string, known: readonly string[] = knownControllers): readonly string[] {
  const items = spec.split(',').map((item) => item.trim()).filter((item) => item !== '');
  let all = false;
  const enabled = new Set<string>();
  const disabled = new Set<string>();
  for (const item of items) {
    if (item === ALL_CONTROLLERS) {
      all = true;
      continue;
    }
    const negated = item.startsWith('-');
    const name = negated ? item.slice(1) : item;
    if (!known.includes(name)) {
      const choices = known.length > 0 ? known.join(', ') : 'none yet';
      throw new Error(`unknown controller "${name}" (known controllers: ${choices})`);
    }
    (negated ? disabled : enabled).add(name);
  }
  for (const name of enabled) {
    if (disabled.has(name)) throw new Error(`controller "${name}" is both enabled and disabled`);
  }
  return known.filter((name) => !disabled.has(name) && (all || enabled.has(name)));
}

/**
 * `--controllers` for `crowsnest operator`: a selection of nothing is refused, since an operator
 * without controllers would only hold its Lease, report ready and do nothing, which looks like
 * it works.
 */
function parseControllers(value: string | boolean): readonly string[] {
  const enabled = resolveControllers(asString(value));
  if (enabled.length === 0) {
    throw new Error(`selects no controller, so the operator would have nothing to run (known controllers: ${knownControllers.join(', ') || 'none yet'}; '*' runs them all)`);
  }
  return enabled;
}

// ---------------------------------------------------------------------------------------------
// Flag definitions

/** One long flag as the CLI declares it. The CLI layer turns these into commander options. */
export interface FlagDefinition {
  /** Long name without leading dashes, e.g. `metrics-bind-address`. */
  readonly name: string;
  /**
   * Value placeholder for help, with commander's brackets: `<duration>` (required value) or
   * `[bool]` (optional value, for switches that also accept `--flag=false`).
   */
  readonly valueName: string;
  /** One sentence for `--help`, without the default. */
  readonly description: string;
  /** The default as a user would type it, or a phrase for computed defaults. */
  readonly defaultText: string;
  /** Whether a `--no-<name>` form exists (only for boolean switches). */
  readonly negatable?: boolean;
}

/** The environment variable that can set flag `name`: `CROWSNEST_<NAME_IN_UPPER_SNAKE>`. */
export function envVarFor(name: string): string {
  return `CROWSNEST_${name.toUpperCase().replaceAll('-', '_')}`;
}

/** Help text for a flag: description, default and the env variable that can set it. */
export function describeFlag(definition: FlagDefinition): string {
  return `${definition.description} (default: ${definition.defaultText}; env: ${envVarFor(definition.name)})`;
}

/** Defaults, spelled as a user would type them so help and parsing share one source. */
const OPERATOR_DEFAULTS = {
  controllers: ALL_CONTROLLERS,
  // Same ports as controller-runtime / kubebuilder scaffolds, so manifests look familiar.
  metricsBindAddress: ':8080',
  healthProbeBindAddress: ':8081',
  webhookPort: '9443',
  webhookCertDir: '/tmp/k8s-webhook-server/serving-certs',
  leaderElectionNamespace: 'crowsnest-system',
  leaderElectionId: 'crowsnest-operator',
  // client-go / controller-runtime leader election defaults.
  leaseDuration: '15s',
  renewDeadline: '10s',
  retryPeriod: '2s',
  workers: '2',
  shutdownTimeout: '30s',
  // podlogreader's naming, so Roles users already reference keep their names.
  logaccessNamePrefix: 'podlogreader-',
  webhookCertMode: 'self',
  webhookCertSecret: 'crowsnest-webhook-cert',
  webhookService: 'crowsnest-webhook',
  proberWebhookConfiguration: 'crowsnest-prober',
  proberPeerPort: '9444',
  // The same as the prober's DEFAULT_AGENT_RESOURCES (a unit test holds them equal); spelled here
  // so --help needs no import of the prober.
  proberAgentResources: '{"requests":{"cpu":"10m","memory":"64Mi"},"limits":{"memory":"128Mi"}}',
} as const;

/**
 * client-go's `JitterFactor`: the elector retries at `retryPeriod * (1 + rand*1.2)`, so the renew
 * deadline must leave room for one jittered retry.
 */
const LEADER_ELECTION_JITTER_FACTOR = 1.2;

/** Flags of `crowsnest operator`, in help order. */
export const operatorFlags: readonly FlagDefinition[] = [
  {
    name: 'controllers',
    valueName: '<list>',
    description: `comma-separated controllers to run: '*' for all, 'name' to enable, '-name' to disable`,
    defaultText: `'*' in a pod; run by hand, '*' less those the API server or pods must call (${controllerCatalog.filter((c) => c.inClusterOnly).map((c) => c.name).join(', ') || 'none'})`,
  },
  {
    name: 'metrics-bind-address',
    valueName: '<address>',
    description: `address serving /metrics, as host:port or :port; '0' disables`,
    defaultText: OPERATOR_DEFAULTS.metricsBindAddress,
  },
  {
    name: 'health-probe-bind-address',
    valueName: '<address>',
    description: `address serving /healthz and /readyz, as host:port or :port; '0' disables`,
    defaultText: OPERATOR_DEFAULTS.healthProbeBindAddress,
  },
  {
    name: 'webhook-port',
    valueName: '<port>',
    description: 'port of the admission webhook server, served on every replica when a controller has webhooks',
    defaultText: OPERATOR_DEFAULTS.webhookPort,
  },
  {
    name: 'webhook-cert-dir',
    valueName: '<dir>',
    description: 'directory with the webhook serving certificate (tls.crt, tls.key), reloaded when it changes',
    defaultText: OPERATOR_DEFAULTS.webhookCertDir,
  },
  {
    name: 'webhook-cert-mode',
    valueName: '<mode>',
    description: `where the webhook certificate comes from: 'self' (the leader keeps a CA and serving certificate in --webhook-cert-secret, renews them and the webhook configurations' caBundle; every replica writes them into --webhook-cert-dir) or 'cert-manager' (the directory is cert-manager's Secret, mounted)`,
    defaultText: OPERATOR_DEFAULTS.webhookCertMode,
  },
  {
    name: 'webhook-cert-secret',
    valueName: '<name>',
    description: 'the Secret in the operator\'s namespace holding the self-managed webhook certificate',
    defaultText: OPERATOR_DEFAULTS.webhookCertSecret,
  },
  {
    name: 'webhook-service',
    valueName: '<name>',
    description: 'the Service in front of the webhook server and the peer endpoint: the certificate names it, and agents reach the operator through it',
    defaultText: OPERATOR_DEFAULTS.webhookService,
  },
  {
    name: 'webhook-cert-hosts',
    valueName: '<list>',
    description: 'more DNS names or IPs for the self-managed certificate, comma-separated (an operator outside the cluster, reached by webhook URL)',
    defaultText: 'none',
  },
  {
    name: 'leader-elect',
    valueName: '[bool]',
    description: 'elect a leader with a Lease so only one replica runs the controllers',
    defaultText: 'true in a pod ($KUBERNETES_SERVICE_HOST set) or with --leader-election-namespace, else false',
    negatable: true,
  },
  {
    name: 'leader-election-namespace',
    valueName: '<namespace>',
    description: 'namespace of the leader election Lease',
    defaultText: `$POD_NAMESPACE, else ${OPERATOR_DEFAULTS.leaderElectionNamespace}`,
  },
  {
    name: 'leader-election-id',
    valueName: '<name>',
    description: 'name of the leader election Lease',
    defaultText: OPERATOR_DEFAULTS.leaderElectionId,
  },
  {
    name: 'lease-duration',
    valueName: '<duration>',
    description: 'how long non-leaders wait before trying to take over an unrenewed lease',
    defaultText: OPERATOR_DEFAULTS.leaseDuration,
  },
  {
    name: 'renew-deadline',
    valueName: '<duration>',
    description: 'how long the leader keeps retrying to renew before giving up leadership',
    defaultText: OPERATOR_DEFAULTS.renewDeadline,
  },
  {
    name: 'retry-period',
    valueName: '<duration>',
    description: 'wait between leader election attempts',
    defaultText: OPERATOR_DEFAULTS.retryPeriod,
  },
  {
    name: 'workers',
    valueName: '<count>',
    description: 'concurrent reconciles per controller',
    defaultText: OPERATOR_DEFAULTS.workers,
  },
  {
    name: 'shutdown-timeout',
    valueName: '<duration>',
    description: `how long to wait for in-flight work on shutdown when leader election is off ('0' stops at once); with leader election the renew deadline bounds it, so the Lease is never released while work still runs`,
    defaultText: OPERATOR_DEFAULTS.shutdownTimeout,
  },
  {
    name: 'identity',
    valueName: '<id>',
    description: 'holder identity of this replica in the leader election Lease',
    defaultText: 'hostname_<random uuid>',
  },
  {
    name: 'logaccess-name-prefix',
    valueName: '<prefix>',
    description: 'logaccess: name prefix of the Role, ServiceAccount and RoleBinding kept per opted-in workload',
    defaultText: OPERATOR_DEFAULTS.logaccessNamePrefix,
  },
  {
    name: 'logaccess-allow-pod-list',
    valueName: '[bool]',
    description: `logaccess: also grant 'list pods' in the namespace, as podlogreader did (it exposes the specs of every pod there, env values included)`,
    defaultText: 'true',
    negatable: true,
  },
  {
    name: 'create-sa-and-rolebinding',
    valueName: '[bool]',
    description: 'logaccess: also keep a ServiceAccount and a RoleBinding of the same name (podlogreader flag); existing ones we did not create are left alone',
    defaultText: 'false',
    negatable: true,
  },
  {
    name: 'logaccess-adopt-podlogreader',
    valueName: '[bool]',
    description: 'logaccess: take over the Role, ServiceAccount and RoleBinding podlogreader made for a Deployment (podlogreader-<name>, its exact rules, nothing added), with an Event; anything else of that name is left alone',
    defaultText: 'true',
    negatable: true,
  },
  {
    name: 'prober-webhook-configuration',
    valueName: '<name>',
    description: 'prober: the MutatingWebhookConfiguration whose caBundle the leader keeps (self-managed certificates)',
    defaultText: OPERATOR_DEFAULTS.proberWebhookConfiguration,
  },
  {
    name: 'prober-peer-port',
    valueName: '<port>',
    description: 'prober: port of the HTTPS endpoint agents learn their peers from, on every replica',
    defaultText: OPERATOR_DEFAULTS.proberPeerPort,
  },
  {
    name: 'prober-peers-url',
    valueName: '<url>',
    description: 'prober: how agents reach that endpoint',
    defaultText: 'https://<webhook-service>.<namespace>.svc:<prober-peer-port>',
  },
  {
    name: 'prober-agent-image',
    valueName: '<image>',
    description: 'prober: the image of the injected agent when a NetworkProber names none (the chart passes its own image); without one, pods are admitted without the agent',
    defaultText: 'none',
  },
  {
    name: 'prober-agent-resources',
    valueName: '<json>',
    description: 'prober: the agent container\'s requests and limits when a NetworkProber sets none',
    defaultText: OPERATOR_DEFAULTS.proberAgentResources,
  },
];

// ---------------------------------------------------------------------------------------------
// Resolution

/** Where option values come from. */
export interface OptionSources {
  /**
   * Values given on the command line, keyed by long flag name (`lease-duration`). A boolean
   * switch is `true`/`false`, or a string when written `--flag=value`. Absent or `undefined`
   * means "not given".
   */
  readonly flags: Readonly<Record<string, string | boolean | undefined>>;
  /** The process environment (injected so tests do not touch `process.env`). */
  readonly env: Readonly<Record<string, string | undefined>>;
}

/** A value found for a flag, with where it came from for error messages. */
interface RawValue {
  readonly value: string | boolean;
  /** `undefined` when set by the flag itself; the env variable name otherwise. */
  readonly envVar?: string;
}

/** Looks up `name` on the command line, then in its `CROWSNEST_*` env variable. */
function lookup(sources: OptionSources, name: string, envVar = envVarFor(name)): RawValue | undefined {
  const flag = sources.flags[name];
  if (flag !== undefined) return { value: flag };
  const fromEnv = sources.env[envVar];
  if (fromEnv !== undefined && fromEnv !== '') return { value: fromEnv, envVar };
  return undefined;
}

/**
 * Converts a raw value with `parse`, turning any parse error into an {@link OptionError} that
 * names the flag, the value and (when it came from the environment) the variable.
 */
function convert<T>(name: string, raw: RawValue, parse: (value: string | boolean) => T): T {
  try {
    return parse(raw.value);
  } catch (err) {
    const reason = err instanceof Error ? err.message : String(err);
    const from = raw.envVar ? ` (from ${raw.envVar})` : '';
    throw new OptionError(`--${name}`, `invalid value "${String(raw.value)}" for --${name}${from}: ${reason}`);
  }
}

/** Resolves one option: flag > env > `fallback` (parsed by the same `parse`). */
function resolve<T>(
  sources: OptionSources,
  name: string,
  parse: (value: string | boolean) => T,
  fallback: string | boolean,
): T {
  return convert(name, lookup(sources, name) ?? { value: fallback }, parse);
}

export function asString(value: string | boolean): string {
  if (typeof value !== 'string') throw new Error('a value is required');
  return value;
}

/** Go's `strconv.ParseBool` spellings, so `--leader-elect=false` behaves as in Go operators. */
const TRUE_WORDS = new Set(['1', 't', 'T', 'true', 'TRUE', 'True']);
const FALSE_WORDS = new Set(['0', 'f', 'F', 'false', 'FALSE', 'False']);

export function parseBool(value: string | boolean): boolean {
  if (typeof value === 'boolean') return value;
  if (TRUE_WORDS.has(value)) return true;
  if (FALSE_WORDS.has(value)) return false;
  throw new Error('expected true or false');
}

export function parsePositiveDurationMs(value: string | boolean): number {
  const ms = parseDuration(asString(value));
  if (ms <= 0) throw new Error('must be greater than zero');
  return ms;
}

export function parseNonNegativeDurationMs(value: string | boolean): number {
  const ms = parseDuration(asString(value));
  if (ms < 0) throw new Error('must not be negative');
  return ms;
}

export function parsePositiveInteger(value: string | boolean): number {
  const text = asString(value);
  if (!/^\d+$/.test(text) || Number(text) < 1) throw new Error('must be a whole number of at least 1');
  return Number(text);
}

/** A report directory: any path but the empty one (which would mean "nowhere"). */
export function parseReportDir(value: string | boolean): string {
  const text = asString(value).trim();
  if (text === '') throw new Error('must not be empty (the default is ./reports)');
  return text;
}

/** Accepts what {@link parseBindAddress} accepts and keeps the user's spelling. */
function parseBindAddressFlag(value: string | boolean): string {
  const text = asString(value);
  parseBindAddress(text);
  return text;
}

/** A TCP port to listen on, 1–65535. */
function parsePort(value: string | boolean): number {
  const text = asString(value);
  if (!/^\d+$/.test(text) || Number(text) < 1 || Number(text) > 65_535) throw new Error('must be a port number from 1 to 65535');
  return Number(text);
}

const DNS1123_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const DNS1123_LABEL_MAX_LENGTH = 63;
const DNS1123_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
const DNS1123_SUBDOMAIN_MAX_LENGTH = 253;

export function parseNamespace(value: string | boolean): string {
  const text = asString(value);
  if (text.length > DNS1123_LABEL_MAX_LENGTH || !DNS1123_LABEL.test(text)) {
    throw new Error('must be a namespace name (lowercase letters, digits and "-", at most 63 characters)');
  }
  return text;
}

function parseObjectName(value: string | boolean): string {
  const text = asString(value);
  if (text.length > DNS1123_SUBDOMAIN_MAX_LENGTH || !DNS1123_SUBDOMAIN.test(text)) {
    throw new Error('must be an object name (lowercase letters, digits, "-" and ".")');
  }
  return text;
}

/** A prefix that keeps `<prefix><workload name>` a valid object name. */
function parseNamePrefix(value: string | boolean): string {
  const text = asString(value);
  if (!/^[a-z0-9]([-a-z0-9.]*)?$/.test(text) || text.length > 63) throw new Error('must be lower-case letters, digits, dots and dashes, starting with a letter or digit');
  return text;
}

function parseCertMode(value: string | boolean): WebhookCertMode {
  const text = asString(value);
  const mode = WEBHOOK_CERT_MODES.find((m) => m === text);
  if (!mode) throw new Error(`must be one of ${WEBHOOK_CERT_MODES.join(', ')}`);
  return mode;
}

/** Comma-separated, blanks dropped; the empty string is the empty list. */
function parseList(value: string | boolean): string[] {
  return asString(value).split(',').map((item) => item.trim()).filter((item) => item !== '');
}

function parseHttpsUrl(value: string | boolean): string {
  const text = asString(value);
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw new Error('must be a URL like https://host:port');
  }
  if (url.protocol !== 'https:') throw new Error('must be an https:// URL (agents send their token only over TLS)');
  return text.replace(/\/+$/, '');
}

function parseNonEmpty(value: string | boolean): string {
  const text = asString(value);
  if (text.trim() === '') throw new Error('must not be empty');
  return text;
}

// ---------------------------------------------------------------------------------------------
// Global options

/** Levels accepted by `--log-level`, most verbose first. */
export const logLevels: readonly LogLevel[] = ['trace', 'debug', 'info', 'warn', 'error'];
/** Formats accepted by `--log-format`. */
export const logFormats: readonly LogFormat[] = ['json', 'text'];

const DEFAULT_LOG_LEVEL: LogLevel = 'info';

/** Options every command accepts. */
export interface GlobalOptions {
  /** Explicit kubeconfig path (`--kubeconfig`); `undefined` lets the loader search. */
  readonly kubeconfig?: string;
  /** kubeconfig context to use; `undefined` means the file's current context. */
  readonly context?: string;
  /** Default `info`. */
  readonly logLevel: LogLevel;
  /** Default `text` when stderr is a terminal (a human is watching), else `json` (a collector is). */
  readonly logFormat: LogFormat;
}

/** Global option definitions; `kubeconfig`'s env variable is the standard `KUBECONFIG`. */
export const globalFlags = {
  kubeconfig: {
    name: 'kubeconfig',
    valueName: '<path>',
    description: 'path to a kubeconfig file',
    defaultText: '$KUBECONFIG, else in-cluster config, else ~/.kube/config',
  },
  context: {
    name: 'context',
    valueName: '<name>',
    description: 'kubeconfig context to use',
    defaultText: 'the current context',
  },
  logLevel: {
    name: 'log-level',
    valueName: '<level>',
    description: `log verbosity: ${logLevels.join(', ')}`,
    defaultText: DEFAULT_LOG_LEVEL,
  },
  logFormat: {
    name: 'log-format',
    valueName: '<format>',
    description: `log format: ${logFormats.join(' or ')}`,
    defaultText: 'text when stderr is a terminal, else json',
  },
} as const satisfies Record<string, FlagDefinition>;

function oneOf<T extends string>(choices: readonly T[]): (value: string | boolean) => T {
  return (value) => {
    const text = asString(value);
    const found = choices.find((choice) => choice === text);
    if (found === undefined) throw new Error(`must be one of ${choices.join(', ')}`);
    return found;
  };
}

/**
 * Resolves the global options. `KUBECONFIG` is deliberately not read here: the kubeconfig loader
 * applies it with kubectl's list semantics (several files, merged).
 *
 * @param stderrIsTTY whether stderr is a terminal; picks the default log format.
 * @throws OptionError for a bad level or format.
 */
export function resolveGlobalOptions(sources: OptionSources, stderrIsTTY: boolean): GlobalOptions {
  const kubeconfig = sources.flags['kubeconfig'];
  const context = sources.flags['context'];
  return {
    kubeconfig: typeof kubeconfig === 'string' ? convert('kubeconfig', { value: kubeconfig }, parseNonEmpty) : undefined,
    context: typeof context === 'string' ? convert('context', { value: context }, parseNonEmpty) : undefined,
    logLevel: resolve(sources, 'log-level', oneOf(logLevels), DEFAULT_LOG_LEVEL),
    logFormat: resolve(sources, 'log-format', oneOf(logFormats), stderrIsTTY ? 'text' : 'json'),
  };
}

// ---------------------------------------------------------------------------------------------
// Operator options

/** Where the operator's computed defaults come from; injected so tests are deterministic. */
export interface OperatorDefaultsSource {
  /** Default `os.hostname`. */
  readonly hostname?: () => string;
  /** Default `crypto.randomUUID`. Makes identities unique across restarts of the same pod. */
  readonly randomSuffix?: () => string;
}

/**
 * Resolves the options of `crowsnest operator` from flags, `CROWSNEST_*` env variables and
 * defaults, and checks the leader election timings the way client-go does.
 *
 * @throws OptionError naming the offending flag.
 */
export function resolveOperatorOptions(
  sources: OptionSources,
  globals: Pick<GlobalOptions, 'kubeconfig' | 'context'>,
  defaults: OperatorDefaultsSource = {},
): OperatorOptions {
  const getHostname = defaults.hostname ?? hostname;
  // The global Web Crypto loads on first use: importing node:crypto here cost every command ~6 ms.
  const getRandomSuffix = defaults.randomSuffix ?? (() => crypto.randomUUID());

  // The downward API conventionally exposes the pod's namespace as POD_NAMESPACE; running the
  // Lease there needs no extra configuration in the Helm chart.
  const podNamespace = sources.env['POD_NAMESPACE'];
  const namespaceDefault = podNamespace ? podNamespace : OPERATOR_DEFAULTS.leaderElectionNamespace;
  const identityRaw = lookup(sources, 'identity');
  // kubebuilder's convention: leader election is on where replicas run (the chart, any pod:
  // the kubelet sets KUBERNETES_SERVICE_HOST in every container), off for an operator started by
  // hand, which is alone and would otherwise wait on a Lease in a namespace its cluster may not
  // have. Naming the Lease namespace asks for the Lease.
  const inPod = Boolean(sources.env['KUBERNETES_SERVICE_HOST']);
  const leaseNamespaceGiven = lookup(sources, 'leader-election-namespace') !== undefined;
  // The namespace the operator runs in (its Secret, its Service): the pod's, else the Lease's.
  const operatorNamespace = podNamespace ? podNamespace : resolve(sources, 'leader-election-namespace', parseNamespace, namespaceDefault);
  const certMode = resolve(sources, 'webhook-cert-mode', parseCertMode, OPERATOR_DEFAULTS.webhookCertMode);
  const webhookService = resolve(sources, 'webhook-service', parseNamespace, OPERATOR_DEFAULTS.webhookService);
  const extraCertHosts = resolve(sources, 'webhook-cert-hosts', parseList, '');
  const peerPort = resolve(sources, 'prober-peer-port', parsePort, OPERATOR_DEFAULTS.proberPeerPort);
  const agentImageRaw = lookup(sources, 'prober-agent-image');

  const options: OperatorOptions = {
    kubeconfig: globals.kubeconfig,
    context: globals.context,
    controllers: resolve(sources, 'controllers', parseControllers, inPod ? OPERATOR_DEFAULTS.controllers : BY_HAND_CONTROLLERS),
    metricsBindAddress: resolve(sources, 'metrics-bind-address', parseBindAddressFlag, OPERATOR_DEFAULTS.metricsBindAddress),
    healthProbeBindAddress: resolve(
      sources,
      'health-probe-bind-address',
      parseBindAddressFlag,
      OPERATOR_DEFAULTS.healthProbeBindAddress,
    ),
    webhookPort: resolve(sources, 'webhook-port', parsePort, OPERATOR_DEFAULTS.webhookPort),
    webhookCertDir: resolve(sources, 'webhook-cert-dir', parseNonEmpty, OPERATOR_DEFAULTS.webhookCertDir),
    leaderElect: resolve(sources, 'leader-elect', parseBool, inPod || leaseNamespaceGiven),
    leaderElectionNamespace: resolve(sources, 'leader-election-namespace', parseNamespace, namespaceDefault),
    leaderElectionId: resolve(sources, 'leader-election-id', parseObjectName, OPERATOR_DEFAULTS.leaderElectionId),
    leaseDurationMs: resolve(sources, 'lease-duration', parsePositiveDurationMs, OPERATOR_DEFAULTS.leaseDuration),
    renewDeadlineMs: resolve(sources, 'renew-deadline', parsePositiveDurationMs, OPERATOR_DEFAULTS.renewDeadline),
    retryPeriodMs: resolve(sources, 'retry-period', parsePositiveDurationMs, OPERATOR_DEFAULTS.retryPeriod),
    workers: resolve(sources, 'workers', parsePositiveInteger, OPERATOR_DEFAULTS.workers),
    shutdownTimeoutMs: resolve(sources, 'shutdown-timeout', parseNonNegativeDurationMs, OPERATOR_DEFAULTS.shutdownTimeout),
    identity: identityRaw ? convert('identity', identityRaw, parseNonEmpty) : `${getHostname()}_${getRandomSuffix()}`,
    logaccess: {
      namePrefix: resolve(sources, 'logaccess-name-prefix', parseNamePrefix, OPERATOR_DEFAULTS.logaccessNamePrefix),
      allowPodList: resolve(sources, 'logaccess-allow-pod-list', parseBool, true),
      createServiceAccountAndRoleBinding: resolve(sources, 'create-sa-and-rolebinding', parseBool, false),
      adoptPodlogreader: resolve(sources, 'logaccess-adopt-podlogreader', parseBool, true),
    },
    prober: {
      namespace: operatorNamespace,
      certMode,
      certSecret: resolve(sources, 'webhook-cert-secret', parseObjectName, OPERATOR_DEFAULTS.webhookCertSecret),
      certHosts: [...serviceHosts(webhookService, operatorNamespace), ...extraCertHosts],
      webhookConfiguration: resolve(sources, 'prober-webhook-configuration', parseObjectName, OPERATOR_DEFAULTS.proberWebhookConfiguration),
      peerPort,
      peersUrl: resolve(sources, 'prober-peers-url', parseHttpsUrl, `https://${webhookService}.${operatorNamespace}.svc:${peerPort}`),
      agentImage: agentImageRaw ? convert('prober-agent-image', agentImageRaw, parseNonEmpty) : undefined,
      agentResources: resolve(sources, 'prober-agent-resources', (value) => parseResourceRequirements(asString(value)), OPERATOR_DEFAULTS.proberAgentResources),
    },
  };

  // Only meaningful when electing: without a Lease these timings are never used.
  if (options.leaderElect) checkLeaderElectionTimings(options);
  return options;
}

/**
 * The invariants client-go's `NewLeaderElector` enforces: a leader must give up (renew deadline)
 * before others may take over (lease duration), and must get at least one jittered retry in.
 */
function checkLeaderElectionTimings(options: OperatorOptions): void {
  if (options.leaseDurationMs <= options.renewDeadlineMs) {
    throw new OptionError(
      '--lease-duration',
      `--lease-duration (${options.leaseDurationMs}ms) must be greater than --renew-deadline (${options.renewDeadlineMs}ms)`,
    );
  }
  const minRenewDeadlineMs = options.retryPeriodMs * LEADER_ELECTION_JITTER_FACTOR;
  if (options.renewDeadlineMs <= minRenewDeadlineMs) {
    throw new OptionError(
      '--renew-deadline',
      `--renew-deadline (${options.renewDeadlineMs}ms) must be greater than ` +
        `${LEADER_ELECTION_JITTER_FACTOR} × --retry-period (${minRenewDeadlineMs}ms)`,
    );
  }
}
