/**
 * A loaded Kubernetes client configuration — clusters, users, contexts and the current context —
 * and the {@link Connection} it yields for the current context. Our replacement for client-node's
 * `KubeConfig`, which cannot be loaded without its generated API models (~85 MB of memory).
 *
 * Where the entries come from is elsewhere: kubeconfig files are read and merged by
 * kubeconfig-file.ts, and config.ts decides between those and the in-cluster configuration.
 *
 * Credentials are resolved per {@link ClientConfig.connection} call, not at load time: token files
 * (the in-cluster service account token is one) are re-read because the kubelet rotates them, and
 * exec plugins run again when their credential expires.
 */
import { readFile } from 'node:fs/promises';
import type { Connection, ConnectionSource } from './connection.ts';
import { ExecCredentialPlugin, type ExecClusterInfo, type ExecConfig, type ExecEnvironment } from './exec-credential.ts';

/** The extension of a cluster entry that is passed to exec plugins (client-go's name). */
export const EXEC_EXTENSION_NAME = 'client.authentication.k8s.io/exec';

/** A `clusters[]` entry. File paths are absolute (resolved when the file was read). */
export interface Cluster {
  readonly name: string;
  readonly server: string;
  /** PEM bundle from `certificate-authority-data`; wins over `caFile`, as in client-go. */
  readonly caData?: Buffer;
  readonly caFile?: string;
  readonly skipTLSVerify: boolean;
  readonly tlsServerName?: string;
  /** `proxy-url`: not supported; kept to refuse it clearly instead of bypassing the proxy. */
  readonly proxyUrl?: string;
  /** `extensions[name=client.authentication.k8s.io/exec].extension`, for exec plugins. */
  readonly execExtension?: unknown;
}

/** A `users[]` entry. File paths are absolute. */
export interface User {
  readonly name: string;
  readonly token?: string;
  /** Read on every request; wins over `token` (client-go: the file's last value takes precedence). */
  readonly tokenFile?: string;
  readonly username?: string;
  readonly password?: string;
  /** PEM from `client-certificate-data`; wins over `certFile`. */
  readonly certData?: Buffer;
  readonly certFile?: string;
  readonly keyData?: Buffer;
  readonly keyFile?: string;
  readonly exec?: ExecConfig;
  /** Legacy in-tree `auth-provider` (gcp, oidc, azure): refused with a pointer to exec plugins. */
  readonly authProvider?: { readonly name: string };
  /** Whether the entry asks for impersonation (`as`, `as-groups`, …): refused rather than ignored. */
  readonly impersonates?: boolean;
}

/** A `contexts[]` entry. */
export interface Context {
  readonly name: string;
  readonly cluster: string;
  /** Empty for a context without user: requests go out anonymous. */
  readonly user: string;
  readonly namespace?: string;
}

/** The entries of a configuration, as read from files or built for in-cluster use. */
export interface ClientConfigEntries {
  readonly clusters: readonly Cluster[];
  readonly users: readonly User[];
  readonly contexts: readonly Context[];
  /** `''` when none is set. */
  readonly currentContext: string;
}

/** Options of {@link ClientConfig}: the machine exec plugins run on. */
export type ClientConfigOptions = ExecEnvironment;

/**
 * A Kubernetes client configuration with a current context; a {@link ConnectionSource} for
 * {@link KubeClient}. The entries are fixed once built; only the current context can change.
 */
export class ClientConfig implements ConnectionSource {
  readonly clusters: readonly Cluster[];
  readonly users: readonly User[];
  readonly contexts: readonly Context[];
  private currentContext: string;
  private readonly options: ClientConfigOptions;
  /** One plugin per user name, so its cached credential outlives a single request. */
  private readonly execPlugins = new Map<string, ExecCredentialPlugin>();

  constructor(entries: ClientConfigEntries, options: ClientConfigOptions = {}) {
    this.clusters = entries.clusters;
    this.users = entries.users;
    this.contexts = entries.contexts;
    this.currentContext = entries.currentContext;
    this.options = options;
  }

  /** Name of the current context; `''` when none is set. */
  getCurrentContext(): string {
    return this.currentContext;
  }

  /** Makes `name` the current context. @throws when there is no such context. */
  setCurrentContext(name: string): void {
    if (!this.getContextObject(name)) throw new Error(`context "${name}" not found`);
    this.currentContext = name;
  }

  getContexts(): readonly Context[] {
    return this.contexts;
  }

  getContextObject(name: string): Context | null {
    return this.contexts.find((ctx) => ctx.name === name) ?? null;
  }

  getCluster(name: string): Cluster | null {
    return this.clusters.find((cluster) => cluster.name === name) ?? null;
  }

  getUser(name: string): User | null {
    return this.users.find((user) => user.name === name) ?? null;
  }

  /** Cluster of the current context, or null when there is no current context or it names no cluster. */
  getCurrentCluster(): Cluster | null {
    const ctx = this.getContextObject(this.currentContext);
    return ctx ? this.getCluster(ctx.cluster) : null;
  }

  /** User of the current context; null when the context has none (anonymous requests). */
  getCurrentUser(): User | null {
    const ctx = this.getContextObject(this.currentContext);
    return ctx ? this.getUser(ctx.user) : null;
  }

  /** Namespace of the current context (in-cluster: the pod's own), if it sets one. */
  getCurrentNamespace(): string | undefined {
    return this.getContextObject(this.currentContext)?.namespace || undefined;
  }

  /**
   * Why the current user's credentials cannot be used, or undefined when they can. Checked when
   * the configuration is selected (config.ts) so the error names the kubeconfig, and again for
   * every connection.
   */
  unsupportedCredentials(): string | undefined {
    const user = this.getCurrentUser();
    const cluster = this.getCurrentCluster();
    if (cluster?.proxyUrl) {
      return `cluster "${cluster.name}" sets proxy-url, which crowsnest does not support; reach the API server directly or through a tunnel`;
    }
    if (!user) return undefined;
    if (user.authProvider) {
      return (
        `user "${user.name}" uses auth-provider "${user.authProvider.name}", which crowsnest does not support (nor does kubectl any more); ` +
        'use an exec credential plugin instead (e.g. gke-gcloud-auth-plugin, kubelogin)'
      );
    }
    if (user.impersonates) return `user "${user.name}" asks for impersonation (as, as-groups, as-uid or as-user-extra), which crowsnest does not support`;
    return undefined;
  }

  /**
   * How to reach the current context's API server right now: URL, TLS material and auth headers.
   * Reads certificate and token files anew, runs the exec plugin when its credential expired.
   *
   * @throws when there is no current cluster, a referenced file cannot be read, the credentials
   *   are of an unsupported kind, or the exec plugin fails.
   */
  async connection(): Promise<Connection> {
    const cluster = this.getCurrentCluster();
    if (!cluster) throw new Error(`context "${this.currentContext}" has no cluster`);
    const unsupported = this.unsupportedCredentials();
    if (unsupported) throw new Error(unsupported);
    const user = this.getCurrentUser();

    const ca = cluster.caData ?? (cluster.caFile ? await readEntryFile(cluster.caFile, `certificate-authority of cluster "${cluster.name}"`) : undefined);
    let cert: string | Buffer | undefined = user?.certData ?? (user?.certFile ? await readEntryFile(user.certFile, `client-certificate of user "${user.name}"`) : undefined);
    let key: string | Buffer | undefined = user?.keyData ?? (user?.keyFile ? await readEntryFile(user.keyFile, `client-key of user "${user.name}"`) : undefined);

    const headers: Record<string, string> = {};
    if (user) {
      const token = await this.bearerToken(user, cluster);
      if (token.bearer) headers['authorization'] = `Bearer ${token.bearer}`;
      else if (user.username !== undefined || user.password !== undefined) {
        headers['authorization'] = `Basic ${Buffer.from(`${user.username ?? ''}:${user.password ?? ''}`).toString('base64')}`;
      }
      if (token.cert && token.key) {
        cert = token.cert;
        key = token.key;
      }
    }
    return {
      server: cluster.server.replace(/\/$/, ''),
      headers,
      tls: {
        ...(ca !== undefined ? { ca } : {}),
        ...(cert !== undefined ? { cert } : {}),
        ...(key !== undefined ? { key } : {}),
        rejectUnauthorized: !cluster.skipTLSVerify,
        ...(cluster.tlsServerName ? { servername: cluster.tlsServerName } : {}),
      },
    };
  }

  /** Drops cached exec credentials of the current user, so the next request runs the plugin again. */
  credentialsRejected(): void {
    const user = this.getCurrentUser();
    if (user) this.execPlugins.get(user.name)?.invalidate();
  }

  /** The bearer token (or exec client certificate) of `user`, by client-go's precedence: exec, token file, token. */
  private async bearerToken(user: User, cluster: Cluster): Promise<{ bearer?: string; cert?: string; key?: string }> {
    if (user.exec) {
      const status = await this.execPlugin(user, user.exec, cluster).credential();
      return {
        ...(status.token ? { bearer: status.token } : {}),
        ...(status.clientCertificateData && status.clientKeyData ? { cert: status.clientCertificateData, key: status.clientKeyData } : {}),
      };
    }
    if (user.tokenFile) {
      try {
        const token = (await readFile(user.tokenFile, 'utf8')).trim();
        if (token) return { bearer: token };
      } catch (err) {
        // A static token, when there is one, stands in for an unreadable file (client-go keeps the last good value).
        if (!user.token) throw new Error(`cannot read tokenFile ${user.tokenFile} of user "${user.name}": ${errorMessage(err)}`, { cause: err });
      }
    }
    return user.token ? { bearer: user.token } : {};
  }

  private execPlugin(user: User, exec: ExecConfig, cluster: Cluster): ExecCredentialPlugin {
    let plugin = this.execPlugins.get(user.name);
    if (!plugin) {
      plugin = new ExecCredentialPlugin(exec, user.name, () => execClusterInfo(cluster), this.options);
      this.execPlugins.set(user.name, plugin);
    }
    return plugin;
  }
}

/** `KUBERNETES_EXEC_INFO.spec.cluster` for `cluster`, as client-go fills it. */
async function execClusterInfo(cluster: Cluster): Promise<ExecClusterInfo> {
  const ca = cluster.caData ?? (cluster.caFile ? await readEntryFile(cluster.caFile, `certificate-authority of cluster "${cluster.name}"`) : undefined);
  return {
    server: cluster.server,
    ...(cluster.tlsServerName ? { 'tls-server-name': cluster.tlsServerName } : {}),
    ...(cluster.skipTLSVerify ? { 'insecure-skip-tls-verify': true } : {}),
    ...(ca ? { 'certificate-authority-data': ca.toString('base64') } : {}),
    ...(cluster.execExtension !== undefined ? { config: cluster.execExtension } : {}),
  };
}

async function readEntryFile(path: string, what: string): Promise<Buffer> {
  try {
    return await readFile(path);
  } catch (err) {
    throw new Error(`cannot read ${what} from ${path}: ${errorMessage(err)}`, { cause: err });
  }
}

function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
