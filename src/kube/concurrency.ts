import { realClock, type TimerHandle } from './clock.ts';

/**
 * Bounded parallelism for one-shot jobs: at most `limit` calls of `fn` run at once, results come
 * back in input order. The first failure rejects the whole call (the remaining items are not
 * started); callers that want per-item failures catch inside `fn`.
 */
export async function mapConcurrent<T, R>(items: readonly T[], limit: number, fn: (item: T, index: number) => Promise<R>): Promise<R[]> {
  if (!Number.isInteger(limit) || limit < 1) throw new RangeError(`limit must be an integer >= 1, got ${limit}`);
  const results = new Array<R>(items.length);
  let next = 0;
  let failed = false;
  const worker = async (): Promise<void> => {
    while (!failed && next < items.length) {
      const index = next++;
      try {
        results[index] = await fn(items[index] as T, index);
      } catch (err) {
        failed = true;
        throw err;
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return results;
}

/**
 * Resolves like `promise`, or rejects with `message` after `timeoutMs` milliseconds (never, for
 * an infinite timeout). The timer is cleared either way.
 */
export async function withTimeout<T>(promise: Promise<T>, timeoutMs: number, message = `timed out after ${timeoutMs} ms`): Promise<T> {
  if (!Number.isFinite(timeoutMs)) return await promise;
  let timer: TimerHandle | undefined;
  try {
    // realClock, not setTimeout: it holds waits longer than Node's timers can (~24.8 days).
    return await Promise.race([promise, new Promise<never>((_, reject) => (timer = realClock.setTimer(() => reject(new Error(message)), timeoutMs)))]);
  } finally {
    if (timer) realClock.clearTimer(timer);
  }
}
