/**
 * `crowsnest operator`: the long-running process that hosts the selected capabilities'
 * controllers, admission webhooks and servers, run by a {@link Manager}.
 *
 * Reads top to bottom in the order things happen: connect → register the selected capabilities
 * with the manager → serve metrics and probes (readiness from the manager: caches synced, webhook
 * certificate) → run the manager (informers and webhooks on every replica; controllers only while
 * holding the Lease, when leader election is on) → on SIGTERM/SIGINT drain the controllers
 * (bounded by --shutdown-timeout), release the Lease, close the servers. Losing the Lease ends the
 * process with exit code 1, as controller-runtime does: a replica that may still hold stale
 * in-memory state must not keep writing, and the kubelet restarts it as a fresh candidate.
 */
import type { Logger } from 'pino';
import type { Registry } from 'prom-client';
import { KubeClient } from '../kube/client/client.ts';
import { withTimeout } from '../kube/concurrency.ts';
import { describeKubeConfig, loadKubeConfig } from '../kube/client/config.ts';
import { EventRecorder } from '../kube/objects/events.ts';
import { Manager, type ManagerResult } from '../kube/runtime/manager.ts';
import { type HealthServer, type RunningServer, startHealthServer, startMetricsServer } from '../observe/http.ts';
import { controllerCatalog } from './catalog.ts';
import { requireLeaseNamespace } from './lease-namespace.ts';
import type { OperatorOptions } from './options.ts';
import { applyOperatorV8Flags } from './v8-flags.ts';
import { registerWebhookCertificates } from './webhook-certificates.ts';

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
  /** Registers more with the manager after the selected capabilities (tests: a webhook of their own). */
  readonly register?: (manager: Manager) => void;
  /** Called once the manager is built and registered, before it runs (tests: its webhook server's port). */
  readonly onManager?: (manager: Manager) => void;
}

export async function runOperator(opts: OperatorOptions, deps: OperatorDeps): Promise<number> {
  const { logger, registry } = deps;
  const v8Flags = applyOperatorV8Flags();
  const shutdown = new AbortController();
  const removeSignalHandlers = deps.shutdownSignal ? forward(deps.shutdownSignal, shutdown) : onTerminationSignals(shutdown, logger);
  // Runtime timers are unref'd; this keeps the process alive while it waits for the Lease or
  // backs off with nothing else pending (e.g. probes disabled).
  const keepAlive = setInterval(() => {}, 1 << 30);

  let exitCode = EXIT_OK;
  let result: ManagerResult = { led: false, leadershipLost: false, drained: true };
  let metricsServer: RunningServer | undefined;
  let healthServer: HealthServer | undefined;
  let client: KubeClient | undefined;
  let recorder: EventRecorder | undefined;
  try {
    const kubeConfig = loadKubeConfig({ ...(opts.kubeconfig ? { kubeconfig: opts.kubeconfig } : {}), ...(opts.context ? { context: opts.context } : {}) });
    logger.info({
      ...describeKubeConfig(kubeConfig), identity: opts.identity, controllers: opts.controllers,
      leaderElection: opts.leaderElect ? `${opts.leaderElectionNamespace}/${opts.leaderElectionId}` : 'off', v8Flags,
    }, 'starting crowsnest operator');
    client = new KubeClient(kubeConfig);
    recorder = new EventRecorder({ client, reportingInstance: opts.identity, logger, registry });
    const manager = new Manager({
      client, recorder, registry, logger,
      workers: opts.workers,
      shutdownTimeoutMs: opts.shutdownTimeoutMs,
      webhookServer: { port: opts.webhookPort, certDir: opts.webhookCertDir },
      ...(opts.leaderElect
        ? {
          leaderElection: {
            namespace: opts.leaderElectionNamespace, name: opts.leaderElectionId, identity: opts.identity,
            leaseDurationMs: opts.leaseDurationMs, renewDeadlineMs: opts.renewDeadlineMs, retryPeriodMs: opts.retryPeriodMs,
          },
        }
        : {}),
    });
    const selected = controllerCatalog.filter((d) => opts.controllers.includes(d.name));
    for (const definition of selected) {
      const register = await definition.load();
      register(manager, opts);
    }
    registerWebhookCertificates(manager, {
      ...opts.webhookCertificate, certDir: opts.webhookCertDir,
      configurations: selected.flatMap((d) => d.webhookConfigurations?.(opts) ?? []),
    });
    deps.register?.(manager);
    deps.onManager?.(manager);

    metricsServer = await startMetricsServer({ bindAddress: opts.metricsBindAddress, registry, logger });
    healthServer = await startHealthServer({
      bindAddress: opts.healthProbeBindAddress,
      logger,
      checks: { readiness: manager.readinessChecks(), liveness: manager.livenessChecks() },
    });
    if (opts.leaderElect) await requireLeaseNamespace(client, opts.leaderElectionNamespace, opts.leaderElectionId, shutdown.signal);
    result = await manager.run(shutdown.signal);
    if (result.leadershipLost) exitCode = EXIT_LEADERSHIP_LOST;
  } finally {
    removeSignalHandlers();
    if (recorder) await withTimeout(recorder.flush(), EVENT_FLUSH_TIMEOUT_MS).catch(() => {});
    await Promise.all([metricsServer?.close(), healthServer?.close()]);
    await client?.close();
    clearInterval(keepAlive);
    logger.info({ led: result.led, exitCode }, 'operator stopped');
  }
  if (exitCode === EXIT_LEADERSHIP_LOST || !result.drained) {
    if (!result.drained) logger.warn({}, 'controllers did not drain in time; exiting now');
    logger.flush?.();
    (deps.exit ?? process.exit)(exitCode === EXIT_OK ? 1 : exitCode);
  }
  return exitCode;
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
