/**
 * The flags of `crowsnest operator`: the operator-wide ones below (controllers, servers, webhook
 * certificate, leader election), then each capability's own table (src/logaccess/flags.ts,
 * src/prober/flags.ts), resolved into {@link OperatorOptions}.
 *
 * Cheap to import (`crowsnest operator --help` loads it): the catalog, the flag tables and
 * `observe/http.ts` (which loads `node:http` lazily), no runtime.
 */
import { hostname } from 'node:os';
import { flag, FlagResolver, OptionError, type Flag, type FlagSources } from '../flags.ts';
import { asString, parseBool, parseList, parseNamespace, parseNonEmpty, parseNonNegativeDurationMs, parseObjectName, parsePort, parsePositiveDurationMs, parsePositiveInteger } from '../flag-values.ts';
import { logAccessFlags, resolveLogAccessOptions } from '../logaccess/flags.ts';
import { parseBindAddress } from '../observe/http.ts';
import { guardFlags, resolveGuardOptions } from '../guard/flags.ts';
import { proberFlags, resolveProberOptions } from '../prober/flags.ts';
import { controllerCatalog } from './catalog.ts';
import { type OperatorOptions, serviceHosts, WEBHOOK_CERT_MODES, type WebhookCertMode } from './options.ts';

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
// Value parsers of the operator's own flags

/** Accepts what {@link parseBindAddress} accepts and keeps the user's spelling. */
function parseBindAddressFlag(value: string | boolean): string {
  const text = asString(value);
  parseBindAddress(text);
  return text;
}

function parseCertMode(value: string | boolean): WebhookCertMode {
  const text = asString(value);
  const mode = WEBHOOK_CERT_MODES.find((m) => m === text);
  if (!mode) throw new Error(`must be one of ${WEBHOOK_CERT_MODES.join(', ')}`);
  return mode;
}

// ---------------------------------------------------------------------------------------------
// Flags

const DEFAULT_LEADER_ELECTION_NAMESPACE = 'crowsnest-system';

/**
 * client-go's `JitterFactor`: the elector retries at `retryPeriod * (1 + rand*1.2)`, so the renew
 * deadline must leave room for one jittered retry.
 */
const LEADER_ELECTION_JITTER_FACTOR = 1.2;

/** The operator-wide flags, in help order. */
export const operatorFlags = {
  controllers: flag({
    name: 'controllers',
    valueName: '<list>',
    description: `comma-separated controllers to run: '*' for all, 'name' to enable, '-name' to disable`,
    defaultText: `'*' in a pod; run by hand, '*' less those the API server or pods must call (${controllerCatalog.filter((c) => c.inClusterOnly).map((c) => c.name).join(', ') || 'none'})`,
    parse: parseControllers,
  }),
  metricsBindAddress: flag({
    name: 'metrics-bind-address',
    valueName: '<address>',
    description: `address serving /metrics, as host:port or :port; '0' disables`,
    // Same ports as controller-runtime / kubebuilder scaffolds, so manifests look familiar.
    default: ':8080',
    parse: parseBindAddressFlag,
  }),
  healthProbeBindAddress: flag({
    name: 'health-probe-bind-address',
    valueName: '<address>',
    description: `address serving /healthz and /readyz, as host:port or :port; '0' disables`,
    default: ':8081',
    parse: parseBindAddressFlag,
  }),
  webhookPort: flag({
    name: 'webhook-port',
    valueName: '<port>',
    description: 'port of the admission webhook server, served on every replica when a controller has webhooks',
    default: '9443',
    parse: parsePort,
  }),
  webhookCertDir: flag({
    name: 'webhook-cert-dir',
    valueName: '<dir>',
    description: 'directory with the webhook serving certificate (tls.crt, tls.key), reloaded when it changes',
    default: '/tmp/k8s-webhook-server/serving-certs',
    parse: parseNonEmpty,
  }),
  webhookCertMode: flag({
    name: 'webhook-cert-mode',
    valueName: '<mode>',
    description: `where the webhook certificate comes from: 'self' (the leader keeps a CA and serving certificate in --webhook-cert-secret, renews them and the webhook configurations' caBundle; every replica writes them into --webhook-cert-dir) or 'cert-manager' (the directory is cert-manager's Secret, mounted)`,
    default: 'self',
    parse: parseCertMode,
  }),
  webhookCertSecret: flag({
    name: 'webhook-cert-secret',
    valueName: '<name>',
    description: 'the Secret in the operator\'s namespace holding the self-managed webhook certificate',
    default: 'crowsnest-webhook-cert',
    parse: parseObjectName,
  }),
  webhookService: flag({
    name: 'webhook-service',
    valueName: '<name>',
    description: 'the Service in front of the webhook server and the peer endpoint: the certificate names it, and agents reach the operator through it',
    default: 'crowsnest-webhook',
    parse: parseNamespace,
  }),
  webhookCertHosts: flag({
    name: 'webhook-cert-hosts',
    valueName: '<list>',
    description: 'more DNS names or IPs for the self-managed certificate, comma-separated (an operator outside the cluster, reached by webhook URL)',
    default: '',
    defaultText: 'none',
    parse: parseList,
  }),
  leaderElect: flag({
    name: 'leader-elect',
    valueName: '[bool]',
    description: 'elect a leader with a Lease so only one replica runs the controllers',
    defaultText: 'true in a pod ($KUBERNETES_SERVICE_HOST set) or with --leader-election-namespace, else false',
    parse: parseBool,
    negatable: true,
  }),
  leaderElectionNamespace: flag({
    name: 'leader-election-namespace',
    valueName: '<namespace>',
    description: 'namespace of the leader election Lease',
    defaultText: `$POD_NAMESPACE, else ${DEFAULT_LEADER_ELECTION_NAMESPACE}`,
    parse: parseNamespace,
  }),
  leaderElectionId: flag({
    name: 'leader-election-id',
    valueName: '<name>',
    description: 'name of the leader election Lease',
    default: 'crowsnest-operator',
    parse: parseObjectName,
  }),
  // client-go / controller-runtime leader election defaults.
  leaseDuration: flag({
    name: 'lease-duration',
    valueName: '<duration>',
    description: 'how long non-leaders wait before trying to take over an unrenewed lease',
    default: '15s',
    parse: parsePositiveDurationMs,
  }),
  renewDeadline: flag({
    name: 'renew-deadline',
    valueName: '<duration>',
    description: 'how long the leader keeps retrying to renew before giving up leadership',
    default: '10s',
    parse: parsePositiveDurationMs,
  }),
  retryPeriod: flag({
    name: 'retry-period',
    valueName: '<duration>',
    description: 'wait between leader election attempts',
    default: '2s',
    parse: parsePositiveDurationMs,
  }),
  workers: flag({
    name: 'workers',
    valueName: '<count>',
    description: 'concurrent reconciles per controller',
    default: '2',
    parse: parsePositiveInteger,
  }),
  shutdownTimeout: flag({
    name: 'shutdown-timeout',
    valueName: '<duration>',
    description: `how long to wait for in-flight work on shutdown when leader election is off ('0' stops at once); with leader election the renew deadline bounds it, so the Lease is never released while work still runs`,
    default: '30s',
    parse: parseNonNegativeDurationMs,
  }),
  identity: flag({
    name: 'identity',
    valueName: '<id>',
    description: 'holder identity of this replica in the leader election Lease',
    defaultText: 'hostname_<random uuid>',
    parse: parseNonEmpty,
  }),
};

/** Every flag of `crowsnest operator`, in help order: the operator's, then each capability's. */
export const operatorCommandFlags: readonly Flag<unknown>[] = [...Object.values(operatorFlags), ...Object.values(logAccessFlags), ...Object.values(proberFlags), ...Object.values(guardFlags)];

// ---------------------------------------------------------------------------------------------
// Resolution

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
 * @param globals the global `--kubeconfig` and `--context`.
 * @throws OptionError naming the offending flag.
 */
export function resolveOperatorOptions(
  sources: FlagSources,
  globals: { readonly kubeconfig?: string | undefined; readonly context?: string | undefined },
  defaults: OperatorDefaultsSource = {},
): OperatorOptions {
  const flags = new FlagResolver(sources);
  const getHostname = defaults.hostname ?? hostname;
  // The global Web Crypto loads on first use: importing node:crypto here cost every command ~6 ms.
  const getRandomSuffix = defaults.randomSuffix ?? (() => crypto.randomUUID());

  // The downward API conventionally exposes the pod's namespace as POD_NAMESPACE; running the
  // Lease there needs no extra configuration in the Helm chart.
  const podNamespace = sources.env['POD_NAMESPACE'];
  const namespaceDefault = podNamespace ? podNamespace : DEFAULT_LEADER_ELECTION_NAMESPACE;
  // kubebuilder's convention: leader election is on where replicas run (the chart, any pod:
  // the kubelet sets KUBERNETES_SERVICE_HOST in every container), off for an operator started by
  // hand, which is alone and would otherwise wait on a Lease in a namespace its cluster may not
  // have. Naming the Lease namespace asks for the Lease.
  const inPod = Boolean(sources.env['KUBERNETES_SERVICE_HOST']);
  const leaseNamespace = flags.get(operatorFlags.leaderElectionNamespace, namespaceDefault);
  // The namespace the operator runs in (its Secret, its Service): the pod's, else the Lease's.
  const operatorNamespace = podNamespace ? podNamespace : leaseNamespace;
  const webhookService = flags.get(operatorFlags.webhookService);

  const options: OperatorOptions = {
    kubeconfig: globals.kubeconfig,
    context: globals.context,
    controllers: flags.get(operatorFlags.controllers, inPod ? ALL_CONTROLLERS : BY_HAND_CONTROLLERS),
    metricsBindAddress: flags.get(operatorFlags.metricsBindAddress),
    healthProbeBindAddress: flags.get(operatorFlags.healthProbeBindAddress),
    webhookPort: flags.get(operatorFlags.webhookPort),
    webhookCertDir: flags.get(operatorFlags.webhookCertDir),
    leaderElect: flags.get(operatorFlags.leaderElect, inPod || flags.given(operatorFlags.leaderElectionNamespace)),
    leaderElectionNamespace: leaseNamespace,
    leaderElectionId: flags.get(operatorFlags.leaderElectionId),
    leaseDurationMs: flags.get(operatorFlags.leaseDuration),
    renewDeadlineMs: flags.get(operatorFlags.renewDeadline),
    retryPeriodMs: flags.get(operatorFlags.retryPeriod),
    workers: flags.get(operatorFlags.workers),
    shutdownTimeoutMs: flags.get(operatorFlags.shutdownTimeout),
    identity: flags.get(operatorFlags.identity) ?? `${getHostname()}_${getRandomSuffix()}`,
    webhookCertificate: {
      mode: flags.get(operatorFlags.webhookCertMode),
      namespace: operatorNamespace,
      secret: flags.get(operatorFlags.webhookCertSecret),
      hosts: [...serviceHosts(webhookService, operatorNamespace), ...flags.get(operatorFlags.webhookCertHosts)],
    },
    logaccess: resolveLogAccessOptions(flags),
    prober: resolveProberOptions(flags, { namespace: operatorNamespace, webhookService }),
    guard: resolveGuardOptions(flags, { namespace: operatorNamespace, webhookService }),
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
