import { strict as assert } from 'node:assert';
import { describe, it } from 'node:test';
import { mapConcurrent, withTimeout } from './concurrency.ts';

describe('mapConcurrent', () => {
  it('never runs more than the limit at once and keeps input order', async () => {
    let running = 0;
    let peak = 0;
    const results = await mapConcurrent([5, 1, 4, 2, 3, 0], 2, async (n) => {
      running++;
      peak = Math.max(peak, running);
      await new Promise((resolve) => setTimeout(resolve, n));
      running--;
      return n * 10;
    });
    assert.deepEqual(results, [50, 10, 40, 20, 30, 0]);
    assert.equal(peak, 2);
  });

  it('stops starting items after a failure and rejects with it', async () => {
    const started: number[] = [];
    await assert.rejects(
      mapConcurrent([1, 2, 3, 4], 1, async (n) => {
        started.push(n);
        if (n === 2) throw new Error('boom');
        return n;
      }),
      /boom/,
    );
    assert.deepEqual(started, [1, 2]);
  });

  it('handles an empty list and refuses a zero limit', async () => {
    assert.deepEqual(await mapConcurrent([], 3, async () => 1), []);
    await assert.rejects(mapConcurrent([1], 0, async () => 1), RangeError);
  });
});

describe('withTimeout', () => {
  it('passes a result through and rejects with the message once the time is up', async () => {
    assert.equal(await withTimeout(Promise.resolve(7), 1_000), 7);
    await assert.rejects(withTimeout(new Promise(() => {}), 10, 'pods not synced'), /^Error: pods not synced$/);
    await assert.rejects(withTimeout(new Promise(() => {}), 10), /timed out after 10 ms/);
  });

  it('waits as long as it takes for an infinite timeout', async () => {
    assert.equal(await withTimeout(new Promise((resolve) => setTimeout(() => resolve('late'), 20)), Infinity), 'late');
  });
});
