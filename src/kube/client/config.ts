/**
 * Finding and loading the Kubernetes client configuration, with controller-runtime's precedence:
 *
 * 1. `--kubeconfig <path>` — exactly that file;
 * 2. `KUBECONFIG` — kubectl's list of files (`a:b`), merged, missing files skipped;
 * 3. in-cluster — when `KUBERNETES_SERVICE_HOST` is set and the service account token exists;
 * 4. `~/.kube/config`.
 *
 * The first source that is present is used; a broken one is an error, never a silent fall-through
 * to the next (a typo in `--kubeconfig` must not quietly target another cluster).
 *
 * The result is our own {@link ClientConfig}, not client-node's `KubeConfig`: loading that one
 * pulls in client-node's generated API models, ~85 MB of memory for a short CLI run.
 */
import { existsSync, readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { delimiter, join } from 'node:path';
import { ClientConfig, type ClientConfigEntries, type ClientConfigOptions } from './kubeconfig.ts';
import { mergeKubeconfigs, readKubeconfigFile } from './kubeconfig-file.ts';

export interface LoadKubeConfigOptions {
  /** Explicit kubeconfig file (`--kubeconfig`); wins over every other source. */
  readonly kubeconfig?: string;
  /** Context to use instead of the file's `current-context` (`--context`). */
  readonly context?: string;
}

/** The parts of the machine the loader looks at; injected so tests never read the real ones. */
export interface KubeConfigEnvironment {
  /** Default `process.env`. */
  readonly env?: Readonly<Record<string, string | undefined>>;
  /** Default `os.homedir()`. */
  readonly homeDir?: string;
  /** Where the kubelet mounts the service account. Default `/var/run/secrets/kubernetes.io/serviceaccount`. */
  readonly serviceAccountDir?: string;
  /** Where exec credential plugins' stderr goes. Default our stderr. */
  readonly stderr?: ClientConfigOptions['stderr'];
}

/** Which source a configuration came from. */
export type KubeConfigSource =
  | { readonly kind: 'flag'; readonly path: string }
  | { readonly kind: 'env'; readonly paths: readonly string[] }
  | { readonly kind: 'in-cluster'; readonly serviceAccountDir: string }
  | { readonly kind: 'home'; readonly path: string };

/** A loaded configuration and where it came from. */
export interface ResolvedKubeConfig {
  readonly kubeConfig: ClientConfig;
  readonly source: KubeConfigSource;
}

/**
 * No source was present at all (as opposed to a present but broken one). Commands that can work
 * without a cluster (`crowsnest version`) check for this class.
 */
export class KubeConfigNotFoundError extends Error {
  /** Each source tried, with why it was not used. */
  readonly tried: readonly string[];

  constructor(tried: readonly string[]) {
    super(`no Kubernetes configuration found; tried ${tried.join(', ')}. Pass --kubeconfig or set KUBECONFIG.`);
    this.name = 'KubeConfigNotFoundError';
    this.tried = tried;
  }
}

const DEFAULT_SERVICE_ACCOUNT_DIR = '/var/run/secrets/kubernetes.io/serviceaccount';

/** Names client-go and client-node give the in-cluster entries, kept so logs look familiar. */
const IN_CLUSTER = { cluster: 'inCluster', user: 'inClusterUser', context: 'inClusterContext' } as const;

/** Ports on which the in-cluster API server speaks plain HTTP (client-node's rule). */
const PLAIN_HTTP_PORTS = new Set(['80', '8080', '8001']);

/**
 * Loads the client configuration by the precedence in this module's header and selects
 * `options.context` when given.
 *
 * @throws KubeConfigNotFoundError when no source is present; Error naming the source when one is
 *   present but unreadable, invalid, or lacks the requested context.
 */
export function loadKubeConfig(options: LoadKubeConfigOptions = {}, environment: KubeConfigEnvironment = {}): ClientConfig {
  return resolveKubeConfig(options, environment).kubeConfig;
}

/** Like {@link loadKubeConfig}, also telling which source was used (for logs). */
export function resolveKubeConfig(
  options: LoadKubeConfigOptions = {},
  environment: KubeConfigEnvironment = {},
): ResolvedKubeConfig {
  const env = environment.env ?? process.env;
  const homeDir = environment.homeDir ?? homedir();
  const serviceAccountDir = environment.serviceAccountDir ?? DEFAULT_SERVICE_ACCOUNT_DIR;
  // Exec plugins inherit the environment the configuration was found in.
  const clientOptions: ClientConfigOptions = { env, ...(environment.stderr ? { stderr: environment.stderr } : {}) };
  const loadFiles = (paths: readonly string[], origin: string): ClientConfig => new ClientConfig(readFiles(paths, origin), clientOptions);
  const tried: string[] = [];

  let resolved: ResolvedKubeConfig | undefined;
  if (options.kubeconfig !== undefined && options.kubeconfig !== '') {
    const path = options.kubeconfig;
    if (!existsSync(path)) throw new Error(`kubeconfig ${path} (from --kubeconfig) does not exist`);
    resolved = { kubeConfig: loadFiles([path], '--kubeconfig'), source: { kind: 'flag', path } };
  }

  const kubeconfigEnv = env['KUBECONFIG'];
  if (!resolved && kubeconfigEnv !== undefined && kubeconfigEnv !== '') {
    const listed = kubeconfigEnv.split(delimiter).filter((path) => path !== '');
    // kubectl skips missing entries of the list; only a list naming nothing usable is an error.
    const paths = listed.filter((path) => existsSync(path));
    if (paths.length === 0) throw new Error(`KUBECONFIG=${kubeconfigEnv} names no existing file`);
    resolved = { kubeConfig: loadFiles(paths, 'KUBECONFIG'), source: { kind: 'env', paths } };
  }
  if (!resolved) tried.push('--kubeconfig (not given)', 'KUBECONFIG (not set)');

  if (!resolved) {
    const inCluster = inClusterConfig(env, serviceAccountDir);
    if (inCluster.kind === 'found') {
      resolved = { kubeConfig: new ClientConfig(inCluster.entries, clientOptions), source: { kind: 'in-cluster', serviceAccountDir } };
    } else {
      tried.push(`in-cluster config (${inCluster.reason})`);
    }
  }

  if (!resolved) {
    const path = join(homeDir, '.kube', 'config');
    if (existsSync(path)) resolved = { kubeConfig: loadFiles([path], path), source: { kind: 'home', path } };
    else tried.push(`${path} (does not exist)`);
  }

  if (!resolved) throw new KubeConfigNotFoundError(tried);
  selectContext(resolved, options.context);
  return resolved;
}

/** One line naming a source, for logs and errors: `kubeconfig /home/me/.kube/config`. */
export function describeSource(source: KubeConfigSource): string {
  switch (source.kind) {
    case 'flag':
      return `kubeconfig ${source.path} (from --kubeconfig)`;
    case 'env':
      return `kubeconfig ${source.paths.join(delimiter)} (from KUBECONFIG)`;
    case 'in-cluster':
      return `in-cluster config (service account in ${source.serviceAccountDir})`;
    case 'home':
      return `kubeconfig ${source.path}`;
  }
}

/** What a configuration points at, safe to log: no tokens, no passwords, no certificates. */
export interface KubeConfigDescription {
  /** API server URL, with any user:password part removed. `<none>` without a cluster. */
  readonly server: string;
  /** Current context name. */
  readonly context: string;
  /** User entry name (a name in the kubeconfig, not a credential). */
  readonly user: string;
}

const NONE = '<none>';

/** Describes the current context of `kc` for logs. Never includes credentials. */
export function describeKubeConfig(kc: ClientConfig): KubeConfigDescription {
  return {
    server: redactServer(kc.getCurrentCluster()?.server),
    context: kc.getCurrentContext() || NONE,
    user: kc.getCurrentUser()?.name ?? NONE,
  };
}

function redactServer(server: string | undefined): string {
  if (!server) return NONE;
  try {
    const url = new URL(server);
    url.username = '';
    url.password = '';
    return url.toString().replace(/\/$/, '');
  } catch {
    // Not a URL: say so rather than echo something that could hold a secret.
    return '<unparseable server URL>';
  }
}

// ---------------------------------------------------------------------------------------------

/** Reads and merges kubeconfig files (kubectl's rules, see {@link mergeKubeconfigs}). */
function readFiles(paths: readonly string[], origin: string): ClientConfigEntries {
  return mergeKubeconfigs(
    paths.map((path) => {
      try {
        return readKubeconfigFile(path);
      } catch (err) {
        const reason = err instanceof Error ? err.message : String(err);
        throw new Error(`cannot load kubeconfig ${path} (from ${origin}): ${reason}`, { cause: err });
      }
    }),
  );
}

type InClusterResult = { readonly kind: 'found'; readonly entries: ClientConfigEntries } | { readonly kind: 'absent'; readonly reason: string };

/**
 * The in-cluster configuration, built like client-go's `InClusterConfig` but from the injected
 * environment. The token is referenced by file, not copied: it is re-read for every request, so
 * the kubelet's token rotation keeps working. The pod's namespace becomes the context's.
 */
function inClusterConfig(env: Readonly<Record<string, string | undefined>>, serviceAccountDir: string): InClusterResult {
  const host = env['KUBERNETES_SERVICE_HOST'];
  const port = env['KUBERNETES_SERVICE_PORT'];
  if (!host) return { kind: 'absent', reason: 'KUBERNETES_SERVICE_HOST not set' };
  if (!port) return { kind: 'absent', reason: 'KUBERNETES_SERVICE_PORT not set' };
  const tokenFile = join(serviceAccountDir, 'token');
  if (!existsSync(tokenFile)) return { kind: 'absent', reason: `${tokenFile} does not exist` };

  const plainHttp = PLAIN_HTTP_PORTS.has(port);
  const serverHost = host.includes(':') ? `[${host}]` : host;
  const namespace = readOptional(join(serviceAccountDir, 'namespace'));
  return {
    kind: 'found',
    entries: {
      clusters: [
        {
          name: IN_CLUSTER.cluster,
          server: `${plainHttp ? 'http' : 'https'}://${serverHost}:${port}`,
          caFile: join(serviceAccountDir, 'ca.crt'),
          skipTLSVerify: false,
        },
      ],
      users: [{ name: IN_CLUSTER.user, tokenFile }],
      contexts: [{ name: IN_CLUSTER.context, cluster: IN_CLUSTER.cluster, user: IN_CLUSTER.user, ...(namespace ? { namespace } : {}) }],
      currentContext: IN_CLUSTER.context,
    },
  };
}

/** Trimmed contents of `path`, or undefined when it cannot be read. */
function readOptional(path: string): string | undefined {
  try {
    return readFileSync(path, 'utf8').trim() || undefined;
  } catch {
    return undefined;
  }
}

/** Applies `--context`, then checks the current context leads to a cluster. */
function selectContext(resolved: ResolvedKubeConfig, context: string | undefined): void {
  const { kubeConfig: kc, source } = resolved;
  const available = kc.getContexts().map((ctx) => ctx.name);
  const availableText = available.length > 0 ? available.join(', ') : 'none';
  if (context !== undefined && context !== '') {
    if (!kc.getContextObject(context)) {
      throw new Error(`context "${context}" not found in ${describeSource(source)}; available: ${availableText}`);
    }
    kc.setCurrentContext(context);
  }
  const current = kc.getCurrentContext();
  if (!current) {
    throw new Error(`${describeSource(source)} sets no current-context; pass --context (available: ${availableText})`);
  }
  const contextObject = kc.getContextObject(current);
  if (!contextObject) {
    throw new Error(`current-context "${current}" of ${describeSource(source)} does not exist; available: ${availableText}`);
  }
  const cluster = kc.getCluster(contextObject.cluster);
  if (!cluster) {
    throw new Error(`context "${current}" in ${describeSource(source)} refers to unknown cluster "${contextObject.cluster}"`);
  }
  if (!cluster.server) throw new Error(`cluster "${cluster.name}" in ${describeSource(source)} has no server`);
  const unsupported = kc.unsupportedCredentials();
  if (unsupported) throw new Error(`${unsupported} (in ${describeSource(source)})`);
}
