/**
 * The admission webhook server: HTTPS, one path per handler, AdmissionReview v1 in and out.
 *
 * - **Certificate** from files (a mounted Secret), reloaded when they change (see
 *   certificate.ts) and swapped into the listening server with `setSecureContext`: new
 *   connections get the new certificate, open ones finish on the old. Not ready until a
 *   certificate has loaded.
 * - **Deadline.** The API server gives up on a webhook after the configuration's
 *   `timeoutSeconds` (and then applies its failurePolicy, slowing every request by that long).
 *   Each handler gets a deadline well inside it — by default 1.5 s, and never more than 80 % of
 *   the `timeout` the API server sends with each call — and when it passes, the server answers
 *   for the handler according to the handler's own `failurePolicy`, the value its webhook
 *   configuration uses: `Ignore` → allowed unchanged, with a warning naming the webhook (the
 *   request goes on without the mutation, as if the webhook were down, but promptly); `Fail` →
 *   denied with 503 and a message to try again. A handler that throws is answered the same way.
 *   The handler's `signal` aborts at the deadline so it can stop its work.
 * - **Limits.** Request bodies over 7 MiB (an AdmissionReview carries the object and, on update,
 *   its old version; objects are at most ~3 MiB) are refused with 413 before they are read.
 * - **Connections kept.** The API server's webhook client keeps an idle connection for 90 s
 *   (Go's `http.Transport.IdleConnTimeout`); Node closes one idle for 5 s by default, and every
 *   call after such a pause would pay a new TLS handshake (several ms of both sides' CPU). So an
 *   idle connection is kept for 95 s: the client, not us, closes it, and the API server never
 *   sends a call on a connection we are closing at the same moment.
 * - **Metrics** in the given registry: `crowsnest_webhook_requests_total{webhook,code}` (code: 200
 *   allowed, the denial's code when denied, or the HTTP status of a request that could not be
 *   reviewed), `crowsnest_webhook_request_duration_seconds{webhook}`, and
 *   `crowsnest_webhook_connections_total` (TLS connections accepted: with reuse it grows by a few
 *   per API server, not by one per call).
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import { Counter, Gauge, Histogram, type Registry } from 'prom-client';
import { type Logger, silentLogger } from '../logger-type.ts';
import { CertificateWatcher, listenWithCertificates, type ServingCertificate } from './certificate.ts';
import { readBody } from './https-endpoint.ts';
import {
  type AdmissionRequest, type AdmissionResult, allow, BadReviewError, decodeAdmissionReview, deny, encodeAdmissionResponse,
} from './review.ts';

/** What the API server does when the webhook fails; here also what a missed deadline answers. */
export type FailurePolicy = 'Ignore' | 'Fail';

export interface AdmissionHandler {
  /** Metric label and log name, e.g. `prober-inject`. Bounded: one per handler. */
  readonly name: string;
  /** URL path the webhook configuration points at, e.g. `/mutate-pods`. */
  readonly path: string;
  /** Same value as in the webhook configuration (mutating webhooks should use Ignore). */
  readonly failurePolicy: FailurePolicy;
  /** Decides one request. Must not have side effects when `request.dryRun` is true. */
  review(request: AdmissionRequest, signal: AbortSignal): AdmissionResult | Promise<AdmissionResult>;
}

export interface WebhookServerOptions {
  /** Interface to listen on; `""` (default) is every interface. */
  readonly host?: string;
  /** TCP port; 0 picks a free one (see {@link WebhookServer.port}). */
  readonly port: number;
  /** PEM files of the serving certificate and its key (`tls.crt`, `tls.key` of a Secret). */
  readonly certFile: string;
  readonly keyFile: string;
  readonly handlers: readonly AdmissionHandler[];
  readonly registry?: Registry;
  readonly logger?: Logger;
  /** Longest a handler may take, in milliseconds. Default 1,500. */
  readonly handlerDeadlineMs?: number;
  /** Largest request body accepted, in bytes. Default 7 MiB. */
  readonly maxRequestBytes?: number;
  /** How often the certificate files are read besides watch events, in milliseconds. Default 10,000. */
  readonly certificatePollIntervalMs?: number;
}

export const DEFAULT_HANDLER_DEADLINE_MS = 1_500;
export const DEFAULT_MAX_REQUEST_BYTES = 7 * 1024 * 1024;
/** Share of the API server's `timeout` a handler may use; the rest is transfer and our own work. */
const TIMEOUT_SHARE = 0.8;
const MS_PER_SECOND = 1000;
/** In-flight reviews get this long to finish on stop before their connections are closed. */
const STOP_GRACE_MS = 5_000;
/**
 * How long an idle connection is kept: longer than the 90 s the API server's client keeps one,
 * so it is always the client that closes (see the module comment).
 */
export const IDLE_CONNECTION_TIMEOUT_MS = 95_000;

const HTTP = { ok: 200, badRequest: 400, notFound: 404, methodNotAllowed: 405, tooLarge: 413, unsupportedType: 415, unavailable: 503 } as const;
const UNKNOWN_WEBHOOK = 'unknown';

export class WebhookServer {
  private readonly options: WebhookServerOptions;
  private readonly handlers: ReadonlyMap<string, AdmissionHandler>;
  private readonly logger: Logger;
  private readonly metrics: WebhookMetrics | undefined;
  private readonly certificates: CertificateWatcher;
  private server: Server | undefined;
  private readonly inFlight = new Set<Promise<void>>();

  constructor(options: WebhookServerOptions) {
    this.options = options;
    this.logger = options.logger ?? silentLogger;
    const handlers = new Map<string, AdmissionHandler>();
    for (const h of options.handlers) {
      if (handlers.has(h.path)) throw new Error(`two webhook handlers on path ${h.path}`);
      handlers.set(h.path, h);
    }
    this.handlers = handlers;
    this.metrics = options.registry ? webhookMetrics(options.registry) : undefined;
    this.certificates = new CertificateWatcher({
      certFile: options.certFile,
      keyFile: options.keyFile,
      logger: this.logger,
      ...(options.certificatePollIntervalMs ? { pollIntervalMs: options.certificatePollIntervalMs } : {}),
      onChange: (certificate) => this.useCertificate(certificate),
      onRejected: () => this.metrics?.certificateReloads.inc({ result: 'rejected' }),
    });
  }

  /** Starts listening (with the certificate if its files are there) and watching the certificate files. */
  async start(): Promise<void> {
    const server = createServer({}, (req, res) => this.track(this.serve(req, res)));
    server.keepAliveTimeout = IDLE_CONNECTION_TIMEOUT_MS;
    // Raised with it: a headers timeout shorter than the keep-alive one is the known Node pitfall
    // that cuts off a kept connection's next request.
    server.headersTimeout = IDLE_CONNECTION_TIMEOUT_MS + MS_PER_SECOND;
    server.on('secureConnection', () => this.metrics?.connections.inc());
    // No certificate yet: handshakes fail until one loads, and readiness says so.
    this.server = server;
    try {
      await listenWithCertificates(server, this.certificates, this.options.port, this.options.host);
    } catch (err) {
      this.server = undefined;
      throw err;
    }
    this.logger.info({ port: this.port, handlers: [...this.handlers.keys()] }, 'webhook server listening');
  }

  /** The port it listens on (useful with port 0). */
  get port(): number {
    return (this.server?.address() as AddressInfo | null)?.port ?? 0;
  }

  /** The certificate being served, if any. */
  get certificate(): ServingCertificate | undefined {
    return this.certificates.certificate;
  }

  /** Reads the certificate files now (a watch event or the poll would, a little later). */
  async reloadCertificate(): Promise<boolean> {
    return await this.certificates.reload();
  }

  /** Readiness: listening with a certificate. Shaped as the operator's health checks. */
  readinessCheck(): { readonly name: string; check(): void } {
    return {
      name: 'webhook-certificate',
      check: () => {
        if (!this.server?.listening) throw new Error('webhook server not listening');
        if (!this.certificates.certificate) throw new Error(`no serving certificate loaded from ${this.options.certFile}`);
      },
    };
  }

  /** Stops accepting connections, lets in-flight reviews finish (up to 5 s), and stops watching. */
  async stop(): Promise<void> {
    this.certificates.stop();
    const server = this.server;
    if (!server) return;
    this.server = undefined;
    const closed = new Promise<void>((resolve) => server.close(() => resolve()));
    server.closeIdleConnections();
    const grace = new Promise<void>((resolve) => setTimeout(resolve, STOP_GRACE_MS).unref());
    await Promise.race([Promise.all(this.inFlight), grace]);
    server.closeAllConnections();
    await closed;
  }

  private useCertificate(certificate: ServingCertificate): void {
    this.server?.setSecureContext({ cert: certificate.cert, key: certificate.key });
    this.metrics?.certificateReloads.inc({ result: 'loaded' });
    this.metrics?.certificateExpiry.set(certificate.notAfterMs / MS_PER_SECOND);
  }

  private track(work: Promise<void>): void {
    this.inFlight.add(work);
    void work.finally(() => this.inFlight.delete(work));
  }

  private async serve(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const started = performance.now();
    const url = new URL(req.url ?? '/', 'https://webhook');
    const handler = this.handlers.get(url.pathname);
    const webhook = handler?.name ?? UNKNOWN_WEBHOOK;
    let code: number;
    try {
      code = await this.answer(req, res, url, handler);
    } catch (err) {
      // Only a failure to write the answer lands here (the client went away).
      this.logger.warn({ webhook, err: String(err) }, 'webhook answer not delivered');
      code = HTTP.badRequest;
    }
    this.metrics?.requests.inc({ webhook, code: String(code) });
    if (handler) this.metrics?.duration.observe({ webhook }, (performance.now() - started) / MS_PER_SECOND);
  }

  /** Answers one HTTP request; returns the code counted in the metrics. */
  private async answer(req: IncomingMessage, res: ServerResponse, url: URL, handler: AdmissionHandler | undefined): Promise<number> {
    if (!handler) return plain(res, HTTP.notFound, `no webhook at ${url.pathname}`);
    if (req.method !== 'POST') return plain(res, HTTP.methodNotAllowed, 'admission reviews are POSTed');
    if (!/^application\/json\b/.test(req.headers['content-type'] ?? '')) return plain(res, HTTP.unsupportedType, 'expected Content-Type: application/json');
    const maxBytes = this.options.maxRequestBytes ?? DEFAULT_MAX_REQUEST_BYTES;
    const body = await readBody(req, maxBytes);
    if (body === undefined) return plain(res, HTTP.tooLarge, `request body over ${maxBytes} bytes`);
    let request: AdmissionRequest;
    try {
      request = decodeAdmissionReview(body);
    } catch (err) {
      if (err instanceof BadReviewError) return plain(res, HTTP.badRequest, err.message);
      throw err;
    }
    const result = await this.decide(handler, request, this.deadlineFor(url));
    const review = JSON.stringify(encodeAdmissionResponse(request, result));
    res.writeHead(HTTP.ok, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(review) });
    await new Promise<void>((resolve) => res.end(review, resolve));
    return result.kind === 'deny' ? result.code : HTTP.ok;
  }

  /** The handler's deadline: the configured one, or less when the API server's own timeout is shorter. */
  private deadlineFor(url: URL): number {
    const configured = this.options.handlerDeadlineMs ?? DEFAULT_HANDLER_DEADLINE_MS;
    // The API server appends ?timeout=<n>s, its own deadline for this call.
    const match = /^(\d+(?:\.\d+)?)s$/.exec(url.searchParams.get('timeout') ?? '');
    return match ? Math.min(configured, Number(match[1]) * MS_PER_SECOND * TIMEOUT_SHARE) : configured;
  }

  /** Runs the handler against its deadline; a miss or a throw is answered by its failure policy. */
  private async decide(handler: AdmissionHandler, request: AdmissionRequest, deadlineMs: number): Promise<AdmissionResult> {
    const abort = new AbortController();
    let timer: NodeJS.Timeout | undefined;
    const missed = new Promise<'deadline'>((resolve) => {
      timer = setTimeout(() => resolve('deadline'), deadlineMs);
    });
    try {
      const outcome = await Promise.race([Promise.resolve().then(() => handler.review(request, abort.signal)), missed]);
      if (outcome !== 'deadline') return outcome;
      this.metrics?.failures.inc({ webhook: handler.name, reason: 'deadline' });
      this.logger.warn({ webhook: handler.name, deadlineMs, uid: request.uid }, 'webhook handler missed its deadline');
      return failed(handler, `did not decide within ${Math.round(deadlineMs)} ms`);
    } catch (err) {
      this.metrics?.failures.inc({ webhook: handler.name, reason: 'error' });
      this.logger.error({ webhook: handler.name, err: String(err), uid: request.uid }, 'webhook handler failed');
      return failed(handler, 'failed');
    } finally {
      clearTimeout(timer);
      abort.abort(new Error('admission decided'));
    }
  }
}

/** The answer when a handler did not decide: its failure policy, said plainly. */
function failed(handler: AdmissionHandler, what: string): AdmissionResult {
  if (handler.failurePolicy === 'Ignore') return allow([`crowsnest webhook ${handler.name} ${what}; the request was let through without it`]);
  return deny(`crowsnest webhook ${handler.name} ${what}; try again`, { code: HTTP.unavailable, reason: 'ServiceUnavailable' });
}

function plain(res: ServerResponse, status: number, message: string): number {
  res.writeHead(status, { 'content-type': 'text/plain; charset=utf-8', connection: status === HTTP.tooLarge ? 'close' : 'keep-alive' });
  res.end(`${message}\n`);
  return status;
}

interface WebhookMetrics {
  readonly requests: Counter<'webhook' | 'code'>;
  readonly duration: Histogram<'webhook'>;
  readonly failures: Counter<'webhook' | 'reason'>;
  readonly certificateReloads: Counter<'result'>;
  readonly certificateExpiry: Gauge;
  readonly connections: Counter;
}

const metricsByRegistry = new WeakMap<Registry, WebhookMetrics>();

function webhookMetrics(registry: Registry): WebhookMetrics {
  let metrics = metricsByRegistry.get(registry);
  if (!metrics) {
    metrics = {
      requests: new Counter({
        name: 'crowsnest_webhook_requests_total',
        help: 'Admission requests by webhook and code: 200 allowed, the denial code when denied, or the HTTP status of a request that could not be reviewed.',
        labelNames: ['webhook', 'code'], registers: [registry],
      }),
      duration: new Histogram({
        name: 'crowsnest_webhook_request_duration_seconds',
        help: 'Time from receiving an admission request to having answered it, by webhook.',
        labelNames: ['webhook'], buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5], registers: [registry],
      }),
      failures: new Counter({
        name: 'crowsnest_webhook_handler_failures_total',
        help: 'Admission requests answered by the failure policy because the handler missed its deadline or threw, by webhook and reason.',
        labelNames: ['webhook', 'reason'], registers: [registry],
      }),
      certificateReloads: new Counter({
        name: 'crowsnest_webhook_certificate_reloads_total',
        help: 'Serving certificates read from disk: loaded, or rejected (half written, key not matching).',
        labelNames: ['result'], registers: [registry],
      }),
      certificateExpiry: new Gauge({
        name: 'crowsnest_webhook_certificate_expiry_timestamp_seconds',
        help: 'When the served webhook certificate expires (Unix time).', registers: [registry],
      }),
      connections: new Counter({
        name: 'crowsnest_webhook_connections_total',
        help: 'TLS connections the webhook server accepted (handshake done); kept-alive connections carry many admission requests each.',
        registers: [registry],
      }),
    };
    metricsByRegistry.set(registry, metrics);
  }
  return metrics;
}
