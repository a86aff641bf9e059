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
import type { OperatorOptions } from './options.ts';
import { KubeClient } from '../kube/client.ts';
import { withTimeout } from '../kube/concurrency.ts';
import { describeKubeConfig, loadKubeConfig } from '../kube/config.ts';
import { EventRecorder } from '../kube/events.ts';
import { LeaderElector } from '../kube/leader.ts';
import { type HealthServer, type RunningServer, startHealthServer, startMetricsServer } from '../observe/http.ts';
import { controllerCatalog } from './catalog.ts';
import type { ControllerContext } from './context.ts';

export const EXIT_OK = 0;
export const EXIT_LEADERSHIP_LOST = 1;
/** How long shutdown waits for pending Event writes: a down apiserver must not hold up exit. */
const EVENT_FLUSH_TIMEOUT_MS = 5_000;

export interface OperatorDeps {
  readonly logger: Logger;
  readonly registry: Registry;
  /** Aborts to request shutdown. Default: SIGTERM and SIGINT. */
  readonly shutdownSignal?: AbortSignal;
  /**
   * Ends the process when controllers may still be running (lost Lease, drain timed out): their
   * in-flight writes must stop with us. Default `process.exit`.
   */
  readonly exit?: (code: number) => void;
}

export async function runOperator(opts: OperatorOptions, deps: OperatorDeps): Promise<number> {
  const { logger, registry } = deps;
  const shutdown = new AbortController();
  const removeSignalHandlers = deps.shutdownSignal ? forward(deps.shutdownSignal, shutdown) : onTerminationSignals(shutdown, logger);
  // Runtime timers are unref'd; this keeps the process alive while it waits for the Lease or
  // backs off with nothing else pending (e.g. probes disabled).
  const keepAlive = setInterval(() => {}, 1 << 30);

  let exitCode = EXIT_OK;
  let controllersSettled = true;
  let leading = false;
  let metricsServer: RunningServer | undefined;
  let healthServer: HealthServer | undefined;
  let client: KubeClient | undefined;
  let recorder: EventRecorder | undefined;
  try {
    const kubeConfig = loadKubeConfig({ ...(opts.kubeconfig ? { kubeconfig: opts.kubeconfig } : {}), ...(opts.context ? { context: opts.context } : {}) });
    logger.info({ ...describeKubeConfig(kubeConfig), identity: opts.identity, controllers: opts.controllers }, 'starting crowsnest operator');
    client = new KubeClient(kubeConfig);
    recorder = new EventRecorder({ client, reportingInstance: opts.identity, logger, registry });
    metricsServer = await startMetricsServer({ bindAddress: opts.metricsBindAddress, registry, logger });
    healthServer = await startHealthServer({
      bindAddress: opts.healthProbeBindAddress,
      logger,
      // A standby replica is ready (it will serve webhooks); it just does not run controllers.
      checks: { readiness: [{ name: 'leader-election', check: () => {} }] },
    });
    const shared: Shared = { client, recorder, logger, registry, healthServer };

    if (!opts.leaderElect) {
      leading = true;
      controllersSettled = await runControllers(opts, shared, shutdown.signal, opts.shutdownTimeoutMs);
    } else {
      const elector = new LeaderElector({
        client,
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
          controllersSettled = false;
          logger.info({ lease: `${opts.leaderElectionNamespace}/${opts.leaderElectionId}` }, 'became leader; starting controllers');
          // No timeout of our own here: the elector waits for this promise before releasing the
          // Lease, up to the renew deadline, and lets the Lease expire instead if we are still
          // busy, so a successor never starts while our reconciles still write.
          controllersSettled = await runControllers(opts, shared, leaderSignal, Number.POSITIVE_INFINITY);
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
    if (recorder) await withTimeout(recorder.flush(), EVENT_FLUSH_TIMEOUT_MS).catch(() => {});
    await Promise.all([metricsServer?.close(), healthServer?.close()]);
    await client?.close();
    clearInterval(keepAlive);
    logger.info({ led: leading, exitCode }, 'operator stopped');
  }
  if (exitCode === EXIT_LEADERSHIP_LOST || !controllersSettled) {
    if (!controllersSettled) logger.warn({}, 'controllers did not drain in time; exiting now');
    logger.flush?.();
    (deps.exit ?? process.exit)(exitCode === EXIT_OK ? 1 : exitCode);
  }
  return exitCode;
}

interface Shared {
  readonly client: KubeClient;
  readonly recorder: EventRecorder;
  readonly logger: Logger;
  readonly registry: Registry;
  readonly healthServer: HealthServer | undefined;
}

/**
 * Runs every selected controller until `signal` aborts, then waits for them to drain, at most
 * `drainTimeoutMs`. Resolves true when they all finished, false when the wait timed out. A
 * controller that fails on its own (not by the signal) rejects: the replica goes down with it
 * rather than running fewer controllers than it was asked to.
 */
async function runControllers(opts: OperatorOptions, shared: Shared, signal: AbortSignal, drainTimeoutMs: number): Promise<boolean> {
  const selected = controllerCatalog.filter((definition) => opts.controllers.includes(definition.name));
  if (selected.length === 0) shared.logger.warn({}, 'no controllers selected; holding the lease idle');
  const running = selected.map(async (definition) => {
    const logger = shared.logger.child({ controller: definition.name });
    const run = await definition.load();
    const context: ControllerContext = {
      client: shared.client,
      logger,
      registry: shared.registry,
      recorder: shared.recorder,
      workers: opts.workers,
      addReadinessCheck: (check) => shared.healthServer?.addCheck('readiness', { ...check, name: `${definition.name}-${check.name}` }),
    };
    await run(context, opts, signal);
  });
  const failed: { error?: unknown; happened: boolean } = { happened: false };
  const all = Promise.all(running).then(
    () => {},
    (error: unknown) => {
      // Failing because we are stopping (e.g. "stopped before its cache synced") is no failure.
      if (signal.aborted) return;
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
  const drained = await withTimeout(all, drainTimeoutMs).then(() => true, () => false);
  if (failed.happened) throw failed.error;
  return drained;
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
