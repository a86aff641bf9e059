/**
 * The manager runs what capabilities register, after controller-runtime's Manager:
 *
 * - **Shared informers.** {@link Manager.informer} hands out one informer per (type, namespace,
 *   label selector, field selector, metadata-only, transform): two capabilities that ask for the
 *   same objects share one cache and one watch. Informers run on every replica, leader or not, so
 *   a standby's webhooks and servers read a live cache and a new leader starts warm.
 * - **Readiness from the caches.** A replica is ready once every informer has synced (and the
 *   webhook server has a certificate, when there are webhooks); see {@link Manager.readinessChecks}.
 * - **Controllers only while leading.** With leader election, controllers start when this replica
 *   wins the Lease, after every cache synced: their handlers are attached then (each informer
 *   replays what it holds, which is how a new leader looks at everything once), and detached when
 *   leading ends. Without it, they start once the caches synced.
 * - **Every replica serves.** Admission webhooks ({@link Manager.addWebhook}) and runnables that do
 *   not need the Lease ({@link Manager.addRunnable}) run on every replica.
 *
 * Reads top to bottom in the order things happen: registration (informer, writer, addController,
 * addWebhook, addRunnable, checks) → run: serve webhooks and runnables → start informers → lead
 * (wait for caches, start controllers) → on stop, drain controllers, stop runnables and servers.
 */
import type { Registry } from 'prom-client';
import type { IndexFunc, StoreHandler } from './cache.ts';
import type { KubeClient } from '../client/client.ts';
import { realClock, type Clock } from '../clock.ts';
import { withTimeout } from '../concurrency.ts';
import { Controller, type Reconciler } from './controller.ts';
import type { EventRecorder } from '../objects/events.ts';
import { Informer, type InformerView } from './informer.ts';
import type { FieldManager } from '../objects/labels.ts';
import { LeaderElector } from './leader.ts';
import { silentLogger, type Logger } from '../logger-type.ts';
import type { KubeObject, ResourceType } from '../objects/resources.ts';
import { type AdmissionHandler, WebhookServer } from '../webhook/server.ts';
import { kubeObjectWriter, type ObjectWriter } from '../objects/writer.ts';

/** A named health check: passes by returning, fails by throwing (the shape of observe/http.ts's). */
export interface HealthCheck {
  readonly name: string;
  check(): Promise<void> | void;
}

/**
 * Shrinks each object before it is cached. Informers are shared only between requests with the
 * same transform, recognised by `name`: give each transform one name, in one place.
 */
export interface CacheTransform {
  /** Names the transform in the sharing key and in the informer's name, e.g. `pod-owners`. */
  readonly name: string;
  readonly apply: (obj: KubeObject) => KubeObject;
}

/** Which objects a capability wants cached, and how. */
export interface InformerRequest<T extends KubeObject = KubeObject> {
  readonly type: ResourceType;
  /** One namespace; default all (for namespaced types). */
  readonly namespace?: string;
  readonly labelSelector?: string;
  readonly fieldSelector?: string;
  /** Ask the server for metadata only (no spec, no status). Default false. */
  readonly metadataOnly?: boolean;
  /** Default: only `metadata.managedFields` is dropped. */
  readonly transform?: CacheTransform;
  /** Indexes this capability reads; merged into the shared informer's (same name, same function). */
  readonly indexers?: Readonly<Record<string, IndexFunc<T>>>;
}

/** A controller as a capability registers it. */
export interface ControllerRegistration<K extends string = string> {
  /** Names it in `--controllers`-independent places: logs, metrics (`controller` label), its queue. */
  readonly name: string;
  /** Brings one key to its desired state; see {@link Reconciler}. */
  readonly reconcile: Reconciler<K>;
  /** Concurrent reconciles. Default: the manager's `workers` (`--workers`). */
  readonly workers?: number;
}

/** What {@link Manager.addController} returns: where the controller's work comes from. */
export interface ControllerHandle<K extends string = string> {
  /**
   * Calls `handler` for the informer's changes while this replica leads (attached after the
   * caches synced, with every cached object replayed as an add, and removed when leading ends).
   * Handlers only enqueue keys: no API calls.
   */
  watch<T extends KubeObject>(informer: InformerView<T>, handler: StoreHandler<T>): void;
  /** Asks for `key` to be reconciled (deduplicated). */
  enqueue(key: K): void;
  /** Asks for `key` to be reconciled after `delayMs` milliseconds. */
  enqueueAfter(key: K, delayMs: number): void;
}

/** Something to run until the manager stops: a server, a periodic job. */
export interface Runnable {
  readonly name: string;
  /** True: only while this replica leads (like controllers). False: on every replica. */
  readonly needLeaderElection: boolean;
  /** Runs until `signal` aborts, then resolves. A rejection (not caused by the abort) stops the replica. */
  start(signal: AbortSignal): Promise<void>;
}

export interface LeaderElectionSettings {
  readonly namespace: string;
  readonly name: string;
  readonly identity: string;
  readonly leaseDurationMs: number;
  readonly renewDeadlineMs: number;
  readonly retryPeriodMs: number;
}

export interface WebhookServerSettings {
  /** Interface to listen on; default every interface. */
  readonly host?: string;
  /** TCP port; 0 picks a free one. */
  readonly port: number;
  /** Directory with `tls.crt` and `tls.key`. */
  readonly certDir: string;
  /** See {@link WebhookServerOptions.certificatePollIntervalMs}. */
  readonly certificatePollIntervalMs?: number;
}

export interface ManagerOptions {
  readonly client: KubeClient;
  readonly recorder: EventRecorder;
  readonly registry: Registry;
  readonly logger?: Logger;
  /** Concurrent reconciles per controller unless it says otherwise. Default 2. */
  readonly workers?: number;
  /** Leader election; absent: this replica always leads. */
  readonly leaderElection?: LeaderElectionSettings;
  /** Where webhooks are served, when a capability registers one. Required then. */
  readonly webhookServer?: WebhookServerSettings;
  /**
   * Without leader election, how long stopping waits for controllers to drain (0: not at all).
   * With it, the renew deadline bounds the drain instead (the elector lets the Lease expire
   * rather than release it under running work). Default 30 000 ms.
   */
  readonly shutdownTimeoutMs?: number;
  /** Sync informers with streaming lists where the server serves them. Default false. */
  readonly streamingList?: boolean;
  readonly clock?: Clock;
}

/** How a run ended. */
export interface ManagerResult {
  /** This replica led at some point. */
  readonly led: boolean;
  /** Leading ended without being asked to (lost renewal, another holder): the process should exit. */
  readonly leadershipLost: boolean;
  /** Every controller and leader runnable returned within the drain bound. */
  readonly drained: boolean;
}

/**
 * A leader that cannot renew is caught by the elector itself; this much more than the lease
 * duration is what the health check allows before it reports a replica stuck in between
 * (kube-controller-manager's leader-election healthz tolerance is the same 20 s).
 */
export const LEADER_HEALTH_TOLERANCE_MS = 20_000;
const DEFAULT_WORKERS = 2;
const DEFAULT_SHUTDOWN_TIMEOUT_MS = 30_000;
const WEBHOOK_CERT_FILE = 'tls.crt';
const WEBHOOK_KEY_FILE = 'tls.key';

interface SharedInformer {
  readonly informer: Informer;
  readonly transform: CacheTransform | undefined;
}

interface RegisteredController {
  readonly controller: Controller;
  readonly watches: Array<{ readonly informer: InformerView; readonly handler: StoreHandler<KubeObject> }>;
}

export class Manager {
  readonly client: KubeClient;
  readonly recorder: EventRecorder;
  readonly registry: Registry;
  readonly logger: Logger;
  private readonly options: ManagerOptions;
  private readonly clock: Clock;
  private readonly informers = new Map<string, SharedInformer>();
  private readonly controllers: RegisteredController[] = [];
  private readonly webhooks: AdmissionHandler[] = [];
  private readonly runnables: Runnable[] = [];
  private readonly readiness: HealthCheck[] = [];
  private readonly liveness: HealthCheck[] = [];
  private elector: LeaderElector | undefined;
  private webhookServer: WebhookServer | undefined;
  private state: 'registering' | 'running' | 'stopped' = 'registering';

  constructor(options: ManagerOptions) {
    this.options = options;
    this.client = options.client;
    this.recorder = options.recorder;
    this.registry = options.registry;
    this.logger = options.logger ?? silentLogger;
    this.clock = options.clock ?? realClock;
    if (options.leaderElection) {
      const le = options.leaderElection;
      // Built here, not in run(), so its health check can be registered with the others.
      this.elector = new LeaderElector({
        client: options.client, namespace: le.namespace, name: le.name, identity: le.identity,
        leaseDurationMs: le.leaseDurationMs, renewDeadlineMs: le.renewDeadlineMs, retryPeriodMs: le.retryPeriodMs,
        releaseOnCancel: true, logger: this.logger, registry: options.registry, clock: this.clock,
      });
      const elector = this.elector;
      this.liveness.push({ name: 'leader-election', check: () => elector.check(LEADER_HEALTH_TOLERANCE_MS) });
    }
    this.readiness.push({ name: 'informers-synced', check: () => this.checkSynced() });
  }

  // --- registration ------------------------------------------------------------------------------

  /**
   * The shared informer for `request`: the same one for every request of the same objects cached
   * the same way. Only during registration (before {@link run}).
   */
  informer<T extends KubeObject = KubeObject>(request: InformerRequest<T>): InformerView<T> {
    this.assertRegistering('informer');
    const key = sharingKey(request);
    let shared = this.informers.get(key);
    if (!shared) {
      const informer = new Informer<KubeObject>({
        client: this.client,
        type: request.type,
        name: informerName(request),
        ...(request.namespace ? { namespace: request.namespace } : {}),
        ...(request.labelSelector ? { labelSelector: request.labelSelector } : {}),
        ...(request.fieldSelector ? { fieldSelector: request.fieldSelector } : {}),
        ...(request.metadataOnly ? { metadataOnly: true } : {}),
        ...(request.transform ? { transform: request.transform.apply } : {}),
        ...(this.options.streamingList ? { streamingList: true } : {}),
        logger: this.logger,
        registry: this.registry,
        clock: this.clock,
      });
      shared = { informer, transform: request.transform };
      this.informers.set(key, shared);
    } else if (shared.transform && request.transform && shared.transform.apply !== request.transform.apply) {
      throw new Error(`two transforms are named ${request.transform.name}: give each its own name, or share one`);
    }
    if (request.indexers) shared.informer.store.addIndexers(request.indexers as Record<string, IndexFunc<KubeObject>>);
    const view: InformerView = shared.informer;
    // The store holds what the transform made of each object; the caller names that type.
    return view as unknown as InformerView<T>;
  }

  /** Writes as `fieldManager` (the capability's entry of FIELD_MANAGERS). */
  writer(fieldManager: FieldManager): ObjectWriter {
    return kubeObjectWriter(this.client, fieldManager);
  }

  /** A controller that runs while this replica leads; feed it with {@link ControllerHandle.watch}. */
  addController<K extends string = string>(registration: ControllerRegistration<K>): ControllerHandle<K> {
    this.assertRegistering('controller');
    if (this.controllers.some((c) => c.controller.name === registration.name)) throw new Error(`two controllers are named ${registration.name}`);
    const controller = new Controller<K>({
      name: registration.name,
      reconcile: registration.reconcile,
      workers: registration.workers ?? this.options.workers ?? DEFAULT_WORKERS,
      registry: this.registry,
      logger: this.logger,
      clock: this.clock,
    });
    const registered: RegisteredController = { controller: controller as unknown as Controller, watches: [] };
    this.controllers.push(registered);
    return {
      watch: (informer, handler) => {
        this.assertRegistering('watch');
        registered.watches.push({ informer: informer as unknown as InformerView, handler: handler as StoreHandler<KubeObject> });
      },
      enqueue: (key) => controller.enqueue(key),
      enqueueAfter: (key, delayMs) => controller.enqueueAfter(key, delayMs),
    };
  }

  /** An admission webhook, served on every replica (see {@link WebhookServerSettings}). */
  addWebhook(handler: AdmissionHandler): void {
    this.assertRegistering('webhook');
    if (!this.options.webhookServer) throw new Error(`webhook ${handler.name}: the manager has no webhook server settings`);
    this.webhooks.push(handler);
  }

  addRunnable(runnable: Runnable): void {
    this.assertRegistering('runnable');
    this.runnables.push(runnable);
  }

  /** A check /readyz runs (e.g. "my extra server listens"). Informer sync and the webhook certificate are checked already. */
  addReadinessCheck(check: HealthCheck): void {
    this.assertRegistering('readiness check');
    this.readiness.push(check);
  }

  /** A check /healthz runs; failing it makes the kubelet restart the replica. */
  addHealthCheck(check: HealthCheck): void {
    this.assertRegistering('health check');
    this.liveness.push(check);
  }

  /** Readiness checks: informers synced, the webhook certificate (with webhooks), and the registered ones. */
  readinessChecks(): readonly HealthCheck[] {
    const webhook: HealthCheck[] = this.webhooks.length > 0
      ? [{ name: 'webhook-certificate', check: () => {
        if (!this.webhookServer) throw new Error('webhook server not started');
        this.webhookServer.readinessCheck().check();
      } }]
      : [];
    return [...this.readiness, ...webhook];
  }

  /** Liveness checks: the leader election watchdog, and the registered ones. */
  livenessChecks(): readonly HealthCheck[] {
    return [...this.liveness];
  }

  /** The webhook server while it runs (tests read its port). */
  get runningWebhookServer(): WebhookServer | undefined {
    return this.webhookServer;
  }

  // --- running ---------------------------------------------------------------------------------------

  /**
   * Runs everything registered until `signal` aborts or, with leader election, leadership is lost.
   * Resolves once controllers drained (bounded), runnables and servers stopped and informers
   * closed. Rejects when a controller or runnable fails on its own, or the webhook server cannot
   * listen: the replica goes down rather than run part of what it was asked to.
   */
  async run(signal: AbortSignal): Promise<ManagerResult> {
    if (this.state !== 'registering') throw new Error('Manager.run may be called only once');
    this.state = 'running';
    const stop = new AbortController();
    const onAbort = (): void => stop.abort(signal.reason);
    if (signal.aborted) stop.abort(signal.reason);
    else signal.addEventListener('abort', onAbort, { once: true });
    const everyReplica: Array<Promise<void>> = [];
    const failed: { failure?: { readonly error: unknown } } = {};
    const fail = (what: string) => (error: unknown): void => {
      if (stop.signal.aborted && failed.failure === undefined) return;
      failed.failure ??= { error };
      this.logger.error({ err: String(error), what }, 'stopping: a part of the operator failed');
      stop.abort(error);
    };
    const result = { led: false, leadershipLost: false, drained: true };
    try {
      await this.startWebhookServer();
      for (const runnable of this.runnables.filter((r) => !r.needLeaderElection)) {
        everyReplica.push(runnable.start(stop.signal).catch(fail(`runnable ${runnable.name}`)));
      }
      const informers = [...this.informers.values()].map(({ informer }) => informer.run(stop.signal));
      everyReplica.push(...informers);
      this.logger.info({ informers: [...this.informers.values()].map(({ informer }) => informer.name), controllers: this.controllers.map((c) => c.controller.name), webhooks: this.webhooks.map((w) => w.name) }, 'manager started');

      if (!this.elector) {
        result.led = true;
        result.drained = await this.lead(stop.signal, this.options.shutdownTimeoutMs ?? DEFAULT_SHUTDOWN_TIMEOUT_MS);
      } else {
        const le = this.options.leaderElection!;
        await this.elector.run(stop.signal, {
          onStartedLeading: async (leaderSignal) => {
            result.led = true;
            result.drained = false;
            this.logger.info({ lease: `${le.namespace}/${le.name}` }, 'became leader; starting controllers');
            // No timeout of our own: the elector waits for this before releasing the Lease, up
            // to the renew deadline, and lets the Lease expire instead if we are still busy.
            result.drained = await this.lead(leaderSignal, Number.POSITIVE_INFINITY);
          },
          onStoppedLeading: () => {
            if (stop.signal.aborted) return;
            this.logger.error({ lease: `${le.namespace}/${le.name}` }, 'leadership lost; stopping');
            result.leadershipLost = true;
            stop.abort(new Error('leadership lost'));
          },
          onNewLeader: (identity) => {
            if (identity !== le.identity) this.logger.info({ leader: identity }, 'another replica leads');
          },
        });
      }
      if (failed.failure) throw failed.failure.error;
      // A standby (or a leader whose term ended) keeps serving until asked to stop.
      if (!stop.signal.aborted) await abortion(stop.signal);
      // (A cast: the compiler narrowed `failed.failure` above and does not see the await change it.)
      const late = failed.failure as { readonly error: unknown } | undefined;
      if (late) throw late.error;
      return result;
    } finally {
      signal.removeEventListener('abort', onAbort);
      stop.abort();
      await Promise.all(everyReplica);
      await this.webhookServer?.stop();
      this.state = 'stopped';
    }
  }

  /**
   * The leader's part: wait for every cache, attach the controllers' handlers, run controllers
   * and leader runnables until `signal` aborts, then wait for them to drain, at most
   * `drainTimeoutMs`. Resolves true when they all finished in time.
   */
  private async lead(signal: AbortSignal, drainTimeoutMs: number): Promise<boolean> {
    const informers = [...this.informers.values()].map(({ informer }) => informer);
    try {
      await Promise.all(informers.map((i) => i.waitForSync(signal)));
    } catch (err) {
      if (signal.aborted) return true;
      throw err;
    }
    const leaderRunnables = this.runnables.filter((r) => r.needLeaderElection);
    if (this.controllers.length === 0 && leaderRunnables.length === 0) this.logger.warn({}, 'no controllers selected; holding the lease idle');
    this.logger.info({ informers: informers.length, objects: informers.reduce((n, i) => n + i.store.size, 0) }, 'caches synced; starting controllers');
    const detach: Array<() => void> = [];
    for (const { watches } of this.controllers) for (const { informer, handler } of watches) detach.push(informer.addEventHandler(handler));
    const running = [
      ...this.controllers.map(({ controller }) => controller.run(signal)),
      ...leaderRunnables.map((r) => r.start(signal)),
    ];
    const failed: { error?: unknown; happened: boolean } = { happened: false };
    const all = Promise.all(running).then(
      () => {},
      (error: unknown) => {
        // Failing because we are stopping (e.g. a request aborted) is no failure.
        if (signal.aborted) return;
        failed.error = error;
        failed.happened = true;
      },
    );
    try {
      await Promise.race([all, abortion(signal)]);
      if (failed.happened) throw failed.error;
      const drained = await withTimeout(all, drainTimeoutMs).then(() => true, () => false);
      if (failed.happened) throw failed.error;
      return drained;
    } finally {
      for (const remove of detach) remove();
    }
  }

  private async startWebhookServer(): Promise<void> {
    if (this.webhooks.length === 0) return;
    const settings = this.options.webhookServer!;
    this.webhookServer = new WebhookServer({
      ...(settings.host !== undefined ? { host: settings.host } : {}),
      port: settings.port,
      certFile: `${settings.certDir}/${WEBHOOK_CERT_FILE}`,
      keyFile: `${settings.certDir}/${WEBHOOK_KEY_FILE}`,
      handlers: this.webhooks,
      registry: this.registry,
      logger: this.logger,
      ...(settings.certificatePollIntervalMs ? { certificatePollIntervalMs: settings.certificatePollIntervalMs } : {}),
    });
    await this.webhookServer.start();
  }

  private checkSynced(): void {
    const pending = [...this.informers.values()].filter(({ informer }) => !informer.hasSynced).map(({ informer }) => informer.name);
    if (pending.length > 0) throw new Error(`waiting for caches: ${pending.join(', ')}`);
  }

  private assertRegistering(what: string): void {
    if (this.state !== 'registering') throw new Error(`a ${what} must be registered before the manager runs`);
  }
}

/** The identity of a shared informer: what is cached, and how. */
function sharingKey(request: Pick<InformerRequest, 'type' | 'namespace' | 'labelSelector' | 'fieldSelector' | 'metadataOnly' | 'transform'>): string {
  const t = request.type;
  return JSON.stringify([t.group, t.version, t.resource, request.namespace ?? '', request.labelSelector ?? '', request.fieldSelector ?? '', request.metadataOnly === true, request.transform?.name ?? '']);
}

/** A readable, bounded name (metric label) saying what the informer caches: `pods{app=web}@ns:metadata/owners`. */
function informerName(request: Pick<InformerRequest, 'type' | 'namespace' | 'labelSelector' | 'fieldSelector' | 'metadataOnly' | 'transform'>): string {
  const selectors = [request.labelSelector, request.fieldSelector].filter(Boolean).join(';');
  return `${request.type.resource}${selectors ? `{${selectors}}` : ''}${request.namespace ? `@${request.namespace}` : ''}`
    + `${request.metadataOnly ? ':metadata' : ''}${request.transform ? `/${request.transform.name}` : ''}`;
}

function abortion(signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) resolve();
    else signal.addEventListener('abort', () => resolve(), { once: true });
  });
}
