/**
 * The prober capability put together: the webhook handler, the peer endpoint, the status
 * reconciler and the caches they share, with what runs on every replica and what only on the
 * leader. `register.ts` hands these to the operator's manager; tests run them the same way.
 *
 * Every replica: the admission handler (served by the webhook server), the peer endpoint, and
 * the ring invalidation on pod changes (every replica answers peers from its own cache).
 * Leader only: the status controller (fed by {@link ProberRuntime.controllerHandlers}) and the
 * keeping of agents' reports (a standby answers peers but keeps no report).
 */
import { join } from 'node:path';
import type { Registry } from 'prom-client';
import type { StoreHandler } from '../kube/runtime/cache.ts';
import type { Clock } from '../kube/clock.ts';
import type { EventRecorder } from '../kube/objects/events.ts';
import { FIELD_MANAGERS } from '../kube/objects/labels.ts';
import { type Logger, silentLogger } from '../kube/logger-type.ts';
import { INDEX_NAMESPACE } from '../kube/runtime/cache.ts';
import { StatusWriter } from '../kube/objects/status.ts';
import type { AdmissionHandler } from '../kube/webhook/server.ts';
import { WatchedPemFile } from '../kube/webhook/watched-pem.ts';
import type { KubeRequester } from '../kube/objects/writes.ts';
import { type NetworkProber, NetworkProberApi, type NetworkProberStatus } from './api.ts';
import { PROBER_ANNOTATION, TOKEN_AUDIENCE } from './contract.ts';
import { podHandler, proberHandler, ProberStatusReconciler } from './controller.ts';
import type { ResourceRequirements } from './inject.ts';
import type { SlimPod } from './members.ts';
import { PeerServer } from './peer-server.ts';
import { PeerDirectory, type ProberCacheView, ReachabilityReports } from './peers.ts';
import { TokenReviewer } from '../kube/auth/token-review.ts';
import { proberWebhook } from './webhook.ts';

/** A cache as the prober reads it: the manager's InformerView has this shape. */
export interface CacheSource<T> {
  readonly store: {
    getByName(namespace: string | undefined, name: string): T | undefined;
    byIndex(indexName: string, value: string): T[];
  };
  /** Registers handlers; objects already cached are replayed as adds. Returns a remover. */
  addEventHandler(handler: StoreHandler<T>): () => void;
}

/** The prober's settings, from the operator's flags. */
export interface ProberSettings {
  /** The operator's namespace: never injected. */
  readonly namespace: string;
  /** Directory of the webhook's `tls.crt`, `tls.key` and `ca.crt` (the CA given to agents). */
  readonly certDir: string;
  /** Port of the peer endpoint; 0 picks one (tests). */
  readonly peerPort: number;
  /** Interface the peer endpoint listens on; default every interface. */
  readonly peerHost?: string;
  /** How agents reach the peer endpoint, `https://host:port`. */
  readonly peersUrl: string;
  /** The agent's image; without one, pods are admitted without the agent. */
  readonly agentImage?: string;
  readonly agentResources: ResourceRequirements;
  readonly imagePullPolicy?: 'Always' | 'IfNotPresent' | 'Never';
}

export interface ProberRuntimeDeps {
  readonly client: KubeRequester;
  readonly probers: CacheSource<NetworkProber>;
  readonly pods: CacheSource<SlimPod>;
  readonly clock: Clock;
  readonly registry: Registry;
  readonly recorder?: Pick<EventRecorder, 'event'>;
  readonly logger?: Logger;
}

export class ProberRuntime {
  readonly webhook: AdmissionHandler;
  readonly peerServer: PeerServer;
  readonly reconciler: ProberStatusReconciler;
  private readonly deps: ProberRuntimeDeps;
  private readonly directory: PeerDirectory;
  private leading = false;
  private enqueue: ((key: string) => void) | undefined;

  constructor(deps: ProberRuntimeDeps, settings: ProberSettings) {
    this.deps = deps;
    const logger = deps.logger ?? silentLogger;
    const cache: ProberCacheView = {
      prober: (namespace, name) => deps.probers.store.getByName(namespace, name),
      pod: (namespace, name) => deps.pods.store.getByName(namespace, name),
      podsIn: (namespace) => deps.pods.store.byIndex(INDEX_NAMESPACE, namespace),
    };
    this.directory = new PeerDirectory(cache);
    const reports = new ReachabilityReports();
    const caBundle = new WatchedPemFile(join(settings.certDir, 'ca.crt'));
    this.webhook = proberWebhook({
      probersIn: (namespace) => deps.probers.store.byIndex(INDEX_NAMESPACE, namespace),
      settings: () => {
        if (!settings.agentImage) return 'the operator has no agent image (--prober-agent-image)';
        const bundle = caBundle.read(deps.clock.now());
        if (!bundle) return `the operator has no CA bundle (${join(settings.certDir, 'ca.crt')}) to give the agent yet`;
        return {
          defaultImage: settings.agentImage, peersUrl: settings.peersUrl, caBundle: bundle, defaultResources: settings.agentResources,
          ...(settings.imagePullPolicy ? { imagePullPolicy: settings.imagePullPolicy } : {}),
        };
      },
      excludedNamespaces: [settings.namespace],
      registry: deps.registry,
      logger,
    });
    this.peerServer = new PeerServer({
      ...(settings.peerHost !== undefined ? { host: settings.peerHost } : {}),
      port: settings.peerPort,
      certFile: join(settings.certDir, 'tls.crt'),
      keyFile: join(settings.certDir, 'tls.key'),
      reviewer: new TokenReviewer({ client: deps.client, clock: deps.clock, audience: TOKEN_AUDIENCE }),
      directory: this.directory,
      reports,
      isLeading: () => this.leading,
      onReportChanged: (key) => this.enqueue?.(key),
      clock: deps.clock,
      logger,
      registry: deps.registry,
    });
    this.reconciler = new ProberStatusReconciler({
      prober: cache.prober,
      podsIn: cache.podsIn,
      directory: this.directory,
      reports,
      statusWriter: new StatusWriter<NetworkProberStatus>({ client: deps.client, type: NetworkProberApi.type, fieldManager: FIELD_MANAGERS.prober }),
      ...(deps.recorder ? { recorder: deps.recorder } : {}),
      clock: deps.clock,
      registry: deps.registry,
    });
  }

  /** Every replica: serves the peer endpoint and keeps the rings current, until `signal` aborts. */
  async serve(signal: AbortSignal): Promise<void> {
    const detach = this.deps.pods.addEventHandler({
      onAdd: (pod) => this.directory.invalidate(pod.metadata.namespace),
      onUpdate: (_old, pod) => this.directory.invalidate(pod.metadata.namespace),
      onDelete: (pod) => this.directory.invalidate(pod.metadata.namespace),
    });
    try {
      await this.peerServer.start();
      await aborted(signal);
    } finally {
      detach();
      await this.peerServer.stop();
    }
  }

  /** Leader only: keeps the agents' reports and wakes the controller with them, until `signal` aborts. */
  async lead(signal: AbortSignal, enqueue: (key: string) => void): Promise<void> {
    this.leading = true;
    this.enqueue = enqueue;
    try {
      await aborted(signal);
    } finally {
      this.leading = false;
      this.enqueue = undefined;
    }
  }

  /** The status controller's handlers: NetworkProber changes, and injected pod changes. */
  controllerHandlers(queue: { enqueue(key: string): void; enqueueAfter(key: string, delayMs: number): void }): { readonly probers: StoreHandler<NetworkProber>; readonly pods: StoreHandler<SlimPod> } {
    return {
      probers: proberHandler((key) => queue.enqueue(key)),
      pods: podHandler((key, delayMs) => queue.enqueueAfter(key, delayMs), (namespace) => this.directory.invalidate(namespace), (pod) => pod.metadata.annotations?.[PROBER_ANNOTATION]),
    };
  }
}

function aborted(signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) resolve();
    else signal.addEventListener('abort', () => resolve(), { once: true });
  });
}
