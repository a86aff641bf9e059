/**
 * The sidecar's reports to the operator: `POST /v1/guard/health` with a {@link HealthReport} —
 * the probe outcomes of each declared port since the last report the operator kept, and every
 * socket listening now — on the operator's schedule (`reportAfterMs` of its answer).
 *
 * Nothing is counted twice and nothing is lost:
 *
 * - A report that got no answer (connection refused, reset, timed out) may or may not have been
 *   kept, so it is sent again as it was, with the same `sequence`, which the operator ignores if
 *   it has seen it. Outcomes probed meanwhile wait for the next report.
 * - A report answered with anything but 200 was not kept: its counts go back into the window and
 *   travel with the next report, under a new sequence. Except 400 and 413 (the operator will
 *   never take it): those counts are dropped, said in the log and the metrics.
 * - 429 and 503 (throttled, or a standby replica) wait for `Retry-After`; 503 also drops the
 *   kept-alive connection so the next one may reach the leader. Other failures back off from 1 s
 *   doubling to 60 s, jittered.
 *
 * Sequences start at the sidecar's start time in milliseconds and grow by one per report, so a
 * restarted sidecar's sequences are above its previous life's without any state on disk.
 *
 * The operator being unreachable changes nothing else: probing and metrics go on.
 */
import { sleep, type Clock } from '../../kube/clock.ts';
import type { Logger } from '../../kube/logger-type.ts';
import type { EndpointAnswer, EndpointFailure } from '../../observe/lean/endpoint.ts';
import { type DeclaredPort, HEALTH_PATH, type HealthAnswer, type HealthReport, type ListeningSocket, type PortHealth } from '../contract.ts';
import type { ReportResult, SidecarMetrics } from './metrics.ts';
import type { PortProbeOutcome } from './probe.ts';

/** The part of {@link OperatorEndpoint} the reporter uses. */
export interface ReportEndpoint {
  post(path: string, body: unknown): Promise<EndpointAnswer | EndpointFailure>;
  disconnect(): void;
}

export interface HealthReporterOptions {
  readonly endpoint: ReportEndpoint;
  readonly clock: Clock;
  readonly logger: Logger;
  readonly metrics: SidecarMetrics;
  /** Every socket listening now (read fresh for each report). */
  readonly listening: () => Promise<readonly ListeningSocket[]>;
  /** Until the operator answers with its own, in milliseconds. */
  readonly reportPeriodMs: number;
  readonly random?: () => number;
}

const BACKOFF = { initialMs: 1_000, maxMs: 60_000 } as const;
/** Bounds of the operator's `reportAfterMs` and `Retry-After` the sidecar follows, in milliseconds. */
const REPORT_AFTER_BOUNDS = { minMs: 1_000, maxMs: 600_000 } as const;
const JITTER = 0.1;
const MS_PER_SECOND = 1000;

/** What one attempt came to: when to try next. */
export interface ReportAttempt {
  readonly result: ReportResult;
  /** Milliseconds until the next attempt. */
  readonly nextInMs: number;
}

interface PendingReport {
  readonly sequence: number;
  readonly ports: readonly PortHealth[];
}

export class HealthReporter {
  private readonly options: HealthReporterOptions;
  private readonly random: () => number;
  /** Outcomes since the last report was built, by `container/port`. */
  private readonly window = new Map<string, PortHealth>();
  private pending: PendingReport | undefined;
  private sequence: number;
  private periodMs: number;
  private failures = 0;
  private lastFailure: string | undefined;

  constructor(options: HealthReporterOptions) {
    this.options = options;
    this.random = options.random ?? Math.random;
    this.sequence = options.clock.now();
    this.periodMs = options.reportPeriodMs;
  }

  /** Adds one probe outcome to the next report. */
  record(port: DeclaredPort, outcome: PortProbeOutcome): void {
    this.add({
      container: port.container, port: port.port, method: outcome.method, probes: 1, failures: outcome.ok ? 0 : 1,
      ...(outcome.ok ? {} : { lastFailure: outcome.reason }),
    });
  }

  /** Reports until `signal` aborts; the first report goes out within the first period. */
  async run(signal: AbortSignal): Promise<void> {
    await sleep(this.options.clock, this.periodMs * (0.2 + 0.3 * this.random()), signal);
    while (!signal.aborted) {
      const attempt = await this.reportOnce();
      await sleep(this.options.clock, attempt.nextInMs, signal);
    }
    this.options.endpoint.disconnect();
  }

  /** Sends one report (the pending one again, or a new one); never throws. */
  async reportOnce(): Promise<ReportAttempt> {
    const report = this.pending ?? this.build();
    this.pending = report;
    const listening = await this.options.listening();
    const body: HealthReport = { sequence: report.sequence, ports: report.ports, listening };
    const answer = await this.options.endpoint.post(HEALTH_PATH, body);
    const attempt = this.judge(report, answer);
    this.options.metrics.reports.inc({ result: attempt.result });
    return attempt;
  }

  private judge(report: PendingReport, answer: EndpointAnswer | EndpointFailure): ReportAttempt {
    if (!answer.ok) {
      // No answer: maybe kept. Sent again as it is.
      return this.failed(answer.failure === 'token' ? 'error' : answer.failure, answer.message);
    }
    const { status, headers, body } = answer.response;
    const text = (): string => body.toString().trim().slice(0, 200);
    if (status === 200) {
      this.pending = undefined;
      let reportAfterMs: number | undefined;
      try {
        reportAfterMs = (JSON.parse(body.toString()) as Partial<HealthAnswer>).reportAfterMs;
      } catch {
        this.options.logger.warn({}, 'the operator kept the report but answered something that is not JSON');
      }
      if (typeof reportAfterMs === 'number' && Number.isFinite(reportAfterMs) && reportAfterMs > 0) this.periodMs = clamp(reportAfterMs);
      if (this.lastFailure) this.options.logger.info({}, 'the operator accepts reports again');
      this.lastFailure = undefined;
      this.failures = 0;
      this.options.metrics.lastReport.set({}, this.options.clock.now() / MS_PER_SECOND);
      return { result: 'accepted', nextInMs: this.periodMs * (1 + JITTER * (2 * this.random() - 1)) };
    }
    // Answered, so not kept.
    this.pending = undefined;
    if (status === 400 || status === 413) {
      this.options.logger.error({ status, sequence: report.sequence, ports: report.ports.length }, `the operator will not take this report (${status}): ${text()}; its counts are dropped`);
      return this.failed('rejected', `the operator rejected a report (${status})`);
    }
    for (const port of report.ports) this.add(port, true);
    if (status === 429 || status === 503) {
      if (status === 503) this.options.endpoint.disconnect();
      const retryAfterMs = retryAfter(headers.get('retry-after'));
      const attempt = this.failed('throttled', `the operator asks to wait (${status})`);
      return retryAfterMs === undefined ? attempt : { result: 'throttled', nextInMs: retryAfterMs };
    }
    if (status === 401) return this.failed('unauthorized', 'the operator refused this pod\'s token (401)');
    if (status === 403) return this.failed('forbidden', `the operator takes no report about this pod (403): ${text()}`);
    return this.failed('unavailable', `the operator answered ${status}: ${text()}`);
  }

  private failed(result: ReportResult, message: string): ReportAttempt {
    this.failures++;
    // Log a failure when it changes, not on every retry.
    if (message !== this.lastFailure) this.options.logger.warn({ result }, message);
    this.lastFailure = message;
    return { result, nextInMs: Math.min(BACKOFF.maxMs, BACKOFF.initialMs * 2 ** (this.failures - 1)) * (0.5 + 0.5 * this.random()) };
  }

  private build(): PendingReport {
    const ports = [...this.window.values()];
    this.window.clear();
    this.sequence++;
    return { sequence: this.sequence, ports };
  }

  /** Adds `health` to the window; `older`: it happened before what the window holds (a report put back). */
  private add(health: PortHealth, older = false): void {
    const key = `${health.container}/${health.port}`;
    const known = this.window.get(key);
    const [newer, earlier] = older && known ? [known, health] : [health, known];
    const lastFailure = newer.lastFailure ?? earlier?.lastFailure;
    this.window.set(key, {
      container: health.container, port: health.port, method: newer.method,
      probes: (known?.probes ?? 0) + health.probes, failures: (known?.failures ?? 0) + health.failures,
      ...(lastFailure ? { lastFailure } : {}),
    });
  }
}

function clamp(ms: number): number {
  return Math.min(REPORT_AFTER_BOUNDS.maxMs, Math.max(REPORT_AFTER_BOUNDS.minMs, ms));
}

/** `Retry-After` in seconds (the HTTP-date form is not used by our operator) → milliseconds. */
function retryAfter(value: string | undefined): number | undefined {
  if (!value || !/^\d+$/.test(value.trim())) return undefined;
  return clamp(Number(value.trim()) * MS_PER_SECOND);
}
