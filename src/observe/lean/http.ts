/**
 * Just enough HTTP/1.1 for the in-pod agents (the prober's agent, guard's health sidecar), over
 * node:net and node:tls sockets: a server for GET /ping, /metrics and /readyz (scraped by
 * Prometheus, probed by the kubelet, pinged by other agents), and a client connection for probing
 * on a kept-alive connection and for the operator's endpoints.
 *
 * Why not node:http: loading it costs the agent ~13 MiB of RSS (measured: 46 → 59 MiB for an
 * idle listener), a third of what the whole agent should use. The agent's traffic is narrow —
 * requests without bodies, responses with a Content-Length — so a small parser covers it, and
 * anything outside that is answered with an error and the connection closed, never guessed at.
 *
 * Server: GET and HEAD; no request bodies (400 and close); headers up to 8 KiB (431 and close);
 * persistent connections as HTTP/1.1 defines them (HTTP/1.0 only with `Connection: keep-alive`);
 * pipelined requests answered in order; idle connections closed after a minute.
 * Client: one request at a time; the response must have a Content-Length (or be a 204/304).
 */
import { once } from 'node:events';
import { connect as connectTcp, createServer, type Server, type Socket } from 'node:net';
import { connect as connectTls, type TLSSocket } from 'node:tls';

export interface HttpRequest {
  readonly method: string;
  /** The request target's path, without the query. */
  readonly path: string;
  /** Header names lower-case. */
  readonly headers: ReadonlyMap<string, string>;
}

export interface HttpResponse {
  readonly status: number;
  readonly contentType?: string;
  readonly body?: string | Buffer;
}

export type HttpHandler = (request: HttpRequest) => HttpResponse;

export interface HttpServerOptions {
  /** Longest request head, in bytes. Default 8 KiB. */
  readonly maxHeaderBytes?: number;
  /** A connection without a request for this long is closed, in milliseconds. Default 60 s. */
  readonly idleTimeoutMs?: number;
  /** Connections at once; more are refused by the kernel's backlog then closed. Default 256. */
  readonly maxConnections?: number;
}

const REASONS: Readonly<Record<number, string>> = {
  200: 'OK', 204: 'No Content', 304: 'Not Modified', 400: 'Bad Request', 401: 'Unauthorized', 403: 'Forbidden', 404: 'Not Found',
  405: 'Method Not Allowed', 429: 'Too Many Requests', 431: 'Request Header Fields Too Large', 500: 'Internal Server Error', 503: 'Service Unavailable',
};
const HEAD_END = Buffer.from('\r\n\r\n');
const DEFAULT_MAX_HEADER_BYTES = 8 * 1024;
const DEFAULT_IDLE_TIMEOUT_MS = 60_000;
const DEFAULT_MAX_CONNECTIONS = 256;

/** An HTTP server answering with `handler`; call `listen` on it. */
export function createHttpServer(handler: HttpHandler, options: HttpServerOptions = {}): Server {
  const maxHeaderBytes = options.maxHeaderBytes ?? DEFAULT_MAX_HEADER_BYTES;
  const server = createServer({ noDelay: true }, (socket) => serveConnection(socket, handler, maxHeaderBytes));
  server.maxConnections = options.maxConnections ?? DEFAULT_MAX_CONNECTIONS;
  const sockets = new Set<Socket>();
  openSockets.set(server, sockets);
  server.on('connection', (socket) => {
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
    socket.setTimeout(options.idleTimeoutMs ?? DEFAULT_IDLE_TIMEOUT_MS, () => socket.destroy());
  });
  return server;
}

const openSockets = new WeakMap<Server, Set<Socket>>();

/** Listens on `port` (0: any free one) and resolves with the port bound; rejects naming the port. */
export async function listen(server: Server, port: number, host: string | undefined): Promise<number> {
  server.listen(port, host);
  await Promise.race([once(server, 'listening'), once(server, 'error').then(([err]) => {
    throw new Error(`cannot listen on port ${port}: ${(err as Error).message}`);
  })]);
  return (server.address() as { port: number }).port;
}

/** Stops listening and closes every connection, kept-alive ones included; resolves when closed. */
export async function closeServer(server: Server): Promise<void> {
  const closed = new Promise<void>((resolve) => server.close(() => resolve()));
  for (const socket of openSockets.get(server) ?? []) socket.destroy();
  await closed;
}

function serveConnection(socket: Socket, handler: HttpHandler, maxHeaderBytes: number): void {
  let buffered: Buffer = Buffer.alloc(0);
  socket.on('error', () => socket.destroy());
  socket.on('data', (chunk: Buffer) => {
    buffered = buffered.length ? Buffer.concat([buffered, chunk]) : chunk;
    for (;;) {
      const end = buffered.indexOf(HEAD_END);
      if (end === -1) {
        if (buffered.length > maxHeaderBytes) reply(socket, { status: 431, body: 'request head too large\n' }, false, true);
        return;
      }
      if (end > maxHeaderBytes) return reply(socket, { status: 431, body: 'request head too large\n' }, false, true);
      const head = buffered.subarray(0, end).toString('latin1');
      buffered = buffered.subarray(end + HEAD_END.length);
      const parsed = parseRequestHead(head);
      if (!parsed) return reply(socket, { status: 400, body: 'malformed request\n' }, false, true);
      const { request, keepAlive, hasBody } = parsed;
      if (hasBody) return reply(socket, { status: 400, body: 'request bodies are not accepted\n' }, false, true);
      let response: HttpResponse;
      if (request.method !== 'GET' && request.method !== 'HEAD') {
        response = { status: 405, body: 'only GET and HEAD\n' };
      } else {
        try {
          response = handler(request);
        } catch {
          response = { status: 500, body: 'internal error\n' };
        }
      }
      reply(socket, response, request.method === 'HEAD', !keepAlive);
      if (!keepAlive || socket.destroyed) return;
    }
  });
}

function parseRequestHead(head: string): { request: HttpRequest; keepAlive: boolean; hasBody: boolean } | undefined {
  const lines = head.split('\r\n');
  const match = /^([A-Z]+) (\S+) HTTP\/1\.([01])$/.exec(lines[0] ?? '');
  if (!match) return undefined;
  const headers = parseHeaders(lines.slice(1));
  if (!headers) return undefined;
  const connection = (headers.get('connection') ?? '').toLowerCase();
  const keepAlive = match[3] === '1' ? !connection.includes('close') : connection.includes('keep-alive');
  const length = headers.get('content-length');
  const hasBody = headers.has('transfer-encoding') || (length !== undefined && length !== '0');
  const target = match[2]!;
  const query = target.indexOf('?');
  return { request: { method: match[1]!, path: query === -1 ? target : target.slice(0, query), headers }, keepAlive, hasBody };
}

function parseHeaders(lines: readonly string[]): Map<string, string> | undefined {
  const headers = new Map<string, string>();
  for (const line of lines) {
    const colon = line.indexOf(':');
    if (colon <= 0) return undefined;
    const name = line.slice(0, colon).trim().toLowerCase();
    const value = line.slice(colon + 1).trim();
    headers.set(name, headers.has(name) ? `${headers.get(name)}, ${value}` : value);
  }
  return headers;
}

function reply(socket: Socket, response: HttpResponse, headOnly: boolean, close: boolean): void {
  if (socket.destroyed) return;
  const body = typeof response.body === 'string' ? Buffer.from(response.body) : (response.body ?? Buffer.alloc(0));
  const head = `HTTP/1.1 ${response.status} ${REASONS[response.status] ?? 'Status'}\r\n`
    + `Content-Type: ${response.contentType ?? 'text/plain; charset=utf-8'}\r\n`
    + `Content-Length: ${body.length}\r\n${close ? 'Connection: close\r\n' : ''}\r\n`;
  if (headOnly || body.length === 0) socket.write(head);
  else socket.write(Buffer.concat([Buffer.from(head, 'latin1'), body]));
  if (close) socket.end();
}

// ---------------------------------------------------------------------------------------------
// Client

/** The peer answered something that is not an HTTP/1.1 response we read (no Content-Length, garbage). */
export class HttpProtocolError extends Error {
  override readonly name = 'HttpProtocolError';
}

/** A connection or an answer did not come before the deadline (`code` as the kernel's own timeouts). */
export class TimeoutError extends Error {
  override readonly name = 'TimeoutError';
  readonly code = 'ETIMEDOUT';
}

/** The connection closed, or failed, before a whole response arrived. */
export class ConnectionClosedError extends Error {
  override readonly name = 'ConnectionClosedError';
  readonly code: string;
  /** True when no byte of the response had arrived: a request on a kept-alive connection the server had closed. */
  readonly beforeResponse: boolean;

  constructor(message: string, code: string, beforeResponse: boolean) {
    super(message);
    this.code = code;
    this.beforeResponse = beforeResponse;
  }
}

export interface ClientResponse {
  readonly status: number;
  readonly headers: ReadonlyMap<string, string>;
  readonly body: Buffer;
}

export interface ClientRequest {
  readonly method: 'GET' | 'POST';
  readonly path: string;
  /** `Host` header. */
  readonly host: string;
  readonly headers?: Readonly<Record<string, string>>;
  readonly body?: string;
}

const MAX_RESPONSE_BYTES = 16 * 1024 * 1024;

/**
 * One client connection: requests go one at a time. After an error or a `Connection: close` the
 * connection is closed ({@link HttpConnection.usable} turns false) and a new one is needed.
 */
export class HttpConnection {
  readonly socket: Socket | TLSSocket;
  private pending: { resolve: (r: ClientResponse) => void; reject: (e: Error) => void } | undefined;
  private buffered: Buffer = Buffer.alloc(0);
  private received = false;
  private closed = false;
  /** When the last response completed (or the connection opened), from `performance.now()`. */
  lastUsedMs = performance.now();

  constructor(socket: Socket | TLSSocket) {
    this.socket = socket;
    socket.setNoDelay(true);
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
    socket.on('error', (err: NodeJS.ErrnoException) => this.fail(new ConnectionClosedError(err.message, err.code ?? 'ECONNRESET', !this.received)));
    socket.on('close', () => this.fail(new ConnectionClosedError('connection closed', 'ECONNRESET', !this.received)));
  }

  /** Whether another request may be sent on it. */
  get usable(): boolean {
    return !this.closed && !this.socket.destroyed && this.pending === undefined;
  }

  /**
   * Sends one request and resolves with the whole response. `deadline` (a `performance.now()`
   * time): if the response is not complete by then, the connection is closed and the request
   * rejects with a {@link TimeoutError}.
   */
  request(request: ClientRequest, deadline?: number): Promise<ClientResponse> {
    if (!this.usable) return Promise.reject(new ConnectionClosedError('connection not usable', 'ECONNRESET', true));
    const body = request.body === undefined ? undefined : Buffer.from(request.body);
    let head = `${request.method} ${request.path} HTTP/1.1\r\nHost: ${request.host}\r\n`;
    for (const [name, value] of Object.entries(request.headers ?? {})) head += `${name}: ${value}\r\n`;
    if (body) head += `Content-Length: ${body.length}\r\n`;
    head += '\r\n';
    this.received = false;
    this.buffered = Buffer.alloc(0);
    return new Promise<ClientResponse>((resolve, reject) => {
      const timer = deadline === undefined ? undefined : setTimeout(() => this.fail(new TimeoutError('no answer before the deadline')), Math.max(0, deadline - performance.now()));
      this.pending = {
        resolve: (response) => {
          clearTimeout(timer);
          resolve(response);
        },
        reject: (error) => {
          clearTimeout(timer);
          reject(error);
        },
      };
      this.socket.write(body ? Buffer.concat([Buffer.from(head, 'latin1'), body]) : head);
    });
  }

  close(): void {
    this.closed = true;
    this.socket.destroy();
  }

  private onData(chunk: Buffer): void {
    this.received = true;
    if (!this.pending) {
      // Bytes nobody asked for: the stream is out of step.
      this.fail(new HttpProtocolError('unexpected data between responses'));
      return;
    }
    this.buffered = this.buffered.length ? Buffer.concat([this.buffered, chunk]) : chunk;
    if (this.buffered.length > MAX_RESPONSE_BYTES) { this.fail(new HttpProtocolError('response too large')); return; }
    const end = this.buffered.indexOf(HEAD_END);
    if (end === -1) return;
    const lines = this.buffered.subarray(0, end).toString('latin1').split('\r\n');
    const status = /^HTTP\/1\.[01] (\d{3})(?: .*)?$/.exec(lines[0] ?? '');
    const headers = parseHeaders(lines.slice(1));
    if (!status || !headers) { this.fail(new HttpProtocolError(`malformed response head: ${JSON.stringify(lines[0]?.slice(0, 80))}`)); return; }
    const code = Number(status[1]);
    const lengthText = headers.get('content-length');
    let length: number;
    if (code === 204 || code === 304) length = 0;
    else if (lengthText !== undefined && /^\d+$/.test(lengthText) && !headers.has('transfer-encoding')) length = Number(lengthText);
    else { this.fail(new HttpProtocolError('response without a Content-Length')); return; }
    const bodyStart = end + HEAD_END.length;
    if (this.buffered.length < bodyStart + length) return;
    if (this.buffered.length > bodyStart + length) { this.fail(new HttpProtocolError('more data than the response declared')); return; }
    const response: ClientResponse = { status: code, headers, body: this.buffered.subarray(bodyStart, bodyStart + length) };
    const { resolve } = this.pending;
    this.pending = undefined;
    this.buffered = Buffer.alloc(0);
    this.lastUsedMs = performance.now();
    if ((headers.get('connection') ?? '').toLowerCase().includes('close')) this.close();
    resolve(response);
  }

  private fail(error: Error): void {
    this.closed = true;
    this.socket.destroy();
    const pending = this.pending;
    this.pending = undefined;
    pending?.reject(error);
  }
}

export interface SocketTarget {
  readonly host: string;
  readonly port: number;
  /** Connect with TLS, trusting `ca` only; the server's name is checked against `host`. */
  readonly tls?: { readonly ca: string };
}

/**
 * A connected socket (TCP, or TLS after its handshake) to `target`, or a rejection: the socket
 * error, or a {@link TimeoutError} when `deadline` (a `performance.now()` time) passes first.
 */
export function openSocket(target: SocketTarget, deadline: number): Promise<Socket | TLSSocket> {
  return new Promise((resolve, reject) => {
    const socket = target.tls
      ? connectTls({ host: target.host, port: target.port, ca: target.tls.ca, ...(isIpAddress(target.host) ? {} : { servername: target.host }) })
      : connectTcp({ host: target.host, port: target.port, noDelay: true });
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new TimeoutError('no connection before the deadline'));
    }, Math.max(0, deadline - performance.now()));
    socket.once(target.tls ? 'secureConnect' : 'connect', () => {
      clearTimeout(timer);
      socket.removeAllListeners('error');
      resolve(socket);
    });
    socket.once('error', (err) => {
      clearTimeout(timer);
      socket.destroy();
      reject(err);
    });
  });
}

function isIpAddress(host: string): boolean {
  return /^[\d.]+$/.test(host) || host.includes(':');
}

/**
 * Why a connection or a request failed, as a metric label: `timeout`, `refused` (nothing listens),
 * `reset`, `unreachable` (no route, host down), `protocol` (answered something that is not HTTP we
 * read), `other`.
 */
export type ConnectionFailureReason = 'timeout' | 'refused' | 'reset' | 'unreachable' | 'protocol' | 'other';

/** The {@link ConnectionFailureReason} of an error from {@link openSocket} or {@link HttpConnection.request}. */
export function connectionFailureReason(err: unknown): ConnectionFailureReason {
  if (err instanceof TimeoutError) return 'timeout';
  if (err instanceof HttpProtocolError) return 'protocol';
  const code = (err as { code?: unknown } | null)?.code;
  switch (code) {
    case 'ETIMEDOUT':
      return 'timeout';
    case 'ECONNREFUSED':
      return 'refused';
    case 'ECONNRESET':
    case 'EPIPE':
    case 'ECONNABORTED':
      return 'reset';
    case 'EHOSTUNREACH':
    case 'ENETUNREACH':
    case 'EHOSTDOWN':
    case 'ENETDOWN':
    case 'EADDRNOTAVAIL':
      return 'unreachable';
    default:
      return 'other';
  }
}
