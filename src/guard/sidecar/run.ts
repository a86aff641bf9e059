/**
 * `crowsnest sidecar`: guard's health sidecar, injected by guard's webhook into pods a GuardPolicy
 * selects. It
 *
 * 1. probes each declared TCP port of its sibling containers on the pod's IP, on its own jittered
 *    schedule (probe.ts finds out whether the port speaks HTTP);
 * 2. reads the sockets listening in the pod's network namespace, which it shares (listening.ts);
 * 3. serves both as metrics on `/metrics` (and `/readyz`, `/healthz`) on its metrics port, and
 *    reports them to the operator's guard endpoint (report.ts) — except, for the startup grace
 *    (2 minutes), the probes of a port that has never answered: the sidecar starts before the app
 *    containers, and an app still starting is not failing.
 *
 * Readiness is only "the metrics server listens": as a native sidecar its readiness is part of the
 * pod's, so it never depends on the operator or on the application's health (a failing app must
 * not be hidden from its Service by its own sidecar, nor a healthy one by an operator outage).
 *
 * Memory: it runs in every guarded pod, so it loads what the prober's agent loads (observe/lean:
 * no node:http, prom-client or pino) and nothing of the operator; the injected NODE_OPTIONS keep
 * V8's heap small and its JIT off (see IN_POD_NODE_OPTIONS: no WebAssembly, so no fetch or undici).
 */
import { realClock, type Clock, type TimerHandle } from '../../kube/clock.ts';
import type { Logger } from '../../kube/logger-type.ts';
import { OperatorEndpoint } from '../../observe/lean/endpoint.ts';
import { closeServer, createHttpServer, listen } from '../../observe/lean/http.ts';
import { metricsEndpoint } from '../../observe/lean/metrics.ts';
import type { DeclaredPort, ListeningSocket } from '../contract.ts';
import type { SidecarConfig } from './config.ts';
import { readListeningSockets } from './listening.ts';
import { SidecarMetrics } from './metrics.ts';
import { PortProber, type PortProbeOutcome } from './probe.ts';
import { HealthReporter, type ReportEndpoint } from './report.ts';

export interface RunningSidecar {
  readonly metrics: SidecarMetrics;
  /** The metrics port actually listened on (differs from the config's with port 0). */
  readonly metricsPort: number;
  /** Stops probing, reporting and serving. */
  stop(): Promise<void>;
}

export interface SidecarDeps {
  readonly logger: Logger;
  readonly clock?: Clock;
  readonly random?: () => number;
  /** Where the socket tables are; default `/proc/self/net`. */
  readonly procNetDir?: string;
  /** Default: the operator's endpoint from the config. */
  readonly endpoint?: ReportEndpoint;
}

/** Interval jitter of probes, as a fraction of the period. */
const PROBE_JITTER = 0.15;

/** Starts the sidecar; resolves once its metrics server listens. */
export async function startSidecar(config: SidecarConfig, deps: SidecarDeps): Promise<RunningSidecar> {
  const { logger } = deps;
  const clock = deps.clock ?? realClock;
  const random = deps.random ?? Math.random;
  const metrics = new SidecarMetrics();

  let lastUnreadable = '';
  const readListening = async (): Promise<readonly ListeningSocket[]> => {
    const read = await readListeningSockets(deps.procNetDir);
    metrics.socketReads.inc({ result: read.unreadable.length ? 'partial' : 'ok' });
    const unreadable = read.unreadable.map((u) => `${u.table}: ${u.message}`).join('; ');
    if (unreadable && unreadable !== lastUnreadable) logger.warn({ unreadable }, 'cannot read every socket table of the pod');
    lastUnreadable = unreadable;
    metrics.setListening(read.sockets);
    return read.sockets;
  };

  const endpoint = deps.endpoint ?? new OperatorEndpoint({ url: config.signalsUrl, ca: config.caBundle, tokenFile: config.tokenFile });
  const reporter = new HealthReporter({ endpoint, clock, logger, metrics, listening: readListening, reportPeriodMs: config.reportPeriodMs, random });

  const lastOutcome = new Map<string, string>();
  const answered = new Set<number>();
  const startedAt = clock.now();
  const onProbe = (port: DeclaredPort, outcome: PortProbeOutcome): void => {
    metrics.record(port, outcome);
    if (outcome.ok) answered.add(port.port);
    // A port that has not answered yet, early in the pod's life, belongs to an app still starting
    // (the sidecar starts before the app containers): its failures are shown, not reported.
    if (answered.has(port.port) || clock.now() - startedAt >= config.startupGraceMs) reporter.record(port, outcome);
    // Log when a port's state changes, not every probe.
    const state = outcome.ok ? `ok/${outcome.method}` : `${outcome.reason}/${outcome.method}`;
    const key = `${port.container}/${port.port}`;
    if (lastOutcome.get(key) !== state) {
      logger.info(outcome.ok ? { container: port.container, port: port.port, method: outcome.method } : { container: port.container, port: port.port, method: outcome.method, reason: outcome.reason, detail: outcome.detail }, outcome.ok ? 'port healthy' : 'port failing');
      lastOutcome.set(key, state);
    }
  };
  const probed = tcpPorts(config.declaredPorts);
  const schedule = new PortSchedule({ clock, random, periodMs: config.probePeriodMs, timeoutMs: config.probeTimeoutMs, host: config.podIp, ports: probed, onProbe });

  const server = createHttpServer(metricsEndpoint(metrics.registry));
  const metricsPort = await listen(server, config.metricsPort, config.host);

  const stopping = new AbortController();
  await readListening().catch(() => undefined);
  const listeningTimer = setIntervalOn(clock, config.probePeriodMs, () => void readListening().catch(() => undefined));
  schedule.start();
  const reporting = reporter.run(stopping.signal);
  logger.info({
    pod: `${config.podNamespace}/${config.podName}`, node: config.nodeName, policy: config.policyName, metricsPort, signalsUrl: config.signalsUrl,
    probed: probed.map((p) => `${p.container}:${p.port}`), probePeriodMs: config.probePeriodMs, probeTimeoutMs: config.probeTimeoutMs,
  }, 'crowsnest guard sidecar started');

  return {
    metrics,
    metricsPort,
    stop: async () => {
      stopping.abort();
      listeningTimer.stop();
      await Promise.all([reporting, schedule.stop()]);
      await closeServer(server);
    },
  };
}

/** The declared TCP ports, each port once (two containers cannot both listen on one). */
export function tcpPorts(ports: readonly DeclaredPort[]): DeclaredPort[] {
  const seen = new Set<number>();
  return ports.filter((p) => p.protocol === 'TCP' && !seen.has(p.port) && seen.add(p.port));
}

interface PortScheduleOptions {
  readonly clock: Clock;
  readonly random: () => number;
  readonly periodMs: number;
  readonly timeoutMs: number;
  readonly host: string;
  readonly ports: readonly DeclaredPort[];
  readonly onProbe: (port: DeclaredPort, outcome: PortProbeOutcome) => void;
}

/**
 * Each port on its own timer: the first probe at a random point of the first period, then one per
 * period from the start of the previous one, jittered by ±15 %; never two probes of a port at once.
 */
export class PortSchedule {
  private readonly options: PortScheduleOptions;
  private readonly timers = new Set<TimerHandle>();
  private readonly running = new Set<Promise<void>>();
  private stopped = false;

  constructor(options: PortScheduleOptions) {
    this.options = options;
  }

  start(): void {
    for (const port of this.options.ports) this.after(this.options.random() * this.options.periodMs, port, new PortProber(this.options.host, port.port));
  }

  async stop(): Promise<void> {
    this.stopped = true;
    for (const timer of this.timers) this.options.clock.clearTimer(timer);
    this.timers.clear();
    await Promise.all(this.running);
  }

  private after(delayMs: number, port: DeclaredPort, prober: PortProber): void {
    if (this.stopped) return;
    const timer = this.options.clock.setTimer(() => {
      this.timers.delete(timer);
      if (this.stopped) return;
      const startedAt = this.options.clock.now();
      const round = prober.probe(this.options.timeoutMs).then((outcome) => {
        if (!this.stopped) this.options.onProbe(port, outcome);
      }).finally(() => {
        this.running.delete(round);
        const interval = this.options.periodMs * (1 + PROBE_JITTER * (2 * this.options.random() - 1));
        this.after(startedAt + interval - this.options.clock.now(), port, prober);
      });
      this.running.add(round);
    }, Math.max(0, delayMs));
    this.timers.add(timer);
  }
}

function setIntervalOn(clock: Clock, periodMs: number, tick: () => void): { stop(): void } {
  let timer: TimerHandle | undefined;
  let stopped = false;
  const arm = (): void => {
    timer = clock.setTimer(() => {
      if (stopped) return;
      tick();
      arm();
    }, periodMs);
  };
  arm();
  return {
    stop: () => {
      stopped = true;
      if (timer) clock.clearTimer(timer);
    },
  };
}
