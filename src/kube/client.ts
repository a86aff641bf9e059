/**
 * A small HTTP client for the Kubernetes API on top of a {@link ConnectionSource} (normally our
 * kubeconfig loader's {@link ClientConfig}): the configuration decides server, auth and TLS, we
 * decide transport. Reasons for not using client-node's generated clients: its fetch layer builds
 * a new connection pool per request (no keep-alive reuse across calls), its `Watch` gives up after
 * 30 s of silence and drops lines it cannot parse, and loading it costs ~85 MB of memory. Here one
 * pooled undici Agent serves every request and watches are streamed line by line with bad lines
 * counted, not hidden.
 */
import { Agent, type Dispatcher, fetch } from 'undici';
import { WatchLineDecoder } from './watch-lines.ts';
import { toConnectionSource, type AnyConnectionSource, type ConnectionSource, type TlsMaterial } from './connection.ts';

/** A non-2xx answer from the API server, with the `Status` it sent when there was one. */
export class KubeApiError extends Error {
  readonly status: number;
  readonly reason: string | undefined;
  /** Milliseconds the server asked us to wait (Retry-After), when it did. */
  readonly retryAfterMs: number | undefined;
  readonly body: string;

  constructor(init: { method: string; path: string; status: number; body: string; retryAfterMs?: number }) {
    let message = init.body.slice(0, 500);
    let reason: string | undefined;
    try {
      const status = JSON.parse(init.body) as { message?: string; reason?: string };
      message = status.message ?? message;
      reason = status.reason;
    } catch {
      // Not a Status object (a proxy in between, say): keep the raw text.
    }
    super(`${init.method} ${init.path}: ${init.status}${reason ? ` ${reason}` : ''}: ${message}`);
    this.name = 'KubeApiError';
    this.status = init.status;
    this.reason = reason;
    this.retryAfterMs = init.retryAfterMs;
    this.body = init.body;
  }
}

export interface RequestInit {
  readonly method?: string;
  /** Query parameters; undefined values are left out. */
  readonly query?: Readonly<Record<string, string | number | boolean | undefined>>;
  /** Sent as JSON unless it is a string. */
  readonly body?: unknown;
  /** Default application/json; server-side apply uses application/apply-patch+yaml. */
  readonly contentType?: string;
  /** Default application/json; metadata-only lists ask for `PartialObjectMetadataList`. */
  readonly accept?: string;
  readonly signal?: AbortSignal;
  /** Whole-request timeout. Default 30 s; watches pass none and rely on their own watchdog. */
  readonly timeoutMs?: number;
}

/** Result of reading one watch stream until it ends. */
export interface WatchStreamStats {
  /** Lines that were not JSON watch events; counted so a broken proxy is visible. */
  readonly malformedLines: number;
}

const DEFAULT_TIMEOUT_MS = 30_000;
/** Objects per list page, as client-go's and kubectl's pagers use. */
const DEFAULT_PAGE_SIZE = 500;
const USER_AGENT = 'crowsnest';
const HTTP_UNAUTHORIZED = 401;

export class KubeClient {
  private readonly source: ConnectionSource;
  private dispatcher: Dispatcher | undefined;
  private dispatcherKey = '';
  /** Total malformed watch lines seen by this client (for metrics). */
  malformedWatchLines = 0;

  /**
   * @param source where server and credentials come from: our {@link ClientConfig}, or (tests,
   *   benchmarks) a client-node `KubeConfig`, accepted by shape.
   */
  constructor(source: AnyConnectionSource) {
    this.source = toConnectionSource(source);
  }

  /** Sends a request and returns the parsed JSON body; throws {@link KubeApiError} on non-2xx. */
  async json<T>(path: string, init: RequestInit = {}): Promise<T> {
    const res = await this.send(path, init);
    const text = await res.text();
    return (text ? JSON.parse(text) : undefined) as T;
  }

  /**
   * Lists the collection at `path` page by page (`limit` = `pageSize`, default 500, then each
   * page's `continue` token), yielding each page's items as it arrives. Errors are thrown as by
   * {@link json}, a 410 on an expired continue token included: callers that can restart decide how.
   */
  async *listPages<T>(
    path: string,
    init: Pick<RequestInit, 'query' | 'accept' | 'signal'> & { readonly pageSize?: number } = {},
  ): AsyncGenerator<T[], void, undefined> {
    let continueToken: string | undefined;
    do {
      const page = await this.json<{ items?: T[]; metadata?: { continue?: string } }>(path, {
        ...(init.accept !== undefined ? { accept: init.accept } : {}),
        ...(init.signal !== undefined ? { signal: init.signal } : {}),
        query: { ...init.query, limit: init.pageSize ?? DEFAULT_PAGE_SIZE, continue: continueToken },
      });
      yield page.items ?? [];
      continueToken = page.metadata?.continue || undefined;
    } while (continueToken);
  }

  /**
   * Opens a watch on `path` (a collection URL) and calls `onEvent` for each event line until the
   * server ends the stream, `signal` aborts, or `idleTimeoutMs` passes without a byte (the
   * watchdog against half-open connections). Resolves normally when the stream ends for any of
   * those reasons; rejects on connection errors and non-200 answers.
   */
  async watch(
    path: string,
    query: Readonly<Record<string, string | number | boolean | undefined>>,
    onEvent: (event: { type: string; object: unknown }) => void,
    options: {
      signal: AbortSignal;
      idleTimeoutMs: number;
      onIdleTimeout?: () => void;
      /** Called for each line that is not a watch event (they are counted either way). */
      onMalformedLine?: (excerpt: string) => void;
      /** Default application/json; metadata-only watches ask for `PartialObjectMetadata`. */
      accept?: string;
    },
  ): Promise<WatchStreamStats> {
    const abort = new AbortController();
    const onOuterAbort = (): void => abort.abort(options.signal.reason);
    options.signal.addEventListener('abort', onOuterAbort, { once: true });
    let idleTimer: NodeJS.Timeout | undefined;
    const resetIdle = (): void => {
      clearTimeout(idleTimer);
      idleTimer = setTimeout(() => {
        options.onIdleTimeout?.();
        abort.abort(new Error('watch idle timeout'));
      }, options.idleTimeoutMs);
      idleTimer.unref();
    };
    let malformed = 0;
    let dedicated: Dispatcher | undefined;
    try {
      resetIdle();
      // A watch gets a connection of its own, destroyed when the watch ends: an aborted request
      // does not make undici drop its socket, and a half-open socket handed back to a shared
      // pool would swallow the next watch too (the watchdog would then fire forever).
      const res = await this.send(path, {
        query: { ...query, watch: true }, signal: abort.signal, timeoutMs: 0, dedicatedConnection: true,
        ...(options.accept ? { accept: options.accept } : {}),
      });
      dedicated = res.dispatcher;
      if (!res.body) return { malformedLines: 0 };
      const lines = new WatchLineDecoder({
        onEvent,
        onMalformed: (excerpt) => {
          malformed++;
          options.onMalformedLine?.(excerpt);
        },
      });
      try {
        for await (const chunk of res.body as AsyncIterable<Uint8Array>) {
          resetIdle();
          lines.push(chunk);
        }
        lines.end();
      } catch (err) {
        // Our own abort (caller's signal or the idle watchdog) ends the stream normally.
        if (!abort.signal.aborted) throw err;
      }
      return { malformedLines: malformed };
    } catch (err) {
      if (abort.signal.aborted) return { malformedLines: malformed };
      throw err;
    } finally {
      clearTimeout(idleTimer);
      options.signal.removeEventListener('abort', onOuterAbort);
      this.malformedWatchLines += malformed;
      abort.abort();
      if (dedicated) void dedicated.destroy().catch(() => {});
    }
  }

  /**
   * Sends a request; returns the response for 2xx, throws {@link KubeApiError} otherwise. With
   * `dedicatedConnection` the request runs on a pool of its own, returned as `dispatcher` for the
   * caller to destroy.
   */
  async send(path: string, init: RequestInit & { readonly dedicatedConnection?: boolean } = {}): Promise<Response & { dispatcher?: Dispatcher }> {
    const method = init.method ?? 'GET';
    const { server, headers, dispatcher: pooled, tls } = await this.auth();
    const url = new URL(server + path);
    for (const [key, value] of Object.entries(init.query ?? {})) {
      if (value !== undefined) url.searchParams.set(key, String(value));
    }
    const dispatcher = init.dedicatedConnection ? newAgent(tls, 1) : pooled;
    headers['user-agent'] = USER_AGENT;
    headers.accept = init.accept ?? 'application/json';
    let body: string | undefined;
    if (init.body !== undefined) {
      body = typeof init.body === 'string' ? init.body : JSON.stringify(init.body);
      headers['content-type'] = init.contentType ?? 'application/json';
    }
    const timeoutMs = init.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    const signals = [init.signal, timeoutMs > 0 ? AbortSignal.timeout(timeoutMs) : undefined].filter((s): s is AbortSignal => !!s);
    const res = await fetch(url, {
      method,
      headers,
      body,
      dispatcher,
      signal: signals.length ? AbortSignal.any(signals) : undefined,
    });
    if (res.status >= 200 && res.status < 300) {
      return Object.assign(res as unknown as Response, init.dedicatedConnection ? { dispatcher } : {});
    }
    const text = await res.text();
    if (init.dedicatedConnection) void dispatcher?.destroy().catch(() => {});
    // Cached credentials (an exec plugin's token without expiry) may have been revoked: ask anew next time.
    if (res.status === HTTP_UNAUTHORIZED) this.source.credentialsRejected?.();
    const retryAfter = res.headers.get('retry-after');
    const retryAfterSeconds = retryAfter !== null ? Number(retryAfter) : NaN;
    throw new KubeApiError({
      method, path: url.pathname, status: res.status, body: text,
      ...(Number.isFinite(retryAfterSeconds) ? { retryAfterMs: retryAfterSeconds * 1000 } : {}),
    });
  }

  /** Closes pooled connections. */
  async close(): Promise<void> {
    const d = this.dispatcher;
    this.dispatcher = undefined;
    this.dispatcherKey = '';
    if (d) await d.close();
  }

  /**
   * Server, headers and a pooled dispatcher for the current credentials. Asked of the source on
   * each request because tokens rotate (projected SA tokens, exec plugins); the TLS material
   * rarely changes, and when it does a new pool replaces the old one.
   */
  private async auth(): Promise<{ server: string; headers: Record<string, string>; dispatcher: Dispatcher; tls: TlsMaterial }> {
    const { server, tls, headers } = await this.source.connection();
    const key = JSON.stringify([String(tls.ca ?? ''), String(tls.cert ?? ''), String(tls.key ?? ''), tls.rejectUnauthorized, tls.servername]);
    if (!this.dispatcher || key !== this.dispatcherKey) {
      const old = this.dispatcher;
      this.dispatcher = newAgent(tls, POOLED_CONNECTIONS);
      this.dispatcherKey = key;
      if (old) void old.close();
    }
    return { server, headers: { ...headers }, dispatcher: this.dispatcher, tls };
  }
}

/** Connections per API server for ordinary requests (watches use their own). */
const POOLED_CONNECTIONS = 32;

function newAgent(tls: TlsMaterial, connections: number): Agent {
  // TCP keep-alive probes after 30 s of silence, as client-go does, so dead peers get noticed.
  return new Agent({ connect: { ...tls, keepAlive: true, keepAliveInitialDelay: 30_000 } as Agent.Options['connect'], connections });
}
