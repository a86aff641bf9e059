import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { FakeClock, MAX_NODE_TIMER_MS, realClock, timeoutSignal } from './clock.ts';

describe('realClock', () => {
  it('does not fire a timer longer than Node can express (2^31 ms) early', async () => {
    let fired = false;
    const handle = realClock.setTimer(() => (fired = true), 30 * 24 * 3600 * 1000);
    await new Promise((r) => setTimeout(r, 50));
    realClock.clearTimer(handle);
    assert.equal(fired, false);
  });

  it('fires a short timer', async () => {
    await new Promise<void>((resolve) => realClock.setTimer(resolve, 5));
  });
});

describe('timeoutSignal', () => {
  it('aborts with a TimeoutError after a short delay, like AbortSignal.timeout', async () => {
    const signal = timeoutSignal(20);
    await new Promise((resolve) => signal.addEventListener('abort', resolve, { once: true }));
    assert.equal((signal.reason as Error).name, 'TimeoutError');
  });

  // AbortSignal.timeout(700 h) fires after 1 ms: every request of `--timeout 700h` failed at once.
  it('does not abort early for a delay longer than Node timers can hold', async () => {
    const signal = timeoutSignal(MAX_NODE_TIMER_MS + 1_000);
    await new Promise((resolve) => setTimeout(resolve, 50));
    assert.equal(signal.aborted, false);
    assert.equal(timeoutSignal(Number.POSITIVE_INFINITY).aborted, false);
  });
});

describe('FakeClock', () => {
  it('fires timers in due order as time advances, and not before', () => {
    const clock = new FakeClock(0);
    const fired: string[] = [];
    clock.setTimer(() => fired.push('b'), 20);
    clock.setTimer(() => fired.push('a'), 10);
    const cancelled = clock.setTimer(() => fired.push('never'), 15);
    clock.clearTimer(cancelled);
    clock.advance(9);
    assert.deepEqual(fired, []);
    clock.advance(11);
    assert.deepEqual(fired, ['a', 'b']);
    assert.equal(clock.now(), 20);
    assert.equal(clock.pendingTimers, 0);
  });
});
