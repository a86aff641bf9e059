/**
 * `crowsnest operator`: the long-running process that hosts the controllers (and, later, the
 * admission webhook server).
 *
 * Reads top to bottom in the order things happen: connect → serve metrics and probes → wait for
 * the Lease (when leader election is on) → run the selected controllers while leading → on
 * SIGTERM/SIGINT drain the controllers (bounded by --shutdown-timeout), release the Lease, close
 * the servers. Losing the Lease ends the process with exit code 1, as controller-runtime does:
 * a replica that may still hold stale in-memory state must not keep writing, and the kubelet
 * restarts it as a fresh candidate.
 */
import type { Logger } from 'pino';
import type { Registry } from 'prom-client';
import type { OperatorOptions } from '../cli/options.ts';
import { KubeClient } from '../kube/client.ts';
import { describeKubeConfig, loadKubeConfig } from '../kube/config.ts';
import { EventRecorder } from '../kube/events.ts';
import { LeaderElector } from '../kube/leader.ts';
import { type HealthServer, startHealthServer, startMetricsServer } from '../observe/http.ts';
import { controllerCatalog } from './catalog.ts';
import type { ControllerContext } from './context.ts';

export const EXIT_OK = 0;
export const EXIT_LEADERSHIP_LOST = 1;

export interface OperatorDeps {
  readonly logger: Logger;
  readonly registry: Registry;
  /** Aborts to request shutdown. Default: SIGTERM and SIGINT. */
  readonly shutdownSignal?: AbortSignal;
}

export async function runOperator(opts: OperatorOptions, deps: OperatorDeps): Promise<number> {
  const { logger, registry } = deps;
  const shutdown = new AbortController();
  const removeSignalHandlers = deps.shutdownSignal ? forward(deps.shutdownSignal, shutdown) : onTerminationSignals(shutdown, logger);

  const kubeConfig = loadKubeConfig({ ...(opts.kubeconfig ? { kubeconfig: opts.kubeconfig } : {}), ...(opts.context ? { context: opts.context } : {}) });
  logger.info({ ...describeKubeConfig(kubeConfig), identity: opts.identity, controllers: opts.controllers }, 'starting crowsnest operator');
  const client = new KubeClient(kubeConfig);
  const recorder = new EventRecorder({ kubeConfig, reportingInstance: opts.identity, logger, registry });

  let leading = false;
  const metricsServer = await startMetricsServer({ bindAddress: opts.metricsBindAddress, registry, logger });
  const healthServer = await startHealthServer({
    bindAddress: opts.healthProbeBindAddress,
    logger,
    checks: {
      // A standby replica is ready (it serves webhooks, later); it just does not run controllers.
      readiness: [{ name: 'leader-election', check: () => {} }],
    },
  });

  let exitCode = EXIT_OK;
  try {
    if (!opts.leaderElect) {
      leading = true;
      await runControllers(opts, { kubeConfig, client, recorder, logger, registry, healthServer }, shutdown.signal);
    } else {
      const elector = new LeaderElector({
        kubeConfig,
        namespace: opts.leaderElectionNamespace,
        name: opts.leaderElectionId,
        identity: opts.identity,
        leaseDurationMs: opts.leaseDurationMs,
        renewDeadlineMs: opts.renewDeadlineMs,
        retryPeriodMs: opts.retryPeriodMs,
        releaseOnCancel: true,
        logger,
        registry,
      });
      await elector.run(shutdown.signal, {
        onStartedLeading: async (leaderSignal) => {
          leading = true;
          logger.info({ lease: `${opts.leaderElectionNamespace}/${opts.leaderElectionId}` }, 'became leader; starting controllers');
          await runControllers(opts, { kubeConfig, client, recorder, logger, registry, healthServer }, leaderSignal);
        },
        onStoppedLeading: () => {
          if (shutdown.signal.aborted) return;
          logger.error({ lease: `${opts.leaderElectionNamespace}/${opts.leaderElectionId}` }, 'leadership lost; exiting');
          exitCode = EXIT_LEADERSHIP_LOST;
          shutdown.abort();
        },
        onNewLeader: (identity) => {
          if (identity !== opts.identity) logger.info({ leader: identity }, 'another replica leads');
        },
      });
    }
  } finally {
    removeSignalHandlers();
    await recorder.flush().catch(() => {});
    await Promise.all([metricsServer?.close(), healthServer?.close()]);
    await client.close();
    logger.info({ led: leading, exitCode }, 'operator stopped');
  }
  return exitCode;
}

interface Shared {
  readonly kubeConfig: ControllerContext['kubeConfig'];
  readonly client: KubeClient;
  readonly recorder: EventRecorder;
  readonly logger: Logger;
  readonly registry: Registry;
  readonly healthServer: HealthServer | undefined;
}

/**
 * Runs every selected controller until `signal` aborts, then waits for them to drain, at most
 * `shutdownTimeoutMs`: a reconcile stuck on a hung API call must not keep a replica from exiting.
 */
async function runControllers(opts: OperatorOptions, shared: Shared, signal: AbortSignal): Promise<void> {
  const selected = controllerCatalog.filter((definition) => opts.controllers.includes(definition.name));
  if (selected.length === 0) shared.logger.warn({}, 'no controllers selected; holding the lease idle');
  const running = selected.map(async (definition) => {
    const logger = shared.logger.child({ controller: definition.name });
    const run = await definition.load();
    const context: ControllerContext = {
      kubeConfig: shared.kubeConfig,
      client: shared.client,
      logger,
      registry: shared.registry,
      recorder: shared.recorder,
      workers: opts.workers,
      addReadinessCheck: (check) => shared.healthServer?.addCheck('readiness', { ...check, name: `${definition.name}-${check.name}` }),
    };
    await run(context, signal);
  });
  // A controller that fails on its own (not by the signal) takes the replica down with it,
  // rather than leaving a leader that silently runs fewer controllers than it was asked to.
  const failed: { error?: unknown; happened: boolean } = { happened: false };
  const all = Promise.all(running).then(
    () => {},
    (error: unknown) => {
      failed.error = error;
      failed.happened = true;
    },
  );
  const stopped = new Promise<void>((resolve) => {
    if (signal.aborted) resolve();
    else signal.addEventListener('abort', () => resolve(), { once: true });
  });
  await Promise.race([all, stopped]);
  if (failed.happened) throw failed.error;
  const timedOut = Symbol('timeout');
  let timer: NodeJS.Timeout | undefined;
  const outcome = await Promise.race([
    all,
    new Promise<typeof timedOut>((resolve) => {
      timer = setTimeout(() => resolve(timedOut), opts.shutdownTimeoutMs);
    }),
  ]);
  clearTimeout(timer);
  if (failed.happened) throw failed.error;
  if (outcome === timedOut) shared.logger.warn({ shutdownTimeoutMs: opts.shutdownTimeoutMs }, 'controllers did not drain in time; stopping anyway');
}

function onTerminationSignals(shutdown: AbortController, logger: Logger): () => void {
  const handler = (signal: NodeJS.Signals): void => {
    if (shutdown.signal.aborted) {
      logger.warn({ signal }, 'second termination signal; exiting now');
      process.exit(1);
    }
    logger.info({ signal }, 'shutting down');
    shutdown.abort();
  };
  process.on('SIGTERM', handler);
  process.on('SIGINT', handler);
  return () => {
    process.off('SIGTERM', handler);
    process.off('SIGINT', handler);
  };
}

function forward(source: AbortSignal, target: AbortController): () => void {
  const onAbort = (): void => target.abort();
  if (source.aborted) target.abort();
  else source.addEventListener('abort', onAbort, { once: true });
  return () => source.removeEventListener('abort', onAbort);
}
