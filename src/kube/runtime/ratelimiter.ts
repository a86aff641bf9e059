/**
 * Rate limiters for the work queue, after client-go `util/workqueue/default_rate_limiters.go`.
 *
 * Each limiter does one job and they compose: a per-key exponential backoff slows down one
 * failing object without touching the others, a global token bucket caps the overall retry rate
 * so a mass failure (API server down, webhook broken) cannot turn into a retry storm, and
 * {@link MaxOfRateLimiter} applies both by taking the longer of their delays.
 *
 * Also home to {@link ExponentialBackoff}, the reconnect backoff used by the reflector and leader
 * election: same idea as the per-key limiter, but for one stream of attempts and with jitter.
 */
import { realClock, type Clock } from '../clock.ts';

/**
 * Decides how long a key must wait before it is retried. The queue calls {@link RateLimiter.when}
 * once per failure; {@link RateLimiter.forget} once the key succeeded, so its history is dropped.
 */
export interface RateLimiter {
  /** Records a failure of `key` and returns how long to wait before retrying it, in milliseconds. */
  when(key: string): number;
  /** Drops the failure history of `key` (call it when the key was processed successfully). */
  forget(key: string): void;
  /** How many failures of `key` were recorded since it was last forgotten. */
  numRequeues(key: string): number;
}

/** client-go's defaults for the per-key backoff: 5 ms, doubling, capped at 1000 s. */
export const DEFAULT_ITEM_BASE_DELAY_MS = 5;
export const DEFAULT_ITEM_MAX_DELAY_MS = 1_000_000;
/** client-go's defaults for the overall bucket: 10 retries per second, bursts of 100. */
export const DEFAULT_BUCKET_QPS = 10;
export const DEFAULT_BUCKET_BURST = 100;

const MS_PER_SECOND = 1000;

export interface ItemExponentialFailureRateLimiterOptions {
  /** Delay after the first failure, in milliseconds. Default {@link DEFAULT_ITEM_BASE_DELAY_MS} (5). */
  readonly baseDelayMs?: number;
  /** Upper bound of the delay, in milliseconds. Default {@link DEFAULT_ITEM_MAX_DELAY_MS} (1000 s). */
  readonly maxDelayMs?: number;
}

/**
 * Per-key exponential backoff: the n-th consecutive failure of a key waits `baseDelayMs × 2^(n-1)`,
 * capped at `maxDelayMs`. Keys are independent: one broken object does not slow down the others.
 */
export class ItemExponentialFailureRateLimiter implements RateLimiter {
  private readonly baseDelayMs: number;
  private readonly maxDelayMs: number;
  /** Consecutive failures per key. A key is absent once forgotten, so the map only holds failing keys. */
  private readonly failures = new Map<string, number>();

  constructor(options: ItemExponentialFailureRateLimiterOptions = {}) {
    this.baseDelayMs = options.baseDelayMs ?? DEFAULT_ITEM_BASE_DELAY_MS;
    this.maxDelayMs = options.maxDelayMs ?? DEFAULT_ITEM_MAX_DELAY_MS;
    requireNonNegative('baseDelayMs', this.baseDelayMs);
    requireNonNegative('maxDelayMs', this.maxDelayMs);
  }

  /** Counts a failure of `key`; returns `baseDelayMs × 2^(previous failures)`, at most `maxDelayMs`. */
  when(key: string): number {
    const previousFailures = this.failures.get(key) ?? 0;
    this.failures.set(key, previousFailures + 1);
    // 2 ** n grows into Infinity rather than wrapping around, so the cap alone keeps this sane
    // (client-go needs an explicit overflow check here).
    return Math.min(this.baseDelayMs * 2 ** previousFailures, this.maxDelayMs);
  }

  forget(key: string): void {
    this.failures.delete(key);
  }

  numRequeues(key: string): number {
    return this.failures.get(key) ?? 0;
  }
}

export interface BucketRateLimiterOptions {
  /** Tokens added per second, i.e. the sustained rate of retries. Default {@link DEFAULT_BUCKET_QPS} (10). */
  readonly qps?: number;
  /** Bucket size: how many retries may go out at once before `qps` applies. Default {@link DEFAULT_BUCKET_BURST} (100). */
  readonly burst?: number;
  /** Time source. Default {@link realClock}. */
  readonly clock?: Clock;
}

/**
 * One token bucket shared by all keys (golang.org/x/time/rate semantics, as client-go uses it).
 * The bucket starts full. Every {@link BucketRateLimiter.when} reserves a token, going into debt
 * when the bucket is empty; the debt is the wait. It keeps no per-key state, so
 * {@link BucketRateLimiter.forget} does nothing and {@link BucketRateLimiter.numRequeues} is 0.
 */
export class BucketRateLimiter implements RateLimiter {
  private readonly qps: number;
  private readonly burst: number;
  private readonly clock: Clock;
  /** Tokens available at {@link lastUpdateMs}; negative while reservations wait in the future. */
  private tokens: number;
  private lastUpdateMs: number;

  constructor(options: BucketRateLimiterOptions = {}) {
    this.qps = options.qps ?? DEFAULT_BUCKET_QPS;
    this.burst = options.burst ?? DEFAULT_BUCKET_BURST;
    this.clock = options.clock ?? realClock;
    if (!(this.qps > 0) || !Number.isFinite(this.qps)) throw new RangeError(`qps must be a positive finite number, got ${this.qps}`);
    if (!Number.isInteger(this.burst) || this.burst < 1) throw new RangeError(`burst must be an integer >= 1, got ${this.burst}`);
    this.tokens = this.burst;
    this.lastUpdateMs = this.clock.now();
  }

  /** Reserves one token; returns how long the caller must wait for it, in milliseconds (0 if one was free). */
  when(_key: string): number {
    const nowMs = this.clock.now();
    // A clock stepping backwards must not mint tokens out of negative elapsed time.
    const elapsedMs = Math.max(0, nowMs - this.lastUpdateMs);
    this.tokens = Math.min(this.burst, this.tokens + (elapsedMs * this.qps) / MS_PER_SECOND);
    this.lastUpdateMs = Math.max(nowMs, this.lastUpdateMs);
    this.tokens -= 1;
    return this.tokens >= 0 ? 0 : (-this.tokens * MS_PER_SECOND) / this.qps;
  }

  forget(_key: string): void {}

  numRequeues(_key: string): number {
    return 0;
  }
}

/**
 * Applies several limiters at once: the wait is the longest of theirs. Every limiter sees every
 * call, so each keeps its own accounting (a bucket reservation is taken even when the per-key
 * backoff is the longer wait, exactly as in client-go).
 */
export class MaxOfRateLimiter implements RateLimiter {
  private readonly limiters: readonly RateLimiter[];

  constructor(...limiters: RateLimiter[]) {
    if (limiters.length === 0) throw new RangeError('MaxOfRateLimiter needs at least one limiter');
    this.limiters = limiters;
  }

  when(key: string): number {
    let longestMs = 0;
    for (const limiter of this.limiters) longestMs = Math.max(longestMs, limiter.when(key));
    return longestMs;
  }

  forget(key: string): void {
    for (const limiter of this.limiters) limiter.forget(key);
  }

  numRequeues(key: string): number {
    let most = 0;
    for (const limiter of this.limiters) most = Math.max(most, limiter.numRequeues(key));
    return most;
  }
}

/**
 * client-go's `DefaultControllerRateLimiter`: per-key exponential backoff from 5 ms to 1000 s,
 * combined with an overall bucket of 10 qps and burst 100.
 */
export function defaultControllerRateLimiter(clock: Clock = realClock): RateLimiter {
  return new MaxOfRateLimiter(
    new ItemExponentialFailureRateLimiter({ baseDelayMs: DEFAULT_ITEM_BASE_DELAY_MS, maxDelayMs: DEFAULT_ITEM_MAX_DELAY_MS }),
    new BucketRateLimiter({ qps: DEFAULT_BUCKET_QPS, burst: DEFAULT_BUCKET_BURST, clock }),
  );
}

export interface ExponentialBackoffOptions {
  /** Delay before the first retry, in milliseconds. Must be > 0. */
  readonly initialMs: number;
  /** Growth per attempt. Default 2. Must be >= 1. */
  readonly factor?: number;
  /** Cap of the un-jittered delay, in milliseconds. Must be >= `initialMs`. */
  readonly maxMs: number;
  /**
   * Extra random delay as a fraction of the delay: each delay is stretched by up to this much
   * (0.1 → up to +10 %). Default 0 (no jitter). Must be in [0, 1].
   */
  readonly jitter?: number;
  /** Source of uniform numbers in [0, 1). Default `Math.random`; inject a fixed one in tests. */
  readonly random?: () => number;
}

const DEFAULT_BACKOFF_FACTOR = 2;

/**
 * Backoff for one stream of attempts (a watch reconnecting, a lease being retried), after
 * k8s.io/apimachinery `wait.Backoff`: `initialMs, initialMs × factor, …` up to `maxMs`, each
 * stretched by a random jitter. Call {@link ExponentialBackoff.reset} after a success.
 */
export class ExponentialBackoff {
  private readonly initialMs: number;
  private readonly factor: number;
  private readonly maxMs: number;
  private readonly jitter: number;
  private readonly random: () => number;
  private currentMs: number;
  private attemptCount = 0;

  constructor(options: ExponentialBackoffOptions) {
    this.initialMs = options.initialMs;
    this.factor = options.factor ?? DEFAULT_BACKOFF_FACTOR;
    this.maxMs = options.maxMs;
    this.jitter = options.jitter ?? 0;
    this.random = options.random ?? Math.random;
    if (!(this.initialMs > 0) || !Number.isFinite(this.initialMs)) throw new RangeError(`initialMs must be a positive finite number, got ${this.initialMs}`);
    if (!(this.factor >= 1) || !Number.isFinite(this.factor)) throw new RangeError(`factor must be a finite number >= 1, got ${this.factor}`);
    if (!(this.maxMs >= this.initialMs) || !Number.isFinite(this.maxMs)) throw new RangeError(`maxMs must be finite and >= initialMs, got ${this.maxMs}`);
    if (!(this.jitter >= 0 && this.jitter <= 1)) throw new RangeError(`jitter must be a fraction in [0, 1], got ${this.jitter}`);
    this.currentMs = this.initialMs;
  }

  /**
   * Returns the delay before the next attempt, in milliseconds, and grows the delay for the one after.
   * Jitter is added on top of the capped delay, so a value can reach `maxMs × (1 + jitter)`: that way
   * clients that all reached the cap still spread out instead of retrying in lockstep.
   */
  next(): number {
    const baseMs = this.currentMs;
    this.currentMs = Math.min(this.currentMs * this.factor, this.maxMs);
    this.attemptCount++;
    return baseMs + this.random() * this.jitter * baseMs;
  }

  /** Starts over at `initialMs`; call it once an attempt succeeded. */
  reset(): void {
    this.currentMs = this.initialMs;
    this.attemptCount = 0;
  }

  /** How many delays {@link ExponentialBackoff.next} handed out since construction or the last reset. */
  get attempts(): number {
    return this.attemptCount;
  }
}

function requireNonNegative(name: string, value: number): void {
  if (!(value >= 0)) throw new RangeError(`${name} must be >= 0, got ${value}`);
}
