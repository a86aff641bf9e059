/**
 * What {@link KubeClient} needs to reach an API server: its URL, the TLS material and the auth
 * headers. A {@link ConnectionSource} is asked for them before every request, because credentials
 * change under a running process (service account tokens rotate, exec plugin tokens expire).
 *
 * Two kinds of source exist: our {@link ClientConfig} (kubeconfig.ts), which is what the runtime
 * uses, and client-node's `KubeConfig`, which tests and benchmarks still build. The latter is
 * recognised by shape ({@link HttpsOptionsSource}), so this module never loads client-node.
 */
import type { RequestOptions as HttpsRequestOptions } from 'node:https';

/** TLS settings for connections to the API server. */
export interface TlsMaterial {
  /** PEM CA bundle to verify the server with; Node's default roots when absent. */
  readonly ca?: string | Buffer;
  /** PEM client certificate (with `key`) for mutual TLS. */
  readonly cert?: string | Buffer;
  readonly key?: string | Buffer;
  /** `false` only for `insecure-skip-tls-verify`. */
  readonly rejectUnauthorized: boolean;
  /** SNI and certificate name to expect instead of the URL's host (`tls-server-name`). */
  readonly servername?: string;
}

/** Everything one request needs to reach and authenticate to the API server. */
export interface Connection {
  /** API server URL without a trailing slash; may carry a path prefix (`https://rancher/k8s/clusters/c-1`). */
  readonly server: string;
  readonly tls: TlsMaterial;
  /** Auth headers (lower-case names), e.g. `authorization`. */
  readonly headers: Readonly<Record<string, string>>;
}

/** Something that can say, right now, how to reach the API server. */
export interface ConnectionSource {
  /** The connection for the next request; rejects when credentials cannot be obtained. */
  connection(): Promise<Connection>;
  /**
   * Called when the API server answered 401, so credentials cached by the source (exec plugin
   * tokens without an expiry) are fetched anew for the next request, as client-go does.
   */
  credentialsRejected?(): void;
}

/**
 * The two methods of client-node's `KubeConfig` that describe a connection. Accepted so tests and
 * benchmarks that build client-node configurations keep working without this module importing it.
 */
export interface HttpsOptionsSource {
  getCurrentCluster(): { readonly server: string } | null;
  applyToHTTPSOptions(opts: HttpsRequestOptions): Promise<void>;
}

/** Either kind of source, as {@link KubeClient} accepts it. */
export type AnyConnectionSource = ConnectionSource | HttpsOptionsSource;

/** Turns either kind of source into a {@link ConnectionSource}. */
export function toConnectionSource(source: AnyConnectionSource): ConnectionSource {
  if ('connection' in source && typeof source.connection === 'function') return source;
  const legacy = source as HttpsOptionsSource;
  return { connection: () => connectionFromHttpsOptions(legacy) };
}

/** Reads client-node's `https.RequestOptions` rendering of a connection into a {@link Connection}. */
async function connectionFromHttpsOptions(source: HttpsOptionsSource): Promise<Connection> {
  const cluster = source.getCurrentCluster();
  if (!cluster) throw new Error('kubeconfig has no current cluster');
  const opts: HttpsRequestOptions = {};
  await source.applyToHTTPSOptions(opts);
  const headers: Record<string, string> = {};
  for (const [k, v] of Object.entries(opts.headers ?? {})) if (v !== undefined) headers[k.toLowerCase()] = String(v);
  if (opts.auth) headers['authorization'] = `Basic ${Buffer.from(opts.auth).toString('base64')}`;
  return {
    server: cluster.server.replace(/\/$/, ''),
    headers,
    tls: {
      ...(opts.ca !== undefined ? { ca: opts.ca as string | Buffer } : {}),
      ...(opts.cert !== undefined ? { cert: opts.cert as string | Buffer } : {}),
      ...(opts.key !== undefined ? { key: opts.key as string | Buffer } : {}),
      rejectUnauthorized: opts.rejectUnauthorized ?? true,
      ...(opts.servername ? { servername: opts.servername } : {}),
    },
  };
}
