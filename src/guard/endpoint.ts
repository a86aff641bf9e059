/**
 * The guard endpoint (HTTPS, every replica): health sidecars report their pod's probes and
 * listening sockets (`POST /v1/guard/health`), node log agents report matching log lines of the
 * pods on their node (`POST /v1/guard/logs`) and learn what to tail. Wire formats: contract.ts.
 *
 * Authentication is a projected ServiceAccount token (audience `crowsnest.dev/guard`) checked by
 * a TokenReview; no RBAC grant in user namespaces is involved. Authorization:
 * - a sidecar reports only about its own pod (the token's pod), which must carry the
 *   `guard.crowsnest.dev/policy` annotation our webhook writes;
 * - a log agent's token must be a pod of the log agent's ServiceAccount; its node (the token's
 *   node-name claim, else its pod's node in the cache) must be the batch's `node`, and every pod
 *   it counts must run on that node. Counts for pods the cache no longer has are dropped (gone).
 *
 * Only the leader keeps reports (it holds the detection state); a standby answers 503 with
 * Retry-After, so the caller retries and, through the Service, reaches the leader. A log batch
 * seen before (same node and `batchId`) is acknowledged and not counted again.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { Counter, Histogram, type Registry } from 'prom-client';
import type { GuardPolicy } from './api.ts';
import { errorLogPattern } from './api.ts';
import {
  GUARD_POLICY_ANNOTATION, HEALTH_PATH, type HealthAnswer, type HealthReport, type ListeningSocket, type LogAnswer, type LogBatch, type LogCount,
  LOGS_PATH, type LogWatch, type PortHealth,
} from './contract.ts';
import type { GuardPod } from './pods.ts';
import type { GuardSignals } from './signals.ts';
import type { ReviewResult, TokenReviewer } from '../kube/auth/token-review.ts';
import type { Clock } from '../kube/clock.ts';
import { type Logger, silentLogger } from '../kube/logger-type.ts';
import { matchesLabelSelector } from '../kube/objects/selector.ts';
import { bearerToken, HttpsEndpoint, readBody, sendJson } from '../kube/webhook/https-endpoint.ts';

export interface GuardEndpointOptions {
  readonly host?: string;
  /** 0 picks a free port. */
  readonly port: number;
  readonly certFile: string;
  readonly keyFile: string;
  readonly reviewer: Pick<TokenReviewer, 'review'>;
  readonly pod: (namespace: string, name: string) => GuardPod | undefined;
  readonly podsOnNode: (node: string) => readonly GuardPod[];
  readonly policiesIn: (namespace: string) => readonly GuardPolicy[];
  readonly signals: GuardSignals;
  /** The log agent's ServiceAccount, `namespace/name`. */
  readonly logAgentServiceAccount: string;
  readonly reportIntervalMs: number;
  readonly isLeading: () => boolean;
  /** A report arrived for a pod of this policy (`namespace/name`): detection should look. */
  readonly onReport?: (policyKey: string) => void;
  readonly clock: Clock;
  readonly logger?: Logger;
  readonly registry?: Registry;
  readonly certificatePollIntervalMs?: number;
}

const MAX_BODY_BYTES = 1024 * 1024;
const MAX_ITEMS = 10_000;
const RETRY_AFTER_SECONDS = '5';

export class GuardEndpoint {
  private readonly options: GuardEndpointOptions;
  private readonly logger: Logger;
  private readonly endpoint: HttpsEndpoint;
  private readonly metrics: EndpointMetrics | undefined;

  constructor(options: GuardEndpointOptions) {
    this.options = options;
    this.logger = options.logger ?? silentLogger;
    this.metrics = options.registry ? endpointMetrics(options.registry) : undefined;
    this.endpoint = new HttpsEndpoint({
      name: 'guard-endpoint',
      ...(options.host !== undefined ? { host: options.host } : {}),
      port: options.port,
      certFile: options.certFile,
      keyFile: options.keyFile,
      handle: (req, res) => this.answer(req, res),
      onAnswered: (code, seconds) => this.metrics?.duration.observe({ code: String(code) }, seconds),
      logger: this.logger,
      ...(options.certificatePollIntervalMs ? { certificatePollIntervalMs: options.certificatePollIntervalMs } : {}),
    });
  }

  start(): Promise<void> {
    return this.endpoint.start();
  }

  stop(): Promise<void> {
    return this.endpoint.stop();
  }

  get port(): number {
    return this.endpoint.port;
  }

  readinessCheck(): { readonly name: string; check(): void } {
    return this.endpoint.readinessCheck();
  }

  private async answer(req: IncomingMessage, res: ServerResponse): Promise<number> {
    const path = (req.url ?? '/').split('?')[0];
    if (path !== HEALTH_PATH && path !== LOGS_PATH) return sendJson(res, 404, { message: `no endpoint at ${path}` });
    if (req.method !== 'POST') return sendJson(res, 405, { message: `${path} takes POST` });
    const token = bearerToken(req);
    const body = await readBody(req, MAX_BODY_BYTES);
    if (body === undefined) return sendJson(res, 413, { message: `body over ${MAX_BODY_BYTES} bytes` });
    if (!token) return sendJson(res, 401, { message: 'a projected ServiceAccount token (audience crowsnest.dev/guard) is required' });
    let review: ReviewResult;
    try {
      review = await this.options.reviewer.review(token);
    } catch (err) {
      this.logger.warn({ err: String(err) }, 'TokenReview failed');
      return this.count(path, 'review_error', sendJson(res, 503, { message: 'cannot review the token now; try again' }, { 'retry-after': RETRY_AFTER_SECONDS }));
    }
    if (!review.ok) return this.count(path, review.refusal, sendJson(res, 401, { message: `token refused: ${review.refusal}` }));
    return path === HEALTH_PATH ? this.health(review.identity, body, res) : this.logs(review.identity, body, res);
  }

  private count(path: string, result: string, code: number): number {
    this.metrics?.reports.inc({ endpoint: path === HEALTH_PATH ? 'health' : 'logs', result });
    return code;
  }

  private health(identity: ReviewIdentity, body: string, res: ServerResponse): number {
    const report = parseHealthReport(body);
    if (!report) return this.count(HEALTH_PATH, 'bad_request', sendJson(res, 400, { message: 'body must be a HealthReport: {"sequence": n, "ports": [...], "listening": [...]}' }));
    const pod = this.options.pod(identity.namespace, identity.podName);
    if (!pod || pod.metadata.uid !== identity.podUid) return this.count(HEALTH_PATH, 'unknown_pod', sendJson(res, 403, { message: `pod ${identity.namespace}/${identity.podName} is not known (yet): try again` }, { 'retry-after': RETRY_AFTER_SECONDS }));
    const policyName = pod.metadata.annotations?.[GUARD_POLICY_ANNOTATION];
    if (!policyName) return this.count(HEALTH_PATH, 'forbidden', sendJson(res, 403, { message: `pod ${identity.namespace}/${identity.podName} carries no ${GUARD_POLICY_ANNOTATION} annotation: it has no guard sidecar to report` }));
    if (!this.options.isLeading()) return this.count(HEALTH_PATH, 'standby', sendJson(res, 503, { message: 'this replica does not lead; try again' }, { 'retry-after': RETRY_AFTER_SECONDS }));
    this.options.signals.recordHealth(pod.metadata.uid, report.sequence, report.ports, report.listening, this.options.clock.now());
    this.options.onReport?.(`${pod.metadata.namespace}/${policyName}`);
    const answer: HealthAnswer = { reportAfterMs: this.options.reportIntervalMs };
    return this.count(HEALTH_PATH, 'ok', sendJson(res, 200, answer));
  }

  private logs(identity: ReviewIdentity, body: string, res: ServerResponse): number {
    if (`${identity.namespace}/${identity.serviceAccount}` !== this.options.logAgentServiceAccount) {
      return this.count(LOGS_PATH, 'forbidden', sendJson(res, 403, { message: `only the log agent's ServiceAccount ${this.options.logAgentServiceAccount} may send log batches` }));
    }
    const batch = parseLogBatch(body);
    if (!batch) return this.count(LOGS_PATH, 'bad_request', sendJson(res, 400, { message: 'body must be a LogBatch: {"node": s, "batchId": n, "counts": [...]}' }));
    const agentNode = identity.nodeName ?? this.options.pod(identity.namespace, identity.podName)?.spec.nodeName;
    if (!agentNode) return this.count(LOGS_PATH, 'unknown_pod', sendJson(res, 403, { message: `the node of log agent ${identity.podName} is not known (yet): try again` }, { 'retry-after': RETRY_AFTER_SECONDS }));
    if (batch.node !== agentNode) return this.count(LOGS_PATH, 'forbidden', sendJson(res, 403, { message: `this agent runs on ${agentNode}, not ${batch.node}` }));
    const onNode = new Map(this.options.podsOnNode(agentNode).map((p) => [p.metadata.uid, p]));
    const kept: LogCount[] = [];
    for (const count of batch.counts) {
      const pod = onNode.get(count.podUid);
      if (pod) {
        if (pod.metadata.namespace !== count.namespace || pod.metadata.name !== count.pod) {
          return this.count(LOGS_PATH, 'forbidden', sendJson(res, 403, { message: `pod uid ${count.podUid} is ${pod.metadata.namespace}/${pod.metadata.name}, not ${count.namespace}/${count.pod}` }));
        }
        kept.push(count);
      } else if (this.options.pod(count.namespace, count.pod)?.metadata.uid === count.podUid) {
        return this.count(LOGS_PATH, 'forbidden', sendJson(res, 403, { message: `pod ${count.namespace}/${count.pod} does not run on ${agentNode}` }));
      }
      // Else the pod is gone: its lines no longer matter to detection.
    }
    if (!this.options.isLeading()) return this.count(LOGS_PATH, 'standby', sendJson(res, 503, { message: 'this replica does not lead; try again' }, { 'retry-after': RETRY_AFTER_SECONDS }));
    const signals = this.options.signals;
    const duplicate = signals.seenBatch(batch.node, batch.batchId);
    if (!duplicate) {
      signals.recordLogs(batch.node, batch.batchId, kept, this.options.clock.now());
      for (const c of kept) {
        this.metrics?.logLines.inc({ namespace: c.namespace, policy: c.policy }, c.lines);
        this.metrics?.matchedLogLines.inc({ namespace: c.namespace, policy: c.policy }, c.matched);
      }
      for (const key of new Set(kept.filter((c) => c.matched > 0).map((c) => `${c.namespace}/${c.policy}`))) this.options.onReport?.(key);
    }
    const answer: LogAnswer = { accepted: true, watches: this.watches(agentNode), sendAfterMs: this.options.reportIntervalMs };
    return this.count(LOGS_PATH, duplicate ? 'duplicate' : 'ok', sendJson(res, 200, answer));
  }

  /** What the agent on `node` tails: every pod there that a policy with an errorLogs detector selects. */
  private watches(node: string): LogWatch[] {
    const watches: LogWatch[] = [];
    const policiesByNamespace = new Map<string, readonly GuardPolicy[]>();
    for (const pod of this.options.podsOnNode(node)) {
      if (pod.metadata.deletionTimestamp) continue;
      const namespace = pod.metadata.namespace;
      let policies = policiesByNamespace.get(namespace);
      if (!policies) {
        policies = this.options.policiesIn(namespace).filter((p) => p.spec?.detectors?.errorLogs);
        policiesByNamespace.set(namespace, policies);
      }
      for (const policy of policies) {
        if (!matchesLabelSelector(policy.spec.targets?.podSelector, pod.metadata.labels)) continue;
        const pattern = errorLogPattern(policy.spec);
        if (!pattern) continue;
        watches.push({
          namespace, pod: pod.metadata.name, podUid: pod.metadata.uid, containers: policy.spec.detectors.errorLogs?.containers ?? [],
          policy: policy.metadata.name ?? '', pattern,
        });
      }
    }
    return watches;
  }
}

type ReviewIdentity = Extract<ReviewResult, { ok: true }>['identity'];

const isCount = (v: unknown): v is number => typeof v === 'number' && Number.isInteger(v) && v >= 0;
const isString = (v: unknown, max = 253): v is string => typeof v === 'string' && v.length <= max;

function parseJson(body: string): Record<string, unknown> | undefined {
  try {
    const value = JSON.parse(body) as unknown;
    return value && typeof value === 'object' && !Array.isArray(value) ? value as Record<string, unknown> : undefined;
  } catch {
    return undefined;
  }
}

/** A HealthReport, checked field by field; undefined when anything is off. */
export function parseHealthReport(body: string): HealthReport | undefined {
  const value = parseJson(body);
  if (!value || !isCount(value['sequence']) || !Array.isArray(value['ports']) || !Array.isArray(value['listening'])) return undefined;
  if (value['ports'].length > MAX_ITEMS || value['listening'].length > MAX_ITEMS) return undefined;
  const ports: PortHealth[] = [];
  for (const item of value['ports'] as unknown[]) {
    const p = item as Record<string, unknown> | null;
    if (!p || !isString(p['container'], 63) || !isCount(p['port']) || (p['method'] !== 'http' && p['method'] !== 'tcp') || !isCount(p['probes']) || !isCount(p['failures'])) return undefined;
    ports.push({
      container: p['container'], port: p['port'], method: p['method'], probes: p['probes'], failures: p['failures'],
      ...(typeof p['lastFailure'] === 'string' ? { lastFailure: p['lastFailure'].slice(0, 64) } : {}),
    });
  }
  const listening: ListeningSocket[] = [];
  for (const item of value['listening'] as unknown[]) {
    const s = item as Record<string, unknown> | null;
    if (!s || (s['protocol'] !== 'TCP' && s['protocol'] !== 'UDP') || !isString(s['address'], 64) || !isCount(s['port'])) return undefined;
    listening.push({ protocol: s['protocol'], address: s['address'], port: s['port'] });
  }
  return { sequence: value['sequence'], ports, listening };
}

/** A LogBatch, checked field by field; undefined when anything is off. */
export function parseLogBatch(body: string): LogBatch | undefined {
  const value = parseJson(body);
  if (!value || !isString(value['node']) || !isCount(value['batchId']) || !Array.isArray(value['counts']) || value['counts'].length > MAX_ITEMS) return undefined;
  const counts: LogCount[] = [];
  for (const item of value['counts'] as unknown[]) {
    const c = item as Record<string, unknown> | null;
    if (!c || !isString(c['namespace'], 63) || !isString(c['pod']) || !isString(c['podUid'], 64) || !isString(c['container'], 63) || !isString(c['policy'])
      || !isCount(c['lines']) || !isCount(c['matched']) || c['matched'] > c['lines'] || !Array.isArray(c['samples'])) return undefined;
    counts.push({
      namespace: c['namespace'], pod: c['pod'], podUid: c['podUid'], container: c['container'], policy: c['policy'], lines: c['lines'], matched: c['matched'],
      samples: (c['samples'] as unknown[]).filter((s): s is string => typeof s === 'string').slice(0, 5).map((s) => s.slice(0, 512)),
    });
  }
  return { node: value['node'], batchId: value['batchId'], counts };
}

interface EndpointMetrics {
  readonly reports: Counter<'endpoint' | 'result'>;
  readonly duration: Histogram<'code'>;
  readonly logLines: Counter<'namespace' | 'policy'>;
  readonly matchedLogLines: Counter<'namespace' | 'policy'>;
}

const metricsByRegistry = new WeakMap<Registry, EndpointMetrics>();

function endpointMetrics(registry: Registry): EndpointMetrics {
  let metrics = metricsByRegistry.get(registry);
  if (!metrics) {
    metrics = {
      reports: new Counter({
        name: 'crowsnest_guard_reports_total', help: 'Reports received by the guard endpoint, by endpoint (health, logs) and result (ok, duplicate, standby, bad_request, forbidden, unknown_pod, unauthenticated, ...).',
        labelNames: ['endpoint', 'result'], registers: [registry],
      }),
      duration: new Histogram({
        name: 'crowsnest_guard_report_duration_seconds', help: 'Time to answer a report, TokenReview included, by HTTP status code.',
        labelNames: ['code'], buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5], registers: [registry],
      }),
      // Batches counted once (a resent batch id is not): what the log agents read for each policy.
      logLines: new Counter({ name: 'crowsnest_guard_log_lines_total', help: 'Log lines the log agents read from pods a policy watches, each batch counted once.', labelNames: ['namespace', 'policy'], registers: [registry] }),
      matchedLogLines: new Counter({ name: 'crowsnest_guard_log_matched_lines_total', help: 'Of those, lines matching the policy\'s errorLogs pattern.', labelNames: ['namespace', 'policy'], registers: [registry] }),
    };
    metricsByRegistry.set(registry, metrics);
  }
  return metrics;
}
