import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { setImmediate as nextTurn } from 'node:timers/promises';
import { Registry } from 'prom-client';
import { FakeClock } from '../clock.ts';
import { ItemExponentialFailureRateLimiter } from './ratelimiter.ts';
import { WorkQueue, WORKQUEUE_DURATION_BUCKETS_SECONDS } from './workqueue.ts';
import { metricValue } from '../../../test/helpers/metrics.ts';

const PENDING = Symbol('pending');

/** The promise's value if it settles within one event-loop turn, else PENDING. */
async function peek<T>(promise: Promise<T>): Promise<T | typeof PENDING> {
  return Promise.race([promise, nextTurn<typeof PENDING>(PENDING)]);
}


function newQueue(options: { clock?: FakeClock; registry?: Registry; name?: string } = {}) {
  const clock = options.clock ?? new FakeClock();
  const queue = new WorkQueue({
    name: options.name ?? 'test',
    clock,
    rateLimiter: new ItemExponentialFailureRateLimiter({ baseDelayMs: 5, maxDelayMs: 1_000 }),
    ...(options.registry ? { registry: options.registry } : {}),
  });
  return { clock, queue };
}

describe('WorkQueue', () => {
  it('hands keys out in add order and deduplicates keys that are already waiting', async () => {
    const { queue } = newQueue();
    for (const key of ['ns/a', 'ns/b', 'ns/a', 'ns/c', 'ns/b']) queue.add(key);
    assert.equal(queue.len(), 3);
    assert.deepEqual([await queue.get(), await queue.get(), await queue.get()], ['ns/a', 'ns/b', 'ns/c']);
    assert.equal(queue.len(), 0);
  });

  it('never hands a key to a second getter while the first still processes it', async () => {
    const { queue } = newQueue();
    queue.add('ns/a');
    const first = await queue.get();
    queue.add('ns/a');
    const second = queue.get();
    assert.equal(await peek(second), PENDING, 'the re-added key must wait for done');
    assert.equal(queue.len(), 0);
    queue.done(first!);
    assert.equal(await peek(second), 'ns/a');
  });

  it('serves other keys while one key is being processed', async () => {
    const { queue } = newQueue();
    queue.add('ns/a');
    await queue.get();
    queue.add('ns/a');
    queue.add('ns/b');
    assert.equal(await peek(queue.get()), 'ns/b');
  });

  it('re-adding a key while it is processed requeues it once on done', async () => {
    const { queue } = newQueue();
    queue.add('ns/a');
    const key = (await queue.get())!;
    queue.add(key);
    queue.add(key);
    queue.add(key);
    assert.equal(queue.len(), 0, 'not queued while processing');
    queue.done(key);
    assert.equal(queue.len(), 1);
    assert.equal(await queue.get(), key);
    queue.done(key);
    assert.equal(queue.len(), 0, 'processed exactly once more');
  });

  it('keeps concurrent workers off each other\'s keys under a stream of re-adds', async () => {
    const { queue } = newQueue();
    const inFlight = new Set<string>();
    const finishers: Array<() => void> = [];
    let overlaps = 0;
    let processed = 0;
    const worker = async () => {
      for (let key = await queue.get(); key !== undefined; key = await queue.get()) {
        if (inFlight.has(key)) overlaps++;
        inFlight.add(key);
        await new Promise<void>((resolve) => finishers.push(resolve));
        inFlight.delete(key);
        processed++;
        queue.done(key);
      }
    };
    const workers = [worker(), worker(), worker()];
    const keys = ['ns/a', 'ns/b'];
    for (let round = 0; round < 10; round++) {
      for (const key of keys) queue.add(key);
      await nextTurn();
      // Finish one piece of work per round, oldest first, so re-adds keep landing on busy keys.
      finishers.shift()?.();
      await nextTurn();
    }
    queue.shutDown();
    while (finishers.length > 0) {
      finishers.shift()!();
      await nextTurn();
    }
    await Promise.all(workers);
    assert.equal(overlaps, 0);
    assert.ok(processed >= keys.length, `processed ${processed}`);
    assert.ok(processed <= keys.length * 10);
  });

  it('ignores done for a key that is not being processed', async () => {
    const { queue } = newQueue();
    queue.add('ns/a');
    queue.done('ns/a');
    queue.done('ns/never-added');
    assert.equal(queue.len(), 1);
    assert.equal(await queue.get(), 'ns/a');
    queue.done('ns/a');
    assert.equal(queue.len(), 0);
  });

  it('wakes waiting getters in arrival order as keys are added', async () => {
    const { queue } = newQueue();
    const first = queue.get();
    const second = queue.get();
    assert.equal(await peek(first), PENDING);
    queue.add('ns/a');
    queue.add('ns/b');
    assert.deepEqual([await first, await second], ['ns/a', 'ns/b']);
  });

  describe('addAfter', () => {
    it('adds keys when their delays fall due, in deadline order', async () => {
      const { clock, queue } = newQueue();
      queue.addAfter('ns/slow', 100);
      queue.addAfter('ns/fast', 50);
      queue.addAfter('ns/middle', 75);
      clock.advance(49);
      assert.equal(queue.len(), 0);
      clock.advance(51);
      assert.equal(queue.len(), 3);
      assert.deepEqual([await queue.get(), await queue.get(), await queue.get()], ['ns/fast', 'ns/middle', 'ns/slow']);
    });

    const deadlineCases = [
      { name: 'an earlier deadline replaces a later one', delaysMs: [100, 30], dueAtMs: 30 },
      { name: 'a later deadline does not postpone an earlier one', delaysMs: [30, 100], dueAtMs: 30 },
      { name: 'equal deadlines collapse into one add', delaysMs: [40, 40], dueAtMs: 40 },
    ];
    for (const { name, delaysMs, dueAtMs } of deadlineCases) {
      it(`${name} for the same key`, async () => {
        const registry = new Registry();
        const { clock, queue } = newQueue({ registry });
        for (const delayMs of delaysMs) queue.addAfter('ns/a', delayMs);
        clock.advance(dueAtMs - 1);
        assert.equal(queue.len(), 0);
        clock.advance(1);
        assert.equal(queue.len(), 1);
        clock.advance(1_000);
        assert.equal(clock.pendingTimers, 0, 'no second timer left behind');
        assert.equal(await metricValue(registry, 'workqueue_adds_total', { name: 'test' }), 1);
      });
    }

    const immediateCases = [0, -5];
    for (const delayMs of immediateCases) {
      it(`adds at once when the delay is ${delayMs} ms`, () => {
        const { clock, queue } = newQueue();
        queue.addAfter('ns/a', delayMs);
        assert.equal(queue.len(), 1);
        assert.equal(clock.pendingTimers, 0);
      });
    }
  });

  it('addRateLimited delays each retry of a key longer, until forget', () => {
    const { clock, queue } = newQueue();
    const delays: number[] = [];
    for (let attempt = 0; attempt < 4; attempt++) {
      const before = clock.now();
      queue.addRateLimited('ns/a');
      while (queue.len() === 0) {
        assert.ok(clock.now() - before < 10_000, 'retry never became due');
        clock.advance(1);
      }
      delays.push(clock.now() - before);
      // Process the key so the next retry is queued rather than parked as dirty.
      void queue.get();
      queue.done('ns/a');
    }
    assert.deepEqual(delays, [5, 10, 20, 40]);
    assert.equal(queue.numRequeues('ns/a'), 4);
    queue.forget('ns/a');
    assert.equal(queue.numRequeues('ns/a'), 0);
  });

  describe('shutDown', () => {
    it('resolves waiting getters with undefined', async () => {
      const { queue } = newQueue();
      const getters = [queue.get(), queue.get()];
      assert.equal(await peek(getters[0]!), PENDING);
      queue.shutDown();
      assert.deepEqual(await Promise.all(getters), [undefined, undefined]);
      assert.equal(queue.shuttingDown, true);
    });

    it('still hands out queued keys, then resolves undefined, and ignores new adds', async () => {
      const { clock, queue } = newQueue();
      queue.add('ns/a');
      queue.addAfter('ns/later', 10);
      queue.shutDown();
      queue.add('ns/b');
      queue.addAfter('ns/c', 0);
      queue.addRateLimited('ns/d');
      assert.equal(clock.pendingTimers, 0, 'pending delays are dropped');
      clock.advance(100);
      assert.equal(await queue.get(), 'ns/a');
      assert.equal(await queue.get(), undefined);
      assert.equal(queue.numRequeues('ns/d'), 0, 'a retry refused at shutdown is not counted');
    });
  });

  describe('shutDownWithDrain', () => {
    it('waits until keys being processed are done', async () => {
      const { queue } = newQueue();
      queue.add('ns/a');
      queue.add('ns/b');
      const a = (await queue.get())!;
      const b = (await queue.get())!;
      const drained = queue.shutDownWithDrain();
      queue.done(a);
      assert.equal(await peek(drained), PENDING, 'ns/b still in flight');
      queue.done(b);
      assert.equal(await peek(drained), undefined);
    });

    it('resolves when the last key in hand is done, even if it was re-added while processed', async () => {
      const { queue } = newQueue();
      queue.add('ns/a');
      const a = (await queue.get())!;
      queue.add('ns/a');
      const drained = queue.shutDownWithDrain();
      assert.equal(await peek(drained), PENDING);
      queue.done(a);
      assert.equal(await peek(drained), undefined);
    });

    it('resolves at once when nothing is being processed', async () => {
      const { queue } = newQueue();
      assert.equal(await peek(queue.shutDownWithDrain()), undefined);
    });

    it('is cut short by a later shutDown', async () => {
      const { queue } = newQueue();
      queue.add('ns/a');
      await queue.get();
      const drained = queue.shutDownWithDrain();
      assert.equal(await peek(drained), PENDING);
      queue.shutDown();
      assert.equal(await peek(drained), undefined);
    });
  });

  describe('metrics', () => {
    it('reports depth, adds, retries and the time keys spend queued and processed', async () => {
      const registry = new Registry();
      const { clock, queue } = newQueue({ registry, name: 'pods' });
      const labels = { name: 'pods' };
      queue.add('ns/a');
      queue.add('ns/a');
      queue.add('ns/b');
      assert.equal(await metricValue(registry, 'workqueue_depth', labels), 2);
      assert.equal(await metricValue(registry, 'workqueue_adds_total', labels), 2);

      clock.advance(2_000);
      const key = (await queue.get())!;
      assert.equal(await metricValue(registry, 'workqueue_depth', labels), 1);
      assert.equal(await metricValue(registry, 'workqueue_queue_duration_seconds_sum', labels), 2);
      assert.equal(await metricValue(registry, 'workqueue_queue_duration_seconds_count', labels), 1);

      clock.advance(3_000);
      assert.equal(await metricValue(registry, 'workqueue_unfinished_work_seconds', labels), 3);
      assert.equal(await metricValue(registry, 'workqueue_longest_running_processor_seconds', labels), 3);
      const other = (await queue.get())!;
      clock.advance(1_000);
      assert.equal(await metricValue(registry, 'workqueue_unfinished_work_seconds', labels), 5, '4 s + 1 s');
      assert.equal(await metricValue(registry, 'workqueue_longest_running_processor_seconds', labels), 4);

      queue.done(key);
      queue.done(other);
      assert.equal(await metricValue(registry, 'workqueue_work_duration_seconds_sum', labels), 5, '4 s + 1 s');
      assert.equal(await metricValue(registry, 'workqueue_work_duration_seconds_count', labels), 2);
      assert.equal(await metricValue(registry, 'workqueue_unfinished_work_seconds', labels), 0);

      queue.addRateLimited('ns/a');
      assert.equal(await metricValue(registry, 'workqueue_retries_total', labels), 1);
      assert.equal(await metricValue(registry, 'workqueue_depth', labels), 0, 'a delayed retry is not queued yet');
    });

    it('counts a key re-added while processing in depth until a worker takes it again', async () => {
      const registry = new Registry();
      const { queue } = newQueue({ registry });
      queue.add('ns/a');
      const key = (await queue.get())!;
      queue.add(key);
      assert.equal(await metricValue(registry, 'workqueue_depth', { name: 'test' }), 1);
      queue.done(key);
      await queue.get();
      assert.equal(await metricValue(registry, 'workqueue_depth', { name: 'test' }), 0);
      assert.equal(await metricValue(registry, 'workqueue_adds_total', { name: 'test' }), 2);
    });

    it('lets several queues share one registry, each under its own name', async () => {
      const registry = new Registry();
      const clock = new FakeClock();
      const pods = newQueue({ registry, clock, name: 'pods' }).queue;
      const leases = newQueue({ registry, clock, name: 'leases' }).queue;
      pods.add('ns/a');
      pods.add('ns/b');
      leases.add('ns/a');
      assert.equal(await metricValue(registry, 'workqueue_adds_total', { name: 'pods' }), 2);
      assert.equal(await metricValue(registry, 'workqueue_adds_total', { name: 'leases' }), 1);
      const exposition = await registry.getSingleMetricAsString('workqueue_depth');
      assert.match(exposition, /workqueue_depth\{name="pods"\} 2/);
      assert.match(exposition, /workqueue_depth\{name="leases"\} 1/);
    });

    it('uses the client-go duration buckets, 1e-8 s to 10 s', async () => {
      assert.deepEqual(WORKQUEUE_DURATION_BUCKETS_SECONDS, [1e-8, 1e-7, 1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1, 1, 10]);
      const registry = new Registry();
      newQueue({ registry });
      const exposition = await registry.getSingleMetricAsString('workqueue_queue_duration_seconds');
      assert.match(exposition, /le="1e-8",name="test"/);
      assert.match(exposition, /le="10",name="test"/);
    });
  });
});
