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
import { realClock, timeoutSignal, type TimerHandle } from '../clock.ts';
import { WatchLineDecoder } from '../runtime/watch-lines.ts';
import { toConnectionSource, type AnyConnectionSource, type ConnectionSource, type TlsMaterial } from './connection.ts';
import { readBoundedText } from './http-body.ts';

/**
 * The API server could not be reached, or stopped answering: the message names the server
 * (`host:port`) and the cause (`ECONNREFUSED`, a timeout, a certificate error …), which undici's
 * bare "fetch failed" does not. `cause` keeps the original error (and `code` its system error
 * code), so `isNetworkError` still classifies it.
 */
export class KubeConnectionError extends Error {
  /** `host:port` of the API server. */
  readonly server: string;
  /** The system or TLS error code of the cause (`ECONNREFUSED`, `CERT_HAS_EXPIRED`, …), when there was one. */
  readonly code: string | undefined;

  constructor(server: string, cause: unknown, timeoutMs: number) {
    super(`API server ${server}: ${describeConnectionFailure(cause, timeoutMs)}`, { cause });
    this.name = 'KubeConnectionError';
    this.server = server;
    this.code = innermostCode(cause);
  }
}

const TLS_CODES = /CERT|SELF_SIGNED|UNABLE_TO_|ERR_TLS|ERR_SSL|SSL_|EPROTO/;

/**
 * Why a request got no answer, in the terms a user can act on: a timeout (after `timeoutMs`),
 * a refused or reset connection, a name that does not resolve, a TLS failure; with the code.
 */
export function describeConnectionFailure(err: unknown, timeoutMs: number): string {
  if (hasName(err, 'TimeoutError')) return `no answer within ${formatSeconds(timeoutMs)} (the server or the network path to it is stuck)`;
  const code = innermostCode(err);
  const message = innermostMessage(err);
  if (code && TLS_CODES.test(code)) {
    // OpenSSL's own messages are `<id>:error:<code>:SSL routines:<function>:<reason>:<file>:<line>`.
    const reason = /SSL routines:[^:]*:([^:]+)/.exec(message)?.[1] ?? message;
    return `TLS handshake failed: ${reason} (${code}); check the cluster's certificate-authority and server name`;
  }
  switch (code) {
    case 'ECONNREFUSED':
      return `connection refused (ECONNREFUSED): nothing listens there, or the server is down`;
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
      return `host name not resolved (${code}): ${message}`;
    case 'ETIMEDOUT':
    case 'UND_ERR_CONNECT_TIMEOUT':
      return `connection timed out (${code}): the server does not answer, or a firewall drops the packets`;
    case 'ECONNRESET':
    case 'UND_ERR_SOCKET':
    case 'EPIPE':
      return `connection closed by the server or a proxy (${code}): ${message}`;
    default:
      return code ? `${message} (${code})` : message;
  }
}

function formatSeconds(ms: number): string {
  return ms % 1000 === 0 ? `${ms / 1000}s` : `${ms}ms`;
}

function hasName(err: unknown, name: string): boolean {
  for (let current = err, depth = 0; current instanceof Error && depth < 5; current = current.cause, depth++) {
    if (current.name === name) return true;
  }
  return false;
}

/** The deepest error code in the `cause` chain (undici nests the socket error inside "fetch failed"). */
function innermostCode(err: unknown): string | undefined {
  let code: string | undefined;
  for (let current = err, depth = 0; typeof current === 'object' && current !== null && depth < 5; current = (current as { cause?: unknown }).cause, depth++) {
    const value = (current as { code?: unknown }).code;
    if (typeof value === 'string') code = value;
  }
  return code;
}

function innermostMessage(err: unknown): string {
  let message = err instanceof Error ? err.message : String(err);
  for (let current = err, depth = 0; current instanceof Error && depth < 5; current = current.cause, depth++) {
    if (current.message) message = current.message;
  }
  return message;
}

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
/**
 * Largest response body read: a page of 500 objects is a few MB, and V8 cannot hold a string of
 * more than ~512 MiB anyway. A server (or proxy) sending more gets an error, not our memory.
 */
const MAX_RESPONSE_BYTES = 256 * 1024 * 1024;
/** Of an error answer only the start is kept: it is for a message. */
const MAX_ERROR_BODY_BYTES = 64 * 1024;
/** Objects per list page, as client-go's and kubectl's pagers use. */
const DEFAULT_PAGE_SIZE = 500;
const USER_AGENT = 'crowsnest';
const HTTP_UNAUTHORIZED = 401;

export class KubeClient {
  private readonly source: ConnectionSource;
  private dispatcher: Dispatcher | undefined;
  private dispatcherKey = '';
  private readonly connectTimeoutMs: number | undefined;
  /** Total malformed watch lines seen by this client (for metrics). */
  malformedWatchLines = 0;

  /**
   * @param source where server and credentials come from: our {@link ClientConfig}, or (tests,
   *   benchmarks) a client-node `KubeConfig`, accepted by shape.
   * @param options.connectTimeoutMs how long opening a connection (TCP and TLS) may take; undici's
   *   10 s when not given. An aborted request does not end its connection attempt, which keeps the
   *   process alive until this runs out.
   */
  constructor(source: AnyConnectionSource, options: { readonly connectTimeoutMs?: number } = {}) {
    this.source = toConnectionSource(source);
    this.connectTimeoutMs = options.connectTimeoutMs;
  }

  /** Sends a request and returns the parsed JSON body; throws {@link KubeApiError} on non-2xx. */
  async json<T>(path: string, init: RequestInit = {}): Promise<T> {
    const res = await this.send(path, init);
    let body: Awaited<ReturnType<typeof readBoundedText>>;
    try {
      body = await readBoundedText(res.body as AsyncIterable<Uint8Array> | null, MAX_RESPONSE_BYTES);
    } catch (err) {
      if (init.signal?.aborted) throw err;
      throw new KubeConnectionError(res.server, err, init.timeoutMs ?? DEFAULT_TIMEOUT_MS);
    }
    if (body.truncated) throw new Error(`${init.method ?? 'GET'} ${path}: the answer is larger than ${MAX_RESPONSE_BYTES / 1024 / 1024} MiB; not read further`);
    return (body.text ? JSON.parse(body.text) : undefined) as T;
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
    let idleTimer: TimerHandle | undefined;
    const resetIdle = (): void => {
      if (idleTimer) realClock.clearTimer(idleTimer);
      idleTimer = realClock.setTimer(() => {
        options.onIdleTimeout?.();
        abort.abort(new Error('watch idle timeout'));
      }, options.idleTimeoutMs);
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
      if (idleTimer) realClock.clearTimer(idleTimer);
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
  async send(path: string, init: RequestInit & { readonly dedicatedConnection?: boolean } = {}): Promise<Response & { dispatcher?: Dispatcher; server: string }> {
    const method = init.method ?? 'GET';
    const { server, headers, dispatcher: pooled, tls } = await this.auth();
    const url = new URL(server + path);
    for (const [key, value] of Object.entries(init.query ?? {})) {
      if (value !== undefined) url.searchParams.set(key, String(value));
    }
    const dispatcher = init.dedicatedConnection ? newAgent(tls, 1, this.connectTimeoutMs) : pooled;
    headers['user-agent'] = USER_AGENT;
    headers.accept = init.accept ?? 'application/json';
    let body: string | undefined;
    if (init.body !== undefined) {
      body = typeof init.body === 'string' ? init.body : JSON.stringify(init.body);
      headers['content-type'] = init.contentType ?? 'application/json';
    }
    const timeoutMs = init.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    const signals = [init.signal, timeoutMs > 0 ? timeoutSignal(timeoutMs) : undefined].filter((s): s is AbortSignal => !!s);
    let res: Awaited<ReturnType<typeof fetch>>;
    try {
      res = await fetch(url, {
        method,
        headers,
        body,
        dispatcher,
        signal: signals.length ? AbortSignal.any(signals) : undefined,
      });
    } catch (err) {
      if (init.dedicatedConnection) void dispatcher.destroy().catch(() => {});
      // The caller's own cancellation stays what it was; anything else names the server and why.
      if (init.signal?.aborted) throw err;
      throw new KubeConnectionError(url.host, err, timeoutMs);
    }
    if (res.status >= 200 && res.status < 300) {
      return Object.assign(res as unknown as Response, { server: url.host }, init.dedicatedConnection ? { dispatcher } : {});
    }
    const text = (await readBoundedText(res.body as AsyncIterable<Uint8Array> | null, MAX_ERROR_BODY_BYTES).catch(() => ({ text: '' }))).text;
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
      this.dispatcher = newAgent(tls, POOLED_CONNECTIONS, this.connectTimeoutMs);
      this.dispatcherKey = key;
      if (old) void old.close();
    }
    return { server, headers: { ...headers }, dispatcher: this.dispatcher, tls };
  }
}

/** Connections per API server for ordinary requests (watches use their own). */
const POOLED_CONNECTIONS = 32;

function newAgent(tls: TlsMaterial, connections: number, connectTimeoutMs: number | undefined): Agent {
  // TCP keep-alive probes after 30 s of silence, as client-go does, so dead peers get noticed.
  const connect = { ...tls, keepAlive: true, keepAliveInitialDelay: 30_000, ...(connectTimeoutMs !== undefined ? { timeout: connectTimeoutMs } : {}) };
  return new Agent({ connect: connect as Agent.Options['connect'], connections });
}
