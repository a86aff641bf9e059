/**
 * `crowsnest logs-agent` running: the agent loop (agent.ts) against the operator's guard endpoint
 * (sink.ts), with its state in the state directory (state.ts), and a small HTTP server for
 * `/metrics`, `/healthz` and `/readyz`. On SIGTERM the cycle in progress finishes (a batch in
 * flight is either accepted and committed, or stays pending for the next start) and it exits.
 *
 * Stays off pino and prom-client (its memory is a benchmark's subject): JSON log lines and the
 * exposition text are written by hand.
 */
import { once } from 'node:events';
import { readFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { realClock, type Clock } from '../../kube/clock.ts';
import { AccessReviewer } from '../../kube/auth/subject-access-review.ts';
import type { Logger } from '../../kube/logger-type.ts';
import type { KubeRequester } from '../../kube/objects/writes.ts';
import { LogsAgent } from './agent.ts';
import type { LogsAgentCliOptions } from './flags.ts';
import { logApiHandler } from './log-api.ts';
import { enableLinearRegExp } from './pattern.ts';
import { HttpsLogSink } from './sink.ts';
import { StateStore } from './state.ts';

export interface RunningLogsAgent {
  readonly agent: LogsAgent;
  /** The metrics server's port, when it listens. */
  readonly metricsPort?: number;
  /** The log API's port, when it listens. */
  readonly logApiPort?: number;
  stop(): Promise<void>;
}

export interface LogsAgentDeps {
  readonly logger: Logger;
  readonly clock?: Clock;
  /** The API server, for the log API's reviews; required when the log API is on. */
  readonly kube?: KubeRequester;
}

export async function startLogsAgent(options: LogsAgentCliOptions, deps: LogsAgentDeps): Promise<RunningLogsAgent> {
  enableLinearRegExp();
  const { logger } = deps;
  const ca = 'file' in options.guardCa ? await readFile(options.guardCa.file, 'utf8') : options.guardCa.pem;
  const sink = new HttpsLogSink({ url: options.guardUrl, ca, tokenFile: options.tokenFile });
  const agent = new LogsAgent({
    node: options.nodeName, podLogsDir: options.podLogsDir, store: new StateStore(options.stateDir), sink, clock: deps.clock ?? realClock, logger, batchBytes: options.batchBytes,
  });
  await agent.load();
  const server = options.metricsBindAddress === '0' ? undefined : await serveMetrics(options.metricsBindAddress, agent);
  let logApi: Server | undefined;
  if (options.logApi) {
    if (!deps.kube) throw new Error('the log API needs a connection to the API server');
    const [cert, key] = await Promise.all([readFile(options.logApi.certFile, 'utf8'), readFile(options.logApi.keyFile, 'utf8')]);
    const access = new AccessReviewer({ client: deps.kube, clock: deps.clock ?? realClock });
    logApi = createHttpsServer({ cert, key }, logApiHandler({ podLogsDir: options.podLogsDir, node: options.nodeName, access, logger }));
    await listen(logApi, options.logApi.bindAddress);
  }
  const stopping = new AbortController();
  const running = agent.run(stopping.signal).catch((err: unknown) => {
    logger.error({ err: (err as Error).message }, 'the log agent stopped on an error');
    throw err;
  });
  logger.info({ node: options.nodeName, podLogsDir: options.podLogsDir, stateDir: options.stateDir, guardUrl: options.guardUrl, batchId: agent.current.nextBatchId }, 'crowsnest logs-agent started');
  return {
    agent,
    ...(server ? { metricsPort: (server.address() as AddressInfo).port } : {}),
    ...(logApi ? { logApiPort: (logApi.address() as AddressInfo).port } : {}),
    stop: async () => {
      stopping.abort();
      await running.catch(() => {});
      sink.close();
      for (const listening of [server, logApi]) {
        if (!listening) continue;
        listening.closeAllConnections();
        await new Promise<void>((resolve) => listening.close(() => resolve()));
      }
    },
  };
}

async function serveMetrics(address: string, agent: LogsAgent): Promise<Server> {
  const server = createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    if (path === '/healthz' || path === '/readyz') return void res.writeHead(200, { 'content-type': 'text/plain' }).end('ok\n');
    if (path === '/metrics') return void res.writeHead(200, { 'content-type': 'text/plain; version=0.0.4; charset=utf-8' }).end(exposition(agent));
    res.writeHead(404).end('not found\n');
  });
  await listen(server, address);
  return server;
}

/** Listens on `address` (`host:port`, `:port`, `[v6]:port`); rejects naming it when it cannot. */
async function listen(server: Server, address: string): Promise<void> {
  const colon = address.lastIndexOf(':');
  const host = address.slice(0, colon).replace(/^\[(.*)\]$/, '$1') || undefined;
  server.listen(Number(address.slice(colon + 1)), host);
  await Promise.race([once(server, 'listening'), once(server, 'error').then(([err]) => {
    throw new Error(`cannot listen on ${address}: ${(err as Error).message}`);
  })]);
}

/** The agent's counters in the Prometheus text format. */
export function exposition(agent: LogsAgent): string {
  const c = agent.counters;
  const state = agent.current;
  const metric = (name: string, type: 'counter' | 'gauge', help: string, value: number): string => `# HELP ${name} ${help}\n# TYPE ${name} ${type}\n${name} ${value}\n`;
  return [
    metric('crowsnest_logs_agent_lines_read_total', 'counter', 'Whole log lines read (a partial line counts when it is finished).', c.linesRead),
    metric('crowsnest_logs_agent_read_bytes_total', 'counter', 'Log file bytes read.', c.bytesRead),
    metric('crowsnest_logs_agent_malformed_lines_total', 'counter', 'Physical lines that were not CRI log records.', c.malformedLines),
    metric('crowsnest_logs_agent_lost_files_total', 'counter', 'Log files deleted by the kubelet before they were read to their end.', c.lostFiles),
    metric('crowsnest_logs_agent_batches_accepted_total', 'counter', 'Batches the operator accepted.', c.batchesAccepted),
    metric('crowsnest_logs_agent_send_failures_total', 'counter', 'Sends that failed or were refused (the batch is sent again).', c.sendFailures),
    metric('crowsnest_logs_agent_batch_pending', 'gauge', '1 while a batch waits for the operator to accept it.', state.pending ? 1 : 0),
    metric('crowsnest_logs_agent_watches', 'gauge', 'Watches the operator gave this agent.', state.watches.length),
    metric('crowsnest_logs_agent_containers', 'gauge', 'Containers tailed.', Object.keys(state.cursors).length),
    `# HELP process_resident_memory_bytes Resident memory size in bytes.\n# TYPE process_resident_memory_bytes gauge\nprocess_resident_memory_bytes ${process.memoryUsage.rss()}\n`,
  ].join('');
}
