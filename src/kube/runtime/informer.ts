/**
 * An informer is a {@link Reflector} feeding a {@link Store}: the read side every capability uses.
 * Controllers subscribe handlers that turn changes into work-queue keys and read the store in
 * their reconcilers; nothing lists the API server per event. The manager (manager.ts) shares one
 * informer among every capability that asks for the same objects.
 */
import type { Registry } from 'prom-client';
import { Counter } from 'prom-client';
import { type IndexFunc, type ReadonlyStore, Store, type StoreHandler } from './cache.ts';
import type { KubeClient } from '../client/client.ts';
import type { Clock } from '../clock.ts';
import { realClock } from '../clock.ts';
import type { Logger } from '../logger-type.ts';
import { KubeListerWatcher, Reflector, reflectorBackoff, type ReflectorState } from './reflector.ts';
import type { KubeObject, ResourceType } from '../objects/resources.ts';

/**
 * What a capability sees of an informer: its cache and its changes. The manager runs it; handlers
 * turn changes into work-queue keys.
 */
export interface InformerView<T extends KubeObject = KubeObject> {
  /** Name in logs and metrics (`informer` label). */
  readonly name: string;
  /** The cache. NEVER modify an object read from it. */
  readonly store: ReadonlyStore<T>;
  readonly hasSynced: boolean;
  /**
   * Registers change handlers; every object already cached is replayed to `handler` as an add
   * first (client-go's `AddEventHandler`), so a handler added late misses nothing. Returns a
   * function that removes it.
   */
  addEventHandler(handler: StoreHandler<T>): () => void;
}

export interface InformerOptions<T extends KubeObject> {
  readonly client: KubeClient;
  readonly type: ResourceType;
  /** Name in logs and metrics. Default: the resource name. */
  readonly name?: string;
  readonly namespace?: string;
  readonly labelSelector?: string;
  readonly fieldSelector?: string;
  readonly indexers?: Readonly<Record<string, IndexFunc<T>>>;
  /**
   * Shrinks each object before it is cached (e.g. to metadata only): at 10,000 pods the cache is
   * most of a controller's memory. Default: drop `metadata.managedFields`.
   */
  readonly transform?: (obj: KubeObject) => KubeObject;
  /**
   * Ask the server for metadata only (no spec, no status): see {@link KubeListerWatcherOptions.metadataOnly}.
   * Default false.
   */
  readonly metadataOnly?: boolean;
  /** Page size of the initial list. Default 500. */
  readonly pageSize?: number;
  /** Sync with streaming lists where the server serves them: see {@link ReflectorOptions.streamingList}. Default false. */
  readonly streamingList?: boolean;
  /** See {@link ReflectorOptions.watchIdleTimeoutMs}. Default 180 s. */
  readonly watchIdleTimeoutMs?: number;
  /** See {@link ReflectorOptions.minWatchTimeoutSeconds}. Default 300 s. */
  readonly minWatchTimeoutSeconds?: number;
  readonly clock?: Clock;
  readonly logger?: Logger;
  readonly registry?: Registry;
}

export class Informer<T extends KubeObject = KubeObject> {
  readonly store: Store<T>;
  readonly reflector: Reflector<T>;
  readonly name: string;
  private readonly clock: Clock;
  private readonly syncWaiters = new Set<() => void>();
  private readonly metrics: ReflectorMetrics | undefined;
  private readonly logger: Logger | undefined;
  private malformedLogged = false;

  constructor(options: InformerOptions<T>) {
    this.name = options.name ?? options.type.resource;
    this.clock = options.clock ?? realClock;
    this.store = new Store<T>(options.indexers ? { indexers: options.indexers } : {});
    const metrics = options.registry ? reflectorMetrics(options.registry) : undefined;
    this.metrics = metrics;
    this.logger = options.logger;
    if (metrics) metrics.malformedWatchLines.inc({ informer: this.name }, 0);
    const listerWatcher = new KubeListerWatcher<T>({
      client: options.client,
      type: options.type,
      ...(options.namespace ? { namespace: options.namespace } : {}),
      ...(options.labelSelector ? { labelSelector: options.labelSelector } : {}),
      ...(options.fieldSelector ? { fieldSelector: options.fieldSelector } : {}),
      ...(options.transform ? { transform: options.transform } : {}),
      ...(options.metadataOnly ? { metadataOnly: true } : {}),
      onMalformedLine: (excerpt: string) => this.malformedLine(excerpt),
    });
    this.reflector = new Reflector<T>({
      name: this.name,
      listerWatcher,
      store: this.store,
      backoff: reflectorBackoff(),
      clock: this.clock,
      ...(options.pageSize ? { pageSize: options.pageSize } : {}),
      ...(options.streamingList ? { streamingList: true } : {}),
      ...(options.watchIdleTimeoutMs ? { watchIdleTimeoutMs: options.watchIdleTimeoutMs } : {}),
      ...(options.minWatchTimeoutSeconds ? { minWatchTimeoutSeconds: options.minWatchTimeoutSeconds } : {}),
      ...(options.logger ? { logger: options.logger } : {}),
      onStateChange: (state: ReflectorState) => {
        if (state.kind === 'watching' && this.store.hasSynced) for (const wake of this.syncWaiters) wake();
        if (!metrics) return;
        if ((state.kind === 'listing' && state.pages === 0) || state.kind === 'streaming') metrics.lists.inc({ informer: this.name });
        if (state.kind === 'backingOff') metrics.failures.inc({ informer: this.name });
      },
    });
  }

  /** Registers change handlers (see {@link StoreHandler}); objects already cached are not replayed. */
  on(handler: StoreHandler<T>): () => void {
    return this.store.subscribe(handler);
  }

  addEventHandler(handler: StoreHandler<T>): () => void {
    // Replay and subscribe in one synchronous step: no change can slip in between.
    for (const obj of this.store.list()) handler.onAdd?.(obj);
    return this.store.subscribe(handler);
  }

  /** Starts listing and watching; resolves when `signal` aborts and the watch has closed. */
  run(signal: AbortSignal): Promise<void> {
    return this.reflector.run(signal);
  }

  get hasSynced(): boolean {
    return this.store.hasSynced;
  }

  /** Counts a watch line that was not an event; the first one is logged with an excerpt, the rest only counted. */
  private malformedLine(excerpt: string): void {
    this.metrics?.malformedWatchLines.inc({ informer: this.name });
    if (this.malformedLogged) return;
    this.malformedLogged = true;
    this.logger?.warn({ informer: this.name, line: excerpt }, 'watch line is not a watch event; skipped (counted in crowsnest_informer_malformed_watch_lines_total)');
  }

  /** Resolves once the first full list is in the store; rejects if `signal` aborts first. */
  async waitForSync(signal: AbortSignal): Promise<void> {
    if (this.store.hasSynced) return;
    if (signal.aborted) throw new Error(`informer ${this.name}: stopped before its cache synced`);
    await new Promise<void>((resolve, reject) => {
      const done = (): void => {
        this.syncWaiters.delete(done);
        signal.removeEventListener('abort', aborted);
        resolve();
      };
      const aborted = (): void => {
        this.syncWaiters.delete(done);
        reject(new Error(`informer ${this.name}: stopped before its cache synced`));
      };
      this.syncWaiters.add(done);
      signal.addEventListener('abort', aborted, { once: true });
    });
  }
}

interface ReflectorMetrics {
  readonly lists: Counter<'informer'>;
  readonly failures: Counter<'informer'>;
  readonly malformedWatchLines: Counter<'informer'>;
}

const metricsByRegistry = new WeakMap<Registry, ReflectorMetrics>();

function reflectorMetrics(registry: Registry): ReflectorMetrics {
  let metrics = metricsByRegistry.get(registry);
  if (!metrics) {
    metrics = {
      lists: new Counter({ name: 'crowsnest_informer_lists_total', help: 'Full lists (initial and relists) by informer.', labelNames: ['informer'], registers: [registry] }),
      failures: new Counter({ name: 'crowsnest_informer_list_watch_failures_total', help: 'Failed list or watch attempts (each followed by backoff).', labelNames: ['informer'], registers: [registry] }),
      malformedWatchLines: new Counter({
        name: 'crowsnest_informer_malformed_watch_lines_total',
        help: 'Watch response lines that were not watch events (a proxy injecting text, a cut line), by informer; they are skipped.',
        labelNames: ['informer'], registers: [registry],
      }),
    };
    metricsByRegistry.set(registry, metrics);
  }
  return metrics;
}
