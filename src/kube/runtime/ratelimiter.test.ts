import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { FakeClock } from '../clock.ts';
import {
  BucketRateLimiter,
  defaultControllerRateLimiter,
  ExponentialBackoff,
  ItemExponentialFailureRateLimiter,
  MaxOfRateLimiter,
  type RateLimiter,
} from './ratelimiter.ts';

function whenTimes(limiter: RateLimiter, key: string, times: number): number[] {
  return Array.from({ length: times }, () => limiter.when(key));
}

describe('ItemExponentialFailureRateLimiter', () => {
  const cases = [
    { name: 'defaults double from 5 ms', options: {}, expected: [5, 10, 20, 40, 80, 160, 320, 640] },
    { name: 'caps at maxDelayMs', options: { baseDelayMs: 5, maxDelayMs: 30 }, expected: [5, 10, 20, 30, 30] },
    { name: 'honours a custom base', options: { baseDelayMs: 100, maxDelayMs: 1_000 }, expected: [100, 200, 400, 800, 1_000] },
  ];
  for (const { name, options, expected } of cases) {
    it(name, () => {
      assert.deepEqual(whenTimes(new ItemExponentialFailureRateLimiter(options), 'ns/a', expected.length), expected);
    });
  }

  it('caps at 1000 s by default, even after very many failures', () => {
    const limiter = new ItemExponentialFailureRateLimiter();
    const delays = whenTimes(limiter, 'ns/a', 2_000);
    assert.equal(delays[17], 5 * 2 ** 17); // 655.36 s: still below the cap
    assert.equal(delays[18], 1_000_000);
    assert.equal(delays.at(-1), 1_000_000);
  });

  it('counts failures per key and starts over after forget', () => {
    const limiter = new ItemExponentialFailureRateLimiter();
    whenTimes(limiter, 'ns/a', 3);
    limiter.when('ns/b');
    assert.equal(limiter.numRequeues('ns/a'), 3);
    assert.equal(limiter.numRequeues('ns/b'), 1);
    limiter.forget('ns/a');
    assert.equal(limiter.numRequeues('ns/a'), 0);
    assert.equal(limiter.when('ns/a'), 5);
    assert.equal(limiter.when('ns/b'), 10, 'forgetting one key leaves the others alone');
  });
});

describe('BucketRateLimiter', () => {
  it('lets a burst through, then spaces calls at 1/qps', () => {
    const limiter = new BucketRateLimiter({ qps: 10, burst: 3, clock: new FakeClock() });
    assert.deepEqual(whenTimes(limiter, 'k', 6), [0, 0, 0, 100, 200, 300]);
  });

  it('refills at qps up to the burst size as time passes', () => {
    const clock = new FakeClock();
    const limiter = new BucketRateLimiter({ qps: 10, burst: 3, clock });
    whenTimes(limiter, 'k', 3); // bucket empty
    clock.advance(100); // one token back
    assert.deepEqual(whenTimes(limiter, 'k', 2), [0, 100]);
    clock.advance(10_000); // far more than the burst: refill stops at 3
    assert.deepEqual(whenTimes(limiter, 'k', 4), [0, 0, 0, 100]);
  });

  it('defaults to 10 qps with a burst of 100, shared by all keys', () => {
    const limiter = new BucketRateLimiter({ clock: new FakeClock() });
    const delays = Array.from({ length: 102 }, (_, i) => limiter.when(`key-${i}`));
    assert.deepEqual(delays.slice(0, 100), Array(100).fill(0));
    assert.deepEqual(delays.slice(100), [100, 200]);
  });

  it('keeps no per-key state', () => {
    const limiter = new BucketRateLimiter({ clock: new FakeClock() });
    limiter.when('k');
    limiter.forget('k');
    assert.equal(limiter.numRequeues('k'), 0);
  });

  const invalid = [
    { name: 'zero qps', options: { qps: 0 } },
    { name: 'infinite qps', options: { qps: Infinity } },
    { name: 'zero burst', options: { burst: 0 } },
    { name: 'fractional burst', options: { burst: 1.5 } },
  ];
  for (const { name, options } of invalid) {
    it(`rejects ${name}`, () => {
      assert.throws(() => new BucketRateLimiter({ ...options, clock: new FakeClock() }), RangeError);
    });
  }
});

describe('MaxOfRateLimiter', () => {
  it('waits for the longest of its limiters and forgets in all of them', () => {
    const clock = new FakeClock();
    const limiter = new MaxOfRateLimiter(
      new ItemExponentialFailureRateLimiter({ baseDelayMs: 5, maxDelayMs: 1_000 }),
      new BucketRateLimiter({ qps: 1, burst: 2, clock }),
    );
    // bucket: 0, 0, 1000, 2000 ms; per key: 5, 10, 20, 40 ms
    assert.deepEqual(whenTimes(limiter, 'k', 4), [5, 10, 1_000, 2_000]);
    assert.equal(limiter.numRequeues('k'), 4);
    limiter.forget('k');
    assert.equal(limiter.numRequeues('k'), 0);
  });

  it('needs at least one limiter', () => {
    assert.throws(() => new MaxOfRateLimiter(), RangeError);
  });
});

describe('defaultControllerRateLimiter', () => {
  it('backs off per key from 5 ms and caps the overall retry rate at 10 qps after a burst of 100', () => {
    const limiter = defaultControllerRateLimiter(new FakeClock());
    const firstFailures = Array.from({ length: 101 }, (_, i) => limiter.when(`key-${i}`));
    assert.deepEqual(firstFailures.slice(0, 100), Array(100).fill(5));
    assert.equal(firstFailures[100], 100, 'the 101st retry within the same instant waits for a bucket token');
  });
});

describe('ExponentialBackoff', () => {
  it('grows by factor up to maxMs and starts over after reset', () => {
    const backoff = new ExponentialBackoff({ initialMs: 100, factor: 2, maxMs: 1_000 });
    assert.deepEqual(Array.from({ length: 6 }, () => backoff.next()), [100, 200, 400, 800, 1_000, 1_000]);
    assert.equal(backoff.attempts, 6);
    backoff.reset();
    assert.equal(backoff.attempts, 0);
    assert.equal(backoff.next(), 100);
  });

  const jitterCases = [
    { random: 0, expected: [100, 200, 400, 400] },
    { random: 0.5, expected: [110, 220, 440, 440] },
    { random: 0.999, expected: [119.98, 239.96, 479.92, 479.92] },
  ];
  for (const { random, expected } of jitterCases) {
    it(`stretches each delay by up to the jitter fraction (random = ${random})`, () => {
      const backoff = new ExponentialBackoff({ initialMs: 100, maxMs: 400, jitter: 0.2, random: () => random });
      const delays = Array.from({ length: expected.length }, () => backoff.next());
      delays.forEach((delay, i) => { assert.ok(Math.abs(delay - expected[i]!) < 1e-9, `delay ${i}: ${delay} ≠ ${expected[i]}`); });
    });
  }

  const invalid = [
    { name: 'a zero initial delay', options: { initialMs: 0, maxMs: 10 } },
    { name: 'a shrinking factor', options: { initialMs: 10, maxMs: 100, factor: 0.5 } },
    { name: 'a cap below the initial delay', options: { initialMs: 10, maxMs: 5 } },
    { name: 'jitter above 1', options: { initialMs: 10, maxMs: 100, jitter: 1.5 } },
    { name: 'negative jitter', options: { initialMs: 10, maxMs: 100, jitter: -0.1 } },
  ];
  for (const { name, options } of invalid) {
    it(`rejects ${name}`, () => {
      assert.throws(() => new ExponentialBackoff(options), RangeError);
    });
  }
});
