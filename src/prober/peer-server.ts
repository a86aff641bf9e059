/**
 * The peer endpoint agents sync with: `POST /v1/sync` over HTTPS, on every replica, with the
 * webhook's serving certificate (reloaded when it rotates).
 *
 * Per request: the bearer token is reviewed ({@link TokenReviewer}, cached), the pod it names is
 * looked up in the cache, and the {@link PeerDirectory} answers. A leader keeps the report the
 * request carries ({@link ReachabilityReports}) and wakes the status controller when a pair
 * changed state; a standby answers the peers and says it kept nothing, so the agent reconnects
 * and reaches the leader on a later try.
 *
 * Answers: 200 (SyncResponse), 400 (body), 401 (token: missing, refused, wrong audience, not a
 * pod's), 403 (the pod gets no peers, with the reason), 404/405, 413, 503 (API server or cache
 * not ready: retry).
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { Counter, Histogram, type Registry } from 'prom-client';
import type { Clock } from '../kube/clock.ts';
import { type Logger, silentLogger } from '../kube/logger-type.ts';
import { bearerToken, HttpsEndpoint, readBody, sendJson as send } from '../kube/webhook/https-endpoint.ts';
import { type PeerResult, SYNC_PATH, type SyncRequest } from './contract.ts';
import type { PeerDirectory, ReachabilityReports } from './peers.ts';
import type { TokenReviewer } from '../kube/auth/token-review.ts';

export interface PeerServerOptions {
  /** Interface to listen on; default every interface. */
  readonly host?: string;
  /** 0 picks a free port. */
  readonly port: number;
  readonly certFile: string;
  readonly keyFile: string;
  readonly reviewer: Pick<TokenReviewer, 'review'>;
  readonly directory: PeerDirectory;
  readonly reports: ReachabilityReports;
  /** Whether this replica leads (keeps reports). */
  readonly isLeading: () => boolean;
  /** A report changed some pair's state for this prober (`namespace/name`). */
  readonly onReportChanged?: (proberKey: string) => void;
  readonly clock: Clock;
  readonly logger?: Logger;
  readonly registry?: Registry;
  /** See CertificateWatcher. */
  readonly certificatePollIntervalMs?: number;
}

const MAX_BODY_BYTES = 1024 * 1024;
const MAX_RESULTS = 10_000;

export class PeerServer {
  private readonly options: PeerServerOptions;
  private readonly logger: Logger;
  private readonly endpoint: HttpsEndpoint;
  private readonly metrics: PeerServerMetrics | undefined;
  private readonly lastOutcomes = new Map<string, string>();

  constructor(options: PeerServerOptions) {
    this.options = options;
    this.logger = options.logger ?? silentLogger;
    this.metrics = options.registry ? peerServerMetrics(options.registry) : undefined;
    this.endpoint = new HttpsEndpoint({
      name: 'prober-peer-endpoint',
      ...(options.host !== undefined ? { host: options.host } : {}),
      port: options.port,
      certFile: options.certFile,
      keyFile: options.keyFile,
      handle: (req, res) => this.answer(req, res),
      onAnswered: (code, seconds) => {
        this.metrics?.requests.inc({ code: String(code) });
        this.metrics?.duration.observe(seconds);
      },
      logger: this.logger,
      ...(options.certificatePollIntervalMs ? { certificatePollIntervalMs: options.certificatePollIntervalMs } : {}),
    });
  }

  async start(): Promise<void> {
    await this.endpoint.start();
  }

  get port(): number {
    return this.endpoint.port;
  }

  /** Readiness: listening with a certificate. */
  readinessCheck(): { readonly name: string; check(): void } {
    return this.endpoint.readinessCheck();
  }

  async stop(): Promise<void> {
    await this.endpoint.stop();
  }

  private async answer(req: IncomingMessage, res: ServerResponse): Promise<number> {
    const path = (req.url ?? '/').split('?')[0];
    if (path !== SYNC_PATH) return send(res, 404, { message: `no endpoint at ${path}` });
    if (req.method !== 'POST') return send(res, 405, { message: `${SYNC_PATH} takes POST` });
    const token = bearerToken(req);
    const body = await readBody(req, MAX_BODY_BYTES);
    if (body === undefined) return send(res, 413, { message: `body over ${MAX_BODY_BYTES} bytes` });
    if (!token) return send(res, 401, { message: 'a ServiceAccount token (audience crowsnest.dev/prober) is required' });
    const request = parseSyncRequest(body);
    if (!request) return send(res, 400, { message: 'body must be {"version": string, "results": [{"uid", "reachable", "reason"?}]}' });
    let review: Awaited<ReturnType<TokenReviewer['review']>>;
    try {
      review = await this.options.reviewer.review(token);
    } catch (err) {
      this.metrics?.reviews.inc({ result: 'error' });
      this.logger.warn({ err: String(err) }, 'TokenReview failed');
      return send(res, 503, { message: 'cannot review the token now; try again' });
    }
    this.metrics?.reviews.inc({ result: review.ok ? 'ok' : review.refusal });
    if (!review.ok) return send(res, 401, { message: `token refused: ${review.refusal}` });
    const { identity } = review;
    const leading = this.options.isLeading();
    const answer = this.options.directory.answer(identity.namespace, identity.podName, identity.podUid, request, leading);
    if (answer.status !== 200) return send(res, answer.status, { message: answer.message });
    if (leading) this.keepReport(answer.proberKey, identity.podUid, request.results);
    return send(res, 200, answer.response);
  }

  private keepReport(proberKey: string, sourceUid: string, results: readonly PeerResult[]): void {
    this.options.reports.record(proberKey, sourceUid, results, this.options.clock.now());
    // Wake the status controller only when a pair changed state, not on every report.
    const outcome = results.map((r) => `${r.uid}:${r.reachable ? 1 : 0}`).sort().join(',');
    const key = `${proberKey}/${sourceUid}`;
    if (this.lastOutcomes.get(key) !== outcome) {
      this.lastOutcomes.set(key, outcome);
      this.options.onReportChanged?.(proberKey);
    }
  }
}

function parseSyncRequest(body: string): SyncRequest | undefined {
  let value: unknown;
  try {
    value = JSON.parse(body);
  } catch {
    return undefined;
  }
  const r = value as Partial<SyncRequest> | null;
  if (!r || typeof r !== 'object' || typeof r.version !== 'string' || !Array.isArray(r.results) || r.results.length > MAX_RESULTS) return undefined;
  const results: PeerResult[] = [];
  for (const item of r.results as unknown[]) {
    const result = item as Partial<PeerResult> | null;
    if (!result || typeof result.uid !== 'string' || typeof result.reachable !== 'boolean') return undefined;
    results.push({ uid: result.uid, reachable: result.reachable, ...(typeof result.reason === 'string' ? { reason: result.reason.slice(0, 64) } : {}) });
  }
  return { version: r.version, results };
}

interface PeerServerMetrics {
  readonly requests: Counter<'code'>;
  readonly duration: Histogram;
  readonly reviews: Counter<'result'>;
}

const metricsByRegistry = new WeakMap<Registry, PeerServerMetrics>();

function peerServerMetrics(registry: Registry): PeerServerMetrics {
  let metrics = metricsByRegistry.get(registry);
  if (!metrics) {
    metrics = {
      requests: new Counter({ name: 'crowsnest_prober_peer_requests_total', help: 'Agent syncs answered by the peer endpoint, by HTTP status code.', labelNames: ['code'], registers: [registry] }),
      duration: new Histogram({
        name: 'crowsnest_prober_peer_request_duration_seconds', help: 'Time to answer an agent\'s sync, TokenReview included.',
        buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5], registers: [registry],
      }),
      reviews: new Counter({
        name: 'crowsnest_prober_token_reviews_total', help: 'Agent tokens checked (cached answers included), by result: ok, unauthenticated, wrong_audience, not_a_pod_token, error.',
        labelNames: ['result'], registers: [registry],
      }),
    };
    metricsByRegistry.set(registry, metrics);
  }
  return metrics;
}
