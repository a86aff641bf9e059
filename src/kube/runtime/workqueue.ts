/**
 * The work queue between informers and reconcilers, with client-go `util/workqueue` semantics:
 *
 * - Keys, not objects: adding a key that is already waiting does nothing (dedup), so a burst of
 *   events for one object costs one reconcile.
 * - A key is never handed to two workers at once. A key added while it is being processed is
 *   marked dirty and goes back into the queue when the worker calls {@link WorkQueue.done}, so the
 *   change that arrived mid-reconcile is not lost and is processed exactly once more.
 * - Delays ({@link WorkQueue.addAfter}) and retries with backoff ({@link WorkQueue.addRateLimited})
 *   sit in front of the queue and feed it when they fall due.
 *
 * Bookkeeping per key (a key is in at most one of queue/processing; dirty covers both):
 *
 *   add ──► dirty + queue ──get──► processing ──done──► gone
 *                                     │ add: dirty      └─ dirty? ──► back into queue
 */
import type { Registry } from 'prom-client';
import { Counter, Gauge, Histogram } from 'prom-client';
import { realClock, type Clock, type TimerHandle } from '../clock.ts';
import { defaultControllerRateLimiter, type RateLimiter } from './ratelimiter.ts';

export interface WorkQueueOptions {
  /** Names the queue in metrics (label `name`); keep it unique per registry. */
  readonly name: string;
  /** Time source for delays and metrics. Default {@link realClock}. */
  readonly clock?: Clock;
  /** Backoff for {@link WorkQueue.addRateLimited}. Default {@link defaultControllerRateLimiter} on `clock`. */
  readonly rateLimiter?: RateLimiter;
  /** Registry receiving the `workqueue_*` metrics. Default: none, no metrics are kept. */
  readonly registry?: Registry;
}

/**
 * Lifecycle of a queue. Shutting down is one-way: adds are ignored from then on, keys already
 * queued are still handed out, and getters resolve `undefined` once the queue is empty.
 */
type QueueState =
  | { readonly kind: 'accepting' }
  | {
      readonly kind: 'shuttingDown';
      /** Callers of {@link WorkQueue.shutDownWithDrain} waiting for the processing set to empty. */
      readonly drainWaiters: Array<() => void>;
    };

/** A pending {@link WorkQueue.addAfter}: one per key, the earliest deadline wins. */
interface DelayedAdd {
  readonly readyAtMs: number;
  readonly timer: TimerHandle;
}

export class WorkQueue<K extends string = string> {
  readonly name: string;
  private readonly clock: Clock;
  private readonly rateLimiter: RateLimiter;
  private readonly metrics: QueueMetrics<K>;

  /** Keys ready for a worker, in add order. A key is in here at most once (see {@link dirty}). */
  private readonly queue = new KeyFifo<K>();
  /** Keys that need processing: everything in {@link queue}, plus processing keys re-added meanwhile. */
  private readonly dirty = new Set<K>();
  /** Keys a worker holds between {@link get} and {@link done}. */
  private readonly processing = new Set<K>();
  /** Getters waiting for a key, served first come first served. */
  private readonly getters: Array<(key: K | undefined) => void> = [];
  private readonly delayed = new Map<K, DelayedAdd>();
  private state: QueueState = { kind: 'accepting' };

  constructor(options: WorkQueueOptions) {
    this.name = options.name;
    this.clock = options.clock ?? realClock;
    this.rateLimiter = options.rateLimiter ?? defaultControllerRateLimiter(this.clock);
    this.metrics = options.registry
      ? new PrometheusQueueMetrics<K>(sharedQueueMetrics(options.registry), this.name, this.clock)
      : noQueueMetrics;
  }

  /** Queues `key` unless it is already waiting. Ignored once the queue is shutting down. */
  add(key: K): void {
    if (this.state.kind !== 'accepting') return;
    if (this.dirty.has(key)) return;
    this.metrics.added(key);
    this.dirty.add(key);
    // A worker holds the key: done() will queue it again, so the two never run at once.
    if (this.processing.has(key)) return;
    this.queue.push(key);
    this.serveGetters();
  }

  /**
   * Resolves with the next key, waiting for one if the queue is empty. The caller owns the key
   * until it calls {@link done}. Resolves `undefined` once the queue is shutting down and empty.
   */
  get(): Promise<K | undefined> {
    if (this.queue.length > 0) return Promise.resolve(this.take());
    if (this.state.kind === 'shuttingDown') return Promise.resolve(undefined);
    return new Promise((resolve) => this.getters.push(resolve));
  }

  /**
   * Marks `key` as processed. If it was added again meanwhile it goes back into the queue.
   * Calling it for a key that is not being processed does nothing.
   */
  done(key: K): void {
    // Guarding here keeps a stray done() from queueing a dirty key a second time.
    if (!this.processing.delete(key)) return;
    this.metrics.done(key);
    if (this.dirty.has(key)) {
      this.queue.push(key);
      this.serveGetters();
    }
    // A drain waits for the keys in hand only (as client-go's does), whether or not the last one
    // was re-added meanwhile.
    if (this.processing.size === 0 && this.state.kind === 'shuttingDown') this.releaseDrainWaiters(this.state);
  }

  /**
   * Adds `key` after `delayMs` milliseconds (immediately if `delayMs <= 0`). While a key waits,
   * another addAfter for it only takes effect if it is due earlier, so a retry can be pulled
   * forward but never pushed back. Ignored once the queue is shutting down.
   */
  addAfter(key: K, delayMs: number): void {
    if (this.state.kind !== 'accepting') return;
    if (!(delayMs > 0)) {
      this.add(key);
      return;
    }
    const readyAtMs = this.clock.now() + delayMs;
    const waiting = this.delayed.get(key);
    if (waiting) {
      if (waiting.readyAtMs <= readyAtMs) return;
      this.clock.clearTimer(waiting.timer);
    }
    const timer = this.clock.setTimer(() => {
      this.delayed.delete(key);
      this.add(key);
    }, delayMs);
    this.delayed.set(key, { readyAtMs, timer });
  }

  /**
   * Adds `key` after the delay the rate limiter assigns, counting a retry: use it when processing
   * failed. Counts in `workqueue_retries_total` (client-go also counts plain addAfter there; we count
   * only real retries so the metric means failures).
   */
  addRateLimited(key: K): void {
    if (this.state.kind !== 'accepting') return;
    this.metrics.retried();
    this.addAfter(key, this.rateLimiter.when(key));
  }

  /** Clears the failure history of `key` in the rate limiter; call it when `key` was processed successfully. */
  forget(key: K): void {
    this.rateLimiter.forget(key);
  }

  /** How many times `key` was retried via {@link addRateLimited} since it was last forgotten. */
  numRequeues(key: K): number {
    return this.rateLimiter.numRequeues(key);
  }

  /** Number of keys waiting for a worker (not counting keys being processed or delayed). */
  len(): number {
    return this.queue.length;
  }

  /** True once {@link shutDown} or {@link shutDownWithDrain} was called. */
  get shuttingDown(): boolean {
    return this.state.kind === 'shuttingDown';
  }

  /**
   * Stops accepting keys and drops pending delayed adds. Waiting getters resolve `undefined`; keys
   * still queued are handed out to later getters until the queue is empty. Called after
   * {@link shutDownWithDrain}, it releases the drain waiters at once instead of waiting.
   */
  shutDown(): void {
    const state = this.beginShutdown();
    this.releaseDrainWaiters(state);
  }

  /**
   * Like {@link shutDown}, then resolves once every key handed out has been marked {@link done}.
   * It waits as long as a worker holds a key, so bound it (race it with a timeout, then call
   * {@link shutDown} to give up).
   */
  shutDownWithDrain(): Promise<void> {
    const state = this.beginShutdown();
    if (this.processing.size === 0) return Promise.resolve();
    return new Promise((resolve) => state.drainWaiters.push(resolve));
  }

  private beginShutdown(): Extract<QueueState, { kind: 'shuttingDown' }> {
    if (this.state.kind === 'shuttingDown') return this.state;
    const state = { kind: 'shuttingDown' as const, drainWaiters: [] };
    this.state = state;
    for (const { timer } of this.delayed.values()) this.clock.clearTimer(timer);
    this.delayed.clear();
    this.metrics.shutDown();
    // Getters only wait while the queue is empty, so there is nothing left to give them.
    for (const resolve of this.getters.splice(0)) resolve(undefined);
    return state;
  }

  private releaseDrainWaiters(state: Extract<QueueState, { kind: 'shuttingDown' }>): void {
    for (const resolve of state.drainWaiters.splice(0)) resolve();
  }

  private serveGetters(): void {
    while (this.getters.length > 0 && this.queue.length > 0) {
      const resolve = this.getters.shift()!;
      resolve(this.take());
    }
  }

  /** Moves the head of the queue into processing. Only called with a non-empty queue. */
  private take(): K {
    const key = this.queue.shift();
    this.dirty.delete(key);
    this.processing.add(key);
    this.metrics.taken(key);
    return key;
  }
}

/** Compact the FIFO backing array once this many slots at its head are consumed (and they are most of it). */
const FIFO_COMPACT_THRESHOLD = 1024;

/** Array-backed FIFO with O(1) shift: Array#shift is O(n), which hurts with deep queues. */
class KeyFifo<K> {
  private items: K[] = [];
  private head = 0;

  get length(): number {
    return this.items.length - this.head;
  }

  push(key: K): void {
    this.items.push(key);
  }

  /** Removes and returns the oldest key. Only called when {@link length} > 0. */
  shift(): K {
    const key = this.items[this.head] as K;
    this.head++;
    if (this.head >= FIFO_COMPACT_THRESHOLD && this.head * 2 >= this.items.length) {
      this.items = this.items.slice(this.head);
      this.head = 0;
    }
    return key;
  }
}

// ---- metrics ---------------------------------------------------------------------------------

/** What the queue reports; the no-op variant keeps unmetered queues free of bookkeeping. */
interface QueueMetrics<K> {
  added(key: K): void;
  taken(key: K): void;
  done(key: K): void;
  retried(): void;
  shutDown(): void;
}

const noQueueMetrics: QueueMetrics<never> = {
  added() {},
  taken() {},
  done() {},
  retried() {},
  shutDown() {},
};

/** client-go's duration buckets: `ExponentialBuckets(10e-9, 10, 10)`, i.e. 1e-8 s … 10 s. */
export const WORKQUEUE_DURATION_BUCKETS_SECONDS: readonly number[] = Array.from({ length: 10 }, (_, k) => 10 ** (k - 8));

const MS_PER_SECOND = 1000;

/** One set of metric objects per registry, shared by every queue on it (prom-client refuses duplicate names). */
interface SharedQueueMetrics {
  readonly depth: Gauge<'name'>;
  readonly adds: Counter<'name'>;
  readonly queueDuration: Histogram<'name'>;
  readonly workDuration: Histogram<'name'>;
  readonly retries: Counter<'name'>;
  readonly unfinishedWork: Gauge<'name'>;
  readonly longestRunningProcessor: Gauge<'name'>;
  /** Queues whose in-progress gauges are computed at scrape time. */
  readonly live: Set<PrometheusQueueMetrics<string>>;
}

const metricsByRegistry = new WeakMap<Registry, SharedQueueMetrics>();

function sharedQueueMetrics(registry: Registry): SharedQueueMetrics {
  const existing = metricsByRegistry.get(registry);
  if (existing) return existing;
  const registers = [registry];
  const labelNames = ['name'] as const;
  const live = new Set<PrometheusQueueMetrics<string>>();
  // The two in-progress gauges are computed when scraped rather than on a ticker (client-go
  // updates them every 500 ms): nothing runs between scrapes and the values are never stale.
  const refreshInProgress = (): void => {
    for (const queue of live) if (queue.refreshInProgress()) live.delete(queue);
  };
  const shared: SharedQueueMetrics = {
    depth: new Gauge({ name: 'workqueue_depth', help: 'Current depth of workqueue', labelNames, registers }),
    adds: new Counter({ name: 'workqueue_adds_total', help: 'Total number of adds handled by workqueue', labelNames, registers }),
    queueDuration: new Histogram({
      name: 'workqueue_queue_duration_seconds',
      help: 'How long in seconds an item stays in workqueue before being requested.',
      labelNames,
      buckets: [...WORKQUEUE_DURATION_BUCKETS_SECONDS],
      registers,
    }),
    workDuration: new Histogram({
      name: 'workqueue_work_duration_seconds',
      help: 'How long in seconds processing an item from workqueue takes.',
      labelNames,
      buckets: [...WORKQUEUE_DURATION_BUCKETS_SECONDS],
      registers,
    }),
    retries: new Counter({ name: 'workqueue_retries_total', help: 'Total number of retries handled by workqueue', labelNames, registers }),
    unfinishedWork: new Gauge({
      name: 'workqueue_unfinished_work_seconds',
      help:
        "How many seconds of work has been done that is in progress and hasn't been observed by work_duration. " +
        'Large values indicate stuck threads. One can deduce the number of stuck threads by observing the rate at which this increases.',
      labelNames,
      registers,
      collect: refreshInProgress,
    }),
    longestRunningProcessor: new Gauge({
      name: 'workqueue_longest_running_processor_seconds',
      help: 'How many seconds has the longest running processor for workqueue been running.',
      labelNames,
      registers,
      collect: refreshInProgress,
    }),
    live,
  };
  metricsByRegistry.set(registry, shared);
  return shared;
}

/** client-go's `defaultQueueMetrics`: times each key from add to get and from get to done. */
class PrometheusQueueMetrics<K extends string> implements QueueMetrics<K> {
  private readonly shared: SharedQueueMetrics;
  private readonly labels: { readonly name: string };
  private readonly clock: Clock;
  /** When each queued key was first added (a re-add of a waiting key keeps the older time). */
  private readonly addedAtMs = new Map<K, number>();
  /** When each processing key was handed to its worker. */
  private readonly startedAtMs = new Map<K, number>();
  private stopped = false;

  constructor(shared: SharedQueueMetrics, name: string, clock: Clock) {
    this.shared = shared;
    this.labels = { name };
    this.clock = clock;
    // Export zeroes from the start so dashboards and rate() see the queue before its first add.
    shared.depth.set(this.labels, 0);
    shared.adds.inc(this.labels, 0);
    shared.retries.inc(this.labels, 0);
    shared.queueDuration.zero(this.labels);
    shared.workDuration.zero(this.labels);
    shared.live.add(this as PrometheusQueueMetrics<string>);
  }

  added(key: K): void {
    this.shared.depth.inc(this.labels);
    this.shared.adds.inc(this.labels);
    if (!this.addedAtMs.has(key)) this.addedAtMs.set(key, this.clock.now());
  }

  taken(key: K): void {
    const nowMs = this.clock.now();
    this.shared.depth.dec(this.labels);
    this.startedAtMs.set(key, nowMs);
    const addedAtMs = this.addedAtMs.get(key);
    if (addedAtMs === undefined) return;
    this.addedAtMs.delete(key);
    this.shared.queueDuration.observe(this.labels, (nowMs - addedAtMs) / MS_PER_SECOND);
  }

  done(key: K): void {
    const startedAtMs = this.startedAtMs.get(key);
    if (startedAtMs === undefined) return;
    this.startedAtMs.delete(key);
    this.shared.workDuration.observe(this.labels, (this.clock.now() - startedAtMs) / MS_PER_SECOND);
  }

  retried(): void {
    this.shared.retries.inc(this.labels);
  }

  shutDown(): void {
    this.stopped = true;
  }

  /** Sets the in-progress gauges; returns true once the queue is shut down with nothing in progress. */
  refreshInProgress(): boolean {
    const nowMs = this.clock.now();
    let totalMs = 0;
    let longestMs = 0;
    for (const startedAtMs of this.startedAtMs.values()) {
      totalMs += nowMs - startedAtMs;
      longestMs = Math.max(longestMs, nowMs - startedAtMs);
    }
    this.shared.unfinishedWork.set(this.labels, totalMs / MS_PER_SECOND);
    this.shared.longestRunningProcessor.set(this.labels, longestMs / MS_PER_SECOND);
    return this.stopped && this.startedAtMs.size === 0;
  }
}
