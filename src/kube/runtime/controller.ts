/**
 * Runs a reconciler over a {@link WorkQueue}, after kubernetes/sample-controller and
 * controller-runtime: N workers take keys off the queue, call the reconciler, and turn what it
 * returned (or threw) into queue operations. Read in call order:
 * `Controller → run → runWorker → processNextWorkItem → reconcileHandler`.
 *
 * The queue guarantees a key is never reconciled by two workers at once, so a reconciler may
 * assume it is the only one working on its key.
 */
import { setImmediate as yieldToEventLoop } from 'node:timers/promises';
import type { Registry } from 'prom-client';
import { Counter, Histogram } from 'prom-client';
import { realClock, type Clock } from '../clock.ts';
import { silentLogger, type Logger } from '../logger-type.ts';
import { defaultControllerRateLimiter, type RateLimiter } from './ratelimiter.ts';
import { WorkQueue } from './workqueue.ts';

export type { Logger } from '../logger-type.ts';

/**
 * What a reconcile asks for next.
 * - `done`: the key is in its desired state; its retry history is cleared.
 * - `requeueAfter`: reconcile the key again after `delayMs` even if nothing changes. The
 *   best-practice way to re-check state that no watch reports (expiring certificates, external
 *   systems), and a safety net against missed events.
 * To retry with backoff, throw; to give up on a key, throw a {@link TerminalError}.
 */
export type Outcome = { readonly kind: 'done' } | { readonly kind: 'requeueAfter'; readonly delayMs: number };

/** The key reached its desired state. */
export const done: Outcome = Object.freeze({ kind: 'done' });

/** Reconcile the key again after `delayMs` milliseconds (0 = as soon as a worker is free). */
export function requeueAfter(delayMs: number): Outcome {
  if (!(delayMs >= 0) || !Number.isFinite(delayMs)) throw new RangeError(`requeueAfter needs a finite delay >= 0 ms, got ${delayMs}`);
  return { kind: 'requeueAfter', delayMs };
}

/**
 * An error that retrying cannot fix (invalid spec, missing permission the user must grant). The
 * controller logs and counts it and forgets the key instead of retrying; the key is reconciled
 * again only when something enqueues it. Also recognised when wrapped as the `cause` of another error.
 */
export class TerminalError extends Error {
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = 'TerminalError';
  }
}

/**
 * Brings the object behind `key` to its desired state. Must be idempotent: it runs again after
 * failures, requeues and restarts. `signal` aborts when the controller shuts down; pass it to
 * API calls so shutdown does not wait on them.
 */
export type Reconciler<K> = (key: K, signal: AbortSignal) => Promise<Outcome>;

/** Number of workers when none is given; controller-runtime defaults to 1, client-go samples use 2. */
export const DEFAULT_WORKERS = 2;

export interface ControllerOptions<K extends string> {
  /** Names the controller in logs and metrics (label `controller`) and its queue (label `name`). */
  readonly name: string;
  readonly reconcile: Reconciler<K>;
  /** How many keys are reconciled concurrently. Default {@link DEFAULT_WORKERS} (2). */
  readonly workers?: number;
  /** Time source for delays, backoff and metrics. Default {@link realClock}. */
  readonly clock?: Clock;
  /** Backoff for failed reconciles. Default {@link defaultControllerRateLimiter} (5 ms … 1000 s per key, 10 qps overall). */
  readonly rateLimiter?: RateLimiter;
  /** Registry for `crowsnest_reconcile_*` and `workqueue_*` metrics. Default: no metrics. */
  readonly registry?: Registry;
  /** Pino-compatible logger. Default: silent. */
  readonly logger?: Logger;
}

/** Lifecycle: a controller runs once; after `run` resolved its queue is shut down for good. */
type ControllerState = { readonly kind: 'idle' } | { readonly kind: 'running' } | { readonly kind: 'stopped' };

export class Controller<K extends string = string> {
  readonly name: string;
  private readonly reconcile: Reconciler<K>;
  private readonly workers: number;
  private readonly clock: Clock;
  private readonly logger: Logger;
  private readonly metrics: ReconcileMetrics;
  /** Keys to reconcile. Informer handlers enqueue into it; only workers take from it. */
  private readonly workqueue: WorkQueue<K>;
  private state: ControllerState = { kind: 'idle' };

  constructor(options: ControllerOptions<K>) {
    this.name = options.name;
    this.reconcile = options.reconcile;
    this.workers = options.workers ?? DEFAULT_WORKERS;
    if (!Number.isInteger(this.workers) || this.workers < 1) throw new RangeError(`workers must be an integer >= 1, got ${this.workers}`);
    this.clock = options.clock ?? realClock;
    const logger = options.logger ?? silentLogger;
    this.logger = logger.child?.({ controller: this.name }) ?? logger;
    this.metrics = options.registry ? prometheusReconcileMetrics(options.registry, this.name) : noReconcileMetrics;
    this.workqueue = new WorkQueue<K>({
      name: this.name,
      clock: this.clock,
      rateLimiter: options.rateLimiter ?? defaultControllerRateLimiter(this.clock),
      ...(options.registry ? { registry: options.registry } : {}),
    });
  }

  /** The controller's queue, for informer handlers that need more than {@link enqueue}. */
  get queue(): WorkQueue<K> {
    return this.workqueue;
  }

  /** Asks for `key` to be reconciled. Cheap and deduplicated: call it from every event handler. */
  enqueue(key: K): void {
    this.workqueue.add(key);
  }

  /** Asks for `key` to be reconciled after `delayMs` milliseconds. */
  enqueueAfter(key: K, delayMs: number): void {
    this.workqueue.addAfter(key, delayMs);
  }

  /**
   * Starts the workers and resolves once `signal` aborted and every reconcile in flight returned.
   * Keys still queued at that point are dropped (the next leader or start lists everything again).
   * In-flight reconciles see `signal` aborted; one that ignores it delays the return, so callers
   * that must exit in time should bound the wait. Also resolves if the queue is shut down directly.
   */
  async run(signal: AbortSignal): Promise<void> {
    if (this.state.kind !== 'idle') throw new Error(`controller ${this.name} was already started`);
    this.state = { kind: 'running' };
    // Shutting the queue down wakes the workers blocked in get(); they then exit.
    const stop = (): void => this.workqueue.shutDown();
    if (signal.aborted) stop();
    else signal.addEventListener('abort', stop, { once: true });

    this.logger.info({ workers: this.workers }, 'starting workers');
    try {
      await Promise.all(Array.from({ length: this.workers }, () => this.runWorker(signal)));
    } finally {
      signal.removeEventListener('abort', stop);
      this.workqueue.shutDown();
      this.state = { kind: 'stopped' };
    }
    this.logger.info({}, 'workers stopped');
  }

  private async runWorker(signal: AbortSignal): Promise<void> {
    while (await this.processNextWorkItem(signal)) {
      // Yield a full event-loop turn between keys: a reconciler that resolves without I/O and
      // requeues itself would otherwise spin in microtasks, starving timers, I/O and the abort.
      await yieldToEventLoop();
    }
  }

  /** Takes one key and reconciles it. Returns false when the worker should exit. */
  private async processNextWorkItem(signal: AbortSignal): Promise<boolean> {
    const key = await this.workqueue.get();
    if (key === undefined) return false;
    try {
      // After shutdown the queue still hands out what it holds; those keys are not worth starting.
      if (signal.aborted) return false;
      await this.reconcileHandler(key, signal);
      return true;
    } finally {
      // Always release the key, or a re-add of it would stay parked in the dirty set forever.
      this.workqueue.done(key);
    }
  }

  /** Calls the reconciler and turns its outcome into queue operations. Never throws. */
  private async reconcileHandler(key: K, signal: AbortSignal): Promise<void> {
    const startedAtMs = this.clock.now();
    let outcome: Outcome;
    try {
      outcome = await this.reconcile(key, signal);
      // A plain-JS reconciler that forgets to return an Outcome is a bug worth surfacing as a failure.
      if (!isOutcome(outcome)) throw new TypeError(`reconciler returned ${JSON.stringify(outcome)} instead of an Outcome`);
    } catch (err) {
      this.metrics.observeDuration(this.clock.now() - startedAtMs);
      this.handleError(key, err, signal);
      return;
    }
    this.metrics.observeDuration(this.clock.now() - startedAtMs);

    switch (outcome.kind) {
      case 'done':
        this.workqueue.forget(key);
        this.metrics.count('success');
        this.logger.debug({ key }, 'reconciled');
        return;
      case 'requeueAfter':
        // The key succeeded: its failure history goes, and the requested delay replaces backoff.
        this.workqueue.forget(key);
        this.workqueue.addAfter(key, outcome.delayMs);
        this.metrics.count('requeue');
        this.logger.debug({ key, delayMs: outcome.delayMs }, 'reconciled; requeued');
        return;
      default: {
        const exhaustive: never = outcome;
        return exhaustive;
      }
    }
  }

  private handleError(key: K, err: unknown, signal: AbortSignal): void {
    if (isTerminal(err)) {
      // Retrying cannot help, so do not keep the key in backoff; a change to the object will enqueue it again.
      this.workqueue.forget(key);
      this.metrics.count('terminal_error');
      this.logger.error({ key, err }, 'reconcile failed permanently; not retrying');
      return;
    }
    this.metrics.count('error');
    if (signal.aborted) {
      // Most likely the shutdown aborted the reconcile's own requests: not worth an error line.
      this.logger.debug({ key, err }, 'reconcile interrupted by shutdown');
      return;
    }
    this.workqueue.addRateLimited(key);
    this.logger.error({ key, err, retries: this.workqueue.numRequeues(key) }, 'reconcile failed; retrying with backoff');
  }
}

function isOutcome(value: unknown): value is Outcome {
  if (typeof value !== 'object' || value === null) return false;
  const candidate = value as { kind?: unknown; delayMs?: unknown };
  return candidate.kind === 'done' || (candidate.kind === 'requeueAfter' && typeof candidate.delayMs === 'number');
}

/** True for a {@link TerminalError} or an error caused (via `cause`, at any depth) by one. */
function isTerminal(err: unknown): boolean {
  const seen = new Set<unknown>();
  let current = err;
  while (current instanceof Error && !seen.has(current)) {
    if (current instanceof TerminalError) return true;
    seen.add(current);
    current = current.cause;
  }
  return false;
}

// ---- metrics ---------------------------------------------------------------------------------

type ReconcileResult = 'success' | 'requeue' | 'error' | 'terminal_error';
const RECONCILE_RESULTS: readonly ReconcileResult[] = ['success', 'requeue', 'error', 'terminal_error'];

/**
 * controller-runtime's `controller_runtime_reconcile_time_seconds` buckets: fine-grained below
 * one second where reconciles normally land, coarse up to a minute for slow API servers.
 */
export const RECONCILE_DURATION_BUCKETS_SECONDS: readonly number[] = [
  0.005, 0.01, 0.025, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.35, 0.4, 0.45, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0, 1.25, 1.5, 1.75,
  2.0, 2.5, 3.0, 3.5, 4.0, 4.5, 5, 6, 7, 8, 9, 10, 15, 20, 25, 30, 40, 50, 60,
];

const MS_PER_SECOND = 1000;

interface ReconcileMetrics {
  count(result: ReconcileResult): void;
  observeDuration(durationMs: number): void;
}

const noReconcileMetrics: ReconcileMetrics = { count() {}, observeDuration() {} };

interface SharedReconcileMetrics {
  readonly total: Counter<'controller' | 'result'>;
  readonly errors: Counter<'controller'>;
  readonly duration: Histogram<'controller'>;
}

/** One set of metric objects per registry, shared by every controller on it (prom-client refuses duplicate names). */
const reconcileMetricsByRegistry = new WeakMap<Registry, SharedReconcileMetrics>();

function prometheusReconcileMetrics(registry: Registry, controller: string): ReconcileMetrics {
  let shared = reconcileMetricsByRegistry.get(registry);
  if (!shared) {
    const registers = [registry];
    shared = {
      total: new Counter({
        name: 'crowsnest_reconcile_total',
        help: 'Total number of reconciliations per controller, by result (success, requeue, error, terminal_error).',
        labelNames: ['controller', 'result'] as const,
        registers,
      }),
      errors: new Counter({
        name: 'crowsnest_reconcile_errors_total',
        help: 'Total number of reconciliation errors per controller, retried or terminal.',
        labelNames: ['controller'] as const,
        registers,
      }),
      duration: new Histogram({
        name: 'crowsnest_reconcile_duration_seconds',
        help: 'Time taken by each reconciliation, per controller.',
        labelNames: ['controller'] as const,
        buckets: [...RECONCILE_DURATION_BUCKETS_SECONDS],
        registers,
      }),
    };
    reconcileMetricsByRegistry.set(registry, shared);
  }
  const { total, errors, duration } = shared;
  // Export zeroes for every result up front, so rate() and alerts work before the first error.
  for (const result of RECONCILE_RESULTS) total.inc({ controller, result }, 0);
  errors.inc({ controller }, 0);
  duration.zero({ controller });
  return {
    count(result) {
      total.inc({ controller, result });
      if (result === 'error' || result === 'terminal_error') errors.inc({ controller });
    },
    observeDuration(durationMs) {
      duration.observe({ controller }, durationMs / MS_PER_SECOND);
    },
  };
}
