/**
 * The operator's two small HTTP servers: Prometheus metrics, and the kubelet's liveness and
 * readiness probes. Separate servers (and ports) as in controller-runtime, so a NetworkPolicy can
 * expose metrics to the monitoring namespace without exposing the probes, and the other way round.
 *
 * Cheap to import: `src/cli/options.ts` uses {@link parseBindAddress} on every CLI start, so
 * `node:http` (tens of milliseconds to load) is imported only when a server starts.
 */
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Logger } from 'pino';
import type { Registry } from 'prom-client';
import { realClock, type Clock } from '../kube/clock.ts';

// ---------------------------------------------------------------------------------------------
// Bind addresses

/** Where a server listens. */
export interface BindAddress {
  /** Interface to bind; `""` means every interface (IPv6 and IPv4). IPv6 without brackets. */
  readonly host: string;
  /** TCP port; `0` asks the OS for a free one. */
  readonly port: number;
}

/** Bind address values that turn a server off, as in controller-runtime (`--metrics-bind-address=0`). */
const DISABLED_BIND_ADDRESSES = new Set(['', '0']);
const MAX_PORT = 65_535;

/**
 * Parses a controller-runtime style bind address: `":8080"` (all interfaces), `"127.0.0.1:8080"`,
 * `"[::1]:8080"`, `"localhost:0"` (port 0 = ephemeral). `"0"` or `""` disables the server.
 *
 * @returns the address, or `undefined` when the server is disabled.
 * @throws Error describing the expected format.
 */
export function parseBindAddress(value: string): BindAddress | undefined {
  if (DISABLED_BIND_ADDRESSES.has(value)) return undefined;
  const colon = value.lastIndexOf(':');
  if (colon < 0) {
    throw new Error(`bind address "${value}" must be host:port or :port ("0" disables)`);
  }
  let host = value.slice(0, colon);
  const portText = value.slice(colon + 1);
  if (host.startsWith('[') && host.endsWith(']')) {
    host = host.slice(1, -1);
  } else if (host.includes(':')) {
    // Same rule as Go's net.SplitHostPort: an IPv6 host needs brackets to be unambiguous.
    throw new Error(`bind address "${value}": put an IPv6 host in brackets, e.g. "[::1]:8080"`);
  }
  if (!/^\d+$/.test(portText) || Number(portText) > MAX_PORT) {
    throw new Error(`bind address "${value}": port must be a number from 0 to ${MAX_PORT}`);
  }
  return { host, port: Number(portText) };
}

// ---------------------------------------------------------------------------------------------
// Shared server plumbing

/** A listening server. */
export interface RunningServer {
  /** The address actually bound; with port 0 requested, `port` is the one the OS picked. */
  readonly address: BindAddress;
  /** Stops accepting connections, closes idle keep-alive ones and waits for in-flight requests. */
  close(): Promise<void>;
}

type Handler = (request: IncomingMessage, response: ServerResponse) => Promise<void>;

/** Starts `handler` on `bind`; `purpose` names the server in errors ("metrics"). */
async function serve(bind: BindAddress, purpose: string, handler: Handler, logger?: Logger): Promise<RunningServer> {
  const { createServer } = await import('node:http');
  const server: Server = createServer((request, response) => {
    handler(request, response).catch((err: unknown) => {
      logger?.error({ err, path: request.url }, `${purpose} request failed`);
      if (!response.headersSent) respond(response, 500, 'internal error\n');
      else response.destroy();
    });
  });

  await new Promise<void>((resolve, reject) => {
    const onError = (err: NodeJS.ErrnoException): void => {
      reject(new Error(`cannot serve ${purpose} on ${formatAddress(bind)}: ${err.code ?? err.message}`, { cause: err }));
    };
    server.once('error', onError);
    // An empty host means "all interfaces": leaving it out lets Node bind the dual-stack `::`.
    const onListening = (): void => {
      server.off('error', onError);
      resolve();
    };
    if (bind.host === '') server.listen(bind.port, onListening);
    else server.listen(bind.port, bind.host, onListening);
  });

  const info = server.address() as AddressInfo;
  return {
    address: { host: info.address, port: info.port },
    close: () =>
      new Promise<void>((resolve, reject) => {
        server.close((err) => (err ? reject(err) : resolve()));
        // close() alone would wait for idle keep-alive connections to time out.
        server.closeIdleConnections();
      }),
  };
}

function formatAddress(bind: BindAddress): string {
  const host = bind.host.includes(':') ? `[${bind.host}]` : bind.host;
  return `${host}:${bind.port}`;
}

function respond(response: ServerResponse, status: number, body: string, contentType = 'text/plain; charset=utf-8'): void {
  response.writeHead(status, {
    'content-type': contentType,
    'content-length': Buffer.byteLength(body),
    // Probe and scrape results are live state; nothing in between may cache them.
    'cache-control': 'no-store',
    'x-content-type-options': 'nosniff',
  });
  response.end(response.req.method === 'HEAD' ? undefined : body);
}

/** Answers 405 for anything but GET/HEAD; returns whether the request may proceed. */
function allowReadOnly(request: IncomingMessage, response: ServerResponse): boolean {
  if (request.method === 'GET' || request.method === 'HEAD') return true;
  response.setHeader('allow', 'GET, HEAD');
  respond(response, 405, 'method not allowed\n');
  return false;
}

function parseUrl(request: IncomingMessage): URL {
  // Only path and query matter; the base just makes the URL parser accept a path.
  return new URL(request.url ?? '/', 'http://localhost');
}

// ---------------------------------------------------------------------------------------------
// Metrics

export interface MetricsServerOptions {
  /** See {@link parseBindAddress}; `"0"` or `""` disables the server. */
  readonly bindAddress: string;
  /** The registry to expose (non-global, see `createRegistry`). */
  readonly registry: Registry;
  readonly logger: Logger;
}

/** Path Prometheus scrapes by default. */
const METRICS_PATH = '/metrics';

/**
 * Serves `GET /metrics` in the Prometheus text format.
 *
 * @returns the running server, or `undefined` when `bindAddress` disables it.
 * @throws Error for a malformed bind address or when the port cannot be bound.
 */
export async function startMetricsServer(options: MetricsServerOptions): Promise<RunningServer | undefined> {
  const bind = parseBindAddress(options.bindAddress);
  if (!bind) {
    options.logger.info('metrics server disabled');
    return undefined;
  }
  const { registry, logger } = options;
  const server = await serve(
    bind,
    'metrics',
    async (request, response) => {
      if (parseUrl(request).pathname !== METRICS_PATH) return respond(response, 404, 'not found\n');
      if (!allowReadOnly(request, response)) return;
      const body = await registry.metrics();
      respond(response, 200, body, registry.contentType);
    },
    logger,
  );
  logger.info({ address: formatAddress(server.address) }, 'serving metrics');
  return server;
}

// ---------------------------------------------------------------------------------------------
// Health probes

/** A named health check. It passes by returning (or resolving); it fails by throwing. */
export interface HealthCheck {
  /** Short name shown in probe output, e.g. `informers-synced`. */
  readonly name: string;
  check(): Promise<void> | void;
}

/** Which probe a check answers: liveness (`/healthz`) or readiness (`/readyz`). */
export type HealthCheckKind = 'liveness' | 'readiness';

export interface HealthServerOptions {
  /** See {@link parseBindAddress}; `"0"` or `""` disables the server. */
  readonly bindAddress: string;
  /**
   * Checks known at start. More can be added with {@link HealthServer.addCheck}. With no checks,
   * a probe passes: the process answering is the liveness signal.
   */
  readonly checks?: Readonly<Partial<Record<HealthCheckKind, readonly HealthCheck[]>>>;
  /** Receives the reasons of failed checks, which probe responses withhold. Optional. */
  readonly logger?: Logger;
  /**
   * A check still running after this long fails as "timed out", so a hung dependency cannot pile
   * up probe requests. Default 5 000 ms — above the kubelet's default probe timeout (1 s), so
   * normally the kubelet gives up first and this only bounds the work.
   */
  readonly checkTimeoutMs?: number;
  /** Time source for check timeouts. Default: the real clock. */
  readonly clock?: Clock;
}

/** A running probe server. */
export interface HealthServer extends RunningServer {
  /** Registers a check; it takes part in every probe from now on. Names must be unique per kind. */
  addCheck(kind: HealthCheckKind, check: HealthCheck): void;
}

const DEFAULT_CHECK_TIMEOUT_MS = 5_000;

/** Probe paths and the check kind each runs, with kube-apiserver's names. */
const PROBE_PATHS: Readonly<Record<string, HealthCheckKind>> = {
  '/healthz': 'liveness',
  '/readyz': 'readiness',
};

/** Outcome of one check within one probe. */
type CheckResult = { readonly name: string; readonly ok: true } | { readonly name: string; readonly ok: false; readonly reason: string };

/**
 * Serves `/healthz` (liveness) and `/readyz` (readiness) in kube-apiserver's format:
 *
 * - all checks pass: `200 ok`; with `?verbose`, one `[+]name ok` line per check, then
 *   `healthz check passed`.
 * - a check fails: `500` listing the failing checks as `[-]name failed: reason withheld`, then
 *   `healthz check failed`; with `?verbose`, passing checks are listed too. Reasons go to the
 *   logger, not the response, as in kube-apiserver: anything in the cluster can reach the probe port.
 *
 * @returns the running server, or `undefined` when `bindAddress` disables it.
 * @throws Error for a malformed bind address, a duplicate check name, or when the port cannot be bound.
 */
export async function startHealthServer(options: HealthServerOptions): Promise<HealthServer | undefined> {
  const bind = parseBindAddress(options.bindAddress);
  if (!bind) {
    options.logger?.info('health probe server disabled');
    return undefined;
  }
  const clock = options.clock ?? realClock;
  const timeoutMs = options.checkTimeoutMs ?? DEFAULT_CHECK_TIMEOUT_MS;
  const checks: Record<HealthCheckKind, HealthCheck[]> = { liveness: [], readiness: [] };

  const addCheck = (kind: HealthCheckKind, check: HealthCheck): void => {
    if (checks[kind].some((existing) => existing.name === check.name)) {
      throw new Error(`duplicate ${kind} check "${check.name}"`);
    }
    checks[kind].push(check);
  };
  for (const check of options.checks?.liveness ?? []) addCheck('liveness', check);
  for (const check of options.checks?.readiness ?? []) addCheck('readiness', check);

  const server = await serve(
    bind,
    'health probes',
    async (request, response) => {
      const url = parseUrl(request);
      const kind = PROBE_PATHS[url.pathname];
      if (kind === undefined) return respond(response, 404, 'not found\n');
      if (!allowReadOnly(request, response)) return;
      const results = await Promise.all(checks[kind].map((check) => runCheck(check, clock, timeoutMs)));
      for (const result of results) {
        if (!result.ok) options.logger?.warn({ check: result.name, probe: url.pathname, reason: result.reason }, 'health check failed');
      }
      const { status, body } = renderProbe(url.pathname.slice(1), results, url.searchParams.has('verbose'));
      respond(response, status, body);
    },
    options.logger,
  );
  options.logger?.info({ address: formatAddress(server.address) }, 'serving health probes');
  return { ...server, addCheck };
}

/** Runs one check, turning a throw, a rejection or a timeout into a failed result. */
async function runCheck(check: HealthCheck, clock: Clock, timeoutMs: number): Promise<CheckResult> {
  let timer: ReturnType<Clock['setTimer']> | undefined;
  const timedOut = new Promise<never>((_, reject) => {
    timer = clock.setTimer(() => reject(new Error(`timed out after ${timeoutMs}ms`)), timeoutMs);
  });
  try {
    // `async () =>` makes a synchronous throw a rejection like any other.
    await Promise.race([(async () => check.check())(), timedOut]);
    return { name: check.name, ok: true };
  } catch (err) {
    return { name: check.name, ok: false, reason: err instanceof Error ? err.message : String(err) };
  } finally {
    if (timer) clock.clearTimer(timer);
  }
}

/** Formats a probe response like kube-apiserver's healthz handler. `probe` is `healthz` or `readyz`. */
function renderProbe(probe: string, results: readonly CheckResult[], verbose: boolean): { status: number; body: string } {
  const failed = results.some((result) => !result.ok);
  if (!failed && !verbose) return { status: 200, body: 'ok' };
  const lines = results
    .filter((result) => verbose || !result.ok)
    .map((result) => (result.ok ? `[+]${result.name} ok` : `[-]${result.name} failed: reason withheld`));
  lines.push(failed ? `${probe} check failed` : `${probe} check passed`);
  return { status: failed ? 500 : 200, body: `${lines.join('\n')}\n` };
}
