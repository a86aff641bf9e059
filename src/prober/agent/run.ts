/**
 * `crowsnest agent`: the sidecar the webhook injects. It
 *
 * 1. serves `GET /ping` on HTTP_PORT (for the agents probing this pod) and `/metrics`, `/readyz`,
 *    `/healthz` on HTTP_PROMETHEUS_PORT;
 * 2. learns its peers from the operator's peer endpoint (sync.ts) and probes each one on its own
 *    jittered schedule (schedule.ts), by HTTP and by TCP connect (probe.ts);
 * 3. reports each peer's last outcome back on the next sync, for the NetworkProber's status.
 *
 * Readiness is only "both servers listen": as a native sidecar its readiness is part of the
 * pod's, so it must never depend on the operator or on peers. On SIGTERM it stops probing,
 * closes its servers and exits 0.
 *
 * Memory: this module and what it imports stay off node:http, prom-client and pino (see observe/lean/http.ts
 * and observe/lean/metrics.ts); the injected NODE_OPTIONS keep V8's young generation small and
 * turn its JIT off (see IN_POD_NODE_OPTIONS: no WebAssembly, so no fetch or undici here).
 */
import { realClock, type Clock } from '../../kube/clock.ts';
import type { Logger } from '../../kube/logger-type.ts';
import { closeServer, createHttpServer, listen } from '../../observe/lean/http.ts';
import { metricsEndpoint } from '../../observe/lean/metrics.ts';
import { ENV, type Peer, type PeerResult, type ProbeMethod, type ProbeSettings } from '../contract.ts';
import { AgentMetrics } from './agent-metrics.ts';
import { PeerProber, type ProbeOutcome } from './probe.ts';
import { ProbeScheduler } from './schedule.ts';

// Moved to src/observe so guard's log agent shares it; kept exported here for the agent's callers.
export { agentLogger } from '../../observe/json-lines-logger.ts';
import { PeerSync } from './sync.ts';

/** What the agent runs with; from the injected environment (see contract.ts). */
export interface AgentConfig {
  readonly httpPort: number;
  readonly prometheusPort: number;
  readonly podName: string;
  readonly podNamespace: string;
  readonly nodeName: string;
  readonly proberName: string;
  readonly peersUrl: string;
  readonly caBundle: string;
  readonly tokenFile: string;
  /** Interface to listen on; default every interface. */
  readonly host?: string;
}

/** A bad environment: the message names the variable. */
export class AgentConfigError extends Error {
  override readonly name = 'AgentConfigError';
}

/** Reads and checks the agent's environment. */
export function agentConfigFromEnv(env: Readonly<Record<string, string | undefined>>): AgentConfig {
  const required = (name: string): string => {
    const value = env[name]?.trim();
    if (!value) throw new AgentConfigError(`${name} is not set (the webhook sets it when it injects the agent)`);
    return value;
  };
  const port = (name: string): number => {
    const text = required(name);
    if (!/^[1-9]\d{0,4}$/.test(text) || Number(text) > 65_535) throw new AgentConfigError(`${name} must be a port number from 1 to 65535, not "${text}"`);
    return Number(text);
  };
  const config: AgentConfig = {
    httpPort: port(ENV.httpPort),
    prometheusPort: port(ENV.prometheusPort),
    podName: required(ENV.podName),
    podNamespace: required(ENV.podNamespace),
    nodeName: env[ENV.nodeName]?.trim() || 'unknown',
    proberName: required(ENV.proberName),
    peersUrl: required(ENV.peersUrl),
    caBundle: required(ENV.caBundle),
    tokenFile: required(ENV.tokenFile),
  };
  if (config.httpPort === config.prometheusPort) throw new AgentConfigError(`${ENV.httpPort} and ${ENV.prometheusPort} must differ`);
  if (!config.peersUrl.startsWith('https://')) throw new AgentConfigError(`${ENV.peersUrl} must be an https:// URL, not "${config.peersUrl}"`);
  return config;
}

export interface RunningAgent {
  readonly metrics: AgentMetrics;
  /** Ports actually listened on (differs from the config's with port 0). */
  readonly ports: { readonly http: number; readonly prometheus: number };
  /** Stops probing and serving. */
  stop(): Promise<void>;
}

export interface AgentDeps {
  readonly logger: Logger;
  readonly clock?: Clock;
}

/** Starts the agent; resolves once both servers listen. */
export async function startAgent(config: AgentConfig, deps: AgentDeps): Promise<RunningAgent> {
  const { logger } = deps;
  const clock = deps.clock ?? realClock;
  const metrics = new AgentMetrics({ pod: config.podName, node: config.nodeName });
  const prober = new PeerProber();
  const results = new Map<string, PeerResult>();
  let settings: ProbeSettings | undefined;

  const logProbe = (peer: Peer, method: ProbeMethod, outcome: ProbeOutcome): void => {
    logger.debug(outcome.ok ? { dest: peer.name, destNode: peer.node, method, rttUs: Math.round(outcome.rttSeconds * 1e6) } : { dest: peer.name, destNode: peer.node, method, reason: outcome.reason, detail: outcome.detail }, 'probe');
  };
  const scheduler = new ProbeScheduler({
    clock,
    round: async (peer, timeoutMs) => {
      const http = await prober.http(peer, timeoutMs);
      metrics.record(peer, 'http', http);
      logProbe(peer, 'http', http);
      const tcp = await prober.tcp(peer, timeoutMs);
      metrics.record(peer, 'tcp', tcp);
      logProbe(peer, 'tcp', tcp);
      results.set(peer.uid, http.ok ? { uid: peer.uid, reachable: true } : { uid: peer.uid, reachable: false, reason: http.reason });
    },
    onPeerRemoved: (peer) => {
      metrics.forgetPeer(peer);
      prober.forget(peer);
      results.delete(peer.uid);
    },
  });

  const pingServer = createHttpServer((request) => (request.path === '/ping' ? { status: 200, body: 'pong\n' } : { status: 404, body: 'not found\n' }));
  const metricsServer = createHttpServer(metricsEndpoint(metrics.registry, () => (pingServer.listening ? undefined : 'ping server not listening')));
  const ports = { http: await listen(pingServer, config.httpPort, config.host), prometheus: await listen(metricsServer, config.prometheusPort, config.host) };

  const sync = new PeerSync({
    url: config.peersUrl,
    ca: config.caBundle,
    tokenFile: config.tokenFile,
    clock,
    logger,
    metrics,
    results: () => [...results.values()],
    onUpdate: (peers: readonly Peer[], next: ProbeSettings) => {
      const first = settings === undefined;
      settings = next;
      scheduler.update(peers, next);
      logger.info({ peers: peers.length, pollingPeriodMs: next.pollingPeriodMs, timeoutMs: next.timeoutMs, ...(first ? {} : { update: true }) }, 'peers updated');
    },
  });
  const stopSync = new AbortController();
  const syncing = sync.run(stopSync.signal);
  logger.info({ pod: `${config.podNamespace}/${config.podName}`, node: config.nodeName, prober: config.proberName, ports, peersUrl: config.peersUrl }, 'crowsnest agent started');

  return {
    metrics,
    ports,
    stop: async () => {
      stopSync.abort();
      await Promise.all([syncing, scheduler.stop()]);
      prober.close();
      await Promise.all([closeServer(pingServer), closeServer(metricsServer)]);
    },
  };
}
